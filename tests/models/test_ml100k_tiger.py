"""End-to-end: TIGER on MovieLens-100K leave-one-out, far above RecBole's capped SASRec.

Default config (MiniLM item-title embeddings, 3 x 32 codebooks + collision digit), training seed
42, 1 thread; full ranking of the exact trie-constrained log-probabilities. RecBole's capped
SASRec reaches test NDCG@10 0.0322 on this protocol (PEERS.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from genrec.data.splits import leave_one_out_split
from genrec.evaluation.protocol import evaluate_split
from genrec.models import TIGER
from genrec.options import RunOptions

RECBOLE_SASREC_NDCG10 = 0.0322
# The default config stops after ~36 epochs at test NDCG@10 0.0714 (benchmarks/sequential.py),
# which takes minutes: too slow for the suite. Here it trains 6 epochs (~1 minute), where it
# measured 0.0414; the floor keeps it above RecBole's capped SASRec.
EPOCHS = 6
MEASURED_NDCG10 = 0.0414
NOISE = 0.006


@pytest.mark.slow
def test_tiger_ml100k_loo(ml100k, tmp_path):
    split = leave_one_out_split(ml100k)
    model = TIGER(max_epochs=EPOCHS, text_cache=str(tmp_path / "emb")).fit(
        split.train, valid=split.valid, options=RunOptions(seed=42, threads=1)
    )
    result = evaluate_split(model, split, "test", ks=(10,), metrics=("ndcg", "recall"))
    ndcg = result.mean("ndcg@10")
    assert ndcg >= max(MEASURED_NDCG10 - NOISE, RECBOLE_SASREC_NDCG10), f"NDCG@10 {ndcg:.4f}"
    assert 0 <= model.collision_rate_ < 0.5
    users = np.flatnonzero(split.train.user_counts > 0)[:200]
    items, _ = model.recommend_beam(split.history("test").user_item_order[users], k=10)
    assert (items >= 0).all() and (items < ml100k.n_items).all()  # 100% real items
