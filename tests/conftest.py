"""Shared fixtures: the real MovieLens-100K (fetched once per test session into a temp cache)."""

import pytest


@pytest.fixture(scope="session")
def ml100k_cache(tmp_path_factory):
    """A cache folder holding ml-100k, fetched from the recbole wheel on PyPI (no other network)."""
    from genrec.data import sources

    cache = tmp_path_factory.mktemp("genrec-cache")
    sources.fetch("ml-100k", cache_dir=cache, origin="wheel")
    return cache


@pytest.fixture(scope="session")
def ml100k(ml100k_cache):
    from genrec.data import sources

    return sources.load("ml-100k", cache_dir=ml100k_cache)
