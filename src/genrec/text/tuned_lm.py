"""Tuned adapters on disk, and :class:`TunedLM`: a base model with an adapter, as a language model.

An adapter folder holds PEFT's ``adapter_model.safetensors`` and ``adapter_config.json`` (LoRA
matrices or the soft prompt; a few MB) and ``genrec_adapter.json``, which names the base model
(a :class:`~genrec.text.transformers_lm.TransformersLM` model: shipped name, folder or GGUF),
its dtype and the method. ``TunedLM.load(path)`` (or the spec ``"tuned:/path/to/adapter"``
through :func:`genrec.text.backends.get_language_model`) loads the base model on first use and puts
the adapter on top: LoRA layers are injected into the transformers model in place, a soft
prompt becomes the ``prefix_embeddings`` of TransformersLM's prompt pass. Scoring is
TransformersLM's own (the prompt computed once, its KV cache shared over the candidates), so a
tuned model plugs in wherever a language model does (``LLMRecommender(language_model=...)``,
``--set llm.lm=tuned:/path``, explanations).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from genrec.errors import ConfigError, LLMError, require
from genrec.text.transformers_lm import TransformersLM

META_FILE = "genrec_adapter.json"


def save_adapter(peft_model, folder, *, base: str, dtype: str, method: str, extra=None) -> Path:
    """Save ``peft_model``'s adapter and the genrec metadata into ``folder`` (files written
    aside, then moved in)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f".adapter.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    peft_model.save_pretrained(str(stage))
    meta = {"base": base, "dtype": dtype, "method": method, **(extra or {})}
    (stage / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    for path in stage.iterdir():  # metadata last: a folder with it is complete
        if path.name != META_FILE:
            os.replace(path, folder / path.name)
    os.replace(stage / META_FILE, folder / META_FILE)
    shutil.rmtree(stage, ignore_errors=True)
    return folder


def read_adapter_meta(folder) -> dict:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise LLMError(
            f"{folder} is not a genrec adapter (no {META_FILE}); make one with "
            "`genrec tune` or genrec.tuning.tune"
        )
    meta = json.loads(path.read_text())
    if meta.get("method") not in ("lora", "prompt") or not meta.get("base"):
        raise LLMError(f"{path} names no base model or an unknown method: {meta}")
    return meta


def attach_adapter(model, folder, method: str, *, merge: bool = True):
    """(transformers model to run, soft prompt or None): the adapter in ``folder`` on ``model``.
    ``merge``: fold LoRA's ``B A`` into the base weights (scoring is then as fast as the base
    model's; in bfloat16 the merged weights are rounded, so scores move by about 1e-2)."""
    require("peft", "llm")
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(folder))
    peft_model.eval()
    if method == "lora":
        if merge:
            return peft_model.merge_and_unload(), None
        return peft_model.get_base_model(), None  # the same model, LoRA layers injected
    prefix = peft_model.prompt_encoder["default"].embedding.weight.detach()
    return model, prefix


class TunedLM(TransformersLM):
    """A base :class:`TransformersLM` with a tuned adapter on top (loaded on first use).

    Args:
        adapter: an adapter folder (``genrec_adapter.json`` names its base model).
        threads, batch_size, cache_dir, device: as for TransformersLM.
        base: use this base model instead of the one the adapter names (e.g. a moved folder).
        merge: merge LoRA into the base weights at load (default; 3x faster scoring of Gemma
            on this CPU than unmerged LoRA layers); False keeps PEFT's LoRA layers (scores equal
            to the tuned model in memory, up to float rounding).
    """

    def __init__(
        self,
        adapter,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        cache_dir=None,
        base: str | None = None,
        merge: bool = True,
        device: str = "cpu",
    ):
        self.adapter, self.merge = Path(adapter), merge
        meta = read_adapter_meta(self.adapter)
        self.method = meta["method"]
        base = base or meta["base"]
        super().__init__(
            base,
            dtype=meta["dtype"],
            threads=threads,
            batch_size=batch_size,
            cache_dir=cache_dir,
            name=f"{Path(base).name}+{self.method}:{self.adapter.name}",
            device=device,
        )

    @classmethod
    def load(cls, adapter, **options) -> TunedLM:
        return cls(adapter, **options)

    def _load(self):
        model, tokenizer = super()._load()
        model, self.prefix_embeddings = attach_adapter(
            model, self.adapter, self.method, merge=self.merge
        )
        return fast_inference(model), tokenizer


def fast_inference(model):
    """``model`` in eval mode with ``requires_grad`` back on its weights. Scoring runs under
    ``inference_mode`` either way, but with torch 2.13 on this CPU a bfloat16 ``linear`` whose
    weight does not require grad took 25x longer (Gemma's 262k-row output layer: 1.9 s instead of
    0.08 s per call); PEFT turns it off on the base weights."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model.eval()


def tuned_backend(rest: str = "", **options) -> TunedLM:
    """The ``tuned:/path/to/adapter`` spec of :data:`genrec.text.backends.BACKENDS`."""
    if not rest:
        raise ConfigError("the tuned backend needs an adapter folder: 'tuned:/path/to/adapter'")
    return TunedLM(rest, **options)


__all__ = [
    "META_FILE",
    "TunedLM",
    "attach_adapter",
    "fast_inference",
    "read_adapter_meta",
    "save_adapter",
    "tuned_backend",
]
