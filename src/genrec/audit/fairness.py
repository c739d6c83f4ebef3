"""Scenario ``fairness``: consumer-side fairness, i.e. how far a model's accuracy differs
between groups of users.

Groups come from the user table (MovieLens: ``gender``, ``age``, ``occupation``) and from the
training data (``activity``: the 20% of users with the most training interactions against the
rest, the split of Li et al., "User-oriented Fairness in Recommendation", WWW 2021). Ages are
banded: under 25, 25-34, 35-49, 50 and over. For each attribute the metric is NDCG@K per user of
the standard test evaluation; per group its mean with a bootstrap interval, and the gap between
the best and worst group with an interval and a test (:func:`genrec.evaluation.stats.group_gap`:
Welch's t for two groups, Kruskal-Wallis for more). Groups with fewer than ``min_group`` users
(``AuditConfig.min_group``, 20) are left out and named in ``settings``.

Language-model recommenders are also audited by the prompt they are given (FaiRLLM / CFaiRLLM:
neutral vs sensitive-attribute prompts) in the ``fairness-llm`` scenario
(:mod:`genrec.audit.fairness_llm`).
"""

from __future__ import annotations

import numpy as np

from genrec.audit.context import AuditContext
from genrec.audit.results import Definition, Finding, summarise
from genrec.evaluation.stats import group_gap

NAME = "fairness"
HEADLINE = "ndcg_gap@{k}[activity]"
ATTRIBUTES = ("gender", "age", "occupation", "activity")
AGE_BANDS = ((0, 25, "<25"), (25, 35, "25-34"), (35, 50, "35-49"), (50, 1000, "50+"))
ACTIVE_SHARE = 0.2  # the most active users form the "active" group
METRICS = {
    "ndcg_gap": Definition(
        "Largest minus smallest group mean of per-user NDCG@K over the values of one user "
        "attribute (in brackets); interval: bootstrap within groups; p_value: Welch t (two "
        "groups) or Kruskal-Wallis (more).",
        "Li et al. WWW 2021 (user-oriented fairness, activity groups); Ekstrand et al. FAT* 2018 "
        "(demographic groups); genrec.evaluation.stats.group_gap",
        "lower",
    ),
    "ndcg": Definition(
        "Per-user NDCG@K averaged over the users of one group (in brackets: attribute=value).",
        "genrec.evaluation.metrics.ranking_metrics",
        "higher",
    ),
}


def applies(model) -> str | None:
    return None


def user_groups(ctx: AuditContext, users: np.ndarray) -> dict[str, np.ndarray]:
    """Attribute -> (U,) group label of each of ``users`` (attributes the data lacks are left
    out; ``activity`` is always there)."""
    out = {}
    table = ctx.split.train.user_table
    if table is not None:
        for name in ("gender", "occupation"):
            if name in table:
                out[name] = np.asarray([str(v) for v in table[name][users]], dtype=object)
        if "age" in table:
            out["age"] = np.asarray([age_band(v) for v in table["age"][users]], dtype=object)
    counts = ctx.split.train.user_counts
    threshold = np.quantile(counts, 1 - ACTIVE_SHARE)
    out["activity"] = np.where(counts[users] > threshold, "active", "inactive").astype(object)
    return out


def age_band(age) -> str:
    try:
        age = float(age)
    except (TypeError, ValueError):
        return "unknown"
    for lo, hi, name in AGE_BANDS:
        if lo <= age < hi:
            return name
    return "unknown"


def run(ctx: AuditContext, label: str) -> Finding:
    cfg, k = ctx.config, ctx.config.k
    ev = ctx.evaluation(label)
    values = ev.per_user[f"ndcg@{k}"]
    metrics, settings = (
        {},
        {
            "k": k,
            "metric": f"ndcg@{k}",
            "users": int(len(ev.users)),
            "active_share": ACTIVE_SHARE,
            "groups": {},
            "left_out": {},
        },
    )
    for attr, labels in user_groups(ctx, ev.users).items():
        names, sizes = np.unique(labels[labels != "unknown"], return_counts=True)
        kept = [str(n) for n, s in zip(names, sizes) if s >= cfg.min_group]
        settings["left_out"][attr] = [str(n) for n, s in zip(names, sizes) if s < cfg.min_group]
        settings["groups"][attr] = {
            str(n): int(s) for n, s in zip(names, sizes) if s >= cfg.min_group
        }
        if len(kept) < 2:
            continue
        by_group = {g: values[labels == g] for g in kept}
        gap = group_gap(by_group, seed=cfg.seed)
        metrics[f"ndcg_gap@{k}[{attr}]"] = {
            "mean": gap["gap"],
            "ci_low": gap["ci_low"],
            "ci_high": gap["ci_high"],
            "p_value": gap["p_value"],
            "best_group": gap["high"],
            "worst_group": gap["low"],
            "test": gap["test"],
        }
        for g in kept:
            metrics[f"ndcg@{k}[{attr}={g}]"] = summarise(by_group[g], seed=cfg.seed)
    return Finding(label, NAME, metrics, settings)
