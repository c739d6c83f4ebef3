"""A local CLIP folder in place of the default towers (a tiny random Hugging Face CLIP with a
tiny tokenizer stands in for real weights, which do not ship here): the loading path,
preprocessing, tokenisation and projections are real; an OpenCLIP folder without OpenCLIP
installed is an error naming the extra."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")

from genrec.errors import ConfigError, MissingExtraError  # noqa: E402
from genrec.multimodal.images import CLIP_MEAN, CLIP_STD, get_image_encoder  # noqa: E402
from genrec.text.encoder import get_encoder  # noqa: E402


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    config = transformers.CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 99,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=24,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    transformers.CLIPModel(config).save_pretrained(folder)
    tiny_tokenizer(tmp_path_factory.mktemp("bpe")).save_pretrained(folder)
    return folder


def tiny_tokenizer(folder):
    """A CLIP BPE tokenizer over single letters (ids below the tiny model's 99)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) for c in string.ascii_lowercase})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def test_clip_folder_encodes_like_the_model_itself(clip_folder, tmp_path):
    paths = []
    for name, colour in [("a", "red"), ("b", "navy")]:
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    encoder = get_image_encoder(str(clip_folder))
    vectors = encoder.encode(paths)
    assert encoder.name.startswith(f"clip:{clip_folder.name}:") and vectors.shape == (2, 24)
    model = transformers.CLIPModel.from_pretrained(clip_folder).eval()
    pixels = np.stack(
        [
            np.broadcast_to(np.array(c, np.float32) / 255, (32, 32, 3))
            for c in [(255, 0, 0), (0, 0, 128)]
        ]
    )
    x = torch.from_numpy(((pixels - CLIP_MEAN) / CLIP_STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        expected = model.visual_projection(model.vision_model(pixel_values=x).pooler_output).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_folder_without_a_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="save_pretrained"):
        get_image_encoder(str(tmp_path))


def test_clip_folder_as_text_encoder_is_the_models_text_tower(clip_folder):
    encoder = get_encoder(str(clip_folder))
    texts = ["a red circle", "blue", "a very long description of a striped square"]
    vectors = encoder.encode(texts)
    model = transformers.CLIPModel.from_pretrained(clip_folder).eval()
    tokens = tiny_tokenizer_of(clip_folder)(
        texts, padding=True, truncation=True, max_length=16, return_tensors="pt"
    )
    with torch.no_grad():
        pooled = model.text_model(**tokens).pooler_output
        expected = model.text_projection(pooled).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert vectors.shape == (3, 24) and encoder.name.startswith("clip-text:")
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert encoder.encode([]).shape == (0, 24)


def tiny_tokenizer_of(folder):
    return transformers.AutoTokenizer.from_pretrained(folder)


def test_clip_folder_replaces_both_towers_of_mmdense(clip_folder, tmp_path):
    from genrec.data.synthetic_multimodal import multimodal_world
    from genrec.models import MultimodalDense
    from genrec.options import RunOptions

    world = multimodal_world(tmp_path / "world", n_users=12, n_items=48)
    config = {
        "image_encoder": str(clip_folder),
        "text_encoder": str(clip_folder),
        "image_cache": str(tmp_path / "cache"),
        "text_cache": str(tmp_path / "cache"),
        "epochs": 2,
    }
    model = MultimodalDense(config).fit(world.data, options=RunOptions(seed=0, threads=1))
    assert model.image_.shape == (48, 24) and model.text_.shape == (48, 24)
    assert model.score_texts(["a blue square"]).shape == (1, 48)


def test_same_name_other_weights_is_another_cache_key(clip_folder, tmp_path):
    other = tmp_path / clip_folder.name
    other.mkdir()
    torch.manual_seed(1)
    config = transformers.CLIPConfig.from_pretrained(clip_folder)
    transformers.CLIPModel(config).save_pretrained(other)
    assert get_image_encoder(str(other)).name != get_image_encoder(str(clip_folder)).name


def test_open_clip_folder_without_open_clip_names_the_extra(tmp_path):
    pytest.importorskip("PIL")
    try:
        import open_clip  # noqa: F401

        pytest.skip("OpenCLIP is installed")
    except ImportError:
        pass
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    for make in (get_encoder, get_image_encoder):
        with pytest.raises(MissingExtraError, match=r"genrec\[openclip\]"):
            make(str(tmp_path)).encode(["a red circle"])
