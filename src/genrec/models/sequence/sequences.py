"""Small shared pieces of genrec's sequence models (GRU4Rec, SASRec, BERT4Rec, TIGER).

A sequence model is a :class:`~genrec.models.base.Recommender` with ``sequential = True``: the
histories it scores carry their time order in their values (``Dataset.user_item_order`` rows,
``as_history_matrix``), and :func:`genrec.data.history_sequences` turns a batch of them into
(B, L) padded item sequences (0 = padding, ``i + 1`` = item ``i``, newest last). What the models
share beyond that lives here:

* :func:`training_sequences` — each training user's last ``max_len + 1`` items as one padded row,
  the whole-sequence training examples (input ``[:, :-1]``, next-item targets ``[:, 1:]``);
* :func:`continue_sequences` — generation: sample ``n_steps`` next items autoregressively from
  any next-item scorer, with temperature and top-k, whole batches at once;
* :func:`text_item_init` — LLM-initialised item embeddings (survey Sec. 3.4): the items' text
  embeddings reduced to the model's dimension by PCA and scaled to its random init's spread.

Example:
    >>> import numpy as np
    >>> seqs = np.array([[0, 1, 2]])  # items 0 then 1
    >>> def next_scores(batch):  # always prefers the item after the last one
    ...     import torch
    ...     scores = torch.full((len(batch), 4), -10.0)
    ...     scores[torch.arange(len(batch)), torch.as_tensor(batch[:, -1]) % 4] = 10.0
    ...     return scores
    >>> continue_sequences(next_scores, seqs, n_steps=2, temperature=0.01, seed=0)
    array([[2, 3]])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genrec.data.dataset import Dataset
from genrec.errors import ConfigError


def training_sequences(train: Dataset, max_len: int) -> np.ndarray:
    """(U', max_len + 1) padded time-ordered sequences of the users with at least 2 items.

    Row layout as :meth:`Dataset.padded_sequences` (right-aligned, 0 = padding, ``i + 1`` = item
    ``i``). Input of a causal model: ``seqs[:, :-1]``; targets: ``seqs[:, 1:]`` (0 = no target).
    """
    users = np.flatnonzero(train.user_counts >= 2)
    return train.padded_sequences(max_len + 1, users)


def continue_sequences(
    next_scores: Callable,
    sequences: np.ndarray,
    *,
    n_steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    exclude_seen: bool = True,
) -> np.ndarray:
    """Sample ``n_steps`` next items for each padded sequence, feeding each choice back in.

    Args:
        next_scores: ``(B, L) int64 padded sequences -> (B, n_items)`` torch scores (logits) of
            the next item, on any device (sampling runs on the CPU); called once per step with the sequences extended so far (the window
            keeps its length L: the oldest item drops out).
        sequences: (B, L) int64 padded histories (0 = padding, ``i + 1`` = item ``i``).
        n_steps: items to generate per sequence.
        temperature: softmax temperature (> 0); small values approach greedy decoding.
        top_k: sample among the ``top_k`` best items only (None: all items).
        seed: seed of the draws; the same seed gives the same continuations.
        exclude_seen: never generate an item already in the (extended) sequence window.

    Returns:
        (B, n_steps) int64 item indices (no padding shift).
    """
    import torch

    if not isinstance(n_steps, int) or n_steps < 1:
        raise ConfigError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
    gen = torch.Generator().manual_seed(seed)
    window = np.array(sequences, dtype=np.int64, copy=True)  # (B, L)
    out = np.empty((len(window), n_steps), np.int64)
    for step in range(n_steps):  # a loop over steps, never over users
        with torch.no_grad():
            scores = torch.as_tensor(next_scores(window)).cpu()  # one copy per step (B, I)
            logits = scores.to(torch.float32) / temperature
        if exclude_seen:
            rows, cols = np.nonzero(window)
            logits[torch.from_numpy(rows), torch.from_numpy(window[rows, cols] - 1)] = -torch.inf
        if top_k is not None and top_k < logits.shape[1]:
            cutoff = torch.topk(logits, top_k, dim=1).values[:, -1:]  # (B, 1)
            logits = logits.masked_fill(logits < cutoff, -torch.inf)
        probs = torch.softmax(logits, dim=1)
        probs = torch.nan_to_num(probs, nan=0.0)
        empty = probs.sum(dim=1) == 0  # every item excluded: fall back to uniform
        probs[empty] = 1.0
        out[:, step] = torch.multinomial(probs, 1, generator=gen).squeeze(1).numpy()
        window = np.concatenate([window[:, 1:], out[:, step : step + 1] + 1], axis=1)
    return out


ITEM_INITS = ("random", "text")  # the ``item_init`` values of SASRec / BERT4Rec


def apply_text_item_init(table, rows: slice, train: Dataset, config) -> None:
    """Overwrite ``table[rows]`` (the item rows of a torch embedding weight, not padding or mask
    rows) in place with :func:`text_item_init`, using the config's ``text_encoder``,
    ``text_template`` and ``text_cache`` fields."""
    import torch

    init = text_item_init(
        train,
        table[rows].detach().numpy(),
        encoder=config.text_encoder,
        template=config.text_template,
        cache=config.text_cache,
    )
    with torch.no_grad():
        table[rows] = torch.from_numpy(init)


def text_item_init(
    train: Dataset,
    random_init: np.ndarray,
    *,
    encoder: str,
    template: str = "",
    cache: str = "default",
) -> np.ndarray:
    """(n_items, D) item-embedding init from the items' text, in place of ``random_init``.

    Each item's text (rendered from ``train.catalog`` as the dense retriever does: ``template``,
    or the text fields plus the year) is embedded by the text ``encoder`` (``"minilm"``,
    ``"hashing"`` or a sentence-transformers folder) through the on-disk cache ``cache``
    (``"default"``, ``"off"`` or a folder), centred, and projected on its first ``D`` principal
    components (columns ordered by variance, each component's sign fixed so its largest entry is
    positive). The result is scaled so its overall standard deviation equals ``random_init``'s
    ((n_items, D): the model's own random init), keeping the scale the model's training was tuned
    at. With fewer than ``D`` components (fewer items or text dimensions than ``D``), the missing
    columns keep ``random_init``'s values.

    Raises:
        DataError: the dataset has no item catalog with text.
    """
    from genrec.text.items import item_embeddings

    vectors = item_embeddings(
        train, encoder=encoder, template=template, cache=cache, model="text-initialised sequence"
    ).astype(np.float64)
    vectors -= vectors.mean(axis=0)  # (I, T) centred
    u, s, _ = np.linalg.svd(vectors, full_matrices=False)  # principal components: u * s
    dim = random_init.shape[1]
    k = min(dim, int((s > 1e-8 * max(s.max(initial=0.0), 1e-30)).sum()))
    projected = u[:, :k] * s[:k]  # (I, k)
    flip = np.sign(projected[np.abs(projected).argmax(axis=0), np.arange(k)])
    projected *= np.where(flip == 0, 1.0, flip)
    out = np.array(random_init, np.float64, copy=True)
    if k:
        std = projected.std()
        out[:, :k] = projected * (np.std(random_init) / std if std > 0 else 0.0)
    return out.astype(np.float32)
