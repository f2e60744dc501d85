"""The daemon itself: `run`, `check-config` and the database schema (`db upgrade`, `db current`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands
from daemon.config import Settings
from daemon.storage import db


def register(commands: Commands) -> None:
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


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.mail.allocator import limit_arenas
    from daemon.mail.language import load_models

    limit_arenas()
    if not args.once:
        # Before the runtime is imported and built: the daemon's peak memory is the moment the
        # models load, and the first customer does not wait for them.
        for box in settings.each_mailbox():
            shop = box.config.shop
            load_models(shop.languages, low_memory=shop.language_detection == "light")
    from daemon.runtime import service

    if args.once:
        return asyncio.run(service.run_once(settings))
    return asyncio.run(service.run_forever(settings))


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer

    directories = dict.fromkeys(box.config.templates.directory for box in settings.each_mailbox())
    problems = [problem for directory in directories for problem in Renderer(directory).check()]
    problems += [problem for box in settings.each_mailbox()
                 for problem in Renderer(box.config.templates.directory).check_faq(
                     box.config.faq, box.config.shop.languages)]
    problems = list(dict.fromkeys(problems))
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
    print("retention: " + "; ".join(settings.config.retention.policy_lines()))
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
