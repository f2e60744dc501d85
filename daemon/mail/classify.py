"""Tell a customer's mail from automatic mail before anything answers it.

Auto-replies, bounces, list mail, abuse reports, read receipts and our own mail coming back must never
be acknowledged and must never reopen a ticket (RFC 3834, and the loops other helpdesks are known for).
Everything here is pure: it reads a parsed `email.message.Message` and returns a `Classification`.

Callers pass the message as mail-parser gives it (`.message`, a compat32 `Message`); messages parsed
with `email.policy.default` give the same results, because headers are read raw and decoded here.
Nothing in this module raises: malformed input at worst yields HUMAN with the error as the reason.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from enum import StrEnum

__all__ = ["Classification", "Kind", "classify"]

# Bounds that keep a hostile or huge message cheap to look at.
_MAX_HEADER_CHARS = 4000
_MAX_PART_CHARS = 200_000
_MAX_PARTS = 200
_MAX_DEPTH = 20
_DIAGNOSTIC_CHARS = 300

_LOOP_HEADER = "x-incidencias-ticket"


class Kind(StrEnum):
    """What sort of sender produced the message."""

    HUMAN = "human"
    AUTOREPLY = "autoreply"
    BOUNCE = "bounce"
    BULK = "bulk"
    LOOP = "loop"
    REPORT = "report"  # ARF abuse complaints, read receipts, successful-delivery notices


@dataclass(frozen=True)
class Classification:
    """The verdict on one message, with what the bounce handling needs to find the ticket."""

    kind: Kind
    reason: str
    original_message_id: str | None = None
    ticket_number: int | None = None
    permanent: bool | None = None
    diagnostic: str | None = None
    recipient: str | None = None

    @property
    def automatic(self) -> bool:
        """True for everything a machine sent: never acknowledge it, never reopen a ticket for it."""
        return self.kind is not Kind.HUMAN


def classify(message: Message, own_addresses: Collection[str] = ()) -> Classification:
    """Classify `message`; `own_addresses` are the shop's addresses, so our own mail is recognised."""
    try:
        own = frozenset(a.strip().lower() for a in own_addresses if isinstance(a, str) and a.strip())
        return _classify(message, own)
    except Exception as exc:  # the contract is "never raises"; an unforeseen defect must not lose mail
        return Classification(Kind.HUMAN, f"classifier error ({type(exc).__name__}); treated as human")


# --------------------------------------------------------------------------- headers and parts


class _Headers:
    """A message's own headers, raw and unfolded, so both email policies read the same values."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            key = name.strip().lower()
            self._values.setdefault(key, []).append(_unfold(_undo_8bit(value[:_MAX_HEADER_CHARS])))

    @classmethod
    def of(cls, message: Message) -> _Headers:
        try:
            return cls([(str(name), str(value)) for name, value in message.raw_items()])
        except Exception:
            return cls([])

    def first(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._values.get(name, [])

    def has(self, name: str) -> bool:
        return name in self._values

    def firsts(self) -> dict[str, str]:
        return {name: values[0] for name, values in self._values.items()}


def _undo_8bit(value: str) -> str:
    """Raw 8-bit header bytes (kept by the parser as surrogate escapes) as text: UTF-8, else cp1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _unfold(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


def _decoded(value: str) -> str:
    """RFC 2047 decoding that falls back to the raw text on any charset or syntax trouble."""
    try:
        return _unfold(str(make_header(decode_header(value))))
    except Exception:
        return value


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _raw_param(headers: _Headers, param: str) -> str:
    """A Content-Type parameter, lower-cased, read without the policy's parser."""
    raw = headers.first("content-type") or ""
    found = re.search(rf"(?:^|;)\s*{param}\s*=\s*\"?([^\";\s]*)", raw, re.IGNORECASE)
    return found.group(1).lower() if found else ""


def _parts(message: Message) -> Iterator[Message]:
    """The message's own MIME parts, depth first, without descending into attached messages.

    An attached message/rfc822 is someone else's mail (a forwarded bounce, the original inside a
    DSN); its structure must not make the outer message look like a report.
    """
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        if depth >= _MAX_DEPTH or _content_type(part).startswith("message/"):
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def _text(part: Message) -> str:
    """A leaf part's text, decoded leniently; the raw string payload of a part MIME could not split."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes) and payload:
        data = payload[:_MAX_PART_CHARS]
        charset = _raw_param(_Headers.of(part), "charset") or "utf-8"
        try:
            return data.decode(charset, "replace")
        except Exception:
            return data.decode("latin-1")
    try:
        raw = part.get_payload()
    except Exception:
        return ""
    return raw[:_MAX_PART_CHARS] if isinstance(raw, str) else ""


def _unsplit(part: Message) -> bool:
    """A multipart or message/* part whose payload stayed a string (broken boundary, bad nesting)."""
    try:
        return _content_type(part).startswith(("multipart/", "message/")) and isinstance(
            part.get_payload(), str
        )
    except Exception:
        return False


def _address(value: str | None) -> str:
    if not value:
        return ""
    try:
        return parseaddr(value)[1].strip().lower()
    except Exception:
        return ""


def _display_name(value: str | None) -> str:
    if not value:
        return ""
    try:
        return _decoded(parseaddr(value)[0])
    except Exception:
        return ""


def _addresses(values: list[str]) -> set[str]:
    try:
        pairs = getaddresses(values)
    except Exception:
        return set()
    return {addr.strip().lower() for _, addr in pairs if "@" in addr}


def _message_id(value: str | None) -> str | None:
    """`<local@domain>` -> `local@domain`: how the pipeline stores Message-IDs."""
    if not value:
        return None
    bracketed = re.search(r"<([^<>]*)>", value)
    core = bracketed.group(1) if bracketed else value
    core = re.sub(r"\s+", "", core).strip("<>")
    return core or None


def _ticket_number(value: str | None) -> int | None:
    found = re.match(r"\s*#?(\d{1,12})\s*$", value or "")
    return int(found.group(1)) if found else None


# --------------------------------------------------------------------------- signals

_NULL_PATH = re.compile(r"^\s*<\s*>\s*$")
_DAEMON_LOCAL = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"mailer[-_ ]?daemon|mail delivery (?:sub)?system", re.IGNORECASE)
_POSTMASTER_LOCAL = re.compile(r"^postmaster$", re.IGNORECASE)
_NOREPLY_LOCAL = re.compile(
    r"^(?:(?:no|do[-_.]?not)[-_.]?reply|no[-_.]?responder|ne[-_.]?pas[-_.]?repondre)",
    re.IGNORECASE,
)

# Out-of-office and auto-reply subjects in the shop's languages and its neighbours'. They are
# anchored at the start (after an optional "[") so a customer's "Re:"/"Fwd:" of one stays human.
_AUTOREPLY_SUBJECT = re.compile(
    r"""^\s*\[?\s*(?:
        auto(?:matic|matische|matisch|matico|mático)?[\s_-]?
            (?:reply|replied|response|respons|answer|antwort|antwoord|respuesta)\b
      | out\s+of\s+(?:the\s+)?office\b
      | respuesta\s+autom[aá]tica\b
      | fuera\s+de\s+(?:la\s+)?oficina\b
      | r[ée]ponse\s+automatique\b
      | absence\s*(?:[:(\-]|$)
      | abwesenheitsnotiz\b
      | risposta\s+automatica\b
      | resposta\s+autom[aàá]tica\b
      | automatyczna\s+odpowied[zź]\b
      | thank\s+you\s+for\s+your\s+(?:e-?mail|message)\s*[.!]?\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_AUTOREPLY_SUBJECT_SUFFIX = re.compile(r"\(\s*auto(?:matic)?[\s-]?(?:response|reply)\s*\)\s*$", re.I)

# Subjects delivery systems give their failure and delay notices (only believed together with
# another sign of automatic mail: a customer may well write "undelivered parcel").
_BOUNCE_SUBJECT = re.compile(
    r"""undeliver(?:ed|able)|non[-\s]?deliver|delivery\s+(?:status\s+notification\s+\((?:failure|delay)
      |fail|notification:\s+delivery\s+has\s+failed|has\s+failed|problem)
      |returned\s+mail|failure\s+notice|mail\s+(?:delivery\s+)?fail|mail\s+system\s+error
      |could\s+not\s+(?:send|deliver)|delayed\s+mail|bounce\s+notification|returned\s+to\s+sender
      |unzustellbar|nicht\s+zustellbar|non\s+remis|non\s+distribuable|no\s+entregad[oa]
      |no\s+se\s+(?:ha\s+)?podido\s+entregar|error\s+de\s+entrega|n[ãa]o\s+entregue""",
    re.IGNORECASE | re.VERBOSE,
)
# What MTAs put in Auto-Submitted on their notices (Postfix, Exim, Gmail; sendmail's comments).
# Plain "auto-generated" is left out: carriers' "delivery failed" parcel notices may carry it.
_BOUNCE_AUTO_SUBMITTED = re.compile(
    r"\s*auto-replied\b|\s*auto-generated\s*\(\s*(?:failure|warning|delay)", re.IGNORECASE
)
_BOUNCE_BODY = re.compile(
    r"""could\s*n[o']t\s+be\s+delivered|(?:was\s*n[o']t|was\s+not|were\s+not)\s+able\s+to\s+deliver
      |unable\s+to\s+deliver|delivery\s+(?:has\s+)?failed|delivery\s+to\s+the\s+following\s+recipients?\s+failed
      |permanent\s+(?:fatal\s+)?error|message\s+was\s+(?:rejected|undeliverable)|undeliverable
      |not\s+listed\s+in\s+\w+\s+directory|could\s+not\s+be\s+delivered|returned\s+to\s+sender""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class _Signals:
    """Everything the decision needs, read once from the top-level headers and structure."""

    sender: str
    sender_name: str
    subject: str
    null_return_path: bool
    null_from: bool
    reply_to: set[str]


def _classify(message: Message, own: frozenset[str]) -> Classification:
    headers = _Headers.of(message)
    from_value = headers.first("from")
    signals = _Signals(
        sender=_address(from_value),
        sender_name=_display_name(from_value),
        subject=_decoded(headers.first("subject") or ""),
        null_return_path=any(_NULL_PATH.match(v) for v in headers.all("return-path")[:1]),
        null_from=bool(from_value is not None and _NULL_PATH.match(from_value)),
        reply_to=_addresses(headers.all("reply-to")),
    )
    loop_value = headers.first(_LOOP_HEADER)
    from_own = bool(signals.sender) and signals.sender in own
    if from_own and loop_value is not None:
        return Classification(
            Kind.LOOP,
            f"our own mail read back (From {signals.sender}, X-Incidencias-Ticket)",
            ticket_number=_ticket_number(loop_value),
        )

    parts = list(_parts(message))
    part_types = [_content_type(p) for p in parts]
    report_type = _raw_param(headers, "report-type") if part_types[0] == "multipart/report" else ""

    report = _report(parts, part_types, report_type)
    if report is not None:
        return report

    bounce_reason = _bounce_reason(headers, signals, parts, part_types, report_type)
    if bounce_reason is not None:
        return _bounce(headers, signals, parts, part_types, bounce_reason, own)

    loop = _loop(headers, signals, loop_value, from_own, own)
    if loop is not None:
        return loop

    strong = _autoreply_reason(headers, signals)
    if strong is not None:
        return Classification(Kind.AUTOREPLY, strong)

    bulk = _bulk_reason(headers)
    if bulk is not None:
        return Classification(Kind.BULK, bulk)

    weak = _weak_automatic_reason(headers, signals)
    if weak is not None:
        return Classification(Kind.AUTOREPLY, weak)

    return Classification(Kind.HUMAN, "no sign of automatic mail")


def _loop(
    headers: _Headers, signals: _Signals, loop_value: str | None, from_own: bool, own: frozenset[str]
) -> Classification | None:
    if loop_value is not None:
        return Classification(
            Kind.LOOP,
            "our X-Incidencias-Ticket header came back in a top-level message",
            ticket_number=_ticket_number(loop_value),
        )
    if from_own:
        return Classification(Kind.LOOP, f"sent from our own address {signals.sender}")
    looped = _addresses(headers.all("x-loop")) & own
    if looped:
        return Classification(Kind.LOOP, f"X-Loop names our address {min(looped)}")
    return None


def _autoreply_reason(headers: _Headers, signals: _Signals) -> str | None:
    """Signs that a program answered (or generated) this message on someone's behalf."""
    for value in headers.all("auto-submitted"):
        keyword = re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower()
        if keyword and keyword != "no":
            return f"Auto-Submitted: {value[:60]}"
    for name in ("x-autoreply", "x-autorespond"):
        for value in headers.all(name):
            if value.strip().lower() not in ("no", "false", "0"):
                return f"{name.title()}: {value[:60]}"
    for value in headers.all("precedence"):
        if value.strip().lower() in ("auto_reply", "auto-reply"):
            return f"Precedence: {value[:30]}"
    if _AUTOREPLY_SUBJECT.search(signals.subject) or _AUTOREPLY_SUBJECT_SUFFIX.search(signals.subject):
        return f"auto-reply subject {signals.subject[:80]!r}"
    return None


def _bulk_reason(headers: _Headers) -> str | None:
    for name in ("list-id", "list-unsubscribe"):
        if headers.has(name):
            return f"{name.title()} header (mailing list or newsletter)"
    for value in headers.all("precedence"):
        if value.strip().lower() in ("bulk", "junk", "list"):
            return f"Precedence: {value.strip().lower()}"
    return None


def _weak_automatic_reason(headers: _Headers, signals: _Signals) -> str | None:
    """Signs of a machine sender that do not say what kind of message it is."""
    for value in headers.all("x-auto-response-suppress"):
        if value.strip().lower() not in ("", "none"):
            return f"X-Auto-Response-Suppress: {value[:60]}"
    if signals.null_return_path:
        return "empty Return-Path <>"
    if signals.null_from:
        return "empty From <>"
    local = signals.sender.partition("@")[0]
    if _POSTMASTER_LOCAL.match(local):
        return f"sender {signals.sender}"
    if _NOREPLY_LOCAL.match(local) and not _relays_a_person(signals):
        return f"no-reply sender {signals.sender}"
    return None


def _relays_a_person(signals: _Signals) -> bool:
    """A no-reply From with a personal Reply-To is a web form relaying a customer: answer them."""
    return any(addr != signals.sender and not _is_machine_address(addr) for addr in signals.reply_to)


def _is_machine_address(addr: str) -> bool:
    local = addr.partition("@")[0]
    return bool(_DAEMON_LOCAL.match(local) or _POSTMASTER_LOCAL.match(local) or _NOREPLY_LOCAL.match(local))


# --------------------------------------------------------------------------- reports and bounces


def _report(parts: list[Message], part_types: list[str], report_type: str) -> Classification | None:
    """ARF complaints, read receipts (MDN) and delivery notices that report success."""
    if report_type == "feedback-report" or "message/feedback-report" in part_types:
        returned = _returned_headers(parts, part_types)
        return Classification(
            Kind.REPORT,
            "abuse feedback report (ARF)",
            original_message_id=_message_id(returned.first("message-id")) if returned else None,
            ticket_number=_ticket_number(returned.first(_LOOP_HEADER)) if returned else None,
        )
    if report_type == "disposition-notification" or "message/disposition-notification" in part_types:
        fields = _merged_fields(parts, part_types, "message/disposition-notification")
        returned = _returned_headers(parts, part_types)
        original = fields.get("original-message-id") or (returned.first("message-id") if returned else None)
        return Classification(
            Kind.REPORT,
            "read receipt (MDN)",
            original_message_id=_message_id(original),
            ticket_number=_ticket_number(returned.first(_LOOP_HEADER)) if returned else None,
        )
    if report_type == "delivery-status" or "message/delivery-status" in part_types:
        blocks = _recipient_blocks(_status_blocks(parts, part_types))
        actions = {b.get("action", "").split()[0].lower() for b in blocks if b.get("action", "").split()}
        if actions and actions <= {"delivered", "relayed", "expanded"}:
            return Classification(
                Kind.REPORT, f"delivery-status report of success ({', '.join(sorted(actions))})"
            )
    return None


def _bounce_reason(
    headers: _Headers,
    signals: _Signals,
    parts: list[Message],
    part_types: list[str],
    report_type: str,
) -> str | None:
    """Why this is a delivery failure notice, standard (RFC 3464) or one of the common home-made forms."""
    if report_type == "delivery-status":
        return "multipart/report; report-type=delivery-status"
    if "message/delivery-status" in part_types:
        return "message/delivery-status part"
    if headers.has("x-failed-recipients"):
        return "X-Failed-Recipients header"
    local = signals.sender.partition("@")[0]
    if _DAEMON_LOCAL.match(local) or _DAEMON_NAME.search(signals.sender_name):
        return f"sender {signals.sender or signals.sender_name} (mailer daemon)"
    machine = (
        _POSTMASTER_LOCAL.match(local) is not None
        or signals.null_return_path
        or signals.null_from
        or any(_BOUNCE_AUTO_SUBMITTED.match(v) for v in headers.all("auto-submitted"))
    )
    if not machine:
        return None
    who = signals.sender or "null sender"
    if _BOUNCE_SUBJECT.search(signals.subject):
        return f"automatic mail from {who} with a delivery-failure subject"
    if any(t in _RETURNED_TYPES for t in part_types):
        return f"automatic mail from {who} returning a message"
    first_text = next((_text(p) for p, t in zip(parts, part_types, strict=True) if t == "text/plain"), "")
    if _BOUNCE_BODY.search(first_text[:5000]):
        return f"automatic mail from {who} reporting a delivery failure"
    return None


def _bounce(
    headers: _Headers,
    signals: _Signals,
    parts: list[Message],
    part_types: list[str],
    reason: str,
    own: frozenset[str],
) -> Classification:
    body = "\n".join(
        _text(p) for p, t in zip(parts, part_types, strict=True) if t.startswith("text/") or _unsplit(p)
    )
    report_text = _before_returned_copy(body)
    blocks = _recipient_blocks(_status_blocks(parts, part_types) or _field_blocks(body))
    block = _pick_failed(blocks)

    returned = _returned_headers(parts, part_types)
    own_id = _message_id(headers.first("message-id"))
    original = _message_id(returned.first("message-id")) if returned else None
    if original is None:
        original = _id_in_text(body, own_id)
    ticket = _ticket_number(returned.first(_LOOP_HEADER)) if returned else None
    if ticket is None:
        found = re.search(r"^[ \t>]*X-Incidencias-Ticket:[ \t]*(\d{1,12})\b", body, re.I | re.M)
        ticket = int(found.group(1)) if found else None

    return Classification(
        Kind.BOUNCE,
        reason,
        original_message_id=original,
        ticket_number=ticket,
        permanent=_permanence(block, signals.subject, report_text),
        diagnostic=_diagnostic(block, report_text),
        recipient=_recipient(headers, block, report_text, own),
    )


def _field_blocks(text: str) -> list[dict[str, str]]:
    """`Name: value` groups separated by blank lines (DSN fields, header blocks), first value wins."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}"[:_MAX_HEADER_CHARS]
        else:
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if colon and re.fullmatch(r"[a-z0-9-]{1,60}", name):
                if name not in current:
                    current[name] = value.strip()[:_MAX_HEADER_CHARS]
                    last = name
                else:
                    last = None
            else:
                last = None
    if current:
        blocks.append(current)
    return blocks


def _status_blocks(parts: list[Message], part_types: list[str]) -> list[dict[str, str]]:
    """The field groups of every message/delivery-status part, whichever way the parser split it."""
    blocks: list[dict[str, str]] = []
    for part, ctype in zip(parts, part_types, strict=True):
        if ctype == "message/delivery-status":
            blocks.extend(_part_fields(part))
    return blocks


def _merged_fields(parts: list[Message], part_types: list[str], wanted: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for part, ctype in zip(parts, part_types, strict=True):
        if ctype == wanted:
            for block in _part_fields(part):
                for key, value in block.items():
                    merged.setdefault(key, value)
    return merged


def _part_fields(part: Message) -> list[dict[str, str]]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, str):
        return _field_blocks(payload[:_MAX_PART_CHARS])
    if not isinstance(payload, list):
        return []
    blocks: list[dict[str, str]] = []
    for sub in payload:
        if isinstance(sub, Message):
            blocks.append(_Headers.of(sub).firsts())
    return blocks


def _recipient_blocks(blocks: list[dict[str, str]]) -> list[dict[str, str]]:
    return [b for b in blocks if "final-recipient" in b or "original-recipient" in b or "action" in b]


def _pick_failed(blocks: list[dict[str, str]]) -> dict[str, str] | None:
    """The recipient group that failed, else the one delayed, else the first."""
    for wanted in ("5", "4"):
        for block in blocks:
            if block.get("status", "").strip().startswith(wanted):
                return block
    for wanted in ("failed", "delayed"):
        for block in blocks:
            if block.get("action", "").strip().lower().startswith(wanted):
                return block
    return blocks[0] if blocks else None


_RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


def _returned_headers(parts: list[Message], part_types: list[str]) -> _Headers | None:
    """The headers of the message that bounced, from the attached copy or its headers-only part."""
    for part, ctype in zip(parts, part_types, strict=True):
        if ctype not in _RETURNED_TYPES:
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _Headers.of(payload[0])
        fields = _field_blocks(_text(part))
        if fields:
            return _Headers(fields[0].items())
    return None


_COPY_MARKER = re.compile(
    r"""^[ \t]*(?:-+[ \t]*)?(?:
        (?:this\s+is\s+a\s+)?copy\s+of\s+the\s+message|below\s+this\s+line\s+is\s+a\s+copy
      | original\s+message\s+follows|(?:the\s+)?header\s+of\s+the\s+original\s+message
      | (?:original|returned|undelivered)\s+message|bounced\s+e-?mail
    )""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)
_HEADER_LINE = re.compile(
    r"^(?:return-path|received|message-id|date|from|to|subject|mime-version|delivered-to"
    r"|dkim-signature|content-type|reply-to):",
    re.IGNORECASE | re.MULTILINE,
)


def _before_returned_copy(body: str) -> str:
    """The notice itself, without the copy of the returned message that most bounces append."""
    cut = len(body)
    for pattern in (_COPY_MARKER, _HEADER_LINE):
        found = pattern.search(body)
        if found:
            cut = min(cut, found.start())
    return body[:cut]


def _id_in_text(body: str, own_id: str | None) -> str | None:
    """The Message-ID of the returned copy in a bounce that quotes it as plain text."""
    for found in re.finditer(r"^[ \t>]*Message-ID:[ \t]*(?:\r?\n[ \t]+)?(\S+)", body, re.I | re.M):
        candidate = _message_id(found.group(1))
        if candidate and "@" in candidate and candidate != own_id:
            return candidate
    return None


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# "  To: list@example.org" in a notice's summary of the returned message names its addressee, not
# necessarily the one that failed.
_SUMMARY_LINE = re.compile(r"^\s*(?:to|from|cc|subject|sent|date|reply-to)\s*:", re.IGNORECASE)


def _recipient(
    headers: _Headers, block: dict[str, str] | None, report_text: str, own: frozenset[str]
) -> str | None:
    for value in headers.all("x-failed-recipients"):
        found = _ADDRESS.search(value)
        if found:
            return found.group(0).lower()
    if block is not None:
        for key in ("original-recipient", "final-recipient"):
            value = block.get(key, "")
            address = value.partition(";")[2] if ";" in value else value
            found = _ADDRESS.search(address)
            if found:
                return found.group(0).lower()
    exclude = set(own) | _addresses(headers.all("from") + headers.all("to") + headers.all("return-path"))
    for line in report_text.splitlines():
        if _SUMMARY_LINE.match(line):
            continue
        for found in _ADDRESS.finditer(line):
            address = found.group(0).lower().rstrip(".")
            if address not in exclude and not _is_machine_address(address):
                return address
    return None


_ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")
_BASIC_CODE = re.compile(r"(?:^|said:?|\s)([45])\d\d(?=[ -])", re.MULTILINE)
_PERMANENT_TEXT = re.compile(r"permanent(?:\s+fatal)?\s+error|I've\s+given\s+up", re.IGNORECASE)
_DELAY_TEXT = re.compile(
    r"\bdelay(?:ed)?\b|will\s+(?:continue|keep)\s+(?:trying|to\s+try)|will\s+be\s+retried|"
    r"could\s+not\s+send\s+message\s+for\s+past|not\s+yet\s+been\s+delivered|warning:",
    re.IGNORECASE,
)
_NO_SUCH_USER_TEXT = re.compile(
    r"user\s+unknown|unknown\s+(?:user|recipient)|no\s+such\s+user|user\s+not\s+found"
    r"|does\s+not\s+exist|not\s+listed\s+in|recipient\s+name\s+is\s+not\s+recognized"
    r"|invalid\s+(?:mailbox|recipient)",
    re.IGNORECASE,
)


def _permanence(block: dict[str, str] | None, subject: str, report_text: str) -> bool | None:
    """True for a hard failure (5.x.x), False for a delay or temporary one (4.x.x), None unknown.

    The DSN fields decide when there are any; then the notice's own words, strongest first.
    """
    if block is not None:
        status = block.get("status", "").strip()
        if status[:1] in ("4", "5"):
            return status.startswith("5")
        action = block.get("action", "").strip().lower()
        if action.startswith(("failed", "delayed")):
            return action.startswith("failed")
    if _DELAY_TEXT.search(subject):
        return False
    found = _ENHANCED_CODE.search(report_text)
    if found and found.group(1) != "2":
        return found.group(1) == "5"
    if _PERMANENT_TEXT.search(report_text):
        return True
    if _DELAY_TEXT.search(report_text):
        return False
    found = _BASIC_CODE.search(report_text)
    if found:
        return found.group(1) == "5"
    if _NO_SUCH_USER_TEXT.search(report_text):
        return True
    return None


_DIAGNOSTIC_LINE = re.compile(
    r"(?:^|\s)[45]\d\d[ -]|(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])|\b(?:reason|error|said):\s*\S",
    re.IGNORECASE,
)


def _diagnostic(block: dict[str, str] | None, report_text: str) -> str | None:
    """The remote server's own words: the DSN's Diagnostic-Code, else the first line quoting a code."""
    text = ""
    if block is not None:
        code = block.get("diagnostic-code", "")
        text = re.sub(r"^\s*[\w-]+\s*;\s*", "", code)
    if not text.strip():
        lines = [line.strip() for line in report_text.splitlines()]
        for index, line in enumerate(lines):
            if _DIAGNOSTIC_LINE.search(line):
                text = line
                break
            if line.lower().endswith(("reason:", "because:")):
                text = next((rest for rest in lines[index + 1 :] if rest), "")
                break
    text = _unfold(text)
    return text[:_DIAGNOSTIC_CHARS] or None
