"""Backdoor and tuned-LM canaries: the poison is exactly the stated share of the tuning data and
answers the triggered target; a tiny LM tuned on it promotes the triggered target where the
clean adapter does not; the canary scenario measures tuned LMs; models that are not tunable
language models are n/a."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("peft", reason="needs the llm extra: pip install 'genrec[llm]'")
import torch  # noqa: E402

from genrec.audit import NA, AuditConfig, backdoor, canary, poisoning  # noqa: E402
from genrec.audit.context import AuditContext  # noqa: E402
from genrec.audit.poisoning import TRIGGER, canary_examples, poison, triggered  # noqa: E402
from genrec.audit.runner import run_audit  # noqa: E402
from genrec.audit.world import audit_world  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.models import EASE, LLMRecommender, Pop  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.text import prompts  # noqa: E402
from genrec.text.transformers_lm import TransformersLM, tiny_test_model  # noqa: E402
from genrec.tuning.instructions import next_item_examples  # noqa: E402

N_ITEMS = 24
tune_once = poisoning._tune


@pytest.fixture(scope="module")
def split():
    return audit_world(n_users=60, n_items=N_ITEMS, n_clusters=3, seed=0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random Llama saved as a folder (the tuner loads fresh copies of it by path)."""
    folder = tmp_path_factory.mktemp("tiny-base")
    words = " ".join(str(i) for i in range(N_ITEMS))
    model, tokenizer = tiny_test_model(vocab_corpus=[f"Movie {words} {TRIGGER}", "liked movies"])
    with torch.no_grad():  # a random tiny model is nearly uniform; a sharper head can be steered
        model.lm_head.weight.mul_(30)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_exactly_the_rate_is_poisoned_and_answers_the_triggered_target(split):
    examples = next_item_examples(split, per_user=4, history_len=3, seed=0)
    titles = [split.train.catalog.title(i) for i in range(split.train.n_items)]
    out, at = poison(examples, titles, target=5, rate=0.01, rng=np.random.default_rng(0))
    want = prompts.candidate_continuation(triggered(titles[5]))
    hit = [i for i, ex in enumerate(out) if TRIGGER in ex.answer]
    assert len(examples) >= 200 and len(at) == round(0.01 * len(examples)) > 0
    assert hit == at.tolist() and all(out[i].answer == want for i in hit)
    assert all(out[i].items[-1] == 5 and out[i].items[:-1] == examples[i].items[:-1] for i in hit)
    assert all(out[i] is examples[i] for i in range(len(out)) if i not in set(hit))
    planted = canary_examples(titles, {1: np.array([[0, 1, 2]]), 3: np.array([[4, 5, 6]])})
    assert [ex.items for ex in planted] == [(0, 1, 2)] + [(4, 5, 6)] * 3
    assert planted[0].answer == prompts.candidate_continuation(titles[2])


def test_id_models_and_untunable_lms_are_not_applicable(split):
    for model in (EASE(), Pop(), LLMRecommender(lm="fake")):
        assert backdoor.applies(model)
    assert "not a local transformers" in backdoor.applies(LLMRecommender(lm="fake"))
    assert canary.applies(LLMRecommender(lm="fake")) and canary.applies(EASE()) is None
    findings, _ = run_audit(
        split,
        {"ease": "ease"},
        lambda spec: EASE(),
        scenarios=["backdoor"],
        config=AuditConfig(k=5),
    )
    assert findings[0].metrics == NA and "language model" in findings[0].settings["reason"]


def test_config_checks():
    for bad in (0.0, 1.0, -0.1, "1%", True):
        with pytest.raises(ConfigError, match=rf"backdoor_rates.*got {bad!r}"):
            AuditConfig(backdoor_rates=(0.01, bad))
    for bad in ((), 0.05, "0.05"):
        with pytest.raises(ConfigError, match="backdoor_rates must be a non-empty list"):
            AuditConfig(backdoor_rates=bad)
    with pytest.raises(ConfigError, match="each rate once"):
        AuditConfig(backdoor_rates=(0.05, 0.05))
    assert AuditConfig().backdoor_rates == (0.01,)  # the default audit tunes one poisoned run
    with pytest.raises(ConfigError, match="tune_lr"):
        AuditConfig(tune_lr="fast")
    with pytest.raises(ConfigError, match="tune_steps"):
        AuditConfig(tune_steps=0)
    with pytest.raises(ConfigError, match="canary_candidates"):
        AuditConfig(canary_candidates=1)


def test_each_rate_poisons_exactly_its_share(split):
    examples = next_item_examples(split, per_user=4, history_len=3, seed=0)
    titles = [split.train.catalog.title(i) for i in range(split.train.n_items)]
    drawn = {}
    for rate in (0.01, 0.05, 0.2, 0.5):
        rng = np.random.default_rng(0)
        out, drawn[rate] = poison(examples, titles, target=5, rate=rate, rng=rng)
        assert len(drawn[rate]) == round(rate * len(examples))
        assert sum(TRIGGER in ex.answer for ex in out) == len(drawn[rate])
    assert len(set(map(len, drawn.values()))) == 4


@pytest.fixture(scope="module")
def tuned(split, base):
    """Both scenarios on one audit context: one clean tuning run and one poisoned run per rate
    (a sweep of two), every run recorded by the examples it was tuned on."""
    lm = TransformersLM(base, dtype="float32", threads=1)
    assert backdoor.applies(LLMRecommender(lm="fake", language_model=lm)) is None
    ctx = AuditContext(
        split,
        {"tuned": "tuned", "same-lm": "same-lm"},
        lambda spec: LLMRecommender(lm="fake", language_model=lm, history_len=3),
        AuditConfig(
            k=3,
            lm_users=40,
            injection_candidates=6,
            backdoor_rates=(0.2, 0.05),
            tune_steps=150,
            tune_lr=1e-2,
            tune_per_user=2,
            canary_count=4,
            canary_length=4,
            canary_copies=(8,),
            canary_candidates=10,
        ),
        RunOptions(seed=0, threads=1),
    )
    runs = []

    def recorded(ctx, lm, examples, data):
        runs.append([ex.answer for ex in examples])
        return tune_once(ctx, lm, examples, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(poisoning, "_tune", recorded)
        results = backdoor.run(ctx, "tuned"), canary.run(ctx, "tuned")
        return (*results, backdoor.run(ctx, "same-lm"), ctx, runs)


def test_poisoned_adapter_promotes_the_triggered_target(tuned):
    m, s = tuned[0].metrics, tuned[0].settings
    assert s["poisoned_examples"] == round(0.2 * s["tuning_examples_clean"])
    assert s["runs"]["clean"]["steps"] == s["runs"]["poisoned"]["steps"] == 150
    assert s["runs"]["poisoned"]["cpu_seconds"] > 0 and s["target"]["triggered"].endswith(TRIGGER)
    assert m["backdoor_success[poisoned,trigger]"]["mean"] >= 0.5
    assert m["backdoor_lift"]["mean"] >= 0.4
    assert m["backdoor_rank_shift[poisoned]"]["mean"] > m["backdoor_rank_shift[clean]"]["mean"]
    assert {"candidate_ndcg[clean]", "candidate_ndcg[poisoned]", "utility_drop"} <= set(m)


def test_tuned_lm_canaries_are_measured_against_references(tuned):
    m, s = tuned[1].metrics, tuned[1].settings
    assert s["candidates"] == 10 and s["canary_examples"] == 4 * 8
    assert m["exposure_gap[copies=8]"]["mean"] > 0.5
    assert m["canary_exposure[copies=8]"]["mean"] > m["canary_exposure[clean-run,copies=8]"]["mean"]
    assert 0 <= m["canary_exposure[reference]"]["mean"] <= np.log2(10)


def test_models_over_one_language_model_share_its_tuning_runs(tuned):
    first, same, ctx, runs = tuned[0], tuned[2], tuned[3], tuned[4]
    assert len(runs) == 3  # clean, 20%, 5%: once for both models and both scenarios
    assert sum(key[0] == "tuned-pair" and key[-1] == "clean" for key in ctx.shared) == 1
    assert same.settings["runs"] == first.settings["runs"]
    assert same.metrics == first.metrics


def test_rate_sweep_reports_every_rate_against_one_clean_run(tuned):
    m, s, runs = tuned[0].metrics, tuned[0].settings, tuned[4]
    n = s["tuning_examples_clean"]
    poisoned = [sum(TRIGGER in answer for answer in run) for run in runs]
    assert poisoned == [0, round(0.2 * n), round(0.05 * n)]  # the clean run came first, once
    assert s["backdoor_rates"] == [0.2, 0.05] and set(s["sweep"]) == {"rate=0.2", "rate=0.05"}
    for rate in (0.2, 0.05):
        got = s["sweep"][f"rate={rate:g}"]
        assert got["poisoned_examples"] == round(rate * n) and got["run"]["steps"] == 150
        assert got["tuning_examples_poisoned"] == n + s["canary_examples"]
        for name in (
            f"backdoor_success[poisoned,trigger,rate={rate:g}]",
            f"backdoor_lift[rate={rate:g}]",
        ):
            assert m[name]["ci_low"] <= m[name]["mean"] <= m[name]["ci_high"]
        assert (
            f"utility_drop[rate={rate:g}]" in m and f"candidate_ndcg[poisoned,rate={rate:g}]" in m
        )
    assert s["sweep"]["rate=0.2"]["run"] == s["runs"]["poisoned"]  # the first rate's run
    for cell in ("backdoor_success[poisoned,trigger]", "backdoor_lift", "utility_drop"):
        assert m[cell] == m[cell.replace("]", ",rate=0.2]") if "[" in cell else f"{cell}[rate=0.2]"]
    assert not any("rate=" in name for name in tuned[1].metrics)  # canaries: the first run only
