"""Instruction data for tuning a language model into a recommender (P5 / TALLRec style).

One builder per task; each turns a :class:`~genrec.data.dataset.Split` into
:class:`Instruction` examples (a prompt and the answer the model should continue it with; the
tuning loss covers the answer's tokens only):

* :func:`next_item_examples` — the next item among candidates. The answer is the next item's
  title (:func:`genrec.text.prompts.candidate_continuation`: cleaned title + closing quote), so a
  tuned model ranks candidates exactly as :class:`~genrec.models.language.llm.LLMRecommender` scores them
  (grounded: the likelihood of each candidate title). Template 0 *is* the recommender's prompt;
  the others paraphrase it, and some list the target among ``n_candidates`` sampled items.
* :func:`preference_examples` — TALLRec's yes/no question: will the user like this item, given
  the history? The real next item is "Yes" when rated >= ``like_threshold`` (else "No"; every
  interaction is "Yes" when the data has no ratings, i.e. all values are equal); half the
  examples ask about a sampled item the user never interacted with ("No"). Template 0 is the
  prompt of the LLM recommender's ``mode="preference"``.
* :func:`listwise_examples` — LlamaRec's task: candidates listed under letters, the target's
  letter as the answer; with a retriever, its shortlist in its order (template 0 is the prompt of
  the LLM recommender's ``mode="listwise"`` and of the two-stage pipeline's listwise reranker).
* :func:`rating_examples` — the rating (" 1".." 5", :data:`~genrec.text.prompts.RATING_CONTINUATIONS`)
  the user gave the next item, after their rated history.
* :func:`explanation_examples` — the user's own review summary (or text) of the next item, where
  the dataset has reviews (``review_summary`` / ``review_text`` extras, e.g. the Amazon loaders).

Negatives (next-item candidates, "No" items) are drawn uniformly among items, or, given a fitted
``retriever`` (e.g. EASE), among its top ``n_hard`` items for the case's history: the hard
negatives a reranker meets over a retriever's shortlist in the two-stage pipeline;
``uniform_share`` of them (in expectation) are then drawn uniformly instead (mixed negatives).
A retriever fitted on all training data has seen every training target, so its training
shortlists are easier than the test ones; a :class:`FoldRetriever` (k copies, each fitted
without one fold of users) gives each case a shortlist from a retriever that never saw its user.

Leakage rules (tested): ``part="train"`` examples use only ``split.train`` — histories, targets
and negatives are training interactions of training users (users with training interactions;
held-out users of a cold-start split have none), negatives are drawn among items with training
interactions. ``part="valid"`` examples (early stopping) take their targets from ``split.valid``
and their histories from ``split.history("valid")``; nothing ever comes from ``split.test``.
Every data value in a prompt goes through :func:`genrec.text.prompts.quote`.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> split = planted_clusters(n_users=20, n_items=15, n_clusters=3).split
    >>> examples = next_item_examples(split, per_user=1, seed=0)
    >>> examples[0].task, examples[0].answer.endswith('"')
    ('next-item', True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.text import prompts
from genrec.text.prompts import quote, quoted_list

PARTS = ("train", "valid")


@dataclass(frozen=True)
class Instruction:
    """One tuning example: the model reads ``prompt`` and should continue with ``answer``.

    ``user`` and ``items`` (history items, then the item asked about) record where it came from
    (leakage checks); ``template`` is the paraphrase used. A distillation example also carries
    its ``choices`` (the continuations scored, e.g. the letters) and a ``teacher`` distribution
    over them (same length, sums to 1); the tuner can then learn that distribution besides the
    answer.
    """

    task: str
    prompt: str
    answer: str
    user: int
    items: tuple[int, ...]
    template: int
    choices: tuple[str, ...] = ()
    teacher: tuple[float, ...] = ()


# ---- templates (several paraphrases per task; {history} etc. are quoted lists) ---------------
NEXT_ITEM_TEMPLATES: list[str] = [
    "",  # 0: the LLM recommender's own prompt (prompts.next_item_prompt)
    'Movies this viewer watched, in order:\n{history}\nWhat they watched next: "',
    "A user's viewing history (oldest first):\n{history}\nRecommended next movie: \"",
    (
        "Recently liked movies:\n{history}\nCandidates:\n{candidates}\n"
        'Of the candidates, the one they liked next: "'
    ),
    (
        "Here is what a movie fan enjoyed:\n{history}\nPick their next movie from:\n{candidates}\n"
        'Answer: "'
    ),
]
PREFERENCE_TEMPLATES: list[str] = [
    "",  # 0: the LLM recommender's own yes/no prompt (prompts.preference_prompt, mode="preference")
    "A movie fan liked these movies:\n{history}\nWill they like {item}? Answer Yes or No:",
    "Movies a user watched:\n{history}\nWould this user enjoy {item}? Yes or No:",
    "Viewing history:\n{history}\nQuestion: does the user like {item}? Reply Yes or No:",
]
RATING_TEMPLATES: list[str] = [
    "",  # 0: the LLM recommender's own rating prompt (prompts.rating_prompt)
    "A user rated movies from 1 to 5:\n{history}\nTheir rating of {item}, from 1 to 5:",
    "Past ratings (1 = hated, 5 = loved):\n{history}\nPredicted rating for {item}:",
]
LISTWISE_TEMPLATES: list[str] = [
    "",  # 0: the LLM recommender's own listwise prompt (prompts.listwise_prompt)
    (
        "Movies this viewer liked, oldest first:\n{history}\nOptions:\n{candidates}\n"
        "The option they will like most is letter:"
    ),
]
EXPLANATION_TEMPLATES: list[str] = [
    "A fan's recently liked items:\n{history}\nWhy they liked {item}, in their words: \"",
    'History:\n{history}\nA short review of {item} by this user: "',
]
ANSWERS_YES_NO = prompts.PREFERENCE_ANSWERS


# ---- shared pieces ---------------------------------------------------------------------------
def _check_args(split, part: str, **positive) -> None:
    if part not in PARTS:
        raise ConfigError(f"part must be one of {PARTS}, got {part!r}")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not hasattr(split, "train") or not hasattr(split, "valid"):
        raise DataError(f"expected a Split (genrec.data.splits), got {type(split).__name__}")
    if split.train.catalog is None:
        raise DataError(
            f"the dataset {split.train.name!r} has no item catalog; tuning needs item "
            "titles (load one with titles, e.g. MovieLens)"
        )


def _check_share(uniform_share) -> None:
    if (
        isinstance(uniform_share, bool)
        or not isinstance(uniform_share, (int, float))
        or not 0 <= uniform_share <= 1
    ):
        raise ConfigError(
            f"uniform_share must be a number in 0..1 (the share of retrieved "
            f"negatives drawn uniformly instead), got {uniform_share!r}"
        )


def _ordered(matrix: sp.csr_matrix, user: int) -> np.ndarray:
    """A user's items of a time-order CSR matrix, oldest first."""
    row = slice(matrix.indptr[user], matrix.indptr[user + 1])
    return matrix.indices[row][np.argsort(matrix.data[row], kind="stable")]


def _cases(split, part: str, per_user: int, history_len: int, rng) -> list[tuple]:
    """(user, history items, target item, target rating) cases of ``part``.

    train: up to ``per_user`` random target positions (>= 1) of each training user's training
    sequence, the previous ``history_len`` items as history. valid: each valid interaction's
    user, their latest ``history_len`` items of ``split.history("valid")``, up to ``per_user``
    targets per user.
    """
    if part == "train":
        order, ratings = split.train.user_item_order, split.train.ratings
        out = []
        for user in np.flatnonzero(np.diff(order.indptr) >= 2):
            seq = _ordered(order, user)
            for t in np.sort(
                rng.choice(np.arange(1, len(seq)), min(per_user, len(seq) - 1), replace=False)
            ):
                out.append(
                    (
                        int(user),
                        seq[max(0, t - history_len) : t],
                        int(seq[t]),
                        float(ratings[user, seq[t]]),
                    )
                )
        return out
    seen, valid = split.history("valid").user_item_order, split.valid.user_item_order
    ratings = split.valid.ratings
    out = []
    for user in np.flatnonzero(np.diff(valid.indptr) > 0):
        history = _ordered(seen, user)[-history_len:]
        for target in _ordered(valid, user)[:per_user]:
            out.append((int(user), history, int(target), float(ratings[user, target])))
    return out


class FoldRetriever:
    """``k`` copies of a retriever, copy ``f`` fitted on the training interactions of every user
    outside fold ``f`` (users drawn into folds with ``seed``): a case's shortlist comes from the
    copy that never saw the case's user, the target included.

    Args:
        make: () -> an unfitted genrec model (e.g. ``lambda: EASE()``).
        k: folds, at least 2.

    Learned attributes: ``models_`` (k fitted copies), ``fold_`` ((n_users,) fold of each user;
    -1 for users without training interactions, whom copy 0 scores: none of them saw such a user).
    """

    def __init__(self, make: Callable[[], object], *, k: int = 5, seed: int = 0):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ConfigError(f"FoldRetriever needs k >= 2 folds, got {k!r}")
        self.make, self.k, self.seed = make, int(k), seed

    def fit(self, train, *, options=None) -> FoldRetriever:
        users = np.flatnonzero(train.user_counts > 0)
        if len(users) < self.k:
            raise DataError(f"{len(users)} training users cannot fill k={self.k} folds; lower k")
        self.fold_ = np.full(train.n_users, -1, np.int64)
        self.fold_[np.random.default_rng(self.seed).permutation(users)] = (
            np.arange(len(users)) % self.k
        )
        self.models_ = [
            self.make().fit(train.subset(self.fold_[train.user_idx] != f), options=options)
            for f in range(self.k)
        ]
        return self

    def score_users(self, users: np.ndarray, histories) -> np.ndarray:
        """(B, n_items) scores of each history by the copy that never saw ``users[b]``."""
        folds = np.maximum(self.fold_[np.asarray(users, np.int64)], 0)
        out = np.empty(histories.shape, np.float32)
        for f in np.unique(folds):
            rows = np.flatnonzero(folds == f)
            out[rows] = self.models_[f].score(histories[rows])
        return out


def _negatives(
    split, user: int, n: int, rng, exclude=(), pool=None, uniform_share: float = 0.0
) -> np.ndarray:
    """``n`` items with training interactions that ``user`` never interacted with in training
    (nor in ``exclude``), uniformly without replacement; from ``pool`` (a retriever's top items
    for this case, :func:`_retrieved_pools`) when given, except a Binomial(n, ``uniform_share``)
    number of them drawn uniformly (mixed negatives)."""
    if pool is not None and uniform_share > 0:
        n_uniform = int(rng.binomial(n, uniform_share))
        hard = _negatives(split, user, n - n_uniform, rng, exclude, pool)
        return np.r_[
            hard, _negatives(split, user, n_uniform, rng, np.r_[np.asarray(exclude, int), hard])
        ].astype(np.int64)
    if pool is None:
        pool = np.flatnonzero(split.train.item_counts > 0)
    seen = split.train.user_items
    banned = np.r_[
        seen.indices[seen.indptr[user] : seen.indptr[user + 1]], np.asarray(exclude, int)
    ]
    pool = pool[~np.isin(pool, banned)]
    return rng.choice(pool, min(n, len(pool)), replace=False)


def _titles(split, items) -> list[str]:
    return [split.train.catalog.title(int(i)) for i in items]


def _retrieved_pools(
    split,
    cases: list[tuple],
    retriever,
    n_hard: int,
    *,
    keep_target: bool = False,
    with_scores: bool = False,
) -> list:
    """Per case, the ``n_hard`` items a fitted ``retriever`` ranks highest for the case's history,
    best first, among items with training interactions that the user never interacted with in
    training (the hard negatives a reranker meets in a two-stage pipeline); with
    ``keep_target`` the case's target stays eligible (a shortlist that may contain it); with
    ``with_scores`` each pool is (items, the retriever's scores of them)."""
    from genrec.data.dataset import as_history_matrix

    if not callable(getattr(retriever, "score", None)) and not isinstance(retriever, FoldRetriever):
        raise ConfigError(
            f"retriever must be a fitted genrec model, got {type(retriever).__name__}"
        )
    seen, unused = split.train.user_items, split.train.item_counts == 0
    pools = []
    for lo in range(0, len(cases), 1024):
        chunk = cases[lo : lo + 1024]
        histories = as_history_matrix([c[1] for c in chunk], split.train.n_items)
        scores = np.array(  # a writable copy (a model may return a read-only broadcast)
            retriever.score_users(np.array([c[0] for c in chunk]), histories)
            if isinstance(retriever, FoldRetriever)
            else retriever.score(histories),
            np.float64,
        )
        rows, targets = np.arange(len(chunk)), np.array([c[2] for c in chunk])
        kept = scores[rows, targets]
        scores[:, unused] = -np.inf
        scores[seen[[c[0] for c in chunk]].nonzero()] = -np.inf  # the users' training items
        if keep_target:
            scores[rows, targets] = kept
        top = np.argsort(-scores, axis=1, kind="stable")[:, :n_hard]
        for t, s in zip(top, scores):
            t = t[np.isfinite(s[t])]
            pools.append((t, s[t].astype(np.float64)) if with_scores else t)
    return pools


def _build(
    split,
    part,
    *,
    per_user,
    history_len,
    seed,
    templates,
    make,
    retriever=None,
    n_hard: int = 20,
    keep_target: bool = False,
    with_scores: bool = False,
) -> list[Instruction]:
    _check_args(split, part, per_user=per_user, history_len=history_len, n_hard=n_hard)
    rng = np.random.default_rng(seed)
    cases = _cases(split, part, per_user, history_len, rng)
    pools = (
        _retrieved_pools(
            split, cases, retriever, n_hard, keep_target=keep_target, with_scores=with_scores
        )
        if retriever is not None
        else [None] * len(cases)
    )
    out = []
    for (user, history, target, rating), pool in zip(cases, pools):
        template = int(rng.integers(len(templates)))
        example = make(user, history, target, rating, template, rng, pool)
        if example is not None:
            out.append(example)
    return out


# ---- the four tasks --------------------------------------------------------------------------
def next_item_examples(
    split,
    *,
    part: str = "train",
    per_user: int = 4,
    history_len: int = 5,
    n_candidates: int = 10,
    templates: list[str] | None = None,
    retriever=None,
    n_hard: int = 20,
    uniform_share: float = 0.0,
    seed: int = 0,
) -> list[Instruction]:
    """Next-item examples: the history, (some templates) candidates = the target among
    ``n_candidates - 1`` sampled items in random order, and the target's title as the answer.
    With a fitted ``retriever`` the other candidates come from its top ``n_hard`` items for the
    history (hard negatives) instead of all items."""
    templates = templates or NEXT_ITEM_TEMPLATES
    _check_args(split, part, n_candidates=n_candidates)
    _check_share(uniform_share)

    def make(user, history, target, rating, template, rng, pool):
        titles = _titles(split, history)
        if not templates[template]:
            prompt = prompts.next_item_prompt(titles)
        else:
            candidates = np.r_[
                target,
                _negatives(split, user, n_candidates - 1, rng, [target], pool, uniform_share),
            ]
            candidates = rng.permutation(candidates)
            prompt = templates[template].format(
                history=_history(titles), candidates=quoted_list(_titles(split, candidates))
            )
        answer = prompts.candidate_continuation(split.train.catalog.title(target))
        return Instruction(
            "next-item", prompt, answer, user, (*map(int, history), target), template
        )

    return _build(
        split,
        part,
        per_user=per_user,
        history_len=history_len,
        seed=seed,
        templates=templates,
        make=make,
        retriever=retriever,
        n_hard=n_hard,
    )


def preference_examples(
    split,
    *,
    part: str = "train",
    per_user: int = 4,
    history_len: int = 5,
    like_threshold: float = 4.0,
    templates: list[str] | None = None,
    retriever=None,
    n_hard: int = 20,
    uniform_share: float = 0.0,
    seed: int = 0,
) -> list[Instruction]:
    """TALLRec yes/no examples (see the module docstring); with a fitted ``retriever`` the "No"
    items are drawn from its top ``n_hard`` items for the history (hard negatives)."""
    templates = templates or PREFERENCE_TEMPLATES
    _check_share(uniform_share)
    values = split.train.value
    implicit = len(values) == 0 or values.min() == values.max()  # no ratings: every one is liked

    def make(user, history, target, rating, template, rng, pool):
        if rng.random() < 0.5:  # a sampled item the user never interacted with: "No"
            negative = _negatives(split, user, 1, rng, [target], pool, uniform_share)
            if not len(negative):
                return None
            item, answer = int(negative[0]), ANSWERS_YES_NO[1]
        else:
            item, answer = target, ANSWERS_YES_NO[0 if implicit or rating >= like_threshold else 1]
        title = split.train.catalog.title(item)
        if not templates[template]:
            prompt = prompts.preference_prompt(_titles(split, history), title)
        else:
            prompt = templates[template].format(
                history=_history(_titles(split, history)), item=quote(prompts.natural_title(title))
            )
        return Instruction("preference", prompt, answer, user, (*map(int, history), item), template)

    return _build(
        split,
        part,
        per_user=per_user,
        history_len=history_len,
        seed=seed,
        templates=templates,
        make=make,
        retriever=retriever,
        n_hard=n_hard,
    )


def listwise_examples(
    split,
    *,
    part: str = "train",
    per_user: int = 4,
    history_len: int = 5,
    n_candidates: int = 20,
    templates: list[str] | None = None,
    retriever=None,
    teacher_temperature: float | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[Instruction]:
    """LlamaRec's listwise task: the history, ``n_candidates`` candidates under letters A, B, ...
    and the target's letter as the answer (:func:`genrec.text.prompts.letter_continuations`).

    With a fitted ``retriever`` the candidates are its top ``n_candidates`` items for the history
    in its order (exactly what the two-stage pipeline's listwise reranker is shown); cases whose
    target the retriever does not shortlist are dropped, as LlamaRec trains only on retrieved
    targets. Without one, the target among uniformly drawn items, in random order. With
    ``shuffle`` the retriever's shortlist is listed in a random order instead of its own, so the
    letter of the target says nothing about the retriever's rank of it: the LM can only learn
    from the titles (what a reranker fused with the retriever should add to it; pair it with
    :class:`~genrec.models.language.llm.LLMRecommender`'s ``candidate_order="shuffled"``).

    Distillation: with a ``retriever`` and a ``teacher_temperature`` each example also carries
    the retriever's ranking of its shortlist as a distribution over the letters (the teacher):
    ``softmax(z / teacher_temperature)`` of the retriever's scores ``z`` standardised within the
    shortlist (the calibration of the pipeline's linear fusion)."""
    templates = templates or LISTWISE_TEMPLATES
    _check_args(split, part, n_candidates=n_candidates)
    distill = teacher_temperature is not None
    if distill and (
        isinstance(teacher_temperature, bool)
        or not isinstance(teacher_temperature, (int, float))
        or not teacher_temperature > 0
    ):
        raise ConfigError(
            f"teacher_temperature must be a number > 0 (1 = the softmax of the standardised "
            f"scores; smaller is sharper), got {teacher_temperature!r}"
        )
    if n_candidates > len(prompts.LETTERS):
        raise ConfigError(
            f"n_candidates must be at most {len(prompts.LETTERS)} (one letter each), "
            f"got {n_candidates}"
        )
    if not isinstance(shuffle, bool):
        raise ConfigError(f"shuffle must be true or false, got {shuffle!r}")

    def make(user, history, target, rating, template, rng, pool):
        scores = None
        if distill and pool is not None:
            pool, scores = pool
        if pool is None:
            candidates = rng.permutation(
                np.r_[target, _negatives(split, user, n_candidates - 1, rng, [target])]
            )
        elif target in pool:
            candidates = pool
            if shuffle:
                order = rng.permutation(len(pool))
                candidates = pool[order]
                scores = None if scores is None else scores[order]
        else:
            return None
        titles, listed = _titles(split, history), _titles(split, candidates)
        if not templates[template]:
            prompt = prompts.listwise_prompt(titles, listed)
        else:
            prompt = templates[template].format(
                history=_history(titles), candidates=prompts.lettered_list(listed)
            )
        letters = prompts.letter_continuations(len(candidates))
        answer = letters[int(np.flatnonzero(candidates == target)[0])]
        extra = {}
        if scores is not None:
            extra = {"choices": tuple(letters), "teacher": teacher(scores, teacher_temperature)}
        return Instruction(
            "listwise", prompt, answer, user, (*map(int, history), target), template, **extra
        )

    return _build(
        split,
        part,
        per_user=per_user,
        history_len=history_len,
        seed=seed,
        templates=templates,
        make=make,
        retriever=retriever,
        n_hard=n_candidates,
        keep_target=True,
        with_scores=distill,
    )


def teacher(scores: np.ndarray, temperature: float) -> tuple[float, ...]:
    """The teacher's distribution over a shortlist: ``softmax(z / temperature)`` of its
    ``scores`` standardised within the shortlist (all equal: uniform)."""
    scores = np.asarray(scores, np.float64)
    spread = scores.std()
    z = (scores - scores.mean()) / spread if np.isfinite(spread) and spread > 0 else 0 * scores
    p = np.exp((z - z.max()) / temperature)
    return tuple((p / p.sum()).tolist())


def rating_examples(
    split,
    *,
    part: str = "train",
    per_user: int = 4,
    history_len: int = 5,
    templates: list[str] | None = None,
    seed: int = 0,
) -> list[Instruction]:
    """Rating examples: the history with the user's ratings, the next item, its rating."""
    templates = templates or RATING_TEMPLATES
    ratings = (split.train if part == "train" else split.history("valid")).ratings

    def make(user, history, target, rating, template, rng, pool):
        given = [float(ratings[user, i]) for i in history]
        title = split.train.catalog.title(target)
        if not templates[template]:
            prompt = prompts.rating_prompt(_titles(split, history), title, history_ratings=given)
        else:
            lines = (
                "\n".join(
                    f"- {quote(prompts.natural_title(t))} rated {int(round(r))}"
                    for t, r in zip(_titles(split, history), given)
                )
                or "(none)"
            )
            prompt = templates[template].format(
                history=lines, item=quote(prompts.natural_title(title))
            )
        answer = prompts.RATING_CONTINUATIONS[int(np.clip(round(rating), 1, 5)) - 1]
        return Instruction("rating", prompt, answer, user, (*map(int, history), target), template)

    return _build(
        split,
        part,
        per_user=per_user,
        history_len=history_len,
        seed=seed,
        templates=templates,
        make=make,
    )


def explanation_examples(
    split,
    *,
    part: str = "train",
    per_user: int = 4,
    history_len: int = 5,
    max_chars: int = 200,
    templates: list[str] | None = None,
    seed: int = 0,
) -> list[Instruction]:
    """Explanation examples: the user's own review of the next item (cleaned, up to
    ``max_chars``) as the answer. Raises DataError when the dataset has no reviews."""
    column = next((c for c in ("review_summary", "review_text") if c in split.train.extras), None)
    if column is None:
        raise DataError(
            f"the dataset {split.train.name!r} has no reviews (extras "
            "'review_summary' or 'review_text', e.g. the Amazon loaders); "
            "explanation tuning needs them"
        )
    templates = templates or EXPLANATION_TEMPLATES
    source = split.train if part == "train" else split.valid
    reviews = {
        (int(u), int(i)): r
        for u, i, r in zip(source.user_idx, source.item_idx, source.extras[column])
    }

    def make(user, history, target, rating, template, rng, pool):
        review = prompts.clean(reviews.get((user, target)) or "", max_chars=max_chars)
        if not review:
            return None
        prompt = templates[template].format(
            history=_history(_titles(split, history)),
            item=quote(prompts.natural_title(split.train.catalog.title(target))),
        )
        return Instruction(
            "explanation",
            prompt,
            review + prompts.CLOSE,
            user,
            (*map(int, history), target),
            template,
        )

    return _build(
        split,
        part,
        per_user=per_user,
        history_len=history_len,
        seed=seed,
        templates=templates,
        make=make,
    )


def _history(titles: list[str]) -> str:
    return quoted_list(titles) if titles else "(none yet)"


BUILDERS: dict[str, Callable[..., list[Instruction]]] = {
    "next-item": next_item_examples,
    "preference": preference_examples,
    "listwise": listwise_examples,
    "rating": rating_examples,
    "explanation": explanation_examples,
}


def build_examples(
    split, tasks, *, part: str = "train", seed: int = 0, **options
) -> list[Instruction]:
    """The examples of each task in ``tasks`` (names of :data:`BUILDERS`, or "mix" for every
    task the data supports), concatenated then shuffled with ``seed`` (P5's multi-task mix).
    ``options`` go to every builder that takes them."""
    import inspect

    names = [tasks] if isinstance(tasks, str) else list(tasks)
    if names == ["mix"]:
        names = [
            t
            for t in BUILDERS
            if t != "explanation" or {"review_summary", "review_text"} & set(split.train.extras)
        ]
    unknown = [t for t in names if t not in BUILDERS]
    if unknown or not names:
        raise ConfigError(
            f"unknown task(s) {unknown or names}; choose from {', '.join(BUILDERS)} or 'mix'"
        )
    out = []
    for offset, name in enumerate(names):
        accepted = inspect.signature(BUILDERS[name]).parameters
        out += BUILDERS[name](
            split,
            part=part,
            seed=seed + offset,
            **{k: v for k, v in options.items() if k in accepted},
        )
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order]


__all__ = [
    "BUILDERS",
    "EXPLANATION_TEMPLATES",
    "FoldRetriever",
    "Instruction",
    "LISTWISE_TEMPLATES",
    "NEXT_ITEM_TEMPLATES",
    "PREFERENCE_TEMPLATES",
    "RATING_TEMPLATES",
    "build_examples",
    "explanation_examples",
    "listwise_examples",
    "next_item_examples",
    "preference_examples",
    "rating_examples",
    "teacher",
]
