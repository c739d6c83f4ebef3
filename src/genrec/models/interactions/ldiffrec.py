"""L-DiffRec: DiffRec in the latent space of per-cluster item auto-encoders.

Method: Wang, Xu, Feng, Lin, He & Chua, "Diffusion Recommender Model", SIGIR 2023 (section
"L-DiffRec"). Items are clustered into ``n_clusters`` groups by k-means on item embeddings; a
user's interaction row is cut into the clusters' parts, each compressed by its own variational
encoder to a latent of size proportional to the cluster's item count; the latents are
concatenated (``latent_dim`` in total) and DiffRec's Gaussian diffusion (the same schedule,
x0-predicting MLP denoiser, SNR reweighting and importance sampling over steps; see
:mod:`genrec.models.interactions.diffrec`) runs on that vector. Each cluster's decoder maps its slice of the
denoised latent back to scores of its items. Training is joint, as in the official code: per
batch, ``loss = diffusion_weight * L_diffusion(z) + L_recon(decode(z0_hat), x) + beta * KL``,
where z is the encoders' reparameterised latent, z0_hat the denoiser's estimate of it from the
noised z_t, and beta rises linearly to ``kl_cap`` over ``kl_anneal_steps`` updates.
``L_recon`` is the multinomial log-likelihood of the official code (``recon="multinomial"``)
or, the default, a squared error summed over items (``recon="gaussian"``). Scoring encodes
the history to its mean latent, runs the T reverse steps (posterior means only) and decodes;
the decoder outputs are the scores.

The model's distribution (``sample_profiles``): z_T ~ N(0, I) in the latent space, the T
reverse steps with the posterior noise, the decoders' outputs, and per-item probabilities
``clip(outputs, 0, 1)`` for the Gaussian decoder (it estimates the binary row) or
``softmax(outputs)`` for the multinomial one; items are drawn without replacement
proportionally to them (:func:`genrec.models.neural.draw_profiles`). Latent noise decodes to
weakly structured profiles (on the planted-cluster world, samples keep a cluster together
barely more often than chance): the tiny diffusion noise never trains the denoiser on pure
noise.

Deviations from the paper / official code:
    * item embeddings for the clustering are the top ``svd_dim`` right singular vectors of the
      training matrix scaled by their singular values (the paper uses pre-trained LightGCN item
      embeddings), clustered by :func:`genrec.kmeans.kmeans` (seeded; faiss's k-means when the
      ``faiss`` extra is installed, k-means++ and Lloyd steps in numpy otherwise);
    * the diffusion weight is a constant ``diffusion_weight`` (the official code anneals it
      linearly from 0.03 towards 0.005 over 500 epochs); one Adam for both parts (the official
      code uses two learning rates);
    * one decoder per cluster (the official ML-1M setting uses one linear decoder from the whole
      latent to all items);
    * the default reconstruction loss is a squared error (``recon="gaussian"``), not the
      official multinomial likelihood: on ML-100K validation NDCG@10 it gave 0.258 against
      0.227 with otherwise equal settings (DiffRec's own x0 loss is a squared error too);
    * the schedule, noise handling at scoring and early stopping as in :mod:`diffrec`.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = LDiffRec(latent_dim=8, hidden=(16,), max_epochs=3).fit(world.split.train)
    >>> model.score(world.split.train.user_items[:2]).shape
    (2, 60)
    >>> sorted(set(model.item_cluster_.tolist()))  # the cluster of each item
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg

from genrec.errors import ArtifactError, ConfigError
from genrec.kmeans import kmeans
from genrec.models.base import ModelConfig, Recommender
from genrec.models.interactions.diffrec import (
    Diffusion,
    StepSampler,
    build_denoiser,
    check_denoiser_fields,
    check_training_fields,
    diffusion_loss,
    fixed_noise,
    sample_lengths,
)
from genrec.models.neural import (
    DataParallel,
    MixedPrecision,
    dense_rows,
    draw_profiles,
    fit_epochs,
    load_module_state,
    module_device,
    module_state,
    seeded,
    to_numpy,
    torch_device,
)


@dataclass(frozen=True)
class LDiffRecConfig(ModelConfig):
    """Hyper-parameters of :class:`LDiffRec`.

    Defaults: chosen on ML-100K validation NDCG@10 (holdout 0.8/0.1/0.1, split seed 2020,
    training seed 42) over about 20 runs: recon multinomial / gaussian, n_clusters 1 / 2 / 3,
    latent_dim 100 / 200 / 300 / 600, denoiser hidden (600,) / (300,) / (100,) / (64,),
    dropout 0.1 / 0.2 / 0.5, diffusion_weight 0.003 / 0.03 / 0.1, kl_cap 0.05 / 0.2 / 0.3, lr
    1e-3 / 5e-4 / 3e-4, batch 128 / 400. Best: gaussian recon, 2 clusters, latent 300, hidden
    (100,), dropout 0.1, lr 1e-3: valid NDCG@10 0.2645 (the paper-like multinomial, hidden
    (300,): 0.2267; DiffRec's default: 0.2715). ``presets["paper"]`` is the official code's
    ML-1M (clean) setting (YiyanXu/DiffRec, L-DiffRec/inference.py and run.sh).
    """

    n_clusters: int = 2  # item clusters, one encoder/decoder each
    latent_dim: int = 300  # total latent size (split over clusters by their item counts)
    svd_dim: int = 64  # size of the item embeddings clustered by k-means
    kmeans_iters: int = 50  # Lloyd iterations of k-means at most
    steps: int = 5  # T, diffusion steps
    noise_scale: float = 0.01  # s, scale of the noise schedule
    noise_min: float = 0.001  # lower bound of 1 - abar_t / s (at t = 1)
    noise_max: float = 0.01  # upper bound of 1 - abar_t / s (at t = T)
    sampling_steps: int = 0  # T': step the latent is noised to at inference (0 = no noise)
    sampling_noise: bool = False  # add the posterior noise in the reverse steps at inference
    reweight: bool = True  # weight the x0 loss by SNR(t-1) - SNR(t)
    history_per_step: int = 10  # losses kept per step for importance sampling
    hidden: tuple[int, ...] = (100,)  # denoiser hidden sizes (mirrored back to latent_dim)
    emb_size: int = 10  # size of the sinusoidal step embedding
    dropout: float = 0.1  # dropout on the encoders' input (the interaction row)
    denoiser_dropout: float = 0.0  # dropout on the denoiser's input z_t
    diffusion_weight: float = 0.03  # weight of the diffusion loss against the VAE loss
    recon: str = "gaussian"  # decoder likelihood: "multinomial" (paper) or "gaussian"
    kl_cap: float = 0.3  # largest weight of the VAE's KL term
    kl_anneal_steps: int = 200  # updates over which the KL weight rises from 0 to kl_cap
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam L2 penalty
    batch_size: int = 128  # users per Adam step
    max_epochs: int = 200  # epochs at most
    patience: int = 10  # evaluations without a better valid NDCG@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations

    presets: ClassVar[Mapping[str, Mapping]] = {
        # official ML-1M clean: lr1 1e-3 (lr2 5e-4), bs 400, n_cate 2, in [300], lamda 0.03,
        # mlp_dims [300], emb 10, x0, steps 40, scale 0.005, min 0.005, max 0.02, reweight 1
        "paper": {
            "n_clusters": 2,
            "latent_dim": 300,
            "steps": 40,
            "noise_scale": 0.005,
            "noise_min": 0.005,
            "noise_max": 0.02,
            "hidden": (300,),
            "lr": 1e-3,
            "batch_size": 400,
            "diffusion_weight": 0.03,
            "recon": "multinomial",
        },
    }

    def __post_init__(self):
        self.check_positive_ints(
            "n_clusters", "latent_dim", "svd_dim", "kmeans_iters", "kl_anneal_steps"
        )
        self.check(
            self.latent_dim >= self.n_clusters,
            "latent_dim",
            f"at least n_clusters ({self.n_clusters}): one latent unit per cluster",
        )
        check_denoiser_fields(self)
        self.check(0 <= self.denoiser_dropout < 1, "denoiser_dropout", "in [0, 1)")
        self.check(self.diffusion_weight >= 0, "diffusion_weight", "a non-negative number")
        self.check(self.kl_cap >= 0, "kl_cap", "a non-negative number")
        self.check(
            self.recon in ("multinomial", "gaussian"), "recon", "'multinomial' or 'gaussian'"
        )
        check_training_fields(self)


# ---- item clusters ------------------------------------------------------------------------------
def item_embeddings(user_items: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    """(n_items, d) item factors ``V S`` of the rank-d truncated SVD of the binary matrix
    (d = min(dim, smallest side - 1); deterministic for a seed)."""
    x = sp.csr_matrix(user_items, dtype=np.float64)
    d = min(dim, min(x.shape) - 1)
    if d < 1 or x.nnz == 0:
        return np.asarray(x.T.todense())  # tiny data: the item columns themselves
    v0 = np.random.default_rng(seed).random(min(x.shape))
    _, s, vt = scipy.sparse.linalg.svds(x, k=d, v0=v0)
    return vt.T * s  # (I, d)


# ---- the model ----------------------------------------------------------------------------------
class LDiffRec(Recommender):
    """L-DiffRec in PyTorch.

    Learned attributes: ``item_cluster_`` (n_items,) cluster of each item, ``autoencoder_`` (the
    per-cluster encoders and decoders), ``denoiser_``, ``train_lengths_``, ``noise_seed_``,
    ``loss_history_``, ``history_``, ``best_epoch_``, ``epochs_run_``.
    """

    name = "ldiffrec"
    Config = LDiffRecConfig

    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        if train.n_items < cfg.n_clusters:
            raise ConfigError(
                f"LDiffRecConfig.n_clusters = {cfg.n_clusters} exceeds the "
                f"{train.n_items} items; lower n_clusters"
            )
        rng = np.random.default_rng(options.seed)
        user_items = train.user_items
        rows = np.flatnonzero(np.diff(user_items.indptr) > 0)
        self.train_lengths_ = np.diff(user_items.indptr)[rows].astype(np.int64)
        self.noise_seed_ = int(rng.integers(2**31))
        emb = item_embeddings(user_items, cfg.svd_dim, options.seed)
        self.item_cluster_ = kmeans(
            emb, cfg.n_clusters, seed=options.seed, iters=cfg.kmeans_iters, threads=options.threads
        ).labels
        device = torch_device(options)
        amp = MixedPrecision(device, precision=options.precision)
        with seeded(options.seed):
            self._build(device)
            modules = torch.nn.ModuleList([self.autoencoder_, self.denoiser_])
            opt = torch.optim.Adam(modules.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            dp = DataParallel(modules, opt, seed=options.seed, amp=amp)
            sampler = StepSampler(cfg.steps, cfg.history_per_step)  # each process: its shards'
            steps_per_epoch = -(-len(rows) // cfg.batch_size)

            def run_epoch(epoch: int) -> float:
                modules.train()
                total, count = torch.zeros((), dtype=torch.float64, device=device), 0
                # updates so far, from the epoch on every process (a process whose share of an
                # epoch's last batch is empty skips that update's annealing step)
                updates = (epoch - 1) * steps_per_epoch
                for batch in dp.batches(len(rows), cfg.batch_size, rng):
                    x = dense_rows(user_items, rows[batch], device=device)  # (B, I)
                    beta = min(cfg.kl_cap, cfg.kl_cap * updates / cfg.kl_anneal_steps)
                    with amp.autocast():
                        loss = self._joint_loss(x, sampler, beta)
                    dp.step(loss, len(batch))
                    updates += 1
                    total, count = total + loss.detach() * len(batch), count + len(batch)
                modules.eval()
                return dp.mean(total, count)  # read once per epoch

            fit_epochs(
                self,
                train,
                valid,
                options,
                run_epoch=run_epoch,
                module=modules,
            )
        modules.eval()

    def _joint_loss(self, x, sampler, beta: float):
        """Diffusion loss on the latent + multinomial loss of the decoded x0_hat + beta KL."""
        import torch

        mu, logvar = self._encode(x)  # (B, L) each
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        diff, z0_hat = diffusion_loss(
            self.diffusion_, sampler, self.denoiser_, z, reweight=self.config.reweight
        )
        logits = self._decode(z0_hat)  # (B, I)
        if self.config.recon == "multinomial":
            nll = -(torch.log_softmax(logits, dim=1) * x).sum(dim=1).mean()
        else:  # squared error summed over items (a Gaussian likelihood), as DiffRec's x0 loss
            nll = (logits - x).pow(2).sum(dim=1).mean()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
        return self.config.diffusion_weight * diff + nll + beta * kl

    def _build(self, device="cpu") -> None:
        """The diffusion, per-cluster encoders/decoders and the denoiser for ``item_cluster_``,
        with every tensor on ``device``."""
        import torch
        from torch import nn

        cfg = self.config
        self.diffusion_ = Diffusion(cfg.steps, cfg.noise_scale, cfg.noise_min, cfg.noise_max)
        self.diffusion_.to(device)
        sizes = np.bincount(self.item_cluster_, minlength=cfg.n_clusters)
        dims = np.maximum(1, (sizes * cfg.latent_dim) // sizes.sum())
        dims[-1] = max(1, cfg.latent_dim - dims[:-1].sum())  # the last takes the remainder
        self.latent_dims_ = dims
        clusters = [np.flatnonzero(self.item_cluster_ == c) for c in range(cfg.n_clusters)]
        self.cluster_items_ = [torch.from_numpy(c).to(device) for c in clusters]
        self.item_order_ = torch.from_numpy(np.argsort(np.concatenate(clusters), kind="stable")).to(
            device
        )  # cluster order -> items
        self.autoencoder_ = nn.ModuleDict(
            {
                "encoders": nn.ModuleList(
                    nn.Linear(int(n), 2 * int(d)) for n, d in zip(sizes, dims)
                ),
                "decoders": nn.ModuleList(nn.Linear(int(d), int(n)) for n, d in zip(sizes, dims)),
            }
        )
        for layer in self.autoencoder_.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.autoencoder_.to(device)
        self.denoiser_ = build_denoiser(
            int(dims.sum()), cfg.hidden, cfg.emb_size, cfg.denoiser_dropout
        ).to(device)

    def _encode(self, x):
        """``(mu, logvar)``, each (B, L): the clusters' encoders on their parts of x (B, I)."""
        import torch

        x = torch.nn.functional.dropout(x, self.config.dropout, self.autoencoder_.training)
        mus, logvars = [], []
        for items, enc, d in zip(
            self.cluster_items_, self.autoencoder_["encoders"], self.latent_dims_
        ):
            h = enc(x[:, items])  # (B, 2 d)
            mus.append(h[:, :d])
            logvars.append(h[:, d:])
        return torch.cat(mus, dim=1), torch.cat(logvars, dim=1)

    def _decode(self, z):
        """(B, I) logits in item order from latents z (B, L)."""
        import torch

        parts = torch.split(z, [int(d) for d in self.latent_dims_], dim=1)
        out = [dec(p) for dec, p in zip(self.autoencoder_["decoders"], parts)]
        return torch.cat(out, dim=1)[:, self.item_order_]

    # ---- scoring and sampling ----------------------------------------------------------------
    def _score(self, histories, users):
        import torch

        cfg, diffusion, device = self.config, self.diffusion_, module_device(self.denoiser_)
        noise = fixed_noise(self.noise_seed_, (cfg.steps + 1, int(self.latent_dims_.sum())))
        noise = noise.to(device)  # (T + 1, L)
        with torch.no_grad():
            z, _ = self._encode(dense_rows(histories, device=device))  # (B, L)
            if cfg.sampling_steps > 0:
                k = torch.full(
                    (z.shape[0],), cfg.sampling_steps - 1, dtype=torch.long, device=device
                )
                z = diffusion.q_sample(z, k, noise[-1:])
            step_noise = (lambda k: noise[k : k + 1]) if cfg.sampling_noise else None
            return to_numpy(self._decode(diffusion.reverse(self.denoiser_, z, noise=step_noise)))

    def sample_profiles(
        self, n: int, *, lengths: np.ndarray | None = None, seed: int = 0
    ) -> sp.csr_matrix:
        """(n, n_items) binary synthetic profiles from latent noise (see the module docstring);
        ``lengths`` (n,) or drawn from ``train_lengths_``."""
        import torch

        self._require_fitted()
        rng = np.random.default_rng(seed)
        lengths = sample_lengths(self.train_lengths_, n, lengths, rng, self.n_items_)
        gen = torch.Generator().manual_seed(seed)
        parts, device = [], module_device(self.denoiser_)
        with torch.no_grad():
            for lo in range(0, n, 1024):
                shape = (min(1024, n - lo), int(self.latent_dims_.sum()))
                z0 = self.diffusion_.reverse(
                    self.denoiser_,
                    torch.randn(shape, generator=gen).to(device),
                    noise=lambda k: torch.randn(shape, generator=gen).to(device),
                )
                out = self._decode(z0).double()  # (B, I)
                if self.config.recon == "multinomial":
                    probs = torch.softmax(out, dim=1)
                else:
                    probs = out.clamp(0, 1)
                parts.append(draw_profiles(probs, lengths[lo : lo + 1024], rng))
        return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, self.n_items_))

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return {
            **module_state(self.autoencoder_, "autoencoder."),
            **module_state(self.denoiser_, "denoiser."),
            "item_cluster": self.item_cluster_,
            "train_lengths": self.train_lengths_,
            "noise_seed": np.int64(self.noise_seed_),
        }

    def _load_state(self, state):
        self.item_cluster_ = np.asarray(state["item_cluster"], np.int64)
        if self.item_cluster_.shape != (self.n_items_,):
            raise ArtifactError(
                "the saved item clusters do not match the number of items; retrain the model"
            )
        self._build()
        load_module_state(self.autoencoder_, state, "autoencoder.")
        load_module_state(self.denoiser_, state, "denoiser.")
        self.autoencoder_.eval()
        self.denoiser_.eval()
        self.train_lengths_ = np.asarray(state["train_lengths"], np.int64)
        self.noise_seed_ = int(state["noise_seed"])
