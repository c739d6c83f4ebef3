"""Tuned LLM recommenders on MovieLens-100K: LoRA-tuned Gemma 3 270M vs the same model zero- and
few-shot, in the sampled protocol and the two-stage pipeline; cold-start users; LoRA vs soft
prompt tuning throughput and memory (1 thread).

Writes the ``tuning`` section of BENCHMARKS.md and ``benchmarks/results/tuning.json``.

* Data: random holdout 0.8/0.1/0.1 (split seed 2020). The tuning examples come from the training
  interactions of the users who are *not* held out by the cold-start split below (so the tuned
  models never saw a cold-start user, nor any valid/test interaction); P5-style paraphrased
  templates, 5 history titles.
* Tuning (:data:`ADAPTERS`): three LoRA adapters, each in a fresh process with a fixed step
  budget (``--steps``), batch 4, early stopping on the validation answer loss: the next-item task
  (the next title as the answer), TALLRec's yes/no task with EASE-retrieved "No" items (hard
  negatives), and LlamaRec's listwise task over EASE's shortlist. CPU minutes and examples used
  are reported.
* 1. Sampled ranking of 20 candidates (test item + 19 sampled; ``evaluate_sampled`` seed 0; the
  same 200 test users, seed 0, as benchmarks/llm.py): each tuned model vs its untuned self
  (next-item: title likelihood, zero- and 3-shot; yes/no: log-odds of Yes), popularity, EASE.
* 2. Two-stage (EASE's top 20 reranked pointwise by each LLM), full ranking, same users.
* 3. Cold-start users: held-out-users split (20% of users, seed 0); each test user's history
  is the first 1-5 (drawn uniformly, seed 0) of their fold-in interactions; sampled ranking of
  20 candidates: tuned LLM vs EASE vs dense retrieval (MiniLM title embeddings) vs zero-shot.
* 4. Throughput (tokens/s) and peak memory of LoRA vs prompt tuning: a short run of each in a
  fresh process.

    python benchmarks/tuning.py [--steps 320] [--lr 5e-4] [--users 200]
                                [--adapter next-item=DIR --adapter preference=DIR (skip tuning)]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from llm import full_ranking, sampled  # noqa: E402

from genrec.build import build_model  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.dataset import Split  # noqa: E402
from genrec.data.splits import held_out_users_split, holdout_split  # noqa: E402
from genrec.evaluation.protocol import evaluate_sampled  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE, LLMRecommender, Pop  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.pipelines.two_stage import TwoStage  # noqa: E402

from common import fmt_ci, fmt_test, load_average, results_json, summary, write_section  # noqa: E402

OPTIONS = RunOptions(seed=42, threads=1)
CACHE = "/tmp/gcache"
COLD_SHARE, COLD_SEED = 0.2, 0


def splits(cache_dir: str):
    """(ML-100K, holdout split, cold-start split, tuning split): the tuning split's train and
    valid parts drop every user the cold-start split holds out."""
    data = sources.load("ml-100k", cache_dir=cache_dir)
    split = holdout_split(data, (0.8, 0.1, 0.1), seed=2020)
    cold = held_out_users_split(data, COLD_SHARE, seed=COLD_SEED)
    cold_users = np.unique(np.r_[cold.valid.user_idx, cold.test.user_idx, cold.fold_in.user_idx])
    keep = lambda part: part.subset(~np.isin(part.user_idx, cold_users))  # noqa: E731
    tuning = Split(
        keep(split.train), keep(split.valid), split.test.subset(np.zeros(len(split.test), bool))
    )
    return data, split, cold, tuning


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# ---- tuning (run in a fresh process) -----------------------------------------------------------
# The adapters compared: the next-item task (the title as the answer, candidates in some
# templates drawn uniformly) and TALLRec's yes/no task with EASE's top-20 items as the "No"
# examples (hard negatives, what a reranker meets over EASE's shortlist); every interaction is a
# "Yes" (like_threshold 1), as every interaction is a positive in the ranking protocol; and
# LlamaRec's listwise task over EASE's top 20 in EASE's order (prompts 3x longer: 200 steps).
ADAPTERS = {
    "next-item": {"task": "next-item"},
    "preference": {"task": "preference", "negatives": "retrieved", "like_threshold": 1.0},
    "listwise": {
        "task": "listwise",
        "negatives": "retrieved",
        "n_candidates": 20,
        "max_length": 512,
        "max_steps": 200,
    },
}
# Honest listwise data for the rerank benchmark (not part of this section's runs): shortlists
# from 5 EASE copies, each fitted without one fold of users (a case's shortlist never comes
# from an EASE that saw its user, target included); learned from the target alone, or also
# from EASE's ranking of the shortlist (distillation, half the loss).
LISTWISE_HONEST = {**ADAPTERS["listwise"], "folds": 5}
# listwise-residual: the LM learns what EASE's ranking misses (the target under softmax(log
# EASE prior + LM letters)), the shortlist listed in a random order so the letters carry no
# trace of EASE's ranks. Temperature 2: the maximum-likelihood temperature of EASE's own
# softmax over these training shortlists (cross-entropy of the target 2.852 at 2, 2.885 at
# 1.5, 2.862 at 3, 3.090 at 1; uniform 2.996).
RERANK_ADAPTERS = {
    "listwise-target": LISTWISE_HONEST,
    "listwise-distilled": {**LISTWISE_HONEST, "distill": 0.5, "teacher_temperature": 1.0},
    "listwise-residual": {
        **LISTWISE_HONEST,
        "residual": True,
        "shuffle_candidates": True,
        "teacher_temperature": 2.0,
    },
}
# The same, with the test prompt's 10 history titles (not 5) and trained for --steps (with
# early stopping on the validation loss): does more tuning teach the LM what EASE misses?
RERANK_ADAPTERS["listwise-residual-long"] = {
    **RERANK_ADAPTERS["listwise-residual"],
    "history_len": 10,
}


def train(
    output: str,
    adapter: str,
    steps: int,
    cache_dir: str,
    eval_every: int,
    lr: float,
    time_budget: float = 0.0,
) -> dict:
    import torch

    from genrec.tuning.tuner import TuneConfig, tune

    torch.set_num_threads(1)
    _, _, _, tuning = splits(cache_dir)
    config = TuneConfig(
        **{
            "method": "lora",
            "max_steps": steps,
            "eval_every": eval_every,
            "checkpoint_every": eval_every,
            "n_valid": 48,
            "per_user": 4,
            "history_len": 5,
            "learning_rate": lr,
            "patience": 3,
            "time_budget": time_budget,
            **{**ADAPTERS, **RERANK_ADAPTERS}[adapter],
            **({"max_steps": steps} if adapter.startswith("listwise-residual") else {}),
        }
    )
    cpu = time.process_time()
    result = tune(
        tuning,
        config,
        output=output,
        options=RunOptions(seed=42, threads=1),
        on_log=lambda e: print(json.dumps(e), file=sys.stderr, flush=True),
    )
    return {
        "method": "lora",
        "adapter": adapter,
        **({"prior_valid_loss": prior_valid_loss(tuning, config)} if config.residual else {}),
        "steps": result.steps,
        "best_step": result.best_step,
        "best_valid_loss": result.best_valid_loss,
        "train_examples": result.train_examples,
        "examples_seen": result.steps * config.batch_size * config.grad_accum,
        "valid_examples": result.valid_examples,
        "skipped_long": result.skipped_long,
        "seconds": result.seconds,
        "cpu_minutes": (time.process_time() - cpu) / 60,
        "tokens_per_second": result.tokens_per_second,
        "stopped_early": result.stopped_early,
        "trainable_parameters": result.trainable_parameters,
        "peak_mb": peak_mb(),
        "log": result.log,
        "config": config.to_dict(),
    }


def prior_valid_loss(tuning, config) -> float:
    """The residual adapter's reference: the validation loss of EASE's softmax alone (the LM
    adding nothing) on the validation examples the tuner validates on (same seed and folds)."""
    from genrec.tuning.instructions import build_examples
    from genrec.tuning.tuner import _retriever

    options = RunOptions(seed=42, threads=1)
    examples = build_examples(
        tuning,
        "listwise",
        part="valid",
        seed=options.seed,
        per_user=config.per_user,
        history_len=config.history_len,
        n_candidates=config.n_candidates,
        retriever=_retriever(tuning, config, options),
        teacher_temperature=config.teacher_temperature,
        shuffle=config.shuffle_candidates,
    )[: config.n_valid]
    return float(np.mean([-np.log(e.teacher[e.choices.index(e.answer)]) for e in examples]))


def in_fresh_process(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- evaluations -------------------------------------------------------------------------------
def llm(lm, shots: int = 0, mode: str = "grounded") -> LLMRecommender:
    return LLMRecommender(lm="fake", language_model=lm, shots=shots, history_len=5, mode=mode)


def two_stage(split, users, ease, llms: dict) -> dict:
    models = {"ease": ease}
    for label, reranker in llms.items():
        models[f"ease+{label}"] = TwoStage(  # the reranker's own order: no fusion
            retriever=ease, reranker=reranker, n_candidates=20, fusion="none"
        ).fit(split.train, options=OPTIONS)
    return full_ranking(split, users, models)


def cold_start(cold, llms: dict, max_users: int | None = None) -> tuple[dict, dict]:
    """Sampled ranking for cold-start test users with 1-5 history interactions."""
    rng = np.random.default_rng(COLD_SEED)
    fold = cold.fold_in
    order = np.lexsort((fold.timestamp, fold.user_idx))
    keep = np.zeros(len(fold), bool)
    users = np.intersect1d(np.unique(cold.test.user_idx), np.unique(fold.user_idx))[:max_users]
    n_keep = dict(zip(users.tolist(), rng.integers(1, 6, len(users)).tolist()))
    rank = np.zeros(len(fold), np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(fold.user_idx[order])) + 1]
    for s, e in zip(starts, np.r_[starts[1:], len(order)]):
        rank[order[s:e]] = np.arange(e - s)
    keep = rank < np.array([n_keep.get(int(u), 0) for u in fold.user_idx])
    history = cold.train.concat(fold.subset(keep))
    models = {
        "pop": Pop().fit(cold.train, options=OPTIONS),
        "ease": EASE().fit(cold.train, options=OPTIONS),
        "dense": build_model("dense", {}).fit(cold.train, options=OPTIONS),
    }
    for label, reranker in llms.items():
        models[label] = reranker.fit(cold.train, options=OPTIONS)
    out = {}
    for label, model in models.items():
        ev = evaluate_sampled(model, history, cold.test, users=users, seed=0, ks=(1, 5, 10))
        out[label] = {"per_user": ev.per_user, "seconds_per_user": ev.score_seconds / len(ev.users)}
        print(f"[cold] {label}: ndcg@10 {ev.mean('ndcg@10'):.4f}", file=sys.stderr, flush=True)
    lengths = np.array([n_keep[int(u)] for u in users])
    return out, {"users": len(users), "mean_history": float(lengths.mean())}


# ---- report ------------------------------------------------------------------------------------
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


PAIRS = [
    ("llm LoRA next-item", "llm zero-shot"),
    ("llm yes/no LoRA", "llm yes/no zero-shot"),
    ("llm listwise LoRA", "llm listwise zero-shot"),
]


def self_comparison(res: dict) -> list[str]:
    """Each tuned model against its untuned self (same prompt, same scoring), in every setting."""
    lines = [
        "| tuned vs untuned | setting | NDCG@10 tuned | NDCG@10 untuned | diff, p |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting, key, prefix in (
        ("20 candidates", "sampled", ""),
        ("two-stage over EASE's 20", "two_stage", "ease+"),
        ("cold-start users", "cold", ""),
    ):
        for tuned, untuned in PAIRS:
            a, b = res[key][prefix + tuned]["per_user"], res[key][prefix + untuned]["per_user"]
            test = compare_with({tuned: a["ndcg@10"], untuned: b["ndcg@10"]}, untuned)[tuned]
            lines.append(
                f"| {tuned} vs {untuned} | {setting} | {fmt_ci(summary(a['ndcg@10']))} | "
                f"{fmt_ci(summary(b['ndcg@10']))} | {fmt_test(test)} |"
            )
    return lines


def tuning_runs(res: dict) -> list[str]:
    lines = [
        "| adapter | task, negatives | examples built | examples seen (steps) | wall min | "
        "CPU min | tokens/s | peak RSS MB | valid answer loss by step (best) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in res["train"].items():
        c = t["config"]
        losses = ", ".join(
            f"{e['step']}: {e['valid_loss']:.3f}" for e in t["log"] if "valid_loss" in e
        )
        lines.append(
            f"| {name} | {c['task']}, {c.get('negatives', 'uniform')} | {t['train_examples']:,} | "
            f"{t['examples_seen']:,} ({t['steps']}) | {t['seconds'] / 60:.1f} | "
            f"{t['cpu_minutes']:.1f} | {t['tokens_per_second']:.0f} | {t['peak_mb']:.0f} | "
            f"{losses} ({t['best_step']}{', stopped early' if t['stopped_early'] else ''}) |"
        )
    return lines


def markdown(res: dict) -> str:
    v = res["versions"]
    c = next(iter(res["train"].values()))["config"]
    thr = res["throughput"]
    lines = [
        "## Tuned LLM recommenders",
        "",
        f"Script: `benchmarks/tuning.py`; written {res['written']}. MovieLens-100K, random holdout "
        "0.8/0.1/0.1 (split seed 2020), test part. Base model: Gemma 3 270M (base, bfloat16, "
        "transformers + PEFT), 1 thread. Intervals: 95% bootstrap over users; paired t-test and "
        "Wilcoxon, Holm-corrected (larger p shown; * = p < 0.05).",
        "",
        f"Machine: {v['cpu_count']} cores shared with other jobs, {v['platform']}, Python "
        f"{v['python']}, torch {v['torch']}, genrec {v['genrec']}; 1-minute load average: "
        + ", ".join(f"{x:.2f}" for x in res["loads"])
        + ".",
        "",
        "### Tuning runs",
        "",
        f"All LoRA r={c['r']}, alpha={c['alpha']}, dropout={c['dropout']} on "
        f"{', '.join(c['target_modules'])}; AdamW lr {c['learning_rate']}, {c['warmup_steps']} "
        f"warm-up steps, batch {c['batch_size']}, at most {c['max_steps']} steps, validation "
        f"answer loss every {c['eval_every']} steps (early stopping, patience {c['patience']}); "
        f"{c['history_len']} history titles; {c['per_user']} examples per training user "
        "(users held out by the cold-start split excluded); the loss covers the answer's tokens "
        "only. **next-item**: the answer is the next title; "
        f"{len(res['templates']['next-item'])} paraphrased templates, template 0 = the LLM "
        "recommender's own prompt, two list 10 candidates (9 drawn uniformly). **preference** "
        f'(TALLRec): "Will this fan like <title>? Answer Yes or No:", '
        f"{len(res['templates']['preference'])} templates, template 0 = the recommender's "
        '`mode="preference"` prompt; half the questions ask about the real next item (Yes; '
        "every interaction counts as liked, as in the ranking protocol), half about one of "
        f"EASE's top {c.get('n_hard', 20)} unseen items for the same history (No: hard "
        "negatives, what a reranker meets over EASE's shortlist). The tuned rankers score "
        "exactly the prompt they were tuned on: next-item by the title's likelihood, yes/no by "
        "log p(Yes) - log p(No), listwise by the probability of each candidate's letter. "
        "**listwise** (LlamaRec): the recommender's listwise prompt (plus one paraphrase) with "
        "EASE's top 20 unseen items for the history under letters A-T in EASE's order, the "
        "target's letter as the answer; cases whose target EASE does not shortlist are dropped "
        "(as in LlamaRec). EASE here is fitted on the training part, so it shortlists training "
        "targets more easily than test ones. Listwise adapters tuned on honest shortlists (5 "
        "EASE copies, each fitted without one fold of users) from the target alone or distilled "
        "from EASE's ranking, under a time budget, are measured in the section \"Generative "
        'reranking over EASE, fused and unfused".',
        "",
        *tuning_runs(res),
        "",
        "### 1. Ranking 20 candidates (held-out item + 19 sampled)",
        "",
        *table(res["sampled"], ["ndcg@10", "hit@1", "hit@5", "mrr@10"], "llm zero-shot"),
        "",
        f"{res['n_users']} test users (seed 0, as in the `llm` section); every LLM row uses the "
        "5 most recent titles (the `llm` section uses 10). 3-shot: three other training users' "
        "histories and next titles in the next-item prompt. Tuned models are "
        "`TunedLM.load(adapter)`: the LoRA update merged into the bfloat16 base weights at load, "
        "so they score as fast as the base model.",
        "",
        "### 2. Two-stage pipeline (EASE proposes 20, the LLM reranks pointwise), full ranking",
        "",
        *table(res["two_stage"], ["ndcg@10", "recall@10", "mrr@10", "ndcg@20"], "ease"),
        "",
        "### 3. Cold-start users (1-5 interactions), ranking 20 candidates",
        "",
        *table(res["cold"], ["ndcg@10", "hit@1", "hit@5", "mrr@10"], "ease"),
        "",
        f"Held-out-users split ({COLD_SHARE:.0%} of users, seed {COLD_SEED}); "
        f"{res['cold_info']['users']} test users, each with only the first 1-5 of their fold-in "
        f"interactions as history (mean {res['cold_info']['mean_history']:.1f}); none of them was "
        "in the tuning data. Dense: MiniLM embeddings of titles, the history's mean as the query.",
        "",
        "### Each tuned model against its untuned self",
        "",
        *self_comparison(res),
        "",
        "### 4. Training throughput and memory: LoRA vs prompt tuning",
        "",
        "| method | trainable parameters | tokens/s (training steps) | s / step | peak RSS MB |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {m} | {r['trainable_parameters']:,} | {r['train_tokens_per_s']:.0f} | "
            f"{r['seconds_per_step']:.2f} | {r['peak_mb']:.0f} |"
            for m, r in thr.items()
        ],
        "",
        f"Each a fresh process, {res['throughput_steps']} steps of batch 4 on the same next-item "
        "examples (prompts of about 100 tokens), 1 thread; LoRA as above; prompt tuning with "
        f"{res['throughput'].get('prompt', {}).get('n_virtual_tokens', 20)} virtual tokens. "
        "Peak RSS includes the bf16 base model (about 0.55 GB of weights).",
    ]
    return "\n".join(lines)


def throughput(method: str, steps: int, cache_dir: str) -> dict:
    import torch

    from genrec.tuning.tuner import TuneConfig, tune

    torch.set_num_threads(1)
    _, _, _, tuning = splits(cache_dir)
    config = TuneConfig(
        method=method,
        max_steps=steps,
        eval_every=10_000,
        n_valid=1,
        checkpoint_every=10_000,
        per_user=1,
        history_len=5,
        warmup_steps=0,
    )
    times = []
    last = [time.perf_counter()]

    def on_log(entry):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        entry.setdefault("dt", times[-1])

    result = tune(
        tuning,
        config,
        output=tempfile.mkdtemp(),
        on_log=on_log,
        options=RunOptions(seed=42, threads=1),
    )
    rates = [e["tokens_per_s"] for e in result.log]
    return {
        "trainable_parameters": result.trainable_parameters,
        "train_tokens_per_s": float(rates[-1]),
        "seconds_per_step": float(np.median(times[1:])),
        "peak_mb": peak_mb(),
        "n_virtual_tokens": config.n_virtual_tokens,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=320)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--lr", type=float, default=5e-4, help="LoRA learning rate")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--cold-users", type=int, help="at most this many cold-start users")
    parser.add_argument("--throughput-steps", type=int, default=12)
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="reuse an adapter tuned before (NAME: next-item or preference)",
    )
    parser.add_argument("--work", default=str(ROOT / "artifacts" / "tuning-bench"))
    parser.add_argument("--cache-dir", default=CACHE)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--train", help=argparse.SUPPRESS)  # child: tune into this folder
    parser.add_argument("--which", default="next-item", help=argparse.SUPPRESS)  # child: adapter
    parser.add_argument("--prior-loss", help=argparse.SUPPRESS)  # add it to this adapter's result
    parser.add_argument("--throughput", help=argparse.SUPPRESS)  # child: measure this method
    parser.add_argument(
        "--time-budget", type=float, default=0.0, help="seconds of tuning per adapter (0: none)"
    )
    args = parser.parse_args(argv)
    if args.prior_loss:  # a residual adapter tuned before this reference was recorded
        from genrec.tuning.tuner import TuneConfig

        path = Path(args.prior_loss) / "train_result.json"
        facts = json.loads(path.read_text())
        config = TuneConfig.from_dict(facts["config"])
        facts["prior_valid_loss"] = prior_valid_loss(splits(args.cache_dir)[3], config)
        atomic_write(path, json.dumps(facts, default=float))
        print(facts["prior_valid_loss"])
        return 0
    if args.train:
        print(
            json.dumps(
                train(
                    args.train,
                    args.which,
                    args.steps,
                    args.cache_dir,
                    args.eval_every,
                    args.lr,
                    args.time_budget,
                ),
                default=float,
            )
        )
        return 0
    if args.throughput:
        print(json.dumps(throughput(args.throughput, args.throughput_steps, args.cache_dir)))
        return 0
    OPTIONS.apply_threads()
    from genrec.text.transformers_lm import TransformersLM
    from genrec.text.tuned_lm import TunedLM
    from genrec.tuning.instructions import NEXT_ITEM_TEMPLATES, PREFERENCE_TEMPLATES

    res = {
        "args": vars(args),
        "versions": library_versions(),
        "templates": {"next-item": NEXT_ITEM_TEMPLATES, "preference": PREFERENCE_TEMPLATES},
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    res["versions"].setdefault("platform", platform.platform())
    loads = [load_average()]
    reused = dict(a.split("=", 1) for a in args.adapter)
    res["train"], folders = {}, {}
    for name in ADAPTERS:
        folders[name] = reused.get(name) or str(Path(args.work) / name)
        if name in reused:
            res["train"][name] = json.loads((Path(folders[name]) / "train_result.json").read_text())
        else:
            res["train"][name] = in_fresh_process(
                "--train",
                folders[name],
                "--which",
                name,
                "--steps",
                str(args.steps),
                "--eval-every",
                str(args.eval_every),
                "--lr",
                str(args.lr),
                "--cache-dir",
                args.cache_dir,
            )
            atomic_write(
                Path(folders[name]) / "train_result.json",
                json.dumps(res["train"][name], default=float),
            )
        res["train"][name].setdefault("adapter", name)
        print(
            f"[train] {json.dumps({k: v for k, v in res['train'][name].items() if k != 'log'})}",
            file=sys.stderr,
            flush=True,
        )
    loads.append(load_average())
    res["throughput_steps"] = args.throughput_steps
    res["throughput"] = {
        m: in_fresh_process(
            "--throughput",
            m,
            "--throughput-steps",
            str(args.throughput_steps),
            "--cache-dir",
            args.cache_dir,
        )
        for m in ("lora", "prompt")
    }
    print(f"[throughput] {res['throughput']}", file=sys.stderr, flush=True)
    data, split, cold, _ = splits(args.cache_dir)
    eligible = np.flatnonzero(split.test.user_counts > 0)
    users = np.sort(
        np.random.default_rng(0).choice(eligible, min(args.users, len(eligible)), replace=False)
    )
    res["n_users"] = len(users)
    base = TransformersLM("gemma-3-270m", threads=1)
    tuned = {name: TunedLM.load(folder, threads=1) for name, folder in folders.items()}

    def rerankers() -> dict:
        """The LLM recommenders compared with their untuned selves (fresh, unfitted)."""
        return {
            "llm zero-shot": llm(base),
            "llm LoRA next-item": llm(tuned["next-item"]),
            "llm yes/no zero-shot": llm(base, mode="preference"),
            "llm yes/no LoRA": llm(tuned["preference"], mode="preference"),
            "llm listwise zero-shot": llm(base, mode="listwise"),
            "llm listwise LoRA": llm(tuned["listwise"], mode="listwise"),
        }

    ease = EASE().fit(split.train, options=OPTIONS)
    models = {
        "pop": Pop().fit(split.train, options=OPTIONS),
        "ease": ease,
        f"llm {args.shots}-shot": llm(base, args.shots).fit(split.train, options=OPTIONS),
        **{label: m.fit(split.train, options=OPTIONS) for label, m in rerankers().items()},
    }
    res["sampled"] = sampled(split, users, models)
    loads.append(load_average())
    res["two_stage"] = two_stage(split, users, ease, rerankers())
    loads.append(load_average())
    res["cold"], res["cold_info"] = cold_start(cold, rerankers(), args.cold_users)
    loads.append(load_average())
    res["loads"] = loads
    text = markdown(res)
    print(text)
    if not args.no_write:
        write_section("tuning", text)
        atomic_write(ROOT / "benchmarks" / "results" / "tuning.json", results_json(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
