"""The ALBEF-style image-text matching head: hard negatives are near misses and never
duplicates of the positive, the head separates pairs it was trained on, reranking touches only
the contrastive top, and recall with no head equals mmdense's own alignment recall."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
torch = pytest.importorskip("torch")

from genrec.errors import ConfigError, DataError, NotFittedError  # noqa: E402
from genrec.models import MultimodalDense  # noqa: E402
from genrec.models.multimodal.matching import (  # noqa: E402
    ImageTextMatcher,
    aligned_pairs,
    matching_recall,
    retrieval_recall,
)
from genrec.models.multimodal.mmdense import image_text_recall  # noqa: E402

from .contract import OPTIONS  # noqa: E402
from .multimodal_fixtures import FAST, shared_world  # noqa: E402

TINY = {"epochs": 150, "hidden": 64, "batch_size": 32, "top": 8}


@pytest.fixture(scope="module")
def pairs():
    model = MultimodalDense({**FAST, "epochs": 30}).fit(shared_world().split.train, options=OPTIONS)
    return model, *aligned_pairs(model)


@pytest.fixture(scope="module")
def matcher(pairs):
    _, z, p = pairs
    return ImageTextMatcher(TINY).fit(z, p, options=OPTIONS)


def test_no_head_gives_mmdense_alignment_recall(pairs):
    model, z, p = pairs
    assert matching_recall(z, p, None) == image_text_recall(model)


def test_head_scores_true_pairs_above_mismatched_ones(pairs, matcher):
    _, z, p = pairs
    shuffled = p[np.random.default_rng(0).permutation(len(p))]
    same = (p * shuffled).sum(axis=1) > 0.9999  # shuffled onto an identical description
    true, wrong = matcher.pair_scores(z, p), matcher.pair_scores(z, shuffled)
    assert (true > wrong)[~same].mean() >= 0.85  # measured 0.97


def test_hard_negatives_are_near_misses_and_never_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[1] = x[0]  # a duplicate: never a negative of row 0
    cross = torch.from_numpy(x @ x.T)
    gen = torch.Generator().manual_seed(0)
    hard = ImageTextMatcher(hard_negatives=True, mining_scale=20.0)
    uniform = ImageTextMatcher(hard_negatives=False)
    drawn_hard = torch.stack([hard._negatives(cross, cross, gen) for _ in range(50)])  # (50, B)
    drawn_uniform = torch.stack([uniform._negatives(cross, cross, gen) for _ in range(50)])
    rows = torch.arange(32).expand(50, 32)
    assert not ((drawn_hard == rows) | (drawn_uniform == rows)).any()  # never itself
    assert not (drawn_hard[:, 0] == 1).any() and not (drawn_hard[:, 1] == 0).any()
    assert cross[rows, drawn_hard].mean() > cross[rows, drawn_uniform].mean() + 0.2


def test_rerank_scores_only_the_contrastive_top(pairs, matcher):
    _, z, p = pairs
    sims = p @ z.T
    out = matcher.rerank(p, z, sims, queries_are="text")
    kept = np.isfinite(out)
    assert (kept.sum(axis=1) == TINY["top"]).all()
    top = np.argsort(-sims, axis=1, kind="stable")[:, : TINY["top"]]
    assert np.take_along_axis(kept, top, axis=1).all()
    with pytest.raises(DataError, match="queries_are"):
        matcher.rerank(p, z, sims, queries_are="audio")


def test_recall_counts_ties_and_misses_against_the_match():
    sims = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.9], [-np.inf, 0.0, -np.inf]])
    # row 0 ties (rank 1), row 1 second (rank 1), row 2 not a candidate (missed)
    assert retrieval_recall(sims, ks=(1, 2)) == {"R@1": 0.0, "R@2": 2 / 3}


def test_bad_input_and_unfitted_use_are_genrec_errors():
    with pytest.raises(ConfigError, match="hidden"):
        ImageTextMatcher(hidden=0)
    with pytest.raises(ConfigError, match="allowed keys"):
        ImageTextMatcher(layers=2)
    with pytest.raises(DataError, match="N >= 2"):
        ImageTextMatcher().fit(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(NotFittedError, match="fit"):
        ImageTextMatcher().pair_scores(np.zeros((1, 4)), np.zeros((1, 4)))
