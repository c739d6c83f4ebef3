"""Language-model backends by spec; each imports its backend on first use, so nothing heavy
loads before a model is asked for. The protocol every backend follows is :mod:`genrec.text.lm`.

:func:`get_language_model` builds a backend from ``"backend"`` or ``"backend:argument"``,
registered in :data:`BACKENDS` (keyword options go to the backend):

============================================  ===============================================
``fake``                                      :class:`FakeLanguageModel`
``transformers:gemma-3-270m``                 :class:`~genrec.text.transformers_lm.TransformersLM`
``transformers:/path/to/hf-model``            (a shipped name, a local folder or hub name, or
``transformers:/path/to/model.gguf``          a GGUF file; the ``llm`` extra)
``llamacpp:gemma-3-270m``                     :class:`~genrec.text.llamacpp_lm.LlamaCppLM`
``llamacpp:/path/to/model.gguf``              (the ``llamacpp`` extra)
``openai:http://host:8000/v1?model=NAME``     :class:`~genrec.text.openai_lm.OpenAICompatibleLM`
                                              (``&chat=1`` generates through chat completions)
``tuned:/path/to/adapter``                   :class:`~genrec.text.tuned_lm.TunedLM` (a base
                                              model + a LoRA / soft-prompt adapter)
``default`` / ``default:smollm2-135m``        the backend measured fastest for ``job``
                                              ("score" or "generate") in :data:`DEFAULT_BACKEND`,
                                              transformers when llama-cpp-python is missing
============================================  ===============================================

``threads=`` and ``cache_dir=`` work for every backend (remote and fake ones ignore them).
Shipped models: ``gemma-3-270m`` (base model, the default: scoring candidates) and
``smollm2-135m`` (instruction-tuned: explanations, dialogue); see :mod:`genrec.text.weights`.
Backends get ``chat=True`` to wrap prompts in the model's chat template. Nothing heavy (torch, transformers, llama_cpp) is imported
until a backend is made.

Example:
    >>> get_language_model("fake").name
    'fake'
"""

from __future__ import annotations

from collections.abc import Callable

from genrec.errors import ConfigError
from genrec.text.lm import FakeLanguageModel, LanguageModel

DEFAULT_MODEL = "gemma-3-270m"  # the base model: likelihood scoring of candidates
# job -> the backend that was faster for it on the same GGUF, 1 thread (benchmarks/
# language_models.py, BENCHMARKS.md "language-models"); "default" falls back to transformers
# when llama-cpp-python is not installed.
DEFAULT_BACKEND: dict[str, str] = {"score": "transformers", "generate": "llamacpp"}


def llamacpp_available() -> bool:
    """Whether llama-cpp-python is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _transformers(rest: str = "", **options) -> LanguageModel:
    from genrec.text.transformers_lm import TransformersLM

    return TransformersLM(rest or DEFAULT_MODEL, **options)


def _llamacpp(
    rest: str = "", *, threads: int | None = None, device: str | None = None, **options
) -> LanguageModel:  # the llama.cpp build decides where it runs (no GPU layers requested)
    from genrec.text.llamacpp_lm import LlamaCppLM

    options.setdefault("n_threads", threads)
    return LlamaCppLM(rest or DEFAULT_MODEL, **options)


def _tuned(rest: str = "", **options) -> LanguageModel:
    from genrec.text.tuned_lm import tuned_backend

    return tuned_backend(rest, **options)


def _fake(rest: str = "", *, threads=None, cache_dir=None, device=None, **options) -> LanguageModel:
    return FakeLanguageModel(**options)  # run-time options of local backends do not apply


def _openai(
    rest: str = "", *, threads=None, cache_dir=None, device=None, **options
) -> LanguageModel:  # the server decides where it runs
    from urllib.parse import parse_qs, urlsplit, urlunsplit

    from genrec.text.openai_lm import OpenAICompatibleLM

    parts = urlsplit(rest)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    model = options.pop("model", None) or query.pop("model", None)
    if not model:
        raise ConfigError(
            f"openai spec {rest!r} names no model; write 'openai:http://host:8000/v1?model=NAME'"
        )
    if "chat" in query:
        options.setdefault("chat", query.pop("chat").lower() in ("1", "true", "yes"))
    if query:
        raise ConfigError(f"unknown options {sorted(query)} in {rest!r}; allowed: model, chat")
    return OpenAICompatibleLM(urlunsplit(parts._replace(query="")), model=model, **options)


def _default(rest: str = "", *, job: str = "score", **options) -> LanguageModel:
    if job not in DEFAULT_BACKEND:
        raise ConfigError(f"job must be one of {sorted(DEFAULT_BACKEND)}, got {job!r}")
    backend = DEFAULT_BACKEND[job]
    if backend == "llamacpp" and not llamacpp_available():
        backend = "transformers"
    return BACKENDS[backend](rest, **options)


# spec prefix -> factory(rest_of_spec, **options); literal, imports deferred to the factories.
BACKENDS: dict[str, Callable[..., LanguageModel]] = {
    "fake": _fake,
    "transformers": _transformers,
    "llamacpp": _llamacpp,
    "openai": _openai,
    "default": _default,
    "tuned": _tuned,
}


def get_language_model(spec: str | LanguageModel, **options) -> LanguageModel:
    """A language model from ``"backend"`` or ``"backend:argument"`` (or pass one through).

    >>> get_language_model("fake").name
    'fake'
    """
    if not isinstance(spec, str):
        if isinstance(spec, LanguageModel):
            return spec
        raise ConfigError(f"expected a language-model spec string, got {type(spec).__name__}")
    backend, _, rest = spec.partition(":")
    factory = BACKENDS.get(backend.strip().lower())
    if factory is None:
        raise ConfigError(
            f"unknown language-model backend {backend!r} in {spec!r}; choose from "
            f"{', '.join(sorted(BACKENDS))} (e.g. 'fake', 'transformers:gemma-3-270m')"
        )
    return factory(rest, **options)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "get_language_model",
    "llamacpp_available",
]
