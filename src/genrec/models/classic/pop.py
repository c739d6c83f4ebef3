"""Pop: recommend the most interacted-with items of the training data.

The weakest sensible baseline; every model must beat it. Scores are the same for every history
(seen items are excluded by ``recommend`` and the evaluator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class PopConfig(ModelConfig):
    """Pop has no hyper-parameters."""


class Pop(Recommender):
    """Item popularity (number of training users per item)."""

    name = "pop"
    Config = PopConfig

    def _fit(self, train, valid, options):
        self.item_popularity_ = np.asarray(train.user_items.sum(axis=0)).ravel().astype(np.float32)

    def _score(self, histories, users):
        return np.broadcast_to(self.item_popularity_, (histories.shape[0], self.n_items_))

    def _state(self):
        return {"item_popularity": self.item_popularity_}

    def _load_state(self, state):
        self.item_popularity_ = state["item_popularity"]
