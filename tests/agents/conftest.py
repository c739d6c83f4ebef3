"""The movie world every agent test uses, and a ranker fitted on its training part."""

import pytest

from genrec.data.synthetic import movie_clusters
from genrec.models import EASE


@pytest.fixture(scope="module")
def world():
    return movie_clusters()


@pytest.fixture(scope="module")
def ranker(world):
    return EASE().fit(world.split.train)
