"""Item facts for retrieval-augmented prompts: sources, token budget, review relevance, the
guard, leakage, and how the LLM recommender shows them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.build import build_model, load_model
from genrec.data.dataset import STARS_LIKED, Dataset
from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.models import LLMRecommender
from genrec.options import RunOptions
from genrec.text import prompts
from genrec.text.encoder import HashingEncoder
from genrec.text.facts import SOURCES, ItemFacts, fit_budget, parse_sources
from genrec.text.lm import FakeLanguageModel

LM = FakeLanguageModel()
REVIEWS = {
    "heat": "A tense heist thriller. The bank robbery scene is loud and long.",
    "toy": "Charming animated toys come alive. Great for children and parents.",
}


def tiny(*, reviews: bool = True) -> Dataset:
    """Three users, three movies with years, genres and tags; ratings 1-5; a review each."""
    users = ["u1", "u1", "u2", "u2", "u3", "u3"]
    items = ["heat", "toy", "heat", "toy", "heat", "babe"]
    ratings = [5, 4, 3, 5, 4, 2]
    texts = [REVIEWS[i] if i in REVIEWS else "Pigs talk." for i in items]
    return Dataset.from_interactions(
        users,
        items,
        ratings,
        np.arange(6),
        item_rows={
            "title": ["Heat", "Toy Story", "Babe"],
            "year": [1995.0, 1995.0, float("nan")],
            "genres": [("Action", "Crime"), ("Animation", "Comedy"), ("Children's",)],
            "tags": [("heist", "De Niro"), (), ("pig",)],
        },
        item_row_ids=["heat", "toy", "babe"],
        extras={"review_text": texts} if reviews else None,
        positive_threshold=STARS_LIKED,
    )


def item(data: Dataset, external_id: str) -> int:
    return int(data.items.index([external_id])[0])


def test_each_source_says_what_it_knows():
    data = tiny()
    facts = ItemFacts.from_dataset(data)
    heat, babe = item(data, "heat"), item(data, "babe")
    assert facts.sources == SOURCES
    assert facts.facts["catalog"][heat] == ["1995; Action, Crime"]
    assert facts.facts["catalog"][babe] == ["Children's"]  # no year
    assert facts.facts["tags"][heat] == ["tagged heist, De Niro"]
    assert facts.facts["ratings"][heat] == ["rated 4.0/5 by 3 users"]
    assert facts.facts["reviews"][heat][0] == "A tense heist thriller."
    assert len(facts.facts["reviews"][heat]) == 6  # two sentences from each of three reviews


def test_sources_can_be_toggled():
    data = tiny()
    heat = item(data, "heat")
    only = {
        s: ItemFacts.from_dataset(data, sources=(s,)).describe(
            [heat], count_tokens=LM.count_tokens, budget=200
        )[0]
        for s in SOURCES
    }
    assert only["catalog"] == "1995; Action, Crime"
    assert only["ratings"] == "rated 4.0/5 by 3 users"
    assert only["tags"].startswith("tagged") and "rated" not in only["tags"]
    assert only["reviews"].startswith("A tense heist") and "1995" not in only["reviews"]
    both = ItemFacts.from_dataset(data, sources="ratings,catalog")  # the order given is kept
    text = both.describe([heat], count_tokens=LM.count_tokens, budget=200)[0]
    assert text == "rated 4.0/5 by 3 users; 1995; Action, Crime"
    assert ItemFacts.from_dataset(data, sources="").describe(
        [heat], count_tokens=len, budget=9
    ) == [""]


def test_a_source_the_data_lacks_gives_no_facts():
    facts = ItemFacts.from_dataset(tiny(reviews=False), sources=("reviews", "catalog"))
    assert all(f == [] for f in facts.facts["reviews"])
    assert facts.describe([0], count_tokens=LM.count_tokens, budget=50)[0] == "1995; Action, Crime"


@pytest.mark.parametrize("budget", [0, 1, 3, 5, 8, 13, 21, 34, 200])
def test_the_budget_is_respected_in_the_lm_tokens(budget):
    data = tiny()
    facts = ItemFacts.from_dataset(data)
    for text in facts.describe(range(data.n_items), count_tokens=LM.count_tokens, budget=budget):
        assert LM.count_tokens(text) <= budget
    full = facts.describe([0], count_tokens=LM.count_tokens, budget=10_000)[0]
    cut = facts.describe([0], count_tokens=LM.count_tokens, budget=budget)[0]
    assert full.startswith(cut.removesuffix("...").rstrip("; "))  # a prefix, never a reorder


def test_truncation_keeps_whole_facts_then_a_word_prefix():
    def words(text):
        return len(text.split())

    assert fit_budget(["one two", "three four five"], count_tokens=words, budget=2) == "one two"
    assert fit_budget(["one two", "three four five"], count_tokens=words, budget=4) == (
        "one two; three four..."
    )
    assert fit_budget(["one two three"], count_tokens=words, budget=0) == ""
    assert (
        fit_budget(["a", "b", "c"], count_tokens=words, budget=2) == "a; b"
    )  # c never after a cut


def test_review_sentences_most_similar_to_the_history_come_first():
    data = tiny()
    facts = ItemFacts.from_dataset(data, sources=("reviews",))
    encoder = HashingEncoder(dim=512)
    heat = item(data, "heat")
    query = encoder.encode(["bank robbery loud scene"])[0]
    first = facts.describe(
        [heat], count_tokens=LM.count_tokens, budget=12, query=query, encoder=encoder
    )[0]
    assert first.startswith("The bank robbery scene is loud and long.")
    plain = facts.describe([heat], count_tokens=LM.count_tokens, budget=12)[0]
    assert plain.startswith("A tense heist thriller.")  # without a query: data order


def test_facts_from_a_training_part_do_not_leak_held_out_interactions():
    data = tiny()
    train = data.subset(np.arange(len(data)) != 2)  # u2's rating of Heat is held out
    facts = ItemFacts.from_dataset(train, sources=("ratings", "reviews"))
    heat = item(data, "heat")
    assert facts.facts["ratings"][heat] == ["rated 4.5/5 by 2 users"]
    assert len(facts.facts["reviews"][heat]) == 4
    babe_only = data.subset(data.item_idx == item(data, "babe"))
    assert ItemFacts.from_dataset(babe_only, sources=("ratings",)).facts["ratings"][heat] == []


def test_implicit_feedback_counts_users():
    data = tiny()
    implicit = Dataset(data.users, data.items, data.user_idx, data.item_idx, catalog=data.catalog)
    assert ItemFacts.from_dataset(implicit, sources="ratings").facts["ratings"][0] == [
        "chosen by 3 users"
    ]


def test_bad_input_names_the_fix():
    with pytest.raises(ConfigError, match="choose from"):
        parse_sources("catalog,plot")
    facts = ItemFacts.from_dataset(tiny())
    with pytest.raises(DataError, match="item indices"):
        facts.describe([7], count_tokens=len, budget=5)
    with pytest.raises(ConfigError, match="budget"):
        facts.describe([0], count_tokens=len, budget=-1)


def test_arrays_round_trip():
    facts = ItemFacts.from_dataset(tiny())
    again = ItemFacts.from_arrays(facts.to_arrays())
    assert again.facts == facts.facts


# ---- in the LLM recommender --------------------------------------------------------------------
def recording_lm() -> tuple[FakeLanguageModel, list[tuple[str, str]]]:
    """A fake LM that records every (prompt, continuation) it scores."""
    seen: list[tuple[str, str]] = []

    def score(prompt, text):
        seen.append((prompt, text))
        return -float(len(text)), 1

    return FakeLanguageModel(score_fn=score), seen


@pytest.mark.parametrize("mode", ["listwise", "preference"])
def test_the_llm_shows_each_candidate_with_its_facts(mode):
    data = tiny()
    lm, seen = recording_lm()
    model = LLMRecommender(lm="fake", mode=mode, facts="catalog,ratings", language_model=lm)
    model.fit(data)
    history = sp.csr_matrix((np.ones(1), [item(data, "toy")], [0, 1]), shape=(1, data.n_items))
    model.score_candidates(history, np.array([[item(data, "heat"), item(data, "babe")]]))
    heat = prompts.with_facts("Heat", "1995; Action, Crime; rated 4.0/5 by 3 users")
    babe = prompts.with_facts("Babe", "Children's; rated 2.0/5 by 1 user")
    if mode == "listwise":
        assert f"A. {heat}\nB. {babe}\n" in seen[0][0]
    else:
        texts = [text for _, text in seen]
        assert prompts.preference_question("Heat", heat.split(" (", 1)[1][1:-2]) + " Yes" in texts
        assert any(babe in text for text in texts)
    lm_plain, plain = recording_lm()  # no facts: the prompts of before
    LLMRecommender(lm="fake", mode=mode, language_model=lm_plain).fit(data).score_candidates(
        history, np.array([[item(data, "heat"), item(data, "babe")]])
    )
    assert "1995" not in "".join(p + t for p, t in plain)


def test_facts_are_rejected_where_no_candidate_is_shown():
    with pytest.raises(ConfigError, match="listwise and preference"):
        LLMRecommender(lm="fake", mode="grounded", facts="catalog")
    with pytest.raises(ConfigError, match="choose from"):
        LLMRecommender(lm="fake", mode="listwise", facts="plot")
    with pytest.raises(ConfigError, match="fact_tokens"):
        LLMRecommender(lm="fake", mode="listwise", facts="catalog", fact_tokens=0)


def test_a_model_with_facts_saves_and_loads_them(tmp_path):
    data = tiny()
    history = data.user_item_order[[0]]
    model = LLMRecommender(
        lm="fake", mode="listwise", facts="catalog,reviews", fact_encoder="hashing"
    ).fit(data)
    loaded = LLMRecommender.load(model.save(tmp_path / "m"))
    assert loaded.facts_.facts == model.facts_.facts
    candidates = np.array([[1, 2]])
    assert np.array_equal(
        loaded.score_candidates(history, candidates), model.score_candidates(history, candidates)
    )


def test_a_pipeline_reranking_with_facts_saves_and_loads_them(tmp_path):
    world = planted_clusters(n_users=12, n_items=12, n_clusters=2)
    overrides = {"llm.lm": "fake", "llm.mode": "listwise", "llm.facts": "catalog,ratings"}
    pipe = build_model("ease+llm", {**overrides, "fusion_weight": 0.5})
    pipe.fit(world.split.train, options=RunOptions(seed=0))
    assert pipe.reranker.facts_.facts["ratings"][0] != []
    loaded = load_model(pipe.save(tmp_path / "p"))
    assert loaded.reranker.facts_.facts == pipe.reranker.facts_.facts
    histories = world.split.train.user_item_order[:3]
    assert np.array_equal(loaded.score(histories), pipe.score(histories))


def test_a_prompt_wide_budget_is_shared_equally():
    data = tiny()
    facts = ItemFacts.from_dataset(data)
    texts = facts.describe(range(3), count_tokens=LM.count_tokens, budget=50, total=12)
    assert all(LM.count_tokens(t) <= 4 for t in texts) and sum(map(LM.count_tokens, texts)) <= 12
    assert texts == facts.describe(range(3), count_tokens=LM.count_tokens, budget=4)
    with pytest.raises(ConfigError, match="total"):
        facts.describe([0], count_tokens=len, budget=5, total=-1)
    with pytest.raises(ConfigError, match="fact_prompt_tokens"):
        LLMRecommender(lm="fake", mode="listwise", facts="catalog", fact_prompt_tokens=-1)
