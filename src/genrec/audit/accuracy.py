"""Scenario ``accuracy``: the standard protocol's ranking accuracy, the reference every harm
is weighed against (full ranking over all items, seen items excluded; see
:mod:`genrec.evaluation.protocol`)."""

from __future__ import annotations

from genrec.audit.context import AuditContext
from genrec.audit.results import Definition, Finding, summarise

NAME = "accuracy"
HEADLINE = "ndcg@{k}"
METRICS = {
    "ndcg": Definition(
        "Per user, DCG of the top-K (gain 1 per held-out test item, discount "
        "1/log2(rank+1)) over the ideal DCG; mean over test users.",
        "Jarvelin & Kekalainen 2002; genrec.evaluation.metrics.ranking_metrics",
        "higher",
    ),
    "recall": Definition(
        "Per user, held-out test items in the top-K over min(K, number of test "
        "items); mean over test users.",
        "genrec.evaluation.metrics.ranking_metrics (RecBole's definition)",
        "higher",
    ),
    "hit": Definition(
        "Per user, 1 if any held-out test item is in the top-K; mean over users.",
        "genrec.evaluation.metrics.ranking_metrics",
        "higher",
    ),
}


def applies(model) -> str | None:
    return None


def run(ctx: AuditContext, label: str) -> Finding:
    ev = ctx.evaluation(label)
    k = ctx.config.k
    metrics = {
        f"{m}@{k}": summarise(ev.per_user[f"{m}@{k}"], seed=ctx.config.seed)
        for m in ("ndcg", "recall", "hit")
    }
    return Finding(label, NAME, metrics, {"users": int(len(ev.users)), "k": k})
