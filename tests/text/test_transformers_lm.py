"""TransformersLM on tiny random models built from configs (no download), plus one slow check
with the shipped Gemma 3 270M."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers", reason="needs the llm extra: pip install 'genrec[llm]'")
import torch  # noqa: E402

from genrec.errors import ConfigError, LLMError  # noqa: E402
from genrec.text import transformers_lm  # noqa: E402
from genrec.text.lm import LanguageModel  # noqa: E402
from genrec.text.transformers_lm import TransformersLM, tiny_test_model  # noqa: E402

PROMPT = "I liked these movies:\n- Star Wars\n- Fargo\nNext:"
CONTINUATIONS = [
    " Toy Story (1995)",
    " Heat",
    "",
    " a cat sat on the mat and a dog ate a hat",
    "x",
    "\n- Fargo",
]


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = tiny_test_model()
    return TransformersLM.wrap(model, tokenizer, threads=1, batch_size=4)


def naive_scores(lm: TransformersLM, prompt: str, continuations: list[str]) -> np.ndarray:
    """Each continuation scored by one full forward pass over prompt + continuation tokens."""
    text = lm.format_prompt(prompt)
    prompt_ids = lm._encode(text)
    out = []
    for c in continuations:
        ids = lm.continuation_ids(text, prompt_ids, c)
        with torch.no_grad():
            logp = lm._model(torch.tensor([prompt_ids + ids])).logits[0].float().log_softmax(-1)
        out.append(sum(logp[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(ids)))
    return np.array(out)


def test_kv_cache_scoring_equals_naive_full_sequences(tiny):
    assert isinstance(tiny, LanguageModel)
    scores = tiny.score(PROMPT, CONTINUATIONS)
    np.testing.assert_allclose(
        scores.logprob, naive_scores(tiny, PROMPT, CONTINUATIONS), rtol=1e-4, atol=1e-4
    )
    assert scores.n_tokens[2] == 1  # the empty continuation scores end-of-sequence
    assert (scores.n_tokens >= 1).all() and (scores.logprob < 0).all()


def test_batching_and_the_logit_budget_do_not_change_scores(tiny, monkeypatch):
    whole = tiny.score(PROMPT, CONTINUATIONS).logprob
    single = [tiny.score(PROMPT, [c]).logprob[0] for c in CONTINUATIONS]
    np.testing.assert_allclose(whole, single, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(transformers_lm, "LOGIT_BUDGET", 1000)  # forces one continuation per pass
    np.testing.assert_allclose(
        tiny.score(PROMPT, CONTINUATIONS).logprob, whole, rtol=1e-4, atol=1e-4
    )
    assert tiny._score_batches([[1, 2], [1], [1], [1], [1]], vocab=10) == [[1, 2, 3, 4], [0]]


def test_model_forward_fallback_gives_the_same_scores(tiny, monkeypatch):
    fast = tiny.score(PROMPT, CONTINUATIONS).logprob
    monkeypatch.setattr(tiny, "_plain_head", False)
    np.testing.assert_allclose(
        tiny.score(PROMPT, CONTINUATIONS).logprob, fast, rtol=1e-4, atol=1e-4
    )


def test_gemma3_architecture_with_soft_capping_and_sliding_window():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    _, tokenizer = tiny_test_model()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        final_logit_softcapping=5.0,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    lm = TransformersLM.wrap(Gemma3ForCausalLM(config), tokenizer, threads=1)
    scores = lm.score(PROMPT, CONTINUATIONS)
    assert lm._plain_head  # soft-capping is applied by our head too
    np.testing.assert_allclose(
        scores.logprob, naive_scores(lm, PROMPT, CONTINUATIONS), rtol=1e-4, atol=1e-4
    )
    first = lm.generate([PROMPT], max_new_tokens=4)  # sliding-window layers: no kept cache
    assert lm._kept is None and first == lm.generate([PROMPT], max_new_tokens=4)


def test_boundary_tokens_are_the_suffix_after_the_prompt(tiny):
    text = "the dog ate a"
    prompt_ids = tiny._encode(text)
    assert prompt_ids[0] == tiny._tokenizer.bos_token_id
    joint = tiny._encode(text + " hat")
    assert tiny.continuation_ids(text, prompt_ids, " hat") == joint[len(prompt_ids) :]
    # a prompt ending in a space: " hat" would merge across it; the continuation is tokenised alone
    spaced = tiny._encode("the dog ate a ")
    ids = tiny.continuation_ids("the dog ate a ", spaced, "hat")
    assert ids == tiny._tokenizer("hat", add_special_tokens=False)["input_ids"]


def test_generation_is_greedy_batched_seeded_and_stops(tiny):
    prompts = ["a cat", "the dog ate a hat and", "Heat"]
    greedy = tiny.generate(prompts, max_new_tokens=6)
    assert greedy == [tiny.generate([p], max_new_tokens=6)[0] for p in prompts]  # left padding
    sampled = tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert sampled == tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert sampled != tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=4)
    long = tiny.generate(["a cat"], max_new_tokens=12)[0]
    stop = long[3:5]
    cut = tiny.generate(["a cat"], max_new_tokens=12, stop=[stop])[0]
    assert stop not in cut and long.startswith(cut)
    with pytest.raises(ConfigError):
        tiny.generate("a cat")


def test_chat_template_is_applied_when_asked():
    model, tokenizer = tiny_test_model()
    lm = TransformersLM.wrap(model, tokenizer, threads=1, chat=True)
    with pytest.raises(ConfigError, match="chat template"):
        lm.format_prompt("hi")
    tokenizer.chat_template = (
        "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    assert lm.format_prompt("hi") == "<s>user: hi\nassistant:"
    assert lm._encode(lm.format_prompt("hi")).count(tokenizer.bos_token_id) == 1
    assert len(lm.generate(["hi"], max_new_tokens=3)) == 1


def test_loads_a_saved_model_folder(tmp_path, tiny):
    tiny._model.save_pretrained(tmp_path / "m")
    tiny._tokenizer.save_pretrained(tmp_path / "m")
    loaded = TransformersLM(str(tmp_path / "m"), dtype="float32", threads=1)
    assert loaded.name == "m" and loaded.count_tokens("a cat sat") == tiny.count_tokens("a cat sat")
    np.testing.assert_allclose(
        loaded.score(PROMPT, CONTINUATIONS).logprob,
        tiny.score(PROMPT, CONTINUATIONS).logprob,
        rtol=1e-4,
        atol=1e-4,
    )


def test_device_is_checked_then_resolved_on_first_use():
    with pytest.raises(ConfigError, match="device must be one of cpu, cuda, cuda:N, mps, auto"):
        TransformersLM("x", device="gpu")
    model, tokenizer = tiny_test_model()
    lm = TransformersLM.wrap(model, tokenizer, threads=1, device="cuda")  # no GPU here
    with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu or --device auto"):
        lm.score(PROMPT, CONTINUATIONS)
    auto = TransformersLM.wrap(model, tokenizer, threads=1, device="auto")
    assert np.isfinite(auto.score(PROMPT, CONTINUATIONS).logprob).all()
    assert str(auto._device) == "cpu" and model.device.type == "cpu"


@pytest.mark.parametrize("bad", [{"dtype": "float16"}, {"batch_size": 0}, {"threads": 0}])
def test_bad_options(bad):
    with pytest.raises(ConfigError):
        TransformersLM("x", **bad)


def test_missing_models_raise_llm_errors(tmp_path):
    with pytest.raises(LLMError, match="does not exist"):
        TransformersLM(str(tmp_path / "missing.gguf")).count_tokens("x")
    with pytest.raises(LLMError, match="could not load"):
        TransformersLM(str(tmp_path)).count_tokens("x")


@pytest.mark.slow
def test_gemma_scores_twenty_candidates_like_naive_scoring():
    """The shipped Gemma 3 270M (cached bf16 copy; the first run dequantises the GGUF once)."""
    lm = TransformersLM("gemma-3-270m", threads=1)
    prompt = (
        "Movies a user liked, most recent last:\n- Toy Story (1995)\n- Aladdin (1992)\n"
        "- The Lion King (1994)\nThe next movie they liked:"
    )
    titles = [
        " Toy Story 2 (1999)",
        " Pocahontas (1995)",
        " Schindler's List (1993)",
        " Heat (1995)",
    ] * 5
    scores = lm.score(prompt, titles)
    assert scores.logprob.shape == (20,) and np.isfinite(scores.logprob).all()
    np.testing.assert_allclose(scores.logprob[:4], scores.logprob[4:8], rtol=1e-5)
    naive = naive_scores(lm, prompt, titles[:2])
    np.testing.assert_allclose(scores.logprob[:2], naive, rtol=0.02, atol=0.05)  # bf16
    text = lm.generate([prompt], max_new_tokens=8)[0]
    assert (
        text.strip()
        and lm.generate([prompt], max_new_tokens=8, stop=["\n"])[0] == text.split("\n")[0]
    )


@pytest.mark.parametrize("temperature,stop", [(0.0, ()), (1.0, ()), (0.0, ("at",))])
def test_stream_yields_the_generated_text_and_stops_when_closed(tiny, temperature, stop):
    prompt = "a cat sat on"
    whole = tiny.generate([prompt], max_new_tokens=12, temperature=temperature, stop=stop, seed=3)
    pieces = list(
        tiny.stream(prompt, max_new_tokens=12, temperature=temperature, stop=stop, seed=3)
    )
    assert "".join(pieces) == whole[0]
    stream = tiny.stream(prompt, max_new_tokens=10_000)
    next(stream)
    stream.close()  # the helper thread is joined: generation stopped
    assert tiny.context_length == 256


def test_stream_under_a_json_schema_yields_the_constrained_text(tiny):
    pytest.importorskip("lmformatenforcer")
    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["happy", "sad"]}},
        "required": ["mood"],
        "additionalProperties": False,
    }
    whole = tiny.generate(["How are you?"], max_new_tokens=20, json_schema=schema)[0]
    pieces = list(tiny.stream("How are you?", max_new_tokens=20, json_schema=schema))
    assert "".join(pieces) == whole and json.loads(whole)["mood"] in ("happy", "sad")


def _read_tokens(lm: TransformersLM) -> list[int]:
    """A list that receives the number of tokens each forward pass of ``lm`` reads."""
    seen: list[int] = []
    lm._model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[1])
    )
    return seen


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {
            "type": "object",
            "properties": {
                "mood": {"enum": ["happy", "sad"]},
                "note": {"type": "string", "maxLength": 12},
            },
            "required": ["mood", "note"],
            "additionalProperties": False,
        },
    ],
)
def test_the_kept_prompt_cache_changes_no_answer_and_skips_the_shared_prefix(schema):
    shared = "I liked these movies:\n- Star Wars\n- Fargo\n- Heat\n- Toy Story (1995)\nUser: "
    prompts = [shared + t for t in ("a cat sat", "the dog ate a hat", "a cat sat on the mat")]
    kept = TransformersLM.wrap(*tiny_test_model(), threads=1)
    fresh = TransformersLM.wrap(*tiny_test_model(), threads=1)
    reads = _read_tokens(kept)
    options = dict(max_new_tokens=10, json_schema=schema)
    for prompt in prompts + prompts[:1]:
        with_cache = kept.generate([prompt], **options)[0]
        fresh._kept = None
        assert with_cache == fresh.generate([prompt], **options)[0]
        streamed = "".join(kept.stream(prompt, **options))
        assert streamed == with_cache
    prefix = len(kept._encode(shared))
    first_read, later_reads = reads[0], [r for r in reads[1:] if r > 1]
    assert first_read >= prefix and later_reads and max(later_reads) < first_read - prefix // 2


def test_a_weight_change_drops_the_kept_prompt_cache():
    lm = TransformersLM.wrap(*tiny_test_model(), threads=1)
    reads = _read_tokens(lm)
    lm.generate(["a cat sat on the mat"], max_new_tokens=4)
    with torch.no_grad():
        lm._model.lm_head.weight.mul_(3.0)  # what an optimizer step does: an in-place update
    reads.clear()
    again = lm.generate(["a cat sat on the mat"], max_new_tokens=4)[0]
    assert reads[0] == len(lm._encode("a cat sat on the mat"))  # the whole prompt read again
    lm._kept = None
    assert again == lm.generate(["a cat sat on the mat"], max_new_tokens=4)[0]


def test_bfloat16_generation_on_the_cpu_decodes_with_eager_attention_then_restores_sdpa():
    model, tokenizer = tiny_test_model()
    model = model.to(torch.bfloat16)
    model.set_attn_implementation("sdpa")
    lm = TransformersLM.wrap(model, tokenizer, threads=1)
    used: list[str] = []
    model.model.layers[0].self_attn.register_forward_pre_hook(
        lambda module, args: used.append(module.config._attn_implementation)
    )
    text = lm.generate(["a cat sat"], max_new_tokens=3)[0]
    assert isinstance(text, str) and used and set(used) == {"eager"}
    assert model.config._attn_implementation == "sdpa"  # restored after generating
    used.clear()
    lm.score("a cat sat", [" on"])
    assert set(used) == {"sdpa"}  # scoring reads whole prompts: the model's own attention


def test_span_states_average_the_last_layer_over_each_span(tiny):
    text = "I liked these movies:\n- Star Wars\n- Fargo\nNext:"
    spans = [(text.index("Star Wars"), text.index("Star Wars") + 9), (text.index("Fargo"), 42)]
    states = tiny.span_states(text, spans)
    ids = tiny._encode(text)
    offsets = np.asarray(tiny._tokenizer(text, return_offsets_mapping=True)["offset_mapping"])
    with torch.no_grad():
        hidden = tiny._model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    for row, (a, b) in enumerate(spans):
        inside = (offsets[:, 0] < b) & (offsets[:, 1] > a) & (offsets[:, 1] > offsets[:, 0])
        np.testing.assert_allclose(
            states[row], hidden[inside].mean(0).numpy(), rtol=1e-5, atol=1e-5
        )
    assert not np.allclose(states[0], states[1])
    for bad in ([(5, 5)], [(-1, 3)], [(0, len(text) + 1)]):
        with pytest.raises(ConfigError, match="span"):
            tiny.span_states(text, bad)
