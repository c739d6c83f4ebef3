"""Scenario ``canary``: does a trained model memorise a planted history and give it back?

The canary test of Carlini et al., "The Secret Sharer" (USENIX Security 2019), on interaction
data. ``canary_count`` canaries per insertion level are drawn with the audit seed: each a random
sequence of ``canary_length`` distinct items with training interactions (random, so nothing but
memorisation makes its end predictable). A canary inserted ``c`` times (``canary_copies``) is
``c`` fake users whose training profile is exactly that sequence, in that order, after every
real interaction. ``canary_count`` *reference* canaries are drawn the same way and never
inserted. A fresh copy of the model is fitted once on the training part with all inserted
canaries.

The attack: the model is given a canary's first ``canary_length - 1`` items as a history and
ranks every other item; the *secret* is the canary's last item. With rank r of the secret
among the n items not in the prefix, the **exposure** is ``log2(n) - log2(r)``: 0 when the
secret ranks last, log2(n) when first; a reference canary's expected exposure is about
``log2(n) - log2(n/2) = 1`` bit for a model that has not seen it. ``exposure_gap`` is the mean
exposure of the canaries inserted ``c`` times minus that of the references; ``canary_hit@K``
the share whose secret is in the top K.

**Tuned language models** (a grounded LLM recommender over a local transformers model,
:mod:`genrec.audit.poisoning`): the canaries are planted in the *tuning* data, each inserted
``c`` times as an example whose prompt lists the canary's first ``canary_length - 1`` titles
and whose answer is the last title; the poisoned LoRA run that carries them also carries the
``backdoor`` scenario's poison at the first of ``backdoor_rates`` (one poisoned run, one clean
run, same seed and steps). The
secret is ranked by the tuned model's likelihood of each title after the canary's prompt,
among ``canary_candidates`` items (the secret and items with training interactions outside
the canary, drawn with the audit seed, the same for every adapter), so n = canary_candidates.
``canary_exposure[clean-run,copies=c]`` is the exposure of the same canaries under the clean
adapter (which never saw them): a second reference.

Other models whose ranking is fixed by a language model or item text are n/a (nothing in their
fit reads interaction sequences to memorise). One refit (ID models) or two tuning runs (tuned
language models, shared with ``backdoor``) per model.

Deviation: Carlini et al. estimate a secret's rank among all possible secrets (random digit
strings); here the secret space is the catalogue (ID models: exact rank among all items) or a
sample of it (tuned language models).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genrec.audit.context import AuditContext, reads_text
from genrec.audit.injection import share
from genrec.audit.poisoning import canary_prompt, draw_canaries, tunable_part, tuned_pair
from genrec.audit.results import Definition, Finding, point, summarise
from genrec.audit.shilling import poisoned_split
from genrec.text import prompts

NAME = "canary"
HEADLINE = "exposure_gap[copies=4]"
SOURCE = "Carlini et al. USENIX Security 2019 (The Secret Sharer: canaries and exposure)"
METRICS = {
    "canary_exposure": Definition(
        "log2(n) - log2(r): r the rank of a canary's last item (the secret) among the n items "
        "not in its prefix (tuned LMs: canary_candidates items, by title likelihood) given "
        "the prefix; mean over canaries. [copies=c]: inserted c times; [reference]: never; "
        "[clean-run,...]: under the adapter tuned without them.",
        SOURCE,
        "lower",
    ),
    "exposure_gap": Definition(
        "Mean exposure of the canaries inserted c times minus that of the reference canaries; "
        "0 = no memorisation.",
        SOURCE,
        "lower",
    ),
    "canary_hit": Definition(
        "Share of canaries whose secret ranks in the top K given the prefix; exact "
        "Clopper-Pearson 95% interval.",
        SOURCE + "; extraction by ranking",
        "lower",
    ),
}


def applies(model) -> str | None:
    if reads_text(model) and tunable_part(model)[0] is None:
        return (
            "a language model or item text drives this ranking, and no tunable language model "
            "(grounded LLM over a local transformers model) learns from sequences"
        )
    return None


def exposure(model, canaries: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per canary ``(exposure, rank)`` of its last item given the others as a history."""
    prefix, secret = canaries[:, :-1], canaries[:, -1]
    rows = np.repeat(np.arange(len(canaries)), prefix.shape[1])
    order = np.tile(np.arange(1, prefix.shape[1] + 1, dtype=np.float32), len(canaries))
    histories = sp.csr_matrix((order, (rows, prefix.ravel())), shape=(len(canaries), n_items))
    scores = np.asarray(model.score(histories), np.float64)  # (C, n_items)
    np.put_along_axis(scores, prefix, -np.inf, axis=1)  # the prefix is not a candidate
    mine = scores[np.arange(len(canaries)), secret][:, None]
    rank = 1 + (scores > mine).sum(1) + ((scores == mine).sum(1) - 1) / 2  # ties: the middle
    n = n_items - prefix.shape[1]
    return np.log2(n) - np.log2(rank), rank


def run(ctx: AuditContext, label: str) -> Finding:
    if reads_text(ctx.fresh(label)):
        return _run_tuned(ctx, label)
    cfg, k = ctx.config, ctx.config.k
    planted = _planted(ctx)
    split = planted["split"]
    model = ctx.fresh(label).fit(split.train, valid=split.valid, options=ctx.options)
    n_items = ctx.split.train.n_items
    ref, ref_rank = exposure(model, planted["reference"], n_items)
    measured = {
        f"copies={copies}": exposure(model, canaries, n_items)
        for copies, canaries in planted["inserted"].items()
    }
    metrics = exposure_metrics(measured, (ref, ref_rank), k, cfg.seed)
    settings = {
        **exposure_settings(cfg, measured, ref_rank, n_items - cfg.canary_length + 1),
        "fake_users": planted["fake_users"],
    }
    return Finding(label, NAME, metrics, settings)


def _planted(ctx: AuditContext) -> dict:
    """The split with the canaries inserted and the canaries (shared by every model)."""
    if "canary" not in ctx.shared:
        cfg, train = ctx.config, ctx.split.train
        rng = np.random.default_rng([cfg.seed, 7])
        levels = len(cfg.canary_copies)
        drawn = draw_canaries(
            train.item_counts, (levels + 1) * cfg.canary_count, cfg.canary_length, rng
        )
        inserted = {
            c: drawn[j * cfg.canary_count : (j + 1) * cfg.canary_count]
            for j, c in enumerate(cfg.canary_copies)
        }
        profiles = [seq for c, seqs in inserted.items() for seq in seqs for _ in range(c)]
        ctx.shared["canary"] = {
            "split": poisoned_split(ctx.split, profiles, rng, shuffle=False, prefix="canary"),
            "inserted": inserted,
            "reference": drawn[levels * cfg.canary_count :],
            "fake_users": len(profiles),
        }
    return ctx.shared["canary"]


def lm_exposure(lm, titles, canaries, candidates, *, normalise: str) -> tuple:
    """Per canary ``(exposure, rank)`` of its secret among its ``candidates`` row (secret
    included), scored by ``lm``'s likelihood of each title after :func:`canary_prompt`."""
    exp, ranks = [], []
    for seq, cands in zip(canaries, candidates):  # one LM call per canary
        got = lm.score(
            canary_prompt(titles, seq),
            [prompts.candidate_continuation(str(titles[i])) for i in cands],
        )
        scores = np.asarray(got.mean if normalise == "mean" else got.logprob, np.float64)
        mine = scores[cands == seq[-1]][0]
        rank = 1 + (scores > mine).sum() + ((scores == mine).sum() - 1) / 2
        exp.append(np.log2(len(cands)) - np.log2(rank))
        ranks.append(rank)
    return np.asarray(exp), np.asarray(ranks)


def _candidates(item_counts, canaries, n: int, rng) -> np.ndarray:
    """(C, n) per canary: its secret and n - 1 items with interactions outside the canary."""
    pool = np.flatnonzero(item_counts > 0)
    rows = []
    for seq in canaries:
        others = rng.choice(pool[~np.isin(pool, seq)], n - 1, replace=False)
        rows.append(rng.permutation(np.r_[seq[-1], others]))
    return np.asarray(rows, np.int64)


def _run_tuned(ctx: AuditContext, label: str) -> Finding:
    """Canary exposure of a tuned language model (module docstring)."""
    cfg, k = ctx.config, ctx.config.k
    pair = tuned_pair(ctx, label)
    part, lms = pair["part"], pair["lms"]
    titles = part.titles_
    n = min(
        cfg.canary_candidates, int((ctx.split.train.item_counts > 0).sum()) - cfg.canary_length + 1
    )
    rng = np.random.default_rng([cfg.seed, 18])
    sets = {
        **{f"copies={c}": s for c, s in pair["inserted"].items()},
        "reference": pair["reference"],
    }
    cands = {name: _candidates(ctx.split.train.item_counts, s, n, rng) for name, s in sets.items()}
    norm = part.config.normalise

    def measure(lm, name):
        return lm_exposure(lm, titles, sets[name], cands[name], normalise=norm)

    names = [f"copies={copies}" for copies in pair["inserted"]]
    measured = {name: measure(lms["poisoned"], name) for name in names}
    ref, ref_rank = measure(lms["poisoned"], "reference")
    metrics = exposure_metrics(measured, (ref, ref_rank), k, cfg.seed)
    for name in names:
        clean, _ = measure(lms["clean"], name)
        metrics[f"canary_exposure[clean-run,{name}]"] = summarise(clean, seed=cfg.seed)
    settings = {
        **exposure_settings(cfg, measured, ref_rank, n),
        "candidates": n,
        "planted_in": "tuning examples (prompt: the first canary_length - 1 titles; answer: "
        "the last)",
        **pair["settings"],
    }
    return Finding(label, NAME, metrics, settings)


def exposure_settings(cfg, measured: dict, ref_rank: np.ndarray, candidates: int) -> dict:
    """The settings both canary paths record: the canary plan, the most bits a canary can
    expose among ``candidates`` and the median rank per level (``measured``: {level name:
    (exposures, ranks)}) and of the reference."""
    return {
        "k": cfg.k,
        "canaries_per_level": cfg.canary_count,
        "canary_length": cfg.canary_length,
        "copies": list(cfg.canary_copies),
        "max_exposure_bits": round(float(np.log2(candidates)), 3),
        "median_rank": {
            **{name: float(np.median(rank)) for name, (_, rank) in measured.items()},
            "reference": float(np.median(ref_rank)),
        },
    }


def exposure_metrics(measured: dict, reference: tuple, k: int, seed: int) -> dict:
    """The canary metrics of ``measured`` ({level name: (exposures, ranks)}) beside the
    never-inserted ``reference`` (exposures, ranks): exposure with its interval, its gap to the
    reference's mean and the hit rate at ``k``, per level and for the reference."""
    ref, ref_rank = reference
    metrics = {}
    for name, (exp, rank) in measured.items():
        metrics[f"canary_exposure[{name}]"] = summarise(exp, seed=seed)
        metrics[f"exposure_gap[{name}]"] = point(exp.mean() - ref.mean())
        metrics[f"canary_hit@{k}[{name}]"] = share(rank <= k)
    metrics["canary_exposure[reference]"] = summarise(ref, seed=seed)
    metrics[f"canary_hit@{k}[reference]"] = share(ref_rank <= k)
    return metrics
