"""LLM-derived features for classic recommenders (survey Sec. 3.4) on MovieLens-100K.

Writes the ``llm-features`` section of BENCHMARKS.md and ``benchmarks/results/llm_features.json``:

1. Text-initialised vs random item embeddings for SASRec (its default: BCE, one negative) and
   BERT4Rec: the same default configs except ``item_init``, leave-one-out by time (the protocol
   of ``benchmarks/sequential.py``), full ranking, the same training seeds for both inits. Test
   NDCG@10 overall and on the users whose test item is among the least popular 20% of test items
   (by training popularity), with bootstrap intervals and paired tests (text vs random on the
   same users; per-user values averaged over the seeds).
2. GPT4Rec-style queries for dense retrieval: the language model writes a hypothetical next
   title from the user's history, the dense retriever (MiniLM) answers it; against the plain
   history-embedding query (``dense``) and the two fused, on a fixed sample of test users of the
   random holdout 0.8/0.1/0.1 (split seed 2020), full ranking, with the LM seconds per user.
   Optionally the same on held-out (cold-start) items.

    python benchmarks/llm_features.py [--seeds 42,43] [--users 200] [--parts init,query]
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

from genrec.build import build_model  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.splits import held_out_items_split, holdout_split, leave_one_out_split  # noqa: E402
from genrec.evaluation.protocol import evaluate  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import paired_tests  # noqa: E402
from genrec.io import atomic_write, json_default  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import fmt_ci, fmt_test, load_average, rounded, summary, write_section  # noqa: E402

TAIL_SHARE = 0.2  # the least popular share of test items
INIT_MODELS = ("sasrec", "bert4rec")


# ---- 1. text-initialised vs random item embeddings -------------------------------------------
def tail_users(split, ev_users: np.ndarray) -> np.ndarray:
    """(U,) bool over ``ev_users``: the test item is among the least popular ``TAIL_SHARE`` of
    the test items by training popularity (ties at the cut included)."""
    test = split.test.user_items[ev_users]
    first = test.indices[test.indptr[:-1]]  # leave-one-out: one test item per user
    popularity = split.train.item_counts[first]
    return popularity <= np.quantile(popularity, TAIL_SHARE)


def init_runs(split, seeds: list[int], runs_dir: Path | None = None) -> dict:
    """Fit each model with each init and seed; per-user test NDCG@10 and fit facts. With
    ``runs_dir``, each finished run is kept there (JSON) and reused by the next invocation, so an
    interrupted benchmark or one given more seeds refits nothing it already has."""
    runs = {}
    for spec in INIT_MODELS:
        for init in ("random", "text"):
            for seed in seeds:
                kept = runs_dir / f"{spec}-{init}-{seed}.json" if runs_dir else None
                if kept is not None and kept.exists():
                    run = json.loads(kept.read_text())
                    runs[(spec, init, seed)] = {
                        k: np.asarray(x) if isinstance(x, list) else x for k, x in run.items()
                    }
                    continue
                model = build_model(spec, {"item_init": init})
                start = time.perf_counter()
                model.fit(split.train, valid=split.valid, options=RunOptions(seed=seed, threads=1))
                seconds = time.perf_counter() - start
                ev = evaluate(
                    model, split.history("test"), split.test, ks=(10,), metrics=("ndcg", "recall")
                )
                runs[(spec, init, seed)] = {
                    "users": ev.users,
                    "ndcg": ev.per_user["ndcg@10"],
                    "recall": ev.per_user["recall@10"],
                    "best_epoch": model.best_epoch_,
                    "epochs_run": model.epochs_run_,
                    "seconds": seconds,
                }
                if kept is not None:
                    atomic_write(kept, json.dumps(runs[(spec, init, seed)], default=json_default))
                print(
                    f"[init] {spec} {init} seed {seed}: ndcg@10 {ev.mean('ndcg@10'):.4f} "
                    f"best epoch {model.best_epoch_} {seconds:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


def init_summary(split, runs: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for spec in INIT_MODELS:
        users = runs[(spec, "random", seeds[0])]["users"]
        tail = tail_users(split, users)
        mean = {
            init: np.mean([runs[(spec, init, s)]["ndcg"] for s in seeds], axis=0)
            for init in ("random", "text")
        }
        for init in ("random", "text"):
            rows.append(
                {
                    "model": spec,
                    "init": init,
                    "n_users": int(len(users)),
                    "n_tail": int(tail.sum()),
                    "ndcg": summary(mean[init]),
                    "ndcg_tail": summary(mean[init][tail]),
                    "recall": summary(np.mean([runs[(spec, init, s)]["recall"] for s in seeds], 0)),
                    "per_seed": [float(runs[(spec, init, s)]["ndcg"].mean()) for s in seeds],
                    "per_seed_tail": [
                        float(runs[(spec, init, s)]["ndcg"][tail].mean()) for s in seeds
                    ],
                    "best_epochs": [runs[(spec, init, s)]["best_epoch"] for s in seeds],
                    "fit_seconds": [round(runs[(spec, init, s)]["seconds"], 1) for s in seeds],
                    "vs_random": None
                    if init == "random"
                    else paired_tests(mean["text"], mean["random"]),
                    "vs_random_tail": None
                    if init == "random"
                    else paired_tests(mean["text"][tail], mean["random"][tail]),
                }
            )
    return rows


def init_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | item init | NDCG@10 | Recall@10 | NDCG@10, tail 20% | text - random "
        "(p) | tail: text - random (p) | NDCG@10 per seed (tail) | best epochs | fit s |",
        "|" + " --- |" * 10,
    ]
    for r in rows:
        seeds = ", ".join(f"{a:.4f} ({b:.4f})" for a, b in zip(r["per_seed"], r["per_seed_tail"]))
        lines.append(
            f"| {r['model']} | {r['init']} | {fmt_ci(r['ndcg'])} | {fmt_ci(r['recall'])} | "
            f"{fmt_ci(r['ndcg_tail'])} | {'-' if r['vs_random'] is None else fmt_test(r['vs_random'], adjusted=False)}"
            f" | {'-' if r['vs_random_tail'] is None else fmt_test(r['vs_random_tail'], adjusted=False)} | {seeds}"
            f" | {', '.join(map(str, r['best_epochs']))} | "
            f"{', '.join(f'{s:.0f}' for s in r['fit_seconds'])} |"
        )
    return lines


# ---- 2. GPT4Rec-style LLM queries ------------------------------------------------------------
def query_runs(split, users: np.ndarray, lm_spec: str, weights: list[float]) -> dict:
    """Dense retrieval with the history query, the LLM query and their fusions on ``users``."""
    from genrec.models.language.gpt4rec import GPT4Rec

    options = RunOptions(seed=42, threads=1)
    history = split.history("test")
    out = {}
    dense = build_model("dense").fit(split.train, options=options)
    ev = evaluate(dense, history, split.test, users=users, ks=(10, 20), metrics=("ndcg", "recall"))
    out["dense (history query)"] = {"per_user": ev.per_user, "users": ev.users}
    base = GPT4Rec(lm=lm_spec, history_weight=0.0).fit(split.train, options=options)
    rows = history.user_item_order[ev.users]
    start = time.perf_counter()
    queries = base.generate_queries(rows)  # once; every fusion weight reuses them
    lm_seconds = (time.perf_counter() - start) / len(ev.users)
    for w in weights:
        model = GPT4Rec(lm=lm_spec, history_weight=w).fit(split.train, options=options)
        model.query_cache_.update(base.query_cache_)  # the same prompts: no second LM call
        ev_w = evaluate(
            model, history, split.test, users=ev.users, ks=(10, 20), metrics=("ndcg", "recall")
        )
        label = (
            "gpt4rec, LLM query only (paper)"
            if w == 0
            else (
                f"gpt4rec fused, history weight {w:g}"
                + (" (default)" if w == GPT4Rec.Config.history_weight else "")
            )
        )
        out[label] = {"per_user": ev_w.per_user, "users": ev_w.users}
        print(f"[query] {label}: ndcg@10 {ev_w.mean('ndcg@10'):.4f}", file=sys.stderr, flush=True)
    examples = [
        {"history": base.history_titles(rows[j])[-3:], "query": queries[j]}
        for j in range(min(5, len(queries)))
    ]
    return {
        "models": out,
        "lm_seconds_per_user": lm_seconds,
        "examples": examples,
        "empty_queries": int(sum(not q.strip() for q in queries)),
        "n_users": len(ev.users),
    }


def query_table(res: dict) -> list[str]:
    models = res["models"]
    ref = models["dense (history query)"]["per_user"]
    lines = [
        "| query | NDCG@10 | Recall@10 | Recall@20 | NDCG@10 vs history query (p) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, r in models.items():
        pu = r["per_user"]
        versus = (
            "reference"
            if pu is ref
            else fmt_test(paired_tests(pu["ndcg@10"], ref["ndcg@10"]), adjusted=False)
        )
        lines.append(
            f"| {label} | {fmt_ci(summary(pu['ndcg@10']))} | {fmt_ci(summary(pu['recall@10']))}"
            f" | {fmt_ci(summary(pu['recall@20']))} | {versus} |"
        )
    return lines


def sample_users(split, n: int) -> np.ndarray:
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)
    return np.sort(np.random.default_rng(0).choice(users, min(n, len(users)), replace=False))


# ---- main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="42", help="training seeds of part 1, comma-separated")
    p.add_argument("--users", type=int, default=200, help="user sample of part 2")
    p.add_argument("--lm", default="default", help="language model of part 2 (generate job)")
    p.add_argument("--weights", default="0,0.5,0.75", help="history weights of the GPT4Rec fusions")
    p.add_argument("--parts", default="init,query,cold")
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="keep each finished fit of part 1 here and reuse it on the next run",
    )
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = set(args.parts.split(","))
    weights = [float(w) for w in args.weights.split(",")]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    saved: dict = {}  # this run's parts; merged into the results file at the end
    loads = [load_average()]
    if "init" in parts:
        split = leave_one_out_split(data)
        saved["init"] = {
            "rows": init_summary(split, init_runs(split, seeds, args.runs_dir), seeds),
            "seeds": seeds,
            "started": started,
        }
        loads.append(load_average())
    if "query" in parts:
        split = holdout_split(data, (0.8, 0.1, 0.1), seed=2020)
        saved["query"] = {
            **query_runs(split, sample_users(split, args.users), args.lm, weights),
            "lm": args.lm,
            "started": started,
        }
        loads.append(load_average())
    if "cold" in parts:
        split = held_out_items_split(data, 0.1, seed=0)
        saved["cold"] = {
            **query_runs(split, sample_users(split, args.users), args.lm, weights),
            "lm": args.lm,
            "started": started,
            "info": split.info,
        }
        loads.append(load_average())
    result_path = ROOT / "benchmarks" / "results" / "llm_features.json"
    earlier = json.loads(result_path.read_text()) if result_path.exists() else {}
    loads = {**earlier.get("loads", {}), ",".join(sorted(parts)): loads}
    saved = {**earlier, **saved, "versions": library_versions(), "loads": loads}
    atomic_write(result_path, json.dumps(rounded(saved), default=json_default))
    write_section("llm-features", markdown(saved))
    print(markdown(saved))
    return 0


def markdown(res: dict) -> str:
    v = res["versions"]
    out = [
        "## LLM-derived features: text-initialised sequence models, LLM-written queries",
        "",
        f"Written by `python benchmarks/llm_features.py`. Machine: {v['cpu_count']} cores, "
        f"{v['platform']}, Python {v['python']}, torch {v['torch']}, genrec {v['genrec']}; "
        "1 thread; 1-minute load averages per part: "
        + "; ".join(
            f"{k}: {', '.join(f'{x:.2f}' for x in xs)}" for k, xs in res.get("loads", {}).items()
        )
        + ".",
        "",
    ]
    if "init" in res:
        r = res["init"]
        out += [
            "### Text-initialised vs random item embeddings (SASRec, BERT4Rec)",
            "",
            f"MovieLens-100K leave-one-out by time (valid = second last, test = last), full "
            f'ranking, each model\'s default config with `item_init` "random" or "text" '
            f'(MiniLM embeddings of "title. Genres: ... Year: ...", PCA to the model\'s '
            f"dimension, scaled to the random init's std), training seeds {r['seeds']} "
            "(the same for both inits; per-user NDCG averaged over seeds before the "
            f"intervals and tests). Tail: the {r['rows'][0]['n_tail']} of "
            f"{r['rows'][0]['n_users']} test users whose test item is among the least "
            f"popular {TAIL_SHARE:.0%} of test items by training count (ties at the cut "
            "included). Cells: mean [bootstrap 95% interval]; tests: paired t and Wilcoxon "
            "on the same users, the larger p (* below 0.05). Fit seconds are wall time on "
            "the shared machine (other jobs running; some runs overlapped): not a speed "
            "comparison.",
            "",
            *init_table(r["rows"]),
            "",
        ]
    for key, title in (
        ("query", "random holdout 0.8/0.1/0.1 (split seed 2020)"),
        ("cold", "held-out items (10% of items never trained on, split seed 0)"),
    ):
        if key not in res:
            continue
        r = res[key]
        out += [
            f"### GPT4Rec-style LLM queries for dense retrieval: {title}",
            "",
            f"{r['n_users']} test users sampled with seed 0, full ranking over all items. "
            f"The language model (`{r['lm']}`, greedy, at most 16 new tokens) continues "
            "the next-item prompt (the user's 10 latest titles, quoted) with a hypothetical "
            "next title, the query; MiniLM embeds it and the centred dense index answers "
            "it. Fused: the unit LLM-query and history-query vectors mixed with the given "
            f"history weight. LM time: {r['lm_seconds_per_user']:.2f} s per user (1 thread); "
            f"{r['empty_queries']} empty queries (those fall back to the history query).",
            "",
            *query_table(r),
            "",
            "Example queries (last 3 history titles -> query): "
            + "; ".join(f'{" / ".join(e["history"])} -> "{e["query"]}"' for e in r["examples"][:3]),
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
