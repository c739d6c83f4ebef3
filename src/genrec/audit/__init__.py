"""Holistic audit of recommenders: impact and harm scenarios x metrics, HELM-style.

One scenario per module, listed in :data:`genrec.audit.runner.SCENARIOS`:

* ``accuracy`` — the standard ranking protocol (the reference);
* ``exposure`` — popularity bias and exposure of items (Gini, APLT, ARP, PopREO, PopRSP,
  coverage, exposure disparity; Elliot's or RecBole's long tail);
* ``fairness`` — accuracy gaps between user groups (gender, age band, occupation, activity);
* ``fairness-llm`` — FaiRLLM / CFaiRLLM: how a language-model recommender's list changes when
  the prompt names the user's gender, age or occupation (Jaccard, SERP*, PRAG*, SNSR, SNSV,
  true-preference alignment, profile sampling);
* ``shilling`` — fake-profile attacks (random, average, bandwagon, segment) and a detector;
* ``hallucination`` — out-of-catalogue, duplicate and already-seen rates, TIGER's invalid IDs;
* ``injection`` — prompt injection through item text, with and without genrec's defences;
* ``agent-injection`` — hostile user utterances against the conversational agent
  (``chat:MODEL``): forged tool arguments, extracting its instructions, reading another session;
* ``text-attack`` — greedy word edits of a target's title within a budget, LM rewrites that
  keep its meaning (embedding similarity), and an in-context backdoor trigger (BadRec), against
  LM recommenders and the models scored from item text (dense, bm25, hybrid, TIGER);
* ``backdoor`` — BadRec: a trigger token in a target's title and 1% poisoned tuning data
  (or a sweep of rates), a clean and a poisoned LoRA adapter (one per rate) of a tuned
  language-model recommender;
* ``privacy`` — distance to closest record and membership inference for sampling models;
* ``canary`` — planted training histories (in the tuning data, for tuned language models):
  does the model give their last item back?
* ``feedback-loop`` — repeated retraining on accepted recommendations;
* ``efficiency`` — CPU time, memory and an energy / CO2 estimate.

:func:`run_audit` runs them; :func:`audit_dict` is the ``audit.json`` document;
:func:`genrec.audit.report.to_html` the self-contained report. Every metric's definition and
source is in the scenario module's ``METRICS`` and in docs/audit.md.
"""

from genrec.audit.context import AuditConfig, AuditContext
from genrec.audit.results import NA, Definition, Finding
from genrec.audit.runner import SCENARIOS, audit_dict, definitions, parse_scenarios, run_audit

__all__ = [
    "NA",
    "SCENARIOS",
    "AuditConfig",
    "AuditContext",
    "Definition",
    "Finding",
    "audit_dict",
    "definitions",
    "parse_scenarios",
    "run_audit",
]
