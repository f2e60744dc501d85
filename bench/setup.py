"""The bench's configuration of incidencias and the test mail servers it borrows from tests/.

The shop has two agents, as the README's example does: every new ticket and every follow-up
notifies both (with the customer's attachments), so the bench measures the daemon's real work,
not a stripped-down one.
"""

from __future__ import annotations

from pathlib import Path

from helpers.dbcheck import fresh_database_url

REPO = Path(__file__).resolve().parents[1]

AGENTS = ("ana@example.com", "luis@example.com")
IMAP_USER = "incidencias"
PASSWORD = "secret"


def write_config(directory: Path, imap_port: int = 143, smtp_port: int = 25,
                 language_detection: str = "accurate") -> Path:
    """config.toml for loopback servers; the database is a SQLite file next to it, or a fresh
    PostgreSQL database (migrated) when INCIDENCIAS_TEST_DATABASE=postgresql (`--database`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "imap-password").write_text(PASSWORD + "\n")
    (directory / "smtp-password").write_text(PASSWORD + "\n")
    agents = ", ".join(f'"{a}"' for a in AGENTS)
    path = directory / "config.toml"
    path.write_text(f"""\
[shop]
name = "Tienda Ejemplo"
address = "incidencias@example.com"
languages = ["es", "fr", "en"]
default_language = "es"
language_detection = "{language_detection}"

[imap]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{IMAP_USER}"
password_file = "imap-password"
idle = true
poll_every = "30s"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = "incidencias@example.com"
password_file = "smtp-password"

[database]
url = "{fresh_database_url(directory)}"

[agents]
addresses = [{agents}]
language = "es"
secret = "bench-agent-secret"

[escalation]
digest_hour = 23
""")
    return path
