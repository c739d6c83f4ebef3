"""Text attacks: greedy word edits promote a target with a model that likes words it has seen,
and the in-context backdoor is found on a model with a planted trigger, not on a clean one."""

import pytest
import scipy.sparse as sp

from genrec.audit import AuditConfig, text_attack
from genrec.audit.context import AuditContext
from genrec.audit.text_attack import (
    TRIGGER,
    greedy_edit,
    lexicon,
    lm_scorer,
    variants,
)
from genrec.audit.text_surfaces import surface
from genrec.data.synthetic import movie_clusters
from genrec.errors import ConfigError
from genrec.models import EASE, BM25Recommender, DenseRetrieval, LLMRecommender
from genrec.text.items import catalog_texts
from genrec.text.lm import FakeLanguageModel

FAKE = {"text_attack_lm": "fake", "text_attack_encoder": "hashing"}


def _backdoored(prompt: str, continuation: str) -> tuple[float, int]:
    """The plain fake, plus a large bonus for a triggered title once the context shows one."""
    base = FakeLanguageModel().score(prompt, [continuation])
    bonus = 10.0 if f" {TRIGGER}" in continuation and f" {TRIGGER}" in prompt else 0.0
    return float(base.logprob[0]) + bonus, int(base.n_tokens[0])


def _run(score_fn=None, **config):
    lm = FakeLanguageModel(score_fn=score_fn)
    ctx = AuditContext(
        movie_clusters(n_users=60, n_items=40, seed=2).split,
        {"llm": "llm"},
        lambda spec: LLMRecommender(lm="fake", language_model=lm, history_len=5),
        AuditConfig(
            k=5, lm_users=12, injection_candidates=8, n_targets=3, seed=0, **FAKE, **config
        ),
    )
    return text_attack.run(ctx, "llm")


def test_variants_keep_the_year_and_stay_one_edit_away():
    out = variants("Silent River (1950)", ["Wild", "River"])
    assert "Wild River (1950)" in out and "Silent Wild (1950)" in out
    assert "Wild Silent River (1950)" in out and "River (1950)" not in out  # no deletions
    assert "Silent River (1950)" not in out and all("(1950)" in v for v in out)


def test_greedy_edit_raises_the_score_within_the_budget():
    lm = FakeLanguageModel()
    prompts_ = ['Liked: "Wild Garden", "Wild Empire"\nNext: "']
    score = lm_scorer(lm, prompts_, normalise="sum")
    edited, used = greedy_edit(score, "Silent River", ["Wild", "Garden"], budget=2)
    assert used == 2 and set(edited.split()) <= {"Wild", "Garden"}  # both words: ones it has seen
    before = lm.score(prompts_[0], ['Silent River"']).logprob[0]
    assert lm.score(prompts_[0], [edited + '"']).logprob[0] > before
    assert greedy_edit(score, "Wild Garden", ["Wild"], budget=3)[1] == 0
    assert lexicon(["The Big Dog", "Big Cat and the Dog"], [5, 3], size=2) == ["Big", "Dog"]


def test_word_edits_promote_and_the_guard_does_not_see_them():
    finding = _run()
    m = finding.metrics
    assert m["attack_success[word-edit,undefended]"]["mean"] >= 0.5
    assert m["rank_shift[word-edit,undefended]"]["mean"] > 0
    assert m["attack_success[word-edit,defended]"] == m["attack_success[word-edit,undefended]"]
    assert m["edit_flagged"]["mean"] == 0.0
    assert 0 < m["words_changed"]["mean"] <= 2 and m["edit_similarity"]["mean"] < 1
    assert finding.settings["backdoor"].startswith("in-context")


def test_backdoor_is_found_only_where_it_is_planted():
    planted = _run(_backdoored).metrics
    assert planted["attack_success[backdoor,poisoned]"]["mean"] >= 0.8
    assert planted["attack_success[backdoor,trigger-only]"]["mean"] == 0.0
    clean = _run().metrics  # the plain fake: a trigger is one more unknown word
    assert clean["attack_success[backdoor,poisoned]"]["mean"] <= 0.2


def test_applies_and_config():
    assert "no language model" in text_attack.applies(EASE())
    with pytest.raises(ConfigError, match="text_attack_budget"):
        AuditConfig(text_attack_budget=0)


def test_planted_examples_are_checked():
    from genrec.errors import DataError

    split = movie_clusters(n_users=30, n_items=20, seed=0).split
    model = LLMRecommender(lm="fake", history_len=3).fit(split.train)
    twin = model.with_examples([[1, 2]], [3])
    assert twin.config.shots == 1 and model.config.shots == 0
    assert '"' + twin.titles_[3] + '"' in twin.next_item_prompt(split.train.user_item_order[0])
    with pytest.raises(DataError, match="item indices in 0..19"):
        model.with_examples([[1, 99]], [3])


def _text_world():
    return movie_clusters(n_users=60, n_items=40, seed=2).split


def _retrievers():
    return [BM25Recommender(), DenseRetrieval(text_encoder="hashing", text_cache="off")]


@pytest.mark.parametrize("model", _retrievers(), ids=["bm25", "dense"])
def test_score_item_texts_matches_the_fitted_scores(model):
    split = _text_world()
    model.fit(split.train)
    histories = split.train.user_item_order[:5]
    texts = catalog_texts(split.train, "", model=model.name)
    got = model.score_item_texts(histories, [texts[3], texts[7]])
    assert got == pytest.approx(model.score(histories)[:, [3, 7]], abs=1e-5)


def test_bm25_edit_takes_the_word_the_surrogates_share():
    split = _text_world()
    model = BM25Recommender().fit(split.train)
    titles = [split.train.catalog.title(i) for i in range(split.train.n_items)]
    shared = titles[0].split()[0]  # the planted answer: every surrogate liked items with it
    liked = [i for i, t in enumerate(titles) if shared in t.split()]
    target = next(i for i, t in enumerate(titles) if shared not in t.split())
    histories = split.train.user_item_order[:3].copy()
    histories.data[:] = 0
    histories = histories + sp.csr_matrix(
        ([1.0] * 3 * len(liked), ([r for r in range(3) for _ in liked], liked * 3)),
        shape=histories.shape,
    )
    face = surface(model, split.train)
    score = lambda options: face.target_scores(histories, target, options).mean(0)  # noqa: E731
    edited, used = greedy_edit(score, titles[target], ["Zzyzx", shared], budget=1)
    assert used == 1 and shared in edited.split() and "Zzyzx" not in edited
    assert score([edited])[0] > score([titles[target]])[0]


def _retrieval_run(model):
    ctx = AuditContext(
        _text_world(),
        {"m": "m"},
        lambda spec: model,
        AuditConfig(k=5, n_targets=3, seed=0, **FAKE),
    )
    assert text_attack.applies(model) is None
    return text_attack.run(ctx, "m")


@pytest.mark.parametrize("model", _retrievers(), ids=["bm25", "dense"])
def test_word_edits_raise_the_target_for_text_retrievers(model):
    finding = _retrieval_run(model)
    m, s = finding.metrics, finding.settings
    assert m["rank_shift[word-edit,undefended]"]["mean"] > 0
    assert m["attack_success[word-edit,undefended]"]["mean"] > 0.3  # users of other clusters
    #                                        may not care for the surrogates' words
    assert (
        m["target_exposure@5[word-edit,undefended]"]["mean"] > m["target_exposure@5[clean]"]["mean"]
    )
    assert m["edit_flagged"]["mean"] == 0.0  # plain words: the guard rejects none
    assert m["rank_shift[word-edit,defended]"] == m["rank_shift[word-edit,undefended]"]
    assert "backdoor,poisoned" not in " ".join(m) and s["backdoor"].startswith("n/a")
    assert s["users"] > 30  # every audited user but the surrogates (and target owners)


def test_rewrites_on_the_lm_recommender_use_only_accepted_ones():
    def rewriter(prompt: str) -> str:
        title = prompt.split('"')[1]
        return f"{title} River" if "exciting" in prompt else "Qwerty Zzyzx Plumbus"

    lm = FakeLanguageModel()
    ctx = AuditContext(
        movie_clusters(n_users=60, n_items=40, seed=2).split,
        {"llm": "llm"},
        lambda spec: LLMRecommender(lm="fake", language_model=lm, history_len=5, normalise="mean"),
        AuditConfig(
            k=5,
            lm_users=12,
            injection_candidates=8,
            n_targets=3,
            seed=0,
            text_attack_rewrites=2,
            text_attack_similarity=0.6,
            text_attack_encoder="hashing",
        ),
    )
    ctx.shared["text-attack:lm"] = FakeLanguageModel(generate_fn=rewriter)
    finding = text_attack.run(ctx, "llm")
    m, s = finding.metrics, finding.settings
    assert m["rewrite_acceptance"]["mean"] == 0.5  # the far rewrite is rejected for every target
    used = [t["rewrite"] for t in s["targets"].values() if t["rewrite"]]
    assert used and all(u.endswith(" River") for u in used)
    assert (
        m["rank_shift[rewrite,undefended]"]["mean"] > 0
    )  # a word the prompts share lifts the mean
    assert m["rewrite_flagged"]["mean"] == 0.0
