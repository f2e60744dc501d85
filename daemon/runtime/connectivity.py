"""`check-config --connect`: log in to IMAP and SMTP once, make one read-only call to the shop's
platform, and say what failed, in words."""

from __future__ import annotations

import asyncio

from daemon.config import Settings
from daemon.inbound.imap import ImapInbox
from daemon.outbound.sender import probe
from daemon.shop.factory import make_platform
from daemon.shop.model import ShopError


def check_connections(settings: Settings) -> list[str]:
    failures = []
    several = len(settings.each_mailbox()) > 1
    for box in settings.each_mailbox():
        password = box.secrets.imap_password
        inbox = ImapInbox(box.config.imap, password.get_secret_value() if password else None)
        try:
            inbox.connect()
        except Exception as exc:
            failures.append((f"mailbox {box.config.mailbox}: " if several else "")
                            + f"IMAP {box.config.imap.host}:{box.config.imap.port}: "
                            f"{type(exc).__name__}: {exc}")
        finally:
            inbox.close()
    smtp_password = settings.secrets.smtp_password
    try:
        asyncio.run(probe(settings.config.smtp,
                          smtp_password.get_secret_value() if smtp_password else None))
    except Exception as exc:
        failures.append(f"SMTP {settings.config.smtp.host}:{settings.config.smtp.port}: "
                        f"{type(exc).__name__}: {exc}")
    platform = settings.config.platform
    if platform is not None:
        client = make_platform(platform, settings.secrets)
        try:
            client.check()
        except ShopError as exc:  # its message never carries a key or a secret
            failures.append(f"[platform] {platform.kind} {platform.url}: {exc}")
        finally:
            client.close()
    return failures
