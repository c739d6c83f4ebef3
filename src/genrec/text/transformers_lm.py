"""A local Hugging Face transformers causal LM behind the :class:`~genrec.text.lm.LanguageModel`
protocol (the ``llm`` extra).

``TransformersLM(model)`` takes a shipped model name (``"gemma-3-270m"``, ``"smollm2-135m"``,
see :mod:`genrec.text.weights`), a local model folder or hub name, or a ``.gguf`` file (or a
folder plus ``gguf_file=``). transformers dequantises a GGUF when loading it (about 36 s for
Gemma 3 270M); the dequantised model is saved once, in ``dtype``, as safetensors under
``cache_dir/models/<name>/hf-<dtype>/`` so later loads take seconds.

Scoring (:meth:`TransformersLM.score`): the prompt's forward pass runs once; its KV cache is
copied and repeated over a batch of continuations (grouped by length), which run as one
right-padded batch on top of it (causal attention: padding after a continuation cannot change
its tokens' scores). Only the logits that score a token are computed: the prompt's last position
and the continuations' real (not padding) positions, through the output layer in one matrix
product per batch; their log-softmax is taken in float32 a few rows at a time (Gemma's
262k-token vocabulary makes full logits over every position and candidate gigabytes).

Tokenisation at the prompt/continuation boundary: the continuation's tokens are those that
``tokenize(prompt + continuation)`` has after ``tokenize(prompt)``, when the latter is a prefix of
the former (the usual case, e.g. a prompt ending in a newline); when a token merges across the
boundary (e.g. a prompt ending in a space), the continuation is tokenised on its own and
appended, so the prompt's tokens (and its cached KV) are always the same for every continuation.
An empty continuation scores the end-of-sequence token.

Generation of one prompt (:meth:`TransformersLM.generate` with one prompt, :meth:`~TransformersLM.
stream`) keeps the KV cache of its last prompt and answer: the next prompt reads only the tokens
after their longest common token prefix (a planner's fixed instructions and examples, or a repair
prompt that repeats the first prompt and answer). Greedy output is the same with or without it up
to floating-point rounding (the prefix's keys come from one longer forward pass). The cache is
dropped when the model's parameters change (fine-tuning), and it is not kept for sliding-window
layers (Gemma 3) or a soft prompt.

Example (a tiny random model built from a config; no download):
    >>> from genrec.text.transformers_lm import tiny_test_model
    >>> lm = TransformersLM.wrap(*tiny_test_model(), threads=1)
    >>> scores = lm.score("a cat sat on", [" the mat", " a hat"])
    >>> len(scores.logprob), bool((scores.logprob < 0).all()), bool((scores.n_tokens >= 1).all())
    (2, True, True)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from genrec.errors import ConfigError, LLMError, require
from genrec.options import check_device, resolve_device, torch_threads
from genrec.text import weights
from genrec.text.lm import (
    ContinuationScores,
    check_continuations,
    check_generation_args,
    check_spans,
    cut_at_stop,
    cut_stream,
)

DTYPES = ("bfloat16", "float32")
LOGIT_BUDGET = 1 << 26  # at most this many logits (rows x vocabulary) at once (128 MB in bf16)
ROW_CHUNK = 8  # logit rows per log-softmax step


def _on_own_threads(method):
    """Run ``method`` on the LM's torch thread count, restoring the caller's after it."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        self._ready()
        with torch_threads(self._threads):
            return method(self, *args, **kwargs)

    return run


class TransformersLM:
    """A causal LM run with transformers on the CPU (or a GPU: ``device``); loaded on first use.

    Args:
        model: a shipped model name (:data:`genrec.text.weights.SHIPPED`), a local folder or
            hub name, or a ``.gguf`` file.
        gguf_file: the GGUF file name inside the folder ``model`` (transformers' convention).
        dtype: "bfloat16" (default; 1.7-3x faster than float32 on this kind of CPU) or "float32".
        threads: torch intra-op threads; None means :func:`genrec.options.free_cores` (pass 1
            under CI or when other jobs share the machine). torch's setting is process-wide.
        device: where the weights and every forward pass live: "cpu", "cuda", "cuda:N", "mps"
            or "auto" (:data:`genrec.options.DEVICES`); resolved and checked on first use.
            Scores come back to the CPU once per batch of continuations.
        batch_size: continuations (or prompts, when generating) per forward pass.
        chat: wrap prompts in the tokenizer's chat template as one user turn (for instruction
            models); None means: only for shipped instruction models.
        cache_dir: the genrec cache root for shipped models and dequantised GGUFs.
        name: the name to report (default derived from ``model``).

    Raises:
        MissingExtraError: transformers is not installed (``pip install 'genrec[llm]'``).
        LLMError: the model cannot be found or loaded (on first use).
    """

    def __init__(
        self,
        model: str = "gemma-3-270m",
        *,
        gguf_file: str | None = None,
        dtype: str = "bfloat16",
        threads: int | None = None,
        batch_size: int = 32,
        chat: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        name: str | None = None,
        device: str = "cpu",
    ):
        check_device(device)
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        _check_positive("batch_size", batch_size)
        if threads is not None:
            _check_positive("threads", threads)
        self.model, self.gguf_file, self.dtype = str(model), gguf_file, dtype
        self.threads, self.batch_size, self.cache_dir = threads, batch_size, cache_dir
        shipped = weights.SHIPPED.get(self.model)
        self.chat = chat if chat is not None else bool(shipped and shipped.instruct)
        self.name = name or (self.model if shipped else Path(self.model).name or self.model)
        self._model = self._tokenizer = None
        self._plain_head: bool | None = None
        self._enforcer_data = None  # lm-format-enforcer tables, built on the first json_schema
        self._threads: int | None = None
        self.device, self._device = device, None  # the torch.device, decided on first use
        self.prefix_embeddings = None  # (P, D) soft prompt before every prompt (prompt tuning)
        self._kept = None  # (token ids, KV cache, parameter versions) of the last generation

    @classmethod
    def wrap(cls, model, tokenizer, *, name: str = "wrapped", **options) -> TransformersLM:
        """A TransformersLM around an already loaded model and tokenizer (tests, fine-tuning)."""
        lm = cls(name=name, dtype="float32", **options)
        lm._model, lm._tokenizer = model.eval(), _with_pad(tokenizer)
        return lm

    # ---- loading --------------------------------------------------------------------------
    def _ready(self):
        """(model, tokenizer), loading them on first use; decides :attr:`_threads`, the torch
        thread count :meth:`score` and :meth:`generate` run on (and restore after)."""
        require("torch", "llm")
        if self._threads is None:  # decided once: free_cores() changes with the machine's load
            from genrec.options import free_cores

            self._threads = self.threads or free_cores()
        if self._device is None:
            import torch

            self._device = torch.device(resolve_device(self.device))
        if self._model is None:
            self._model, self._tokenizer = self._load()
        if self._model.device != self._device:
            self._model.to(self._device)
        return self._model, self._tokenizer

    def _load(self):
        require("transformers", "llm")
        source, gguf = self._source()
        if gguf is not None:
            cached = self._dequantised_dir(gguf)
            if not (cached / "config.json").is_file():
                model, tokenizer = _from_pretrained(str(gguf.parent), gguf.name, self.dtype)
                _save_dequantised(model, tokenizer, cached)
                return model.eval(), _with_pad(tokenizer)
            source = str(cached)
        elif not Path(source).exists():
            _check_hub_name(source, cache_dir=self.cache_dir)
        model, tokenizer = _from_pretrained(source, None, self.dtype)
        return model.eval(), _with_pad(tokenizer)

    def _source(self) -> tuple[str, Path | None]:
        """(folder or hub name, GGUF file or None)."""
        if self.model in weights.SHIPPED:
            return self.model, weights.gguf_path(self.model, cache_dir=self.cache_dir)
        if self.gguf_file is not None:
            return self.model, Path(self.model) / self.gguf_file
        if self.model.endswith(".gguf"):
            if not Path(self.model).is_file():
                raise LLMError(f"GGUF file {self.model} does not exist; check the path")
            return self.model, Path(self.model)
        return self.model, None

    def _dequantised_dir(self, gguf: Path) -> Path:
        if self.model in weights.SHIPPED:
            folder = weights.model_dir(self.model, cache_dir=self.cache_dir)
        else:  # a user's GGUF: keyed by its name, size and modification time
            stat = gguf.stat()
            key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            folder = weights.model_dir(
                f"{gguf.stem}-{key.hexdigest()[:12]}", cache_dir=self.cache_dir
            )
        return folder / f"hf-{self.dtype}"

    # ---- protocol -------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        _, tokenizer = self._ready()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def format_prompt(self, prompt: str) -> str:
        """The prompt as the model sees it (in the chat template when ``chat`` is on)."""
        _, tokenizer = self._ready()
        if not self.chat:
            return prompt
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"{self.name} has no chat template; use chat=False")
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def _encode(self, text: str) -> list[int]:
        """Token ids of a formatted prompt: BOS added unless the chat template already did."""
        _, tokenizer = self._ready()
        ids = list(tokenizer(text, add_special_tokens=not self.chat)["input_ids"])
        return [tokenizer.bos_token_id, *ids] if self._lacks_bos(ids) else ids

    def _lacks_bos(self, ids: list[int]) -> bool:
        """Whether ``ids`` of a formatted prompt need the BOS prepended: some tokenizers add
        none although the model was trained with it (a chat template writes its own)."""
        _, tokenizer = self._ready()
        bos = tokenizer.bos_token_id
        return not (self.chat or bos is None or (ids and ids[0] == bos))

    def continuation_ids(self, prompt_text: str, prompt_ids: list[int], text: str) -> list[int]:
        """Token ids of ``text`` right after the formatted prompt (see the module docstring)."""
        _, tokenizer = self._ready()
        if not text:
            return [tokenizer.eos_token_id]
        joint = self._encode(prompt_text + text)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) or [
            tokenizer.eos_token_id
        ]

    @_on_own_threads
    def score(self, prompt: str, continuations: Sequence[str]) -> ContinuationScores:
        """Log-probability of each continuation after ``prompt``; see the module docstring."""
        continuations = check_continuations(continuations)
        if not continuations:
            return ContinuationScores(np.zeros(0), np.zeros(0, np.int64))
        model, _ = self._ready()
        import torch

        prompt_text = self.format_prompt(prompt)
        prompt_ids = self._encode(prompt_text)
        conts = [self.continuation_ids(prompt_text, prompt_ids, c) for c in continuations]
        logprob = np.zeros(len(conts))
        with torch.inference_mode():
            out = self._prompt_pass(model, torch.tensor([prompt_ids], device=self._device))
            first = out.logits[0, -1].float().log_softmax(-1)  # (V,) predicts each first token
            vocab = first.shape[0]
            for batch in self._score_batches(conts, vocab):
                logprob[batch] = self._score_batch(
                    model, out.past_key_values, first, [conts[i] for i in batch]
                )
        return ContinuationScores(logprob, np.array([len(c) for c in conts], np.int64))

    @_on_own_threads
    def span_states(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """(S, D) float32: the last layer's hidden states averaged over the tokens of each
        character span ``[start, end)`` of ``text`` (a token counts when its characters overlap
        the span), from one forward pass over ``text`` as :meth:`score` reads a prompt (chat
        template, soft prompt). What a probe trained on the model's reading of a passage uses.

        Raises:
            ConfigError: a span that is empty, outside ``text``, or covers no token.
        """
        model, tokenizer = self._ready()
        import torch

        bounds = check_spans(text, spans)
        formatted = self.format_prompt(text)
        shift = formatted.rfind(text)
        enc = tokenizer(formatted, add_special_tokens=not self.chat, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), np.asarray(enc["offset_mapping"], np.int64)
        if self._lacks_bos(ids):  # as _encode adds it; the BOS covers no characters
            ids, offsets = [tokenizer.bos_token_id, *ids], np.r_[[[0, 0]], offsets]
        lead = 0 if self.prefix_embeddings is None else len(self.prefix_embeddings)
        with torch.inference_mode():
            ids = torch.tensor([ids], device=self._device)
            out = self._prompt_pass(model, ids, output_hidden_states=True)
            hidden = out.hidden_states[-1][0, lead:].float().cpu().numpy()  # (T, D)
        states = np.empty((len(bounds), hidden.shape[1]), np.float32)
        for row, (start, end) in enumerate(bounds):
            inside = (offsets[:, 0] < end + shift) & (offsets[:, 1] > start + shift)
            inside &= offsets[:, 1] > offsets[:, 0]  # special tokens cover no characters
            if not inside.any():
                raise ConfigError(f"span {(start, end)} of the text covers no token")
            states[row] = hidden[inside].mean(axis=0)
        return states

    def _prompt_pass(self, model, ids, **options):
        """The prompt's forward pass (its KV cache and last logits, and whatever else
        ``options`` ask of the model), after the soft prompt :attr:`prefix_embeddings` when
        there is one (genrec.tuning's prompt tuning)."""
        options = {"use_cache": True, "logits_to_keep": 1, **options}
        if self.prefix_embeddings is None:
            return model(input_ids=ids, **options)
        return model(inputs_embeds=self._with_prefix(model, ids), **options)

    def _with_prefix(self, model, ids):
        """(B, P + L, D): the soft prompt, then the embeddings of ``ids`` (B, L)."""
        import torch

        embeds = model.get_input_embeddings()(ids)
        prefix = self.prefix_embeddings.to(embeds.device, embeds.dtype)[None]
        prefix = prefix.expand(ids.shape[0], -1, -1)  # (B, P, D)
        return torch.cat([prefix, embeds], 1)

    def _score_batches(self, conts: list[list[int]], vocab: int) -> list[list[int]]:
        """Indices of continuations per forward pass, by length (little padding):
        ``batch_size`` at most, and few enough that their logits stay within
        :data:`LOGIT_BUDGET`."""
        batches, current, width = [], [], 0
        for i in sorted(range(len(conts)), key=lambda i: len(conts[i])):
            ids = conts[i]
            new_width = max(width, len(ids))
            if current and (
                len(current) == self.batch_size
                or (len(current) + 1) * new_width * vocab > LOGIT_BUDGET
            ):
                batches.append(current)
                current, new_width = [], len(ids)
            current.append(i)
            width = new_width
        return batches + [current]

    def _score_batch(self, model, prompt_cache, first, conts: list[list[int]]) -> np.ndarray:
        import torch

        width = max(len(c) for c in conts)
        padded = np.zeros((len(conts), width), np.int64)  # right-padded, (B, L)
        for row, c in enumerate(conts):
            padded[row, : len(c)] = c
        device = first.device
        ids = torch.from_numpy(padded).to(device)  # one copy of the batch
        lengths = torch.tensor([len(c) for c in conts], device=device)  # (B,)
        total = first[ids[:, 0]]  # (B,) log p(first token | prompt)
        if width == 1:
            return total.double().cpu().numpy()
        cache = copy.deepcopy(prompt_cache)
        cache.batch_repeat_interleave(len(conts))
        steps = torch.arange(1, width, device=device)
        valid = steps[None, :] < lengths[:, None]  # (B, L-1): predicts a token
        target = ids[:, 1:][valid]  # (N,)
        token_lp = torch.zeros(valid.shape, device=device)
        if self._head_is_plain(model):  # the LM head on the N needed positions only
            hidden = model.base_model(
                input_ids=ids, past_key_values=cache, use_cache=True
            ).last_hidden_state  # (B, L, D)
            logits = _head(model, hidden[:, :-1][valid])  # (N, V): one pass over the head
            token_lp[valid] = _token_logprobs(logits, target)
        else:  # an architecture with its own logit post-processing: the model's own forward
            logits = model(
                input_ids=ids,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=torch.arange(width - 1, device=device),
            ).logits[valid]  # (N, V)
            token_lp[valid] = _token_logprobs(logits, target)
        return (total + token_lp.sum(1)).double().cpu().numpy()  # one copy per batch

    def _head_is_plain(self, model) -> bool:
        """Whether ``_head(base_model(x))`` gives the model's own logits (checked once on two
        tokens); if not, scoring falls back to the model's forward."""
        if getattr(self, "_plain_head", None) is None:
            import torch

            ids = torch.tensor([[self._tokenizer.bos_token_id or 0, 1]], device=model.device)
            with torch.inference_mode():
                own = model(input_ids=ids).logits[0, -1].float()
                ours = _head(model, model.base_model(input_ids=ids).last_hidden_state[0, -1:])
            self._plain_head = bool(torch.allclose(own, ours[0].float(), atol=1e-3, rtol=1e-3))
        return self._plain_head

    @_on_own_threads
    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        json_schema: dict | None = None,
    ) -> list[str]:
        """Greedy (``temperature=0``) or sampled completions, ``batch_size`` prompts at a time
        with left padding. Sampling is plain temperature sampling (no top-k/top-p), seeded: the
        same prompts, seed and batch size give the same texts. With ``json_schema`` every token
        is constrained to keep the text a prefix of a value the schema accepts
        (:mod:`genrec.text.constrained`; see :attr:`constrained_json`)."""
        check_generation_args(max_new_tokens, temperature)
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of strings, not one string")
        model, tokenizer = self._ready()
        processors = [] if json_schema is None else [self._json_logits(model, json_schema)]
        texts, out = [self.format_prompt(p) for p in prompts], []
        for start in range(0, len(texts), self.batch_size):
            encoded = [self._encode(t) for t in texts[start : start + self.batch_size]]
            new = self._generate_ids(
                model,
                encoded,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                stop=stop,
                seed=seed + start,
                processors=processors,
            )
            for row in tokenizer.batch_decode(new, skip_special_tokens=True):
                out.append(cut_at_stop(row, stop))
        return out

    @property
    def constrained_json(self) -> bool:
        """Whether :meth:`generate` can enforce ``json_schema`` (lm-format-enforcer installed)."""
        from genrec.text import constrained

        return constrained.available()

    def _json_logits(self, model, schema: dict):
        """A logits processor for ``schema``; the tokenizer tables are built once per model."""
        from genrec.text import constrained

        if self._enforcer_data is None:
            eos = model.generation_config.eos_token_id
            eos = [eos] if isinstance(eos, int) else list(eos or [])
            self._enforcer_data = constrained.tokenizer_data(
                self._tokenizer,
                vocab_size=model.get_output_embeddings().weight.shape[0],
                eos_ids=sorted(set(eos) | {self._tokenizer.eos_token_id}),
            )
        return constrained.JsonSchemaLogits(self._enforcer_data, schema)

    def stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        json_schema: dict | None = None,
    ) -> Iterator[str]:
        """:meth:`generate` of one prompt, yielded as the words are generated (the same text;
        under ``json_schema`` as :meth:`generate` constrains it). The model runs in a helper
        thread; closing the iterator stops it at its next token."""
        check_generation_args(max_new_tokens, temperature)
        model, tokenizer = self._ready()
        processors = [] if json_schema is None else [self._json_logits(model, json_schema)]
        from transformers import TextIteratorStreamer

        encoded = [self._encode(self.format_prompt(prompt))]
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        halt, failure = threading.Event(), []

        def run():
            try:
                with torch_threads(self._threads):
                    self._generate_ids(
                        model,
                        encoded,
                        max_new_tokens=max_new_tokens,
                        stop=stop,
                        temperature=temperature,
                        seed=seed,
                        streamer=streamer,
                        halt=halt,
                        processors=processors,
                    )
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="genrec-generate", daemon=True)
        thread.start()
        try:
            yield from cut_stream(streamer, stop)
        finally:
            halt.set()
            thread.join()
        if failure:
            raise failure[0]

    @property
    def context_length(self) -> int | None:
        """The most tokens (soft prompt, prompt and completion) the model takes (its config's
        ``max_position_embeddings``); None when the config does not say."""
        model, _ = self._ready()
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is None:
            return None
        soft = 0 if self.prefix_embeddings is None else int(self.prefix_embeddings.shape[0])
        return int(limit) - soft

    def _generate_ids(
        self,
        model,
        encoded: list[list[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        stop: Sequence[str],
        seed: int,
        streamer=None,
        halt: threading.Event | None = None,
        processors: Sequence = (),
    ):
        """(B, new) token ids generated after the prompts ``encoded`` (left-padded into one
        batch); ``streamer`` receives tokens as they come; setting ``halt`` stops generation;
        ``processors`` are extra logits processors (constrained decoding)."""
        import torch

        tokenizer = self._tokenizer
        width = max(len(e) for e in encoded)
        pad = tokenizer.pad_token_id
        device = model.device
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor(
            [[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device
        )  # left padding
        sampling = (
            dict(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0, min_p=None)
            if temperature > 0
            else dict(do_sample=False)
        )
        inputs, skip = dict(input_ids=ids), width
        if self.prefix_embeddings is not None:  # soft prompt first; only new tokens return
            prefix = torch.ones(
                len(encoded), self.prefix_embeddings.shape[0], dtype=mask.dtype, device=device
            )
            inputs, mask, skip = (
                dict(inputs_embeds=self._with_prefix(model, ids)),
                torch.cat([prefix, mask], 1),
                0,
            )
        extra = {}
        if processors:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList(processors)
            extra["eos_token_id"] = processors[0].eos  # the tokens a complete value ends with
        criteria = _stop_criteria(tokenizer, stop, skip)
        if halt is not None:
            criteria.append(_halt_criterion(halt))
        if len(encoded) == 1 and self.prefix_embeddings is None:
            extra["cache"] = self._reusable_cache(model, encoded[0])
        with torch.inference_mode(), torch.random.fork_rng(), _decoding_attention(model):
            torch.manual_seed(seed)
            out = model.generate(
                **inputs,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                stopping_criteria=criteria,
                streamer=streamer,
                **extra,
                **sampling,
            )
        if "cache" in extra:
            self._keep(model, out[0].tolist(), extra["cache"])
        return out[:, skip:]

    def _reusable_cache(self, model, tokens: list[int]):
        """A KV cache for generating after ``tokens``: the kept one of the last generation cut
        to its longest common prefix with ``tokens`` (at most all but the last token, which
        generation must read itself), or a new empty one. Taken from :attr:`_kept`, so a
        concurrent generation builds its own."""
        from transformers import DynamicCache

        kept, self._kept = self._kept, None
        if kept is not None:
            ids, cache, versions = kept
            n = _common_prefix(ids, tokens[:-1])
            if n > 0 and versions == _parameter_versions(model):
                cache.crop(n - cache.get_seq_length())  # a negative count removes tokens
                return cache
        return DynamicCache(config=model.config)

    def _keep(self, model, sequence: list[int], cache) -> None:
        """Keep ``cache`` (the KV of the first tokens of ``sequence``) for the next generation,
        unless a layer is not a plain growing one (a sliding window cannot be cut back)."""
        from transformers.cache_utils import DynamicLayer

        if all(type(layer) is DynamicLayer for layer in cache.layers):
            length = cache.get_seq_length()
            self._kept = (sequence[:length], cache, _parameter_versions(model))


# ---- helpers --------------------------------------------------------------------------------
@contextlib.contextmanager
def _decoding_attention(model):
    """Eager attention while a bfloat16 model generates on the CPU, then the model's own:
    attention over a long cache for one new token takes about a quarter less time per token
    there than with torch's scaled_dot_product_attention (which stays faster for reading a
    long prompt at once, as :meth:`TransformersLM.score` does)."""
    own = getattr(model.config, "_attn_implementation", None)
    switch = (
        model.device.type == "cpu"
        and str(model.dtype) == "torch.bfloat16"
        and own == "sdpa"
        and hasattr(model, "set_attn_implementation")
    )
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(own)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _parameter_versions(model) -> tuple:
    """(identity, in-place version) of every parameter: changes when training updates a
    weight or a module is replaced (a kept KV cache is then stale)."""
    return tuple((id(p), p._version) for p in model.parameters())


def _check_positive(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be a positive integer, got {value!r}")


def _with_pad(tokenizer):
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(source: str, gguf_file: str | None, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **extra)
    except (OSError, ValueError) as exc:
        where = f"{source}/{gguf_file}" if gguf_file else source
        raise LLMError(
            f"could not load the language model {where!r}: {exc}. Pass a shipped model "
            f"name ({', '.join(weights.SHIPPED)}), a local model folder or a .gguf "
            "file (GGUF needs the gguf package: pip install 'genrec[llm]')"
        ) from exc
    return model, tokenizer


def _check_hub_name(name: str, *, cache_dir=None) -> None:
    """Return when ``name`` (neither a shipped name nor a local path) is in the local Hugging
    Face cache or the hub has it; otherwise raise LLMError at once, naming the models that exist
    locally, instead of letting transformers retry an unreachable hub for a minute. Honours
    HF_HUB_OFFLINE; sets no environment variable."""
    hub = require("huggingface_hub", "llm")
    local = f"models here: {', '.join(local_model_names(cache_dir=cache_dir))}"
    try:
        if isinstance(hub.try_to_load_from_cache(name, "config.json"), str):
            return
    except hub.errors.HFValidationError:
        raise LLMError(
            f"{name!r} is not a shipped model name, an existing path or a valid hub "
            f"name (owner/name); {local}"
        ) from None
    if hub.constants.HF_HUB_OFFLINE:
        raise LLMError(
            f"language model {name!r} is not a shipped name, a local path or in the "
            f"Hugging Face cache, and HF_HUB_OFFLINE is set; {local}"
        )
    try:
        hub.model_info(name, timeout=5)
    except hub.errors.RepositoryNotFoundError:
        raise LLMError(
            f"no language model {name!r}: not a shipped name, a local path, in the "
            f"Hugging Face cache or on the hub; {local}"
        ) from None
    except Exception as exc:  # noqa: BLE001 (no network, a proxy, the hub down: all offline)
        raise LLMError(
            f"language model {name!r} is not a shipped name, a local path or in the "
            f"Hugging Face cache, and the hub is unreachable ({type(exc).__name__}); "
            f"{local}"
        ) from None


def local_model_names(*, cache_dir=None) -> list[str]:
    """Models that load without a network: the shipped names (marked when not yet in genrec's
    cache) and the models in the Hugging Face cache."""
    names = [
        name
        if weights.model_dir(name, cache_dir=cache_dir).joinpath(model.filename).is_file()
        else f"{name} (assembled on first use)"
        for name, model in weights.SHIPPED.items()
    ]
    try:
        from huggingface_hub import scan_cache_dir

        cached = sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # noqa: BLE001 (no cache folder, or one it cannot read)
        cached = []
    return names + cached


def _save_dequantised(model, tokenizer, target: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors (written aside, then renamed)."""
    model.hf_quantizer = None  # save_pretrained refuses a model that still says "gguf"
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        model.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(stage, target)
    except OSError as exc:  # the model in memory still works; only the cache is missing
        shutil.rmtree(stage, ignore_errors=True)
        import logging

        logging.getLogger(__name__).warning(
            "could not cache the dequantised model in %s: %s", target, exc
        )


def _halt_criterion(event: threading.Event):
    """A stopping criterion that ends every row once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria

    class Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full(
                (input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return Halt()


def _stop_criteria(tokenizer, stop: Sequence[str], start: int):
    """Stop a row once its generated text contains one of the ``stop`` strings."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    stop = [s for s in stop if s]
    if not stop:
        return StoppingCriteriaList()

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            import torch

            tails = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in tails], device=input_ids.device)

    return StoppingCriteriaList([StopStrings()])


def _token_logprobs(logits, target):
    """(N,) float32 log-softmax of ``logits`` (N, V) at ``target`` (N,)."""
    import torch

    picked = logits.gather(-1, target[:, None])[:, 0].float()
    # a few rows at a time: their float32 copy stays in the CPU cache
    return picked - torch.cat(
        [torch.logsumexp(rows.float(), -1) for rows in logits.split(ROW_CHUNK)]
    )


def _head(model, hidden):
    """Logits of hidden states (N, D) -> (N, V): the output embedding, then Gemma's final
    soft-capping when the config has one."""
    import torch

    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def tiny_test_model(*, vocab_corpus: Sequence[str] = (), seed: int = 0):
    """(model, tokenizer): a randomly initialised 2-layer Llama (hidden 32) with a byte-level BPE
    tokenizer trained on a few sentences; built in well under a second, no download. For tests
    and doctests."""
    torch = require("torch", "llm")
    require("transformers", "llm")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = list(vocab_corpus) or [
        "a cat sat on the mat",
        "the dog ate a hat",
        "Toy Story (1995)",
        "Heat (1995)",
        "I liked these movies:\n- Star Wars\n- Fargo\nNext:",
    ]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<pad>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    return model, tokenizer


__all__ = ["DTYPES", "TransformersLM", "local_model_names", "tiny_test_model"]
