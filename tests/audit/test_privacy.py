"""Privacy: a sampler that copies its training users is caught; distances are Jaccard."""

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.privacy import applies, nearest_distance, run
from genrec.audit.world import audit_world
from genrec.models import EASE, MultVAE


class Copier:
    """A 'generative model' that memorises: its samples are its training users, verbatim."""

    name = "copier"

    def fit(self, train, *, valid=None, options=None):
        rows = train.user_items
        self.rows_ = rows[np.flatnonzero(np.diff(rows.indptr) > 0)]
        return self

    def sample_profiles(self, n, *, seed=0):
        return self.rows_[np.arange(n) % self.rows_.shape[0]]


class Shuffler(Copier):
    """Samples profiles of the right lengths with items drawn uniformly: no memorisation."""

    def sample_profiles(self, n, *, seed=0):
        rng = np.random.default_rng(seed)
        lengths = np.diff(self.rows_.indptr)[np.arange(n) % self.rows_.shape[0]]
        m = self.rows_.shape[1]
        rows = [rng.choice(m, k, replace=False) for k in lengths]
        return sp.csr_matrix(
            (np.ones(sum(lengths)), (np.repeat(np.arange(n), lengths), np.concatenate(rows))),
            shape=(n, m),
        )


def test_nearest_distance_is_jaccard():
    a = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 1]]))
    b = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]]))
    # row 0: to b0 1 - 1/2, to b1 1 - 0/4; row 1: to b0 1 - 1/3, to b1 1 - 2/3
    assert nearest_distance(a, b) == pytest.approx([0.5, 1 / 3])


@pytest.mark.parametrize("model, leaks", [(Copier, True), (Shuffler, False)])
def test_memorisation_is_detected(model, leaks):
    split = audit_world(seed=5)
    ctx = AuditContext(split, {"m": "m"}, lambda spec: model(), AuditConfig())
    m = run(ctx, "m").metrics
    if leaks:
        assert m["dcr_train"]["mean"] == 0.0
        assert m["dcr_closer_to_train"]["mean"] == 1.0
        assert m["mia_auc"]["mean"] > 0.95
    else:
        assert 0.3 < m["dcr_closer_to_train"]["mean"] < 0.7
        assert 0.35 < m["mia_auc"]["mean"] < 0.65


def test_applies_only_to_samplers():
    assert applies(MultVAE()) is None
    assert "does not sample" in applies(EASE())
