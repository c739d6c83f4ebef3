"""Multimodal Mult-VAE: Mult-VAE over interactions whose item side is read from item content.

Method: Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW
2018; :mod:`genrec.models.interactions.multvae`), with the decoder's last layer written as
item embeddings and those embeddings made of an ID part plus a projection of the item's image
and text vectors, in the spirit of the content-aware decoders of multimodal VAEs. With c_i the
item's content embedding and w_i its learned ID embedding (each ``dim + 1`` wide: the last
column is the item bias), for a user code g (B, dim) from the decoder::

    c_i    = (m_img A z_i + m_txt B x_i) / max(1, m_img + m_txt)      (A, B: linear projections)
    e_i    = [i trained] w_i + c_i
    logit  = g e_i[:dim] + e_i[dim]

z_i and x_i are the item's centred unit image and text vectors (:mod:`genrec.multimodal.
features`), m_img and m_txt (0 or 1) whether the item has them. A missing modality falls back to
the other one (mask-and-fallback; :meth:`MultimodalVAE.modality_counts` counts such items); an
item with neither has no content. Items without training interactions ("cold" items) have no ID
part: they are ranked by their content alone, which is how held-out items get scores.

The encoder sees the L2-normalised history (trained items' columns) and, beside it, the user's
content profile ``normalise(x) C`` (the history's mean content embedding, cold items included),
so a history that holds cold items still says something through their content. Training is
Mult-VAE's annealed ELBO (:func:`~genrec.models.interactions.multvae.annealed_beta`,
:func:`~genrec.models.interactions.multvae.gaussian_kl`).

Deviations, all deliberate:

* the multinomial likelihood runs over the trained items only: a cold item is never a
  negative during training (otherwise every user would push down the content of the cold items
  they would like);
* ID dropout (``id_dropout``; DropoutNet, Volkovs et al., NeurIPS 2017): at each step the ID part
  of each item is dropped with this probability, so the content projections must carry the
  score on their own, as they will for cold items;
* modality dropout (``modality_dropout``): at each step the image of each item that also has a
  text is hidden with this probability, so the text projection learns to stand in for a missing
  image;
* ``modalities="text"`` reads no images (the text-only mode for datasets without them);
  ``"image"`` reads no text;
* early stopping on validation NDCG@10 (as genrec's Mult-VAE).

Example:
    >>> import tempfile
    >>> from genrec.data.synthetic_multimodal import multimodal_world
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48)
    >>> model = MultimodalVAE(image_encoder="pixels-8", image_cache="off", text_encoder="hashing",
    ...                       text_cache="off", latent_dim=8, max_epochs=3).fit(world.split.train)
    >>> model.score(world.split.train.user_items[:2]).shape
    (2, 48)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.models.base import ModelConfig, Recommender
from genrec.models.interactions.multdae import (
    check_training_fields,
    l2_penalty,
    mlp,
    multinomial_nll,
    normalised_dropout,
    trained_rows,
)
from genrec.models.interactions.multvae import annealed_beta, check_vae_fields, gaussian_kl
from genrec.models.multimodal.mmdense import MODALITIES, centred
from genrec.models.neural import (
    DataParallel,
    MixedPrecision,
    dense_rows,
    fit_epochs,
    load_module_state,
    module_device,
    module_state,
    seeded,
    to_numpy,
    torch_device,
)
from genrec.multimodal.features import (
    Modalities,
    check_image_fields,
    image_vectors,
    text_vectors,
)
from genrec.text.items import check_text_fields


@dataclass(frozen=True)
class MultimodalVAEConfig(ModelConfig):
    """Hyper-parameters of :class:`MultimodalVAE` (the Mult-VAE fields mean what they mean in
    :class:`~genrec.models.interactions.multvae.MultVAEConfig`, with its defaults)."""

    modalities: str = "both"  # item content: "both", "text" (no images read) or "image"
    id_dropout: float = 0.5  # probability of dropping an item's ID part at a training step
    modality_dropout: float = 0.2  # probability of hiding an item's image (when it has text)
    hidden_dims: tuple[int, ...] = ()  # encoder widths between the items and the latent code
    latent_dim: int = 200  # dimension of z; the decoder mirrors the encoder
    dropout: float = 0.5  # probability of dropping each input entry (after L2 normalisation)
    beta_max: float = 0.3  # the KL weight's cap
    anneal_steps: int = 200  # beta = min(beta_max, step / anneal_steps); 0: beta_max at once
    reg: float = 0.0  # L2 penalty lambda on the weight matrices: loss += reg * sum W^2
    lr: float = 3e-3  # Adam learning rate
    batch_size: int = 256  # users per Adam step
    max_epochs: int = 500  # epochs at most
    patience: int = 20  # evaluations without a better valid NDCG@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations (only when valid is given)
    image_encoder: str = "efficientnet"  # "efficientnet", "pixels", "pixels-N" or a CLIP folder
    image_cache: str = "default"  # image feature cache: "default", "off" or a folder
    text_encoder: str = "minilm"  # item text encoder: "minilm", "hashing" or a folder
    text_template: str = ""  # item text template; "" = the catalog's text fields
    text_cache: str = "default"  # text embedding cache: "default", "off" or a folder

    def __post_init__(self):
        check_vae_fields(self)
        check_training_fields(self)
        check_content_fields(self)


# ---- item content, shared with mmdiffrec --------------------------------------------------------
def check_content_fields(cfg) -> None:
    """ConfigError for bad ``modalities`` / ``id_dropout`` / ``modality_dropout`` and encoder
    fields (the content side of mmvae and mmdiffrec)."""
    cfg.check(cfg.modalities in MODALITIES, "modalities", f"one of {', '.join(MODALITIES)}")
    cfg.check(0 <= cfg.id_dropout < 1, "id_dropout", "a probability in [0, 1)")
    cfg.check(0 <= cfg.modality_dropout < 1, "modality_dropout", "a probability in [0, 1)")
    check_image_fields(cfg)
    check_text_fields(cfg)


def content_vectors(model: Recommender, train) -> Modalities:
    """The items' centred unit image and text vectors, zero rows where missing, as the model's
    ``modalities`` asks: ``"text"`` reads no image (width 0), ``"image"`` no text.

    Raises:
        DataError: the model needs images and the dataset has none (the message says how to
            load them), or it needs text and no item has any.
    """
    c, n = model.config, train.n_items
    none = (np.zeros((n, 0), np.float32), np.zeros(n, bool))
    image, text = none, none
    if c.modalities != "text":
        vectors, present = image_vectors(
            train, encoder=c.image_encoder, cache=c.image_cache, model=model.name
        )
        image = centred(vectors, present)[0], present
    if c.modalities != "image":
        vectors, present = text_vectors(
            train,
            encoder=c.text_encoder,
            template=c.text_template,
            cache=c.text_cache,
            model=model.name,
        )
        text = centred(vectors, present)[0], present
    return Modalities(image[0], image[1], text[0], text[1])


def item_tower(content: Modalities, trained: np.ndarray, dim: int):
    """A torch module holding the item side: ``tower(drop_image=0.0, drop_id=0.0) -> (items,
    content)``, both (I, dim + 1) with the bias in the last column.

    ``content`` rows are ``c_i`` (module docstring), ``items`` rows ``[i trained] w_i + c_i``.
    In training mode each item's ID part is dropped with probability ``drop_id`` and the image
    of each item that has a text with probability ``drop_image`` (the text then stands in).
    The item vectors and masks are buffers: they move with the module and are saved with it.
    """
    import torch
    from torch import nn

    class ItemTower(nn.Module):
        def __init__(self):
            super().__init__()
            as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
            self.register_buffer("image", as_t(content.image))  # (I, Dz)
            self.register_buffer("text", as_t(content.text))  # (I, Dx)
            self.register_buffer("image_present", as_t(content.image_present))  # (I,) 0/1
            self.register_buffer("text_present", as_t(content.text_present))  # (I,) 0/1
            self.register_buffer("trained", as_t(trained))  # (I,) 0/1
            ids = torch.empty(len(trained), dim + 1)
            nn.init.xavier_uniform_(ids[:, :dim])
            nn.init.normal_(ids[:, dim], std=1e-3)
            self.ids = nn.Parameter(ids)  # (I, dim + 1) w_i, bias last
            self.project_image = self._projection(content.image.shape[1], dim)
            self.project_text = self._projection(content.text.shape[1], dim)

        @staticmethod
        def _projection(width: int, dim: int):
            if width == 0:
                return None
            linear = nn.Linear(width, dim + 1, bias=False)
            nn.init.xavier_uniform_(linear.weight)
            return linear

        def forward(self, drop_image: float = 0.0, drop_id: float = 0.0):
            m_img, m_txt, keep_id = self.image_present, self.text_present, self.trained
            if self.training and drop_image > 0:
                hide = (torch.rand_like(m_img) < drop_image) * m_txt  # text stands in
                m_img = m_img * (1 - hide)
            if self.training and drop_id > 0:
                keep_id = keep_id * (torch.rand_like(keep_id) >= drop_id)
            content = torch.zeros_like(self.ids)  # (I, dim + 1)
            if self.project_image is not None:
                content = content + m_img[:, None] * self.project_image(self.image)
            if self.project_text is not None:
                content = content + m_txt[:, None] * self.project_text(self.text)
            content = content / (m_img + m_txt).clamp(min=1)[:, None]
            return keep_id[:, None] * self.ids + content, content

    return ItemTower()


def readout(user, items):
    """(B, I) scores ``user e_i[:dim] + e_i[dim]`` of user codes (B, dim) against item
    embeddings (I, dim + 1) whose last column is the bias."""
    return user @ items[:, :-1].T + items[:, -1]


def counts_of(tower) -> dict[str, int]:
    """Items missing each modality, as :meth:`Modalities.counts` (and items scored by content
    alone: ``cold``)."""
    present = lambda t: to_numpy(t).astype(bool)  # noqa: E731
    content = Modalities(
        to_numpy(tower.image),
        present(tower.image_present),
        to_numpy(tower.text),
        present(tower.text_present),
    )
    return {**content.counts(), "cold": int((~present(tower.trained)).sum())}


# ---- the model ----------------------------------------------------------------------------------
class MultimodalVAE(Recommender):
    """Learned attributes: ``net_`` (a ``torch.nn.ModuleDict``: ``encoder`` to ``2 *
    latent_dim`` outputs, mean then log-variance, ``decoder`` to the user code, ``tower`` the
    :func:`item_tower`), ``beta_history_``, ``loss_history_``, ``history_``, ``best_epoch_``,
    ``epochs_run_``."""

    name = "mmvae"
    Config = MultimodalVAEConfig

    def _build(self, content: Modalities, trained: np.ndarray):
        import torch

        cfg = self.config
        dim = cfg.hidden_dims[0] if cfg.hidden_dims else cfg.latent_dim  # item embedding width
        decoder = (
            torch.nn.Sequential(mlp([cfg.latent_dim, *reversed(cfg.hidden_dims)]), torch.nn.Tanh())
            if cfg.hidden_dims
            else torch.nn.Identity()
        )
        n_in = int(trained.sum()) + dim + 1  # trained items' columns + the content profile
        return torch.nn.ModuleDict(
            {
                "encoder": mlp([n_in, *cfg.hidden_dims, 2 * cfg.latent_dim]),
                "decoder": decoder,
                "tower": item_tower(content, trained, dim),
            }
        )

    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        content = content_vectors(self, train)
        trained = train.item_counts > 0
        user_items = trained_rows(train.user_items)
        rng = np.random.default_rng(options.seed)
        device = torch_device(options)
        amp = MixedPrecision(device, precision=options.precision)
        anneal = {"beta_max": cfg.beta_max, "anneal_steps": cfg.anneal_steps}
        with seeded(options.seed):
            self.net_ = net = self._build(content, trained).to(device)
            warm = torch.from_numpy(np.flatnonzero(trained)).to(device)
            weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            dp = DataParallel(net, opt, seed=options.seed, amp=amp)
            self.beta_history_ = []

            def run_epoch(epoch: int) -> float:
                net.train()
                total, count = torch.zeros((), dtype=torch.float64, device=device), 0
                for rows in dp.batches(user_items.shape[0], cfg.batch_size, rng):
                    x = dense_rows(user_items, rows, device=device)  # (B, I)
                    beta = annealed_beta(dp.steps, **anneal)  # steps of every rank alike
                    with amp.autocast():
                        loss = self._loss(x, warm, beta)
                        if cfg.reg:
                            loss = loss + cfg.reg * l2_penalty(weights)
                    dp.step(loss, len(rows))
                    total, count = total + loss.detach() * len(rows), count + len(rows)
                self.beta_history_.append(annealed_beta(dp.steps - 1, **anneal))  # the last step's
                net.eval()
                return dp.mean(total, count)  # read once per epoch

            fit_epochs(self, train, valid, options, run_epoch=run_epoch, module=net)
        net.eval()

    def _encode(self, x, content, warm, dropout: float, training: bool):
        """(mu, logvar), each (B, latent_dim), of the rows x (B, I) and the items' content."""
        import torch

        h = normalised_dropout(x, dropout, training=training)  # (B, I)
        out = self.net_["encoder"](torch.cat([h[:, warm], h @ content], dim=1))
        return out[:, : self.config.latent_dim], out[:, self.config.latent_dim :]

    def _loss(self, x, warm, beta: float):
        """The negative annealed ELBO of the rows x (B, I), the likelihood over trained items."""
        import torch

        cfg = self.config
        items, content = self.net_["tower"](cfg.modality_dropout, cfg.id_dropout)  # (I, d+1)
        mu, logvar = self._encode(x, content, warm, cfg.dropout, training=True)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # eps ~ N(0, I)
        logits = readout(self.net_["decoder"](z), items[warm])  # (B, I_trained)
        return multinomial_nll(logits, x[:, warm]) + beta * gaussian_kl(mu, logvar)

    def _score(self, histories, users):
        import torch

        net = self.net_.eval()
        device = module_device(net)
        with torch.no_grad():
            items, content = net["tower"]()  # (I, d+1) each
            warm = torch.nonzero(net["tower"].trained).ravel()
            x = dense_rows(histories, device=device)  # (B, I)
            mu, _ = self._encode(x, content, warm, 0.0, training=False)
            return to_numpy(readout(net["decoder"](mu), items))  # (B, I)

    def modality_counts(self) -> dict[str, int]:
        """Items missing their image, their text or both, and items without training
        interactions (ranked by content alone)."""
        self._require_fitted()
        return counts_of(self.net_["tower"])

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return module_state(self.net_)

    def _load_state(self, state):
        self.net_ = self._build(stored_content(state, "tower."), stored_trained(state, "tower."))
        load_module_state(self.net_, state)
        self.net_.eval()


def stored_content(state: dict, prefix: str) -> Modalities:
    """The :class:`Modalities` an :func:`item_tower` saved under ``prefix`` (to rebuild it)."""
    return Modalities(
        np.asarray(state[prefix + "image"], np.float32),
        np.asarray(state[prefix + "image_present"]).astype(bool),
        np.asarray(state[prefix + "text"], np.float32),
        np.asarray(state[prefix + "text_present"]).astype(bool),
    )


def stored_trained(state: dict, prefix: str) -> np.ndarray:
    """The trained-items mask an :func:`item_tower` saved under ``prefix``."""
    return np.asarray(state[prefix + "trained"]).astype(bool)
