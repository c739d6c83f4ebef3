"""What every benchmark script shares: BENCHMARKS.md sections, RecBole's peer rows, formatting
(``fmt_ci`` for a mean and its interval, ``fmt_test`` for a paired test).

BENCHMARKS.md is made of sections, one per script, each between ``<!-- section:NAME -->`` and
``<!-- /section:NAME -->``; a script rewrites only its own section, so the scripts can run
separately (``make benchmarks`` runs them all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from genrec.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nEvery number here is written by a script in `benchmarks/` "
    "(`make benchmarks` runs them all); each section names its script, machine, versions, "
    "seeds and the machine load while it ran.\n"
)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``markdown``."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    if start not in text:
        text = text.rstrip() + "\n\n" + block + "\n"
    else:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    atomic_write(BENCHMARKS_MD, text)


# genrec model name -> its row name in ../shared/PEERS.md (RecBole's display names)
PEER_NAMES = {
    "pop": "Pop",
    "itemknn": "ItemKNN",
    "ease": "EASE",
    "bpr": "BPR",
    "multdae": "Mult-DAE",
    "cdae": "CDAE",
    "multvae": "Mult-VAE",
    "recvae": "RecVAE",
    "diffrec": "DiffRec",
    "ldiffrec": "L-DiffRec",
}


def peer_rows() -> dict[str, dict]:
    """RecBole's general-recommendation rows of ../shared/PEERS.md by its model name
    (``"Mult-VAE"``), with metrics as floats and wall seconds / peak MB as given."""
    path = ROOT.parent / "shared" / "PEERS.md"
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) >= 10
            and re.fullmatch(r"0\.\d+", cells[1])
            and re.fullmatch(r"0\.\d+", cells[2])
        ):
            wall = re.match(r"[\d.]+", cells[8])
            rows[cells[0]] = {
                "recall@10": float(cells[1]),
                "ndcg@10": float(cells[2]),
                "mrr@10": float(cells[3]),
                "hit@10": float(cells[4]),
                "recall@20": float(cells[5]),
                "ndcg@20": float(cells[6]),
                "epochs": cells[7],
                "wall_s": float(wall.group()) if wall else None,
                "peak_mb": cells[9],
            }
    return rows


def fmt_ci(m: dict) -> str:
    """``mean [low, high]`` of a runner metric summary."""
    if m.get("ci_low") is None:
        return f"{m['mean']:.4f}"
    return f"{m['mean']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def fmt_test(test: dict | None, *, adjusted: bool = True) -> str:
    """``+0.0123, p=0.004 *`` of one paired-test row: the mean difference and the larger of the
    two p-values (t-test, Wilcoxon), ``*`` below 0.05. ``adjusted``: the Holm-adjusted p-values
    of a :func:`genrec.evaluation.stats.compare_with` row; else the raw ones of
    :func:`~genrec.evaluation.stats.paired_tests`. ``"reference"`` for None or the reference row.
    """
    if test is None or test.get("verdict") == "reference":
        return "reference"
    keys = ("p_t_holm", "p_wilcoxon_holm") if adjusted else ("p_t", "p_wilcoxon")
    p = max(test[keys[0]], test[keys[1]])
    return f"{test['mean_diff']:+.4f}, p={p:.2g}" + (" *" if p < 0.05 else "")


def summary(values) -> dict:
    """``{"mean", "ci_low", "ci_high"}`` of per-user values (bootstrap 95% interval)."""
    import numpy as np

    from genrec.evaluation.stats import bootstrap_ci

    low, high = bootstrap_ci(values)
    return {"mean": float(np.mean(values)), "ci_low": low, "ci_high": high}


def rounded(value, digits: int = 4):
    """``value`` with every float inside (dicts and lists too) cut to ``digits`` significant
    digits: per-user results stay well under the 100 KB a committed result file may take."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts that must be at least 1 (``--repeats``: a median of zero
    fits does not exist)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def names_arg(parser, value: str, choices, what: str = "model") -> list[str]:
    """The comma-separated names of ``value``, each one of ``choices`` (else a parser error)."""
    names = [x.strip() for x in value.split(",") if x.strip()]
    unknown = sorted(set(names) - set(choices))
    if unknown:
        parser.error(f"unknown {what}(s) {unknown}; choose from {list(choices)}")
    return names


def machine_line(versions: dict, loads: list[float], *, device: str = "cpu") -> str:
    """The machine, versions, thread count, the device the models ran on (``RunOptions.device``
    of the runs: the CPU unless a script says otherwise; the GPU torch saw is named too) and
    the load average during the runs."""
    capability = versions.get("cpu_capability")  # float results depend on it (README)
    gpu = versions.get("gpu")
    return (
        f"Machine: {versions['cpu_count']} cores"
        + (f" ({capability} kernels)" if capability else "")
        + f", {versions['platform']}, Python "
        f"{versions['python']}, torch {versions['torch']}, numpy {versions['numpy']}, genrec "
        f"{versions['genrec']}; models on {device}"
        + (f" (GPU present: {gpu})" if gpu else " (no GPU)")
        + "; 1 thread; 1-minute load average during the runs: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + "."
    )


def js_divergence(p, q) -> float:
    """Jensen-Shannon divergence (base 2, 0 = same) of two count vectors over the same items."""
    import numpy as np

    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    m = (p + q) / 2

    def kl(a, b):
        return float(np.sum(a[a > 0] * np.log2(a[a > 0] / b[a > 0])))

    return (kl(p, m) + kl(q, m)) / 2


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


FIT_SCRIPT = """
import json, resource, sys, time
from genrec.data import sources
from genrec.data.splits import make_split
from genrec.build import build_model
from genrec.options import RunOptions
spec, overrides, cache_dir, split_name, split_seed, seed = sys.argv[1:7]
data = sources.load("ml-100k", cache_dir=cache_dir)
split = make_split(data, split_name, seed=int(split_seed))
model = build_model(spec, json.loads(overrides))
start = time.perf_counter()
model.fit(split.train, valid=split.valid, options=RunOptions(seed=int(seed), threads=1))
seconds = time.perf_counter() - start
try:  # VmHWM is this process's own peak; ru_maxrss can carry the parent's over fork + exec
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "best_epoch": getattr(model, "best_epoch_", None),
                  "peak_mb": peak_kb / 1024}))
"""


def fit_in_fresh_process(
    spec: str, overrides: dict, *, cache_dir, split: str, split_seed: int, seed: int
) -> dict:
    """Fit one model on ML-100K alone in a new Python process (1 thread): ``{"seconds",
    "best_epoch", "peak_mb"}``, the peak being that process's maximum resident memory."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            FIT_SCRIPT,
            spec,
            json.dumps(overrides),
            str(cache_dir),
            split,
            str(split_seed),
            str(seed),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"fitting {spec} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def results_json(res: dict, parts=("sampled", "two_stage", "cold")) -> str:
    """``res`` as JSON, the per-user arrays of each ``parts`` entry reduced to mean + interval."""
    plain = {k: v for k, v in res.items() if k not in parts}
    for part in parts:
        plain[part] = {
            m: {
                "seconds_per_user": r["seconds_per_user"],
                **{k: summary(x) for k, x in r["per_user"].items()},
            }
            for m, r in res[part].items()
        }
    return json.dumps(rounded(plain), default=float)
