"""LLM recommenders on MovieLens-100K: grounded ranking, two-stage reranking, free generation,
rating prediction and speed, with the default language model (base Gemma 3 270M, 1 thread).

Writes the ``llm`` section of BENCHMARKS.md and ``benchmarks/results/llm.json``. Random holdout
0.8/0.1/0.1 (split seed 2020), training seed 42, test part, one fixed sample of users (seed 0):

1. Sampled ranking of 20 candidates (the held-out item + 19 sampled unseen ones,
   ``evaluate_sampled``, candidate seed 0, the same candidates for every model): zero-shot and
   few-shot grounded LLM ranking beside popularity and EASE; bootstrap intervals, paired tests
   against EASE (Holm-corrected); seconds per user to score the 20 candidates.
2. Full ranking of the two-stage pipeline (EASE proposes 20 unseen candidates, the LLM reranks
   them: pointwise likelihood and listwise letters) vs EASE alone on the same users, paired tests.
3. Free generation: titles generated per user, the share that match no catalog item
   (hallucinations), the share repeating the user's history, and the hit rate of the matched ones.
4. Rating prediction by prompt (expected rating over "1".."5") on a sample of test ratings:
   RMSE/MAE beside the global-mean and user-mean predictors.
5. Held-out (cold-start) items: 10% of the items never trained on (split seed 0); the same
   sampled ranking of 20 candidates for a sample of users with a held-out test item.

    python benchmarks/llm.py [--users 200] [--free-users 30] [--ratings 200] [--lm SPEC]
                             [--only free]
"""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.data import sources  # noqa: E402
from genrec.data.splits import held_out_items_split, holdout_split  # noqa: E402
from genrec.evaluation.protocol import evaluate, evaluate_sampled  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE, LLMRecommender, Pop  # noqa: E402
from genrec.models.language.llm import title_index, title_key  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.pipelines.two_stage import TwoStage  # noqa: E402
from genrec.text.backends import BACKENDS, get_language_model  # noqa: E402

from common import (  # noqa: E402
    BENCHMARKS_MD,
    fmt_ci,
    fmt_test,
    load_average,
    results_json,
    summary,
    write_section,
)

OPTIONS = RunOptions(seed=42, threads=1)
SAMPLED_KS = (1, 5, 10)


def make_lm(spec: str):
    """The language model of ``spec`` with 1 thread (the transformers backend is used directly
    when it is not registered yet)."""
    backend, _, arg = spec.partition(":")
    if backend == "fake":
        return get_language_model(spec)
    if backend == "transformers" and backend not in BACKENDS:
        from genrec.text.transformers_lm import TransformersLM

        return TransformersLM(arg or "gemma-3-270m", threads=1)
    return get_language_model(spec, threads=1)


# ---- 1. sampled ranking of 20 candidates -----------------------------------------------------
def sampled(split, users, models: dict) -> dict:
    history = split.history("test")
    out = {}
    for label, model in models.items():
        ev = evaluate_sampled(model, history, split.test, users=users, seed=0, ks=SAMPLED_KS)
        out[label] = {"per_user": ev.per_user, "seconds_per_user": ev.score_seconds / len(ev.users)}
        print(
            f"[sampled] {label}: ndcg@10 {ev.mean('ndcg@10'):.4f} hit@1 {ev.mean('hit@1'):.4f} "
            f"{out[label]['seconds_per_user']:.3f} s/user",
            file=sys.stderr,
            flush=True,
        )
    return out


# ---- 2. two-stage pipeline in full ranking ---------------------------------------------------
def two_stage(split, users, lm, ease, shots: int) -> dict:
    models = {"ease": ease}
    for mode, label in (("grounded", "pointwise"), ("listwise", "listwise")):
        llm = LLMRecommender(lm="fake", shots=shots, mode=mode, language_model=lm)
        models[f"ease+llm ({label})"] = TwoStage(  # the reranker's own order: no fusion
            retriever=ease, reranker=llm, n_candidates=20, fusion="none"
        ).fit(split.train, options=OPTIONS)
    return full_ranking(split, users, models)


def full_ranking(split, users, models: dict) -> dict:
    """Full-ranking test metrics of each model for ``users``: per-user values and s / user."""
    history = split.history("test")
    out = {}
    for label, model in models.items():
        ev = evaluate(
            model,
            history,
            split.test,
            users=users,
            ks=(10, 20),
            metrics=("ndcg", "recall", "mrr", "hit"),
        )
        out[label] = {"per_user": ev.per_user, "seconds_per_user": ev.score_seconds / len(ev.users)}
        print(
            f"[two-stage] {label}: ndcg@10 {ev.mean('ndcg@10'):.4f} "
            f"{out[label]['seconds_per_user']:.3f} s/user",
            file=sys.stderr,
            flush=True,
        )
    return out


# ---- 3. free generation ----------------------------------------------------------------------
def free_generation(split, users, lm, k: int) -> dict:
    model = LLMRecommender(
        lm="fake", mode="free", n_generate=k, tokens_per_title=16, language_model=lm
    ).fit(split.train, options=OPTIONS)
    history = split.history("test").user_item_order[users]
    targets = split.test.user_items[users]
    start = time.perf_counter()
    generated = model.generate_titles(history, k=k)
    seconds = time.perf_counter() - start
    hits = [
        bool(set(items.tolist()) & set(targets[r].indices.tolist()))
        for r, items in enumerate(generated.items)
    ]
    n_titles = generated.n_titles
    index = title_index(model.titles_, model.popularity_)
    unmatched_difflib = sum(
        difflib_match(t, index, model.config.match_cutoff) < 0
        for titles in generated.titles
        for t in titles
    )
    example = {
        "history": model.history_titles(history[0])[-5:],
        "generated": generated.titles[0],
        "unmatched": generated.unmatched[0],
    }
    return {
        "users": len(users),
        "k": k,
        "titles": n_titles,
        "hallucinated": generated.n_hallucinated,
        "hallucination_rate": generated.n_hallucinated / max(n_titles, 1),
        "hallucination_rate_difflib": unmatched_difflib / max(n_titles, 1),
        "match_cutoff": model.config.match_cutoff,
        "history_repeat_rate": model.generation_stats_["history_repeats"] / max(n_titles, 1),
        "titles_per_user": n_titles / len(users),
        "hit_rate": float(np.mean(hits)),
        "seconds_per_user": seconds / len(users),
        "example": example,
    }


def difflib_match(title: str, index: dict[str, int], cutoff: float) -> int:
    """The item of ``title`` by the earlier matcher (exact key, else difflib's closest key with
    ratio >= ``cutoff``), or -1: reported beside the library's rapidfuzz matcher."""
    key = title_key(title)
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, list(index), n=1, cutoff=cutoff) if key else []
    return index[close[0]] if close else -1


# ---- 4. rating prediction --------------------------------------------------------------------
def ratings(split, lm, n: int) -> dict:
    model = LLMRecommender(lm="fake", language_model=lm).fit(split.train, options=OPTIONS)
    history = split.history("test")
    pick = np.random.default_rng(0).choice(len(split.test), n, replace=False)
    users, items = split.test.user_idx[pick], split.test.item_idx[pick]
    truth = split.test.value[pick].astype(np.float64)
    start = time.perf_counter()
    predicted = model.predict_ratings(history.ratings[users], users=users, items=items)
    seconds = time.perf_counter() - start
    train_ratings = history.ratings
    global_mean = float(train_ratings.data.mean())
    sums, counts = np.asarray(train_ratings.sum(axis=1)).ravel(), np.diff(train_ratings.indptr)
    user_mean = np.where(counts[users] > 0, sums[users] / np.maximum(counts[users], 1), global_mean)

    def errors(p):
        return {
            "rmse": float(np.sqrt(np.mean((p - truth) ** 2))),
            "mae": float(np.mean(np.abs(p - truth))),
        }

    return {
        "pairs": n,
        "llm": errors(predicted),
        "global_mean": errors(np.full(n, global_mean)),
        "user_mean": errors(user_mean),
        "prediction_mean": float(predicted.mean()),
        "prediction_std": float(predicted.std()),
        "seconds_per_rating": seconds / n,
    }


# ---- 5. held-out items -----------------------------------------------------------------------
def cold_items(data, lm, n_users: int) -> tuple[dict, dict]:
    split = held_out_items_split(data, 0.1, seed=0)
    eligible = np.flatnonzero(split.test.user_counts > 0)
    users = np.sort(
        np.random.default_rng(0).choice(eligible, min(n_users, len(eligible)), replace=False)
    )
    models = {
        "pop": Pop().fit(split.train, options=OPTIONS),
        "ease": EASE().fit(split.train, options=OPTIONS),
        "llm zero-shot": LLMRecommender(lm="fake", language_model=lm).fit(
            split.train, options=OPTIONS
        ),
    }
    return sampled(split, users, models), {**split.info, "users": len(users)}


# ---- report ----------------------------------------------------------------------------------
def table(results: dict, metrics: list[str], reference: str) -> list[str]:
    tests = compare_with({m: r["per_user"][metrics[0]] for m, r in results.items()}, reference)
    lines = [
        "| model | " + " | ".join(metrics) + f" | vs {reference} ({metrics[0]} diff, Holm p) "
        "| s / user |",
        "|" + " --- |" * (len(metrics) + 3),
    ]
    for label, r in results.items():
        cells = [fmt_ci(summary(r["per_user"][m])) for m in metrics]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {fmt_test(tests.get(label))} | "
            f"{r['seconds_per_user']:.3f} |"
        )
    return lines


def free_paragraph(free: dict) -> str:
    """Section 3's text from :func:`free_generation`'s result."""
    return (
        f"{free['users']} test users, {free['k']} titles asked each (greedy decoding, at most "
        f"{free['k'] * 16} new tokens): {free['titles']} titles parsed "
        f"(distinct titles per user: {free['titles_per_user']:.1f}; the model often repeats one "
        "title). **Hallucination rate "
        f"{free['hallucination_rate']:.1%}** ({free['hallucinated']} titles match no catalog item "
        f"by fuzzy matching: rapidfuzz's normalised Indel similarity >= {free['match_cutoff']} after "
        "normalising case, "
        "punctuation, accents, articles and years; difflib's ratio, the matcher used before, "
        f"leaves {free['hallucination_rate_difflib']:.1%} of the same titles unmatched); "
        f"{free['history_repeat_rate']:.1%} of the titles repeat a movie of "
        f"the user's history; hit rate (a held-out test item among the matched ones) "
        f"{free['hit_rate']:.1%}; {free['seconds_per_user']:.1f} s per user. Example: history "
        f"... {json.dumps(free['example']['history'])} -> generated "
        f"{json.dumps(free['example']['generated'])}."
    )


def markdown(res: dict) -> str:
    v, a = res["versions"], res["args"]
    free, rat = res["free"], res["ratings"]
    zero = res["sampled"]["llm zero-shot"]["seconds_per_user"]
    lines = [
        "## LLM recommenders",
        "",
        f"Script: `benchmarks/llm.py`; written {res['written']}. MovieLens-100K, random holdout "
        "0.8/0.1/0.1 (split seed 2020), training seed 42, test part; the same "
        f"{res['n_users']} test users (sampled with seed 0) in sections 1 and 2. Language model: "
        f"`{a['lm']}` (base Gemma 3 270M in bfloat16 through transformers unless stated), as a "
        "likelihood scorer; prompts list the user's 10 most recent titles, oldest first, every "
        "title quoted and escaped (`genrec.text.prompts`). Intervals: 95% bootstrap over users; "
        "paired t-test and Wilcoxon against the reference, Holm-corrected (the larger p shown; * = "
        "p < 0.05).",
        "",
        f"Machine: {v['cpu_count']} cores shared with other jobs, {v['platform']}, Python "
        f"{v['python']}, torch {v['torch']}, genrec {v['genrec']}; 1 thread; peak RSS of the "
        f"process {res['peak_rss_mb']:.0f} MB; 1-minute load average: "
        + ", ".join(f"{x:.2f}" for x in res["loads"])
        + ".",
        "",
        "### 1. Ranking 20 candidates (held-out item + 19 sampled)",
        "",
        *table(res["sampled"], ["ndcg@10", "hit@1", "hit@5", "mrr@10"], "ease"),
        "",
        f"Few-shot = {a['shots']} in-context examples (other training users' last 10 titles -> "
        "their next one), fixed at fit with seed 42. Random order would give NDCG@10 0.227 and "
        "Hit@1 0.05. s / user: wall time to score one user's 20 candidates (for the LLM: one "
        f"prompt pass, KV cache shared by the 20 titles). **Reranking 20 candidates: {zero:.2f} s "
        "per user zero-shot** (issue target: under 1 s).",
        "",
        "### 2. Two-stage pipeline (EASE proposes 20, the LLM reranks), full ranking",
        "",
        'The pipelines here are the reranker\'s own order (`fusion="none"`); the default '
        "pipeline fuses it with the retriever's scores (the rerank section).",
        "",
        *table(res["two_stage"], ["ndcg@10", "recall@10", "mrr@10", "ndcg@20"], "ease"),
        "",
        "Items outside the 20 candidates rank after them in EASE's order, so Recall@20 equals "
        "EASE's by construction; the reranker can only reorder the top 20. Pointwise: the "
        "likelihood of each title; listwise: one prompt listing the candidates under letters "
        "A-T in EASE's order, ordered by the probability of each letter.",
        "",
        "### 3. Free generation",
        "",
        free_paragraph(free),
        "",
        "### 4. Rating prediction by prompt",
        "",
        "| predictor | RMSE | MAE |",
        "| --- | --- | --- |",
        *[
            f"| {label} | {rat[key]['rmse']:.4f} | {rat[key]['mae']:.4f} |"
            for label, key in (
                ("LLM expected rating (1..5)", "llm"),
                ("global mean", "global_mean"),
                ("user mean", "user_mean"),
            )
        ],
        "",
        f"{rat['pairs']} test ratings sampled with seed 0; the prompt lists 10 of the user's rated "
        "titles with their ratings. LLM predictions: mean "
        f"{rat['prediction_mean']:.2f}, standard deviation {rat['prediction_std']:.2f}; "
        f"{rat['seconds_per_rating']:.2f} s per rating.",
        "",
        "### 5. Held-out (cold-start) items, ranking 20 candidates",
        "",
        *table(res["cold"], ["ndcg@10", "hit@1", "hit@5", "mrr@10"], "ease"),
        "",
        f"Split: {res['cold_info']['held_out_items']['test']} test items never seen in training "
        f"(held-out-items split, 10% of the items, seed 0); {res['cold_info']['users']} users with "
        "a held-out test item (seed 0); each user's target is a held-out item, the 19 negatives "
        "are sampled from all unseen items (mostly trained ones). Popularity and EASE have no "
        "signal for an item they never saw (it scores 0 and ties are broken at random among "
        "equals, usually below every trained negative); the LLM scores it from its title alone.",
    ]
    return "\n".join(lines)


def rerun_free(split, users, lm, args) -> int:
    """Section 3 alone: its paragraph of the llm section and the ``free`` entry of llm.json."""
    free = free_generation(split, users, lm, args.free_k)
    free["written"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = free_paragraph(free)
    print(text)
    if args.no_write:
        return 0
    start, end = "<!-- section:llm -->", "<!-- /section:llm -->"
    section = BENCHMARKS_MD.read_text().split(start, 1)[1].split(end, 1)[0]
    head, rest = section.split("### 3. Free generation\n\n", 1)
    section = head + "### 3. Free generation\n\n" + text + "\n\n" + rest.split("\n\n", 1)[1]
    write_section("llm", section)
    path = ROOT / "benchmarks" / "results" / "llm.json"
    saved = json.loads(path.read_text())
    saved["free"] = free
    atomic_write(path, json.dumps(saved, indent=2, default=float))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--free-users", type=int, default=30)
    parser.add_argument("--free-k", type=int, default=5)
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--lm", default="transformers:gemma-3-270m")
    parser.add_argument("--cache-dir", default="/tmp/gcache")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument(
        "--only",
        choices=["free"],
        help="re-run one section: its paragraph in "
        "BENCHMARKS.md and its entry of llm.json are replaced, the rest kept",
    )
    args = parser.parse_args(argv)
    OPTIONS.apply_threads()
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    split = holdout_split(data, (0.8, 0.1, 0.1), seed=2020)
    eligible = np.flatnonzero(split.test.user_counts > 0)
    users = np.sort(
        np.random.default_rng(0).choice(eligible, min(args.users, len(eligible)), replace=False)
    )
    lm = make_lm(args.lm)
    if args.only == "free":
        return rerun_free(split, users[: args.free_users], lm, args)
    loads = [load_average()]
    ease = EASE().fit(split.train, options=OPTIONS)
    models = {
        "pop": Pop().fit(split.train, options=OPTIONS),
        "ease": ease,
        "llm zero-shot": LLMRecommender(lm="fake", language_model=lm).fit(
            split.train, options=OPTIONS
        ),
        f"llm {args.shots}-shot": LLMRecommender(
            lm="fake", shots=args.shots, language_model=lm
        ).fit(split.train, options=OPTIONS),
    }
    res = {
        "args": vars(args),
        "n_users": len(users),
        "versions": library_versions(),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    res["versions"].setdefault("platform", platform.platform())
    res["sampled"] = sampled(split, users, models)
    loads.append(load_average())
    res["two_stage"] = two_stage(split, users, lm, ease, shots=0)
    loads.append(load_average())
    res["free"] = free_generation(split, users[: args.free_users], lm, args.free_k)
    print(f"[free] {res['free']}", file=sys.stderr, flush=True)
    res["ratings"] = ratings(split, lm, args.ratings)
    res["cold"], res["cold_info"] = cold_items(data, lm, args.users)
    print(f"[ratings] {res['ratings']}", file=sys.stderr, flush=True)
    loads.append(load_average())
    res["loads"] = loads
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = markdown(res)
    print(text)
    if not args.no_write:
        write_section("llm", text)
        atomic_write(ROOT / "benchmarks" / "results" / "llm.json", results_json(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
