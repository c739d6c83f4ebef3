"""Simulators and language-model baselines for conversational recommendation on MovieLens-100K.

Writes the ``conversational-simulators`` section of BENCHMARKS.md and
``benchmarks/results/conversational_simulators.json`` (+ ``.transcripts.jsonl``).

Episodes: ``--users`` test users (sampled with seed 0) of the leave-one-out split; budget
``--turns`` turns; success = the target's id in a top-10 shown list. Two parts, each saved as
soon as it is done (``--part``), on the same episodes:

* ``llm``: ``chat:ease`` (the agent, rule understanding, EASE ranking) against the LLM
  simulator (``--lm`` words each seeker turn from the target's attributes; a leak guard
  regenerates an utterance whose rapidfuzz partial_ratio with the title is >= 60, twice, then
  says the rule simulator's utterance), and against the rule simulator: the leak rate, metrics
  with and without leaked episodes, and the paired difference between the two simulators.
* ``baselines``: the rule simulator against ``ease`` (no dialogue), ``chat:ease``,
  ``llm-chat:LM`` (the LM answers free-text titles, mapped to the catalog by fuzzy matching;
  unmatched ones count as out of catalog) and ``chatrec:ease`` (EASE + the agent's rule
  filters retrieve 20, the LM picks by letter).

    python benchmarks/conversational_simulators.py [--users 40] [--turns 5]
        [--lm transformers:smollm2-135m] [--part llm|baselines|all] [--section-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.agents.simulation import (  # noqa: E402
    read_transcripts,
    replay,
    simulate,
    write_transcripts,
)
from genrec.build import conversational_agent  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.splits import make_split  # noqa: E402
from genrec.evaluation.stats import paired_tests  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import fmt_ci, fmt_test, load_average, machine_line, write_section  # noqa: E402

OPTIONS = RunOptions(seed=42, threads=1)
OUT = ROOT / "benchmarks" / "results" / "conversational_simulators.json"
COLUMNS = ("success", "turns", "first_turn_success", "recall@10", "out_of_catalog_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--lm", default="transformers:smollm2-135m")
    parser.add_argument("--part", choices=["llm", "baselines", "replay", "all"], default="all")
    parser.add_argument("--cache", default=str(sources.default_cache_dir()))
    parser.add_argument("--section-only", action="store_true")
    args = parser.parse_args()
    payload = json.loads(OUT.read_text()) if OUT.exists() else {}
    if not args.section_only:
        run(args, payload)
    write_section("conversational-simulators", section(payload))


def run(args, payload: dict) -> None:
    from genrec.text.backends import get_language_model

    OPTIONS.apply_threads()
    data = sources.load("ml-100k", cache_dir=args.cache, progress=False)
    split = make_split(data, "loo")
    lm = get_language_model(args.lm, threads=1, cache_dir=args.cache)
    common = dict(users=args.users, turns=args.turns, seed=0)
    payload.update(lm=args.lm, date=datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    payload["loads"] = []
    for part in ("llm", "baselines", "replay") if args.part == "all" else (args.part,):
        start = time.perf_counter()
        payload["loads"].append(load_average())
        agent = conversational_agent("chat:ease", split.train, options=OPTIONS)
        if part == "llm":
            llm, llm_t = simulate(
                split, {"chat:ease": agent}, simulator="llm", simulator_lm=lm, **common
            )
            rule, rule_t = simulate(split, {"chat:ease": agent}, **common)
            payload["llm"] = {
                "llm": llm,
                "rule": rule,
                "paired": paired(llm_t, rule_t),
                "generations": sum(t["simulator_lm_calls"] for t in llm_t),
            }
            transcripts = llm_t
        elif part == "replay":  # the llm part's seeker utterances, re-run (no LM involved)
            recorded = read_transcripts(
                OUT.parent / "conversational_simulators.llm.transcripts.jsonl"
            )
            agents = {
                "chat:ease": agent,
                "ease": conversational_agent("ease", split.train, options=OPTIONS),
            }
            payload["replay"], transcripts = replay(
                recorded, agents, catalog=split.train.catalog, n_items=split.train.n_items
            )
            transcripts = []  # nothing new to keep: the utterances are the llm part's
        else:
            agents = {
                "ease": conversational_agent("ease", split.train, options=OPTIONS),
                "chat:ease": agent,
                f"llm-chat:{args.lm}": conversational_agent(
                    f"llm-chat:{args.lm}", split.train, options=OPTIONS
                ),
                "chatrec:ease": conversational_agent(
                    "chatrec:ease", split.train, options=OPTIONS, lm=lm
                ),
            }
            payload["baselines"], transcripts = simulate(split, agents, **common)
        payload[f"{part}_seconds"] = time.perf_counter() - start
        payload["loads"].append(load_average())
        saved = json.loads(OUT.read_text()) if OUT.exists() else {}  # another part may have run
        saved.update(
            {k: v for k, v in payload.items() if k not in ("llm", "baselines", "replay", "loads")}
        )
        saved[part], saved["loads"] = payload[part], saved.get("loads", []) + payload["loads"][-2:]
        saved[f"{part}_args"] = {"users": args.users, "turns": args.turns}
        atomic_write(OUT, json.dumps(saved, indent=2) + "\n")
        if transcripts:
            write_transcripts(
                OUT.parent / f"conversational_simulators.{part}.transcripts.jsonl",
                [compact(t) for t in transcripts],
            )


def compact(transcript: dict) -> dict:
    """A transcript small enough to commit: the agent's reply text cut to 60 characters, turn
    seconds rounded to milliseconds and each plan reduced to its validity and LM calls
    (utterances, items, histories and tools kept whole: it still replays)."""
    turns = [
        {
            **turn,
            "agent": turn["agent"][:60],
            "seconds": round(turn["seconds"], 3),
            "plan": {k: turn["plan"][k] for k in ("valid", "lm_calls") if k in turn["plan"]},
        }
        for turn in transcript["turns"]
    ]
    return {**transcript, "turns": turns}


def paired(llm_transcripts, rule_transcripts) -> dict:
    """Paired tests of success under the LLM simulator minus the rule simulator (same episodes)."""
    a = np.array([t["success_turn"] is not None for t in llm_transcripts], float)
    b = np.array([t["success_turn"] is not None for t in rule_transcripts], float)
    return {"mean_diff": float((a - b).mean()), **paired_tests(a, b)}


def table(results, columns=COLUMNS, key="metrics") -> list[str]:
    rows = ["| agent | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in results["results"]:
        cells = [fmt_ci(r[key][c]) if c in r.get(key, {}) else "n/a" for c in columns]
        rows.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return rows


def replay_lines(payload: dict) -> list[str]:
    """What replaying the LLM simulator's transcripts gave (the ``replay`` part)."""
    if not payload.get("replay"):
        return []
    by = {r["model"]: r["metrics"] for r in payload["replay"]["results"]}
    llm = payload["llm"]["llm"]["results"][0]["metrics"]
    same = all(by["chat:ease"][m]["mean"] == llm[m]["mean"] for m in COLUMNS)
    return [
        "",
        "Replay (`genrec simulate --replay`): the saved transcripts of the LLM-simulator run, "
        "re-run without the LM, give `chat:ease` "
        + ("exactly the metrics above" if same else "different metrics (a bug)")
        + f" (success {fmt_ci(by['chat:ease']['success'])}); `ease` hearing the same "
        f"utterances: success {fmt_ci(by['ease']['success'])}, "
        + fmt_test(
            next(r for r in payload["replay"]["results"] if r["model"] == "ease")["significance"][
                "success"
            ]
        )
        + " against `chat:ease` (paired, Holm-adjusted).",
    ]


def section(payload: dict) -> str:
    lines = [
        "## Conversational recommendation: LLM simulator, leak guard and LM baselines",
        "",
        f"`benchmarks/conversational_simulators.py`, {payload.get('date', '')}. ML-100K, "
        "leave-one-out split; within a table every row has the same episodes (test users "
        "sampled with seed 0; the two tables sample different numbers of users); "
        "success = the target's id in a top-10 shown list, means with bootstrap 95% intervals. "
        f"Language model: `{payload.get('lm')}` (the smallest shipped instruction-tuned model, "
        "CPU, greedy decoding, 1 thread). These numbers measure the plumbing and the failure "
        "modes of a 135M model; they say nothing about what a capable LLM would do.",
    ]
    part = payload.get("llm")
    if part:
        llm, rule = part["llm"]["results"][0], part["rule"]["results"][0]
        leak = llm["leak"]
        p = part["llm"]["protocol"]
        lines += [
            "",
            f"### `chat:ease` under the LLM simulator and the rule simulator ({p['episodes']} "
            f"episodes, {p['turns']} turns)",
            "",
            "| simulator | " + " | ".join(COLUMNS[:4]) + " |",
            "|---" * 5 + "|",
            "| llm, all episodes | "
            + " | ".join(fmt_ci(llm["metrics"][c]) for c in COLUMNS[:4])
            + " |",
            f"| llm, without leaked episodes ({llm['episodes_without_leaked']}) | "
            + " | ".join(
                fmt_ci(llm["without_leaked"][c]) if llm.get("without_leaked") else "n/a"
                for c in COLUMNS[:4]
            )
            + " |",
            "| rule | " + " | ".join(fmt_ci(rule["metrics"][c]) for c in COLUMNS[:4]) + " |",
            "",
            f"Leak guard: {leak['regenerated']} of {part['generations']} generations were "
            "flagged (partial_ratio >= 60 with the target's title) and regenerated "
            f"(rate per utterance said {leak['regeneration_rate']:.2f}); {leak['fallbacks']} of "
            f"{leak['utterances']} utterances fell back to the rule simulator after three leaking "
            f"tries; {leak['leaked_episodes']} of {leak['episodes']} episodes had a leak that "
            "slipped through (the metric `leaked`). Success, LLM minus rule simulator, paired "
            f"over the same episodes: {part['paired']['mean_diff']:+.3f} (t-test "
            f"p={part['paired']['p_t']:.2g}, Wilcoxon p={part['paired']['p_wilcoxon']:.2g}).",
            *replay_lines(payload),
            "",
            "The guard matches a title of 8 characters or more by partial_ratio >= 60 and a "
            "shorter one only as whole words (a short title scored 60 against sentences that "
            'cannot hold it: "Not these. Something from the 1990s." against *Shine*): the rule '
            "simulator, which never sees a title, has "
            f"{rule['leak']['leaked_episodes']} of {rule['leak']['episodes']} episodes counted "
            "as leaked. Rejected generations are kept in the transcripts (`rejected`).",
            "",
            "How it works: the rule simulator decides the gist of each turn (at most two target "
            "attributes, then critiques); the LLM simulator is asked to say that gist in its own "
            "words, with the profile (genres, decade; description words when the catalog has "
            "them, ML-100K has none) and the last turns as context, and never sees the title. A "
            "leak can still happen because the model parrots titles from the agent's lists; the "
            "guard catches the target's. The agent reads utterances with rules, so what the "
            "small model drops or garbles from the gist is information the agent never gets: "
            "a gap to the rule simulator measures the simulator's noise, not the agent. "
            + (
                "Significant"
                if max(part["paired"]["p_t"], part["paired"]["p_wilcoxon"]) < 0.05
                else "Not significant"
            )
            + f" at {p['episodes']} episodes.",
        ]
    part = payload.get("baselines")
    if part:
        p = part["protocol"]
        by = {r["model"]: r for r in part["results"]}
        lines += [
            "",
            f"### Baselines, rule simulator ({p['episodes']} episodes, {p['turns']} turns)",
            "",
            *table(part, COLUMNS + ("seen_rate", "lm_calls")),
            "",
            "Paired against the best agent on success (Holm-adjusted): "
            + "; ".join(
                f"`{name}` "
                + (
                    "best"
                    if r["significance"]["success"].get("best")
                    else r["significance"]["success"]["verdict"]
                )
                for name, r in by.items()
            )
            + ".",
            "",
            "`llm-chat` writes free-text titles, mapped to the catalog by the fuzzy title "
            "matcher (WRatio >= 86); a line that matches nothing counts as out of catalog. "
            "`chatrec:ease` shows only the candidates the LM picked by letter from the 20 that "
            "EASE and the agent's rule filters retrieved (invalid letters count as out of "
            "catalog; nothing is filled in). What the 135M model does (see the transcripts): "
            "as `llm-chat` it mostly copies the watched titles from its prompt back (the "
            "seen rate above), so it recommends what the user has already seen; as the "
            "Chat-Rec chooser it usually answers with the candidate list itself, whose first "
            'letter ("A.") is the only pick, so Chat-Rec shows about one item a turn: the '
            "retriever's top item. Both baselines need a model that follows instructions; "
            "the harness, the title mapping and the out-of-catalog accounting are what this "
            "run checks.",
            "",
            "Wall time (the load average is in the machine line): LLM part "
            f"{payload.get('llm_seconds', 0) / 60:.0f} min, baselines "
            f"{payload.get('baselines_seconds', 0) / 60:.0f} min, replay "
            f"{payload.get('replay_seconds', 0):.0f} s. Commands: `python "
            "benchmarks/conversational_simulators.py --part llm --users 50 --turns 4`, `--part "
            "baselines --users 15 --turns 3`, `--part replay`.",
        ]
    if payload.get("baselines") or payload.get("llm"):
        versions = (payload.get("baselines") or payload["llm"]["llm"])["versions"]
        lines += ["", machine_line(versions, payload.get("loads", []))]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
