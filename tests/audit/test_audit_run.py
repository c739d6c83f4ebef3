"""The whole audit in fast mode: the JSON shape, n/a rows, definitions for every metric, the
report page, and the CLI."""

import json
import re
from pathlib import Path

import pytest

from genrec.audit import NA, SCENARIOS, AuditConfig, audit_dict, definitions, run_audit
from genrec.audit.report import to_html
from genrec.audit.results import family
from genrec.audit.world import audit_world
from genrec.build import audit_model
from genrec.cli import main
from genrec.options import RunOptions

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


@pytest.fixture(scope="module")
def doc():
    split = audit_world(seed=0)
    findings, ctx = run_audit(
        split,
        {"pop": "pop", "ease": "ease", "llm": "llm", "chat:ease": "chat:ease"},
        lambda spec: audit_model(spec, {"lm": "fake"} if spec == "llm" else {}),
        scenarios=list(SCENARIOS),
        config=AuditConfig(
            k=5,
            rounds=1,
            lm_users=5,
            users=40,
            shilling_sizes=(0.01, 0.05),
            shilling_attacks=("bandwagon", "random"),
            shilling_targets=("random",),
            text_attack_lm="fake",
            text_attack_encoder="hashing",
            agent_users=3,
        ),
        options=RunOptions(seed=0, threads=1),
    )
    return audit_dict(findings, ctx, dataset="audit-world", scenarios=list(SCENARIOS))


def test_every_model_has_a_row_per_scenario(doc):
    cells = {(r["model"], r["scenario"]) for r in doc["results"]}
    assert cells == {(m, s) for m in ("pop", "ease", "llm", "chat:ease") for s in SCENARIOS}
    json.dumps(doc, allow_nan=False)  # valid JSON: no NaN


def test_not_applicable_is_marked_never_zero(doc):
    rows = {(r["model"], r["scenario"]): r for r in doc["results"]}
    for cell in [
        ("pop", "privacy"),
        ("ease", "injection"),
        ("ease", "hallucination"),
        ("ease", "fairness-llm"),
        ("pop", "text-attack"),
        ("llm", "canary"),
        ("pop", "backdoor"),
        ("llm", "backdoor"),  # a fake language model: nothing to tune
        ("ease", "agent-injection"),
        ("chat:ease", "accuracy"),
        ("chat:ease", "injection"),
    ]:
        assert rows[cell]["metrics"] == NA and rows[cell]["settings"]["reason"]
    assert rows["llm", "injection"]["metrics"] != NA
    for scenario in ("shilling", "feedback-loop"):  # on the language-model sample (5 users)
        assert rows["llm", scenario]["metrics"] != NA
        assert rows["llm", scenario]["settings"]["users"] == 5


def test_every_metric_has_a_definition_and_a_source(doc):
    defs = definitions()
    for r in doc["results"]:
        if r["metrics"] == NA:
            continue
        for name, value in r["metrics"].items():
            assert family(name) in defs, name
            assert {"mean", "ci_low", "ci_high"} <= set(value)
    assert all(d["text"] and d["source"] for d in defs.values())


def test_docs_page_defines_every_metric():
    text = DOCS.read_text()
    missing = [name for name in definitions() if f"`{name}`" not in text]
    assert not missing


def test_report_is_self_contained_and_links_numbers(doc):
    page = to_html(doc)
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)
    charted = {r["scenario"] for r in doc["results"] if r["metrics"] != NA}  # not all-n/a
    assert page.count("<svg") >= len(charted) - 3
    for name in ("gini", "attack_success_defended", "target_hr_shift"):
        assert f'href="#def-{name}"' in page and f'id="def-{name}"' in page
    assert "n/a" in page


def test_cli_fast_mode(tmp_path, capsys):
    out, report = tmp_path / "audit.json", tmp_path / "audit.html"
    code = main(
        [
            "audit",
            "--fast",
            "--models",
            "pop,ease",
            "--scenarios",
            "accuracy,exposure,privacy",
            "--k",
            "5",
            "--seed",
            "0",
            "--output",
            str(out),
            "--report",
            str(report),
            "--backdoor-rates",
            "0.02,0.1",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["protocol"]["config"]["seed"] == 0
    assert doc["protocol"]["config"]["backdoor_rates"] == [0.02, 0.1]
    assert [r["metrics"] == NA for r in doc["results"] if r["scenario"] == "privacy"] == [
        True,
        True,
    ]
    assert report.read_text().startswith("<!DOCTYPE html>")
