"""The outbox sender alone: an outbox filled by the in-process pipeline, then drained, timed.

`python -m bench.sender_only [messages]` ingests the workload in this process (nothing is sent),
then a separate process delivers the whole outbox to the SMTP sink running here, so the sink
does not share the sender's interpreter. Prints mails per second and CPU milliseconds per mail
of the delivering process: the figure the end-to-end run reaches once the intake is done.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.mailservers import SmtpSink

from bench import setup
from bench.setup import REPO, write_config
from bench.workload import generate
from daemon.config import load_settings
from daemon.runtime.service import build
from daemon.tickets.router import Source


def drain(config: Path) -> dict[str, float]:
    """Deliver every pending row once, in this process; wall and CPU seconds."""
    parts = build(load_settings(config))
    pending = parts.sender.pending_count()
    wall, cpu = time.perf_counter(), time.process_time()
    report = asyncio.run(parts.sender.deliver_due(ignore_schedule=True))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    parts.engine.dispose()
    return {"pending": pending, "sent": report.sent, "seconds": wall, "cpu_seconds": cpu}


def measure(messages: int, directory: Path) -> dict[str, float]:
    workload = generate(messages, seed=1)
    with SmtpSink(username="incidencias@example.com", password=setup.PASSWORD) as sink:
        config = write_config(directory, smtp_port=sink.port)
        parts = build(load_settings(config))
        for uid, raw in enumerate(workload.raws, 1):
            parts.ingestor.ingest(raw, Source("INBOX", 1, uid))
        parts.engine.dispose()
        out = subprocess.run(
            [sys.executable, "-c", "import json, sys; from pathlib import Path; "
             "from bench.sender_only import drain; print(json.dumps(drain(Path(sys.argv[1]))))",
             str(config)],
            check=True, capture_output=True, text=True, cwd=REPO,
            env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"})
        figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        figures["accepted"] = len(sink.messages)
    figures["mails_per_second"] = figures["sent"] / figures["seconds"]
    figures["cpu_ms_per_mail"] = 1000 * figures["cpu_seconds"] / max(1, figures["sent"])
    return figures


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, Path(scratch))))
