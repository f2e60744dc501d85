"""Timed follow-up derived from ticket state: updates, reminders, promises, digest — and closing.

Nothing here remembers anything in memory: every sweep asks the database what is due now, acts,
and records that it acted in the same transaction as the mail it queued. So a restart, or a
daemon stopped across a due time, sends overdue work once at the next sweep — never once per
missed interval — and two sweeps never send the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import DEFAULT_MAILBOX, WEEKDAYS, Config, LiveConfig
from daemon.outbound.queue import Mailer
from daemon.outbound.rendering import Rendered
from daemon.shop.model import ShopError
from daemon.storage.models import (
    Direction,
    KeyValue,
    Message,
    PendingClosing,
    ProblemStatus,
    Promise,
    Ticket,
    TicketStatus,
)
from daemon.tickets import state
from daemon.tickets.business_hours import in_window
from daemon.tickets.coupons import PlatformCoupons
from daemon.tickets.discounts import Discount, DiscountProvider, pool_remaining
from daemon.tickets.report.figures import BusinessHours, gather
from daemon.tickets.report.render import as_html, as_text, heading

log = logging.getLogger("daemon.lifecycle")

_BATCH = 200
_PROMISE_GRACE = timedelta(hours=2)


@dataclass
class SweepReport:
    sent: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, count: int = 1) -> None:
        if count:
            self.sent[kind] = self.sent.get(kind, 0) + count

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def days_until_update(every: timedelta) -> int:
    """Whole days the customer may wait for news at most, as promised in our mail."""
    return max(1, -(-int(every.total_seconds()) // 86400))


def update_due(ticket: Ticket, now: datetime, every: timedelta) -> bool:
    """An open ticket whose customer has had no mail from us for `every`, and is not paused."""
    if ticket.status != TicketStatus.OPEN or ticket.last_outbound_at is None:
        return False
    if ticket.wait_until is not None and ticket.wait_until > now:
        return False
    return ticket.last_outbound_at + every <= now


def status_line(ticket: Ticket) -> str | None:
    """The line an update shows: the ticket's own, else its open problem's (issue 16)."""
    problem = ticket.problem
    if ticket.status_line or problem is None or problem.state != ProblemStatus.OPEN:
        return ticket.status_line
    return problem.status_line


class Lifecycle:
    def __init__(self, config: Config | LiveConfig, mailer: Mailer, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime], discounts: DiscountProvider | PlatformCoupons) -> None:
        self.live = LiveConfig.of(config)
        self.mailer = mailer
        self.sessions = sessions
        self.clock = clock
        self.discounts = discounts

    @property
    def _mine(self) -> ColumnElement[bool]:
        """Sweeps look only at this mailbox's tickets; another mailbox may be worked elsewhere."""
        return Ticket.mailbox == self.config.mailbox

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    @property
    def _due(self) -> ColumnElement[bool]:
        """Timed follow-up is for this mailbox's tickets that still have a customer: a ticket whose
        customer was erased (customers forget) gets no updates, reminders or nags about it."""
        return self._mine & Ticket.pseudonymised_at.is_(None)

    def _state_key(self, key: str) -> str:
        """Per-mailbox daemon state; the default mailbox keeps the keys it always had."""
        return key if self.config.mailbox == DEFAULT_MAILBOX else f"{key}:{self.config.mailbox}"

    def customer_hours(self, now: datetime) -> bool:
        updates = self.config.updates
        start, end = updates.window
        return in_window(now, self.config.shop.timezone, start, end, updates.days)

    def sweep(self) -> SweepReport:
        """Everything due now, each piece in its own transaction."""
        report = SweepReport()
        now = self.clock()
        if self.customer_hours(now):
            report.add("update", self._each_ticket(self._due_updates(now), self._send_update))
            report.add("waiting-reminder",
                       self._each_ticket(self._due_waiting(now), self._send_waiting_reminder))
        report.add("unanswered-reminder",
                   self._each_ticket(self._due_unanswered(now), self._remind_unanswered))
        report.add("age-reminder", self._each_ticket(self._due_old(now), self._remind_old))
        report.add("promise", self._promises(now))
        report.add("digest", self._digest(now))
        report.add("report", self._weekly_report(now))
        report.add("closing", self.settle_closings())
        if report.total:
            log.info("scheduled work sent: %s", report.sent)
        return report

    def _each_ticket(self, ids: list[int], action: Callable[[Session, Ticket, datetime], bool]
                     ) -> int:
        done = 0
        for ticket_id in ids:
            with self.sessions.begin() as session:
                ticket = session.get_one(Ticket, ticket_id, with_for_update=True)
                done += action(session, ticket, self.clock())
        return done

    def _due_updates(self, now: datetime) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(
                select(Ticket.id).where(
                    self._due, Ticket.status == TicketStatus.OPEN,
                    Ticket.last_outbound_at <= now - self.config.updates.every,
                    or_(Ticket.wait_until.is_(None), Ticket.wait_until <= now))
                .order_by(Ticket.last_outbound_at).limit(_BATCH)))

    def _send_update(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        if not update_due(ticket, now, self.config.updates.every):
            return False
        self.mailer.to_customer(
            session, ticket, "update",
            {"status_line": status_line(ticket),
             "update_days": days_until_update(self.config.updates.every)},
            kind="update", thread=self.mailer.customer_thread(session, ticket),
            automatic="auto-generated")
        log.info("ticket=%d periodic update queued", ticket.id)
        return True

    def _due_waiting(self, now: datetime) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(
                select(Ticket.id).where(
                    self._due, Ticket.status == TicketStatus.WAITING,
                    Ticket.waiting_reminded_at.is_(None),
                    Ticket.waiting_since <= now - self.config.updates.waiting_reminder_after)
                .limit(_BATCH)))

    def _send_waiting_reminder(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        if ticket.status != TicketStatus.WAITING or ticket.waiting_reminded_at is not None:
            return False
        since = ticket.waiting_since or now
        self.mailer.to_customer(
            session, ticket, "waiting_reminder",
            {"last_request": self._last_text(session, ticket, Direction.AGENT),
             "waiting_days": max(1, (now - since).days), "close_in_days": None},
            kind="waiting-reminder", thread=self.mailer.customer_thread(session, ticket),
            automatic="auto-generated")
        ticket.waiting_reminded_at = now
        log.info("ticket=%d reminder to the customer we wait on", ticket.id)
        return True

    def _due_unanswered(self, now: datetime) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(
                select(Ticket.id).where(
                    self._due, Ticket.status == TicketStatus.OPEN,
                    Ticket.last_agent_reply_at.is_(None),
                    Ticket.unanswered_reminded_at.is_(None),
                    Ticket.created_at <= now - self.config.escalation.unanswered_after)
                .limit(_BATCH)))

    def _remind_unanswered(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        if ticket.unanswered_reminded_at is not None or ticket.last_agent_reply_at is not None:
            return False
        ticket.unanswered_reminded_at = now
        return self._remind_agents(session, ticket, now, "unanswered")

    def _due_old(self, now: datetime) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(
                select(Ticket.id).where(
                    # IN, not != closed: the (mailbox, status) index then skips closed tickets.
                    self._due, Ticket.status.in_((TicketStatus.OPEN, TicketStatus.WAITING)),
                    Ticket.age_reminded_at.is_(None),
                    Ticket.created_at <= now - self.config.escalation.open_longer_than)
                .limit(_BATCH)))

    def _remind_old(self, session: Session, ticket: Ticket, now: datetime) -> bool:
        if ticket.age_reminded_at is not None or ticket.status == TicketStatus.CLOSED:
            return False
        ticket.age_reminded_at = now
        return self._remind_agents(session, ticket, now, "open-too-long")

    def _remind_agents(self, session: Session, ticket: Ticket, now: datetime, why: str) -> bool:
        last_in = session.scalar(select(func.max(Message.created_at)).where(
            Message.ticket_id == ticket.id, Message.direction == Direction.IN))
        self.mailer.to_agents(
            session, ticket, "agent_reminder",
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "waiting_days": max(0, (now - (last_in or ticket.created_at)).days),
             "last_text": self._last_text(session, ticket, Direction.IN)},
            kind=f"reminder-{why}", recipients=self.mailer.all_agents())
        log.info("ticket=%d agents reminded (%s)", ticket.id, why)
        return True

    def _promises(self, now: datetime) -> int:
        sent = 0
        with self.sessions() as session:
            due = list(session.scalars(
                select(Promise.id).join(Ticket, Ticket.id == Promise.ticket_id)
                .where(self._mine, Promise.done_at.is_(None), Promise.due_at <= now,
                                         or_(Promise.reminded_at.is_(None),
                                             Promise.overdue_notified_at.is_(None)))
                .limit(_BATCH)))
        for promise_id in due:
            with self.sessions.begin() as session:
                promise = session.get_one(Promise, promise_id, with_for_update=True)
                ticket = session.get_one(Ticket, promise.ticket_id)
                if promise.done_at is not None:
                    continue
                if promise.reminded_at is None:
                    promise.reminded_at = now
                    sent += self._notice(session, ticket, "promise_due", promise)
                elif (promise.overdue_notified_at is None
                      and promise.due_at + _PROMISE_GRACE <= now):
                    promise.overdue_notified_at = now
                    sent += self._notice(session, ticket, "promise_overdue", promise)
        return sent

    def _notice(self, session: Session, ticket: Ticket | None, notice: str,
                promise: Promise | None = None, details: dict[str, Any] | None = None) -> int:
        zone = ZoneInfo(self.config.shop.timezone)
        info: dict[str, Any] = dict(details or {})
        if promise is not None:
            info.update(promise=promise.text, agent=promise.agent,
                        due=_local(promise.due_at, zone))
        self.mailer.to_agents(session, ticket, "agent_notice", {"notice": notice, "details": info},
                              kind=f"notice-{notice}", recipients=self.mailer.all_agents())
        return 1

    def _digest(self, now: datetime) -> int:
        hour = self.config.escalation.digest_hour
        if hour is None or not self.mailer.all_agents():
            return 0
        zone = ZoneInfo(self.config.shop.timezone)
        local = _local_dt(now, zone)
        if local.hour < hour:
            return 0
        today = local.date().isoformat()
        with self.sessions.begin() as session:
            state = session.get(KeyValue, self._state_key("digest_date"), with_for_update=True)
            if state is not None and state.value >= today:
                return 0
            since_key = session.get(KeyValue, self._state_key("digest_at"))
            since = datetime.fromisoformat(since_key.value) if since_key else now - timedelta(days=1)
            session.merge(KeyValue(key=self._state_key("digest_date"), value=today))
            session.merge(KeyValue(key=self._state_key("digest_at"), value=now.isoformat()))
            self.mailer.to_agents(session, None, "agent_digest",
                                  self._digest_context(session, now, since, today),
                                  kind="digest", recipients=self.mailer.all_agents())
        log.info("daily digest queued for %s", today)
        return 1

    def _weekly_report(self, now: datetime) -> int:
        """The week's report at `[report] weekday`/`hour` (shop time), once per due moment: the
        last due moment handled is kept in the database, so a restart or a stopped daemon sends a
        missed report once, and never twice. The very first sweep only notes the latest due
        moment, so installing or upgrading does not mail a report of a week nobody worked in."""
        settings = self.config.report
        recipients = settings.to if settings.to is not None else self.mailer.all_agents()
        if not recipients:
            return 0
        zone = ZoneInfo(self.config.shop.timezone)
        due = last_weekly_due(_local_dt(now, zone), WEEKDAYS.index(settings.weekday), settings.hour)
        due_utc = due.astimezone(UTC).replace(tzinfo=None)
        key = self._state_key("report_due")
        with self.sessions.begin() as session:
            state = session.get(KeyValue, key, with_for_update=True)
            if state is not None and state.value >= due_utc.isoformat():
                return 0
            session.merge(KeyValue(key=key, value=due_utc.isoformat()))
            if state is None:  # first sweep ever: no report of the week before incidencias ran
                log.info("weekly report: the first one goes after the next %s %02d:00",
                         settings.weekday, settings.hour)
                return 0
            language = self.config.agents.language
            figures = gather(session, due_utc - timedelta(days=7), due_utc, now=now,
                             business=BusinessHours.of(self.config), mailbox=self.config.mailbox)
            timezone = self.config.shop.timezone
            self.mailer.to_addresses(
                session, Rendered(heading(figures, language, timezone),
                                  as_text(figures, language, timezone),
                                  as_html(figures, language, timezone)),
                kind="report", recipients=recipients, language=language)
        log.info("weekly report queued for %s", due.date().isoformat())
        return 1

    def _digest_context(self, session: Session, now: datetime, since: datetime,
                        today: str) -> dict[str, Any]:
        zone = ZoneInfo(self.config.shop.timezone)
        active = session.scalars(select(Ticket).where(self._mine, Ticket.status != TicketStatus.CLOSED)
                                 .order_by(Ticket.id)).all()
        opened = session.scalar(select(func.count()).select_from(Ticket)
                                .where(self._mine, Ticket.created_at >= since)) or 0
        closed = session.scalar(select(func.count()).select_from(Ticket)
                                .where(self._mine, Ticket.closed_at >= since)) or 0
        every = self.config.updates.every
        promises = session.scalars(select(Promise).join(Ticket, Ticket.id == Promise.ticket_id).where(
            self._mine, Promise.done_at.is_(None), Promise.due_at <= now + timedelta(days=1))
            .order_by(Promise.due_at)).all()
        week = session.execute(select(Ticket.created_at, Ticket.first_agent_reply_at).where(
            self._mine, Ticket.created_at >= now - timedelta(days=7),
            Ticket.first_agent_reply_at.is_not(None))).all()
        hours = [(reply - created).total_seconds() / 3600 for created, reply in week if reply]
        return {
            "date": today,
            "tickets": [{"number": t.id, "subject": t.subject, "status": t.status,
                         "customer": t.customer_email, "age_days": (now - t.created_at).days,
                         "idle_days": (now - t.updated_at).days} for t in active],
            "opened": opened,
            "closed": closed,
            "open": sum(t.status == TicketStatus.OPEN for t in active),
            "waiting": sum(t.status == TicketStatus.WAITING for t in active),
            "overdue_updates": sum(update_due(t, now, every) for t in active),
            "promises_due": [{"number": p.ticket_id, "promise": p.text, "agent": p.agent,
                              "due": _local(p.due_at, zone)} for p in promises],
            "first_response_hours": round(sum(hours) / len(hours), 1) if hours else None,
        }

    def _last_text(self, session: Session, ticket: Ticket, direction: str) -> str | None:
        return session.scalar(
            select(Message.text).where(Message.ticket_id == ticket.id,
                                       Message.direction == direction)
            .order_by(Message.id.desc()).limit(1))

    def close(self, session: Session, ticket: Ticket, *, percent: int | None = None,
              no_discount: bool = False, personal_line: str | None = None) -> str | None:
        """Close with apology, thanks and (unless told not to) a discount code; returns the code.

        With coupons from the shop's platform the closing only starts here: the code is chosen
        and the closing recorded as pending, and `settle_closings` finishes it once the shop has
        the coupon (the caller calls it after committing; the sweep retries).
        """
        now = self.clock()
        closing = self.config.closing
        wanted = closing.discount_percent if percent is None else percent
        pending = session.get(PendingClosing, ticket.id)
        if not no_discount and wanted > 0 and isinstance(self.discounts, PlatformCoupons):
            if pending is not None:
                log.info("ticket=%d already waits for the shop's coupon %s", ticket.id, pending.code)
                return pending.code
            reserved = self.discounts.reserve(session, ticket.id, wanted, now)
            session.add(PendingClosing(
                ticket_id=ticket.id, code=reserved.code, percent=reserved.percent,
                valid_until=datetime.combine(reserved.valid_until, time()),
                personal_line=personal_line, since=now, attempts=0))
            ticket.updated_at = now
            log.info("ticket=%d closing waits for the shop to create its coupon", ticket.id)
            return reserved.code
        if pending is not None:
            session.delete(pending)  # closed without a discount after all: no coupon to wait for
        discount: Discount | None = None
        if not no_discount and wanted > 0 and not isinstance(self.discounts, PlatformCoupons):
            result = self.discounts.issue(session, ticket.id, wanted, now)
            discount = result.discount
            if result.problem:
                self._notice(session, ticket, "discount_problem",
                             details={"problem": result.problem, "remaining": result.remaining})
            elif (self.discounts.name == "pool" and result.remaining is not None
                  and result.remaining < closing.pool_warn_below):
                self._notice(session, ticket, "pool_low",
                             details={"remaining": pool_remaining(session)})
        return self._closed(session, ticket, discount, personal_line, now)

    def _closed(self, session: Session, ticket: Ticket, discount: Discount | None,
                personal_line: str | None, now: datetime) -> str | None:
        """The closing mail and the ticket's new state, in the caller's transaction."""
        details = None if discount is None else {
            "code": discount.code, "percent": discount.percent,
            "valid_until": discount.valid_until.isoformat(),
            "terms": self.config.closing.terms.get(ticket.language)}
        self.mailer.to_customer(
            session, ticket, "closing", {"personal_line": personal_line, "discount": details},
            kind="closing", thread=self.mailer.customer_thread(session, ticket), automatic=None)
        code = None if discount is None else discount.code
        state.apply(ticket, state.Event.CLOSED, now)
        ticket.discount_code = code
        log.info("ticket=%d closed%s", ticket.id, " with a discount code" if code else "")
        return code

    def settle_closings(self, ticket_ids: Sequence[int] | None = None) -> int:
        """Ask the shop for the coupon of each pending closing (all of this mailbox's, or those of
        `ticket_ids`); a confirmed one closes its ticket and queues the closing mail. Returns how
        many closed. The shop is asked outside any transaction; when it is down, the rest wait
        for the next sweep instead of each waiting out the time-out."""
        coupons = self.discounts
        if not isinstance(coupons, PlatformCoupons):
            return 0
        with self.sessions() as session:
            query = (select(PendingClosing.ticket_id)
                     .join(Ticket, Ticket.id == PendingClosing.ticket_id)
                     .where(self._mine).order_by(PendingClosing.since).limit(_BATCH))
            if ticket_ids is not None:
                query = query.where(PendingClosing.ticket_id.in_(ticket_ids))
            waiting = list(session.scalars(query))
        closed = 0
        for ticket_id in waiting:
            with self.sessions() as session:
                pending = session.get(PendingClosing, ticket_id)
                if pending is None:
                    continue
                request = coupons.request(session.get_one(Ticket, ticket_id), pending)
            failure: ShopError | None = None
            try:
                coupons.platform.create_coupon(request)
            except ShopError as error:
                failure = error
            except Exception as error:  # an answer of a shape no one foresaw: the closing waits
                failure = ShopError(f"unexpected answer from the shop ({type(error).__name__})",
                                    retry=True)
            with self.sessions.begin() as session:
                ticket = session.get_one(Ticket, ticket_id, with_for_update=True)
                pending = session.get(PendingClosing, ticket_id)
                if pending is None:
                    continue  # finished meanwhile (another instance, or closed without a discount)
                if failure is None:
                    session.delete(pending)
                    self._closed(session, ticket, Discount(pending.code, pending.percent,
                                                           pending.valid_until.date()),
                                 pending.personal_line, self.clock())
                    closed += 1
                    continue
                self._still_waiting(session, ticket, pending, failure)
            if failure.retry:
                break
        return closed

    def _still_waiting(self, session: Session, ticket: Ticket, pending: PendingClosing,
                       failure: ShopError) -> None:
        """Recorded on the pending closing; agents hear of it once, not at every retry."""
        pending.attempts += 1
        pending.last_error = str(failure)[:2000]
        log.warning("ticket=%d closing waits: %s", ticket.id, failure)
        if pending.agents_told_at is None:
            pending.agents_told_at = self.clock()
            self._notice(session, ticket, "closing_waits",
                         details={"code": pending.code, "problem": str(failure)})


def last_weekly_due(local_now: datetime, weekday: int, hour: int) -> datetime:
    """The latest moment at or before `local_now` (aware, shop time) on `weekday` at `hour`."""
    day = local_now.date() - timedelta(days=(local_now.weekday() - weekday) % 7)
    due = datetime.combine(day, time(hour), local_now.tzinfo)
    return due if due <= local_now else due - timedelta(days=7)


def _local_dt(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(zone)


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return _local_dt(moment, zone).strftime("%Y-%m-%d %H:%M")
