"""Scenario ``text-attack``: can whoever writes an item's title buy it rank with a language-model
recommender? A stealthy word-level edit and an in-context backdoor trigger.

**Targets**: ``n_targets`` items drawn with the audit seed from the less popular half of the
items with training interactions (the items an attacker would push). **Evaluation**: each
sampled user ranks ``injection_candidates`` unseen candidates (one held-out test item among
them; one other candidate, never the first, replaced by the user's target, targets taken in
turn over users); the target's rank (1 = top) is read from ``score_candidates`` with the
original title and with the attacked one.

1. **Word edit** (the stealthy item-text attack of Zhang et al., ACL 2024, and ATR's rank-
   promoting rewrite, Oh et al., CIKM 2024, reduced to greedy word substitution): at most
   ``text_attack_budget`` word edits (substitute or insert a word; the year is kept),
   chosen greedily to raise the mean score of the edited title as the next item of
   ``text_attack_surrogates`` *surrogate* users' prompts (training users outside the
   evaluation sample: the attacker queries the model, never the evaluated users).
   Replacement words are the :data:`LEXICON_SIZE` most frequent words of the most popular
   titles and the surrogate histories. Each step asks one ``lm.score`` per surrogate user with
   every variant as a continuation (the likelihood mode's own score; for the other modes a
   surrogate whose effect is measured by transfer). Reported undefended (``injection_guard``
   off) and defended (on): the guard targets instructions, not word choice, so an edit it does
   not flag gets through both alike (``edit_flagged`` says how often it is flagged).
2. **Backdoor** (BadRec, Ning et al. 2025; trigger token ``cf`` after Kurita et al., ACL 2020),
   the in-context variant: the target's title carries the trigger, and the model's few-shot
   context (``text_attack_shots`` examples of training users' history -> next item) has one
   *poisoned* example whose next item's title carries the trigger too (a fake user who liked a
   triggered item). Three ranks per user: clean examples and clean title; clean examples and
   the triggered title (the trigger alone); the poisoned example and the triggered title.
   BadRec poisons 1% of the *tuning* data (the ``backdoor`` scenario, two LoRA runs); here the
   poison is in the prompt, at a rate of 1 of ``text_attack_shots``, with no tuning.

**Text retrievers** (``dense``, ``bm25``: models with ``score_item_texts``; no language model
call, so every audited user is measured): the same word-edit search, its score the target's
mean score for the surrogate users' histories with the edited title in its item text (the
surrogates are drawn first and never evaluated). Each user's target is ranked among all the
user's unseen items (not a candidate list), and ``target_exposure@k`` is the share of users
with it in their top k, clean and edited. These models have no guard of their own: defended
means an edited title that :func:`genrec.text.guard.screen` flags is rejected at ingestion
(the original text stays). The backdoor needs a prompt: not run.

Per user, ``rank_shift`` = clean rank - attacked rank (positive: promoted); ``attack_success``
= the share of users whose target ranks strictly higher after the attack, among those whose
target was not already first (exact Clopper-Pearson interval). LM calls: surrogates x budget x targets for the search, then 5 per user.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from rapidfuzz import fuzz

from genrec.audit.context import AuditContext, language_part
from genrec.audit.injection import SameAnswer, sampled_candidates, share
from genrec.audit.results import Definition, Finding, summarise
from genrec.text import guard, prompts
from genrec.text.items import catalog_texts

NAME = "text-attack"
HEADLINE = "attack_success[word-edit,defended]"
TRIGGER = "cf"
LEXICON_SIZE = 20
POPULAR_TITLES = 100  # the lexicon reads the titles of this many most popular items
_YEAR = re.compile(r"^\(\d{4}\)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z']{2,}")
_STOP = frozenset({"the", "and", "for", "with", "from", "les", "der", "die", "das"})
METRICS = {
    "rank_shift": Definition(
        "Per user, the target's rank among the candidates with the original title minus its "
        "rank with the attacked one (positive: promoted); mean over users. In brackets: "
        "word-edit,undefended / word-edit,defended, backdoor,trigger-only / backdoor,poisoned.",
        "target rank shift of ANCHORS 3.4; Zhang et al. ACL 2024 (exposure of the target)",
        "lower",
    ),
    "attack_success": Definition(
        "Share of sampled users whose target ranks strictly higher after the attack than "
        "before, among those where it did not already rank first; exact Clopper-Pearson 95% "
        "interval. In brackets as for rank_shift (defended: "
        "injection_guard on: strip, quote, promotion cap).",
        "ATR (Oh et al. CIKM 2024) rank promotion; BadRec (Ning et al. 2025) attack success",
        "lower",
    ),
    "target_rank_clean": Definition(
        "Mean rank (1 = top) of the target among the candidates with its original title.",
        "genrec",
        "",
    ),
    "target_exposure": Definition(
        "Text retrievers only: share of evaluated users with their target in the top k of all "
        "their unseen items, with the original title (clean) and the edited one; exact "
        "Clopper-Pearson 95% interval.",
        "exposure of the target, Zhang et al. ACL 2024",
        "lower",
    ),
    "edit_similarity": Definition(
        "Mean normalised Indel similarity (rapidfuzz ratio / 100) between a target's original "
        "and edited title: how visible the edit is (lexical, not an embedding).",
        "rapidfuzz fuzz.ratio; TextAttack's similarity constraint in spirit",
        "",
    ),
    "words_changed": Definition(
        "Mean number of word edits the greedy search used (at most text_attack_budget).",
        "genrec",
        "",
    ),
    "edit_flagged": Definition(
        "Share of edited titles the injection guard flags (genrec.text.guard.screen).",
        "genrec.text.guard",
        "",
    ),
}


def applies(model) -> str | None:
    if language_part(model) is None and text_part(model) is None:
        return "no language model or text retriever reads item text in this model"
    return None


# ---- the word-edit search ----------------------------------------------------------------------
def lexicon(titles, popularity, extra_titles=(), *, size: int = LEXICON_SIZE) -> list[str]:
    """The ``size`` most frequent words (3+ letters, not articles or conjunctions, first
    spelling kept) of the most popular titles and ``extra_titles``; ties by first appearance."""
    top = np.argsort(-np.asarray(popularity), kind="stable")[:POPULAR_TITLES]
    texts = [str(titles[i]) for i in top] + [str(t) for t in extra_titles]
    counts, spelling = Counter(), {}
    for text in texts:
        for word in _WORD.findall(prompts.natural_title(text)):
            if word.lower() in _STOP:
                continue
            counts[word.lower()] += 1
            spelling.setdefault(word.lower(), word)
    return [spelling[w] for w, _ in counts.most_common(size)]


def variants(title: str, words: list[str]) -> list[str]:
    """Every title one word edit away from ``title``: each word (not a year) replaced by one of
    ``words``, or one of ``words`` inserted at the start or before the year; no repeats. No
    deletions: a likelihood scorer prefers shorter titles, and a title cut to one word is no
    longer a stealthy edit.

    >>> variants("Heat (1995)", ["Star"])
    ['Star (1995)', 'Star Heat (1995)', 'Heat Star (1995)']
    """
    tokens = title.split()
    editable = [i for i, t in enumerate(tokens) if not _YEAR.match(t)]
    end = editable[-1] + 1 if editable else len(tokens)
    out = []
    for i in editable:
        out += [" ".join(tokens[:i] + [w] + tokens[i + 1 :]) for w in words if w != tokens[i]]
    for w in words:
        out += [" ".join([w] + tokens), " ".join(tokens[:end] + [w] + tokens[end:])]
    return [v for v in dict.fromkeys(out) if v.strip() and v != title]


def greedy_edit(score, title: str, words, *, budget: int):
    """``(edited title, edits used)``: up to ``budget`` greedy word edits of ``title``, each the
    variant (:func:`variants`) that ``score`` (a list of titles -> their mean score over the
    surrogate users, :func:`lm_scorer` or :func:`text_scorer`) rates highest, kept only while
    the score rises."""
    current, used = title, 0
    for _ in range(budget):
        options = [current] + variants(current, words)
        best = int(np.argmax(score(options)))
        if best == 0:
            break
        current, used = options[best], used + 1
    return current, used


def lm_scorer(lm, prompt_list, *, normalise: str):
    """Titles -> their summed score as the continuation of each of ``prompt_list`` (one
    ``lm.score`` call per prompt)."""

    def score(options):
        texts = [prompts.candidate_continuation(o) for o in options]
        total = np.zeros(len(options))
        for prompt in prompt_list:  # a few surrogate users
            scores = lm.score(prompt, texts)
            total += scores.mean if normalise == "mean" else scores.logprob
        return total

    return score


def text_scorer(model, histories, render):
    """Titles -> the mean score of an item whose text is ``render(title)`` over the
    ``histories`` rows (the surrogate users), from ``model.score_item_texts``."""

    def score(options):
        return model.score_item_texts(histories, [render(o) for o in options]).mean(axis=0)

    return score


def text_part(model):
    """``model`` when it scores items by their text alone (``score_item_texts``: ``dense``,
    ``bm25``), else None; a pipeline's parts do not count (the pipeline reranks them)."""
    return model if callable(getattr(model, "score_item_texts", None)) else None


# ---- the scenario ------------------------------------------------------------------------------
def run(ctx: AuditContext, label: str) -> Finding:
    part = language_part(ctx.fitted(label))
    if part is None:
        return _run_retrieval(ctx, label, text_part(ctx.fitted(label)))
    cfg = ctx.config
    users = ctx.lm_sample(ctx.audited_users())
    history, test = ctx.split.history("test"), ctx.split.test.user_items
    rng = np.random.default_rng(cfg.seed)
    targets = _targets(part.popularity_, cfg.n_targets, rng)
    surrogates = _surrogates(history, users, cfg.text_attack_surrogates, rng)
    order = history.user_item_order
    words = lexicon(
        part.titles_,
        part.popularity_,
        [part.titles_[i] for u in surrogates for i in order[u].indices],
    )
    prompt_list = [part.next_item_prompt(order[u]) for u in surrogates]
    edits, used = {}, {}
    for t in targets:  # budget x surrogates LM calls per target
        edits[t], used[t] = greedy_edit(
            lm_scorer(part.lm, prompt_list, normalise=part.config.normalise),
            str(part.titles_[t]),
            words,
            budget=cfg.text_attack_budget,
        )
    ranks = _evaluate(ctx, part, users, targets, edits, rng, history=history, test=test)
    metrics = _metrics(ranks, seed=cfg.seed)
    originals = [str(part.titles_[t]) for t in targets]
    metrics["edit_similarity"] = summarise(
        [fuzz.ratio(o, edits[t]) / 100 for o, t in zip(originals, targets)], seed=cfg.seed
    )
    metrics["words_changed"] = summarise([used[t] for t in targets], seed=cfg.seed)
    metrics["edit_flagged"] = share(guard.screen_all([edits[t] for t in targets])[1])
    settings = {
        "users": int(len(users)),
        "candidates": min(cfg.injection_candidates, len(prompts.LETTERS)),
        "lm": part.config.lm,
        "mode": part.config.mode,
        "targets": {str(t): {"title": o, "edited": edits[t]} for o, t in zip(originals, targets)},
        "budget_words": cfg.text_attack_budget,
        "surrogate_users": int(len(surrogates)),
        "lexicon": words,
        "trigger": TRIGGER,
        "shots": cfg.text_attack_shots,
        "poisoned_examples": 1,
        "backdoor": "in-context (poisoned few-shot example), not tuning",
    }
    return Finding(label, NAME, metrics, settings)


def _run_retrieval(ctx: AuditContext, label: str, model) -> Finding:
    """The word edit on a text retriever (``dense``, ``bm25``): searched on surrogate users'
    histories, then measured on every audited user (surrogates left out) as the target's rank
    among all the user's unseen items; defended = a title the guard flags is rejected."""
    cfg, train = ctx.config, ctx.split.train
    history, test = ctx.split.history("test"), ctx.split.test.user_items
    rng = np.random.default_rng(cfg.seed)
    titles = [train.catalog.title(i) for i in range(train.n_items)]
    popularity = train.item_counts
    targets = _targets(popularity, cfg.n_targets, rng)
    surrogates = _surrogates(history, np.zeros(0, np.int64), cfg.text_attack_surrogates, rng)
    users = np.setdiff1d(ctx.audited_users(), surrogates)
    order = history.user_item_order
    words = lexicon(titles, popularity, [titles[i] for u in surrogates for i in order[u].indices])
    texts = catalog_texts(train, model.config.text_template, model=model.name)
    edits, used = {}, {}
    for t in targets:  # cheap: one batch of variant texts per step
        render = _renderer(texts[t], titles[t])
        score = text_scorer(model, order[surrogates], render)
        edits[t], used[t] = greedy_edit(score, titles[t], words, budget=cfg.text_attack_budget)
    flagged = dict(zip(targets, guard.screen_all([edits[t] for t in targets])[1]))
    ranks = _full_ranks(model, order, test, users, targets, edits, texts, titles)
    pairs = {
        "undefended": ranks,
        "defended": [(c, c if flagged[t] else a) for t, c, a in ranks],
    }
    metrics = _metrics({n: [r[-2:] for r in p] for n, p in pairs.items()}, seed=cfg.seed)
    for name, p in pairs.items():
        got = np.asarray([r[-2:] for r in p], np.float64).reshape(-1, 2)
        if name == "undefended":
            metrics[f"target_exposure@{cfg.k}[clean]"] = share(got[:, 0] <= cfg.k)
        metrics[f"target_exposure@{cfg.k}[word-edit,{name}]"] = share(got[:, 1] <= cfg.k)
    metrics["edit_similarity"] = summarise(
        [fuzz.ratio(titles[t], edits[t]) / 100 for t in targets], seed=cfg.seed
    )
    metrics["words_changed"] = summarise([used[t] for t in targets], seed=cfg.seed)
    metrics["edit_flagged"] = share([flagged[t] for t in targets])
    settings = {
        "users": len(ranks),
        "candidates": "all unseen items",
        "model": model.name,
        "targets": {str(t): {"title": titles[t], "edited": edits[t]} for t in targets},
        "budget_words": cfg.text_attack_budget,
        "surrogate_users": int(len(surrogates)),
        "lexicon": words,
        "defence": "an edited title the injection guard flags is rejected",
        "backdoor": "n/a (no prompt to carry a trigger)",
    }
    return Finding(label, NAME, metrics, settings)


def _renderer(text: str, title: str):
    """Title -> ``text`` (an item's rendered text) with its ``title`` replaced (put in front
    when a custom template leaves the title out)."""
    if title and title in text:
        return lambda edited: text.replace(title, edited, 1)
    return lambda edited: f"{edited}. {text}"


def _full_ranks(model, order, test, users, targets, edits, texts, titles) -> list[tuple]:
    """Per user ``(target, clean rank, attacked rank)``: the user's target (targets in turn over
    users) among every item the user has not seen in training (1 = top; a tie goes to the
    lower index), its clean and edited texts scored by ``score_item_texts`` (one call per
    target); users who already have their target are left out."""
    mine = targets[np.arange(len(users)) % len(targets)]
    target_scores = np.zeros((len(users), 2))
    for t in targets:
        rows = np.flatnonzero(mine == t)
        render = _renderer(texts[t], titles[t])
        target_scores[rows] = model.score_item_texts(
            order[users[rows]], [texts[t], render(edits[t])]
        )
    out = []
    for start in range(0, len(users), 256):  # (256, n_items) scores at a time
        batch = users[start : start + 256]
        scores = model.score(order[batch], users=batch)
        for row, u in enumerate(batch):
            t, seen = int(mine[start + row]), order[u].indices
            if t in seen or t in test[u].indices:
                continue
            keep = np.ones(len(scores[row]), bool)
            keep[np.append(seen, t)] = False
            others, lower = scores[row][keep], np.flatnonzero(keep) < t
            clean, hit = target_scores[start + row]
            out.append((t, _place(others, lower, clean), _place(others, lower, hit)))
    return out


def _place(others, lower, value) -> int:
    """1-based rank of a score ``value`` among ``others`` (ties: those with a ``lower`` index
    first)."""
    return int(np.sum(others > value) + np.sum((others == value) & lower)) + 1


def _targets(popularity, n: int, rng) -> np.ndarray:
    """``n`` items from the less popular half of the items with interactions."""
    seen = np.flatnonzero(popularity > 0)
    lower = seen[popularity[seen] <= np.median(popularity[seen])]
    return np.sort(rng.choice(lower, min(n, len(lower)), replace=False)).astype(np.int64)


def _surrogates(history, users, n: int, rng) -> np.ndarray:
    """``n`` users with a history who are not evaluated: the attacker's own accounts."""
    pool = np.setdiff1d(np.flatnonzero(history.user_counts > 0), users)
    return np.sort(rng.choice(pool, min(n, len(pool)), replace=False))


def _evaluate(ctx, part, users, targets, edits, rng, *, history, test) -> dict[str, list]:
    """Per condition, per user ``(clean rank, attacked rank)`` of the user's target."""
    cfg = ctx.config
    n = min(cfg.injection_candidates, len(prompts.LETTERS))
    plain = part.with_titles({}, injection_guard=False)
    guarded = part.with_titles({}, injection_guard=True)
    plain._lm = guarded._lm = SameAnswer(part.lm)  # one LM call per distinct prompt
    hist, nxt = _examples(part, history, users, targets, cfg.text_attack_shots, rng)
    in_context = plain.with_examples(hist, nxt)
    poison = int(nxt[0])  # the poisoned example's next item: its title carries the trigger
    out: dict[str, list] = {c: [] for c in ("undefended", "defended", "trigger-only", "poisoned")}
    for turn, u in enumerate(users):  # five LM calls per user (fewer when prompts repeat)
        t = int(targets[turn % len(targets)])
        row = history.user_item_order[u]
        if t in row.indices or t in test[u].indices:
            continue  # the target is already the user's: nothing to promote
        cands = sampled_candidates(rng, row, test[u].indices, n_items=history.n_items, n=n)
        cands = cands[(cands != t) & (cands != poison)]
        free = np.flatnonzero(~np.isin(cands, test[u].indices))[1:]  # never the first
        cands[int(rng.choice(free))] = t
        for name, model in (("undefended", plain), ("defended", guarded)):
            clean = _rank(model, row, cands, t)
            out[name].append((clean, _rank(model.with_titles({t: edits[t]}), row, cands, t)))
        trigger = {t: f"{part.titles_[t]} {TRIGGER}"}
        base = _rank(in_context, row, cands, t)
        alone = _rank(in_context.with_titles(trigger), row, cands, t)
        trigger[poison] = f"{part.titles_[poison]} {TRIGGER}"
        out["trigger-only"].append((base, alone))
        out["poisoned"].append((base, _rank(in_context.with_titles(trigger), row, cands, t)))
    return out


def _examples(part, history, users, targets, shots: int, rng) -> tuple[list, list]:
    """``shots`` few-shot examples (history items, next item) of training users outside
    ``users``: their latest ``history_len`` items before their latest, then the latest; the
    targets are left out (a target's own title must not reach the prompt)."""
    pool = np.setdiff1d(np.flatnonzero(history.user_counts >= 3), users)
    hist, nxt = [], []
    for u in rng.permutation(pool):  # until `shots` examples are found
        row = history.user_item_order[u]
        items = row.indices[np.argsort(row.data, kind="stable")]
        items = items[~np.isin(items, targets)]
        if len(items) >= 2:
            hist.append(items[:-1][-max(part.config.history_len, 1) :])
            nxt.append(int(items[-1]))
        if len(nxt) == shots:
            break
    return hist, nxt


def _rank(model, row, cands, target) -> int:
    """1-based rank of ``target`` among ``cands`` under ``model.score_candidates`` (ties: the
    candidate order)."""
    scores = model.score_candidates(row, cands[None, :])[0]
    order = np.argsort(-np.asarray(scores), kind="stable")
    return int(np.flatnonzero(cands[order] == target)[0]) + 1


def _metrics(ranks: dict[str, list], *, seed: int) -> dict:
    metrics = {}
    for name, pairs in ranks.items():
        pairs = np.asarray(pairs, np.float64).reshape(-1, 2)
        cell = f"word-edit,{name}" if name in ("undefended", "defended") else f"backdoor,{name}"
        metrics[f"rank_shift[{cell}]"] = summarise(pairs[:, 0] - pairs[:, 1], seed=seed)
        movable = pairs[:, 0] > 1  # a target already first cannot be promoted
        metrics[f"attack_success[{cell}]"] = share(pairs[movable, 1] < pairs[movable, 0])
        if name in ("undefended", "trigger-only"):
            metrics[f"target_rank_clean[{cell.split(',')[0]}]"] = summarise(pairs[:, 0], seed=seed)
    return metrics
