"""Outbox rows emptied when the people they concern are erased: bytes gone, unsent mail cancelled.

The row stays (its kind, dates and status keep the statistics and the rate limits' history); its
recipients are renamed by the caller's function, usually to pseudonyms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.storage.models import OutboxItem, OutboxStatus

CANCELLED = "cancelled: the recipient's personal data was erased"


def empty_rows(session: Session, ids: Iterable[int], rename: Callable[[str], str]) -> int:
    """Empty the not yet emptied rows among `ids`; how many were."""
    emptied = 0
    for item in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(list(ids)),
                                                         func.length(OutboxItem.raw) > 0)):
        emptied += 1
        item.raw = b""
        item.recipients = "\n".join(rename(r) for r in item.recipients.split("\n"))
        item.last_error = None if item.last_error is None else rename(item.last_error)
        if item.status == OutboxStatus.PENDING:
            item.status, item.last_error = OutboxStatus.CANCELLED, CANCELLED
    return emptied
