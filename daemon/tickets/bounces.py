"""What a delivery failure notice means for a ticket: link it, mark the customer unreachable, suppress.

classify.py reads the notice itself (RFC 3464 fields or a home-made text bounce) into a
`Classification`; this module decides what to do with it given what our records say about the
returned message. Pure: the caller looks the message up and applies the verdict.

A Message-ID of ours is unguessable, so a bounce naming one is believed. A bare ticket number is
easy to forge, so on its own it only links the notice as a note, and marks the customer unreachable
only when the failed address is that ticket's customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.mail.classify import Classification

__all__ = ["BounceVerdict", "Returned", "judge", "suppressed_until"]


@dataclass(frozen=True)
class Returned:
    """The ticket a bounce points at, from our records.

    `recipients` are who the returned message went to, when the notice named one of our own
    Message-IDs; empty when only the ticket number linked it.
    """

    ticket_id: int
    customer: str
    by_message_id: bool
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class BounceVerdict:
    """`ticket_id` None: nothing of ours bounced (quarantine). `unreachable`: mark it and tell agents.
    `suppress`: the address that hard-bounced, to get no automatic mail for a while."""

    ticket_id: int | None
    unreachable: bool
    suppress: str | None
    recipient: str | None
    reason: str


def judge(notice: Classification, returned: Returned | None) -> BounceVerdict:
    """Decide from a bounce's classification and the ticket our records link it to."""
    reason = notice.diagnostic or notice.reason
    if returned is None:
        return BounceVerdict(None, False, None, notice.recipient, reason)
    customer = returned.customer.lower()
    failed = (notice.recipient or "").lower()
    sent_to = tuple(r.lower() for r in returned.recipients)
    if returned.by_message_id and sent_to:
        # A forwarding customer's server may report the final address, not the one we wrote to.
        hits_customer = customer in sent_to and (len(sent_to) == 1 or failed == customer)
    else:
        hits_customer = failed == customer
    if not hits_customer or notice.permanent is False:
        return BounceVerdict(returned.ticket_id, False, None, failed or None, reason)
    return BounceVerdict(returned.ticket_id, True, customer if notice.permanent else None,
                         failed or customer, reason)


def suppressed_until(now: datetime, period: timedelta) -> datetime | None:
    """When suppression of a hard-bounced address ends; None when suppression is switched off."""
    return now + period if period > timedelta(0) else None
