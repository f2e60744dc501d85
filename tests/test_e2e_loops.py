"""Mail loops end to end, against the real Dovecot and SMTP server: auto-responders that answer
everything the shop sends get no more than the rate limit allows, however they answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from helpers.figures import record
from helpers.harness import SHOP_USER, customer_email, run_once, tickets, write_config
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink

PER_ADDRESS = 3  # the short rung below: the whole test runs well inside its 10 minutes
LIMITS = """
[limits]
automatic_per_address = ["3/10m", "5/24h"]
automatic_per_ticket = ["2/10m", "4/24h"]
"""
ROUNDS = 20

Responder = Callable[[EmailMessage, int], bytes]


def _polite(received: EmailMessage, n: int) -> bytes:
    """An RFC 3834 auto-responder: marks itself and answers in the thread."""
    return customer_email(f"Out of office: {received['Subject']}", "I am away until Monday.",
                          sender="polite.bot@example.net", name="Polite Bot",
                          in_reply_to=str(received["Message-ID"]),
                          extra_headers={"Auto-Submitted": "auto-replied"})


def _naive(received: EmailMessage, n: int) -> bytes:
    """A home-made responder that looks like a person: no marks, no threading, a new subject each
    time, so every answer opens a new ticket; only the rate limit can stop it."""
    subject = re.sub(r"\[#\d+\]\s*", "", str(received["Subject"]))
    return customer_email(f"Re: {subject} ({n})", "Your message has been forwarded to our team.",
                          sender="naive.bot@example.net", name="Support Desk",
                          message_id=make_msgid(domain="example.net"))


def _converse(imap: Dovecot, sink: SmtpSink, config: Path, address: str, answer: Responder) -> int:
    """Write once as `address`, then answer everything the shop sends it, a round per daemon run,
    until a run sends it nothing new or ROUNDS runs are over; returns how many mails reached it."""
    imap.append(SHOP_USER, customer_email("Consulta sobre mi pedido", "Hola, ¿dónde está mi pedido?",
                                          sender=address))
    answered: set[int] = set()
    for _ in range(ROUNDS):
        run_once(config)
        mine = [i for i, m in enumerate(sink.messages) if address in m.rcpt_tos]
        new = [i for i in mine if i not in answered]
        if not new:
            break
        for index in new:
            answered.add(index)
            imap.append(SHOP_USER, answer(sink.messages[index].message, len(answered)))
    else:
        raise AssertionError(f"{address} was still getting mail after {ROUNDS} rounds")
    return len(answered)


def _to(sink: SmtpSink, address: str) -> list[CapturedMail]:
    return [m for m in sink.messages if address in m.rcpt_tos]


def test_auto_responders_get_at_most_the_rate_limit(imap: Dovecot, smtp_sink: SmtpSink,
                                                    tmp_path: Path) -> None:
    config = write_config(tmp_path, imap, smtp_sink, extra=LIMITS)
    polite = _converse(imap, smtp_sink, config, "polite.bot@example.net", _polite)
    naive = _converse(imap, smtp_sink, config, "naive.bot@example.net", _naive)
    beyond = max(0, polite - PER_ADDRESS) + max(0, naive - PER_ADDRESS)
    record("automatic messages sent to auto-responders beyond the limit", beyond)

    assert polite == 1, "an RFC 3834 auto-reply is recognised: only the first acknowledgement"
    assert naive == PER_ADDRESS, "a responder that looks human is stopped by the rate limit"
    assert beyond == 0
    for mail in (*_to(smtp_sink, "polite.bot@example.net"), *_to(smtp_sink, "naive.bot@example.net")):
        assert mail.message["Auto-Submitted"] == "auto-replied"
    opened = [t for t in tickets(config) if t["customer"] == "naive.bot@example.net"]
    assert len(opened) == naive + 1, "every answer is kept as a ticket; only the mail is withheld"
