"""Item images described by a vision language model behind any OpenAI-compatible endpoint, and
the descriptions fed to the text recommenders.

The multimodal-LLM path: a model that sees the picture writes what the item's text leaves out
(its colour, its pattern), and every text recommender (``dense``, ``bm25``, ``llm``, the
pipelines over them) reads the result as one more text field.

* :class:`VisionCaptioner` — ``POST {base_url}/chat/completions`` with one user message whose
  content is a ``text`` part (the prompt) and an ``image_url`` part carrying the image as a
  base64 ``data:`` URL, the chat-completions format of OpenAI, vLLM, Ollama and llama.cpp's
  server with a vision projector. HTTP, retries and errors are those of
  :class:`~genrec.text.openai_lm.OpenAICompatibleLM`.
* :func:`caption_images` — captions of image files through an on-disk cache keyed by the
  captioner's model, the prompt and the file's bytes (one small text file per caption, written
  atomically): a second run asks the server only about new or edited images.
* :func:`with_captions` — a dataset whose catalog gains a ``caption`` column among its text
  fields, so the rendered item text reads "A circle. Caption: a red striped circle".
* :func:`write_captions` / ``captions.csv`` — an item folder's captions on disk; the item-folder
  loader (:func:`genrec.data.multimodal.load_item_folder`) attaches them, so ``genrec benchmark
  --dataset DIR`` runs the text models on text plus captions.

genrec ships no local vision language model: :func:`vision_captioner` without an endpoint is a
ConfigError saying which servers to start.

Example (with a server of your own)::

    captioner = VisionCaptioner("http://127.0.0.1:8000/v1", model="llava")
    data = with_captions(data, caption_images(captioner, data.catalog["image"], cache="caps"))
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from genrec.data.dataset import Dataset
from genrec.data.multimodal import CAPTIONS_FILE, with_text_column
from genrec.errors import ConfigError, DataError, LLMError
from genrec.io import atomic_write
from genrec.multimodal.images import file_digest, open_rgb
from genrec.text.openai_lm import OpenAICompatibleLM

DEFAULT_PROMPT = (
    "Describe the item in this picture in one short sentence: its shape, colour, pattern "
    "and background."
)
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
SERVER_HELP = (
    "start an OpenAI-compatible server with a vision model (vLLM, Ollama with a llava or "
    "qwen2.5-vl model, llama.cpp's llama-server with --mmproj) and pass its /v1 URL"
)


class VisionCaptioner:
    """Captions images through an OpenAI-compatible vision chat endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the vision model the server knows.
        prompt: the instruction sent beside each image.
        max_tokens: the longest caption, in tokens.
        client_options: ``api_key``, ``api_key_env``, ``timeout``, ``retries``, ``backoff``...
            of :class:`~genrec.text.openai_lm.OpenAICompatibleLM`.

    Raises:
        ConfigError: a malformed URL, an empty model name or prompt, a bad ``max_tokens``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        prompt: str = DEFAULT_PROMPT,
        max_tokens: int = 60,
        **client_options,
    ):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("the caption prompt is empty; give the instruction to send")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.client = OpenAICompatibleLM(base_url, model=model, chat=True, **client_options)
        self.prompt, self.max_tokens = prompt, max_tokens
        self.name = f"vision:{model}"

    def request_body(self, path: str) -> dict:
        """The chat-completions request describing the image file ``path``."""
        return {
            "model": self.client.model,
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt},
                        {"type": "image_url", "image_url": {"url": image_data_url(path)}},
                    ],
                }
            ],
        }

    def caption(self, path: str) -> str:
        """One caption of the image file ``path`` (whitespace collapsed).

        Raises:
            DataError: the file is missing or not an image.
            LLMError: the server failed or answered without text (names the URL).
        """
        body = self.client.post("/chat/completions", self.request_body(path))
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            text = None
        if isinstance(text, list):  # some servers answer with content parts
            text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
        if not isinstance(text, str) or not text.strip():
            raise LLMError(
                f"{self.client.base_url}/chat/completions returned no caption for {path}: "
                f"{str(body)[:300]}; check that model {self.client.model!r} accepts images"
            )
        return " ".join(text.split())


def vision_captioner(base_url: str | None, *, model: str | None, **options) -> VisionCaptioner:
    """A :class:`VisionCaptioner`, or a ConfigError saying how to get one when no endpoint or
    model is configured (genrec has no local vision language model to fall back on)."""
    if not base_url:
        raise ConfigError(
            f"no vision endpoint is configured and genrec has none built in; {SERVER_HELP}"
        )
    if not model:
        raise ConfigError(
            f"no vision model is named for {base_url}; pass the model name the server lists "
            "(GET /v1/models), e.g. llava"
        )
    return VisionCaptioner(base_url, model=model, **options)


def image_data_url(path: str | os.PathLike) -> str:
    """``data:image/...;base64,...`` of an image file: its own bytes for PNG, JPEG, WebP and
    GIF, else re-encoded as PNG.

    Raises:
        DataError: the file is missing or not an image Pillow can decode.
    """
    image = open_rgb(path)  # checks the file decodes; names it when not
    from PIL import Image

    with Image.open(path) as raw:
        kind = raw.format
    if kind in MEDIA_TYPES:
        data = Path(path).read_bytes()
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, kind = buffer.getvalue(), "PNG"
    return f"data:{MEDIA_TYPES[kind]};base64,{base64.b64encode(data).decode('ascii')}"


def caption_images(
    captioner: VisionCaptioner,
    paths: Sequence[str | None],
    *,
    cache: str | os.PathLike | None = None,
    progress: Callable = lambda items: items,
) -> list[str]:
    """One caption per path (``""`` for None: an item without an image), each read from
    ``cache`` (a folder) when this captioner already described these bytes with this prompt.

    ``progress`` wraps the iteration (e.g. ``RunOptions.track``).
    """
    folder = None if cache is None else Path(cache).expanduser() / _safe(captioner.name)
    captions = []
    for path in progress(list(paths)):
        if not isinstance(path, str) or not path:
            captions.append("")
            continue
        key = hashlib.sha256(f"{captioner.prompt}\x00{file_digest(path)}".encode()).hexdigest()
        stored = None if folder is None else folder / f"{key}.txt"
        if stored is not None and stored.is_file():
            captions.append(stored.read_text())
            continue
        text = captioner.caption(path)
        if stored is not None:
            atomic_write(stored, text)
        captions.append(text)
    return captions


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def with_captions(data: Dataset, captions: Sequence[str]) -> Dataset:
    """``data`` whose catalog has ``captions`` (one per item in vocabulary order, ``""`` for
    none) as the ``caption`` text field, after the catalog's own text fields.

    Raises:
        DataError: not one caption per item.
    """
    return with_text_column(data, "caption", captions)


def caption_dataset(
    data: Dataset,
    captioner: VisionCaptioner,
    *,
    cache: str | os.PathLike | None = None,
    progress: Callable = lambda items: items,
) -> Dataset:
    """``data`` with every item's image captioned (:func:`caption_images`, :func:`with_captions`).

    Raises:
        DataError: the catalog has no ``image`` column.
    """
    if data.catalog is None or "image" not in data.catalog.columns:
        raise DataError(
            f"dataset {data.name!r} has no item images to caption; load an item folder "
            "with images/ (genrec.data.multimodal.load_item_folder)"
        )
    captions = caption_images(captioner, data.catalog["image"], cache=cache, progress=progress)
    return with_captions(data, captions)


def write_captions(folder: str | os.PathLike, data: Dataset) -> Path:
    """Write ``data``'s ``caption`` column to ``folder/captions.csv`` (item, caption), which
    the item-folder loader attaches as a text field; returns the file."""
    if data.catalog is None or "caption" not in data.catalog.columns:
        raise DataError(f"dataset {data.name!r} has no captions; caption it first")
    buffer = io.StringIO()
    rows = csv.writer(buffer)
    rows.writerow(["item", "caption"])
    for item, text in zip(data.items.ids, data.catalog["caption"]):
        rows.writerow([item, text])
    return atomic_write(Path(folder).expanduser() / CAPTIONS_FILE, buffer.getvalue())


__all__ = [
    "DEFAULT_PROMPT",
    "VisionCaptioner",
    "caption_dataset",
    "caption_images",
    "image_data_url",
    "vision_captioner",
    "with_captions",
    "write_captions",
]
