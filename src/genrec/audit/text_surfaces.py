"""How an edit of one item's title moves a text-reading model's scores: one *surface* per kind of
model, so a text attack searches and measures every kind the same way.

A surface answers two questions for an item whose title is replaced, every other item left as
it is:

* :meth:`target_scores` ``(histories, item, titles) -> (B, len(titles))``: the item's score for
  each history row under each candidate title (the attacker's search on surrogate users);
* :meth:`scores` ``(histories, item, title) -> (B, n_items)``: every item's score with the
  item's title ``title`` (None: the original), read to rank the item among a user's unseen items.

Kinds (:func:`surface` picks one, or None when a model does not read item text this way):

* ``dense`` / ``bm25``: the item's own score from ``score_item_texts`` (its rendered text with
  the title replaced); the other items' scores do not depend on it (BM25's idf and mean length
  stay those of the fitted corpus).
* ``hybrid`` (reciprocal rank fusion of dense, BM25 and maybe a collaborative model): the text
  components' scores with the item's replaced, the collaborative one unchanged, then the
  model's own fusion; the item's rank in every component, hence its fused score, moves.
* ``tiger``: semantic IDs come from item text (MiniLM embedding -> RQ-VAE codes), so an edited
  title is re-encoded and re-quantised with the fitted quantiser into the item's new ID
  (:meth:`genrec.models.TIGER.with_item_codes`; the other items keep theirs) and the model
  scores that ID; titles that quantise to the same codes score alike (one decoder pass each).
"""

from __future__ import annotations

import numpy as np

from genrec.models.sequence.tiger import TIGER
from genrec.pipelines.hybrid import Hybrid
from genrec.ranking import as_score_tensor, mask_seen
from genrec.retrieval.fusion import reciprocal_rank_fusion
from genrec.text.items import catalog_texts


def renderer(text: str, title: str):
    """Title -> ``text`` (an item's rendered text) with its ``title`` replaced (put in front
    when a custom template leaves the title out).

    >>> renderer("Heat. Genres: Crime", "Heat")("Hot Heat")
    'Hot Heat. Genres: Crime'
    """
    if title and title in text:
        return lambda edited: text.replace(title, edited, 1)
    return lambda edited: f"{edited}. {text}"


class RetrieverSurface:
    """``dense`` or ``bm25`` (any model with ``score_item_texts``)."""

    kind = "text retriever"

    def __init__(self, model, train):
        self.model, self.titles = model, [train.catalog.title(i) for i in range(train.n_items)]
        self.texts = catalog_texts(train, model.config.text_template, model=model.name)

    def target_scores(self, histories, item: int, titles) -> np.ndarray:
        render = renderer(self.texts[item], self.titles[item])
        return self.model.score_item_texts(histories, [render(t) for t in titles])  # (B, T)

    def scores(self, histories, item: int, title: str | None) -> np.ndarray:
        out = np.asarray(self.model.score(histories), np.float64)  # (B, I)
        if title is not None:
            out[:, item] = self.target_scores(histories, item, [title])[:, 0]
        return out


class HybridSurface:
    """:class:`~genrec.pipelines.hybrid.Hybrid`: its dense and BM25 components edited, then fused."""

    kind = "hybrid (RRF)"

    def __init__(self, model: Hybrid, train):
        self.model = model
        self.parts = [
            RetrieverSurface(m, train) if callable(getattr(m, "score_item_texts", None)) else None
            for m in model.components_
        ]
        self.titles = self.parts[0].titles

    def _components(self, histories) -> list[np.ndarray]:
        return [
            np.asarray(m.score(histories), np.float64)  # (B, I) each
            for m in self.model.components_
        ]

    def _fuse(self, histories, components) -> np.ndarray:
        ranked = [
            mask_seen(as_score_tensor(s, model_name=m.name), histories).numpy()
            for s, m in zip(components, self.model.components_)
        ]
        weights = self.model.config.weights or None
        return reciprocal_rank_fusion(ranked, k=self.model.config.rrf_k, weights=weights)

    def target_scores(self, histories, item: int, titles) -> np.ndarray:
        base = self._components(histories)
        edited = [
            None if p is None else p.target_scores(histories, item, titles) for p in self.parts
        ]  # (B, T) per text component
        out = np.zeros((histories.shape[0], len(titles)))
        for j in range(len(titles)):  # one fusion per title: the item's rank in every part
            parts = [b.copy() for b in base]
            for part, e in zip(parts, edited):
                if e is not None:
                    part[:, item] = e[:, j]
            out[:, j] = self._fuse(histories, parts)[:, item]
        return out

    def scores(self, histories, item: int, title: str | None) -> np.ndarray:
        parts = self._components(histories)
        if title is not None:
            for part, p in zip(parts, self.parts):
                if p is not None:
                    part[:, item] = p.target_scores(histories, item, [title])[:, 0]
        return np.asarray(self._fuse(histories, parts), np.float64)


class TigerSurface:
    """:class:`~genrec.models.TIGER`: the edited title's text re-quantised into a new ID."""

    kind = "semantic IDs from text"

    def __init__(self, model: TIGER, train):
        self.model, self.titles = model, [train.catalog.title(i) for i in range(train.n_items)]
        self.texts = catalog_texts(train, model.config.text_template, model=model.name)

    def codes(self, item: int, titles) -> np.ndarray:
        """(len(titles), n_levels) codes each title gives ``item``."""
        render = renderer(self.texts[item], self.titles[item])
        return self.model.text_codes([render(t) for t in titles])

    def _model(self, item: int, codes) -> TIGER:
        if np.array_equal(codes, self.model.codes_[item, :-1]):
            return self.model  # the same codes: the same ID (and its digit)
        return self.model.with_item_codes(item, codes)

    def target_scores(self, histories, item: int, titles) -> np.ndarray:
        codes = self.codes(item, titles)
        unique, which = np.unique(codes, axis=0, return_inverse=True)
        per_code = np.stack(
            [self._model(item, c).score(histories)[:, item] for c in unique], axis=1
        )  # (B, U): one pass per distinct ID
        return np.asarray(per_code, np.float64)[:, which.ravel()]

    def scores(self, histories, item: int, title: str | None) -> np.ndarray:
        model = self.model if title is None else self._model(item, self.codes(item, [title])[0])
        return np.asarray(model.score(histories), np.float64)


def surface(model, train):
    """The surface of ``model`` (fitted on ``train``), or None when no item's score there
    follows from its own text (an ID model, a pipeline, an LLM recommender)."""
    if isinstance(model, Hybrid):
        return HybridSurface(model, train)
    if isinstance(model, TIGER):
        return TigerSurface(model, train)
    if callable(getattr(model, "score_item_texts", None)):
        return RetrieverSurface(model, train)
    return None


def kind(model) -> str | None:
    """Which surface an unfitted ``model`` would get (None: none)."""
    if isinstance(model, Hybrid):
        return HybridSurface.kind
    if isinstance(model, TIGER):
        return TigerSurface.kind
    if callable(getattr(model, "score_item_texts", None)):
        return RetrieverSurface.kind
    return None


__all__ = ["HybridSurface", "RetrieverSurface", "TigerSurface", "kind", "renderer", "surface"]
