"""`faq test`: which `[[faq]]` entries a customer's text would get in the acknowledgement, and why."""

from __future__ import annotations

import argparse
import json

from daemon.cli.common import EXIT_OK, EXIT_USAGE, Commands
from daemon.config import Settings


def register(commands: Commands) -> None:
    faq = commands.add_parser("faq", help="self-help answers ([[faq]])").add_subparsers(
        dest="faq_command", required=True, metavar="ACTION")
    test = faq.add_parser("test", help="which entries a customer's text matches")
    test.add_argument("text", help="the customer's text")
    test.add_argument("--lang", default=None,
                      help="the ticket's language (default: detected as for a new ticket)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_faq_test)


def cmd_faq_test(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.mail.language import detect_language
    from daemon.tickets.self_help import match_faq

    config = settings.config
    shop = config.shop
    language = (args.lang or "").lower() or detect_language(
        args.text, shop.languages, None, shop.default_language,
        low_memory=shop.language_detection == "light")
    if language not in shop.languages:
        print(f"incidencias: faq test: --lang {language!r} is not in [shop] languages "
              f"{shop.languages}")
        return EXIT_USAGE
    matches = match_faq(args.text, language, config.faq)
    if args.json:
        print(json.dumps({"language": language,
                          "matches": [{"name": m.name, "keywords": list(m.keywords)}
                                      for m in matches]}, ensure_ascii=False))
        return EXIT_OK
    if not config.faq:
        print("no [[faq]] entries in the config: the acknowledgement is the plain one")
    elif not matches:
        print(f"language {language}: no entry matches; the acknowledgement is the plain one")
    for rank, match in enumerate(matches, start=1):
        print(f"{rank}. {match.name} (language {language}): matched "
              + ", ".join(f"“{k}”" for k in match.keywords))
    return EXIT_OK
