"""A newcomer's first look: a private Dovecot and SMTP sink on loopback, the real daemon, a few customers.

Everything lives in ./demo-run (config, database, logs) so it can be inspected afterwards with
`.venv/bin/incidencias -c demo-run/config.toml tickets list`.
"""

from __future__ import annotations

import shutil
import sys
import time
from email.parser import BytesHeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.harness import (  # noqa: E402
    SHOP_USER,
    cli,
    customer_email,
    start_daemon,
    stop_daemon,
    wait_until,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink  # noqa: E402

CUSTOMERS = [
    ("Lucía Fernández", "lucia@example.net", "Mi pedido 4411 no ha llegado",
     "Hola, hice el pedido 4411 hace diez días y todavía no lo he recibido. ¿Podéis mirarlo?"),
    ("Camille Martin", "camille@example.fr", "Article reçu cassé",
     "Bonjour, le vase que j'ai commandé est arrivé cassé. Que puis-je faire ?"),
    ("John Smith", "john@example.co.uk", "Wrong size delivered",
     "Hello, I ordered the blue jacket in L but received an M. Could you exchange it?"),
]


def _message_id(raw: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(raw)["Message-ID"]).strip().strip("<>")


def _acknowledgement(sink: SmtpSink, address: str, message_id: str) -> CapturedMail:
    """The customer's own acknowledgement: sent to them, in reply to the mail they wrote.

    Mail is delivered as it is queued, agents' notifications and other customers' answers
    included, so arrival order says nothing about whose block a message belongs in.
    """
    def answers(mail: CapturedMail) -> bool:
        replied_to = str(mail.message["In-Reply-To"] or "").strip().strip("<>")
        return address in mail.rcpt_tos and replied_to == message_id

    wait_until(lambda: any(answers(m) for m in list(sink.messages)), 15,
               f"the acknowledgement to {address}")
    return next(m for m in list(sink.messages) if answers(m))


def main() -> int:
    workdir = ROOT / "demo-run"
    shutil.rmtree(workdir, ignore_errors=True)
    with Dovecot() as imap, SmtpSink() as sink:
        imap.start()
        sink.start()
        config = write_config(workdir, imap, sink)
        print(f"Dovecot on 127.0.0.1:{imap.port}, SMTP sink on 127.0.0.1:{sink.port}; "
              f"config in {config}\n")
        daemon = start_daemon(config, workdir / "daemon.log")
        try:
            wait_until(lambda: b"watching INBOX" in (workdir / "daemon.log").read_bytes(), 30,
                       "the daemon to connect")
            for name, address, subject, body in CUSTOMERS:
                raw = customer_email(subject, body, sender=address, name=name)
                started = time.monotonic()
                imap.append(SHOP_USER, raw)
                ack = _acknowledgement(sink, address, _message_id(raw))
                print(f"== {name} <{address}> wrote “{subject}”; acknowledged in "
                      f"{time.monotonic() - started:.2f}s")
                print(f"   Subject: {ack.message['Subject']}")
                body_part = ack.message.get_body(("plain",))
                text = body_part.get_content() if body_part is not None else ""
                print("   " + "\n   ".join(text.strip().splitlines()) + "\n")
            first = customer_email(f"Re: {CUSTOMERS[0][2]}", "¿Alguna novedad? Gracias.",
                                   sender=CUSTOMERS[0][1], name=CUSTOMERS[0][0])
            imap.append(SHOP_USER, first)
            time.sleep(2)
        finally:
            stop_daemon(daemon)
        customers = {address for _, address, _, _ in CUSTOMERS}
        to_agents = [m for m in sink.messages if not customers & set(m.rcpt_tos)]
        if to_agents:
            print("Agents' mail (never sent to customers):")
            for mail in to_agents:
                print(f"   to {', '.join(mail.rcpt_tos)}: {mail.message['Subject']}")
            print()
        print("Tickets now (`incidencias tickets list`):\n")
        print(cli(config, "tickets", "list").stdout)
        print("The first ticket with its messages (`incidencias tickets show 1`):\n")
        print(cli(config, "tickets", "show", "1").stdout)
        print(f"\nDaemon log: {workdir / 'daemon.log'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
