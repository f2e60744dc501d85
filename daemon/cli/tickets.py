"""`tickets list/show/search/close`: tickets as people and scripts see them."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
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
    search = tickets.add_parser("search",
                                help="tickets whose subject, customer, orders or messages contain TEXT")
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


def cmd_tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.views import list_tickets, ticket_table

    with open_sessions(settings)() as session:
        found = list_tickets(session, args.status, args.limit)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else ticket_table(found))
    return EXIT_OK


def cmd_tickets_show(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.views import show_ticket, ticket_detail

    with open_sessions(settings)() as session:
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
    with open_sessions(settings)() as session:
        found = search_tickets(session, args.text, args.limit)
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        print(ticket_table(found) if found else f"no ticket mentions {args.text!r}")
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
