"""`incidencias import-mbox`: a mailbox's history becomes threaded tickets, and nobody is mailed."""

from __future__ import annotations

import io
import json
import mailbox
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from helpers.dbcheck import DatabaseView, fresh_database_url
from helpers.harness import SHOP_ADDRESS, cli, write_config
from helpers.mailservers import Dovecot, SmtpSink
from helpers.multishop import DOS, UNO, write_two_shops
from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import load_settings
from daemon.inbound.mbox_import import chronological, message_date
from daemon.runtime.progress import ProgressLine, bar
from daemon.runtime.service import build
from daemon.storage.models import Message, OutboxItem, Ticket

START = datetime(2025, 3, 3, 8, 0)
SUBJECTS = ("Pedido {n} no ha llegado", "Talla equivocada en el pedido {n}",
            "Commande {n} jamais reçue", "Wrong colour, order {n}", "Devolución del pedido {n}",
            "Factura del pedido {n}")
BODIES = ("Hola, hice el pedido hace dos semanas y todavía no ha llegado. ¿Podéis mirarlo?",
          "Bonjour, ma commande n'est jamais arrivée et le suivi ne bouge plus.",
          "Hello, the jumper I received is blue but I ordered the green one.",
          "Buenas, me ha llegado una talla M y pedí una L. ¿Cómo hago el cambio?")


@dataclass
class Conversation:
    customer: str
    subject: str
    ticket: int
    message_ids: list[str] = field(default_factory=list)


@dataclass
class History:
    messages: list[tuple[datetime, bytes]] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)


def _mail(sender: str, subject: str, body: str, message_id: str, when: datetime,
          in_reply_to: str | None = None, references: list[str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Cliente <{sender}>"
    msg["To"] = SHOP_ADDRESS
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when.replace(tzinfo=UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg.set_content(body)
    return msg.as_bytes()


def make_history(count: int, seed: int = 7) -> History:
    """Conversations as a shop's mailbox would hold them: first messages, then replies threaded by
    References, by a `RE: [#N]` tag with or without the original subject, or by subject alone.
    Several customers share a subject, which must not merge their tickets."""
    rng = random.Random(seed)
    history = History()
    for k in range(count):
        when = START + timedelta(minutes=7 * k)
        message_id = f"<hist-{k}@example.net>"
        if k < 40 or rng.random() < 0.4:
            number = len(history.conversations) + 1
            customer = f"cliente{rng.randrange(150)}@example.net"
            subject = ("Consulta" if number % 10 == 0
                       else rng.choice(SUBJECTS).format(n=10000 + number))
            conversation = Conversation(customer, subject, number)
            if any(c.customer == customer and c.subject == subject for c in history.conversations):
                conversation.customer = f"otra{number}@example.org"
            history.conversations.append(conversation)
            raw = _mail(conversation.customer, subject, rng.choice(BODIES), message_id, when)
        else:
            conversation = rng.choice(history.conversations)
            way = rng.randrange(4)
            body = f"Mensaje {k}: ¿alguna novedad?"
            if way == 0:
                raw = _mail(conversation.customer, f"Re: {conversation.subject}", body, message_id,
                            when, conversation.message_ids[-1], conversation.message_ids[-5:])
            elif way == 1:  # a new subject: only References can thread it
                raw = _mail(conversation.customer, "Otra pregunta", body, message_id, when,
                            conversation.message_ids[-1], conversation.message_ids[-3:])
            elif way == 2:  # Outlook style: the tag, a new subject, no References
                raw = _mail(conversation.customer, f"RE: [#{conversation.ticket}] Más datos", body,
                            message_id, when)
            else:  # the same subject from the same customer, no headers, no tag
                raw = _mail(conversation.customer, f"RE: {conversation.subject}", body, message_id,
                            when)
        conversation.message_ids.append(message_id)
        history.messages.append((when, raw))
    return history


def write_mbox(path: Path, history: History, rng: random.Random) -> None:
    """The messages mostly in date order, but a few replies stored before their original."""
    order = list(range(len(history.messages)))
    for _ in range(len(order) // 20):
        i = rng.randrange(len(order) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    box = mailbox.mbox(path)
    try:
        box.lock()
        for index in order:
            box.add(history.messages[index][1])
        box.flush()
    finally:
        box.unlock()
        box.close()


def test_a_thousand_message_mbox_becomes_threaded_tickets_and_sends_nothing(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    history = make_history(1000)
    mbox_path = tmp_path / "historia.mbox"
    write_mbox(mbox_path, history, random.Random(11))

    result = cli(config, "import-mbox", str(mbox_path), "--json", timeout=600)
    report = json.loads(result.stdout)
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal

    conversations = history.conversations
    assert report["messages"] == 1000
    assert report["new_tickets"] == len(conversations)
    assert report["joined"] == 1000 - len(conversations)
    assert report["skipped"] == report["quarantined"] == 0

    view = DatabaseView.for_config_dir(tmp_path)
    try:
        with Session(view.engine) as session:
            ticket_of = dict(session.execute(select(Message.message_id, Message.ticket_id)).all())
            tickets = {t.id: t for t in session.scalars(select(Ticket))}
            assert session.scalars(select(OutboxItem)).all() == []
        for conversation in conversations:
            filed = {ticket_of[mid.strip("<>")] for mid in conversation.message_ids}
            assert filed == {conversation.ticket}, conversation
            assert tickets[conversation.ticket].customer_email == conversation.customer
        assert len(tickets) == len(conversations)
        # The history keeps its dates: the first conversation opened when its first mail was sent.
        assert tickets[1].created_at == START
        assert all(t.last_outbound_at is None for t in tickets.values())
    finally:
        view.close()
    assert smtp_sink.messages == []

    # Later the daemon's scheduled sweep finds nothing to tell anybody about the old tickets.
    noon = datetime.now(UTC).replace(tzinfo=None, hour=12, minute=0)
    parts = build(load_settings(config), clock=lambda: noon)
    try:
        assert parts.lifecycle.sweep().sent == {}
    finally:
        parts.engine.dispose()

    again = json.loads(cli(config, "import-mbox", str(mbox_path), "--json").stdout)
    assert again["skipped"] == 1000
    assert again["new_tickets"] == again["joined"] == 0
    assert len(json.loads(cli(config, "tickets", "list", "--json").stdout)) == len(conversations)


def test_import_refuses_a_missing_file_or_one_without_messages_with_status_2(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    missing = cli(config, "import-mbox", str(tmp_path / "nope.mbox"), check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    not_mbox = tmp_path / "notes.txt"
    not_mbox.write_text("just some notes\n")
    empty = cli(config, "import-mbox", str(not_mbox), check=False)
    assert empty.returncode == 2 and "no messages" in empty.stderr


def test_with_several_mailboxes_the_history_goes_to_the_one_named(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_two_shops(tmp_path, imap, smtp_sink, fresh_database_url(tmp_path))
    history = make_history(12)
    mbox_path = tmp_path / "boutique.mbox"
    write_mbox(mbox_path, history, random.Random(3))

    unnamed = cli(config, "import-mbox", str(mbox_path), check=False)
    assert unnamed.returncode == 2 and f"{UNO}, {DOS}" in unnamed.stderr
    assert cli(config, "import-mbox", str(mbox_path), "--mailbox", "tres", check=False).returncode == 2

    report = json.loads(cli(config, "import-mbox", str(mbox_path), "--mailbox", DOS, "--json").stdout)
    assert report["new_tickets"] == len(history.conversations)
    filed = json.loads(cli(config, "tickets", "list", "--json").stdout)
    assert len(filed) == len(history.conversations)
    assert {t["mailbox"] for t in filed} == {DOS}
    assert smtp_sink.messages == []


def test_messages_are_taken_in_date_order_and_undated_ones_keep_their_place() -> None:
    first, second = datetime(2025, 1, 1), datetime(2025, 1, 2)
    order = chronological([("a", second), ("b", None), ("c", first), ("d", None)])
    assert [key for key, _ in order] == ["c", "d", "a", "b"]


def test_message_dates_are_utc_and_never_in_the_future() -> None:
    now = datetime(2025, 6, 1, 12, 0)
    assert message_date("Mon, 3 Mar 2025 09:00:00 +0100", now) == datetime(2025, 3, 3, 8, 0)
    assert message_date("Mon, 3 Mar 2031 09:00:00 +0000", now) == now
    assert message_date("not a date", now) is None
    assert message_date(None, now) is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_redrawn_in_place_on_a_terminal_and_absent_elsewhere() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = ProgressLine(stream, "messages")
        for done in range(1, 4):
            progress(done, 3)
    assert pipe.getvalue() == ""
    assert terminal.getvalue().startswith("\r[")
    assert terminal.getvalue().endswith(f"{bar(3, 3, 'messages')}\n")
    assert bar(1, 4, "messages").startswith("[" + "#" * 7 + "-" * 23 + "] 1/4")
