"""A GGUF model run by llama.cpp (``llama-cpp-python``, the optional ``llamacpp`` extra) behind the
:class:`~genrec.text.lm.LanguageModel` protocol.

llama-cpp-python compiles llama.cpp from source when installed (10-15 minutes), so it is never
required: :class:`~genrec.text.transformers_lm.TransformersLM` runs the same GGUF files. On this
kind of machine llama.cpp loads in under a second and decodes about 2.4x faster.

Threads: ``n_threads`` (generation) and ``n_threads_batch`` (prompt processing) default to
:func:`genrec.options.free_cores`, never to ``os.cpu_count()`` (llama-cpp-python's own default
for batch threads): with another process holding a core, spin-waiting threads make llama.cpp
many times slower.

Scoring (:meth:`LlamaCppLM.score`): the prompt is decoded once; each continuation is then decoded
on top of the prompt's KV cache with logits requested for each of its tokens, which are read
straight from llama.cpp's output buffer; the continuation is then removed from the cache again.
This avoids llama-cpp-python's ``logits_all=True`` / ``echo=True`` logprob route, which copies
the full 262k-wide logits of every position (about a minute per candidate with Gemma 3).
Tokenisation at the prompt/continuation boundary follows
:mod:`genrec.text.transformers_lm` (the continuation's tokens are those after the prompt's in
the joint tokenisation, or its own tokens when a token merges across the boundary).

Build note: llama.cpp built with ``GGML_NATIVE=ON`` crashed on the first decode on this virtual
CPU (its AMX kernels); build it with the AMX options off, or pass ``use_extra_bufts=False``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genrec.errors import ConfigError, LLMError, require
from genrec.text import weights
from genrec.text.lm import (
    ContinuationScores,
    check_continuations,
    check_generation_args,
    cut_at_stop,
)


class LlamaCppLM:
    """A GGUF model in llama.cpp, loaded on first use.

    Args:
        model: a shipped model name (:data:`genrec.text.weights.SHIPPED`) or a ``.gguf`` path.
        n_threads: generation threads; None means :func:`genrec.options.free_cores`.
        n_threads_batch: prompt-processing threads; None means the same as ``n_threads``.
        n_ctx: context length in tokens (prompt + continuation or generated text).
        chat: wrap prompts in the model's chat template (the GGUF's) as one user turn; None
            means only for shipped instruction models.
        cache_dir: the genrec cache root for shipped models.
        name: the name to report.
        model_options: passed to ``llama_cpp.Llama`` as they are (e.g. ``use_mmap``).

    Raises:
        MissingExtraError: llama-cpp-python is not installed (``pip install 'genrec[llamacpp]'``).
        LLMError: the model cannot be loaded, or a prompt does not fit in ``n_ctx``.
    """

    def __init__(
        self,
        model: str = "gemma-3-270m",
        *,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_ctx: int = 2048,
        chat: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        name: str | None = None,
        **model_options,
    ):
        for field, value in (("n_threads", n_threads), ("n_threads_batch", n_threads_batch)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"{field} must be a positive integer or None, got {value!r}")
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16:
            raise ConfigError(f"n_ctx must be an integer >= 16, got {n_ctx!r}")
        self.model, self.n_ctx, self.cache_dir = str(model), n_ctx, cache_dir
        self.n_threads, self.n_threads_batch = n_threads, n_threads_batch
        shipped = weights.SHIPPED.get(self.model)
        self.chat = chat if chat is not None else bool(shipped and shipped.instruct)
        self.name = name or (self.model if shipped else Path(self.model).name)
        self.model_options = model_options
        self._llm = None

    def _ready(self):
        if self._llm is None:
            llama_cpp = require("llama_cpp", "llamacpp")
            from genrec.options import free_cores

            path = (
                weights.gguf_path(self.model, cache_dir=self.cache_dir)
                if self.model in weights.SHIPPED
                else Path(self.model)
            )
            if not path.is_file():
                raise LLMError(
                    f"GGUF file {path} does not exist; pass a shipped model name "
                    f"({', '.join(weights.SHIPPED)}) or a .gguf path"
                )
            threads = self.n_threads or free_cores()
            try:
                self._llm = llama_cpp.Llama(
                    str(path),
                    n_ctx=self.n_ctx,
                    n_batch=min(512, self.n_ctx),
                    n_threads=threads,
                    n_threads_batch=self.n_threads_batch or threads,
                    logits_all=False,
                    verbose=False,
                    **self.model_options,
                )
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp could not load {path}: {exc}") from exc
        return self._llm

    # ---- protocol -------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self._ready().tokenize(text.encode(), add_bos=False, special=False))

    def format_prompt(self, prompt: str) -> str:
        """The prompt as the model sees it (in the GGUF's chat template when ``chat`` is on)."""
        if not self.chat:
            return prompt
        llm = self._ready()
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{self.name} has no chat template in its GGUF; use chat=False")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(
            template,
            eos_token=_piece(llm, llm.token_eos()),
            bos_token=_piece(llm, llm.token_bos()),
            add_generation_prompt=True,
        )
        return formatter(messages=[{"role": "user", "content": prompt}]).prompt

    def _encode(self, text: str) -> list[int]:
        # special=True so that a chat template's markers become their tokens
        return self._ready().tokenize(text.encode(), add_bos=True, special=self.chat)

    def _continuation_ids(self, prompt_text: str, prompt_ids: list[int], text: str) -> list[int]:
        llm = self._ready()
        if not text:
            return [llm.token_eos()]
        joint = self._encode(prompt_text + text)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        return llm.tokenize(text.encode(), add_bos=False, special=False) or [llm.token_eos()]

    def score(self, prompt: str, continuations: Sequence[str]) -> ContinuationScores:
        """Log-probability of each continuation after ``prompt``; see the module docstring."""
        continuations = check_continuations(continuations)
        if not continuations:
            return ContinuationScores(np.zeros(0), np.zeros(0, np.int64))
        llm = self._ready()
        prompt_text = self.format_prompt(prompt)
        prompt_ids = self._encode(prompt_text)
        conts = [self._continuation_ids(prompt_text, prompt_ids, c) for c in continuations]
        longest = len(prompt_ids) + max(len(c) for c in conts)
        if longest > self.n_ctx or max(len(c) for c in conts) > llm.n_batch:
            raise LLMError(
                f"prompt + continuation is {longest} tokens, more than n_ctx="
                f"{self.n_ctx} (or a continuation is longer than {llm.n_batch}); "
                "raise n_ctx or shorten the prompt"
            )
        vocab = llm.n_vocab()
        llm.reset()
        llm.eval(prompt_ids)  # the last prompt position's logits are in the output buffer
        first = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(1, vocab)).copy()  # (1, V)
        n_prompt = len(prompt_ids)
        logprob = np.zeros(len(conts))
        for i, ids in enumerate(conts):
            logprob[i] = _token_logprobs(first, ids[:1])[0]
            if len(ids) > 1:
                _drop_after(llm, prompt_ids)  # the previous continuation
                llm._batch.set_batch(batch=ids, n_past=n_prompt, logits_all=True)
                llm._batch.batch.logits[len(ids) - 1] = False  # the last token predicts nothing
                llm._ctx.decode(llm._batch)
                rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(ids) - 1, vocab))
                logprob[i] += float(_token_logprobs(rows, ids[1:]).sum())
        _drop_after(llm, prompt_ids)
        llm._requires_eval = True  # the logits buffer holds a continuation's, not the prompt's
        return ContinuationScores(logprob, np.array([len(c) for c in conts], np.int64))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[str]:
        """One completion per prompt, one prompt at a time (llama-cpp-python does not batch
        generation); plain temperature sampling (no top-k/top-p/min-p, no repeat penalty)."""
        check_generation_args(max_new_tokens, temperature)
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of strings, not one string")
        llm = self._ready()
        out = []
        for prompt in prompts:
            ids = self._encode(self.format_prompt(prompt))
            if len(ids) + max_new_tokens > self.n_ctx:
                raise LLMError(
                    f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) "
                    f"exceeds n_ctx={self.n_ctx}; raise n_ctx or shorten the prompt"
                )
            result = llm.create_completion(
                ids,
                max_tokens=max_new_tokens,
                temperature=float(temperature),
                top_k=0,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=1.0,
                stop=[s for s in stop if s] or None,
                seed=seed,
            )
            out.append(cut_at_stop(result["choices"][0]["text"], stop))
        return out


def _drop_after(llm, prompt_ids: list[int]) -> None:
    """Remove everything after the prompt from llama.cpp's KV cache; when the cache cannot
    remove a partial range, decode the prompt again."""
    if not llm._ctx.kv_cache_seq_rm(-1, len(prompt_ids), -1):
        llm.reset()
        llm.eval(prompt_ids)


def _token_logprobs(logits: np.ndarray, targets: list[int]) -> np.ndarray:
    """(N,) log-softmax of float32 ``logits`` (N, V) at ``targets`` (float32 throughout: a
    float64 copy of 262k-wide rows costs more than the model's forward pass)."""
    top = logits.max(-1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(-1))
    return (logits[np.arange(len(targets)), targets] - lse).astype(np.float64)


def _piece(llm, token: int) -> str:
    return llm.detokenize([token], special=True).decode(errors="replace") if token >= 0 else ""


__all__ = ["LlamaCppLM"]
