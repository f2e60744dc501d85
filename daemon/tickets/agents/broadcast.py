"""What an agent's reply to a problem mail says to each customer: per-language versions, pure.

A reply may hold one version per language, each opened by a line of its own such as `[es]`,
`[fr]` or `[en]`. Each customer gets the version in their language, else the first one, and the
caller tells the agent who got that fallback. A reply without such lines is one version for all.
Mistakes that would send someone the wrong words (text before the first block, a language given
twice, an empty block) are errors: the caller sends nothing and explains.

Which commands a problem reply may carry is decided here too: those that make sense for every
linked ticket at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.tickets.agents.commands import Command, CommandError

LANGUAGE_LINE = re.compile(r"^\s*\[([a-zA-Z]{2})\]\s*$")
PROBLEM_COMMANDS = frozenset({"status", "wait", "note", "close", "answer", "help"})


@dataclass(frozen=True)
class Version:
    """The text one customer gets: `language` is the block's ("" when the reply has no blocks),
    `fallback` is True when the customer's language had no block of its own."""

    text: str
    language: str
    fallback: bool


@dataclass(frozen=True)
class Versions:
    blocks: tuple[tuple[str, str], ...]
    errors: tuple[str, ...] = ()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(language for language, _ in self.blocks if language)

    def for_language(self, language: str) -> Version:
        """The block in `language`, else the first block, marked as a fallback."""
        if not self.blocks:
            return Version("", "", False)
        for block_language, text in self.blocks:
            if block_language == language:
                return Version(text, block_language, False)
        first_language, first_text = self.blocks[0]
        return Version(first_text, first_language, bool(first_language))


def split_versions(body: str) -> Versions:
    """The reply's body cut at its `[xx]` lines; without any, one version for every customer."""
    lines = body.splitlines()
    starts = [(index, match.group(1).lower()) for index, line in enumerate(lines)
              if (match := LANGUAGE_LINE.match(line))]
    if not starts:
        text = body.strip()
        return Versions((("", text),) if text else ())
    errors: list[str] = []
    if "\n".join(lines[:starts[0][0]]).strip():
        errors.append(f"there is text before the first [{starts[0][1]}] line: it would reach "
                      "nobody; put it inside a language block")
    blocks: list[tuple[str, str]] = []
    for position, (index, language) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        text = "\n".join(lines[index + 1:end]).strip()
        if any(language == seen for seen, _ in blocks):
            errors.append(f"[{language}] appears more than once")
        elif not text:
            errors.append(f"the [{language}] block is empty")
        blocks.append((language, text))
    return Versions(tuple(blocks), tuple(errors))


def problem_command_errors(commands: Sequence[Command]) -> list[CommandError]:
    """Commands that act on one ticket only, refused on a problem's thread."""
    allowed = ", ".join(f"#{name}" for name in sorted(PROBLEM_COMMANDS))
    return [CommandError(c.line, f"#{c.name} works on a ticket, not on a problem; on a "
                                 f"problem's thread you can use {allowed}")
            for c in commands if c.name not in PROBLEM_COMMANDS]


def names_in_text(text: str, people: Sequence[tuple[str, str]]) -> list[str]:
    """Which of these customers (name, address) the text names: a broadcast goes to all of them,
    so one customer's name or address in it would reach the others."""
    folded = text.casefold()
    found = []
    for name, address in people:
        if address and address.casefold() in folded:
            found.append(address)
        elif len(name.strip()) >= 4 and " " in name.strip() and name.strip().casefold() in folded:
            found.append(name.strip())
    return list(dict.fromkeys(found))
