"""Small shared pieces of genrec's PyTorch models: functions, not a layer zoo.

Each neural model's file holds its whole story (modules, loss, training step, scoring); what it
takes from here is only the plumbing every one of them needs in the same form:

* :func:`seeded` — a block in which torch's global RNG (dropout, sampling) is seeded from
  ``RunOptions.seed`` and restored afterwards, so a fit is deterministic on CPU for a seed and
  thread count (see :mod:`genrec.options` for why the thread count matters) and does not
  disturb the caller's random state;
* :func:`shuffled_batches` and :func:`dense_rows` — training on batches of CSR rows turned into
  dense (B, n_items) tensors on the run's device: no per-user Python loops; :func:`sparse_rows`
  keeps a batch sparse (:class:`SparseRows`) for catalogues too large for dense rows;
* :func:`log_proposal`, :func:`draw_sample`, :func:`corrected_cross_entropy` and
  :func:`sampled_softmax` — the sampled softmax with logQ correction that models switch to
  above their ``sampled_above`` catalogue size (:func:`check_sampling_fields` checks those
  config fields);
* :func:`torch_device`, :func:`module_device`, :func:`to_numpy` and :class:`MixedPrecision` —
  the device story (below);
* :func:`fit_epochs` — the epoch loop with validation NDCG@10 every ``eval_every`` epochs, early
  stopping with ``patience`` and the best epoch's weights restored; it fills ``loss_history_``,
  ``history_``, ``epoch_seconds_``, ``best_epoch_`` and ``epochs_run_`` the same way for every
  model; in a data-parallel fit only rank 0 validates and the others follow its decisions;
* :class:`DataParallel` — one process's part of a data-parallel fit (:mod:`genrec.distributed`):
  its shard of each batch, gradients averaged across the processes before each step; in a
  single process exactly the plain loop (``zero_grad``, ``backward``, ``step``);
* :func:`copy_state` — a snapshot of a module's weights for :func:`fit_epochs`;
* :func:`module_state` / :func:`load_module_state` — a ``torch.nn.Module``'s weights as the
  plain numpy arrays that ``Recommender.save`` writes (no pickle);
* :func:`draw_profiles` — synthetic user profiles drawn from per-item probabilities without
  replacement (Gumbel top-k), used by every model that can generate users, and
  :func:`with_synthetic_users`, which appends them to a training set for augmentation.

Devices: a fit builds its modules on ``torch_device(options)`` (``RunOptions.device``, resolved)
and moves every batch there once (``dense_rows(..., device=)``, ``tensor.to(device)``); index
arrays and random draws made with numpy or a CPU ``torch.Generator`` are built on the CPU and
moved, so a seed gives the same draws on any device. Scoring runs where the model's weights are
(:func:`module_device`) and brings each batch's scores back to the CPU once (:func:`to_numpy`).
Training losses are summed on the device and read once per epoch, never once per batch: a
``float(loss)`` per step would wait for the GPU at every step. :class:`MixedPrecision` wraps the
forward pass in ``torch.autocast`` on CUDA (bfloat16 where the GPU supports it, else float16 with
a gradient scaler) and, unless ``RunOptions.precision = "bfloat16"`` asks for it, does nothing on
the CPU.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])  # rows: 2 users
    >>> draw_profiles(probs, np.array([2, 2]), rng).toarray()  # 2 items each
    array([[1., 1., 0., 0.],
           [0., 0., 1., 1.]], dtype=float32)
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from genrec import distributed
from genrec.data.dataset import Dataset
from genrec.errors import ArtifactError, ConfigError, DataError
from genrec.options import RunOptions, resolve_device


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global RNGs (CPU and every CUDA device) seeded with ``seed``;
    restore them afterwards."""
    import torch

    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        yield


def torch_device(options: RunOptions):
    """The ``torch.device`` a fit with ``options`` runs on (``options.device`` resolved).

    Raises:
        ConfigError: the device is not available on this machine.
    """
    import torch

    return torch.device(resolve_device(options.device))


def module_device(module):
    """The device of ``module``'s first parameter or buffer (CPU for a module without any):
    where scoring runs."""
    import torch

    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


def to_numpy(tensor) -> np.ndarray:
    """``tensor`` as a numpy array on the CPU: one device-to-host copy (a no-op on the CPU)."""
    return tensor.detach().cpu().numpy()


class MixedPrecision:
    """Automatic mixed precision of a training step, as ``RunOptions.precision`` says.

    ``"auto"``: on a CUDA device the forward pass runs under ``torch.autocast`` in bfloat16 when
    the GPU supports it (no loss scaling needed) and in float16 otherwise, with a ``GradScaler``
    that scales the loss before ``backward`` and unscales the gradients before the step; on the
    CPU (and MPS) nothing changes: float32, bit-identical for a seed and thread count.
    ``"bfloat16"``: bfloat16 autocast on any device; on this machine's CPU (AVX-512 BF16) it
    made SASRec's epochs 2-2.75x faster at the same NDCG@10 to 3 decimals (docs/scale.md), so it is
    offered there but not the default. ``"float32"``: never.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> amp = MixedPrecision(torch.device("cpu"))
        >>> with amp.autocast():
        ...     loss = net(torch.ones(2, 3)).square().mean()
        >>> amp.step(loss, opt)
    """

    def __init__(self, device, *, precision: str = "auto"):
        import torch

        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.enabled = precision == "bfloat16" or (precision == "auto" and cuda)
        fp16 = self.enabled and precision == "auto" and not torch.cuda.is_bf16_supported()
        self.dtype = torch.float16 if fp16 else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None

    def autocast(self):
        """A ``with`` block in which the forward pass runs in reduced precision (when on)."""
        import torch

        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss, optimizer) -> None:
        """``zero_grad``, ``backward`` and ``step`` of ``optimizer`` for ``loss`` (scaled when
        float16 needs it)."""
        optimizer.zero_grad()
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def shuffled_batches(
    n_rows: int, batch_size: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n_rows)`` in batches; shuffled when ``rng`` is given."""
    order = rng.permutation(n_rows) if rng is not None else np.arange(n_rows)
    for lo in range(0, n_rows, batch_size):
        yield order[lo : lo + batch_size]


class DataParallel:
    """One process's part of a data-parallel training loop over a ``module``.

    Use in place of the plain loop::

        dp = DataParallel(net, opt, seed=options.seed, amp=amp)  # after net, opt (amp: optional)
        for rows in dp.batches(n_rows, batch_size, rng):  # this process's shard of a batch
            loss, count = ...                              # mean loss over ``count`` terms
            dp.step(loss, count)                           # zero_grad, backward, sync, step
        epoch_loss = dp.mean(total, count)                 # over every process

    Every process draws the same shuffled batch order (the same ``rng`` seed) and takes its
    rank's slice ``batch[rank::world_size]`` of each batch. Before each optimiser step the
    gradients are averaged over the processes, each weighted by its share of the batch's loss
    terms (``count``), so a step follows the gradient of the whole batch's mean loss, as in one
    process. At construction rank 0's weights are copied to every rank and ranks above 0 reseed
    torch's RNG (dropout, sampled negatives) from ``(seed, rank)``, so their noise differs
    from rank 0's while rank 0 draws exactly what a single process draws.

    :attr:`steps` counts the optimiser steps taken so far; it is the same on every rank (a rank
    with an empty share of a batch still takes part in that step), so a schedule read from it
    (Mult-VAE's KL annealing) advances as in one process.

    In a single process (no process group, or a group of one) every method is exactly the
    plain loop: the same batches, the same steps, the same floats. Gradients are all-reduced
    rather than wrapped in ``DistributedDataParallel`` because the models call their
    sub-modules directly (``net["encoder"](x)``), not one ``forward``. A parameter without a
    gradient on a rank (its shard of a batch was empty) counts as a zero gradient there.
    """

    def __init__(self, module, optimizer, *, seed: int, amp: MixedPrecision | None = None):
        import torch

        self.module, self.optimizer, self.amp = module, optimizer, amp
        self.group = distributed.current()
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.steps = 0  # optimiser steps taken, the same on every rank
        if self.group.world_size > 1:
            with torch.no_grad():
                for tensor in module.state_dict().values():
                    distributed.broadcast_from_main(tensor)
            if self.group.rank > 0:
                state = np.random.SeedSequence([seed, self.group.rank]).generate_state(1)
                torch.manual_seed(int(state[0]))

    def batches(
        self,
        n_rows: int,
        batch_size: int,
        rng: np.random.Generator | None,
        *,
        skipped: Callable[[], Any] | None = None,
    ) -> Iterator[np.ndarray]:
        """This rank's slice of each batch of :func:`shuffled_batches` (the whole batch alone).
        A rank whose slice of a batch is empty takes part in that step without yielding; it
        calls ``skipped()`` first, where a loop draws from ``rng`` once per batch, so that the
        draw is made on every rank and their generators stay in step."""
        rank, world = self.group.rank, self.group.world_size
        for rows in shuffled_batches(n_rows, batch_size, rng):
            shard = rows[rank::world]
            if len(shard):
                yield shard
            else:
                if skipped is not None:
                    skipped()
                self.optimizer.zero_grad()
                self._sync(0)
                self._step()

    def step(self, loss, count: int) -> None:
        """Back-propagate this rank's mean ``loss`` over ``count`` terms, average the gradients
        over the ranks (weights ``count``) and take one optimiser step. With ``amp`` a float16
        loss is scaled before ``backward``; the ranks average the scaled gradients, so an
        overflow reaches every rank and all of them skip that step alike."""
        scaler = self.amp.scaler if self.amp is not None else None
        self.optimizer.zero_grad()
        (loss if scaler is None else scaler.scale(loss)).backward()
        self.apply_gradients(count)

    def apply_gradients(self, count: int) -> None:
        """The optimiser step of :meth:`step` for gradients already in the parameters'
        ``.grad`` (written by hand rather than by ``backward``): this rank's gradient of its
        mean loss over ``count`` terms, averaged over the ranks (weights ``count``), then one
        step."""
        self._sync(count)
        self._step()

    def _step(self) -> None:
        self.steps += 1
        scaler = self.amp.scaler if self.amp is not None else None
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)
            scaler.update()

    def _sync(self, count: int) -> None:
        """Replace each gradient by the count-weighted mean over the ranks (one all-reduce)."""
        import torch

        if self.group.world_size == 1:
            return  # a sum over one rank is the identity
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        device = grads[0].device  # one device per module (NCCL reduces on the GPU)
        parts = [
            g.reshape(-1) * count if count else torch.zeros(g.numel(), device=device) for g in grads
        ]
        flat = torch.cat([*parts, torch.tensor([float(count)], device=device)])  # (n_params + 1,)
        distributed.all_sum(flat)
        total = float(flat[-1])
        offset = 0
        for p, g in zip(self.params, grads):
            n = g.numel()
            p.grad = (flat[offset : offset + n] / max(total, 1.0)).view_as(p).clone()
            offset += n

    def mean(self, total, count: int) -> float:
        """``sum(total) / sum(count)`` over the ranks: an epoch's mean loss (``total``, a number
        or a one-element tensor, is this rank's sum of per-term losses, ``count`` its number of
        terms). Reads ``total`` once: call it once per epoch."""
        import torch

        if self.group.world_size == 1:
            return float(total) / max(count, 1)
        both = distributed.all_sum(torch.tensor([float(total), float(count)], dtype=torch.float64))
        return float(both[0]) / max(float(both[1]), 1.0)


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray | None = None, *, device=None):
    """(B, n_cols) float32 torch tensor of the CSR ``matrix`` rows ``rows`` (all when None), on
    ``device`` (default: the CPU)."""
    import torch

    part = matrix if rows is None else matrix[rows]
    dense = torch.from_numpy(np.asarray(part.toarray(), dtype=np.float32))
    return dense if device is None else dense.to(device, non_blocking=True)


@dataclasses.dataclass(frozen=True)
class SparseRows:
    """A batch of sparse rows in coordinate form: entry k is ``value[k]`` at
    ``(row[k], col[k])`` of an ``(n_rows, n_cols)`` matrix; row, col (N,) int64, value (N,)
    float32, on one device, rows in order."""

    row: Any
    col: Any
    value: Any
    n_rows: int
    n_cols: int


def sparse_rows(matrix: sp.csr_matrix, rows: np.ndarray, *, device=None) -> SparseRows:
    """The CSR ``matrix`` rows ``rows`` as a :class:`SparseRows` batch on ``device`` (default: the
    CPU): O(non-zeros) memory, where :func:`dense_rows` takes O(rows x columns)."""
    import torch

    part = matrix[rows]
    counts = np.diff(part.indptr)
    row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    tensors = [
        torch.from_numpy(row),
        torch.from_numpy(part.indices.astype(np.int64)),
        torch.from_numpy(np.asarray(part.data, dtype=np.float32)),
    ]
    if device is not None:
        tensors = [t.to(device, non_blocking=True) for t in tensors]
    return SparseRows(*tensors, n_rows=part.shape[0], n_cols=part.shape[1])


def batch_rows(matrix: sp.csr_matrix, rows: np.ndarray, *, device=None, sparse: bool):
    """The CSR ``matrix`` rows ``rows`` on ``device``: :class:`SparseRows` when ``sparse``
    (the sampled-softmax path of large catalogues), else a dense (B, n_columns) tensor."""
    return (sparse_rows if sparse else dense_rows)(matrix, rows, device=device)


# ---- sampled softmax for large catalogues ---------------------------------------------------
PROPOSAL_POWER = 0.75  # sampled softmax proposal: training counts ** 0.75 (word2vec's) ...
PROPOSAL_UNIFORM = 0.1  # ... mixed with this share of a uniform draw over every item


def log_proposal(item_counts: np.ndarray):
    """(I,) float32 torch log-probabilities of the sampled-softmax proposal: a mixture of
    ``count(i) ** PROPOSAL_POWER`` (normalised) and a uniform draw over every item with weight
    ``PROPOSAL_UNIFORM``, so popular items (the hard competitors) are drawn often and items
    never seen in training can still be drawn and pushed down. Equal counts give the uniform
    proposal."""
    import torch

    weights = np.asarray(item_counts, np.float64) ** PROPOSAL_POWER
    uniform = np.full(len(weights), 1.0 / len(weights))
    if weights.sum() <= 0:
        q = uniform
    else:
        q = (1 - PROPOSAL_UNIFORM) * weights / weights.sum() + PROPOSAL_UNIFORM * uniform
    return torch.from_numpy(np.log(q).astype(np.float32))


def draw_sample(log_q, n_sampled: int, *, device=None):
    """(S,) int64 item indices drawn with replacement from ``exp(log_q)`` by torch's global RNG
    (on ``log_q``'s device, so a seed gives the same draws wherever the model runs), moved to
    ``device`` (default: where ``log_q`` is)."""
    import torch

    drawn = torch.multinomial(log_q.exp(), n_sampled, replacement=True)  # (S,)
    return drawn if device is None else drawn.to(device)


def corrected_cross_entropy(pos, neg, target, drawn, log_q, *, reduction: str = "mean"):
    """Sampled-softmax cross-entropy with logQ correction from raw logits.

    Args:
        pos: (N,) each row's logit of its target; neg: (N, S) each row's logits of the drawn
            items; target: (N,) item indices; drawn: (S,) item indices; log_q: (I,) the
            proposal's log-probabilities, on the logits' device.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (an (N,) tensor), as torch's.

    Every logit, the target's included, is lowered by its item's ``log q``; drawn copies of a
    row's own target are masked out (accidental hits); the row's loss is the cross-entropy of
    its target against the drawn items. With a uniform proposal and ``drawn`` every item once
    this is exactly the full softmax cross-entropy (the corrections shift every logit alike).
    """
    import torch
    import torch.nn.functional as F

    pos = pos - log_q[target]  # (N,)
    neg = neg - log_q[drawn]  # (N, S)
    neg = neg.masked_fill(drawn[None, :] == target[:, None], -torch.inf)
    logits = torch.cat([pos[:, None], neg], dim=1)  # (N, 1 + S), the target first
    first = torch.zeros(len(target), dtype=torch.int64, device=logits.device)
    return F.cross_entropy(logits, first, reduction=reduction)


def sampled_softmax(hidden, items, target, log_q, *, n_sampled: int):
    """Mean sampled-softmax cross-entropy with logQ correction (Jean et al., ACL 2015; the
    correction of Yi et al., RecSys 2019).

    Args:
        hidden: (N, D) outputs, one per position; items: (I, D) output item vectors;
        target: (N,) item indices; log_q: (I,) log-probabilities of the proposal
            (:func:`log_proposal`).
        n_sampled: items drawn (:func:`draw_sample`) for the whole batch.

    Each position's logits are its target's and the ``n_sampled`` drawn items', each minus its
    ``log q``; drawn copies of the position's own target are masked out (accidental hits);
    see :func:`corrected_cross_entropy`.
    """
    drawn = draw_sample(log_q, n_sampled, device=hidden.device)  # (S,)
    log_q = log_q.to(hidden.device)
    pos = (hidden * items[target]).sum(1)  # (N,)
    neg = hidden @ items[drawn].T  # (N, S)
    return corrected_cross_entropy(pos, neg, target, drawn, log_q)


def sampling_proposal(train, cfg):
    """:func:`log_proposal` of ``train``'s item counts when its catalog is above
    ``cfg.sampled_above`` items (the likelihood's softmax is then sampled), else None (the full
    softmax): how the auto-encoders choose."""
    return log_proposal(train.item_counts) if train.n_items > cfg.sampled_above else None


def check_sampling_fields(cfg) -> None:
    """ConfigError for a bad ``sampled_above`` (a non-negative integer) or ``n_sampled`` (a
    positive integer): the sampled-softmax fields of a config."""
    value = cfg.sampled_above
    cfg.check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "sampled_above",
        "a non-negative integer (0: always sample; a large number: never)",
    )
    cfg.check_positive_ints("n_sampled")


def fit_epochs(
    model,
    train: Dataset,
    valid: Dataset | None,
    options: RunOptions,
    *,
    run_epoch: Callable[[int], float],
    module=None,
    snapshot: Callable[[], Any] | None = None,
    restore: Callable[[Any], None] | None = None,
    max_epochs: int | None = None,
    patience: int | None = None,
    eval_every: int | None = None,
    initial: tuple[float, Any] | None = None,
) -> None:
    """Train ``model`` epoch by epoch with early stopping on validation NDCG@10.

    Args:
        model: the Recommender being fitted; it must score with its current weights while
            training (validation calls ``model.score`` through the evaluation protocol).
        run_epoch: ``run_epoch(epoch) -> mean training loss`` trains one epoch (1-based).
        module: the torch module holding the weights: the best epoch's state is kept with
            :func:`copy_state` and put back with ``load_state_dict``. Or give both of:
        snapshot: returns a copy of the current weights;
        restore: puts a snapshot back.
        max_epochs, patience, eval_every: at most ``max_epochs`` epochs; validate every
            ``eval_every`` epochs (only when ``valid`` has interactions); stop after
            ``patience`` validations in a row without a better NDCG@10. Each defaults to the
            field of the same name in ``model.config``.

    Sets on ``model``: ``loss_history_`` (mean loss per epoch), ``history_`` (list of
    ``{"epoch", "ndcg@10"}``), ``epoch_seconds_`` (wall time of each ``run_epoch``, validation
    excluded), ``best_epoch_`` (the restored epoch; the last one without validation) and
    ``epochs_run_``. Each validation value also goes to ``options.on_validation(epoch, ndcg)``
    when set (pruning a search, tracking a run).

    In a data-parallel fit (:mod:`genrec.distributed`) only rank 0 validates, shows progress
    and calls ``on_validation``; the others receive its NDCG@10, so every rank stops at the
    same epoch and restores the same weights. ``run_epoch`` must return the same loss on every
    rank (:meth:`DataParallel.mean`).

    Raises:
        ConfigError: the training loss became NaN or infinite (lower the learning rate).
    """
    if module is not None:
        snapshot, restore = (lambda: copy_state(module)), module.load_state_dict
    max_epochs = model.config.max_epochs if max_epochs is None else max_epochs
    patience = model.config.patience if patience is None else patience
    eval_every = model.config.eval_every if eval_every is None else eval_every
    group = distributed.current()
    validate = valid is not None and len(valid) > 0
    best_score, best_epoch, best_weights, stale = -math.inf, None, None, 0
    if initial is not None:
        best_score, best_weights = initial
        best_epoch = 0
    model.loss_history_, model.history_, model.epoch_seconds_ = [], [], []
    shown = options if group.is_main else dataclasses.replace(options, progress=False)
    epochs = shown.track(range(1, max_epochs + 1), desc=model.name, unit="epoch")
    for epoch in epochs:
        start = time.perf_counter()
        loss = float(run_epoch(epoch))
        model.epoch_seconds_.append(time.perf_counter() - start)
        if not math.isfinite(loss):
            raise ConfigError(
                f"{model.name}: the training loss became {loss} at epoch {epoch}; "
                "lower the learning rate (lr) or raise the regularisation"
            )
        model.loss_history_.append(loss)
        postfix = {"loss": f"{loss:.4f}"}
        if validate and epoch % eval_every == 0:
            ndcg = _main_validation_ndcg(model, train, valid, group)
            model.history_.append({"epoch": epoch, "ndcg@10": ndcg})
            if options.on_validation is not None and group.is_main:
                options.on_validation(epoch, ndcg)
            postfix["ndcg@10"] = f"{ndcg:.4f}"
            if ndcg > best_score:
                best_score, best_epoch, best_weights, stale = ndcg, epoch, snapshot(), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        epochs.set_postfix(postfix)
    if best_weights is not None:
        restore(best_weights)
    model.epochs_run_ = len(model.loss_history_)
    model.best_epoch_ = best_epoch if best_epoch is not None else model.epochs_run_


def _main_validation_ndcg(model, train: Dataset, valid: Dataset, group) -> float:
    """Validation NDCG@10 computed on rank 0 and sent to every rank (all hold the same
    weights, so the others need not repeat the evaluation)."""
    import torch

    from genrec.evaluation import protocol

    ndcg = float(protocol.validation_ndcg(model, train, valid, k=10)) if group.is_main else 0.0
    if group.world_size == 1:
        return ndcg
    return float(distributed.broadcast_from_main(torch.tensor([ndcg], dtype=torch.float64))[0])


def copy_state(module) -> dict:
    """A detached copy of ``module.state_dict()`` (a snapshot for :func:`fit_epochs`)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def module_state(module, prefix: str = "") -> dict[str, np.ndarray]:
    """``module``'s parameters and buffers as numpy arrays, keys prefixed with ``prefix``."""
    return {prefix + k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_state(module, state: dict[str, np.ndarray], prefix: str = "") -> None:
    """Load arrays written by :func:`module_state` into ``module`` (shapes must match).

    Raises:
        ArtifactError: a weight is missing or has the wrong shape.
    """
    import torch

    own = module.state_dict()
    missing = [prefix + k for k in own if prefix + k not in state]
    if missing:
        raise ArtifactError(f"the saved weights lack {missing[:5]}; retrain the model")
    loaded = {}
    for k, v in own.items():
        value = torch.from_numpy(np.asarray(state[prefix + k])).to(v.dtype)
        if value.shape != v.shape:
            raise ArtifactError(
                f"saved weight {prefix + k} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(v.shape)}; retrain the model"
            )
        loaded[k] = value
    module.load_state_dict(loaded)


def draw_profiles(probs, lengths: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Binary (B, I) CSR: row b holds ``lengths[b]`` distinct items drawn without replacement
    with probabilities proportional to ``probs[b]`` (Gumbel top-k, the whole batch at once).

    Args:
        probs: (B, I) non-negative weights (numpy or torch); rows need not sum to 1. An item of
            weight 0 is drawn only when the row has fewer than ``lengths[b]`` positive items.
        lengths: (B,) non-negative integers, each at most I.
    """
    probs = np.asarray(
        probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs, dtype=np.float64
    )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise DataError(
            "profile probabilities must be finite and non-negative; the model "
            "produced NaN, infinite or negative values"
        )
    lengths = np.asarray(lengths, dtype=np.int64)
    n_rows, n_items = probs.shape
    if len(lengths) != n_rows or (lengths < 0).any() or (lengths > n_items).any():
        raise ConfigError(f"profile lengths must be {n_rows} integers in 0..{n_items}")
    with np.errstate(divide="ignore"):
        keys = np.log(np.clip(probs, 0, None)) + rng.gumbel(size=probs.shape)  # (B, I)
    # zero-weight items come after every positive one (log-probabilities are >= -745), in a
    # random order among themselves
    keys = np.where(np.isfinite(keys), keys, -1e4 + rng.random(probs.shape))
    width = int(lengths.max(initial=0))
    if width == 0:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    top = np.argpartition(-keys, width - 1, axis=1)[:, :width]  # (B, width), unordered
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)  # (B, width) best first
    keep = np.arange(width)[None, :] < lengths[:, None]
    rows = np.broadcast_to(np.arange(n_rows)[:, None], top.shape)[keep]
    return sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (rows, top[keep])), shape=(n_rows, n_items)
    )


def with_synthetic_users(
    train: Dataset, profiles: sp.csr_matrix, *, prefix: str = "synthetic-"
) -> Dataset:
    """``train`` plus one new user per row of ``profiles`` (B, n_items), for data augmentation.

    The original users keep their indices (the new ids ``prefix0, prefix1, ...`` are appended to
    the user vocabulary), so a model fitted on the result is evaluated on the original split
    unchanged; the new interactions have value 1 and timestamp 0.
    """
    from genrec.data.vocabulary import Vocabulary

    if profiles.shape[1] != train.n_items:
        raise ConfigError(
            f"profiles have {profiles.shape[1]} item columns, the data has {train.n_items} items"
        )
    coo = profiles.tocoo()
    new_ids = [f"{prefix}{u}" for u in range(profiles.shape[0])]
    users = Vocabulary(list(train.users.ids) + new_ids, kind="user")
    n = len(coo.row)
    return Dataset(
        users,
        train.items,
        np.r_[train.user_idx, train.n_users + coo.row],
        np.r_[train.item_idx, coo.col],
        np.r_[train.value, np.ones(n, np.float32)],
        np.r_[train.timestamp, np.zeros(n, np.int64)],
        catalog=train.catalog,
        name=f"{train.name}+{n} synthetic",
        positive_threshold=train.positive_threshold,
    )
