"""Scenario ``privacy``: do synthetic users sampled from a generative model copy real ones?

For models that sample synthetic user profiles (``sample_profiles``: Mult-VAE, RecVAE, DiffRec,
L-DiffRec), the users with training interactions are split in half with the audit seed:
*members* (a fresh copy of the model is trained on their training interactions only) and
*holdout* users (never seen). As many synthetic profiles as members are sampled. Distances are
Jaccard distances between item sets, ``1 - |a & b| / |a | b|``.

* Distance to closest record (DCR; Park et al. 2018, the synthetic-data standard): for each
  synthetic profile, the distance to the closest member and to the closest holdout user.
  ``dcr_closer_to_train`` is the share of synthetic profiles closer to a member than to any
  holdout user (ties count half): 0.5 when the model generalises, towards 1 when it copies its
  training records.
* Membership inference (a distance attack in the spirit of Hilprecht et al., "Monte Carlo and
  reconstruction membership inference attacks against generative models", PETS 2019): every
  real user is scored by minus their distance to the closest synthetic profile; ``mia_auc`` is
  the AUC of that score separating members from holdout users (0.5 = no leak).

Canary exposure (planted training histories given back) is the ``canary`` scenario
(:mod:`genrec.audit.canary`); for tuned language models it is not measured yet.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.stats

from genrec.audit.context import AuditContext
from genrec.audit.results import Definition, Finding, point, summarise

NAME = "privacy"
HEADLINE = "mia_auc"
METRICS = {
    "dcr_train": Definition(
        "Mean Jaccard distance from a synthetic profile to the closest training (member) profile.",
        "Park et al. VLDB 2018 (DCR)",
        "",
    ),
    "dcr_holdout": Definition(
        "Mean Jaccard distance from a synthetic profile to the closest holdout profile.",
        "Park et al. VLDB 2018 (DCR)",
        "",
    ),
    "dcr_closer_to_train": Definition(
        "Share of synthetic profiles closer to a member than to any "
        "holdout user (ties half); 0.5 = no memorisation.",
        "DCR share test (synthetic-data evaluation practice)",
        "0.5",
    ),
    "mia_auc": Definition(
        "AUC of a distance-to-closest-synthetic membership attack, members vs "
        "holdout users; 0.5 = no leak.",
        "Hilprecht et al. PETS 2019 (distance-based MIA)",
        "0.5",
    ),
}


def applies(model) -> str | None:
    if callable(getattr(model, "sample_profiles", None)):
        return None
    return "does not sample synthetic users"


def nearest_distance(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """(len(a),) Jaccard distance from each row of ``a`` to its closest row of ``b`` (binary).

    Example:
        >>> a = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]]))
        >>> nearest_distance(a, sp.csr_matrix(np.array([[1, 1, 0]]))).tolist()
        [0.0, 1.0]
    """
    a = sp.csr_matrix((a > 0).astype(np.float32))
    b = sp.csr_matrix((b > 0).astype(np.float32))
    inter = (a @ b.T).toarray()  # (A, B)
    union = np.asarray(a.sum(1)) + np.asarray(b.sum(1)).T - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(union > 0, 1.0 - inter / union, 0.0)
    return dist.min(1)


def run(ctx: AuditContext, label: str) -> Finding:
    cfg = ctx.config
    train = ctx.split.train
    active = np.flatnonzero(train.user_counts > 0)
    rng = np.random.default_rng(cfg.seed)
    members = np.sort(rng.choice(active, len(active) // 2, replace=False))
    holdout = np.setdiff1d(active, members)
    member_data = train.subset(np.isin(train.user_idx, members))
    model = ctx.fresh(label).fit(member_data, options=ctx.options)
    n = cfg.privacy_samples or len(members)
    synthetic = model.sample_profiles(n, seed=cfg.seed)
    x = train.user_items
    d_member, d_holdout = (
        nearest_distance(synthetic, x[members]),
        nearest_distance(synthetic, x[holdout]),
    )
    closer = np.where(d_member < d_holdout, 1.0, np.where(d_member == d_holdout, 0.5, 0.0))
    score_member = -nearest_distance(x[members], synthetic)
    score_holdout = -nearest_distance(x[holdout], synthetic)
    auc = scipy.stats.mannwhitneyu(score_member, score_holdout).statistic / (
        len(score_member) * len(score_holdout)
    )
    metrics = {
        "dcr_train": summarise(d_member, seed=cfg.seed),
        "dcr_holdout": summarise(d_holdout, seed=cfg.seed),
        "dcr_closer_to_train": summarise(closer, seed=cfg.seed),
        "mia_auc": point(float(auc)),
    }
    settings = {
        "members": int(len(members)),
        "holdout": int(len(holdout)),
        "synthetic_profiles": int(n),
        "distance": "Jaccard",
        "synthetic_mean_length": float(np.diff(synthetic.indptr).mean()),
    }
    return Finding(label, NAME, metrics, settings)
