"""Shared fixtures: the real MovieLens-100K (fetched once per test session into a temp cache).

Every test that uses the real data, directly or through another fixture, is marked ``slow``
here, so ``make test-fast`` (``pytest -m "not slow"``) leaves them out; CI runs them all.
"""

import pytest

REAL_DATA_FIXTURES = frozenset({"ml100k", "ml100k_cache"})


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` each test whose fixture closure reaches the real MovieLens-100K."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
