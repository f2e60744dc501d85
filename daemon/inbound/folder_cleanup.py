"""Deleting copies of mail from the processed and quarantine folders: the only deletions on the server.

incidencias otherwise never deletes mail (inbound/imap.py moves it). These deletions happen only
when asked: `customers forget` (one person's own mails, found by Message-ID and checked to come
from that person) and the `[retention] imap_folders` limit (copies older than it, by the date the
server received them). Only UIDs of the two folders named in [imap] are ever flagged and expunged,
and with UIDPLUS only exactly those UIDs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from imapclient import DELETED

from daemon.config import ImapConfig
from daemon.inbound.imap import ImapInbox
from daemon.tickets.privacy.holdings import sender_of

log = logging.getLogger("daemon.folder_cleanup")

_FETCH_BATCH = 200


class FolderCleanup:
    """Finds and deletes copies in the processed and quarantine folders over one connection."""

    def __init__(self, inbox: ImapInbox) -> None:
        self.inbox = inbox

    @property
    def config(self) -> ImapConfig:
        return self.inbox.config

    @property
    def folders(self) -> tuple[str, str]:
        return self.config.processed_folder, self.config.quarantine_folder

    def copies_from(self, folder: str, sender: str, message_ids: Iterable[str]) -> list[int]:
        """UIDs in `folder` of mails with one of these Message-IDs whose From is `sender`."""
        client = self.inbox.logged_in()
        client.select_folder(folder)
        found: set[int] = set()
        for message_id in message_ids:
            found |= {int(uid) for uid in client.search(["HEADER", "Message-ID", message_id])}
        wanted = sender.strip().lower()
        return sorted(uid for uid, raw in self._headers(sorted(found)).items()
                      if sender_of(raw) == wanted)

    def older_than(self, folder: str, cutoff: datetime) -> list[int]:
        """UIDs in `folder` the server received before `cutoff` (naive UTC)."""
        client = self.inbox.logged_in()
        client.select_folder(folder)
        # SEARCH BEFORE has day granularity: it narrows, INTERNALDATE decides to the second.
        day: date = (cutoff + timedelta(days=1)).date()
        candidates = sorted(int(uid) for uid in client.search(["BEFORE", day]))
        old: list[int] = []
        for start in range(0, len(candidates), _FETCH_BATCH):
            batch = candidates[start:start + _FETCH_BATCH]
            for uid, data in client.fetch(batch, ["INTERNALDATE"]).items():
                received = data.get(b"INTERNALDATE")
                if isinstance(received, datetime) and _naive_utc(received) < cutoff:
                    old.append(int(uid))
        return sorted(old)

    def delete(self, folder: str, uids: list[int]) -> int:
        """Flag and expunge exactly `uids` in `folder`; the number deleted."""
        if folder not in self.folders:
            raise ValueError(f"refusing to delete from {folder!r}: only {self.folders} are cleaned")
        if not uids:
            return 0
        client = self.inbox.logged_in()
        client.select_folder(folder)
        client.add_flags(uids, [DELETED], silent=True)
        if b"UIDPLUS" in self.inbox.capabilities:
            client.uid_expunge(uids)
        else:
            client.expunge()
        log.info("deleted %d message(s) from IMAP folder %s", len(uids), folder)
        return len(uids)

    def delete_older_than(self, cutoff: datetime) -> int:
        """The `imap_folders` retention limit: every copy received before `cutoff` goes."""
        return sum(self.delete(folder, self.older_than(folder, cutoff)) for folder in self.folders)

    def delete_copies_from(self, sender: str, message_ids: Iterable[str]) -> int:
        """A person's own mails, for `customers forget`."""
        ids = list(message_ids)
        return sum(self.delete(folder, self.copies_from(folder, sender, ids)) for folder in self.folders)

    def _headers(self, uids: list[int]) -> dict[int, bytes]:
        if not uids:
            return {}
        client = self.inbox.logged_in()
        wanted = b"BODY[HEADER.FIELDS (FROM)]"
        response = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (FROM)]"])
        return {int(uid): bytes(data.get(wanted, b"")) for uid, data in response.items()}


def _naive_utc(moment: datetime) -> datetime:
    """imapclient gives local time without a zone; a naive datetime's astimezone reads it so."""
    return moment.astimezone(UTC).replace(tzinfo=None)
