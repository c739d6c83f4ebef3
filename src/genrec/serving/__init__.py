"""Serving genrec models over HTTP: :mod:`genrec.serving.lm_server` puts any
:class:`~genrec.text.lm.LanguageModel` behind an OpenAI-compatible API (``genrec serve-lm``)."""
