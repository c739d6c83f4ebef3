"""A local Hugging Face CLIP folder as the image encoder (a tiny random CLIP stands in for real
weights, which do not ship here): the loading path, preprocessing and projection are real."""

from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")

from genrec.errors import ConfigError  # noqa: E402
from genrec.multimodal.images import CLIP_MEAN, CLIP_STD, get_image_encoder  # noqa: E402


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
    return folder


def test_clip_folder_encodes_like_the_model_itself(clip_folder, tmp_path):
    paths = []
    for name, colour in [("a", "red"), ("b", "navy")]:
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    encoder = get_image_encoder(str(clip_folder))
    vectors = encoder.encode(paths)
    assert encoder.name == f"clip:{clip_folder.name}" and vectors.shape == (2, 24)
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
