"""The promotion cap: a model that loves a flagged item cannot lift it above its candidate
position, alone or through a pipeline's score fusion."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data.synthetic import movie_clusters
from genrec.models import LLMRecommender, Pop
from genrec.pipelines.two_stage import TwoStage
from genrec.text import guard, prompts
from genrec.text.lm import FakeLanguageModel

MARK = "Zyzzyva"  # a title word the fake model adores


def adores_the_mark(prompt: str, continuation: str) -> tuple[float, int]:
    """Listwise: the letter of the candidate line holding MARK; else the earlier letter."""
    letter = continuation.strip()
    lines = [ln for ln in prompt.splitlines() if ln.startswith(f"{letter}. ")]
    if lines and MARK in lines[0]:
        return 0.0, 1
    return -1.0 - prompts.LETTERS.index(letter) / 10 if letter in prompts.LETTERS else -9.0, 1


class TestPromotionCap:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.floats(-50, 50), st.booleans()), min_size=1, max_size=26))
    def test_no_flagged_candidate_ends_above_its_position(self, rows):
        scores = np.array([s for s, _ in rows])
        flagged = np.array([f for _, f in rows])
        order = np.argsort(-guard.cap_promotion(scores, flagged), kind="stable")
        assert sorted(order.tolist()) == list(range(len(rows)))
        for place, item in enumerate(order):
            assert not flagged[item] or place >= item
        if not flagged.any():
            assert np.array_equal(guard.cap_promotion(scores, flagged), scores)

    def test_the_recommender_does_not_promote_a_flagged_title(self):
        world = movie_clusters(n_users=40, n_items=24)
        lm = FakeLanguageModel(score_fn=adores_the_mark)
        model = LLMRecommender(lm="fake", language_model=lm, mode="listwise", n_candidates=6)
        model.fit(world.split.train)
        row, cands = world.split.train.user_item_order[:1], np.array([[0, 1, 2, 3, 4, 5]])
        text = f"{MARK}\u200b Night"  # flagged for its zero-width space; the word survives
        for on, first in ((False, 3), (True, 0)):
            victim = model.with_titles({int(cands[0, 3]): text}, injection_guard=on)
            assert victim.flagged_[cands[0, 3]] == on
            scores = victim.score_candidates(row, cands)[0]
            assert int(np.argmax(scores)) == first
        assert MARK in victim.prompt_titles_[cands[0, 3]]  # stripping alone did not help

    def test_fusion_in_a_pipeline_cannot_lift_it_either(self):
        world = movie_clusters(n_users=40, n_items=24)
        train = world.split.train
        lm = FakeLanguageModel(score_fn=adores_the_mark)
        reranker = LLMRecommender(lm="fake", language_model=lm, mode="listwise")
        pipe = TwoStage(n_candidates=6, fusion_weight=0.9, retriever=Pop(), reranker=reranker)
        pipe.fit(train)
        histories = train.user_item_order[:5]
        lists = pipe.shortlists(histories)
        items = {int(s.candidates[3]): f"{MARK}\u200b Night" for s in lists}  # 4th of each
        for on in (False, True):
            pipe.reranker = reranker.with_titles(items, injection_guard=on)
            scores = pipe.fused_scores(pipe.shortlists(histories))
            ranks = [
                int((scores[row] > scores[row, s.candidates[3]]).sum())
                for row, s in enumerate(lists)
            ]
            if on:
                assert min(ranks) >= 3
            else:
                assert min(ranks) < 3  # without the guard fusion lets the reranker lift it
