"""What incidencias asks a shop platform and what it gets back, independent of the platform."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class OrderItem:
    name: str
    quantity: int


@dataclass(frozen=True)
class Order:
    """An order as the agents' notification shows it; any field the platform lacks is None/empty."""

    number: str
    status: str | None
    created: str | None  # as the platform wrote it (ISO 8601 mostly); shown, never computed with
    total: str | None  # amount and currency, e.g. "42.00 EUR"
    items: tuple[OrderItem, ...] = ()
    shipping_method: str | None = None
    tracking: tuple[str, ...] = ()


@dataclass(frozen=True)
class CouponRequest:
    """A single-use percent coupon for one customer; `code` is chosen by incidencias beforehand."""

    code: str
    percent: int
    valid_from: date
    valid_until: date  # last valid day
    customer_email: str
    title: str  # what the shop's back office shows for it, e.g. "incidencias ticket 12"


@dataclass(frozen=True)
class CouponResult:
    code: str
    created: bool  # False: the shop already had our code (an earlier try that timed out got through)


class ShopError(Exception):
    """The shop did not do what was asked. `retry` is True for outages (time-out, 5xx, 429)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Platform(Protocol):
    kind: str

    def look_up_order(self, number: str) -> Order | None:
        """The order the customer calls `number`, None when the shop has no such order."""
        ...

    def create_coupon(self, request: CouponRequest) -> CouponResult:
        """Create the coupon; the shop's "this code already exists" counts as success."""
        ...

    def check(self) -> str:
        """One read-only call proving the URL and credentials; a line for check-config."""
        ...

    def close(self) -> None:
        ...
