"""Generative reranking over a retriever, fused and unfused: does the LLM add to EASE?

ML-100K, holdout 0.8/0.1/0.1 (split seed 2020), full ranking over all items, test part, one
fixed sample of test users (seed 0, the sample of ``benchmarks/llm.py``). EASE (training seed
42) shortlists the 20 best unseen items of each user; the LLM recommender (Gemma 3 270M through
genrec's transformers backend, zero-shot) scores them, pointwise (title likelihood) or listwise
(LlamaRec's letters). Each reranker is reported

* unfused: the reranker's order of the shortlist (``fusion="none"``);
* fused (the pipeline's default, ``fusion="linear"``): ``(1 - w) z(EASE) + w z(LLM)`` of the
  scores standardised within the shortlist, with ``w`` learned on validation users;
* fused by reciprocal ranks (``fusion="rrf"``), its weight learned the same way.

Weights are learned exactly as :class:`~genrec.pipelines.two_stage.TwoStage` learns them at fit:
on ``--valid-users`` validation users (training histories, validation items as targets), the
weight with the best NDCG@10 on a grid of 21, kept when its gain over w = 0 exceeds two paired
standard errors, else 0. Each user's LLM scores are computed once and every variant orders the same scores, so the
variants differ only in the fusion. Cost: LM calls, prompt tokens and scored answer tokens
(token counts of the LM's tokenizer), and wall seconds per user, on test users and (at fit) on
the validation users.

    python benchmarks/rerank.py [--users 200] [--valid-users 100] [--modes listwise,grounded]
    python benchmarks/rerank.py --report      # the section from the saved per-mode results
    python benchmarks/rerank.py --users 500 --probe   # a head trained on the LM's states

Each mode's per-user results are saved to ``benchmarks/results/rerank_<mode>.json`` as it
finishes; ``--report`` (and the end of a run) writes the BENCHMARKS.md section from them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from genrec.data import sources  # noqa: E402
from genrec.data.splits import holdout_split  # noqa: E402
from genrec.evaluation.metrics import ranking_metrics  # noqa: E402
from genrec.evaluation.protocol import evaluate  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import compare_with  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.models import EASE, LLMRecommender  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.pipelines.fusion import fuse, shortlist_auc  # noqa: E402
from genrec.pipelines.learned_fusion import fit_feature_fusion, standardize_columns  # noqa: E402
from genrec.pipelines.state_probe import fit_state_probe  # noqa: E402
from genrec.pipelines.two_stage import TwoStage, validation_targets  # noqa: E402
from genrec.text.backends import get_language_model  # noqa: E402

from common import ROOT, fmt_ci, fmt_test, load_average, rounded, summary, write_section  # noqa: E402

OPTIONS = RunOptions(seed=42, threads=1)
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("ndcg", "recall", "mrr", "hit")
MODE_LABELS = {
    "grounded": "pointwise",
    "listwise": "listwise",
    "pairwise": "pairwise",
    "setwise": "setwise",
    "preference": "yes/no",
}


class CountingLM:
    """A language model that counts its scoring calls and the tokens they read."""

    def __init__(self, lm):
        self.lm = lm
        self.reset()

    def reset(self) -> None:
        self.calls = self.prompt_tokens = self.answer_tokens = 0

    def cost(self) -> dict:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "answer_tokens": self.answer_tokens,
            "tokens": self.prompt_tokens + self.answer_tokens,
        }

    def score(self, prompt, continuations):
        self.calls += 1
        self.prompt_tokens += self.lm.count_tokens(prompt)
        self.answer_tokens += sum(self.lm.count_tokens(c) for c in continuations)
        return self.lm.score(prompt, continuations)

    def __getattr__(self, name):
        return getattr(self.lm, name)


class FixedScores:
    """Precomputed (U, n_items) scores of known users, shaped like a model for ``evaluate``."""

    name = "fixed"

    def __init__(self, users: np.ndarray, scores: np.ndarray):
        self.row = {int(u): i for i, u in enumerate(users)}
        self.scores = scores

    def score(self, histories, users):
        return self.scores[[self.row[int(u)] for u in users]]


def per_user(split, users, scores) -> dict:
    ev = evaluate(
        FixedScores(users, scores),
        split.history("test"),
        split.test,
        users=users,
        ks=(10, 20),
        metrics=METRICS,
    )
    return {k: v.tolist() for k, v in ev.per_user.items()}


def run_key(mode: str, label: str = "", n_users: int = 0) -> str:
    """The name of one run's result files: the mode, and the LM's label and the number of test
    users when the LM has a label."""
    return f"{mode}-{label}-{n_users}u" if label else mode


def run_label(m: dict) -> str:
    """A run's name in tables: the mode, then the LM's label (e.g. "listwise tuned-target")."""
    return " ".join(x for x in (MODE_LABELS[m["mode"]], m.get("label", "")) if x)


def run_mode(
    mode: str,
    split,
    users,
    ease,
    lm: CountingLM,
    n_valid: int,
    label: str = "",
    candidate_order: str = "given",
) -> dict:
    """Every variant of one reranking mode on the test ``users`` (see the module docstring);
    ``candidate_order`` "shuffled" lists a listwise shortlist in a seeded random order."""
    extra = {"candidate_order": candidate_order} if mode == "listwise" else {}
    llm = LLMRecommender(lm="fake", mode=mode, language_model=lm, **extra).fit(
        split.train, options=OPTIONS
    )
    pipe = TwoStage(retriever=ease, reranker=llm, n_candidates=20, fusion_weight=1.0)
    valid_users, relevant = validation_targets(split.train, split.valid, n_valid, seed=OPTIONS.seed)
    lm.reset()
    start = time.perf_counter()
    valid_lists = pipe.shortlists(split.train.user_item_order[valid_users], users=valid_users)
    fit_cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(valid_users)}
    print(f"[{mode}] validation shortlists: {fit_cost}", file=sys.stderr, flush=True)
    searches = {
        f: pipe.search_weight(valid_lists, split.train.user_items[valid_users], relevant, fusion=f)
        for f in ("linear", "rrf")
    }
    lm.reset()
    start = time.perf_counter()
    lists = pipe.shortlists(split.history("test").user_item_order[users], users=users)
    test_cost = {**lm.cost(), "seconds": time.perf_counter() - start, "users": len(users)}
    print(f"[{mode}] test shortlists: {test_cost}", file=sys.stderr, flush=True)
    variants = {"unfused": pipe.fused_scores(lists, fusion="none", weight=1.0)}
    for fusion, search in searches.items():
        variants[f"fused {fusion}"] = pipe.fused_scores(lists, fusion=fusion, weight=search.weight)
    save_lists(
        run_key(mode, label, len(users)),
        {"valid": (valid_users, valid_lists), "test": (users, lists)},
    )
    out = {
        "mode": mode,
        "label": label,
        "candidate_order": candidate_order,
        "fit_cost": fit_cost,
        "test_cost": test_cost,
        "searches": {f: vars(s) for f, s in searches.items()},
        "per_user": {name: per_user(split, users, s) for name, s in variants.items()},
    }
    for name, res in out["per_user"].items():
        print(
            f"[{mode}] {name}: ndcg@10 {np.mean(res['ndcg@10']):.4f}", file=sys.stderr, flush=True
        )
    return out


def save_lists(key: str, parts: dict) -> None:
    """Each part's shortlists (users, candidates and both stages' scores) to an npz file, so
    that other fusions can be studied later without asking the LM again."""
    arrays = {}
    for part, (users, lists) in parts.items():
        arrays[f"{part}_users"] = np.asarray(users)
        for field in ("candidates", "retriever", "reranker"):
            arrays[f"{part}_{field}"] = np.stack([getattr(x, field) for x in lists])
    np.savez_compressed(RESULTS / f"rerank_{key}_lists.npz", **arrays)


def saved_modes() -> list[dict]:
    """The saved per-mode results, each with its users' EASE values and run facts."""
    old = RESULTS / "rerank_ease.json"  # runs before each mode file held its EASE values
    base = json.loads(old.read_text()) if old.exists() else {}
    modes = []
    for path in sorted(RESULTS.glob("rerank_*.json")):
        if path.stem != "rerank_ease":
            m = json.loads(path.read_text())
            if m.get("mode") not in MODE_LABELS or "test_cost" not in m or "rag" in path.stem:
                continue  # another benchmark's rerank_* file
            if "ease" not in m:
                m.update(
                    ease=base["per_user"],
                    **{k: base[k] for k in ("n_users", "n_valid", "n_items", "versions")},
                )
                m.setdefault("written", base["written"])
                m["loads"] = base["loads"] + m.get("loads", [])
            modes.append(m)
    order = list(MODE_LABELS)
    labels = [
        "",
        "untuned",
        "tuned-target",
        "tuned-distilled",
        "tuned-residual",
        "tuned-residual-long",
    ]
    return sorted(
        modes,
        key=lambda m: (
            -m["n_users"],
            order.index(m["mode"]),
            labels.index(m.get("label", "")) if m.get("label", "") in labels else len(labels),
        ),
    )


def report(split) -> str:
    """The BENCHMARKS.md section from the saved results: one table per user sample."""
    modes = saved_modes()
    add_learned_fusions(modes, split)
    samples = sorted({(m["n_users"], m["n_valid"]) for m in modes}, reverse=True)
    parts = [intro(modes)]
    for n_users, n_valid in samples:
        group = [m for m in modes if (m["n_users"], m["n_valid"]) == (n_users, n_valid)]
        runs = ", ".join(
            f"`--modes {m['mode']}" + (f" --label {m['label']}`" if m.get("label") else "`")
            for m in group
        )
        parts += [
            f"#### {n_users} test users, w learned on {n_valid} validation users "
            f"(`--users {n_users} --valid-users {n_valid}`; {runs})",
            "\n".join(table(group)),
            adapters_paragraph(group),
            tuned_paragraph(group),
            fit_paragraph(group),
            features_paragraph(group),
            hindsight_paragraph(group, split),
        ]
    parts.append(no_lm_part(split))
    parts.append(probe_part(split))
    parts.append(signal_part(modes, split))
    parts.append(goals_paragraph(modes))
    (RESULTS / FRONTIER).write_text(frontier_svg(frontier_points(modes)))
    parts.append(
        f"Cost against quality, every variant above: [benchmarks/results/{FRONTIER}]"
        f"(benchmarks/results/{FRONTIER}) (NDCG@10 minus EASE's on the same users, against LM "
        "seconds per test user; a fused variant whose learned weight is 0 asks no LM and sits "
        "at 0 s)."
    )
    parts.append(machine(modes))
    return "\n\n".join(p for p in parts if p)


NO_LM_FILE = RESULTS / "rerank_nolm.json"


def run_no_lm(split, users: np.ndarray) -> None:
    """EASE and the learned EASE + popularity + text fusion (no LM) on ``users``: cheap enough
    for the full 500-user sample."""
    side = SideSignals(split)
    base = fit_side_fusion(split, side)
    ease = EASE().fit(split.train, options=OPTIONS)
    never_asked = LLMRecommender(lm="fake").fit(split.train, options=OPTIONS)  # rerank=False
    pipe = TwoStage(retriever=ease, reranker=never_asked, n_candidates=20)
    lists = pipe.shortlists(split.history("test").user_item_order[users], users=users, rerank=False)
    candidates = [x.candidates for x in lists]
    features = side.features("test", users, candidates, [x.retriever for x in lists])
    out = {
        "n_users": len(users),
        "ease": per_user(split, users, ease.score(split.history("test").user_item_order[users])),
        "no_lm": top_metrics(split, users, ranked_by(candidates, base.scores, features)),
        "fusion": vars(base),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    atomic_write(NO_LM_FILE, json.dumps(rounded(out), default=float, separators=(",", ":")))


def kept_table(rows: dict, fusions: dict) -> list[str]:
    """Markdown lines: each row's quality and paired tests against the row "ease", and for a
    learned fusion (``fusions``: row name -> its fit) whether it was kept."""
    tests = {
        metric: compare_with({n: np.array(v[metric]) for n, v in rows.items()}, "ease")
        for metric in ("ndcg@10", "recall@10")
    }
    lines = [
        "| model | NDCG@10 | Recall@10 | NDCG@10 vs EASE | Recall@10 vs EASE | kept? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, values in rows.items():
        cells = quality_cells(name, values, tests)
        cells.append(kept_cell(fusions[name]) if name in fusions else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def no_lm_part(split) -> str:
    """The table of the no-LM run, if one was saved."""
    if not NO_LM_FILE.exists():
        return ""
    d = json.loads(NO_LM_FILE.read_text())
    lines = kept_table({"ease": d["ease"], NO_LM: d["no_lm"]}, {NO_LM: d["fusion"]})
    weights = ", ".join(
        f"{n} {w:+.2f}" for n, w in zip(d["fusion"]["names"], d["fusion"]["weights"])
    )
    return (
        f"#### {d['n_users']} test users, no LM (`--users {d['n_users']} --no-lm`; written "
        f"{d['written']})\n\nEASE against the learned EASE + popularity + text fusion (fitted "
        f"on all {d['fusion']['n_users']} validation users; weights {weights}); no LM call at "
        "fit or test.\n\n" + "\n".join(lines)
    )


PROBE_FILE = RESULTS / "rerank_probe.json"
PROBE_DIMS = 16  # principal directions of the states the probe reads


def run_probe(split, users: np.ndarray, lm_spec: str) -> None:
    """The probe (:mod:`genrec.pipelines.state_probe`): the LM's states of every shortlisted
    candidate in the listwise prompt, for every validation user (the head is fitted on all of
    them, as the side fusion is) and the test ``users``; a head over EASE alone and one over
    EASE + popularity + text."""
    side = SideSignals(split)
    ease = EASE().fit(split.train, options=OPTIONS)
    lm = get_language_model(lm_spec, threads=1)
    llm = LLMRecommender(lm="fake", mode="listwise", language_model=lm).fit(
        split.train, options=OPTIONS
    )
    pipe = TwoStage(retriever=ease, reranker=llm, n_candidates=20)
    valid_users, relevant = validation_targets(split.train, split.valid, 10**9, seed=OPTIONS.seed)
    parts, loads = {}, [load_average()]
    for part, users_, seen in (
        ("valid", valid_users, split.train),
        ("test", users, split.history("test")),
    ):
        lists = pipe.shortlists(seen.user_item_order[users_], users=users_, rerank=False)
        candidates = np.stack([x.candidates for x in lists])
        start, cpu = time.perf_counter(), time.process_time()
        states = llm.candidate_states(seen.user_item_order[users_], candidates, users=users_)
        cost = {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "users": len(users_),
            "prompt_tokens": sum(
                lm.count_tokens(llm.listwise_prompt(seen.user_item_order[u], c, int(u)))
                for u, c in zip(users_[:20], candidates[:20])
            )
            / min(20, len(users_)),
        }
        print(f"[probe] {part} states: {cost}", file=sys.stderr, flush=True)
        retriever = [x.retriever for x in lists]
        parts[part] = (
            users_,
            candidates,
            states,
            side.features(part, users_, candidates, retriever),
            cost,
        )
    loads.append(load_average())
    v_users, v_cand, v_states, v_side, v_cost = parts["valid"]
    t_users, t_cand, t_states, t_side, t_cost = parts["test"]
    targets = targets_of(relevant, v_cand)
    n_relevant = np.diff(relevant.indptr).tolist()
    out = {"variants": {}}
    for name, cols in (("over ease", [0]), ("over ease + popularity + text", [0, 1, 2])):
        probe = fit_state_probe(
            v_states,
            [x[:, cols] for x in v_side],
            targets,
            names=tuple(SIDE[c] for c in cols),
            dims=PROBE_DIMS,
            n_relevant=n_relevant,
            seed=OPTIONS.seed,
        )
        t_base = [x[:, cols] for x in t_side]
        features = probe.features(t_states, t_base)
        out["variants"][name] = {
            "per_user": top_metrics(
                split, t_users, ranked_by(t_cand, lambda x: x, probe.scores(t_states, t_base))
            ),
            "fitted_test_ndcg": fitted_ndcg(split, t_users, t_cand, probe.fusion, features),
            "fusion": vars(probe.fusion),
        }
        if cols == [0]:  # the head's own score of each candidate, for the signal table
            valid_scores = probe.state_scores(v_states, [x[:, cols] for x in v_side])
            np.savez_compressed(  # the test users' lists; of the validation users' only the
                RESULTS / "rerank_probe_lists.npz",  # mean by rank (the file stays small)
                valid_by_rank=valid_scores.mean(axis=0),
                test_users=t_users,
                test_candidates=t_cand.astype(np.int32),
                test_reranker=probe.state_scores(t_states, t_base).astype(np.float32),
                test_retriever=np.stack([x[:, 0] for x in t_side]).astype(np.float32),
            )
    out.update(
        n_users=len(t_users),
        n_valid=len(v_users),
        dims=PROBE_DIMS,
        lm=lm.name,
        fit_cost=v_cost,
        test_cost=t_cost,
        ease=per_user(split, t_users, ease.score(split.history("test").user_item_order[t_users])),
        versions={**library_versions(), "platform": platform.platform()},
        loads=loads,
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    atomic_write(PROBE_FILE, json.dumps(rounded(out), default=float, separators=(",", ":")))


def probe_part(split) -> str:
    """The probe's table, if a probe run was saved."""
    if not PROBE_FILE.exists():
        return ""
    d = json.loads(PROBE_FILE.read_text())
    rows = {"ease": d["ease"]}
    if NO_LM_FILE.exists():
        no_lm = json.loads(NO_LM_FILE.read_text())
        if no_lm["n_users"] == d["n_users"]:
            rows[NO_LM] = no_lm["no_lm"]
    for name, v in d["variants"].items():
        rows[f"probe {name}, fused"] = v["per_user"]
    lines = kept_table(
        rows, {f"probe {name}, fused": v["fusion"] for name, v in d["variants"].items()}
    )
    fits = "; ".join(
        f"probe {name}: state weights "
        + ", ".join(f"{w:+.2f}" for w in v["fusion"]["fitted"][-d["dims"] :][:4])
        + f", ... (test NDCG@10 with the fitted weights, kept or not: {v['fitted_test_ndcg']:.4f})"
        for name, v in d["variants"].items()
    )
    fc, tc = d["fit_cost"], d["test_cost"]
    return (
        f"#### A probe trained on the LM's states: {d['n_users']} test users, head fitted on "
        f"{d['n_valid']} validation users (`--users {d['n_users']} --probe`; written "
        f"{d['written']})\n\n"
        f"{d['lm']} (frozen) reads each user's listwise prompt over EASE's 20 (EASE's order, "
        "10 history titles) once; each candidate's state is the last layer averaged over its "
        "entry (`LLMRecommender.candidate_states`). A linear head (`genrec.pipelines."
        f"state_probe`) reads the states centred within the shortlist, projected on their "
        f"{d['dims']} leading principal directions, beside EASE's score (and popularity and "
        "text similarity), fitted by the listwise likelihood of the validation items and kept "
        "only when its 5-fold cross-validated NDCG@10 gain over EASE exceeds two paired "
        "standard errors (else EASE's order stands). Only the head is trained: the LM's "
        "answers are never read.\n\n"
        + "\n".join(lines)
        + f"\n\nFitted heads: {fits}. Cost: one forward pass per user, about "
        f"{tc['prompt_tokens']:.0f} prompt tokens; {tc['seconds'] / tc['users']:.2f} s per "
        f"test user ({fc['cpu_seconds']:.0f} CPU s for the {fc['users']} validation users' "
        f"states, {tc['cpu_seconds']:.0f} for the test users'); 1-minute load average "
        + ", ".join(f"{x:.1f}" for x in d["loads"])
        + "."
    )


def asks_lm(m: dict, variant: str) -> bool:
    """Whether a run's variant asks the LM at test time (unfused, or a kept LLM weight)."""
    if variant == "unfused":
        return True
    search = m["searches"].get(variant.split()[-1])
    return bool(search.get("kept", search.get("weight", 1) != 0))


def kept_test(m: dict, variant: str, values: dict) -> str:
    """A kept fused variant's paired test against EASE, and for the feature fusion also against
    the side fusion it adds the LLM to (same users)."""
    x = np.array(values["ndcg@10"])
    text = fmt_test(compare_with({"v": x, "ease": np.array(m["ease"]["ndcg@10"])}, "ease")["v"])
    side = m.get("side")
    if variant == "fused features" and side:
        vs = compare_with({"v": x, "side": np.array(side["ndcg@10"])}, "side")["v"]
        text += f", against the side fusion alone {fmt_test(vs)}"
    return text


def goals_paragraph(modes: list[dict]) -> str:
    """The goals: the default pipeline against EASE on the 200-user sample, the fused variants
    that ask the LM, and the best fused variant against EASE."""
    out = []
    for m in modes:
        if m["n_users"] == 200 and m["mode"] == "grounded" and not m.get("label"):
            diff = np.mean(m["per_user"]["fused linear"]["ndcg@10"]) - np.mean(m["ease"]["ndcg@10"])
            out.append(
                "the default `ease+llm` (pointwise, fused linear) on the 200-user sample of seed 0: "
                f"NDCG@10 {np.mean(m['per_user']['fused linear']['ndcg@10']):.4f} against EASE's "
                f"{np.mean(m['ease']['ndcg@10']):.4f} (difference {diff:+.4f}: met, as w = 0)"
            )
    asking = [
        f"{run_label(m)}, {v} ({m['n_users']} users): {kept_test(m, v, x)}"
        for m in modes
        for v, x in m["per_user"].items()
        if v != "unfused" and asks_lm(m, v)
    ]
    if asking:
        out.append(
            "fused variants whose LLM weight was kept, NDCG@10 against EASE (paired t and "
            "Wilcoxon, unadjusted): " + "; ".join(asking)
        )
    else:
        out.append(
            "no fused variant kept an LLM weight on its validation users (untuned or tuned, "
            "linear, RRF or feature fusion), so every fused row that includes the LLM orders "
            "as EASE or the side fusion does and asks no LM at test time; the best tuned and "
            "fused variant is therefore not above EASE through the LLM"
        )
    if PROBE_FILE.exists():
        d = json.loads(PROBE_FILE.read_text())
        out.append(
            f"the probe trained on the LM's states ({d['n_users']} users), "
            + ", ".join(f"{name}: {kept_cell(v['fusion'])}" for name, v in d["variants"].items())
        )
    if NO_LM_FILE.exists():
        d = json.loads(NO_LM_FILE.read_text())
        a, b = np.array(d["no_lm"]["ndcg@10"]), np.array(d["ease"]["ndcg@10"])
        test = compare_with({"fused": a, "ease": b}, "ease")["fused"]
        out.append(
            f"the best fused variant on {d['n_users']} users is the learned side fusion "
            f"(no LM): {fmt_test(test)} NDCG@10 against EASE (paired t and Wilcoxon, unadjusted)"
        )
    text = "; ".join(out)
    return f"**Goals.** {text[0].upper()}{text[1:]}." if out else ""


def table(modes: list[dict]) -> list[str]:
    rows, cost = {"ease": modes[0]["ease"]}, {"ease": None}
    no_lm = next((m["no_lm"] for m in modes if m.get("no_lm")), None)
    if no_lm:
        rows[NO_LM] = no_lm["per_user"]
        cost[NO_LM] = {"searches": {"features": no_lm["fusion"]}}
    for m in modes:
        label = run_label(m)
        for name, values in m["per_user"].items():
            rows[f"ease+llm {label}, {name}"] = values
            cost[f"ease+llm {label}, {name}"] = m
    tests = {
        metric: compare_with({n: np.array(v[metric]) for n, v in rows.items()}, "ease")
        for metric in ("ndcg@10", "recall@10")
    }
    lines = [
        "| model | NDCG@10 | Recall@10 | NDCG@10 vs EASE | Recall@10 vs EASE | w (best w) | "
        "LM calls / user | prompt + answer tokens / user | s / user |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return lines + [row_line(name, values, tests, cost[name]) for name, values in rows.items()]


def intro(modes: list[dict]) -> str:
    return (
        "## Generative reranking over EASE, fused and unfused\n\n"
        "`python benchmarks/rerank.py` (latest run written "
        f"{max(m['written'] for m in modes)}). ML-100K, holdout 0.8/0.1/0.1 (split seed 2020), "
        f"full ranking over all {modes[0]['n_items']} items, test part, test users sampled with "
        "seed 0 (the 200 of the `llm` section, or the first of that draw for smaller samples; "
        "500 = those 200 and 300 more drawn with seed 1). "
        "EASE (reg 500, seed 42) shortlists each user's 20 best unseen items; Gemma 3 270M "
        "(genrec's transformers backend, 10 recent titles; zero-shot unless a row names a "
        "tuned adapter) scores them: "
        "**pointwise** (each title's likelihood), **listwise** (one prompt, candidates under "
        "letters A-T in EASE's order, or in a seeded random order for the tuned-residual "
        "adapter, which was tuned that way; the probability of each letter), **pairwise** (PRP: "
        "the letter question about two candidates, both orders, each candidate against the next "
        "one in EASE's order; score = mean log-odds preference) or **setwise** (windows of 5 "
        "overlapping by one, one question each; score = letter log-probability relative to "
        "uniform). **unfused**: the LLM's order of the shortlist. **fused linear** (the "
        "pipeline's default): (1-w) z(EASE) + w z(LLM), scores standardised within the "
        "shortlist. **fused rrf**: (1-w)/(60+rank_EASE) + w/(60+rank_LLM). w is learned on "
        "validation users (training histories, validation items as targets): the w in 0, 0.05, "
        "..., 1 with the best NDCG@10, kept when its gain over w = 0 exceeds two paired "
        "standard errors, else 0. Every variant orders the same LLM scores. Intervals: 95% "
        "bootstrap over users; tests: paired t and Wilcoxon against EASE, Holm-adjusted over "
        "the rows of a table, the larger p shown, * below 0.05. Cost: LM scoring calls, prompt "
        "tokens and scored answer tokens (Gemma's tokenizer), wall seconds per test user. "
        "Setwise and pairwise ran on smaller samples (the first users of the same draw, w "
        "learned on as many validation users) because they cost 5 and 38 LM calls per user on "
        "2 cores shared with other jobs. The tuned listwise LMs (rows named tuned-target and "
        "tuned-distilled) ran on the 200 users and, beside the same untuned LM, on the first 60 "
        "(w learned on 40 validation users), for the same reason (about 6 s per LM call at a "
        "load average near 20); untuned, tuned-distilled and tuned-residual also on 500. "
        "Seconds per "
        "user follow the load of each run: the tuned-distilled 200-user run was repeated on a "
        "quiet machine (same scores, 0.37 s per user against 2.25 s)."
    )


NO_LM = "ease + popularity + text, learned fusion"


def kept_cell(fusion: dict) -> str:
    """The weight cell of a learned fusion: kept or not, and its cross-validated gain."""
    verdict = "kept" if fusion["kept"] else "not kept"
    return f"{verdict} (CV gain {fusion['cv_gain']:+.4f} ± {fusion['cv_se']:.4f})"


def quality_cells(name: str, values: dict, tests: dict) -> list[str]:
    """A table row's first cells: the name, NDCG@10 and Recall@10 with intervals, and each
    one's paired test against EASE."""
    return [
        name,
        fmt_ci(summary(values["ndcg@10"])),
        fmt_ci(summary(values["recall@10"])),
        fmt_test(tests["ndcg@10"][name]),
        fmt_test(tests["recall@10"][name]),
    ]


def row_line(name: str, values: dict, tests: dict, mode: dict | None) -> str:
    cells = quality_cells(name, values, tests)
    if mode is None:
        return "| " + " | ".join(cells + ["-", "0", "0", "< 0.01"]) + " |"
    if name == NO_LM:
        return (
            "| "
            + " | ".join(cells + [kept_cell(mode["searches"]["features"]), "0", "0", "< 0.01"])
            + " |"
        )
    c = mode["test_cost"]
    variant = name.rsplit(", ", 1)[1]
    search = mode["searches"].get(variant.split()[-1]) if variant != "unfused" else None
    if variant == "fused features":
        weight, skipped = kept_cell(search), not search["kept"]
    else:
        weight = "1 (fixed)" if search is None else f"{search['weight']:.2f} ({search['best']:.2f})"
        skipped = search is not None and search["weight"] == 0

    def per(key: str) -> float:
        return 0 if skipped else c[key] / c["users"]

    cells += [
        weight,
        f"{per('calls'):.0f}",
        f"{per('prompt_tokens'):.0f} + {per('answer_tokens'):.0f}",
        "< 0.01" if skipped else f"{c['seconds'] / c['users']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def test_curve(m: dict, split) -> str:
    """Test NDCG@10 of the linear fusion at a few fixed w, from the saved shortlists: how much
    fusion could add in hindsight (not used to choose anything)."""
    path = RESULTS / f"rerank_{run_key(m['mode'], m.get('label', ''), m['n_users'])}_lists.npz"
    if not path.exists():
        return ""
    saved = np.load(path)
    users, candidates = saved["test_users"], saved["test_candidates"]
    seen = split.history("test").user_items[users]
    relevant = split.test.user_items[users] - split.test.user_items[users].multiply(seen)
    relevant.eliminate_zeros()
    rows = np.arange(len(users))[:, None]
    points = []
    for w in (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
        fused = np.stack(
            [fuse(r, x, weight=w) for r, x in zip(saved["test_retriever"], saved["test_reranker"])]
        )
        top = np.take_along_axis(candidates, np.argsort(-fused, axis=1, kind="stable")[:, :10], 1)
        hits = np.asarray(relevant[rows, top].todense()) > 0
        ndcg = ranking_metrics(hits, np.diff(relevant.indptr), [10], names=["ndcg"])["ndcg@10"]
        points.append(f"{w:.1f}: {ndcg.mean():.4f}")
    return f"{run_label(m)}: " + ", ".join(points)


# ---- learned fusion over several features, from the saved shortlists ----------------------------
SIDE = ("EASE", "popularity", "text similarity")


class SideSignals:
    """Per shortlist, the standardised (C, 3) features EASE score, log training popularity and
    text similarity (genrec's ``dense`` model: MiniLM title embeddings, the centred mean of the
    history's as the query) of the candidates."""

    def __init__(self, split):
        from genrec.build import build_model

        self.split = split
        self.popularity = np.log1p(split.train.item_counts.astype(np.float64))
        self.dense = build_model("dense").fit(split.train, options=OPTIONS)

    def features(self, part: str, users, candidates, retriever) -> list[np.ndarray]:
        """Standardised side features of each user's shortlist, histories before ``part``."""
        seen = self.split.train if part == "valid" else self.split.history("test")
        text = self.dense.score(seen.user_item_order[np.asarray(users)])
        return [
            standardize_columns(np.c_[r, self.popularity[c], np.asarray(t)[c]])
            for c, r, t in zip(candidates, retriever, text)
        ]


def targets_of(relevant, candidates) -> list[np.ndarray]:
    """Per user, (C,) bool: which shortlisted candidates are among ``relevant``'s row items."""
    return [np.asarray(relevant[i, c].todense()).ravel() > 0 for i, c in enumerate(candidates)]


def fit_side_fusion(split, side: SideSignals) -> tuple:
    """(the EASE + popularity + text fusion fitted on every validation user, the shortlist
    pipeline): EASE shortlists cost no LM call, so all validation users teach this one."""
    ease = EASE().fit(split.train, options=OPTIONS)
    never_asked = LLMRecommender(lm="fake").fit(split.train, options=OPTIONS)  # rerank=False
    pipe = TwoStage(retriever=ease, reranker=never_asked, n_candidates=20)
    users, relevant = validation_targets(split.train, split.valid, 10**9, seed=OPTIONS.seed)
    lists = pipe.shortlists(split.train.user_item_order[users], users=users, rerank=False)
    candidates = [x.candidates for x in lists]
    fusion = fit_feature_fusion(
        side.features("valid", users, candidates, [x.retriever for x in lists]),
        targets_of(relevant, candidates),
        names=SIDE,
        n_relevant=np.diff(relevant.indptr).tolist(),
        seed=OPTIONS.seed,
    )
    return fusion


def ranked_by(candidates, scores_of, features) -> np.ndarray:
    return np.stack(
        [c[np.argsort(-scores_of(x), kind="stable")] for c, x in zip(candidates, features)]
    )


def learned_fusions(m: dict, split, side: SideSignals, base) -> dict | None:
    """One run's learned fusions from its saved shortlists: the side fusion ``base`` (no LM) on
    its test users, and ``base`` fused with the LLM's score, the LLM's weight fitted on the
    run's validation users (see :mod:`genrec.pipelines.learned_fusion`)."""
    path = RESULTS / f"rerank_{run_key(m['mode'], m.get('label', ''), m['n_users'])}_lists.npz"
    if not path.exists():
        return None
    saved = np.load(path)
    users, relevant = validation_targets(split.train, split.valid, m["n_valid"], seed=OPTIONS.seed)
    if not np.array_equal(users, saved["valid_users"]):
        raise RuntimeError(f"{path}: its validation users are not the benchmark's")
    parts = {}
    for part in ("valid", "test"):
        side_x = side.features(
            part, saved[f"{part}_users"], saved[f"{part}_candidates"], saved[f"{part}_retriever"]
        )
        parts[part] = (
            side_x,
            [
                standardize_columns(np.c_[base.scores(x), r])
                for x, r in zip(side_x, saved[f"{part}_reranker"])
            ],
        )
    fusion = fit_feature_fusion(
        parts["valid"][1],
        targets_of(relevant, saved["valid_candidates"]),
        names=("EASE + popularity + text", "LLM"),
        n_relevant=np.diff(relevant.indptr).tolist(),
        seed=OPTIONS.seed,
    )
    test_users, candidates = saved["test_users"], saved["test_candidates"]
    no_lm = ranked_by(candidates, base.scores, parts["test"][0])
    return {
        "with_lm": {
            "per_user": top_metrics(
                split, test_users, ranked_by(candidates, fusion.scores, parts["test"][1])
            ),
            "fusion": {
                **vars(fusion),
                "fitted_test_ndcg": fitted_ndcg(
                    split, test_users, candidates, fusion, parts["test"][1]
                ),
            },
        },
        "no_lm": {
            "per_user": top_metrics(split, test_users, no_lm),
            "fusion": {
                **vars(base),
                "fitted_test_ndcg": fitted_ndcg(
                    split, test_users, candidates, base, parts["test"][0]
                ),
            },
        },
    }


def fitted_ndcg(split, users, candidates, fusion, features) -> float:
    """Mean NDCG@10 of ``users`` with their candidates ranked by the weights the fusion fitted
    (``fusion.fitted``), whether or not it kept them: its test score had it been kept."""
    ranked = ranked_by(candidates, lambda x: x @ np.asarray(fusion.fitted), features)
    return float(np.mean(top_metrics(split, users, ranked)["ndcg@10"]))


def top_metrics(split, users: np.ndarray, ranked: np.ndarray) -> dict:
    """Per-user NDCG and recall at 10 of each user's ``ranked`` shortlist (>= 10 items: the top
    10 of the full ranking) against their test items."""
    seen = split.history("test").user_items[users]
    relevant = split.test.user_items[users] - split.test.user_items[users].multiply(seen)
    relevant.eliminate_zeros()
    top = ranked[:, :10]
    hits = np.asarray(relevant[np.arange(len(users))[:, None], top].todense()) > 0
    out = ranking_metrics(hits, np.diff(relevant.indptr), [10], names=["ndcg", "recall"])
    return {k: v.tolist() for k, v in out.items()}


def add_learned_fusions(modes: list[dict], split) -> None:
    """Each run gains the row "fused features" (the side fusion, then the LLM); the first run of
    each sample also carries the side fusion alone ("ease + popularity + text", no LM)."""
    side = SideSignals(split)
    base = fit_side_fusion(split, side)
    done = set()
    for m in modes:
        fits = learned_fusions(m, split, side, base)
        if fits is None:
            continue
        m["per_user"]["fused features"] = fits["with_lm"]["per_user"]
        m["searches"]["features"] = fits["with_lm"]["fusion"]
        m["side"] = fits["no_lm"]["per_user"]  # the side fusion alone, on this run's users
        if (m["n_users"], m["n_valid"]) not in done:
            done.add((m["n_users"], m["n_valid"]))
            m["no_lm"] = fits["no_lm"]


def signal_part(modes: list[dict], split) -> str:
    """Why the learned weights are 0: per saved run, how well EASE's scores, the LLM's and the
    LLM's beyond EASE's order separate each test user's targets from the rest of the shortlist
    (:func:`genrec.pipelines.fusion.shortlist_auc`)."""
    rows = []
    runs = [
        (run_label(m), f"rerank_{run_key(m['mode'], m.get('label', ''), m['n_users'])}")
        for m in modes
    ]
    for label, stem in runs + [("probe's head over EASE", "rerank_probe")]:
        path = RESULTS / f"{stem}_lists.npz"
        if not path.exists():
            continue
        saved = np.load(path)
        users, candidates = saved["test_users"], saved["test_candidates"]
        seen = split.history("test").user_items[users]
        relevant = split.test.user_items[users] - split.test.user_items[users].multiply(seen)
        targets = np.stack(targets_of(relevant.tocsr(), candidates))
        reranker = saved["test_reranker"].astype(np.float64)
        # what EASE's order alone predicts of the LLM's score: its mean at each shortlist
        # position over the run's validation users (positions are EASE's ranks)
        if "valid_by_rank" in saved:
            by_rank = saved["valid_by_rank"]
        else:
            by_rank = saved["valid_reranker"].astype(np.float64).mean(axis=0)
        aucs = [
            shortlist_auc(x, targets)
            for x in (saved["test_retriever"], reranker, reranker - by_rank)
        ]
        known = ~np.isnan(aucs[0])
        rows.append(
            f"| {label} | {len(users)} ({known.sum()}) | "
            + " | ".join(fmt_ci(summary(a[known])) for a in aucs)
            + " |"
        )
    if not rows:
        return ""
    return "\n".join(
        [
            "#### What the LLM knows beyond EASE's order",
            "Per test user, the chance that a target in the shortlist scores above a non-target "
            "of it (0.5 = chance), over the users whose shortlist holds a target and a "
            "non-target (count in brackets). **beyond EASE's order**: the LLM's score minus its "
            "mean at the same EASE rank over the run's validation users, which removes what "
            "the LLM says only because of where EASE put a candidate (a listwise prompt lists "
            "the shortlist in EASE's order and the letter A is favoured). A fusion can only "
            "gain where this is above 0.5.",
            "",
            "| run | test users (with a target to order) | EASE | LLM | LLM beyond EASE's order |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )


def features_paragraph(modes: list[dict]) -> str:
    """What each learned fusion fitted, and its test NDCG@10 had it been kept."""
    parts = []
    for m in modes:
        f = m["searches"].get("features")
        fits = [(run_label(m) + " LLM over it", f)] if f else []
        if m.get("no_lm"):
            fits.insert(
                0,
                (
                    f"EASE + popularity + text ({m['no_lm']['fusion']['n_users']} validation users)",
                    m["no_lm"]["fusion"],
                ),
            )
        for name, fit in fits:
            weights = ", ".join(f"{n} {w:+.2f}" for n, w in zip(fit["names"], fit["fitted"]))
            parts.append(
                f"{name}: {weights} (test NDCG@10 with these weights: {fit['fitted_test_ndcg']:.4f})"
            )
    if not parts:
        return ""
    lost = [run_label(m) for m in modes if "features" not in m["searches"]]
    missing = (
        f" No feature-fusion row for {', '.join(lost)}: the run's saved shortlists are missing "
        "(an earlier version of this script wrote every labelled run's shortlists to one file)."
        if lost
        else ""
    )
    return (
        "Learned fusion, in two steps (`genrec.pipelines.learned_fusion`): a linear score over the "
        "shortlist's standardised EASE score, log popularity and text similarity (genrec's "
        "`dense` model: MiniLM title embeddings), fitted on every validation user (EASE "
        "shortlists need no LM) by the listwise log-likelihood of their validation items, L2 "
        "0.1 towards EASE alone (**ease + popularity + text**); then that score and the "
        "LLM's, standardised, weighted the same way on the run's validation users (**fused "
        "features**). Each is kept only when its 5-fold cross-validated NDCG@10 gain over its "
        "base (EASE; the side fusion) exceeds two paired standard errors, else its base's "
        "order stands. Fitted weights: " + "; ".join(parts) + "." + missing
    )


FRONTIER = "rerank_frontier.svg"


def frontier_svg(points: list[tuple[str, float, float, int]]) -> str:
    """A plain SVG scatter of (name, LM seconds per test user, NDCG@10 gain over EASE, sample
    size): each variant's cost against what it adds; numbered points, named in a legend, and a
    dashed line where a variant equals EASE."""
    width, left, top, plot_w, plot_h = 1000, 70, 30, 420, 420
    height = max(520, top + 12 * len(points) + 20)  # the legend lists every point
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    x_max = max(max(xs) * 1.1, 1.0)
    y_lo, y_hi = min(min(ys), 0.0) - 0.01, max(max(ys), 0.0) + 0.01
    px = lambda x: left + plot_w * x / x_max  # noqa: E731
    py = lambda y: top + plot_h * (1 - (y - y_lo) / (y_hi - y_lo))  # noqa: E731
    colours = {500: "#1f77b4", 200: "#d62728", 60: "#ff7f0e", 50: "#2ca02c", 20: "#9467bd"}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 20}" text-anchor="middle">'
        "LM seconds per test user (wall, 1 thread, shared machine)</text>",
        f'<text x="15" y="{top + plot_h / 2}" transform="rotate(-90 15 {top + plot_h / 2})" '
        'text-anchor="middle">NDCG@10 minus EASE on the same users</text>',
        f'<line x1="{left}" y1="{py(0.0):.1f}" x2="{left + plot_w}" y2="{py(0.0):.1f}" '
        'stroke="grey" stroke-dasharray="4 3"/>',
        f'<text x="{left + plot_w - 4}" y="{py(0.0) - 4:.1f}" text-anchor="end" fill="grey">'
        "EASE</text>",
    ]
    for i in range(6):
        x, y = x_max * i / 5, y_lo + (y_hi - y_lo) * i / 5
        out.append(
            f'<text x="{px(x):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{x:.1f}</text>'
        )
        out.append(f'<text x="{left - 5}" y="{py(y) + 4:.1f}" text-anchor="end">{y:+.3f}</text>')
    for i, (name, x, y, n) in enumerate(points, 1):
        colour = colours.get(n, "#555555")
        out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{px(x) + 6:.1f}" y="{py(y) - 4:.1f}" fill="{colour}">{i}</text>')
        out.append(
            f'<text x="{left + plot_w + 30}" y="{top + 12 * i:.1f}" fill="{colour}">'
            f"{i}. {escape(name)} ({n} users)</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def frontier_points(modes: list[dict]) -> list[tuple[str, float, float, int]]:
    """(name, LM seconds per test user, mean NDCG@10 minus EASE's on the same users, users) of
    every variant of every table: samples of different sizes differ in EASE's own NDCG, so each
    point is its gain over the retriever it reranks; a fused variant that does not ask the LM
    costs 0 s."""
    points = []
    if NO_LM_FILE.exists():
        d = json.loads(NO_LM_FILE.read_text())
        gain = np.mean(d["no_lm"]["ndcg@10"]) - np.mean(d["ease"]["ndcg@10"])
        points.append((NO_LM, 0.0, float(gain), d["n_users"]))
    for n_users in sorted({m["n_users"] for m in modes}, reverse=True):
        group = [m for m in modes if m["n_users"] == n_users]
        ease = float(np.mean(group[0]["ease"]["ndcg@10"]))
        for m in group:
            if m.get("no_lm"):
                ndcg = float(np.mean(m["no_lm"]["per_user"]["ndcg@10"]))
                points.append((NO_LM, 0.0, ndcg - ease, n_users))
        for m in group:
            seconds = m["test_cost"]["seconds"] / m["test_cost"]["users"]
            for variant, values in m["per_user"].items():
                cost = seconds if asks_lm(m, variant) else 0.0
                gain = float(np.mean(values["ndcg@10"])) - ease
                points.append((f"{run_label(m)}, {variant}", cost, gain, n_users))
    if PROBE_FILE.exists():  # the probe asks the LM at test only when its head was kept
        d = json.loads(PROBE_FILE.read_text())
        ease = float(np.mean(d["ease"]["ndcg@10"]))
        for name, v in d["variants"].items():
            cost = d["test_cost"]["seconds"] / d["test_cost"]["users"] if v["fusion"]["kept"] else 0
            gain = float(np.mean(v["per_user"]["ndcg@10"])) - ease
            points.append((f"probe {name}, fused", float(cost), gain, d["n_users"]))
    return points


def hindsight_paragraph(modes: list[dict], split) -> str:
    curves = [c for c in (test_curve(m, split) for m in modes) if c]
    if not curves:
        return ""
    return (
        "In hindsight (test users, the same scores; not used to choose w), test NDCG@10 of "
        "the linear fusion by w: " + "; ".join(curves) + "."
    )


def fit_paragraph(modes: list[dict]) -> str:
    parts = []
    for m in modes:
        c = m["fit_cost"]
        curve = m["searches"]["linear"]
        shown = ", ".join(
            f"{w:.2f}: {v:.4f}"
            for w, v in zip(curve["grid"], curve["means"])
            if round(w * 20) % 4 == 0
        )
        parts.append(
            f"{run_label(m)}: learning w cost {c['calls']} LM calls on "
            f"{c['users']} validation users ({c['seconds'] / max(c['users'], 1):.2f} s "
            f"each); validation NDCG@10 of the linear fusion by w: {shown}"
        )
    return (
        "A fused pipeline whose learned w is 0 never asks the LLM at test time (the cost "
        "columns show 0 then). Learning w (at fit) and the validation curves: "
        + "; ".join(parts)
        + "."
    )


def machine(modes: list[dict]) -> str:
    v = modes[0]["versions"]
    loads = [x for m in modes for x in m.get("loads", [])]
    return (
        f"Machine: {v['cpu_count']} cores shared with other jobs, {v['platform']}, Python "
        f"{v['python']}, torch {v['torch']}, genrec {v['genrec']}; 1 thread; 1-minute load "
        "average during the runs: " + ", ".join(f"{x:.1f}" for x in loads) + "."
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--valid-users", type=int, default=100)
    parser.add_argument("--modes", default="listwise,grounded")
    parser.add_argument(
        "--lm", default="transformers:gemma-3-270m", help="the LM spec, e.g. tuned:/path/to/adapter"
    )
    parser.add_argument("--label", default="", help="the LM's name in the tables (tuned LMs)")
    parser.add_argument(
        "--candidate-order",
        default="given",
        choices=("given", "shuffled"),
        help="listwise: EASE's order, or a seeded shuffle (for an adapter tuned on shuffled lists)",
    )
    parser.add_argument("--cache-dir", default="/tmp/gcache")
    parser.add_argument(
        "--report", action="store_true", help="only write the section from the saved results"
    )
    parser.add_argument(
        "--no-lm", action="store_true", help="only EASE and the learned side fusion (no LM)"
    )
    parser.add_argument(
        "--probe", action="store_true", help="only the probe trained on the LM's states"
    )
    args = parser.parse_args(argv)
    if args.probe:
        split = load_split(args.cache_dir)
        eligible = np.flatnonzero(split.test.user_counts > 0)
        run_probe(split, np.sort(test_users(eligible, args.users)), args.lm)
    elif args.no_lm:
        split = load_split(args.cache_dir)
        run_no_lm(
            split, np.sort(test_users(np.flatnonzero(split.test.user_counts > 0), args.users))
        )
    elif not args.report:
        run(args)
    text = report(load_split(args.cache_dir))
    print(text)
    write_section("rerank", text)
    return 0


def load_split(cache_dir):
    return holdout_split(sources.load("ml-100k", cache_dir=cache_dir), (0.8, 0.1, 0.1), seed=2020)


def adapter_facts(spec: str) -> dict | None:
    """How a tuned LM (spec ``tuned:FOLDER``) was tuned: its ``train_result.json`` (written by
    ``benchmarks/tuning.py``) without the step log; None for an untuned LM."""
    if not spec.startswith("tuned:"):
        return None
    path = Path(spec.split(":", 1)[1]) / "train_result.json"
    if not path.exists():
        return {"folder": str(path.parent)}
    facts = json.loads(path.read_text())
    valid = [(e["step"], e["valid_loss"]) for e in facts.pop("log") if "valid_loss" in e]
    return {**facts, "valid_losses": valid}


def adapters_paragraph(modes: list[dict]) -> str:
    """How each tuned LM of a table was tuned."""
    parts = []
    for m in modes:
        a = m.get("adapter")
        if not a or "config" not in a:
            continue
        c = a["config"]
        teacher = (
            f"target loss mixed half and half with KL(EASE's softmax at temperature "
            f"{c['teacher_temperature']:g} || the LM's letters)"
            if c.get("distill")
            else "target letter only"
        )
        if c.get("residual"):
            teacher = (
                f"residual: the target's cross-entropy under softmax(log EASE softmax at "
                f"temperature {c['teacher_temperature']:g} + the LM's letter logits), so the LM "
                "learns what EASE's ranking misses (validation loss: the same fused "
                "cross-entropy)"
                + (
                    "; each shortlist listed in a random order in tuning, and in a seeded "
                    "random order at test (the letters carry no trace of EASE's ranks)"
                    if c.get("shuffle_candidates")
                    else ""
                )
            )
        budget = (
            f"time budget {c['time_budget']:.0f} s"
            if c.get("time_budget")
            else f"max_steps {c['max_steps']}, eval every {c['eval_every']}, patience {c['patience']}"
        )
        losses = ", ".join(f"{s}: {v:.3f}" for s, v in a["valid_losses"])
        if "prior_valid_loss" in a:
            best = min(v for _, v in a["valid_losses"])
            verdict = (
                "above it at every evaluation: the LM learned nothing EASE's ranking misses"
                if best >= a["prior_valid_loss"]
                else f"below it by {a['prior_valid_loss'] - best:.3f} at best"
            )
            losses += (
                f"; EASE's softmax alone (the LM adding nothing): {a['prior_valid_loss']:.3f} "
                f"on the same validation examples, the fused loss {verdict}; "
                f"{a['steps'] * c['batch_size']} examples seen, "
                f"{a['steps'] * c['batch_size'] / a['train_examples']:.2f} of an epoch"
            )
        if c.get("history_len", 5) != 5:
            teacher += f"; {c['history_len']} history titles, as at test"
        parts.append(
            f"{run_label(m)}: {teacher}; {a['steps']} steps of batch {c['batch_size']} in "
            f"{a['seconds'] / 60:.1f} min ({budget}), "
            f"{a['train_examples']:,} examples built, validation answer loss by step {losses} "
            f"(best step {a['best_step']})"
        )
    if not parts:
        return ""
    return (
        "Tuned LMs (`benchmarks/tuning.py --train DIR --which listwise-target|listwise-"
        "distilled --time-budget S`, `--which listwise-residual|listwise-residual-long --steps "
        "N --eval-every E`): LoRA r=8 on Gemma 3 270M, the listwise task over EASE's top 20 (in "
        "EASE's order unless said otherwise), 5 history titles unless said otherwise, shortlists from 5 EASE copies each fitted "
        "without one fold of users (a training case's shortlist and teacher never come from an "
        "EASE that saw its user, target included); cases whose target is not shortlisted are "
        "dropped; learning rate 5e-4. " + "; ".join(parts) + "."
    )


def tuned_paragraph(modes: list[dict]) -> str:
    """Each tuned LM's unfused order against the untuned LM's on the same users (paired)."""
    from genrec.evaluation.stats import paired_tests

    base = next(
        (m for m in modes if m["mode"] == "listwise" and m.get("label", "") in ("", "untuned")),
        None,
    )
    tuned = [m for m in modes if m.get("label", "").startswith("tuned")]
    if base is None or not tuned:
        return ""
    parts = []
    for m in tuned:
        t = paired_tests(
            np.array(m["per_user"]["unfused"]["ndcg@10"]),
            np.array(base["per_user"]["unfused"]["ndcg@10"]),
        )
        parts.append(
            f"{run_label(m)} {t['mean_diff']:+.4f} (paired t p={t['p_t']:.2g}, Wilcoxon p={t['p_wilcoxon']:.2g})"
        )
    return (
        "Unfused NDCG@10 of each tuned LM against the untuned one, same users: "
        + "; ".join(parts)
        + "."
    )


def test_users(eligible: np.ndarray, n: int) -> np.ndarray:
    """``n`` test users: the 200 of the llm section (seed 0) first, then more drawn with seed 1
    from the others, so a larger sample contains the smaller ones."""
    first = np.random.default_rng(0).choice(eligible, min(200, len(eligible)), replace=False)
    rest = np.setdiff1d(eligible, first)
    more = np.random.default_rng(1).choice(rest, min(max(n - 200, 0), len(rest)), replace=False)
    return np.r_[first, more][:n]


def run(args) -> None:
    OPTIONS.apply_threads()
    split = load_split(args.cache_dir)
    eligible = np.flatnonzero(split.test.user_counts > 0)
    users = np.sort(test_users(eligible, args.users))
    ease = EASE().fit(split.train, options=OPTIONS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = {
        "n_users": len(users),
        "n_valid": args.valid_users,
        "n_items": split.train.n_items,
        "versions": {**library_versions(), "platform": platform.platform()},
        "ease": per_user(split, users, ease.score(split.history("test").user_item_order[users])),
    }
    lm = CountingLM(get_language_model(args.lm, threads=1))
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        loads = [load_average()]
        out = run_mode(
            mode, split, users, ease, lm, args.valid_users, args.label, args.candidate_order
        )
        out.update(
            base,
            adapter=adapter_facts(args.lm),
            loads=loads + [load_average()],
            written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )
        key = run_key(mode, args.label, len(users))
        atomic_write(
            RESULTS / f"rerank_{key}.json",
            json.dumps(rounded(out), default=float, separators=(",", ":")),
        )


if __name__ == "__main__":
    raise SystemExit(main())
