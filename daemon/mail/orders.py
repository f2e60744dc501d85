"""Order numbers in what a customer writes: "pedido 4411", "n.º de pedido: 4411",
"commande n° 12345", "numéro de commande 12345", "order #1234".

Patterns are regular expressions with one group, the number, kept by language; `[orders] patterns`
replaces a language's built-in list or adds a language. Every language's patterns are tried on
every message (a Spanish customer may paste an English confirmation). A number is three to twelve
digits, optionally after '#', or a PrestaShop reference (nine capital letters); "pedido 2
camisetas" is no order. Pure: text in, numbers out, in order of appearance, each once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

# After the keyword: "n.º", "nº", "n°", "no.", "núm.", "número", "number", "#", ":" in any mix.
_JOIN = (r"(?:\s*(?:n\.?\s?[º°o]\.?|no\.|n[úu]m(?:ero|\.)?|num[ée]ro|number|nr\.?)?\s*"
         r"(?:de\s+|du\s+)?[:#]?\s*)")
_NUMBER = r"#?((?<![0-9A-Za-z_-])\d{3,12}(?![0-9A-Za-z_-])|(?-i:\b[A-Z]{9}\b))"

DEFAULT_PATTERNS: dict[str, tuple[str, ...]] = {
    "es": (rf"(?i)\bpedido{_JOIN}{_NUMBER}", rf"(?i)\bcompra{_JOIN}{_NUMBER}"),
    "fr": (rf"(?i)\bcommande{_JOIN}{_NUMBER}",),
    "en": (rf"(?i)\border{_JOIN}{_NUMBER}",),
}


def compile_patterns(overrides: Mapping[str, Sequence[str]] | None = None) -> tuple[re.Pattern[str], ...]:
    """The built-in patterns with `[orders] patterns` applied (a given language replaces its list)."""
    chosen = {**DEFAULT_PATTERNS, **{lang: tuple(p) for lang, p in (overrides or {}).items()}}
    return tuple(re.compile(pattern) for patterns in chosen.values() for pattern in patterns)


DEFAULT = compile_patterns()


def find_orders(texts: Iterable[str], patterns: Sequence[re.Pattern[str]] = DEFAULT) -> tuple[str, ...]:
    """Order numbers in `texts` (subject, then body), first appearance first, without '#'."""
    found: dict[str, int] = {}
    for text in texts:
        hits: list[tuple[int, str]] = []
        for pattern in patterns:
            hits.extend((match.start(1), match.group(1)) for match in pattern.finditer(text)
                        if match.group(1))
        for _, number in sorted(hits):
            found.setdefault(number.lstrip("#").strip(), len(found))
    return tuple(number for number in found if number)


def merge_orders(stored: str, new: Iterable[str]) -> str:
    """The ticket's `orders` column after adding `new`: space-separated numbers; a number an
    agent removed is kept as "-N" so that the next mail quoting it does not bring it back."""
    entries = stored.split()
    for number in new:
        if number not in entries and f"-{number}" not in entries:
            entries.append(number)
    return " ".join(entries)


def edit_orders(stored: str, number: str, *, remove: bool) -> str:
    """An agent's `#order N` (add, even one removed before) or `#order -N` (remove)."""
    entries = [entry for entry in stored.split() if entry not in (number, f"-{number}")]
    entries.append(f"-{number}" if remove else number)
    return " ".join(entries)


def listed_orders(stored: str) -> list[str]:
    """The order numbers a ticket shows (those removed by an agent left out)."""
    return [entry for entry in stored.split() if not entry.startswith("-")]
