"""LM rewrites of a target's title: a rewrite below the similarity threshold is rejected, the
best accepted one on the surrogates is used; and the text surfaces of hybrid and TIGER: an
unedited title scores as the fitted model does, an edited one moves the target."""

import functools
import re

import numpy as np
import pytest

from genrec.audit import AuditConfig, text_attack
from genrec.audit.context import AuditContext
from genrec.audit.rewrites import Rewrite, best_accepted, clean, propose, screen
from genrec.audit.text_surfaces import surface
from genrec.data.synthetic import movie_clusters
from genrec.errors import ConfigError
from genrec.models import TIGER, BM25Recommender, DenseRetrieval
from genrec.options import RunOptions
from genrec.pipelines.hybrid import Hybrid
from genrec.text.encoder import HashingEncoder
from genrec.text.lm import FakeLanguageModel

SPLIT = movie_clusters(n_users=60, n_items=40, seed=2).split


def _title(prompt: str) -> str:
    return re.search(r'"([^"]*)"', prompt).group(1)  # the first quoted title: the target's


def _scripted(prompt: str) -> str:
    """A rewriter that keeps the title and adds a word for one hint, and answers with
    something else entirely for another (the fake's seed-free answer to the rest)."""
    if "more exciting" in prompt:
        return f'New title: "{_title(prompt)} River"'
    if "more dramatic" in prompt:
        return "Zzyzx Qwerty Plumbus"
    return _title(prompt)  # the original: never accepted


def test_screen_rejects_a_rewrite_below_the_threshold():
    enc = HashingEncoder()
    out = screen(
        enc, "Silent River", ["Silent River Tales", "Zzyzx Qwerty", "Silent River"], threshold=0.5
    )
    assert [r.accepted for r in out] == [True, False, False]  # the last is the original
    assert out[0].similarity > 0.5 > out[1].similarity
    high = screen(enc, "Silent River", ["Silent River Tales"], threshold=0.99)
    assert not high[0].accepted  # the same rewrite, a stricter threshold
    assert clean('New title: "Heat Wave".\nmore') == "Heat Wave"
    assert clean("Movie title: Mr. Smith Goes Home. It is a film.") == "Mr. Smith Goes Home"


def _table(values: dict):
    """A surrogate score that looks titles up in ``values``."""
    return lambda titles: np.array([values[t] for t in titles])


def test_best_accepted_is_the_best_on_the_surrogates_among_the_accepted():
    rewrites = [
        Rewrite("A", 0.9, True),
        Rewrite("B", 0.95, True),
        Rewrite("C", 0.1, False),  # scores best, but rejected
    ]
    score = _table({"orig": 1.0, "A": 2.0, "B": 3.0, "C": 9.0})
    assert best_accepted(score, "orig", rewrites).text == "B"
    worse = _table({"orig": 5.0, "A": 2.0, "B": 3.0})
    assert best_accepted(worse, "orig", rewrites) is None  # the original stays
    assert best_accepted(score, "orig", [Rewrite("C", 0.1, False)]) is None


def test_propose_asks_once_per_rewrite_with_its_own_hint_and_seed():
    lm = FakeLanguageModel(generate_fn=_scripted)
    out = propose(lm, "Silent River", ["Golden River"], n=3, seed=7)
    assert out == ["Silent River River", "Silent River", "Zzyzx Qwerty Plumbus"]
    assert len(lm.calls) == 3 and "Golden River" in lm.calls[0][1]


def _model(name):
    if name == "hybrid":
        return Hybrid(text_encoder="hashing", text_cache="off")
    if name == "tiger":
        return TIGER(
            text_encoder="hashing",
            text_cache="off",
            n_levels=2,
            codebook_size=8,
            rqvae_epochs=30,
            max_epochs=2,
        )
    if name == "bm25":
        return BM25Recommender()
    return DenseRetrieval(text_encoder="hashing", text_cache="off")


@functools.cache
def _fitted(name):
    return _model(name).fit(SPLIT.train, options=RunOptions(seed=0, threads=1))


@pytest.fixture(scope="module", params=["bm25", "dense", "hybrid", "tiger"])
def fitted(request):
    return _fitted(request.param)


def test_an_unedited_title_scores_as_the_fitted_model(fitted):
    face = surface(fitted, SPLIT.train)
    histories = SPLIT.train.user_item_order[:4]
    expected = np.asarray(fitted.score(histories), np.float64)
    assert face.scores(histories, 5, None) == pytest.approx(expected, abs=1e-5)
    same = face.target_scores(histories, 5, [face.titles[5]])[:, 0]
    assert same == pytest.approx(expected[:, 5], abs=1e-5)


def test_tiger_codes_come_from_the_text():
    model = _fitted("tiger")
    face = surface(model, SPLIT.train)
    assert (face.codes(5, [face.titles[5]])[0] == model.codes_[5, :-1]).all()
    other = next(j for j in range(40) if (model.codes_[j, :-1] != model.codes_[5, :-1]).any())
    twin = model.with_item_codes(5, model.codes_[other, :-1])
    assert (twin.codes_[5, :-1] == model.codes_[other, :-1]).all()
    assert len(np.unique(twin.codes_, axis=0)) == 40  # still one ID per item
    assert (model.codes_[5] != twin.codes_[5]).any()  # the original model is unchanged
    histories = SPLIT.train.user_item_order[:4]
    assert not np.allclose(twin.score(histories)[:, 5], model.score(histories)[:, 5])
    crowded = np.bincount(np.unique(model.codes_[:, :-1], axis=0, return_inverse=True)[1].ravel())
    busiest = model.codes_[np.argmax(crowded == crowded.max()), :-1]  # the largest collision
    joined = model.with_item_codes(5, busiest)  # may need a digit the network never saw
    assert np.isfinite(joined.score(histories)).any(axis=1).all()
    with pytest.raises(ConfigError, match=r"codes must be 2 integers in 0\.\.7, got \[9, 0\]"):
        model.with_item_codes(5, [9, 0])


@pytest.mark.parametrize("name", ["bm25", "hybrid", "tiger"])
def test_scenario_runs_word_edits_and_rewrites(name):
    ctx = AuditContext(
        SPLIT,
        {"m": name},
        lambda spec: _model(spec),
        AuditConfig(
            k=5,
            seed=0,
            text_attack_rewrites=3,
            text_attack_encoder="hashing",
            text_attack_similarity=0.6,
            # TIGER scores every distinct ID a variant gets: one edit, 20 users keep it short
            **(
                {"text_attack_budget": 1, "users": 20, "n_targets": 2}
                if name == "tiger"
                else {"n_targets": 3}
            ),
        ),
        options=RunOptions(seed=0, threads=1),
    )
    ctx.shared["text-attack:lm"] = FakeLanguageModel(generate_fn=_scripted)
    finding = text_attack.run(ctx, "m")
    m, s = finding.metrics, finding.settings
    assert m["rewrite_acceptance"]["mean"] == pytest.approx(1 / 3)  # one of three per target
    assert len(s["targets"]) == (2 if name == "tiger" else 3)
    chosen = [t["rewrite"] for t in s["targets"].values() if t["rewrite"]]
    assert all(r.endswith(" River") for r in chosen)  # only the accepted kind is used
    for cell in ("word-edit", "rewrite"):
        assert f"target_exposure@5[{cell},defended]" in m
    if name == "bm25":  # "River" names a cluster the surrogates like
        assert m["rewrite_chosen"]["mean"] > 0 and m["rank_shift[rewrite,undefended]"]["mean"] > 0
    assert s["rewriter"] == "fake" and s["rewrites_per_target"] == 3
    assert s["rewrite_min_similarity"] == 0.6 and s["surface"]
