"""What a delivery notice says: reports (ARF, read receipts, success DSNs) and delivery failures.

Reads RFC 3464 delivery-status fields, RFC 8098 read receipts and RFC 5965 abuse reports, and the
common home-made text bounces: which message of ours came back, for which ticket, to which
recipient, whether for good, and the remote server's own words. Pure, and never raises: what
cannot be read is None. classify.py decides *whether* a message is such a notice with
`report` and `failure_reason`; daemon.tickets.bounces decides what it does to a ticket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from daemon.mail.mime import (
    DAEMON_LOCAL,
    DAEMON_NAME,
    LOOP_HEADER,
    MAX_HEADER_CHARS,
    MAX_PART_CHARS,
    POSTMASTER_LOCAL,
    Headers,
    Signals,
    addresses_in,
    is_machine_address,
    message_id_of,
    part_text,
    ticket_number_of,
    unfold,
    unsplit,
)

__all__ = ["Failure", "Report", "failure_reason", "read_failure", "report"]


@dataclass(frozen=True)
class Report:
    """A notice that reports without failing: an abuse complaint, a read receipt, a delivery."""

    reason: str
    original_message_id: str | None = None
    ticket_number: int | None = None


@dataclass(frozen=True)
class Failure:
    """A delivery failure: the message of ours it returns, its ticket, who failed, how, and why.

    `permanent` is True for a hard failure, False for a delay or temporary one, None when unknown.
    """

    original_message_id: str | None
    ticket_number: int | None
    permanent: bool | None
    diagnostic: str | None
    recipient: str | None


_DIAGNOSTIC_CHARS = 300

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


def report(parts: list[Message], part_types: list[str], report_type: str) -> Report | None:
    """ARF complaints, read receipts (MDN) and delivery notices that report success."""
    if report_type == "feedback-report" or "message/feedback-report" in part_types:
        returned = _returned_headers(parts, part_types)
        return Report(
            "abuse feedback report (ARF)",
            original_message_id=message_id_of(returned.first("message-id")) if returned else None,
            ticket_number=ticket_number_of(returned.first(LOOP_HEADER)) if returned else None,
        )
    if report_type == "disposition-notification" or "message/disposition-notification" in part_types:
        fields = _merged_fields(parts, part_types, "message/disposition-notification")
        returned = _returned_headers(parts, part_types)
        original = fields.get("original-message-id") or (returned.first("message-id") if returned else None)
        return Report(
            "read receipt (MDN)",
            original_message_id=message_id_of(original),
            ticket_number=ticket_number_of(returned.first(LOOP_HEADER)) if returned else None,
        )
    if report_type == "delivery-status" or "message/delivery-status" in part_types:
        blocks = _recipient_blocks(_status_blocks(parts, part_types))
        actions = {b.get("action", "").split()[0].lower() for b in blocks if b.get("action", "").split()}
        if actions and actions <= {"delivered", "relayed", "expanded"}:
            return Report(
                f"delivery-status report of success ({', '.join(sorted(actions))})"
            )
    return None


def failure_reason(
    headers: Headers,
    signals: Signals,
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
    if DAEMON_LOCAL.match(local) or DAEMON_NAME.search(signals.sender_name):
        return f"sender {signals.sender or signals.sender_name} (mailer daemon)"
    machine = (
        POSTMASTER_LOCAL.match(local) is not None
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
    first_text = next((part_text(p) for p, t in zip(parts, part_types, strict=True) if t == "text/plain"), "")
    if _BOUNCE_BODY.search(first_text[:5000]):
        return f"automatic mail from {who} reporting a delivery failure"
    return None


def read_failure(
    headers: Headers,
    signals: Signals,
    parts: list[Message],
    part_types: list[str],
    own: frozenset[str],
) -> Failure:
    """Read a notice `failure_reason` recognised; `own` are the shop's addresses, never the failed one."""
    body = "\n".join(
        part_text(p) for p, t in zip(parts, part_types, strict=True) if t.startswith("text/") or unsplit(p)
    )
    report_text = _before_returned_copy(body)
    blocks = _recipient_blocks(_status_blocks(parts, part_types) or _field_blocks(body))
    block = _pick_failed(blocks)

    returned = _returned_headers(parts, part_types)
    own_id = message_id_of(headers.first("message-id"))
    original = message_id_of(returned.first("message-id")) if returned else None
    if original is None:
        original = _id_in_text(body, own_id)
    ticket = ticket_number_of(returned.first(LOOP_HEADER)) if returned else None
    if ticket is None:
        found = re.search(r"^[ \t>]*X-Incidencias-Ticket:[ \t]*(\d{1,12})\b", body, re.I | re.M)
        ticket = int(found.group(1)) if found else None

    return Failure(
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
            current[last] = f"{current[last]} {line.strip()}"[:MAX_HEADER_CHARS]
        else:
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if colon and re.fullmatch(r"[a-z0-9-]{1,60}", name):
                if name not in current:
                    current[name] = value.strip()[:MAX_HEADER_CHARS]
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
        return _field_blocks(payload[:MAX_PART_CHARS])
    if not isinstance(payload, list):
        return []
    blocks: list[dict[str, str]] = []
    for sub in payload:
        if isinstance(sub, Message):
            blocks.append(Headers.of(sub).firsts())
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


def _returned_headers(parts: list[Message], part_types: list[str]) -> Headers | None:
    """The headers of the message that bounced, from the attached copy or its headers-only part."""
    for part, ctype in zip(parts, part_types, strict=True):
        if ctype not in _RETURNED_TYPES:
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return Headers.of(payload[0])
        fields = _field_blocks(part_text(part))
        if fields:
            return Headers(fields[0].items())
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
        candidate = message_id_of(found.group(1))
        if candidate and "@" in candidate and candidate != own_id:
            return candidate
    return None


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

# "  To: list@example.org" in a notice's summary of the returned message names its addressee, not
# necessarily the one that failed.
_SUMMARY_LINE = re.compile(r"^\s*(?:to|from|cc|subject|sent|date|reply-to)\s*:", re.IGNORECASE)


def _recipient(
    headers: Headers, block: dict[str, str] | None, report_text: str, own: frozenset[str]
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
    exclude = set(own) | addresses_in(headers.all("from") + headers.all("to") + headers.all("return-path"))
    for line in report_text.splitlines():
        if _SUMMARY_LINE.match(line):
            continue
        for found in _ADDRESS.finditer(line):
            address = found.group(0).lower().rstrip(".")
            if address not in exclude and not is_machine_address(address):
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
    text = unfold(text)
    return text[:_DIAGNOSTIC_CHARS] or None
