"""A customer's personal data end to end: exported, forgotten, and aged out by [retention],
through the real command line against Dovecot and the SMTP sink (and PostgreSQL when selected)."""

from __future__ import annotations

import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from helpers.dbcheck import configured_url
from helpers.harness import (
    SHOP_ADDRESS,
    SHOP_USER,
    cli,
    run_once,
    ticket,
    tickets,
    write_config,
)
from helpers.mailservers import Dovecot, SmtpSink, to_crlf
from helpers.pgserver import selected

ANA = "ana.perez@example.net"
BRUNO = "bruno@example.org"
ANA_SENTENCE = "Mi perro Rufo mordisqueó la caja azul antes de que la abriera"
BRUNO_SENTENCE = "La lámpara de latón llegó sin la bombilla prometida"


def _mail(sender: str, name: str, subject: str, body: str, attachment: bytes, filename: str
          ) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = SHOP_ADDRESS
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    msg.set_content(body)
    msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=filename)
    return msg.as_bytes()


def _two_customers(tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, extra: str = "",
                   received: datetime | None = None) -> Path:
    """Ana's and Bruno's tickets; `received` back-dates the server's copies (INTERNALDATE)."""
    config = write_config(tmp_path, imap, smtp_sink, extra=extra)
    with imap.client(SHOP_USER) as client:
        for raw in (_mail(ANA, "Ana Pérez", "Caja mordida", f"Hola. {ANA_SENTENCE}.",
                          b"ANA-PHOTO-BYTES", "caja.jpg"),
                    _mail(BRUNO, "Bruno Martin", "Lámpara incompleta", f"Buenas. {BRUNO_SENTENCE}.",
                          b"BRUNO-INVOICE-BYTES", "factura.pdf")):
            client.append("INBOX", to_crlf(raw), msg_time=received)
    run_once(config)
    return config


def _by_customer(config: Path) -> dict[str, dict[str, object]]:
    return {str(t["customer"]): t for t in tickets(config)}


def _database_files(config: Path) -> bytes:
    path = Path(configured_url(config).split("///", 1)[1])
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_export_holds_the_customers_messages_mails_and_attachments_and_nothing_of_others(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = _two_customers(tmp_path, imap, smtp_sink)
    output = tmp_path / "ana.zip"
    cli(config, "customers", "export", ANA.upper(), "-o", str(output))

    archive = zipfile.ZipFile(output)
    names = archive.namelist()
    document = json.loads(archive.read("tickets.json"))
    [exported] = document["tickets"]
    assert exported["customer"] == ANA
    assert ANA_SENTENCE in exported["messages"][0]["full_text"]
    [received] = [n for n in names if n.startswith("received/")]
    assert ANA_SENTENCE.encode() in archive.read(received).replace(b"=\n", b"")
    [attachment] = [n for n in names if n.startswith("attachments/")]
    assert archive.read(attachment) == b"ANA-PHOTO-BYTES"
    assert any(n.startswith("sent/") for n in names), "our acknowledgement as it went out"
    assert "Datos personales" in archive.read("README.txt").decode()
    everything = b"".join(archive.read(n) for n in names)
    for other in (BRUNO.encode(), BRUNO_SENTENCE.encode(), b"BRUNO-INVOICE-BYTES", b"Bruno"):
        assert other not in everything


def test_forget_erases_one_customer_everywhere_and_leaves_the_other_untouched(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = _two_customers(tmp_path, imap, smtp_sink)
    before = _by_customer(config)
    ana_number, bruno_number = int(before[ANA]["id"]), int(before[BRUNO]["id"])  # type: ignore[call-overload]
    bruno_before = ticket(config, bruno_number)
    processed_before = imap.fetch_all(SHOP_USER, "Procesados")
    bruno_copies = [raw for raw in processed_before if BRUNO.encode() in raw]
    assert len(processed_before) == 2 and len(bruno_copies) == 1

    dry = cli(config, "customers", "forget", ANA, "--dry-run")
    assert "1 ticket(s) as customer" in dry.stdout and "1 copy(ies) in the IMAP" in dry.stdout
    assert ticket(config, ana_number)["customer"] == ANA, "a dry run erases nothing"
    refused = cli(config, "customers", "forget", ANA, check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr, "no terminal, no --yes: refused"

    cli(config, "customers", "forget", ANA, "--yes")

    shown = json.dumps(ticket(config, ana_number), ensure_ascii=False)
    for trace in (ANA, "Ana Pérez", "Ana", ANA_SENTENCE, "Rufo", "caja.jpg", "Caja mordida"):
        assert trace not in shown, trace
    assert ticket(config, ana_number)["customer"].endswith("@forgotten.invalid")
    assert ticket(config, bruno_number) == bruno_before
    assert imap.fetch_all(SHOP_USER, "Procesados") == bruno_copies
    assert len(tickets(config)) == 2, "the forgotten customer's ticket still counts"
    if not selected():
        files = _database_files(config)
        for trace in (ANA.encode(), ANA_SENTENCE.encode(), "Pérez".encode(), b"ANA-PHOTO-BYTES"):
            assert trace not in files, trace
        assert BRUNO_SENTENCE.encode() in files

    again = cli(config, "customers", "forget", ANA, "--yes")
    assert "erased: 0 ticket(s)" in again.stdout, "a second run finds nothing left"

    imap.append(SHOP_USER, _mail(ANA, "Ana Pérez", "Otra cosa", "Vuelvo a escribir.", b"X", "x.txt"))
    run_once(config)
    now = _by_customer(config)
    assert int(now[ANA]["id"]) not in (ana_number, bruno_number), "a new customer"  # type: ignore[call-overload]


def test_retention_erases_closed_tickets_raw_mail_and_old_folder_copies(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = _two_customers(tmp_path, imap, smtp_sink,
                            extra='[retention]\nraw_mail = "2s"\nimap_folders = "1h"\n',
                            received=datetime.now(UTC) - timedelta(hours=1, seconds=5))
    numbers = _by_customer(config)
    cli(config, "tickets", "close", str(numbers[ANA]["id"]), "--no-discount")
    assert "raw mails and attachments of closed tickets erased after 2s" in \
        cli(config, "check-config").stdout
    time.sleep(2.5)
    late = _mail("carla@example.com", "Carla", "Pregunta", "¿Tenéis talla 40?", b"C", "c.txt")
    imap.append(SHOP_USER, late)
    run_once(config)

    from helpers.dbcheck import DatabaseView
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from daemon.storage.models import Attachment, Message, RawMessage

    view = DatabaseView.for_config_dir(tmp_path)
    try:
        with Session(view.engine) as session:
            raws = {r.ticket_id: r for r in session.scalars(select(RawMessage))}
            files = session.execute(select(Message.ticket_id, Attachment.filename)
                                    .join(Attachment, Attachment.message_id == Message.id)).all()
    finally:
        view.close()
    ana, bruno = int(numbers[ANA]["id"]), int(numbers[BRUNO]["id"])  # type: ignore[call-overload]
    assert raws[ana].raw == b"" and raws[ana].erased_at is not None, "closed: raw mail erased"
    assert BRUNO_SENTENCE.encode() in raws[bruno].raw.replace(b"=\n", b""), "open: kept"
    assert {t for t, _ in files} == {t for t in raws if t != ana}
    assert ANA_SENTENCE in json.dumps(ticket(config, ana), ensure_ascii=False), "parsed text kept"
    kept = imap.fetch_all(SHOP_USER, "Procesados")
    assert len(kept) == 1 and b"carla@example.com" in kept[0], "older copies deleted, new kept"


def test_forget_stopped_between_the_server_and_the_database_is_completed_by_the_next_run(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.cli import main
    from daemon.tickets.privacy import erasure

    config = _two_customers(tmp_path, imap, smtp_sink)
    number = int(_by_customer(config)[ANA]["id"])  # type: ignore[call-overload]

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("killed after the IMAP step")

    monkeypatch.setattr(erasure, "forget", crash)
    assert main(["-c", str(config), "customers", "forget", ANA, "--yes"]) == 1
    assert all(ANA.encode() not in raw for raw in imap.fetch_all(SHOP_USER, "Procesados"))
    assert ticket(config, number)["customer"] == ANA, "the database step did not happen"
    monkeypatch.undo()

    assert main(["-c", str(config), "customers", "forget", ANA, "--yes"]) == 0
    assert ANA_SENTENCE not in json.dumps(ticket(config, number), ensure_ascii=False)
    assert len(imap.fetch_all(SHOP_USER, "Procesados")) == 1, "Bruno's copy stays"
