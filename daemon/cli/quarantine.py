"""`quarantine list/replay` and `import-mbox`: mail that could not be filed, and old mail filed late."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    quarantine = commands.add_parser("quarantine", help="mail that could not be processed"
                                     ).add_subparsers(dest="quarantine_command", required=True,
                                                      metavar="ACTION")
    quarantine_list = quarantine.add_parser("list", help="quarantined messages, oldest first")
    quarantine_list.add_argument("--json", action="store_true")
    quarantine_list.set_defaults(handler=cmd_quarantine_list)
    replay = quarantine.add_parser("replay", help="process a quarantined message again")
    replay.add_argument("id", type=int, metavar="ID")
    replay.set_defaults(handler=cmd_quarantine_replay)

    import_mbox = commands.add_parser("import-mbox", help="file a mailbox's history as tickets, "
                                      "sending nothing")
    import_mbox.add_argument("file", type=Path, metavar="FILE")
    import_mbox.add_argument("--mailbox", default=None, metavar="NAME",
                             help="the [[mailboxes]] entry the history belongs to (needed with several)")
    import_mbox.add_argument("--json", action="store_true")
    import_mbox.set_defaults(handler=cmd_import_mbox)


def cmd_quarantine_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.admin_views import QUARANTINE_COLUMNS, list_quarantine, table

    with open_sessions(settings)() as session:
        found = list_quarantine(session)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else table(found, QUARANTINE_COLUMNS, empty="the quarantine is empty"))
    return EXIT_OK


def cmd_quarantine_replay(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from daemon.config import DEFAULT_MAILBOX
    from daemon.runtime.service import build_mailboxes
    from daemon.storage.models import RawMessage, RawOutcome

    boxes = {p.ingestor.config.mailbox: p for p in build_mailboxes(settings)}
    with next(iter(boxes.values())).sessions() as session:
        folder = session.scalar(select(RawMessage.folder).where(RawMessage.id == args.id)) or ""
    # The intake records a named mailbox's folder as "<mailbox>/<folder>" (daemon.inbound.intake).
    named = folder.split("/", 1)[0] if "/" in folder else DEFAULT_MAILBOX
    parts = boxes.get(named) or boxes.get(DEFAULT_MAILBOX) or next(iter(boxes.values()))
    try:
        outcome = parts.ingestor.replay(args.id)
    except LookupError as exc:
        print(f"incidencias: {exc}; see `incidencias quarantine list`", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        parts.engine.dispose()
    if outcome.outcome == RawOutcome.QUARANTINED:
        print(f"incidencias: message {args.id} is still quarantined: {outcome.error}", file=sys.stderr)
        return EXIT_FAILURE
    what = ("a duplicate of a message already in" if outcome.outcome == RawOutcome.DUPLICATE
            else "opened" if outcome.new_ticket else "filed in")
    print(f"message {args.id} replayed: {what} ticket #{outcome.ticket}"
          + (f"; {outcome.queued} email(s) queued" if outcome.queued else "")
          + f". Its copy on the IMAP server stays in {parts.ingestor.config.imap.quarantine_folder}.")
    return EXIT_OK


def cmd_import_mbox(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.inbound.mbox_import import import_mbox
    from daemon.runtime.progress import ProgressLine
    from daemon.runtime.service import build

    if not args.file.is_file():
        print(f"incidencias: import-mbox: {args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    names = [box.config.mailbox for box in settings.each_mailbox()]
    if args.mailbox is None and len(names) > 1:
        print(f"incidencias: import-mbox: --mailbox is needed with several mailboxes ({', '.join(names)})",
              file=sys.stderr)
        return EXIT_USAGE
    target = settings if args.mailbox is None else settings.for_mailbox(args.mailbox)
    if target is None:
        print(f"incidencias: import-mbox: --mailbox: no mailbox {args.mailbox!r} ({', '.join(names)})",
              file=sys.stderr)
        return EXIT_USAGE
    if args.log_level is None:
        # One info line per message would bury the progress bar; warnings still show.
        logging.getLogger("daemon").setLevel(logging.WARNING)
    report = import_mbox(target, args.file, build, ProgressLine(sys.stderr, "messages"))
    if report.messages == 0:
        print(f"incidencias: import-mbox: {args.file}: no messages found (not an mbox file?)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"file": str(args.file), **report.as_dict()}, indent=2))
    else:
        print(f"{report.messages} message(s): {report.new_tickets} new ticket(s), {report.joined} "
              f"joined existing tickets, {report.skipped} already imported, {report.quarantined} "
              "quarantined; nothing was sent or queued")
    return EXIT_OK
