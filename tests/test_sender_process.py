"""The outbox sender's child process: woken through its pipe, counted in the parent's metrics,
restarted when it dies, gone when the parent is SIGKILLed, stopped cleanly by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from helpers.configs import offline_config
from helpers.dbcheck import fresh_database_url, migrated_engine
from helpers.harness import wait_until
from helpers.mailservers import SmtpSink
from helpers.outboxrows import delivered, queue_rows

from daemon.runtime.sender_process import SenderProcess
from daemon.storage import db

REPO = Path(__file__).resolve().parent.parent


def _config(directory: Path, sink: SmtpSink) -> Path:
    text = offline_config(fresh_database_url(directory)).replace(
        '[smtp]\nhost = "127.0.0.1"\n', f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\n')
    config = directory / "config.toml"
    config.write_text(text)
    return config


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


def test_a_wake_delivers_the_queue_and_each_send_reaches_the_parents_counters(
        tmp_path: Path, smtp_sink: SmtpSink) -> None:
    config = _config(tmp_path, smtp_sink)
    engine = migrated_engine(tmp_path)
    ids = queue_rows(db.session_factory(engine), 3)
    engine.dispose()
    sent: Counter[str] = Counter()

    async def scenario() -> int | None:
        child = SenderProcess(config, None, "text", lambda kind: sent.update([kind]),
                              lambda permanent, count: None)
        await child.start()
        child.wake()
        deadline = time.monotonic() + 20
        while sum(sent.values()) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await child.stop()

    assert asyncio.run(scenario()) == 0  # SIGTERM: stops cleanly
    assert delivered(smtp_sink) == {message_id: 1 for message_id in ids}
    assert sent == {"acknowledgement": 3}


def test_a_child_that_dies_is_started_again(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    config = _config(tmp_path, smtp_sink)
    migrated_engine(tmp_path).dispose()

    async def scenario() -> tuple[int, int, int]:
        child = SenderProcess(config, None, "text", lambda kind: None, lambda p, c: None)
        await child.start()
        assert child.process is not None
        first = child.process.pid
        child.signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while child.restarts == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert child.process is not None
        second = child.process.pid
        await child.stop()
        return first, second, child.restarts

    first, second, restarts = asyncio.run(scenario())
    assert restarts == 1 and second != first
    assert not _alive(first) and not _alive(second)


PARENT = """
import asyncio, sys
from pathlib import Path
from daemon.runtime.sender_process import SenderProcess

async def main():
    child = SenderProcess(Path(sys.argv[1]), None, "text", lambda kind: None, lambda p, c: None)
    await child.start()
    print(child.process.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_a_sigkilled_parent_leaves_no_sender_running(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    config = _config(tmp_path, smtp_sink)
    migrated_engine(tmp_path).dispose()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert parent.stdout is not None and parent.stderr is not None
        child = int(parent.stdout.readline())
        while b"outbox sender started" not in parent.stderr.readline():
            assert parent.poll() is None
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        killed = time.monotonic()
        wait_until(lambda: not _alive(child), 1.0, "the sender to die with its parent")
        assert time.monotonic() - killed < 1.0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
