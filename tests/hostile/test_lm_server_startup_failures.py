"""``genrec serve-lm`` checks its port and loads its model before it says it is serving: a port
out of range or in use, an unknown host or a model that cannot be loaded exit with code 2 and
one line, never a traceback; an unknown transformers model fails at once offline and names the
models that exist locally."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")


def serve_lm(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genrec.cli", "serve-lm", *args],
        env={**os.environ, "CI": "1", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert "serving" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range(port):
    assert "--port" in one_line_error(serve_lm("--model", "fake", "--port", port))


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        assert "another --port" in one_line_error(serve_lm("--model", "fake", "--port", port))


def test_unknown_host():
    assert "--host" in one_line_error(
        serve_lm("--model", "fake", "--host", "no.such.host.invalid", "--port", "0")
    )


def test_unknown_transformers_model_fails_offline_naming_local_models(tmp_path):
    pytest.importorskip("transformers", reason="needs the llm extra")
    line = one_line_error(
        serve_lm(
            "--model",
            "transformers:nobody/no-such-model",
            "--port",
            "0",
            HF_HUB_OFFLINE="1",
            GENREC_CACHE_DIR=str(tmp_path),
            HF_HUB_CACHE=str(tmp_path / "hf"),
        )
    )
    assert "nobody/no-such-model" in line and "gemma-3-270m" in line and "smollm2-135m" in line


def test_unreachable_hub_fails_at_once(monkeypatch, tmp_path):
    """No HF_HUB_OFFLINE: the hub is asked once (here: unreachable) and not retried."""
    hub = pytest.importorskip("huggingface_hub", reason="needs the llm extra")
    from genrec.errors import LLMError
    from genrec.text.transformers_lm import TransformersLM

    calls = []

    def unreachable(name, **kwargs):
        calls.append(name)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "model_info", unreachable)
    monkeypatch.setattr(hub, "try_to_load_from_cache", lambda *a, **k: None)
    lm = TransformersLM("nobody/no-such-model", cache_dir=tmp_path, threads=1)
    with pytest.raises(LLMError, match="hub is unreachable.*gemma-3-270m"):
        lm.generate(["x"], max_new_tokens=1)
    assert calls == ["nobody/no-such-model"]


def test_model_failing_to_load_is_one_line():
    from genrec.errors import LLMError
    from genrec.serving.lm_server import load
    from genrec.text.lm import FakeLanguageModel

    def broken(prompt):
        raise RuntimeError("weights are corrupt\nsecond line")

    with pytest.raises(LLMError, match=r"^could not load .*RuntimeError: weights are corrupt$"):
        load(FakeLanguageModel(generate_fn=broken))
