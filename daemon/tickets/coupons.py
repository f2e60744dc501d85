"""Coupons created in the shop's platform (`[closing] discount_provider = "platform"`).

The code is chosen here and committed with the pending closing before the shop is asked: every
later try — after a time-out, a crash, an outage — asks for that same code, and the shop's "this
code already exists" is then our own earlier try that got through. Nothing here waits: the
closing itself (lifecycle) decides when to ask and what a failure means.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from daemon.shop.model import CouponRequest, Platform
from daemon.storage.models import PendingClosing, Ticket
from daemon.tickets.discounts import Discount, GeneratedCodes

PLATFORM = "platform"


class PlatformCoupons:
    name: str = PLATFORM

    def __init__(self, platform: Platform, *, prefix: str = "GRACIAS",
                 valid_for: timedelta = timedelta(days=90), shop_name: str = "") -> None:
        self.platform = platform
        self.valid_for = valid_for
        self.shop_name = shop_name
        self._codes = GeneratedCodes(prefix=prefix, valid_for=valid_for, source=PLATFORM)

    def reserve(self, session: Session, ticket_id: int, percent: int, now: datetime) -> Discount:
        """A fresh code for `ticket_id`, recorded in the caller's transaction (not yet in the shop)."""
        discount = self._codes.issue(session, ticket_id, percent, now).discount
        if discount is None:
            raise RuntimeError("generated codes always issue a code")
        return discount

    def request(self, ticket: Ticket, pending: PendingClosing) -> CouponRequest:
        return CouponRequest(
            code=pending.code, percent=pending.percent, valid_from=pending.since.date(),
            valid_until=pending.valid_until.date(), customer_email=ticket.customer_email,
            title=f"{self.shop_name} · incidencias #{ticket.id}".strip(" ·"))
