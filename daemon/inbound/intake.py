"""Work through the incoming folder: fetch in batches, ingest them, then move them.

What a fetch brings is ingested in one transaction (bounded by TRANSACTION_BYTES), so a backlog
pays one commit per batch; a single new message is a batch of one, committed at once. The mailbox
is told a message was handled (moved) only after its raw bytes and effects are committed; a crash
before that commit leaves the whole batch in the folder, to be handled again. A restart after a
crash finds handled-but-not-moved messages by UIDVALIDITY/UID or by their bytes, and only moves
them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from imapclient.exceptions import IMAPClientError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import DEFAULT_MAILBOX, ImapConfig
from daemon.inbound.imap import ImapInbox
from daemon.storage.models import MailboxState, RawMessage, RawOutcome, utcnow
from daemon.tickets.router import Ingestor, Source

log = logging.getLogger("daemon.intake")

CONNECTION_ERRORS = (IMAPClientError, OSError, ConnectionError, TimeoutError)
# Worth retrying rather than dying: the server or the database is briefly unreachable.
TRANSIENT_ERRORS = (*CONNECTION_ERRORS, OperationalError)
_MAX_BACKOFF = 60.0
# What one transaction holds at most, besides the fetch batch's count: the raw bytes and what is
# parsed from them stay in memory until the commit, and SQLite's writer lock is held meanwhile.
TRANSACTION_BYTES = 8_000_000


@dataclass
class CycleReport:
    handled: int = 0
    moved: int = 0  # handled now or before a restart: either way out of the folder
    new_tickets: int = 0
    quarantined: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def transactions(messages: list[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    """The fetched messages in order, cut into groups of at most TRANSACTION_BYTES (or one)."""
    group: list[tuple[int, bytes]] = []
    size = 0
    for uid, raw in messages:
        if group and size + len(raw) > TRANSACTION_BYTES:
            yield group
            group, size = [], 0
        group.append((uid, raw))
        size += len(raw)
    if group:
        yield group


class Intake:
    def __init__(self, config: ImapConfig, inbox: ImapInbox, ingestor: Ingestor,
                 sessions: sessionmaker[Session], stop: threading.Event,
                 on_committed: Callable[[], object] = lambda: None,
                 mailbox: str = DEFAULT_MAILBOX,
                 on_handled: Callable[[str], object] = lambda outcome: None) -> None:
        self.config = config
        self.inbox = inbox
        self.ingestor = ingestor
        self.sessions = sessions
        self.stop = stop
        self.on_committed = on_committed
        # Told each handled message's outcome (the metrics count them); wired by the runtime.
        self.on_handled = on_handled
        # Read by the metrics and systemd status from other threads; plain values, no lock needed.
        self.last_success_at: datetime | None = None
        self.consecutive_failures = 0
        # Where this folder's progress is recorded: two shops' INBOXes must not share a record.
        self.state_key = config.folder if mailbox == DEFAULT_MAILBOX else f"{mailbox}/{config.folder}"

    def cycle(self) -> CycleReport:
        """Handle every message waiting now; stops between messages when asked to."""
        report = CycleReport()
        self._remember_uidvalidity()
        uids = self.inbox.waiting_uids()
        batch_size = self.config.fetch_batch
        for start in range(0, len(uids), batch_size):
            if self.stop.is_set():
                break
            self._handle_batch(uids[start:start + batch_size], report)
        return report

    def _handle_batch(self, uids: list[int], report: CycleReport) -> None:
        known = self._known_outcomes(uids)
        fetched = self.inbox.fetch(u for u in uids if u not in known)
        outcomes = dict(known)
        for group in transactions([(uid, fetched[uid]) for uid in uids if uid in fetched]):
            if self.stop.is_set():
                break
            results = self.ingestor.ingest_many(
                [(raw, Source(self.state_key, self.inbox.uidvalidity, uid)) for uid, raw in group])
            # Committed: only now is each message counted, announced and allowed to leave the inbox.
            for (uid, _), result in zip(group, results, strict=True):
                outcomes[uid] = result.outcome
                report.handled += 1
                report.new_tickets += result.new_ticket
                report.quarantined += result.outcome == RawOutcome.QUARANTINED
                report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
                self.on_handled(result.outcome)
            self.on_committed()
        moves: dict[str, list[int]] = {}
        for uid in uids:
            if uid in outcomes:
                moves.setdefault(self._folder_for(outcomes[uid]), []).append(uid)
        for folder, folder_uids in moves.items():
            self.inbox.move(folder_uids, folder)
            report.moved += len(folder_uids)
        if moves:
            self._advance_last_uid(max(u for us in moves.values() for u in us))

    def _folder_for(self, outcome: str) -> str:
        if outcome == RawOutcome.QUARANTINED:
            return self.config.quarantine_folder
        return self.config.processed_folder

    def _known_outcomes(self, uids: list[int]) -> dict[int, str]:
        with self.sessions() as session:
            rows = session.execute(
                select(RawMessage.uid, RawMessage.outcome).where(
                    RawMessage.folder == self.state_key,
                    RawMessage.uidvalidity == self.inbox.uidvalidity,
                    RawMessage.uid.in_(uids),
                )
            ).all()
        return {int(uid): outcome for uid, outcome in rows if uid is not None}

    def _remember_uidvalidity(self) -> None:
        with self.sessions.begin() as session:
            state = session.get(MailboxState, self.state_key)
            if state is None:
                session.add(MailboxState(folder=self.state_key,
                                         uidvalidity=self.inbox.uidvalidity, last_uid=0))
            elif state.uidvalidity != self.inbox.uidvalidity:
                log.warning("UIDVALIDITY of %s changed (%d → %d): every waiting message is checked "
                            "again by content", self.config.folder, state.uidvalidity,
                            self.inbox.uidvalidity)
                state.uidvalidity, state.last_uid = self.inbox.uidvalidity, 0

    def _advance_last_uid(self, uid: int) -> None:
        with self.sessions.begin() as session:
            state = session.get_one(MailboxState, self.state_key)
            if uid > state.last_uid:
                state.last_uid, state.updated_at = uid, utcnow()

    def run_forever(self) -> None:
        """Connect, handle mail, wait for more; reconnect with capped backoff after any failure.

        One log line per change of state (connected, failing, recovered), not one per retry; after
        `alert_after` failures in a row, one alert to the admin for the whole outage.
        """
        failures = 0
        poll = self.config.poll_every.total_seconds()
        while not self.stop.is_set():
            try:
                self.inbox.connect()
                self.last_success_at = utcnow()
                working = False
                while not self.stop.is_set():
                    report = self.cycle()
                    self.last_success_at = utcnow()
                    if not working:
                        self._log_working(failures, poll)
                        working, failures = True, 0
                        self.consecutive_failures = 0
                    # Mail that arrived during a busy cycle was announced then, in answer to its
                    # FETCH or MOVE, and IDLE will not announce it again: look until a cycle
                    # finds the folder empty, and only then wait.
                    if not report.moved and not self.stop.is_set():
                        self.inbox.wait_for_mail(self.stop, poll)
            except TRANSIENT_ERRORS as exc:
                failures += 1
                self.consecutive_failures = failures
                delay = min(_MAX_BACKOFF, 2.0 ** min(failures - 1, 10))
                if failures == 1:
                    log.warning("IMAP %s or database unavailable (%s: %s); retrying with backoff up to %gs",
                                self.config.host, type(exc).__name__, exc, _MAX_BACKOFF)
                if failures == self.config.alert_after:
                    self._alert(failures, exc)
                self.stop.wait(delay)
            finally:
                self.inbox.close()

    def _log_working(self, failures: int, poll: float) -> None:
        if failures:
            log.info("IMAP %s recovered after %d failed attempt(s)", self.config.host, failures)
        else:
            log.info("IMAP %s connected, watching %s (%s)", self.config.host, self.config.folder,
                     "IDLE" if self.inbox.supports_idle and self.config.idle
                     else f"polling every {poll:g}s")

    def _alert(self, failures: int, exc: BaseException) -> None:
        """Mail `[admin] address` straight through the outbox; without one, the ERROR line is all."""
        config = self.ingestor.config
        admin = config.admin.address
        problem = f"{type(exc).__name__}: {exc}"[:500]
        log.error("IMAP %s failed %d times in a row (%s); %s", self.config.host, failures, problem,
                  f"alerting {admin}" if admin else "no [admin] address to alert")
        if admin is None:
            return
        try:
            with self.sessions.begin() as session:
                self.ingestor.mailer.to_agents(
                    session, None, "agent_notice",
                    {"notice": "imap_failing",
                     "details": {"host": self.config.host, "username": self.config.username,
                                 "failures": failures, "error": problem}},
                    kind="alert", recipients=[admin])
        except TRANSIENT_ERRORS as db_exc:
            log.error("could not queue the alert to %s: %s", admin, db_exc)
            return
        self.on_committed()
