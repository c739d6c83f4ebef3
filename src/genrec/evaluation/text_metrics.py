"""Text-overlap metrics for generated text: BLEU (Papineni et al., 2002) and ROUGE (Lin, 2004).

Pure Python over token lists; texts are tokenised by :func:`tokenize` (lower-cased words and
single punctuation marks) unless you pass token lists yourself.

* :func:`sentence_bleu` / :func:`corpus_bleu` — BLEU-N for N = 1..4: the geometric mean of the
  modified (clipped) n-gram precisions of orders 1..N with uniform weights, times the brevity
  penalty ``BP = 1 if c > r else exp(1 - r / c)`` (``c`` hypothesis length, ``r`` the
  closest reference length, the shorter one on a tie). "BLEU-2" is the cumulative score over
  orders 1 and 2, as in the explanation-generation literature (e.g. PETER, Li et al., 2021).
  Corpus BLEU sums the clipped counts and lengths over all sentences before dividing (it is not
  the mean of sentence BLEUs).
* Smoothing of zero n-gram counts (Chen & Cherry, 2014): ``"none"`` (an order with no match
  gives BLEU 0), ``"exp"`` (the k-th order with no match counts as precision ``1 / (2^k *
  total)``: mteval's and sacreBLEU's default for sentence BLEU, our default for sentences too),
  and ``"add1"`` (add one to matches and totals of orders >= 2; Lin & Och's BLEU+1).
  Corpus BLEU is unsmoothed by default, as is standard.
* :func:`rouge_n` / :func:`rouge_l` — ROUGE-1/2 F1 from clipped n-gram overlap and ROUGE-L F1
  from the longest common subsequence; with several references the best F1 is kept (as
  Google's ``rouge-score`` does). :func:`rouge_scores` averages them over a corpus.
  No stemming and no stop-word removal.

Scores are fractions in [0, 1] (sacreBLEU prints them times 100).

Example:
    >>> hyp = "the cat sat on the mat"
    >>> round(sentence_bleu(hyp, ["the cat sat on the mat"]).score, 4)
    1.0
    >>> round(sentence_bleu("the cat", ["the cat sat on the mat"], max_n=1).score, 4)  # BP
    0.1353
    >>> round(rouge_n("the cat sat", ["the cat ran"], n=1), 4)
    0.6667
    >>> round(rouge_l("a b c d", ["a c b d"]), 4)
    0.75
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from genrec.errors import ConfigError

Text = str | Sequence[str]  # a string (tokenised here) or a list of tokens
SMOOTHING = ("none", "exp", "add1")

_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words (with inner apostrophes: "don't") and single punctuation marks.

    >>> tokenize("Don't miss it: a 1995 classic!")
    ["don't", 'miss', 'it', ':', 'a', '1995', 'classic', '!']
    """
    text = "" if text is None else str(text)
    return _TOKEN.findall(text.lower() if lowercase else text)


def _tokens(text: Text) -> list[str]:
    if isinstance(text, str):
        return tokenize(text)
    return [str(t) for t in text]


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """Counts of the n-grams (tuples) of ``tokens``."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class BleuScore:
    """A BLEU score and its parts.

    Attributes:
        score: BLEU in [0, 1].
        precisions: (max_n,) the (smoothed) n-gram precisions used.
        matches, totals: (max_n,) clipped n-gram matches and hypothesis n-gram counts.
        brevity_penalty: BP.
        hyp_len, ref_len: hypothesis length and effective (closest) reference length, in tokens.
    """

    score: float
    precisions: tuple[float, ...]
    matches: tuple[int, ...]
    totals: tuple[int, ...]
    brevity_penalty: float
    hyp_len: int
    ref_len: int


def _check_bleu_args(max_n: int, smoothing: str) -> None:
    if isinstance(max_n, bool) or not isinstance(max_n, int) or not 1 <= max_n <= 8:
        raise ConfigError(
            f"max_n must be an integer in 1..8 (BLEU-1..BLEU-4 use 1..4), got {max_n!r}"
        )
    if smoothing not in SMOOTHING:
        raise ConfigError(f"smoothing must be one of {SMOOTHING}, got {smoothing!r}")


def _sentence_stats(hyp: list[str], refs: list[list[str]], max_n: int):
    """Clipped matches and totals per order, hypothesis length, closest reference length."""
    matches, totals = [0] * max_n, [0] * max_n
    for n in range(1, max_n + 1):
        hyp_counts = ngrams(hyp, n)
        best: Counter = Counter()
        for ref in refs:
            best |= ngrams(ref, n)  # per n-gram: the most any one reference holds
        matches[n - 1] = sum(min(c, best[g]) for g, c in hyp_counts.items())
        totals[n - 1] = max(len(hyp) - n + 1, 0)
    ref_len = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r), default=0)
    return matches, totals, len(hyp), ref_len


def _bleu(
    matches,
    totals,
    hyp_len: int,
    ref_len: int,
    max_n: int,
    smoothing: str,
    effective_order: bool = False,
) -> BleuScore:
    precisions, k, used = [], 0, max_n
    for n in range(max_n):
        if effective_order and totals[n] == 0:  # too short for this order: leave it out
            used = n
            break
        m, t = float(matches[n]), float(totals[n])
        if smoothing == "add1" and n > 0:
            m, t = m + 1, t + 1
        if t == 0:
            p = 0.0
        elif m > 0:
            p = m / t
        elif smoothing == "exp":
            k += 1
            p = 1.0 / (2**k * t)
        else:
            p = 0.0
        precisions.append(p)
    if hyp_len == 0 or sum(matches) == 0 or min(precisions) == 0:
        score = 0.0  # no n-gram matches at all is 0 under every smoothing
    else:
        score = math.exp(sum(math.log(p) for p in precisions) / used)
    bp = 0.0 if hyp_len == 0 else (1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len))
    return BleuScore(
        score * bp,
        tuple(precisions),
        tuple(int(m) for m in matches),
        tuple(int(t) for t in totals),
        bp,
        hyp_len,
        ref_len,
    )


def _references(references: Sequence[Text]) -> list[list[str]]:
    if isinstance(references, str):
        references = [references]
    refs = [_tokens(r) for r in references]
    if not refs:
        raise ConfigError("BLEU needs at least one reference per hypothesis")
    return refs


def sentence_bleu(
    hypothesis: Text,
    references: Sequence[Text],
    *,
    max_n: int = 4,
    smoothing: str = "exp",
    effective_order: bool = False,
) -> BleuScore:
    """BLEU-``max_n`` of one hypothesis against one or more references (see the module doc).

    Args:
        hypothesis: a text or a token list.
        references: texts or token lists (a single string is one reference).
        max_n: highest n-gram order (BLEU-1..BLEU-4: 1..4).
        smoothing: "exp" (default), "add1" or "none".
        effective_order: for a hypothesis shorter than ``max_n`` tokens, average only the orders
            it has (sacreBLEU's sentence default) instead of scoring 0.
    """
    _check_bleu_args(max_n, smoothing)
    stats = _sentence_stats(_tokens(hypothesis), _references(references), max_n)
    return _bleu(*stats, max_n, smoothing, effective_order)


def corpus_bleu(
    hypotheses: Sequence[Text],
    references: Sequence[Sequence[Text]],
    *,
    max_n: int = 4,
    smoothing: str = "none",
) -> BleuScore:
    """Corpus BLEU: matches, totals and lengths summed over sentences, then combined.

    Args:
        hypotheses: one text (or token list) per sentence.
        references: per sentence, its references (a single string is one reference).

    Raises:
        ConfigError: the two lists differ in length, or are empty.
    """
    _check_bleu_args(max_n, smoothing)
    if len(hypotheses) != len(references) or not len(hypotheses):
        raise ConfigError(
            f"corpus_bleu needs one reference list per hypothesis; got "
            f"{len(hypotheses)} hypotheses and {len(references)} reference lists"
        )
    matches, totals, hyp_len, ref_len = [0] * max_n, [0] * max_n, 0, 0
    for hyp, refs in zip(hypotheses, references):
        m, t, h, r = _sentence_stats(_tokens(hyp), _references(refs), max_n)
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        hyp_len, ref_len = hyp_len + h, ref_len + r
    return _bleu(matches, totals, hyp_len, ref_len, max_n, smoothing)


# ---- ROUGE -----------------------------------------------------------------------------------
def _f1(overlap: float, hyp_total: float, ref_total: float) -> float:
    if overlap == 0 or hyp_total == 0 or ref_total == 0:
        return 0.0
    precision, recall = overlap / hyp_total, overlap / ref_total
    return 2 * precision * recall / (precision + recall)


def rouge_n(hypothesis: Text, references: Sequence[Text], *, n: int = 1) -> float:
    """ROUGE-N F1: clipped n-gram overlap over the hypothesis' (precision) and the reference's
    (recall) n-gram counts; the best over the references."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"ROUGE n must be a positive integer, got {n!r}")
    hyp = ngrams(_tokens(hypothesis), n)
    scores = []
    for ref_tokens in _references(references):
        ref = ngrams(ref_tokens, n)
        overlap = sum((hyp & ref).values())
        scores.append(_f1(overlap, sum(hyp.values()), sum(ref.values())))
    return max(scores)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: Text, references: Sequence[Text]) -> float:
    """ROUGE-L F1 (sentence level): LCS / hypothesis length and LCS / reference length."""
    hyp = _tokens(hypothesis)
    return max(_f1(lcs_length(hyp, ref), len(hyp), len(ref)) for ref in _references(references))


def rouge_scores(
    hypotheses: Sequence[Text], references: Sequence[Sequence[Text]]
) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over a corpus: ``{"rouge-1": ..., ...}``."""
    if len(hypotheses) != len(references) or not len(hypotheses):
        raise ConfigError(
            f"rouge_scores needs one reference list per hypothesis; got "
            f"{len(hypotheses)} hypotheses and {len(references)} reference lists"
        )
    totals = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    for hyp, refs in zip(hypotheses, references):
        totals["rouge-1"] += rouge_n(hyp, refs, n=1)
        totals["rouge-2"] += rouge_n(hyp, refs, n=2)
        totals["rouge-l"] += rouge_l(hyp, refs)
    return {k: v / len(hypotheses) for k, v in totals.items()}


def text_overlap(
    hypotheses: Sequence[Text], references: Sequence[Sequence[Text]]
) -> dict[str, float]:
    """Corpus BLEU-1..4 (unsmoothed) and mean ROUGE-1/2/L F1: the usual explanation table."""
    out = {f"bleu-{n}": corpus_bleu(hypotheses, references, max_n=n).score for n in range(1, 5)}
    out.update(rouge_scores(hypotheses, references))
    return out


__all__ = [
    "BleuScore",
    "SMOOTHING",
    "corpus_bleu",
    "lcs_length",
    "ngrams",
    "rouge_l",
    "rouge_n",
    "rouge_scores",
    "sentence_bleu",
    "text_overlap",
    "tokenize",
]
