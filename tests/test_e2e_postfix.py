"""A real MTA in the middle (issue 13): Postfix between incidencias and the mailboxes.

The customer writes through Postfix, which delivers to the shop's Dovecot mailbox by LMTP;
incidencias sends through the same Postfix, which delivers into the customer's own mailbox, or
returns the mail with its own delivery status notification when Dovecot does not know the address.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import mailparser
from helpers.harness import SHOP_ADDRESS, SHOP_USER, run_once, ticket, tickets, write_config
from helpers.mailservers import Dovecot, Postfix

SUBJECT = "La cafetera llegó rota — ¿me enviáis otra? Pedido nº 7781"
NAME = "Begoña Núñez Íñiguez"
BODY = ("Hola:\n\nLa cafetera llegó rota — el cristal está partido y falta la cápsula.\n"
        "¿Me enviáis otra? ¡Gracias!\n\nBegoña")
AGENTS = ("agent1", "agent2")


def _thunderbird(sender: str, message_id: str) -> bytes:
    """As Thunderbird writes it: encoded words mixed with plain words on folded lines, and an
    8-bit UTF-8 body (Postfix and Dovecot both offer 8BITMIME)."""
    head = (f"From: =?UTF-8?Q?Bego=C3=B1a_N=C3=BA=C3=B1ez_=C3=8D=C3=B1iguez?= <{sender}>\r\n"
            f"To: Tienda Ejemplo <{SHOP_ADDRESS}>\r\n"
            "Subject: La cafetera =?UTF-8?Q?lleg=C3=B3_rota_=E2=80=94_=C2=BFme_envi=C3=A1is?=\r\n"
            " otra? Pedido =?UTF-8?Q?n=C2=BA?= 7781\r\n"
            f"Message-ID: <{message_id}>\r\n"
            "Date: Sun, 06 Dec 2026 09:15:00 +0100\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + BODY.replace("\n", "\r\n").encode() + b"\r\n"


def _write(postfix: Postfix, sender: str) -> str:
    message_id = make_msgid(domain="example.com")[1:-1]
    postfix.send(_thunderbird(sender, message_id), sender, [SHOP_ADDRESS])
    postfix.wait_until_idle()
    return message_id


def _parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def _sent_through(postfix: Postfix) -> int:
    """Deliveries Postfix has made (into a mailbox or bounced), from its own log."""
    return len(re.findall(r"status=(?:sent|bounced)", postfix.log_text()))


def test_acknowledgement_arrives_in_the_customers_mailbox_threaded_and_exact(
        imap: Dovecot, postfix: Postfix, tmp_path: Path) -> None:
    config = write_config(tmp_path, imap, postfix)
    message_id = _write(postfix, "customer1@example.com")
    run_once(config)
    postfix.wait_until_idle()

    [opened] = tickets(config)
    assert (opened["subject"], opened["customer_name"]) == (SUBJECT, NAME)
    first = ticket(config, opened["id"])["messages"][0]
    assert first["text"].strip() == BODY.strip(), "the 8-bit body arrived intact"

    [raw] = imap.fetch_all("customer1", "INBOX")
    ack = _parsed(raw)
    assert ack["In-Reply-To"] == f"<{message_id}>"
    assert f"<{message_id}>" in str(ack["References"]).split()
    expected = f"Re: [#{opened['id']}] {SUBJECT}"
    assert str(ack["Subject"]) == expected
    assert mailparser.parse_from_bytes(raw).subject == expected
    assert imap.decoded_headers("customer1", ["Subject", "To"]) == [
        {"Subject": expected, "To": f"{NAME} <customer1@example.com>"}]

    for agent in AGENTS:
        [notified] = imap.fetch_all(agent, "INBOX")
        notice = _parsed(notified)
        assert SUBJECT in str(notice["Subject"])
        assert notice["From"].addresses[0].display_name.startswith(NAME)
        assert BODY.splitlines()[2] in _text(notice), "the customer's words reach the agents intact"
        [decoded] = imap.decoded_headers(agent, ["Subject", "From"])
        assert SUBJECT in decoded["Subject"] and decoded["From"].startswith(NAME)

    sent = _sent_through(postfix)
    run_once(config)
    run_once(config)
    postfix.wait_until_idle()
    assert _sent_through(postfix) == sent, "nothing more is sent over further cycles"
    assert len(imap.fetch_all("customer1", "INBOX")) == 1


def test_mail_to_an_unknown_address_comes_back_and_is_recognised_on_its_ticket(
        imap: Dovecot, postfix: Postfix, tmp_path: Path) -> None:
    config = write_config(tmp_path, imap, postfix)
    _write(postfix, "nadie@example.com")
    run_once(config)  # the acknowledgement goes to an address Dovecot does not know
    postfix.wait_until_idle()
    [returned] = imap.fetch_all(SHOP_USER, "INBOX")
    dsn = _parsed(returned)
    assert dsn.get_content_type() == "multipart/report"
    assert "MAILER-DAEMON" in str(dsn["From"])

    run_once(config)
    [only] = tickets(config)
    shown = ticket(config, only["id"])
    assert shown["unreachable_at"] is not None
    assert "5.1.1" in shown["unreachable_reason"]
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "note"] == ["bounce"]
    postfix.wait_until_idle()
    sent = _sent_through(postfix)

    run_once(config)
    run_once(config)
    postfix.wait_until_idle()
    assert postfix.queue() == []
    assert _sent_through(postfix) == sent, "no answer to the notice, no loop"
    assert len(tickets(config)) == 1, "the notice opened no ticket"
    assert "mailer-daemon" not in postfix.log_text().lower().replace("from=<>", "")
    for agent in AGENTS:
        subjects = [str(_parsed(raw)["Subject"]) for raw in imap.fetch_all(agent, "INBOX")]
        returned_notices = [s for s in subjects if "Correo devuelto" in s]
        assert returned_notices == [f"[#{only['id']}] Correo devuelto: no se pudo entregar a "
                                    "nadie@example.com"], "agents are told once"
        assert len(subjects) == 2, "the new ticket and the returned mail, nothing else"


def test_a_reachable_customer_shows_null_unreachable_fields(
        imap: Dovecot, postfix: Postfix, tmp_path: Path) -> None:
    config = write_config(tmp_path, imap, postfix)
    _write(postfix, "customer2@example.com")
    run_once(config)
    [listed] = tickets(config)
    assert (listed["unreachable_at"], listed["unreachable_reason"]) == (None, None)
    assert ticket(config, listed["id"])["unreachable_at"] is None


def test_a_stopped_postfix_leaves_no_process_and_no_files(imap: Dovecot, postfix: Postfix) -> None:
    own = Postfix(imap)
    own.start()
    root = own.root
    assert root is not None and own.queue() == []
    own.close()
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, str(root))]
    assert left == [] and not root.exists()


def _mentions(process: Path, text: str) -> bool:
    try:
        return text.encode() in (process / "cmdline").read_bytes()
    except OSError:
        return False
