"""Database engine, sessions and schema migrations (Alembic), for SQLite and PostgreSQL alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


def make_engine(url: str) -> Engine:
    """An engine tuned for the daemon: SQLite in WAL mode with a busy timeout, so readers never block it."""
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _ensure_sqlite_directory(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed, not left in free space (personal data erasure).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


# The tables an erasure rewrites; PostgreSQL's VACUUM is asked to reclaim their dead rows.
_ERASED_TABLES = ("tickets", "participants", "messages", "attachments", "raw_messages", "outbox",
                  "promises", "suppressed_addresses")


def compact(engine: Engine) -> str | None:
    """After an erasure, get the erased bytes out of the database files as far as the server allows.

    SQLite: VACUUM rebuilds the file from live rows only, then a TRUNCATE checkpoint empties the
    write-ahead log, which still holds the old pages. PostgreSQL: VACUUM marks dead rows free;
    their bytes stay on disk until overwritten (README, "Personal data"). Returns a warning when
    part of that could not be done (another connection is reading), else None.
    """
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name != "sqlite":
            for table in _ERASED_TABLES:
                connection.exec_driver_sql(f"VACUUM {table}")
            return None
        connection.exec_driver_sql("PRAGMA secure_delete=ON")
        connection.exec_driver_sql("VACUUM")
        busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
    if busy is not None and busy[0]:
        return ("another process is reading the database, so its write-ahead log (-wal file) "
                "still holds old pages; run the command again when the daemon is stopped")
    return None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# Alembic is imported where it is used: `incidencias run` needs it only for the schema check at
# start, and the language models load before that check with ~10 MB less in the process (the
# moment of the daemon's peak memory, bench/ANALYSIS.md).
def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(resources.files("daemon.migrations")))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run on every start."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
