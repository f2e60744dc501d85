"""Logging to stderr, one line per event, as journald and log shippers expect."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

# Event lines name their ticket as "ticket=N"; JSON gets it as a field log shippers can index.
_TICKET = re.compile(r"\bticket=(\d+)\b")
_NOISY = ("mailparser", "apscheduler", "imapclient", "aiosmtplib", "alembic")
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                    logging.CRITICAL: 2}
_level_given_on_command_line = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ticket = _TICKET.search(str(entry["message"]))
        if ticket:
            entry["ticket"] = int(ticket.group(1))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """Text lines with a `<priority>` prefix, which journald turns into the entry's level."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>" + super().format(record).replace("\n", f"\n<{priority}>")


def stderr_is_journal(environ: Mapping[str, str] = os.environ) -> bool:
    """systemd sets $JOURNAL_STREAM to stderr's device:inode when stderr goes to journald."""
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return environ.get("JOURNAL_STREAM", "") == f"{stat.st_dev}:{stat.st_ino}"


def setup(level: str | None = "info", fmt: str = "text") -> None:
    """Log to stderr; `level` None means not given on the command line, so the config may set it."""
    global _level_given_on_command_line
    _level_given_on_command_line = level is not None
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level or "info")


def set_level(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Third-party chatter that says nothing a sysadmin can act on.
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)


def apply_config_level(level: str | None) -> bool:
    """Use `[logging] level` unless --log-level was given; True when the level changed."""
    if level is None or _level_given_on_command_line:
        return False
    if logging.getLogger().level == logging.getLevelName(level.upper()):
        return False
    set_level(level)
    return True
