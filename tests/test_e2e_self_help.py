"""Self-help, the weekly report and the promotion, end to end: the real daemon (`run --once`)
against Dovecot and the SMTP sink."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

from helpers.harness import (
    AGENTS,
    SHOP_USER,
    agent_reply,
    customer_email,
    run_once,
    ticket,
    tickets,
    to_agent,
    to_customers,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink

FAQ = """
[[faq]]
name = "retraso"
keywords.es = ["no ha llegado", "retraso", "seguimiento"]
keywords.fr = ["pas reçu", "retard"]
keywords.en = ["not arrived", "late"]
url = "https://tienda.example/ayuda/envios"
"""
ANSWER_ES = "Los pedidos tardan de 2 a 5 días laborables en llegar."
ANSWERS = {"es": ANSWER_ES, "fr": "La livraison prend de 2 à 5 jours ouvrés.",
           "en": "Delivery takes 2 to 5 working days."}
DELAYED = ("Hola, hice un pedido hace dos semanas y todavía no ha llegado. "
           "¿Me podéis decir qué pasa con el envío?")


def _templates(tmp_path: Path, promotion: bool = False) -> Path:
    root = tmp_path / "templates"
    for language, text in ANSWERS.items():
        (root / language / "faq").mkdir(parents=True, exist_ok=True)
        (root / language / "faq" / "retraso.j2").write_text(text + "\n")
    if promotion:
        (root / "es" / "promotion.j2").write_text(
            "{% block subject %}Gracias por tu valoración{% endblock %}\n"
            "{% block body %}¡Gracias por tu {{ score }}! Solo para ti: 20 % en la nueva "
            "colección con el código INVIERNO20.{% endblock %}\n")
    return root


def _text(mail: CapturedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _answer(mail: CapturedMail, body: str, sender: str) -> bytes:
    """What the customer's mail client sends on Reply: the new text over the quoted mail."""
    original = mail.message
    msg = EmailMessage()
    msg["From"] = f"Cliente <{sender}>"
    msg["To"] = str(original["From"])
    msg["Subject"] = f"Re: {original['Subject']}"
    msg["Message-ID"] = make_msgid(domain="example.net")
    msg["In-Reply-To"] = msg["References"] = str(original["Message-ID"])
    quoted = "\n".join("> " + line for line in _text(mail).splitlines())
    msg.set_content(f"{body}\n\nEl lun, 2 mar 2026 a las 10:00, {original['From']} escribió:\n"
                    f"{quoted}\n")
    return msg.as_bytes()


def _mail_to(sink: SmtpSink, address: str) -> list[CapturedMail]:
    return [m for m in to_customers(sink) if address in m.rcpt_tos]


def test_faq_answer_in_the_acknowledgement_and_resuelto_closes_as_self_solved(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink, extra=FAQ + f"""
[templates]
directory = "{_templates(tmp_path)}"
""")
    imap.append(SHOP_USER, customer_email("Mi pedido", DELAYED, sender="maria@example.net"))
    imap.append(SHOP_USER, customer_email("Factura", "Hola, necesito la factura de mi última "
                                          "compra para la empresa, por favor.",
                                          sender="jorge@example.net", name="Jorge"))
    imap.append(SHOP_USER, customer_email("Pedido", DELAYED, sender="ines@example.net",
                                          name="Inés"))
    run_once(config)
    [maria_ack] = _mail_to(smtp_sink, "maria@example.net")
    assert ANSWER_ES in _text(maria_ack) and "RESUELTO" in _text(maria_ack)
    [plain_ack] = _mail_to(smtp_sink, "jorge@example.net")
    assert ANSWER_ES not in _text(plain_ack) and "RESUELTO" not in _text(plain_ack)
    [ines_ack] = _mail_to(smtp_sink, "ines@example.net")

    imap.append(SHOP_USER, _answer(maria_ack, "RESUELTO", "maria@example.net"))
    imap.append(SHOP_USER, _answer(ines_ack, "RESUELTO pero quiero devolverlo",
                                   "ines@example.net"))
    run_once(config)

    [_, thanks] = _mail_to(smtp_sink, "maria@example.net")
    assert "GRACIAS-" not in _text(thanks) and "descuento" not in _text(thanks)
    by_customer = {t["customer"]: t for t in tickets(config)}
    maria = ticket(config, by_customer["maria@example.net"]["id"])
    assert (maria["status"], maria["self_solved"], maria["faq"], maria["discount_code"]) == (
        "closed", True, ["retraso"], None)
    agent_subjects = [str(m.message["Subject"]) for m in to_agent(smtp_sink, AGENTS[0])]
    assert any(f"[#{maria['id']}]" in s and "retraso" in s for s in agent_subjects)
    ines = by_customer["ines@example.net"]
    assert (ines["status"], ines["self_solved"]) == ("open", False)
    assert len(_mail_to(smtp_sink, "ines@example.net")) == 1, "a follow-up gets no automatic mail"
    assert by_customer["jorge@example.net"]["faq"] == []


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.bars = 0
        self.remote: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.bars += dict(attrs).get("class") == "bar"
        self.remote += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_weekly_report_goes_once_even_across_a_restart_as_text_and_html_charts(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    local = datetime.now(ZoneInfo("Europe/Madrid"))
    yesterday, today = ((local - timedelta(days=days)).strftime("%a").lower() for days in (1, 0))
    # The daemon has been running with its report on another day: its first run notes that
    # day's due moment (a first run never mails a report of the week before it existed).
    config = write_config(tmp_path, imap, smtp_sink, extra=f"""
[report]
weekday = "{yesterday}"
hour = 0
""")
    imap.append(SHOP_USER, customer_email("Jarrón roto", "El jarrón ha llegado roto."))
    run_once(config)
    assert not [m for m in smtp_sink.messages if "Informe" in str(m.message["Subject"])]
    config = write_config(tmp_path, imap, smtp_sink, extra=f"""
[report]
weekday = "{today}"
hour = 0
""")
    run_once(config)  # today 00:00 has passed: this week's report
    run_once(config)  # a second daemon run: not sent again
    reports = [m for m in smtp_sink.messages if m.message["X-Incidencias-Ticket"] == "0"
               and "Informe" in str(m.message["Subject"])]
    assert sorted(r for m in reports for r in m.rcpt_tos) == sorted(AGENTS)
    mail = reports[0].message
    assert str(mail["Subject"]).startswith("Informe "), "no [#0] tag: the report is no ticket's"
    assert mail.get_content_type() == "multipart/alternative"
    midnight = datetime.now(ZoneInfo("Europe/Madrid")).strftime("%Y-%m-%d 00:00")
    # the week up to its due moment (today 00:00): today's ticket belongs to next week's report
    assert f"- {midnight}\n" in _text(reports[0]).replace("\r\n", "\n")
    assert "Incidencias: 0 nuevas" in _text(reports[0])
    rich = mail.get_body(("html",))
    assert rich is not None
    page = _Html()
    page.feed(str(rich.get_content()))
    assert page.bars >= 3 and "table" in page.tags
    assert not {"img", "script", "style", "link"} & set(page.tags) and page.remote == []


def test_a_five_gets_the_promotion_and_a_two_gets_thanks_and_tells_the_agents(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink, extra=f"""
[templates]
directory = "{_templates(tmp_path, promotion=True)}"
""", closing="discount_percent = 0")
    imap.append(SHOP_USER, customer_email("Talla", "Hola, me gustaría cambiar la talla de la "
                                          "camiseta que compré.", sender="ana.c@example.net"))
    imap.append(SHOP_USER, customer_email("Color", "Hola, la camiseta que me llegó es de otro "
                                          "color del que pedí.", sender="luis.c@example.net"))
    run_once(config)
    numbers = {t["customer"]: t["id"] for t in tickets(config)}
    for notification in to_agent(smtp_sink, AGENTS[0]):
        imap.append(SHOP_USER, agent_reply(notification, AGENTS[0], "#cerrar Ya está cambiada."))
    run_once(config)
    [_, happy_closing] = _mail_to(smtp_sink, "ana.c@example.net")
    [_, unhappy_closing] = _mail_to(smtp_sink, "luis.c@example.net")
    smtp_sink.clear()
    imap.append(SHOP_USER, _answer(happy_closing, "5", "ana.c@example.net"))
    imap.append(SHOP_USER, _answer(unhappy_closing, "2", "luis.c@example.net"))
    run_once(config)

    [promotion] = _mail_to(smtp_sink, "ana.c@example.net")
    assert "INVIERNO20" in _text(promotion)
    [thanks] = _mail_to(smtp_sink, "luis.c@example.net")
    assert "INVIERNO20" not in _text(thanks)
    unhappy = numbers["luis.c@example.net"]
    for agent in AGENTS:
        [told] = to_agent(smtp_sink, agent)
        assert f"[#{unhappy}]" in str(told.message["Subject"])
    assert ticket(config, unhappy)["status"] == "closed"
