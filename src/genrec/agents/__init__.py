"""The conversational recommender and the simulated users that measure it.

* :class:`Agent` — ``respond(session_id, text) -> Reply``: plans tool calls (rules, or an LM
  for the turns the rules do not parse: a whole validated JSON plan,
  :mod:`~genrec.agents.planner`, or step by step, :mod:`~genrec.agents.react`), runs them over
  the catalog and a fitted model, and replies with catalog items only
  (:mod:`genrec.agents.agent`).
* Session state and memory (:mod:`~genrec.agents.session`), kept in SQLite or memory
  (:mod:`~genrec.agents.store`).
* Typed tools with JSON schemas (:mod:`~genrec.agents.schema`, :mod:`~genrec.agents.tools`),
  an item table filtered in SQLite (:mod:`~genrec.agents.item_table`), fuzzy titles
  (:mod:`~genrec.agents.titles`), clarifying questions by information gain
  (:mod:`~genrec.agents.clarify`), item questions answered from the item's text and reviews
  (:mod:`~genrec.agents.item_qa`).
* Simulated users and the evaluation of agents against them
  (:mod:`~genrec.agents.simulator`, :mod:`~genrec.agents.simulation`).
"""

from genrec.agents.agent import Agent
from genrec.agents.reply import Reply
from genrec.agents.session import Condition, Session
from genrec.agents.store import MemorySessionStore, SqliteSessionStore

__all__ = ["Agent", "Condition", "MemorySessionStore", "Reply", "Session", "SqliteSessionStore"]
