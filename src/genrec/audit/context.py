"""What every scenario of an audit shares: the split, the settings, how to build a model, and
the models fitted once on the training part with their test evaluation and cost.

Scenarios that must train their own copies (shilling, privacy, feedback loops) ask
:meth:`AuditContext.fresh` for an unfitted model built from the same spec; the spec is parsed
by the caller's ``build`` function (``genrec.build.build_model`` from the CLI and benchmarks), so
this package never parses specs itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from genrec.data.dataset import Split
from genrec.errors import ConfigError
from genrec.evaluation.protocol import Evaluation, evaluate_split
from genrec.evaluation.runner import PeakRSS
from genrec.options import RunOptions
from genrec.text.backends import BACKENDS
from genrec.text.encoder import get_encoder

ATTACKS = ("random", "average", "bandwagon", "segment")
TARGET_CHOICES = ("random", "popular", "unpopular")
SHORT_HEADS = ("elliot", "recbole")
GRIDS = ("ofat", "full")
LM_GRIDS = ("base", *GRIDS)
PROFILES = ("recent", "random", "top-rated")
PERSONA_VALUES = ("all", "own")


@dataclass(frozen=True)
class AuditConfig:
    """Budgets, seeds and choices of an audit; all of it is written into ``protocol``.

    Every field has a default that runs on ML-100K within the budget stated in docs/audit.md.
    """

    k: int = 10  # cut-off of every top-K metric
    seed: int = 0  # seed of every random choice (samples, targets, fake profiles, rounds)
    users: int | None = None  # evaluate a seeded sample of this many test users (None: all)
    lm_users: int = 50  # users sampled for language-model scenarios (injection, hallucination;
    #                     shilling and feedback loops of models that ask a language model)
    short_head: str = "elliot"  # elliot: items covering 80% of interactions; recbole: ratio
    head_share: float = 0.8  # elliot: share of training interactions the short head covers
    tail_ratio: float = 0.1  # recbole: least popular fraction of items that is the long tail
    shilling_attacks: tuple[str, ...] = ATTACKS
    shilling_sizes: tuple[float, ...] = (0.005, 0.01, 0.03, 0.05)  # fake users / real users
    shilling_targets: tuple[str, ...] = TARGET_CHOICES
    shilling_grid: str = "ofat"  # ofat: vary one factor at a time around the base; full: product
    lm_shilling_grid: str = "base"  # models that ask a language model: base (bandwagon, 1%,
    #                                 random targets only), or ofat / full as above
    n_targets: int = 5  # target items per attack (ARLib's targetSize)
    rounds: int = 3  # feedback-loop rounds (refits)
    lm_rounds: int = 2  # feedback-loop rounds of models that ask a language model
    injection_candidates: int = 10  # candidates in the listwise prompt of the injection scenario
    privacy_samples: int | None = None  # synthetic profiles drawn (None: as many as members)
    min_group: int = 20  # fairness: smaller user groups are left out (too few for an interval)
    text_attack_budget: int = 2  # text-attack: word edits the greedy search may make
    text_attack_surrogates: int = 4  # text-attack: users whose prompts the search queries
    text_attack_shots: int = 2  # text-attack: few-shot examples, one of them poisoned
    text_attack_lm: str = "transformers:smollm2-135m"  # text-attack: the LM that rewrites titles
    text_attack_rewrites: int = 6  # text-attack: rewrites proposed per target
    text_attack_encoder: str = "minilm"  # text-attack: encoder of the rewrites' meaning check
    text_attack_similarity: float = 0.8  # text-attack: least cosine similarity of a rewrite
    canary_count: int = 20  # canary: canaries per insertion level (and reference canaries)
    canary_length: int = 8  # canary: items per canary (the last is the secret)
    canary_copies: tuple[int, ...] = (1, 4)  # canary: how many fake users carry each canary
    canary_candidates: int = 50  # canary, tuned LMs: the secret among this many scored items
    backdoor_rates: tuple[float, ...] = (0.01,)  # backdoor: shares of the tuning examples
    #   poisoned (BadRec: 1%), one poisoned LoRA run each against one shared clean run; the
    #   first is the headline's and carries the canary scenario's canaries
    tune_steps: int = 150  # backdoor / canary on tuned LMs: LoRA steps of each tuning run
    tune_lr: float = 1e-3  # backdoor / canary on tuned LMs: LoRA learning rate
    tune_per_user: int = 1  # backdoor / canary on tuned LMs: tuning examples per training user
    tune_valid: int = 16  # backdoor / canary on tuned LMs: validation examples (loss only)
    fairness_candidates: int | None = None  # fairness-llm: candidates ranked per prompt (> k;
    #                                         None: 2k)
    fairness_profiles: tuple[str, ...] = PROFILES  # fairness-llm: how the prompt's history is
    #                                                 sampled from the user's profile
    fairness_values: str = "all"  # fairness-llm: every attribute value for every user (FaiRLLM's
    #                               counterfactual), or "own": the user's own values (CFaiRLLM)
    agent_users: int = 50  # agent-injection: sampled users, each one attacker session's context
    agent_lm: str | None = None  # agent-injection: language-model spec planning the agent's
    #                              turns (None: the rule and the scripted obedient planner only)
    agent_lm_cases: int = 30  # agent-injection: hostile utterances sent to agent_lm's planner

    def __post_init__(self):
        for name in (
            "k",
            "lm_users",
            "n_targets",
            "rounds",
            "lm_rounds",
            "injection_candidates",
            "min_group",
            "text_attack_budget",
            "text_attack_surrogates",
            "text_attack_shots",
            "text_attack_rewrites",
            "canary_count",
            "tune_steps",
            "tune_per_user",
            "tune_valid",
            "agent_users",
            "agent_lm_cases",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.users is not None and (not isinstance(self.users, int) or self.users < 2):
            raise ConfigError(
                f"users must be an integer >= 2 (or None for all), got {self.users!r}"
            )
        if self.short_head not in SHORT_HEADS:
            raise ConfigError(f"short_head must be one of {SHORT_HEADS}, got {self.short_head!r}")
        if not 0 < self.head_share < 1 or not 0 < self.tail_ratio < 1:
            raise ConfigError(
                "head_share and tail_ratio must lie strictly between 0 and 1, got "
                f"{self.head_share!r} and {self.tail_ratio!r}"
            )
        _check_choices("shilling_attacks", self.shilling_attacks, ATTACKS)
        _check_choices("shilling_targets", self.shilling_targets, TARGET_CHOICES)
        if not self.shilling_sizes or any(not 0 < s <= 0.5 for s in self.shilling_sizes):
            raise ConfigError(
                f"shilling_sizes must be shares of fake users in (0, 0.5], got "
                f"{list(self.shilling_sizes)}"
            )
        if not isinstance(self.canary_length, int) or not 2 <= self.canary_length <= 100:
            raise ConfigError(
                f"canary_length must be an integer in 2..100, got {self.canary_length!r}"
            )
        if not self.canary_copies or any(
            isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 100
            for c in self.canary_copies
        ):
            raise ConfigError(
                f"canary_copies must be integers in 1..100 (fake users per canary), got "
                f"{list(self.canary_copies)}"
            )
        if isinstance(self.canary_candidates, bool) or not (
            isinstance(self.canary_candidates, int) and self.canary_candidates >= 2
        ):
            raise ConfigError(
                f"canary_candidates must be an integer >= 2 (the secret and at least one other "
                f"item), got {self.canary_candidates!r}"
            )
        _check_rates(self.backdoor_rates)
        if not _number(self.tune_lr) or not 0 < self.tune_lr < 1:
            raise ConfigError(f"tune_lr must be a learning rate in (0, 1), got {self.tune_lr!r}")
        n = self.fairness_candidates
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= self.k):
            raise ConfigError(
                f"fairness_candidates must be an integer above k ({self.k}), got {n!r}: top-k "
                "lists drawn from k candidates are all alike; raise it, or None for 2k"
            )
        _check_choices("fairness_profiles", self.fairness_profiles, PROFILES)
        if self.fairness_values not in PERSONA_VALUES:
            raise ConfigError(
                f"fairness_values must be one of {PERSONA_VALUES}, got {self.fairness_values!r}"
            )
        sim = self.text_attack_similarity
        if isinstance(sim, bool) or not isinstance(sim, (int, float)) or not -1 <= sim <= 1:
            raise ConfigError(
                f"text_attack_similarity must be a cosine similarity in [-1, 1], got {sim!r} "
                "(0.8: a rewrite close in meaning)"
            )
        for name in ("text_attack_lm", "text_attack_encoder"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(
                    f"{name} must be a non-empty spec string, got {getattr(self, name)!r}"
                )
        backend = self.text_attack_lm.partition(":")[0].strip().lower()
        if backend not in BACKENDS:
            raise ConfigError(
                f"text_attack_lm {self.text_attack_lm!r} names no language-model backend; "
                f"choose from {', '.join(sorted(BACKENDS))} (e.g. 'transformers:smollm2-135m')"
            )
        get_encoder(self.text_attack_encoder)  # checks the name (loads nothing)
        if self.agent_lm is not None and (not isinstance(self.agent_lm, str) or not self.agent_lm):
            raise ConfigError(
                f"agent_lm must be a language-model spec such as 'transformers:gemma-3-270m' "
                f"(or None for no language-model planner), got {self.agent_lm!r}"
            )
        if self.shilling_grid not in GRIDS:
            raise ConfigError(f"shilling_grid must be one of {GRIDS}, got {self.shilling_grid!r}")
        if self.lm_shilling_grid not in LM_GRIDS:
            raise ConfigError(
                f"lm_shilling_grid must be one of {LM_GRIDS}, got {self.lm_shilling_grid!r}"
            )


def _check_rates(rates) -> None:
    """``backdoor_rates``: a non-empty list of distinct shares strictly between 0 and 1."""
    if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) or not rates:
        raise ConfigError(
            f"backdoor_rates must be a non-empty list of shares of tuning examples, got "
            f"{rates!r}: e.g. (0.01,) (BadRec) or (0.01, 0.05, 0.2) for a sweep"
        )
    for rate in rates:
        if not _number(rate) or not 0 < rate < 1:
            raise ConfigError(
                f"backdoor_rates must be shares of tuning examples strictly between 0 and 1 "
                f"(BadRec: 0.01), got {rate!r} in {list(rates)}: write 5% as 0.05"
            )
    if len(set(rates)) < len(rates):
        raise ConfigError(
            f"backdoor_rates must list each rate once (one poisoned run each), got {list(rates)}"
        )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choices(name: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ConfigError(
            f"{name} must be a non-empty list from {list(allowed)}, got {list(values)}"
        )


@dataclass
class FitRecord:
    """Cost of fitting one model and of scoring the evaluated users."""

    fit_cpu_seconds: float
    fit_wall_seconds: float
    peak_rss_mb: float
    start_rss_mb: float = 0.0  # resident memory when the fit began (interpreter, libraries, data)
    score_cpu_seconds: float = 0.0
    score_wall_seconds: float = 0.0
    recommendations: int = 0  # users scored (one top-K list each)


@dataclass
class AuditContext:
    """The shared state of one audit (see the module docstring).

    Args:
        split: train / valid / test of the audited data.
        specs: model label -> spec (``"ease"``, ``"ease+llm"``).
        build: spec -> an unfitted model (``genrec.build.build_model`` with any overrides).
        config: the audit's budgets and choices.
        options: run options of every fit (seed, threads).
    """

    split: Split
    specs: dict[str, str]
    build: Callable[[str], object]
    config: AuditConfig = field(default_factory=AuditConfig)
    options: RunOptions = field(default_factory=RunOptions)
    _models: dict = field(default_factory=dict)
    _evaluations: dict = field(default_factory=dict)
    costs: dict[str, FitRecord] = field(default_factory=dict)
    shared: dict = field(default_factory=dict)  # per-audit artefacts every model faces alike

    def __post_init__(self):
        self.users = sample_users(self.split, self.config.users, self.config.seed)

    def fresh(self, label: str):
        """An unfitted model of ``label``'s spec."""
        return self.build(self.specs[label])

    def fitted(self, label: str):
        """``label``'s model fitted once on the training part (cost recorded in :attr:`costs`)."""
        if label not in self._models:
            model = self.fresh(label)
            with PeakRSS() as peak:
                start_mb = peak.mb
                cpu, wall = time.process_time(), time.perf_counter()
                model.fit(self.split.train, valid=self.split.valid, options=self.options)
                record = FitRecord(time.process_time() - cpu, time.perf_counter() - wall, 0.0)
            record.peak_rss_mb, record.start_rss_mb = peak.mb, round(start_mb, 1)
            self._models[label], self.costs[label] = model, record
        return self._models[label]

    def evaluation(self, label: str) -> Evaluation:
        """The test evaluation of ``label``'s fitted model on the audit's users, at k."""
        if label not in self._evaluations:
            model = self.fitted(label)
            cpu, wall = time.process_time(), time.perf_counter()
            ev = evaluate_split(model, self.split, "test", ks=(self.config.k,), users=self.users)
            record = self.costs[label]
            record.score_cpu_seconds = time.process_time() - cpu
            record.score_wall_seconds = time.perf_counter() - wall
            record.recommendations = len(ev.users)
            self._evaluations[label] = ev
        return self._evaluations[label]

    def evaluation_of(self, label: str, users: np.ndarray) -> Evaluation:
        """``label``'s test evaluation of ``users`` only (sorted indices with a test item): the
        rows of :meth:`evaluation` when it is computed already, else an evaluation of these
        users alone (cached), so a scenario on a small sample never scores the whole audit's
        users. Corpus-level metrics (of the whole user set) are left out of a row subset."""
        key = (label, tuple(int(u) for u in users))
        if label in self._evaluations:
            ev = self._evaluations[label]
            if np.array_equal(ev.users, users):
                return ev
            rows = np.searchsorted(ev.users, users)
            if np.all(rows < len(ev.users)) and np.array_equal(ev.users[rows], users):
                return dataclasses.replace(
                    ev,
                    users=ev.users[rows],
                    per_user={m: v[rows] for m, v in ev.per_user.items()},
                    corpus={},
                    top_items=ev.top_items[rows],
                    top_scores=ev.top_scores[rows],
                    n_relevant=ev.n_relevant[rows],
                )
        if key not in self._evaluations:
            self._evaluations[key] = evaluate_split(
                self.fitted(label), self.split, "test", ks=(self.config.k,), users=users
            )
        return self._evaluations[key]

    def audited_users(self) -> np.ndarray:
        """The audit's users: the sample, or every user with a test item (no model needed)."""
        if self.users is not None:
            return self.users
        return np.flatnonzero(self.split.test.user_counts > 0)

    def lm_sample(self, users: np.ndarray) -> np.ndarray:
        """At most ``config.lm_users`` of ``users``, drawn with the audit's seed, sorted."""
        if len(users) <= self.config.lm_users:
            return np.sort(users)
        rng = np.random.default_rng(self.config.seed)
        return np.sort(rng.choice(users, self.config.lm_users, replace=False))


class ChatModel:
    """``chat:SPEC`` under audit: the conversational agent (:class:`genrec.agents.Agent`)
    over the model SPEC. Fitting fits the ranker; the agent scenarios build agents over it
    (the other scenarios measure rankers: they are n/a here, and SPEC's own row has them).

    Args:
        spec: the audited name (``"chat:ease"``).
        ranker: the unfitted model SPEC.
    """

    name = "chat"

    def __init__(self, spec: str, ranker):
        self.spec, self.ranker = spec, ranker

    def fit(self, train, *, valid=None, options=None) -> ChatModel:
        self.ranker.fit(train, valid=valid, options=options)
        self.data_ = train
        return self


def is_agent(model) -> bool:
    """Whether ``model`` is a conversational agent under audit (``chat:SPEC``)."""
    return isinstance(model, ChatModel)


# Models that read item text or ask a language model (by their ``name``).
TEXT_MODELS = ("dense", "bm25", "gpt4rec", "llm", "hybrid")


def parts(model) -> list:
    """The model and, for a pipeline, its retriever and reranker."""
    return [model] + [
        p
        for p in (getattr(model, "retriever", None), getattr(model, "reranker", None))
        if p is not None
    ]


def language_part(model):
    """The part of ``model`` that asks a language model for titles (an LLM recommender), or None."""
    for part in parts(model):
        if callable(getattr(part, "generate_titles", None)) and hasattr(part, "history_titles"):
            return part
    return None


# Models whose fit reads item text only, never the training interactions (by their ``name``);
# ``hybrid`` belongs here unless it fuses a collaborative model.
TEXT_ONLY = ("dense", "bm25", "gpt4rec")
# Models that ask a language model for every scored user (by their ``name``).
LM_NAMES = ("llm", "gpt4rec")


def _leaves(model) -> list:
    """A pipeline's retriever and reranker, or the model itself."""
    return parts(model)[1:] or [model]


def learns_from_interactions(model) -> bool:
    """True when fitting some part of ``model`` reads the training interactions (popularity,
    co-occurrence, sequences), so other users' data can change a user's list."""
    for part in _leaves(model):
        name = getattr(part, "name", "")
        if name == "hybrid":
            if getattr(part.config, "collaborative", None):
                return True
        elif name not in TEXT_ONLY:
            return True
    return False


def asks_lm(model) -> bool:
    """True when scoring a user with ``model`` asks a language model (the costly models whose
    scenarios score the audit's language-model user sample, :meth:`AuditContext.lm_sample`)."""
    return any(getattr(p, "name", "") in LM_NAMES for p in parts(model))


def reads_text(model) -> bool:
    """True when any part of ``model`` reads item text or asks a language model."""
    return any(getattr(p, "name", "") in TEXT_MODELS for p in parts(model))


def sample_users(split: Split, n: int | None, seed: int) -> np.ndarray | None:
    """``n`` test users (indices with a test item) drawn with ``seed``, sorted; None for all."""
    candidates = np.flatnonzero(split.test.user_counts > 0)
    if n is None or n >= len(candidates):
        return None
    return np.sort(np.random.default_rng(seed).choice(candidates, n, replace=False))


__all__ = [
    "ATTACKS",
    "AuditConfig",
    "AuditContext",
    "ChatModel",
    "FitRecord",
    "GRIDS",
    "LM_GRIDS",
    "LM_NAMES",
    "PERSONA_VALUES",
    "PROFILES",
    "SHORT_HEADS",
    "TARGET_CHOICES",
    "TEXT_MODELS",
    "TEXT_ONLY",
    "asks_lm",
    "is_agent",
    "language_part",
    "learns_from_interactions",
    "parts",
    "reads_text",
    "sample_users",
]
