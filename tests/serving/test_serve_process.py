"""genrec serve as a real process on a loopback port: the CLI trains what is missing, keys made
by `genrec keys add` work and never reach the log, acknowledged feedback survives kill -9, and
SIGTERM lets an in-flight request finish."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("uvicorn", reason="needs the serve extra")
import httpx
from servekit import SRC, movielens_folder, start_server


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "genrec.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return movielens_folder(tmp_path_factory.mktemp("ml") / "tiny")


def test_keys_cli_feedback_survives_kill_9(folder, tmp_path):
    keys = tmp_path / "keys.json"
    made = cli("keys", "add", "loader", "--scope", "write", "--file", str(keys))
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("grk_") and key not in keys.read_text()
    db, log = tmp_path / "feedback.db", tmp_path / "serve.log"
    args = [
        "--dataset",
        str(folder),
        "--models",
        "ease",
        "--artifacts",
        str(tmp_path / "art"),
        "--api-keys",
        str(keys),
        "--feedback",
        str(db),
        "--verbose",
    ]
    proc, url = start_server(args, log=log)
    acked: list[str] = []
    stop = threading.Event()

    def post(worker: int):
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=5) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                ids = [f"w{worker}-{n}-{j}" for j in range(5)]
                events = [{"event_id": e, "user": "1", "item": "2"} for e in ids]
                try:
                    answer = client.post("/feedback", json={"events": events})
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    acked.extend(ids)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-load: posts are still in flight
    proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 100
    with sqlite3.connect(db) as conn:  # what a restarted server (or genrec train) reads
        stored = {row[0] for row in conn.execute("SELECT event_id FROM feedback")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"
    assert key not in log.read_text(errors="replace")  # the access log never shows the key

    refit = cli(
        "train",
        "--dataset",
        str(folder),
        "--model",
        "ease",
        "--feedback",
        str(db),
        "--output",
        str(tmp_path / "refit"),
    )
    assert refit.returncode == 0, refit.stderr
    assert f"added {len(stored)} feedback events" in refit.stderr


def test_sigterm_drains_an_in_flight_request(folder, tmp_path):
    proc, url = start_server(
        [
            "--dataset",
            str(folder),
            "--models",
            "ease",
            "--artifacts",
            str(tmp_path / "art"),
            "--feedback",
            str(tmp_path / "fb.db"),
        ]
    )
    port = int(url.rsplit(":", 1)[1])
    body = b'{"events": [{"event_id": "slow", "user": "1", "item": "2"}]}'
    head = (
        f"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body[:10])  # the request has started; its body is not all here
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):  # no new connections while draining
            httpx.get(url + "/health", timeout=2)
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 200"), answer
    assert '"stored":1' in answer
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


def test_serve_cli_errors_are_one_line(folder, tmp_path, capsys):
    from genrec.cli import main

    assert main(["serve", "--dataset", str(folder), "--models", "nosuch", "--port", "0"]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert (
        main(
            [
                "serve",
                "--dataset",
                str(folder),
                "--api-keys",
                str(tmp_path / "none.json"),
                "--artifacts",
                str(tmp_path / "art"),
                "--port",
                "0",
            ]
        )
        == 2
    )
    assert "genrec keys add" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the scope is not one of read, write, admin
        main(["keys", "add", "x", "--scope", "root", "--file", str(tmp_path / "k")])
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_workers_share_one_rate_limit(folder, tmp_path):
    args = ["--dataset", str(folder), "--models", "ease", "--artifacts", str(tmp_path / "art")]
    limits = ["--workers", "2", "--rate-limit", "0.001", "--burst", "5"]
    proc, url = start_server(args + limits, log=tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            statuses = [client.get("/users/1/recommendations?k=3").status_code for _ in range(20)]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert statuses.count(200) == 5 and statuses.count(429) == 15  # not 5 per worker
