"""Agents against simulated users: episodes from held-out targets, metrics with intervals.

An episode is one test user of a split: their history (train + valid), one held-out test item
as the target, and a seeker who wants it: the :class:`~genrec.agents.simulator.RuleSimulator`
or the :class:`~genrec.agents.simulator.LLMSimulator` (``simulator="llm"``). Each turn the
agent shows a list; the episode succeeds at the first turn whose top-``k`` (10) holds the
target's id (a structured judge, not text matching) and stops; the budget is ``turns`` turns.
Episodes can also start from recorded dialogues (:func:`episodes_from_dialogues`, ReDial: the
seeker's recorded turns first, several targets) or re-run a transcript file (:func:`replay`:
the recorded utterances against other agents, the same user side for each).

Every utterance is checked against each target's title with a
:class:`~genrec.agents.simulator.LeakGuard`: ``leaked`` (per episode) is 1 when one slipped
through, results repeat every metric over the episodes without a leak (``without_leaked``) and
give the leak counts (``leak``: regenerations by the LLM simulator's guard, fallbacks to the
rule simulator, leaked episodes).

Per-episode metrics (means with bootstrap intervals from :mod:`genrec.evaluation.stats`):

* ``success``: the target shown within the budget; ``turns``: the turn it was shown, failures
  counted as budget + 1; ``first_turn_success``;
* ``recall@{1,10,25,50}``: the target in the top-k of the last ranked list (iEvaLM);
* ``out_of_catalog_rate``, ``repeat_rate`` (shown in an earlier turn of the episode),
  ``seen_rate`` (in the user's history): shares of the items shown;
* ``plan_validity`` (turns whose first plan was valid; a turn the rules planned, with no LM or
  on the fast path, counts as valid), ``tool_failure_rate`` (tool calls that
  failed), ``lm_calls``, ``lm_tokens`` and ``seconds`` per episode (the agent's; the simulator's
  own LM calls are in the transcript), ``leaked``.

``out_of_catalog_rate`` counts, besides shown indices outside the catalog, the items an agent
named that map to no catalog item (``TurnResult.unmatched``: free-text titles, invalid picks).

Agents follow :class:`ConversationalAgent`: :class:`RankerOnly` (a model's top-k from the history,
the same every turn: no dialogue), :class:`AttributeOracle` (knows the target's attributes from
the start: attribute filtering with perfect knowledge), :class:`ChatAgent` (the
:class:`~genrec.agents.Agent`) and the LM baselines of :mod:`genrec.agents.baselines`.
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
from genrec.agents.simulator import (
    LEAK_RATIO,
    LeakGuard,
    LLMSimulator,
    RuleSimulator,
    TargetProfile,
)
from genrec.data.dataset import as_history_matrix
from genrec.errors import ConfigError
from genrec.evaluation.stats import bootstrap_ci, compare_with_best

SHOWN = 10
RECALL_KS = (1, 10, 25, 50)
SIMULATORS = ("rule", "llm")


@dataclass(frozen=True)
class Episode:
    """A simulated conversation's setup: user index, history (item indices), target item.

    ``also`` are further targets (any of them shown is a success: a ReDial seeker may like
    several); ``opening`` are recorded utterances the seeker says before the simulator speaks.
    """

    user: int
    history: tuple[int, ...]
    target: int
    also: tuple[int, ...] = ()
    opening: tuple[str, ...] = ()

    @property
    def targets(self) -> tuple[int, ...]:
        return (self.target, *self.also)


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
    unmatched: int = 0  # items the agent named that are no catalog item (free-text titles)


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


DIALOGUE_SOURCES = ("redial",)


def episodes_from_dialogues(spec: str, catalog) -> tuple[list[Episode], dict]:
    """Episodes from recorded dialogues, ``"redial:PATH"`` (a raw ReDial jsonl file; see
    :mod:`genrec.data.redial`): ``(episodes, info)``. Each episode's seeker first says the
    recorded seeker turns, its targets are the liked suggested movies and its history the
    seeker's liked movies, all mapped onto ``catalog``; ``info`` has the counts and the mapped
    share of mentions.

    Raises:
        ConfigError: an unknown source, or no conversation that maps onto the catalog.
    """
    from genrec.data.redial import dialogue_contexts, map_mentions, read_redial

    source, _, path = spec.partition(":")
    if source not in DIALOGUE_SOURCES or not path:
        raise ConfigError(
            f"--dialogues {spec!r}: write redial:PATH (a ReDial jsonl file); sources: "
            f"{', '.join(DIALOGUE_SOURCES)}"
        )
    conversations = read_redial(path)
    mapping = map_mentions(conversations, catalog)
    contexts = dialogue_contexts(conversations, mapping)
    if not contexts:
        raise ConfigError(
            f"no conversation of {path} has a liked suggested movie found in the catalog "
            f"({mapping.mapped_share:.0%} of {mapping.mentions} mentions mapped); is the "
            "dataset a movie catalog such as ml-100k?"
        )
    episodes = [
        Episode(n, c.history, c.targets[0], c.targets[1:], c.seeker_turns)
        for n, c in enumerate(contexts)
    ]
    info = {
        "source": source,
        "conversations": len(conversations),
        "contexts": len(contexts),
        "mentions": mapping.mentions,
        "mapped_mentions": len(mapping.items),
        "mapped_share": mapping.mapped_share,
    }
    return episodes, info


def make_simulator(kind: str, catalog, target: int, *, lm=None, seed: int = 0, retries: int = 2):
    """A ``kind`` ("rule" or "llm") seeker who wants catalog item ``target``; the LLM one needs
    ``lm`` and gets a :class:`~genrec.agents.simulator.LeakGuard` for the target's title."""

    def describe(item: int):
        return catalog.genres(item), catalog.year(item)

    profile = TargetProfile.of(catalog, target)
    if kind == "rule":
        return RuleSimulator(profile, describe)
    if lm is None:
        raise ConfigError("the llm simulator needs a language model; pass --simulator-lm SPEC")
    guard = LeakGuard(catalog.title(target))
    return LLMSimulator(profile, lm, guard, describe, retries=retries, seed=seed)


def run_episode(
    agent: ConversationalAgent,
    episode: Episode,
    *,
    catalog,
    n_items: int,
    turns: int,
    episode_id: str,
    simulator=None,
) -> tuple[dict, dict]:
    """``(metrics, transcript)`` of one episode.

    The seeker says ``episode.opening`` (recorded utterances) first, then ``simulator`` speaks
    (a rule simulator for the episode's target when None; pass ``False`` for none: the episode
    ends when the recorded utterances do). Every utterance is checked with a
    :class:`~genrec.agents.simulator.LeakGuard` per target: the metric ``leaked`` is 1 when one
    gave a target's title away.
    """
    if simulator is None:
        simulator = make_simulator("rule", catalog, episode.target)
    guards = [LeakGuard(catalog.title(t)) for t in episode.targets]
    script = list(episode.opening)
    start = time.perf_counter()
    agent.begin(episode_id, episode)
    hit_turn, log, results, leaks = None, [], [], 0
    result: TurnResult | None = None
    for turn in range(1, turns + 1):
        text, revealed = _next_utterance(script, simulator, result)
        if text is None:
            break
        leaked = any(g.leaks(text) for g in guards)
        leaks += leaked
        turn_start, turn_cpu = time.perf_counter(), time.process_time()
        result = agent.turn(episode_id, text)
        results.append(result)
        log.append(
            {
                "user": text,
                "revealed": revealed,
                "leak": leaked,
                "agent": result.text,
                "items": result.items,
                "unmatched": result.unmatched,
                "question": result.question,
                "tools": [step.get("tool") for step in result.trace],
                "plan": result.plan,
                "seconds": time.perf_counter() - turn_start,
                "cpu_seconds": time.process_time() - turn_cpu,  # this process, every thread
            }
        )
        if any(t in result.items[:SHOWN] for t in episode.targets):
            hit_turn = turn
            break
    metrics = episode_metrics(results, episode, hit_turn=hit_turn, turns=turns, n_items=n_items)
    metrics["leaked"] = float(leaks > 0)
    metrics["seconds"] = time.perf_counter() - start
    transcript = {
        "agent": agent.name,
        "episode": episode_id,
        "user": episode.user,
        "history": list(episode.history),
        "target": episode.target,
        "targets": list(episode.targets),
        "budget": turns,
        "simulator": getattr(simulator, "name", "recorded"),
        "success_turn": hit_turn,
        "leaked_utterances": leaks,
        "regenerated": getattr(simulator, "regenerated", 0),
        "fallbacks": getattr(simulator, "fallbacks", 0),
        "rejected": list(getattr(simulator, "rejected", [])),
        "simulator_lm_calls": getattr(simulator, "lm_calls", 0),
        "turns": log,
    }
    return metrics, transcript


def _next_utterance(script: list[str], simulator, result: TurnResult | None):
    """``(text, revealed attributes)``: the next recorded utterance, else the simulator's
    (its opening before any reply), else ``(None, [])``."""
    if script:
        return script.pop(0), []
    if not simulator:
        return None, []
    if result is None:
        text = simulator.opening()
    else:
        text = simulator.reply(result.items, question=result.question, agent_text=result.text)
    return text, [list(a) for a in simulator.revealed_per_turn[-1]]


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
    named = len(shown) + sum(r.unmatched for r in results)
    outside = sum(not 0 <= i < n_items for i in shown) + sum(r.unmatched for r in results)
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
        **{f"recall@{k}": float(bool(set(episode.targets) & set(last[:k]))) for k in RECALL_KS},
        "out_of_catalog_rate": outside / named if named else 0.0,
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
    simulator_lm=None,
    retries: int = 2,
    episodes: Sequence[Episode] | None = None,
    on_episode: Callable[[str, int, int], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Run every agent on the same episodes; ``(results, transcripts)``.

    ``results`` has the shape of results.json: ``protocol``, ``results[]`` with ``model`` (the
    agent spec), ``metrics`` (``mean``, ``ci_low``, ``ci_high``), ``without_leaked`` (the same
    over the episodes where no utterance leaked a target's title), ``leak`` (counts, see
    :func:`leak_summary`) and ``significance`` (paired tests against the best agent on each
    higher-is-better metric, same episodes), and ``versions``.

    Args:
        simulator: "rule", or "llm" (words from ``simulator_lm``, a language model, under a
            leak guard with ``retries`` regenerations).
        episodes: the episodes to run (e.g. :func:`episodes_from_dialogues`); default: ``users``
            sampled test users of ``split`` (see :func:`episodes_from_split`).
    """
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}; available: {', '.join(SIMULATORS)}")
    if simulator == "llm" and simulator_lm is None:
        raise ConfigError("--simulator llm needs a language model: pass --simulator-lm SPEC")
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
        raise ConfigError(f"--turns must be a positive integer, got {turns!r}")
    catalog = split.train.catalog
    if catalog is None:
        raise ConfigError("simulated users need an item catalog (genres, years) to talk about")
    if episodes is None:
        episodes = episodes_from_split(split, n_users=users, seed=seed)
    per_agent, transcripts = {}, []
    for name, agent in agents.items():
        rows = []
        for n, episode in enumerate(episodes):
            seeker = make_simulator(
                simulator, catalog, episode.target, lm=simulator_lm, seed=seed, retries=retries
            )
            metrics, transcript = run_episode(
                agent,
                episode,
                catalog=catalog,
                n_items=split.train.n_items,
                turns=turns,
                episode_id=f"episode-{n}",
                simulator=seeker,
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
        "simulator_lm": getattr(simulator_lm, "name", None),
        "episodes": len(episodes),
        "turns": turns,
        "shown": SHOWN,
        "seed": seed,
        "judge": "target id in the top-10 shown list",
        "leak_ratio": LEAK_RATIO,
    }
    results = results_dict(per_agent, protocol=protocol, seed=seed)
    for r in results["results"]:
        r["leak"] = leak_summary([t for t in transcripts if t["agent"] == r["model"]])
    return results, transcripts


def leak_summary(transcripts: Sequence[dict]) -> dict:
    """Leak counts of one agent's episodes: ``utterances`` said, ``regenerated`` (generations
    the guard rejected), ``fallbacks`` (utterances the rule simulator said instead),
    ``leaked_utterances`` and ``leaked_episodes`` (said although they name a target: a leak
    that slipped through), with ``regeneration_rate`` (regenerated per utterance) and
    ``episode_leak_rate``."""
    said = sum(len(t["turns"]) for t in transcripts)
    regenerated = sum(t.get("regenerated", 0) for t in transcripts)
    leaked = sum(t.get("leaked_utterances", 0) > 0 for t in transcripts)
    return {
        "episodes": len(transcripts),
        "utterances": said,
        "regenerated": regenerated,
        "fallbacks": sum(t.get("fallbacks", 0) for t in transcripts),
        "leaked_utterances": sum(t.get("leaked_utterances", 0) for t in transcripts),
        "leaked_episodes": leaked,
        "regeneration_rate": regenerated / said if said else 0.0,
        "episode_leak_rate": leaked / len(transcripts) if transcripts else 0.0,
    }


def replay(
    transcripts: Sequence[dict],
    agents: Mapping[str, ConversationalAgent],
    *,
    catalog,
    n_items: int,
    turns: int | None = None,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """Re-run recorded seeker utterances against ``agents``: ``(results, transcripts)``.

    Each transcript line is one episode (its history, targets and user utterances); every agent
    hears exactly those utterances, in order, so the user side is deterministic and the agents
    are compared on the same episodes. The seeker cannot react to a new list: when an agent
    has not shown a target by the last recorded utterance, the episode fails (``turns`` =
    budget + 1). The budget is ``turns``, else each line's ``budget``.

    Raises:
        ConfigError: no lines, or a line without ``target``/``history``/``turns``.
    """
    if not transcripts:
        raise ConfigError("the replay file holds no episodes; write one with --transcripts")
    parsed = [_replayed_episode(line, n, n_items) for n, line in enumerate(transcripts)]
    episodes = [episode for episode, _ in parsed]
    budgets = [turns or budget for _, budget in parsed]
    per_agent, out = {}, []
    for name, agent in agents.items():
        rows = []
        for n, (episode, budget) in enumerate(zip(episodes, budgets)):
            metrics, transcript = run_episode(
                agent,
                episode,
                catalog=catalog,
                n_items=n_items,
                turns=budget,
                episode_id=str(transcripts[n].get("episode", f"episode-{n}")),
                simulator=False,
            )
            rows.append(metrics)
            out.append({**transcript, "agent": name, "simulator": "replay"})
        per_agent[name] = {m: np.array([r[m] for r in rows]) for m in rows[0]}
    protocol = {
        "simulator": "replay",
        "episodes": len(episodes),
        "turns": max(budgets),
        "shown": SHOWN,
        "seed": seed,
        "judge": "target id in the top-10 shown list",
        "replayed_from": sorted({str(t.get("agent")) for t in transcripts}),
    }
    results = results_dict(per_agent, protocol=protocol, seed=seed)
    for r in results["results"]:
        r["leak"] = leak_summary([t for t in out if t["agent"] == r["model"]])
    return results, out


def _replayed_episode(line, n: int, n_items: int) -> tuple[Episode, int]:
    """``(episode, budget)`` of transcript line ``n`` (0-based); ConfigError naming what is
    wrong. The budget is the line's ``budget``, else its number of turns."""
    where = f"replay line {n + 1}"
    fields = ("target", "history", "turns")
    missing = [k for k in fields if not isinstance(line, dict) or k not in line]
    if missing:
        raise ConfigError(
            f"{where} lacks {missing}; replay files are written by genrec simulate --transcripts"
        )
    try:
        targets = [int(t) for t in line.get("targets") or [line["target"]]]
        history = tuple(int(i) for i in line["history"])
        said = tuple(str(t["user"]) for t in line["turns"])
        budget = int(line.get("budget") or len(said))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where} is malformed ({type(exc).__name__}: {exc}); targets and history are item "
            "indices, each turn has a 'user' utterance, budget is a turn count"
        ) from None
    if any(not 0 <= i < n_items for i in (*targets, *history)):
        raise ConfigError(
            f"{where} names items outside 0..{n_items - 1}; replay against the dataset and "
            "split the transcripts were written with"
        )
    if budget < 1 or not said:
        raise ConfigError(f"{where} has no turns to replay (budget {budget}, {len(said)} turns)")
    user = line.get("user")
    episode = Episode(
        user if isinstance(user, int) else n, history, targets[0], tuple(targets[1:]), said
    )
    return episode, budget


def read_transcripts(path: str | Path) -> list[dict]:
    """The episodes of a JSONL transcript file (:func:`write_transcripts`)."""
    from genrec.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no transcript file {str(path)!r}; write one with --transcripts FILE")
    lines = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {n} is not JSON ({exc.msg})") from None
    return lines


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
        clean = values["leaked"] == 0 if "leaked" in values else None
        row = {
            "model": name,
            "metrics": _means(values, seed=seed),
            "evaluated_users": len(next(iter(values.values()))),
            "significance": {m: c[name] for m, c in comparisons.items()},
        }
        if clean is not None:
            row["episodes_without_leaked"] = int(clean.sum())
            row["without_leaked"] = (
                _means({m: v[clean] for m, v in values.items()}, seed=seed) if clean.any() else {}
            )
        results.append(row)
    return {"protocol": protocol, "results": results, "versions": library_versions()}


def _means(values: Mapping[str, np.ndarray], *, seed: int) -> dict:
    out = {}
    for metric, v in values.items():
        low, high = bootstrap_ci(v, seed=seed)
        out[metric] = {"mean": float(v.mean()), "ci_low": low, "ci_high": high}
    return out


def write_transcripts(path: str | Path, transcripts: Sequence[dict]) -> None:
    """One JSON line per episode (agent, user, target, each turn's utterances and items)."""
    from genrec.io import atomic_write

    atomic_write(Path(path), "".join(json.dumps(t) + "\n" for t in transcripts))
