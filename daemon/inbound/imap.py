"""The IMAP edge: connect, list and fetch waiting mail, move it once handled, wait for more.

Mail is never deleted here: handled messages are moved (MOVE, or COPY + \\Deleted + UID EXPUNGE
of exactly those UIDs), so the original survives in the processed or quarantine folder until a
person's erasure or the shop's retention limit removes it (inbound/folder_cleanup.py).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterable

from imapclient import DELETED, IMAPClient

from daemon.config import ImapConfig

log = logging.getLogger("daemon.imap_inbox")

_IDLE_RENEW_SECONDS = 25 * 60
_IDLE_CHECK_SECONDS = 0.5


class ImapInbox:
    """One connection to the shop's mailbox, selected on the incoming folder."""

    def __init__(self, config: ImapConfig, password: str | None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.password = password
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self.capabilities: frozenset[bytes] = frozenset()

    def connect(self) -> None:
        cfg = self.config
        client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.security == "tls",
                            ssl_context=self.ssl_context if cfg.security == "tls" else None,
                            timeout=cfg.timeout.total_seconds())
        try:
            if cfg.security == "starttls":
                client.starttls(self.ssl_context)
            client.login(cfg.username, self.password or "")
            self.capabilities = frozenset(client.capabilities())
            for folder in (cfg.processed_folder, cfg.quarantine_folder):
                if not client.folder_exists(folder):
                    client.create_folder(folder)
                    log.info("created IMAP folder %s", folder)
            selected = client.select_folder(cfg.folder)
        except BaseException:
            _logout(client)
            raise
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            _logout(self.client)
            self.client = None

    def _connected(self) -> IMAPClient:
        if self.client is None:
            raise ConnectionError("IMAP not connected")
        return self.client

    def logged_in(self) -> IMAPClient:
        """The connection, for work on other folders than the incoming one (folder_cleanup.py)."""
        return self._connected()

    def waiting_uids(self) -> list[int]:
        """Every message in the folder not already flagged deleted, oldest first."""
        return sorted(int(uid) for uid in self._connected().search(["NOT", "DELETED"]))

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        wanted = list(uids)
        if not wanted:
            return {}
        response = self._connected().fetch(wanted, ["BODY.PEEK[]"])
        return {int(uid): bytes(data[b"BODY[]"]) for uid, data in response.items()
                if b"BODY[]" in data}

    def move(self, uids: list[int], folder: str) -> None:
        if not uids:
            return
        client = self._connected()
        if b"MOVE" in self.capabilities:
            client.move(uids, folder)
            return
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED])
        if b"UIDPLUS" in self.capabilities:
            client.uid_expunge(uids)

    @property
    def supports_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    def wait_for_mail(self, stop: threading.Event, poll_every: float) -> None:
        """Return when new mail may have arrived, when asked to stop, or after a while anyway."""
        if not (self.config.idle and self.supports_idle):
            stop.wait(poll_every)
            self._connected().noop()
            return
        client = self._connected()
        client.idle()
        try:
            deadline = time.monotonic() + _IDLE_RENEW_SECONDS
            while not stop.is_set() and time.monotonic() < deadline:
                asked = time.monotonic()
                responses = client.idle_check(timeout=_IDLE_CHECK_SECONDS)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return
                # imapclient reports the server closing the connection as no response at all, and
                # at once (the socket is readable, at its end); a server restarted while we idle
                # would otherwise leave the intake deaf until the IDLE renewal, 25 minutes on.
                closed = not responses and time.monotonic() - asked < _IDLE_CHECK_SECONDS / 2
                if closed or any(r and r[0] == b"BYE" for r in responses):
                    raise ConnectionError("the IMAP server closed the connection during IDLE")
        finally:
            client.idle_done()


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("IMAP socket already closed")
