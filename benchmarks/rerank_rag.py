"""Retrieval-augmented generative reranking: which facts help the LLM reranker, for whom, and
does co-training the retriever with the reranker help?

ML-100K, holdout 0.8/0.1/0.1 (split seed 2020), the test users of ``benchmarks/rerank.py``
(the first ``--users`` of its seed-0 draw). EASE (seed 42) shortlists each user's 20 best unseen
items; Gemma 3 270M (genrec's transformers backend, zero-shot, 1 thread) reranks them,
**listwise** (letters) or **pointwise** (yes/no log-odds), with each candidate followed by facts
retrieved by :mod:`genrec.text.facts` from the *training part* only (``catalog``: year and
genres; ``ratings``: "rated 3.9/5 by 250 users"), within 32 Gemma tokens per candidate.
ML-100K has no reviews or tags, so those sources give nothing here (the tests cover them).

Blocks (each saved to ``benchmarks/results/rerank_rag_<block>.json`` as it finishes):

* ``warm-<mode>``: the fact ablation on the test users, unfused (the LLM's order of the
  shortlist) and fused (``(1-w) z(EASE) + w z(LLM)``, w learned on ``--valid-users``
  validation users as :class:`~genrec.pipelines.two_stage.TwoStage` learns it);
* ``cold-<mode>``: cold-start users: the first ``--cold-users`` test users with their history cut
  to its oldest 1-5 items (uniform, seed 0), EASE refitted without the cut items; fused with the
  w learned on warm validation users (no cold validation users are scored);
* ``items-<mode>``: held-out items (held-out-items split, 10% of items, seed 0): each of
  ``--item-users`` users ranks one held-out test item they rated among 19 other held-out test
  items they did not, in a shuffled order; no candidate has a training interaction, so EASE
  scores them all 0 and the ratings source has nothing to say: text is the only signal;
* ``cotrain``: retriever-reranker co-training with the pointwise reranker and all facts (see
  :func:`cotrain`): only the fusion weight of the reranker is re-learned;
* ``cotrain-tuned``: one co-training round with a real tuning step on each side (see
  :func:`cotrain_tuned`): the listwise reranker LoRA-tuned on EASE's shortlists (``--adapter``,
  tuned by ``benchmarks/tuning.py --which listwise-residual``), then EASE refitted on its
  preferences.

    python benchmarks/rerank_rag.py [--users 80] [--valid-users 40] [--blocks ...]
    python benchmarks/rerank_rag.py --report      # the section from the saved blocks
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rerank import CountingLM  # noqa: E402

from genrec.data import sources  # noqa: E402
from genrec.data.splits import held_out_items_split, holdout_split  # noqa: E402
from genrec.evaluation.metrics import ranking_metrics  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE, LLMRecommender  # noqa: E402
from genrec.models.classic.ease import ease_weights  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.pipelines.cotraining import reranker_preferences, retriever_from_reranker  # noqa: E402
from genrec.pipelines.two_stage import Shortlist, TwoStage, validation_targets  # noqa: E402
from genrec.ranking import as_score_tensor, mask_seen, top_k  # noqa: E402
from genrec.text.backends import get_language_model  # noqa: E402

from common import ROOT, fmt_ci, fmt_test, load_average, summary, write_section  # noqa: E402

OPTIONS = RunOptions(seed=42, threads=1)
RESULTS = ROOT / "benchmarks" / "results"
N_CANDIDATES = 20
FACT_TOKENS = 32
FACTS = {  # variant -> fact sources
    "none": "",
    "catalog": "catalog",
    "ratings": "ratings",
    "catalog+ratings": "catalog,ratings",
}
MODE_FACTS = {  # every source alone, beside none and all
    "listwise": ("none", "catalog", "ratings", "catalog+ratings"),
    "preference": ("none", "catalog", "ratings", "catalog+ratings"),
}
ITEM_FACTS = ("none", "catalog")  # held-out items have no ratings
MODE_LABELS = {"listwise": "listwise", "preference": "pointwise yes/no"}
BLOCKS = (
    "warm-listwise",
    "warm-preference",
    "cotrain",
    "cotrain-tuned",
    "cold-listwise",
    "cold-preference",
    "items-listwise",
    "items-preference",
)


# ---- metrics ---------------------------------------------------------------------------------
def per_user(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix) -> dict:
    """NDCG@10 and Recall@10 per user of full-ranking ``scores`` (U, n_items), ``seen`` items
    excluded, against ``relevant`` (U, n_items) targets (the protocol of ``evaluate``)."""
    top, _ = top_k(mask_seen(as_score_tensor(scores), seen), 10)
    rows = np.arange(len(top))[:, None]
    hits = (np.asarray(relevant[rows, np.maximum(top, 0)].todense()) > 0) & (top >= 0)
    m = ranking_metrics(hits, np.diff(relevant.indptr), [10], names=["ndcg", "recall"])
    return {k: np.round(v, 5).tolist() for k, v in m.items()}


def targets(target_part, users, seen: sp.csr_matrix) -> sp.csr_matrix:
    relevant = target_part.user_items[users] - target_part.user_items[users].multiply(seen)
    relevant.eliminate_zeros()
    return relevant


# ---- the pipeline over one user set ----------------------------------------------------------
def reranker(split_train, mode: str, facts: str, lm) -> LLMRecommender:
    return LLMRecommender(
        lm="fake", mode=mode, facts=FACTS[facts], fact_tokens=FACT_TOKENS, language_model=lm
    ).fit(split_train, options=OPTIONS)


def pipeline(ease, llm) -> TwoStage:
    """The shortlist pipeline of fitted EASE and a fitted reranker, unfused weight 1."""
    return TwoStage(retriever=ease, reranker=llm, n_candidates=N_CANDIDATES, fusion_weight=1.0)


def timed_lists(pipe, histories, users, lm) -> tuple[list[Shortlist], dict]:
    lm.reset()
    start = time.perf_counter()
    lists = pipe.shortlists(histories, users=users)
    cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(users)}
    return lists, cost


def fact_variants(mode: str, ctx: dict) -> list[str]:
    """The fact variants of ``mode`` this run scores (``--facts`` keeps a subset)."""
    only = ctx.get("only_facts")
    return [f for f in MODE_FACTS[mode] if not only or f in only]


def merged(block: str, out: dict) -> dict:
    """``out`` with the variants of the saved ``block`` it did not rerun (same users only), in
    :data:`MODE_FACTS` order: a run of some fact variants adds rows to the saved table."""
    path = RESULTS / f"rerank_rag_{block}.json"
    if not path.exists():
        return out
    old = json.loads(path.read_text())
    if old["ease"] != out["ease"]:
        raise RuntimeError(f"{path} holds other users; rerun every variant (drop --facts)")
    variants = {**old["variants"], **out["variants"]}
    order = MODE_FACTS[block.partition("-")[2]]
    out["variants"] = {f: variants[f] for f in order if f in variants}
    out["loads"] = old["loads"] + out["loads"]
    out["facts_args"] = old.get("facts_args", []) + out.get("facts_args", [])
    return out


def warm(mode: str, ctx: dict, lm) -> dict:
    """The fact ablation of ``mode`` on warm test users, unfused and fused."""
    split, ease, users, valid_users = ctx["split"], ctx["ease"], ctx["users"], ctx["valid"]
    hist = split.history("test").user_item_order[users]
    seen, relevant = split.history("test").user_items[users], ctx["relevant"]
    v_hist = split.train.user_item_order[valid_users]
    out = {"ease": per_user(ease.score(hist, users=users), seen, relevant), "variants": {}}
    for facts in fact_variants(mode, ctx):
        pipe = pipeline(ease, reranker(split.train, mode, facts, lm))
        v_lists, fit_cost = timed_lists(pipe, v_hist, valid_users, lm)
        search = pipe.search_weight(v_lists, split.train.user_items[valid_users], ctx["v_rel"])
        lists, cost = timed_lists(pipe, hist, users, lm)
        ctx.setdefault("lists", {})[(mode, facts)] = (v_lists, lists, search.weight)
        out["variants"][facts] = {
            "weight": search.weight,
            "best_weight": search.best,
            "fit_cost": fit_cost,
            "cost": cost,
            "unfused": per_user(
                pipe.fused_scores(lists, fusion="none", weight=1.0), seen, relevant
            ),
            "fused": per_user(pipe.fused_scores(lists, weight=search.weight), seen, relevant),
        }
        log(mode, facts, out["variants"][facts])
    return out


def cold(mode: str, ctx: dict, lm) -> dict:
    """Every variant of ``mode`` on cold-start users (histories cut to 1-5 items)."""
    split, users = ctx["split"], ctx["users"][: ctx["n_cold"]]
    full = split.history("test").user_item_order[users]
    keep = np.random.default_rng(0).integers(1, 6, len(users))  # 1..5 oldest items kept
    rows = []
    for r in range(len(users)):
        row = full[r]
        oldest = row.indices[np.argsort(row.data, kind="stable")][: keep[r]]
        rows.append(
            sp.csr_matrix(
                (
                    np.arange(1, len(oldest) + 1, dtype=np.float32),
                    (np.zeros(len(oldest), int), oldest),
                ),
                shape=row.shape,
            )
        )
    hist = sp.vstack(rows).tocsr()  # (U, n_items) time order of the kept items
    dropped = sp.csr_matrix(split.train.user_items.shape, dtype=np.float32)
    dropped[users] = (full > 0).astype(np.float32) - (hist > 0).astype(np.float32)
    train_x = split.train.user_items - split.train.user_items.multiply(dropped)
    ease = copy.copy(ctx["ease"])  # refitted without the cut items
    ease.weights_ = ease_weights(train_x, reg=ease.config.reg, binarize=False)  # 0s stay 0
    seen = (hist > 0).astype(np.float32)
    relevant = targets(split.test, users, seen)
    out = {
        "history_lengths": keep.tolist(),
        "ease": per_user(ease.score(hist, users=users), seen, relevant),
        "variants": {},
    }
    for facts in fact_variants(mode, ctx):
        pipe = pipeline(ease, reranker(split.train, mode, facts, lm))
        lists, cost = timed_lists(pipe, hist, users, lm)
        weight = ctx["weights"].get((mode, facts))
        res = {"cost": cost, "weight": weight}
        res["unfused"] = per_user(
            pipe.fused_scores(lists, fusion="none", weight=1.0), seen, relevant
        )
        if weight is not None:
            res["fused"] = per_user(pipe.fused_scores(lists, weight=weight), seen, relevant)
        out["variants"][facts] = res
        log(f"cold {mode}", facts, res)
    return out


def items(mode: str, args, lm) -> dict:
    """Held-out items: one held-out target among 19 held-out negatives, shuffled."""
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    split = held_out_items_split(data, 0.1, seed=0)
    test_items = np.flatnonzero(split.test.item_counts > 0)
    rng = np.random.default_rng(0)
    eligible = np.flatnonzero((split.test.user_counts > 0) & (split.train.user_counts > 0))
    users = np.sort(rng.choice(eligible, min(args.item_users, len(eligible)), replace=False))
    hist = split.history("test").user_item_order[users]
    candidates = []
    for u in users:
        mine = split.test.user_items[u].indices
        others = np.setdiff1d(test_items, np.r_[mine, split.history("test").user_items[u].indices])
        row = np.r_[rng.choice(mine, 1), rng.choice(others, N_CANDIDATES - 1, replace=False)]
        candidates.append(rng.permutation(row))
    candidates = np.stack(candidates)  # (U, 20); the target is candidates[u] ∩ mine
    target = np.array(
        [[c in split.test.user_items[u].indices for c in row] for u, row in zip(users, candidates)]
    )
    ease = EASE().fit(split.train, options=OPTIONS)
    out = {
        "ease": sampled_metrics(
            np.asarray(ease.score(hist, users=users))[np.arange(len(users))[:, None], candidates],
            target,
        ),
        "variants": {},
    }
    for facts in ITEM_FACTS:
        llm = reranker(split.train, mode, facts, lm)
        lm.reset()
        start = time.perf_counter()
        scores = np.stack(
            [
                llm.score_candidates(hist[r], candidates[r : r + 1], users=users[r : r + 1])[0]
                for r in range(len(users))
            ]
        )
        cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(users)}
        out["variants"][facts] = {"cost": cost, "unfused": sampled_metrics(scores, target)}
        log(f"items {mode}", facts, out["variants"][facts])
    out["held_out"] = {**split.info["held_out_items"], "users": len(users)}
    return out


def sampled_metrics(scores: np.ndarray, target: np.ndarray) -> dict:
    """NDCG@10 and hit@1 per user of (U, C) candidate scores (ties: the listed order, which is
    shuffled) against the (U, C) bool target."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(target, order, 1)[:, :10]
    m = ranking_metrics(hits, target.sum(1), [1, 10], names=["ndcg", "hit"])
    return {k: np.round(m[k], 5).tolist() for k in ("ndcg@10", "hit@1")}


# ---- co-training -----------------------------------------------------------------------------
def cotrain(ctx: dict, lm, *, rounds: int = 2, top: int = 3, beta: float = 0.5) -> dict:
    """Retriever-reranker co-training with the pointwise reranker, all facts.

    Round r: (a) the retriever learns from the reranker: EASE is refitted on the training
    matrix plus, for every pool user (the validation and test users; training histories only,
    never a target), the reranker's ``top`` preferred items of the user's current shortlist as
    pseudo-positives of weight ``beta``; (b) the reranker learns from the retriever: the fusion
    weight is re-learned on the validation users' new shortlists. The reranker's yes/no score of
    a (user, item) pair does not depend on the other candidates, so scores are cached and only
    new candidates are asked."""
    split, users, valid_users = ctx["split"], ctx["users"], ctx["valid"]
    mode, facts = "preference", "catalog+ratings"
    llm = reranker(split.train, mode, facts, lm)
    if llm.flagged_.any():
        raise RuntimeError("cached yes/no scores assume no guard-flagged titles")
    v_lists, lists, weight = ctx["lists"][(mode, facts)]
    cache = {}
    for who, part_lists in ((valid_users, v_lists), (users, lists)):
        for u, s in zip(who, part_lists):
            cache.update({(int(u), int(i)): float(x) for i, x in zip(s.candidates, s.reranker)})
    hist = {
        "valid": split.train.user_item_order[valid_users],
        "test": split.history("test").user_item_order[users],
    }
    seen = split.history("test").user_items[users]
    ease = ctx["ease"]
    out = {
        "rounds": [],
        "ease": per_user(ease.score(hist["test"], users=users), seen, ctx["relevant"]),
    }
    lm.reset()
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        ease = refit_on_lists(ease, split, valid_users, v_lists, users, lists, top, beta)
        pipe = pipeline(ease, llm)
        v_lists = cached_lists(pipe, llm, hist["valid"], valid_users, cache)
        search = pipe.search_weight(v_lists, split.train.user_items[valid_users], ctx["v_rel"])
        lists = cached_lists(pipe, llm, hist["test"], users, cache)
        res = {
            "round": r,
            "weight": search.weight,
            "best_weight": search.best,
            "retriever": per_user(pipe.fused_scores(lists, weight=0.0), seen, ctx["relevant"]),
            "fused": per_user(
                pipe.fused_scores(lists, weight=search.weight), seen, ctx["relevant"]
            ),
            "unfused": per_user(
                pipe.fused_scores(lists, fusion="none", weight=1.0), seen, ctx["relevant"]
            ),
            "cached_pairs": len(cache),
        }
        out["rounds"].append(res)
        log("cotrain", f"round {r}", res)
    out["cost"] = {**lm.cost(), "seconds": time.perf_counter() - start}
    out.update(top=top, beta=beta, pool=len(users) + len(valid_users))
    return out


def cotrain_tuned(ctx: dict, lm, adapter: str, *, top: int = 3, beta: float = 0.5) -> dict:
    """One co-training round with a tuning step on each side, listwise, titles only.

    The reranker learns from the retriever: ``adapter`` is Gemma LoRA-tuned on EASE's
    shortlists (k-fold EASE, residual to EASE's ranking, shortlists shuffled; the tuning never
    saw a validation or test target), and lists candidates in a seeded random order as tuned.
    The retriever learns from the reranker: EASE refitted with the tuned reranker's ``top``
    preferred items of each pool user's shortlist (validation and test users, histories only)
    as pseudo-interactions of weight ``beta`` (:mod:`genrec.pipelines.cotraining`); then the
    fusion weight is re-learned on the validation users' new shortlists, which the tuned
    reranker scores again (a listwise score depends on the whole shortlist)."""
    split, users, valid_users = ctx["split"], ctx["users"], ctx["valid"]
    hist = {
        "valid": split.train.user_item_order[valid_users],
        "test": split.history("test").user_item_order[users],
    }
    seen, relevant = split.history("test").user_items[users], ctx["relevant"]
    llm = LLMRecommender(
        lm="fake", mode="listwise", candidate_order="shuffled", language_model=lm
    ).fit(split.train, options=OPTIONS)
    out = {"adapter": adapter, "top": top, "beta": beta, "pool": len(users) + len(valid_users)}
    ease = ctx["ease"]
    for name in ("alone", "cotrained"):
        pipe = pipeline(ease, llm)
        v_lists, fit_cost = timed_lists(pipe, hist["valid"], valid_users, lm)
        search = pipe.search_weight(v_lists, split.train.user_items[valid_users], ctx["v_rel"])
        lists, cost = timed_lists(pipe, hist["test"], users, lm)
        out[name] = {
            "weight": search.weight,
            "best_weight": search.best,
            "curve": dict(zip(search.grid, search.means)),
            "fit_cost": fit_cost,
            "cost": cost,
            "retriever": per_user(pipe.fused_scores(lists, weight=0.0), seen, relevant),
            "fused": per_user(pipe.fused_scores(lists, weight=search.weight), seen, relevant),
            "unfused": per_user(
                pipe.fused_scores(lists, fusion="none", weight=1.0), seen, relevant
            ),
        }
        log("cotrain-tuned", name, out[name])
        if name == "alone":
            ease = refit_on_lists(ease, split, valid_users, v_lists, users, lists, top, beta)
    out["self_trained"] = self_trained(ctx, top=top, beta=beta)
    return out


def self_trained(ctx: dict, *, top: int, beta: float) -> dict:
    """The control of co-training: EASE refitted on its *own* ``top`` shortlist items of each
    pool user (weight ``beta``), the same refit without the reranker; no LM call."""
    split, users, valid_users = ctx["split"], ctx["users"], ctx["valid"]
    never_asked = LLMRecommender(lm="fake").fit(split.train, options=OPTIONS)
    pipe = pipeline(ctx["ease"], never_asked)
    pool = np.r_[valid_users, users]
    histories = sp.vstack(
        [split.train.user_item_order[valid_users], split.history("test").user_item_order[users]]
    ).tocsr()
    lists = pipe.shortlists(histories, users=pool, rerank=False)
    for s in lists:
        s.reranker = s.retriever  # the retriever's own preferences
    prefs = reranker_preferences(
        pool, lists, n_users=split.train.n_users, n_items=split.train.n_items, top=top
    )
    ease = retriever_from_reranker(ctx["ease"], split.train.user_items, prefs, beta=beta)
    hist = split.history("test").user_item_order[users]
    seen = split.history("test").user_items[users]
    return per_user(ease.score(hist, users=users), seen, ctx["relevant"])


def refit_on_lists(ease, split, valid_users, v_lists, users, lists, top, beta):
    """EASE refitted on the reranker's preferences: each validation and test user's ``top``
    items of the reranker's lists, added to the training interactions at weight ``beta``."""
    prefs = reranker_preferences(
        np.r_[valid_users, users],
        [*v_lists, *lists],
        n_users=split.train.n_users,
        n_items=split.train.n_items,
        top=top,
    )
    return retriever_from_reranker(ease, split.train.user_items, prefs, beta=beta)


def cached_lists(pipe, llm, histories, users, cache) -> list[Shortlist]:
    """Shortlists whose reranker scores come from ``cache``; missing pairs are scored."""
    lists = pipe.shortlists(histories, users=users, rerank=False)
    for r, (u, s) in enumerate(zip(users, lists)):
        new = np.array([i for i in s.candidates if (int(u), int(i)) not in cache], np.int64)
        if len(new):
            scores = llm.score_candidates(histories[r], new[None, :], users=users[r : r + 1])[0]
            cache.update({(int(u), int(i)): float(x) for i, x in zip(new, scores)})
        s.reranker = np.array([cache[(int(u), int(i))] for i in s.candidates])
    return lists


# ---- report ----------------------------------------------------------------------------------
def log(where: str, what: str, res: dict) -> None:
    parts = [
        f"{k} {np.mean(v['ndcg@10']):.4f}"
        for k, v in res.items()
        if isinstance(v, dict) and "ndcg@10" in v
    ]
    print(f"[{where}] {what}: " + ", ".join(parts), file=sys.stderr, flush=True)


def saved() -> dict:
    out = {}
    for block in BLOCKS:
        path = RESULTS / f"rerank_rag_{block}.json"
        if path.exists():
            out[block] = json.loads(path.read_text())
    return out


def report() -> str:
    blocks = saved()
    if not blocks:
        return "## Retrieval-augmented reranking\n\nNo saved results yet."
    parts = [intro(blocks)]
    for mode in MODE_LABELS:
        if f"warm-{mode}" in blocks:
            b = blocks[f"warm-{mode}"]
            parts += [
                f"#### Warm users, {MODE_LABELS[mode]}: {b['n_users']} test users, w learned on "
                f"{b['n_valid']} validation users",
                warm_table(b),
            ]
    for mode in MODE_LABELS:
        if f"cold-{mode}" in blocks:
            b = blocks[f"cold-{mode}"]
            parts += [
                f"#### Cold-start users (1-5 history items), {MODE_LABELS[mode]}: "
                f"{len(b['history_lengths'])} users",
                warm_table(b) + f"\n\n{len(b['history_lengths'])} users; history lengths "
                f"{np.bincount(b['history_lengths'], minlength=6)[1:].tolist()} users with 1..5 "
                "items; fused with the w learned on warm validation users.",
            ]
    item_blocks = [(m, blocks[f"items-{m}"]) for m in MODE_LABELS if f"items-{m}" in blocks]
    if item_blocks:
        parts += [
            "#### Held-out items (text is the only signal), 20 candidates: "
            f"{item_blocks[0][1]['held_out']['users']} users",
            items_table(item_blocks),
        ]
    if "cotrain" in blocks:
        parts += [
            "#### Co-training (pointwise yes/no, catalog+ratings facts): "
            f"{blocks['cotrain']['n_users']} test users",
            cotrain_table(blocks["cotrain"]),
        ]
    if "cotrain-tuned" in blocks:
        b = blocks["cotrain-tuned"]
        parts += [
            "#### Co-training with a tuning step on each side (listwise, LoRA-tuned reranker, "
            f"titles only): {b['n_users']} test users, w learned on {b['n_valid']} validation "
            "users",
            cotrain_tuned_table(b),
        ]
    missing = [b for b in BLOCKS if b not in blocks]
    if missing:
        parts.append("Not run (out of time on the shared machine): " + ", ".join(missing) + ".")
    parts.append(machine(blocks))
    return "\n\n".join(parts)


def command(blocks: dict) -> str:
    """The commands that wrote ``blocks`` (one per distinct sample size)."""
    runs: dict[tuple, list[str]] = {}
    for name, b in blocks.items():
        key = (b["n_users"], b["n_valid"], b["n_cold"], b["n_item_users"])
        runs.setdefault(key, []).append(name)
        for facts in b.get("facts_args", []):  # later runs that added fact variants
            runs.setdefault((*key, f" --facts {facts}"), []).append(name)
    return "; ".join(
        f"`python benchmarks/rerank_rag.py --users {u} --valid-users {v} --cold-users {c} "
        f"--item-users {i} --blocks {','.join(names)}"
        + (" --adapter DIR" if "cotrain-tuned" in names else "")
        + "".join(extra)
        + "`"
        for (u, v, c, i, *extra), names in runs.items()
    )


def intro(blocks: dict) -> str:
    block = next(iter(blocks.values()))
    written = max(b["written"] for b in blocks.values())
    return (
        "## Retrieval-augmented reranking: facts, cold starts, co-training\n\n"
        f"{command(blocks)} (latest block written {written}). ML-100K, holdout 0.8/0.1/0.1 "
        f"(split seed 2020), full ranking over all {block['n_items']} items, the first test "
        "users of the `rerank` section's seed-0 draw (sample sizes in each heading). EASE "
        "(seed 42) shortlists 20 unseen items; Gemma 3 270M (zero-shot, 10 recent titles) "
        "reranks them **listwise** (letters A-T) or **pointwise** (yes/no log-odds). Each "
        "candidate is followed by facts from the training part only (`genrec.text.facts`): "
        '**catalog** = year and genres, **ratings** = "rated 3.9/5 by 250 users" (mean '
        f"training rating and count), within {FACT_TOKENS} Gemma tokens per candidate; "
        "**none** = titles only (the `rerank` section's prompt). ML-100K has no reviews or "
        "tags. **unfused**: the LLM's order of the shortlist; **fused**: (1-w) z(EASE) + w "
        "z(LLM), w learned on validation users (training histories, validation targets; the "
        "best NDCG@10 of w in 0..1 by 0.05, kept when its gain exceeds two paired standard "
        "errors, else 0: then the LLM is not asked). The pointwise prompt with facts costs "
        "about 3x the one without, so pointwise runs on fewer users (each source alone where "
        "its table shows it). User counts are what three processes at nice 10 could finish in about an hour "
        "on 2 cores shared with 8 agents. Intervals: 95% bootstrap over users; tests: paired t "
        "and Wilcoxon, Holm-adjusted within a column, the larger p shown, * below 0.05."
    )


def warm_table(block: dict) -> str:
    rows = {"ease": block["ease"]}
    for facts, v in block["variants"].items():
        for fusion in ("unfused", "fused"):
            if fusion in v:
                rows[f"{facts}, {fusion}"] = v[fusion]
    ndcg = {k: np.array(v["ndcg@10"]) for k, v in rows.items()}
    vs_ease = compare_with(ndcg, "ease")
    vs_none = {}
    for fusion in ("unfused", "fused"):
        group = {k: x for k, x in ndcg.items() if k.endswith(f", {fusion}")}
        if f"none, {fusion}" in group:
            vs_none.update(compare_with(group, f"none, {fusion}"))
    lines = [
        "| facts, order | NDCG@10 | Recall@10 | vs EASE (NDCG@10) | vs no facts (NDCG@10) | "
        "w (best w) | LM tokens / user | s / user |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, values in rows.items():
        facts, fusion = name.split(", ") if ", " in name else (name, "")
        v = block["variants"].get(facts, {})
        c = v.get("cost")
        w = v.get("weight")
        skipped = fusion == "fused" and w == 0
        cells = [
            name,
            fmt_ci(summary(values["ndcg@10"])),
            fmt_ci(summary(values["recall@10"])),
            fmt_test(vs_ease.get(name)),
            fmt_test(vs_none.get(name)) if name in vs_none else "-",
            "-"
            if fusion != "fused" or w is None
            else f"{w:.2f}" + (f" ({v['best_weight']:.2f})" if "best_weight" in v else " (warm)"),
            "-" if c is None else ("0" if skipped else f"{c['tokens'] / c['users']:.0f}"),
            "-" if c is None else ("< 0.01" if skipped else f"{c['seconds'] / c['users']:.2f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def items_table(item_blocks) -> str:
    rows = {"ease (all candidates score 0)": item_blocks[0][1]["ease"]}
    for mode, b in item_blocks:
        for facts, v in b["variants"].items():
            rows[f"{MODE_LABELS[mode]}, {facts}"] = v["unfused"]
    ndcg = {k: np.array(v["ndcg@10"]) for k, v in rows.items()}
    tests = compare_with(ndcg, "ease (all candidates score 0)")
    vs_none = {}
    for mode, _ in item_blocks:
        group = {k: x for k, x in ndcg.items() if k.startswith(MODE_LABELS[mode] + ", ")}
        vs_none.update(compare_with(group, f"{MODE_LABELS[mode]}, none"))
    lines = [
        "| reranker, facts | NDCG@10 | hit@1 | vs EASE (NDCG@10) | vs no facts (NDCG@10) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, v in rows.items():
        lines.append(
            f"| {name} | {fmt_ci(summary(v['ndcg@10']))} | {fmt_ci(summary(v['hit@1']))}"
            f" | {fmt_test(tests.get(name))} | "
            + (fmt_test(vs_none[name]) if name in vs_none else "-")
            + " |"
        )
    info = item_blocks[0][1]["held_out"]
    return "\n".join(lines) + (
        f"\n\n{info['users']} users; {info['test']} held-out test items (split seed 0). "
        "Ratings facts do not exist for items without training interactions, so "
        "catalog+ratings equals catalog here."
    )


def cotrain_table(b: dict) -> str:
    rows = {"round 0: EASE alone": b["ease"]}
    for r in b["rounds"]:
        rows[f"round {r['round']}: co-trained EASE alone"] = r["retriever"]
        rows[f"round {r['round']}: co-trained EASE + LLM, fused (w {r['weight']:.2f})"] = r["fused"]
        rows[f"round {r['round']}: co-trained EASE + LLM, unfused"] = r["unfused"]
    tests = compare_with(
        {k: np.array(v["ndcg@10"]) for k, v in rows.items()}, "round 0: EASE alone"
    )
    lines = [
        "| model | NDCG@10 | Recall@10 | vs EASE alone (NDCG@10) |",
        "| --- | --- | --- | --- |",
    ]
    for name, v in rows.items():
        lines.append(
            f"| {name} | {fmt_ci(summary(v['ndcg@10']))} | "
            f"{fmt_ci(summary(v['recall@10']))} | {fmt_test(tests.get(name))} |"
        )
    return "\n".join(lines) + (
        f"\n\nEach round: EASE refitted on the training matrix plus, for each of the {b['pool']} "
        f"pool users (the validation and test users; histories only, no targets), the LLM's top "
        f"{b['top']} shortlist items as pseudo-positives of weight {b['beta']}; then w re-learned "
        "on the validation users' new shortlists. Training each alone is round 0 (EASE alone) "
        "and the warm pointwise table's catalog+ratings rows (the LLM alone, and the two "
        f"fused without co-training). Extra cost: {b['cost']['calls']} LM calls for the new "
        f"candidates, {b['cost']['seconds']:.0f} s."
    )


def cotrain_tuned_table(b: dict) -> str:
    a, c = b["alone"], b["cotrained"]
    rows = {
        "EASE alone": a["retriever"],
        "tuned reranker over EASE, unfused (the reranker alone)": a["unfused"],
        f"tuned reranker over EASE, fused (w {a['weight']:.2f})": a["fused"],
        "co-trained EASE alone (learned from the tuned reranker)": c["retriever"],
        **(
            {"control: self-trained EASE (its own top items, no reranker)": b["self_trained"]}
            if "self_trained" in b
            else {}
        ),
        "co-trained EASE + tuned reranker, unfused": c["unfused"],
        f"co-trained EASE + tuned reranker, fused (w {c['weight']:.2f})": c["fused"],
    }
    ndcg = {k: np.array(v["ndcg@10"]) for k, v in rows.items()}
    vs_ease = compare_with(ndcg, "EASE alone")
    fused_alone = next(k for k in rows if k.startswith("tuned reranker over EASE, fused"))
    vs_fused = compare_with(
        {
            k: ndcg[k]
            for k in (fused_alone, *[k for k in rows if k.startswith(("co-trained", "control"))])
        },
        fused_alone,
    )
    lines = [
        "| model | NDCG@10 | Recall@10 | vs EASE alone (NDCG@10) | vs tuned reranker over "
        "EASE, fused (NDCG@10) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, v in rows.items():
        lines.append(
            f"| {name} | {fmt_ci(summary(v['ndcg@10']))} | {fmt_ci(summary(v['recall@10']))} | "
            f"{fmt_test(vs_ease.get(name))} | "
            f"{fmt_test(vs_fused.get(name)) if name in vs_fused else '-'} |"
        )
    curve = lambda r: ", ".join(  # noqa: E731
        f"{float(w):.1f}: {m:.4f}" for w, m in list(r["curve"].items())[::4]
    )
    calls = sum(r[k]["calls"] for r in (a, c) for k in ("fit_cost", "cost"))
    seconds = sum(r[k]["seconds"] for r in (a, c) for k in ("fit_cost", "cost"))
    return "\n".join(lines) + (
        f"\n\nThe reranker learns from the retriever: Gemma 3 270M LoRA-tuned on EASE's "
        f"shortlists (`{Path(b['adapter']).name}`: the `rerank` section's listwise "
        "tuned-residual adapter, k-fold EASE shortlists listed in a random order, the target "
        "under EASE's softmax times the LM's letters), shown each shortlist in a seeded random "
        "order. The retriever learns from the reranker: EASE refitted "
        "(`genrec.pipelines.cotraining`) on the training matrix plus, for each of the "
        f"{b['pool']} pool users (validation and test users; histories only, no targets), the "
        f"tuned reranker's top {b['top']} shortlist items as pseudo-interactions of weight "
        f"{b['beta']}; the tuned reranker then scores the new shortlists and w is re-learned. "
        "Each alone: EASE alone (first row) and the tuned reranker fused over the original "
        "EASE. The control refits EASE the same way on its own top items of the same shortlists "
        "(no reranker): what refitting alone gives. Validation NDCG@10 of the linear fusion "
        f"by w, over EASE: {curve(a)}; over "
        f"co-trained EASE: {curve(c)}. Cost: {calls} LM calls, {seconds:.0f} s."
    )


def machine(blocks: dict) -> str:
    v = next(iter(blocks.values()))["versions"]
    loads = [x for b in blocks.values() for x in b["loads"]]
    return (
        f"Machine: {v['cpu_count']} cores shared with other jobs, {v['platform']}, Python "
        f"{v['python']}, torch {v['torch']}, genrec {v['genrec']}; 1 thread per process "
        "(up to three processes at once, nice 10); seeds: split 2020, users 0, EASE/LLM 42; "
        "1-minute load average during the blocks: " + ", ".join(f"{x:.1f}" for x in loads) + "."
    )


# ---- run -------------------------------------------------------------------------------------
def context(args) -> dict:
    split = holdout_split(
        sources.load("ml-100k", cache_dir=args.cache_dir), (0.8, 0.1, 0.1), seed=2020
    )
    eligible = np.flatnonzero(split.test.user_counts > 0)
    draw = np.random.default_rng(0).choice(eligible, min(200, len(eligible)), replace=False)
    users = np.sort(draw[: args.users])  # the rerank section's sample
    valid_users, v_rel = validation_targets(
        split.train, split.valid, args.valid_users, seed=OPTIONS.seed
    )
    seen = split.history("test").user_items[users]
    return {
        "split": split,
        "users": users,
        "valid": valid_users,
        "v_rel": v_rel,
        "relevant": targets(split.test, users, seen),
        "ease": EASE().fit(split.train, options=OPTIONS),
        "n_cold": args.cold_users,
        "weights": {},
        "only_facts": [f.strip() for f in (args.facts or "").split(",") if f.strip()],
    }


def run(args) -> None:
    OPTIONS.apply_threads()
    RESULTS.mkdir(parents=True, exist_ok=True)
    ctx = context(args)
    lm = CountingLM(get_language_model(args.lm, threads=1))
    base = {
        "n_users": len(ctx["users"]),
        "n_valid": len(ctx["valid"]),
        "n_cold": args.cold_users,
        "n_item_users": args.item_users,
        "n_items": ctx["split"].train.n_items,
        "versions": {**library_versions(), "platform": platform.platform()},
    }
    for block in [b.strip() for b in args.blocks.split(",") if b.strip()]:
        loads = [load_average()]
        kind, _, mode = block.partition("-")
        if kind == "warm":
            out = warm(mode, ctx, lm)
            ctx["weights"].update({(mode, f): v["weight"] for f, v in out["variants"].items()})
        elif kind == "cold":
            if not any(m == mode for m, _ in ctx["weights"]):  # no warm w in this process
                ctx["weights"].update(saved_weights(mode))
            out = cold(mode, ctx, lm)
        elif kind == "items":
            out = items(mode, args, lm)
        elif block == "cotrain-tuned":
            if not args.adapter:
                raise SystemExit(
                    "the cotrain-tuned block needs --adapter DIR (a tuned listwise LM)"
                )
            out = cotrain_tuned(
                ctx,
                CountingLM(get_language_model(f"tuned:{args.adapter}", threads=1)),
                args.adapter,
            )
        else:
            out = cotrain(ctx, lm)
        out.update(
            base,
            loads=loads + [load_average()],
            written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )
        if ctx["only_facts"] and kind in ("warm", "cold"):
            out["facts_args"] = [args.facts]
            out = merged(block, out)
        atomic_write(RESULTS / f"rerank_rag_{block}.json", json.dumps(out, default=float))


def saved_weights(mode: str) -> dict:
    path = RESULTS / f"rerank_rag_warm-{mode}.json"
    if not path.exists():
        return {}
    return {(mode, f): v["weight"] for f, v in json.loads(path.read_text())["variants"].items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=80)
    parser.add_argument("--valid-users", type=int, default=40)
    parser.add_argument("--cold-users", type=int, default=40)
    parser.add_argument("--item-users", type=int, default=40)
    parser.add_argument("--blocks", default=",".join(BLOCKS))
    parser.add_argument("--lm", default="transformers:gemma-3-270m")
    parser.add_argument("--adapter", help="cotrain-tuned: the tuned listwise adapter's folder")
    parser.add_argument(
        "--add-control",
        action="store_true",
        help="add the self-training control (no LM) to the saved cotrain-tuned block",
    )
    parser.add_argument(
        "--facts",
        help="warm blocks: only these fact variants (comma-separated), merged into the saved block",
    )
    parser.add_argument("--cache-dir", default="/tmp/gcache")
    parser.add_argument("--report", action="store_true", help="only write the section")
    args = parser.parse_args(argv)
    unknown = [b for b in args.blocks.split(",") if b.strip() and b.strip() not in BLOCKS]
    if unknown:
        parser.error(f"unknown block(s) {unknown}; choose from {list(BLOCKS)}")
    if args.add_control:
        path = RESULTS / "rerank_rag_cotrain-tuned.json"
        block = json.loads(path.read_text())
        if (block["n_users"], block["n_valid"]) != (args.users, args.valid_users):
            parser.error(
                f"the saved block has --users {block['n_users']} --valid-users {block['n_valid']}"
            )
        block["self_trained"] = self_trained(context(args), top=block["top"], beta=block["beta"])
        atomic_write(path, json.dumps(block, default=float))
    elif not args.report:
        run(args)
    text = report()
    print(text)
    write_section("rerank-rag", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
