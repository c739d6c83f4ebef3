"""A language model's plan reaches the caller piece by piece while the model still writes it."""

import json

from genrec.agents import Agent
from genrec.text.lm import FakeLanguageModel, stream_text

PLAN = json.dumps(
    {
        "steps": [
            {
                "tool": "filter",
                "args": {"add": [{"column": "genre", "op": "has", "value": "Horror"}]},
            }
        ]
    }
)


class ChunkedLM:
    """Writes ``PLAN`` in 8-character chunks, logging each one as it yields it."""

    name, constrained_json = "chunked", False

    def __init__(self, events: list):
        self.events = events

    def generate(self, prompts, **options):
        return [PLAN for _ in prompts]

    def stream(self, prompt, **options):
        for n, start in enumerate(range(0, len(PLAN), 8)):
            self.events.append(("lm wrote", n))
            yield PLAN[start : start + 8]
        self.events.append(("lm done", None))

    def count_tokens(self, text):
        return len(text.split())


def test_plan_pieces_arrive_before_the_model_is_done(world, ranker):
    events = []
    agent = Agent(world.split.train, ranker, lm=ChunkedLM(events), fast_path=False)
    pieces = []

    def shown(piece):
        pieces.append(piece)
        events.append(("caller got", len(pieces) - 1))

    reply = agent.respond("s", "anything spooky?", on_plan_text=shown)
    assert "".join(pieces) == PLAN and len(pieces) > 3
    # the caller had chunk 0 before the model wrote chunk 1, and long before it was done
    assert events.index(("caller got", 0)) < events.index(("lm wrote", 1))
    assert events.index(("caller got", 0)) < events.index(("lm done", None))
    assert reply.plan["valid"] and [s["tool"] for s in reply.trace] == ["filter"]
    assert all(world.data.catalog.genres(i) == ("Horror",) for i in reply.items)
    # without a listener the model is asked for the whole answer at once
    assert Agent(world.split.train, ranker, lm=ChunkedLM(events)).respond("t", "hm?").plan


def test_constrained_answers_stream_too():
    lm = FakeLanguageModel(constrained_json=True, generate_fn=lambda prompt: PLAN)
    lm.piece_chars = 10
    schema = {"type": "object"}
    pieces = list(stream_text(lm, "plan:", json_schema=schema))
    assert len(pieces) > 1 and "".join(pieces) == lm.generate(["plan:"], json_schema=schema)[0]
