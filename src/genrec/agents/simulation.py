"""Agents against simulated users: episodes from held-out targets, metrics with intervals.

An episode is one test user of a split: their history (train + valid), one held-out test item
as the target, and a :class:`~genrec.agents.simulator.RuleSimulator` who wants it. Each turn the
agent shows a list; the episode succeeds at the first turn whose top-``k`` (10) holds the
target's id (a structured judge, not text matching) and stops; the budget is ``turns`` turns.

Per-episode metrics (means with bootstrap intervals from :mod:`genrec.evaluation.stats`):

* ``success``: the target shown within the budget; ``turns``: the turn it was shown, failures
  counted as budget + 1; ``first_turn_success``;
* ``recall@{1,10,25,50}``: the target in the top-k of the last ranked list (iEvaLM);
* ``out_of_catalog_rate``, ``repeat_rate`` (shown in an earlier turn of the episode),
  ``seen_rate`` (in the user's history): shares of the items shown;
* ``plan_validity`` (turns whose first plan was valid), ``tool_failure_rate`` (tool calls that
  failed), ``lm_calls``, ``lm_tokens`` and ``seconds`` per episode.

Agents follow :class:`ConversationalAgent`: :class:`RankerOnly` (a model's top-k from the history,
the same every turn: no dialogue), :class:`AttributeOracle` (knows the target's attributes from
the start: attribute filtering with perfect knowledge) and :class:`ChatAgent` (the
:class:`~genrec.agents.Agent`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from genrec.agents.agent import Agent
from genrec.agents.simulator import RuleSimulator, TargetProfile
from genrec.data.dataset import as_history_matrix
from genrec.errors import ConfigError
from genrec.evaluation.stats import bootstrap_ci, compare_with_best

SHOWN = 10
RECALL_KS = (1, 10, 25, 50)
SIMULATORS = ("rule",)


@dataclass(frozen=True)
class Episode:
    """A simulated conversation's setup: user index, history (item indices), target item."""

    user: int
    history: tuple[int, ...]
    target: int


@dataclass
class TurnResult:
    items: list[int]  # shown, best first
    ranking: list[int]  # the ranked list behind them (for recall@k)
    text: str = ""
    question: str | None = None
    plan: dict = field(default_factory=dict)
    tool_calls: int = 0
    tool_failures: int = 0
    trace: list = field(default_factory=list)


class ConversationalAgent(Protocol):
    name: str

    def begin(self, episode_id: str, episode: Episode) -> None: ...

    def turn(self, episode_id: str, text: str) -> TurnResult: ...


class RankerOnly:
    """A model without dialogue: its top items for the history, the same list every turn."""

    def __init__(self, name: str, model, n_items: int):
        self.name, self.model, self.n_items = name, model, n_items
        self._lists: dict[str, list[int]] = {}

    def begin(self, episode_id: str, episode: Episode) -> None:
        history = as_history_matrix([list(episode.history)], self.n_items)
        top, _ = self.model.recommend(history, k=min(max(RECALL_KS), self.n_items))
        self._lists[episode_id] = [int(i) for i in top[0] if i >= 0]

    def turn(self, episode_id: str, text: str) -> TurnResult:
        ranking = self._lists[episode_id]
        return TurnResult(ranking[:SHOWN], ranking)


class AttributeOracle:
    """Attribute filtering with perfect knowledge: knows the target's genres and decade from
    the start, ranks the items having all of them with ``model`` and shows ten new ones a turn
    (a reference point, not a strict upper bound: an agent that relaxes constraints or follows
    critiques can beat it)."""

    def __init__(self, name: str, model, data):
        from genrec.agents.item_table import ItemTable

        self.name, self.model, self.n_items = name, model, data.n_items
        self.table, self.catalog = ItemTable(data.catalog), data.catalog
        self._lists: dict[str, list[int]] = {}
        self._turns: dict[str, int] = {}

    def matching(self, episode: Episode) -> np.ndarray:
        """Unseen items with every genre of the target and its decade."""
        from genrec.agents.session import Condition

        target = TargetProfile.of(self.catalog, episode.target)
        conditions = [Condition("genre", "has", g) for g in target.genres]
        if target.decade is not None:
            conditions.append(Condition("year", "between", [target.decade, target.decade + 9]))
        return np.setdiff1d(self.table.filter(conditions), list(episode.history))

    def begin(self, episode_id: str, episode: Episode) -> None:
        allowed = self.matching(episode)
        history = as_history_matrix([list(episode.history)], self.n_items)
        scores = np.asarray(self.model.score(history))[0][allowed]
        self._lists[episode_id] = allowed[np.lexsort((allowed, -scores))].tolist()
        self._turns[episode_id] = 0

    def turn(self, episode_id: str, text: str) -> TurnResult:
        ranking = self._lists[episode_id][self._turns[episode_id] * SHOWN :]
        self._turns[episode_id] += 1
        return TurnResult(ranking[:SHOWN], ranking[: max(RECALL_KS)])


class ChatAgent:
    """The conversational :class:`~genrec.agents.Agent` behind the episode interface."""

    def __init__(self, name: str, agent: Agent):
        self.name, self.agent = name, agent

    def begin(self, episode_id: str, episode: Episode) -> None:
        self.agent.start(episode_id, history=episode.history)

    def turn(self, episode_id: str, text: str) -> TurnResult:
        reply = self.agent.respond(episode_id, text)
        failures = sum("error" in step for step in reply.trace)
        return TurnResult(
            reply.items,
            reply.ranking,
            reply.text,
            reply.question,
            reply.plan,
            len(reply.trace),
            failures,
            reply.trace,
        )


def episodes_from_split(split, *, n_users: int | None, seed: int = 0) -> list[Episode]:
    """One episode per sampled test user (``n_users`` of them, all when None): the history is
    what the protocol lets a model see for the test part, the target the user's first test item
    (in time order)."""
    test = split.test
    order = np.lexsort((test.timestamp, test.user_idx))
    users, first = np.unique(test.user_idx[order], return_index=True)
    targets = test.item_idx[order][first]
    if n_users is not None:
        if n_users < 1:
            raise ConfigError(f"--users must be a positive number, got {n_users}")
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(users), size=min(n_users, len(users)), replace=False))
        users, targets = users[keep], targets[keep]
    seen = split.history("test").user_items
    return [
        Episode(int(u), tuple(seen[int(u)].indices.tolist()), int(t))
        for u, t in zip(users, targets)
    ]


def run_episode(
    agent: ConversationalAgent,
    episode: Episode,
    *,
    catalog,
    n_items: int,
    turns: int,
    episode_id: str,
) -> tuple[dict, dict]:
    """``(metrics, transcript)`` of one episode."""

    def describe(item: int):
        return catalog.genres(item), catalog.year(item)

    simulator = RuleSimulator(TargetProfile.of(catalog, episode.target), describe)
    start = time.perf_counter()
    agent.begin(episode_id, episode)
    text, hit_turn = simulator.opening(), None
    log, results = [], []
    for turn in range(1, turns + 1):
        turn_start = time.perf_counter()
        result = agent.turn(episode_id, text)
        results.append(result)
        log.append(
            {
                "user": text,
                "revealed": [list(a) for a in simulator.revealed_per_turn[-1]],
                "agent": result.text,
                "items": result.items,
                "question": result.question,
                "tools": [step.get("tool") for step in result.trace],
                "plan": result.plan,
                "seconds": time.perf_counter() - turn_start,
            }
        )
        if episode.target in result.items[:SHOWN]:
            hit_turn = turn
            break
        text = simulator.reply(result.items, question=result.question)
    metrics = episode_metrics(results, episode, hit_turn=hit_turn, turns=turns, n_items=n_items)
    metrics["seconds"] = time.perf_counter() - start
    transcript = {
        "agent": agent.name,
        "episode": episode_id,
        "user": episode.user,
        "target": episode.target,
        "success_turn": hit_turn,
        "turns": log,
    }
    return metrics, transcript


def episode_metrics(
    results: Sequence[TurnResult],
    episode: Episode,
    *,
    hit_turn: int | None,
    turns: int,
    n_items: int,
) -> dict:
    """The per-episode metrics of the module doc from its turns."""
    shown = [i for r in results for i in r.items]
    earlier: set[int] = set()
    repeats = 0
    for r in results:
        repeats += sum(i in earlier for i in r.items)
        earlier |= set(r.items)
    history = set(episode.history)
    last = results[-1].ranking if results else []
    share = (lambda n: n / len(shown)) if shown else (lambda n: 0.0)
    calls = sum(r.tool_calls for r in results)
    return {
        "success": float(hit_turn is not None),
        "turns": float(hit_turn if hit_turn is not None else turns + 1),
        "first_turn_success": float(hit_turn == 1),
        **{f"recall@{k}": float(episode.target in last[:k]) for k in RECALL_KS},
        "out_of_catalog_rate": share(sum(not 0 <= i < n_items for i in shown)),
        "repeat_rate": share(repeats),
        "seen_rate": share(sum(i in history for i in shown)),
        "plan_validity": float(np.mean([r.plan.get("valid", True) for r in results])),
        "tool_failure_rate": sum(r.tool_failures for r in results) / calls if calls else 0.0,
        "lm_calls": float(sum(r.plan.get("lm_calls", 0) for r in results)),
        "lm_tokens": float(sum(r.plan.get("tokens", 0) for r in results)),
    }


def simulate(
    split,
    agents: Mapping[str, ConversationalAgent],
    *,
    simulator: str = "rule",
    users: int | None = 200,
    turns: int = 5,
    seed: int = 0,
    on_episode: Callable[[str, int, int], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Run every agent on the same episodes; ``(results, transcripts)``.

    ``results`` has the shape of results.json: ``protocol``, ``results[]`` with ``model`` (the
    agent spec), ``metrics`` (``mean``, ``ci_low``, ``ci_high``) and ``significance`` (paired
    tests against the best agent on each higher-is-better metric), and ``versions``.
    """
    if simulator not in SIMULATORS:
        raise ConfigError(
            f"unknown simulator {simulator!r}; available: {', '.join(SIMULATORS)} "
            "(an LM-driven simulator is not built yet)"
        )
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
        raise ConfigError(f"--turns must be a positive integer, got {turns!r}")
    catalog = split.train.catalog
    if catalog is None:
        raise ConfigError("simulated users need an item catalog (genres, years) to talk about")
    episodes = episodes_from_split(split, n_users=users, seed=seed)
    per_agent, transcripts = {}, []
    for name, agent in agents.items():
        rows = []
        for n, episode in enumerate(episodes):
            metrics, transcript = run_episode(
                agent,
                episode,
                catalog=catalog,
                n_items=split.train.n_items,
                turns=turns,
                episode_id=f"episode-{n}",
            )
            rows.append(metrics)
            transcripts.append({**transcript, "agent": name})
            if on_episode:
                on_episode(name, n + 1, len(episodes))
        per_agent[name] = {m: np.array([r[m] for r in rows]) for m in rows[0]}
    protocol = {
        "dataset": split.train.name.split("/")[0],
        "split": split.info.get("method"),
        "simulator": simulator,
        "episodes": len(episodes),
        "turns": turns,
        "shown": SHOWN,
        "seed": seed,
        "judge": "target id in the top-10 shown list",
    }
    return results_dict(per_agent, protocol=protocol, seed=seed), transcripts


HIGHER_IS_BETTER = (
    "success",
    "first_turn_success",
    "recall@1",
    "recall@10",
    "recall@25",
    "recall@50",
    "plan_validity",
)


def results_dict(
    per_agent: Mapping[str, Mapping[str, np.ndarray]], *, protocol: dict, seed: int = 0
) -> dict:
    """results.json from per-episode metric arrays of each agent (aligned by episode)."""
    from genrec.evaluation.runner import library_versions

    comparisons = {}
    if len(per_agent) > 1:
        for metric in HIGHER_IS_BETTER:
            comparisons[metric] = compare_with_best({a: v[metric] for a, v in per_agent.items()})
    results = []
    for name, values in per_agent.items():
        metrics = {}
        for metric, v in values.items():
            low, high = bootstrap_ci(v, seed=seed)
            metrics[metric] = {"mean": float(v.mean()), "ci_low": low, "ci_high": high}
        results.append(
            {
                "model": name,
                "metrics": metrics,
                "evaluated_users": len(v),
                "significance": {m: c[name] for m, c in comparisons.items()},
            }
        )
    return {"protocol": protocol, "results": results, "versions": library_versions()}


def write_transcripts(path: str | Path, transcripts: Sequence[dict]) -> None:
    """One JSON line per episode (agent, user, target, each turn's utterances and items)."""
    from genrec.io import atomic_write

    atomic_write(Path(path), "".join(json.dumps(t) + "\n" for t in transcripts))
