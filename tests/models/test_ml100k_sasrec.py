"""End-to-end: SASRec (BCE and full-softmax CE) and gSASRec on ML-100K leave-one-out.

Full ranking, test NDCG@10 of the best-valid epoch, training seed 42, one thread. RecBole's
SASRec (PEERS.md) was capped after 2 epochs at NDCG@10 0.0322; ours must beat that floor
clearly. To keep each test under ~30 s the runs are capped at ``EPOCHS`` epochs (the defaults
train up to ~60 with early stopping); the floors are what those short runs reach minus 0.015 (at least RecBole's floor).
"""

from __future__ import annotations

import pytest

from genrec.build import build_model
from genrec.data.splits import leave_one_out_split
from genrec.evaluation.protocol import evaluate_split
from genrec.options import RunOptions

RECBOLE_SASREC_NDCG10 = 0.0322
EPOCHS = 8
# name, overrides, floor on test NDCG@10: measured at EPOCHS epochs (ce 0.0510, bce 0.0385,
# gsasrec 0.0453; the full default runs reach 0.0983, 0.0924, 0.0997) minus 0.015, and never
# below RecBole's capped 0.0322
CASES = [
    ("sasrec", {"loss": "ce"}, 0.036),
    ("sasrec", {"loss": "bce"}, 0.0322),
    ("gsasrec", {}, 0.0322),
]


@pytest.fixture(scope="module")
def split(ml100k):
    return leave_one_out_split(ml100k)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides, floor", CASES, ids=["sasrec-ce", "sasrec-bce", "gsasrec"]
)
def test_beats_recbole_floor(split, name, overrides, floor):
    model = build_model(name, {**overrides, "max_epochs": EPOCHS})
    model.fit(split.train, valid=split.valid, options=RunOptions(seed=42, threads=1))
    ndcg = evaluate_split(model, split, "test", ks=(10,), metrics=("ndcg",)).mean("ndcg@10")
    assert ndcg >= max(floor, RECBOLE_SASREC_NDCG10), f"{name} {overrides} NDCG@10 {ndcg:.4f}"
