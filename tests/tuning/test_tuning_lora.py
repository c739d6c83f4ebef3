"""LoRA and soft-prompt tuning on a tiny random model (no download): the loss falls, an
interrupted run resumes to the same weights, saved adapters load on their base with identical
scores and plug into the LLM recommender; bad input; one slow check with the real Gemma."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("peft", reason="needs the llm extra: pip install 'genrec[llm]'")
import torch  # noqa: E402

from genrec.data.synthetic import planted_clusters  # noqa: E402
from genrec.errors import ConfigError, LLMError  # noqa: E402
from genrec.evaluation.protocol import evaluate_sampled  # noqa: E402
from genrec.models import LLMRecommender  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.text.backends import get_language_model  # noqa: E402
from genrec.text.transformers_lm import TransformersLM, tiny_test_model  # noqa: E402
from genrec.text.tuned_lm import TunedLM  # noqa: E402
from genrec.tuning.instructions import next_item_examples  # noqa: E402
from genrec.tuning.tuner import TuneConfig, answer_loss, encode, tune  # noqa: E402

OPTIONS = RunOptions(seed=0, threads=1)
PROMPT = 'Liked movies:\n- "Film 1"\nThe next movie they liked: "'
CANDIDATES = ['Film 2"', 'Film 7"', 'Film 11"']


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random Llama saved as a local model folder (a base model loadable by name)."""
    folder = tmp_path_factory.mktemp("tiny-base")
    model, tokenizer = tiny_test_model(vocab_corpus=["Film 1 2 3 4 5 6 7 8 9 0", "liked movies"])
    with torch.no_grad():  # a random tiny model is nearly uniform; a sharper head can be steered
        model.lm_head.weight.mul_(30)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def split():
    w = planted_clusters(n_users=24, n_items=12, n_clusters=3, seed=0)
    w.data.catalog.columns["title"] = np.array([f"Film {i}" for i in range(12)], dtype=object)
    return w.split


def fresh(base):
    return TransformersLM(base, dtype="float32", threads=1)


def config(base, **kw):
    values = dict(
        base=base,
        dtype="float32",
        max_steps=12,
        eval_every=4,
        checkpoint_every=4,
        batch_size=4,
        per_user=1,
        n_valid=8,
        warmup_steps=0,
        learning_rate=1e-2,
    )
    return TuneConfig(**{**values, **kw})


def mean_loss(lm, examples, prefix=None) -> float:
    encoded, _ = encode(lm, examples, 256)
    with torch.no_grad():
        return float(answer_loss(lm._model, encoded, prefix)[0])


@pytest.mark.parametrize("method,lr", [("lora", 1e-2), ("prompt", 1e-1)])
def test_a_few_steps_reduce_the_answer_loss(base, split, tmp_path, method, lr):
    examples = next_item_examples(split, per_user=1, seed=0)[:8]
    lm = fresh(base)
    before = mean_loss(lm, examples)
    result = tune(
        split,
        config(base, method=method, learning_rate=lr, max_steps=15, dropout=0.0),
        lm=lm,
        output=tmp_path,
        options=OPTIONS,
        examples=examples,
        valid_examples=examples,
    )
    after = mean_loss(lm, examples, lm.prefix_embeddings)
    assert after < before - 0.2
    assert result.log[-1]["tokens_per_s"] > 0 and result.train_examples == 8
    assert result.trainable_parameters > 0 and result.best_valid_loss < before
    files = {p.name for p in tmp_path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "genrec_adapter.json"} <= files


def test_resume_after_an_interruption_gives_the_uninterrupted_result(base, split, tmp_path):
    cfg = config(base, dropout=0.1)  # dropout: the RNG state must be restored too
    whole = fresh(base)
    tune(split, cfg, lm=whole, output=tmp_path / "whole", options=OPTIONS)
    first = fresh(base)
    part = tune(split, cfg, lm=first, output=tmp_path / "cut", options=OPTIONS, stop_after=6)
    assert part.steps == 6 and not (tmp_path / "cut" / "adapter_model.safetensors").exists()
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["step"] == 4
    resumed = fresh(base)  # a new process would start like this
    result = tune(split, cfg, lm=resumed, output=tmp_path / "cut", options=OPTIONS)
    assert result.steps == cfg.max_steps
    a, b = whole.score(PROMPT, CANDIDATES).logprob, resumed.score(PROMPT, CANDIDATES).logprob
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(a, fresh(base).score(PROMPT, CANDIDATES).logprob, atol=1e-4)


def test_a_time_budget_stops_training_after_a_last_validation(base, split, tmp_path):
    result = tune(
        split, config(base, time_budget=1e-9), lm=fresh(base), output=tmp_path, options=OPTIONS
    )  # any step takes longer than a nanosecond
    assert result.steps == 1 and result.stopped_early and result.best_step == 1
    assert "valid_loss" in result.log[-1]
    assert (tmp_path / "adapter_model.safetensors").exists()
    with pytest.raises(ConfigError, match="time_budget"):
        TuneConfig(time_budget=-1.0)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_a_saved_adapter_loads_on_its_base_with_identical_scores(base, split, tmp_path, method):
    lm = fresh(base)
    tune(
        split,
        config(base, method=method, max_steps=4, learning_rate=5e-2),
        lm=lm,
        output=tmp_path,
        options=OPTIONS,
    )
    tuned = TunedLM.load(tmp_path, threads=1)
    expected = lm.score(PROMPT, CANDIDATES).logprob
    np.testing.assert_allclose(tuned.score(PROMPT, CANDIDATES).logprob, expected, atol=1e-5)
    unmerged = TunedLM.load(tmp_path, threads=1, merge=False)
    np.testing.assert_allclose(unmerged.score(PROMPT, CANDIDATES).logprob, expected, atol=1e-5)
    assert not np.allclose(expected, fresh(base).score(PROMPT, CANDIDATES).logprob, atol=1e-4)
    assert tuned.name.endswith(f"+{method}:{tmp_path.name}")
    by_spec = get_language_model(f"tuned:{tmp_path}", threads=1)
    np.testing.assert_allclose(by_spec.score(PROMPT, CANDIDATES).logprob, expected, atol=1e-5)
    assert len(tuned.generate(["Liked movies:"], max_new_tokens=3)) == 1
    # the tuned model is a recommender: injected, or by spec string
    for model in (
        LLMRecommender(language_model=tuned, history_len=3),
        LLMRecommender(lm=f"tuned:{tmp_path}", history_len=3),
    ):
        model.fit(split.train, options=OPTIONS)
        ev = evaluate_sampled(
            model, split.history("test"), split.test, n_negatives=5, seed=0, ks=(1, 5)
        )
        assert np.isfinite(ev.mean("ndcg@5"))
    # ... and explanations accept it
    from genrec.pipelines.explain import LMExplainer

    explanation = LMExplainer(split.train.catalog, f"tuned:{tmp_path}", max_new_tokens=4).explain(
        [1, 2], 3
    )
    assert explanation.item == 3 and isinstance(explanation.text, str)
    if method == "prompt":
        assert tuned._ready() and tuned.prefix_embeddings.shape[0] == 20


def test_preference_tuning_with_retrieved_negatives(base, split, tmp_path):
    """TALLRec's task with EASE's top items as the "No" examples; the tuned model then serves
    the LLM recommender's preference mode."""
    cfg = config(base, task="preference", negatives="retrieved", n_hard=3, max_steps=4)
    lm = fresh(base)
    result = tune(split, cfg, lm=lm, output=tmp_path, options=OPTIONS)
    assert result.steps == 4 and result.train_examples > 0
    model = LLMRecommender(
        language_model=TunedLM.load(tmp_path, threads=1), mode="preference", history_len=3
    ).fit(split.train, options=OPTIONS)
    ev = evaluate_sampled(model, split.history("test"), split.test, n_negatives=5, seed=0, ks=(5,))
    assert np.isfinite(ev.mean("ndcg@5"))
    with pytest.raises(ConfigError, match="negatives"):
        TuneConfig(negatives="hard")


def taught_examples(split, n: int = 6):
    """Listwise examples over Pop's shortlists of 4, each with Pop's ranking as the teacher."""
    from genrec.models import Pop
    from genrec.tuning.instructions import listwise_examples

    pop = Pop().fit(split.train, options=OPTIONS)
    examples = listwise_examples(
        split, per_user=2, seed=0, retriever=pop, n_candidates=4, teacher_temperature=0.5
    )
    assert len(examples) >= n
    return examples[:n]


def kl_of_scores(lm, examples) -> float:
    """Mean KL(teacher || softmax of the LM's own listwise letter scores), as it ranks."""
    total = 0.0
    for ex in examples:
        logp = lm.score(ex.prompt, list(ex.choices)).logprob
        student = logp - np.logaddexp.reduce(logp)
        teacher = np.array(ex.teacher)
        total += float(np.sum(teacher * (np.log(teacher) - student)))
    return total / len(examples)


def test_the_distillation_loss_is_the_kl_to_the_teacher_over_the_letter_scores(base, split):
    examples = taught_examples(split)
    lm = fresh(base)
    rows, _ = encode(lm, examples, 512)
    assert all(len(row) == 5 and row[0][row[2] + 1] in row[3] for row in rows)
    with torch.no_grad():
        kl = float(answer_loss(lm._model, rows, distill=1.0)[0])
        ce = float(answer_loss(lm._model, rows)[0])
        plain = float(answer_loss(lm._model, [row[:2] for row in rows], distill=1.0)[0])
        half = float(answer_loss(lm._model, rows, distill=0.5)[0])
    assert kl == pytest.approx(kl_of_scores(lm, examples), rel=1e-4, abs=1e-5)
    assert ce == pytest.approx(plain) and half == pytest.approx((ce + kl) / 2, rel=1e-5)


def test_distillation_moves_the_listwise_scores_toward_the_teacher(base, split, tmp_path):
    examples = taught_examples(split)
    cfg = config(
        base, task="listwise", negatives="retrieved", distill=1.0, max_steps=10, max_length=512
    )
    lm = fresh(base)
    before = kl_of_scores(lm, examples)
    tune(split, cfg, lm=lm, output=tmp_path, options=OPTIONS, examples=examples)
    assert kl_of_scores(lm, examples) < 0.5 * before
    for bad in (
        {"distill": 0.5},  # the next-item task has no teacher
        {"distill": 1.5, "task": "listwise", "negatives": "retrieved"},
        {"distill": 0.5, "task": "listwise"},  # uniform candidates: no retriever, no teacher
        {"teacher_temperature": 0.0},
    ):
        with pytest.raises(ConfigError, match=next(reversed(bad))):
            TuneConfig(**bad)


def residual_ce_of_scores(lm, examples) -> float:
    """Mean CE of each answer under softmax(log teacher + the LM's own letter scores)."""
    total = 0.0
    for ex in examples:
        fused = np.log(ex.teacher) + lm.score(ex.prompt, list(ex.choices)).logprob
        total -= fused[ex.choices.index(ex.answer)] - np.logaddexp.reduce(fused)
    return total / len(examples)


def test_the_residual_loss_is_the_answers_ce_under_the_teacher_times_the_lm(base, split):
    examples = taught_examples(split)
    lm = fresh(base)
    rows, _ = encode(lm, examples, 512)
    with torch.no_grad():
        loss, count, _ = answer_loss(lm._model, rows, residual=True)
    assert count == len(rows)
    assert float(loss) == pytest.approx(residual_ce_of_scores(lm, examples), rel=1e-4)
    with pytest.raises(ConfigError, match="residual"):
        answer_loss(lm._model, [row[:2] for row in rows], residual=True)


def test_residual_tuning_lowers_the_fused_loss_and_validates_on_it(base, split, tmp_path):
    examples = taught_examples(split)
    cfg = config(
        base, task="listwise", negatives="retrieved", residual=True, max_steps=8, max_length=512
    )
    lm = fresh(base)
    before = residual_ce_of_scores(lm, examples)
    result = tune(
        split,
        cfg,
        lm=lm,
        output=tmp_path,
        options=OPTIONS,
        examples=examples,
        valid_examples=examples,
    )
    after = residual_ce_of_scores(lm, examples)
    assert after < 0.7 * before
    assert result.best_valid_loss == pytest.approx(after, rel=1e-3)  # validated on the fused CE
    for bad in (
        {"residual": True},  # the next-item task has no retriever ranking to add to
        {"residual": True, "task": "listwise", "negatives": "retrieved", "distill": 0.5},
        {"residual": 1, "task": "listwise", "negatives": "retrieved"},
        {"shuffle_candidates": "yes"},
    ):
        with pytest.raises(ConfigError, match=next(reversed(bad))):
            TuneConfig(**bad)


def test_bad_input(base, split, tmp_path):
    with pytest.raises(ConfigError, match="method"):
        TuneConfig(method="full")
    with pytest.raises(ConfigError, match="learning_rate"):
        TuneConfig(learning_rate=2.0)
    with pytest.raises(ConfigError, match="unknown config key"):
        TuneConfig.from_dict({"rank": 4})
    with pytest.raises(ConfigError, match="target_modules"):
        tune(
            split,
            config(base, target_modules=("nonexistent_proj",)),
            lm=fresh(base),
            output=tmp_path / "a",
            options=OPTIONS,
        )
    with pytest.raises(ConfigError, match="max_length"):
        tune(
            split,
            config(base, max_length=3),
            lm=fresh(base),
            output=tmp_path / "b",
            options=OPTIONS,
        )
    tune(split, config(base, max_steps=4), lm=fresh(base), output=tmp_path / "c", options=OPTIONS)
    with pytest.raises(ConfigError, match="another adapter"):
        tune(
            split,
            config(base, method="prompt"),
            lm=fresh(base),
            output=tmp_path / "c",
            options=OPTIONS,
        )
    with pytest.raises(LLMError, match="not a genrec adapter"):
        TunedLM.load(tmp_path)
    with pytest.raises(ConfigError, match="adapter folder"):
        get_language_model("tuned:")


@pytest.mark.slow
def test_gemma_lora_steps_save_load_score(tmp_path, ml100k):
    """Two LoRA steps on the real Gemma 3 270M at a short length; the loaded adapter scores as
    the tuned model in memory."""
    from genrec.data.splits import holdout_split

    split = holdout_split(ml100k, (0.8, 0.1, 0.1), seed=2020)
    examples = next_item_examples(split, per_user=1, history_len=2, seed=0)[:4]
    lm = TransformersLM("gemma-3-270m", threads=1)
    cfg = TuneConfig(
        max_steps=2,
        batch_size=2,
        eval_every=2,
        n_valid=2,
        max_length=96,
        target_modules=("q_proj", "v_proj"),
        learning_rate=1e-3,
    )
    result = tune(
        split,
        cfg,
        lm=lm,
        output=tmp_path,
        options=RunOptions(seed=0, threads=1),
        examples=examples,
        valid_examples=examples[:2],
    )
    assert result.steps == 2 and np.isfinite(result.log[-1]["loss"])
    prompt = examples[0].prompt
    cands = [examples[0].answer, 'Toy Story (1995)"']
    expected = lm.score(prompt, cands).logprob
    loaded = TunedLM.load(tmp_path, threads=1, merge=False)
    np.testing.assert_allclose(loaded.score(prompt, cands).logprob, expected, atol=1e-3)
    merged = TunedLM.load(tmp_path, threads=1)  # bf16 rounding of the merged weights
    np.testing.assert_allclose(merged.score(prompt, cands).logprob, expected, atol=0.1, rtol=0.02)
    assert (tmp_path / "adapter_model.safetensors").stat().st_size < 5_000_000
