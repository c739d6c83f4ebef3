"""Interaction-driven generative models on MovieLens-100K: quality bars, speed, generation.

Writes the ``generative`` section of BENCHMARKS.md and ``benchmarks/results/generative.json``:

1. Quality and speed: each generative model of interactions (and EASE, the reference) fitted on the holdout
   split 0.8/0.1/0.1 (split seed 2020, training seed 42, 1 thread) with its default (tuned)
   preset, test metrics with bootstrap intervals, a paired test against EASE (Holm-corrected),
   RecBole 1.2.1's numbers from ../shared/PEERS.md (its own split) and from
   ``benchmarks/recbole_peers.py`` (RecBole trained on genrec's split, if it has run), fit time as the median of ``--repeats``
   runs with the load average beside it, and the process's peak RSS.
2. Generation fidelity: ``--samples`` synthetic users from every model with
   ``sample_profiles``, compared with the real training users: item-popularity divergence and
   rank correlation, user-length distance, and "train on synthetic, test on real" (EASE fitted on
   the samples alone, evaluated on the real test users), beside a popularity sampler that only
   knows the item marginals.
3. Augmentation of sparse data: only ``--sparse-share`` of the users' training rows are kept;
   EASE on them alone vs EASE on them plus synthetic users from a generative model fitted on the
   same rows; EASE's reg chosen on validation for each; paired test on the same test users.
4. Slates (ListCVAE): its generated slates vs greedy top-k of EASE and of its own item scores,
   on slate metrics.

    python benchmarks/generative.py [--repeats 3] [--models multvae,recvae] [--samples 943]
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
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.build import build_model, model_class  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.splits import holdout_split  # noqa: E402
from genrec.evaluation import slates as S  # noqa: E402
from genrec.evaluation.protocol import evaluate  # noqa: E402
from genrec.evaluation.runner import protocol_block, run_benchmark  # noqa: E402
from genrec.evaluation.stats import bootstrap_ci, compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE  # noqa: E402
from genrec.models.neural import draw_profiles, with_synthetic_users  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import (  # noqa: E402
    PEER_NAMES,
    fit_in_fresh_process,
    fmt_ci,
    js_divergence,
    load_average,
    machine_line,
    peer_rows,
    positive_int,
    rounded,
    write_section,
)

GENERATIVE = ["multdae", "cdae", "multvae", "recvae", "diffrec", "ldiffrec", "irgan", "listcvae"]
# the quality bars relative to a reference: (model, reference, kind)
RELATIVE_BARS = [
    ("recvae", "multvae", "at least"),
    ("cdae", "multdae", "at least"),
    ("ldiffrec", "diffrec", "within one interval of"),
]
OPTIONS = RunOptions(seed=42, threads=1)
SPLIT_SEED = 2020
MATCH_MARGIN = 0.01  # "matches EASE": the paired 95% interval of (model - EASE) NDCG@10 > -this


# ---- 1. quality and speed --------------------------------------------------------------------
def quality(
    split, names: list[str], repeats: int, protocol: dict, cache_dir: Path
) -> tuple[dict, list[float]]:
    """Metrics from one in-process run_benchmark; fit time (median) and peak RSS (max) from
    ``repeats`` fits of each model alone in a fresh process."""
    factories = {n: (lambda n=n: build_model(n)) for n in ["ease", *names]}
    result = run_benchmark(split, factories, protocol=protocol, options=OPTIONS)
    results = result.to_dict()
    loads = []
    for row in results["results"]:
        runs = []
        for _ in range(repeats):
            loads.append(load_average())
            runs.append(
                fit_in_fresh_process(
                    row["model"],
                    {},
                    cache_dir=cache_dir,
                    split="holdout",
                    split_seed=SPLIT_SEED,
                    seed=OPTIONS.seed,
                )
            )
        row["fit_seconds_runs"] = [r["seconds"] for r in runs]
        row["fit_seconds"] = statistics.median(row["fit_seconds_runs"])
        row["peak_rss_mb"] = max(r["peak_mb"] for r in runs)  # the fit alone in its process
    ease = result.runs[0].evaluation.per_user
    for metric in ("ndcg@10", "recall@10"):
        versus = compare_with({r.model: r.evaluation.per_user[metric] for r in result.runs}, "ease")
        for run, row in zip(result.runs, results["results"]):
            diff = run.evaluation.per_user[metric] - ease[metric]
            low, high = bootstrap_ci(diff, seed=0)
            row.setdefault("vs_ease", {})[metric] = {**versus[row["model"]], "diff_ci": [low, high]}
    return results, loads


def _versus_ease(vs: dict) -> str:
    if vs["verdict"] == "reference":
        return "reference"
    low, high = vs["diff_ci"]
    p = max(vs["p_t_holm"], vs["p_wilcoxon_holm"])
    verdict = vs["verdict"]
    if verdict != "better" and low > -MATCH_MARGIN:
        verdict = f"matches (within {MATCH_MARGIN})"
    return f"{vs['mean_diff']:+.4f} [{low:+.4f}, {high:+.4f}], p={p:.2g}: {verdict}"


def quality_table(results: dict, peers: dict, split_peers: dict) -> str:
    """``peers``: PEERS.md's rows (RecBole on its own split); ``split_peers``: the rows of
    ``benchmarks/results/recbole_peers.json`` (RecBole on genrec's split, seed means)."""
    lines = [
        "| model | NDCG@10 | Recall@10 | NDCG@20 | Recall@20 | RecBole NDCG@10 / Recall@10 "
        "(PEERS.md) | RecBole on genrec's split NDCG@10 / Recall@10 | bar met (PEERS.md; "
        "genrec's split) / speed | vs EASE: NDCG@10 diff [paired 95% CI], Holm p | "
        "best epoch / run | fit s (median) | RecBole wall s | peak RSS MB |",
        "|" + " --- |" * 13,
    ]
    for r in results["results"]:
        m, peer = r["metrics"], peers.get(PEER_NAMES.get(r["model"], ""))
        same_split = split_peers.get(r["model"])
        bars = []
        for reference in (peer, same_split):
            if reference and r["model"] != "ease":
                met = all(m[k]["mean"] >= reference[k] for k in ("ndcg@10", "recall@10"))
                bars.append("yes" if met else "NO")
            else:
                bars.append("-")
        fast = (
            "-"
            if not peer or peer["wall_s"] is None or r["model"] == "ease"
            else "fast"
            if r["fit_seconds"] <= peer["wall_s"] / 2
            else "SLOW"
        )
        bar = "-" if bars == ["-", "-"] else f"{bars[0]}; {bars[1]} / {fast}"
        versus = _versus_ease(r["vs_ease"]["ndcg@10"])
        epochs = f"{r['best_epoch']} / {r['epochs_run']}" if "best_epoch" in r else "-"
        peer_cell, split_cell = (
            f"{x['ndcg@10']:.4f} / {x['recall@10']:.4f}" if x else "-" for x in (peer, same_split)
        )
        wall = f"{peer['wall_s']:.1f}" if peer and peer["wall_s"] else "-"
        lines.append(
            f"| {r['model']} | {fmt_ci(m['ndcg@10'])} | {fmt_ci(m['recall@10'])} | "
            f"{fmt_ci(m['ndcg@20'])} | {fmt_ci(m['recall@20'])} | {peer_cell} | "
            f"{split_cell} | {bar} | {versus} | {epochs} | {r['fit_seconds']:.2f} | "
            f"{wall} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def recbole_on_our_split() -> dict[str, dict]:
    """RecBole's seed-mean test metrics on genrec's split by genrec model name, from
    ``benchmarks/recbole_peers.py``'s results (empty if it has not run)."""
    path = ROOT / "benchmarks" / "results" / "recbole_peers.json"
    if not path.exists():
        return {}
    return {r["model"]: r["recbole"]["mean"] for r in json.loads(path.read_text())["results"]}


def relative_bars(results: dict) -> list[str]:
    by_name = {r["model"]: r["metrics"]["ndcg@10"] for r in results["results"]}
    lines = []
    for model, ref, kind in RELATIVE_BARS:
        if model not in by_name or ref not in by_name:
            continue
        a, b = by_name[model], by_name[ref]
        ok = (
            a["mean"] >= b["mean"]
            if kind == "at least"
            else abs(a["mean"] - b["mean"]) <= (b["ci_high"] - b["ci_low"]) / 2
        )
        lines.append(
            f"- {model} NDCG@10 {a['mean']:.4f} {kind} {ref}'s {b['mean']:.4f} "
            f"[{b['ci_low']:.4f}, {b['ci_high']:.4f}]: {'yes' if ok else 'NO'}"
        )
    return lines


# ---- 2. generation fidelity ------------------------------------------------------------------
def fidelity(split, names: list[str], n_samples: int) -> list[dict]:
    """Samples of each generative model (and a popularity sampler) against the real users."""
    train = split.train
    real_pop = np.asarray(train.item_counts, np.float64)
    real_len = train.user_counts[train.user_counts > 0]
    rng = np.random.default_rng(0)
    popularity = draw_profiles(
        np.tile(real_pop, (n_samples, 1)), rng.choice(real_len, n_samples), rng
    )
    samplers = {"popularity sampler": lambda: popularity}
    for name in names:
        model_cls = model_class(name)
        if hasattr(model_cls, "sample_profiles"):
            model = build_model(name).fit(train, valid=split.valid, options=OPTIONS)
            samplers[name] = lambda m=model: m.sample_profiles(n_samples, seed=0)
    rows = []
    for name, sample in samplers.items():
        start = time.perf_counter()
        profiles = sample()
        seconds = time.perf_counter() - start
        pop = np.asarray(profiles.sum(axis=0)).ravel()
        lengths = np.diff(profiles.indptr)
        rows.append(
            {
                "sampler": name,
                "seconds": seconds,
                "js_popularity": js_divergence(pop, real_pop),
                "spearman_popularity": float(scipy.stats.spearmanr(pop, real_pop)[0]),
                "ks_length": float(scipy.stats.ks_2samp(lengths, real_len).statistic),
                "items_covered": int((pop > 0).sum()),
                "tstr_ndcg@10": _train_synthetic_test_real(split, profiles),
            }
        )
    return rows


def _train_synthetic_test_real(split, profiles) -> float:
    synthetic = with_synthetic_users(split.train.subset(np.zeros(len(split.train), bool)), profiles)
    model = EASE().fit(synthetic)
    return evaluate(model, split.history("test"), split.test, ks=(10,), metrics=("ndcg",)).mean(
        "ndcg@10"
    )


def fidelity_table(rows: list[dict]) -> str:
    lines = [
        "| sampler | JS divergence of item popularity (0 = same) | Spearman of item popularity "
        "| KS distance of user lengths | items covered | train-on-synthetic test NDCG@10 | "
        "sampling s |",
        "|" + " --- |" * 7,
    ]
    for r in rows:
        lines.append(
            f"| {r['sampler']} | {r['js_popularity']:.4f} | "
            f"{r['spearman_popularity']:.3f} | {r['ks_length']:.3f} | "
            f"{r['items_covered']} | {r['tstr_ndcg@10']:.4f} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines)


# ---- 3. augmentation -------------------------------------------------------------------------
def augmentation(split, names: list[str], share: float, factor: int) -> list[dict]:
    """EASE on a sparse share of the users, alone and with synthetic users added."""
    rng = np.random.default_rng(1)
    kept_users = rng.random(split.train.n_users) < share
    small = split.train.subset(kept_users[split.train.user_idx], name="sparse train")
    small_valid = split.valid.subset(kept_users[split.valid.user_idx], name="sparse valid")
    n_new = factor * int(kept_users.sum())
    variants = {"EASE on the sparse rows": small}
    for name in names:
        if hasattr(model_class(name), "sample_profiles"):
            model = build_model(name).fit(small, valid=small_valid, options=OPTIONS)
            variants[f"+ {n_new} users from {name}"] = with_synthetic_users(
                small, model.sample_profiles(n_new, seed=0)
            )
    rows, per_user = [], {}
    for label, train in variants.items():
        reg, model = _ease_tuned(train, split)
        ev = evaluate(
            model, split.history("test"), split.test, ks=(10,), metrics=("ndcg", "recall")
        )
        per_user[label] = ev.per_user["ndcg@10"]
        low, high = bootstrap_ci(ev.per_user["ndcg@10"], seed=0)
        rows.append(
            {
                "variant": label,
                "reg": reg,
                "ndcg@10": ev.mean("ndcg@10"),
                "ci": [low, high],
                "recall@10": ev.mean("recall@10"),
            }
        )
    versus = compare_with(per_user, next(iter(per_user)))  # Holm over the augmented variants
    for row in rows[1:]:
        row["vs_sparse"] = versus[row["variant"]]
    return rows


def _ease_tuned(train, split):
    """EASE with reg chosen on validation NDCG@10 (valid users' train rows as histories)."""
    best = None
    for reg in (30.0, 100.0, 300.0, 1000.0):
        model = EASE(reg=reg).fit(train)
        score = evaluate(model, split.train, split.valid, ks=(10,), metrics=("ndcg",)).mean(
            "ndcg@10"
        )
        if best is None or score > best[0]:
            best = (score, reg, model)
    return best[1], best[2]


def augmentation_table(rows: list[dict]) -> str:
    lines = [
        "| training data | EASE reg (valid) | test NDCG@10 | test Recall@10 | vs sparse alone |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        vs = r.get("vs_sparse")
        versus = (
            "-"
            if vs is None
            else (f"{vs['mean_diff']:+.4f}, p={vs['p_t_holm']:.3g}: {vs['verdict']}")
        )
        lines.append(
            f"| {r['variant']} | {r['reg']:g} | {r['ndcg@10']:.4f} [{r['ci'][0]:.4f}, "
            f"{r['ci'][1]:.4f}] | {r['recall@10']:.4f} | {versus} |"
        )
    return "\n".join(lines)


# ---- 4. slates -------------------------------------------------------------------------------
def slates(split, k: int = 10) -> list[dict]:
    """ListCVAE's generated slates vs greedy top-k of EASE and of ListCVAE's own item scores."""
    histories = split.history("test")
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)
    rows_in = histories.user_items[users]
    targets = split.test.user_items[users]
    features = (
        split.train.catalog.feature_matrix("genres")
        if split.train.catalog is not None and "genres" in split.train.catalog
        else None
    )
    listcvae = build_model("listcvae").fit(split.train, valid=split.valid, options=OPTIONS)
    ease = build_model("ease").fit(split.train, options=OPTIONS)
    candidates = {
        "ListCVAE slates (r = all clicked, z ~ prior)": lambda: listcvae.generate_slates(
            rows_in, k=k, users=users, seed=0
        ),
        "greedy top-k of ListCVAE's item scores": lambda: S.greedy_slates(
            listcvae, rows_in, k=k, users=users
        ),
        "greedy top-k of EASE": lambda: S.greedy_slates(ease, rows_in, k=k, users=users),
    }
    out = []
    for label, make in candidates.items():
        report = S.slate_report(make(), targets, item_features=features)
        out.append({"slates": label, **report})
    return out


def slates_table(rows: list[dict]) -> str:
    cols = [
        c for c in ("hit", "clicks", "precision", "ndcg", "diversity", "coverage") if c in rows[0]
    ]
    lines = ["| slates | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for r in rows:
        lines.append(f"| {r['slates']} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    return "\n".join(lines)


def write_readme_table(table: str) -> None:
    readme = ROOT / "README.md"
    start, end = "<!-- generative:start -->", "<!-- generative:end -->"
    text = readme.read_text()
    if start in text:
        head, rest = text.split(start, 1)
        body = (
            f"{table}\n\nMovieLens-100K, holdout 0.8/0.1/0.1, test split; generated by "
            "`python benchmarks/generative.py`, details in [BENCHMARKS.md](BENCHMARKS.md)."
        )
        atomic_write(readme, head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1])


# ---- main ------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--models", default=",".join(GENERATIVE))
    p.add_argument("--samples", type=int, default=943, help="synthetic users per model")
    p.add_argument("--sparse-share", type=float, default=0.2)
    p.add_argument("--augment-factor", type=int, default=2)
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    args = p.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    split = holdout_split(data, (0.8, 0.1, 0.1), seed=SPLIT_SEED)
    protocol = protocol_block(data, split, training_seed=OPTIONS.seed)
    print("quality and speed ...", file=sys.stderr)
    results, loads = quality(split, names, args.repeats, protocol, args.cache_dir)
    print("generation fidelity ...", file=sys.stderr)
    fid = fidelity(split, names, args.samples)
    print("augmentation ...", file=sys.stderr)
    aug = augmentation(split, names, args.sparse_share, args.augment_factor)
    slate_rows = slates(split) if "listcvae" in names else []
    loads.append(load_average())
    peers, split_peers = peer_rows(), recbole_on_our_split()
    out = [
        "## Interaction-driven generative models",
        "",
        f"Written by `python benchmarks/generative.py --repeats {args.repeats}` on {started}. "
        + machine_line(results["versions"], loads),
        "",
        "### Quality and speed: MovieLens-100K, holdout 0.8/0.1/0.1, full ranking",
        "",
        f"Split seed {SPLIT_SEED}, training seed {OPTIONS.seed}, each model's default preset "
        "(tuned on the validation split; see each config's docstring). Cells: test mean over "
        'users [bootstrap 95% interval]. "bar met": at least RecBole\'s NDCG@10 and Recall@10, '
        "first as PEERS.md gives them (RecBole on its own split of the same data), then RecBole "
        "trained on genrec's split (mean over seeds; the `recbole-peers` section, "
        "`benchmarks/recbole_peers.py`) / fit (to the end of early stopping, median "
        f"of {args.repeats} fits, each alone in a fresh process) within half of RecBole's wall "
        'time (PEERS.md). "vs EASE": mean per-user difference in NDCG@10 with its paired bootstrap 95% '
        "interval; paired t-test and Wilcoxon, Holm-corrected over the models (the larger p "
        f'shown); "matches" when the interval\'s lower end is above -{MATCH_MARGIN}. Peak RSS: '
        "the fitting process's maximum resident memory (Python, torch and the data included).",
        "",
        quality_table(results, peers, split_peers),
        "",
        *relative_bars(results),
        "",
        "Configs: "
        + "; ".join(f"`{r['model']}` {json.dumps(r['config'])}" for r in results["results"]),
        "",
        "### Generation: synthetic users against the real training users",
        "",
        f"{args.samples} profiles per model (`sample_profiles(n, seed=0)`), compared with the "
        "real training users. Every sampler here draws profile lengths from the real length "
        "distribution, so the KS distance of lengths only checks that plumbing; the item "
        "choices are the model's. The popularity sampler draws items in proportion to their training "
        "counts: it knows the marginals and nothing else, so a model is useful as a generator "
        "where it beats it on train-on-synthetic-test-on-real (EASE fitted on the samples only, "
        "evaluated on the real users' test items; EASE on the real data: "
        f"{next(r['metrics']['ndcg@10']['mean'] for r in results['results'] if r['model'] == 'ease'):.4f}).",
        "",
        fidelity_table(fid),
        "",
        f"### Augmenting sparse data ({args.sparse_share:.0%} of the users' training rows)",
        "",
        f"EASE fitted on the training rows of a random {args.sparse_share:.0%} of the users "
        f"(seed 1), alone and with {args.augment_factor}x as many synthetic users from a "
        "generative model fitted on the same rows; every variant scores all users' real "
        "histories and is evaluated on the full test split. Paired test against the sparse-only "
        "EASE.",
        "",
        augmentation_table(aug),
        "",
    ]
    if slate_rows:
        out += [
            "### Slates: ListCVAE against greedy ranking (k = 10, test users)",
            "",
            "Slate metrics of `genrec.evaluation.slates`, means over test users: hit (any "
            "test item on the slate), clicks (test items on it), precision, NDCG@10 of the "
            "slate read top to bottom, intra-slate genre diversity (1 - mean pairwise "
            "Jaccard), catalog coverage. History items are never on a slate.",
            "",
            slates_table(slate_rows),
            "",
        ]
    write_section("generative", "\n".join(out))
    write_readme_table(quality_table(results, peers, split_peers))
    atomic_write(
        ROOT / "benchmarks" / "results" / "generative.json",
        json.dumps(
            rounded(
                {"quality": results, "fidelity": fid, "augmentation": aug, "slates": slate_rows}
            ),
            default=str,
        ),
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
