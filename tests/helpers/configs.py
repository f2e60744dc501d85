"""config.toml text for tests that run the command line without mail servers."""

from __future__ import annotations


def offline_config(database_url: str, *, shop: str = "", rest: str = "") -> str:
    """A valid config whose IMAP and SMTP are never contacted: `shop` adds lines to [shop],
    `rest` adds sections after [database]."""
    return f"""
[shop]
name = "Tienda Ejemplo"
address = "incidencias@example.com"
languages = ["es", "fr", "en"]
{shop}
[imap]
host = "127.0.0.1"
security = "none"
username = "u"

[smtp]
host = "127.0.0.1"
security = "none"

[database]
url = "{database_url}"
{rest}
"""
