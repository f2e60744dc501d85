"""The real daemon rides out outages of the real servers: Dovecot stopped mid-backlog, SMTP down.

Both servers come back on the same port with the same data, as after a restart or a network cut.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from helpers.dbcheck import DatabaseView
from helpers.figures import record
from helpers.harness import (
    SHOP_ADDRESS,
    SHOP_USER,
    cli,
    customer_email,
    start_daemon,
    stop_daemon,
    to_customers,
    wait_until,
    write_config,
)
from helpers.mailservers import Dovecot, SmtpSink
from helpers.pgserver import PostgresServer
from sqlalchemy.exc import OperationalError, ProgrammingError

from daemon.storage.models import OutboxItem, OutboxStatus, RawMessage

RECOVERY_LIMIT = 30.0
OUTBOX_SWEEP = 15  # seconds between the daemon's outbox sweeps (daemon/service.py)


def _first(i: int, sender: str | None = None) -> bytes:
    return customer_email(f"Pedido {i} sin llegar", f"El pedido {i} no ha llegado.",
                          sender=sender or f"cliente{i}@example.net", name=f"Cliente {i}",
                          message_id=f"<outage-{i}@example.net>")


def _utf8_sender(i: int) -> bytes:
    """Mail from an internationalised address, as an SMTPUTF8 client sends it."""
    return (f"From: Jörg <jdöe@mächine.example>\r\nTo: {SHOP_ADDRESS}\r\nSubject: Pedido {i}\r\n"
            f"Message-ID: <outage-{i}@example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nEl pedido no ha llegado.\r\n").encode()


def _acknowledged(sink: SmtpSink) -> Counter[str]:
    """Customer deliveries per Message-ID: every value must end up 1."""
    return Counter(str(m.message["Message-ID"]) for m in to_customers(sink))


def _count(db: DatabaseView, model: type[RawMessage] | type[OutboxItem]) -> int:
    try:
        return db.count(model)
    except (OperationalError, ProgrammingError):  # no schema yet (SQLite, PostgreSQL)
        return 0


def test_a_dovecot_restart_mid_backlog_is_survived_and_new_mail_handled_within_30_seconds(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    backlog = 40
    imap.append_many(SHOP_USER, [_first(i) for i in range(backlog)])
    config = write_config(tmp_path, imap, smtp_sink)
    db = DatabaseView.for_config_dir(tmp_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_until(lambda: _count(db, RawMessage) >= 5, 60, "the backlog to be under way")
        imap.stop()
        time.sleep(3)
        imap.start()
        back = time.monotonic()
        imap.append(SHOP_USER, _first(backlog))
        wait_until(lambda: any(str(m.message["In-Reply-To"]) == f"<outage-{backlog}@example.net>"
                               for m in to_customers(smtp_sink)),
                   RECOVERY_LIMIT + 5, "the acknowledgement of mail sent after the restart")
        recovery = time.monotonic() - back
        wait_until(lambda: len(_acknowledged(smtp_sink)) >= backlog + 1, 60, "every acknowledgement")
        alive = daemon.poll() is None
        status = stop_daemon(daemon)
        inbox = imap.folder_uids(SHOP_USER, "INBOX")
        processed = imap.folder_uids(SHOP_USER, "Procesados")
        stored = db.inbound_message_ids()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        db.close()
    acks = _acknowledged(smtp_sink)
    record("messages tried", backlog + 1)
    record("crashes of the daemon", int(not alive))
    record("messages lost", backlog + 1 - len(stored))
    record("IMAP outage: from Dovecot's return to new mail acknowledged", f"{recovery:.1f} s")
    assert alive and status == 0, log.read_text()
    assert recovery < RECOVERY_LIMIT
    assert inbox == [] and len(processed) == backlog + 1
    assert set(stored) == {f"outage-{i}@example.net" for i in range(backlog + 1)}
    assert all(n == 1 for n in stored.values())
    assert len(acks) == backlog + 1 and all(n == 1 for n in acks.values()), acks
    text = log.read_text()
    assert "recovered" in text
    assert text.count("unavailable") == 1, "one log line per outage, not one per retry"


def test_mail_queued_while_smtp_is_down_is_delivered_once_when_it_returns(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    # Short retry delays so the test need not wait out the production backoff.
    config.write_text(config.read_text().replace("max_attempts_per_run = 2",
                                                 'max_attempts_per_run = 2\nretry_max = "2s"'))
    db = DatabaseView.for_config_dir(tmp_path)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    queued = 12
    try:
        imap.append(SHOP_USER, _first(0))
        wait_until(lambda: len(_acknowledged(smtp_sink)) == 1, 30, "the first acknowledgement")
        smtp_sink.stop()
        # Two odd customers: a UTF-8 address (needs SMTPUTF8, which aiosmtpd offers) and an encoded
        # word where the address should be, which no server can take: it must fail alone.
        imap.append_many(SHOP_USER, [_first(i) for i in range(1, queued)]
                         + [_utf8_sender(queued), _first(queued + 1, sender="jdöe@mächine.example")])
        wait_until(lambda: _count(db, RawMessage) == queued + 2, 60, "the backlog to be stored")
        wait_until(lambda: _pending(db) >= 3 * queued, 30, "the backlog to wait in the outbox")
        time.sleep(5)  # SMTP stays down across several delivery attempts
        deferred_while_down = _pending(db)
        smtp_sink.start()
        back = time.monotonic()
        wait_until(lambda: _pending(db) == 0, 60, "the outbox to drain")
        drained = time.monotonic() - back
        alive = daemon.poll() is None
        status = stop_daemon(daemon)
        failed = _failed_recipients(db)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        db.close()
    acks = _acknowledged(smtp_sink)
    everything = Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    record("messages tried", queued + 1)
    record("crashes of the daemon", int(not alive))
    record("duplicate deliveries to customers", sum(n - 1 for n in acks.values()))
    record("SMTP outage: mails queued while down, delivered once after its return",
           f"{deferred_while_down - len(failed)} in {drained:.1f} s")
    assert alive and status == 0, log.read_text()
    assert len(failed) == 1 and "?utf-8?" in failed[0], failed
    assert len(acks) == queued + 1 and all(n == 1 for n in acks.values()), acks
    assert any("jdöe@mächine.example" in m.rcpt_tos for m in to_customers(smtp_sink))
    assert all(n == 1 for n in everything.values()), "an agent notification was sent twice"


def test_the_database_server_going_away_for_a_while_is_survived(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, postgres: PostgresServer) -> None:
    # A cluster of its own: stopping the session's shared one would pull it from under other tests.
    server = PostgresServer()
    server.start()
    log = tmp_path / "daemon.log"
    daemon = None
    try:
        config = write_config(tmp_path, imap, smtp_sink, database_url=server.create_database("outage"))
        cli(config, "db", "upgrade")
        daemon = start_daemon(config, log)
        imap.append(SHOP_USER, _first(0))
        wait_until(lambda: len(_acknowledged(smtp_sink)) == 1, 30, "the first acknowledgement")
        server.stop()
        imap.append(SHOP_USER, _first(1))
        # Longer than an outbox sweep, so every part of the daemon meets the missing database.
        time.sleep(OUTBOX_SWEEP + 2)
        alive_during = daemon.poll() is None
        server.start()
        back = time.monotonic()
        wait_until(lambda: len(_acknowledged(smtp_sink)) == 2 or daemon.poll() is not None, 60,
                   "the acknowledgement of mail that came while the database was away")
        recovery = time.monotonic() - back
        alive = daemon.poll() is None
        status = stop_daemon(daemon)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        server.close()
    record("messages tried", 2)
    record("crashes of the daemon", int(not (alive_during and alive)))
    record("database outage: from PostgreSQL's return to new mail acknowledged", f"{recovery:.1f} s")
    assert alive_during and alive and status == 0, log.read_text()
    assert len(_acknowledged(smtp_sink)) == 2


def _pending(db: DatabaseView) -> int:
    return sum(1 for item in _outbox(db) if item.status == OutboxStatus.PENDING)


def _failed_recipients(db: DatabaseView) -> list[str]:
    return [item.recipients for item in _outbox(db) if item.status == OutboxStatus.FAILED]


def _outbox(db: DatabaseView) -> list[OutboxItem]:
    try:
        return [item for kind in ("acknowledgement", "notification") for item in db.outbox_by_kind(kind)]
    except (OperationalError, ProgrammingError):  # no schema yet (SQLite, PostgreSQL)
        return []
