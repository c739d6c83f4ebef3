"""Indirect prompt injection through an item's title: the credulous model obeys it without the
injection guard, and never ranks the item first with it."""

import pytest

from genrec.audit.injection import ATTACKS, inject
from genrec.text import guard


class TestIndirectInjection:
    @pytest.mark.parametrize("variant", range(len(ATTACKS["indirect"])))
    def test_the_guard_keeps_the_injected_item_from_being_promoted(self, injected_rank, variant):
        assert injected_rank("indirect", variant, guard=False) == 0  # fooled without the guard
        assert injected_rank("indirect", variant, guard=True) > 0

    @pytest.mark.parametrize("variant", range(len(ATTACKS["indirect"])))
    def test_the_screened_title_is_the_title_alone(self, variant):
        found = guard.screen(inject("indirect", variant, "Silent River (1972)", letter="D"))
        assert found.flagged
        assert found.text == "Silent River (1972)"
