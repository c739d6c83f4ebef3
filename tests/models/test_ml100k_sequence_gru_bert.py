"""End-to-end: GRU4Rec and BERT4Rec on ML-100K leave-one-out, far above RecBole's capped floors.

RecBole 1.2.1 stopped after a few epochs here (PEERS.md: GRU4Rec NDCG@10 0.0222, BERT4Rec
0.0210, capped and not converged). To keep CI time down each model trains for a fixed, short
budget of 12 epochs (the defaults with ``max_epochs`` capped; no early stopping), about 15 s
(GRU4Rec) and 25 s (BERT4Rec) of CPU at one thread. The floors are our measured test NDCG@10 of
that budget minus ``NOISE``; the early-stopped defaults reach about 0.086 (see the model
docstrings), BERT4Rec being the one that needs many more epochs.
"""

from __future__ import annotations

import pytest

from genrec.data.splits import leave_one_out_split
from genrec.evaluation.protocol import evaluate_split
from genrec.models import BERT4Rec, GRU4Rec
from genrec.options import RunOptions

RECBOLE_NDCG10 = {"gru4rec": 0.0222, "bert4rec": 0.0210}
BUDGET = {"gru4rec": {"max_epochs": 12}, "bert4rec": {"max_epochs": 12}}
MEASURED = {"gru4rec": 0.0711, "bert4rec": 0.0439}  # test NDCG@10 of the budget, seed 42, 1 thread
NOISE = 0.015


@pytest.fixture(scope="module")
def split(ml100k):
    return leave_one_out_split(ml100k)


@pytest.mark.slow
@pytest.mark.parametrize("model_cls", [GRU4Rec, BERT4Rec], ids=lambda c: c.name)
def test_far_above_recbole(split, model_cls):
    model = model_cls(BUDGET[model_cls.name]).fit(
        split.train, options=RunOptions(seed=42, threads=1)
    )
    ndcg = evaluate_split(model, split, "test", ks=(10,), metrics=("ndcg",)).mean("ndcg@10")
    assert ndcg >= MEASURED[model.name] - NOISE, f"{model.name} NDCG@10 {ndcg:.4f}"
    assert ndcg > RECBOLE_NDCG10[model.name] + 0.01
