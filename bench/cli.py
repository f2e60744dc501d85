"""`python -m bench`: every measurement of issue 8 in one run, written to bench/results/<date>.*

Run it with the project's interpreter (/work/main/.venv/bin/python, or bench/run which picks it):
the incidencias side imports the daemon from there. The peers and matplotlib live in the bench's
own virtual environments under bench/.venvs (created on first use, from PyPI).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from bench import ours, peers, report
from bench.setup import REPO
from bench.workload import generate

BENCH = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=1000, help="workload size (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is kept")
    parser.add_argument("--latency", type=int, default=100, help="messages sent one by one")
    parser.add_argument("--scale-tickets", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=10_000, help="messages in the RSS backlog")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="incidencias' database: a SQLite file (default) or a throwaway "
                             "PostgreSQL server started as the tests start theirs")
    parser.add_argument("--no-peers", action="store_true", help="skip Roundup and django-helpdesk")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one run, no peers, no venvs created: proves the bench runs")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--venvs", type=Path, default=BENCH / ".venvs")
    parser.add_argument("--rewrite", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: write the .md (and chart) again from a results file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (and SIGINT, which a background job starts with ignored) unwind through the
    # `with` blocks, so the daemon and Dovecot the bench started are stopped too.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    if args.rewrite is not None:
        return write(args, json.loads(args.rewrite.read_text()), args.rewrite.with_suffix(""))
    if args.smoke:
        args.messages, args.runs, args.latency = min(args.messages, 40), 1, 3
        args.scale_tickets, args.backlog = 500, 24
        args.no_peers = args.no_profile = True
    args.out.mkdir(parents=True, exist_ok=True)
    # bench/setup.py asks tests/helpers/dbcheck.py for each database, which reads this.
    os.environ["INCIDENCIAS_TEST_DATABASE"] = args.database
    started = time.monotonic()
    results: dict[str, Any] = {"date": date.today().isoformat(), "machine": machine(),
                               "settings": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        measure(args, Path(tmp), results)
    results["machine"]["load_after"] = _load()
    results["wall_seconds"] = time.monotonic() - started
    stem = args.out / (results["date"] + ("-postgresql" if args.database == "postgresql" else ""))
    for line in report.ratio_lines(results):
        log(line)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    args.out.joinpath(f"{results['date']}.partial.json").unlink(missing_ok=True)
    return write(args, results, stem)


def write(args: argparse.Namespace, results: dict[str, Any], stem: Path) -> int:
    """`<stem>.md` and `<stem>.png` from the results (already saved as `<stem>.json`)."""
    chart = None if args.no_chart else make_chart(args, stem)
    results["chart"] = chart.name if chart else None
    stem.with_suffix(".md").write_text(report.markdown(results))
    print(f"wrote {stem.with_suffix('.md')}" + (f" and {chart}" if chart else ""))
    return 0


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def log(text: str) -> None:
    print(text, flush=True)


def measure(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
    workload = generate(args.messages, args.seed)
    results["workload"] = {"messages": len(workload.mails), "seed": args.seed,
                           "bytes": sum(len(r) for r in workload.raws), **workload.counts()}
    log(f"workload: {results['workload']}")

    ours.warm_up(tmp / "warm", 12 if args.smoke else 60)
    runs = [ours.pipeline(workload, tmp / f"pipeline{i}") for i in range(args.runs)]
    for run in runs:
        log(f"  pipeline: {run.rate:.1f} msg/s, threading {run.threading:.1%}, {run.outcomes}")
    results["pipeline"] = {"rates": [r.rate for r in runs], "rate": _median([r.rate for r in runs]),
                           "threading": min(r.threading for r in runs), "queued": runs[0].queued,
                           "outcomes": runs[0].outcomes}
    floors = [ours.parse_floor(workload.raws) for _ in range(args.runs)]
    results["parse_floor"] = {name: _median([f[name] for f in floors]) for name in floors[0]}
    log(f"parse floor: {results['parse_floor']}")

    with ours.Servers() as servers:
        seconds = [ours.end_to_end(servers, workload, tmp / f"e2e{i}", runs[0].queued)
                   for i in range(args.runs)]
        rates = [len(workload.mails) / s for s in seconds]
        results["end_to_end"] = {"seconds": seconds, "rates": rates, "rate": _median(rates),
                                 "mail_delivered": runs[0].queued}
        log(f"end to end: {results['end_to_end']}")
        lat = ours.latency(servers, args.latency, tmp / "latency")
        results["latency"] = {**_latency_summary(lat.seconds, args.latency), "stranded": lat.stranded}
        log(f"latency: {results['latency']}")
        results["scale"] = asdict(ours.scale(tmp / "scale", args.scale_tickets, lists=args.runs))
        log(f"scale: {results['scale']}")
        save(args, results)
        results["peers"] = {}
        if not args.no_peers:
            for peer in peers.PEERS:
                log(f"peer {peer.key}…")
                found = peers.run_peer(peer, args.venvs / peer.key, args.messages, args.seed, args.runs,
                                       log)
                rates = [r.rate for r in found.runs]
                results["peers"][peer.key] = {
                    "title": peer.title, "version": found.version, "error": found.error,
                    "rates": rates, "rate": _median(rates) if rates else None,
                    "threading": min((r.threading for r in found.runs), default=None),
                    "accepted": min((r.accepted for r in found.runs), default=None),
                }
                save(args, results)
        big = generate(args.backlog, args.seed + 1)
        for key, detection in (("backlog", "accurate"), ("backlog_light", "light")):
            backlog = ours.backlog(servers, big, tmp / key, ours.expected_mail(big),
                                   language_detection=detection)
            results[key] = asdict(backlog)
            log(f"{key}: {backlog.messages} messages in {backlog.seconds:.1f}s, "
                f"peak RSS {backlog.peak_rss_mb:.1f} MB, finished {backlog.finished}")
            save(args, results)
    if not args.no_profile:
        results["profile"] = profile(args, tmp)


def save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The figures so far, so that a run stopped later still leaves them."""
    (args.out / f"{results['date']}.partial.json").write_text(json.dumps(results, indent=1, default=str))


def _latency_summary(seconds: list[float], sent: int) -> dict[str, Any]:
    ordered = sorted(seconds)
    if not ordered:
        return {"sent": sent, "received": 0}
    return {"sent": sent, "received": len(ordered), "p50": _percentile(ordered, 50),
            "p95": _percentile(ordered, 95), "max": ordered[-1], "samples": seconds}


def _percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "daemon"],
                           capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "commit": commit + (" + uncommitted daemon changes"
                                                                 if dirty else ""),
            "load_before": _load()}


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" 1/")[0].rsplit(" ", 2)[0]
    except OSError:
        return "?"


def tools_python(args: argparse.Namespace, create: bool) -> Path | None:
    venv = args.venvs / "tools"
    if create and peers.ensure_venv(venv, peers.TOOLS) is not None:
        return None
    python = venv / "bin" / "python"
    return python if python.exists() else None


def make_chart(args: argparse.Namespace, stem: Path) -> Path | None:
    """The PNG, drawn by matplotlib in the bench's tools venv; none in a smoke run without it."""
    python = tools_python(args, create=not args.smoke)
    if python is None:
        log("no chart: matplotlib is not available")
        return None
    png = stem.with_suffix(".png")
    done = subprocess.run([str(python), str(BENCH / "chart.py"), str(stem.with_suffix(".json")),
                           str(png)], capture_output=True, text=True)
    if done.returncode != 0:
        log(f"no chart: {done.stderr[-1000:]}")
        return None
    return png


def profile(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Where the pipeline's time goes: py-spy samples of `bench.profile_target`, by function."""
    python = tools_python(args, create=True)
    if python is None:
        return {"error": "py-spy not available"}
    spy = python.parent / "py-spy"
    raw = tmp / "profile.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(spy), "record", "-r", "250", "-f", "raw", "-o", str(raw), "--",
                           sys.executable, "-m", "bench.profile_target", str(min(args.messages, 1000)),
                           str(args.seed), str(tmp / "profiled")], capture_output=True, text=True, env=env)
    if done.returncode != 0 or not raw.exists():
        return {"error": f"py-spy exited {done.returncode}: {done.stderr[-1000:]}"}
    return report.aggregate_profile(raw.read_text(), within="Ingestor.ingest_many")


if __name__ == "__main__":
    sys.exit(main())
