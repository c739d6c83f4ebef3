"""Scenario ``shilling``: fake user profiles that push target items (data poisoning by
profile injection), against every model that learns from interactions.

For each attack cell (attack, size, target choice) the training data gets
``round(size * real users)`` fake users; each model is refitted on the poisoned data and
compared with its clean fit on the same real users. Implicit-feedback forms of the classic
attacks (Mobasher et al., "Toward trustworthy recommender systems", TOIT 2007; ARLib and RecAD
implement the same four), each profile = the targets + ``filler`` items, ``filler`` = the mean
training profile length rounded (ARLib's default ``maliciousFeedbackSize = 0``):

* ``random``: filler drawn uniformly from the catalogue;
* ``average``: filler drawn with probability proportional to item popularity (with implicit
  data an item's "average rating" knowledge becomes its popularity);
* ``bandwagon``: the ``select`` most popular items (``select`` = 1% of the items, ARLib's
  ``selectSize``), the rest of the filler uniform;
* ``segment``: ``select`` items of the targets' segment (items sharing a genre with a target,
  most popular first; without genres the items most co-consumed with the targets), the rest
  uniform.

Targets (``n_targets``, ARLib's ``targetSize`` 5) are drawn with the audit seed, the same for
every attack and size that share a target choice: ``random`` from
items with training interactions, ``popular`` from the 10% most popular, ``unpopular`` from the
less popular half of the items with training interactions. Fake interactions get the data's
highest value and timestamps after the training data, in random order within a profile.
Every model faces the same fake profiles (drawn once per cell).

The grid is ``ofat`` (one factor at a time around bandwagon, 1%, random targets: 1 + 3 + 3 + 2
cells with the default lists) or ``full`` (the product). A baseline detector scores each
training profile by its mean cosine similarity to its 10 most similar profiles (DegSim,
Chirita et al. WIDM 2005): fake profiles built from one template resemble each other; its AUC
(fake vs real) is reported per cell.

Models that ask a language model for every scored user (``llm``, and ``ease+llm`` whose LLM
reranks the EASE shortlist) are refitted on the poisoned data like every other model (the
EASE inside the pipeline learns the fake profiles; ``llm`` alone reads the poisoned popularity
that picks its candidates and few-shot examples), but are scored on the audit's
language-model user sample (``lm_users``, :meth:`~genrec.audit.context.AuditContext.lm_sample`,
the sample of the injection and hallucination scenarios) and on the ``lm_shilling_grid``
(default ``base``: the base cell alone); the row's settings say so. Models that learn nothing
from interactions (``dense``, ``bm25``, GPT4Rec, ``hybrid`` without a collaborative part) rank
by item text against the user's own history, which fake users cannot change: n/a.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import scipy.stats

from genrec.audit.context import AuditConfig, AuditContext, asks_lm, learns_from_interactions
from genrec.audit.results import Definition, Finding, point, summarise
from genrec.data.dataset import Dataset, Split
from genrec.data.vocabulary import Vocabulary
from genrec.errors import DataError
from genrec.evaluation.protocol import evaluate
from genrec.evaluation.stats import paired_tests

NAME = "shilling"
HEADLINE = "target_hr_shift@{k}[bandwagon,1%,random]"
SELECT_SHARE = 0.01  # bandwagon / segment: selected items as a share of the catalogue
DETECTOR_NEIGHBOURS = 10
METRICS = {
    "target_hr_clean": Definition(
        "Per genuine user, the share of the target items (those the user has not interacted "
        "with) in the top-K of the clean model: hits / min(K, unseen targets); mean over users. "
        "With K >= targets this is the hit ratio of the targets averaged over targets.",
        "ARLib / RecAD HitRate@K of the target items",
        "lower",
    ),
    "target_hr_attacked": Definition(
        "The same after refitting on the poisoned data.",
        "ARLib / RecAD HitRate@K of the target items",
        "lower",
    ),
    "target_hr_shift": Definition(
        "target_hr_attacked - target_hr_clean per user (paired); the "
        "attack's effect. Interval: bootstrap over users.",
        "genrec",
        "lower",
    ),
    "utility_drop": Definition(
        "NDCG@K of the clean model minus NDCG@K of the attacked model on "
        "the real users' test items (paired; p_value: paired t-test).",
        "clean-utility drop (ANCHORS 3.4)",
        "lower",
    ),
    "detector_auc": Definition(
        "AUC of the DegSim detector separating fake from real training "
        "profiles (mean cosine similarity to the 10 nearest profiles); "
        "0.5 = undetectable, 1 = perfectly detected.",
        "Chirita, Nejdl & Zamfir WIDM 2005 (DegSim)",
        "higher",
    ),
}


def applies(model) -> str | None:
    if not learns_from_interactions(model):
        return (
            "ranks by item text against the user's own history and learns nothing from other "
            "users' interactions, so fake profiles cannot change a genuine user's list"
        )
    return None


def cells(cfg: AuditConfig, grid: str | None = None) -> list[tuple[str, float, str]]:
    """(attack, size, target choice) cells of ``grid`` (default ``cfg.shilling_grid``; ``base``:
    the base cell alone; module docstring)."""
    grid = grid or cfg.shilling_grid
    if grid == "full":
        return list(
            itertools.product(cfg.shilling_attacks, cfg.shilling_sizes, cfg.shilling_targets)
        )
    base = (
        _prefer(cfg.shilling_attacks, "bandwagon"),
        _prefer(cfg.shilling_sizes, 0.01),
        _prefer(cfg.shilling_targets, "random"),
    )
    out = [base]
    if grid == "base":
        return out
    out += [(a, base[1], base[2]) for a in cfg.shilling_attacks if a != base[0]]
    out += [(base[0], s, base[2]) for s in cfg.shilling_sizes if s != base[1]]
    out += [(base[0], base[1], t) for t in cfg.shilling_targets if t != base[2]]
    return out


def _prefer(values, wanted):
    return wanted if wanted in values else values[0]


def cell_name(cell) -> str:
    attack, size, way = cell
    return f"{attack},{size * 100:g}%,{way}"


def choose_targets(item_counts: np.ndarray, way: str, n: int, rng) -> np.ndarray:
    """``n`` target items chosen ``way`` (random / popular / unpopular; module docstring)."""
    warm = np.flatnonzero(item_counts > 0)
    order = warm[np.argsort(-item_counts[warm], kind="stable")]
    pool = {
        "random": warm,
        "popular": order[: max(n, int(np.ceil(0.1 * len(order))))],
        "unpopular": order[len(order) // 2 :],
    }[way]
    return np.sort(rng.choice(pool, min(n, len(pool)), replace=False))


def fake_profiles(
    attack: str,
    n_fake: int,
    targets: np.ndarray,
    train: Dataset,
    rng,
) -> list[np.ndarray]:
    """``n_fake`` item lists: the targets + filler chosen by ``attack`` (module docstring)."""
    n_items = train.n_items
    counts = train.item_counts.astype(np.float64)
    filler = max(1, int(round(train.user_counts[train.user_counts > 0].mean())))
    filler = min(filler, n_items - len(targets))
    select = max(1, int(np.ceil(SELECT_SHARE * n_items)))
    others = np.setdiff1d(np.arange(n_items), targets)
    if attack == "bandwagon":
        chosen = others[np.argsort(-counts[others], kind="stable")][:select]
    elif attack == "segment":
        chosen = _segment(train, targets, others, counts)[:select]
    else:
        chosen = np.empty(0, np.int64)
    rest = np.setdiff1d(others, chosen)
    weights = counts[rest] + 1e-9 if attack == "average" else np.ones(len(rest))
    n_draw = max(0, min(filler - len(chosen), len(rest)))
    return [
        np.concatenate(
            [targets, chosen, rng.choice(rest, n_draw, replace=False, p=weights / weights.sum())]
        )
        for _ in range(n_fake)
    ]


def _segment(train: Dataset, targets, others, counts) -> np.ndarray:
    """Items of the targets' segment, most popular first (module docstring)."""
    catalog = train.catalog
    if catalog is not None and "genres" in catalog:
        genres = catalog.feature_matrix("genres")
        shared = np.asarray((genres[others] @ genres[targets].T).sum(1)).ravel()
    else:
        x = train.user_items
        shared = np.asarray((x[:, others].T @ x[:, targets]).sum(1)).ravel()
    keep = others[shared > 0]
    return keep[np.argsort(-counts[keep], kind="stable")]


def poisoned_split(
    split: Split, profiles: list[np.ndarray], rng, *, shuffle: bool = True, prefix: str = "fake"
) -> Split:
    """The split with fake users (``__<prefix>_j``) appended to the user vocabulary and their
    profiles in train, each in random order (``shuffle``) or in the order given, after every
    real interaction."""
    train = split.train
    n_real = train.n_users
    users = Vocabulary(
        list(train.users.ids) + [f"__{prefix}_{j}" for j in range(len(profiles))], kind="user"
    )
    u = np.repeat(np.arange(n_real, n_real + len(profiles)), [len(p) for p in profiles])
    i = np.concatenate([rng.permutation(p) if shuffle else np.asarray(p) for p in profiles])
    start = (
        int(
            max(
                train.timestamp.max(),
                split.valid.timestamp.max() if len(split.valid) else 0,
                split.test.timestamp.max() if len(split.test) else 0,
            )
        )
        + 1
    )
    fake = Dataset(
        users,
        train.items,
        u,
        i,
        np.full(len(u), train.value.max(), np.float32),
        start + np.arange(len(u)),
        catalog=train.catalog,
        name=train.name,
        positive_threshold=train.positive_threshold,
    )
    moved = [_move(d, users) for d in (train, split.valid, split.test)]
    return Split(
        moved[0].concat(fake), moved[1], moved[2], info={**split.info, "fake_users": len(profiles)}
    )


def _move(data: Dataset, users: Vocabulary) -> Dataset:
    return Dataset(
        users,
        data.items,
        data.user_idx,
        data.item_idx,
        data.value,
        data.timestamp,
        catalog=data.catalog,
        name=data.name,
        positive_threshold=data.positive_threshold,
    )


def detector_auc(train: Dataset, n_fake: int) -> float:
    """AUC of DegSim separating the last ``n_fake`` users (fake) from the others (real)."""
    x = sp.csr_matrix((train.user_items > 0).astype(np.float32))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    x = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x
    sims = (x @ x.T).toarray()  # (U, U) cosine
    np.fill_diagonal(sims, -np.inf)
    k = min(DETECTOR_NEIGHBOURS, sims.shape[0] - 1)
    score = np.sort(sims, axis=1)[:, -k:].mean(1)
    active = np.asarray(x.sum(1)).ravel() > 0
    real, fake = score[:-n_fake][active[:-n_fake]], score[-n_fake:]
    u = scipy.stats.mannwhitneyu(fake, real).statistic
    return float(u / (len(fake) * len(real)))


def run(ctx: AuditContext, label: str) -> Finding:
    cfg, k = ctx.config, ctx.config.k
    lm = asks_lm(ctx.fitted(label))
    users = ctx.lm_sample(ctx.audited_users()) if lm else ctx.evaluation(label).users
    clean_ev = ctx.evaluation_of(label, users)
    grid = cfg.lm_shilling_grid if lm else cfg.shilling_grid
    metrics, settings = {}, {"k": k, "grid": grid, "n_targets": cfg.n_targets}
    settings |= _sample_settings(users, lm, grid)
    settings["cells"] = {}
    history = ctx.split.history("test")
    for cell in cells(cfg, grid):
        attack, size, way = cell
        name = cell_name(cell)
        setup = _attack(ctx, cell)
        clean_hr = _target_hr(clean_ev.top_items[:, :k], history, users, setup["targets"])
        model = ctx.fresh(label).fit(
            setup["split"].train, valid=setup["split"].valid, options=ctx.options
        )
        p_history = setup["split"].history("test")
        attacked = evaluate(
            model, p_history, setup["split"].test, ks=(k,), metrics=("ndcg",), users=users
        )
        attacked_hr = _target_hr(attacked.top_items[:, :k], p_history, users, setup["targets"])
        drop = clean_ev.per_user[f"ndcg@{k}"] - attacked.per_user[f"ndcg@{k}"]
        metrics[f"target_hr@{k}_clean[{name}]"] = summarise(clean_hr, seed=cfg.seed)
        metrics[f"target_hr@{k}_attacked[{name}]"] = summarise(attacked_hr, seed=cfg.seed)
        metrics[f"target_hr_shift@{k}[{name}]"] = summarise(attacked_hr - clean_hr, seed=cfg.seed)
        metrics[f"utility_drop@{k}[{name}]"] = {
            **summarise(drop, seed=cfg.seed),
            "p_value": _p(clean_ev, attacked, k),
        }
        metrics[f"detector_auc[{name}]"] = point(setup["detector_auc"])
        settings["cells"][name] = {
            "attack": attack,
            "fake_share": size,
            "targets_chosen": way,
            "fake_users": setup["n_fake"],
            "filler": setup["filler"],
            "targets": ctx.split.train.items.ids_of(setup["targets"]).tolist(),
        }
    return Finding(label, NAME, metrics, settings)


def _sample_settings(users: np.ndarray, lm: bool, grid: str) -> dict:
    """Which users and cells a row covers, and why (recorded in its settings)."""
    if not lm:
        return {"users": int(len(users))}
    return {
        "users": int(len(users)),
        "user_sample": (
            "the audit's language-model sample (lm_users): every scored user costs a "
            "language-model pass per fit"
        ),
        "grid_reason": (
            f"lm_shilling_grid={grid!r}: each cell costs a refit and a language-model pass "
            "over the sample"
        ),
    }


def _attack(ctx: AuditContext, cell) -> dict:
    """The poisoned split, targets and detector AUC of one cell (shared by every model)."""
    key = ("shilling", cell)
    if key not in ctx.shared:
        attack, size, way = cell
        train = ctx.split.train
        # the same targets for every attack and size with this target choice (comparable cells)
        pick = np.random.default_rng([ctx.config.seed, *map(ord, way)])
        targets = choose_targets(train.item_counts, way, ctx.config.n_targets, pick)
        rng = np.random.default_rng([ctx.config.seed, *map(ord, cell_name(cell))])
        n_fake = max(1, int(round(size * np.count_nonzero(train.user_counts))))
        profiles = fake_profiles(attack, n_fake, targets, train, rng)
        split = poisoned_split(ctx.split, profiles, rng)
        ctx.shared[key] = {
            "split": split,
            "targets": targets,
            "n_fake": n_fake,
            "filler": int(len(profiles[0]) - len(targets)),
            "detector_auc": detector_auc(split.train, n_fake),
        }
    return ctx.shared[key]


def _target_hr(top: np.ndarray, history: Dataset, users, targets) -> np.ndarray:
    """(U,) per user of ``top`` ((U, K) lists of ``users``): targets in the list over
    min(K, targets not in the user's history); NaN when the user has every target."""
    unseen = history.user_items[users][:, targets].toarray() == 0  # (U, T)
    hits = (top[:, :, None] == np.asarray(targets)[None, None, :]).any(1) & unseen
    n = unseen.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hits.sum(1) / np.minimum(top.shape[1], n), np.nan)


def _p(clean, attacked, k: int) -> float:
    try:
        return paired_tests(clean.per_user[f"ndcg@{k}"], attacked.per_user[f"ndcg@{k}"])["p_t"]
    except DataError:  # fewer than two users: no test
        return float("nan")
