"""The ticket lifecycle on a frozen, hand-moved clock: updates, promises, closing, reopening."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import select

from daemon.config import Config, Secrets, Settings
from daemon.mail.authenticity import notification_id
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.models import OutboxItem, Promise, Ticket

SECRET = "lifecycle-secret"
MONDAY_10 = datetime(2026, 3, 2, 9, 0)  # 10:00 in Madrid


@dataclass
class Clock:
    now: datetime = MONDAY_10

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Shop:
    parts: Components
    clock: Clock
    seen: set[int] = field(default_factory=set)

    def receive(self, raw: bytes) -> int | None:
        return self.parts.ingestor.ingest(raw).ticket

    def new_mail(self) -> list[OutboxItem]:
        """Outbox rows queued since the last call (what the sender would deliver next)."""
        with self.parts.sessions() as session:
            rows = [r for r in session.scalars(select(OutboxItem).order_by(OutboxItem.id))
                    if r.id not in self.seen]
        self.seen.update(r.id for r in rows)
        return rows

    def kinds(self) -> list[str]:
        return [r.kind for r in self.new_mail()]

    def ticket(self, number: int) -> Ticket:
        with self.parts.sessions() as session:
            return session.get_one(Ticket, number)

    def agent_reply(self, number: int, body: str, agent: str = "ana@example.com") -> None:
        token = notification_id(SECRET.encode(), number, agent, "example.com")
        self.receive(customer_email(f"Re: [#{number}] x", body, sender=agent, name="Ana",
                                    in_reply_to=f"<{token}>", references=[f"<{token}>"]))


def _config(tmp_path: Path, **closing: Any) -> Config:
    return Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es",
                 "timezone": "Europe/Madrid"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
        "updates": {"every": "3d", "waiting_reminder_after": "2d"},
        "escalation": {"unanswered_after": "1d", "open_longer_than": "10d", "digest_hour": None},
        "closing": {"discount_percent": 10, **closing},
    })


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    yield _shop(tmp_path, _config(tmp_path))


def _shop(tmp_path: Path, config: Config) -> Shop:
    engine = migrated_engine(tmp_path, "lifecycle.db")
    clock = Clock()
    settings = Settings(config=config, path=tmp_path / "config.toml",
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr(SECRET)))
    return Shop(assemble(settings, engine, db.session_factory(engine), clock), clock)


def _open_ticket(shop: Shop) -> int:
    number = shop.receive(customer_email("Paquete perdido", "No ha llegado mi paquete."))
    assert number is not None
    shop.new_mail()
    return number


def test_updates_come_every_interval_and_no_sooner(shop: Shop) -> None:
    _open_ticket(shop)
    shop.clock.advance(days=2, hours=23)
    shop.parts.lifecycle.sweep()
    assert "update" not in shop.kinds()
    shop.clock.advance(hours=1)
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("update") == 1


def test_a_daemon_stopped_across_several_due_times_sends_one_update(shop: Shop) -> None:
    _open_ticket(shop)
    shop.clock.advance(days=14)  # Monday again, two weeks later: four intervals missed
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("update") == 1


def test_updates_wait_for_business_hours(shop: Shop) -> None:
    _open_ticket(shop)
    shop.clock.now = datetime(2026, 3, 8, 2, 0)  # Sunday 03:00 in Madrid, long overdue
    shop.parts.lifecycle.sweep()
    assert "update" not in shop.kinds()
    shop.clock.now = datetime(2026, 3, 9, 8, 0)  # Monday 09:00
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("update") == 1


def test_an_agent_reply_restarts_the_clock_and_wait_pauses_updates(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.clock.advance(days=2)
    shop.agent_reply(number, "Lo estamos mirando con la agencia de transporte.")
    assert "agent-reply" in shop.kinds()
    shop.clock.advance(days=2)
    shop.parts.lifecycle.sweep()
    assert "update" not in shop.kinds()
    shop.agent_reply(number, "#wait 2026-03-20")
    shop.clock.advance(days=5)
    shop.parts.lifecycle.sweep()
    assert "update" not in shop.kinds()
    shop.clock.now = datetime(2026, 3, 20, 10, 0)
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("update") == 1


def test_the_status_line_reaches_the_customer_in_the_update(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#estado Hemos abierto una reclamación con la agencia")
    shop.clock.advance(days=3)
    shop.parts.lifecycle.sweep()
    [update] = [r for r in shop.new_mail() if r.kind == "update"]
    text = message_from_bytes(update.raw, policy=policy.default).get_body(("plain",))
    assert text is not None and "reclamación con la agencia" in text.get_content()


def test_waiting_on_the_customer_sends_one_friendly_reminder_and_a_reply_reopens(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#pendiente\n\n¿Nos envías una foto del paquete?")
    assert shop.ticket(number).status == "waiting"
    shop.new_mail()
    shop.clock.advance(days=2, hours=1)
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("waiting-reminder") == 1
    shop.receive(customer_email("Re: Paquete perdido", "Aquí va la foto.",
                                references=[f"<{_first_out(shop, number)}>"]))
    assert shop.ticket(number).status == "open"


def test_unanswered_and_old_tickets_remind_agents_once(shop: Shop) -> None:
    _open_ticket(shop)
    shop.clock.advance(days=1, minutes=1)
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("reminder-unanswered") == 2  # one per agent, once
    shop.clock.advance(days=10)
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("reminder-open-too-long") == 2


def test_a_promise_gives_one_reminder_when_due_and_one_overdue_notice(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#prometer 1d llamar a la clienta a las 10")
    with shop.parts.sessions() as session:
        [promise] = session.scalars(select(Promise)).all()
    assert promise.text == "llamar a la clienta a las 10"
    shop.new_mail()
    shop.clock.now = promise.due_at
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("notice-promise_due") == 2
    shop.clock.advance(hours=3)
    shop.parts.lifecycle.sweep()
    shop.clock.advance(hours=3)
    shop.parts.lifecycle.sweep()
    assert shop.kinds().count("notice-promise_overdue") == 2


def test_a_fulfilled_promise_is_not_reminded(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#promise 1d call her")
    shop.agent_reply(number, "#done")
    shop.new_mail()
    shop.clock.advance(days=2)
    shop.parts.lifecycle.sweep()
    assert not [k for k in shop.kinds() if k.startswith("notice-promise")]


def test_close_sends_one_closing_email_with_a_generated_code(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#cerrar 15% Gracias por tu paciencia, Ana")
    ticket = shop.ticket(number)
    assert ticket.status == "closed" and ticket.discount_code
    [closing] = [r for r in shop.new_mail() if r.kind == "closing"]
    body = message_from_bytes(closing.raw, policy=policy.default).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert ticket.discount_code in text and "15" in text and "Gracias por tu paciencia" in text


def test_close_without_discount_sends_no_code(shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#close nodiscount")
    assert shop.ticket(number).discount_code is None
    assert shop.kinds().count("closing") == 1


def test_an_empty_pool_still_closes_and_tells_agents(tmp_path: Path) -> None:
    pool = tmp_path / "codes.txt"
    pool.write_text("ONLY-ONE\n")
    shop = _shop(tmp_path, _config(tmp_path, discount_provider="pool", pool_file=str(pool)))
    first = _open_ticket(shop)
    second = shop.receive(customer_email("Otro problema", "Distinto.", sender="pepe@example.net"))
    assert second is not None
    shop.agent_reply(first, "#close")
    shop.agent_reply(second, "#close")
    assert shop.ticket(first).discount_code == "ONLY-ONE"
    assert shop.ticket(second).status == "closed" and shop.ticket(second).discount_code is None
    assert "notice-discount_problem" in shop.kinds()


def test_a_score_reply_is_recorded_and_a_later_reply_reopens_then_opens_a_linked_ticket(
        shop: Shop) -> None:
    number = _open_ticket(shop)
    shop.agent_reply(number, "#close")
    closing_id = _last_out(shop, number)
    shop.receive(customer_email("Re: x", "5", in_reply_to=f"<{closing_id}>"))
    ticket = shop.ticket(number)
    assert ticket.satisfaction == 5 and ticket.status == "closed"
    shop.clock.advance(days=3)
    shop.receive(customer_email("Re: x", "Vuelve a fallar el producto.",
                                in_reply_to=f"<{closing_id}>"))
    assert shop.ticket(number).status == "open"
    assert "reopened" in shop.kinds()
    shop.agent_reply(number, "#close nodiscount")
    closing_id = _last_out(shop, number)
    shop.clock.advance(days=15)
    later = shop.receive(customer_email("Re: x", "Otra vez lo mismo, semanas después.",
                                        in_reply_to=f"<{closing_id}>"))
    assert later is not None and later != number
    assert shop.ticket(later).previous_ticket_id == number
    assert shop.ticket(number).status == "closed"


def _first_out(shop: Shop, number: int) -> str:
    with shop.parts.sessions() as session:
        return session.scalars(select(OutboxItem.message_id).where(
            OutboxItem.ticket_id == number, OutboxItem.kind == "acknowledgement")).one()


def _last_out(shop: Shop, number: int) -> str:
    with shop.parts.sessions() as session:
        return session.scalars(select(OutboxItem.message_id).where(
            OutboxItem.ticket_id == number, OutboxItem.kind == "closing")
            .order_by(OutboxItem.id.desc())).first() or ""
