"""LLM recommender: zero-/few-shot next-item recommendation with a language model.

Method (Sec. 3.2 of the survey; Hou et al., "Large Language Models are Zero-Shot Rankers for
Recommender Systems", ECIR 2024; Sanner et al., "Large Language Models are Competitive Near
Cold-start Recommenders", RecSys 2023): the user's recently liked titles become a prompt, and

* ``mode="grounded"``: each candidate item is scored by the language model's log-likelihood of
  its title as the continuation of the prompt (one ``lm.score`` call per user: the backend
  computes the shared prompt once and reuses it for every candidate), so only real items are
  ever returned. ``normalise="mean"`` uses the per-token mean (length-normalised), ``"sum"``
  the total log-probability.
* ``mode="preference"`` (TALLRec, Bao et al., RecSys 2023): each candidate gets the yes/no
  question "Will this fan like <title>? Answer Yes or No:" and scores
  ``log p(" Yes") - log p(" No")``. The history part of the prompt is shared by every candidate
  (:func:`~genrec.text.prompts.preference_prefix`; the backend computes it once per user), the
  question and each answer are scored as continuations of it. A model tuned on
  :func:`genrec.tuning.instructions.preference_examples` answers exactly this prompt.
* ``mode="free"``: the model writes ``n_generate`` titles, one per line; each is mapped to a
  catalog item by fuzzy title matching (:func:`match_titles`; case, punctuation, accents,
  leading/trailing articles and years normalised, then the closest key by rapidfuzz's
  normalised Indel similarity, kept when >= ``match_cutoff``);
  a title that matches no item is a *hallucination* and is counted (:attr:`generation_stats_`).
* ``shots > 0``: few-shot prompting with ``shots`` in-context examples, each another training
  user's history and the item they liked next, drawn once at fit with the run seed; a user never
  sees their own example (a spare example replaces it).
* ``mode="listwise"`` / :meth:`listwise_scores`: one prompt listing the candidates with letters
  (A, B, ... in the order given) and the distribution over the letter continuations (the
  verbaliser) as scores (LlamaRec, Yue et al. 2023); a two-stage pipeline reranks with it when
  its reranker is ``llm`` with ``mode="listwise"``. ``candidate_order="shuffled"`` lists them
  in a random order fixed by the candidates themselves (the same shortlist always reads the same),
  so the letters carry no trace of the retriever's ranks: the LM judges the titles, and its
  scores, still returned in the given order, add to the retriever's instead of echoing it (the
  order an adapter tuned with shuffled shortlists was trained on).
* ``mode="pairwise"`` (PRP) / ``mode="setwise"``: the listwise question about two candidates
  (both orders) or a window of ``set_size`` at a time, with a bounded number of LM calls
  (:mod:`genrec.models.language.comparisons`).
* :meth:`predict_ratings`: rating prediction by prompt; the expected rating under the model's
  distribution over the continuations "1".."5" (RMSE/MAE via ``evaluate_ratings``).

Retrieval-augmented prompts (``facts``, listwise and preference modes): each candidate is
followed by facts retrieved from the training data (:mod:`genrec.text.facts`: year and genres,
tags, ratings aggregated as text, review sentences ranked by similarity to the user's history),
within ``fact_tokens`` tokens of the language model's tokenizer per candidate (and
``fact_prompt_tokens`` per prompt, when set).

Every data value in a prompt is delimited and escaped by :mod:`genrec.text.prompts`. With
``injection_guard`` (the default) titles are first screened by :mod:`genrec.text.guard`:
instruction-like spans are stripped before any prompt is built (:attr:`prompt_titles_`), and an
item whose title held one (:attr:`flagged_`) is never ranked above its position in the
candidates the model was given (the popularity order here, the retriever's order in a pipeline).
On a catalog where nothing is flagged the guard changes nothing.

Full ranking (``score`` / ``recommend`` / ``evaluate``): a language model cannot score 1,600
titles per user in reasonable time, so on its own the model scores the ``n_candidates`` most
popular items the user has not seen; those rank above every other item, which follow by
popularity. In the two-stage pipeline (``ease+llm``) a retriever supplies the candidates through
:meth:`score_candidates` instead.

Deviations: the papers prompt instruction-tuned chat models (ChatGPT) to *generate* a ranking;
the default here is the base Gemma 3 270M, used as a likelihood scorer (generating a ranking is
unreliable for a base model this small). The history is the user's most recent ``history_len``
interactions whatever their rating (histories carry time order, not ratings); ``min_rating``
filters the few-shot examples only. Popular-unseen candidates in full ranking are ours.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters(n_users=8, n_items=12, n_clusters=2)
    >>> model = LLMRecommender(lm="fake", n_candidates=6).fit(world.split.train)
    >>> model.score(world.split.train.user_item_order[:2]).shape
    (2, 12)
"""

from __future__ import annotations

import copy
import dataclasses
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rapidfuzz import fuzz, process

from genrec.errors import ConfigError, DataError
from genrec.models.base import ModelConfig, Recommender
from genrec.models.language.comparisons import pairwise_scores, setwise_scores
from genrec.text import guard, prompts
from genrec.text.encoder import get_encoder
from genrec.text.facts import ItemFacts, parse_sources

DEFAULT_LM = "transformers:gemma-3-270m"
CANDIDATE_ORDERS = ("given", "shuffled")
MODES = ("grounded", "preference", "listwise", "pairwise", "setwise", "free")


def shuffled_order(candidates) -> np.ndarray:
    """A permutation of ``range(len(candidates))`` seeded by the candidate ids: the listing
    order of ``candidate_order="shuffled"`` (deterministic, independent of any run state)."""
    ids = np.asarray(candidates, np.int64)
    return np.random.default_rng([int(i) for i in ids]).permutation(len(ids))


@dataclass(frozen=True)
class LLMConfig(ModelConfig):
    """Hyper-parameters of :class:`LLMRecommender`.

    Defaults chosen on ML-100K *validation* (holdout 0.8/0.1/0.1, split seed 2020; sampled
    protocol, target + 19 negatives; the same 100 users; Gemma 3 270M): NDCG@10 zero-shot with
    history_len 5 / 10 / 20 (mean normalisation) 0.397 / 0.409 / 0.406; "sum" normalisation 0.440
    at history_len 10; 3-shot 0.425 (mean) at 1.6x the time per user. Popularity: 0.581. So
    zero-shot, 10 titles, "sum". Intervals at 100 users are about +-0.06: a weak preference.
    """

    lm: str = DEFAULT_LM  # language-model spec ("fake", "transformers:gemma-3-270m", ...)
    mode: str = "grounded"  # grounded (title likelihood), preference (yes/no), listwise,
    #                         pairwise (PRP), setwise (comparisons.py), free
    pairwise_span: int = 1  # pairwise: each candidate is compared with the next `span` ones
    set_size: int = 5  # setwise: candidates per question (windows overlapping by one)
    shots: int = 0  # in-context examples from other training users (0 = zero-shot)
    history_len: int = 10  # most recent history items written into the prompt
    normalise: str = "sum"  # candidate score: "sum" of token log-probs or per-token "mean"
    n_candidates: int = 20  # full ranking on its own: the N most popular unseen items are scored
    min_rating: float = 0.0  # few-shot examples use only interactions rated >= this
    n_generate: int = 10  # free mode: titles asked for
    tokens_per_title: int = 20  # free mode: generation budget per title
    match_cutoff: float = 0.85  # free mode: similarity (0..1) needed to map a title to an item
    kind: str = "movie"  # what the items are called in the prompt
    injection_guard: bool = True  # strip instruction-like spans from titles and never rank a
    #                               flagged item above its candidate position (text/guard.py)
    facts: str = ""  # listwise / preference: fact sources shown beside each candidate,
    #                  comma-separated of catalog, tags, ratings, reviews; "" = titles only
    fact_tokens: int = 32  # each candidate's facts fit in this many of the LM's tokens
    fact_prompt_tokens: int = 0  # all candidates' facts of one prompt fit in this many (an
    #                              equal share each); 0 = no prompt-wide cap
    fact_encoder: str = "minilm"  # ranks review sentences by similarity to the history text
    candidate_order: str = "given"  # listwise: "given" (A = first) or "shuffled" (seeded by them)

    presets = {
        # Hou et al. 2024 rank 20 candidates (target + 19 sampled) from the recent history
        # (up to 50 items) zero-shot; we keep our likelihood scorer.
        "paper": {"history_len": 50, "n_candidates": 20, "shots": 0},
    }

    def __post_init__(self):
        self.check(
            isinstance(self.lm, str) and bool(self.lm.strip()),
            "lm",
            "a language-model spec such as 'fake' or 'transformers:gemma-3-270m'",
        )
        self.check(self.mode in MODES, "mode", f"one of {MODES}")
        self.check(self.normalise in ("mean", "sum"), "normalise", "'mean' or 'sum'")
        self.check(
            isinstance(self.shots, int)
            and not isinstance(self.shots, bool)
            and 0 <= self.shots <= 20,
            "shots",
            "an integer in 0..20",
        )
        self.check(
            isinstance(self.history_len, int)
            and not isinstance(self.history_len, bool)
            and 0 <= self.history_len <= 200,
            "history_len",
            "an integer in 0..200",
        )
        self.check_positive_ints("n_candidates", "n_generate", "tokens_per_title", "pairwise_span")
        self.check(
            isinstance(self.set_size, int) and 2 <= self.set_size <= len(prompts.LETTERS),
            "set_size",
            f"an integer in 2..{len(prompts.LETTERS)} (one letter each)",
        )
        self.check(
            self.mode != "listwise" or self.n_candidates <= len(prompts.LETTERS),
            "n_candidates",
            f"at most {len(prompts.LETTERS)} in listwise mode (one letter each)",
        )
        self.check(0 < self.match_cutoff <= 1, "match_cutoff", "a number in (0, 1]")
        self.check(
            self.candidate_order in CANDIDATE_ORDERS,
            "candidate_order",
            f"one of {CANDIDATE_ORDERS} (listwise: the retriever's order, or a seeded shuffle)",
        )
        self.check(isinstance(self.injection_guard, bool), "injection_guard", "true or false")
        self.check(isinstance(self.facts, str), "facts", "comma-separated fact sources, or ''")
        self.check(
            not parse_sources(self.facts) or self.mode in ("listwise", "preference"),
            "facts",
            "'' in this mode: facts are shown beside candidates in the listwise and preference "
            f"modes only (mode={self.mode!r})",
        )
        self.check(
            isinstance(self.fact_tokens, int)
            and not isinstance(self.fact_tokens, bool)
            and 1 <= self.fact_tokens <= 1000,
            "fact_tokens",
            "an integer in 1..1000 (tokens per candidate)",
        )
        self.check(
            isinstance(self.fact_prompt_tokens, int)
            and not isinstance(self.fact_prompt_tokens, bool)
            and 0 <= self.fact_prompt_tokens <= 20_000,
            "fact_prompt_tokens",
            "an integer in 0..20000 (0 = no prompt-wide cap)",
        )
        self.check(
            isinstance(self.fact_encoder, str) and bool(self.fact_encoder.strip()),
            "fact_encoder",
            "'minilm', 'hashing' or a sentence-transformers folder",
        )
        self.check(
            isinstance(self.kind, str) and bool(re.fullmatch(r"[a-z ]{1,20}", self.kind)),
            "kind",
            "a short lower-case noun such as 'movie' or 'book'",
        )


@dataclass
class GeneratedTitles:
    """What free generation produced for a batch of histories."""

    items: list[np.ndarray]  # per history: matched item indices, in generated order, no repeats
    unmatched: list[list[str]]  # per history: titles that match no item (hallucinations)
    titles: list[list[str]]  # per history: every parsed title

    @property
    def n_titles(self) -> int:
        return sum(len(t) for t in self.titles)

    @property
    def n_hallucinated(self) -> int:
        return sum(len(t) for t in self.unmatched)


def item_titles(train, model_name: str) -> np.ndarray:
    """(n_items,) str: every item's title from ``train.catalog`` (what prompts name items by)."""
    if train.catalog is None:
        raise DataError(
            f"{model_name} needs item titles: the dataset {train.name!r} has no "
            "item catalog; load one with titles (e.g. MovieLens)"
        )
    return np.array([train.catalog.title(i) for i in range(train.n_items)], dtype=str)


class LLMRecommender(Recommender):
    """A language model prompted with the user's recent titles; see the module docstring.

    Args:
        config, overrides: an :class:`LLMConfig` or its fields.
        language_model: a ready :class:`~genrec.text.lm.LanguageModel` (tests, a tuned model);
            default: built lazily from ``config.lm``.
    """

    name = "llm"
    Config = LLMConfig
    sequential = True

    def __init__(self, config=None, *, language_model=None, **overrides):
        super().__init__(config, **overrides)
        self._lm = language_model
        self._threads = None  # the fit's RunOptions.threads, for a language model built from spec
        self._device = "cpu"  # the fit's RunOptions.device, for the same language model
        self.generation_stats_ = {"titles": 0, "hallucinated": 0, "history_repeats": 0}
        self.facts_: ItemFacts | None = None
        self._encoder = None

    @property
    def lm(self):
        """The language model (built from ``config.lm`` on first use)."""
        if self._lm is None:
            from genrec.text.backends import get_language_model

            self._lm = get_language_model(
                self.config.lm, threads=self._threads, device=self._device
            )
        return self._lm

    # ---- fit ---------------------------------------------------------------------------------
    def _fit(self, train, valid, options):
        self._threads, self._device = options.threads, options.device
        self.titles_ = item_titles(train, self.name)
        self._screen_titles()
        self.popularity_ = train.item_counts.astype(np.float32)
        rng = np.random.default_rng(options.seed)
        self._set_examples(*self._draw_examples(train, rng))
        sources = parse_sources(self.config.facts)
        self.facts_ = ItemFacts.from_dataset(train, sources=sources) if sources else None

    def _screen_titles(self) -> None:
        """``prompt_titles_`` (what prompts show) and ``flagged_`` ((n_items,) bool: the title
        held an injection) from ``titles_``; without the guard, the titles and no flags."""
        if self.config.injection_guard:
            texts, self.flagged_ = guard.screen_all(self.titles_)
            self.prompt_titles_ = np.array(texts, dtype=str)
        else:
            self.prompt_titles_ = self.titles_
            self.flagged_ = np.zeros(len(self.titles_), bool)

    def with_titles(self, titles: dict[int, str], **overrides) -> LLMRecommender:
        """A fitted copy that reads ``titles`` (item index -> text) instead of those items'
        catalog titles (an edited catalog entry, without a refit), screened by the guard as at
        fit; ``overrides`` change config fields (e.g. ``mode``, ``injection_guard``). The copy
        shares the language model; this model is unchanged."""
        self._require_fitted()
        bad = [i for i in titles if not 0 <= int(i) < len(self.titles_)]
        if bad:
            raise DataError(f"items {bad} are not item indices in 0..{len(self.titles_) - 1}")
        twin = copy.copy(self)
        twin.config = dataclasses.replace(self.config, **overrides)
        twin.titles_ = np.array(self.titles_, dtype=object)
        for item, text in titles.items():
            twin.titles_[int(item)] = str(text)
        twin._screen_titles()
        twin._index = None
        return twin

    def with_examples(self, histories, targets, **overrides) -> LLMRecommender:
        """A fitted copy whose few-shot examples are ``histories[j]`` (item indices, oldest
        first) followed by ``targets[j]``, shown to every user (``shots`` becomes their number
        unless ``overrides`` say otherwise); the copy shares the language model and this model
        is unchanged. An audit plants poisoned examples with it."""
        self._require_fitted()
        targets = np.asarray(targets, np.int64).reshape(-1)
        bad = [int(i) for h in histories for i in h if not 0 <= int(i) < len(self.titles_)]
        bad += [int(i) for i in targets if not 0 <= int(i) < len(self.titles_)]
        if len(histories) != len(targets) or bad or len(targets) > 20:
            raise DataError(
                f"examples must be at most 20 (history, target) pairs of item indices in "
                f"0..{len(self.titles_) - 1}; got {len(histories)} histories, "
                f"{len(targets)} targets, bad items {bad[:5]}"
            )
        twin = copy.copy(self)
        twin.config = dataclasses.replace(self.config, **{"shots": len(targets), **overrides})
        twin._set_examples(np.full(len(targets), -1, np.int64), list(histories), targets)
        return twin

    def _draw_examples(self, train, rng):
        """``shots + 1`` (user, history items, next item) examples from training users whose
        interactions rated >= min_rating number at least 2 (one spare replaces a user's own)."""
        n = self.config.shots + 1 if self.config.shots else 0
        order = train.user_item_order  # (U, I) time order of each interaction
        if self.config.min_rating > 0:  # keep the time order of the liked interactions only
            order = (train.ratings >= self.config.min_rating).multiply(order).tocsr()
            order.eliminate_zeros()
        eligible = np.flatnonzero(np.diff(order.indptr) >= 2)
        chosen = (
            rng.choice(eligible, min(n, len(eligible)), replace=False) if n else np.empty(0, int)
        )
        users, hist, targets = [], [], []
        for u in chosen:  # a handful of examples, once
            row = slice(order.indptr[u], order.indptr[u + 1])
            items = order.indices[row][np.argsort(order.data[row], kind="stable")]  # oldest first
            users.append(u)
            hist.append(items[:-1][-max(self.config.history_len, 1) :])
            targets.append(items[-1])
        return np.array(users, np.int64), hist, np.array(targets, np.int64)

    def _set_examples(self, users, hist, targets):
        self.example_users_, self.example_targets_ = users, targets
        self.example_histories_ = [np.asarray(h, np.int64) for h in hist]

    def _examples_for(self, user: int | None) -> list[tuple[list[str], str]]:
        """The few-shot examples shown to ``user`` (never their own)."""
        picked = [j for j in range(len(self.example_users_)) if self.example_users_[j] != user]
        return [
            (
                [self.prompt_titles_[i] for i in self.example_histories_[j]],
                self.prompt_titles_[self.example_targets_[j]],
            )
            for j in picked[: self.config.shots]
        ]

    # ---- prompts -----------------------------------------------------------------------------
    def history_titles(self, history: sp.csr_matrix) -> list[str]:
        """The titles of the ``history_len`` latest items of one history row, oldest first."""
        if self.config.history_len == 0:
            return []
        order = np.argsort(history.data, kind="stable")[-self.config.history_len :]
        return [self.prompt_titles_[i] for i in history.indices[order]]

    def candidate_facts(self, history: sp.csr_matrix, items) -> list[str] | None:
        """Each of ``items``' facts within ``fact_tokens`` tokens (:mod:`genrec.text.facts`),
        review sentences ranked by similarity to this history's titles; None without fact
        sources."""
        if self.facts_ is None:
            return None
        query = encoder = None
        reviews = self.facts_.facts.get("reviews")
        if reviews is not None and any(reviews[int(i)] for i in items):
            if self._encoder is None:
                self._encoder = get_encoder(self.config.fact_encoder, device=self._device)
            encoder = self._encoder
            query = encoder.encode(["; ".join(self.history_titles(history)) or "-"])[0]
        return self.facts_.describe(
            items,
            count_tokens=self.lm.count_tokens,
            budget=self.config.fact_tokens,
            total=self.config.fact_prompt_tokens or None,
            query=query,
            encoder=encoder,
        )

    def next_item_prompt(self, history: sp.csr_matrix, user: int | None = None) -> str:
        return prompts.next_item_prompt(
            self.history_titles(history), kind=self.config.kind, examples=self._examples_for(user)
        )

    # ---- scoring -----------------------------------------------------------------------------
    def _score(self, histories, users):
        out = np.tile(self.popularity_ / (self.popularity_.max() + 1.0), (histories.shape[0], 1))
        if self.config.mode == "free":
            generated = self.generate_titles(histories, users=users, k=self.config.n_generate)
            for row, items in enumerate(generated.items):
                out[row, items] = 2.0 + np.arange(len(items), 0, -1)  # generated order first
            return out
        ranked = np.argsort(-self.popularity_, kind="stable")
        for row in range(histories.shape[0]):  # the N most popular unseen items of each history
            unseen = ranked[~np.isin(ranked, histories[row].indices)][: self.config.n_candidates]
            if len(unseen):
                user = None if users is None else users[row : row + 1]
                scores = self._score_candidates(histories[row], unseen[None, :], user)[0]
                out[row, unseen] = 2.0 + scores - scores.min()
        return out

    def _score_candidates(self, histories, candidates, users):
        """The mode's scores of the candidates, then the guard's promotion cap per row."""
        scores = self._mode_scores(histories, candidates, users)
        flagged = self.flagged_[candidates]  # (B, C)
        for row in np.flatnonzero(flagged.any(axis=1)):
            scores[row] = guard.cap_promotion(scores[row], flagged[row])
        return scores

    def _mode_scores(self, histories, candidates, users):
        if self.config.mode == "free":
            return super()._score_candidates(histories, candidates, users)
        if self.config.mode == "preference":
            return self._preference_scores(histories, candidates, users)
        if self.config.mode == "listwise":
            return self.listwise_scores(histories, candidates, users=users)
        if self.config.mode in ("pairwise", "setwise"):
            return self._comparison_scores(histories, candidates, users)
        out = np.empty(candidates.shape, np.float64)
        for row in range(histories.shape[0]):  # one prompt (computed once) per user
            prompt = self.next_item_prompt(
                histories[row], None if users is None else int(users[row])
            )
            texts = [
                prompts.candidate_continuation(self.prompt_titles_[i]) for i in candidates[row]
            ]
            scores = self.lm.score(prompt, texts)
            out[row] = _finite(
                scores.mean if self.config.normalise == "mean" else scores.logprob, self.lm
            )
        return out

    def _preference_scores(self, histories, candidates, users) -> np.ndarray:
        """(B, C) ``log p(" Yes") - log p(" No")`` of each candidate's yes/no question."""
        yes, no = prompts.PREFERENCE_ANSWERS
        out = np.empty(candidates.shape, np.float64)
        for row in range(histories.shape[0]):  # one shared prefix per user
            user = None if users is None else int(users[row])
            prefix = prompts.preference_prefix(
                self.history_titles(histories[row]),
                examples=self._examples_for(user),
                kind=self.config.kind,
            )
            facts = self.candidate_facts(histories[row], candidates[row])
            facts = facts or [""] * candidates.shape[1]
            questions = [
                prompts.preference_question(self.prompt_titles_[i], f)
                for i, f in zip(candidates[row], facts)
            ]
            logprob = _finite(
                self.lm.score(prefix, [q + a for q in questions for a in (yes, no)]).logprob,
                self.lm,
            )
            out[row] = logprob[0::2] - logprob[1::2]  # the shared question's tokens cancel
        return out

    def _comparison_scores(self, histories, candidates, users) -> np.ndarray:
        """(B, C) pairwise (PRP) or setwise scores of the candidates in the given order
        (:mod:`genrec.models.language.comparisons`)."""
        out = np.empty(candidates.shape, np.float64)
        for row in range(histories.shape[0]):
            user = None if users is None else int(users[row])
            titles = [self.prompt_titles_[i] for i in candidates[row]]
            context = dict(examples=self._examples_for(user), kind=self.config.kind)
            if self.config.mode == "pairwise":
                out[row] = pairwise_scores(
                    self.lm,
                    self.history_titles(histories[row]),
                    titles,
                    span=self.config.pairwise_span,
                    **context,
                )
            else:
                out[row] = setwise_scores(
                    self.lm,
                    self.history_titles(histories[row]),
                    titles,
                    set_size=self.config.set_size,
                    **context,
                )
        return out

    def _check_shortlists(self, histories, candidates, users):
        """(histories, users, candidates as (B, C) int64), or DataError naming the shape."""
        histories, users = self._check_batch(histories, users)
        candidates = np.asarray(candidates, np.int64)
        if candidates.ndim != 2 or candidates.shape[0] != histories.shape[0]:
            raise DataError(
                f"candidates must be (batch, C) with one row per history, "
                f"got shape {candidates.shape}"
            )
        return histories, users, candidates

    def listwise_scores(self, histories, candidates, *, users=None) -> np.ndarray:
        """(B, C) log-probability of each candidate's letter after a prompt listing the
        candidates in the given order (A = first), or with ``candidate_order="shuffled"`` in
        :func:`shuffled_order`'s order (scores still returned in the given order); C <= 26. The
        model's own distribution: the guard's promotion cap applies in
        :meth:`score_candidates`, not here."""
        histories, users, candidates = self._check_shortlists(histories, candidates, users)
        out = np.empty(candidates.shape, np.float32)
        for row in range(histories.shape[0]):
            user = None if users is None else int(users[row])
            order = np.arange(candidates.shape[1])
            if self.config.candidate_order == "shuffled":
                order = shuffled_order(candidates[row])
            prompt = self.listwise_prompt(histories[row], candidates[row][order], user)
            scores = self.lm.score(prompt, prompts.letter_continuations(candidates.shape[1]))
            out[row, order] = _finite(scores.logprob, self.lm)
        return out

    def listwise_prompt(self, history: sp.csr_matrix, listed, user: int | None = None) -> str:
        """The listwise prompt of one history row with the items ``listed`` in that order."""
        return prompts.listwise_prompt(
            self.history_titles(history),
            [self.prompt_titles_[i] for i in listed],
            examples=self._examples_for(user),
            kind=self.config.kind,
            candidate_facts=self.candidate_facts(history, listed),
        )

    def candidate_states(self, histories, candidates, *, users=None) -> np.ndarray:
        """(B, C, D) float32: the language model's hidden state over each candidate's entry in
        the listwise prompt (candidates listed in the given order), one forward pass per row;
        the input of a probe trained on how the model reads a shortlist
        (:mod:`genrec.pipelines.state_probe`).

        Raises:
            ConfigError: the language model cannot return hidden states (``span_states``:
                the transformers backend and the fake can).
        """
        histories, users, candidates = self._check_shortlists(histories, candidates, users)
        if not callable(getattr(self.lm, "span_states", None)):
            raise ConfigError(
                f"{self.lm.name} cannot return hidden states (span_states); use the "
                "transformers backend (e.g. transformers:gemma-3-270m)"
            )
        rows = []
        for row in range(histories.shape[0]):
            user = None if users is None else int(users[row])
            prompt = self.listwise_prompt(histories[row], candidates[row], user)
            spans = prompts.listed_spans(prompt, candidates.shape[1])
            rows.append(self.lm.span_states(prompt, spans))
        return np.stack(rows).astype(np.float32)

    # ---- free generation ---------------------------------------------------------------------
    def generate_titles(self, histories, *, k: int, users=None) -> GeneratedTitles:
        """Ask for ``k`` titles per history; match them to items; count hallucinations.

        Running totals over calls are in :attr:`generation_stats_`.
        """
        histories, users = self._check_batch(histories, users)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 100:
            raise ConfigError(f"k must be an integer in 1..100 titles, got {k!r}")
        prompt_list = [
            prompts.free_generation_prompt(
                self.history_titles(histories[r]),
                int(k),
                kind=self.config.kind,
                examples=self._examples_for(None if users is None else int(users[r])),
            )
            for r in range(histories.shape[0])
        ]
        budget = int(k) * self.config.tokens_per_title
        completions = self.lm.generate(prompt_list, max_new_tokens=budget, stop=["\n\n"])
        index = self._title_index()
        result = GeneratedTitles([], [], [])
        for row, text in enumerate(completions):
            titles = prompts.parse_generated_titles(text, k=int(k))
            matched = match_titles(titles, index, cutoff=self.config.match_cutoff)
            items = list(dict.fromkeys(i for i in matched if i >= 0))
            seen = set(histories[row].indices.tolist())
            result.items.append(np.array(items, np.int64))
            result.unmatched.append([t for t, i in zip(titles, matched) if i < 0])
            result.titles.append(titles)
            self.generation_stats_["history_repeats"] += sum(i in seen for i in items)
        self.generation_stats_["titles"] += result.n_titles
        self.generation_stats_["hallucinated"] += result.n_hallucinated
        return result

    def _title_index(self) -> dict[str, int]:
        if getattr(self, "_index", None) is None:
            self._index = title_index(self.titles_, self.popularity_)
        return self._index

    # ---- ratings -----------------------------------------------------------------------------
    def predict_ratings(self, histories, *, users, items) -> np.ndarray:
        """(B,) expected rating of ``items[b]`` under the model's distribution over "1".."5"
        after a prompt of ``history_len`` of the user's rated titles with their ratings (a fixed
        pseudo-random choice per (user, item)). ``histories`` rows hold ratings (1..5)."""
        histories, users = self._check_batch(histories, users)
        items = np.asarray(items).reshape(-1)
        valid = items.size == 0 or (
            np.issubdtype(items.dtype, np.integer)
            and items.min() >= 0
            and items.max() < self.n_items_
        )
        if len(items) != histories.shape[0] or not valid:
            raise DataError(
                f"items must be {histories.shape[0]} item indices in 0..{self.n_items_ - 1}"
            )
        levels = np.arange(1, 6, dtype=np.float64)
        out = np.empty(len(items), np.float64)
        for row, item in enumerate(items):
            h = histories[row]
            rng = np.random.default_rng([int(item), h.nnz])
            pick = rng.permutation(h.nnz)[: self.config.history_len]
            prompt = prompts.rating_prompt(
                [self.prompt_titles_[i] for i in h.indices[pick]],
                self.prompt_titles_[item],
                history_ratings=h.data[pick],
                kind=self.config.kind,
            )
            logp = _finite(self.lm.score(prompt, prompts.RATING_CONTINUATIONS).logprob, self.lm)
            p = np.exp(logp - logp.max())
            out[row] = float(levels @ (p / p.sum()))
        return out

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        lengths = np.array([len(h) for h in self.example_histories_], np.int64)
        flat = np.concatenate(self.example_histories_) if lengths.size else np.empty(0, np.int64)
        facts = {} if self.facts_ is None else self.facts_.to_arrays()
        return {
            **{f"facts/{k}": v for k, v in facts.items()},
            "titles": self.titles_,
            "popularity": self.popularity_,
            "example_users": self.example_users_,
            "example_targets": self.example_targets_,
            "example_lengths": lengths,
            "example_items": flat.astype(np.int64),
        }

    def _load_state(self, state):
        self.titles_ = np.asarray(state["titles"], dtype=str)
        self._screen_titles()
        self.popularity_ = np.asarray(state["popularity"], np.float32)
        splits = np.cumsum(state["example_lengths"])[:-1]
        hist = np.split(state["example_items"], splits) if len(state["example_lengths"]) else []
        self._set_examples(state["example_users"], hist, state["example_targets"])
        self._index = None
        facts = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("facts/")}
        self.facts_ = ItemFacts.from_arrays(facts) if facts else None


# ---- title matching ----------------------------------------------------------------------------
_ARTICLES = re.compile(r"^(the|a|an|les|la|le|il|das|der|die|el) ")
_YEAR = re.compile(r"\(\s*\d{4}\s*\)|\b(19|20)\d{2}\b")


def title_key(title: str) -> str:
    """A title normalised for matching: natural order, no year, accents, punctuation, case or
    leading article.

    >>> title_key("Godfather, The (1972)") == title_key("the godfather")
    True
    """
    text = prompts.natural_title(_YEAR.sub(" ", str(title)).strip())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = " ".join(re.sub(r"[^\w]+", " ", text).split())
    return _ARTICLES.sub("", text)


def title_index(titles: Sequence[str], popularity: np.ndarray) -> dict[str, int]:
    """Normalised title (and the part before an alternative title in parentheses) -> item;
    where several items share a key, the most popular one."""
    index: dict[str, int] = {}
    for item in np.argsort(-np.asarray(popularity), kind="stable"):
        title = str(titles[item])
        for key in {title_key(title), title_key(title.split(" (")[0])}:
            if key and key not in index:
                index[key] = int(item)
    return index


def match_titles(
    titles: Sequence[str], index: dict[str, int], *, cutoff: float = 0.85
) -> list[int]:
    """Item index of each title, or -1 when none: a hallucinated title.

    A title's normalised key (:func:`title_key`) matches exactly, else the closest key of
    ``index`` by normalised Indel similarity (rapidfuzz ``fuzz.ratio`` / 100, in [0, 1]: twice
    the longest common subsequence over the summed lengths) when that similarity is >=
    ``cutoff``; among equally close keys, the first in ``index`` (the most popular item).

    Example:
        >>> match_titles(["Star Warz", "Nothing Like It"], {"star wars": 3}, cutoff=0.85)
        [3, -1]
    """
    keys = list(index)
    out = []
    for title in titles:
        key = title_key(title)
        if key in index:
            out.append(index[key])
            continue
        best = (
            process.extractOne(
                key, keys, scorer=fuzz.ratio, score_cutoff=100 * cutoff, processor=None
            )
            if key and keys
            else None
        )
        out.append(index[best[0]] if best else -1)
    return out


def _finite(values: np.ndarray, lm) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if np.isnan(values).any():
        raise DataError(
            f"language model {getattr(lm, 'name', lm)!r} returned NaN log-probabilities"
        )
    return np.maximum(values, -1e9)  # -inf (impossible continuation) -> a finite floor


__all__ = [
    "DEFAULT_LM",
    "GeneratedTitles",
    "LLMConfig",
    "LLMRecommender",
    "match_titles",
    "title_index",
    "title_key",
]
