"""Operator actions on the outbox: send refused or delayed mail again, once the cause is fixed.

A retried row keeps its bytes and Message-ID (the customer sees the same message, never a second
version) and its attempt count (the history of what went wrong); only its schedule changes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.storage.models import OutboxItem, OutboxStatus


class NotRetryable(Exception):
    """The row does not exist or was already sent."""


def retry(session: Session, item_id: int, now: datetime) -> str:
    """Make one failed or waiting row due now; returns the status it had."""
    item = session.get(OutboxItem, item_id, with_for_update=True)
    if item is None:
        raise NotRetryable(f"no outbox message {item_id}")
    if item.status == OutboxStatus.SENT:
        raise NotRetryable(f"outbox message {item_id} was already sent")
    if item.status == OutboxStatus.CANCELLED or not item.raw:
        raise NotRetryable(f"outbox message {item_id} was erased with its recipient's personal data")
    previous = item.status
    item.status, item.next_attempt_at = OutboxStatus.PENDING, now
    return previous


def retry_all_failed(session: Session, now: datetime) -> list[int]:
    """Every permanently refused row back in the queue, due now; returns their ids."""
    items = list(session.scalars(select(OutboxItem).where(OutboxItem.status == OutboxStatus.FAILED,
                                                          func.length(OutboxItem.raw) > 0)
                                 .order_by(OutboxItem.id).with_for_update()))
    for item in items:
        item.status, item.next_attempt_at = OutboxStatus.PENDING, now
    return [item.id for item in items]
