"""`incidencias run`'s side of the sender child (sender_child.py): start, wake, watch, stop.

systemd still sees one service: the child is started from the event loop's thread (the thread
PR_SET_PDEATHSIG watches) and ends with the parent. A child that exits on its own is started
again after 1, 2, 4 … 60 seconds (back to 1 after a minute of life), logged each time; mail
waits in the outbox meanwhile, so nothing is lost. Its delivery lines become the parent's
Prometheus counters, so /metrics reads as when the sender ran in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("daemon.service")

_FIRST_BACKOFF = 1.0
_MAX_BACKOFF = 60.0
_STOP_WAIT = 30.0


class SenderProcess:
    def __init__(self, config: Path, log_level: str | None, log_format: str,
                 sent: Callable[[str], object], failed: Callable[[bool, int], object]) -> None:
        self.config = config
        self.log_level = log_level
        self.log_format = log_format
        self.sent = sent
        self.failed = failed
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._watch: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.ensure_future(self._supervise())

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon.runtime.sender_child", str(self.config), str(os.getpid()),
            self.log_level or "", self.log_format,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def _supervise(self) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            process = self.process
            assert process is not None
            started = time.monotonic()
            await self._read_events(process)
            code = await process.wait()
            if self._stopping:
                return
            if time.monotonic() - started > _MAX_BACKOFF:
                backoff = _FIRST_BACKOFF
            log.error("outbox sender exited with status %s; restarting it in %.0fs "
                      "(mail waits in the outbox)", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(_MAX_BACKOFF, backoff * 2)
            if self._stopping:
                return
            await self._spawn()
            self.restarts += 1

    async def _read_events(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            words = line.decode(errors="replace").split()
            if len(words) == 2 and words[0] == "sent":
                self.sent(words[1])
            elif len(words) == 3 and words[0] == "failed" and words[2].isdigit():
                self.failed(words[1] == "1", int(words[2]))

    def wake(self) -> None:
        """A delivery pass soon; called on the event loop (call_soon_threadsafe from threads)."""
        process = self.process
        if process is not None and process.returncode is None and process.stdin is not None \
                and not process.stdin.is_closing():
            process.stdin.write(b"w")

    def signal(self, signum: int) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    async def stop(self) -> int | None:
        """SIGTERM: the child finishes its delivery pass; SIGKILL if it takes over 30 s."""
        self._stopping = True
        process = self.process
        if process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), _STOP_WAIT)
        except TimeoutError:
            log.error("outbox sender did not stop within %.0fs; killing it", _STOP_WAIT)
            self.signal(signal.SIGKILL)
            code = await process.wait()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        return code
