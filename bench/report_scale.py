"""`python -m bench.report_scale`: how long `incidencias report --since 30d` takes on a large shop.

Builds a seeded database of `--tickets` tickets (default 100,000) opened evenly over the last
year, each with its acknowledgement and one to four more mails to the customer, an agent reply
time, tags, languages, two mailboxes, closings for most, satisfaction scores, promises and
discount codes; then runs the real command (a subprocess, so start-up is counted) `--runs` times
and prints the median and the worst wall-clock seconds. SQLite by default; `--database-url` takes
a PostgreSQL URL (an empty database the bench migrates).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from daemon.storage import db
from daemon.storage.models import DiscountCode, Message, Promise, Ticket

_REASONS = ["retraso", "roto", "talla", "devolucion", "factura", ""]
_LANGUAGES = ["es", "es", "fr", "en"]
_BATCH = 5000


def build(url: str, tickets: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = db.make_engine(url)
    db.upgrade(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - timedelta(days=365)
    rows: list[dict[str, object]] = []
    mails: list[dict[str, object]] = []
    promises: list[dict[str, object]] = []
    codes: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as connection:
            for table, batch in ((Ticket, rows), (Message, mails), (Promise, promises),
                                 (DiscountCode, codes)):
                if batch:
                    connection.execute(insert(table), batch)
                    batch.clear()

    for number in range(1, tickets + 1):
        created = start + timedelta(seconds=365 * 86400 * number / tickets)
        replied = created + timedelta(hours=rng.expovariate(1 / 6))
        closed = (created + timedelta(hours=rng.expovariate(1 / 60))
                  if rng.random() < 0.9 else None)
        if closed is not None and closed > now:
            closed = None
        score = rng.choice([None, None, 1, 2, 3, 4, 5, 5]) if closed else None
        rows.append({
            "id": number, "status": "closed" if closed else "open",
            "customer_email": f"c{number}@example.net", "customer_name": "", "subject": f"Pedido {number}",
            "subject_key": f"pedido {number}", "language": rng.choice(_LANGUAGES),
            "created_at": created, "updated_at": closed or replied, "tags": rng.choice(_REASONS),
            "first_agent_reply_at": replied if replied < now else None,
            "last_agent_reply_at": replied if replied < now else None,
            "closed_at": closed, "satisfaction": score,
            "satisfaction_at": closed + timedelta(hours=2) if score else None,
            "mailbox": "default" if number % 5 else "outlet", "faq": "retraso" if number % 7 == 0 else "",
            "self_solved": number % 21 == 0 and closed is not None, "discount_code": None})
        sent = created
        for index in range(1 + rng.randint(1, 4)):
            mails.append({"ticket_id": number, "direction": "out", "kind": "ack" if index == 0 else "x",
                          "message_id": f"b{number}.{index}@example.com", "created_at": sent})
            sent += timedelta(days=rng.uniform(0.2, 3.5))
        if number % 10 == 0:
            promises.append({"ticket_id": number, "agent": "ana@example.com", "text": "llamar",
                             "created_at": created, "due_at": created + timedelta(days=1),
                             "done_at": created + timedelta(hours=rng.uniform(2, 40))})
        if closed is not None and number % 3 == 0:
            codes.append({"code": f"GRACIAS-{number}", "source": "generated", "percent": 10,
                          "ticket_id": number, "claimed_at": closed, "created_at": closed})
        if len(rows) >= _BATCH:
            flush()
    flush()
    engine.dispose()


def _children_cpu() -> float:
    """CPU seconds used by finished child processes: what the run cost, whatever else the
    machine was doing (wall time on a shared machine also counts waiting for a core)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_scale", description=__doc__)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--since", default="30d")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="incidencias-report-bench-") as folder:
        work = Path(folder)
        url = args.database_url or f"sqlite:///{work / 'report.db'}"
        began = time.perf_counter()
        build(url, args.tickets, args.seed)
        print(f"built {args.tickets:,} tickets in {time.perf_counter() - began:.1f} s")
        config = work / "config.toml"
        config.write_text(f'[shop]\nname = "Bench"\naddress = "incidencias@example.com"\n'
                          f'[imap]\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "u"\n'
                          f'[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n'
                          f'[database]\nurl = "{url}"\n')
        times, cpu = [], []
        for _ in range(args.runs):
            began, used = time.perf_counter(), _children_cpu()
            subprocess.run([sys.executable, "-m", "daemon", "-c", str(config), "report", "--since",
                            args.since, "--json"], check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - began)
            cpu.append(_children_cpu() - used)
        print(f"`incidencias report --since {args.since} --json` on {args.tickets:,} tickets: "
              f"wall median {statistics.median(times):.2f} s, worst {max(times):.2f} s; "
              f"CPU median {statistics.median(cpu):.2f} s ({args.runs} runs, process start-up "
              f"included; load average before: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
