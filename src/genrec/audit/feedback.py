"""Scenario ``feedback-loop``: what repeated retraining on accepted recommendations does.

Round 0 fits the model on the training part. In each of ``rounds`` rounds every evaluated user
is shown their top-K and accepts exactly one item under a position-biased choice model: the
item at rank j is taken with probability proportional to ``1 / log2(1 + j)`` (the examination
discount of DCG; users click what they see first more often). Accepted items become new
training interactions (the data's highest value, timestamps after all data) and the model is
refitted from scratch. After every fit the round records:

* accuracy: NDCG@K on the fixed test items not yet accepted (accepted test items leave the
  target set; their number is in ``settings``);
* ``gini@K`` and ``coverage@K`` of the lists (:mod:`genrec.evaluation.metrics`);
* ``homogenisation@K``: mean Jaccard similarity between the top-K lists of random pairs of
  users (the feedback-loop literature's homogenisation; Chaney, Stewart & Engelhardt, "How
  algorithmic confounding in recommendation systems increases homogeneity", RecSys 2018).

``*_change`` is the last round minus round 0. Models that ask a language model for every scored
user (``llm``, ``ease+llm``) loop on the audit's language-model user sample (``lm_users``,
:meth:`~genrec.audit.context.AuditContext.lm_sample`, the sample of the injection and
hallucination scenarios) for ``lm_rounds`` rounds: each round refits the whole model (the EASE
inside ``ease+llm`` learns the accepted items; ``llm`` alone reads the new popularity that picks
its candidates) and asks the language model again for every sampled user. Only the sampled users
accept items, so the loop feeds back fewer interactions than an all-user loop; the row's
settings say which users and rounds ran. Every ranker applies: a model that learns nothing from
interactions (``dense``, ``bm25``) still reads each user's history, which the accepted items
grow.
"""

from __future__ import annotations

import numpy as np

from genrec.audit.context import AuditContext, asks_lm
from genrec.audit.results import Definition, Finding, point, summarise
from genrec.data.dataset import Dataset
from genrec.evaluation import metrics as M
from genrec.evaluation.protocol import evaluate

NAME = "feedback-loop"
HEADLINE = "gini_change@{k}"
PAIRS = 2000  # user pairs sampled for homogenisation
METRICS = {
    "homogenisation": Definition(
        "Mean Jaccard similarity |L_u & L_v| / |L_u | L_v| of the "
        "top-K lists of random user pairs (2,000 pairs).",
        "Chaney et al. RecSys 2018",
        "lower",
    ),
    "gini_change": Definition("gini@K after the last round minus round 0.", "genrec", "lower"),
    "coverage_change": Definition(
        "coverage@K after the last round minus round 0.", "genrec", "higher"
    ),
    "homogenisation_change": Definition(
        "homogenisation@K after the last round minus round 0.", "genrec", "lower"
    ),
    "ndcg_change": Definition(
        "NDCG@K after the last round minus round 0 (on test items not yet accepted).",
        "genrec",
        "higher",
    ),
}


def applies(model) -> str | None:
    return None  # every ranker reads the histories the accepted items grow (module docstring)


def homogenisation(top_items: np.ndarray, rng, *, pairs: int = PAIRS) -> np.ndarray:
    """(P,) Jaccard similarity of the lists of ``pairs`` random user pairs (u != v).

    Example:
        >>> homogenisation(np.array([[0, 1], [0, 1]]), np.random.default_rng(0), pairs=3).tolist()
        [1.0, 1.0, 1.0]
    """
    n = top_items.shape[0]
    u = rng.integers(0, n, pairs)
    v = (u + rng.integers(1, n, pairs)) % n  # never u itself
    a, b = top_items[u], top_items[v]  # (P, K)
    inter = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(2).sum(1)
    sizes = (a >= 0).sum(1) + (b >= 0).sum(1)
    return inter / np.maximum(sizes - inter, 1)


def choose(top_items: np.ndarray, rng) -> np.ndarray:
    """(U,) the accepted item of each list: rank j with probability prop. to 1/log2(1+j)."""
    weights = np.where(top_items >= 0, 1.0 / np.log2(2 + np.arange(top_items.shape[1])), 0.0)
    cdf = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
    pick = (rng.random((len(top_items), 1)) > cdf).sum(1)
    return top_items[np.arange(len(top_items)), np.minimum(pick, top_items.shape[1] - 1)]


def run(ctx: AuditContext, label: str) -> Finding:
    cfg, k = ctx.config, ctx.config.k
    rng = np.random.default_rng(cfg.seed)
    lm = asks_lm(ctx.fitted(label))
    users = ctx.lm_sample(ctx.audited_users()) if lm else ctx.evaluation(label).users
    n_rounds = cfg.lm_rounds if lm else cfg.rounds
    train, split = ctx.split.train, ctx.split
    t_next = int(max(d.timestamp.max() for d in (train, split.valid, split.test) if len(d))) + 1
    metrics, rounds, accepted_targets = {}, [], 0
    for r in range(n_rounds + 1):
        if r == 0:  # the fitted model's test evaluation (shared with the other scenarios)
            ev = ctx.evaluation_of(label, users)
        else:
            model = ctx.fresh(label).fit(train, valid=split.valid, options=ctx.options)
            history = train.concat(split.valid)
            ev = evaluate(model, history, split.test, ks=(k,), metrics=("ndcg",), users=users)
        top = ev.top_items[:, :k]
        row = {
            "ndcg": ev.per_user[f"ndcg@{k}"],
            "gini": M.gini_exposure(top, train.n_items, k),
            "coverage": M.item_coverage(top, train.n_items, k),
            "homogenisation": homogenisation(top, rng),
        }
        rounds.append(row)
        metrics[f"ndcg@{k}[round={r}]"] = summarise(row["ndcg"], seed=cfg.seed)
        metrics[f"gini@{k}[round={r}]"] = point(row["gini"])
        metrics[f"coverage@{k}[round={r}]"] = point(row["coverage"])
        metrics[f"homogenisation@{k}[round={r}]"] = summarise(row["homogenisation"], seed=cfg.seed)
        if r == n_rounds:
            break
        picked = choose(top, rng)
        ok = picked >= 0
        accepted_targets += int(split.test.user_items[ev.users[ok], picked[ok]].sum())
        train = train.concat(
            Dataset(
                train.users,
                train.items,
                ev.users[ok],
                picked[ok],
                np.full(ok.sum(), train.value.max(), np.float32),
                np.full(ok.sum(), t_next + r, np.int64),
                name=train.name,
            )
        )
    first, last = rounds[0], rounds[-1]
    metrics[f"gini_change@{k}"] = point(last["gini"] - first["gini"])
    metrics[f"coverage_change@{k}"] = point(last["coverage"] - first["coverage"])
    metrics[f"homogenisation_change@{k}"] = point(
        float(last["homogenisation"].mean() - first["homogenisation"].mean())
    )
    metrics[f"ndcg_change@{k}"] = point(float(np.nanmean(last["ndcg"]) - np.nanmean(first["ndcg"])))
    settings = {
        "k": k,
        "rounds": n_rounds,
        "users": int(len(users)),
        "choice_model": "one accepted item per user and round, P(rank j) ~ 1/log2(1+j)",
        "accepted_test_items": accepted_targets,
    }
    if lm:
        settings["user_sample"] = (
            f"the audit's language-model sample (lm_users) for lm_rounds={n_rounds} rounds: "
            "every round asks the language model again for each sampled user"
        )
    return Finding(label, NAME, metrics, settings)
