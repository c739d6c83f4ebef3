"""GPT4Rec-style retrieval: a language model writes a search query, a dense retriever answers it.

Method: Li, Zhang, Yang, Ni, He & Lin, "GPT4Rec: A Generative Framework for Personalized
Recommendation and User Interests Interpretation", 2023 (arXiv 2304.03879), Sec. 3.4 of the
Gen-RecSys survey (LLM-derived features for a classic retriever). A user's latest titles become
a prompt; the language model generates a *hypothetical next title* (GPT4Rec's "search query": its
generator is trained to produce the next item's title); a search engine over the item texts
answers the query and its ranking is the recommendation. Here the search engine is genrec's
dense retriever (:class:`~genrec.models.language.dense.DenseRetrieval`, MiniLM item embeddings, centred,
exact inner product), held inside this model.

How it is done here:

* Prompt: :func:`genrec.text.prompts.next_item_prompt` over the ``history_len`` latest titles
  (every title quoted by :func:`~genrec.text.prompts.quote`); it ends with an open quote, and
  greedy decoding of at most ``max_new_tokens`` tokens stops at the closing quote or a newline.
* Language model: ``lm="default"`` is the generation default of :mod:`genrec.text.backends`
  (``get_language_model("default", job="generate")``: the base Gemma 3 270M through llama.cpp,
  transformers without it). The instruction-tuned SmolLM2-135M was tried first with "write a
  short search query" instructions (ML-100K, 4 users): it wrote headers such as "Movies I would
  love to see:" or echoed the history list, never a query; the base model continuing the
  next-title pattern wrote title-like queries ("The Great Gatsby", "The Last of the Mohicans").
* Fusion (``history_weight`` = w): the query vector is ``(1 - w) q_llm + w q_history`` of the
  unit LLM-query vector and the dense model's unit history query (the mean of the history's
  item embeddings), so w = 0 is the generated query alone and w = 1 is plain ``dense``.
* A history whose generated query is empty falls back to the history query; an empty history is
  not sent to the language model and scores every item 0 (as ``dense``).
* Greedy decoding is deterministic, so generated queries are kept by prompt in
  ``query_cache_``: a history scored twice (or by a copy of the model with another
  ``history_weight``) is not sent to the language model again.

Deviations from the paper: the language model is not fine-tuned (GPT4Rec fine-tunes GPT-2 on
the training users' next titles); one greedy query per user instead of several from beam
search, each answered by its own top items; a dense retriever instead of BM25; the fusion with
the history query is ours.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.text.lm import FakeLanguageModel
    >>> world = planted_clusters(n_users=8, n_items=12, n_clusters=2)
    >>> lm = FakeLanguageModel(generate_fn=lambda prompt: "group1")
    >>> model = GPT4Rec(text_encoder="hashing", text_cache="off", language_model=lm).fit(world.split.train)
    >>> model.generate_queries(world.split.train.user_item_order[:1])
    ['group1']
    >>> model.score(world.split.train.user_item_order[:2]).shape
    (2, 12)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.models.base import ModelConfig, Recommender
from genrec.models.language.dense import DenseRetrieval
from genrec.models.language.llm import item_titles
from genrec.text import prompts
from genrec.text.items import check_text_fields, unit_rows


@dataclass(frozen=True)
class GPT4RecConfig(ModelConfig):
    """Hyper-parameters of :class:`GPT4Rec`.

    Defaults: ``history_weight`` chosen on ML-100K validation NDCG@10 (holdout 0.8/0.1/0.1,
    split seed 2020, 150 sampled validation users, Gemma 3 270M through llama.cpp, greedy):
    w = 0 (the generated query alone) 0.008, 0.25 0.026, 0.5 0.063, 0.75 0.075, 0.9 0.074,
    1 (the history query, plain ``dense``) 0.069; so 0.75. The untuned base model mostly writes
    famous titles outside the 1998 catalogue ("The Hunger Games", "The Great Gatsby"), so its
    query alone is weak and helps only as a nudge to the history query. Three in-context
    examples from training users (standing in for GPT4Rec's fine-tuning) did not change that
    (0.0125 alone, 0.0746 at w = 0.75) at 1.25 s instead of ~0.9 s per user, so the prompt stays
    zero-shot. Retriever settings are
    the dense model's tuned defaults (MiniLM, "title. Genres: ... Year: ..." texts, centring).
    ``presets["paper"]``: the generated query alone (GPT4Rec retrieves with the queries only).
    """

    presets = {"paper": {"history_weight": 0.0}}  # the generated query alone (Li et al. 2023)

    lm: str = "default"  # language-model spec; "default" = the generation default (Gemma 3 270M)
    history_len: int = 10  # latest history titles written into the prompt
    max_new_tokens: int = 16  # generation budget of the query (greedy)
    history_weight: float = 0.75  # w in [0, 1]: query = (1 - w) LLM query + w history query
    kind: str = "movie"  # what the items are called in the prompt
    text_encoder: str = "minilm"  # dense retriever's text encoder: "minilm", "hashing", a folder
    text_template: str = ""  # item text template over catalog columns; "" = text fields + year
    text_cache: str = "default"  # item-embedding cache: "default", "off" or a folder
    center: bool = True  # subtract the mean item embedding (dense's tuned default)

    def __post_init__(self):
        self.check(
            isinstance(self.lm, str) and bool(self.lm.strip()),
            "lm",
            "a language-model spec such as 'default', 'fake' or 'llamacpp:gemma-3-270m'",
        )
        self.check(
            isinstance(self.history_len, int)
            and not isinstance(self.history_len, bool)
            and 1 <= self.history_len <= 200,
            "history_len",
            "an integer in 1..200",
        )
        self.check_positive_ints("max_new_tokens")
        self.check(
            isinstance(self.history_weight, (int, float)) and 0.0 <= self.history_weight <= 1.0,
            "history_weight",
            "a number in [0, 1]",
        )
        self.check(
            isinstance(self.kind, str) and self.kind.strip() != "",
            "kind",
            "a short noun such as 'movie'",
        )
        check_text_fields(self)


class GPT4Rec(Recommender):
    """Dense retrieval answering a query the language model writes from the history.

    Args:
        config, overrides: a :class:`GPT4RecConfig` or its fields.
        language_model: a ready :class:`~genrec.text.lm.LanguageModel` (tests, a tuned model);
            default: built on first use from ``config.lm``.

    Learned attributes: ``retriever_`` (the fitted :class:`DenseRetrieval`), ``titles_``
    (n_items,) item titles, ``query_cache_`` (prompt -> generated query; not saved).
    """

    name = "gpt4rec"
    Config = GPT4RecConfig
    sequential = True  # the prompt lists the latest titles, in time order

    def __init__(self, config=None, *, language_model=None, **overrides):
        super().__init__(config, **overrides)
        self._lm = language_model
        self._threads = None  # the fit's thread count, for a language model built from the spec
        self._device = "cpu"  # the fit's RunOptions.device, for the same language model
        self.query_cache_: dict[str, str] = {}

    @property
    def lm(self):
        """The language model (built from ``config.lm`` on first use, 1 thread per fit option)."""
        if self._lm is None:
            from genrec.text.backends import get_language_model

            spec = self.config.lm
            job = {"job": "generate"} if spec.partition(":")[0].strip() == "default" else {}
            self._lm = get_language_model(spec, threads=self._threads, **job, device=self._device)
        return self._lm

    def _retriever(self) -> DenseRetrieval:
        cfg = self.config
        return DenseRetrieval(
            text_encoder=cfg.text_encoder,
            text_template=cfg.text_template,
            text_cache=cfg.text_cache,
            center=cfg.center,
        )

    def _fit(self, train, valid, options):
        self._threads, self._device = options.threads, options.device
        self.titles_ = item_titles(train, self.name)
        self.retriever_ = self._retriever().fit(train, options=options)
        self.query_cache_ = {}

    # ---- queries -----------------------------------------------------------------------------
    def history_titles(self, history: sp.csr_matrix) -> list[str]:
        """The titles of the ``history_len`` latest items of one history row, oldest first."""
        order = np.argsort(history.data, kind="stable")[-self.config.history_len :]
        return [self.titles_[i] for i in history.indices[order]]

    def prompt(self, history: sp.csr_matrix) -> str:
        """The query-writing prompt of one history row (ends with an open quote)."""
        return prompts.next_item_prompt(self.history_titles(history), kind=self.config.kind)

    def generate_queries(self, histories: sp.spmatrix) -> list[str]:
        """One generated query per history row ("" for an empty history); new prompts go to the
        language model in one call, known ones come from ``query_cache_``."""
        self._require_fitted()
        histories, _ = self._check_batch(histories, None)
        wanted = [
            self.prompt(histories[r]) if histories[r].nnz else None
            for r in range(histories.shape[0])
        ]
        todo = sorted({p for p in wanted if p is not None and p not in self.query_cache_})
        if todo:
            out = self.lm.generate(
                todo,
                max_new_tokens=self.config.max_new_tokens,
                temperature=0.0,
                stop=[prompts.CLOSE, "\n"],
            )
            self.query_cache_.update(zip(todo, (prompts.clean(q).strip(" '") for q in out)))
        return ["" if p is None else self.query_cache_[p] for p in wanted]

    def queries(self, histories: sp.csr_matrix) -> np.ndarray:
        """(B, D) unit query vectors: the generated query's, fused with the history query."""
        w = float(self.config.history_weight)
        history_q = self.retriever_.queries(histories)  # (B, D), zero rows for empty histories
        if w == 1.0:
            return history_q
        texts = self.generate_queries(histories)
        has_text = np.array([bool(t) for t in texts])
        fused = history_q.copy()  # no generated text: the history query
        if has_text.any():
            llm_q = self.retriever_.text_queries([t for t in texts if t])  # (B', D)
            fused[has_text] = (1.0 - w) * llm_q + w * history_q[has_text]
        return unit_rows(fused)

    def _score(self, histories, users):
        return self.retriever_.score_queries(self.queries(histories))

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return {"titles": self.titles_, **self.retriever_._state()}

    def _load_state(self, state):
        self.titles_ = np.asarray(state["titles"], dtype=str)
        self.retriever_ = self._retriever()
        self.retriever_.n_users_, self.retriever_.n_items_ = self.n_users_, self.n_items_
        self.retriever_._load_state({k: v for k, v in state.items() if k != "titles"})
        self.query_cache_ = {}
