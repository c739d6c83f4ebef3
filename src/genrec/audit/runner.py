"""Run an audit: every scenario on every model it applies to, one :class:`Finding` per cell.

The scenarios are listed explicitly in :data:`SCENARIOS` (name -> module); each module has
``NAME``, ``METRICS`` (metric family -> :class:`~genrec.audit.results.Definition`),
``HEADLINE`` (the metric the report's heat map shows, ``{k}`` filled in), ``applies(model)``
(None, or the reason it does not apply) and ``run(ctx, label) -> Finding``. A conversational
agent under audit (``chat:MODEL``, :class:`~genrec.audit.context.ChatModel`) gets only the
scenarios whose module sets ``FOR_AGENTS``; the others measure rankers and are n/a for it.

The output (:func:`audit_dict`) is ``{"protocol": {...}, "results": [{"model", "scenario",
"metrics": {name: {"mean", "ci_low", "ci_high"}} | "n/a", "settings": {...}}], "definitions":
{family: {"text", "source", "better"}}}``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from genrec.audit import (
    accuracy,
    agent_injection,
    backdoor,
    canary,
    efficiency,
    exposure,
    fairness,
    fairness_llm,
    feedback,
    hallucination,
    injection,
    privacy,
    shilling,
    text_attack,
)
from genrec.audit.context import AuditConfig, AuditContext, is_agent
from genrec.audit.results import Finding, not_applicable
from genrec.data.dataset import Split
from genrec.errors import ConfigError
from genrec.evaluation.runner import library_versions
from genrec.options import RunOptions

SCENARIOS = {
    "accuracy": accuracy,
    "exposure": exposure,
    "fairness": fairness,
    "fairness-llm": fairness_llm,
    "shilling": shilling,
    "hallucination": hallucination,
    "injection": injection,
    "agent-injection": agent_injection,
    "text-attack": text_attack,
    "backdoor": backdoor,
    "privacy": privacy,
    "canary": canary,
    "feedback-loop": feedback,
    "efficiency": efficiency,
}


def definitions() -> dict[str, dict]:
    """Every metric family of every scenario -> its written definition and source. A family
    two scenarios measure (``attack_success_defended``: item-text and utterance injection)
    gets both meanings, each after its scenario's name."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for scenario, module in SCENARIOS.items():
        for name, d in module.METRICS.items():
            found.setdefault(name, []).append((scenario, dataclasses.asdict(d)))
    out = {}
    for name, meanings in found.items():
        if len(meanings) == 1:
            out[name] = meanings[0][1]
            continue
        out[name] = {
            "text": " ".join(f"{scenario}: {d['text']}" for scenario, d in meanings),
            "source": "; ".join(dict.fromkeys(d["source"] for _, d in meanings)),
            "better": meanings[0][1]["better"],
        }
    return out


def parse_scenarios(text: str) -> list[str]:
    """``"exposure, shilling"`` -> the scenario names, checked; ``"all"`` -> every scenario."""
    names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if names == ["all"]:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        raise ConfigError(
            f"unknown scenario(s) {unknown or names}; choose from "
            f"{', '.join(SCENARIOS)} (comma-separated) or 'all'"
        )
    return names


def run_audit(
    split: Split,
    specs: dict[str, str],
    build: Callable[[str], object],
    *,
    scenarios: Sequence[str],
    config: AuditConfig | None = None,
    options: RunOptions | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> tuple[list[Finding], AuditContext]:
    """Run ``scenarios`` on the models ``specs`` (label -> spec), each built by ``build``.

    Returns the findings in model-major order and the context (fitted models, costs).
    """
    ctx = AuditContext(split, dict(specs), build, config or AuditConfig(), options or RunOptions())
    findings = []
    for label in specs:
        probe = ctx.fresh(label)  # unfitted: enough to see what the model is
        for name in scenarios:
            module = SCENARIOS[name]
            reason = _ranker_only(probe, module) or module.applies(probe)
            if reason:
                findings.append(not_applicable(label, name, reason))
                continue
            say(f"[{label}] {name}")
            start = time.perf_counter()
            finding = module.run(ctx, label)
            finding.settings["seconds"] = round(time.perf_counter() - start, 2)
            findings.append(finding)
    return findings, ctx


def _ranker_only(probe, module) -> str | None:
    """The n/a reason of a ranker scenario for a conversational agent, else None."""
    if is_agent(probe) and not getattr(module, "FOR_AGENTS", False):
        return f"an agent: this scenario measures rankers ({probe.spec.partition(':')[2]}'s row)"
    return None


def audit_dict(
    findings: Sequence[Finding], ctx: AuditContext, *, dataset: str, scenarios: Sequence[str]
) -> dict:
    """The ``audit.json`` document (module docstring)."""
    protocol = {
        "dataset": dataset,
        "split": ctx.split.info,
        "models": ctx.specs,
        "scenarios": list(scenarios),
        "config": dataclasses.asdict(ctx.config),
        "seed": ctx.config.seed,
        "training_seed": ctx.options.seed,
        "threads": ctx.options.n_threads,
        "evaluated_users": None if ctx.users is None else int(len(ctx.users)),
        "versions": library_versions(),
        "headlines": {name: m.HEADLINE.format(k=ctx.config.k) for name, m in SCENARIOS.items()},
    }
    return json_safe(
        {
            "protocol": protocol,
            "results": [f.to_dict() for f in findings],
            "definitions": definitions(),
        }
    )


def json_safe(value):
    """``value`` with numpy scalars as Python numbers and NaN / infinity as None (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["SCENARIOS", "audit_dict", "definitions", "json_safe", "parse_scenarios", "run_audit"]
