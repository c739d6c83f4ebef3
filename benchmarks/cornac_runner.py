"""Train and save Cornac's BPR for the serving comparison; runs inside .venv-cornac
(``scripts/setup_cornac.sh``), imports Cornac only, never genrec.

    .venv-cornac/bin/python benchmarks/cornac_runner.py TRIPLETS.tsv SAVE_DIR [--seed 42]

TRIPLETS.tsv holds ``user<TAB>item<TAB>rating`` rows (written by benchmarks/serving_peers.py
from genrec's copy of the data). The model is saved with its train set, so Cornac's server can
leave seen items out (``remove_seen=true``), as genrec's does by default. Prints the folder to
give Cornac's server as MODEL_PATH.
"""

import argparse
import time

import cornac
from cornac.data import Reader


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("triplets")
    p.add_argument("save_dir")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    data = Reader().read(args.triplets, fmt="UIR", sep="\t")
    train = cornac.data.Dataset.from_uir(data, seed=args.seed)
    model = cornac.models.BPR(k=64, max_iter=100, seed=args.seed, verbose=False)
    start = time.perf_counter()
    model.fit(train)
    saved = model.save(args.save_dir, save_trainset=True)
    print(f"fitted in {time.perf_counter() - start:.1f} s; saved {saved}")


if __name__ == "__main__":
    main()
