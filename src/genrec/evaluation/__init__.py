"""Evaluation: per-user metrics (``metrics.py``) and their statistics (``stats.py``).

The evaluation protocol that ranks items for batches of users and calls these pure functions
lives in ``protocol.py``; how faithful an explanation is, in ``faithfulness.py``.
"""

from genrec.evaluation.metrics import (
    RANKING_METRICS,
    auc_from_counts,
    average_popularity,
    gini_exposure,
    intra_list_diversity,
    item_coverage,
    mae,
    novelty,
    ranking_metrics,
    rating_errors,
    rmse,
)
from genrec.evaluation.stats import (
    bootstrap_ci,
    compare_with_best,
    group_gap,
    holm,
    paired_tests,
)

__all__ = [
    "RANKING_METRICS",
    "auc_from_counts",
    "average_popularity",
    "gini_exposure",
    "intra_list_diversity",
    "item_coverage",
    "mae",
    "novelty",
    "ranking_metrics",
    "rating_errors",
    "rmse",
    "bootstrap_ci",
    "compare_with_best",
    "group_gap",
    "holm",
    "paired_tests",
]
