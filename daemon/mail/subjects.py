"""Subject lines: the ticket tag `[#N]` and the comparison key that ignores reply/forward prefixes."""

from __future__ import annotations

import re

# Reply and forward prefixes of common clients in the shop's languages: Re, Fwd, Fw, TR (fr),
# RV (es), AW/WG (de), Réf, RES/ENC (pt), R/I (it); also "Re[2]:" and "Re(2):" counters.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|tr|rv|aw|wg|r[ée]f|res|enc|r|i|antw|sv|vs)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+",
    re.IGNORECASE,
)
_TAG = re.compile(r"\[#(\d{1,9})\]")
_MAX_KEY = 200


def ticket_tag(subject: str) -> int | None:
    """The ticket number in a `[#N]` tag, if the subject carries one."""
    match = _TAG.search(subject)
    return int(match.group(1)) if match else None


def subject_key(subject: str) -> str:
    """What two subjects must share to be one conversation: no prefixes, no tags, case and spaces folded."""
    previous = None
    text = subject
    while text != previous:
        previous = text
        text = _PREFIX.sub("", _TAG.sub("", text))
    return " ".join(text.casefold().split())[:_MAX_KEY]


def tagged(subject: str, number: int) -> str:
    """The subject with exactly one `[#N]` tag for this ticket, after any leading prefixes."""
    bare = " ".join(_TAG.sub("", subject).split())
    return f"[#{number}] {bare}".strip()
