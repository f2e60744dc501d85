"""Agents work a ticket from their mail client, end to end against Dovecot and aiosmtpd."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from helpers.figures import record
from helpers.harness import (
    SHOP_ADDRESS,
    SHOP_USER,
    agent_reply,
    run_once,
    ticket,
    tickets,
    to_agent,
    to_customers,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink

PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000


def _customer_with_photo() -> bytes:
    msg = EmailMessage()
    msg["From"] = "María García <maria@example.net>"
    msg["To"] = SHOP_ADDRESS
    msg["Subject"] = "Talla equivocada"
    msg["Message-ID"] = "<talla@example.net>"
    msg.set_content("Hola, pedí una L y me llegó una M. Os adjunto foto de la etiqueta.")
    msg.add_attachment(PHOTO, maintype="image", subtype="png", filename="etiqueta.png")
    return msg.as_bytes()


@pytest.fixture
def opened(tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> tuple[Path, int]:
    config = write_config(tmp_path, imap, smtp_sink)
    imap.append(SHOP_USER, _customer_with_photo())
    run_once(config)
    [created] = tickets(config)
    return config, created["id"]


def _notification(sink: SmtpSink, agent: str) -> CapturedMail:
    return to_agent(sink, agent)[0]


def test_agents_are_notified_with_text_summary_commands_and_attachment(
        opened: tuple[Path, int], smtp_sink: SmtpSink) -> None:
    _, number = opened
    smtp_sink.wait_for(3)
    for agent in ("agent1@example.com", "agent2@example.com"):
        notification = _notification(smtp_sink, agent).message
        sender = notification["From"].addresses[0]
        assert (sender.display_name, sender.addr_spec) == ("María García via Tienda Ejemplo",
                                                           SHOP_ADDRESS)
        assert str(notification["Subject"]).startswith(f"[#{number}]")
        text = notification.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "pedí una L y me llegó una M" in text
        assert "#nota" in text or "#note" in text
        [photo] = [p for p in notification.iter_attachments() if p.get_filename() == "etiqueta.png"]
        assert photo.get_content() == PHOTO
    first_id = _notification(smtp_sink, "agent1@example.com").message["Message-ID"]
    second_id = _notification(smtp_sink, "agent2@example.com").message["Message-ID"]
    assert first_id != second_id, "each agent gets their own signed notification"


def test_an_agent_reply_reaches_the_customer_alone_from_the_shop_in_the_customer_thread(
        opened: tuple[Path, int], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, number = opened
    smtp_sink.wait_for(3)
    [ack] = to_customers(smtp_sink)
    notification = _notification(smtp_sink, "agent1@example.com")
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com",
                                  "Hola María, mañana te enviamos la talla L. Perdona la confusión.",
                                  attachment=b"%PDF-1.4 etiqueta de cambio"))
    run_once(config)

    [to_maria] = to_customers(smtp_sink)
    message = to_maria.message
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "mañana te enviamos la talla L" in text
    assert "escribió" not in text and "pedí una L" not in text, "quoted history leaked"
    assert b"agent1@" not in to_maria.data, "the agent's address reached the customer"
    assert to_maria.rcpt_tos == ["maria@example.net"]
    assert SHOP_ADDRESS in str(message["From"])
    assert message["In-Reply-To"] == "<talla@example.net>"
    assert ack.message["Message-ID"].strip("<>") in str(message["References"])
    assert f"[#{number}]" in str(message["Subject"])
    assert [p.get_filename() for p in message.iter_attachments()] == ["cambio.pdf"]
    assert to_agent(smtp_sink, "agent2@example.com"), "the other agent gets a copy"
    assert not to_agent(smtp_sink, "agent1@example.com")
    directions = [m["direction"] for m in ticket(config, number)["messages"]]
    assert directions == ["in", "out", "agent", "out"]


def test_a_note_reaches_agents_only(opened: tuple[Path, int], imap: Dovecot,
                                    smtp_sink: SmtpSink) -> None:
    config, number = opened
    smtp_sink.wait_for(3)
    notification = _notification(smtp_sink, "agent1@example.com")
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com",
                                  "#nota La clienta ya llamó por teléfono, no insistir."))
    run_once(config)
    assert to_customers(smtp_sink) == []
    [copy] = to_agent(smtp_sink, "agent2@example.com")
    assert "no insistir" in copy.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    notes = [m for m in ticket(config, number)["messages"] if m["direction"] == "note"]
    assert notes and "no insistir" in notes[-1]["text"]


def test_commands_change_the_ticket_and_are_never_sent_to_the_customer(
        opened: tuple[Path, int], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, number = opened
    smtp_sink.wait_for(3)
    notification = _notification(smtp_sink, "agent1@example.com")
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(
        notification, "agent1@example.com",
        "#wait 2d\n#asignar agent2\n#tag talla\n#lang fr\n#estado On a commandé la taille L\n\n"
        "Bonjour María, nous vous envoyons la taille L."))
    run_once(config)
    shown = ticket(config, number)
    assert shown["assigned_to"] == "agent2@example.com"
    assert shown["tags"] == ["talla"]
    assert shown["language"] == "fr"
    assert shown["status_line"] == "On a commandé la taille L"
    assert shown["wait_until"] is not None
    [to_maria] = to_customers(smtp_sink)
    assert b"#wait" not in to_maria.data and b"#estado" not in to_maria.data
    assert "nous vous envoyons la taille L" in to_maria.message.get_body(  # type: ignore[union-attr]
        ("plain",)).get_content()


def test_an_unknown_command_is_explained_to_the_agent_and_nothing_else_happens(
        opened: tuple[Path, int], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, number = opened
    smtp_sink.wait_for(3)
    notification = _notification(smtp_sink, "agent1@example.com")
    before = ticket(config, number)
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com",
                                  "#cerrar\n#volar alto\n\nGracias por todo."))
    run_once(config)
    assert to_customers(smtp_sink) == []
    [error] = to_agent(smtp_sink, "agent1@example.com")
    assert "#volar" in error.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    after = ticket(config, number)
    assert after["status"] == before["status"] == "open"


@pytest.mark.parametrize("forgery", ["no-token", "token-of-another-ticket", "token-of-another-agent"])
def test_forged_agent_mail_is_never_relayed_and_runs_no_command(
        forgery: str, opened: tuple[Path, int], imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config, number = opened
    smtp_sink.wait_for(3)
    notification = _notification(smtp_sink, "agent1@example.com")
    sender = "agent1@example.com"
    parent = str(notification.message["Message-ID"])
    if forgery == "no-token":
        parent = make_msgid(domain="example.com")
    elif forgery == "token-of-another-ticket":
        parent = parent.replace(f"<incidencias.{number}.", f"<incidencias.{number + 1}.")
    else:
        sender = "agent2@example.com"
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, sender, "#close\n\nCaso cerrado, adiós.",
                                  in_reply_to=parent))
    run_once(config)
    status = ticket(config, number)["status"]
    relayed = [m for m in to_customers(smtp_sink) if m.rcpt_tos == ["maria@example.net"]]
    record("forged commands accepted", int(status != "open" or bool(relayed)))
    record("forged-agent and cross-ticket attempts", 1)
    assert status == "open"
    assert not relayed
    warnings = [m for m in to_agent(smtp_sink, sender)
                if "no verificado" in str(m.message["Subject"])]
    assert len(warnings) == 1, "the agent whose address was used is told, once"
