"""The optional Prometheus endpoint.

Gauges (tickets by status, outbox depth and age, IMAP freshness) are read from the database when
Prometheus scrapes, so they are right even just after a restart; only events that leave no row to
count later — messages handled, send failures, scheduler lag — are counted as they happen.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from apscheduler.events import EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED, JobEvent, JobSubmissionEvent
from apscheduler.schedulers.base import BaseScheduler
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from daemon.runtime.health import take_snapshot
from daemon.storage.models import RawOutcome, utcnow

log = logging.getLogger("daemon.metrics")

REGISTRY = CollectorRegistry()

MESSAGES_HANDLED = Counter(
    "incidencias_messages_handled", "Incoming messages handled, by outcome (ticket, duplicate, "
    "quarantined)", ["outcome"], registry=REGISTRY)
EMAILS_SENT = Counter("incidencias_emails_sent", "Emails the SMTP server accepted, by kind",
                      ["kind"], registry=REGISTRY)
SEND_FAILURES = Counter(
    "incidencias_send_failures", "Failed delivery attempts: deferred (retried later) or refused "
    "(permanent 5xx)", ["reason"], registry=REGISTRY)
SCHEDULER_LAG = Gauge("incidencias_scheduler_lag_seconds",
                      "How late the scheduler started its latest run of each job", ["job"],
                      registry=REGISTRY)

for _outcome in (RawOutcome.TICKET, RawOutcome.DUPLICATE, RawOutcome.QUARANTINED):
    MESSAGES_HANDLED.labels(_outcome)
for _reason in ("deferred", "refused"):
    SEND_FAILURES.labels(_reason)


def message_handled(outcome: str) -> None:
    MESSAGES_HANDLED.labels(outcome).inc()


def email_sent(kind: str) -> None:
    EMAILS_SENT.labels(kind).inc()


def send_failed(permanent: bool, count: int = 1) -> None:
    SEND_FAILURES.labels("refused" if permanent else "deferred").inc(count)


def scheduler_lag(scheduled: datetime, now: datetime) -> float:
    """Seconds between when a job was due and when it was submitted; never negative."""
    return max(0.0, (now - scheduled).total_seconds())


def observe_scheduler(scheduler: BaseScheduler) -> None:
    """Record each job's lag when APScheduler submits (or gives up on) a run."""

    def listener(event: JobEvent) -> None:
        now = datetime.now(UTC)
        if isinstance(event, JobSubmissionEvent):
            due = max(event.scheduled_run_times)
        else:
            due = event.scheduled_run_time
        SCHEDULER_LAG.labels(event.job_id).set(scheduler_lag(due, now))

    scheduler.add_listener(listener, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED)


class DatabaseCollector(Collector):
    """Reads the current state at scrape time; a failed read is a scrape without these metrics."""

    def __init__(self, sessions: sessionmaker[Session],
                 last_imap_contact: Callable[[], datetime | None],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.last_imap_contact = last_imap_contact
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        contact = self.last_imap_contact()
        since = GaugeMetricFamily(
            "incidencias_imap_seconds_since_success",
            "Seconds since the last successful IMAP contact (+Inf before the first)")
        since.add_metric([], math.inf if contact is None else max(0.0, (now - contact).total_seconds()))
        yield since
        try:
            with self.sessions() as session:
                snapshot = take_snapshot(session)
        except Exception as exc:
            log.warning("metrics: cannot read the database: %s: %s", type(exc).__name__, exc)
            return
        tickets = GaugeMetricFamily("incidencias_tickets", "Tickets by status", labels=["status"])
        for status, count in sorted(snapshot.tickets.items()):
            tickets.add_metric([status], count)
        yield tickets
        yield GaugeMetricFamily("incidencias_outbox_pending", "Emails waiting in the outbox",
                                value=snapshot.outbox_pending)
        yield GaugeMetricFamily("incidencias_outbox_failed",
                                "Emails the SMTP server refused permanently (kept for a person)",
                                value=snapshot.outbox_failed)
        yield GaugeMetricFamily("incidencias_outbox_oldest_pending_seconds",
                                "Age of the oldest email waiting in the outbox (0 when empty)",
                                value=snapshot.oldest_pending_age(now).total_seconds())


class MetricsServer:
    """The HTTP endpoint and the collector it serves, started and stopped with the daemon."""

    def __init__(self, address: tuple[str, int], collector: DatabaseCollector) -> None:
        self.address = address
        self.collector = collector
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        host, port = self.address
        REGISTRY.register(self.collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=REGISTRY)
        except BaseException:
            REGISTRY.unregister(self.collector)
            raise
        log.info("metrics on http://%s/metrics", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        REGISTRY.unregister(self.collector)
        self._server = self._thread = None
