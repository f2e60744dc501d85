"""`discounts export`: issued codes as CSV for the shop platform."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.cli.common import EXIT_OK, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    discounts = commands.add_parser("discounts", help="discount codes").add_subparsers(
        dest="discounts_command", required=True, metavar="ACTION")
    export = discounts.add_parser("export", help="issued codes as CSV, for the shop platform")
    export.add_argument("--output", "-o", type=Path, default=None, help="file (default: stdout)")
    export.add_argument("--source", choices=["generated", "pool"], default=None)
    export.set_defaults(handler=cmd_discounts_export)


def cmd_discounts_export(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.tickets.discounts import export_csv

    with open_sessions(settings)() as session:
        if args.output is None:
            rows = export_csv(session, sys.stdout, args.source)
        else:
            with args.output.open("w", newline="", encoding="utf-8") as out:
                rows = export_csv(session, out, args.source)
    print(f"{rows} code(s) exported", file=sys.stderr)
    return EXIT_OK
