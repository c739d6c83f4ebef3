"""Data-parallel training: one process through the process group equals the plain fit, two
processes keep identical replicas that find the planted answer, failures end every process, and
`genrec train --nproc` / torchrun save one artifact."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from genrec import distributed
from genrec.build import load_model
from genrec.cli import main
from genrec.data.synthetic import deterministic_sequences, planted_clusters
from genrec.errors import DataError, DistributedError
from genrec.evaluation.protocol import evaluate_split
from genrec.models import MODELS, MultVAE, SASRec
from genrec.models.neural import DataParallel, module_state, seeded, shuffled_batches
from genrec.options import RunOptions

OPTIONS = RunOptions(seed=3, threads=1)
VAE = {"hidden_dims": (), "latent_dim": 8, "lr": 1e-2, "batch_size": 16, "max_epochs": 2}
SAS = {"dim": 16, "max_len": 8, "lr": 5e-3, "batch_size": 16, "max_epochs": 2, "loss": "ce"}
TIMEOUT_S = 240  # a bound, not a speed claim: the processes start torch on a busy machine


def _worlds():
    return planted_clusters(noise=1, seed=0), deterministic_sequences(n_users=80, seed=0)


def _fits(vae_config=VAE, sas_config=SAS):
    """MultVAE and SASRec fitted (validated on the valid part) on the planted worlds."""
    clusters, chains = _worlds()
    vae = MultVAE(vae_config).fit(clusters.split.train, valid=clusters.split.valid, options=OPTIONS)
    sas = SASRec(sas_config).fit(chains.split.train, valid=chains.split.valid, options=OPTIONS)
    return vae, sas


def _same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_one_process_in_a_group_gives_exactly_the_plain_fit():
    plain_vae, plain_sas = _fits()
    address = f"tcp://127.0.0.1:{distributed.free_port()}"
    with distributed.process_group(rank=0, world_size=1, init_method=address) as group:
        assert group == distributed.Group(0, 1)
        vae, sas = _fits()
    assert not dist.is_initialized()
    for plain, grouped in ((plain_vae, vae), (plain_sas, sas)):
        assert _same_state(module_state(plain.net_), module_state(grouped.net_))
        assert plain.history_ == grouped.history_ and plain.loss_history_ == grouped.loss_history_


def test_the_group_is_destroyed_when_the_block_raises():
    address = f"tcp://127.0.0.1:{distributed.free_port()}"
    with pytest.raises(DataError, match="inside"):
        with distributed.process_group(rank=0, world_size=1, init_method=address):
            raise DataError("inside")
    assert not dist.is_initialized()


def _linear_fit(dp_class, seed: int):
    """A linear regression trained by SGD over 17 rows in batches of 8 (the last batch has one
    row: with two processes, rank 1's shard of it is empty): (weights, shards seen)."""
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(17, 2)).astype(np.float32))
    with seeded(0):
        net = torch.nn.Linear(2, 1)
    dp = dp_class(net, torch.optim.SGD(net.parameters(), lr=0.1), seed=seed)
    shards = []
    for rows in dp.batches(17, 8, np.random.default_rng(seed)):
        shards.append(rows.tolist())
        dp.step((net(x[rows]) - 1).square().mean(), len(rows))
    return [p.detach().numpy().copy() for p in net.parameters()], shards


# the trainers sharded beyond MultVAE and SASRec: tiny configs, 2 epochs, validated
SHARDED = {
    "bpr": {"dim": 8, "lr": 0.05, "batch_size": 64, "max_epochs": 2, "eval_every": 1},
    "recvae": {"hidden_dim": 16, "latent_dim": 8, "batch_size": 16, "max_epochs": 2},
    "listcvae": {
        "slate_size": 3,
        "embed_dim": 8,
        "cond_dim": 8,
        "hidden_dim": 16,
        "latent_dim": 4,
        "slates_per_user": 2,
        "batch_size": 32,
        "max_epochs": 2,
        "anneal_epochs": 1,
    },
    "ldiffrec": {
        "latent_dim": 8,
        "hidden": (16,),
        "batch_size": 16,
        "max_epochs": 2,
        "svd_dim": 4,
        "n_clusters": 2,
    },
    "irgan": {"dim": 8, "batch_size": 16, "max_epochs": 2, "pretrain_epochs": 0},
    "tiger": {  # sequences with item titles (its semantic IDs come from item text)
        "text_encoder": "hashing",
        "text_cache": "off",
        "n_levels": 2,
        "codebook_size": 4,
        "rqvae_epochs": 3,
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "ff_dim": 16,
        "max_len": 6,
        "batch_size": 16,
        "max_epochs": 2,
    },
}


def _sharded_fits() -> dict:
    """Each model of SHARDED fitted on the planted clusters (TIGER: the planted sequences),
    validated: its saved state and its loss and validation history."""
    clusters, chains = planted_clusters(noise=1, seed=0), deterministic_sequences(n_users=40)
    fits = {}
    for name, config in SHARDED.items():
        split = (chains if name == "tiger" else clusters).split
        model = MODELS[name](config).fit(split.train, valid=split.valid, options=OPTIONS)
        fits[name] = {
            "state": {k: np.asarray(v) for k, v in model._state().items()},
            "history": (model.loss_history_, model.history_),
        }
    return fits


def _draws_in_step(seed: int) -> int:
    """A loop drawing once per batch from its generator over 17 rows in batches of 8 (with two
    processes rank 1's share of the last batch is empty): the generator's next draw after it."""
    rng = np.random.default_rng(seed)
    with seeded(0):
        net = torch.nn.Linear(1, 1)
    dp = DataParallel(net, torch.optim.SGD(net.parameters(), lr=0.1), seed=seed)
    for rows in dp.batches(17, 8, rng, skipped=lambda: rng.integers(2**31)):
        rng.integers(2**31)
        dp.step(net(torch.ones(len(rows), 1)).mean(), len(rows))
    return int(rng.integers(2**31))


def _replica(seed: int):
    """One rank's part of the two-process test: a linear fit with its shards, its thread count,
    the fitted weights and the test NDCG@10 of each model (rank 0 validates)."""
    linear, shards = _linear_fit(DataParallel, seed)
    vae, sas = _fits({**VAE, "max_epochs": 25}, {**SAS, "max_epochs": 25})
    clusters, chains = _worlds()
    return {
        "linear": linear,
        "shards": shards,
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
        "vae": module_state(vae.net_),
        "sas": module_state(sas.net_),
        "ndcg": [
            evaluate_split(vae, clusters.split).mean("ndcg@10"),
            evaluate_split(sas, chains.split).mean("ndcg@10"),
        ],
        "best_epochs": [vae.best_epoch_, sas.best_epoch_],
        "sharded": _sharded_fits(),
        "next_draw": _draws_in_step(seed),
        "anneal": _anneal_histories(),
    }


def _anneal_histories() -> list[list[float]]:
    """Mult-VAE's KL weight after each of 3 epochs, in batches of n - 1 training users (with two
    processes rank 1's share of the last batch is empty) and of 1 user (rank 1's share of every
    batch is empty)."""
    train = planted_clusters(noise=1, seed=0).split.train
    n = int((np.diff(train.user_items.indptr) > 0).sum())
    out = []
    for batch in (n - 1, 1):
        config = {**VAE, "batch_size": batch, "max_epochs": 3, "anneal_steps": 1000}
        out.append(MultVAE({**config, "beta_max": 1.0}).fit(train, options=OPTIONS).beta_history_)
    return out


class _WholeBatches:
    """The plain single-process loop, for comparison with the sharded one."""

    def __init__(self, module, optimizer, *, seed):
        self.optimizer = optimizer

    def batches(self, n_rows, batch_size, rng):
        return shuffled_batches(n_rows, batch_size, rng)

    def step(self, loss, count):
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


@pytest.fixture(scope="module")
def two_ranks():
    """What :func:`_replica` returned on each of two processes (one launch for the module)."""
    return distributed.launch(_replica, (7,), nproc=2, threads=1, timeout_s=TIMEOUT_S)


def test_two_processes_keep_identical_replicas_that_find_the_planted_answer(two_ranks):
    ranks = two_ranks
    first, second = ranks
    order = np.random.default_rng(7).permutation(17)
    seen = [row for rank in ranks for rows in rank["shards"] for row in rows]
    assert sorted(seen) == list(range(17))  # disjoint shards covering the epoch
    assert first["shards"][0] == order[:8:2].tolist()  # rank 0: every other row of a batch
    assert len(first["shards"]) == 3 and len(second["shards"]) == 2  # rank 1's last is empty
    plain, _ = _linear_fit(_WholeBatches, 7)  # one process, whole batches
    for a, b, c in zip(first["linear"], second["linear"], plain):
        assert np.array_equal(a, b) and np.allclose(a, c, atol=1e-6)
    assert [r["threads"] for r in ranks] == [1, 1]
    assert _same_state(first["vae"], second["vae"]) and _same_state(first["sas"], second["sas"])
    assert first["best_epochs"] == second["best_epochs"]  # rank 0's early stopping, followed
    assert first["next_draw"] == second["next_draw"] == _draws_in_step(seed=7)
    plain = _sharded_fits()
    for name in SHARDED:  # gradients averaged before every step: the replicas never drift
        ours, theirs = first["sharded"][name], second["sharded"][name]
        assert _same_state(ours["state"], theirs["state"]), name
        assert ours["history"] == theirs["history"], name
        assert not _same_state(ours["state"], plain[name]["state"]), name  # sharded batches
    vae_ndcg, sas_ndcg = first["ndcg"]
    assert vae_ndcg > 0.9 and sas_ndcg > 0.9, first["ndcg"]  # the planted items, found
    assert not multiprocessing.active_children()
    for pid in (r["pid"] for r in ranks):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_kl_annealing_advances_on_every_rank_as_in_one_process(two_ranks):
    """A rank with an empty share of a batch still steps: its annealing step counts it."""
    one_process = _anneal_histories()
    train = planted_clusters(noise=1, seed=0).split.train
    n = int((np.diff(train.user_items.indptr) > 0).sum())
    assert one_process == [  # beta = step / 1000 at the last step of each epoch
        [1 / 1000, 3 / 1000, 5 / 1000],
        [(n - 1) / 1000, (2 * n - 1) / 1000, (3 * n - 1) / 1000],
    ]
    assert two_ranks[0]["anneal"] == two_ranks[1]["anneal"] == one_process


def _fail_on_rank_one(pid_folder: str):
    Path(pid_folder, str(os.getpid())).touch()
    if distributed.current().rank == 1:
        raise DataError("rank one's planted failure")
    dist.barrier()  # rank 0 would wait here for ever without the launcher


def test_a_failing_process_ends_the_others_and_its_error_is_raised(tmp_path):
    with pytest.raises(DataError, match="planted failure"):
        distributed.launch(_fail_on_rank_one, (str(tmp_path),), nproc=2, threads=1)
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert len(pids) == 2 and not multiprocessing.active_children()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _sleep(pid_folder: str):
    Path(pid_folder, str(os.getpid())).touch()
    time.sleep(TIMEOUT_S)


LAUNCHER = """import sys
from test_distributed import _sleep
from genrec import distributed
distributed.launch(_sleep, (sys.argv[1],), nproc=2, threads=1)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_end_when_the_launcher_is_killed(tmp_path):
    paths = [str(Path(__file__).parents[1] / "src"), str(Path(__file__).parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path)], env=env)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        launcher.kill()  # SIGKILL: the launcher runs no cleanup of its own
        launcher.wait()
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert len(pids) == 2
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in pids if _alive(pid)]
    for pid in left:  # the test ends what it started, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert not left


def test_a_bug_in_a_process_is_reported_with_its_rank_type_and_traceback():
    try:
        np.array([1]).item(3)
    except IndexError as exc:
        error = distributed._portable(exc, 1, 2)
    assert isinstance(error, DistributedError)
    assert "process 1 of 2 failed: IndexError: index 3 is out of bounds" in str(error)
    assert "np.array([1]).item(3)" in error.worker_traceback
    planted = DataError("kept as is")
    assert distributed._portable(planted, 0, 2) is planted


def _dataset_folder(tmp_path: Path) -> Path:
    """The planted clusters as a MovieLens ``u.data`` folder."""
    data = planted_clusters(noise=1, seed=0).split.train
    folder = tmp_path / "planted"
    folder.mkdir()
    lines = [
        f"{data.users.ids[u]}\t{data.items.ids[i]}\t5\t{t}"
        for u, i, t in zip(data.user_idx, data.item_idx, data.timestamp)
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


TRAIN = ["--model", "multvae", "--set", "max_epochs=2", "--set", "latent_dim=8", "--quiet"]


def test_genrec_train_nproc_and_torchrun_save_one_artifact(tmp_path, capsys, monkeypatch):
    folder = _dataset_folder(tmp_path)
    monkeypatch.setenv("CI", "true")
    out = tmp_path / "nproc"
    argv = ["train", "--dataset", str(folder), *TRAIN, "--nproc", "2", "--output", str(out)]
    assert main(argv) == 0
    assert "saved multvae" in capsys.readouterr().out
    model = load_model(out)
    recipe = json.loads((out / "config.json").read_text())
    assert recipe["processes"] == 2 and recipe["threads"] == 1
    runner = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    port = ["--master-port", str(distributed.free_port())]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "CI": "true"}
    done = subprocess.run(
        [*runner, *port, "-m", "genrec.cli", "train", "--dataset", str(folder), *TRAIN]
        + ["--output", str(tmp_path / "torchrun")],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    again = load_model(tmp_path / "torchrun")
    assert json.loads((tmp_path / "torchrun" / "config.json").read_text())["processes"] == 2
    assert _same_state(module_state(model.net_), module_state(again.net_))


def test_more_trainers_in_a_group_of_one_give_exactly_the_plain_fit():
    plain = _sharded_fits()
    address = f"tcp://127.0.0.1:{distributed.free_port()}"
    with distributed.process_group(rank=0, world_size=1, init_method=address):
        grouped = _sharded_fits()
    for name in SHARDED:
        assert _same_state(plain[name]["state"], grouped[name]["state"]), name
        assert plain[name]["history"] == grouped[name]["history"], name
