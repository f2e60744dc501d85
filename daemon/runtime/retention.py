"""The daily retention sweep: the [retention] limits applied to the database and the IMAP folders.

Everything it erases is derived from state (ticket close dates, the server's receipt dates), so it
may run at any time, any number of times; a stopped sweep is finished by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Settings
from daemon.inbound.folder_cleanup import FolderCleanup
from daemon.inbound.imap import ImapInbox
from daemon.tickets.privacy.erasure import Counts
from daemon.tickets.privacy.retention import Retention

log = logging.getLogger("daemon.retention")

EVERY_SECONDS = 24 * 3600


def sweep(settings: Settings, sessions: sessionmaker[Session], clock: Callable[[], datetime]
          ) -> dict[str, Counts]:
    """Apply the policy once; what was erased, by audit reason."""
    policy = settings.config.retention
    done = Retention(policy, sessions, clock).sweep()
    if policy.imap_folders is None:
        return done
    counts = Counts()
    cutoff = clock() - policy.imap_folders
    for box in settings.each_mailbox():
        password = box.secrets.imap_password
        inbox = ImapInbox(box.config.imap, password.get_secret_value() if password else None)
        try:
            inbox.connect()
            counts.imap_copies += FolderCleanup(inbox).delete_older_than(cutoff)
        except Exception as exc:  # one mailbox's trouble must not stop the others' clean-up
            log.warning("retention: mailbox %s: IMAP folders not cleaned: %s", box.config.mailbox, exc)
        finally:
            inbox.close()
    if counts.imap_copies:
        with sessions.begin() as session:
            session.add(counts.audit("retention-imap-folders", clock()))
        log.info("retention: %d old copies deleted from the IMAP folders", counts.imap_copies)
    done["retention-imap-folders"] = counts
    return done
