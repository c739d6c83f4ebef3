"""A planner that skips validation (a custom one, or a bug in one) still cannot run a tool or an
argument outside the schemas: the tools check every call again before running it."""

from genrec.agents import Agent
from genrec.agents.schema import ToolCall
from genrec.data.synthetic import movie_clusters
from genrec.models import EASE

WORLD = movie_clusters(n_users=40, n_items=24)
RANKER = EASE().fit(WORLD.split.train)
FORGED = [
    ToolCall("recommend", {"k": 500}),
    ToolCall("remember", {"like": [{"position": 99999}]}),
    ToolCall("recommend", {"k": 10, "session": "alice"}),
    ToolCall("sql", {"query": "DROP TABLE items"}),
    ToolCall("model_scores", {}),  # a private helper of the toolbox, not a tool
    ToolCall("filter", {"add": [{"column": "title; DROP TABLE items", "op": "=", "value": 1}]}),
]


class Forger:
    """Plans the forged call it was given, unchecked."""

    def __init__(self, call):
        self.call = call

    def plan(self, text, session):
        return [self.call]


class TestAgentUnvalidatedPlanner:
    def test_every_forged_call_is_refused_at_the_tool(self):
        for call in FORGED:
            agent = Agent(WORLD.split.train, RANKER, clarify=False)
            agent.start("s", history=[0, 4])
            agent.planner = Forger(call)
            reply = agent.respond("s", "anything")
            assert [("error" in step) for step in reply.trace] == [True], call
            session = agent.store.get("s")
            assert session.history == [0, 4] and session.liked == []
            assert len(reply.items) <= 10 and all(0 <= i < WORLD.data.n_items for i in reply.items)
            assert len(agent.tools.table.filter([])) == WORLD.data.n_items
