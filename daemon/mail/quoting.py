"""Quoted-reply and signature stripping for plain-text mail bodies.

Tickets show what the author actually wrote; the quoted history their mail client appended and their
signature are noise there. The full original text is always stored separately, so this module only
decides what is *visible*. It is pure text-in, text-out.

The rules are our own, measured against the test corpus (see tests/test_quoting.py): the
candidates (mail-parser-reply, quotequail, email-reply-parser, talon) got 37-62% of the corpus right,
and only quotequail handled the Spanish quote headers, the language our agents and most customers use.

How a body is read:
- *History* starts at an attribution line ("On … wrote:", "El … escribió:", "Le … a écrit :",
  "Am … schrieb …:", Gmail's address-only forms, possibly wrapped over several lines), at an
  "Original Message"/"Forwarded message" separator, or at an Outlook header block
  ("From:/De:/Von: …" followed by "Sent:/Enviado:/Gesendet: …"-style lines).
- A *signature* starts at "-- ", at an underscore rule followed by a short block, or at a
  "Sent from my …"/"Enviado desde mi …" device line, and runs to the next history or the end.
- History cuts the rest of the message, except for inline and bottom posting: when '>' quotes after
  an attribution are followed by new text, the author is answering point by point, so the quoted
  lines they answer stay for context (or go, if nothing came before them) and only the attribution
  line goes. A bare '>' quote followed by new text stays for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from itertools import islice

_WRAP_LINES = 4
"""How many lines a client may wrap one attribution line over."""

_SIGNATURE_BLOCK_LINES = 8
"""An underscore rule only starts a signature when at most this many lines follow it."""

_WRAP_WIDTH = 60
"""A quoted line at least this long may have been wrapped by the client."""

_HEADER_BLOCK_LINES = 8
"""How far an Outlook header block may run (its keys plus wrapped values)."""


class _Kind(Enum):
    BLANK = "blank"
    TEXT = "text"
    QUOTE = "quote"  # '>' quoting, the universal convention
    CITE = "cite"  # supercite-style "Name>" quoting


@dataclass(frozen=True)
class _Marker:
    """Lines [start, end) that open quoted history: an attribution, separator or header block."""

    start: int
    end: int


# --- line classes -------------------------------------------------------------------------------

_QUOTE_RE = re.compile(r"^\s*>")
_CITE_RE = re.compile(r"^\s*[A-Z][A-Za-z]{0,9}>(?:\s|>|$)")
_RULE_RE = re.compile("^[\\s\\-_=*~+\u2014\u2013\u1427]*$")
"""Lines with nothing but rule characters: dashes, underscores, stars…, and the dot (U+1427) some
mail-tracking add-ons append."""


def _classify(lines: list[str]) -> list[_Kind]:
    """Each line's kind; a line continuing an address wrapped after '<' is text even if it
    starts with '>' (Gmail wraps "Name <addr\\n>:" that way)."""
    kinds: list[_Kind] = []
    open_angles = 0
    for line in lines:
        if not line.strip():
            kinds.append(_Kind.BLANK)
            open_angles = 0
            continue
        continues_address = open_angles > 0 and (not kinds or kinds[-1] is _Kind.TEXT)
        if continues_address or not (_QUOTE_RE.match(line) or _CITE_RE.match(line)):
            kind = _Kind.TEXT
        else:
            kind = _Kind.QUOTE if _QUOTE_RE.match(line) else _Kind.CITE
        if kind is _Kind.TEXT and _wraps_quote(lines, kinds, line):
            kind = _Kind.QUOTE
        kinds.append(kind)
        open_angles = max(0, open_angles + line.count("<") - line.count(">")) if kind is _Kind.TEXT else 0
    return kinds


def _wraps_quote(lines: list[str], kinds: list[_Kind], line: str) -> bool:
    """A client that re-wrapped a long quoted line without re-adding '>': the tail comes right
    after a long quoted line and carries on mid-sentence, in lower case."""
    previous = len(kinds) - 1
    return (
        previous >= 0
        and kinds[previous] is _Kind.QUOTE
        and len(lines[previous].rstrip()) >= _WRAP_WIDTH
        and line.lstrip()[:1].islower()
    )


def _has_words(line: str) -> bool:
    return any(ch.isalnum() for ch in line) and not _RULE_RE.match(line)


# --- attribution lines --------------------------------------------------------------------------

_VERBS = (
    r"wrote|writes|has written|escribió|escribio|escribe|ha escrito|a écrit|a ecrit|écrit|"
    r"schrieb|hat geschrieben|geschrieben|ha scritto|scrisse|schreef|geschreven|escreveu|skrev|"
    r"napisał\(a\)|napisał|napisała|написал\(а\)|написал|написала|пише|написав|写道|寫道|kirjoitti"  # noqa: RUF001
)
_VERB_RE = re.compile(rf"(?<!\w)(?:{_VERBS})(?!\w)", re.IGNORECASE)
_OPENER_RE = re.compile(r"^(?:On|El|En|Le|Am|Il|Op|Em|Den|Dnia|W dniu|At|På)\s", re.IGNORECASE)
_NAME_THEN_ADDRESS_RE = re.compile(
    '^["\u201c]?[^\\W\\d][\\w.\'\u2019 -]{0,60}["\u201d]?\\s+[(<\\[]\\s*(?:mailto:)?\\S+@'
)
_COLONS = (":", "\uff1a")  # CJK clients end attributions with a full-width colon
_ADDRESS_COLON_RE = re.compile("<[^<>]*@[^<>]*>\\)?\\s*[:\uff1a]$")
"""Gmail's verb-less forms: "2016-10-24 15:36 GMT+02:00 Name <a@b>:", and the Russian
"<weekday>, 30 <month>. 2025 <year-mark> 15:19, Name <a@b>:"."""
_GMAIL_DATE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{1,2}:\d{2} GMT[+-]\d{1,2}:\d{2}\b|^\d{4}/\d{1,2}/\d{1,2} .*<[^<>]+@[^<>]+>:?$"
)
"""Older Gmail headers that may lack the colon: "2016-03-03 17:21 GMT+01:00 Name", "2013/7/20 Name <a@b>"."""
_DATED_RE = re.compile(r"\d{1,2}[:.h]\d{2}|(?:19|20)\d\d|@")
"""Clients always put a time, a year or an address in an attribution; a customer's own
"el día 3 el repartidor escribió:" has none of them."""
_DECORATION = "-=_* \t"


def _undecorate(line: str) -> tuple[str, bool]:
    """The line without the dashes some clients put around headers, and whether it had any."""
    core = line.strip().strip(_DECORATION)
    return core, core != line.strip() and "--" in line


def _starts_attribution(line: str) -> bool:
    core, _ = _undecorate(line)
    return bool(_OPENER_RE.match(core) or core[:1].isdigit() or _NAME_THEN_ADDRESS_RE.match(core))


def _is_attribution(window: str, decorated: bool) -> bool:
    """Whether joined lines read as a quote attribution in one of the supported styles."""
    if len(window) > 400 or not _DATED_RE.search(window):
        return False
    if _GMAIL_DATE_RE.match(window):
        return True
    ends_with_colon = window.endswith(_COLONS)
    if _VERB_RE.search(window) and (ends_with_colon or (decorated and _VERB_RE.search(window[-12:]))):
        return True
    outside_addresses = re.sub(r"<[^<>]*>", "", window)
    return bool(_ADDRESS_COLON_RE.search(window)) and any(ch.isdigit() for ch in outside_addresses)


def _attribution_at(lines: list[str], kinds: list[_Kind], end: int) -> _Marker | None:
    """The attribution that ends on line `end`, walking up over wrapped lines to its start."""
    start = end
    while (
        not _starts_attribution(lines[start])
        and start > end - (_WRAP_LINES - 1)
        and start > 0
        and kinds[start - 1] is _Kind.TEXT
    ):
        start -= 1
    if not _starts_attribution(lines[start]):
        start = end
    for first in dict.fromkeys((start, end)):
        core, decorated = _undecorate(" ".join(line.strip() for line in lines[first : end + 1]))
        if _is_attribution(" ".join(core.split()), decorated):
            return _Marker(first, end + 1)
    return None


def _attribution_by_opener(lines: list[str], kinds: list[_Kind], first: int) -> _Marker | None:
    """An "On <date> Name" line whose "wrote:" comes a few lines later, past blank lines and
    address fragments (some clients break the address out onto lines of its own)."""
    core, _ = _undecorate(lines[first])
    if not (_OPENER_RE.match(core) and any(ch.isdigit() for ch in core)):
        return None
    for index in range(first + 1, min(first + 6, len(lines))):
        line = lines[index].strip()
        tail = line.lstrip("> ")
        if _VERB_RE.search(tail) and tail.endswith(_COLONS) and len(tail) < 40:
            return _Marker(first, index + 1)
        if kinds[index] is not _Kind.BLANK and not (
            any(ch in line for ch in "@<>") or len(line.split()) <= 3
        ):
            return None
    return None


# --- separators and header blocks ---------------------------------------------------------------

_SEPARATOR_PHRASES = (
    r"original (?:e-?mail )?message|mensaje original|message d'origine|message original|"
    r"ursprüngliche nachricht|original nachricht|originalnachricht|messaggio originale|"
    r"oorspronkelijk bericht|"
    r"mensagem original|ursprungligt meddelande|opprinnelig melding|"
    r"forwarded message|mensaje reenviado|message transféré|weitergeleitete nachricht|"
    r"messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|"
    r"исходное сообщение|переадресованное сообщение|пересылаемое сообщение"
)
_SEPARATOR_RE = re.compile(rf"^(?:{_SEPARATOR_PHRASES}):?$", re.IGNORECASE)
_FORWARD_INTRO_RE = re.compile(
    r"^(?:begin forwarded message|inicio del mensaje reenviado|comienzo del mensaje reenviado|"
    r"début du message (?:réexpédié|transféré)|anfang der weitergeleiteten nachricht|"
    r"inizio messaggio inoltrato)\s*:$",
    re.IGNORECASE,
)

_FROM_KEYS = frozenset({"from", "de", "von", "da", "van", "från", "fra", "od", "от", "expéditeur"})
_OTHER_KEYS = frozenset(
    {
        "sent", "date", "to", "subject", "cc", "bcc", "reply-to",
        "enviado", "enviado el", "fecha", "para", "asunto", "cco", "responder a",
        "envoyé", "envoyé le", "envoye", "à", "a", "objet", "répondre à",
        "gesendet", "datum", "an", "betreff", "kopie", "antwort an",
        "inviato", "data", "oggetto", "risposta", "rispondi a",
        "skickat", "till", "ämne", "verzonden", "aan", "onderwerp",
        "enviada", "enviada em", "assunto", "sendt", "til", "emne",
        "wysłano", "do", "temat", "отправлено", "кому", "тема", "дата",
    }
)  # fmt: skip
_MAIL_KEYS = frozenset(
    {
        "sent", "subject", "enviado", "enviado el", "asunto", "envoyé", "envoyé le", "envoye", "objet",
        "gesendet", "betreff", "inviato", "oggetto", "skickat", "ämne", "verzonden", "onderwerp",
        "enviada", "enviada em", "assunto", "sendt", "emne", "wysłano", "temat", "отправлено", "тема",
    }
)  # fmt: skip
"""Keys only a mail header has; "Date:" or "To:" alone also head shipping notes and letters."""
_HEADER_LINE_RE = re.compile(r"^\s*\*{0,2}([^\W\d_][\w\- ]{0,18}?)(?:\s*:\*{0,2}(?!//)|\s{2,}\S)")
"""A "Key: value" line, or Lotus Notes' colon-less "Key    value" table row."""


def _header_key(line: str) -> str | None:
    found = _HEADER_LINE_RE.match(line)
    return found.group(1).strip().lower() if found else None


def _header_block_at(lines: list[str], kinds: list[_Kind], first: int) -> _Marker | None:
    """An Outlook-style block: three or more header lines before a blank line, among them a From
    line and a mail-only key (Sent, Subject…), so a customer's "De: Madrid / Para: Juan /
    Fecha: …" shipping note is not taken for one."""
    if _header_key(lines[first]) not in _FROM_KEYS | _OTHER_KEYS:
        return None
    keys: list[str] = []
    index = first
    while index < len(lines) and index < first + _HEADER_BLOCK_LINES and kinds[index] is _Kind.TEXT:
        key = _header_key(lines[index])
        if key in _FROM_KEYS | _OTHER_KEYS:
            keys.append(key)
        index += 1
    if len(keys) >= 3 and _FROM_KEYS.intersection(keys) and _MAIL_KEYS.intersection(keys):
        return _Marker(first, index)
    return None


def _separator_at(lines: list[str], kinds: list[_Kind], first: int) -> _Marker | None:
    """An "-----Original Message-----" style line, with the header block that follows it."""
    core, decorated = _undecorate(lines[first])
    line = lines[first].strip()
    framed = decorated and (line.count("-") >= 4 or line.count("=") >= 4 or line.count("_") >= 4)
    if not ((framed and _SEPARATOR_RE.match(core)) or _FORWARD_INTRO_RE.match(core)):
        return None
    end = first + 1
    while end < len(lines) and kinds[end] is _Kind.TEXT and _header_key(lines[end]) is not None:
        end += 1
        while end < len(lines) and kinds[end] is _Kind.TEXT and _header_key(lines[end]) is None:
            end += 1  # a wrapped header value
    return _Marker(first, end)


# --- signatures ---------------------------------------------------------------------------------

_URL_RE = re.compile(r"<?https?://\S*>?")
_MARKDOWN_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_WORDS = r"\S+(?:\s+\S+){0,5}"
_EXCUSES = r"please|pls|excuse|sorry|apologies|disculp|perdon|excusez|désolé|entschuldig"
_EXCUSE = rf"(?:\s*[.,;:!-]\s*(?:{_EXCUSES})\b.*)?"
_DEVICE_LINE_RE = re.compile(
    "^(?:"
    + "|".join(
        (
            rf"sent (?:from|with|via|using) {_WORDS}{_EXCUSE}",
            r"(?:from|sent from) my (?:iphone|ipad|android|mobile|phone|samsung|galaxy|blackberry)\b.*",
            rf"enviado (?:desde|de|con|a través de|mediante) {_WORDS}{_EXCUSE}",
            r"obtener outlook para (?:ios|android)",
            rf"envoy[ée] (?:de|depuis|à partir de|a partir de|avec|via) {_WORDS}{_EXCUSE}",
            r"(?:obtenir|télécharger) outlook pour (?:ios|android)",
            r"provenance ?: courrier pour windows.*",
            r"von meine[mr] .{1,40} gesendet",
            rf"gesendet (?:von|mit|über|via) {_WORDS}",
            r"diese nachricht wurde von meinem .{1,60} gesendet",
            r"outlook für (?:ios|android) (?:beziehen|herunterladen)",
            r"get outlook for (?:ios|android).*",
            rf"(?:inviato da|enviado do|verzonden (?:met|vanaf|van)|sendt fra) {_WORDS}",
            r"從我的 iphone 傳送|从我的iphone发送",
        )
    )
    + ")$",
    re.IGNORECASE,
)


def _is_device_line(line: str) -> bool:
    """ "Sent from my iPhone", "Enviado desde mi Samsung", "Von meinem iPhone gesendet"…, but not a
    sentence that merely starts that way ("Sent from my desk, is much easier…")."""
    core = _URL_RE.sub("", _MARKDOWN_LINK_RE.sub(r"\1", line)).strip().strip("()<>").strip()
    return len(core) < 90 and bool(_DEVICE_LINE_RE.match(core.rstrip(".!")))


def _signature_at(lines: list[str], kinds: list[_Kind], first: int, next_history: int) -> bool:
    """Whether a signature starts on line `first` (a text line); `next_history` bounds its block."""
    line = lines[first].rstrip()
    if line in ("--", "-- "):
        return True
    if re.fullmatch(r"\s*_{5,}\s*", line):
        following = (kind for kind in kinds[first + 1 : next_history] if kind is not _Kind.BLANK)
        return next(islice(following, _SIGNATURE_BLOCK_LINES, None), None) is None
    return _is_device_line(line)


# --- the reading --------------------------------------------------------------------------------


def _history_markers(lines: list[str], kinds: list[_Kind]) -> dict[int, _Marker]:
    markers: dict[int, _Marker] = {}
    covered = -1
    for index, kind in enumerate(kinds):
        if kind is not _Kind.TEXT or index < covered:
            continue
        found = (
            _separator_at(lines, kinds, index)
            or _header_block_at(lines, kinds, index)
            or _attribution_by_opener(lines, kinds, index)
        )
        ending = lines[index].rstrip()
        if found is None and (ending.endswith((*_COLONS, "-")) or _GMAIL_DATE_RE.match(ending.strip())):
            found = _attribution_at(lines, kinds, index)
        if found is None:
            continue
        for start in [start for start in markers if start >= found.start]:
            del markers[start]  # a wrapped attribution found at its last line replaces its pieces
        markers[found.start] = found
        covered = found.end
    return markers


def _quote_run_end(kinds: list[_Kind], first: int, quote_kinds: tuple[_Kind, ...]) -> int:
    """The index after the last quoted line of the run starting at `first` (blank lines inside)."""
    end = first
    index = first
    while index < len(kinds) and kinds[index] in (*quote_kinds, _Kind.BLANK):
        if kinds[index] is not _Kind.BLANK:
            end = index + 1
        index += 1
    return end


def _keep_flags(lines: list[str]) -> list[bool]:
    """Which lines are the author's own, in the reading the module docstring describes."""
    kinds = _classify(lines)
    history = _history_markers(lines, kinds)
    keep = [True] * len(lines)
    next_history = [len(lines)] * (len(lines) + 1)  # first history start at or after each index
    for index in range(len(lines) - 1, -1, -1):
        next_history[index] = index if index in history else next_history[index + 1]
    signature = [
        kind is _Kind.TEXT and _signature_at(lines, kinds, index, next_history[index + 1])
        for index, kind in enumerate(kinds)
    ]

    def new_text_follows(after: int) -> bool:
        """Whether the author writes again after `after`, before any history or signature."""
        for index in range(after, len(lines)):
            if index in history or signature[index]:
                return False
            if kinds[index] is _Kind.TEXT and _has_words(lines[index]):
                return True
        return False

    def drop(start: int, end: int) -> None:
        keep[start:end] = [False] * (end - start)

    written = False  # has the author written anything visible yet
    index = 0
    while index < len(lines):
        marker = history.get(index)
        kind = kinds[index]
        if marker is not None:
            after = marker.end
            while after < len(lines) and kinds[after] is _Kind.BLANK:
                after += 1
            if after < len(lines) and kinds[after] is _Kind.QUOTE:
                quote_end = _quote_run_end(kinds, after, (_Kind.QUOTE,))
                if new_text_follows(quote_end):
                    drop(marker.start, marker.end if written else quote_end)
                    index = quote_end
                    continue
            elif not written:
                drop(marker.start, marker.end)  # a forward or bottom post starting with its header
                index = marker.end
                continue
            drop(index, len(lines))
            break
        if signature[index]:
            end = next_history[index + 1]
            drop(index, end)
            index = end
            continue
        if kind in (_Kind.QUOTE, _Kind.CITE):
            quote_end = _quote_run_end(kinds, index, (_Kind.QUOTE, _Kind.CITE))
            if not new_text_follows(quote_end):
                drop(index, len(lines))
                break
            index = quote_end
            continue
        written = written or (kind is _Kind.TEXT and _has_words(lines[index]))
        index += 1

    kept = [i for i, flag in enumerate(keep) if flag]
    for edge in (kept, kept[::-1]):
        for i in edge:
            if _has_words(lines[i]):
                break
            keep[i] = False  # blank and rule-only lines at either end of what is left
    return keep


def split_reply(text: str) -> tuple[str, str]:
    """(visible, removed): every line of `text` ends up in exactly one of the two, in order.

    `visible` is what `visible_text` returns; `removed` is the quoted history, attribution lines,
    signature and edge blank lines. Line endings come back as "\\n".
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    keep = _keep_flags(lines)
    visible = "\n".join(line for line, flag in zip(lines, keep, strict=True) if flag)
    if not visible.strip():
        return "\n".join(lines).strip(), ""
    removed = "\n".join(line for line, flag in zip(lines, keep, strict=True) if not flag)
    return visible, removed


def visible_text(text: str) -> str:
    """The part of a plain-text reply that the author wrote: quoted history and signature removed.

    Never returns empty when the input has non-quoted content; if stripping would leave nothing,
    return the input stripped.
    """
    return split_reply(text)[0]
