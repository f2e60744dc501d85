"""A config.toml with two shops' mailboxes in [[mailboxes]], for the test mail servers."""

from __future__ import annotations

from pathlib import Path

from helpers.harness import smtp_and_database
from helpers.mailservers import Dovecot, SmtpSink

UNO = "uno"
DOS = "dos"
UNO_ADDRESS = "incidencias@example.com"
DOS_ADDRESS = "tienda2@example.com"
UNO_AGENTS = ("agent1@example.com", "agent2@example.com")
DOS_AGENTS = ("agent2@example.com",)


def write_two_shops(directory: Path, imap: Dovecot, sink: SmtpSink, database_url: str,
                    *, idle: bool = True) -> Path:
    """Shop "uno" (Spanish, user incidencias) and shop "dos" (French, user tienda2, its own agents)."""
    config = directory / "config.toml"
    imap_common = f"""host = "127.0.0.1"
port = {imap.port}
security = "none"
password_file = "imap-password"
idle = {"true" if idle else "false"}
poll_every = "1s"
timeout = "10s"
"""
    config.write_text(f"""{smtp_and_database(directory, imap, sink, database_url)}
[escalation]
digest_hour = 23

[agents]
addresses = {list(UNO_AGENTS)!r}
language = "es"
secret = "test-agent-secret"

[[mailboxes]]
name = "{UNO}"

[mailboxes.shop]
name = "Tienda Uno"
address = "{UNO_ADDRESS}"
languages = ["es", "fr", "en"]
default_language = "es"

[mailboxes.imap]
username = "incidencias"
{imap_common}
[[mailboxes]]
name = "{DOS}"

[mailboxes.shop]
name = "Boutique Deux"
address = "{DOS_ADDRESS}"
languages = ["fr", "en"]
default_language = "fr"

[mailboxes.imap]
username = "tienda2"
{imap_common}
[mailboxes.agents]
addresses = {list(DOS_AGENTS)!r}
language = "fr"
secret = "second-shop-secret"
""")
    return config
