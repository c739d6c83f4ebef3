"""Parameter-efficient tuning of a causal LM on instruction examples: LoRA or soft prompts (PEFT).

Methods (Sec. 3.2.2 of the survey):

* ``method="lora"`` — LoRA (Hu et al., ICLR 2022): rank-``r`` updates ``B A`` (scaled by
  ``alpha / r``, dropout ``dropout`` on their input) on the ``target_modules`` projections;
  the base weights stay frozen. As in TALLRec (Bao et al., RecSys 2023).
* ``method="prompt"`` — soft prompt tuning (Lester et al., EMNLP 2021): ``n_virtual_tokens``
  trainable input embeddings before every prompt, initialised from sampled vocabulary
  embeddings (the paper's "sampled vocab" init); nothing else trains.

Training: the loss is the mean cross-entropy of the *answer* tokens only (the prompt's tokens
carry no loss); prompt and answer are tokenised exactly as :class:`~genrec.text.transformers_lm.
TransformersLM` scores a continuation, so training and ranking see the same tokens. Logits are
computed only at answer positions (Gemma's 262k-token vocabulary makes full logits gigabytes).
AdamW, a constant learning rate after ``warmup_steps`` of linear warm-up, ``grad_accum``
micro-batches of ``batch_size`` per optimizer step, gradient clipping at 1. The example order of
step ``s`` depends only on (seed, s), and a checkpoint (adapter weights, optimizer state, step,
torch RNG state, best-so-far weights, the log) is written every ``checkpoint_every`` steps to
``output/checkpoint`` (written aside, then renamed): a resumed run continues exactly where the
interrupted one stopped and ends with the same weights. Every ``eval_every`` steps the mean
answer loss on the validation examples is measured; after ``patience`` evaluations without
improvement training stops, and the best weights are the result. ``time_budget`` seconds of
training (summed over resumed runs) stop it too, after one last validation loss. The adapter is saved with PEFT
(``adapter_model.safetensors`` + ``adapter_config.json``, a few MB for LoRA) beside
``genrec_adapter.json`` naming the base model; :class:`~genrec.text.tuned_lm.TunedLM` loads it.

Distillation (``distill`` > 0, the listwise task over a retriever's shortlists): each example
also carries a teacher's distribution over the letters, the retriever's own ranking of the
shortlist (:func:`~genrec.tuning.instructions.teacher`: a softmax of its standardised scores
at ``teacher_temperature``). The loss is then ``(1 - distill) * CE(target letter) + distill *
KL(teacher || student)``, where the student's distribution is the LM's softmax over the letter
tokens at the answer position (ListNet-style listwise distillation). The validation loss stays
the target's cross-entropy alone, so runs with and without a teacher stop and are compared on
the same measure.

Residual learning (``residual=True``, the listwise task over a retriever's shortlists): the LM
learns only what the retriever's ranking misses. The teacher's log-probabilities are a fixed
prior added to the LM's letter logits, and the loss is the target's cross-entropy under
``softmax(log teacher + LM letter logits)`` (a product of experts, as the pipeline's linear fusion
adds the two standardised scores); the validation loss is the same fused cross-entropy. With
``shuffle_candidates`` the shortlist is listed in a random order, so the letters carry no trace
of the retriever's ranks and the LM must judge the titles.

Deviations: no learning-rate decay; examples longer than ``max_length`` tokens are skipped
(counted in the result), not truncated. The optimizer runs in float32 on float32 adapter
weights over a bfloat16 base model.

Example (tiny random model, no download):
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.text.transformers_lm import TransformersLM, tiny_test_model
    >>> from genrec.tuning.instructions import next_item_examples
    >>> split = planted_clusters(n_users=20, n_items=15, n_clusters=3).split
    >>> lm = TransformersLM.wrap(*tiny_test_model(), threads=1)
    >>> import tempfile
    >>> result = tune(split, TuneConfig(max_steps=2, eval_every=2), lm=lm,
    ...               output=tempfile.mkdtemp())
    >>> result.steps, result.train_examples > 0
    (2, True)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrec.errors import ConfigError, require
from genrec.models.base import ModelConfig
from genrec.options import RunOptions, torch_threads
from genrec.tuning.instructions import BUILDERS, Instruction, build_examples

METHODS = ("lora", "prompt")
NEGATIVES = ("uniform", "retrieved")
DEFAULT_LR = {"lora": 2e-4, "prompt": 3e-2}


@dataclass(frozen=True)
class TuneConfig(ModelConfig):
    """What to tune and how. Defaults: LoRA r=8 on the attention projections (TALLRec tunes
    q/v with r=8), short prompts (5 history titles), batch 4; chosen for CPU budgets, not tuned."""

    base: str = "gemma-3-270m"  # TransformersLM model: shipped name, local folder or .gguf
    dtype: str = "bfloat16"  # base model dtype
    method: str = "lora"  # "lora" or "prompt" (soft prompt tuning)
    task: str = "next-item"  # a task of instructions.BUILDERS, or "mix"
    r: int = 8  # LoRA rank
    alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.05  # LoRA dropout
    target_modules: tuple = ("q_proj", "k_proj", "v_proj", "o_proj")  # LoRA'd projections
    n_virtual_tokens: int = 20  # soft prompt length
    learning_rate: float | None = None  # None: 2e-4 for LoRA, 3e-2 for prompt tuning
    warmup_steps: int = 10  # linear warm-up steps
    batch_size: int = 4  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 200  # optimizer steps at most
    time_budget: float = 0.0  # seconds of training at most, over resumed runs too (0 = no limit)
    eval_every: int = 50  # steps between validation losses (and early-stopping checks)
    patience: int = 3  # evaluations without improvement before stopping
    checkpoint_every: int = 50  # steps between checkpoints
    max_length: int = 256  # longer examples (tokens) are skipped
    per_user: int = 4  # training examples per training user and task
    history_len: int = 5  # history titles per prompt
    n_candidates: int = 10  # candidates listed by the next-item templates that list them
    n_valid: int = 64  # validation examples (from the valid split)
    like_threshold: float = 4.0  # preference task: the next item is a "Yes" when rated >= this
    negatives: str = "uniform"  # "uniform" or "retrieved" (hard negatives from `retriever`)
    retriever: str = "ease"  # model fitted on the training part for retrieved negatives
    n_hard: int = 20  # retrieved negatives come from the retriever's top n_hard items
    folds: int = 0  # >= 2: the retriever is fitted k times, never on the case's user (0: once)
    uniform_share: float = 0.0  # retrieved negatives: this share is drawn uniformly instead
    distill: float = 0.0  # listwise: weight of KL(teacher || LM) in the loss (0 = target only)
    teacher_temperature: float = 1.0  # softmax temperature of the teacher's standardised scores
    residual: bool = False  # listwise: learn the target under softmax(log teacher + LM letters)
    shuffle_candidates: bool = False  # listwise: shortlists in a random order, not the retriever's

    def __post_init__(self):
        self.check(self.method in METHODS, "method", f"one of {METHODS}")
        self.check(self.task in (*BUILDERS, "mix"), "task", f"one of {[*BUILDERS, 'mix']}")
        self.check(self.dtype in ("bfloat16", "float32"), "dtype", "'bfloat16' or 'float32'")
        self.check_positive_ints(
            "r",
            "alpha",
            "n_virtual_tokens",
            "batch_size",
            "grad_accum",
            "max_steps",
            "eval_every",
            "patience",
            "checkpoint_every",
            "max_length",
            "per_user",
            "history_len",
            "n_candidates",
            "n_valid",
            "n_hard",
        )
        self.check(self.negatives in NEGATIVES, "negatives", f"one of {NEGATIVES}")
        self.check(0 <= self.dropout < 1, "dropout", "a number in [0, 1)")
        self.check(self.time_budget >= 0, "time_budget", "seconds >= 0 (0 = no limit)")
        self.check(
            isinstance(self.folds, int) and (self.folds == 0 or self.folds >= 2),
            "folds",
            "0 (one retriever on all training data) or k >= 2 folds",
        )
        self.check(0 <= self.uniform_share <= 1, "uniform_share", "a number in 0..1")
        self.check(
            0 <= self.distill <= 1
            and (not self.distill or (self.task == "listwise" and self.negatives == "retrieved")),
            "distill",
            "a number in 0..1, above 0 only with task='listwise' and negatives='retrieved' "
            "(the teacher ranks the retriever's shortlists)",
        )
        self.check(self.teacher_temperature > 0, "teacher_temperature", "a number > 0")
        self.check(
            isinstance(self.residual, bool)
            and (
                not self.residual
                or (self.task == "listwise" and self.negatives == "retrieved" and not self.distill)
            ),
            "residual",
            "true only with task='listwise', negatives='retrieved' and distill=0 (the retriever's "
            "ranking is the prior the LM adds to), else false",
        )
        self.check(isinstance(self.shuffle_candidates, bool), "shuffle_candidates", "true or false")
        self.check(
            self.learning_rate is None or 0 < self.learning_rate < 1,
            "learning_rate",
            "None or a number in (0, 1)",
        )
        self.check(
            isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
            "warmup_steps",
            "a non-negative integer",
        )
        self.check(
            len(self.target_modules) > 0 and all(isinstance(m, str) for m in self.target_modules),
            "target_modules",
            "module names such as ('q_proj', 'v_proj')",
        )

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LR[self.method]


@dataclass
class TuneResult:
    """What a tuning run did. ``log`` has one entry per logged step (loss, tokens/s, valid loss)."""

    output: Path
    steps: int
    best_step: int | None
    best_valid_loss: float | None
    train_examples: int
    valid_examples: int
    skipped_long: int
    seconds: float
    tokens_per_second: float
    trainable_parameters: int
    stopped_early: bool
    log: list = field(default_factory=list)


# ---- tokenised examples ------------------------------------------------------------------------
def encode(lm, examples: list[Instruction], max_length: int) -> tuple[list[tuple], int]:
    """[(token ids, number of prompt tokens)] as ``lm`` scores the answer after the prompt;
    examples longer than ``max_length`` are dropped (their count is returned too). An example
    with a teacher gets three more entries (:func:`choice_tokens`): the position whose
    next-token logits tell the choices apart, their tokens there, the teacher's probabilities."""
    out, skipped = [], 0
    for ex in examples:
        text = lm.format_prompt(ex.prompt)
        prompt_ids = lm._encode(text)
        ids = prompt_ids + lm.continuation_ids(text, prompt_ids, ex.answer)
        if len(ids) > max_length:
            skipped += 1
        elif ex.teacher:
            out.append((ids, len(prompt_ids), *choice_tokens(lm, text, prompt_ids, ex)))
        else:
            out.append((ids, len(prompt_ids)))
    return out, skipped


def choice_tokens(lm, text: str, prompt_ids: list[int], example: Instruction) -> tuple:
    """(position, (C,) token ids, (C,) teacher probabilities) of a distillation example: the
    choices' continuations must share their first tokens and end in one distinct token each
    (" A", " B", ... do), whose logits at ``position`` are the student's scores of the choices.

    Raises:
        ConfigError: the tokenizer does not end each choice in one distinct token.
    """
    conts = [lm.continuation_ids(text, prompt_ids, c) for c in example.choices]
    shared = len(conts[0]) - 1
    last = [c[-1] for c in conts]
    if (
        len(example.teacher) != len(conts)
        or any(len(c) != shared + 1 or c[:shared] != conts[0][:shared] for c in conts)
        or len(set(last)) != len(last)
    ):
        raise ConfigError(
            f"distillation needs choices that differ only in one last token each; the tokenizer "
            f"gives {conts[:3]}...; use single-token choices (the letters of the listwise task) "
            "or distill=0"
        )
    return len(prompt_ids) + shared - 1, tuple(last), tuple(example.teacher)


def answer_loss(
    model, batch: list[tuple], prefix=None, *, distill: float = 0.0, residual: bool = False
):
    """(loss, number of answer tokens, number of tokens) of a right-padded batch (rows of
    :func:`encode`); ``prefix`` (P, D): soft-prompt embeddings put before every row. The loss is
    the mean cross-entropy over the answer tokens, mixed with weight ``distill`` with the mean
    KL(teacher || LM over the choices) of the rows that carry a teacher. With ``residual`` every
    row must carry a teacher, and the loss is instead the mean cross-entropy of each row's answer
    under softmax(log teacher + the LM's logits of the choices) (:func:`residual_ce`; the
    count is then the number of rows)."""
    import torch

    from genrec.text.transformers_lm import _head

    width = max(len(row[0]) for row in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)  # (B, L)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)  # (B, L), -100: no loss
    for row, (tokens, n_prompt, *_) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, n_prompt : len(tokens)] = torch.tensor(tokens[n_prompt:])
    device = model.get_input_embeddings().weight.device  # the LM's device (TransformersLM)
    ids, labels = ids.to(device), labels.to(device)
    embeds = model.get_input_embeddings()(ids)  # (B, L, D)
    skip = 0
    if prefix is not None:
        skip = prefix.shape[0]
        embeds = torch.cat([prefix.to(embeds.dtype)[None].expand(len(batch), -1, -1), embeds], 1)
    hidden = model.base_model(inputs_embeds=embeds).last_hidden_state[:, skip:]  # (B, L, D)
    target = labels[:, 1:]
    predicts = target != -100  # (B, L-1): position t predicts token t + 1
    if residual:
        return residual_ce(model, hidden, batch), len(batch), sum(len(r[0]) for r in batch)
    logits = _head(model, hidden[:, :-1][predicts]).float()  # (N, V)
    loss = torch.nn.functional.cross_entropy(logits, target[predicts])
    taught = [r for r, row in enumerate(batch) if len(row) > 2]
    if distill and taught:
        loss = (1 - distill) * loss + distill * teacher_kl(
            model, hidden, [batch[r] for r in taught], taught
        )
    return loss, int(predicts.sum()), sum(len(row[0]) for row in batch)


def residual_ce(model, hidden, rows: list[tuple]):
    """Mean cross-entropy of each row's answer choice under softmax(log teacher + the LM's
    logits of the choice tokens at the row's choice position); ``hidden`` (B, L, D) of the
    encoded distillation ``rows`` (every row carries a teacher).

    Raises:
        ConfigError: a row carries no teacher (residual learning needs the retriever's scores).
    """
    import torch

    from genrec.text.transformers_lm import _head

    if any(len(row) <= 2 for row in rows):
        raise ConfigError(
            "residual learning needs every example to carry the retriever's distribution over "
            "its choices (listwise examples built with a retriever and a teacher_temperature)"
        )
    at = hidden[torch.arange(len(rows)), torch.tensor([row[2] for row in rows])]  # (R, D)
    logits = _head(model, at).float()  # (R, V)
    total = 0.0
    for r, (tokens, _, _, choices, probs) in enumerate(rows):
        prior = torch.tensor(probs, dtype=torch.float32, device=logits.device).clamp_min(1e-12)
        fused = prior.log() + logits[r, list(choices)]  # (C,)
        answer = torch.tensor(list(choices).index(tokens[-1]), device=logits.device)
        total = total + torch.nn.functional.cross_entropy(fused[None], answer[None])
    return total / len(rows)


def teacher_kl(model, hidden, rows: list[tuple], index: list[int]):
    """Mean KL(teacher || student) over ``rows`` (encoded distillation examples at batch rows
    ``index`` of ``hidden`` (B, L, D)): the student is the softmax of the LM's logits of the
    choice tokens at each row's choice position."""
    import torch

    from genrec.text.transformers_lm import _head

    at = hidden[torch.tensor(index), torch.tensor([row[2] for row in rows])]  # (R, D)
    logits = _head(model, at).float()  # (R, V)
    total = 0.0
    for r, (_, _, _, tokens, probs) in enumerate(rows):
        student = torch.log_softmax(logits[r, list(tokens)], dim=0)  # (C,)
        teacher = torch.tensor(probs, dtype=torch.float32, device=student.device)
        total = total + (teacher * (teacher.clamp_min(1e-12).log() - student)).sum()
    return total / len(rows)


# ---- the run -----------------------------------------------------------------------------------
def tune(
    split,
    config: TuneConfig | None = None,
    *,
    output,
    lm=None,
    options: RunOptions | None = None,
    examples: list[Instruction] | None = None,
    valid_examples: list[Instruction] | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> TuneResult:
    """Tune ``lm`` (default: ``TransformersLM(config.base)``) on ``split``'s training examples.

    Args:
        split: the data; examples come from ``split.train`` (validation: ``split.valid``).
        config: a :class:`TuneConfig`.
        output: folder for the adapter and the checkpoint.
        lm: a ready :class:`~genrec.text.transformers_lm.TransformersLM` (tests pass a tiny one);
            its model is modified in place (LoRA layers are injected).
        examples, valid_examples: ready instruction examples instead of building them.
        resume: continue from ``output/checkpoint`` when one exists.
        stop_after: stop (as if interrupted) after this many steps, leaving a checkpoint.
        on_log: called with each log entry (step, loss, tokens_per_s, valid_loss ...).

    Raises:
        ConfigError: bad config, or no training example fits ``max_length``.
    """
    config = config or TuneConfig()
    if not isinstance(config, TuneConfig):
        raise ConfigError(f"config must be a TuneConfig, got {type(config).__name__}")
    options = options or RunOptions()
    torch = require("torch", "llm")
    require("peft", "llm")
    output = Path(output)
    if lm is None:
        from genrec.text.transformers_lm import TransformersLM

        lm = TransformersLM(config.base, dtype=config.dtype, threads=options.threads)
    model, _ = lm._ready()
    data_options = dict(
        per_user=config.per_user,
        history_len=config.history_len,
        n_candidates=config.n_candidates,
        n_hard=config.n_hard,
        like_threshold=config.like_threshold,
        uniform_share=config.uniform_share,
        teacher_temperature=(
            config.teacher_temperature if config.distill or config.residual else None
        ),
        shuffle=config.shuffle_candidates,
    )
    if config.negatives == "retrieved" and (examples is None or valid_examples is None):
        data_options["retriever"] = _retriever(split, config, options)
    if examples is None:
        examples = build_examples(
            split, config.task, part="train", seed=options.seed, **data_options
        )
    if valid_examples is None:
        valid_examples = build_examples(
            split, config.task, part="valid", seed=options.seed, **data_options
        )[: config.n_valid]
    train, skipped = encode(lm, examples, config.max_length)
    valid, skipped_valid = encode(lm, valid_examples, config.max_length)
    if not train:
        raise ConfigError(
            f"no training example fits max_length={config.max_length} tokens "
            f"({len(examples)} built); raise max_length or shorten history_len"
        )
    with torch.random.fork_rng(), torch_threads(lm._threads):  # both restored after
        torch.manual_seed(options.seed)
        peft_model, params = _attach(model, config)
        run = _Run(config, lm, peft_model, params, train, valid, output, options.seed)
        if resume:
            run.restore()
        stopped = run.loop(stop_after, options, on_log)
    if stop_after is None or run.step >= config.max_steps or stopped:
        run.finish()
    seconds = run.previous_seconds  # training + validation, over every (resumed) part of the run
    return TuneResult(
        output,
        run.step,
        run.best_step,
        run.best_loss,
        len(train),
        len(valid),
        skipped + skipped_valid,
        seconds,
        run.tokens / max(seconds, 1e-9),
        sum(p.numel() for p in params.values()),
        stopped,
        run.log,
    )


def _retriever(split, config: TuneConfig, options):
    """The fitted retriever of retrieved negatives and shortlists: one model on all training
    data, or a :class:`~genrec.tuning.instructions.FoldRetriever` with ``config.folds``."""
    from genrec.build import build_model
    from genrec.tuning.instructions import FoldRetriever

    if config.folds >= 2:
        return FoldRetriever(
            lambda: build_model(config.retriever), k=config.folds, seed=options.seed
        ).fit(split.train, options=options)
    return build_model(config.retriever).fit(split.train, options=options)


def _attach(model, config: TuneConfig):
    """(the PEFT model, {name: trainable parameter}); LoRA modifies ``model`` in place."""
    import peft

    for p in model.parameters():
        p.requires_grad_(False)
    if config.method == "lora":
        missing = [
            m
            for m in config.target_modules
            if not any(n.endswith("." + m) for n, _ in model.named_modules())
        ]
        if missing:
            raise ConfigError(
                f"target_modules {missing} are not modules of {type(model).__name__}; "
                "use projection names such as 'q_proj', 'v_proj'"
            )
        peft_config = peft.LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            task_type="CAUSAL_LM",
        )
    else:
        peft_config = peft.PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=config.n_virtual_tokens,
            prompt_tuning_init="SAMPLE_VOCAB",
        )
    peft_model = peft.get_peft_model(model, peft_config)
    params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    return peft_model, params


def soft_prompt(peft_model):
    """The soft prompt (P, D) of a prompt-tuned PEFT model, or None for LoRA."""
    encoder = getattr(peft_model, "prompt_encoder", None)
    return None if encoder is None or not len(encoder) else encoder["default"].embedding.weight


class _Run:
    """The mutable state of one tuning run: step, optimizer, best weights, checkpoints."""

    def __init__(self, config, lm, peft_model, params, train, valid, output: Path, seed: int):
        import torch

        self.config, self.lm, self.peft_model, self.params = config, lm, peft_model, params
        self.model = lm._model  # the transformers model (LoRA layers injected in place)
        self.train, self.valid, self.output, self.seed = train, valid, output, seed
        self.optimizer = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=0.0)
        self.step, self.tokens, self.previous_seconds = 0, 0, 0.0
        self.best_loss, self.best_step, self.bad_evals = None, None, 0
        self.best = None  # {name: tensor} of the best evaluation
        self.log: list[dict] = []

    # -- data order: a function of (seed, step) only, so resuming needs nothing more ----------
    def micro_batches(self, step: int) -> list[list[tuple]]:
        per_step = self.config.batch_size * self.config.grad_accum
        first = step * per_step
        out = []
        for j in range(self.config.grad_accum):
            rows = []
            for k in range(
                first + j * self.config.batch_size, first + (j + 1) * self.config.batch_size
            ):
                epoch, pos = divmod(k, len(self.train))
                rows.append(self.train[self.epoch_order(epoch)[pos]])
            out.append(rows)
        return out

    def epoch_order(self, epoch: int) -> np.ndarray:
        if getattr(self, "_order", (None,))[0] != epoch:
            self._order = (
                epoch,
                np.random.default_rng([self.seed, epoch]).permutation(len(self.train)),
            )
        return self._order[1]

    def loop(self, stop_after, options, on_log) -> bool:
        import torch

        self.model.train()
        start, tokens_at_start = time.perf_counter(), self.tokens
        steps = range(self.step, self.config.max_steps)
        bar = options.track(
            steps, total=self.config.max_steps - self.step, desc="tuning", unit="step"
        )
        for step in bar:
            if stop_after is not None and step >= stop_after:
                self.previous_seconds += time.perf_counter() - start
                return False
            warm = (
                min(1.0, (step + 1) / self.config.warmup_steps) if self.config.warmup_steps else 1.0
            )
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * warm
            total = 0.0
            for batch in self.micro_batches(step):
                loss, _, n_tokens = answer_loss(
                    self.model,
                    batch,
                    soft_prompt(self.peft_model),
                    distill=self.config.distill,
                    residual=self.config.residual,
                )
                (loss / self.config.grad_accum).backward()
                total += loss.item() / self.config.grad_accum
                self.tokens += n_tokens
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step = step + 1
            rate = (self.tokens - tokens_at_start) / max(time.perf_counter() - start, 1e-9)
            entry = {"step": self.step, "loss": total, "tokens_per_s": rate}
            bar.set_postfix(loss=f"{total:.3f}", tok_s=f"{rate:.0f}")
            stop = self.over_budget(time.perf_counter() - start)
            if (
                stop
                or self.step % self.config.eval_every == 0
                or self.step == self.config.max_steps
            ):
                entry["valid_loss"] = self.valid_loss()
                stop = self.early_stop(entry["valid_loss"]) or stop
            self.log.append(entry)
            if on_log:
                on_log(entry)
            if self.step % self.config.checkpoint_every == 0 or stop:
                self.previous_seconds += time.perf_counter() - start
                start, tokens_at_start = time.perf_counter(), self.tokens
                self.checkpoint()
            if stop:
                return True
        self.previous_seconds += time.perf_counter() - start
        return False

    def valid_loss(self) -> float | None:
        import torch

        if not self.valid:
            return None
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(self.valid), self.config.batch_size):
                loss, n, _ = answer_loss(
                    self.model,
                    self.valid[i : i + self.config.batch_size],
                    soft_prompt(self.peft_model),
                    residual=self.config.residual,
                )
                total, count = total + loss.item() * n, count + n
        self.model.train()
        return total / count

    def over_budget(self, seconds: float) -> bool:
        """Whether this run's ``seconds`` and the earlier runs' exhaust ``time_budget``."""
        budget = self.config.time_budget
        return bool(budget) and self.previous_seconds + seconds >= budget

    def early_stop(self, loss: float | None) -> bool:
        if loss is None:
            return False
        if self.best_loss is None or loss < self.best_loss - 1e-6:
            self.best_loss, self.best_step, self.bad_evals = loss, self.step, 0
            self.best = {n: p.detach().clone() for n, p in self.params.items()}
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.config.patience

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write ``output/checkpoint`` (aside, then renamed over the previous one)."""
        import torch
        from safetensors.torch import save_file

        tensors = {f"param.{n}": p.detach().contiguous() for n, p in self.params.items()}
        if self.best is not None:
            tensors.update({f"best.{n}": t.contiguous() for n, t in self.best.items()})
        opt = self.optimizer.state_dict()
        for i, state in opt["state"].items():
            tensors.update(
                {f"opt.{i}.{k}": torch.as_tensor(v).contiguous() for k, v in state.items()}
            )
        tensors["rng"] = torch.get_rng_state()
        meta = {
            "step": self.step,
            "tokens": self.tokens,
            "seconds": self.previous_seconds,
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "log": self.log,
            "param_groups": opt["param_groups"],
            "config": self.config.to_dict(),
            "names": list(self.params),
        }
        self.output.mkdir(parents=True, exist_ok=True)
        stage = self.output / f".checkpoint.partial-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        save_file(tensors, str(stage / "state.safetensors"))
        (stage / "state.json").write_text(json.dumps(meta, default=float))
        final = self.output / "checkpoint"
        if final.exists():
            old = self.output / f".checkpoint.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)

    def restore(self) -> None:
        import torch
        from safetensors.torch import load_file

        folder = self.output / "checkpoint"
        if not (folder / "state.json").is_file():
            return
        meta = json.loads((folder / "state.json").read_text())
        if meta["names"] != list(self.params) or meta["config"]["method"] != self.config.method:
            raise ConfigError(
                f"the checkpoint in {folder} is of another adapter "
                f"({meta['config']['method']}); use another output or resume=False"
            )
        tensors = load_file(str(folder / "state.safetensors"))
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
        if any(k.startswith("best.") for k in tensors):
            self.best = {n: tensors[f"best.{n}"] for n in self.params}
        state = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng"])
        self.step, self.tokens, self.previous_seconds = (
            meta["step"],
            meta["tokens"],
            meta["seconds"],
        )
        self.best_loss, self.best_step = meta["best_loss"], meta["best_step"]
        self.bad_evals, self.log = meta["bad_evals"], meta["log"]

    def finish(self) -> None:
        """Restore the best weights (if validation ran) and save the adapter."""
        import torch

        from genrec.text.tuned_lm import fast_inference, save_adapter

        if self.best is not None:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(self.best[n])
        fast_inference(self.model)  # eval mode; see fast_inference
        prefix = soft_prompt(self.peft_model)  # the tuned lm scores with its soft prompt too
        self.lm.prefix_embeddings = None if prefix is None else prefix.detach()
        save_adapter(
            self.peft_model,
            self.output,
            base=self.config.base,
            dtype=self.config.dtype,
            method=self.config.method,
            extra={
                "task": self.config.task,
                "steps": self.step,
                "best_step": self.best_step,
                "config": self.config.to_dict(),
            },
        )


__all__ = [
    "DEFAULT_LR",
    "METHODS",
    "NEGATIVES",
    "TuneConfig",
    "TuneResult",
    "answer_loss",
    "choice_tokens",
    "encode",
    "soft_prompt",
    "teacher_kl",
    "tune",
]
