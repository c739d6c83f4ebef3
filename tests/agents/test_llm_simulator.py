"""The LLM simulator: a language model words the seeker's turns, never sees the title, and a
leak guard regenerates (then falls back to the rule simulator) while an utterance names it."""

import pytest

from genrec.agents import Agent
from genrec.agents.simulation import ChatAgent, Episode, simulate
from genrec.agents.simulator import LeakGuard, LLMSimulator, TargetProfile
from genrec.text.lm import FakeLanguageModel


def leaking_lm(world, *, always: bool = False) -> FakeLanguageModel:
    """Names some target title on the first try of every prompt (on every try if ``always``),
    then describes the movie without it."""
    titles = [world.data.catalog.title(i) for i in range(world.data.n_items)]
    tried: set[str] = set()

    def answer(prompt: str) -> str:
        first = prompt not in tried
        tried.add(prompt)
        if first or always:
            # the fake LM cannot know the target: it names every title, as a leaking model would
            return "I want " + ", ".join(titles)
        return "Something gripping, please."

    return FakeLanguageModel(generate_fn=answer)


@pytest.fixture(scope="module")
def agents(world, ranker):
    return {"chat:ease": ChatAgent("chat:ease", Agent(world.split.train, ranker))}


def test_a_first_try_leak_is_regenerated_and_never_said(world, agents):
    lm = leaking_lm(world)
    results, transcripts = simulate(
        world.split, agents, simulator="llm", simulator_lm=lm, users=6, turns=3, seed=0
    )
    leak = results["results"][0]["leak"]
    said = [t["user"] for e in transcripts for t in e["turns"]]
    assert said and all(text == "Something gripping, please." for text in said)
    assert leak["utterances"] == len(said) and leak["regenerated"] == len(said)
    assert leak["fallbacks"] == 0 and leak["leaked_episodes"] == 0
    assert results["results"][0]["metrics"]["leaked"]["mean"] == 0
    assert results["results"][0]["episodes_without_leaked"] == 6
    for episode in transcripts:
        assert episode["simulator"] == "llm" and episode["regenerated"] == len(episode["turns"])
        assert len(episode["rejected"]) == len(episode["turns"])
        assert all(text.startswith("I want ") for text in episode["rejected"])
    # the prompts never held a target's title
    prompts = [p for method, p, _ in lm.calls if method == "generate"]
    targets = {world.data.catalog.title(e["target"]) for e in transcripts}
    assert not any(title in prompt for title in targets for prompt in prompts)


def test_a_model_that_always_leaks_is_replaced_by_the_rule_simulator(world, agents):
    results, transcripts = simulate(
        world.split,
        agents,
        simulator="llm",
        simulator_lm=leaking_lm(world, always=True),
        users=4,
        turns=2,
        seed=0,
    )
    leak = results["results"][0]["leak"]
    assert leak["fallbacks"] == leak["utterances"] > 0
    assert leak["regenerated"] == 3 * leak["utterances"]  # the first try and two retries
    assert transcripts[0]["turns"][0]["user"].startswith("I am looking for a")


def test_the_prompt_holds_the_profile_and_what_to_reveal():
    lm = FakeLanguageModel(generate_fn=lambda prompt: "A spooky one from long ago.")
    sim = LLMSimulator(
        TargetProfile(("Horror",), 1972, ("haunted", "hotel")), lm, LeakGuard("The Shining")
    )
    assert sim.opening() == "A spooky one from long ago."
    prompt = sim.prompts[0]
    assert "genres: Horror; from the 1970s; it involves: haunted, hotel" in prompt
    assert "says this: I am looking for a horror movie from the 1970s." in prompt
    assert "Shining" not in prompt and sim.lm_calls == 1


def test_leaks_in_recorded_utterances_are_counted_and_metrics_given_without_them(world, agents):
    catalog = world.data.catalog
    target, other = 5, 6
    episodes = [
        Episode(0, (1,), target, opening=(f"Do you have {catalog.title(target)}?",)),
        Episode(1, (1,), other, opening=("Something good.",)),
    ]
    results, transcripts = simulate(world.split, agents, episodes=episodes, turns=2)
    row = results["results"][0]
    assert row["leak"]["leaked_episodes"] == 1 and row["metrics"]["leaked"]["mean"] == 0.5
    assert row["episodes_without_leaked"] == 1
    clean_success = float(transcripts[1]["success_turn"] is not None)
    assert row["without_leaked"]["success"]["mean"] == clean_success
    assert [t["leak"] for t in transcripts[0]["turns"]][0] is True
