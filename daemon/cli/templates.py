"""`templates list/render`: previews of the mail incidencias writes."""

from __future__ import annotations

import argparse
import sys

from daemon.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, open_sessions
from daemon.config import Settings


def register(commands: Commands) -> None:
    templates = commands.add_parser("templates", help="preview message templates").add_subparsers(
        dest="templates_command", required=True, metavar="ACTION")
    templates.add_parser("list", help="every template and its languages").set_defaults(
        handler=cmd_templates_list)
    render = templates.add_parser("render", help="print one rendered message")
    render.add_argument("name")
    render.add_argument("--lang", default=None, help="language (default: the shop's default)")
    render.add_argument("--ticket", type=int, default=None, help="use this ticket's data")
    render.set_defaults(handler=cmd_templates_render)


def cmd_templates_list(settings: Settings, _args: argparse.Namespace) -> int:
    from daemon.outbound.rendering import Renderer

    renderer = Renderer(settings.config.templates.directory)
    for name in renderer.names():
        print(f"{name:24} {' '.join(renderer.languages(name))}")
    return EXIT_OK


def cmd_templates_render(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.outbound.queue import shop_context
    from daemon.outbound.rendering import Renderer
    from daemon.outbound.template_samples import sample_context

    renderer = Renderer(settings.config.templates.directory)
    if args.name not in renderer.names():
        print(f"incidencias: no template {args.name!r}; see `incidencias templates list`",
              file=sys.stderr)
        return EXIT_USAGE
    context = sample_context(args.name)
    shop = settings.config.shop
    context["shop"] = shop_context(shop)
    if args.ticket is not None:
        from daemon.storage.models import Ticket

        with open_sessions(settings)() as session:
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
