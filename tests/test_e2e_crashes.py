"""SIGKILL the real daemon at random (seeded) points over a growing backlog: nothing is lost.

Thirty trials, each adding a few messages to a real Dovecot INBOX, starting `incidencias run` and
killing it at a point chosen by a seeded generator: a moment after start (startup, migration,
fetching), after the Nth message is stored, or inside the SMTP server between DATA and the reply —
the one window where at-least-once delivery must resend the identical message. Set
INCIDENCIAS_CRASH_SEED to replay another sequence of kill points.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from helpers.dbcheck import DatabaseView
from helpers.figures import record
from helpers.harness import (
    SHOP_USER,
    customer_email,
    run_once,
    start_daemon,
    to_customers,
    wait_until,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from daemon.storage.models import OutboxItem, OutboxStatus, RawMessage

SEED = int(os.environ.get("INCIDENCIAS_CRASH_SEED", "20260302"))
TRIALS = 30
INITIAL_NEW = 12
KILL_WAIT = 20.0


class Backlog:
    """Customer mail in arrival order: first messages, replies to them, and mail with no sender."""

    def __init__(self) -> None:
        self.new: list[str] = []
        self.replies: list[str] = []
        self.broken: list[str] = []

    def first(self) -> bytes:
        i = len(self.new)
        self.new.append(f"first-{i}@example.net")
        return customer_email(f"Pedido {i} incompleto", f"Falta un artículo del pedido {i}.",
                              sender=f"cliente{i}@example.net", name=f"Cliente {i}",
                              message_id=f"<first-{i}@example.net>")

    def reply(self, rng: random.Random) -> bytes:
        i, j = rng.randrange(len(self.new)), len(self.replies)
        self.replies.append(f"reply-{j}@example.net")
        return customer_email(f"Re: Pedido {i} incompleto", "Otra cosa más.",
                              sender=f"cliente{i}@example.net", message_id=f"<reply-{j}@example.net>",
                              in_reply_to=f"<first-{i}@example.net>",
                              references=[f"<first-{i}@example.net>"])

    def without_sender(self) -> bytes:
        k = len(self.broken)
        self.broken.append(f"broken-{k}@example.net")
        return f"Message-ID: <broken-{k}@example.net>\r\nSubject: sin remitente\r\n\r\nNada.\r\n".encode()

    @property
    def all_ids(self) -> list[str]:
        return [*self.new, *self.replies, *self.broken]


class KillInSmtp:
    """SIGKILLs the daemon from inside the SMTP server once it has received `target` messages."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.process: subprocess.Popen[bytes] | None = None
        self.target: int | None = None
        self.lock = threading.Lock()

    def arm(self, process: subprocess.Popen[bytes], target: int) -> None:
        with self.lock:
            self.process, self.target = process, target

    def disarm(self) -> None:
        with self.lock:
            self.process = self.target = None

    def __call__(self, mail: CapturedMail) -> None:
        with self.lock:
            if self.process is not None and self.target is not None and \
                    len(self.sink.messages) >= self.target:
                self.process.send_signal(signal.SIGKILL)
                self.process = self.target = None


def _captured(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]).strip("<>") for m in list(sink.messages))


def _pending_ids(db: DatabaseView) -> set[str]:
    try:
        with Session(db.engine) as session:
            return set(session.scalars(select(OutboxItem.message_id)
                                       .where(OutboxItem.status == OutboxStatus.PENDING)))
    except (OperationalError, ProgrammingError):  # no schema yet (SQLite, PostgreSQL)
        return set()


def _stored(db: DatabaseView) -> int:
    try:
        return db.count(RawMessage)
    except (OperationalError, ProgrammingError):  # no schema yet (SQLite, PostgreSQL)
        return 0


def _wait_stored(db: DatabaseView, daemon: subprocess.Popen[bytes], goal: int) -> None:
    wait_until(lambda: _stored(db) >= goal or daemon.poll() is not None, KILL_WAIT,
               f"{goal} messages stored")


def _wait_killed_in_smtp(killer: KillInSmtp, daemon: subprocess.Popen[bytes]) -> None:
    wait_until(lambda: daemon.poll() is not None or killer.target is None, KILL_WAIT,
               "the daemon to send mail")


def test_thirty_random_sigkills_lose_nothing_and_never_send_a_customer_two_different_messages(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    rng = random.Random(SEED)
    backlog = Backlog()
    imap.append_many(SHOP_USER, [backlog.first() for _ in range(INITIAL_NEW)])
    config = write_config(tmp_path, imap, smtp_sink)
    db = DatabaseView.for_config_dir(tmp_path)
    killer = KillInSmtp(smtp_sink)
    smtp_sink.on_message = killer
    crashes = kills = kills_while_sending = 0
    points: Counter[str] = Counter()
    timeline: list[str] = []  # trial:kill point:seconds alive:exit status, printed for a failure
    try:
        for trial in range(TRIALS):
            batch = [backlog.first(), backlog.first(), backlog.reply(rng)]
            if trial % 6 == 5:
                batch.append(backlog.without_sender())
            imap.append_many(SHOP_USER, batch)
            point = rng.choice(["after-start", "after-stored", "in-smtp"])
            points[point] += 1
            captured_before = _captured(smtp_sink)
            stored_before = _stored(db)
            started = time.monotonic()
            daemon = start_daemon(config, tmp_path / f"daemon-{trial}.log")
            try:
                if point == "after-start":
                    time.sleep(rng.uniform(0.0, 2.0))
                elif point == "after-stored":
                    _wait_stored(db, daemon, stored_before + rng.randint(1, len(batch)))
                else:
                    killer.arm(daemon, len(smtp_sink.messages) + rng.randint(1, 4))
                    _wait_killed_in_smtp(killer, daemon)
            finally:
                killer.disarm()
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGKILL)
                elif daemon.returncode != -signal.SIGKILL:
                    crashes += 1
                daemon.wait(10)
            kills += daemon.returncode == -signal.SIGKILL
            timeline.append(f"{trial}:{point}:{time.monotonic() - started:.1f}s:rc={daemon.returncode}")
            # Delivered during this trial but never marked sent: the kill landed while sending.
            captured_now = _captured(smtp_sink)
            kills_while_sending += any(captured_now[mid] > captured_before[mid]
                                       for mid in _pending_ids(db))
        final = run_once(config)
        inbound = db.inbound_message_ids()
        raws = db.raw_rows()
        acks = db.outbox_by_kind("acknowledgement")
    finally:
        smtp_sink.on_message = None
        db.close()

    stored_ids = Counter(_message_id(row.raw) for row in raws)
    outcome_of = {_message_id(row.raw): row.outcome for row in raws}
    processed = Counter(_message_id(raw) for raw in imap.fetch_all(SHOP_USER, "Procesados"))
    quarantined = Counter(_message_id(raw) for raw in imap.fetch_all(SHOP_USER, "Cuarentena"))
    customer_ids = [*backlog.new, *backlog.replies]
    lost = [mid for mid in backlog.all_ids if stored_ids[mid] != 1 or
            processed[mid] + quarantined[mid] != 1]
    deliveries = to_customers(smtp_sink)
    per_id = Counter(str(m.message["Message-ID"]) for m in deliveries)
    distinct_per_ticket: dict[str, set[str]] = {}
    for mail in deliveries:
        distinct_per_ticket.setdefault(str(mail.message["X-Incidencias-Ticket"]), set()).add(
            str(mail.message["Message-ID"]))
    different_twice = sum(len(ids) - 1 for ids in distinct_per_ticket.values())
    resends = sum(n - 1 for n in _captured(smtp_sink).values())
    bytes_per_id: dict[str, set[bytes]] = {}
    for mail in smtp_sink.messages:
        bytes_per_id.setdefault(str(mail.message["Message-ID"]), set()).add(mail.data)
    customer_resends = sum(n - 1 for n in per_id.values())

    record("messages tried", len(backlog.all_ids))
    record("crashes of the daemon", crashes)
    record("messages lost", len(lost))
    record("duplicate deliveries to customers", different_twice)
    record("SIGKILL trials", f"{kills} of {TRIALS} (seed {SEED}; points {dict(points)})")
    record("SIGKILL: kills that landed while sending", kills_while_sending)
    record("SIGKILL: identical resends (same Message-ID), all mail", resends)
    record("SIGKILL: identical resends (same Message-ID) to customers", customer_resends)
    print(f"SIGKILL: {kills} kills {dict(points)}, {kills_while_sending} while sending, {resends} "
          f"identical resends ({customer_resends} to customers), {len(backlog.all_ids)} messages, "
          f"seed {SEED}\n{' '.join(timeline)}")

    assert crashes == 0, "the daemon died on its own"
    assert kills >= TRIALS, "a trial ended without its SIGKILL"
    assert final.returncode == 0
    assert lost == [], "messages missing, stored twice or in two folders"
    assert imap.folder_uids(SHOP_USER, "INBOX") == []
    assert all(inbound[mid] == 1 for mid in customer_ids) and set(inbound) == set(customer_ids)
    assert all(outcome_of[mid] == "quarantined" and quarantined[mid] == 1 for mid in backlog.broken)
    assert all(processed[mid] == 1 for mid in customer_ids)
    assert len(acks) == len(backlog.new) and all(a.status == "sent" for a in acks)
    assert set(distinct_per_ticket) == {str(a.ticket_id) for a in acks}, "an acknowledgement is missing"
    assert different_twice == 0, "a customer got two different messages for one event"
    assert resends <= kills_while_sending
    assert all(len(versions) == 1 for versions in bytes_per_id.values()), "a resend was not identical"


def _message_id(raw: bytes) -> str:
    for line in raw.splitlines():
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode().strip("<>")
    return ""
