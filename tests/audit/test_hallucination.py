"""Hallucination: rates counted from a scripted language model whose answers are known."""

import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.hallucination import applies, run
from genrec.audit.world import audit_world
from genrec.models import EASE, LLMRecommender
from genrec.text.lm import FakeLanguageModel


def test_llm_rates_from_scripted_generations():
    split = audit_world(seed=4)
    # every user gets: a real unseen-or-seen title, the same title again (fuzzy duplicate),
    # and an invented one
    script = 'Movie 3"\n- "movie 3!"\n- "Zorblax Returns"\n'
    lm = FakeLanguageModel(generate_fn=lambda prompt: script)
    ctx = AuditContext(
        split,
        {"llm": "llm"},
        lambda spec: LLMRecommender(lm="fake", language_model=lm),
        AuditConfig(k=3, lm_users=10, users=30),
    )
    m = run(ctx, "llm").metrics
    assert m["out_of_catalog_rate@3"]["mean"] == pytest.approx(1 / 3)
    assert m["duplicate_error_rate@3"]["mean"] == 1.0
    assert m["titles_per_user@3"]["mean"] == 3.0
    users = ctx.lm_sample(ctx.audited_users())
    item = split.train.items.index(["i3"])[0]
    seen = split.history("test").user_items[users][:, item].toarray().ravel() > 0
    assert m["history_error_rate@3"]["mean"] == pytest.approx(seen.mean())


def test_full_ranking_models_are_not_applicable():
    assert "cannot name" in applies(EASE())
    assert applies(LLMRecommender(lm="fake")) is None
