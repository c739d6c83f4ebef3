"""A probe on a language model's candidate states: it learns a direction that marks the held-out
items, and orders as the retriever does when the states are noise."""

import numpy as np
import pytest

from genrec.data.synthetic import movie_clusters
from genrec.errors import ConfigError, DataError
from genrec.models import LLMRecommender
from genrec.options import RunOptions
from genrec.pipelines.state_probe import fit_state_probe
from genrec.text import prompts
from genrec.text.lm import FAKE_STATE_DIM, FakeLanguageModel

C, D = 10, 12


def world(n_users: int, signal: float, seed: int):
    """(states, base, targets): one held-out item per shortlist; the retriever's score finds it
    a little, state dimension 0 finds it with strength ``signal``."""
    rng = np.random.default_rng(seed)
    targets = [np.eye(C, dtype=bool)[rng.integers(C)] for _ in range(n_users)]
    base = [(t * 0.5 + rng.normal(size=C))[:, None] for t in targets]
    states = rng.normal(size=(n_users, C, D)) + rng.normal(size=(n_users, 1, D)) * 5
    states[:, :, 0] += np.stack(targets) * signal
    return states, base, targets


def hit_rate(scores, targets) -> float:
    return float(np.mean([t[np.argmax(s)] for s, t in zip(scores, targets)]))


def test_probe_learns_a_direction_that_marks_the_targets():
    probe = fit_state_probe(*world(200, 2.0, 0), names=("retriever",), dims=4)
    assert probe.fusion.kept and probe.fusion.cv_gain > 0
    states, base, targets = world(200, 2.0, 1)  # new users
    retriever = [b[:, 0] for b in base]
    assert hit_rate(probe.scores(states, base), targets) > hit_rate(retriever, targets) + 0.2
    head = probe.state_scores(states, base)
    assert head.shape == (200, C)
    assert hit_rate(head, targets) > 0.5


def test_probe_on_noise_orders_exactly_as_the_retriever():
    probe = fit_state_probe(*world(200, 0.0, 0), names=("retriever",), dims=4)
    assert not probe.fusion.kept
    states, base, _ = world(50, 0.0, 1)
    for fused, b in zip(probe.scores(states, base), base):
        order = np.argsort(-b[:, 0], kind="stable")
        assert np.array_equal(np.argsort(-fused, kind="stable"), order)


def test_probe_checks_its_inputs():
    states, base, targets = world(20, 1.0, 0)
    with pytest.raises(ConfigError, match="dims"):
        fit_state_probe(states, base, targets, names=("retriever",), dims=D + 1)
    with pytest.raises(DataError, match="base"):
        fit_state_probe(states, base[:-1], targets, names=("retriever",))
    with pytest.raises(DataError, match="finite"):
        fit_state_probe(states * np.nan, base, targets, names=("retriever",))
    probe = fit_state_probe(states, base, targets, names=("retriever",), dims=2)
    with pytest.raises(DataError, match="width"):
        probe.scores(states[:, :, :5], base)


def test_candidate_states_read_each_listed_entry():
    data = movie_clusters(n_users=20, n_items=24).data
    lm = FakeLanguageModel()
    llm = LLMRecommender(lm="fake", language_model=lm, mode="listwise").fit(
        data, options=RunOptions(seed=0, threads=1)
    )
    candidates = np.array([[3, 1, 7], [5, 2, 0]])
    states = llm.candidate_states(data.user_item_order[:2], candidates)
    assert states.shape == (2, 3, FAKE_STATE_DIM)
    prompt = llm.listwise_prompt(data.user_item_order[0], candidates[0])
    spans = prompts.listed_spans(prompt, 3)
    assert [prompt[a:b] for a, b in spans] == [
        prompts.quote(prompts.natural_title(llm.prompt_titles_[i])) for i in candidates[0]
    ]
    np.testing.assert_array_equal(states[0], lm.span_states(prompt, spans))


def test_candidate_states_need_a_model_that_returns_them():
    data = movie_clusters(n_users=20, n_items=24).data

    class AnswersOnly(FakeLanguageModel):
        span_states = None

    llm = LLMRecommender(lm="fake", language_model=AnswersOnly(), mode="listwise").fit(
        data, options=RunOptions(seed=0, threads=1)
    )
    with pytest.raises(ConfigError, match="hidden states"):
        llm.candidate_states(data.user_item_order[:1], np.array([[0, 1]]))
