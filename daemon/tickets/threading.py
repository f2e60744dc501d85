"""Which ticket a message belongs to: a pure decision over lookups passed in.

The rules, in order (the first that answers wins):
1. In-Reply-To / References name a message of a ticket, incoming or outgoing;
2. a `[#N]` subject tag, only from someone who already takes part in ticket N;
3. same sender and same subject (prefixes removed) on a ticket that is not closed, for clients
   that drop References;
4. otherwise, a new ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from daemon.mail.message import ParsedMessage
from daemon.mail.subjects import subject_key, ticket_tag


class TicketLookup(Protocol):
    """Answers about the tickets of one mailbox only, so threading never crosses shops."""

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        """The ticket of the first id (in the order given) that any stored message has."""

    def participants(self, ticket: int) -> frozenset[str] | None:
        """Who may write into the ticket by tag; None when the ticket does not exist."""

    def open_ticket_for(self, sender: str, key: str) -> int | None:
        """The newest ticket that is not closed with this customer and subject key."""


@dataclass(frozen=True)
class Match:
    ticket: int | None
    rule: str

    @property
    def is_new(self) -> bool:
        return self.ticket is None


def match_ticket(message: ParsedMessage, lookup: TicketLookup) -> Match:
    if message.thread_ids:
        found = lookup.ticket_for_message_ids(message.thread_ids)
        if found is not None:
            return Match(found, "references")
    tag = ticket_tag(message.subject)
    if tag is not None:
        people = lookup.participants(tag)
        if people is not None and message.sender.email in people:
            return Match(tag, "subject-tag")
    key = subject_key(message.subject)
    if key:
        found = lookup.open_ticket_for(message.sender.email, key)
        if found is not None:
            return Match(found, "sender-subject")
    return Match(None, "new")
