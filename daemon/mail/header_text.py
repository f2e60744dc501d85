"""Header text as its writer meant it: RFC 2047 encoded words, raw 8-bit bytes, folded lines.

Guarantees: white space between two adjacent encoded words is dropped and white space between an
encoded word and plain text is kept (RFC 2047 §6.2), so `=?utf-8?q?env=C3=ADa?= otra` reads
"envía otra" (mail-parser 4.8 joins the pieces without it: "envíaotra"). Raw 8-bit text is read
as UTF-8 (mostly), else in the charset the message's text is in (mail that writes raw GB2312 or
ISO-8859-1 headers writes its body so), else as Windows-1252. The result holds no surrogates; an encoded word
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


def decode_header_text(raw: object, charset: str | None = None) -> str:
    """One header value (as the compat32 parser keeps it, folds and 8-bit bytes included) as text;
    `charset` is the message's own, tried for raw 8-bit bytes that are not UTF-8."""
    text = _LINE_BREAK.sub("", str(raw))
    if _SURROGATE.search(text):
        text = _repair_8bit(text, charset)
    if "=?" not in text:
        return text
    try:
        decoded = str(policy.default.header_factory("subject", text))
    except (HeaderParseError, LookupError, UnicodeError, ValueError, IndexError, TypeError):
        return text
    return _SURROGATE.sub("\ufffd", decoded)


def _repair_8bit(text: str, charset: str | None) -> str:
    """Bytes the parser kept as surrogate escapes, in the first charset they are valid in."""
    data = text.encode("utf-8", "surrogateescape")
    for candidate in ("utf-8", charset):
        # A UTF-16 or UTF-7 label would "decode" any bytes into other text.
        if candidate and (candidate == "utf-8" or "utf" not in candidate.lower()):
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
    # Mostly UTF-8 with a stray byte is still UTF-8; mostly not is a legacy single-byte charset.
    utf8 = data.decode("utf-8", "replace")
    if utf8.count("\ufffd") * 4 < sum(b > 0x7F for b in data):
        return utf8
    return _SURROGATE.sub("\ufffd", data.decode("cp1252", "replace"))
