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
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import LiveConfig, Settings
from daemon.inbound.imap import ImapInbox
from daemon.inbound.intake import Intake
from daemon.inbound.mailbox_lock import make_lock
from daemon.inbound.mailbox_work import MailboxWorker, MailboxWorkers
from daemon.outbound.queue import Mailer
from daemon.outbound.rendering import Renderer
from daemon.outbound.sender import OutboxSender, SendEvents, probe
from daemon.runtime import logs, metrics, retention
from daemon.runtime.metrics import DatabaseCollector, MetricsServer, observe_scheduler
from daemon.runtime.reload import Reloader
from daemon.runtime.sd_notify import Notifier, watchdog_interval
from daemon.runtime.supervision import Supervision
from daemon.shop.lookup import OrderLookup
from daemon.shop.model import Platform
from daemon.storage import db
from daemon.storage.models import utcnow
from daemon.tickets.agents.commands import command_help
from daemon.tickets.coupons import PLATFORM, PlatformCoupons
from daemon.tickets.discounts import DiscountProvider, load_pool, make_provider
from daemon.tickets.lifecycle import Lifecycle
from daemon.tickets.router import Ingestor

log = logging.getLogger("daemon.service")

_OUTBOX_SWEEP_SECONDS = 15
_STATUS_EVERY_SECONDS = 10
# How often a standby instance tries to take a mailbox, and a holder checks it still has it.
_CLAIM_EVERY_SECONDS = 10


class SchemaOutdated(Exception):
    """The database is behind the code; the sysadmin runs `incidencias db upgrade`."""


@dataclass
class Components:
    live: LiveConfig
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


def build_mailboxes(settings: Settings, clock: Callable[[], datetime] = utcnow) -> list[Components]:
    """One Components per mailbox, in config order, sharing the database and the outbox sender."""
    engine = prepare_database(settings)
    sessions = db.session_factory(engine)
    first, *others = [assemble(box, engine, sessions, clock) for box in settings.each_mailbox()]
    return [first, *(replace(parts, sender=first.sender) for parts in others)]


def assemble(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
             clock: Callable[[], datetime] = utcnow) -> Components:
    """Wire the pipeline's parts together; the clock and the database are passed in."""
    config = settings.config
    live = LiveConfig(config)
    renderer = Renderer(config.templates.directory)
    secret = settings.secrets.agent_secret
    agent_secret = secret.get_secret_value().encode() if secret else b""
    mailer = Mailer(live, renderer, clock, agent_secret, agent_help=command_help())
    closing = config.closing
    platform = _platform(settings)
    provider: DiscountProvider | PlatformCoupons
    if platform is not None and config.platform is not None:
        mailer.orders = OrderLookup(platform, keep=config.platform.cache_for)
    if closing.discount_provider == PLATFORM and platform is not None:
        provider = PlatformCoupons(platform, prefix=closing.code_prefix,
                                   valid_for=closing.discount_valid_for, shop_name=config.shop.name)
    else:
        provider = make_provider(closing.discount_provider, prefix=closing.code_prefix,
                                 valid_for=closing.discount_valid_for)
    if closing.pool_file is not None:
        with sessions.begin() as session:
            added = load_pool(session, closing.pool_file)
        if added:
            log.info("loaded %d new discount code(s) from %s", added, closing.pool_file)
    lifecycle = Lifecycle(live, mailer, sessions, clock, provider)
    ingestor = Ingestor(live, mailer, lifecycle, sessions, clock, agent_secret)
    smtp_password = settings.secrets.smtp_password
    sender = OutboxSender(config.smtp, smtp_password.get_secret_value() if smtp_password else None,
                          sessions, clock, SendEvents(metrics.email_sent, metrics.send_failed))
    return Components(live, engine, sessions, renderer, mailer, lifecycle, ingestor, sender)


def _platform(settings: Settings) -> Platform | None:
    """The shop's API client; httpx is imported only by installations that have a [platform]."""
    if settings.config.platform is None:
        return None
    from daemon.shop.factory import make_platform

    return make_platform(settings.config.platform, settings.secrets)


def _inbox(settings: Settings) -> ImapInbox:
    password = settings.secrets.imap_password
    return ImapInbox(settings.config.imap, password.get_secret_value() if password else None)


def _intake_for(settings: Settings, parts: Components,
                on_committed: Callable[[], object] = lambda: None) -> Callable[[threading.Event], Intake]:
    def make(stop: threading.Event) -> Intake:
        return Intake(settings.config.imap, _inbox(settings), parts.ingestor, parts.sessions, stop,
                      on_committed=on_committed, mailbox=settings.config.mailbox,
                      on_handled=metrics.message_handled)
    return make


def _fetch_all(intake: Intake) -> None:
    intake.inbox.connect()
    try:
        report = intake.cycle()
    finally:
        intake.inbox.close()
    log.info("mailbox %s: handled %d message(s): %d new ticket(s), %d quarantined",
             intake.ingestor.config.mailbox, report.handled, report.new_tickets, report.quarantined)


async def run_once(settings: Settings) -> int:
    """One full cycle: every waiting message, then the whole outbox in batches, with bounded retries.

    A mailbox another instance is working right now is left to it.
    """
    boxes = build_mailboxes(settings)
    for box, box_parts in zip(settings.each_mailbox(), boxes, strict=True):
        lock = make_lock(box_parts.engine, box.config.mailbox)
        if not await asyncio.to_thread(lock.acquire):
            log.info("mailbox %s: worked by another instance right now, left to it", box.config.mailbox)
            continue
        try:
            await asyncio.to_thread(_fetch_all, _intake_for(box, box_parts)(threading.Event()))
            await asyncio.to_thread(box_parts.lifecycle.sweep)
        finally:
            await asyncio.to_thread(lock.close)
    parts = boxes[0]
    await asyncio.to_thread(retention.sweep, settings, parts.sessions, utcnow)
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
    boxes = build_mailboxes(settings)
    parts = boxes[0]
    logs.apply_config_level(settings.config.logging.level)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    wake = asyncio.Event()
    reloaders = [Reloader(box, p.live, [p.mailer, p])
                 for box, p in zip(settings.each_mailbox(), boxes, strict=True)]
    reloading = asyncio.Lock()
    background: set[asyncio.Future[None]] = set()

    def request_stop(signum: int) -> None:
        log.info("received %s, finishing the work in hand", signal.Signals(signum).name)
        supervision.announce_stopping()
        workers.interrupt()
        stopping.set()
        wake.set()

    async def reload() -> None:
        async with reloading:
            for reloader in reloaders:
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

    workers = MailboxWorkers([
        MailboxWorker(make_lock(parts.engine, box.config.mailbox),
                      _intake_for(box, p, on_committed=lambda: loop.call_soon_threadsafe(wake.set)),
                      p.lifecycle)
        for box, p in zip(settings.each_mailbox(), boxes, strict=True)])
    supervision = Supervision(Notifier.from_environment(), parts.sessions, workers,
                              lambda: probe(parts.sender.config, parts.sender.password),
                              healthy=workers.healthy)
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
                                DatabaseCollector(parts.sessions, lambda: workers.last_success_at))
        metrics.start()
    async def outbox_sweep() -> None:
        """A coroutine so APScheduler runs it on the loop: asyncio.Event is not thread-safe."""
        wake.set()

    scheduler.add_job(outbox_sweep, "interval", seconds=_OUTBOX_SWEEP_SECONDS, id="outbox-sweep",
                      coalesce=True, max_instances=1)

    async def lifecycle_sweep() -> None:
        if await workers.sweep():
            wake.set()

    scheduler.add_job(lifecycle_sweep, "interval",
                      seconds=settings.config.updates.sweep_every.total_seconds(),
                      id="lifecycle-sweep", coalesce=True, max_instances=1,
                      next_run_time=datetime.now(UTC))
    async def retention_sweep() -> None:
        await asyncio.to_thread(retention.sweep, settings, parts.sessions, utcnow)

    scheduler.add_job(retention_sweep, "interval", seconds=retention.EVERY_SECONDS,
                      id="retention-sweep", coalesce=True, max_instances=1,
                      next_run_time=datetime.now(UTC))
    scheduler.add_job(workers.claim, "interval", seconds=_CLAIM_EVERY_SECONDS, id="mailbox-claim",
                      coalesce=True, max_instances=1)
    await workers.claim()
    scheduler.start()
    ready = asyncio.ensure_future(supervision.announce_ready(stopping))
    log.info("incidencias running for %s",
             ", ".join(box.config.shop.address for box in settings.each_mailbox()))
    database_down = False
    try:
        while not stopping.is_set():
            await wake.wait()
            wake.clear()
            if stopping.is_set():
                break
            database_down = await _deliver(parts.sender, database_down)
            workers.check()
    finally:
        if not supervision.stopping:
            supervision.announce_stopping()
        ready.cancel()
        scheduler.shutdown(wait=False)
        await workers.close()
        if metrics:
            metrics.stop()
        parts.engine.dispose()
    log.info("stopped cleanly")
    return 0


async def _deliver(sender: OutboxSender, was_down: bool) -> bool:
    """One outbox pass; True when the database was unavailable. Logs only changes of that state.

    The outbox lives in the database: while it is away (a PostgreSQL restart, a SQLite lock held
    past the busy timeout) the mail waits there and the next wake or sweep tries again, rather
    than the whole daemon dying.
    """
    try:
        await sender.deliver_due()
    except OperationalError as exc:
        if not was_down:
            log.warning("outbox: database unavailable (%s); mail waits, retried every %ds",
                        str(exc.orig or exc).strip().splitlines()[0], _OUTBOX_SWEEP_SECONDS)
        return True
    if was_down:
        log.info("outbox: database available again")
    return False
