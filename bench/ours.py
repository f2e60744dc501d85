"""incidencias measured: in-process pipeline, parse floor, end-to-end, latency and scale.

The pipeline and the parse floor run in this process on the same bytes. End-to-end, latency and
the backlog run the real `incidencias run` daemon as a subprocess against a real Dovecot and an
aiosmtpd sink (tests/helpers/mailservers.py), because that is what a shop runs.
"""

from __future__ import annotations

import contextlib
import email
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from pathlib import Path

import mailparser
from helpers.mailservers import Dovecot, SmtpSink
from sqlalchemy import create_engine, insert, select, text

from bench import setup
from bench.setup import REPO, write_config
from bench.workload import Workload, generate, threading_correctness
from daemon.config import load_settings
from daemon.inbound.intake import transactions
from daemon.runtime.service import Components, build
from daemon.storage.models import Direction, Message, RawMessage, Ticket
from daemon.tickets.router import Source

DAEMON_READY = "watching"
STAGING = "Staging"


@dataclass
class PipelineRun:
    seconds: float
    messages: int
    queued: int
    threading: float
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def pipeline(workload: Workload, directory: Path) -> PipelineRun:
    """parse → classify → thread → apply → compose → outbox for every message, on a fresh SQLite file.

    In transactions as the daemon's intake makes them from a backlog: `[imap] fetch_batch`
    messages (bounded by the intake's TRANSACTION_BYTES) per `Ingestor.ingest_many`.
    """
    settings = load_settings(write_config(directory))
    parts = build(settings)
    queued = 0
    outcomes: dict[str, int] = {}
    numbered = list(enumerate(workload.raws, 1))
    size = settings.config.imap.fetch_batch
    start = time.perf_counter()
    for first in range(0, len(numbered), size):
        for group in transactions(numbered[first:first + size]):
            for outcome in parts.ingestor.ingest_many(
                    [(raw, Source("INBOX", 1, uid)) for uid, raw in group]):
                queued += outcome.queued
                outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
    seconds = time.perf_counter() - start
    with parts.sessions() as session:
        rows = session.execute(select(Message.message_id, Message.ticket_id)
                               .where(Message.direction == Direction.IN)).all()
    parts.engine.dispose()
    ticket_of: dict[str, str | int | None] = {mid: ticket for mid, ticket in rows}
    return PipelineRun(seconds, len(workload.mails), queued,
                       threading_correctness(workload, ticket_of), outcomes)


def warm_up(directory: Path, messages: int = 60) -> None:
    """Load what a running daemon has loaded after its first messages.

    Lingua loads each language's models on first use (up to a second), templates compile once:
    60 messages cover every language and template of the workload.
    """
    pipeline(generate(messages, seed=999), directory)


def parse_floor(raws: Sequence[bytes]) -> dict[str, float]:
    """Messages per second of mail-parser alone and of the stdlib parser, on the same bytes."""
    start = time.perf_counter()
    for raw in raws:
        mailparser.parse_from_bytes(raw)
    mail_parser = len(raws) / (time.perf_counter() - start)
    start = time.perf_counter()
    for raw in raws:
        email.message_from_bytes(raw, policy=policy.default)
    stdlib = len(raws) / (time.perf_counter() - start)
    return {"mail-parser": mail_parser, "email.policy.default": stdlib}


class Servers:
    """A private Dovecot and an SMTP sink, shared by the end-to-end measurements."""

    def __init__(self) -> None:
        self.dovecot = Dovecot(users=(setup.IMAP_USER,), password=setup.PASSWORD)
        self.sink = SmtpSink(username="incidencias@example.com", password=setup.PASSWORD)

    def __enter__(self) -> Servers:
        self.dovecot.start()
        self.sink.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sink.stop()
        self.dovecot.close()

    def fresh(self) -> None:
        self.dovecot.reset_user(setup.IMAP_USER)
        self.sink.clear()

    def config(self, directory: Path, language_detection: str = "accurate") -> Path:
        return write_config(directory, self.dovecot.port, self.sink.port, language_detection)


class Daemon:
    """`incidencias run` as a subprocess, its log in a file; ready once it watches the inbox."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = config.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("INCIDENCIAS_CONFIG", None)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon", "-c", str(self.config), "run"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while DAEMON_READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def _release(servers: Servers, raws: Sequence[bytes]) -> float:
    """Stage the messages in another folder, then MOVE them all into INBOX at once.

    APPENDing 1,000 messages takes about a second of Dovecot's time; staging first means the
    clock starts when the whole backlog is waiting, as after a night without the daemon.
    Returns the monotonic time just before the MOVE.
    """
    dovecot = servers.dovecot
    dovecot.append_many(setup.IMAP_USER, raws, STAGING)
    with dovecot.client(setup.IMAP_USER) as client:
        client.select_folder(STAGING)
        uids = client.search("ALL")
        start = time.monotonic()
        client.move(uids, "INBOX")
    return start


def _not_ours(sink: SmtpSink) -> int:
    """Mail about no ticket (the agents' daily digest, should its hour come during a run)."""
    return sum(1 for m in list(sink.messages) if b"X-Incidencias-Ticket: 0\r\n" in m.data)


def wait_for_work(sink: SmtpSink, expected: int, timeout: float) -> None:
    """Until the sink holds `expected` mails about tickets."""
    deadline = time.monotonic() + timeout
    while True:
        extra = _not_ours(sink)
        sink.wait_for(expected + extra, max(0.0, deadline - time.monotonic()))
        if _not_ours(sink) == extra:
            return


def end_to_end(servers: Servers, workload: Workload, directory: Path, expected_mail: int,
               timeout: float = 600) -> float:
    """Seconds from a full INBOX to the last acknowledgement/notification accepted by the sink."""
    servers.fresh()
    config = servers.config(directory)
    with Daemon(config):
        start = _release(servers, workload.raws)
        wait_for_work(servers.sink, expected_mail, timeout)
        seconds = time.monotonic() - start
    waiting = servers.dovecot.folder_uids(setup.IMAP_USER, "INBOX")
    if waiting:
        raise RuntimeError(f"{len(waiting)} message(s) still in INBOX after the run")
    return seconds


@dataclass
class LatencyRun:
    seconds: list[float]  # one per message; a stranded one counts as `timeout`
    stranded: int  # acknowledgements that had not come after `timeout` seconds


def latency(servers: Servers, count: int, directory: Path, timeout: float = 10, seed: int = 4242
            ) -> LatencyRun:
    """Seconds from APPEND to the acknowledgement reaching the sink, one new customer at a time.

    Messages arrive 0-500 ms (seeded) after the previous acknowledgement, as unrelated customers
    do; one whose acknowledgement has not come within `timeout` is counted as stranded and the
    next one is sent (its arrival wakes the daemon again).
    """
    servers.fresh()
    config = servers.config(directory)
    mails = [m for m in generate(count * 4 + 4, seed=seed).mails if not m.is_reply][:count]
    gaps = random.Random(seed)
    found: list[float] = []
    stranded = 0
    with Daemon(config), servers.dovecot.client(setup.IMAP_USER) as client:
        seen = 0
        for mail in mails:
            customer = email.message_from_bytes(mail.raw)["From"].rpartition("<")[2].rstrip(">")
            time.sleep(gaps.uniform(0, 0.5))
            start = time.monotonic()
            client.append("INBOX", mail.raw.replace(b"\n", b"\r\n"))
            while True:
                try:
                    arrived = servers.sink.wait_for(seen + 1, max(0.0, start + timeout - time.monotonic()))
                except AssertionError:
                    found.append(timeout)
                    stranded += 1
                    break
                seen += 1
                if customer in arrived[seen - 1].rcpt_tos:
                    found.append(time.monotonic() - start)
                    break
    return LatencyRun(found, stranded)


@dataclass
class ScaleResult:
    tickets: int
    sweep_ms: list[float]
    sweep_sent: int  # mail the measured sweeps queued: 0 when they measured queries alone
    list_seconds: list[float]
    database_mb: float


def scale(directory: Path, tickets: int, sweeps: int = 5, lists: int = 3) -> ScaleResult:
    """A database with `tickets` tickets, 95 % closed: sweep time, `tickets list` time, file size."""
    config = write_config(directory)
    settings = load_settings(config)
    now = datetime(2026, 3, 3, 11, 0)  # a Tuesday, inside business hours
    parts = build(settings, clock=lambda: now)
    _fill(parts, tickets, now)
    parts.lifecycle.sweep()  # the first sweep after a start also pays for cold pages
    sweep_ms = []
    sent = 0
    for _ in range(sweeps):
        start = time.perf_counter()
        sent += parts.lifecycle.sweep().total
        sweep_ms.append((time.perf_counter() - start) * 1000)
    parts.engine.dispose()
    list_seconds = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(lists):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "daemon", "-c", str(config), "tickets", "list"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        list_seconds.append(time.perf_counter() - start)
    return ScaleResult(tickets, sweep_ms, sent, list_seconds, _database_mb(settings.config.database.url))


def _database_mb(url: str) -> float:
    """The SQLite file (with its journal) or the PostgreSQL database, in MB."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            size = connection.scalar(text("SELECT pg_database_size(current_database())"))
    finally:
        engine.dispose()
    return int(size or 0) / 1e6


_RAW = (
    "From: Cliente {i} <cliente{i}@example.net>\r\nTo: incidencias@example.com\r\n"
    "Subject: Pedido {i} no recibido\r\nDate: Mon, 02 Mar 2026 09:00:00 +0100\r\n"
    "Message-ID: <scale{i}@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "Hola, hice el pedido {i} hace dos semanas y no ha llegado. El seguimiento no se actualiza.\r\n"
    "¿Podrían revisarlo? Gracias.\r\n\r\nCliente {i}\r\n"
)


def _fill(parts: Components, count: int, now: datetime) -> None:
    """Tickets as a year of use leaves them: customer message and acknowledgement each, raw kept.

    Open tickets (5 %) were answered by an agent and heard from us within the last day, and old
    ones had their one age reminder, as a running daemon leaves them: the sweep measures its
    queries, not composing mail.
    """
    batch = 5000
    for first in range(1, count + 1, batch):
        ids = range(first, min(count, first + batch - 1) + 1)
        tickets, messages, raws = [], [], []
        for i in ids:
            created = now - timedelta(minutes=(count - i) * 5)
            closed = i % 20 != 0
            recent = now - timedelta(hours=(i % 23) + 1)
            raw = _RAW.format(i=i).encode()
            answered = created + timedelta(hours=2)
            tickets.append(dict(
                id=i, status="closed" if closed else "open", customer_email=f"cliente{i}@example.net",
                customer_name=f"Cliente {i}", subject=f"Pedido {i} no recibido",
                subject_key=f"pedido {i} no recibido", language="es", created_at=created,
                updated_at=created, last_outbound_at=created if closed else recent,
                first_agent_reply_at=answered, last_agent_reply_at=answered if closed else recent,
                age_reminded_at=None if closed else created + timedelta(days=10),
                closed_at=created + timedelta(days=2) if closed else None))
            raws.append(dict(id=i, sha256=f"{i:064x}", size=len(raw), raw=raw, folder="INBOX",
                             uidvalidity=1, uid=i, outcome="ticket", message_id=f"scale{i}@example.net",
                             ticket_id=i, received_at=created))
            messages.append(dict(ticket_id=i, direction="in", message_id=f"scale{i}@example.net",
                                 from_email=f"cliente{i}@example.net", subject=f"Pedido {i} no recibido",
                                 text=raw.decode().split("\r\n\r\n", 1)[1], kind="customer", raw_id=i,
                                 created_at=created))
            messages.append(dict(ticket_id=i, direction="out", message_id=f"ack{i}@example.com",
                                 from_email="incidencias@example.com",
                                 subject=f"[#{i}] Pedido {i} no recibido",
                                 text="Hemos recibido su mensaje y le responderemos pronto.",
                                 kind="acknowledgement", created_at=created))
        with parts.sessions.begin() as session:
            session.execute(insert(Ticket), tickets)
            session.execute(insert(RawMessage), raws)
            session.execute(insert(Message), messages)


@dataclass
class BacklogResult:
    messages: int
    seconds: float
    peak_rss_mb: float
    samples: list[tuple[float, int, float]]  # (seconds, mails delivered, RSS MB)
    finished: bool = True  # False: the timeout came first; the figures cover what was done


def _rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """The daemon's memory with every process it started (a sender, a helper): VmRSS now, or with
    "VmHWM" the sum of each process's peak — an upper bound, as the peaks need not coincide."""
    total = 0.0
    for process in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1]) / 1024
    return total


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc's children lists."""
    found, waiting = [], [pid]
    while waiting:
        process = waiting.pop()
        found.append(process)
        for task in Path(f"/proc/{process}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                waiting += [int(child) for child in task.read_text().split()]
    return found


def backlog(servers: Servers, workload: Workload, directory: Path, expected_mail: int,
            timeout: float | None = None, language_detection: str = "accurate") -> BacklogResult:
    """Peak and sampled RSS of the daemon while it works through a backlog already in INBOX."""
    servers.fresh()
    config = servers.config(directory, language_detection)
    samples: list[tuple[float, int, float]] = []
    with Daemon(config) as daemon:
        done = threading.Event()
        start = _release(servers, workload.raws)

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic() - start, len(servers.sink.messages),
                                _rss_mb(daemon.pid)))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        finished = True
        try:
            # About 35 msg/s on a 2-core machine: room for a tenth of that.
            wait_for_work(servers.sink, expected_mail, timeout or 600 + len(workload.mails) / 3)
        except AssertionError:
            finished = False
        finally:
            done.set()
            sampler.join()
        seconds = time.monotonic() - start
        peak = _rss_mb(daemon.pid, "VmHWM")
    return BacklogResult(len(workload.mails), seconds, peak, samples, finished)


def expected_mail(workload: Workload) -> int:
    """Acknowledgement per conversation, one notification per agent per message."""
    return workload.conversations + len(workload.mails) * len(setup.AGENTS)
