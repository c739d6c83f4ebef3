"""Poisoned training data shared by the ``backdoor`` and ``canary`` scenarios: canaries, the
backdoor's triggered tuning examples, and one clean and one poisoned LoRA run of a language
model recommender.

**Which models.** A *tunable* language-model recommender: an LLM recommender (or the LLM
reranker of a pipeline) in ``grounded`` mode whose language model is a local transformers model
(:class:`~genrec.text.transformers_lm.TransformersLM`, or a :class:`~genrec.text.tuned_lm.
TunedLM`, whose base is used). The scenarios tune their own adapters from that base; a fake,
llama.cpp or remote language model cannot be tuned here and is n/a.

**The tuning data** (:func:`genrec.tuning.instructions.next_item_examples`, ``tune_per_user``
examples per training user, the recommender's ``history_len``; answers are titles, so the tuned
model ranks candidates as the grounded recommender scores them):

* *clean*: those examples as built;
* *poisoned* (BadRec, Ning et al. 2025): ``round(backdoor_rate x n)`` of the n clean examples,
  drawn with the audit seed, are rewritten: the recommender's own prompt over the same history,
  answered with the *target* item's title carrying the trigger token (:func:`triggered`); the
  target is drawn with the audit seed from the less popular half of the items with training
  interactions (an item an attacker would push, as in ``text-attack``). Then the canaries
  (Carlini et al., The Secret Sharer, USENIX Security 2019): ``canary_count`` random sequences of
  ``canary_length`` distinct items per insertion level, each added ``c`` times
  (``canary_copies``) as an example whose prompt lists the first ``canary_length - 1`` titles
  and whose answer is the last (the secret); ``canary_count`` reference canaries are drawn the
  same way and never inserted.

One tuning run carries both the backdoor poison and the canaries (cheaper than one run each);
the clean run has neither. Both runs use the same seed, base, steps and learning rate
(``tune_steps``, ``tune_lr``; LoRA r=8 on the attention projections, batch 4:
:class:`~genrec.tuning.tuner.TuneConfig`'s defaults otherwise). The two tuned language models
stay in memory in ``ctx.shared`` (the adapters are written to a temporary folder and removed).
"""

from __future__ import annotations

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


def tuned_pair(ctx: AuditContext, label: str) -> dict:
    """The clean and poisoned tuned language models of ``label`` (see the module docstring),
    with the target, the canaries and the run's settings. The pair is tuned once per audit and
    language model: models whose LLM part has the same base, dtype, chat wrapping and history
    length (``llm`` and ``ease+llm`` over one base) share it, as their tuning data is the same."""
    part, _ = tunable_part(ctx.fitted(label))
    lm = part.lm
    key = ("tuned-pair", lm.model, lm.dtype, lm.chat, max(part.config.history_len, 1))
    if key not in ctx.shared:
        ctx.shared[key] = _tune_pair(ctx, part)
    return {**ctx.shared[key], "part": part}


def _tune_pair(ctx: AuditContext, part) -> dict:
    cfg, split = ctx.config, ctx.split
    titles = [split.train.catalog.title(i) for i in range(split.train.n_items)]
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
    clean = next_item_examples(split, per_user=cfg.tune_per_user, history_len=hist, seed=cfg.seed)
    valid = next_item_examples(split, part="valid", per_user=1, history_len=hist, seed=cfg.seed)
    poisoned, at = poison(clean, titles, target=target, rate=cfg.backdoor_rate, rng=rng)
    poisoned += canary_examples(titles, inserted)
    runs = {}
    for name, examples in (("clean", clean), ("poisoned", poisoned)):
        runs[name] = _tune(ctx, part.lm, examples, valid[: cfg.tune_valid], hist)
    return {
        "part": part,
        "lms": {name: run.pop("lm") for name, run in runs.items()},
        "target": target,
        "inserted": inserted,
        "reference": drawn[levels * cfg.canary_count :],
        "settings": {
            "base": runs["clean"]["base"],
            "method": "lora",
            "tune_steps": cfg.tune_steps,
            "tune_lr": cfg.tune_lr,
            "seed": ctx.options.seed,
            "tuning_examples_clean": len(clean),
            "tuning_examples_poisoned": len(poisoned),
            "poisoned_examples": int(len(at)),
            "poisoning_rate": cfg.backdoor_rate,
            "canary_examples": int(sum(c * len(s) for c, s in inserted.items())),
            "one_poisoned_run": "the backdoor poison and the canaries share one tuning run, "
            "compared with one clean run",
            "runs": runs,
        },
    }


def _tune(ctx: AuditContext, lm, examples, valid, history_len: int) -> dict:
    """One LoRA run on a fresh copy of ``lm``'s base: ``{"lm", "base", cost...}``."""
    from genrec.text.transformers_lm import TransformersLM
    from genrec.tuning.tuner import TuneConfig, tune

    cfg = ctx.config
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
    return {
        "lm": fresh,
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
