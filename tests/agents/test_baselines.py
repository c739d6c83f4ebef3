"""Language-model baselines: plain LLM chat (free titles mapped to the catalog) and Chat-Rec
(retrieve 20, the LM picks by letter), with their out-of-catalog accounting."""

import pytest

from genrec.agents.baselines import RETRIEVED, ChatRec, LLMChat, pick
from genrec.agents.simulation import Episode, run_episode
from genrec.build import conversational_agent, parse_agent_specs
from genrec.errors import ConfigError
from genrec.text.lm import FakeLanguageModel


def one_turn(agent, world, target=5):
    episode = Episode(0, (1, 2), target)
    return run_episode(
        agent,
        episode,
        catalog=world.data.catalog,
        n_items=world.data.n_items,
        turns=1,
        episode_id="e",
    )


def test_llm_chat_maps_titles_and_counts_the_unknown_ones(world):
    catalog = world.data.catalog
    answer = (
        f"1. {catalog.title(9)}\n2. The Grand Budapest Hotel\n- {catalog.title(9).upper()}\n"
        f'"{catalog.title(14)}"\n'
    )
    lm = FakeLanguageModel(generate_fn=lambda prompt: answer)
    metrics, transcript = one_turn(LLMChat("llm-chat:fake", lm, world.split.train), world)
    turn = transcript["turns"][0]
    assert turn["items"] == [9, 14] and turn["unmatched"] == 1
    assert metrics["out_of_catalog_rate"] == pytest.approx(1 / 3)
    assert metrics["lm_calls"] == 1 and metrics["lm_tokens"] > 0
    prompt = lm.calls[0][1]
    assert catalog.title(1) in prompt and "I am looking for" in prompt


def test_chatrec_picks_among_the_retrieved_and_drops_invalid_letters(world, ranker):
    lm = FakeLanguageModel(generate_fn=lambda prompt: "C, A, Z, C\nbecause B is bad")
    agent = conversational_agent("chatrec:ease", world.split.train, lm=lm, model=ranker)
    assert isinstance(agent, ChatRec)
    metrics, transcript = one_turn(agent, world)
    candidates = agent.retriever.store.get("e").turns[-1].items
    assert 3 <= len(candidates) <= RETRIEVED
    assert agent.retriever.k == RETRIEVED
    listed = [x for x in lm.calls[0][1].splitlines() if x[1:3] == ". " and x[0].isupper()]
    assert [x.split(". ", 1)[1] for x in listed] == [
        f'"{world.data.catalog.title(i)}"' for i in candidates
    ]
    assert transcript["turns"][0]["items"] == [candidates[2], candidates[0]]
    assert transcript["turns"][0]["unmatched"] == 1  # Z; the repeated C is dropped silently
    assert metrics["out_of_catalog_rate"] == pytest.approx(1 / 3)


def test_pick_reads_letters_and_numbers_of_the_first_line():
    assert pick("B, A, Z, B, 3", [10, 11, 12]) == ([11, 10, 12], 1)
    assert pick("\n2 and 1\nC", [10, 11, 12]) == ([11, 10], 0)
    assert pick("none", [10]) == ([], 0)


def test_specs_keep_the_lm_spec_and_chatrec_needs_an_lm(world):
    assert parse_agent_specs("EASE, llm-chat:transformers:/Models/X, chatrec:EASE") == [
        "ease",
        "llm-chat:transformers:/Models/X",
        "chatrec:ease",
    ]
    assert isinstance(conversational_agent("llm-chat:fake", world.split.train), LLMChat)
    with pytest.raises(ConfigError, match="chatrec:ease.*--lm"):
        conversational_agent("chatrec:ease", world.split.train)
    with pytest.raises(ConfigError, match="llm-chat:LMSPEC"):
        parse_agent_specs("llm-chat:")
