"""The outbox sender as a child process of `incidencias run`: its own interpreter and connection.

Sending (~3 ms of CPU a mail) no longer takes turns with the intake for one GIL. Guarantees:
- It dies with its parent: the kernel SIGKILLs it when the parent dies (PR_SET_PDEATHSIG), and
  it stops when its stdin reaches end of file; a SIGKILLed daemon leaves no sender behind.
- SIGTERM or SIGINT: the delivery pass under way is finished (as when the sender ran in the
  daemon's own process: a message's acknowledgement and its agents' copies go out together),
  nothing more is started, exit 0; the parent SIGKILLs it after 30 s.
- SIGHUP re-reads the config file for the log level; everything the sender uses is wired at start.
- Each byte read on stdin wakes it for a delivery pass; without one it looks every
  `SWEEP_SECONDS` (retries fall due without anyone writing).
- Each delivery outcome is one line on stdout ("sent <kind>", "failed <0|1> <count>"), which the
  parent turns into its metrics.
It imports only the config, the database engine and the sender: no parser, language models or
templates; and those only once PR_SET_PDEATHSIG is set, so a parent killed while the child starts
takes it along too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.runtime import logs

if TYPE_CHECKING:
    from daemon.outbound.sender import OutboxSender, SendEvents

log = logging.getLogger("daemon.outbox")

SWEEP_SECONDS = 15
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies; if it already has, go now."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): stdin EOF still stops the sender",
                    ctypes.get_errno())
    if os.getppid() != parent:
        os._exit(0)


def _report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def events() -> SendEvents:
    from daemon.outbound.sender import SendEvents

    return SendEvents(sent=lambda kind: _report(f"sent {kind}"),
                      failed=lambda permanent, count: _report(f"failed {int(permanent)} {count}"))


async def deliver(sender: OutboxSender, was_down: bool) -> bool:
    """One outbox pass; True when the database was unavailable. Logs only changes of that state.

    The outbox lives in the database: while it is away (a PostgreSQL restart, a SQLite lock held
    past the busy timeout) the mail waits there and the next wake or sweep tries again, rather
    than the sender dying.
    """
    from sqlalchemy.exc import OperationalError

    try:
        await sender.deliver_due()
    except OperationalError as exc:
        if not was_down:
            log.warning("outbox: database unavailable (%s); mail waits, retried every %ds",
                        str(exc.orig or exc).strip().splitlines()[0], SWEEP_SECONDS)
        return True
    if was_down:
        log.info("outbox: database available again")
    return False


async def serve(config: Path) -> int:
    from daemon.config import load_settings
    from daemon.outbound.sender import OutboxSender
    from daemon.storage import db
    from daemon.storage.models import utcnow

    settings = load_settings(config)
    logs.apply_config_level(settings.config.logging.level)
    engine = db.make_engine(settings.config.database.url)
    password = settings.secrets.smtp_password
    sender = OutboxSender(settings.config.smtp, password.get_secret_value() if password else None,
                          db.session_factory(engine), utcnow, events())
    loop = asyncio.get_running_loop()
    wake, running = asyncio.Event(), asyncio.Event()
    running.set()

    def stop() -> None:
        running.clear()
        wake.set()

    def reload() -> None:
        with contextlib.suppress(Exception):
            logs.apply_config_level(load_settings(config).config.logging.level)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def listen() -> None:
        while await reader.read(4096):
            wake.set()
        stop()

    listener = asyncio.ensure_future(listen())
    log.info("outbox sender started (pid %d)", os.getpid())
    down = False
    try:
        while running.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), SWEEP_SECONDS)
            wake.clear()
            if running.is_set():
                down = await deliver(sender, down)
    finally:
        listener.cancel()
        engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    """argv: config path, parent pid, log level given on the command line ("" if none), format."""
    config, parent, level, fmt = argv
    logs.setup(level or None, fmt)
    die_with_parent(int(parent))
    return asyncio.run(serve(Path(config)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
