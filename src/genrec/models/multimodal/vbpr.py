"""VBPR: BPR matrix factorisation with a visual factor read from pre-extracted item features.

Method: He and McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback",
AAAI 2016. With f_i the item's feature vector (here: the unit-length image vector of
:mod:`genrec.multimodal.features`; the paper used 4096-d CNN features)::

    score(u, i) = beta_i + beta'^T f_i + gamma_u^T gamma_i + theta_u^T (E^T f_i)

(the global and user biases cancel in every pairwise difference and are left out). Training is
BPR on triples (u, i, j) with the objective of Cornac's implementation
(``cornac/models/vbpr/recom_vbpr.py``), summed over a batch::

    x_uij = beta_i - beta_j + gamma_u^T (gamma_i - gamma_j) + theta_u^T E^T (f_i - f_j)
            + beta'^T (f_i - f_j)
    loss  = -sum log sigmoid(x_uij) + lambda_w/2 (|gamma_u|^2 + |gamma_i|^2 + |gamma_j|^2
            + |theta_u|^2) + lambda_b/2 |beta_i|^2 + lambda_b/20 |beta_j|^2
            + lambda_e/2 (|E|^2 + |beta'|^2)

optimised with Adam; Xavier-uniform initialisation of gamma, theta, E and beta', zero item biases
(Cornac's). The defaults are Cornac's constructor defaults (k=10, k2=10, 50 epochs, batch 100,
lr 0.005, lambda_w 0.01, lambda_b 0.01, lambda_e 0; its docstring says 20 epochs and lr 0.001,
which the code does not use); the ``tradesy`` preset is Cornac's Tradesy example (k2=20, lr
0.005, lambda_w=1, 50 epochs).

Deviations, all deliberate:

* each epoch visits every training interaction once as (u, i) with one negative j drawn
  uniformly from the items that have training interactions (Cornac draws from its training
  items too; whether it re-draws a j the user has seen was not checked here: we do not);
* items without a training interaction (cold items) are scored by content alone: their
  gamma_i and beta_i, which never received a gradient, are zero at scoring time;
* ``features`` chooses f_i: the image vector, the text vector (MiniLM; the "text-only mode"
  for datasets without images) or both concatenated; a missing modality is a zero block;
* fold-in for users unknown to the model (not in the paper): [gamma_u, theta_u] is the ridge fit
  of the history row onto the items' [gamma_i, E^T f_i] (:func:`~genrec.models.classic.bpr.ridge_fold_in`).

Example:
    >>> import tempfile
    >>> from genrec.data.synthetic_multimodal import multimodal_world
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48)
    >>> model = VBPR(epochs=2, image_encoder="pixels-8", image_cache="off").fit(world.split.train)
    >>> model.score(world.split.train.user_items[:2]).shape
    (2, 48)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.models.base import ModelConfig, Recommender
from genrec.models.classic.bpr import ridge_fold_in
from genrec.models.neural import (
    seeded,
    shuffled_batches,
    to_numpy,
    torch_device,
)
from genrec.multimodal.features import check_image_fields, image_vectors, text_vectors
from genrec.text.items import check_text_fields

FEATURES = ("image", "text", "both")


@dataclass(frozen=True)
class VBPRConfig(ModelConfig):
    """Hyper-parameters of :class:`VBPR`; defaults are Cornac's (see the module docstring)."""

    presets = {"tradesy": {"k2": 20, "epochs": 50, "lr": 0.005, "lambda_w": 1.0}}

    k: int = 10  # dimension of the latent factors gamma
    k2: int = 10  # dimension of the visual factors theta (and of E's output)
    epochs: int = 50  # passes over the training interactions
    batch_size: int = 100  # triples per Adam step
    lr: float = 0.005  # Adam learning rate
    lambda_w: float = 0.01  # L2 weight of gamma_u, gamma_i, gamma_j, theta_u
    lambda_b: float = 0.01  # L2 weight of beta_i (beta_j: a tenth of it)
    lambda_e: float = 0.0  # L2 weight of E and beta'
    features: str = "image"  # item features f_i: "image", "text" or "both" (concatenated)
    fold_in_reg: float = (
        1.0  # ridge strength of the fold-in of unknown users (mean-eigenvalue units)
    )
    image_encoder: str = (
        "efficientnet"  # for catalog image paths: "efficientnet", "pixels", "pixels-N"
    )
    image_cache: str = "default"  # image feature cache: "default", "off" or a folder
    text_encoder: str = "minilm"  # item text encoder when features use text
    text_template: str = ""  # item text template; "" = the catalog's text fields
    text_cache: str = "default"  # text embedding cache: "default", "off" or a folder

    def __post_init__(self):
        self.check_positive_ints("k", "k2", "epochs", "batch_size")
        self.check(self.lr > 0, "lr", "a positive number")
        for name in ("lambda_w", "lambda_b", "lambda_e", "fold_in_reg"):
            self.check(getattr(self, name) >= 0, name, "a number >= 0")
        self.check(self.features in FEATURES, "features", f"one of {', '.join(FEATURES)}")
        check_image_fields(self)
        check_text_fields(self)


def item_features(model: Recommender, train) -> np.ndarray:
    """(I, F) float32 features f_i chosen by ``config.features`` (zero rows where missing)."""
    c = model.config
    blocks = []
    if c.features in ("image", "both"):
        blocks.append(
            image_vectors(train, encoder=c.image_encoder, cache=c.image_cache, model=model.name)[0]
        )
    if c.features in ("text", "both"):
        blocks.append(
            text_vectors(
                train,
                encoder=c.text_encoder,
                template=c.text_template,
                cache=c.text_cache,
                model=model.name,
            )[0]
        )
    return np.concatenate(blocks, axis=1).astype(np.float32)


class VBPR(Recommender):
    """Learned attributes: ``gamma_user_`` (U, k), ``gamma_item_`` (I, k), ``theta_user_``
    (U, k2), ``E_`` (F, k2), ``beta_item_`` (I,), ``beta_prime_`` (F,), ``features_`` (I, F),
    ``trained_items_`` / ``trained_users_`` (bool masks)."""

    name = "vbpr"
    Config = VBPRConfig

    def _fit(self, train, valid, options):
        self.features_ = item_features(self, train)
        self.trained_items_ = train.item_counts > 0
        self.trained_users_ = train.user_counts > 0
        with seeded(options.seed):
            params = self._train(train, np.random.default_rng(options.seed), options)
        for key, value in params.items():
            setattr(self, key + "_", value)

    def _train(self, train, rng, options) -> dict[str, np.ndarray]:
        import torch

        c, (n_users, n_items), dim = (
            self.config,
            (train.n_users, train.n_items),
            self.features_.shape[1],
        )
        xavier = lambda *shape: torch.nn.init.xavier_uniform_(torch.empty(*shape))  # noqa: E731
        p = {
            "gamma_user": xavier(n_users, c.k),
            "gamma_item": xavier(n_items, c.k),
            "theta_user": xavier(n_users, c.k2),
            "E": xavier(dim, c.k2),
            "beta_item": torch.zeros(n_items),
            "beta_prime": xavier(dim, 1),
        }  # drawn on the CPU (the same init on every device), then moved
        device = torch_device(options)
        p = {k: v.to(device).requires_grad_() for k, v in p.items()}
        feats = torch.from_numpy(self.features_).to(device)
        optimizer = torch.optim.Adam(list(p.values()), lr=c.lr)
        users, items = train.user_idx.astype(np.int64), train.item_idx.astype(np.int64)
        pool = np.flatnonzero(self.trained_items_)
        for _ in options.track(range(c.epochs), desc="vbpr", unit="epoch"):
            negatives = pool[rng.integers(0, len(pool), len(users))]
            for batch in shuffled_batches(len(users), c.batch_size, rng):
                u, i, j = (torch.from_numpy(x[batch]).to(device) for x in (users, items, negatives))
                loss = vbpr_loss(p, feats, u, i, j, c)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        out = {k: to_numpy(v).astype(np.float32) for k, v in p.items()}  # scoring is numpy
        out["beta_prime"] = out["beta_prime"].ravel()
        return out

    # ---- scoring -----------------------------------------------------------------------------
    def _item_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gamma_i (I, k), theta_i = E^T f_i (I, k2), bias_i (I,)); cold items: content only."""
        warm = self.trained_items_[:, None]
        gamma = np.where(warm, self.gamma_item_, 0.0)
        bias = (
            np.where(self.trained_items_, self.beta_item_, 0.0) + self.features_ @ self.beta_prime_
        )
        return gamma, self.features_ @ self.E_, bias

    def _score(self, histories, users):
        gamma, theta, bias = self._item_parts()
        items = np.concatenate([gamma, theta], axis=1)  # (I, k + k2)
        known = np.zeros(histories.shape[0], bool) if users is None else self.trained_users_[users]
        user_vecs = np.empty((histories.shape[0], items.shape[1]), np.float64)
        if known.any():
            user_vecs[known] = np.concatenate(
                [self.gamma_user_[users[known]], self.theta_user_[users[known]]], axis=1
            )
        if not known.all():
            user_vecs[~known] = ridge_fold_in(histories[~known], items, self.config.fold_in_reg)
        return (user_vecs @ items.T + bias).astype(np.float32)  # (B, I)

    # ---- persistence -------------------------------------------------------------------------
    KEYS = (
        "gamma_user",
        "gamma_item",
        "theta_user",
        "E",
        "beta_item",
        "beta_prime",
        "features",
        "trained_items",
        "trained_users",
    )

    def _state(self):
        return {k: getattr(self, k + "_") for k in self.KEYS}

    def _load_state(self, state):
        for k in self.KEYS:
            setattr(self, k + "_", np.asarray(state[k]))


def vbpr_loss(p: dict, feats, u, i, j, c: VBPRConfig):
    """Cornac's VBPR batch loss (module docstring) for index tensors u, i, j of shape (B,)."""
    import torch.nn.functional as F

    gamma_u, theta_u = p["gamma_user"][u], p["theta_user"][u]  # (B, k), (B, k2)
    gamma_i, gamma_j = p["gamma_item"][i], p["gamma_item"][j]
    beta_i, beta_j = p["beta_item"][i], p["beta_item"][j]
    diff = feats[i] - feats[j]  # (B, F)
    x = (
        beta_i
        - beta_j
        + (gamma_u * (gamma_i - gamma_j)).sum(1)
        + (theta_u * (diff @ p["E"])).sum(1)
        + (diff @ p["beta_prime"]).ravel()
    )
    half_sq = lambda *ts: sum(t.pow(2).sum() for t in ts) / 2  # noqa: E731
    reg = (
        c.lambda_w * half_sq(gamma_u, gamma_i, gamma_j, theta_u)
        + c.lambda_b * half_sq(beta_i)
        + c.lambda_b / 10 * half_sq(beta_j)
        + c.lambda_e * half_sq(p["E"], p["beta_prime"])
    )
    return -F.logsigmoid(x).sum() + reg
