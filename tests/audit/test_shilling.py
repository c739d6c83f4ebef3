"""Shilling: fake profiles follow their recipe, a big attack moves the targets, the detector
sees obvious fakes."""

import numpy as np
import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.shilling import (
    applies,
    cells,
    choose_targets,
    detector_auc,
    fake_profiles,
    poisoned_split,
    run,
)
from genrec.audit.world import audit_world
from genrec.build import audit_model
from genrec.models import EASE, BM25Recommender, DenseRetrieval, LLMRecommender


@pytest.fixture(scope="module")
def split():
    return audit_world(seed=2)


def test_ofat_grid_varies_one_factor_at_a_time():
    grid = cells(AuditConfig())
    assert grid[0] == ("bandwagon", 0.01, "random")
    assert len(grid) == 1 + 3 + 3 + 2
    assert all(sum(a != b for a, b in zip(c, grid[0])) == 1 for c in grid[1:])
    assert len(cells(AuditConfig(shilling_grid="full"))) == 4 * 4 * 3


@pytest.mark.parametrize("attack", ["random", "average", "bandwagon", "segment"])
def test_profiles_hold_targets_and_filler(split, attack):
    rng = np.random.default_rng(0)
    targets = choose_targets(split.train.item_counts, "unpopular", 3, rng)
    profiles = fake_profiles(attack, 4, targets, split.train, rng)
    filler = int(round(split.train.user_counts.mean()))
    for p in profiles:
        assert set(targets) <= set(p.tolist()) and len(set(p.tolist())) == len(p)
        assert len(p) == len(targets) + filler
    if attack == "bandwagon":  # the most popular non-target item is in every profile
        counts = split.train.item_counts.copy()
        counts[targets] = -1
        assert all(int(np.argmax(counts)) in p for p in profiles)


def test_target_choices(split):
    counts = split.train.item_counts
    rng = np.random.default_rng(0)
    popular = choose_targets(counts, "popular", 3, rng)
    unpopular = choose_targets(counts, "unpopular", 3, rng)
    assert counts[popular].min() > counts[unpopular].max()


def test_poisoned_split_appends_fake_users(split):
    profiles = [np.array([0, 1, 2]), np.array([3, 4])]
    poisoned = poisoned_split(split, profiles, np.random.default_rng(0))
    n = split.train.n_users
    assert poisoned.train.n_users == n + 2
    assert len(poisoned.train) == len(split.train) + 5
    assert len(poisoned.test) == len(split.test) and poisoned.test.users is poisoned.train.users
    assert poisoned.train.user_items[n].indices.tolist() == [0, 1, 2]


def test_detector_sees_identical_fakes(split):
    profiles = [np.arange(10, 40)] * 6  # copies of one template
    poisoned = poisoned_split(split, profiles, np.random.default_rng(0))
    assert detector_auc(poisoned.train, 6) > 0.95


def test_a_large_bandwagon_attack_pushes_unpopular_targets_into_ease_lists(split):
    cfg = AuditConfig(
        k=5,
        shilling_grid="full",
        shilling_attacks=("bandwagon",),
        shilling_sizes=(0.2,),
        shilling_targets=("unpopular",),
        n_targets=2,
    )
    ctx = AuditContext(split, {"ease": "ease"}, lambda spec: EASE(), cfg)
    m = run(ctx, "ease").metrics
    name = "bandwagon,20%,unpopular"
    assert (
        m[f"target_hr@5_attacked[{name}]"]["mean"] > m[f"target_hr@5_clean[{name}]"]["mean"] + 0.1
    )
    assert m[f"target_hr_shift@5[{name}]"]["ci_low"] > 0
    assert 0 <= m[f"detector_auc[{name}]"]["mean"] <= 1


def _ease_llm(built):
    """A build function of ease+llm over the fake language model, each model kept in ``built``;
    the reranker's weight is fixed, so every language-model call scores an audited user."""

    def build(spec):
        built.append(audit_model(spec, {"llm.lm": "fake", "fusion_weight": 1.0}))
        return built[-1]

    return build


@pytest.fixture
def scored_users(monkeypatch):
    """The users whose candidates the language model scores (every call recorded)."""
    seen = []
    original = LLMRecommender._mode_scores

    def spy(self, histories, candidates, users):
        seen.extend([] if users is None else np.asarray(users).tolist())
        return original(self, histories, candidates, users)

    monkeypatch.setattr(LLMRecommender, "_mode_scores", spy)
    return seen


def test_ease_llm_is_poisoned_and_scored_on_the_lm_sample(split, scored_users):
    cfg = AuditConfig(
        k=5, lm_users=6, shilling_grid="full", shilling_sizes=(0.01, 0.2), n_targets=2
    )
    built = []
    ctx = AuditContext(split, {"ease+llm": "ease+llm"}, _ease_llm(built), cfg)
    finding = run(ctx, "ease+llm")
    sample = ctx.lm_sample(ctx.audited_users())
    assert len(sample) == 6 and finding.settings["users"] == 6
    assert set(scored_users) == set(sample.tolist())  # the clean and the attacked pass only
    assert list(finding.settings["cells"]) == ["bandwagon,1%,random"]  # lm_shilling_grid base
    assert "language-model sample" in finding.settings["user_sample"]
    m = finding.metrics
    for name in ("target_hr@5_clean", "target_hr@5_attacked", "utility_drop@5"):
        assert np.isfinite(m[f"{name}[bandwagon,1%,random]"]["mean"])
    clean, poisoned = built[0].retriever, built[-1].retriever  # the EASE inside each pipeline
    assert poisoned.weights_.shape == clean.weights_.shape
    assert not np.allclose(poisoned.weights_, clean.weights_)  # refitted on the fake profiles


def test_lm_grid_can_follow_the_full_grid(split):
    cfg = AuditConfig(
        k=5, lm_users=3, lm_shilling_grid="ofat", shilling_sizes=(0.01, 0.05), n_targets=2
    )
    ctx = AuditContext(split, {"llm": "llm"}, lambda spec: audit_model(spec, {"lm": "fake"}), cfg)
    finding = run(ctx, "llm")
    assert len(finding.settings["cells"]) == len(cells(cfg, "ofat")) > 1
    assert finding.settings["grid"] == "ofat" and finding.settings["users"] == 3


def test_only_models_that_learn_nothing_from_interactions_are_not_applicable():
    assert "learns nothing" in applies(DenseRetrieval(text_encoder="hashing"))
    assert "learns nothing" in applies(BM25Recommender())
    assert "learns nothing" in applies(audit_model("hybrid", {"text_encoder": "hashing"}))
    assert "learns nothing" in applies(audit_model("gpt4rec", {"lm": "fake"}))
    assert applies(audit_model("hybrid", {"collaborative": "ease"})) is None
    assert applies(LLMRecommender(lm="fake")) is None
    assert applies(audit_model("ease+llm", {"llm.lm": "fake"})) is None
    assert cells(AuditConfig(), "base") == [("bandwagon", 0.01, "random")]


def test_evaluation_of_a_sample_matches_the_rows_of_the_full_evaluation(split):
    ctx = AuditContext(split, {"ease": "ease"}, lambda spec: EASE(), AuditConfig(k=5, lm_users=9))
    users = ctx.lm_sample(ctx.audited_users())
    alone = ctx.evaluation_of("ease", users)  # no full evaluation yet: these users only
    ctx.evaluation("ease")
    rows = ctx.evaluation_of("ease", users)  # now: rows of the full evaluation
    assert rows is not alone and rows.users.tolist() == users.tolist() == alone.users.tolist()
    assert np.array_equal(rows.top_items, alone.top_items)
    assert np.allclose(rows.per_user["ndcg@5"], alone.per_user["ndcg@5"])
