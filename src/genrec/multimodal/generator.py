"""Personalised image generation: a conditional VAE that draws "the item this user would like".

The survey's virtual try-on direction at the scale of one CPU: a small convolutional
conditional VAE (Sohn, Lee & Yan, "Learning Structured Output Representation using Deep
Conditional Generative Models", NeurIPS 2015) over ``side`` x ``side`` item images, conditioned
on a user's embedding, and the tools to measure what it draws.

* The user's embedding is the mean of the content features of the items in their history
  (``condition_encoder``: ``"pixels-8"`` raw pixels by default, or any image encoder of
  :func:`genrec.multimodal.images.get_image_encoder`). Scoring a history, not a user id, so a
  user who arrived after training gets a picture too.
* Training pairs are (user, item) interactions: the target is the item's image, the condition
  the mean over the user's *other* items (leave-one-out), which is what generation sees: the
  history, never the item to draw. A share ``drop_condition`` of the pairs has the condition
  withheld, so the same network also draws without one (the unconditioned baseline).
* :class:`TraitClassifier` — a small CNN with one head per trait, trained on a dataset's real
  item images and their known traits (``traits.csv`` beside the items, as the procedural world
  writes it), with random shifts as augmentation.
* :func:`evaluate_generation` — for each test user, draw images, classify their traits and
  compare with the traits of the user's held-out items, against the unconditioned generator,
  a popularity baseline (the traits of the most popular training item), chance and the
  classifier on the real held-out image (its ceiling); plus the Fréchet distance between
  generated and real item images in the classifier's feature space.
* :func:`saved_or_trained_generator` — the generator saved in an artifact folder for the data
  (``config.json`` + ``weights.npz``, no pickle), trained and saved first when there is none;
  ``genrec generate-image --dataset DIR --user U --output u.png`` calls it, so only the first
  call trains.

Deviations from the paper: the prior is N(0, I) for every condition (no prior network), the
likelihood a Gaussian with fixed deviation ``pixel_sigma``, and the condition is a vector, not
a partial image.

Example:
    >>> import tempfile
    >>> from genrec.data.synthetic_multimodal import multimodal_world
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48)
    >>> gen = ImageGenerator(GeneratorConfig(epochs=2)).fit(world.split.train)
    >>> gen.generate(world.split.train.user_items[:3], n=2).shape
    (3, 2, 32, 32, 3)
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import Dataset
from genrec.errors import ArtifactDataError, ArtifactError, ConfigError, DataError, NotFittedError
from genrec.io import read_artifact, write_artifact
from genrec.multimodal.features import check_has_images, image_vectors
from genrec.multimodal.images import load_pixels
from genrec.options import RunOptions

GENERATOR_NAME = "image-generator"


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Hyper-parameters of :class:`ImageGenerator` (unknown keys are an error)."""

    side: int = 32  # generated image side in pixels (a multiple of 8)
    latent_dim: int = 16  # size of z
    channels: int = 16  # channels of the first convolution (doubled once)
    condition_encoder: str = "pixels-8"  # item features whose history mean is the condition
    image_cache: str = "off"  # cache of encoded images: 'default', 'off' or a folder
    epochs: int = 80  # passes over the (user, item) pairs
    batch_size: int = 32  # pairs per step
    lr: float = 3e-3  # Adam learning rate
    pixel_sigma: float = 0.2  # deviation of the Gaussian pixel likelihood
    drop_condition: float = 0.1  # share of training pairs with the condition withheld

    def __post_init__(self):
        for field in ("side", "latent_dim", "channels", "epochs", "batch_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"GeneratorConfig.{field} must be a positive integer, got {value!r}"
                )
        if self.side % 8 or not 8 <= self.side <= 128:
            raise ConfigError(
                f"GeneratorConfig.side must be a multiple of 8 in 8..128, got {self.side}"
            )
        for field, low, high in (("lr", 0, 1), ("pixel_sigma", 0, 10), ("drop_condition", 0, 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"GeneratorConfig.{field} must be a number, got {value!r}")
            if not (low < value <= high or (field == "drop_condition" and value == 0)):
                raise ConfigError(
                    f"GeneratorConfig.{field} must be in ({low}, {high}], got {value!r}"
                )
        if not isinstance(self.condition_encoder, str) or not self.condition_encoder.strip():
            raise ConfigError("GeneratorConfig.condition_encoder must name an image encoder")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GeneratorConfig:
        """From a mapping; ConfigError naming the allowed keys on an unknown one."""
        values = dict(values or {})
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown generator config key(s) {unknown}; allowed keys: {allowed}")
        kinds = {f.name: type(getattr(cls(), f.name)) for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: kinds[k](v) if isinstance(v, str) else v for k, v in values.items()})
        except ConfigError:
            raise
        except ValueError as exc:  # a string that is not a number
            raise ConfigError(
                f"bad generator config value ({exc}); allowed keys: {allowed}"
            ) from None


# ---- the network ---------------------------------------------------------------------------
def _network(config: GeneratorConfig, condition_dim: int):
    """The encoder q(z | x, c) and decoder p(x | z, c) in one torch module."""
    import torch
    from torch import nn

    c1, c2, low = config.channels, 2 * config.channels, config.side // 8

    class ConditionalVAE(nn.Module):
        def __init__(self):
            super().__init__()
            # the condition: features (D) plus a 1/0 flag saying whether it is given
            self.condition = nn.Sequential(nn.Linear(condition_dim + 1, 128), nn.ReLU())
            self.encoder = nn.Sequential(
                nn.Conv2d(3, c1, 4, 2, 1), nn.ReLU(),  # (B, c1, S/2, S/2)
                nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),  # (B, c2, S/4, S/4)
                nn.Conv2d(c2, c2, 4, 2, 1), nn.ReLU(),  # (B, c2, S/8, S/8)
                nn.Flatten(),
            )  # fmt: skip
            self.posterior = nn.Linear(c2 * low * low + 128, 2 * config.latent_dim)
            self.expand = nn.Sequential(
                nn.Linear(config.latent_dim + 128, c2 * low * low), nn.ReLU()
            )
            self.decoder = nn.Sequential(
                nn.ConvTranspose2d(c2, c2, 4, 2, 1), nn.ReLU(),  # (B, c2, S/4, S/4)
                nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),  # (B, c1, S/2, S/2)
                nn.ConvTranspose2d(c1, 3, 4, 2, 1), nn.Sigmoid(),  # (B, 3, S, S)
            )  # fmt: skip

        def embed(self, cond, given):  # (B, D), (B,) -> (B, 128)
            return self.condition(torch.cat([cond * given[:, None], given[:, None]], 1))

        def decode(self, z, e):  # (B, L), (B, 128) -> (B, 3, S, S)
            return self.decoder(self.expand(torch.cat([z, e], 1)).view(-1, c2, low, low))

        def forward(self, x, cond, given):
            e = self.embed(cond, given)
            mu, logvar = self.posterior(torch.cat([self.encoder(x), e], 1)).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            return self.decode(z, e), mu, logvar

    return ConditionalVAE()


# ---- the generator ---------------------------------------------------------------------------
class ImageGenerator:
    """A conditional VAE drawing item images for user histories (see the module docstring).

    ``fit(train)`` reads the catalog's ``image`` paths; learned: ``item_features_`` (I, D), the
    per-item condition features, and the network. ``generate(histories, n)`` draws images.
    """

    name = GENERATOR_NAME

    def __init__(self, config: GeneratorConfig | Mapping[str, Any] | None = None):
        if config is None or isinstance(config, Mapping):
            config = GeneratorConfig.from_dict(config)
        self.config = config
        self.net_ = None

    # ---- training ----------------------------------------------------------------------
    def fit(self, train: Dataset, *, options: RunOptions | None = None) -> ImageGenerator:
        """Train on ``train``'s (user, item) pairs whose item has an image; returns self.

        Raises:
            DataError: the catalog has no images, or no user has two items with images.
        """
        import torch

        options = (options or RunOptions()).pinned()
        features, present = image_vectors(
            train, encoder=self.config.condition_encoder, cache=self.config.image_cache,
            model=self.name,
        )  # fmt: skip
        self.item_features_ = np.where(present[:, None], features, 0.0).astype(np.float32)
        self.item_present_ = present
        users, items, conds = self._pairs(train.user_items)
        if len(users) == 0:
            raise DataError(
                f"no user of {train.name!r} has two items with images, so there is no "
                "(history, item) pair to learn from; give a dataset with item images"
            )
        pictures = item_pictures(train, side=self.config.side)  # (I, S, S, 3)
        with options.capped_threads(), torch.random.fork_rng():
            torch.manual_seed(options.seed)
            self.net_ = _network(self.config, features.shape[1])
            self._train(pictures[items], conds, options)
        self.data_fingerprint_ = {"dataset": train.name, "checksum": train.checksum()}
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        return self

    def _pairs(self, user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (user, item) with an image whose user has another item with an image, and the
        leave-one-out condition: the mean features of the user's other items, (P, D)."""
        seen = user_items.tocsr().copy()
        seen.data[:] = 1.0
        seen = seen.multiply(self.item_present_[None, :].astype(np.float32)).tocsr()
        seen.eliminate_zeros()
        sums = np.asarray(seen @ self.item_features_)  # (U, D)
        counts = np.diff(seen.indptr)
        coo = seen.tocoo()
        keep = counts[coo.row] >= 2
        users, items = coo.row[keep], coo.col[keep]
        conds = (sums[users] - self.item_features_[items]) / (counts[users] - 1)[:, None]
        return users, items, conds.astype(np.float32)

    def _train(self, targets: np.ndarray, conds: np.ndarray, options: RunOptions) -> None:
        import torch

        cfg, net = self.config, self.net_
        x_all = torch.from_numpy(targets.transpose(0, 3, 1, 2).copy())  # (P, 3, S, S)
        c_all = torch.from_numpy(conds)
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        generator = torch.Generator().manual_seed(options.seed)
        net.train()
        for _ in options.track(range(cfg.epochs), desc="image generator", unit="epoch"):
            order = torch.randperm(len(x_all), generator=generator)
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                x, c = x_all[idx], c_all[idx]
                given = (torch.rand(len(idx), generator=generator) >= cfg.drop_condition).float()
                recon, mu, logvar = net(x, c, given)
                nll = ((recon - x) ** 2).sum((1, 2, 3)) / (2 * cfg.pixel_sigma**2)
                kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
                loss = (nll + kl).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        net.eval()

    # ---- generation --------------------------------------------------------------------
    def conditions(self, histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """``(conditions (B, D), given (B,))``: the mean features of each history's items with
        images; a history without any is not given (drawn unconditioned)."""
        self._require_fitted()
        if histories.shape[1] != len(self.item_features_):
            raise DataError(
                f"histories have {histories.shape[1]} item columns but the generator was "
                f"trained on {len(self.item_features_)} items; use the data it was trained on"
            )
        seen = sp.csr_matrix(histories, dtype=np.float32, copy=True)
        seen.data[:] = 1.0
        seen = seen.multiply(self.item_present_[None, :].astype(np.float32)).tocsr()
        counts = np.asarray(seen.sum(axis=1)).ravel()
        sums = np.asarray(seen @ self.item_features_)
        conds = sums / np.maximum(counts, 1.0)[:, None]
        return conds.astype(np.float32), (counts > 0).astype(np.float32)

    def generate(
        self,
        histories: sp.csr_matrix,
        *,
        n: int = 1,
        seed: int = 0,
        conditioned: bool = True,
    ) -> np.ndarray:
        """(B, n, S, S, 3) float32 images in [0, 1] for B histories (a (B, n_items) matrix);
        ``conditioned=False`` withholds the histories (the unconditioned generator). Image j of
        every history decodes the same latent draw j of ``seed``, so a history's images do not
        depend on the batch it is in, and two histories differ only by their condition.

        Raises:
            NotFittedError: before ``fit`` or :func:`load_generator`.
            ConfigError: ``n`` is not a positive integer.
        """
        import torch

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive number of images per history, got {n!r}")
        conds, given = self.conditions(histories)
        if not conditioned:
            given = np.zeros_like(given)
        b, cfg = len(conds), self.config
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            c = torch.from_numpy(np.repeat(conds, n, axis=0))  # (B*n, D)
            g = torch.from_numpy(np.repeat(given, n, axis=0))  # (B*n,)
            z = torch.randn(n, cfg.latent_dim).repeat(b, 1)  # (B*n, L): noise j for every row
            images = self.net_.decode(z, self.net_.embed(c, g))  # (B*n, 3, S, S)
        out = images.numpy().transpose(0, 2, 3, 1)  # (B*n, S, S, 3)
        return out.reshape(b, n, cfg.side, cfg.side, 3)

    def _require_fitted(self) -> None:
        if self.net_ is None:
            raise NotFittedError(
                "the image generator is not trained; call fit(train) or load_generator(folder)"
            )

    # ---- persistence -------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``weights.npz`` into ``folder`` as one unit (no pickle)."""
        from genrec import __version__

        self._require_fitted()
        meta = {
            "model": self.name,
            "config": dataclasses.asdict(self.config),
            "genrec": __version__,
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "data": self.data_fingerprint_,
            **dict(metadata or {}),
        }
        state = {f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        state |= {"item_features": self.item_features_, "item_present": self.item_present_}
        return write_artifact(folder, meta, state, what="generator folder")


def load_generator(
    folder: str | os.PathLike, *, expect_data: Dataset | None = None
) -> ImageGenerator:
    """The generator :meth:`ImageGenerator.save` wrote to ``folder``.

    Raises:
        ArtifactError: missing, damaged or mismatched files, or another model's folder.
        ArtifactDataError: ``expect_data`` is not the data it was trained on.
    """
    import torch

    meta, state = read_artifact(
        folder, what="image generator", check=lambda meta: _check_kind(meta, folder)
    )
    if expect_data is not None and meta.get("data", {}).get("checksum") != expect_data.checksum():
        raise ArtifactDataError(
            f"the image generator at {folder} was trained on other data than "
            f"{expect_data.name!r}; delete the folder (or give another) to retrain it"
        )
    try:
        gen = ImageGenerator(GeneratorConfig.from_dict(meta["config"]))
        gen.item_features_ = state.pop("item_features").astype(np.float32)
        gen.item_present_ = state.pop("item_present").astype(bool)
        gen.net_ = _network(gen.config, gen.item_features_.shape[1])
        weights = {k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")}
        gen.net_.load_state_dict(weights)
    except (ConfigError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"{folder} does not hold a valid generator ({exc}); retrain") from None
    gen.net_.eval()
    gen.data_fingerprint_, gen.n_users_, gen.n_items_ = (
        meta["data"],
        meta["n_users"],
        meta["n_items"],
    )
    return gen


def _check_kind(meta: dict, folder) -> None:
    if meta.get("model") != GENERATOR_NAME:
        raise ArtifactError(
            f"{folder} holds a {meta.get('model')!r} artifact, not an image generator; "
            "give another folder"
        )


def saved_or_trained_generator(
    data: Dataset,
    folder: str | os.PathLike,
    *,
    config: GeneratorConfig | Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    notice: Callable[[str], None] = lambda message: None,
) -> ImageGenerator:
    """The generator saved in ``folder`` for ``data``; trained on all of ``data`` and saved
    there first when the folder holds none. A generator of other data is an ArtifactDataError.

    Raises:
        ConfigError: a bad ``config`` (checked before anything is loaded or trained).
    """
    if not isinstance(config, GeneratorConfig):
        config = GeneratorConfig.from_dict(config)
    if (Path(folder) / "config.json").exists():
        return load_generator(folder, expect_data=data)
    check_has_images(data, model=GENERATOR_NAME)
    notice(f"no saved image generator at {folder}; training one on {data.name} now")
    options = (options or RunOptions()).pinned()
    gen = ImageGenerator(config).fit(data, options=options)
    gen.save(folder, metadata={"seed": options.seed, "threads": options.threads})
    return gen


# ---- images in and out -----------------------------------------------------------------------
def item_pictures(data: Dataset, *, side: int) -> np.ndarray:
    """(n_items, side, side, 3) float32 RGB in [0, 1] of the catalog's images (grey for an
    item without one).

    Raises:
        DataError: the catalog has no ``image`` column.
    """
    catalog = data.catalog
    if catalog is None or "image" not in catalog.columns:
        raise DataError(
            f"dataset {data.name!r} has no item images (no 'image' catalog column); load an "
            "item folder with images/ (genrec.data.multimodal.load_item_folder)"
        )
    out = np.full((data.n_items, side, side, 3), 0.5, np.float32)
    for i, path in enumerate(catalog["image"]):
        if isinstance(path, str) and path:
            out[i] = load_pixels(path, size=side)
    return out


def image_grid(images: np.ndarray, *, scale: int = 1):
    """A Pillow image of (n, S, S, 3) images in [0, 1] side by side, each pixel ``scale`` x
    ``scale``."""
    from genrec.errors import require

    image_mod = require("PIL.Image", "multimodal")
    row = np.concatenate(list(np.clip(images, 0.0, 1.0)), axis=1)  # (S, n*S, 3)
    row = np.repeat(np.repeat(row, scale, axis=0), scale, axis=1)
    return image_mod.fromarray((row * 255).round().astype(np.uint8))


def read_traits(folder: str | os.PathLike, data: Dataset) -> dict[str, np.ndarray]:
    """Known item traits from ``folder/traits.csv`` (``item`` plus one column per trait, as the
    procedural world writes it): ``{trait: (n_items,) str}`` in ``data``'s item order.

    Raises:
        DataError: no such file, or an item of ``data`` missing from it.
    """
    file = Path(folder).expanduser() / "traits.csv"
    try:
        with open(file, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(
            f"{file} does not exist; measuring generated images needs known item traits "
            "(columns item,TRAIT...), as `genrec data synth multimodal` writes"
        ) from None
    by_id = {r.get("item"): r for r in rows}
    missing = [i for i in data.items.ids if i not in by_id]
    if missing or not rows:
        raise DataError(f"{file} lacks {len(missing)} item(s), e.g. {missing[:3]}; regenerate it")
    names = [c for c in rows[0] if c != "item"]
    return {t: np.array([by_id[i][t] for i in data.items.ids]) for t in names}


# ---- the trait classifier --------------------------------------------------------------------
class TraitClassifier:
    """A small CNN, one softmax head per trait, trained on real item images with known traits.

    ``fit(images, traits)`` with images (N, S, S, 3) and ``{trait: (N,) str}``; ``predict``
    returns ``{trait: (N,) str}``; ``features`` the (N, 64) penultimate activations.
    """

    def __init__(self, *, steps: int = 300, shift: int = 3, seed: int = 0):
        self.steps, self.shift, self.seed = steps, shift, seed
        self.net_ = None

    def fit(self, images: np.ndarray, traits: Mapping[str, np.ndarray]) -> TraitClassifier:
        import torch
        from torch import nn

        self.values_ = {t: sorted(set(map(str, v))) for t, v in traits.items()}
        codes = {
            t: torch.tensor([self.values_[t].index(str(x)) for x in v]) for t, v in traits.items()
        }
        torch.manual_seed(self.seed)
        self.net_ = nn.ModuleDict({
            "trunk": nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 8, S/2, S/2)
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, S/4, S/4)
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),  # (B, 32, 2, 2)
                nn.Flatten(), nn.Linear(128, 64), nn.ReLU(),  # (B, 64)
            ),
            **{t: nn.Linear(64, len(v)) for t, v in self.values_.items()},
        })  # fmt: skip
        x_all = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())  # (N, 3, S, S)
        optimiser = torch.optim.Adam(self.net_.parameters(), lr=3e-3)
        rng = np.random.default_rng(self.seed)
        self.net_.train()
        for _ in range(self.steps):
            idx = torch.from_numpy(rng.integers(0, len(x_all), 64))
            x = torch.roll(
                x_all[idx],
                tuple(int(s) for s in rng.integers(-self.shift, self.shift + 1, 2)),
                (2, 3),
            )
            h = self.net_["trunk"](x)
            loss = sum(
                nn.functional.cross_entropy(self.net_[t](h), codes[t][idx]) for t in self.values_
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        self.net_.eval()
        return self

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, 64) penultimate activations of images (N, S, S, 3)."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), np.float32))
            return self.net_["trunk"](x).numpy()

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{trait: (N,) str}``, the most likely value of each trait."""
        import torch

        h = torch.from_numpy(self.features(images))
        with torch.no_grad():
            return {
                t: np.array(values)[self.net_[t](h).argmax(1).numpy()]
                for t, values in self.values_.items()
            }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b``:
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    from scipy import linalg

    mu = a.mean(0) - b.mean(0)
    ridge = 1e-6 * np.eye(a.shape[1])  # dead (always zero) features leave a covariance singular
    s_a, s_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = linalg.sqrtm(s_a @ s_b)
    return float(mu @ mu + np.trace(s_a + s_b - 2 * np.real(root)))


# ---- measurement -----------------------------------------------------------------------------
def evaluate_generation(
    generator: ImageGenerator,
    train: Dataset,
    test: Dataset,
    traits: Mapping[str, np.ndarray],
    *,
    samples: int = 4,
    classifier: TraitClassifier | None = None,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Trait accuracy of generated images against each test user's held-out items.

    For every user with a test item, ``samples`` images are drawn from the user's ``train``
    history, classified, and each predicted trait counted right when it equals that trait of
    one of the user's test items. Rows: ``generated``, ``unconditioned`` (the same generator,
    history withheld), ``popularity`` (the traits of the most popular training item), ``chance``
    (1 / number of values) and ``real held-out image`` (the classifier on the test item's own
    image: its ceiling). ``frechet`` holds the distance in the classifier's feature space from
    real item images to generated, unconditioned and (as the floor) other real renders.
    ``classifier`` defaults to a :class:`TraitClassifier` fitted on ``train``'s item images.

    Returns ``{"accuracy": {row: {trait: mean}}, "per_user": {row: {trait: (B,) shares}},
    "frechet": {...}, "users": B, "samples": n}`` (``per_user`` for paired tests; no chance row).
    """
    options = (options or RunOptions()).pinned()
    pictures = item_pictures(train, side=generator.config.side)
    with options.capped_threads():
        if classifier is None:
            classifier = TraitClassifier(seed=options.seed).fit(pictures, traits)
        users = np.unique(test.user_idx)
        truth = test.user_items[users]  # (B, I) held-out items
        histories = train.user_items[users]
        drawn = generator.generate(histories, n=samples, seed=options.seed)
        free = unconditioned_images(generator, len(users), samples, seed=options.seed + 1)
        popular = int(np.argmax(train.item_counts))
        held_out = pictures[_first_items(truth)][:, None]  # (B, 1, S, S, 3)
        per_user = {
            "generated": _accuracy(classifier, drawn, truth, traits),
            "unconditioned": _accuracy(classifier, free, truth, traits),
            "popularity": _accuracy_of(
                {t: np.full((len(users), 1), v[popular]) for t, v in traits.items()}, truth, traits
            ),
            "real held-out image": _accuracy(classifier, held_out, truth, traits),
        }
        rows = {row: {t: float(v.mean()) for t, v in acc.items()} for row, acc in per_user.items()}
        rows["chance"] = {t: 1.0 / len(set(v)) for t, v in traits.items()}
        real = classifier.features(pictures)
        shifted = np.roll(pictures, (2, -2), axis=(1, 2))
        frechet = {
            "generated": frechet_distance(classifier.features(_flat(drawn)), real),
            "unconditioned": frechet_distance(classifier.features(_flat(free)), real),
            "real (shifted renders)": frechet_distance(classifier.features(shifted), real),
        }
    return {
        "accuracy": rows,
        "per_user": per_user,
        "frechet": frechet,
        "users": len(users),
        "samples": samples,
    }


def unconditioned_images(generator: ImageGenerator, b: int, n: int, *, seed: int) -> np.ndarray:
    """(b, n, S, S, 3) images drawn with no history, each from its own latent draw."""
    empty = sp.csr_matrix((1, len(generator.item_features_)), dtype=np.float32)
    images = generator.generate(empty, n=b * n, seed=seed, conditioned=False)  # (1, b*n, ...)
    return images.reshape(b, n, *images.shape[2:])


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(-1, *images.shape[2:])  # (B, n, S, S, 3) -> (B*n, S, S, 3)


def _first_items(truth: sp.csr_matrix) -> np.ndarray:
    return truth.indices[truth.indptr[:-1]]


def _accuracy(classifier, images: np.ndarray, truth, traits) -> dict[str, np.ndarray]:
    b, n = images.shape[:2]
    predicted = classifier.predict(images.reshape(b * n, *images.shape[2:]))
    return _accuracy_of({t: p.reshape(b, n) for t, p in predicted.items()}, truth, traits)


def _accuracy_of(predicted: Mapping[str, np.ndarray], truth: sp.csr_matrix, traits) -> dict:
    """``{trait: (B,)}``: per user, the share of samples whose predicted value is that trait of
    one of the user's held-out items."""
    out = {}
    for t, values in predicted.items():  # values: (B, n)
        out[t] = np.array(
            [
                np.isin(
                    values[u], traits[t][truth.indices[truth.indptr[u] : truth.indptr[u + 1]]]
                ).mean()
                for u in range(len(values))
            ]
        )
    return out


__all__ = [
    "GeneratorConfig",
    "ImageGenerator",
    "TraitClassifier",
    "evaluate_generation",
    "frechet_distance",
    "image_grid",
    "item_pictures",
    "load_generator",
    "read_traits",
    "saved_or_trained_generator",
    "unconditioned_images",
]
