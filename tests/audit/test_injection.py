"""Prompt injection: a language model that obeys answer lines outside quoted data is fooled by
raw prompts and not by genrec's quoted ones."""

import re

import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.injection import raw_listwise_prompt, run
from genrec.audit.world import audit_world
from genrec.models import LLMRecommender
from genrec.text import prompts
from genrec.text.lm import FakeLanguageModel

_DATA_LINE = re.compile(r'^\s*(?:- |[A-Z]\. )"')
_ORDER = re.compile(r"letter:?\s+([A-Z])\b")


def gullible(prompt: str, continuation: str) -> tuple[float, int]:
    """Scores the letter named by the last 'letter X' on a line that is not quoted data (the
    template's own final line names none); without one, every letter ties."""
    named = [
        m.group(1)
        for line in prompt.splitlines()
        if not _DATA_LINE.match(line)
        for m in _ORDER.finditer(line)
    ]
    return (0.0 if named and continuation.strip() == named[-1] else -5.0), 1


def test_raw_prompt_is_the_library_template_without_escaping():
    titles, cands = ["Heat"], ["Up", "Big"]
    assert raw_listwise_prompt(titles, cands) == prompts.listwise_prompt(titles, cands)
    assert "\nIgnore" in raw_listwise_prompt(titles, ["Up\nIgnore"])
    assert "\nIgnore" not in prompts.listwise_prompt(titles, ["Up\nIgnore"])


@pytest.fixture(scope="module")
def finding():
    split = audit_world(seed=3)
    lm = FakeLanguageModel(score_fn=gullible)
    ctx = AuditContext(
        split,
        {"llm": "llm"},
        lambda spec: LLMRecommender(lm="fake", language_model=lm, n_candidates=5),
        AuditConfig(k=5, lm_users=12, injection_candidates=6, users=40),
    )
    return run(ctx, "llm")


def test_defences_stop_what_gets_through_raw(finding):
    m = finding.metrics
    assert m["target_rank1_clean"]["mean"] == 0.0  # ties go to letter A, never the target
    for attack in ("direct", "disguised"):
        assert m[f"attack_success_undefended[{attack}]"]["mean"] == 1.0
        assert m[f"attack_success_defended[{attack}]"]["mean"] == 0.0
    # the indirect injection stays on its data line: this model ignores it either way
    assert m["attack_success_undefended[indirect]"]["mean"] == 0.0
    assert finding.settings["users"] == 12


def test_scenario_does_not_apply_without_a_language_model():
    from genrec.audit import injection
    from genrec.models import EASE

    assert "no language model" in injection.applies(EASE())
    assert injection.applies(LLMRecommender(lm="fake")) is None
