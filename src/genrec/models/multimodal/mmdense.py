"""Multimodal dense retrieval: items as aligned image + text embeddings, queries from a
history, a text, an image, or a reference image with a modifying text.

Alignment follows LiT (Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning",
CVPR 2022): the image tower is locked (EfficientNet-Lite0 features, encoded once and cached, so
training costs only the text side), and a text projection W is trained on the catalog's own
image-text pairs with the symmetric InfoNCE loss of CLIP (Radford et al., ICML 2021) and a
learned temperature::

    s_ab  = exp(t) * <unit(W x_a), z_b>           (x: centred text vector, z: centred image vector)
    loss  = (CE(s, diag) + CE(s^T, diag)) / 2     over a batch of items with both modalities

Item embedding: ``e_i = unit(w * z_i + (1 - w) * unit(W x_i))`` with ``w = image_weight``; a
missing modality contributes nothing, so an item with only text (or only an image) is still
ranked. Every score is an inner product with e_i, so items without interactions (cold items)
are ranked by content like the others.

Queries (all unit vectors in the image space):

* a history: the mean of its items' e_i (:meth:`score` / :meth:`recommend`);
* a text: ``unit(W x)`` (:meth:`score_texts`);
* an image file: its centred image vector (:meth:`score_images`);
* a composed query "like this one, but <text>": ``unit(z_ref + unit(W x_text))``, the element-wise
  sum that CLIP4Cir (Baldrati et al., CVPR-W 2022) starts from, scored against item *images*
  (:meth:`score_composed`), or CLIP4Cir's learned Combiner in its place
  (:mod:`~genrec.models.multimodal.combiner`).

Deviations, all deliberate: the text tower itself (MiniLM) stays frozen and only a linear
projection on top of it is trained (LiT unlocks the whole text tower; on a catalog of a few
thousand pairs a projection is what can be trained on a CPU); image and text vectors are centred
(their catalog mean subtracted) before everything; ``modalities="text"`` skips alignment and is
plain centred text retrieval (the text-only mode for datasets without images).

Example:
    >>> import tempfile
    >>> from genrec.data.synthetic_multimodal import multimodal_world
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48)
    >>> model = MultimodalDense(image_encoder="pixels-8", image_cache="off", text_encoder="hashing",
    ...                         text_cache="off", epochs=5).fit(world.split.train)
    >>> model.score_texts(["a blue square"]).shape
    (1, 48)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.errors import ConfigError
from genrec.models.base import ModelConfig, Recommender
from genrec.models.neural import (
    seeded,
    shuffled_batches,
    to_numpy,
    torch_device,
)
from genrec.multimodal.features import check_image_fields, image_vectors, text_vectors
from genrec.multimodal.images import get_image_encoder
from genrec.text.encoder import get_encoder
from genrec.text.items import check_text_fields, unit_rows

MODALITIES = ("both", "text", "image")


@dataclass(frozen=True)
class MultimodalDenseConfig(ModelConfig):
    """Hyper-parameters of :class:`MultimodalDense`."""

    modalities: str = "both"  # "both", "text" (no images: plain text retrieval) or "image"
    image_weight: float = 0.5  # weight w of the image vector in the item embedding
    epochs: int = 100  # passes over the catalog's image-text pairs (LiT alignment)
    batch_size: int = 256  # pairs per InfoNCE batch (the other pairs are the negatives)
    lr: float = 0.001  # Adam learning rate of the projection and the temperature
    init_temperature: float = 0.07  # CLIP's initial temperature (learned, at least 0.01)
    image_encoder: str = (
        "efficientnet"  # for catalog image paths: "efficientnet", "pixels", "pixels-N"
    )
    image_cache: str = "default"  # image feature cache: "default", "off" or a folder
    text_encoder: str = "minilm"  # item text encoder: "minilm", "hashing" or a folder
    text_template: str = ""  # item text template; "" = the catalog's text fields
    text_cache: str = "default"  # text embedding cache: "default", "off" or a folder

    def __post_init__(self):
        self.check(self.modalities in MODALITIES, "modalities", f"one of {', '.join(MODALITIES)}")
        self.check(0.0 <= self.image_weight <= 1.0, "image_weight", "a number in [0, 1]")
        self.check_positive_ints("epochs", "batch_size")
        self.check(self.lr > 0, "lr", "a positive number")
        self.check(0.01 <= self.init_temperature <= 1.0, "init_temperature", "in [0.01, 1]")
        check_image_fields(self)
        check_text_fields(self)


def centred(vectors: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows of ``vectors - mean`` where present, zero elsewhere; the mean (D,))."""
    mean = (
        vectors[present].mean(axis=0) if present.any() else np.zeros(vectors.shape[1], np.float32)
    )
    return np.where(present[:, None], unit_rows(vectors - mean), 0.0).astype(np.float32), mean


class MultimodalDense(Recommender):
    """Learned attributes: ``image_`` (I, Dz) and ``text_`` (I, Dx) centred unit item vectors
    (zero rows where missing), ``projection_`` (Dx, Dz) W, ``logit_scale_`` exp(t),
    ``item_embeddings_`` (I, Dz or Dx) e_i, and the means used to centre new queries."""

    name = "mmdense"
    Config = MultimodalDenseConfig

    def _fit(self, train, valid, options):
        c = self.config
        text, text_present = text_vectors(
            train,
            encoder=c.text_encoder,
            template=c.text_template,
            cache=c.text_cache,
            model=self.name,
        )
        self.text_, self.text_mean_ = centred(text, text_present)
        if c.modalities == "text":
            self.image_, self.image_mean_ = np.zeros((train.n_items, 0), np.float32), np.zeros(0)
            self.projection_, self.logit_scale_ = (
                np.zeros((text.shape[1], 0), np.float32),
                np.ones(1),
            )
        else:
            image, image_present = image_vectors(
                train, encoder=c.image_encoder, cache=c.image_cache, model=self.name
            )
            self.image_, self.image_mean_ = centred(image, image_present)
            with seeded(options.seed):
                self.projection_, self.logit_scale_ = self._align(
                    np.random.default_rng(options.seed), options
                )
        self._build()

    def _align(self, rng, options) -> tuple[np.ndarray, np.ndarray]:
        """LiT: train W (Dx, Dz) and the temperature on items with both modalities."""
        import torch
        import torch.nn.functional as F

        both = np.flatnonzero(self.image_.any(axis=1) & self.text_.any(axis=1))
        device = torch_device(options)
        x = torch.from_numpy(self.text_[both]).to(device)  # (N, Dx)
        z = torch.from_numpy(self.image_[both]).to(device)  # (N, Dz)
        w0 = torch.randn(x.shape[1], z.shape[1]) / np.sqrt(x.shape[1])  # drawn on the CPU
        w = torch.nn.Parameter(w0.to(device))
        t = torch.nn.Parameter(
            torch.tensor(
                [np.log(1.0 / self.config.init_temperature)], dtype=torch.float32, device=device
            )
        )
        optimizer = torch.optim.Adam([w, t], lr=self.config.lr)
        for _ in options.track(range(self.config.epochs if len(both) > 1 else 0), desc="lit"):
            for batch in shuffled_batches(len(both), self.config.batch_size, rng):
                if len(batch) < 2:
                    continue
                logits = (
                    t.clamp(max=np.log(100.0)).exp() * F.normalize(x[batch] @ w, dim=1) @ z[batch].T
                )
                target = torch.arange(len(batch), device=device)
                loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return to_numpy(w).astype(np.float32), to_numpy(t.detach().clamp(max=np.log(100.0)).exp())

    def _build(self) -> None:
        if self.config.modalities == "text":
            self.item_embeddings_ = self.text_
            return
        projected = unit_rows(self.text_ @ self.projection_)  # (I, Dz), zero rows stay zero
        w = self.config.image_weight if self.config.modalities == "both" else 1.0
        self.item_embeddings_ = unit_rows(w * self.image_ + (1.0 - w) * projected)

    # ---- scoring -----------------------------------------------------------------------------
    def _score(self, histories, users):
        query = unit_rows(np.asarray(histories @ self.item_embeddings_))  # (B, D) mean of e_i
        return query @ self.item_embeddings_.T

    def text_queries(self, texts: list[str]) -> np.ndarray:
        """(len(texts), D) unit query vectors of free texts in the item embedding space."""
        self._require_fitted()
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        x = unit_rows(get_encoder(self.config.text_encoder).encode(texts) - self.text_mean_)
        return x if self.config.modalities == "text" else unit_rows(x @ self.projection_)

    def image_queries(self, paths: list[str]) -> np.ndarray:
        """(len(paths), Dz) centred unit vectors of image files (needs images: not text mode)."""
        self._require_fitted()
        if self.config.modalities == "text":
            raise ConfigError(
                "this mmdense model was fitted with modalities='text'; image "
                "queries need modalities='both' or 'image'"
            )
        paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
        vectors = get_image_encoder(self.config.image_encoder).encode(paths)
        return unit_rows(vectors - self.image_mean_)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), n_items) scores of free-text queries ("a red striped circle")."""
        return self.text_queries(texts) @ self.item_embeddings_.T

    def score_images(self, paths: list[str]) -> np.ndarray:
        """(len(paths), n_items) scores of image queries against the item embeddings."""
        return self.image_queries(paths) @ self.item_embeddings_.T

    def score_composed(
        self, reference_items: np.ndarray, texts: list[str], *, combiner=None
    ) -> np.ndarray:
        """(B, n_items) composed-query scores against item images: query
        ``unit(z_ref + unit(W x_text))`` for reference item indices (B,) and modifier texts (B,),
        or ``combiner.combine(z_ref, unit(W x_text))`` with a fitted
        :class:`~genrec.models.multimodal.combiner.LearnedCombiner`.
        The caller removes the reference itself from the ranking (CIRR-style)."""
        reference_items = np.asarray(reference_items, np.int64).reshape(-1)
        if len(reference_items) != len(texts):
            raise ConfigError(
                f"got {len(reference_items)} reference items for {len(texts)} "
                "modifier texts; give one text per reference"
            )
        if self.config.modalities == "text":
            raise ConfigError(
                "composed queries compare item images; fit mmdense with "
                "modalities='both' or 'image'"
            )
        reference, text = self.image_[reference_items], self.text_queries(list(texts))
        query = (
            unit_rows(reference + text) if combiner is None else combiner.combine(reference, text)
        )
        return query @ self.image_.T

    # ---- persistence -------------------------------------------------------------------------
    KEYS = ("image", "image_mean", "text", "text_mean", "projection", "logit_scale")

    def _state(self):
        # the item embeddings too: rebuilt at load they could differ in their last bits (the
        # fit built them under its thread caps, a load runs on the caller's BLAS threads)
        return {k: getattr(self, k + "_") for k in (*self.KEYS, "item_embeddings")}

    def _load_state(self, state):
        for k in self.KEYS:
            setattr(self, k + "_", np.asarray(state[k], np.float32))
        self._build()  # older artifacts have no item_embeddings
        if "item_embeddings" in state:
            self.item_embeddings_ = np.asarray(state["item_embeddings"], np.float32)


def image_text_recall(model: MultimodalDense, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Image<->text retrieval after alignment over items with both modalities: for each item's
    text, the rank of its own image among all those images (text->image), and the reverse.
    Ties count against the match (identical texts do not find their own image by luck).
    Returns ``{"t2i@K": recall, "i2t@K": recall}``."""
    both = np.flatnonzero(model.image_.any(axis=1) & model.text_.any(axis=1))
    sims = unit_rows(model.text_[both] @ model.projection_) @ model.image_[both].T  # (N, N)
    out = {}
    for name, s in (("t2i", sims), ("i2t", sims.T)):
        rank = (s >= np.diag(s)[:, None]).sum(axis=1) - 1  # others scored at least as high
        out.update({f"{name}@{k}": float((rank < k).mean()) for k in ks})
    return out
