"""`problems list/show/link/unlink/keywords/broadcast/close`: one incident, many tickets.

Everything a command changes and every mail it causes commit together; mail goes out with the
daemon's next delivery, from the outbox, like an agent's reply by email.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from daemon.runtime.service import Components
    from daemon.storage.models import Problem
    from daemon.tickets.problems.service import Problems


def register(commands: Commands) -> None:
    problems = commands.add_parser("problems", help="problems that affect several tickets") \
        .add_subparsers(dest="problems_command", required=True, metavar="ACTION")
    listing = problems.add_parser("list", help="problems, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    show = problems.add_parser("show", help="one problem: its fields, tickets and history")
    _name(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    link = problems.add_parser("link", help="link tickets to a problem (created when new)")
    _name(link)
    link.add_argument("numbers", type=int, nargs="+", metavar="N")
    link.add_argument("--title", default=None, help="title of a new problem (default: its name)")
    link.add_argument("--keywords", default=None, help='flag new tickets that mention these, '
                      'e.g. "seur, huelga, retraso"')
    link.set_defaults(handler=cmd_link)
    unlink = problems.add_parser("unlink", help="take a ticket out of its problem")
    unlink.add_argument("number", type=int, metavar="N")
    unlink.set_defaults(handler=cmd_unlink)
    keywords = problems.add_parser("keywords", help="set the words that flag new tickets")
    _name(keywords)
    keywords.add_argument("words", metavar="WORDS", help='comma-separated, e.g. "seur, huelga"')
    keywords.set_defaults(handler=cmd_keywords)
    broadcast = problems.add_parser("broadcast",
                                    help="one message to every open linked ticket's customer")
    _name(broadcast)
    broadcast.add_argument("--message-file", type=Path, required=True, metavar="FILE",
                           help="the text, as an agent would reply: optional commands at the "
                                "top, optional [es]/[fr]/[en] blocks")
    broadcast.add_argument("--agent", required=True, metavar="ADDRESS",
                           help="the agent who signs it (one of [agents] addresses)")
    broadcast.set_defaults(handler=cmd_broadcast)
    close = problems.add_parser("close", help="close every open linked ticket, then the problem")
    _name(close)
    discount = close.add_mutually_exclusive_group()
    discount.add_argument("--discount", type=int, metavar="P", help="discount percent (0-100)")
    discount.add_argument("--no-discount", action="store_true")
    close.add_argument("--message", default=None, help="a personal line for the closing emails")
    close.set_defaults(handler=cmd_close)


def _name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--mailbox", default=None,
                        help="the problem's mailbox, when several have a problem of that name")


class _Refused(Exception):
    """Nothing may be committed: the message says why."""


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.problem_views import list_problems, problem_table

    with open_sessions(settings)() as session:
        found = list_problems(session)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else problem_table(found))
    return EXIT_OK


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.problem_views import problem_detail, show_problem

    with open_sessions(settings)() as session:
        try:
            found = show_problem(session, _problem(session, args.name, args.mailbox))
        except _Refused as refused:
            return _fail(refused)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else problem_detail(found))
    return EXIT_OK


def cmd_link(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.models import Ticket
    from daemon.tickets.agents.commands import PROBLEM_NAME, split_keywords

    name = args.name.lower()
    if not PROBLEM_NAME.fullmatch(name):
        print("incidencias: problems link: NAME must be lower-case letters, digits and -",
              file=sys.stderr)
        return EXIT_USAGE
    boxes = _boxes(settings)
    try:
        with _sessions(boxes).begin() as session:
            tickets = [session.get(Ticket, n, with_for_update=True) for n in args.numbers]
            missing = [str(n) for n, t in zip(args.numbers, tickets, strict=True) if t is None]
            if missing:
                raise _Refused(f"no ticket #{', #'.join(missing)}")
            found = [t for t in tickets if t is not None]
            mailboxes = {t.mailbox for t in found}
            if len(mailboxes) > 1 or (args.mailbox and mailboxes != {args.mailbox}):
                raise _Refused("the tickets must all belong to one mailbox (the problem's)")
            problems = _service(boxes, mailboxes.pop())
            queued = problems.link(session, name, found, agent=None, title=args.title,
                                   keywords=split_keywords(args.keywords or "") or None)
    except _Refused as refused:
        return _fail(refused)
    print(f"linked {len(args.numbers)} ticket(s) to problem {name}; {queued} mail(s) to agents "
          "queued")
    return EXIT_OK


def cmd_unlink(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.storage.models import Ticket

    boxes = _boxes(settings)
    with _sessions(boxes).begin() as session:
        ticket = session.get(Ticket, args.number, with_for_update=True)
        if ticket is None or ticket.problem is None:
            print(f"incidencias: ticket #{args.number} is not linked to a problem",
                  file=sys.stderr)
            return EXIT_FAILURE
        name = ticket.problem.name
        _service(boxes, ticket.mailbox).unlink(session, ticket, None)
    print(f"ticket #{args.number} unlinked from problem {name}")
    return EXIT_OK


def cmd_keywords(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.tickets.agents.commands import split_keywords

    boxes = _boxes(settings)
    try:
        with _sessions(boxes).begin() as session:
            problem = _problem(session, args.name, args.mailbox)
            words = split_keywords(args.words)
            _service(boxes, problem.mailbox).set_keywords(session, problem, words, None)
    except _Refused as refused:
        return _fail(refused)
    print(f"problem {args.name}: keywords {', '.join(words) or '(none)'}")
    return EXIT_OK


def cmd_broadcast(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = args.message_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"incidencias: --message-file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    agent = args.agent.strip().lower()
    boxes = _boxes(settings)
    try:
        with _sessions(boxes).begin() as session:
            problem = _problem(session, args.name, args.mailbox)
            parts = boxes[problem.mailbox]
            if agent not in [a.lower() for a in parts.mailer.config.agents.addresses]:
                raise _Refused(f"--agent: {args.agent} is not one of the mailbox's agents")
            if problem.state != "open":
                raise _Refused(f"problem {problem.name} is closed")
            done = _service(boxes, problem.mailbox).reply(
                session, problem, text, agent=agent,
                agent_name=agent.partition("@")[0].capitalize())
            if done.errors:
                raise _Refused("nothing sent:\n" + "\n".join(
                    f"  {e.line}: {e.message}" for e in done.errors))
    except _Refused as refused:
        return _fail(refused)
    fallbacks = [f"#{s.number} ({s.language} got [{s.version}])" for s in done.sent if s.fallback]
    print(f"problem {args.name}: {len(done.sent)} mail(s) to customers queued"
          + (f", {len(done.closed)} ticket(s) closed" if done.closed else "")
          + (f"; fallback version: {', '.join(fallbacks)}" if fallbacks else "")
          + (f"; not sent: {', '.join(f'#{s.number} ({s.reason})' for s in done.skipped)}"
             if done.skipped else ""))
    return EXIT_OK


def cmd_close(settings: Settings, args: argparse.Namespace) -> int:
    if args.discount is not None and not 0 <= args.discount <= 100:
        print("incidencias: --discount: expected a percent from 0 to 100", file=sys.stderr)
        return EXIT_USAGE
    boxes = _boxes(settings)
    try:
        with _sessions(boxes).begin() as session:
            problem = _problem(session, args.name, args.mailbox)
            if problem.state != "open":
                raise _Refused(f"problem {problem.name} is already closed")
            mailbox = problem.mailbox
            closed, _ = _service(boxes, mailbox).close(
                session, problem, agent=None, percent=args.discount,
                no_discount=args.no_discount, personal_line=lambda _: args.message)
    except _Refused as refused:
        return _fail(refused)
    # Coupons from the shop's platform are confirmed after the commit, as for `tickets close`.
    boxes[mailbox].lifecycle.settle_closings([number for number, _ in closed])
    print(f"problem {args.name} closed; {len(closed)} ticket(s) closed, each with its closing "
          "email in the outbox")
    return EXIT_OK


def _boxes(settings: Settings) -> dict[str, Components]:
    from daemon.runtime.service import build_mailboxes

    return {parts.lifecycle.config.mailbox: parts for parts in build_mailboxes(settings)}


def _sessions(boxes: dict[str, Components]) -> sessionmaker[Session]:
    return next(iter(boxes.values())).sessions


def _service(boxes: dict[str, Components], mailbox: str) -> Problems:
    parts = boxes.get(mailbox)
    if parts is None:
        raise _Refused(f"mailbox {mailbox!r} is not in the configuration")
    return parts.ingestor.agent_replies.problems


def _problem(session: Session, name: str, mailbox: str | None) -> Problem:
    from sqlalchemy import select

    from daemon.storage.models import Problem

    query = select(Problem).where(Problem.name == name.lower())
    if mailbox:
        query = query.where(Problem.mailbox == mailbox)
    found = list(session.scalars(query))
    if not found:
        raise _Refused(f"no problem {name!r}")
    if len(found) > 1:
        raise _Refused(f"several mailboxes have a problem {name!r}: give --mailbox")
    return found[0]


def _fail(refused: _Refused) -> int:
    print(f"incidencias: {refused}", file=sys.stderr)
    return EXIT_FAILURE
