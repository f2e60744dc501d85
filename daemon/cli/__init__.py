"""The `incidencias` command line: exit 0 ok, 2 usage or config error, 1 failure.

Each command group is one module of this package with a `register(commands)` function; README's
"Command line" section is the reference for what they do.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from daemon import __version__
from daemon.cli import (
    answers,
    customers,
    discounts,
    faq,
    outbox,
    quarantine,
    report,
    service,
    templates,
    tickets,
)
from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from daemon.config import ConfigError, Settings, default_config_path, load_settings
from daemon.runtime import logs

log = logging.getLogger("incidencias")

GROUPS = (service, tickets, outbox, quarantine, discounts, templates, customers, answers, faq,
          report)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incidencias", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="config file (default: $INCIDENCIAS_CONFIG, else ./config.toml)")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                        help="default: [logging] level for `run`, else info")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.add_argument("--version", action="version", version=f"incidencias {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    try:
        settings = load_settings(args.config or default_config_path())
    except ConfigError as exc:
        print(f"incidencias: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        log.error("%s: %s", type(exc).__name__, exc, exc_info=args.log_level == "debug")
        return EXIT_FAILURE
