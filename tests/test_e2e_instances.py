"""Two daemon instances on one PostgreSQL, two shops' mailboxes, one shared outbox.

Issue 7, acceptance 3: over a backlog every message is handled once and every email sent once;
killing the instance that works a mailbox hands the mailbox to the other within a minute.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from helpers.figures import record
from helpers.harness import cli, customer_email, start_daemon, stop_daemon, wait_until
from helpers.mailservers import Dovecot, SmtpSink
from helpers.multishop import DOS, DOS_ADDRESS, UNO, UNO_ADDRESS, write_two_shops
from helpers.pgserver import PostgresServer, unique_name
from sqlalchemy import Engine, Select, create_engine, func, select

from daemon.inbound.mailbox_lock import AdvisoryLock
from daemon.storage.models import Message, OutboxItem, OutboxStatus, RawMessage, Ticket

BACKLOG = 20  # per mailbox: 16 new tickets and 4 follow-ups
TAKEOVER_LIMIT = 60.0
USERS = {UNO: ("incidencias", UNO_ADDRESS), DOS: ("tienda2", DOS_ADDRESS)}


def _backlog(mailbox: str) -> list[bytes]:
    address = USERS[mailbox][1]
    first = [customer_email(f"Pedido {mailbox}-{n}", f"Mi pedido {n} no ha llegado.",
                            sender=f"{mailbox}{n}@example.net", name=f"Cliente {n}", to=address,
                            message_id=f"<{mailbox}-{n}@example.net>")
             for n in range(BACKLOG - 4)]
    follow_ups = [customer_email(f"Re: Pedido {mailbox}-{n}", "¿Alguna novedad?",
                                 sender=f"{mailbox}{n}@example.net", name=f"Cliente {n}", to=address,
                                 in_reply_to=f"<{mailbox}-{n}@example.net>")
                  for n in range(4)]
    return first + follow_ups


def _sent_ids(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages)


def _count(engine: Engine, query: Select[tuple[int]]) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def _holders(logs: dict[str, Path], mailbox: str) -> list[str]:
    return [name for name, log in logs.items()
            if f"mailbox {mailbox}: worked by this instance" in log.read_text()]


def _acknowledged(sink: SmtpSink, customer: str) -> bool:
    return any(m.rcpt_tos == [customer] for m in sink.messages)


def test_two_instances_share_two_mailboxes_and_take_over_from_a_killed_one(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, postgres: PostgresServer) -> None:
    url = postgres.create_database(unique_name())
    config = write_two_shops(tmp_path, imap, smtp_sink, url)
    cli(config, "db", "upgrade")
    for mailbox, (user, _) in USERS.items():
        imap.append_many(user, _backlog(mailbox))
    engine = create_engine(url)
    logs = {"a": tmp_path / "a.log", "b": tmp_path / "b.log"}
    daemons = {name: start_daemon(config, log) for name, log in logs.items()}
    survivor: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _count(engine, select(func.count()).select_from(RawMessage)) == 2 * BACKLOG
                   and _count(engine, select(func.count()).select_from(OutboxItem).where(
                       OutboxItem.status != OutboxStatus.SENT)) == 0,
                   120, "the backlog handled and its mail sent", interval=0.5)
        wait_until(lambda: len(smtp_sink.messages) >= _count(
            engine, select(func.count()).select_from(OutboxItem)), 10, "the sink to see every email")
        for mailbox in USERS:
            assert len(_holders(logs, mailbox)) == 1, f"exactly one instance works {mailbox}"

        holder = _holders(logs, UNO)[0]
        other = next(name for name in daemons if name != holder)
        daemons[holder].send_signal(signal.SIGKILL)
        daemons[holder].wait(10)
        killed_at = time.monotonic()
        imap.deliver("incidencias", customer_email("Nuevo pedido", "Otro problema.",
                                                   sender="after-kill@example.net", to=UNO_ADDRESS))
        imap.deliver("tienda2", customer_email("Nouvelle commande", "Un autre souci.",
                                               sender="apres@example.net", to=DOS_ADDRESS))
        wait_until(lambda: _acknowledged(smtp_sink, "after-kill@example.net")
                   and _acknowledged(smtp_sink, "apres@example.net"),
                   TAKEOVER_LIMIT, "the surviving instance to answer new mail in both mailboxes")
        takeover = time.monotonic() - killed_at
        record("two instances: SIGKILL of a mailbox's holder → new mail answered by the other",
               f"{takeover:.1f} s (limit {TAKEOVER_LIMIT:.0f} s)")
        assert _holders(logs, UNO).count(other) == 1
        survivor = daemons.pop(other)
        assert stop_daemon(survivor) == 0
    finally:
        for process in daemons.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)

    with engine.connect() as connection:
        inbound = Counter(connection.scalars(select(Message.message_id).where(Message.direction == "in")))
        per_mailbox = Counter(connection.scalars(select(Ticket.mailbox)))
        outbox = dict(connection.execute(select(OutboxItem.message_id, OutboxItem.status)).all())
    engine.dispose()
    assert len(inbound) == 2 * BACKLOG + 2 and set(inbound.values()) == {1}, "each message once"
    assert per_mailbox == {UNO: BACKLOG - 4 + 1, DOS: BACKLOG - 4 + 1}
    sent = _sent_ids(smtp_sink)
    assert [mid for mid, times in sent.items() if times > 1] == [], "no email sent twice"
    assert set(sent) == set(outbox) and set(outbox.values()) == {OutboxStatus.SENT}
    assert imap.folder_uids("incidencias", "INBOX") == [] and imap.folder_uids("tienda2", "INBOX") == []


def test_run_once_leaves_a_mailbox_alone_while_another_instance_works_it(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, postgres: PostgresServer) -> None:
    url = postgres.create_database(unique_name())
    config = write_two_shops(tmp_path, imap, smtp_sink, url)
    cli(config, "db", "upgrade")
    imap.append("incidencias", customer_email("Hola", "Una duda.", sender="uno@example.net",
                                              to=UNO_ADDRESS))
    imap.append("tienda2", customer_email("Bonjour", "Une question.", sender="dos@example.net",
                                          to=DOS_ADDRESS))
    engine = create_engine(url)
    other_instance = AdvisoryLock(engine, UNO)
    try:
        assert other_instance.acquire()
        cli(config, "run", "--once")
        assert _acknowledged(smtp_sink, "dos@example.net")
        assert not _acknowledged(smtp_sink, "uno@example.net")
        assert len(imap.folder_uids("incidencias", "INBOX")) == 1, "left for its holder"
        other_instance.release()
        cli(config, "run", "--once")
        assert _acknowledged(smtp_sink, "uno@example.net")
        assert imap.folder_uids("incidencias", "INBOX") == []
    finally:
        other_instance.close()
        engine.dispose()
