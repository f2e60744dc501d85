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

import base64
import binascii
import re
from collections.abc import Iterable
from email import policy
from email.errors import HeaderParseError
from functools import lru_cache

_LINE_BREAK = re.compile(r"\r?\n|\r")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What mail labelled with the first charset is often really written in (Windows' supersets, or
# Shift_JIS sent as ISO-2022-JP).
_SUPERSETS = {"iso-2022-jp": "cp932", "shift_jis": "cp932", "gb2312": "gb18030", "gbk": "gb18030",
              "big5": "big5hkscs", "euc-kr": "cp949", "ks_c_5601-1987": "cp949"}
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([qQbB])\?([^?\s]*)\?=")


def decode_header_text(raw: object, charset: str | None = None) -> str:
    """One header value (as the compat32 parser keeps it, folds and 8-bit bytes included) as text;
    `charset` is the message's own, tried for raw 8-bit bytes that are not UTF-8."""
    text = _LINE_BREAK.sub("", str(raw))
    if _SURROGATE.search(text):
        text = _repair_8bit(text, charset)
    if "=?" not in text:
        return text
    text = _ENCODED_WORD.sub(_relabelled, text)
    try:
        decoded = str(policy.default.header_factory("subject", text))
    except (HeaderParseError, LookupError, UnicodeError, ValueError, IndexError, TypeError):
        return text
    return _SURROGATE.sub("\ufffd", _ENCODED_WORD.sub(lambda m: _mended(m, text), decoded))


def text_of_8bit(raw: object, charset: str | None = None) -> str:
    """A header value's raw 8-bit bytes as text, encoded words left as written: for addresses,
    which RFC 6532 lets be UTF-8 but never an encoded word."""
    text = str(raw)
    return _repair_8bit(text, charset) if _SURROGATE.search(text) else text


def likely_charset(declared: Iterable[str | None]) -> str | None:
    """Of the charsets a message declares for its parts, the one its raw 8-bit headers are most
    likely in: a multi-byte one (GB2312, Shift_JIS) before one that accepts any byte (Latin-1)."""
    usable = [c for c in dict.fromkeys(declared) if c and "utf" not in c.lower()]
    return next((c for c in usable if _refuses_some_bytes(c)), usable[0] if usable else None)


@lru_cache(maxsize=64)
def _refuses_some_bytes(charset: str) -> bool:
    try:
        bytes(range(0x80, 0x100)).decode(charset)
    except UnicodeDecodeError:
        return True
    except LookupError:
        return False
    return False


def _mended(word: re.Match[str], raw: str) -> str:
    """An encoded word the stdlib left as it was because its bytes are not valid in its charset
    (ISO-2022-JP with vendor characters, say): decoded with replacement characters instead.
    Only words written as such in the header: one that decoding produced is text, not a word."""
    charset, scheme, payload = word.groups()
    if word.group(0) not in raw:
        return word.group(0)
    try:
        data = _payload(scheme, payload)
        data.decode(charset)
    except UnicodeDecodeError:
        return data.decode(charset, "replace")
    except (LookupError, ValueError, binascii.Error, UnicodeEncodeError):
        pass
    return word.group(0)


def _relabelled(word: re.Match[str]) -> str:
    """A word whose bytes its charset refuses but the usual mislabel reads (Shift_JIS sent as
    ISO-2022-JP, GB18030 as GB2312), as the same text in a UTF-8 word."""
    charset, scheme, payload = word.groups()
    superset = _SUPERSETS.get(charset.lower())
    if superset is None:
        return word.group(0)
    try:
        data = _payload(scheme, payload)
        data.decode(charset)
    except UnicodeDecodeError:
        # ISO-2022-JP is 7-bit: only 8-bit bytes say it is really Shift_JIS.
        if charset.lower().startswith("iso-2022") and max(data, default=0) < 0x80:
            return word.group(0)
        try:
            text = data.decode(superset)
        except UnicodeDecodeError:
            return word.group(0)
        return f"=?utf-8?b?{base64.b64encode(text.encode()).decode('ascii')}?="
    except (LookupError, ValueError, binascii.Error, UnicodeEncodeError):
        pass
    return word.group(0)


def _payload(scheme: str, payload: str) -> bytes:
    if scheme in "qQ":
        return binascii.a2b_qp(payload.encode("ascii"), header=True)
    return base64.b64decode(payload + "=" * (-len(payload) % 4))


def _repair_8bit(text: str, charset: str | None) -> str:
    """Bytes the parser kept as surrogate escapes, in the first charset they are valid in."""
    data = text.encode("utf-8", "surrogateescape")
    for candidate in ("utf-8", charset, _SUPERSETS.get((charset or "").lower())):
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
