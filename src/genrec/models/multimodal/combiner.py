"""A learned combiner of composed queries ("like this one, but red"), trained on (reference,
modifier text, target) triples built from the catalog.

CLIP4Cir (Baldrati et al., "Conditioned and composed image retrieval combining and partially
fine-tuning CLIP-based features", CVPR-W 2022) replaces the element-wise sum of the reference
image's and the text's features with a Combiner network, trained with a contrastive loss
against the target images::

    a = ReLU(A z_ref),  b = ReLU(B t)                       (projections, then dropout)
    l = sigmoid(MLP([a, b]))                                (a per-query mixing weight)
    q = unit(C ReLU(D [a, b]) + l * t + (1 - l) * z_ref)    (the composed query)
    loss = -log( sum_{targets} softmax(s * q . z_g) )       over the gallery, reference masked

``z_ref`` is the reference item's centred image vector and ``t = unit(W x)`` the modifier's
projected text (a fitted :class:`~genrec.models.multimodal.mmdense.MultimodalDense` gives both;
``s`` is a fixed scale of 100 as in CLIP4Cir).

Triples come from items that differ in one attribute: :func:`catalog_triples` reads categorical
catalog columns (the procedural world's traits, or a user catalog's colour / size / material
columns) and pairs each item with the items equal to it in every column but one; the modifier
text is the new value. A catalog without such columns gives no triples, and the learned
combiner cannot be trained on it: the sum (``score_composed`` without a combiner) needs none.

Deviations, all deliberate: the towers are frozen (CLIP4Cir's first stage fine-tunes CLIP's
text encoder; here the LiT projection W is the only text-side training and it happens before);
the loss runs over the whole training gallery with every target of a query counted as a match
(CLIP4Cir's batches have one target per query, the others in the batch being the negatives),
and the reference is masked in it as it is at evaluation.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> gallery = rng.normal(size=(12, 6)).astype("float32")
    >>> gallery /= np.linalg.norm(gallery, axis=1)[:, None]
    >>> combiner = LearnedCombiner(epochs=3, hidden=8, projection=8)
    >>> combiner = combiner.fit(gallery[:4], gallery[4:8], [[8], [9], [10], [11]], gallery,
    ...                         references=[0, 1, 2, 3])
    >>> combiner.combine(gallery[:2], gallery[4:6]).shape
    (2, 6)
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.errors import ArtifactError, DataError, NotFittedError
from genrec.io import atomic_write
from genrec.models.base import ModelConfig
from genrec.models.neural import seeded, shuffled_batches, to_numpy
from genrec.options import RunOptions

SCALE = 100.0  # CLIP4Cir's fixed logit scale in the combiner's contrastive loss


@dataclass(frozen=True)
class CombinerConfig(ModelConfig):
    """Hyper-parameters of :class:`LearnedCombiner`."""

    projection: int = 256  # width of the image and text projections (CLIP4Cir: 4 x CLIP dim)
    hidden: int = 512  # width of the combining layer (CLIP4Cir: 8 x CLIP dim)
    dropout: float = 0.1  # dropout after each projection and the combining layer
    epochs: int = 100  # passes over the training triples
    batch_size: int = 64  # triples per step
    lr: float = 0.0005  # Adam learning rate

    def __post_init__(self):
        self.check_positive_ints("projection", "hidden", "epochs", "batch_size")
        self.check(0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)")
        self.check(self.lr > 0, "lr", "a positive number")


def _network(dim: int, config: CombinerConfig):
    import torch
    from torch import nn

    class Combiner(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_in = nn.Linear(dim, config.projection)
            self.text_in = nn.Linear(dim, config.projection)
            self.combine = nn.Linear(2 * config.projection, config.hidden)
            self.out = nn.Linear(config.hidden, dim)
            self.mix = nn.Sequential(
                nn.Linear(2 * config.projection, config.hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, 1),
                nn.Sigmoid(),
            )
            self.drop = nn.Dropout(config.dropout)

        def forward(self, z, t):  # (B, D), (B, D) -> (B, D) unit rows
            a, b = self.drop(self.image_in(z).relu()), self.drop(self.text_in(t).relu())
            joint = torch.cat([a, b], dim=-1)  # (B, 2P)
            mix = self.mix(joint)  # (B, 1)
            residual = self.out(self.drop(self.combine(joint).relu()))
            return nn.functional.normalize(residual + mix * t + (1 - mix) * z, dim=-1)

    return Combiner()


class LearnedCombiner:
    """Learned attribute: ``network_`` (torch, eval mode after ``fit``)."""

    Config = CombinerConfig

    def __init__(self, config: CombinerConfig | dict | None = None, **overrides):
        if isinstance(config, CombinerConfig) and not overrides:
            self.config = config
        else:
            base = config.to_dict() if isinstance(config, CombinerConfig) else dict(config or {})
            self.config = CombinerConfig.from_dict({**base, **overrides})
        self.network_ = None

    def fit(
        self,
        reference: np.ndarray,
        text: np.ndarray,
        targets: Sequence[Sequence[int]],
        gallery: np.ndarray,
        *,
        references: Sequence[int] | None = None,
        options: RunOptions | None = None,
    ):
        """Train on Q triples: reference image vectors (Q, D), modifier text vectors (Q, D) and
        each query's target rows of ``gallery`` (G, D); ``references`` (Q,) are the gallery rows
        of the references, masked in the loss. Returns self.

        Raises:
            DataError: no triples, shapes disagree, or a target outside the gallery.
        """
        import torch

        reference, text = np.asarray(reference, np.float32), np.asarray(text, np.float32)
        gallery = np.asarray(gallery, np.float32)
        targets_mask = _target_mask(targets, len(reference), len(gallery))
        if reference.shape != text.shape or reference.shape[1:] != gallery.shape[1:]:
            raise DataError(
                f"the combiner needs reference (Q, D), text (Q, D) and gallery (G, D) vectors; "
                f"got {reference.shape}, {text.shape} and {gallery.shape}"
            )
        masked = np.zeros_like(targets_mask)
        if references is not None:
            masked[np.arange(len(reference)), np.asarray(references, np.int64)] = True
        options = (options or RunOptions()).pinned()
        rng = np.random.default_rng(options.seed)
        with options.capped_threads(), seeded(options.seed):
            network = _network(reference.shape[1], self.config)
            optimizer = torch.optim.Adam(network.parameters(), lr=self.config.lr)
            z, t, g = (torch.from_numpy(x) for x in (reference, text, gallery))
            hit, skip = torch.from_numpy(targets_mask), torch.from_numpy(masked)
            for _ in options.track(range(self.config.epochs), desc="combiner"):
                for batch in shuffled_batches(len(z), self.config.batch_size, rng):
                    logits = SCALE * network(z[batch], t[batch]) @ g.T  # (B, G)
                    logits = logits.masked_fill(skip[batch], -torch.inf)
                    matched = logits.masked_fill(~hit[batch], -torch.inf).logsumexp(dim=1)
                    loss = (logits.logsumexp(dim=1) - matched).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        self.network_ = network.eval()
        return self

    def combine(self, reference: np.ndarray, text: np.ndarray) -> np.ndarray:
        """(Q, D) unit composed queries of reference image vectors and modifier text vectors."""
        import torch

        if self.network_ is None:
            raise NotFittedError("LearnedCombiner is not fitted; call fit(...) with triples first")
        with torch.no_grad():
            return to_numpy(
                self.network_(
                    torch.from_numpy(np.asarray(reference, np.float32)),
                    torch.from_numpy(np.asarray(text, np.float32)),
                )
            )

    @property
    def dim(self) -> int:
        """The width of the vectors it combines (a fitted mmdense's image vectors)."""
        if self.network_ is None:
            raise NotFittedError("LearnedCombiner is not fitted; call fit(...) with triples first")
        return int(self.network_.image_in.in_features)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted combiner to one ``.npz`` file (its config and weights; no pickle),
        atomically. Returns the path written."""
        if self.network_ is None:
            raise NotFittedError("LearnedCombiner is not fitted; fit it before saving")
        arrays = {f"w.{k}": to_numpy(v) for k, v in self.network_.state_dict().items()}
        arrays["dim"] = np.array(self.network_.image_in.in_features)
        arrays["config"] = np.array(json.dumps(self.config.to_dict()))

        def write(f):
            np.savez(f, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LearnedCombiner:
        """A combiner written by :meth:`save`.

        Raises:
            ArtifactError: the file is missing or not a saved combiner.
        """
        import torch

        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {k: saved[k] for k in saved.files}
            combiner = cls(json.loads(str(arrays.pop("config"))))
            network = _network(int(arrays.pop("dim")), combiner.config)
            network.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in arrays.items()})
        except (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as exc:
            raise ArtifactError(
                f"{path} is not a saved LearnedCombiner ({type(exc).__name__}); write one "
                "with LearnedCombiner.save"
            ) from None
        combiner.network_ = network.eval()
        return combiner


def _target_mask(targets, n_queries: int, n_gallery: int) -> np.ndarray:
    if n_queries == 0 or len(targets) != n_queries:
        raise DataError(
            f"the learned combiner needs (reference, text, target) triples; got {n_queries} "
            f"queries and {len(targets)} target sets. Build them with catalog_triples from "
            "catalog columns whose items differ in one attribute"
        )
    mask = np.zeros((n_queries, n_gallery), bool)
    for q, rows in enumerate(targets):
        rows = np.asarray(rows, np.int64)
        if not len(rows) or rows.min() < 0 or rows.max() >= n_gallery:
            raise DataError(
                f"query {q} has targets {rows.tolist()[:5]}; each needs at least one "
                f"gallery row in 0..{n_gallery - 1}"
            )
        mask[q, rows] = True
    return mask


def catalog_triples(
    catalog, columns: Sequence[str], *, vary: str, per_item: int = 1, seed: int = 0
) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """Composed-query triples from categorical ``columns`` of an item catalog: reference item r,
    the modifier text naming another value v of column ``vary``, and as targets the items equal
    to r in every other column with ``vary`` = v (:func:`~genrec.data.synthetic_multimodal.
    composed_queries` on the columns). Items missing a value in any of the columns take no
    part. Returns ``(references (Q,), texts, targets)`` in item indices.

    Raises:
        DataError: a column is missing, ``vary`` is not among ``columns``, or no item pair
            differs in ``vary`` alone (then no triple exists and a combiner cannot be learned).
    """
    from genrec.data.synthetic_multimodal import composed_queries

    columns = list(columns)
    missing = [c for c in columns if c not in catalog.columns]
    if missing or vary not in columns:
        raise DataError(
            f"catalog_triples needs catalog columns {columns} with vary={vary!r} among them; "
            f"missing {missing}; the catalog has {sorted(catalog.columns)}"
        )
    values = {c: [_attribute(v) for v in catalog[c]] for c in columns}
    complete = np.flatnonzero([all(v) for v in zip(*values.values())])
    attributes = {c: np.array([values[c][i] for i in complete], dtype=object) for c in columns}
    refs, texts, targets = composed_queries(attributes, trait=vary, per_item=per_item, seed=seed)
    refs, targets = complete[refs], [complete[t] for t in targets]  # back to item indices
    if not len(refs):
        raise DataError(
            f"no two items differ in {vary!r} alone (the other columns {columns} equal), so "
            "no (reference, text, target) triple exists; the learned combiner needs such "
            "triples: use the sum combiner, or give columns that items share"
        )
    return refs, texts, targets


def _attribute(value) -> str:
    """A catalog value as an attribute ("" when missing: the item forms no triple)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return str(value).strip()


def held_out_triples(
    refs: np.ndarray,
    texts: list[str],
    targets: list[np.ndarray],
    held_out: np.ndarray,
    *,
    n_items: int,
) -> tuple[tuple, tuple]:
    """Split triples with no leakage: training triples have a reference outside ``held_out``
    (item indices) and only targets outside it (a triple left without targets is dropped); test
    triples have a held-out reference and keep every target. Returns ``(train, test)``, each
    ``(references, texts, targets)``."""
    out = np.zeros(n_items, bool)
    out[np.asarray(held_out, np.int64)] = True
    train, test = ([], [], []), ([], [], [])
    for r, text, target in zip(refs, texts, targets):
        part, kept = (test, target) if out[r] else (train, target[~out[target]])
        if len(kept):
            part[0].append(int(r))
            part[1].append(text)
            part[2].append(kept)
    return tuple((np.asarray(p[0], np.int64), p[1], p[2]) for p in (train, test))


def fit_combiner(
    model,
    triples: tuple,
    *,
    items: np.ndarray | None = None,
    config: CombinerConfig | dict | None = None,
    options: RunOptions | None = None,
) -> LearnedCombiner:
    """A :class:`LearnedCombiner` trained on a fitted mmdense's vectors: references' image
    vectors, the modifiers' projected texts and, as the gallery, the images of ``items`` (item
    indices; default all). ``triples`` is ``(references, texts, targets)`` in item indices;
    references and targets must lie in ``items``.

    Raises:
        DataError: a reference or target outside ``items``, or no triples.
    """
    refs, texts, targets = triples
    items = np.arange(len(model.image_)) if items is None else np.asarray(items, np.int64)
    row_of = np.full(len(model.image_), -1, np.int64)
    row_of[items] = np.arange(len(items))
    refs = np.asarray(refs, np.int64)
    if len(refs) and (row_of[refs] < 0).any():
        raise DataError("a training triple's reference is not among the gallery items")
    rows = [row_of[np.asarray(t, np.int64)] for t in targets]
    if any((r < 0).any() for r in rows):
        raise DataError("a training triple's target is not among the gallery items")
    text = model.text_queries(list(texts)) if len(refs) else np.zeros((0, 1), np.float32)
    return LearnedCombiner(config).fit(
        model.image_[refs],
        text,
        rows,
        model.image_[items],
        references=row_of[refs],
        options=options,
    )


def composed_search(
    model, reference_items, texts: list[str], *, k: int = 10, combiner=None
) -> tuple[np.ndarray, np.ndarray]:
    """Composed search with a fitted mmdense: for each reference item index (B,) and modifier
    text, the ``k`` best items (B, k) and their scores (B, k), the reference itself removed;
    by the sum, or by ``combiner`` (a fitted :class:`LearnedCombiner`) when given.

    Raises:
        ConfigError: one text per reference is needed; the model must have images.
        DataError: ``k`` is not a positive integer.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    refs = np.asarray(reference_items, np.int64).reshape(-1)
    scores = np.array(model.score_composed(refs, list(texts), combiner=combiner), np.float64)
    scores[np.arange(len(refs)), refs] = -np.inf  # CIRR: the reference is not an answer
    k = min(int(k), scores.shape[1] - 1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k)
    return top, np.take_along_axis(scores, top, axis=1)


__all__ = [
    "CombinerConfig",
    "LearnedCombiner",
    "catalog_triples",
    "composed_search",
    "fit_combiner",
    "held_out_triples",
]
