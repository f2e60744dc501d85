"""Admin commands through the real command line: search, the outbox and the quarantine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.harness import SHOP_USER, cli, customer_email, run_once, tickets, write_config
from helpers.mailservers import Dovecot, SmtpSink


def _json(config: Path, *args: str) -> Any:
    return json.loads(cli(config, *args, "--json").stdout)


def test_search_finds_tickets_by_subject_customer_or_text_ignoring_case_and_accents(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    imap.append(SHOP_USER, customer_email("Pedido 4471 no ha llegado", "Sigo esperando el envío.",
                                          name="Álvaro Núñez", sender="alvaro@example.net"))
    imap.append(SHOP_USER, customer_email("Wrong size", "The jumper is an M, I ordered 100% wool L.",
                                          name="Jane Roe", sender="jane@example.org"))
    imap.append(SHOP_USER, customer_email("Factura", "Necesito la factura con mi NIF.",
                                          name="Marta Gil", sender="marta@example.com"))
    run_once(config)
    by_customer = {t["customer"]: t["id"] for t in tickets(config)}

    def found(text: str) -> list[str]:
        hits = _json(config, "tickets", "search", text)
        return sorted(t["customer"] for t in hits)

    assert found("pEDIDO 4471") == ["alvaro@example.net"]  # subject
    assert found("ÁLVARO NÚÑEZ") == ["alvaro@example.net"]  # name, accented capitals
    assert found("example.org") == ["jane@example.org"]  # address
    assert found("ENVÍO") == ["alvaro@example.net"]  # message text
    assert found("100%") == ["jane@example.org"]  # % is a character, not a wildcard
    assert found("nobody wrote this") == []

    table = cli(config, "tickets", "search", "factura").stdout
    assert table.splitlines()[0].split()[:2] == ["#", "status"]
    assert str(by_customer["marta@example.com"]) in table and "marta@example.com" in table
    assert "no ticket mentions" in cli(config, "tickets", "search", "zzz").stdout
    assert cli(config, "tickets", "search", "  ", check=False).returncode == 2


def test_tickets_list_and_show_print_tables_for_people(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    imap.append(SHOP_USER, customer_email("Mi pedido no ha llegado", "Hola, no ha llegado nada."))
    run_once(config)
    listing = cli(config, "tickets", "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["#", "status", "lang"]
    assert listing[1].split()[:2] == ["1", "open"] and "Mi pedido no ha llegado" in listing[1]
    shown = cli(config, "tickets", "show", "1").stdout
    assert shown.startswith("Ticket #1  [open]  Mi pedido no ha llegado")
    assert "Hola, no ha llegado nada." in shown


def test_outbox_lists_refused_mail_and_retry_sends_the_same_messages_again(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    smtp_sink.data_reply = "550 5.7.1 Relaying denied"
    imap.append(SHOP_USER, customer_email("Talla equivocada", "Pedí una L y llegó una M."))
    cli(config, "run", "--once", check=False)

    failed = _json(config, "outbox", "list")
    assert len(failed) == 3  # the acknowledgement and one notification per agent
    assert {item["status"] for item in failed} == {"failed"}
    assert all(item["attempts"] == 1 and "550" in item["last_error"] for item in failed)
    assert all(item["ticket"] == 1 for item in failed)
    [ack] = [item for item in failed if item["kind"] == "acknowledgement"]
    assert ack["recipients"] == ["maria@example.net"]
    assert _json(config, "outbox", "list", "--status", "sent") == []
    table = cli(config, "outbox", "list").stdout
    assert "last error" in table.splitlines()[0] and "Relaying denied" in table

    smtp_sink.data_reply = "250 Message accepted"
    assert "is due now" in cli(config, "outbox", "retry", str(ack["id"])).stdout
    [again] = _json(config, "outbox", "list", "--status", "pending")
    assert again["id"] == ack["id"] and again["attempts"] == 1 and again["next_attempt_at"]
    assert "2 failed message(s)" in cli(config, "outbox", "retry", "--all-failed").stdout
    assert _json(config, "outbox", "list", "--status", "failed") == []

    run_once(config)
    smtp_sink.wait_for(3)
    sent_ids = {m.message["Message-ID"].strip("<>") for m in smtp_sink.messages}
    assert sent_ids == {item["message_id"] for item in failed}
    assert cli(config, "outbox", "list").stdout.strip() == "no unsent mail in the outbox"
    assert cli(config, "outbox", "retry", str(ack["id"]), check=False).returncode == 1
    assert cli(config, "outbox", "retry", "9999", check=False).returncode == 1
    assert cli(config, "outbox", "retry", check=False).returncode == 2


def test_quarantine_replay_files_a_message_once_its_ticket_exists(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    # An out-of-office answer to a conversation the shop has not seen yet: linked to nothing.
    imap.append(SHOP_USER, customer_email(
        "Respuesta automática: Pedido 88", "Estoy de vacaciones hasta el lunes.",
        name="Lucía Pérez", sender="lucia@example.net", in_reply_to="<pedido-88@example.net>",
        extra_headers={"Auto-Submitted": "auto-replied"}))
    run_once(config)
    [held] = _json(config, "quarantine", "list")
    assert held["from"] == "Lucía Pérez <lucia@example.net>"
    assert held["subject"] == "Respuesta automática: Pedido 88"
    assert "not linked" in held["error"]
    assert "Respuesta automática" in cli(config, "quarantine", "list").stdout

    still = cli(config, "quarantine", "replay", str(held["id"]), check=False)
    assert still.returncode == 1 and "still quarantined" in still.stderr

    imap.append(SHOP_USER, customer_email("Pedido 88", "¿Dónde está mi pedido?",
                                          sender="lucia@example.net",
                                          message_id="<pedido-88@example.net>"))
    run_once(config)
    replayed = cli(config, "quarantine", "replay", str(held["id"])).stdout
    assert "filed in ticket #1" in replayed and "stays in Cuarentena" in replayed

    notes = [m for m in _json(config, "tickets", "show", "1")["messages"] if m["direction"] == "note"]
    assert [n["text"].strip() for n in notes] == ["Estoy de vacaciones hasta el lunes."]
    assert cli(config, "quarantine", "list").stdout.strip() == "the quarantine is empty"
    assert len(imap.folder_uids(SHOP_USER, "Cuarentena")) == 1
    assert cli(config, "quarantine", "replay", str(held["id"]), check=False).returncode == 1
