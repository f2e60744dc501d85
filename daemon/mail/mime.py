"""Reading a message leniently: its own headers raw and unfolded, its MIME parts, its addresses.

Shared by classify (is this automatic mail?) and dsn (what does a delivery notice say?). Nothing
here raises on malformed input: a header or part that cannot be read reads as empty. Sizes are
bounded so a hostile or huge message stays cheap to look at. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr

# Bounds that keep a hostile or huge message cheap to look at.
MAX_HEADER_CHARS = 4000
MAX_PART_CHARS = 200_000
_MAX_PARTS = 200
_MAX_DEPTH = 20

# The header on all our own mail; read back (a loop, a returned copy) it names the ticket.
LOOP_HEADER = "x-incidencias-ticket"


class Headers:
    """A message's own headers, raw and unfolded, so both email policies read the same values."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            key = name.strip().lower()
            self._values.setdefault(key, []).append(unfold(_undo_8bit(value[:MAX_HEADER_CHARS])))

    @classmethod
    def of(cls, message: Message) -> Headers:
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


def unfold(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


def decoded(value: str) -> str:
    """RFC 2047 decoding that falls back to the raw text on any charset or syntax trouble."""
    try:
        return unfold(str(make_header(decode_header(value))))
    except Exception:
        return value


def content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def raw_param(headers: Headers, param: str) -> str:
    """A Content-Type parameter, lower-cased, read without the policy's parser."""
    raw = headers.first("content-type") or ""
    found = re.search(rf"(?:^|;)\s*{param}\s*=\s*\"?([^\";\s]*)", raw, re.IGNORECASE)
    return found.group(1).lower() if found else ""


def walk_parts(message: Message) -> Iterator[Message]:
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
        if depth >= _MAX_DEPTH or content_type(part).startswith("message/"):
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def part_text(part: Message) -> str:
    """A leaf part's text, decoded leniently; the raw string payload of a part MIME could not split."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes) and payload:
        data = payload[:MAX_PART_CHARS]
        charset = raw_param(Headers.of(part), "charset") or "utf-8"
        try:
            return data.decode(charset, "replace")
        except Exception:
            return data.decode("latin-1")
    try:
        raw = part.get_payload()
    except Exception:
        return ""
    return raw[:MAX_PART_CHARS] if isinstance(raw, str) else ""


def unsplit(part: Message) -> bool:
    """A multipart or message/* part whose payload stayed a string (broken boundary, bad nesting)."""
    try:
        return content_type(part).startswith(("multipart/", "message/")) and isinstance(
            part.get_payload(), str
        )
    except Exception:
        return False


def address_of(value: str | None) -> str:
    if not value:
        return ""
    try:
        return parseaddr(value)[1].strip().lower()
    except Exception:
        return ""


def display_name(value: str | None) -> str:
    if not value:
        return ""
    try:
        return decoded(parseaddr(value)[0])
    except Exception:
        return ""


def addresses_in(values: list[str]) -> set[str]:
    try:
        pairs = getaddresses(values)
    except Exception:
        return set()
    return {addr.strip().lower() for _, addr in pairs if "@" in addr}


def message_id_of(value: str | None) -> str | None:
    """`<local@domain>` -> `local@domain`: how the pipeline stores Message-IDs."""
    if not value:
        return None
    bracketed = re.search(r"<([^<>]*)>", value)
    core = bracketed.group(1) if bracketed else value
    core = re.sub(r"\s+", "", core).strip("<>")
    return core or None


def ticket_number_of(value: str | None) -> int | None:
    found = re.match(r"\s*#?(\d{1,12})\s*$", value or "")
    return int(found.group(1)) if found else None


# Machine senders: the null path, mailer daemons, postmasters, no-reply addresses.
NULL_PATH = re.compile(r"^\s*<\s*>\s*$")
DAEMON_LOCAL = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon)$", re.IGNORECASE)
DAEMON_NAME = re.compile(r"mailer[-_ ]?daemon|mail delivery (?:sub)?system", re.IGNORECASE)
POSTMASTER_LOCAL = re.compile(r"^postmaster$", re.IGNORECASE)
NOREPLY_LOCAL = re.compile(
    r"^(?:(?:no|do[-_.]?not)[-_.]?reply|no[-_.]?responder|ne[-_.]?pas[-_.]?repondre)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Signals:
    """Everything the decision needs, read once from the top-level headers and structure."""

    sender: str
    sender_name: str
    subject: str
    null_return_path: bool
    null_from: bool
    reply_to: set[str]


def is_machine_address(addr: str) -> bool:
    local = addr.partition("@")[0]
    return bool(DAEMON_LOCAL.match(local) or POSTMASTER_LOCAL.match(local) or NOREPLY_LOCAL.match(local))
