"""A ticket's status, changed in one place: a table of transitions and one function applying them.

Guarantees: no other module assigns `Ticket.status`, `closed_at` or `waiting_since` (a test scans
the source for it); every transition leaves the side fields consistent with the new status — a
ticket that is not closed has no `closed_at`, one that is not waiting has no waiting clock nor
waiting reminder; a transition named from a status it does not leave raises InvalidTransition
before anything changes. `plan` is pure; `apply` only copies the planned fields onto the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from daemon.storage.models import Ticket, TicketStatus


class Event(StrEnum):
    """What happened to the ticket; each has one row in TRANSITIONS."""

    OPENED = "opened"                        # a customer's first mail made the ticket
    CUSTOMER_WROTE = "customer_wrote"        # the customer answered while we waited on them
    REOPENED = "reopened"                    # a closed ticket is open again (customer or #reopen)
    WAITING = "waiting"                      # an agent's #waiting: the ball is with the customer
    CLOSED = "closed"                        # #close or `incidencias tickets close`


_ANY = frozenset({TicketStatus.OPEN, TicketStatus.WAITING, TicketStatus.CLOSED})


@dataclass(frozen=True)
class Transition:
    """One row: where it may start, where it ends, which fields it clears and which it stamps now."""

    event: Event
    allowed_from: frozenset[str | None]
    to: str
    clears: tuple[str, ...] = ()
    stamps: tuple[str, ...] = ()


TRANSITIONS: dict[Event, Transition] = {t.event: t for t in (
    Transition(Event.OPENED, frozenset({None}), TicketStatus.OPEN),
    Transition(Event.CUSTOMER_WROTE, frozenset({TicketStatus.WAITING}), TicketStatus.OPEN,
               clears=("waiting_since", "waiting_reminded_at")),
    Transition(Event.REOPENED, _ANY, TicketStatus.OPEN,
               clears=("closed_at", "waiting_since", "waiting_reminded_at")),
    Transition(Event.WAITING, _ANY, TicketStatus.WAITING,
               clears=("closed_at", "waiting_reminded_at"), stamps=("waiting_since",)),
    Transition(Event.CLOSED, _ANY, TicketStatus.CLOSED, stamps=("closed_at",)),
)}

# The fields only this module writes; the layering tests hold every other module to it.
OWNED_FIELDS = frozenset({"status", "closed_at", "waiting_since"})


class InvalidTransition(ValueError):
    """The event cannot happen to a ticket in its current status."""


@dataclass(frozen=True)
class Change:
    """A planned transition: the status before and after, and every field's new value."""

    event: Event
    before: str | None
    after: str
    fields: tuple[tuple[str, datetime | str | None], ...]


def plan(status: str | None, event: Event, now: datetime) -> Change:
    """The fields `event` sets on a ticket whose status is `status`; pure."""
    row = TRANSITIONS[event]
    if status not in row.allowed_from:
        raise InvalidTransition(f"{event} is not possible from status {status!r}")
    fields: list[tuple[str, datetime | str | None]] = [("status", row.to)]
    fields += [(name, None) for name in row.clears]
    fields += [(name, now) for name in row.stamps]
    return Change(event, status, row.to, tuple(fields))


def apply(ticket: Ticket, event: Event, now: datetime) -> Change:
    """Move `ticket` through `event` at `now`; returns what changed (for logs and callers)."""
    change = plan(ticket.status, event, now)
    for name, value in change.fields:
        setattr(ticket, name, value)
    return change
