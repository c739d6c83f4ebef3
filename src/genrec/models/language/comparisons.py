"""Comparison-based reranking styles for a language model: pairwise (PRP) and setwise.

Both ask the listwise question of :func:`genrec.text.prompts.listwise_prompt` ("which of these
candidates next?", answered by a letter) about a few candidates at a time, and turn the letter
probabilities into one score per candidate, so that the scores can be fused with a retriever's
(:mod:`genrec.pipelines.fusion`) like any other reranker's.

* **Pairwise** (PRP: Qin et al., "Large Language Models are Effective Text Rankers with Pairwise
  Ranking Prompting", NAACL 2024): each candidate is compared with the ``span`` candidates after
  it in the given (retriever's) order, every pair asked in both orders to cancel the position
  bias; the preference for ``a`` over ``b`` is the mean over both orders of ``log p(a's letter) -
  log p(b's letter)``, and a candidate's score is its mean preference over its comparisons
  (PRP's all-pairs scoring restricted to a band). LM calls: ``2 * (C * span - span * (span + 1)
  / 2)``, 38 for 20 candidates and ``span=1``. Deviation: PRP sorts (all pairs, or sliding
  bubble-sort passes); a band of comparisons bounds the calls and gives scores to fuse.
* **Setwise** (Zhuang et al., "A Setwise Approach for Effective and Highly Efficient Zero-shot
  Ranking with Large Language Models", SIGIR 2024): windows of ``set_size`` candidates, each
  overlapping the next by one, asked once each; a candidate's score is the mean over its windows
  of ``log p(its letter) + log(window size)`` (its probability relative to a uniform choice,
  letters renormalised within the window). LM calls: ``ceil((C - 1) / (set_size - 1))``, 5 for
  20 candidates and sets of 5. Deviation: the paper sorts with the set choices (heap or bubble
  sort); scoring every window once bounds the calls and gives scores to fuse.

Example:
    >>> from genrec.text.lm import FakeLanguageModel
    >>> lm = FakeLanguageModel()
    >>> pairwise_scores(lm, ["Alien"], ["Heat", "Up", "Ran"], span=1).shape, len(lm.calls)
    ((3,), 4)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genrec.errors import ConfigError, DataError
from genrec.text import prompts


def pairwise_scores(
    lm,
    history_titles: Sequence[object],
    candidate_titles: Sequence[object],
    *,
    span: int = 1,
    examples=(),
    kind: str = "movie",
) -> np.ndarray:
    """(C,) float64 mean pairwise preference of each candidate (see the module docstring)."""
    n = len(candidate_titles)
    if isinstance(span, bool) or not isinstance(span, (int, np.integer)) or span < 1:
        raise ConfigError(f"pairwise span must be a positive integer, got {span!r}")
    total, count = np.zeros(n), np.zeros(n)
    for a in range(n):
        for b in range(a + 1, min(a + span, n - 1) + 1):
            ab = _letter_logprobs(
                lm, history_titles, [candidate_titles[a], candidate_titles[b]], examples, kind
            )
            ba = _letter_logprobs(
                lm, history_titles, [candidate_titles[b], candidate_titles[a]], examples, kind
            )
            prefer_a = ((ab[0] - ab[1]) + (ba[1] - ba[0])) / 2
            total[[a, b]] += (prefer_a, -prefer_a)
            count[[a, b]] += 1
    return total / np.maximum(count, 1)


def setwise_windows(n: int, set_size: int) -> list[range]:
    """Windows of ``set_size`` positions covering 0..n-1, each overlapping the next by one.

    >>> [list(w) for w in setwise_windows(7, 3)]
    [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    """
    if (
        isinstance(set_size, bool)
        or not isinstance(set_size, (int, np.integer))
        or not 2 <= set_size <= len(prompts.LETTERS)
    ):
        raise ConfigError(
            f"set_size must be an integer in 2..{len(prompts.LETTERS)}, got {set_size!r}"
        )
    if n <= set_size:
        return [range(n)]
    starts = range(0, n - 1, set_size - 1)
    return [range(s, min(s + set_size, n)) for s in starts]


def setwise_scores(
    lm,
    history_titles: Sequence[object],
    candidate_titles: Sequence[object],
    *,
    set_size: int = 5,
    examples=(),
    kind: str = "movie",
) -> np.ndarray:
    """(C,) float64 mean log-probability of each candidate's letter relative to a uniform choice
    within its windows (see the module docstring)."""
    n = len(candidate_titles)
    total, count = np.zeros(n), np.zeros(n)
    for window in setwise_windows(n, set_size):
        logprob = _letter_logprobs(
            lm, history_titles, [candidate_titles[i] for i in window], examples, kind
        )
        logprob = logprob - np.logaddexp.reduce(logprob)  # renormalised within the window
        total[list(window)] += logprob + np.log(len(window))
        count[list(window)] += 1
    return total / np.maximum(count, 1)


def _letter_logprobs(lm, history_titles, titles, examples, kind) -> np.ndarray:
    prompt = prompts.listwise_prompt(history_titles, titles, examples=examples, kind=kind)
    logprob = np.asarray(
        lm.score(prompt, prompts.letter_continuations(len(titles))).logprob, np.float64
    )
    if np.isnan(logprob).any():
        raise DataError(
            f"language model {getattr(lm, 'name', lm)!r} returned NaN log-probabilities"
        )
    return logprob


__all__ = ["pairwise_scores", "setwise_scores", "setwise_windows"]
