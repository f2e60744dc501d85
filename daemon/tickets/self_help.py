"""Self-help decisions, pure: which `[[faq]]` answers fit a customer's text, and whether a reply
means "that solved it".

Guarantees: matching is case- and accent-insensitive and on whole words and phrases only
("retraso" never matches "retrasos" nor "pretraso"); the text given is already the visible text
(quoted history and signature removed by the caller); at most `limit` entries come back, best
first, and an entry whose keywords are not given for the language never matches. A reply counts
as "solved" only when, apart from a solved word, it holds nothing but courtesy words and the
customer's own name: anything more ("RESUELTO pero quiero devolverlo") is an ordinary follow-up.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from daemon.config import FaqEntry

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: The word the acknowledgement asks for, per language (shown in capitals).
SOLVED_WORD: dict[str, str] = {
    "es": "RESUELTO", "fr": "RÉSOLU", "en": "SOLVED", "de": "GELÖST", "it": "RISOLTO",
    "pt": "RESOLVIDO",
}

# Folded words that say "solved" in the languages we answer in; any of them counts in any ticket,
# as a French customer who writes SOLVED means it just as much.
_SOLVED = frozenset({
    "resuelto", "resuelta", "solucionado", "solucionada", "arreglado", "arreglada",
    "resolu", "resolue", "regle", "reglee",
    "solved", "resolved", "fixed", "sorted",
    "gelost", "erledigt", "risolto", "risolta", "resolvido", "resolvida",
})
# Words that may stand around the solved word without adding a request.
_COURTESY = frozenset({
    "ya", "esta", "todo", "gracias", "muchas", "mil", "perfecto", "vale", "si", "ok", "okay",
    "saludos", "saludo", "el", "problema",
    "c", "est", "merci", "beaucoup", "parfait", "oui", "tout", "bien", "cordialement", "probleme",
    "it", "s", "is", "all", "thanks", "thank", "you", "very", "much", "many", "great", "yes",
    "regards", "now", "cheers", "the", "problem",
    "danke", "ja", "grazie", "tutto", "obrigado", "obrigada", "sim",
})


@dataclass(frozen=True)
class FaqMatch:
    """An entry that fits, with the keywords that made it fit (for `faq test` and the logs)."""

    name: str
    keywords: tuple[str, ...]
    url: str | None


def fold(text: str) -> tuple[str, ...]:
    """The text as lower-case words without accents: "¿No ha LLEGADO?" → ("no", "ha", "llegado")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return tuple(_WORD.findall(bare))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return size > 0 and any(words[i:i + size] == phrase for i in range(len(words) - size + 1))


def match_faq(text: str, language: str, entries: Sequence[FaqEntry], limit: int = 2
              ) -> tuple[FaqMatch, ...]:
    """Entries whose keywords for `language` occur in `text`, best first, at most `limit`.

    Best means more distinct keywords found, then more words in them (a phrase says more than a
    word), then the order of the config.
    """
    words = fold(text)
    found: list[tuple[int, int, int, FaqMatch]] = []
    for position, entry in enumerate(entries):
        hits = tuple(k for k in entry.keywords.get(language, ()) if _contains(words, fold(k)))
        if hits:
            weight = sum(len(fold(k)) for k in hits)
            found.append((-len(hits), -weight, position, FaqMatch(entry.name, hits, entry.url)))
    return tuple(match for *_, match in sorted(found, key=lambda f: f[:3])[:limit])


def is_solved_reply(text: str, customer_name: str = "") -> bool:
    """Whether the visible text of a reply is only "solved" (with thanks and a signature name)."""
    words = fold(text)
    allowed = _COURTESY | set(fold(customer_name))
    return (any(w in _SOLVED for w in words)
            and all(w in _SOLVED or w in allowed for w in words))


def solved_word(language: str, fallback: str) -> str:
    return SOLVED_WORD.get(language) or SOLVED_WORD.get(fallback) or SOLVED_WORD["en"]


def faq_names(stored: str) -> list[str]:
    """The names a ticket stores comma-separated, as a list."""
    return [name for name in stored.split(",") if name]


def join_names(names: Iterable[str]) -> str:
    return ",".join(names)
