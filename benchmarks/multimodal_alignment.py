"""Image-text matching and learned composed queries on the procedural multimodal world
(EfficientNet-Lite0 image features, MiniLM text), on held-out trait combinations.

Writes the ``multimodal-alignment`` section of BENCHMARKS.md and
``benchmarks/results/multimodal_alignment.json``:

1. Held-out trait combinations: a share of the world's 48 (shape, colour, pattern, background)
   combinations is held out (seed 2020) and every item showing one is a held-out item.
2. Image<->text retrieval R@1/5/10 over the held-out items (and over the training items): the
   mmdense LiT projection is trained with the held-out items' images removed from the catalog,
   so neither it nor the ITM head saw a held-out pair; rows: contrastive similarity alone, ITM
   (hard negatives) reranking the contrastive top 16, ITM with uniform negatives (the ablation).
3. Composed queries "like this one, but <colour / shape / pattern>": CIRR-style R@1/5/10/50 with
   the reference removed, the gallery every item; test queries have a held-out reference, the
   learned combiner trains only on triples whose reference and targets are training items. Rows:
   sum, learned combiner, reference image only, text only.

The ITM head and the combiner are trained with seeds 0, 1, 2: the tables show the mean and the
range over the three.

    python benchmarks/multimodal_alignment.py [--render-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.data.dataset import ItemCatalog  # noqa: E402
from genrec.data.multimodal import with_catalog  # noqa: E402
from genrec.data.synthetic_multimodal import N_COMBOS, composed_queries, multimodal_world  # noqa: E402
from genrec.evaluation.composed import composed_recall  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import MultimodalDense  # noqa: E402
from genrec.models.multimodal.combiner import fit_combiner, held_out_triples  # noqa: E402
from genrec.models.multimodal.matching import (  # noqa: E402
    ImageTextMatcher,
    aligned_pairs,
    matching_recall,
)
from genrec.multimodal.features import image_vectors  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.text.items import unit_rows  # noqa: E402

from common import load_average, machine_line, write_section  # noqa: E402

WORLD = {"n_users": 600, "n_items": 480, "seed": 0}
SPLIT_SEED, HELD_OUT_SHARE = 2020, 0.2
SEEDS = (0, 1, 2)
TRAITS = ("colour", "shape", "pattern")
OPTIONS = RunOptions(seed=42, threads=1)
KS_MATCH, KS_COMPOSED = (1, 5, 10), (1, 5, 10, 50)


def held_out_items(world) -> tuple[np.ndarray, int]:
    """(item indices whose trait combination is held out, number of held-out combinations);
    item ``i<n>`` has combination n % 48."""
    rng = np.random.default_rng(SPLIT_SEED)
    combos = rng.permutation(N_COMBOS)[: round(HELD_OUT_SHARE * N_COMBOS)]
    numbers = np.asarray([int(x[1:]) for x in world.data.items.ids])
    return np.flatnonzero(np.isin(numbers % N_COMBOS, combos)), len(combos)


def without_images(data, items: np.ndarray):
    """``data`` with the images of ``items`` (indices) removed from its catalog."""
    columns = dict(data.catalog.columns)
    images = np.array(columns["image"], dtype=object)
    images[items] = None
    columns["image"] = images
    catalog = ItemCatalog(data.catalog.vocab, columns, text_fields=data.catalog.text_fields)
    return with_catalog(data, catalog)


ENCODERS = {"image_encoder": "efficientnet", "text_encoder": "minilm"}
SMOKE = {  # --smoke: a small world, raw pixels and hashed text, short training; writes nothing
    "world": {"n_users": 120, "n_items": 96, "seed": 0},
    "encoders": {"image_encoder": "pixels-16", "text_encoder": "hashing"},
    "matcher": {"epochs": 5},
    "combiner": {"epochs": 5},
}
TRAINING = {"matcher": {}, "combiner": {}}


def mmdense(cache: Path) -> dict:
    return {**ENCODERS, "image_cache": str(cache), "text_cache": str(cache)}


def matching(world, held: np.ndarray, cache: Path) -> dict:
    """Image<->text recall over held-out and training items, with and without ITM."""
    train_items = np.setdiff1d(np.arange(world.data.n_items), held)
    model = MultimodalDense(mmdense(cache)).fit(
        without_images(world.split.train, held), options=OPTIONS
    )
    image, present = image_vectors(
        world.data, encoder=ENCODERS["image_encoder"], cache=str(cache), model="x"
    )
    z_all = np.where(present[:, None], unit_rows(image - model.image_mean_), 0.0)
    p_all = unit_rows(model.text_ @ model.projection_)
    z_train, p_train = aligned_pairs(model, train_items)
    galleries = {"held-out items": (z_all[held], p_all[held]), "training items": (z_train, p_train)}
    out = {
        name: {"contrastive": matching_recall(z, p, None, KS_MATCH)}
        for name, (z, p) in galleries.items()
    }
    for label, hard in (("ITM, hard negatives", True), ("ITM, uniform negatives", False)):
        runs = {name: [] for name in galleries}
        for seed in SEEDS:
            matcher = ImageTextMatcher(TRAINING["matcher"], hard_negatives=hard).fit(
                z_train, p_train, options=RunOptions(seed=seed, threads=1)
            )
            for name, (z, p) in galleries.items():
                runs[name].append(matching_recall(z, p, matcher, KS_MATCH))
        for name in galleries:
            out[name][label] = spread(runs[name])
    out["pairs"] = {"held-out items": len(held), "training items": len(z_train)}
    return out


def spread(runs: list[dict]) -> dict:
    """``{metric: {"mean", "min", "max"}}`` over seeded runs."""
    return {
        k: {
            "mean": float(np.mean([r[k] for r in runs])),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in runs[0]
    }


def composed(world, held: np.ndarray, cache: Path) -> dict:
    """CIRR-style R@K of sum, learned, image-only and text-only composed queries."""
    model = MultimodalDense(mmdense(cache)).fit(world.split.train, options=OPTIONS)
    n = world.data.n_items
    train_items = np.setdiff1d(np.arange(n), held)
    per_trait = {}
    train_all, test_all = ([], [], []), ([], [], [])
    for trait in TRAITS:
        triples = composed_queries(world.traits, trait=trait, per_item=3, seed=0)
        train, test = held_out_triples(*triples, held, n_items=n)
        per_trait[trait] = test
        for whole, part in ((train_all, train), (test_all, test)):
            whole[0].extend(part[0])
            whole[1].extend(part[1])
            whole[2].extend(part[2])
    train_all = (np.asarray(train_all[0], np.int64), train_all[1], train_all[2])
    tests = {"all": (np.asarray(test_all[0], np.int64), *test_all[1:]), **per_trait}
    combiners = [
        fit_combiner(
            model,
            train_all,
            items=train_items,
            config=TRAINING["combiner"],
            options=RunOptions(seed=s, threads=1),
        )
        for s in SEEDS
    ]
    out = {"train_triples": len(train_all[0])}
    for name, (refs, texts, targets) in tests.items():

        def recall(scores, refs=refs, targets=targets):
            return composed_recall(scores, references=refs, targets=targets, ks=KS_COMPOSED)

        out[name] = {
            "queries": len(refs),
            "sum": recall(model.score_composed(refs, texts)),
            "learned": spread(
                [recall(model.score_composed(refs, texts, combiner=c)) for c in combiners]
            ),
            "image only": recall(model.image_[refs] @ model.image_.T),
            "text only": recall(model.text_queries(texts) @ model.image_.T),
        }
    return out


def cell(value) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ({value['min']:.3f}-{value['max']:.3f})"
    return f"{value:.3f}"


def markdown(res: dict) -> str:
    m, c = res["matching"], res["composed"]
    lines = [
        "## Multimodal alignment: image-text matching and learned composed queries",
        "",
        f"Script: `benchmarks/multimodal_alignment.py` ({res['date']}). "
        f"{machine_line(res['versions'], res['loads'])}",
        "",
        f"World: {WORLD['n_users']} users, {WORLD['n_items']} items (seed {WORLD['seed']}); "
        f"{res['held_out_combos']} of the {N_COMBOS} trait combinations held out (seed "
        f"{SPLIT_SEED}): {m['pairs']['held-out items']} held-out items. Image tower "
        "EfficientNet-Lite0 (ImageNet), text tower MiniLM, mmdense's LiT projection trained "
        "without the held-out items' images. ITM head and combiner trained with seeds "
        f"{', '.join(map(str, SEEDS))}: mean (min-max) over the seeds; model seed 42. "
        "Defaults throughout (ITM: MLP width 256, 200 epochs, batches of 64, negatives drawn "
        "with softmax(20 x cosine); combiner: projections 256, width 512, 100 epochs). Run as "
        "`OMP_NUM_THREADS=1 nice -n 10 timeout 3600 python benchmarks/multimodal_alignment.py`.",
        "",
        "Image<->text retrieval (ties count against the match; ITM rows: the contrastive top 16 "
        "reordered by match logit + cosine, as ALBEF evaluates):",
        "",
        "| gallery | scoring | t2i R@1 | t2i R@5 | t2i R@10 | i2t R@1 | i2t R@5 | i2t R@10 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for gallery in ("held-out items", "training items"):
        for scoring, r in m[gallery].items():
            cells = " | ".join(cell(r[f"{d}@{k}"]) for d in ("t2i", "i2t") for k in KS_MATCH)
            lines.append(f"| {gallery} ({m['pairs'][gallery]}) | {scoring} | {cells} |")
    lines += [
        "",
        f"Composed queries, held-out references ({c['train_triples']} training triples with "
        "training references and targets; gallery: every item, reference removed; mmdense's "
        "projection here is aligned on every item's own image-text pair, which holds no "
        "triple):",
        "",
        "| test queries | query | R@1 | R@5 | R@10 | R@50 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("all", *TRAITS):
        for query in ("sum", "learned", "image only", "text only"):
            r = c[name][query]
            cells = " | ".join(cell(r[f"R@{k}"]) for k in KS_COMPOSED)
            lines.append(f"| {name} ({c[name]['queries']}) | {query} | {cells} |")
    return "\n".join(lines + ["", *reading(res)])


def reading(res: dict) -> list[str]:
    """What the tables say, with their numbers."""
    m = res["matching"]
    held, train = m["held-out items"], m["training items"]
    hard, uniform = "ITM, hard negatives", "ITM, uniform negatives"
    c = res["composed"]

    def moves(r, d, k):
        return f"{r['contrastive'][f'{d}@{k}']:.3f} -> {r[hard][f'{d}@{k}']['mean']:.3f}"

    def learned_vs_sum(name, k):
        return f"{c[name]['learned'][f'R@{k}']['mean']:.3f} against {c[name]['sum'][f'R@{k}']:.3f}"

    copies = WORLD["n_items"] // N_COMBOS
    return [
        "Reading:",
        "",
        f"- Held-out items: the ITM head reranking the contrastive top 16 raises text->image "
        f"R@5 {moves(held, 't2i', 5)} and R@10 {moves(held, 't2i', 10)}, image->text R@5 "
        f"{moves(held, 'i2t', 5)} and R@10 {moves(held, 'i2t', 10)}. R@1 stays near zero for "
        f"every scoring (text->image {moves(held, 't2i', 1)}): each combination has {copies} items that differ only in where the shape "
        "sits, many with the same description, and ties count against the match.",
        f"- Training items (the pairs the head was trained on): text->image R@10 "
        f"{moves(train, 't2i', 10)} with hard negatives, {train[uniform]['t2i@10']['mean']:.3f} with "
        "uniform negatives; hard negatives matter there, and on held-out items the two are "
        f"within a few points (text->image R@10 {held[uniform]['t2i@10']['mean']:.3f} uniform).",
        f"- Composed queries with a held-out reference: the learned combiner R@10 "
        f"{learned_vs_sum('all', 10)} for the sum (R@1 {learned_vs_sum('all', 1)}); by the "
        f"changed trait, R@10 colour {learned_vs_sum('colour', 10)}, shape "
        f"{learned_vs_sum('shape', 10)}, pattern {learned_vs_sum('pattern', 10)}. The sum "
        "of a locked EfficientNet feature and one projected word stays near the reference's "
        "own look; the combiner learns to move the named trait and keep the others.",
        "- Not measured: real composed-retrieval data (FashionIQ, CIRR) and CLIP weights are "
        "not reachable offline; a local CLIP folder can replace both towers (README).",
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the BENCHMARKS.md section from benchmarks/results/multimodal_alignment.json",
    )
    p.add_argument("--smoke", action="store_true", help="a quick run that writes nothing")
    args = p.parse_args()
    if args.smoke:
        WORLD.update(SMOKE["world"])
        ENCODERS.update(SMOKE["encoders"])
        TRAINING.update(matcher=SMOKE["matcher"], combiner=SMOKE["combiner"])
    out = ROOT / "benchmarks" / "results" / "multimodal_alignment.json"
    if args.render_only:
        write_section("multimodal-alignment", markdown(json.loads(out.read_text())))
        return
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="genrec-mma-") as tmp:
        world = multimodal_world(Path(tmp) / "world", **WORLD)
        held, n_combos = held_out_items(world)
        cache = Path(tmp) / "cache"
        res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        res["held_out_combos"] = n_combos
        res["matching"] = matching(world, held, cache)
        loads.append(load_average())
        res["composed"] = composed(world, held, cache)
        loads.append(load_average())
    res.update(versions=library_versions(), loads=loads)
    if args.smoke:
        print(markdown(res))
        return
    atomic_write(out, json.dumps(res, indent=1, default=float))
    write_section("multimodal-alignment", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
