"""Choose the language to answer a customer in: their text first, then their mail client's hint.

Detection uses lingua restricted to the shop's languages, which is what makes it reliable on the
short, product-name-laden messages shops receive. Measured on tests/language_samples.py (105 short
messages, es/fr/en): the full models score 105/105 and add about 70 MB of resident memory for
three languages once the buffers they load from are handed back (115 MB before that), loaded in
about a second when the detector is built;
`low_memory=True` uses lingua's trigram-only mode, about 10 MB, and scores 103/105. The detector
is built once per language set and cached for the life of the process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from lingua import IsoCode639_1, LanguageDetector, LanguageDetectorBuilder

from daemon.mail.allocator import release_free_memory

# The winner's confidence must be this many times the runner-up's; below it the text is too
# ambiguous ("Merci", "parcel lost") and the Content-Language header is the better witness.
_MIN_CONFIDENCE_RATIO = 1.5
_MIN_LETTERS = 3
# Detection gains nothing from the tail of a long message and costs time on it.
_MAX_CHARS = 2000
# Any sentence with words of five letters and more makes lingua load every model it uses.
_WARM_UP = "Buenos días, quisiera saber dónde está mi pedido. Merci beaucoup. Thank you."
# URLs, addresses and tokens with digits (order numbers, "20000mAh") carry no language.
_NOISE = re.compile(r"\S+://\S+|\S+@\S+|\S*\d\S*")


def detect_language(
    text: str,
    allowed: Sequence[str],
    content_language: str | None,
    default: str,
    *,
    low_memory: bool = False,
) -> str:
    """Return one of `allowed`: detected from `text`, else from `content_language`, else `default`."""
    wanted = _normalise(allowed)
    detected = _detect(text, wanted, low_memory)
    if detected is not None:
        return detected
    hinted = language_from_header(content_language, wanted)
    return hinted if hinted is not None else default


def load_models(allowed: Sequence[str], *, low_memory: bool = False) -> None:
    """Load the models `detect_language` will use for these languages, now rather than for the
    first new customer. Loading briefly needs about 40 MB more than the models keep, so a daemon
    that loads them before building everything else peaks that much lower (bench/ANALYSIS.md)."""
    known = _known(_normalise(allowed))
    if len(known) >= 2:
        _detector(known, low_memory)


def language_from_header(content_language: str | None, allowed: Sequence[str]) -> str | None:
    """First `Content-Language` entry (e.g. "fr-BE, en") whose primary subtag is allowed."""
    if not content_language:
        return None
    wanted = _normalise(allowed)
    for entry in content_language.split(","):
        primary = _primary_subtag(entry)
        if primary in wanted:
            return primary
    return None


def _known(allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The languages lingua knows, sorted: the detector cache's key."""
    return tuple(sorted(code for code in allowed if _lingua_code(code) is not None))


def _detect(text: str, allowed: tuple[str, ...], low_memory: bool) -> str | None:
    known = _known(allowed)
    if len(known) < 2:
        return None
    cleaned = _NOISE.sub(" ", text[:_MAX_CHARS])
    if sum(ch.isalpha() for ch in cleaned) < _MIN_LETTERS:
        return None
    values = _detector(known, low_memory).compute_language_confidence_values(cleaned)
    best, runner_up = values[0].value, values[1].value
    if best <= 0 or best < runner_up * _MIN_CONFIDENCE_RATIO:
        return None
    return values[0].language.iso_code_639_1.name.lower()


@lru_cache(maxsize=2)
def _detector(languages: tuple[str, ...], low_memory: bool) -> LanguageDetector:
    """One detector per language set: building is cheap, but each holds its loaded models."""
    codes = [code for code in (_lingua_code(lang) for lang in languages) if code is not None]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    if low_memory:
        builder = builder.with_low_accuracy_mode()
    detector = builder.build()
    # Lingua loads its models on first use and frees the buffers it loaded them from: load them
    # now, so the memory those buffers held goes back to the system at once.
    detector.compute_language_confidence_values(_WARM_UP)
    release_free_memory()
    return detector


def _lingua_code(language: str) -> IsoCode639_1 | None:
    try:
        return IsoCode639_1.from_str(language)
    except ValueError:
        return None


def _normalise(languages: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for language in languages:
        primary = _primary_subtag(language)
        if primary:
            seen[primary] = None
    return tuple(seen)


def _primary_subtag(tag: str) -> str:
    """The primary subtag, lower-cased: es-ES, fr_FR, "en;q=0.8" and " ES " all work."""
    return re.split(r"[-_;\s]", tag.strip(), maxsplit=1)[0].lower()
