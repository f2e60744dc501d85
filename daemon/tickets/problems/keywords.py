"""Does a new ticket's text mention an open problem's keywords? Pure; it only ever flags.

Matching ignores case and accents (`huelga` finds `HUELGA`, `retraso` finds `retrasó`) and wants
whole words or phrases, so `seur` does not fire on `seuro`. Nothing is linked on a match: the
agents are told and decide.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def fold(text: str) -> str:
    """Lower case without accents."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def matching_keywords(keywords: Iterable[str], text: str) -> list[str]:
    """The keywords (as the agent wrote them) found in `text` as whole words or phrases."""
    folded = fold(text)
    found = []
    for keyword in keywords:
        wanted = " ".join(fold(keyword).split())
        if not wanted:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, wanted.split())) + r"(?!\w)"
        if re.search(pattern, folded):
            found.append(keyword)
    return found


def stored_keywords(value: str) -> list[str]:
    """The keywords column (comma-separated) as a list."""
    return [word for word in value.split(",") if word]
