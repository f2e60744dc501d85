"""The commands an agent writes at the top of a reply, parsed into data; nothing here touches a ticket.

A command block is the run of lines at the very top of the reply that start with `#` followed by a
letter (`#2` or `# heading` are ordinary text). Everything after the block is the body. Names are
case-insensitive and have Spanish aliases. Parsing is all-or-nothing: any bad line makes an error
for the agent, and the caller then applies none of the commands, so a typo never half-changes a
ticket or leaks text to the customer.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALIASES: dict[str, str] = {
    "note": "note", "nota": "note",  # French: "note" as well
    "close": "close", "cerrar": "close", "fermer": "close", "clore": "close",
    "wait": "wait", "esperar": "wait", "attendre": "wait",
    "assign": "assign", "asignar": "assign", "assigner": "assign", "attribuer": "assign",
    "tag": "tag", "etiqueta": "tag", "etiquette": "tag",
    "lang": "lang", "idioma": "lang", "langue": "lang",
    "status": "status", "estado": "status", "statut": "status",
    "reopen": "reopen", "reabrir": "reopen", "rouvrir": "reopen",
    "help": "help", "ayuda": "help", "aide": "help",
    "promise": "promise", "prometer": "promise", "promettre": "promise",
    "done": "done", "hecho": "done", "fait": "done",
    "waiting": "waiting", "pendiente": "waiting", "en-attente": "waiting",
    "answer": "answer", "respuesta": "answer", "reponse": "answer",
    "answers": "answers", "respuestas": "answers", "reponses": "answers",
    "order": "order", "pedido": "order", "commande": "order",
    "problem": "problem", "problema": "problem", "probleme": "problem",
}

#: How each command is written, for the help footer; the Spanish and French aliases follow.
SYNTAX: tuple[tuple[str, str, str], ...] = (
    ("note", "nota", "#note / #nota <text>: internal note, copied to agents, never sent to the customer"),
    ("close", "cerrar", "#close / #cerrar / #fermer [15%] [nodiscount] [text]: close with thanks and "
                        "a discount code"),
    ("wait", "esperar", "#wait / #esperar / #attendre <3d | 2026-12-01 | tomorrow | monday>: pause "
                        "updates until then"),
    ("promise", "prometer", "#promise / #prometer / #promettre <when> <text>: remind agents of a "
                            "commitment when due"),
    ("done", "hecho", "#done / #hecho / #fait: the open promises on this ticket are kept"),
    ("waiting", "pendiente", "#waiting / #pendiente / #en-attente: we wait for the customer's answer"),
    ("assign", "asignar", "#assign / #asignar / #assigner <agent>: assign the ticket"),
    ("tag", "etiqueta", "#tag / #etiqueta / #étiquette <word>: add a tag"),
    ("lang", "idioma", "#lang / #idioma / #langue <code>: language of the mail to the customer"),
    ("status", "estado", "#status / #estado / #statut <text>: status line the customer sees in updates"),
    ("reopen", "reabrir", "#reopen / #reabrir / #rouvrir: reopen a closed ticket"),
    ("answer", "respuesta", "#answer / #respuesta / #réponse <name> [lang]: a quick answer to the "
                            "customer, in their language"),
    ("answers", "respuestas", "#answers / #respuestas / #réponses: the list of quick answers by email"),
    ("order", "pedido", "#order / #pedido / #commande <number> (or -<number>): add (remove) an "
                        "order number"),
    ("problem", "problema", "#problem / #problema / #problème <name> [title]: this ticket is one "
                          "case of that problem (created when new; a next line `keywords: a, b` "
                          "flags new tickets that mention them); #problem - unlinks it"),
    ("help", "ayuda", "#help / #ayuda / #aide: these instructions by email"),
)

CONFLICTS: tuple[frozenset[str], ...] = (
    frozenset({"close", "reopen"}),
    frozenset({"close", "waiting"}),
    frozenset({"close", "wait"}),
    frozenset({"close", "answer"}),
)

NO_DISCOUNT = {"nodiscount", "no-discount", "sindescuento", "sin-descuento"}
TOMORROW = {"tomorrow", "mañana", "manana", "demain"}
WEEKDAY_NAMES: dict[str, int] = {}
for _index, _names in enumerate((
        ("monday", "lunes", "lundi"), ("tuesday", "martes", "mardi"),
        ("wednesday", "miercoles", "mercredi"), ("thursday", "jueves", "jeudi"),
        ("friday", "viernes", "vendredi"), ("saturday", "sabado", "samedi"),
        ("sunday", "domingo", "dimanche"))):
    for _name in _names:
        WEEKDAY_NAMES[_name] = _index
        WEEKDAY_NAMES[_name[:3]] = _index

DURATION = re.compile(r"^(\d{1,4})\s?(s|m|min|h|d|w)$")
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
DAY_MONTH = re.compile(r"^(\d{1,2})/(\d{1,2})(?:/(\d{4}))?$")
ORDER_NUMBER = re.compile(r"^(-)?#?([A-Za-z0-9][A-Za-z0-9-]{0,39})$")
CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2})|h(\d{2})?)$")
PERCENT = re.compile(r"^(\d{1,3})%$")
ANSWER_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
COMMAND_LINE = re.compile(r"^#([^\W\d_][\w-]*)(?:\s+(.*))?$")
PROBLEM_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
KEYWORDS_LINE = re.compile(r"^(?:keywords|palabras(?:\s+clave)?|mots[\s-]cl[eé]s)\s*:\s*(.*)$",
                           re.IGNORECASE)
START_OF_DAY = time(9, 0)
FURTHEST = timedelta(days=366)


@dataclass(frozen=True)
class Command:
    name: str
    line: str
    argument: str = ""
    until: datetime | None = None
    percent: int | None = None
    no_discount: bool = False
    text: str = ""
    language: str = ""
    remove: bool = False
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandError:
    line: str
    message: str


@dataclass(frozen=True)
class ParsedReply:
    commands: list[Command] = field(default_factory=list)
    errors: list[CommandError] = field(default_factory=list)
    body: str = ""
    is_note: bool = False


class _Bad(Exception):
    pass


def command_help() -> list[str]:
    return [line for _, _, line in SYNTAX]


def parse_reply(text: str, *, now: datetime, timezone: str, languages: Sequence[str],
                agents: Collection[str], reasons: Sequence[str] = ()) -> ParsedReply:
    """Split an agent's visible text into its command block and its body.

    `reasons` (`[reasons] known`), when given, are the only tags accepted, so the report's
    counts by reason stay clean; an unknown one is an error naming the closest known ones.

    `now` is naive UTC like every time in the database; dates an agent writes are read in the
    shop's `timezone`, and a date without a time means the start of that business day (09:00).
    """
    lines = text.splitlines()
    commands: list[Command] = []
    errors: list[CommandError] = []
    is_note = False
    body_start: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        match = COMMAND_LINE.match(line)
        if match is None:
            break
        index += 1
        word, argument = match.group(1), (match.group(2) or "").strip()
        name = ALIASES.get(_fold(word))
        if name is None:
            errors.append(CommandError(line, f"unknown command #{word}"))
            continue
        if name == "note":
            is_note = True
            if argument:
                body_start.append(argument)
            break
        try:
            commands.extend(_command(name, line, argument, now=now, timezone=timezone,
                                     languages=languages, agents=agents, reasons=reasons))
        except _Bad as error:
            errors.append(CommandError(line, str(error)))
            continue
        if name == "problem" and index < len(lines):
            keywords = KEYWORDS_LINE.match(lines[index].strip())
            if keywords is not None:
                index += 1
                found = split_keywords(keywords.group(1))
                if not found:
                    errors.append(CommandError(lines[index - 1].strip(),
                                               "keywords: needs words, for example "
                                               "keywords: seur, huelga, retraso"))
                commands[-1] = replace(commands[-1], keywords=found)
    errors.extend(_conflicts(commands))
    if is_note and any(c.name == "answer" for c in commands):
        errors.append(CommandError("#answer #note", "#answer sends to the customer and #note never "
                                                    "does: they cannot go in the same reply"))
    body = "\n".join([*body_start, *lines[index:]]).strip()
    return ParsedReply(commands=commands, errors=errors, body=body, is_note=is_note)


def _command(name: str, line: str, argument: str, *, now: datetime, timezone: str,
             languages: Sequence[str], agents: Collection[str],
             reasons: Sequence[str] = ()) -> list[Command]:
    if name == "close":
        return [_close(line, argument)]
    if name in ("wait", "promise"):
        if not argument:
            raise _Bad(f"#{name} needs a date or a duration, for example 3d or 2026-12-01")
        until, rest = read_when(argument.split(), now=now, timezone=timezone)
        if name == "promise" and not rest:
            raise _Bad("#promise needs what was promised after the date, for example: "
                       "#promise tomorrow 10:00 call the customer")
        if name == "wait" and rest:
            raise _Bad(f"#wait takes only a date or a duration, not {rest!r}")
        return [Command(name, line, argument, until=until, text=rest)]
    if name == "assign":
        return [Command(name, line, argument, text=_agent(argument, agents))]
    if name == "tag":
        words = argument.lower().split()
        if not words:
            raise _Bad("#tag needs a word, for example #tag refund")
        return [Command(name, line, argument, text=_reason(word, reasons)) for word in words]
    if name == "lang":
        code = argument.lower()
        if code not in languages:
            raise _Bad(f"#lang needs one of: {', '.join(languages)}")
        return [Command(name, line, argument, text=code)]
    if name == "order":
        return [_order(line, argument)]
    if name == "problem":
        return [_problem(line, argument)]
    if name == "answer":
        return [_answer(line, argument)]
    if name == "status":
        if not argument:
            raise _Bad("#status needs the text the customer will read, for example "
                       "#status the carrier is looking for the parcel")
        return [Command(name, line, argument, text=argument)]
    return [Command(name, line, argument)]


def _close(line: str, argument: str) -> Command:
    words = argument.split()
    percent: int | None = None
    no_discount = False
    while words:
        head = words[0].lower()
        percent_match = PERCENT.match(head)
        if percent_match:
            percent = int(percent_match.group(1))
            if not 1 <= percent <= 100:
                raise _Bad("the discount must be between 1% and 100%")
        elif head in NO_DISCOUNT:
            no_discount = True
        else:
            break
        words.pop(0)
    if percent is not None and no_discount:
        raise _Bad("#close cannot have both a discount and nodiscount")
    return Command("close", line, argument, percent=percent, no_discount=no_discount,
                   text=" ".join(words))


def _problem(line: str, argument: str) -> Command:
    """`#problem NAME [title]`, or `#problem -` to unlink; the name is kept in lower case."""
    name, _, title = argument.partition(" ")
    if name == "-":
        if title.strip():
            raise _Bad("#problem - takes nothing after the dash")
        return Command("problem", line, "-")
    name = name.lower()
    if not PROBLEM_NAME.fullmatch(name):
        raise _Bad("#problem needs a name of lower-case letters, digits and -, for example "
                   "#problem huelga-transporte Huelga de transportes; #problem - unlinks")
    return Command("problem", line, name, text=title.strip())


def split_keywords(text: str) -> tuple[str, ...]:
    """`seur, huelga, retraso` → its words and phrases, lower case, each once."""
    return tuple(dict.fromkeys(w.strip().lower() for w in text.split(",") if w.strip()))


def _order(line: str, argument: str) -> Command:
    """`#order 4411` adds the number to the ticket, `#order -4411` takes it away."""
    match = ORDER_NUMBER.match(argument.strip())
    if match is None:
        raise _Bad("#order needs one order number, for example #order 4411, or #order -4411 to "
                   "remove it")
    return Command("order", line, argument, text=match.group(2), remove=bool(match.group(1)))


def _answer(line: str, argument: str) -> Command:
    words = argument.lower().split()
    if not words or len(words) > 2:
        raise _Bad("#answer needs the name of a quick answer and optionally a language, for example "
                   "#answer delay or #answer delay fr (#answers lists them)")
    if not ANSWER_NAME.match(words[0]):
        raise _Bad(f"{words[0]!r} is not an answer name: lower-case letters, digits and -")
    if len(words) == 2 and not LANGUAGE_CODE.match(words[1]):
        raise _Bad(f"{words[1]!r} is not a language code, for example es, fr or en")
    return Command("answer", line, argument, text=words[0],
                   language=words[1] if len(words) == 2 else "")


def _reason(word: str, known: Sequence[str]) -> str:
    """The known reason `word` names (accents optional); any tag when no reasons are configured."""
    if not known:
        return word
    folded = {_fold(reason): reason for reason in known}
    if _fold(word) in folded:
        return folded[_fold(word)]
    close = difflib.get_close_matches(_fold(word), list(folded), n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join('#tag ' + folded[c] for c in close)}?" if close
            else f"known reasons: {', '.join(known)}")
    raise _Bad(f"{word} is not a known reason; {hint}")


def _agent(argument: str, agents: Collection[str]) -> str:
    wanted = argument.strip().lower()
    if not wanted:
        raise _Bad("#assign needs an agent, for example #assign ana")
    for address in agents:
        if wanted in (address.lower(), address.lower().partition("@")[0]):
            return address.lower()
    raise _Bad(f"{argument} is not an agent; agents are: {', '.join(sorted(agents))}")


def _conflicts(commands: list[Command]) -> list[CommandError]:
    names = [c.name for c in commands]
    errors = []
    for pair in CONFLICTS:
        if pair <= set(names):
            first, second = sorted(pair)
            errors.append(CommandError(f"#{first} #{second}",
                                       f"#{first} and #{second} cannot go in the same reply"))
    for name in sorted({n for n in names if n not in ("tag", "answer", "order") and names.count(n) > 1}):
        errors.append(CommandError(f"#{name}", f"#{name} appears more than once"))
    return errors


def read_when(words: list[str], *, now: datetime, timezone: str) -> tuple[datetime, str]:
    """Read a moment from the front of `words`; returns it as naive UTC and the words left over."""
    if not words:
        raise _Bad("a date or a duration is missing")
    zone = ZoneInfo(timezone)
    head = _fold(words[0])
    duration = DURATION.match(head)
    if duration:
        amount = int(duration.group(1)) * UNITS[duration.group(2)]
        if amount <= 0:
            raise _Bad(f"{words[0]} is not in the future")
        until = now + timedelta(seconds=amount)
        rest = words[1:]
    else:
        local_now = now.replace(tzinfo=UTC).astimezone(zone)
        day = _day(head, local_now.date())
        rest = words[1:]
        at = START_OF_DAY
        if rest:
            clock = _clock(rest[0])
            if clock is not None:
                at, rest = clock, rest[1:]
        until = datetime.combine(day, at, zone).astimezone(UTC).replace(tzinfo=None)
    if until <= now:
        raise _Bad(f"{' '.join(words[:1])} is in the past")
    if until - now > FURTHEST:
        raise _Bad(f"{words[0]} is more than a year away")
    return until, " ".join(rest)


def _day(word: str, today: date) -> date:
    if word in TOMORROW:
        return today + timedelta(days=1)
    if word in WEEKDAY_NAMES:
        ahead = (WEEKDAY_NAMES[word] - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead)
    try:
        iso = ISO_DATE.match(word)
        if iso:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        numeric = DAY_MONTH.match(word)
        if numeric:
            day, month = int(numeric.group(1)), int(numeric.group(2))
            if numeric.group(3):
                return date(int(numeric.group(3)), month, day)
            candidate = date(today.year, month, day)
            return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError as error:
        raise _Bad(f"{word} is not a valid date") from error
    raise _Bad(f"{word} is not a date or a duration (examples: 3d, 4h, 2026-12-01, 1/12, "
               "tomorrow, monday)")


def _clock(word: str) -> time | None:
    match = CLOCK.match(word.lower())
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or match.group(3) or 0)
    if hour > 23 or minute > 59:
        raise _Bad(f"{word} is not a valid time")
    return time(hour, minute)


def _fold(word: str) -> str:
    """Lower case without accents, so `#miércoles` and `#MIERCOLES` read the same."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) or c == "\u0303")
    return unicodedata.normalize("NFC", kept)
