"""One problem, many customers, end to end: agents link tickets by email, answer all customers at
once from the problem's mail, and close them together (real Dovecot, the SMTP sink, the CLI)."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from helpers.harness import (
    SHOP_ADDRESS,
    SHOP_USER,
    cli,
    customer_email,
    run_once,
    ticket,
    to_agent,
    to_customers,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink

PROBLEM = "huelga-transporte"
CUSTOMERS = {
    "es": ("María García", "maria@example.net", "Mi pedido no llega",
           "Hola, mi pedido no llega desde hace una semana. ¿Qué ha pasado con el envío?"),
    "fr": ("Claire Martin", "claire@example.fr", "Ma commande n'arrive pas",
           "Bonjour, ma commande n'est toujours pas arrivée. Pouvez-vous me dire où elle en est ?"),
    "en": ("John Smith", "john@example.org", "Where is my order",
           "Hello, my order has not arrived yet and the tracking has not moved for days."),
}
BLOCKS = {"es": "La huelga de transportes termina el lunes; tu paquete sale ese mismo día.",
          "fr": "La grève des transports se termine lundi ; votre colis partira le jour même.",
          "en": "The transport strike ends on Monday; your parcel leaves that same day."}


def _reply(parent: CapturedMail, sender: str, body: str, *, parent_id: str | None = None) -> bytes:
    """What an agent's mail client sends when they press Reply on `parent`."""
    original = parent.message
    msg = EmailMessage()
    msg["From"] = f"Ana Ruiz <{sender}>"
    msg["To"] = str(original["From"])
    msg["Subject"] = f"Re: {original['Subject']}"
    msg["Message-ID"] = make_msgid(domain="example.com")
    parent_id = parent_id or str(original["Message-ID"])
    msg["In-Reply-To"] = parent_id
    msg["References"] = parent_id
    msg.set_content(f"{body}\n\nEl lun, 2 mar 2026 a las 10:00, Tienda escribió:\n> (quoted)\n")
    return msg.as_bytes()


def _notification(sink: SmtpSink, number: int, agent: str = "agent1@example.com") -> CapturedMail:
    return next(m for m in to_agent(sink, agent)
                if str(m.message["Subject"]).startswith(f"[#{number}]"))


def _problem_mail(sink: SmtpSink, agent: str = "agent1@example.com") -> CapturedMail:
    return next(m for m in to_agent(sink, agent) if m.message["X-Incidencias-Problem"] == PROBLEM)


def _text(mail: CapturedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    return text


def _everything_readable(mail: CapturedMail) -> str:
    """Every header (decoded) and every text part of a mail, for "is X anywhere in it"."""
    message = mail.message
    parts = [f"{name}: {value}" for name, value in message.items()]
    parts += [str(part.get_content()) for part in message.walk()
              if part.get_content_maintype() == "text"]
    return "\n".join([*parts, mail.data.decode("utf-8", "replace"), " ".join(mail.rcpt_tos)])


def _show(config: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cli(config, "problems", "show", PROBLEM, "--json").stdout)
    return found


@pytest.fixture
def linked(tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> tuple[Path, dict[str, int]]:
    """Three customers in three languages, each ticket linked to the problem by an agent's reply."""
    config = write_config(tmp_path, imap, smtp_sink)
    for language, (name, address, subject, body) in CUSTOMERS.items():
        imap.append(SHOP_USER, customer_email(subject, body, sender=address, name=name,
                                              message_id=f"<first-{language}@example.net>"))
    run_once(config)
    smtp_sink.wait_for(9)
    numbers = {language: next(t["id"] for t in json.loads(cli(config, "tickets", "list",
                                                                 "--json").stdout)
                              if t["customer"] == CUSTOMERS[language][1])
               for language in CUSTOMERS}
    commands = {"es": f"#problema {PROBLEM} Huelga de transportes\nkeywords: huelga, seur",
                "fr": f"#problème {PROBLEM}", "en": f"#problem {PROBLEM}"}
    for language, number in numbers.items():
        imap.append(SHOP_USER, _reply(_notification(smtp_sink, number), "agent1@example.com",
                                      commands[language]))
    run_once(config)
    return config, numbers


def test_agents_link_three_tickets_by_email_and_problems_show_lists_them(
        linked: tuple[Path, dict[str, int]], smtp_sink: SmtpSink) -> None:
    config, numbers = linked
    shown = _show(config)
    assert shown["title"] == "Huelga de transportes" and shown["status"] == "open"
    assert sorted(t["id"] for t in shown["tickets"]) == sorted(numbers.values())
    assert {t["language"] for t in shown["tickets"]} == {"es", "fr", "en"}
    assert all(ticket(config, n)["problem"] == PROBLEM for n in numbers.values())
    problem_mail = _problem_mail(smtp_sink)
    assert str(problem_mail.message["Subject"]) == f"[problem {PROBLEM}] Huelga de transportes"
    assert not to_customers(smtp_sink)[3:], "linking sends nothing to customers"
    listing = json.loads(cli(config, "problems", "list", "--json").stdout)
    assert [(p["name"], p["ticket_count"]) for p in listing] == [(PROBLEM, 3)]


def test_a_reply_to_the_problem_mail_reaches_each_customer_alone_in_their_language_and_thread(
        linked: tuple[Path, dict[str, int]], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, numbers = linked
    parent = _problem_mail(smtp_sink)
    smtp_sink.clear()
    imap.append(SHOP_USER, _reply(parent, "agent1@example.com", "\n\n".join(
        f"[{language}]\n{text}" for language, text in BLOCKS.items())))
    run_once(config)
    smtp_sink.wait_for(5)
    received = to_customers(smtp_sink)
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(c[1] for c in CUSTOMERS.values())
    for language, (_, address, _, _) in CUSTOMERS.items():
        [mail] = [m for m in received if m.rcpt_tos == [address]]
        message = mail.message
        assert BLOCKS[language] in _text(mail)
        assert all(BLOCKS[other] not in _text(mail) for other in BLOCKS if other != language)
        assert message["Content-Language"] == language
        assert f"[#{numbers[language]}]" in str(message["Subject"])
        assert message["In-Reply-To"] == f"<first-{language}@example.net>"
        assert f"first-{language}@example.net" in str(message["References"])
        assert [a.addr_spec for a in message["From"].addresses] == [SHOP_ADDRESS]
        assert [a.addr_spec for a in message["To"].addresses] == [address]
        assert message["Cc"] is None and message["Bcc"] is None
        assert "Ana Ruiz" in _text(mail)
        readable = _everything_readable(mail)
        for other, (other_name, other_address, _, _) in CUSTOMERS.items():
            if other != language:
                assert other_address not in readable and other_name not in readable
        assert "agent1@" not in readable and "agent2@" not in readable
    told = [m for m in to_agent(smtp_sink, "agent1@example.com")
            if m.message["X-Incidencias-Problem"] == PROBLEM]
    assert len(told) == 1 and all(c[1] in _text(told[0]) for c in CUSTOMERS.values())


def test_close_on_the_problem_thread_closes_each_open_ticket_with_its_own_code(
        linked: tuple[Path, dict[str, int]], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, numbers = linked
    cli(config, "tickets", "close", str(numbers["en"]), "--no-discount")
    run_once(config)
    parent = _problem_mail(smtp_sink)
    smtp_sink.clear()
    imap.append(SHOP_USER, _reply(parent, "agent1@example.com", "#cerrar 15%"))
    run_once(config)
    smtp_sink.wait_for(4)
    received = to_customers(smtp_sink)
    assert sorted(m.rcpt_tos[0] for m in received) == ["claire@example.fr", "maria@example.net"]
    codes = {}
    for language in ("es", "fr"):
        shown = ticket(config, numbers[language])
        assert shown["status"] == "closed"
        [mail] = [m for m in received if m.rcpt_tos == [CUSTOMERS[language][1]]]
        assert shown["discount_code"] in _text(mail) and "15" in _text(mail)
        assert mail.message["Content-Language"] == language
        codes[language] = shown["discount_code"]
    assert codes["es"] != codes["fr"]
    assert ticket(config, numbers["en"])["status"] == "closed"
    assert ticket(config, numbers["en"])["discount_code"] is None
    assert _show(config)["status"] == "closed"


def test_a_forged_reply_to_the_problem_mail_sends_nothing_to_customers(
        linked: tuple[Path, dict[str, int]], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, numbers = linked
    parent = _problem_mail(smtp_sink)
    smtp_sink.clear()
    # agent2 replying with agent1's token, and agent1 replying to an id with no valid token
    imap.append(SHOP_USER, _reply(parent, "agent2@example.com", "Mensaje falso para todos."))
    imap.append(SHOP_USER, _reply(parent, "agent1@example.com", "Otro mensaje falso.",
                                  parent_id=str(parent.message["Message-ID"])[:-20] + "0" * 10
                                  + "@example.com>"))
    run_once(config)
    assert not [m for m in smtp_sink.messages
                if set(m.rcpt_tos) & {c[1] for c in CUSTOMERS.values()}]
    assert all(ticket(config, n)["status"] == "open" for n in numbers.values())
    assert not [e for e in _show(config)["events"] if e["kind"] == "broadcast"]


def test_a_new_ticket_mentioning_the_strike_is_flagged_to_agents_and_not_linked(
        linked: tuple[Path, dict[str, int]], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, _ = linked
    smtp_sink.clear()
    imap.append(SHOP_USER, customer_email("¿Dónde está mi pedido?",
                                          "Hola, mi pedido no llega por la huelga.",
                                          sender="pedro@example.net", name="Pedro Gil"))
    run_once(config)
    smtp_sink.wait_for(3)
    [new] = [t for t in json.loads(cli(config, "tickets", "list", "--json").stdout)
             if t["customer"] == "pedro@example.net"]
    notification = _notification(smtp_sink, new["id"])
    assert f"#problem {PROBLEM}" in _text(notification)
    assert "huelga" in _text(notification)
    assert new["problem"] is None
    assert len(_show(config)["tickets"]) == 3
