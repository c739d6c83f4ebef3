"""The recommendation service behind ``genrec serve``: models, catalog and histories, no HTTP.

A :class:`RecService` holds one dataset (its item catalog, the users' time-ordered histories)
and several fitted models by name. Every method takes and returns external ids and plain
Python values, so the HTTP layer (:mod:`genrec.serving.app`) only validates and serialises:

* :meth:`~RecService.recommend_user`: a known user's top k (optionally only items whose catalog
  attributes match filters such as ``genres:Comedy``);
* :meth:`~RecService.recommend_history`: the top k for an anonymous history, oldest first
  (sequence models read the order);
* :meth:`~RecService.similar`: the items a model recommends to someone whose whole history is
  that one item (EASE: the item's row of its item-item weights; SASRec: the next item after it);
* :meth:`~RecService.search`: free-text search of the catalog (the served ``dense`` model when
  there is one, else BM25 over the item texts), or with a reference item a composed query
  "like this one, but red" (:meth:`~RecService.composed_search`, a served ``mmdense``);
* :meth:`~RecService.explain`: a template explanation grounded in the catalog;
* :meth:`~RecService.evaluate`: ranking metrics of posted held-out interactions;
* :meth:`~RecService.reload`: swaps in a model's newly saved artifact, after checking it (a
  learned combiner served with the model stays; a model it does not fit is refused).

Errors are genrec errors: an unknown user or item is :class:`~genrec.errors.UnknownIdError`,
a bad argument :class:`~genrec.errors.ConfigError`, an artifact that cannot be swapped in
:class:`~genrec.errors.ArtifactError` (the old model keeps serving).

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.models import EASE
    >>> data = planted_clusters(n_users=8, n_items=12, n_clusters=2).data
    >>> service = RecService(data, {"ease": Served.fitted("ease", EASE().fit(data))})
    >>> [x["id"] for x in service.similar("i0", k=2)["items"]]  # its own cluster: even ids
    ['i2', 'i4']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import Dataset, as_history_matrix
from genrec.errors import ArtifactError, ConfigError, DataError, UnknownIdError
from genrec.models.base import Recommender

# Metrics POST /evaluate computes: a fixed list, nothing is evaluated from a string.
EVAL_METRICS = ("ndcg", "recall", "mrr", "hit", "precision", "map")


@dataclass
class Served:
    """One served model: its spec, the fitted model, where its artifact lives and its metadata."""

    spec: str
    model: Recommender
    folder: Path | None = None
    meta: dict = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def fitted(cls, spec: str, model: Recommender) -> Served:
        return cls(spec, model)

    def describe(self) -> dict:
        return {
            "name": self.spec,
            "model": self.model.name,
            "config": self.model.config.to_dict(),
            "sequential": self.model.sequential,
            "artifact": str(self.folder) if self.folder else None,
            "data_checksum": trained_on(self.meta),
            "base_data_checksum": self.meta.get("base_data_checksum"),
            "loaded_at": self.loaded_at,
        }


def load_served(
    data: Dataset,
    specs: Sequence[str],
    artifacts: Path,
    *,
    options=None,
    notice: Callable[[str], None] = lambda message: None,
) -> dict[str, Served]:
    """``{spec: Served}`` for each spec: its artifact under ``artifacts/SPEC`` for ``data``, or
    trained on all of ``data`` and saved there first (:func:`genrec.build.saved_or_trained`)."""
    from genrec.build import saved_or_trained
    from genrec.models.base import read_artifact_meta

    served = {}
    for spec in specs:
        folder = Path(artifacts) / spec
        model = saved_or_trained(spec, data, folder, options=options, notice=notice)
        served[spec] = Served(spec, model, folder, read_artifact_meta(folder))
    return served


class RecService:
    """Models served by name over one dataset; safe to call from many threads at once (the
    model table is replaced as a whole on reload, never edited in place)."""

    def __init__(self, data: Dataset, models: dict[str, Served], *, combiners: dict | None = None):
        """``combiners``: a fitted :class:`~genrec.models.multimodal.combiner.LearnedCombiner`
        per served model name, used by its composed queries in place of the sum."""
        if not models:
            raise ConfigError("serve at least one model, e.g. --models ease")
        if data.catalog is None:
            from genrec.data.dataset import ItemCatalog

            data.catalog = ItemCatalog(data.items, {"title": list(data.items.ids)})
        self.data, self.catalog = data, data.catalog
        self.histories = data.user_item_order.tocsr()  # (U, I), values: time order
        self.data_checksum = data.checksum()
        self._models = dict(models)
        unknown = sorted(set(combiners or {}) - set(models))
        if unknown:
            raise ConfigError(
                f"combiners for {unknown} name no served model; served: {list(models)}"
            )
        for spec, combiner in (combiners or {}).items():
            problem = combiner_mismatch(models[spec].model, combiner)
            if problem:
                raise ConfigError(f"the combiner for {spec!r} cannot serve it: {problem}")
        self._combiners = dict(combiners or {})
        self._reload_lock = threading.Lock()
        self._search = None
        self._explainer = None

    # ---- lookups -----------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def served(self, name: str | None) -> Served:
        """The model called ``name`` (the first served one when None)."""
        models = self._models
        if name is None:
            return next(iter(models.values()))
        if name not in models:
            raise ConfigError(f"model {name!r} is not served here; served: {', '.join(models)}")
        return models[name]

    def user_index(self, user_id: str) -> int:
        return int(self.data.users.index([str(user_id)])[0])

    def item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        return self.data.items.index([str(x) for x in item_ids])

    def user_items(self, user: int) -> np.ndarray:
        """The user's item indices, oldest first."""
        row = self.histories[user]
        return row.indices[np.argsort(row.data, kind="stable")]

    def items_out(self, top: np.ndarray, scores: np.ndarray) -> list[dict]:
        ids = self.data.items.ids
        return [
            {"id": str(ids[i]), "title": self.catalog.title(int(i)), "score": float(s)}
            for i, s in zip(top, scores)
            if i >= 0
        ]

    # ---- recommendations ---------------------------------------------------------------------
    def recommend_user(
        self,
        user_id: str,
        *,
        k: int = 10,
        model: str | None = None,
        exclude_seen: bool = True,
        filters: Sequence[str] = (),
    ) -> dict:
        """A known user's top ``k`` (UnknownIdError when the user is not in the data)."""
        served, user = self.served(model), self.user_index(user_id)
        row = self.histories[user]
        items = self._rank(
            served, row, np.array([user]), k=k, exclude_seen=exclude_seen, filters=filters
        )
        return {"user": str(user_id), "model": served.spec, "k": k, "items": items}

    def recommend_history(
        self,
        item_ids: Sequence[str],
        *,
        k: int = 10,
        model: str | None = None,
        exclude_seen: bool = True,
        filters: Sequence[str] = (),
    ) -> dict:
        """The top ``k`` for an anonymous history of item ids, oldest first."""
        served = self.served(model)
        row = as_history_matrix([self.item_indices(item_ids)], self.data.n_items)
        items = self._rank(served, row, None, k=k, exclude_seen=exclude_seen, filters=filters)
        return {"model": served.spec, "k": k, "items": items}

    def similar(self, item_id: str, *, k: int = 10, model: str | None = None) -> dict:
        """Items the model recommends after that one item alone."""
        served = self.served(model)
        row = as_history_matrix([self.item_indices([item_id])], self.data.n_items)
        items = self._rank(served, row, None, k=k, exclude_seen=True, filters=())
        return {"item": str(item_id), "model": served.spec, "k": k, "items": items}

    def _rank(
        self,
        served: Served,
        row: sp.csr_matrix,
        users,
        *,
        k: int,
        exclude_seen: bool,
        filters: Sequence[str],
    ) -> list[dict]:
        candidates = self.filter_items(filters) if filters else None
        if candidates is not None and not len(candidates):
            return []
        top, scores = served.model.recommend(
            row,
            users=users,
            k=min(k, self.data.n_items),
            exclude_seen=exclude_seen,
            candidates=candidates,
        )
        return self.items_out(top[0], scores[0])

    def filter_items(self, filters: Sequence[str]) -> np.ndarray:
        """Item indices whose catalog matches every ``COLUMN:VALUE`` filter (case-insensitive;
        a list column such as genres matches when it contains the value)."""
        keep = np.ones(self.data.n_items, bool)
        for text in filters:
            column, sep, wanted = (part.strip() for part in str(text).partition(":"))
            if not sep or not column or not wanted:
                raise ConfigError(f"filter {text!r} is not COLUMN:VALUE; e.g. genres:Comedy")
            if column not in self.catalog.columns or column == "title":
                allowed = sorted(c for c in self.catalog.columns if c != "title")
                raise ConfigError(
                    f"filter column {column!r} is not in the catalog; filter on one of {allowed}"
                )
            keep &= _matches(self.catalog[column], wanted.lower())
        return np.flatnonzero(keep)

    # ---- text search and explanations --------------------------------------------------------
    def search(self, query: str, *, k: int = 10, reference_item: str | None = None) -> dict:
        """Catalog items best matching ``query``: the served dense model, else BM25. With
        ``reference_item``, a composed query "like this item, but <query>" (see
        :meth:`composed_search`)."""
        query = str(query).strip()
        if not query:
            raise ConfigError("q is empty; give words to search for, e.g. q=space adventure")
        if reference_item is not None:
            return self.composed_search(reference_item, query, k=k)
        dense = next((s for s in self._models.values() if s.model.name == "dense"), None)
        if dense is not None:
            scores, how = dense.model.score_texts([query])[0], dense.spec
        else:
            scores, how = self._bm25().score_texts([query])[0], "bm25"
        k = min(k, self.data.n_items)
        top = np.argsort(-scores, kind="stable")[:k]
        if how == "bm25":
            top = top[scores[top] > 0]  # no word in common: not a match
        return {"query": query, "method": how, "items": self.items_out(top, scores[top])}

    def composed_search(self, reference_item: str, text: str, *, k: int = 10) -> dict:
        """Items like ``reference_item`` but as ``text`` says ("red"): the first served model
        that composes queries (mmdense fitted with images) scores ``unit(z_ref + unit(W x))``,
        or its learned combiner's query when one was given, against item images; the
        reference itself is not returned.

        Raises:
            UnknownIdError: the reference item is not in the data.
            ConfigError: no served model composes queries.
        """
        from genrec.models.multimodal.combiner import composed_search

        served = next(
            (
                s
                for s in self._models.values()
                if hasattr(s.model, "score_composed")
                and getattr(s.model.config, "modalities", "text") != "text"
            ),
            None,
        )
        if served is None:
            raise ConfigError(
                "reference_item needs a served model that composes image and text queries; "
                f"served: {', '.join(self._models)}; serve mmdense fitted with images "
                "(--models mmdense)"
            )
        item = int(self.item_indices([reference_item])[0])
        combiner = self._combiners.get(served.spec)
        top, scores = composed_search(
            served.model, [item], [text], k=min(k, self.data.n_items), combiner=combiner
        )
        return {
            "query": text,
            "method": f"{served.spec} composed" + (", learned" if combiner else ""),
            "reference_item": str(reference_item),
            "items": self.items_out(top[0], scores[0]),
        }

    def _bm25(self):
        if self._search is None:
            from genrec.retrieval.bm25 import BM25Index
            from genrec.text.items import catalog_texts

            self._search = BM25Index.fit(catalog_texts(self.data, model="search"))
        return self._search

    def explain(
        self, item_id: str, *, user_id: str | None = None, history: Sequence[str] = ()
    ) -> dict:
        """Why ``item_id`` suits a known user (their history) or an anonymous ``history``."""
        from genrec.pipelines.explain import TemplateExplainer

        item = int(self.item_indices([item_id])[0])
        past = (
            self.user_items(self.user_index(user_id))
            if user_id is not None
            else self.item_indices(history)
        )
        if self._explainer is None:
            self._explainer = TemplateExplainer(self.catalog)
        e = self._explainer.explain(list(past), item)
        ids = self.data.items.ids
        return {
            "item": str(item_id),
            "title": self.catalog.title(item),
            "text": e.text,
            "facts": [
                {"item": str(ids[f.item]), "field": f.field, "value": f.value} for f in e.facts
            ],
            "related": [str(ids[i]) for i in e.related],
        }

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(
        self,
        interactions: Sequence[tuple[str, str]],
        *,
        metrics: Sequence[str],
        ks: Sequence[int],
        model: str | None = None,
    ) -> dict:
        """Ranking metrics of held-out ``(user, item)`` pairs: each known user is ranked from
        their history in the data (seen items excluded) and the posted items are the relevant
        ones. Users or items not in the data are counted and skipped."""
        from genrec.evaluation.metrics import check_ks, ranking_metrics

        unknown = [m for m in metrics if m not in EVAL_METRICS]
        if unknown or not metrics:
            raise ConfigError(
                f"metrics {unknown or list(metrics)} are not available; choose "
                f"from {list(EVAL_METRICS)}"
            )
        served = self.served(model)
        users, known_u = self.data.users.lookup([str(u) for u, _ in interactions])
        items, known_i = self.data.items.lookup([str(i) for _, i in interactions])
        keep = known_u & known_i
        relevant = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (users[keep], items[keep])),
            shape=self.histories.shape,
        )
        relevant.data[:] = 1
        relevant = relevant - relevant.multiply(self.histories > 0)  # seen items cannot be hits
        relevant.eliminate_zeros()
        rows = np.flatnonzero(np.diff(relevant.indptr))
        if not len(rows):
            raise DataError(
                "no posted interaction has a known user and an unseen known item; "
                "post [user, item] pairs of this dataset's ids"
            )
        ks = check_ks(ks, self.data.n_items, what="items")
        top, _ = served.model.recommend(self.histories[rows], users=rows, k=max(ks))
        hits = np.asarray(relevant[rows[:, None], np.maximum(top, 0)].todense()) > 0  # (U, K)
        hits &= top >= 0
        n_relevant = np.diff(relevant.indptr)[rows]
        values = ranking_metrics(hits, n_relevant, ks, names=list(metrics))
        return {
            "model": served.spec,
            "users": int(len(rows)),
            "skipped": int((~keep).sum()),
            "results": {name: float(v.mean()) for name, v in values.items()},
        }

    # ---- versions and reloads ----------------------------------------------------------------
    def version(self) -> dict:
        from genrec import __version__

        return {
            "genrec": __version__,
            "dataset": self.data.name,
            "data_checksum": self.data_checksum,
            "n_users": self.data.n_users,
            "n_items": self.data.n_items,
            "n_interactions": len(self.data),
            "models": [s.describe() for s in self._models.values()],
        }

    def reload(self, name: str, folder: str | Path | None = None) -> Served:
        """Load ``name``'s artifact again (from ``folder``, default where it was loaded from),
        check it and swap it in; an ArtifactError leaves the served model as it was."""
        current = self.served(name)
        folder = Path(folder) if folder is not None else current.folder
        if folder is None:
            raise ConfigError(f"model {name!r} was not loaded from an artifact; give a folder")
        with self._reload_lock:
            fresh = self._checked_artifact(current, folder)
            combiner = self._combiners.get(name)
            problem = combiner_mismatch(fresh.model, combiner) if combiner else None
            if problem:
                raise ArtifactError(
                    f"the model at {folder} does not fit the combiner served with {name!r} "
                    f"({problem}); the old model keeps serving"
                )
            models = dict(self._models)
            models[name] = fresh
            self._models = models  # one reference swap: readers see the old or the new table
        return fresh

    def _checked_artifact(self, current: Served, folder: Path) -> Served:
        from genrec.build import load_model
        from genrec.models.base import read_artifact_meta

        try:
            meta = read_artifact_meta(folder)
            model = load_model(folder)
        except ArtifactError as exc:
            raise ArtifactError(f"{exc}; the old model keeps serving") from None
        except Exception as exc:  # noqa: BLE001 (any failure to read means: refuse it)
            raise ArtifactError(
                f"the artifact at {folder} cannot be loaded "
                f"({type(exc).__name__}); the old model keeps serving"
            ) from None
        if model.name != current.model.name:
            raise ArtifactError(
                f"{folder} holds a {model.name!r} model, not {current.model.name!r};"
                " the old model keeps serving"
            )
        if self.data_checksum not in {trained_on(meta), meta.get("base_data_checksum")}:
            raise ArtifactError(
                f"the model at {folder} was trained on other data than this "
                "server's dataset; retrain it on the same data (optionally with "
                "--feedback); the old model keeps serving"
            )
        probe = (
            self.histories[:1] if self.data.n_users else as_history_matrix([[0]], self.data.n_items)
        )
        try:
            users = np.array([0]) if self.data.n_users else None
            scores = np.asarray(model.score(probe, users=users))
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(
                f"the model at {folder} fails to score ({type(exc).__name__}); "
                "the old model keeps serving"
            ) from None
        if scores.shape != (1, self.data.n_items) or not np.isfinite(scores).any():
            raise ArtifactError(
                f"the model at {folder} scores {scores.shape[-1]} items, the "
                f"dataset has {self.data.n_items}; the old model keeps serving"
            )
        return Served(current.spec, model, folder, meta)


def combiner_mismatch(model, combiner) -> str | None:
    """Why ``combiner`` (a fitted LearnedCombiner) cannot compose ``model``'s queries, or None
    when it can: the model must compose image and text queries with vectors as wide as the
    combiner's."""
    image = getattr(model, "image_", None)
    if not hasattr(model, "score_composed") or image is None or not image.shape[1]:
        return f"{model.name!r} does not compose image and text queries (serve mmdense with images)"
    width = image.shape[1]
    if width != combiner.dim:
        return (
            f"it combines {combiner.dim}-wide vectors, the model's images are {width}-wide; "
            "train the combiner on this model (fit_combiner)"
        )
    return None


def load_combiners(files: dict[str, str] | None, specs) -> dict:
    """The learned combiners saved in ``files`` (served model spec -> ``.npz`` file written by
    :meth:`~genrec.models.multimodal.combiner.LearnedCombiner.save`), by spec.

    Raises:
        ConfigError: a spec is not among the served ``specs``.
        ArtifactError: a file is missing or not a saved combiner (the message names it).
    """
    from genrec.models.multimodal.combiner import LearnedCombiner

    unknown = sorted(set(files or {}) - set(specs))
    if unknown:
        raise ConfigError(
            f"--combiner names {unknown}, which is not served; served: {', '.join(specs)}; "
            "give --combiner SPEC=FILE with SPEC one of --models"
        )
    return {spec: LearnedCombiner.load(path) for spec, path in (files or {}).items()}


def trained_on(meta: dict) -> str | None:
    """The checksum of the data an artifact's model was trained on (from its config.json)."""
    data = meta.get("data")
    return data.get("checksum") if isinstance(data, dict) else meta.get("data_checksum")


def _matches(column, wanted: str) -> np.ndarray:
    """(n_items,) bool: the column's value equals ``wanted`` (or contains it, for lists)."""
    from genrec.text.items import item_year

    out = np.zeros(len(column), bool)
    for i, value in enumerate(column):
        if isinstance(value, (list, tuple, set, np.ndarray)):
            out[i] = any(str(v).lower() == wanted for v in value)
        elif isinstance(value, (float, np.floating)):
            out[i] = item_year(value) == wanted or str(value).lower() == wanted
        else:
            out[i] = value is not None and str(value).lower() == wanted
    return out


__all__ = [
    "EVAL_METRICS",
    "RecService",
    "Served",
    "UnknownIdError",
    "combiner_mismatch",
    "load_combiners",
    "load_served",
]
