"""Drive the real `incidencias` command against the test mail servers, as a sysadmin would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from helpers.dbcheck import fresh_database_url
from helpers.mailservers import CapturedMail, Dovecot, Postfix, SmtpSink

SHOP_USER = "incidencias"
SHOP_ADDRESS = "incidencias@example.com"
AGENTS = ("agent1@example.com", "agent2@example.com")


def smtp_and_database(directory: Path, imap: Dovecot, sink: SmtpSink | Postfix,
                      database_url: str) -> str:
    """Write the password files a test config names; return its [smtp] and [database] sections.
    A Postfix relays for its local network without logging in, like a shop's own server."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "imap-password").write_text(imap.password + "\n")
    login = ""
    if isinstance(sink, SmtpSink):
        (directory / "smtp-password").write_text(sink.password + "\n")
        login = f'username = "{sink.username}"\npassword_file = "smtp-password"\n'
    return f"""
[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
{login}max_attempts_per_run = 2

[database]
url = "{database_url}"
"""


def write_config(directory: Path, imap: Dovecot, sink: SmtpSink | Postfix, *, extra: str = "",
                 database_url: str | None = None, updates_every: str = "3d",
                 idle: bool = True, poll_every: str = "1s", updates: str = "",
                 closing: str = "") -> Path:
    """A config.toml for the servers under test; `extra` is appended TOML (new sections).

    Without `database_url` the test gets a fresh database of the kind INCIDENCIAS_TEST_DATABASE
    selects (SQLite by default), one per directory: writing the config again keeps the data.
    """
    config = directory / "config.toml"
    servers = smtp_and_database(directory, imap, sink, database_url or fresh_database_url(directory))
    config.write_text(f"""
[shop]
name = "Tienda Ejemplo"
address = "{SHOP_ADDRESS}"
languages = ["es", "fr", "en"]
default_language = "es"

[imap]
host = "127.0.0.1"
port = {imap.port}
security = "none"
username = "{SHOP_USER}"
password_file = "imap-password"
idle = {"true" if idle else "false"}
poll_every = "{poll_every}"
timeout = "10s"
{servers}
[updates]
every = "{updates_every}"
{updates}

[escalation]
digest_hour = 23

[closing]
{closing}

[agents]
addresses = ["agent1@example.com", "agent2@example.com"]
language = "es"
secret = "test-agent-secret"
{extra}
""")
    return config


def to_customers(sink: SmtpSink) -> list[CapturedMail]:
    """What the sink received for anyone but the agents."""
    return [m for m in sink.messages if not set(m.rcpt_tos) & set(AGENTS)]


def to_agent(sink: SmtpSink, agent: str) -> list[CapturedMail]:
    return [m for m in sink.messages if agent in m.rcpt_tos]


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", "-c", str(config), *args]


def cli(config: Path, *args: str, timeout: float = 120, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command(config, *args), capture_output=True, text=True,
                            timeout=timeout, env=_env())
    if check and result.returncode != 0:
        raise AssertionError(f"incidencias {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return cli(config, "run", "--once")


def tickets(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(cli(config, "tickets", "list", "--json").stdout)
    return found


def ticket(config: Path, number: int) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cli(config, "tickets", "show", str(number), "--json").stdout)
    return found


def start_daemon(config: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """The long-running `incidencias run`, its log going to a file the test can read."""
    handle = log_file.open("wb")
    return subprocess.Popen(command(config, "run"), stdout=handle, stderr=subprocess.STDOUT,
                            env=_env())


def stop_daemon(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("INCIDENCIAS_CONFIG", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def customer_email(subject: str, body: str, *, sender: str = "maria@example.net",
                   name: str = "María García", message_id: str | None = None,
                   in_reply_to: str | None = None, references: list[str] | None = None,
                   to: str = SHOP_ADDRESS, extra_headers: dict[str, str] | None = None) -> bytes:
    """A plain customer email as a mail client would send it."""
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = message_id or make_msgid(domain="example.net")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for key, value in (extra_headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return msg.as_bytes()


def agent_reply(notification: CapturedMail, sender: str, body: str, *, name: str = "Ana Ruiz",
                in_reply_to: str | None = None, attachment: bytes | None = None) -> bytes:
    """What an agent's mail client sends when they press Reply on a notification."""
    original = notification.message
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = str(original["From"])
    msg["Subject"] = f"Re: {original['Subject']}"
    msg["Message-ID"] = make_msgid(domain="example.com")
    parent = in_reply_to or str(original["Message-ID"])
    msg["In-Reply-To"] = parent
    msg["References"] = parent
    body_part = original.get_body(("plain",))
    quoted = "\n".join("> " + line for line in
                       (body_part.get_content() if body_part else "").splitlines())
    msg.set_content(f"{body}\n\nEl lun, 2 mar 2026 a las 10:00, {original['From']} escribió:\n{quoted}\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="cambio.pdf")
    return msg.as_bytes()
