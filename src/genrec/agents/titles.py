"""Fuzzy title lookup over the catalog (rapidfuzz), and resolving item references.

A reference is ``{"position": n}`` (1-based, into the latest list shown) or ``{"title": text}``
(the best fuzzy match in the catalog, if it is close enough). Either resolves to a catalog item
index or to a :class:`~genrec.errors.ConfigError` saying why not, so a tool never acts on an
item that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from genrec.errors import ConfigError
from genrec.text.prompts import natural_title

# Smallest rapidfuzz WRatio (0-100) at which a title counts as the one meant.
MATCH_CUTOFF = 86.0


class TitleIndex:
    """The catalog's titles, normalised once (natural article order, lower case, no
    punctuation), for fuzzy lookup."""

    def __init__(self, catalog):
        self.titles = [natural_title(catalog.title(i)) for i in range(len(catalog.vocab))]
        self._keys = [utils.default_process(t) for t in self.titles]

    def search(self, text: str, *, limit: int = 3, cutoff: float = MATCH_CUTOFF) -> list[int]:
        """Item indices whose title matches ``text`` at ``cutoff`` or better, best first."""
        query = utils.default_process(str(text)[:200])
        if not query:
            return []
        hits = process.extract(
            query, self._keys, scorer=fuzz.WRatio, limit=limit, score_cutoff=cutoff, processor=None
        )
        return [int(index) for _, _, index in hits]

    def mentioned(self, text: str) -> list[int]:
        """Items whose whole title appears in ``text`` as words (case-insensitive)."""
        low = " " + re.sub(r"[^\w']+", " ", text.lower()) + " "
        return [i for i, key in enumerate(self._keys) if key and f" {key} " in low]


def resolve(ref: dict, last_shown: Sequence[int], titles: TitleIndex) -> int:
    """The item index ``ref`` points at; ConfigError when it points at nothing."""
    if "position" in ref:
        pos = int(ref["position"])
        if not 1 <= pos <= len(last_shown):
            shown = f"1..{len(last_shown)}" if last_shown else "none: nothing is shown yet"
            raise ConfigError(
                f"there is no item number {pos} in the latest list (positions: {shown})"
            )
        return int(last_shown[pos - 1])
    hits = titles.search(ref["title"], limit=1)
    if not hits:
        raise ConfigError(f"no title in the catalog matches {ref['title']!r}")
    return hits[0]
