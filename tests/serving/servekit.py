"""Shared by the genrec serve tests: a tiny MovieLens-format folder with planted clusters, and
helpers that start ``genrec serve`` as a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from genrec.data.synthetic import planted_clusters

GENRES = ("Action", "Adventure", "Animation", "Children's")  # ML-100K flags 1..4: one per cluster
WORDS = ("space", "river", "castle", "robot")  # a title word per cluster, for text search
SRC = str(Path(__file__).resolve().parents[2] / "src")


def movielens_folder(folder: Path, *, n_users: int = 40, n_items: int = 24) -> Path:
    """Planted clusters (4) written as u.data + u.item: users u and items i are 1-based ids,
    item i's cluster is (i - 1) % 4, its title names the cluster's word, its genre the
    cluster's genre."""
    world = planted_clusters(n_users=n_users, n_items=n_items, n_clusters=4)
    data = world.data
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        f"{u + 1}\t{i + 1}\t5\t{t}" for u, i, t in zip(data.user_idx, data.item_idx, data.timestamp)
    ]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    lines = []
    for i in range(n_items):
        flags = ["0"] * 19
        flags[1 + i % 4] = "1"
        title = f"The {WORDS[i % 4].title()} Film {i + 1} (1995)"
        lines.append(f"{i + 1}|{title}|01-Jan-1995||url|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], *, env_extra: dict | None = None, log: Path | None = None):
    """``genrec serve ARGS --port P`` in a new process; returns (process, base URL) once /ready
    answers (at most 120 s)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "CI": "true", **(env_extra or {})}
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "genrec.cli", "serve", *args, "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"genrec serve exited with {proc.returncode}"
                + (f": {Path(log).read_text()}" if log else "")
            )
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("genrec serve did not become ready within 120 s")
