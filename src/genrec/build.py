"""Specs -> models and pipelines, and saved artifacts -> models: the one place specs are parsed.

The spec language, shared by the CLI, experiment files, the benchmarks and the server:

* ``"ease"``: a model by name (:data:`genrec.models.MODELS`, or a composite: ``hybrid``);
* ``"multvae:paper"``: the same with a preset of its config;
* ``"ease+llm"``: a two-stage pipeline, the retriever proposes and the reranker orders
  (:class:`~genrec.pipelines.two_stage.TwoStage`);
* overrides ``{"reg": 300}`` for a model; for a pipeline keyed by part (``"ease.reg"``,
  ``"llm.shots"``, or ``"retriever.reg"`` / ``"reranker.shots"``) with the pipeline's own keys
  unprefixed (``"n_candidates"``);
* ``--set MODEL.KEY=VALUE`` pairs become per-model overrides with :func:`parse_overrides`.

Composites (pipelines) are handed their parts ready-built: a composite class lists the specs
of its parts from its config (``part_specs``) and :func:`build_model` builds them, so the
pipelines never parse specs themselves.

Example:
    >>> build_model("ease:default", {"reg": 10.0}).config.reg
    10.0
    >>> pipe = build_model("pop+llm", {"llm.lm": "fake", "n_candidates": 4})
    >>> (pipe.retriever.name, pipe.reranker.name, pipe.config.n_candidates)
    ('pop', 'llm', 4)
    >>> parse_overrides(["ease.reg=300"], ["ease", "pop"])
    {'ease': {'reg': '300'}, 'pop': {}}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from genrec import distributed
from genrec.errors import ArtifactError, ConfigError
from genrec.io import ARTIFACT_FILES, check_writable_folder
from genrec.models import MODELS, Recommender
from genrec.models.base import check_artifact, load_weights, read_artifact
from genrec.options import RunOptions
from genrec.pipelines.hybrid import Hybrid
from genrec.pipelines.two_stage import TwoStage, TwoStageConfig

# Composites: models made of other models, built here from their parts' specs.
COMPOSITES: dict[str, type[Recommender]] = {"hybrid": Hybrid, "two_stage": TwoStage}


def model_names() -> list[str]:
    """Every name :func:`build_model` accepts alone (pipelines join two with ``+``)."""
    return [*MODELS, *COMPOSITES]


def model_class(spec: str) -> type[Recommender]:
    """The class a spec builds; ConfigError listing the known names otherwise."""
    if "+" in spec:
        return TwoStage
    name = spec.strip().lower().partition(":")[0]
    cls = MODELS.get(name) or COMPOSITES.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown model {spec!r}; choose from {', '.join(model_names())} "
            "(or RETRIEVER+RERANKER, e.g. ease+llm)"
        )
    return cls


def build_model(spec: str, overrides: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted model or pipeline from a spec plus config ``overrides``.

    Raises:
        ConfigError: an unknown name, preset or config key (each message lists the allowed ones).
    """
    if "+" in spec:
        return _assemble(TwoStage, two_stage_config(spec, overrides))
    cls = model_class(spec)
    preset = spec.strip().partition(":")[2].strip() or "default"
    return _assemble(cls, cls.Config.from_preset(preset, overrides))


def _assemble(cls: type[Recommender], config) -> Recommender:
    """``cls(config)`` with a composite's parts built from the specs its config names."""
    part_specs = getattr(cls, "part_specs", None)
    if part_specs is None:
        return cls(config)
    parts = {
        part: build_model(spec, overrides) for part, (spec, overrides) in part_specs(config).items()
    }
    return cls(config, **parts)


def two_stage_config(spec: str, overrides: Mapping[str, Any] | None = None) -> TwoStageConfig:
    """The :class:`TwoStageConfig` of ``"retriever+reranker"`` with overrides keyed by part."""
    parts = [p.strip() for p in spec.split("+")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"a two-stage pipeline is written 'retriever+reranker' (e.g. 'ease+llm'), got {spec!r}"
        )
    own: dict[str, Any] = {
        "retriever": parts[0],
        "reranker": parts[1],
        "retriever_overrides": {},
        "reranker_overrides": {},
    }
    names = {
        "retriever": parts[0].partition(":")[0].lower(),
        "reranker": parts[1].partition(":")[0].lower(),
    }
    for key, value in dict(overrides or {}).items():
        prefix, dot, rest = key.partition(".")
        targets = [p for p, n in names.items() if dot and prefix.lower() in (p, n)]
        if dot and not targets:
            keys = ", ".join(f.name for f in dataclasses.fields(TwoStageConfig))
            raise ConfigError(
                f"override {key!r} names no part of {spec!r}; write "
                f"{names['retriever']}.KEY, {names['reranker']}.KEY or a pipeline "
                f"key ({keys})"
            )
        for part in targets:
            own[part + "_overrides"][rest] = value
        if not dot:
            own[key] = value
    return TwoStageConfig.from_dict(own)


def parse_names(text: str, *, what: str = "--models", agents: bool = False) -> list[str]:
    """``"pop, EASE,ease+llm"`` -> ``["pop", "ease", "ease+llm"]`` (lower-cased, deduplicated),
    each checked to name a model; with ``agents``, ``chat:MODEL`` names too (see
    :func:`audit_model`)."""
    names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if not names:
        raise ConfigError(
            f"{what} is empty; give comma-separated names such as pop,ease "
            f"(known: {', '.join(model_names())})"
        )
    for name in names:
        if agents and name.startswith(CHAT_PREFIX):
            name = _agent_model_spec(name)
        for part in name.split("+"):
            model_class(part)
    return names


def audit_model(spec: str, overrides: Mapping[str, Any] | None = None):
    """What ``genrec audit`` audits under ``spec``: :func:`build_model`'s model, or for
    ``"chat:SPEC"`` the conversational agent over SPEC
    (:class:`~genrec.audit.context.ChatModel`; ``overrides`` go to SPEC)."""
    if spec.strip().lower().startswith(CHAT_PREFIX):
        from genrec.audit.context import ChatModel

        name = spec.strip().lower()
        return ChatModel(name, build_model(_agent_model_spec(name), overrides))
    return build_model(spec, overrides)


def parse_overrides(pairs: list[str], names: list[str], *, flat: bool = False) -> dict[str, dict]:
    """``MODEL.KEY=VALUE`` pairs (or ``KEY=VALUE`` with ``flat``: all for ``names[0]``) ->
    ``{model: {key: value}}``. ``MODEL.KEY`` reaches every name holding MODEL: the model
    alone, its presets, the pipelines it is a part of (``llm.shots=2`` reaches ``ease+llm``)
    and the agents over it (``ease.reg=300`` reaches ``chat:ease``)."""
    out: dict[str, dict] = {n: {} for n in names}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        model, dot, field = key.partition(".")
        model = model.lower()
        if flat and not (dot and model == names[0]):
            model, field = names[0], key
        elif dot and (holders := [n for n in out if n != model and model in _held_models(n)]):
            for name in holders:  # a pipeline's part takes "part.key", a lone model "key"
                inner = _agent_model_spec(name) if name.startswith(AGENT_PREFIXES) else name
                out[name][f"{model}.{field}" if "+" in inner else field] = value
            if model in out:
                out[model][field] = value
            continue
        elif not dot or model not in out:
            raise ConfigError(f"--set {pair!r}: write MODEL.KEY=VALUE with MODEL one of {names}")
        out[model][field] = value
    return out


# ---- conversational agents -------------------------------------------------------------------
CHAT_PREFIX = "chat:"
ORACLE_PREFIX = "oracle:"
CHATREC_PREFIX = "chatrec:"
AGENT_PREFIXES = (CHAT_PREFIX, ORACLE_PREFIX, CHATREC_PREFIX)  # agents over a model
LLM_CHAT_PREFIX = "llm-chat:"
AGENT_SPECS = "MODEL, chat:MODEL, oracle:MODEL, chatrec:MODEL or llm-chat:LMSPEC"


def parse_agent_specs(text: str) -> list[str]:
    """``"pop, chat:EASE"`` -> ``["pop", "chat:ease"]``, each checked to name a model (the
    language-model spec of ``llm-chat:LMSPEC`` keeps its case: paths and model names)."""
    specs = []
    for raw in (s.strip() for s in text.split(",")):
        if not raw:
            continue
        if raw.lower().startswith(LLM_CHAT_PREFIX):
            spec = LLM_CHAT_PREFIX + raw[len(LLM_CHAT_PREFIX) :].strip()
            if spec == LLM_CHAT_PREFIX:
                raise ConfigError(f"{raw!r} names no language model; write llm-chat:LMSPEC")
        else:
            spec = raw.lower()
            model_class(_agent_model_spec(spec))
        specs.append(spec)
    if not specs:
        raise ConfigError(
            "--agents is empty; give comma-separated agents such as pop,ease,chat:ease"
        )
    return list(dict.fromkeys(specs))


def _held_models(name: str) -> list[str]:
    """The model names inside an audited or trained ``name``: ``"chat:ease+llm:listwise"`` ->
    ``["ease", "llm"]``."""
    inner = _agent_model_spec(name) if name.startswith(AGENT_PREFIXES) else name
    return [p.strip().partition(":")[0] for p in inner.split("+")]


def _agent_model_spec(spec: str) -> str:
    model_spec = spec
    for prefix in AGENT_PREFIXES:
        model_spec = model_spec[len(prefix) :] if model_spec.startswith(prefix) else model_spec
    if not model_spec.strip():
        raise ConfigError(f"{spec!r} names no model; write one of {AGENT_SPECS} (e.g. chat:ease)")
    return model_spec.strip()


def conversational_agent(
    spec: str,
    train,
    *,
    options=None,
    lm=None,
    model=None,
    store=None,
    constrained=None,
    fast_path: bool = True,
    control: str = "plan-first",
):
    """An agent for :func:`genrec.agents.simulation.simulate` or ``genrec chat`` from a spec.

    ``"chat:SPEC"`` is the conversational :class:`~genrec.agents.Agent` ranking with the model
    SPEC (a BM25 index over the item texts serves its text search; ``lm`` plans when given,
    under the plan schema when it can constrain its output unless ``constrained`` is False, and
    only the turns the rules do not parse unless ``fast_path`` is False, and as a whole plan or
    step by step: ``control`` "plan-first" or "react");
    ``"oracle:SPEC"`` knows the target's attributes (a reference point, for simulations only);
    a plain ``"SPEC"`` is that model without dialogue, showing its top items for the history
    every turn. The model is fitted on ``train`` unless a fitted ``model`` is passed.

    Language-model baselines (:mod:`genrec.agents.baselines`): ``"chatrec:SPEC"`` retrieves 20
    items with SPEC and lets ``lm`` choose among them; ``"llm-chat:LMSPEC"`` is the language
    model LMSPEC answering free-text titles.

    Raises:
        ConfigError: an unknown model spec (the message lists the names), or ``chatrec:``
            without ``lm``.
    """
    from genrec.agents import Agent
    from genrec.agents.baselines import RETRIEVED, ChatRec, LLMChat
    from genrec.agents.simulation import AttributeOracle, ChatAgent, RankerOnly

    if spec.strip().lower().startswith(LLM_CHAT_PREFIX):
        from genrec.text.backends import get_language_model

        lm_spec = spec.strip()[len(LLM_CHAT_PREFIX) :]
        threads = getattr(options, "threads", None)
        return LLMChat(spec.strip(), get_language_model(lm_spec, threads=threads), train)
    name = spec.strip().lower()
    chat, model_spec = name.startswith(CHAT_PREFIX), _agent_model_spec(name)
    if name.startswith(CHATREC_PREFIX) and lm is None:
        raise ConfigError(f"{spec!r} needs a language model to choose; pass --lm SPEC")
    if model is None:
        model = build_model(model_spec).fit(train, options=options)
    if name.startswith(ORACLE_PREFIX):
        return AttributeOracle(name, model, train)
    if name.startswith(CHATREC_PREFIX):
        retriever = Agent(train, model, store=store, k=RETRIEVED, clarify=False)
        return ChatRec(name, lm, retriever)
    if not chat:
        return RankerOnly(name, model, train.n_items)
    text_model = (
        build_model("bm25").fit(train, options=options) if train.catalog is not None else None
    )
    return ChatAgent(
        name,
        Agent(
            train,
            model,
            lm=lm,
            store=store,
            text_model=text_model,
            constrained=constrained,
            fast_path=fast_path,
            control=control,
        ),
    )


# ---- artifacts -------------------------------------------------------------------------------
def load_model(path: str | os.PathLike, *, expect_data=None) -> Recommender:
    """The model saved in the folder ``path`` (any model or pipeline :meth:`save` wrote).

    Args:
        expect_data: the data the caller will use (a Dataset, or its checksum); a model trained
            on other data is an :class:`~genrec.errors.ArtifactDataError` that says to retrain.

    Raises:
        ArtifactError: missing or damaged files (NaN weights included), files of two saves.
        ArtifactDataError: other training data than ``expect_data``.

    A model saved by another genrec version loads with a ``UserWarning``
    (:func:`genrec.models.base.check_artifact`).
    """
    meta, state = read_artifact(path)
    check_artifact(meta, path, expect_data=expect_data)
    try:
        cls = model_class(meta["model"])
        model = _assemble(cls, cls.Config.from_dict(meta["config"]))
    except ConfigError as exc:
        raise ArtifactError(f"{path} has an invalid config ({exc}); retrain the model") from None
    return load_weights(model, path, meta, state)


def saved_or_trained(
    spec: str,
    data,
    folder: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | None = None,
    options=None,
    notice: Callable[[str], None] = lambda message: None,
) -> Recommender:
    """The model saved in ``folder`` for ``data``; trained on all of ``data`` and saved there
    first when the folder holds none. A saved model of other data is an ArtifactDataError."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        notice(f"no saved {spec} model at {folder}; training one now")
        return train_and_save(
            build_model(spec, overrides), data, folder, options=options, notice=notice
        )
    model = load_model(folder, expect_data=data)
    if model.name != model_class(spec).name:
        raise ArtifactError(
            f"{folder} holds a {model.name!r} model, not {spec!r}; give another "
            "artifact folder or retrain"
        )
    return model


def train_and_save(
    model: Recommender,
    data,
    folder: str | os.PathLike,
    *,
    options=None,
    metadata: Mapping[str, Any] | None = None,
    notice: Callable[[str], None] = lambda message: None,
) -> Recommender:
    """Fit ``model`` on all interactions of ``data`` and save it (with the data's fingerprint,
    which :meth:`Recommender.fit` records, the seed, thread count and device it was trained with, plus
    ``metadata``, e.g. the checksum of the data before feedback was added). The folder is checked before training.

    In a data-parallel run (:mod:`genrec.distributed`) every rank fits, rank 0 alone saves
    (recording the number of processes) and the others wait for it at a barrier.

    Raises:
        ConfigError: ``folder`` is a file or special file, holds files other than a saved
            model's, or cannot be written.
    """
    group = distributed.current()
    check_writable_folder(folder, what="the artifact folder", owned=ARTIFACT_FILES)
    if group.is_main:
        notice(f"training {model.name} on all {len(data)} interactions of {data.name}")
    options = (options or RunOptions()).pinned()
    model.fit(data, options=options)
    recipe = {"seed": options.seed, "threads": options.threads, "device": options.device}
    if group.world_size > 1:
        recipe["processes"] = group.world_size
    if group.is_main:  # every rank holds the same weights; one writes them
        model.save(folder, metadata={**dict(metadata or {}), **recipe})  # what reproduces them
    distributed.barrier()  # the others return once the artifact exists
    return model


__all__ = [
    "COMPOSITES",
    "build_model",
    "conversational_agent",
    "parse_agent_specs",
    "load_model",
    "model_class",
    "model_names",
    "parse_names",
    "parse_overrides",
    "saved_or_trained",
    "train_and_save",
    "two_stage_config",
]
