"""The `incidencias` command line (see CONTRACT.md): exit 0 ok, 2 usage or config error, 1 failure."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from daemon import __version__
from daemon.config import ConfigError, Settings, default_config_path, load_settings
from daemon.runtime import logs
from daemon.storage import db

log = logging.getLogger("incidencias")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incidencias", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="config file (default: $INCIDENCIAS_CONFIG, else ./config.toml)")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                        help="default: [logging] level for `run`, else info")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.add_argument("--version", action="version", version=f"incidencias {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--once", action="store_true",
                     help="one full cycle (fetch, process, deliver), then exit")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate the config and the templates")
    check.add_argument("--connect", action="store_true",
                       help="also log in to IMAP and SMTP, and call the shop's [platform] once")
    check.set_defaults(handler=cmd_check_config)

    database = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    database.add_parser("upgrade", help="apply migrations").set_defaults(handler=cmd_db_upgrade)
    database.add_parser("current", help="show the schema revision").set_defaults(
        handler=cmd_db_current)

    tickets = commands.add_parser("tickets", help="look at tickets").add_subparsers(
        dest="tickets_command", required=True, metavar="ACTION")
    listing = tickets.add_parser("list", help="tickets, newest first")
    listing.add_argument("--status", choices=["open", "waiting", "closed"])
    listing.add_argument("--limit", type=int, default=None)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_tickets_list)
    show = tickets.add_parser("show", help="one ticket with its messages")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_tickets_show)
    search = tickets.add_parser("search", help="tickets whose subject, customer or messages contain TEXT")
    search.add_argument("text", metavar="TEXT")
    search.add_argument("--limit", type=int, default=None)
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=cmd_tickets_search)
    close = tickets.add_parser("close", help="close as an agent's #close would")
    close.add_argument("number", type=int)
    discount = close.add_mutually_exclusive_group()
    discount.add_argument("--discount", type=int, metavar="P", help="discount percent (0-100)")
    discount.add_argument("--no-discount", action="store_true")
    close.add_argument("--message", default=None, help="a personal line for the closing email")
    close.set_defaults(handler=cmd_tickets_close)

    outbox = commands.add_parser("outbox", help="outgoing mail").add_subparsers(
        dest="outbox_command", required=True, metavar="ACTION")
    outbox_list = outbox.add_parser("list", help="outgoing mail, oldest first (default: not yet sent)")
    outbox_list.add_argument("--status", choices=["pending", "failed", "sent"])
    outbox_list.add_argument("--limit", type=int, default=None)
    outbox_list.add_argument("--json", action="store_true")
    outbox_list.set_defaults(handler=cmd_outbox_list)
    outbox_retry = outbox.add_parser("retry", help="send a failed or waiting message again now")
    which = outbox_retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", metavar="ID")
    which.add_argument("--all-failed", action="store_true")
    outbox_retry.set_defaults(handler=cmd_outbox_retry)

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

    discounts = commands.add_parser("discounts", help="discount codes").add_subparsers(
        dest="discounts_command", required=True, metavar="ACTION")
    export = discounts.add_parser("export", help="issued codes as CSV, for the shop platform")
    export.add_argument("--output", "-o", type=Path, default=None, help="file (default: stdout)")
    export.add_argument("--source", choices=["generated", "pool"], default=None)
    export.set_defaults(handler=cmd_discounts_export)

    templates = commands.add_parser("templates", help="preview message templates").add_subparsers(
        dest="templates_command", required=True, metavar="ACTION")
    templates.add_parser("list", help="every template and its languages").set_defaults(
        handler=cmd_templates_list)
    render = templates.add_parser("render", help="print one rendered message")
    render.add_argument("name")
    render.add_argument("--lang", default=None, help="language (default: the shop's default)")
    render.add_argument("--ticket", type=int, default=None, help="use this ticket's data")
    render.set_defaults(handler=cmd_templates_render)
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


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.mail.allocator import limit_arenas
    from daemon.runtime import service

    limit_arenas()
    if args.once:
        return asyncio.run(service.run_once(settings))
    return asyncio.run(service.run_forever(settings))


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer

    directories = dict.fromkeys(box.config.templates.directory for box in settings.each_mailbox())
    problems = [problem for directory in directories for problem in Renderer(directory).check()]
    for problem in problems:
        print(f"incidencias: template error: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    if args.connect:
        from daemon.runtime.connectivity import check_connections

        failures = check_connections(settings)
        for failure in failures:
            print(f"incidencias: {failure}", file=sys.stderr)
        if failures:
            return EXIT_FAILURE
    print(f"{settings.path}: configuration and templates are valid")
    return EXIT_OK


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    engine = db.make_engine(settings.config.database.url)
    db.upgrade(engine)
    print(f"database at revision {db.current_revision(engine)}")
    return EXIT_OK


def cmd_db_current(settings: Settings, _args: argparse.Namespace) -> int:
    engine = db.make_engine(settings.config.database.url)
    current, head = db.current_revision(engine), db.head_revision(engine)
    print(f"current: {current or '(empty)'}  head: {head}")
    return EXIT_OK if current == head else EXIT_FAILURE


def _open(settings: Settings) -> sessionmaker[Session]:
    from daemon.runtime.service import prepare_database

    return db.session_factory(prepare_database(settings))


def cmd_tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.views import list_tickets, ticket_table

    with _open(settings)() as session:
        found = list_tickets(session, args.status, args.limit)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else ticket_table(found))
    return EXIT_OK


def cmd_tickets_show(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.views import show_ticket, ticket_detail

    with _open(settings)() as session:
        found = show_ticket(session, args.number)
    if found is None:
        print(f"incidencias: no ticket #{args.number}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else ticket_detail(found))
    return EXIT_OK


def cmd_tickets_search(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.admin_views import search_tickets
    from daemon.storage.views import ticket_table

    if not args.text.strip():
        print("incidencias: tickets search: TEXT must not be empty", file=sys.stderr)
        return EXIT_USAGE
    with _open(settings)() as session:
        found = search_tickets(session, args.text, args.limit)
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        print(ticket_table(found) if found else f"no ticket mentions {args.text!r}")
    return EXIT_OK


def cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.admin_views import OUTBOX_COLUMNS, list_outbox, table

    with _open(settings)() as session:
        found = list_outbox(session, args.status, args.limit)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json
          else table(found, OUTBOX_COLUMNS, empty=f"no {args.status or 'unsent'} mail in the outbox"))
    return EXIT_OK


def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.retry import NotRetryable, retry, retry_all_failed
    from daemon.storage.models import utcnow

    with _open(settings).begin() as session:
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


def cmd_quarantine_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.admin_views import QUARANTINE_COLUMNS, list_quarantine, table

    with _open(settings)() as session:
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
    report = import_mbox(target, args.file, ProgressLine(sys.stderr, "messages"))
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


def cmd_templates_list(settings: Settings, _args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer

    renderer = Renderer(settings.config.templates.directory)
    for name in renderer.names():
        print(f"{name:24} {' '.join(renderer.languages(name))}")
    return EXIT_OK


def cmd_templates_render(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer
    from daemon.outbound.template_samples import sample_context

    renderer = Renderer(settings.config.templates.directory)
    if args.name not in renderer.names():
        print(f"incidencias: no template {args.name!r}; see `incidencias templates list`",
              file=sys.stderr)
        return EXIT_USAGE
    context = sample_context(args.name)
    shop = settings.config.shop
    context["shop"] = {"name": shop.name, "address": shop.address, "phone": shop.phone,
                       "web": shop.web, "signature": shop.signature}
    if args.ticket is not None:
        from daemon.storage.models import Ticket

        with _open(settings)() as session:
            ticket = session.get(Ticket, args.ticket)
            if ticket is None:
                print(f"incidencias: no ticket #{args.ticket}", file=sys.stderr)
                return EXIT_FAILURE
            context["ticket"] = {**context["ticket"], "number": ticket.id,
                                 "subject": ticket.subject, "customer_name": ticket.customer_name}
    language = args.lang or (settings.config.agents.language if args.name.startswith("agent_")
                             else shop.default_language)
    rendered = renderer.render(args.name, language, context, fallback_language=language)
    print(f"Subject: {rendered.subject}\nContent-Language: {language}\n\n{rendered.text}")
    return EXIT_OK


def cmd_tickets_close(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.runtime.service import build_mailboxes
    from daemon.storage.models import PendingClosing, Ticket, TicketStatus

    if args.discount is not None and not 0 <= args.discount <= 100:
        print("incidencias: --discount: expected a percent from 0 to 100", file=sys.stderr)
        return EXIT_USAGE
    boxes = {parts.lifecycle.config.mailbox: parts for parts in build_mailboxes(settings)}
    sessions = next(iter(boxes.values())).sessions
    with sessions.begin() as session:
        ticket = session.get(Ticket, args.number, with_for_update=True)
        if ticket is None:
            print(f"incidencias: no ticket #{args.number}", file=sys.stderr)
            return EXIT_FAILURE
        if ticket.status == TicketStatus.CLOSED:
            print(f"incidencias: ticket #{args.number} is already closed", file=sys.stderr)
            return EXIT_FAILURE
        parts = boxes.get(ticket.mailbox)
        if parts is None:
            print(f"incidencias: ticket #{args.number} belongs to mailbox {ticket.mailbox!r}, "
                  "which is not in the configuration", file=sys.stderr)
            return EXIT_FAILURE
        code = parts.lifecycle.close(session, ticket, percent=args.discount,
                                     no_discount=args.no_discount, personal_line=args.message)
    parts.lifecycle.settle_closings([args.number])
    with sessions() as session:
        pending = session.get(PendingClosing, args.number)
        if pending is not None:
            print(f"ticket #{args.number}: the closing waits for the shop to create coupon {code} "
                  f"({pending.last_error}); the daemon retries it and sends the closing email then")
            return EXIT_OK
    print(f"ticket #{args.number} closed" + (f" with discount code {code}" if code else "")
          + "; the closing email is in the outbox and goes out with the daemon's next delivery")
    return EXIT_OK


def cmd_discounts_export(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.tickets.discounts import export_csv

    with _open(settings)() as session:
        if args.output is None:
            rows = export_csv(session, sys.stdout, args.source)
        else:
            with args.output.open("w", newline="", encoding="utf-8") as out:
                rows = export_csv(session, out, args.source)
    print(f"{rows} code(s) exported", file=sys.stderr)
    return EXIT_OK
