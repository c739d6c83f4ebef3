"""Sequence models and generative retrieval on MovieLens-100K, leave-one-out: quality, speed,
TIGER's semantic IDs and cold items, and whether generated continuations look real.

Writes the ``sequential`` section of BENCHMARKS.md and ``benchmarks/results/sequential.json``:

1. Quality and speed: GRU4Rec, SASRec (BCE with one negative, and full softmax CE), gSASRec,
   BERT4Rec and TIGER with their default presets on the leave-one-out split (valid = second
   last, test = last, histories truncated to the models' ``max_len``), full ranking, test metrics
   with bootstrap intervals, paired tests against SASRec-BCE (Holm-corrected), RecBole 1.2.1's
   converged runs on the same split (``benchmarks/recbole_sequence_peers.py``; the capped floors
   of ../shared/PEERS.md where those are missing), fit time as the median of ``--repeats`` fits alone in
   a fresh process (1 thread), and the published orderings checked in our numbers.
2. TIGER: share of beam-search recommendations that are real items, the semantic-ID collision
   rate before the extra digit, and accuracy on held-out (cold-start) items beside SASRec.
3. Generation: 10 sampled next items per test user (temperature 1) from every model, against
   the real data: the share of generated transitions (previous item -> next item) that occur in
   the training sequences, and the divergence of the generated items' popularity, beside the
   real held-out next items and a popularity sampler.

    python benchmarks/sequential.py [--repeats 3] [--models gru4rec,sasrec-ce]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.build import build_model  # noqa: E402
from genrec.data import history_sequences, sources  # noqa: E402
from genrec.data.splits import held_out_items_split, leave_one_out_split  # noqa: E402
from genrec.evaluation.protocol import evaluate  # noqa: E402
from genrec.evaluation.runner import protocol_block, run_benchmark  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import (  # noqa: E402
    fit_in_fresh_process,
    fmt_ci,
    js_divergence,
    load_average,
    machine_line,
    names_arg,
    write_section,
)

# label -> (model spec, config overrides)
VARIANTS = {
    "gru4rec": ("gru4rec", {}),
    "sasrec-bce": ("sasrec", {"loss": "bce"}),
    "sasrec-ce": ("sasrec", {"loss": "ce"}),
    "gsasrec": ("gsasrec", {}),
    "bert4rec": ("bert4rec", {}),
    "tiger": ("tiger", {}),
}
REFERENCE = "sasrec-bce"
# RecBole 1.2.1 on RecBole's own split, stopped after a few epochs (../shared/PEERS.md): floors,
# shown only for a model whose converged run (benchmarks/recbole_sequence_peers.py) is missing
CAPPED = {
    "gru4rec": ("GRU4Rec", 0.0222, 0.0435, "~85 s/epoch, capped after 4 epochs"),
    "sasrec-ce": ("SASRec (CE)", 0.0322, 0.0700, "~240 s/epoch, capped after 2 epochs"),
    "bert4rec": ("BERT4Rec", 0.0210, 0.0435, "~283 s/epoch, capped after 2 epochs"),
}
CONVERGED = ROOT / "benchmarks" / "results" / "recbole_sequence_peers.json"


def recbole_cell(label: str) -> str:
    """RecBole's converged NDCG@10 / Recall@10 on this split with its CPU and wall seconds
    and epochs (benchmarks/recbole_sequence_peers.py), else the capped floor, else "-"."""
    runs = json.loads(CONVERGED.read_text())["results"] if CONVERGED.exists() else []
    run = next((r["recbole"] for r in runs if r["model"] == label and "recbole" in r), None)
    if run is not None:
        m = run["metrics"]
        cpu = f"{run['cpu_seconds']:,.0f} CPU s, " if "cpu_seconds" in run else ""
        return (
            f"{m['ndcg@10']:.4f} / {m['recall@10']:.4f} (converged: {cpu}{run['seconds']:,.0f} "
            f"s wall, best epoch {run['best_epoch']} / {run['epochs_run']})"
        )
    if label in CAPPED:
        _, ndcg, recall, note = CAPPED[label]
        return f"{ndcg:.4f} / {recall:.4f} (floor: {note})"
    return "-"


OPTIONS = RunOptions(seed=42, threads=1)


def make(label: str):
    spec, overrides = VARIANTS[label]
    return build_model(spec, overrides)


# ---- 1. quality and speed --------------------------------------------------------------------
def quality(split, labels: list[str], repeats: int, cache_dir: Path, protocol: dict):
    """run_benchmark for the metrics (its fitted models are kept for the generation section);
    fit time: the median of ``repeats`` fits in fresh processes, or the in-process fit when 0."""
    fitted = {}
    result = run_benchmark(
        split,
        {label: (lambda label=label: make(label)) for label in labels},
        protocol=protocol,
        options=OPTIONS,
        on_fitted=lambda name, model: fitted.__setitem__(name, model),
    )
    results = result.to_dict()
    loads = [load_average()]
    for row in results["results"]:
        spec, overrides = VARIANTS[row["model"]]
        if repeats == 0:
            row["fit_seconds_runs"] = [row["fit_seconds"]]
            continue
        runs = []
        for _ in range(repeats):
            loads.append(load_average())
            runs.append(
                fit_in_fresh_process(
                    spec,
                    overrides,
                    cache_dir=cache_dir,
                    split="loo",
                    split_seed=0,
                    seed=OPTIONS.seed,
                )
            )
        row["fit_seconds_runs"] = [r["seconds"] for r in runs]
        row["fit_seconds"] = statistics.median(row["fit_seconds_runs"])
        row["peak_rss_mb"] = max(r["peak_mb"] for r in runs)
    if REFERENCE in labels:
        versus = compare_with(
            {r.model: r.evaluation.per_user["ndcg@10"] for r in result.runs}, REFERENCE
        )
        for row in results["results"]:
            row["vs_reference"] = versus[row["model"]]
    return fitted, results, loads


def quality_table(results: dict) -> str:
    lines = [
        "| model | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | Recall@20 | RecBole "
        f"NDCG@10 / Recall@10 | vs {REFERENCE} (NDCG@10 diff, Holm p) | best epoch / run | "
        "fit s (median) | peak RSS MB |",
        "|" + " --- |" * 11,
    ]
    for r in results["results"]:
        m = r["metrics"]
        vs = r.get("vs_reference")
        versus = (
            "-"
            if vs is None
            else (
                "reference"
                if vs["verdict"] == "reference"
                else f"{vs['mean_diff']:+.4f}, p="
                f"{max(vs['p_t_holm'], vs['p_wilcoxon_holm']):.2g}: "
                f"{vs['verdict']}"
            )
        )
        epochs = f"{r['best_epoch']} / {r['epochs_run']}" if "best_epoch" in r else "-"
        lines.append(
            f"| {r['model']} | {fmt_ci(m['ndcg@10'])} | {fmt_ci(m['recall@10'])} | "
            f"{fmt_ci(m['mrr@10'])} | {fmt_ci(m['ndcg@20'])} | {fmt_ci(m['recall@20'])} | "
            + recbole_cell(r["model"])
            + f" | {versus} | {epochs} | {r['fit_seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def orderings(results: dict) -> list[str]:
    ndcg = {r["model"]: r["metrics"]["ndcg@10"]["mean"] for r in results["results"]}
    lines = []
    if "gsasrec" in ndcg and "sasrec-bce" in ndcg:
        gain = ndcg["gsasrec"] / ndcg["sasrec-bce"] - 1
        lines.append(
            f"- gSASRec vs SASRec-BCE: {gain:+.0%} NDCG@10 (published on ML-1M: about +35%)."
        )
    if "sasrec-ce" in ndcg and "bert4rec" in ndcg:
        ok = ndcg["sasrec-ce"] >= ndcg["bert4rec"]
        lines.append(
            f"- full-softmax SASRec {ndcg['sasrec-ce']:.4f} "
            f"{'>=' if ok else '<'} BERT4Rec {ndcg['bert4rec']:.4f} (published: at or "
            "above)."
        )
    return lines


# ---- 2. TIGER --------------------------------------------------------------------------------
def tiger_extras(data, split, tiger) -> dict:
    history = split.history("test")
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)
    items, _ = tiger.recommend_beam(history.user_item_order[users], k=10)
    real = float(((items >= 0) & (items < data.n_items)).mean())
    cold = held_out_items_split(data, 0.1, seed=0)
    cold_rows = {}
    for label in ("tiger", "sasrec-ce"):
        model = make(label).fit(cold.train, valid=cold.valid, options=OPTIONS)
        ev = evaluate(
            model, cold.history("test"), cold.test, ks=(10, 20), metrics=("ndcg", "recall", "hit")
        )
        cold_rows[label] = {m: ev.mean(m) for m in ("ndcg@10", "recall@10", "recall@20", "hit@10")}
    return {
        "real_item_share": real,
        "collision_rate": tiger.collision_rate_,
        "cold": cold_rows,
        "cold_info": cold.info,
    }


# ---- 3. generation ---------------------------------------------------------------------------
def generation(split, fitted: dict, n_steps: int = 10) -> list[dict]:
    train = split.train
    indptr, items = train.sequences()
    same_user = np.diff(np.repeat(np.arange(train.n_users), np.diff(indptr))) == 0
    pairs = set(zip(items[:-1][same_user].tolist(), items[1:][same_user].tolist()))
    real_pop = train.item_counts.astype(np.float64)
    history = split.history("test")
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)
    rows_in = history.user_item_order[users]
    last = history_sequences(rows_in, 1)[:, 0] - 1  # (U,) last history item
    rng = np.random.default_rng(0)
    test_rows = split.test.user_items[users]
    candidates = {
        "real next item (test)": lambda: test_rows.indices[test_rows.indptr[:-1], None],
        "popularity sampler": lambda: rng.choice(
            train.n_items, (len(users), n_steps), p=real_pop / real_pop.sum()
        ),
    }
    for label, model in fitted.items():
        candidates[label] = lambda m=model: m.generate(rows_in, n_steps=n_steps, seed=0)
    out = []
    for name, draw in candidates.items():
        start = time.perf_counter()
        generated = np.asarray(draw())
        seconds = time.perf_counter() - start
        prev = np.concatenate([last[:, None], generated[:, :-1]], axis=1)
        seen = np.array([(a, b) in pairs for a, b in zip(prev.ravel(), generated.ravel())])
        pop = np.bincount(generated.ravel(), minlength=train.n_items).astype(np.float64)
        out.append(
            {
                "source": name,
                "steps": generated.shape[1],
                "transitions_seen_in_train": float(seen.mean()),
                "js_popularity": js_divergence(pop, real_pop),
                "distinct_items": int((pop > 0).sum()),
                "seconds": seconds,
            }
        )
    return out


def generation_table(rows: list[dict]) -> str:
    lines = [
        "| source | items per user | transitions seen in train | JS divergence of item "
        "popularity | distinct items | seconds |",
        "|" + " --- |" * 6,
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['steps']} | {r['transitions_seen_in_train']:.3f} | "
            f"{r['js_popularity']:.4f} | {r['distinct_items']} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------
RESULTS = ROOT / "benchmarks" / "results" / "sequential.json"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed fits per model in fresh processes (0: time the one in-process fit)",
    )
    p.add_argument("--models", default=",".join(VARIANTS))
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    p.add_argument(
        "--report",
        action="store_true",
        help="only write the section from the saved results (e.g. after new RecBole peers)",
    )
    args = p.parse_args()
    if args.report:
        payload = json.loads(RESULTS.read_text())
    else:
        payload = run(args, names_arg(p, args.models, VARIANTS, "model label"))
        atomic_write(RESULTS, json.dumps(payload, indent=2, default=str))
    text = render(payload)
    write_section("sequential", text)
    print(text)


def run(args, labels: list[str]) -> dict:
    """Fit and measure every model of ``labels``; the payload :func:`render` writes."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    split = leave_one_out_split(data)
    protocol = protocol_block(data, split, training_seed=OPTIONS.seed)
    print("quality and speed ...", file=sys.stderr)
    fitted, results, loads = quality(split, labels, args.repeats, args.cache_dir, protocol)
    tiger = None
    if "tiger" in labels:
        print("TIGER ...", file=sys.stderr)
        tiger = tiger_extras(data, split, fitted["tiger"])
    print("generation ...", file=sys.stderr)
    gen = generation(split, fitted)
    loads.append(load_average())
    return {
        "quality": results,
        "tiger": tiger,
        "generation": gen,
        "started": started,
        "repeats": args.repeats,
        "loads": loads,
    }


def render(payload: dict) -> str:
    """The section from a saved payload; RecBole's cells from the converged peers' results.
    The payload's ``notes`` (paragraphs added to the results file by hand: later partial
    reruns, reproduction checks) follow the quality table."""
    results, tiger, gen = payload["quality"], payload["tiger"], payload["generation"]
    started, repeats, loads = payload["started"], payload["repeats"], payload["loads"]
    out = [
        "## Sequence models and generative retrieval",
        "",
        f"Written by `python benchmarks/sequential.py --repeats {repeats}` on {started}. "
        + machine_line(results["versions"], loads),
        "",
        "### Quality and speed: MovieLens-100K, leave-one-out, full ranking",
        "",
        "Leave-one-out by time (valid = second last, test = last item), histories truncated to "
        "the last 50, full ranking over all items, training seed 42, each model's default "
        "preset (tuned on validation). Cells: test mean [bootstrap 95% interval]. RecBole: "
        "its GRU4Rec, SASRec and BERT4Rec trained to convergence on this same split and scored "
        "by genrec's evaluator (the recbole-sequence-peers section, which gives the quality and "
        "time ratios); a floor from PEERS.md (RecBole's own split, capped after a few epochs) "
        "where that run has not finished. Fit time (to "
        "the end of early stopping, 1 thread): "
        + (
            f"median of {repeats} fits, each alone in a fresh process."
            if repeats
            else "one fit, in the benchmark's process."
        ),
        "",
        quality_table(results),
        "",
        *orderings(results),
        "",
        *[line for note in payload.get("notes", []) for line in (note, "")],
        "Configs: "
        + "; ".join(f"`{r['model']}` {json.dumps(r['config'])}" for r in results["results"]),
        "",
    ]
    if tiger:
        cold = tiger["cold"]
        out += [
            "### TIGER: semantic IDs, real items, cold items",
            "",
            f"- Beam-search recommendations (k = 10, test users) that are real catalog "
            f"items: {tiger['real_item_share']:.1%}.",
            f"- Items sharing a semantic ID before the collision digit: "
            f"{tiger['collision_rate']:.1%}.",
            "- Held-out items (the cold-items split: 10% of items never trained on, "
            f"{json.dumps(tiger['cold_info'].get('held_out_items'))}); test targets are "
            "only cold items:",
            "",
            "| model | NDCG@10 | Recall@10 | Recall@20 | Hit@10 |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {k} | {v['ndcg@10']:.4f} | {v['recall@10']:.4f} | {v['recall@20']:.4f} | "
                f"{v['hit@10']:.4f} |"
                for k, v in cold.items()
            ],
            "",
        ]
    out += [
        "### Generation: do sampled continuations follow the real transitions?",
        "",
        "Each test user's history (train + valid, last 50) continued by 10 items sampled "
        "at temperature 1 (`generate(histories, n_steps=10, seed=0)`). A transition is "
        "the pair (previous item, next item), the first one starting from the last history "
        'item; "seen in train" is the share of those pairs that occur as consecutive '
        "items in some training sequence. The real next item (the held-out test item) and "
        "a popularity sampler bracket what real and structure-free sequences give.",
        "",
        generation_table(gen),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    main()
