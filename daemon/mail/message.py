"""The internal form of a received email, independent of the parsing library."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    """A mailbox: display name (may be empty) and lower-cased address."""

    name: str
    email: str


@dataclass(frozen=True)
class Attachment:
    """A file that came with a message; `filename` is the sender's and never used as a path."""

    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class ParsedMessage:
    """What the pipeline needs to know about one received email.

    `headers` keeps every header in order, names as sent, values decoded to text,
    so classification rules can look at vendor headers the parser does not model.
    """

    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: Address
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...] = field(default=())
    content_type: str = "text/plain"

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        found: str | None = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Every Message-ID this message says it answers, nearest first."""
        seen: dict[str, None] = {}
        for mid in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(mid, None)
        return tuple(seen)
