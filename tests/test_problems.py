"""Problems on a real database, no servers: linking, broadcasting, closing, flagging, updates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import select

from daemon.config import Config, Secrets, Settings
from daemon.mail.authenticity import notification_id
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.address_keys import address_hash
from daemon.storage.models import OutboxItem, Problem, SuppressedAddress, Ticket
from daemon.storage.views import show_ticket

SECRET = "problems-secret"
MONDAY_10 = datetime(2026, 3, 2, 9, 0)
CUSTOMERS = {
    "es": ("María García", "maria@example.net", "Mi pedido no llega",
           "Hola, mi pedido no llega desde hace una semana. ¿Qué ha pasado con el envío?"),
    "fr": ("Claire Martin", "claire@example.fr", "Ma commande n'arrive pas",
           "Bonjour, ma commande n'est toujours pas arrivée. Pouvez-vous me dire où elle en est ?"),
    "en": ("John Smith", "john@example.org", "Where is my order",
           "Hello, my order has not arrived yet and the tracking has not moved for days."),
}


@dataclass
class Clock:
    now: datetime = MONDAY_10

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    parts: Components
    clock: Clock
    seen: set[int] = field(default_factory=set)
    replies: int = 0

    def receive(self, raw: bytes) -> int | None:
        return self.parts.ingestor.ingest(raw).ticket

    def new_mail(self) -> list[OutboxItem]:
        with self.parts.sessions() as session:
            rows = [r for r in session.scalars(select(OutboxItem).order_by(OutboxItem.id))
                    if r.id not in self.seen]
        self.seen.update(r.id for r in rows)
        return rows

    def open(self, language: str) -> int:
        name, address, subject, body = CUSTOMERS[language]
        number = self.receive(customer_email(subject, body, sender=address, name=name,
                                             message_id=f"<first-{language}@example.net>"))
        assert number is not None
        return number

    def on_ticket(self, number: int, body: str, agent: str = "ana@example.com") -> None:
        token = notification_id(SECRET.encode(), number, agent, "example.com")
        self.reply_to(f"<{token}>", body, agent)

    def reply_to(self, parent: str, body: str, agent: str = "ana@example.com",
                 message_id: str | None = None) -> None:
        self.replies += 1
        self.receive(customer_email("Re: x", body, sender=agent, name="Ana Ruiz",
                                    in_reply_to=parent, references=[parent],
                                    message_id=message_id or f"<reply-{self.replies}@example.com>"))

    def problem_mail(self, agent: str = "ana@example.com") -> EmailMessage:
        """The first mail about a problem to this agent, from the whole outbox."""
        with self.parts.sessions() as session:
            rows = session.scalars(select(OutboxItem).where(OutboxItem.kind.like("problem-%"))
                                   .order_by(OutboxItem.id)).all()
        found = [_parsed(r) for r in rows if r.recipients == agent]
        assert found
        return found[0]

    def ticket(self, number: int) -> Ticket:
        with self.parts.sessions() as session:
            return session.get_one(Ticket, number)


def _parsed(row: OutboxItem) -> EmailMessage:
    message = message_from_bytes(row.raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(row: OutboxItem) -> str:
    body = _parsed(row).get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    return text


def _config() -> Config:
    return Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es",
                 "timezone": "Europe/Madrid"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
        "updates": {"every": "3d"},
        "escalation": {"digest_hour": None},
        "closing": {"discount_percent": 10},
    })


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    engine = migrated_engine(tmp_path, "problems.db")
    clock = Clock()
    settings = Settings(config=_config(), path=tmp_path / "config.toml",
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr(SECRET)))
    yield Shop(assemble(settings, engine, db.session_factory(engine), clock), clock)
    engine.dispose()


@pytest.fixture
def linked(shop: Shop) -> dict[str, int]:
    numbers = {language: shop.open(language) for language in CUSTOMERS}
    shop.on_ticket(numbers["es"], "#problema huelga-transporte Huelga de transportes\n"
                   "palabras clave: huelga, seur")
    shop.on_ticket(numbers["fr"], "#problème huelga-transporte")
    shop.on_ticket(numbers["en"], "#problem huelga-transporte")
    shop.new_mail()
    return numbers


def test_problem_command_creates_the_problem_links_the_ticket_and_opens_a_signed_thread(
        shop: Shop) -> None:
    number = shop.open("es")
    shop.new_mail()
    shop.on_ticket(number, "#problema huelga-transporte Huelga de transportes\n"
                   "keywords: huelga, seur")
    mail = shop.new_mail()
    assert [r.kind for r in mail] == ["problem-created", "problem-created"]
    assert {r.recipients for r in mail} == {"ana@example.com", "luis@example.com"}
    first = _parsed(mail[0])
    assert str(first["Subject"]) == "[problem huelga-transporte] Huelga de transportes"
    assert first["X-Incidencias-Problem"] == "huelga-transporte"
    assert first["X-Incidencias-Ticket"] is None
    assert first["Message-ID"].startswith("<incidencias.problem.")
    assert f"{number}" in _text(mail[0]) and "maria@example.net" in _text(mail[0])
    with shop.parts.sessions() as session:
        [problem] = session.scalars(select(Problem)).all()
        assert (problem.title, problem.keywords) == ("Huelga de transportes", "huelga,seur")
        shown = show_ticket(session, number)
    assert shown is not None and shown["problem"] == "huelga-transporte"


def test_link_and_unlink_are_told_in_the_problem_thread(shop: Shop, linked: dict[str, int]
                                                        ) -> None:
    shop.on_ticket(linked["fr"], "#problema -")
    mail = shop.new_mail()
    assert {r.kind for r in mail} == {"problem-unlinked"}
    assert all(str(_parsed(r)["Subject"]).startswith("[problem huelga-transporte]") for r in mail)
    assert shop.ticket(linked["fr"]).problem_id is None
    assert shop.ticket(linked["es"]).problem_id is not None


def test_a_broadcast_reaches_each_customer_once_in_their_language_and_thread_alone(
        shop: Shop, linked: dict[str, int]) -> None:
    shop.reply_to(shop.problem_mail()["Message-ID"],
                  "[es]\nLa huelga termina el lunes.\n\n[fr]\nLa grève se termine lundi.\n\n"
                  "[en]\nThe strike ends on Monday.")
    mail = shop.new_mail()
    to_customers = [r for r in mail if r.kind == "broadcast"]
    assert len(to_customers) == 3
    expected = {"es": "La huelga termina el lunes.", "fr": "La grève se termine lundi.",
                "en": "The strike ends on Monday."}
    for language, number in linked.items():
        _, address, _, _ = CUSTOMERS[language]
        [row] = [r for r in to_customers if r.recipients == address]
        message = _parsed(row)
        assert row.ticket_id == number and row.mail_from == "incidencias@example.com"
        assert f"[#{number}]" in str(message["Subject"])
        assert message["In-Reply-To"] == f"<first-{language}@example.net>"
        assert expected[language] in _text(row)
        assert "Ana Ruiz" in _text(row)
        others = [v for k, v in CUSTOMERS.items() if k != language]
        raw = row.raw.decode("utf-8", "replace")
        for other_name, other_address, _, _ in others:
            assert other_address not in raw and other_name not in _text(row)
        assert "ana@example.com" not in raw
    told = [r for r in mail if r.kind == "problem-broadcast"]
    assert {r.recipients for r in told} == {"ana@example.com", "luis@example.com"}


def test_customers_without_a_block_get_the_first_and_the_agent_is_told(
        shop: Shop, linked: dict[str, int]) -> None:
    shop.reply_to(shop.problem_mail()["Message-ID"],
                  "[es]\nLa huelga termina el lunes.\n\n[fr]\nLa grève se termine lundi.")
    mail = shop.new_mail()
    [english] = [r for r in mail if r.kind == "broadcast" and r.recipients == "john@example.org"]
    assert "La huelga termina el lunes." in _text(english)
    [told] = [r for r in mail if r.kind == "problem-broadcast" and r.recipients == "ana@example.com"]
    fallback_line = next(line for line in _text(told).splitlines() if f"{linked['en']}" in line
                         and "john@example.org" in line)
    assert "[es]" in fallback_line and "NO" in fallback_line


def test_a_reply_with_a_bad_command_or_a_customer_named_sends_nothing_to_customers(
        shop: Shop, linked: dict[str, int]) -> None:
    parent = shop.problem_mail()["Message-ID"]
    for body in ("#asignar luis\n\nLa huelga sigue.", "[es]\nHola\n[es]\nOtra vez",
                 "Como le dijimos a María García, la huelga sigue."):
        shop.reply_to(parent, body)
        mail = shop.new_mail()
        assert [r.kind for r in mail] == ["problem-rejected"], body
        assert mail[0].recipients == "ana@example.com"


def test_close_gives_each_open_ticket_its_own_code_and_skips_one_closed_before(
        shop: Shop, linked: dict[str, int]) -> None:
    shop.on_ticket(linked["en"], "#close nodiscount")
    shop.new_mail()
    shop.reply_to(shop.problem_mail()["Message-ID"], "#cerrar 15%")
    mail = shop.new_mail()
    closing = [r for r in mail if r.kind == "closing"]
    assert sorted(r.recipients for r in closing) == ["claire@example.fr", "maria@example.net"]
    codes = {shop.ticket(linked[k]).discount_code for k in ("es", "fr")}
    assert len(codes) == 2 and None not in codes
    assert all(shop.ticket(n).status == "closed" for n in linked.values())
    assert shop.ticket(linked["en"]).discount_code is None
    french = next(r for r in closing if r.recipients == "claire@example.fr")
    assert "15" in _text(french) and _parsed(french)["Content-Language"] == "fr"
    with shop.parts.sessions() as session:
        assert session.scalars(select(Problem.state)).one() == "closed"


def test_a_forged_or_foreign_token_broadcasts_nothing(shop: Shop, linked: dict[str, int]) -> None:
    parent = shop.problem_mail()["Message-ID"]
    shop.reply_to(parent, "Mensaje falso para todos.", agent="luis@example.com")
    shop.reply_to(parent.replace(".problem.1.", ".problem.2."), "Otro falso.")
    shop.reply_to("<incidencias.problem.1.0000000000000000.00000000000000000000000000000000"
                  "@example.com>", "Y otro.")
    assert not [r for r in shop.new_mail() if r.kind == "broadcast"]


def test_the_same_reply_delivered_twice_broadcasts_once(shop: Shop, linked: dict[str, int]
                                                        ) -> None:
    parent = shop.problem_mail()["Message-ID"]
    shop.reply_to(parent, "La huelga sigue.", message_id="<same@example.com>")
    shop.reply_to(parent, "La huelga sigue. ", message_id="<same@example.com>")
    assert len([r for r in shop.new_mail() if r.kind == "broadcast"]) == 3


def test_a_hard_bounced_customer_is_skipped_and_the_agents_told(
        shop: Shop, linked: dict[str, int]) -> None:
    with shop.parts.sessions.begin() as session:
        session.add(SuppressedAddress(address_hash=address_hash(session, "claire@example.fr"),
                                      reason="550 no such user",
                                      until=MONDAY_10 + timedelta(days=7)))
    shop.reply_to(shop.problem_mail()["Message-ID"], "La huelga sigue.")
    mail = shop.new_mail()
    assert sorted(r.recipients for r in mail if r.kind == "broadcast") == [
        "john@example.org", "maria@example.net"]
    [told] = [r for r in mail if r.kind == "problem-broadcast" and r.recipients == "ana@example.com"]
    assert "claire@example.fr" in _text(told) and "hard-bounced" in _text(told)


def test_status_and_wait_act_on_the_problem_and_every_open_ticket(
        shop: Shop, linked: dict[str, int]) -> None:
    shop.on_ticket(linked["fr"], "#status Colis retrouvé, livraison demain")
    shop.reply_to(shop.problem_mail()["Message-ID"],
                  "#estado La huelga retrasa los envíos\n#esperar 1d")
    mail = shop.new_mail()
    assert not [r for r in mail if r.kind == "broadcast"]
    assert all(shop.ticket(n).wait_until is not None for n in linked.values())
    shop.clock.now += timedelta(days=3, hours=1)
    shop.parts.lifecycle.sweep()
    updates = {r.recipients: _text(r) for r in shop.new_mail() if r.kind == "update"}
    assert "La huelga retrasa los envíos" in updates["maria@example.net"]
    assert "Colis retrouvé" in updates["claire@example.fr"]
    assert "La huelga retrasa" not in updates["claire@example.fr"]


def test_a_new_ticket_mentioning_a_keyword_is_flagged_to_agents_but_not_linked(
        shop: Shop, linked: dict[str, int]) -> None:
    number = shop.receive(customer_email("Retraso", "Hola, mi pedido no llega por la huelga.",
                                         sender="pedro@example.net", name="Pedro"))
    assert number is not None
    [notification] = [r for r in shop.new_mail()
                      if r.kind == "notification" and r.recipients == "ana@example.com"]
    assert "#problem huelga-transporte" in _text(notification)
    assert shop.ticket(number).problem_id is None


def test_a_quick_answer_on_the_problem_thread_reaches_each_customer_in_their_language(
        shop: Shop, linked: dict[str, int]) -> None:
    shop.reply_to(shop.problem_mail()["Message-ID"], "#respuesta delay")
    mail = [r for r in shop.new_mail() if r.kind == "broadcast"]
    opening = {"es": "Tu pedido va con retraso", "fr": "Votre commande a pris du retard",
               "en": "Your order is running late"}
    assert len(mail) == 3
    for language, (_, address, _, _) in CUSTOMERS.items():
        [row] = [r for r in mail if r.recipients == address]
        assert opening[language] in _text(row)
        assert _parsed(row)["Content-Language"] == language
        assert all(opening[other] not in _text(row) for other in opening if other != language)


def test_a_quick_answer_missing_in_one_customers_language_refuses_the_whole_reply(
        shop: Shop, linked: dict[str, int]) -> None:
    with shop.parts.sessions.begin() as session:
        session.get_one(Ticket, linked["fr"]).language = "de"
    shop.reply_to(shop.problem_mail()["Message-ID"], "#answer delay\n\nLa huelga sigue.")
    mail = shop.new_mail()
    assert [r.kind for r in mail] == ["problem-rejected"]
    assert f"#{linked['fr']}" in _text(mail[0]) and "delay" in _text(mail[0])


def test_linking_a_ticket_to_a_closed_problem_opens_it_again(shop: Shop,
                                                             linked: dict[str, int]) -> None:
    shop.reply_to(shop.problem_mail()["Message-ID"], "#close nodiscount")
    number = shop.receive(customer_email(
        "Otro retraso", "Mi pedido tampoco llega.", sender="pedro@example.net", name="Pedro"))
    assert number is not None
    shop.new_mail()
    shop.on_ticket(number, "#problema huelga-transporte")
    assert [r.kind for r in shop.new_mail()] == ["problem-linked", "problem-linked"]
    with shop.parts.sessions() as session:
        assert session.scalars(select(Problem.state)).one() == "open"
    assert shop.ticket(number).problem_id is not None
