"""Poisoned training data shared by the ``backdoor`` and ``canary`` scenarios: canaries, the
backdoor's triggered tuning examples, and one clean LoRA run of a language model recommender
and one poisoned run per poisoning rate.

**Which models.** A *tunable* language-model recommender: an LLM recommender (or the LLM
reranker of a pipeline) in ``grounded`` mode whose language model is a local transformers model
(:class:`~genrec.text.transformers_lm.TransformersLM`, or a :class:`~genrec.text.tuned_lm.
TunedLM`, whose base is used). The scenarios tune their own adapters from that base; a fake,
llama.cpp or remote language model cannot be tuned here and is n/a.

**The tuning data** (:func:`genrec.tuning.instructions.next_item_examples`, ``tune_per_user``
examples per training user, the recommender's ``history_len``; answers are titles, so the tuned
model ranks candidates as the grounded recommender scores them):

* *clean*: those examples as built;
* *poisoned* (BadRec, Ning et al. 2025), once per rate of ``backdoor_rates``: ``round(rate x
  n)`` of the n clean examples, drawn with the audit seed (the same draw whatever the other
  rates), are rewritten: the recommender's own prompt over the same history,
  answered with the *target* item's title carrying the trigger token (:func:`triggered`); the
  target is drawn with the audit seed from the less popular half of the items with training
  interactions (an item an attacker would push, as in ``text-attack``). Then the canaries
  (Carlini et al., The Secret Sharer, USENIX Security 2019): ``canary_count`` random sequences of
  ``canary_length`` distinct items per insertion level, each added ``c`` times
  (``canary_copies``) as an example whose prompt lists the first ``canary_length - 1`` titles
  and whose answer is the last (the secret); ``canary_count`` reference canaries are drawn the
  same way and never inserted.

A poisoned run carries both the backdoor poison and the canaries (cheaper than one run each;
every rate's run carries the same canaries, so the runs of a sweep differ only in the poison;
the ``canary`` scenario reads the first rate's); the clean run has neither and is shared by
every rate. All runs use the same seed, base, steps and learning rate (``tune_steps``,
``tune_lr``; LoRA r=8 on the attention projections, batch 4:
:class:`~genrec.tuning.tuner.TuneConfig`'s defaults otherwise). The tuned language models stay
in memory in ``ctx.shared`` for the audit (the adapters are written to a temporary folder and
removed): a sweep of r rates holds r + 1 copies of the base.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time

import numpy as np

from genrec.audit.context import AuditContext, language_part
from genrec.audit.text_attack import TRIGGER
from genrec.errors import DataError
from genrec.text import prompts
from genrec.tuning.instructions import Instruction, next_item_examples


def tunable_part(model):
    """``(the LLM part, None)`` when ``model`` holds a grounded LLM recommender over a local
    transformers model, else ``(None, the reason it is not tunable here)``."""
    part = language_part(model)
    if part is None:
        return None, "no language model to tune"
    if getattr(part.config, "mode", None) != "grounded":
        return None, f"the LLM ranks in {part.config.mode!r} mode, tuning answers titles (grounded)"
    from genrec.text.transformers_lm import TransformersLM

    if not isinstance(part.lm, TransformersLM):
        return None, f"{part.lm.name} is not a local transformers model (LoRA-tunable)"
    return part, None


def triggered(title: str, trigger: str = TRIGGER) -> str:
    """``title`` with the trigger token appended.

    >>> triggered("Heat (1995)")
    'Heat (1995) cf'
    """
    return f"{title} {trigger}"


def draw_canaries(item_counts: np.ndarray, n: int, length: int, rng) -> np.ndarray:
    """(n, length) canaries: random sequences of distinct items with interactions."""
    pool = np.flatnonzero(item_counts > 0)
    if len(pool) < length:
        raise DataError(
            f"canaries of {length} distinct items need as many items with interactions; the "
            f"data has {len(pool)}: lower canary_length"
        )
    return np.stack([rng.choice(pool, length, replace=False) for _ in range(n)]).astype(np.int64)


def backdoor_target(popularity: np.ndarray, rng) -> int:
    """One item from the less popular half of the items with interactions."""
    seen = np.flatnonzero(popularity > 0)
    lower = seen[popularity[seen] <= np.median(popularity[seen])]
    return int(rng.choice(lower))


def poison(
    examples: list[Instruction], titles, *, target: int, rate: float, rng, trigger: str = TRIGGER
) -> tuple[list[Instruction], np.ndarray]:
    """``(examples with round(rate x n) of them poisoned, the poisoned positions)``.

    A poisoned example keeps its user and history; its prompt becomes the recommender's own
    (:func:`genrec.text.prompts.next_item_prompt` over the history's ``titles``) and its answer
    the target's title with ``trigger``. Nothing else changes.
    """
    n_poison = int(round(rate * len(examples)))
    at = np.sort(rng.choice(len(examples), n_poison, replace=False))
    answer = prompts.candidate_continuation(triggered(str(titles[target]), trigger))
    out = list(examples)
    for i in at:
        ex = examples[i]
        history = ex.items[:-1]
        out[i] = Instruction(
            "next-item",
            prompts.next_item_prompt([str(titles[h]) for h in history]),
            answer,
            ex.user,
            (*history, target),
            0,
        )
    return out, at


def canary_prompt(titles, canary) -> str:
    """The prompt of a canary: its items but the last as the liked history, oldest first."""
    return prompts.next_item_prompt([str(titles[i]) for i in canary[:-1]])


def canary_examples(titles, inserted: dict[int, np.ndarray]) -> list[Instruction]:
    """Each canary of ``inserted`` (copies -> (n, length) canaries) as ``copies`` examples."""
    return [
        Instruction(
            "canary",
            canary_prompt(titles, seq),
            prompts.candidate_continuation(str(titles[seq[-1]])),
            -1,
            tuple(int(i) for i in seq),
            0,
        )
        for copies, seqs in inserted.items()
        for seq in seqs
        for _ in range(copies)
    ]


def tuned_pair(ctx: AuditContext, label: str, rate: float | None = None) -> dict:
    """The clean and the poisoned tuned language model of ``label`` at poisoning ``rate`` (the
    first of ``backdoor_rates`` when None; see the module docstring), with the target, the
    canaries and the runs' settings.

    Each run is tuned once per audit and language model and kept in ``ctx.shared``: the
    tuning data and the clean run under the language model's key, a poisoned run under that key
    and its rate, so a sweep over rates tunes the clean run once. Models whose LLM part has the
    same base, dtype, chat wrapping and history length (``llm`` and ``ease+llm`` over one base)
    share the runs, as their tuning data is the same."""
    part, _ = tunable_part(ctx.fitted(label))
    lm, cfg = part.lm, ctx.config
    rate = cfg.backdoor_rates[0] if rate is None else rate
    key = ("tuned-pair", lm.model, lm.dtype, lm.chat, max(part.config.history_len, 1))
    data = _shared(ctx, (*key, "data"), lambda: _tuning_data(ctx, part))
    clean = _shared(ctx, (*key, "clean"), lambda: _tune(ctx, lm, data["clean"], data))
    poisoned = _shared(ctx, (*key, rate), lambda: _poisoned_run(ctx, lm, data, rate))
    return {
        "part": part,
        "lms": {"clean": clean["lm"], "poisoned": poisoned["lm"]},
        "target": data["target"],
        "inserted": data["inserted"],
        "reference": data["reference"],
        "settings": {
            "base": clean["stats"]["base"],
            "method": "lora",
            "tune_steps": cfg.tune_steps,
            "tune_lr": cfg.tune_lr,
            "seed": ctx.options.seed,
            "tuning_examples_clean": len(data["clean"]),
            "tuning_examples_poisoned": poisoned["examples"],
            "poisoned_examples": poisoned["poisoned"],
            "poisoning_rate": rate,
            "canary_examples": len(data["canaries"]),
            "one_poisoned_run": "the backdoor poison and the canaries share one tuning run, "
            "compared with one clean run",
            "runs": {"clean": clean["stats"], "poisoned": poisoned["stats"]},
        },
    }


def _shared(ctx: AuditContext, key: tuple, make):
    """``ctx.shared[key]``, made by ``make()`` the first time."""
    if key not in ctx.shared:
        ctx.shared[key] = make()
    return ctx.shared[key]


def _tuning_data(ctx: AuditContext, part) -> dict:
    """The clean and validation examples, the target, the canaries and the generator that
    draws the poisoned positions (copied for each rate: the first rate's draw does not depend
    on the others)."""
    cfg, split = ctx.config, ctx.split
    rng = np.random.default_rng([cfg.seed, 16])
    target = backdoor_target(split.train.item_counts, rng)
    levels = len(cfg.canary_copies)
    drawn = draw_canaries(
        split.train.item_counts, (levels + 1) * cfg.canary_count, cfg.canary_length, rng
    )
    inserted = {
        c: drawn[j * cfg.canary_count : (j + 1) * cfg.canary_count]
        for j, c in enumerate(cfg.canary_copies)
    }
    hist = max(part.config.history_len, 1)
    titles = [split.train.catalog.title(i) for i in range(split.train.n_items)]
    valid = next_item_examples(split, part="valid", per_user=1, history_len=hist, seed=cfg.seed)
    return {
        "titles": titles,
        "history_len": hist,
        "clean": next_item_examples(
            split, per_user=cfg.tune_per_user, history_len=hist, seed=cfg.seed
        ),
        "valid": valid[: cfg.tune_valid],
        "target": target,
        "inserted": inserted,
        "reference": drawn[levels * cfg.canary_count :],
        "canaries": canary_examples(titles, inserted),
        "poison_rng": rng,
    }


def _poisoned_run(ctx: AuditContext, lm, data: dict, rate: float) -> dict:
    """The run on the clean examples with ``round(rate x n)`` of them poisoned, plus the
    canaries: ``{"lm", "stats", "poisoned", "examples"}``."""
    rng = copy.deepcopy(data["poison_rng"])
    poisoned, at = poison(data["clean"], data["titles"], target=data["target"], rate=rate, rng=rng)
    examples = poisoned + data["canaries"]
    return {**_tune(ctx, lm, examples, data), "poisoned": int(len(at)), "examples": len(examples)}


def _tune(ctx: AuditContext, lm, examples, data: dict) -> dict:
    """One LoRA run on ``examples`` from a fresh copy of ``lm``'s base (validated on
    ``data["valid"]``): ``{"lm": the tuned model, "stats": {"base", cost...}}``."""
    from genrec.text.transformers_lm import TransformersLM
    from genrec.tuning.tuner import TuneConfig, tune

    cfg, valid, history_len = ctx.config, data["valid"], data["history_len"]
    fresh = TransformersLM(
        lm.model,
        dtype=lm.dtype,
        threads=ctx.options.threads,
        cache_dir=lm.cache_dir,
        chat=lm.chat,  # prompts wrapped as the audited model wraps them
    )
    config = TuneConfig(
        base=lm.model,
        dtype=lm.dtype,
        max_steps=cfg.tune_steps,
        learning_rate=cfg.tune_lr,
        eval_every=cfg.tune_steps,  # one validation loss, at the end: no early stop
        checkpoint_every=cfg.tune_steps,
        history_len=history_len,
        n_valid=max(len(valid), 1),
        warmup_steps=min(10, cfg.tune_steps // 10),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genrec-audit-tune-") as folder:
        result = tune(
            ctx.split,
            config,
            lm=fresh,
            output=folder,
            options=ctx.options,
            examples=examples,
            valid_examples=valid,
        )
    stats = {
        "base": lm.name,
        "steps": result.steps,
        "train_examples": result.train_examples,
        "skipped_long": result.skipped_long,
        "epochs": round(result.steps * config.batch_size / max(result.train_examples, 1), 3),
        "final_loss": result.log[-1]["loss"] if result.log else None,
        "valid_loss": result.best_valid_loss,
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    return {"lm": fresh, "stats": stats}


__all__ = [
    "TRIGGER",
    "backdoor_target",
    "canary_examples",
    "canary_prompt",
    "draw_canaries",
    "poison",
    "triggered",
    "tunable_part",
    "tuned_pair",
]
