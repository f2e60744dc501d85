"""`outbox list/retry`: outgoing mail waiting, refused or sent, and sending it again."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    outbox = commands.add_parser("outbox", help="outgoing mail").add_subparsers(
        dest="outbox_command", required=True, metavar="ACTION")
    outbox_list = outbox.add_parser("list", help="outgoing mail, oldest first (default: not yet sent)")
    outbox_list.add_argument("--status", choices=["pending", "failed", "sent", "cancelled"])
    outbox_list.add_argument("--limit", type=int, default=None)
    outbox_list.add_argument("--json", action="store_true")
    outbox_list.set_defaults(handler=cmd_outbox_list)
    outbox_retry = outbox.add_parser("retry", help="send a failed or waiting message again now")
    which = outbox_retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", metavar="ID")
    which.add_argument("--all-failed", action="store_true")
    outbox_retry.set_defaults(handler=cmd_outbox_retry)


def cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.admin_views import OUTBOX_COLUMNS, list_outbox, table

    with open_sessions(settings)() as session:
        found = list_outbox(session, args.status, args.limit)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else table(found, OUTBOX_COLUMNS, empty=f"no {args.status or 'unsent'} mail in the outbox"))
    return EXIT_OK


def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.retry import NotRetryable, retry, retry_all_failed
    from daemon.storage.models import utcnow

    with open_sessions(settings).begin() as session:
        if args.all_failed:
            ids = retry_all_failed(session, utcnow())
            print(f"{len(ids)} failed message(s) back in the queue" +
                  (f": {', '.join(map(str, ids))}" if ids else ""))
            return EXIT_OK
        try:
            previous = retry(session, args.id, utcnow())
        except NotRetryable as exc:
            print(f"incidencias: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"outbox message {args.id} ({previous}) is due now; the daemon sends it at its next delivery")
    return EXIT_OK
