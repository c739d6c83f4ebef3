"""Train one RecBole 1.2.1 model on a split written by genrec and save its test scores.

Runs inside RecBole's own virtualenv (``scripts/setup_recbole.sh``: RecBole needs numpy < 2),
so it imports RecBole and never genrec. ``benchmarks/recbole_peers.py`` writes the split and
calls this script once per model and seed:

    .venv-recbole/bin/python benchmarks/recbole_runner.py --data DIR --model DiffRec \
        --seed 2020 --epochs 300 --out scores.npz

``DIR/genrec/genrec.{train,valid,test}.inter`` are RecBole atomic files; RecBole keeps that split
as given (``benchmark_filename``). With ``--sequence`` they are RecBole's sequential benchmark
files (one row per target: ``user_id``, ``item_id_list`` of up to ``--max-len`` preceding items,
``item_id``), for sequence models such as GRU4Rec, SASRec and BERT4Rec. Everything else is RecBole's default for the model, except
that training early-stops on valid NDCG@10 (patience 10, at most ``--epochs`` epochs), as in
../shared/PEERS.md. The output holds the model's raw scores of every item for every test user
(RecBole's ``full_sort_predict``, history not masked) under the users' and items' file tokens,
RecBole's own test metrics, the best epoch, the epochs run, and the wall and CPU seconds of
data preparation + fit + test.

A run can be stopped and resumed: after every validation the trainer's whole state (model,
optimiser, early-stopping counters, random generators, epochs and seconds so far) is written to
``CHECKPOINT_DIR/last.pth``, and a later run with the same arguments continues from it (the
random generators are restored, so a resumed run follows the uninterrupted one; ``--stop-after
N`` ends a piece after N validated epochs). Seconds are summed over the pieces; the CPU seconds
exclude any time the process was paused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

# torch >= 2.6 loads checkpoints weights-only; RecBole 1.2.1 saves its config in them.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_logger, init_seed  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding genrec/genrec.*.inter")
    parser.add_argument("--model", required=True, help="RecBole model name, e.g. DiffRec")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--config", default="{}", help="JSON of extra RecBole settings")
    parser.add_argument("--out", required=True, help=".npz to write")
    parser.add_argument("--sequence", action="store_true", help="sequential benchmark files")
    parser.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH")
    parser.add_argument(
        "--stop-after",
        type=int,
        help="end this piece of the run after this many validated epochs (resume later)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    settings = {
        "data_path": args.data,
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "eval_args": {
            "group_by": "user",
            "order": "RO",
            "split": {"RS": [0.8, 0.1, 0.1]},
            "mode": "full",
        },
        "metrics": ["Recall", "NDCG", "MRR", "Hit"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "epochs": args.epochs,
        "stopping_step": 10,
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": os.path.join(args.data, "saved", f"{args.model}-{args.seed}"),
        **(_sequence_settings(args.max_len) if args.sequence else {}),
        **json.loads(args.config),
    }
    config = Config(model=args.model, dataset="genrec", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)

    clock = Clock()
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    last = os.path.join(settings["checkpoint_dir"], "last.pth")
    epochs = _count_epochs(trainer, args.out + ".progress.jsonl", clock)
    if os.path.exists(last):
        _resume(trainer, train, last, epochs, clock)
    elif os.path.exists(args.out + ".progress.jsonl"):
        os.remove(args.out + ".progress.jsonl")  # a run stopped before its first checkpoint

    piece = {"epochs": 0}

    def checkpoint(_epoch_idx, _score):
        _save_last(trainer, train, last, epochs, clock)
        piece["epochs"] += 1
        if args.stop_after is not None and piece["epochs"] >= args.stop_after:
            raise _Pause

    try:
        trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=checkpoint)
    except _Pause:
        print(f"paused after epoch {epochs['run']}; run again to resume", file=sys.stderr)
        return 0
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    seconds, cpu_seconds = clock.wall(), clock.cpu()

    users, scores = _test_scores(model, test)
    np.savez_compressed(
        args.out,
        scores=scores.astype(np.float32),
        users=np.array(dataset.id2token("user_id", users)),
        items=np.array(dataset.id2token("item_id", np.arange(1, dataset.item_num))),
        info=json.dumps(
            {
                "model": args.model,
                "seed": args.seed,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "resumed": epochs["resumed"],
                "best_epoch": epochs["best"],
                "epochs_run": epochs["run"],
                "test": {k.lower(): float(v) for k, v in test_result.items()},
            }
        ),
    )
    if os.path.exists(last):
        os.remove(last)
    return 0


class _Pause(Exception):
    """``--stop-after`` epochs of this piece are done (the checkpoint is written)."""


class Clock:
    """Wall and process-CPU seconds since this piece of the run started, plus those of the
    pieces before it (restored from the checkpoint)."""

    def __init__(self):
        self.wall_start, self.cpu_start = time.perf_counter(), time.process_time()
        self.wall_before = self.cpu_before = 0.0

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.wall_start

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start


def _save_last(trainer, train, path: str, epochs: dict, clock: Clock) -> None:
    """The trainer's state after a validation, in RecBole's checkpoint format (so
    ``resume_checkpoint`` reads it) plus what a resumed run also needs; written atomically, so
    a kill leaves the previous checkpoint whole."""
    state = {
        "config": trainer.config,
        "epoch": epochs["run"] - 1,  # 0-based index of the epoch just validated
        "cur_step": trainer.cur_step,
        "best_valid_score": trainer.best_valid_score,
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
        "best_file": trainer.saved_model_file,
        "epochs": dict(epochs),
        "seconds": [clock.wall(), clock.cpu()],
        "rng": [
            torch.get_rng_state(),
            np.random.get_state(),
            random.getstate(),
            train.generator.get_state(),  # the training loader's shuffling
        ],
    }
    torch.save(state, path + ".tmp", pickle_protocol=4)
    os.replace(path + ".tmp", path)


def _resume(trainer, train, path: str, epochs: dict, clock: Clock) -> None:
    trainer.resume_checkpoint(path)  # model, optimiser, next epoch, early-stopping counters
    state = torch.load(path, weights_only=False)
    trainer.saved_model_file = state["best_file"]  # resume_checkpoint pointed it at ``path``
    epochs.update(state["epochs"], resumed=state["epochs"]["resumed"] + 1)
    clock.wall_before, clock.cpu_before = state["seconds"]
    torch.set_rng_state(state["rng"][0])
    np.random.set_state(state["rng"][1])
    random.setstate(state["rng"][2])
    train.generator.set_state(state["rng"][3])


def _sequence_settings(max_len: int) -> dict:
    """Read the given item lists (no augmentation; item_id_list tokens are item ids), keep time
    order, and train CE models without negative sampling, as RecBole requires."""
    return {
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": max_len,
        "eval_args": {
            "group_by": "user",
            "order": "TO",
            "split": {"LS": "valid_and_test"},
            "mode": "full",
        },
        "train_neg_sample_args": None,
    }


def _count_epochs(trainer, progress: str, clock: Clock) -> dict:
    """Wrap the trainer so the epochs run and the best (checkpointed) epoch are recorded
    (1-based, as genrec reports them); models without epochs report 1 / 1. Each validation
    appends ``{"epoch", "valid", "seconds", "cpu_seconds"}`` to the ``progress`` JSON-lines
    file, so a long run can be followed (and its state known if it is stopped)."""
    epochs = {"run": 0, "best": 0, "resumed": 0}
    train_epoch, save, valid_epoch = (
        trainer._train_epoch,
        trainer._save_checkpoint,
        trainer._valid_epoch,
    )

    def logged_valid_epoch(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        line = {
            "epoch": epochs["run"],
            "valid": float(score),
            "seconds": clock.wall(),
            "cpu_seconds": clock.cpu(),
        }
        with open(progress, "a") as f:
            f.write(json.dumps(line) + "\n")
        return score, result

    def counted_train_epoch(*args, **kwargs):
        epochs["run"] += 1
        return train_epoch(*args, **kwargs)

    def counted_save(epoch, *args, **kwargs):
        epochs["best"] = epoch + 1
        return save(epoch, *args, **kwargs)

    trainer._train_epoch, trainer._save_checkpoint = counted_train_epoch, counted_save
    trainer._valid_epoch = logged_valid_epoch
    return epochs


@torch.no_grad()
def _test_scores(model, test) -> tuple[np.ndarray, np.ndarray]:
    """RecBole's full-sort scores for each test user, item 0 (RecBole's padding) dropped."""
    model.eval()
    users, rows = [], []
    for interaction, _history, _pos_u, _pos_i in test:
        batch_users = interaction[model.USER_ID].numpy()
        scores = model.full_sort_predict(interaction).view(len(batch_users), -1)
        users.append(batch_users)
        rows.append(scores[:, 1:].numpy())
    return np.concatenate(users), np.concatenate(rows)


if __name__ == "__main__":
    sys.exit(main())
