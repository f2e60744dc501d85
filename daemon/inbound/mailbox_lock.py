"""Which instance works a mailbox: one PostgreSQL session advisory lock per mailbox.

The lock belongs to the database connection that took it, so PostgreSQL itself releases it when
the holder goes away — killed, crashed, or cut off long enough for the server to drop its
connection — and another instance takes the mailbox at its next try. The lock connection asks
the server for short TCP keepalives, so a holder whose machine vanished is noticed in about half
a minute rather than the kernel's default two hours. SQLite serves one instance by design, so
there every mailbox is always this instance's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger("daemon.mailbox_lock")

# Server side: drop a silent client after about 10 + 5 * 3 s; client side: give up on a
# connection whose sent data goes unacknowledged for 30 s (Linux).
_SERVER_KEEPALIVES = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
_CLIENT_OPTIONS: dict[str, object] = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 30_000, "connect_timeout": 10, "options": _SERVER_KEEPALIVES,
}


def lock_key(mailbox: str) -> int:
    """The mailbox's advisory lock key: stable across machines and versions, signed 64-bit."""
    digest = hashlib.sha256(f"incidencias mailbox {mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class MailboxLock(Protocol):
    mailbox: str

    def acquire(self) -> bool:
        """Try to take the mailbox without waiting; True when this instance holds it."""

    def held(self) -> bool:
        """Whether the mailbox is still this instance's (a lost connection means it is not)."""

    def release(self) -> None:
        """Give the mailbox up so another instance can take it at once."""

    def close(self) -> None:
        """Release, and close what the lock holds open."""


class SingleInstance:
    """SQLite: only one daemon uses the file, so the mailbox is always ours."""

    def __init__(self, mailbox: str) -> None:
        self.mailbox = mailbox

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None

    def close(self) -> None:
        return None


class AdvisoryLock:
    """`pg_try_advisory_lock` held on a dedicated connection for as long as the mailbox is ours."""

    def __init__(self, engine: Engine, mailbox: str) -> None:
        self.mailbox = mailbox
        self.key = lock_key(mailbox)
        self._engine = create_engine(engine.url, poolclass=NullPool, connect_args=_CLIENT_OPTIONS)
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        if self._connection is not None:
            return self.held()
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            log.warning("mailbox %s: cannot reach the database to claim it (%s)", self.mailbox,
                        type(exc).__name__)
            return False
        try:
            taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": self.key}))
        except SQLAlchemyError as exc:
            log.warning("mailbox %s: claiming it failed (%s)", self.mailbox, type(exc).__name__)
            self._discard(connection)
            return False
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("mailbox %s: the connection holding its lock failed (%s); another "
                        "instance may take it over", self.mailbox, type(exc).__name__)
            self._discard(self._connection)
            self._connection = None
            return False
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            connection.close()
        except SQLAlchemyError:
            self._discard(connection)

    def close(self) -> None:
        self.release()
        self._engine.dispose()

    @staticmethod
    def _discard(connection: Connection) -> None:
        """Close a broken connection; closing the socket is what releases the lock server-side."""
        with contextlib.suppress(SQLAlchemyError):
            connection.invalidate()
            connection.close()


def make_lock(engine: Engine, mailbox: str) -> MailboxLock:
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, mailbox)
    return SingleInstance(mailbox)
