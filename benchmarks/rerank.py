"""Generative reranking over a retriever, fused and unfused: does the LLM add to EASE?

ML-100K, holdout 0.8/0.1/0.1 (split seed 2020), full ranking over all items, test part, one
fixed sample of test users (seed 0, the sample of ``benchmarks/llm.py``). EASE (training seed
42) shortlists the 20 best unseen items of each user; the LLM recommender (Gemma 3 270M through
genrec's transformers backend, zero-shot) scores them, pointwise (title likelihood) or listwise
(LlamaRec's letters). Each reranker is reported

* unfused: the reranker's order of the shortlist (``fusion="none"``);
* fused (the pipeline's default, ``fusion="linear"``): ``(1 - w) z(EASE) + w z(LLM)`` of the
  scores standardised within the shortlist, with ``w`` learned on validation users;
* fused by reciprocal ranks (``fusion="rrf"``), its weight learned the same way.

Weights are learned exactly as :class:`~genrec.pipelines.two_stage.TwoStage` learns them at fit:
on ``--valid-users`` validation users (training histories, validation items as targets), the
weight with the best NDCG@10 on a grid of 21, kept when its gain over w = 0 exceeds two paired
standard errors, else 0. Each user's LLM scores are computed once and every variant orders the same scores, so the
variants differ only in the fusion. Cost: LM calls, prompt tokens and scored answer tokens
(token counts of the LM's tokenizer), and wall seconds per user, on test users and (at fit) on
the validation users.

    python benchmarks/rerank.py [--users 200] [--valid-users 100] [--modes listwise,grounded]
    python benchmarks/rerank.py --report      # the section from the saved per-mode results

Each mode's per-user results are saved to ``benchmarks/results/rerank_<mode>.json`` as it
finishes; ``--report`` (and the end of a run) writes the BENCHMARKS.md section from them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from genrec.data import sources  # noqa: E402
from genrec.data.splits import holdout_split  # noqa: E402
from genrec.evaluation.metrics import ranking_metrics  # noqa: E402
from genrec.evaluation.protocol import evaluate  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE, LLMRecommender  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.pipelines.fusion import fuse  # noqa: E402
from genrec.pipelines.two_stage import TwoStage, validation_targets  # noqa: E402
from genrec.text.backends import get_language_model  # noqa: E402

from common import ROOT, fmt_ci, fmt_test, load_average, summary, write_section  # noqa: E402

OPTIONS = RunOptions(seed=42, threads=1)
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("ndcg", "recall", "mrr", "hit")
MODE_LABELS = {
    "grounded": "pointwise",
    "listwise": "listwise",
    "pairwise": "pairwise",
    "setwise": "setwise",
    "preference": "yes/no",
}


class CountingLM:
    """A language model that counts its scoring calls and the tokens they read."""

    def __init__(self, lm):
        self.lm = lm
        self.reset()

    def reset(self) -> None:
        self.calls = self.prompt_tokens = self.answer_tokens = 0

    def cost(self) -> dict:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "answer_tokens": self.answer_tokens,
        }

    def score(self, prompt, continuations):
        self.calls += 1
        self.prompt_tokens += self.lm.count_tokens(prompt)
        self.answer_tokens += sum(self.lm.count_tokens(c) for c in continuations)
        return self.lm.score(prompt, continuations)

    def __getattr__(self, name):
        return getattr(self.lm, name)


class FixedScores:
    """Precomputed (U, n_items) scores of known users, shaped like a model for ``evaluate``."""

    name = "fixed"

    def __init__(self, users: np.ndarray, scores: np.ndarray):
        self.row = {int(u): i for i, u in enumerate(users)}
        self.scores = scores

    def score(self, histories, users):
        return self.scores[[self.row[int(u)] for u in users]]


def per_user(split, users, scores) -> dict:
    ev = evaluate(
        FixedScores(users, scores),
        split.history("test"),
        split.test,
        users=users,
        ks=(10, 20),
        metrics=METRICS,
    )
    return {k: v.tolist() for k, v in ev.per_user.items()}


def run_key(mode: str, label: str = "") -> str:
    """The name of one run's result files: the mode, and the LM's label when it has one."""
    return f"{mode}-{label}" if label else mode


def run_label(m: dict) -> str:
    """A run's name in tables: the mode, then the LM's label (e.g. "listwise tuned-target")."""
    return " ".join(x for x in (MODE_LABELS[m["mode"]], m.get("label", "")) if x)


def run_mode(mode: str, split, users, ease, lm: CountingLM, n_valid: int, label: str = "") -> dict:
    """Every variant of one reranking mode on the test ``users`` (see the module docstring)."""
    llm = LLMRecommender(lm="fake", mode=mode, language_model=lm).fit(split.train, options=OPTIONS)
    pipe = TwoStage(retriever=ease, reranker=llm, n_candidates=20, fusion_weight=1.0)
    pipe.n_users_, pipe.n_items_ = split.train.n_users, split.train.n_items  # parts are fitted
    valid_users, relevant = validation_targets(split.train, split.valid, n_valid, seed=OPTIONS.seed)
    lm.reset()
    start = time.perf_counter()
    valid_lists = pipe.shortlists(split.train.user_item_order[valid_users], users=valid_users)
    fit_cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(valid_users)}
    print(f"[{mode}] validation shortlists: {fit_cost}", file=sys.stderr, flush=True)
    searches = {
        f: pipe.search_weight(valid_lists, split.train.user_items[valid_users], relevant, fusion=f)
        for f in ("linear", "rrf")
    }
    lm.reset()
    start = time.perf_counter()
    lists = pipe.shortlists(split.history("test").user_item_order[users], users=users)
    test_cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(users)}
    print(f"[{mode}] test shortlists: {test_cost}", file=sys.stderr, flush=True)
    variants = {"unfused": pipe.fused_scores(lists, fusion="none", weight=1.0)}
    for fusion, search in searches.items():
        variants[f"fused {fusion}"] = pipe.fused_scores(lists, fusion=fusion, weight=search.weight)
    save_lists(run_key(mode, label), {"valid": (valid_users, valid_lists), "test": (users, lists)})
    out = {
        "mode": mode,
        "label": label,
        "fit_cost": fit_cost,
        "test_cost": test_cost,
        "searches": {f: vars(s) for f, s in searches.items()},
        "per_user": {name: per_user(split, users, s) for name, s in variants.items()},
    }
    for name, res in out["per_user"].items():
        print(
            f"[{mode}] {name}: ndcg@10 {np.mean(res['ndcg@10']):.4f}", file=sys.stderr, flush=True
        )
    return out


def save_lists(key: str, parts: dict) -> None:
    """Each part's shortlists (users, candidates and both stages' scores) to an npz file, so
    that other fusions can be studied later without asking the LM again."""
    arrays = {}
    for part, (users, lists) in parts.items():
        arrays[f"{part}_users"] = np.asarray(users)
        for key in ("candidates", "retriever", "reranker"):
            arrays[f"{part}_{key}"] = np.stack([getattr(x, key) for x in lists])
    np.savez_compressed(RESULTS / f"rerank_{key}_lists.npz", **arrays)


def saved_modes() -> list[dict]:
    """The saved per-mode results, each with its users' EASE values and run facts."""
    old = RESULTS / "rerank_ease.json"  # runs before each mode file held its EASE values
    base = json.loads(old.read_text()) if old.exists() else {}
    modes = []
    for path in sorted(RESULTS.glob("rerank_*.json")):
        if path.stem != "rerank_ease":
            m = json.loads(path.read_text())
            if m.get("mode") not in MODE_LABELS:  # another benchmark's rerank_* file
                continue
            if "ease" not in m:
                m.update(
                    ease=base["per_user"],
                    **{k: base[k] for k in ("n_users", "n_valid", "n_items", "versions")},
                )
                m.setdefault("written", base["written"])
                m["loads"] = base["loads"] + m.get("loads", [])
            modes.append(m)
    order = list(MODE_LABELS)
    return sorted(modes, key=lambda m: (-m["n_users"], order.index(m["mode"]), m.get("label", "")))


def report(split) -> str:
    """The BENCHMARKS.md section from the saved results: one table per user sample."""
    modes = saved_modes()
    samples = sorted({(m["n_users"], m["n_valid"]) for m in modes}, reverse=True)
    parts = [intro(modes)]
    for n_users, n_valid in samples:
        group = [m for m in modes if (m["n_users"], m["n_valid"]) == (n_users, n_valid)]
        parts += [
            f"#### {n_users} test users, w learned on {n_valid} validation users "
            f"(`--users {n_users} --valid-users {n_valid} --modes "
            f"{','.join(m['mode'] for m in group)}`)",
            "\n".join(table(group)),
            fit_paragraph(group),
            hindsight_paragraph(group, split),
        ]
    parts.append(machine(modes))
    return "\n\n".join(p for p in parts if p)


def table(modes: list[dict]) -> list[str]:
    rows, cost = {"ease": modes[0]["ease"]}, {"ease": None}
    for m in modes:
        label = run_label(m)
        for name, values in m["per_user"].items():
            rows[f"ease+llm {label}, {name}"] = values
            cost[f"ease+llm {label}, {name}"] = m
    tests = {
        metric: compare_with({n: np.array(v[metric]) for n, v in rows.items()}, "ease")
        for metric in ("ndcg@10", "recall@10")
    }
    lines = [
        "| model | NDCG@10 | Recall@10 | NDCG@10 vs EASE | Recall@10 vs EASE | w (best w) | "
        "LM calls / user | prompt + answer tokens / user | s / user |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return lines + [row_line(name, values, tests, cost[name]) for name, values in rows.items()]


def intro(modes: list[dict]) -> str:
    return (
        "## Generative reranking over EASE, fused and unfused\n\n"
        "`python benchmarks/rerank.py` (latest run written "
        f"{max(m['written'] for m in modes)}). ML-100K, holdout 0.8/0.1/0.1 (split seed 2020), "
        f"full ranking over all {modes[0]['n_items']} items, test part, test users sampled with "
        "seed 0 (the 200 of the `llm` section, or the first of that draw for smaller samples). "
        "EASE (reg 500, seed 42) shortlists each user's 20 best unseen items; Gemma 3 270M "
        "(genrec's transformers backend, zero-shot, 10 recent titles) scores them: "
        "**pointwise** (each title's likelihood), **listwise** (one prompt, candidates under "
        "letters A-T in EASE's order, the probability of each letter), **pairwise** (PRP: "
        "the letter question about two candidates, both orders, each candidate against the next "
        "one in EASE's order; score = mean log-odds preference) or **setwise** (windows of 5 "
        "overlapping by one, one question each; score = letter log-probability relative to "
        "uniform). **unfused**: the LLM's order of the shortlist. **fused linear** (the "
        "pipeline's default): (1-w) z(EASE) + w z(LLM), scores standardised within the "
        "shortlist. **fused rrf**: (1-w)/(60+rank_EASE) + w/(60+rank_LLM). w is learned on "
        "validation users (training histories, validation items as targets): the w in 0, 0.05, "
        "..., 1 with the best NDCG@10, kept when its gain over w = 0 exceeds two paired "
        "standard errors, else 0. Every variant orders the same LLM scores. Intervals: 95% "
        "bootstrap over users; tests: paired t and Wilcoxon against EASE, Holm-adjusted over "
        "the rows of a table, the larger p shown, * below 0.05. Cost: LM scoring calls, prompt "
        "tokens and scored answer tokens (Gemma's tokenizer), wall seconds per test user. "
        "Setwise and pairwise ran on smaller samples (the first users of the same draw, w "
        "learned on as many validation users) because they cost 5 and 38 LM calls per user on "
        "2 cores shared with other jobs."
    )


def row_line(name: str, values: dict, tests: dict, mode: dict | None) -> str:
    cells = [
        name,
        fmt_ci(summary(values["ndcg@10"])),
        fmt_ci(summary(values["recall@10"])),
        fmt_test(tests["ndcg@10"][name]),
        fmt_test(tests["recall@10"][name]),
    ]
    if mode is None:
        return "| " + " | ".join(cells + ["-", "0", "0", "< 0.01"]) + " |"
    c = mode["test_cost"]
    variant = name.rsplit(", ", 1)[1]
    search = mode["searches"].get(variant.split()[-1]) if variant != "unfused" else None
    weight = "1 (fixed)" if search is None else f"{search['weight']:.2f} ({search['best']:.2f})"
    skipped = search is not None and search["weight"] == 0

    def per(key: str) -> float:
        return 0 if skipped else c[key] / c["users"]

    cells += [
        weight,
        f"{per('calls'):.0f}",
        f"{per('prompt_tokens'):.0f} + {per('answer_tokens'):.0f}",
        "< 0.01" if skipped else f"{c['seconds'] / c['users']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def test_curve(m: dict, split) -> str:
    """Test NDCG@10 of the linear fusion at a few fixed w, from the saved shortlists: how much
    fusion could add in hindsight (not used to choose anything)."""
    path = RESULTS / f"rerank_{run_key(m['mode'], m.get('label', ''))}_lists.npz"
    if not path.exists():
        return ""
    saved = np.load(path)
    users, candidates = saved["test_users"], saved["test_candidates"]
    seen = split.history("test").user_items[users]
    relevant = split.test.user_items[users] - split.test.user_items[users].multiply(seen)
    relevant.eliminate_zeros()
    rows = np.arange(len(users))[:, None]
    points = []
    for w in (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
        fused = np.stack(
            [fuse(r, x, weight=w) for r, x in zip(saved["test_retriever"], saved["test_reranker"])]
        )
        top = np.take_along_axis(candidates, np.argsort(-fused, axis=1, kind="stable")[:, :10], 1)
        hits = np.asarray(relevant[rows, top].todense()) > 0
        ndcg = ranking_metrics(hits, np.diff(relevant.indptr), [10], names=["ndcg"])["ndcg@10"]
        points.append(f"{w:.1f}: {ndcg.mean():.4f}")
    return f"{run_label(m)}: " + ", ".join(points)


def hindsight_paragraph(modes: list[dict], split) -> str:
    curves = [c for c in (test_curve(m, split) for m in modes) if c]
    if not curves:
        return ""
    return (
        "In hindsight (test users, the same scores; not used to choose w), test NDCG@10 of "
        "the linear fusion by w: " + "; ".join(curves) + "."
    )


def fit_paragraph(modes: list[dict]) -> str:
    parts = []
    for m in modes:
        c = m["fit_cost"]
        curve = m["searches"]["linear"]
        shown = ", ".join(
            f"{w:.2f}: {v:.4f}"
            for w, v in zip(curve["grid"], curve["means"])
            if round(w * 20) % 4 == 0
        )
        parts.append(
            f"{run_label(m)}: learning w cost {c['calls']} LM calls on "
            f"{c['users']} validation users ({c['seconds'] / max(c['users'], 1):.2f} s "
            f"each); validation NDCG@10 of the linear fusion by w: {shown}"
        )
    return (
        "A fused pipeline whose learned w is 0 never asks the LLM at test time (the cost "
        "columns show 0 then). Learning w (at fit) and the validation curves: "
        + "; ".join(parts)
        + "."
    )


def machine(modes: list[dict]) -> str:
    v = modes[0]["versions"]
    loads = [x for m in modes for x in m.get("loads", [])]
    return (
        f"Machine: {v['cpu_count']} cores shared with other jobs, {v['platform']}, Python "
        f"{v['python']}, torch {v['torch']}, genrec {v['genrec']}; 1 thread; 1-minute load "
        "average during the runs: " + ", ".join(f"{x:.1f}" for x in loads) + "."
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--valid-users", type=int, default=100)
    parser.add_argument("--modes", default="listwise,grounded")
    parser.add_argument(
        "--lm", default="transformers:gemma-3-270m", help="the LM spec, e.g. tuned:/path/to/adapter"
    )
    parser.add_argument("--label", default="", help="the LM's name in the tables (tuned LMs)")
    parser.add_argument("--cache-dir", default="/tmp/gcache")
    parser.add_argument(
        "--report", action="store_true", help="only write the section from the saved results"
    )
    args = parser.parse_args(argv)
    if not args.report:
        run(args)
    text = report(load_split(args.cache_dir))
    print(text)
    write_section("rerank", text)
    return 0


def load_split(cache_dir):
    return holdout_split(sources.load("ml-100k", cache_dir=cache_dir), (0.8, 0.1, 0.1), seed=2020)


def test_users(eligible: np.ndarray, n: int) -> np.ndarray:
    """``n`` test users: the 200 of the llm section (seed 0) first, then more drawn with seed 1
    from the others, so a larger sample contains the smaller ones."""
    first = np.random.default_rng(0).choice(eligible, min(200, len(eligible)), replace=False)
    rest = np.setdiff1d(eligible, first)
    more = np.random.default_rng(1).choice(rest, min(max(n - 200, 0), len(rest)), replace=False)
    return np.r_[first, more][:n]


def run(args) -> None:
    OPTIONS.apply_threads()
    split = load_split(args.cache_dir)
    eligible = np.flatnonzero(split.test.user_counts > 0)
    users = np.sort(test_users(eligible, args.users))
    ease = EASE().fit(split.train, options=OPTIONS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = {
        "n_users": len(users),
        "n_valid": args.valid_users,
        "n_items": split.train.n_items,
        "versions": {**library_versions(), "platform": platform.platform()},
        "ease": per_user(split, users, ease.score(split.history("test").user_item_order[users])),
    }
    lm = CountingLM(get_language_model(args.lm, threads=1))
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        loads = [load_average()]
        out = run_mode(mode, split, users, ease, lm, args.valid_users, args.label)
        out.update(
            base,
            loads=loads + [load_average()],
            written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )
        key = run_key(mode, args.label)
        atomic_write(RESULTS / f"rerank_{key}.json", json.dumps(out, default=float))


if __name__ == "__main__":
    raise SystemExit(main())
