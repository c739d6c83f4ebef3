"""Pipelines that combine models: retrieve -> rerank (two_stage) -> explain (explain).

Import from the submodules (``genrec.pipelines.two_stage``, ``genrec.pipelines.explain``); this
package imports nothing heavy itself.
"""
