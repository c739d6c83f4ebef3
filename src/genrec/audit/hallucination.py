"""Scenario ``hallucination``: does a generative recommender name items that do not exist,
repeat itself, or return what the user already has?

* LLM recommenders (alone or as the reranker of a pipeline) are asked to *write* K titles for
  each sampled user (:meth:`~genrec.models.language.llm.LLMRecommender.generate_titles`, free
  generation); every title is mapped to the catalogue by the library's fuzzy title matcher
  (:func:`~genrec.models.language.llm.match_titles`). RecLM-eval's per-instance error flags
  (``history_error_rate``, ``duplicate_error_rate``) are averaged over users; the out-of-catalog
  rate is the share of a user's titles that match no item, averaged over users. Candidate
  errors (``candidate_error_rate``) need a prompt that lists candidates; the grounded and
  listwise modes score only the candidates they are given, so they cannot leave them: not
  measured.
* TIGER decodes semantic IDs; with the prefix trie switched off its beam search can produce IDs
  that belong to no item. ``invalid_id_rate`` is the share of the K decoded IDs that name no
  item, with and without the trie (the trie makes it 0 by construction; measured anyway).

Models that score every catalogue item (all other ID models) cannot name a missing item: n/a.
"""

from __future__ import annotations

import numpy as np

from genrec.audit.context import AuditContext, language_part
from genrec.audit.results import Definition, Finding, summarise

NAME = "hallucination"
HEADLINE = "out_of_catalog_rate@{k}"
METRICS = {
    "out_of_catalog_rate": Definition(
        "Per user, the share of the K generated titles that match no catalogue item (fuzzy "
        "title match, genrec's matcher); mean over users.",
        "RecLM-eval (retrieval without candidates: out-of-catalogue items); genrec.models.language.llm.match_titles",
        "lower",
    ),
    "duplicate_error_rate": Definition(
        "Share of users whose generated list names one item twice.",
        "RecLM-eval duplicate_error_rate",
        "lower",
    ),
    "history_error_rate": Definition(
        "Share of users whose generated list names an item already in their history.",
        "RecLM-eval history_error_rate",
        "lower",
    ),
    "titles_per_user": Definition(
        "Mean number of titles parsed from a user's generation (K asked).", "genrec", "higher"
    ),
    "invalid_id_rate": Definition(
        "Per user, the share of the K semantic IDs decoded by beam "
        "search that belong to no item (trie off); mean over users.",
        "Rajput et al. NeurIPS 2023 (TIGER, invalid IDs)",
        "lower",
    ),
    "invalid_id_rate_constrained": Definition(
        "The same with the prefix trie on (TIGER's decoding).",
        "Rajput et al. NeurIPS 2023",
        "lower",
    ),
    "already_seen_rate": Definition(
        "Per user, the share of the K decoded items already in the "
        "history (seen items not excluded); mean over users.",
        "RecLM-eval history error, per item",
        "lower",
    ),
}


def applies(model) -> str | None:
    if language_part(model) is not None or callable(getattr(model, "recommend_beam", None)):
        return None
    return "scores every catalogue item, so it cannot name an item that does not exist"


def run(ctx: AuditContext, label: str) -> Finding:
    model = ctx.fitted(label)
    users = ctx.lm_sample(ctx.audited_users())
    histories = ctx.split.history("test").user_item_order[users]
    part = language_part(model)
    if part is not None:
        return _language(ctx, label, part, histories, users)
    return _semantic_ids(ctx, label, model, histories, users)


def _language(ctx, label, part, histories, users) -> Finding:
    from genrec.models.language.llm import match_titles, title_index

    k, seed = ctx.config.k, ctx.config.seed
    generated = part.generate_titles(histories, k=k, users=users)
    index = title_index(part.titles_, part.popularity_)
    out_of_catalog, duplicate, seen_flag, n_titles = [], [], [], []
    for row, titles in enumerate(generated.titles):  # a few titles per sampled user
        items = np.array(match_titles(titles, index, cutoff=part.config.match_cutoff), np.int64)
        found = items[items >= 0]
        n_titles.append(len(titles))
        out_of_catalog.append((items < 0).mean() if len(items) else np.nan)
        duplicate.append(float(len(found) != len(np.unique(found))))
        seen_flag.append(float(np.isin(found, histories[row].indices).any()))
    metrics = {
        f"out_of_catalog_rate@{k}": summarise(out_of_catalog, seed=seed),
        f"duplicate_error_rate@{k}": summarise(duplicate, seed=seed),
        f"history_error_rate@{k}": summarise(seen_flag, seed=seed),
        f"titles_per_user@{k}": summarise(n_titles, seed=seed),
    }
    settings = {
        "k": k,
        "users": int(len(users)),
        "lm": part.config.lm,
        "mode": "free generation",
        "match_cutoff": part.config.match_cutoff,
        "examples": [
            {"titles": t, "unmatched": u}
            for t, u in zip(generated.titles[:3], generated.unmatched[:3])
        ],
    }
    return Finding(label, NAME, metrics, settings)


def _semantic_ids(ctx, label, model, histories, users) -> Finding:
    k, seed = ctx.config.k, ctx.config.seed
    # beam = k: the k beams kept are the decoded IDs (a wider beam would let valid ones replace them)
    free, _ = model.recommend_beam(
        histories, k=k, beam_size=k, constrained=False, exclude_seen=False
    )
    trie, _ = model.recommend_beam(histories, k=k, constrained=True, exclude_seen=False)
    dense = histories.toarray() > 0  # (U, n_items)
    seen = np.take_along_axis(dense, np.maximum(trie, 0), 1) & (trie >= 0)
    metrics = {
        f"invalid_id_rate@{k}": summarise((free < 0).mean(1), seed=seed),
        f"invalid_id_rate_constrained@{k}": summarise((trie < 0).mean(1), seed=seed),
        f"already_seen_rate@{k}": summarise(seen.mean(1), seed=seed),
    }
    return Finding(
        label,
        NAME,
        metrics,
        {
            "k": k,
            "users": int(len(users)),
            "decoding": "beam search of width k, seen items not excluded",
        },
    )
