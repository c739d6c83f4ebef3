"""BLEU and ROUGE: hand-computed values, properties, and sacreBLEU, NLTK and Google's
rouge-score (the dev extra) as independent implementations."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.errors import ConfigError
from genrec.evaluation.text_metrics import (
    corpus_bleu,
    lcs_length,
    rouge_l,
    rouge_n,
    rouge_scores,
    sentence_bleu,
    text_overlap,
    tokenize,
)

HYP = "the cat is on the mat"
REF = "there is a cat on the mat"


def test_tokenize():
    assert tokenize("It's a 1995 Sci-Fi film, isn't it?") == [
        "it's",
        "a",
        "1995",
        "sci",
        "-",
        "fi",
        "film",
        ",",
        "isn't",
        "it",
        "?",
    ]
    assert tokenize("") == [] and tokenize(None) == []


def test_sentence_bleu_by_hand():
    # hyp (6 tokens) vs ref (7 tokens):
    # 1-grams: the x2 (ref has 1 -> clipped 1), cat, is, on, mat -> 5/6
    # 2-grams: the cat, cat is, is on, on the, the mat -> "on the", "the mat" -> 2/5
    # 3-grams: "on the mat" -> 1/4;  4-grams: 0/3
    # BP = exp(1 - 7/6)
    bp = math.exp(1 - 7 / 6)
    b1 = sentence_bleu(HYP, [REF], max_n=1)
    assert b1.matches == (5,) and b1.totals == (6,) and b1.ref_len == 7
    assert b1.score == pytest.approx(bp * 5 / 6)
    b2 = sentence_bleu(HYP, [REF], max_n=2)
    assert b2.score == pytest.approx(bp * math.sqrt(5 / 6 * 2 / 5))
    b3 = sentence_bleu(HYP, [REF], max_n=3)
    assert b3.score == pytest.approx(bp * (5 / 6 * 2 / 5 * 1 / 4) ** (1 / 3))
    # BLEU-4 has no 4-gram match: 0 unsmoothed; "exp" uses 1/(2 * 3); "add1" (1/4)(2/5)... +1
    assert sentence_bleu(HYP, [REF], smoothing="none").score == 0.0
    exp = sentence_bleu(HYP, [REF], smoothing="exp")
    assert exp.precisions[3] == pytest.approx(1 / 6)
    assert exp.score == pytest.approx(bp * (5 / 6 * 2 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    add1 = sentence_bleu(HYP, [REF], smoothing="add1")
    assert add1.score == pytest.approx(bp * (5 / 6 * 3 / 6 * 2 / 5 * 1 / 4) ** 0.25)


def test_bleu_extremes_and_multiple_references():
    assert sentence_bleu(REF, [REF]).score == pytest.approx(1.0)
    assert sentence_bleu("dog runs fast", [REF]).score == 0.0  # no match: 0 under any smoothing
    assert sentence_bleu("", [REF]).score == 0.0
    # the closest reference length sets the brevity penalty (tie -> the shorter one)
    b = sentence_bleu("a b c d", ["a b c d e f", "a b"], max_n=1)
    assert b.ref_len == 2 and b.brevity_penalty == 1.0
    assert sentence_bleu("a b c", ["a b c d", "a b"], max_n=1).ref_len == 2
    # clipping takes the most any one reference holds
    assert sentence_bleu("the the the", ["the cat", "the the"], max_n=1).matches == (2,)
    # too short for 4-grams: 0 unless effective order
    assert sentence_bleu("on the mat", [REF], smoothing="none").score == 0.0
    assert sentence_bleu("on the mat", [REF], effective_order=True).score > 0


def test_corpus_bleu_sums_counts_before_dividing():
    hyps, refs = [HYP, "the mat"], [[REF], ["the mat is red"]]
    c = corpus_bleu(hyps, refs, max_n=2)
    # 1-grams 5/6 + 2/2; 2-grams 2/5 + 1/1; lengths 8 vs 7 + 4 = 11
    assert c.matches == (7, 3) and c.totals == (8, 6) and (c.hyp_len, c.ref_len) == (8, 11)
    assert c.score == pytest.approx(math.exp(1 - 11 / 8) * math.sqrt(7 / 8 * 3 / 6))
    assert c.score != pytest.approx(
        sum(sentence_bleu(h, r, max_n=2).score for h, r in zip(hyps, refs)) / 2
    )


def test_rouge_by_hand():
    # unigram overlap 5 (the, cat, on, mat, is); P 5/6, R 5/7
    assert rouge_n(HYP, [REF], n=1) == pytest.approx(2 * (5 / 6) * (5 / 7) / (5 / 6 + 5 / 7))
    # bigram overlap: "on the", "the mat": P 2/5, R 2/6
    assert rouge_n(HYP, [REF], n=2) == pytest.approx(2 * (2 / 5) * (2 / 6) / (2 / 5 + 2 / 6))
    # LCS: "cat on the mat" (4) or "the ... on the mat"? the, is, on, the, mat -> 5? hyp order:
    # the cat is on the mat / there is a cat on the mat -> "cat on the mat" = 4, "is on the mat" = 4
    assert lcs_length(tokenize(HYP), tokenize(REF)) == 4
    assert rouge_l(HYP, [REF]) == pytest.approx(2 * (4 / 6) * (4 / 7) / (4 / 6 + 4 / 7))
    assert rouge_l("a b", ["c d"]) == 0.0 and rouge_n("", ["a"]) == 0.0
    assert rouge_n("a b", ["x y", "a b"], n=2) == 1.0  # best reference
    scores = rouge_scores([HYP, REF], [[REF], [REF]])
    assert scores["rouge-l"] == pytest.approx((rouge_l(HYP, [REF]) + 1) / 2)
    assert set(text_overlap([HYP], [[REF]])) == {
        "bleu-1",
        "bleu-2",
        "bleu-3",
        "bleu-4",
        "rouge-1",
        "rouge-2",
        "rouge-l",
    }


def test_bad_arguments():
    with pytest.raises(ConfigError, match="max_n"):
        sentence_bleu(HYP, [REF], max_n=0)
    with pytest.raises(ConfigError, match="smoothing"):
        sentence_bleu(HYP, [REF], smoothing="laplace")
    with pytest.raises(ConfigError, match="reference"):
        sentence_bleu(HYP, [])
    with pytest.raises(ConfigError, match="one reference list per hypothesis"):
        corpus_bleu([HYP], [[REF], [REF]])
    with pytest.raises(ConfigError, match="n must be"):
        rouge_n(HYP, [REF], n=0)


WORDS = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(WORDS, WORDS)
def test_properties(hyp, ref):
    for n in (1, 2, 3, 4):
        s = sentence_bleu(hyp, [ref], max_n=n).score
        assert 0.0 <= s <= 1.0 + 1e-12
    assert 0.0 <= rouge_l(hyp, [ref]) <= 1.0
    assert lcs_length(hyp, ref) == lcs_length(ref, hyp) <= min(len(hyp), len(ref))
    assert rouge_n(hyp, [ref], n=1) == pytest.approx(rouge_n(ref, [hyp], n=1))  # F1 symmetric
    if hyp:
        assert sentence_bleu(hyp, [hyp], max_n=min(4, len(hyp))).score == pytest.approx(1.0)


# ---- independent implementations (the dev extra installs them) -------------------------------
PAIRS = [
    (HYP, [REF]),
    ("a b c d e f g", ["a b c x e f g", "b c d e"]),
    ("the movie was great fun", ["great fun movie", "the film was great and fun"]),
    ("short", ["a much longer reference sentence here"]),
    ("x y z w v", ["x y z w v"]),
]


def test_against_sacrebleu():
    import sacrebleu
    from sacrebleu.metrics import BLEU

    join = lambda t: " ".join(tokenize(t))  # noqa: E731  same tokens for both sides
    for smooth, ours in (("exp", "exp"), ("none", "none"), ("add-k", "add1")):
        metric = BLEU(tokenize="none", smooth_method=smooth, effective_order=False)
        for hyp, refs in PAIRS:
            theirs = metric.sentence_score(join(hyp), [join(r) for r in refs]).score / 100
            assert sentence_bleu(hyp, refs, smoothing=ours).score == pytest.approx(theirs, abs=1e-9)
    hyps = [h for h, _ in PAIRS]
    refs_t = [[join(p[1][0]) for p in PAIRS]]  # sacrebleu: one stream per reference position
    theirs = sacrebleu.corpus_bleu([join(h) for h in hyps], refs_t, tokenize="none").score / 100
    ours = corpus_bleu(hyps, [[r[0]] for _, r in PAIRS]).score
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_against_nltk():
    from nltk.translate import bleu_score

    # NLTK counts a hypothesis shorter than n as having one (missed) n-gram, where BLEU,
    # mteval, sacreBLEU and we count none: compare on hypotheses of at least 4 tokens.
    pairs = [(h, rs) for h, rs in PAIRS if len(tokenize(h)) >= 4]
    for n in (1, 2, 3, 4):
        weights = tuple([1 / n] * n)
        hyps = [tokenize(h) for h, _ in pairs]
        refs = [[tokenize(r) for r in rs] for _, rs in pairs]
        theirs = bleu_score.corpus_bleu(refs, hyps, weights=weights)
        assert corpus_bleu(hyps, refs, max_n=n).score == pytest.approx(theirs, abs=1e-9)
        for h, r in zip(hyps, refs):
            theirs = bleu_score.sentence_bleu(r, h, weights=weights)
            assert sentence_bleu(h, r, max_n=n, smoothing="none").score == pytest.approx(
                theirs, abs=1e-9
            )


def test_against_rouge_score():
    from rouge_score import rouge_scorer

    class Tok:
        def tokenize(self, text):
            return tokenize(text)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=Tok())
    for hyp, refs in PAIRS:
        theirs = scorer.score(refs[0], hyp)
        assert rouge_n(hyp, refs[:1], n=1) == pytest.approx(theirs["rouge1"].fmeasure)
        assert rouge_n(hyp, refs[:1], n=2) == pytest.approx(theirs["rouge2"].fmeasure)
        assert rouge_l(hyp, refs[:1]) == pytest.approx(theirs["rougeL"].fmeasure)
