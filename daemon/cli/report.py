"""`report`: the shop's figures for a period, as text, JSON or CSV."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.cli.common import EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    report = commands.add_parser("report", help="the shop's figures for a period")
    report.add_argument("--since", default="7d",
                        help="start: a duration back from now (7d, 30d) or a date (YYYY-MM-DD); "
                             "default 7d")
    report.add_argument("--until", default=None, help="end, same forms (default: now)")
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON object (keys in README)")
    output.add_argument("--csv", action="store_true", help="figure,value rows")
    report.set_defaults(handler=cmd_report)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.models import utcnow
    from daemon.tickets.report.figures import BusinessHours, gather
    from daemon.tickets.report.period import PeriodError, period
    from daemon.tickets.report.render import as_csv, as_json, as_text

    config = settings.config
    now = utcnow()
    try:
        since, until = period(args.since, args.until, now, config.shop.timezone)
    except PeriodError as exc:
        print(f"incidencias: report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with open_sessions(settings)() as session:
        figures = gather(session, since, until, now=now, business=BusinessHours.of(config))
    if args.json:
        print(json.dumps(as_json(figures), ensure_ascii=False, indent=2))
    elif args.csv:
        sys.stdout.write(as_csv(figures))
    else:
        sys.stdout.write(as_text(figures, config.agents.language, config.shop.timezone))
    return EXIT_OK
