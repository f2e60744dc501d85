"""Header text as its writer meant it: RFC 2047 encoded words, raw 8-bit bytes, folded lines.

Guarantees: white space between two adjacent encoded words is dropped and white space between an
encoded word and plain text is kept (RFC 2047 §6.2), so `=?utf-8?q?env=C3=ADa?= otra` reads
"envía otra" (mail-parser 4.8 joins the pieces without it: "envíaotra"). Raw 8-bit text is read
as UTF-8, or as Windows-1252 when it is not UTF-8. The result holds no surrogates; an encoded word
in an unknown charset or with broken base64 is decoded as far as it can be, never raised on.
The stdlib's decoder is quadratic in the number of encoded words: callers bound the input
(parsing.bounded_fields) before it gets here.
"""

from __future__ import annotations

import re
from email import policy
from email.errors import HeaderParseError

_LINE_BREAK = re.compile(r"\r?\n|\r")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def decode_header_text(raw: object) -> str:
    """One header value (as the compat32 parser keeps it, folds and 8-bit bytes included) as text."""
    text = _LINE_BREAK.sub("", str(raw))
    if _SURROGATE.search(text):
        text = _repair_8bit(text)
    if "=?" not in text:
        return text
    try:
        decoded = str(policy.default.header_factory("subject", text))
    except (HeaderParseError, LookupError, UnicodeError, ValueError, IndexError, TypeError):
        return text
    return _SURROGATE.sub("\ufffd", decoded)


def _repair_8bit(text: str) -> str:
    """Bytes the parser kept as surrogate escapes: UTF-8 when they are, Windows-1252 otherwise."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _SURROGATE.sub("\ufffd", data.decode("cp1252", "replace"))
