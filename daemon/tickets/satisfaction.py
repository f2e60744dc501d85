"""Is a reply to the closing email just a satisfaction score (the email invites a 1 to 5 reply)?"""

from __future__ import annotations

import re

_SCORE = re.compile(r"^\s*([1-5])\s*(?:/\s*5|de\s+5|sur\s+5|out\s+of\s+5)?\s*[.!]*\s*$", re.IGNORECASE)
_STARS = re.compile(r"^\s*([★⭐*]{1,5})\s*$")


def satisfaction_score(text: str) -> int | None:
    """1 to 5 when the visible text is nothing but a score ("4", "5/5", "★★★★"); else None."""
    digits = _SCORE.match(text)
    if digits:
        return int(digits.group(1))
    stars = _STARS.match(text)
    return len(stars.group(1)) if stars else None
