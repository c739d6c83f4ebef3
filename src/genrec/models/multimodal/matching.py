"""An image-text matching (ITM) head trained with hard negatives, reranking the top of
contrastive image<->text retrieval.

ALBEF (Li et al., "Align before Fuse", NeurIPS 2021) adds to the contrastive loss (ITC) a
matching head: a binary classifier "does this text describe this image?" over fused image and
text features, trained on the positive pairs and, for each of them, one hard negative text for
the image and one hard negative image for the text, drawn with probability
``softmax(contrastive similarity)`` so that near misses are seen most. At retrieval the
contrastive similarity picks the top ``top`` candidates and the ITM score (plus that
similarity, as in ALBEF's evaluation code) reorders them.

Here the inputs are an aligned :class:`~genrec.models.multimodal.mmdense.MultimodalDense`'s
vectors: the centred image vector ``z`` and the projected text ``p = unit(W x)`` (both in the
image space), and the fusion is an MLP over ``[z, p, z * p, |z - p|]``::

    logit(z, p) = w2 . GELU(W1 [z, p, z*p, |z-p|] + b1) + b2
    loss        = BCE(logit(z_i, p_i), 1) + BCE(logit(z_i, p_j~), 0) + BCE(logit(z_k~, p_i), 0)

Deviations, all deliberate: the towers are frozen (ALBEF fuses with cross-attention layers
trained end to end; here only the MLP on frozen features is trained, what a CPU can do on a
catalog); a negative identical to the positive (the same description, or the same image
vector) is never drawn: many catalog items share a description ("A circle"), and such a
"negative" is a positive; momentum distillation is not implemented.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(40, 8)).astype("float32"); z /= np.linalg.norm(z, axis=1)[:, None]
    >>> matcher = ImageTextMatcher(epochs=5, hidden=16).fit(z, z)  # text = image: trivial
    >>> matcher.pair_scores(z[:2], z[:2]).shape
    (2,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.errors import DataError
from genrec.models.base import ModelConfig
from genrec.models.neural import seeded, shuffled_batches, to_numpy
from genrec.options import RunOptions
from genrec.text.items import unit_rows

SAME = 1.0 - 1e-5  # cosine at or above which two vectors count as the same (no negative)


@dataclass(frozen=True)
class MatcherConfig(ModelConfig):
    """Hyper-parameters of :class:`ImageTextMatcher`."""

    hidden: int = 256  # width of the fusion MLP
    epochs: int = 200  # passes over the positive pairs
    batch_size: int = 64  # positive pairs per step; hard negatives are mined inside the batch
    lr: float = 0.001  # Adam learning rate
    hard_negatives: bool = True  # False: negatives drawn uniformly (the ablation)
    mining_scale: float = 20.0  # negatives drawn with softmax(mining_scale * cosine)
    top: int = 16  # contrastive candidates the head reorders at retrieval

    def __post_init__(self):
        self.check_positive_ints("hidden", "epochs", "batch_size", "top")
        self.check(self.lr > 0, "lr", "a positive number")
        self.check(self.mining_scale > 0, "mining_scale", "a positive number")


def _mlp(dim: int, hidden: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(4 * dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
    )


def _fused(z, p):
    import torch

    return torch.cat([z, p, z * p, (z - p).abs()], dim=-1)  # (..., 4D)


class ImageTextMatcher:
    """Learned attribute: ``head_``, the fusion MLP (torch, eval mode after ``fit``)."""

    Config = MatcherConfig

    def __init__(self, config: MatcherConfig | dict | None = None, **overrides):
        if isinstance(config, MatcherConfig) and not overrides:
            self.config = config
        else:
            base = config.to_dict() if isinstance(config, MatcherConfig) else dict(config or {})
            self.config = MatcherConfig.from_dict({**base, **overrides})
        self.head_ = None

    def fit(self, image: np.ndarray, text: np.ndarray, *, options: RunOptions | None = None):
        """Train on aligned pairs: row n of ``image`` (N, D) shows what row n of ``text`` (N, D)
        describes (unit vectors in one space, e.g. ``z`` and ``unit(W x)``). Returns self.

        Raises:
            DataError: shapes disagree or fewer than two pairs.
        """
        import torch

        image, text = np.asarray(image, np.float32), np.asarray(text, np.float32)
        if image.shape != text.shape or image.ndim != 2 or len(image) < 2:
            raise DataError(
                f"the matching head needs two (N, D) arrays of aligned image and text vectors "
                f"with N >= 2; got {image.shape} and {text.shape}"
            )
        options = (options or RunOptions()).pinned()
        rng = np.random.default_rng(options.seed)
        with options.capped_threads(), seeded(options.seed):
            head = _mlp(image.shape[1], self.config.hidden)
            optimizer = torch.optim.Adam(head.parameters(), lr=self.config.lr)
            z, p = torch.from_numpy(image), torch.from_numpy(text)
            generator = torch.Generator().manual_seed(options.seed)
            for _ in options.track(range(self.config.epochs), desc="itm"):
                for batch in shuffled_batches(len(image), self.config.batch_size, rng):
                    loss = self._step_loss(head, z[batch], p[batch], generator)
                    if loss is None:
                        continue
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        self.head_ = head.eval()
        return self

    def _step_loss(self, head, z, p, generator):
        """BCE over the batch's positives, one negative text per image and one negative image
        per text (rows whose every other member equals them get no negative)."""
        import torch
        import torch.nn.functional as F

        if len(z) < 2:
            return None
        text_for_image = self._negatives(z @ p.T, p @ p.T, generator)  # (B,) or -1
        image_for_text = self._negatives(p @ z.T, z @ z.T, generator)
        has_t, has_i = text_for_image >= 0, image_for_text >= 0
        pairs_z = torch.cat([z, z[has_t], z[image_for_text[has_i]]])
        pairs_p = torch.cat([p, p[text_for_image[has_t]], p[has_i]])
        labels = torch.cat([torch.ones(len(z)), torch.zeros(int(has_t.sum() + has_i.sum()))])
        logits = head(_fused(pairs_z, pairs_p)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, labels)

    def _negatives(self, cross, same, generator):
        """(B,) index of one drawn negative per row (-1: none): weights softmax of the row's
        contrastive similarity ``cross`` (or uniform), zero where ``same`` says identical."""
        import torch

        with torch.no_grad():
            allowed = same < SAME  # (B, B): excludes the diagonal and duplicates
            if self.config.hard_negatives:
                weights = torch.softmax(self.config.mining_scale * cross, dim=1)
            else:
                weights = torch.ones_like(cross)
            weights = weights * allowed
            usable = weights.sum(dim=1) > 0
            out = torch.full((len(cross),), -1, dtype=torch.long)
            if usable.any():
                out[usable] = torch.multinomial(weights[usable], 1, generator=generator)[:, 0]
        return out

    def pair_scores(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        """(N,) match logits of pairs (row n of ``image`` (N, D) with row n of ``text``)."""
        import torch

        if self.head_ is None:
            from genrec.errors import NotFittedError

            raise NotFittedError("ImageTextMatcher is not fitted; call fit(image, text) first")
        with torch.no_grad():
            fused = _fused(
                torch.from_numpy(np.asarray(image, np.float32)),
                torch.from_numpy(np.asarray(text, np.float32)),
            )
            return to_numpy(self.head_(fused).squeeze(-1))

    def rerank(
        self, queries: np.ndarray, gallery: np.ndarray, sims: np.ndarray, *, queries_are: str
    ) -> np.ndarray:
        """(Q, G) scores: each query's top ``top`` gallery rows by ``sims`` (Q, G) (cosines)
        scored ``match logit + cosine`` (as ALBEF's retrieval evaluation adds the contrastive
        similarity to the ITM score); the other rows get -inf. ``queries_are`` is ``"text"`` (queries
        are texts, the gallery images) or ``"image"``."""
        if queries_are not in ("text", "image"):
            raise DataError(f"queries_are must be 'text' or 'image', got {queries_are!r}")
        top = min(self.config.top, sims.shape[1])
        candidates = np.argsort(-sims, axis=1, kind="stable")[:, :top]  # (Q, top)
        q = np.repeat(np.asarray(queries, np.float32), top, axis=0)  # (Q*top, D)
        g = np.asarray(gallery, np.float32)[candidates.ravel()]
        scores = self.pair_scores(g, q) if queries_are == "text" else self.pair_scores(q, g)
        scores = scores.reshape(len(sims), top) + np.take_along_axis(sims, candidates, axis=1)
        out = np.full(sims.shape, -np.inf, np.float32)
        np.put_along_axis(out, candidates, scores, axis=1)
        return out


def retrieval_recall(sims: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """``{"R@K": share}`` of (N, N) query-by-gallery scores whose match is the diagonal: the
    share of queries whose match is among the top K. Ties count against the match."""
    sims = np.asarray(sims)
    rank = (sims >= np.diag(sims)[:, None]).sum(axis=1) - 1  # others scored at least as high
    rank = np.where(np.isneginf(np.diag(sims)), len(sims), rank)  # not a candidate: missed
    return {f"R@{k}": float((rank < k).mean()) for k in ks}


def aligned_pairs(model, items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(z (N, Dz), unit(W x) (N, Dz))`` of a fitted mmdense's items with both modalities
    (restricted to ``items``, indices, when given)."""
    both = model.image_.any(axis=1) & model.text_.any(axis=1)
    if items is not None:
        keep = np.zeros(len(both), bool)
        keep[np.asarray(items, np.int64)] = True
        both &= keep
    rows = np.flatnonzero(both)
    return model.image_[rows], unit_rows(model.text_[rows] @ model.projection_)


def matching_recall(image, text, matcher: ImageTextMatcher | None, ks=(1, 5, 10)) -> dict:
    """Text->image and image->text recall over aligned pairs, by contrastive similarity alone
    (``matcher`` None) or with the matcher reranking its top: ``{"t2i@K": .., "i2t@K": ..}``."""
    sims = np.asarray(text, np.float32) @ np.asarray(image, np.float32).T  # (N texts, N images)
    t2i, i2t = sims, sims.T
    if matcher is not None:
        t2i = matcher.rerank(text, image, sims, queries_are="text")
        i2t = matcher.rerank(image, text, sims.T, queries_are="image")
    out = {}
    for name, s in (("t2i", t2i), ("i2t", i2t)):
        out.update({f"{name}@{k[2:]}": v for k, v in retrieval_recall(s, ks).items()})
    return out


__all__ = [
    "ImageTextMatcher",
    "MatcherConfig",
    "aligned_pairs",
    "matching_recall",
    "retrieval_recall",
]
