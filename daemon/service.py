"""The daemon: IMAP intake in a worker thread, the outbox sender and the scheduler on asyncio.

imapclient is synchronous, so the mailbox loop runs in its own thread and wakes the sender
through the event loop after each commit. SIGTERM/SIGINT set one stop flag: the intake finishes
the message in hand, the sender the message in flight, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon import db, logs
from daemon.config import Settings
from daemon.discounts import load_pool, make_provider
from daemon.imap_inbox import ImapInbox
from daemon.ingest import Ingestor
from daemon.intake import Intake
from daemon.lifecycle import Lifecycle
from daemon.mailer import Mailer
from daemon.metrics import DatabaseCollector, MetricsServer, observe_scheduler
from daemon.models import utcnow
from daemon.outbox import OutboxSender, probe
from daemon.reload import Reloader
from daemon.rendering import Renderer
from daemon.sd_notify import Notifier, watchdog_interval
from daemon.supervision import Supervision

log = logging.getLogger(__name__)

_OUTBOX_SWEEP_SECONDS = 15
_STATUS_EVERY_SECONDS = 10


class SchemaOutdated(Exception):
    """The database is behind the code; the sysadmin runs `incidencias db upgrade`."""


@dataclass
class Components:
    engine: Engine
    sessions: sessionmaker[Session]
    renderer: Renderer
    mailer: Mailer
    lifecycle: Lifecycle
    ingestor: Ingestor
    sender: OutboxSender


def prepare_database(settings: Settings) -> Engine:
    """Open the database; a SQLite file is migrated automatically, other servers must be current."""
    engine = db.make_engine(settings.config.database.url)
    if engine.dialect.name == "sqlite":
        db.upgrade(engine)
        return engine
    current, head = db.current_revision(engine), db.head_revision(engine)
    if current != head:
        raise SchemaOutdated(f"database schema is at {current or 'nothing'}, the code needs {head}: "
                             "run `incidencias db upgrade`")
    return engine


def build(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Components:
    engine = prepare_database(settings)
    sessions = db.session_factory(engine)
    return assemble(settings, engine, sessions, clock)


def assemble(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
             clock: Callable[[], datetime] = utcnow) -> Components:
    """Wire the pipeline's parts together; the clock and the database are passed in."""
    config = settings.config
    renderer = Renderer(config.templates.directory)
    secret = settings.secrets.agent_secret
    agent_secret = secret.get_secret_value().encode() if secret else b""
    mailer = Mailer(config, renderer, clock, agent_secret)
    closing = config.closing
    provider = make_provider(closing.discount_provider, prefix=closing.code_prefix,
                             valid_for=closing.discount_valid_for)
    if closing.pool_file is not None:
        with sessions.begin() as session:
            added = load_pool(session, closing.pool_file)
        if added:
            log.info("loaded %d new discount code(s) from %s", added, closing.pool_file)
    lifecycle = Lifecycle(config, mailer, sessions, clock, provider)
    ingestor = Ingestor(config, mailer, lifecycle, sessions, clock, agent_secret)
    smtp_password = settings.secrets.smtp_password
    sender = OutboxSender(config.smtp, smtp_password.get_secret_value() if smtp_password else None,
                          sessions, clock)
    return Components(engine, sessions, renderer, mailer, lifecycle, ingestor, sender)


def _inbox(settings: Settings) -> ImapInbox:
    password = settings.secrets.imap_password
    return ImapInbox(settings.config.imap, password.get_secret_value() if password else None)


async def run_once(settings: Settings) -> int:
    """One full cycle: every waiting message, then the whole outbox in batches, with bounded retries."""
    parts = build(settings)
    stop = threading.Event()
    inbox = _inbox(settings)
    intake = Intake(settings.config.imap, inbox, parts.ingestor, parts.sessions, stop)

    def fetch_all() -> None:
        inbox.connect()
        try:
            report = intake.cycle()
        finally:
            inbox.close()
        log.info("handled %d message(s): %d new ticket(s), %d quarantined", report.handled,
                 report.new_tickets, report.quarantined)

    await asyncio.to_thread(fetch_all)
    await asyncio.to_thread(parts.lifecycle.sweep)
    retries_left = settings.config.smtp.max_attempts_per_run
    while True:
        report = await parts.sender.deliver_due(ignore_schedule=True)
        if report.deferred:
            retries_left -= 1
            if retries_left <= 0:
                break
            await asyncio.sleep(2.0 ** (settings.config.smtp.max_attempts_per_run - retries_left - 1))
        elif not (report.sent or report.failed):
            break
    waiting = await asyncio.to_thread(parts.sender.pending_count)
    parts.engine.dispose()
    if waiting:
        log.error("%d message(s) could not be delivered in this run and stay in the outbox", waiting)
        return 1
    return 0


async def run_forever(settings: Settings) -> int:
    parts = build(settings)
    logs.apply_config_level(settings.config.logging.level)
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    stopping = asyncio.Event()
    wake = asyncio.Event()
    reloader = Reloader(settings, [parts.mailer, parts.lifecycle, parts.ingestor,
                                   parts.ingestor.agent_replies], [parts.mailer, parts])
    reloading = asyncio.Lock()
    background: set[asyncio.Future[None]] = set()

    def request_stop(signum: int) -> None:
        log.info("received %s, finishing the work in hand", signal.Signals(signum).name)
        supervision.announce_stopping()
        stop.set()
        stopping.set()
        wake.set()

    async def reload() -> None:
        async with reloading:
            await asyncio.to_thread(reloader.reload)
        await supervision.refresh_status()

    def request_reload() -> None:
        log.info("received SIGHUP, reloading %s", settings.path)
        task = asyncio.ensure_future(reload())
        background.add(task)
        task.add_done_callback(background.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, request_reload)

    intake = Intake(settings.config.imap, _inbox(settings), parts.ingestor, parts.sessions, stop,
                    on_committed=lambda: loop.call_soon_threadsafe(wake.set))
    supervision = Supervision(Notifier.from_environment(), parts.sessions, intake,
                              lambda: probe(parts.sender.config, parts.sender.password),
                              healthy=lambda: not intake_done.done())
    scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
    observe_scheduler(scheduler)
    if supervision.notifier.enabled:
        scheduler.add_job(supervision.refresh_status, "interval", seconds=_STATUS_EVERY_SECONDS,
                          id="status", coalesce=True, max_instances=1)
    watchdog_every = watchdog_interval(os.environ, os.getpid())
    if watchdog_every and supervision.notifier.enabled:
        scheduler.add_job(supervision.ping_watchdog, "interval", seconds=watchdog_every,
                          id="watchdog", coalesce=True, max_instances=1)
    metrics: MetricsServer | None = None
    if settings.config.metrics.address:
        metrics = MetricsServer(settings.config.metrics.address,
                                DatabaseCollector(parts.sessions, lambda: intake.last_success_at))
        metrics.start()
    scheduler.add_job(wake.set, "interval", seconds=_OUTBOX_SWEEP_SECONDS, id="outbox-sweep",
                      coalesce=True, max_instances=1)

    async def lifecycle_sweep() -> None:
        try:
            report = await asyncio.to_thread(parts.lifecycle.sweep)
        except Exception:
            log.exception("scheduled work failed; it is retried at the next sweep")
            return
        if report.total:
            wake.set()

    scheduler.add_job(lifecycle_sweep, "interval",
                      seconds=settings.config.updates.sweep_every.total_seconds(),
                      id="lifecycle-sweep", coalesce=True, max_instances=1,
                      next_run_time=datetime.now(UTC))
    scheduler.start()
    intake_done = asyncio.ensure_future(asyncio.to_thread(intake.run_forever))
    ready = asyncio.ensure_future(supervision.announce_ready(stopping))
    log.info("incidencias running for %s", settings.config.shop.address)
    try:
        while not stopping.is_set():
            await wake.wait()
            wake.clear()
            if stopping.is_set():
                break
            await parts.sender.deliver_due()
            if intake_done.done():
                intake_done.result()
                break
    finally:
        if not supervision.stopping:
            supervision.announce_stopping()
        ready.cancel()
        scheduler.shutdown(wait=False)
        stop.set()
        await intake_done
        if metrics:
            metrics.stop()
        parts.engine.dispose()
    log.info("stopped cleanly")
    return 0
