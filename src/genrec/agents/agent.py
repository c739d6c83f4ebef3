"""The conversational recommender: ``Agent.respond(session_id, text) -> Reply``.

One turn: load the session from the store, plan (rules, or an LM writing a JSON plan), run the
validated tool calls, rank the candidates with the fitted model, maybe ask a clarifying
question, write the reply from the results, save the session. Grounded by construction:

* every shown item is a catalog index the item table returned;
* seen (history), unwanted and already shown items are never shown again, unless the user asks
  for an item by title;
* the reply text names only items in ``Reply.mentions`` (see :mod:`genrec.agents.reply`).

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.models import EASE
    >>> world = planted_clusters(n_users=20, n_items=12, n_clusters=2)
    >>> agent = Agent(world.data, EASE().fit(world.data))
    >>> agent.start("demo", history=[0, 2])
    >>> reply = agent.respond("demo", "something in group1 please")
    >>> all(world.data.catalog.genres(i) == ("group1",) for i in reply.items)
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from genrec.agents.clarify import best_question, question_text, should_ask
from genrec.agents.planner import LMPlanner, rules_info
from genrec.agents.react import ReactPlanner
from genrec.agents.reply import Reply, compose
from genrec.agents.schema import ToolCall
from genrec.agents.session import Session, Turn
from genrec.agents.store import MemorySessionStore, check_session_id
from genrec.agents.tools import Toolbox, TurnWork
from genrec.agents.understanding import RuleUnderstanding
from genrec.errors import ConfigError

MAX_UTTERANCE = 2000
CONTROLS = {"plan-first": LMPlanner, "react": ReactPlanner}  # how an LM drives the tools


class Agent:
    """A tool-augmented recommender over one dataset.

    Args:
        data: the dataset (catalog, training interactions for popularity).
        ranker: a fitted genrec model (personalised ranking and similar items).
        lm: None for rule-based understanding, or a language model that writes JSON plans.
        store: a session store (default: in memory); :class:`SqliteSessionStore` persists.
        text_model, explainer, qa_encoder: see :class:`~genrec.agents.tools.Toolbox`.
        k: how many items a list shows.
        clarify: ask a clarifying question when candidates are many (more than
            ``ask_above``) and constraints few.
        constrained: whether ``lm`` writes plans under the plan schema (constrained decoding
            or a server's JSON mode); None: whenever ``lm`` can.
        fast_path: with ``lm``, let the rules plan the turns they parse and ask ``lm`` about
            the rest (see :class:`~genrec.agents.planner.LMPlanner`); False: ``lm`` plans
            every turn.
        control: with ``lm``, ``"plan-first"`` (the whole plan in one answer) or ``"react"``
            (one step at a time, each seeing the last one's observation:
            :class:`~genrec.agents.react.ReactPlanner`).
        injection_guard: strip instruction-like spans from item text in the planner's prompt
            (:class:`~genrec.agents.planner.LMPlanner`) and keep planner-written words out of
            the reply (a failed call's note quotes only the user's words:
            :func:`~genrec.agents.tools.user_note`); False only to measure what it prevents.
    """

    def __init__(
        self,
        data,
        ranker,
        *,
        lm=None,
        store=None,
        text_model=None,
        explainer=None,
        k: int = 10,
        clarify: bool = True,
        ask_above: int = 50,
        constrained: bool | None = None,
        fast_path: bool = True,
        control: str = "plan-first",
        qa_encoder=None,
        injection_guard: bool = True,
    ):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 50:
            raise ConfigError(f"k must be an integer in 1..50, got {k!r}")
        if control not in CONTROLS:
            raise ConfigError(f"control must be one of {list(CONTROLS)}, got {control!r}")
        self.tools = Toolbox(
            data, ranker, text_model=text_model, explainer=explainer, qa_encoder=qa_encoder
        )
        self.rules = RuleUnderstanding(self.tools.table, self.tools.titles)
        self.planner = (
            self.rules
            if lm is None
            else CONTROLS[control](
                lm,
                self.rules,
                constrained=constrained,
                fast_path=fast_path,
                injection_guard=injection_guard,
            )
        )
        self.injection_guard = bool(injection_guard)
        self.store = store if store is not None else MemorySessionStore()
        self.data, self.k, self.clarify, self.ask_above = data, k, clarify, ask_above
        # one lock per session id in use, with the number of turns holding or awaiting it; the
        # entry goes when the last of them ends, so the table does not grow with every session
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._locks_guard = threading.Lock()  # two threads must not make two locks for one id

    def start(
        self, session_id: str, *, history: Sequence[int] = (), user: str | None = None
    ) -> None:
        """Open (or reset) a session for a user with ``history`` (item indices) or the
        history of the dataset's ``user`` (an external id)."""
        if user is not None:
            row = self.data.user_items[int(self.data.users.index([user])[0])]
            history = row.indices.tolist()
        items = [int(i) for i in history]
        if any(not 0 <= i < self.data.n_items for i in items):
            raise ConfigError(f"history items must be indices in 0..{self.data.n_items - 1}")
        self.store.put(Session(check_session_id(session_id), history=items))

    def respond(self, session_id: str, text: str, *, on_plan_text=None) -> Reply:
        """The reply to ``text`` in session ``session_id`` (created empty if new).
        ``on_plan_text(piece)`` receives the LM's plan as it is written (streamed when the
        backend can), so an interface can show a slow local model at work."""
        check_session_id(session_id)
        if not isinstance(text, str):
            raise ConfigError(f"an utterance is a string, got {type(text).__name__}")
        text = text[:MAX_UTTERANCE]
        with self._session_lock(session_id):
            session = self.store.get(session_id) or Session(session_id)
            reply = self._turn(session, text, on_plan_text)
            session.turns += [
                Turn("user", text),
                Turn("agent", reply.text, reply.items, reply.trace),
            ]
            self.store.put(session)
        return reply

    @contextmanager
    def _session_lock(self, session_id: str) -> Iterator[None]:
        """Hold the session's lock: turns of one session run one at a time (each reads the
        session, then writes it back), turns of different sessions run side by side."""
        with self._locks_guard:
            lock, holders = self._locks.get(session_id, (None, 0))
            lock = lock or threading.Lock()
            self._locks[session_id] = (lock, holders + 1)
        try:
            with lock:
                yield
        finally:
            with self._locks_guard:
                lock, holders = self._locks[session_id]
                if holders == 1:
                    del self._locks[session_id]
                else:
                    self._locks[session_id] = (lock, holders - 1)

    def _turn(self, session: Session, text: str, on_plan_text=None) -> Reply:
        work = TurnWork()
        said = text if self.injection_guard else None  # the words an error note may quote
        if isinstance(self.planner, ReactPlanner):  # it runs each step before the next
            trace, info = self.planner.run(
                text,
                session,
                lambda c: self.tools.run(c, session, work, said=said),
                on_text=on_plan_text,
            )
            calls = [ToolCall(step["tool"], step["args"]) for step in trace]
        else:
            calls, info = self._plan(text, session, on_plan_text)
            trace = [self.tools.run(call, session, work, said=said) for call in calls]
        ranking, items = [], list(work.pinned)
        if work.wants_list():
            ranking = self.tools.recommend(session, work, work.k or self.k)
            items = items + [i for i in ranking if i not in items][: (work.k or self.k)]
        question = self._question(session, work, calls)
        session.show(items)
        text, mentions = compose(
            self.data.catalog,
            items=items,
            answers=work.answers,
            notes=work.notes,
            question=question,
            pinned=bool(work.pinned),
        )
        return Reply(
            text,
            items,
            self.data.items.ids[items].tolist() if items else [],
            ranking or items,
            trace,
            mentions,
            question,
            info,
        )

    def _plan(self, text: str, session: Session, on_text=None) -> tuple[list[ToolCall], dict]:
        if isinstance(self.planner, LMPlanner):
            return self.planner.plan(text, session, on_text=on_text)
        return self.planner.plan(text, session), rules_info()

    def _question(self, session: Session, work: TurnWork, calls: list[ToolCall]) -> str | None:
        candidates = session.candidates if session.candidates is not None else []
        asked = work.clarify or (
            self.clarify
            and should_ask(session, len(candidates), many=self.ask_above)
            and all(c.tool == "recommend" for c in calls)
        )
        if not asked:
            return None
        chosen = best_question(self.tools.table, session, candidates)
        if chosen is None:
            return None
        session.asked.append(chosen[0])
        return question_text(*chosen)
