"""`answers list/render`: the quick answers agents send with `#answer NAME`, as the daemon sees them."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    answers = commands.add_parser("answers", help="the quick answers agents send with #answer"
                                  ).add_subparsers(dest="answers_command", required=True,
                                                   metavar="ACTION")
    listing = answers.add_parser("list", help="every answer, its languages and its first line")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_answers_list)
    render = answers.add_parser("render", help="print one answer as a customer would read it")
    render.add_argument("name")
    render.add_argument("--lang", required=True, help="language of the version to render")
    render.add_argument("--ticket", type=int, default=None, help="use this ticket's data")
    render.set_defaults(handler=cmd_answers_render)


def cmd_answers_list(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer

    config = settings.config
    book = Renderer(config.templates.directory).answers()
    summaries = book.summaries([config.agents.language, config.shop.default_language])
    if args.json:
        print(json.dumps([{"name": s.name, "languages": list(s.languages),
                           "first_line": s.first_line} for s in summaries],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    for summary in summaries:
        print(f"{summary.name:20} {','.join(summary.languages):12} {summary.first_line}")
    return EXIT_OK


def cmd_answers_render(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.queue import shop_context
    from daemon.outbound.rendering import Renderer, TemplateError
    from daemon.outbound.template_samples import answer_context

    config = settings.config
    renderer = Renderer(config.templates.directory)
    book = renderer.answers()
    languages = book.languages(args.name)
    if not languages:
        close = book.closest(args.name)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        print(f"incidencias: no answer {args.name!r}{hint}; see `incidencias answers list`",
              file=sys.stderr)
        return EXIT_USAGE
    if args.lang not in languages:
        print(f"incidencias: {args.name!r} has no {args.lang!r} version; it exists in: "
              f"{', '.join(languages)}", file=sys.stderr)
        return EXIT_USAGE
    shop = config.shop
    context = answer_context()
    context["shop"] = shop_context(shop)
    if args.ticket is not None:
        from daemon.storage.models import Ticket
        from daemon.tickets.agents.replies import answer_context as ticket_context

        with open_sessions(settings)() as session:
            ticket = session.get(Ticket, args.ticket)
            if ticket is None:
                print(f"incidencias: no ticket #{args.ticket}", file=sys.stderr)
                return EXIT_FAILURE
            context = ticket_context(session, ticket, shop=context["shop"],
                                     timezone=shop.timezone, agent_name=context["agent_name"])
    try:
        print(renderer.render_answer(args.name, args.lang, context), end="")
    except TemplateError as error:
        print(f"incidencias: template error: {error.problem}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
