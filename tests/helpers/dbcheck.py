"""The tests' database: SQLite, or PostgreSQL when INCIDENCIAS_TEST_DATABASE=postgresql; read directly.

Tests ask here for a fresh database URL instead of naming a SQLite file, so the same tests prove
the daemon on both; and they read the daemon's database through the URL its config names, to check
invariants the CLI does not show.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, RawMessage, Ticket
from helpers.pgserver import selected, shared_server, unique_name


def fresh_database_url(directory: Path, filename: str = "incidencias.db") -> str:
    """The database of `directory` (one per name): a SQLite file there, or a PostgreSQL database.

    A PostgreSQL database is created on first use and migrated to the newest schema, as
    `incidencias db upgrade` would (the daemon migrates only SQLite by itself); its URL is kept in
    the directory, so asking again gives the same database, as it gives the same SQLite file.
    """
    if not selected():
        return f"sqlite:///{directory / filename}"
    marker = directory / f"{filename}.postgresql-url"
    if marker.exists():
        return marker.read_text()
    url = shared_server().create_database(unique_name())
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(url)
    return url


def migrated_engine(directory: Path, filename: str = "incidencias.db") -> Engine:
    """An engine on `fresh_database_url(directory, filename)` at the newest schema."""
    engine = db.make_engine(fresh_database_url(directory, filename))
    db.upgrade(engine)
    return engine


def configured_url(config: Path) -> str:
    """The `[database] url` a config file names."""
    with config.open("rb") as handle:
        url: str = tomllib.load(handle)["database"]["url"]
    return url


class DatabaseView:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    @classmethod
    def for_config_dir(cls, directory: Path) -> DatabaseView:
        """The database that `directory`/config.toml (from harness.write_config) points at."""
        return cls(configured_url(directory / "config.toml"))

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
