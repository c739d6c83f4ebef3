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
RecBole's own test metrics, the best epoch, the epochs run and the wall seconds of fit + test.
"""

from __future__ import annotations

import argparse
import json
import os
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

    start = time.perf_counter()
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epochs = _count_epochs(trainer, args.out + ".progress.jsonl")
    trainer.fit(train, valid, saved=True, show_progress=False)
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    seconds = time.perf_counter() - start

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
                "best_epoch": epochs["best"],
                "epochs_run": epochs["run"],
                "test": {k.lower(): float(v) for k, v in test_result.items()},
            }
        ),
    )
    return 0


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


def _count_epochs(trainer, progress: str) -> dict:
    """Wrap the trainer so the epochs run and the best (checkpointed) epoch are recorded
    (1-based, as genrec reports them); models without epochs report 1 / 1. Each validation
    appends ``{"epoch", "valid", "seconds"}`` to the ``progress`` JSON-lines file, so a long run
    can be followed (and its state known if it is stopped)."""
    epochs = {"run": 0, "best": 0}
    train_epoch, save, valid_epoch = (
        trainer._train_epoch,
        trainer._save_checkpoint,
        trainer._valid_epoch,
    )
    start = time.perf_counter()

    def logged_valid_epoch(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        line = {
            "epoch": epochs["run"],
            "valid": float(score),
            "seconds": time.perf_counter() - start,
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
