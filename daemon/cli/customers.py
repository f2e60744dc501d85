"""`customers export/forget`: a person's data handed over (GDPR art. 15) or erased (art. 17).

`forget` works in steps that a second run completes after a crash at any point: the person's
copies on the IMAP server go first (found through the Message-IDs the database still holds), then
the database in one transaction, then the files are compacted so the erased bytes are gone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands
from daemon.config import Settings

_ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")


def register(commands: Commands) -> None:
    customers = commands.add_parser(
        "customers", help="a customer's personal data: export it, erase it").add_subparsers(
        dest="customers_command", required=True, metavar="ACTION")
    export = customers.add_parser("export", help="a zip of everything held about EMAIL")
    export.add_argument("email", metavar="EMAIL")
    export.add_argument("-o", "--output", type=Path, default=None,
                        help="the zip to write (default: personal-data-EMAIL.zip)")
    export.set_defaults(handler=cmd_customers_export)
    forget = customers.add_parser("forget", help="erase what identifies EMAIL")
    forget.add_argument("email", metavar="EMAIL")
    forget.add_argument("--dry-run", action="store_true", help="only say what would be erased")
    forget.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    forget.set_defaults(handler=cmd_customers_forget)


def _address(value: str) -> str | None:
    address = value.strip().lower()
    if _ADDRESS.match(address):
        return address
    print(f"incidencias: customers: {value!r} is not an email address", file=sys.stderr)
    return None


def cmd_customers_export(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.cli.common import open_sessions
    from daemon.storage.models import utcnow
    from daemon.tickets.privacy.export import build_export
    from daemon.tickets.privacy.holdings import find_holdings

    address = _address(args.email)
    if address is None:
        return EXIT_USAGE
    shop = settings.config.shop
    with open_sessions(settings)() as session:
        found = find_holdings(session, address)
        data = build_export(session, found, shop.name, shop.default_language, utcnow())
    output: Path = args.output or Path(f"personal-data-{address}.zip")
    output.write_bytes(data)
    print(f"{output}: {len(found.tickets)} ticket(s), {len(found.own_raw)} mail(s) received from "
          f"{address}" + ("" if found.tickets or found.own_raw else " (nothing is held)"))
    return EXIT_OK


def cmd_customers_forget(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.runtime.service import prepare_database
    from daemon.storage import db
    from daemon.storage.models import utcnow
    from daemon.tickets.privacy.erasure import forget
    from daemon.tickets.privacy.holdings import find_holdings

    address = _address(args.email)
    if address is None:
        return EXIT_USAGE
    engine = prepare_database(settings)
    sessions = db.session_factory(engine)
    with sessions() as session:
        found = find_holdings(session, address)
    copies = _imap(settings, address, found.own_message_ids, delete=False)
    if copies is None:
        return EXIT_FAILURE
    print(f"{address}: {len(found.customer_tickets)} ticket(s) as customer, "
          f"{len(found.participant_tickets)} more as participant, {len(found.own_messages)} "
          f"message(s) written, {len(found.own_raw) + len(found.naming_raw)} raw mail(s), "
          f"{len(found.outbox)} outbox mail(s), {copies} copy(ies) in the IMAP folders")
    if args.dry_run:
        print("dry run: nothing erased")
        return EXIT_OK
    if not args.yes and not _confirmed(address):
        return EXIT_USAGE if not sys.stdin.isatty() else EXIT_FAILURE
    deleted = _imap(settings, address, found.own_message_ids, delete=True)
    if deleted is None:
        return EXIT_FAILURE
    with sessions.begin() as session:
        counts = forget(session, find_holdings(session, address), utcnow(), imap_copies=deleted)
    warning = db.compact(engine)
    engine.dispose()
    print(f"erased: {counts.tickets} ticket(s) pseudonymised, {counts.messages} message(s), "
          f"{counts.raw_mails} raw mail(s), {counts.attachments} attachment(s), {counts.outbox} "
          f"outbox mail(s), {counts.imap_copies} IMAP copy(ies)")
    if warning:
        print(f"incidencias: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _confirmed(address: str) -> bool:
    if not sys.stdin.isatty():
        print("incidencias: customers forget: not on a terminal; give --yes to erase from a script",
              file=sys.stderr)
        return False
    answer = input(f"Erase the personal data of {address}? This cannot be undone. Type yes: ")
    if answer.strip().lower() != "yes":
        print("nothing erased")
        return False
    return True


def _imap(settings: Settings, address: str, message_ids: tuple[str, ...], delete: bool) -> int | None:
    """The person's copies in every mailbox's folders: counted, or deleted; None if IMAP failed."""
    from daemon.inbound.folder_cleanup import FolderCleanup
    from daemon.inbound.imap import ImapInbox

    if not message_ids:
        return 0
    total = 0
    for box in settings.each_mailbox():
        password = box.secrets.imap_password
        inbox = ImapInbox(box.config.imap, password.get_secret_value() if password else None)
        try:
            inbox.connect()
            cleanup = FolderCleanup(inbox)
            if delete:
                total += cleanup.delete_copies_from(address, message_ids)
            else:
                total += sum(len(cleanup.copies_from(folder, address, message_ids))
                             for folder in cleanup.folders)
        except Exception as exc:
            print(f"incidencias: mailbox {box.config.mailbox}: IMAP: {exc}; nothing erased in the "
                  "database, run the command again when the server answers", file=sys.stderr)
            return None
        finally:
            inbox.close()
    return total
