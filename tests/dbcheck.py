"""Read the daemon's database directly, to check invariants the CLI does not show."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from daemon.models import Message, OutboxItem, RawMessage, Ticket


class DatabaseView:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    @classmethod
    def for_config_dir(cls, directory: Path) -> DatabaseView:
        return cls(f"sqlite:///{directory / 'incidencias.db'}")

    def close(self) -> None:
        self.engine.dispose()

    def count(self, model: type[RawMessage] | type[Ticket] | type[Message] | type[OutboxItem]) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def raw_outcomes(self) -> Counter[str]:
        with Session(self.engine) as session:
            return Counter(session.scalars(select(RawMessage.outcome)))

    def raw_rows(self) -> list[RawMessage]:
        with Session(self.engine) as session:
            return list(session.scalars(select(RawMessage)))

    def inbound_message_ids(self) -> Counter[str]:
        with Session(self.engine) as session:
            return Counter(session.scalars(
                select(Message.message_id).where(Message.direction == "in")))

    def outbox_by_kind(self, kind: str) -> list[OutboxItem]:
        with Session(self.engine) as session:
            return list(session.scalars(select(OutboxItem).where(OutboxItem.kind == kind)))
