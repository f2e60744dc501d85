"""Quick answers: the catalogue, the starter set, and an agent's #answer applied to a ticket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
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
from daemon.outbound.rendering import Renderer, TemplateError
from daemon.outbound.template_samples import answer_variants
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, Ticket
from daemon.storage.views import message_object

STARTER = ("delay", "lost", "wrong-item", "damaged", "return", "refund-pending", "invoice",
           "address-change")
GREETINGS = ("hola", "buenos", "bonjour", "hello", "dear", "hi ")
SIGN_OFFS = ("un saludo", "saludos", "cordialement", "regards", "-- ")
SECRET = "answers-secret"
NOW = datetime(2026, 3, 2, 9, 0)  # Monday 10:00 in Madrid


def _override(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "templates"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


# --- the catalogue and the starter set -------------------------------------------------------

def test_the_starter_set_covers_the_common_cases_in_spanish_french_and_english() -> None:
    book = Renderer().answers()
    assert book.names() == sorted(STARTER)
    for name in STARTER:
        assert book.languages(name) == ["en", "es", "fr"]


@pytest.mark.parametrize("language", ["es", "fr", "en"])
@pytest.mark.parametrize("name", STARTER)
def test_each_starter_answer_renders_without_greeting_signature_or_blanks_to_fill(
        name: str, language: str) -> None:
    renderer = Renderer()
    for context in answer_variants():
        text = renderer.render_answer(name, language, context)
        assert text.strip() and text.endswith("\n")
        assert not text.lower().startswith(GREETINGS), "the reply template greets, once"
        assert not any(line.lower().startswith(SIGN_OFFS) for line in text.splitlines())
        assert not any(mark in text for mark in ("[", "XXX", "___", "{{", "<", "None"))


def test_the_built_in_templates_and_answers_pass_the_check() -> None:
    assert Renderer().check() == []


def test_an_override_replaces_one_answer_file_and_adds_new_ones(tmp_path: Path) -> None:
    root = _override(tmp_path, {"es/answers/delay.j2": "Vuestro pedido sale mañana.\n",
                                "es/answers/gift-wrap.j2": "{# nota #}\nEnvolvemos para regalo.\n"})
    renderer = Renderer(root)
    book = renderer.answers()
    assert book.names() == sorted([*STARTER, "gift-wrap"])
    assert book.languages("gift-wrap") == ["es"]
    assert book.first_line("gift-wrap") == "Envolvemos para regalo."
    assert renderer.render_answer("delay", "es", answer_variants()[0]) == "Vuestro pedido sale mañana.\n"
    assert "retard" in renderer.render_answer("delay", "fr", answer_variants()[0])


def test_first_line_prefers_the_agents_language() -> None:
    book = Renderer().answers()
    assert book.first_line("lost", ["fr", "es"]).startswith("Nous sommes vraiment désolés")
    assert book.first_line("lost", ["de", "en"]).startswith("We're very sorry")


def test_closest_names_help_with_a_typo() -> None:
    book = Renderer().answers()
    assert book.closest("dealy")[0] == "delay"
    assert "refund-pending" in book.closest("refund")
    assert book.closest("zzzzzz") == []


def test_an_answer_is_never_rendered_in_another_language(tmp_path: Path) -> None:
    renderer = Renderer(_override(tmp_path, {"es/answers/only-es.j2": "Solo en español.\n"}))
    with pytest.raises(TemplateError, match="no answer 'only-es' in 'fr'"):
        renderer.render_answer("only-es", "fr", answer_variants()[0])


def test_check_reports_a_broken_answer_and_a_badly_named_file_by_file_and_line(tmp_path: Path) -> None:
    root = _override(tmp_path, {
        "es/answers/broken.j2": "Primera línea.\n\nTu pedido {{ order.number }} sale hoy.\n",
        "fr/answers/Mal_Nommee.j2": "Bonjour\n"})
    problems = Renderer(root).check()
    broken = [p for p in problems if p.file.endswith("es/answers/broken.j2")]
    assert broken and broken[0].line == 3 and "order" in broken[0].message
    assert any(p.file.endswith("Mal_Nommee.j2") and "ignored" in p.message for p in problems)


def test_an_answer_that_fails_only_for_some_tickets_is_caught_by_the_check(tmp_path: Path) -> None:
    root = _override(tmp_path, {
        "es/answers/date.j2": "Te escribimos el {{ promised_date | long_date('es') }}.\n"})
    [problem] = Renderer(root).check()
    assert problem.file.endswith("es/answers/date.j2") and problem.line == 1


# --- an agent's #answer on a ticket, in process ----------------------------------------------

@dataclass
class Shop:
    parts: Components
    seen: set[int] = field(default_factory=set)

    def receive(self, raw: bytes) -> int | None:
        return self.parts.ingestor.ingest(raw).ticket

    def new_mail(self) -> list[tuple[str, str, EmailMessage]]:
        """(kind, recipients, message) of the mail queued since the last call."""
        with self.parts.sessions() as session:
            rows = [r for r in session.scalars(select(OutboxItem).order_by(OutboxItem.id))
                    if r.id not in self.seen]
        self.seen.update(r.id for r in rows)
        return [(r.kind, r.recipients, _parsed(r.raw)) for r in rows]

    def agent_reply(self, number: int, body: str, agent: str = "ana@example.com") -> None:
        token = notification_id(SECRET.encode(), number, agent, "example.com")
        self.receive(customer_email(f"Re: [#{number}] x", body, sender=agent, name="Ana",
                                    in_reply_to=f"<{token}>", references=[f"<{token}>"]))

    def messages(self, number: int) -> list[dict[str, object]]:
        with self.parts.sessions() as session:
            ticket = session.get_one(Ticket, number)
            return [message_object(m) for m in ticket.messages]

    def ticket(self, number: int) -> Ticket:
        with self.parts.sessions() as session:
            return session.get_one(Ticket, number)


def _parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _shop(tmp_path: Path, templates: Path | None = None) -> Shop:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es",
                 "timezone": "Europe/Madrid"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
        "templates": {"directory": str(templates) if templates else None},
    })
    engine = migrated_engine(tmp_path, "answers.db")
    settings = Settings(config=config, path=tmp_path / "config.toml",
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr(SECRET)))
    return Shop(assemble(settings, engine, db.session_factory(engine), lambda: NOW))


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    yield _shop(tmp_path, _override(tmp_path, {
        "es/answers/only-es.j2": "Solo lo tenemos en español.\n",
        "es/answers/dated.j2": "Te escribimos el {{ promised_date | long_date('es') }}.\n"}))


def _ticket(shop: Shop, language: str = "es") -> int:
    text = {"es": "Hola, mi pedido no ha llegado todavía y ya han pasado dos semanas. ¿Qué pasa?",
            "fr": "Bonjour, ma commande n'est toujours pas arrivée alors que cela fait deux "
                  "semaines. Pouvez-vous regarder ce qui se passe ?"}[language]
    number = shop.receive(customer_email("Pedido", text))
    assert number is not None
    assert shop.ticket(number).language == language
    shop.new_mail()
    return number


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_an_answer_alone_goes_to_the_customer_greeted_signed_and_recorded(shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#respuesta delay")
    mail = shop.new_mail()
    [(kind, _, reply)] = [m for m in mail if m[1] == "maria@example.net"]
    assert kind == "agent-reply" and reply["Content-Language"] == "es"
    text = _text(reply)
    assert text.startswith("Hola, María García:\n\nTu pedido va con retraso")
    assert "Un saludo,\n\n-- \nAna · Tienda" in text
    assert [k for k, to, _ in mail if to == "luis@example.com"] == ["copy-reply"]
    sent = [m for m in shop.messages(number) if m["kind"] == "agent-reply"]
    assert [(m["direction"], m["answers"]) for m in sent] == [("agent", []), ("out", ["delay"])]
    assert all(m["answers"] == [] for m in shop.messages(number) if m["kind"] != "agent-reply")


def test_own_words_come_first_then_answers_in_order_and_the_greeting_is_not_doubled(
        shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#answer delay\n#answer invoice\n\nHola María, te cuento.")
    [(_, _, reply)] = [m for m in shop.new_mail() if m[1] == "maria@example.net"]
    text = _text(reply)
    assert text.startswith("Hola María, te cuento.\n\nTu pedido va con retraso")
    assert text.index("retraso") < text.index("factura")
    assert text.count("Hola") == 1 and "Un saludo" not in text
    [out] = [m for m in shop.messages(number) if m["direction"] == "out" and m["answers"]]
    assert out["answers"] == ["delay", "invoice"]


def test_a_forced_language_or_a_lang_command_writes_the_whole_reply_in_it(shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#réponse lost fr")
    [(_, _, forced)] = [m for m in shop.new_mail() if m[1] == "maria@example.net"]
    assert forced["Content-Language"] == "fr"
    assert _text(forced).startswith("Bonjour María García,\n\nNous sommes vraiment désolés")
    assert shop.ticket(number).language == "es", "forcing one answer does not change the ticket"
    shop.agent_reply(number, "#langue en\n#answer lost")
    [(_, _, switched)] = [m for m in shop.new_mail() if m[1] == "maria@example.net"]
    assert _text(switched).startswith("Hello María García,\n\nWe're very sorry")
    assert shop.ticket(number).language == "en"


def _error(shop: Shop) -> str:
    mail = shop.new_mail()
    assert [m for m in mail if m[1] == "maria@example.net"] == [], "nothing reaches the customer"
    [(kind, to, error)] = mail
    assert (kind, to) == ("command-error", "ana@example.com")
    return _text(error)


def test_an_answer_missing_in_the_customers_language_sends_nothing_and_says_how_to_force(
        shop: Shop) -> None:
    number = _ticket(shop, "fr")
    shop.agent_reply(number, "#tag retraso\n#answer only-es")
    text = _error(shop)
    assert "only-es" in text and "French (fr)" in text and "es" in text
    assert "#answer only-es es" in text
    assert shop.ticket(number).tags == "", "no command of a rejected reply applies"


def test_an_unknown_answer_names_the_closest_ones(shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#respuesta dealy")
    text = _error(shop)
    assert "'dealy'" in text and "delay" in text


def test_an_answer_that_cannot_render_for_this_ticket_sends_nothing_and_says_why(
        shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#answer dated")
    text = _error(shop)
    assert "dated" in text and "dated.j2:1" in text
    shop.agent_reply(number, "#promise 2026-03-05 llamar a la agencia\n#answer dated")
    [(_, _, reply)] = [m for m in shop.new_mail() if m[1] == "maria@example.net"]
    assert "Te escribimos el 5 de marzo de 2026." in _text(reply)


def test_the_answers_command_mails_the_list_to_the_agent_only(shop: Shop) -> None:
    number = _ticket(shop)
    shop.agent_reply(number, "#respuestas")
    [(kind, to, listing)] = shop.new_mail()
    assert (kind, to) == ("answers", "ana@example.com")
    text = _text(listing)
    assert "- delay (en, es, fr): Tu pedido va con retraso" in text
    assert "- only-es (es): Solo lo tenemos en español." in text
    assert [m["kind"] for m in shop.messages(number)][-1] == "commands"


def test_a_customer_writing_hash_answer_gets_no_answer_run(shop: Shop) -> None:
    number = _ticket(shop)
    shop.receive(customer_email(f"Re: [#{number}] Pedido", "#answer refund-pending\n\n¿Y bien?"))
    kinds = [k for k, _, _ in shop.new_mail()]
    assert "agent-reply" not in kinds
    with shop.parts.sessions() as session:
        assert session.scalars(select(Message.answers).where(Message.answers != "")).all() == []


def test_an_answer_in_a_language_without_a_reply_template_is_refused(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _override(tmp_path, {"nl/answers/delay.j2": "Uw pakket is onderweg.\n"}))
    number = _ticket(shop)
    shop.agent_reply(number, "#answer delay nl")
    assert "no reply template in nl" in _error(shop)
