"""Answering language: detection on short real-style messages, then Content-Language, then default."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers.language_samples import SAMPLES

from daemon.mail import language
from daemon.mail.language import detect_language, language_from_header, load_models

SHOP = ("es", "fr", "en")
NO_ANSWER = "und"  # a default no sample has, so an uncertain detection counts as a miss


def _accuracy(low_memory: bool) -> tuple[float, list[tuple[str, str, str]]]:
    misses = []
    for expected, text in SAMPLES:
        got = detect_language(text, SHOP, None, NO_ANSWER, low_memory=low_memory)
        if got != expected:
            misses.append((expected, got, text))
    return 1 - len(misses) / len(SAMPLES), misses


def test_sample_set_is_large_short_and_balanced() -> None:
    per_language = Counter(language for language, _ in SAMPLES)
    assert all(per_language[language] >= 30 for language in SHOP)
    short = sum(len(text.split()) < 20 for _, text in SAMPLES)
    assert short >= len(SAMPLES) * 0.8


@pytest.mark.parametrize("low_memory", [False, True], ids=["full-models", "low-memory"])
def test_detection_is_right_for_95_percent_of_short_customer_messages(low_memory: bool) -> None:
    accuracy, misses = _accuracy(low_memory)
    mode = "low-memory" if low_memory else "full models"
    print(f"\nlanguage detection ({mode}): {accuracy:.1%} of {len(SAMPLES)} messages; misses: {misses}")
    assert accuracy >= 0.95, f"{accuracy:.1%} correct; misses: {misses}"


def test_english_product_names_do_not_turn_spanish_into_english() -> None:
    text = "Me llegó el Wireless Charging Pad pero sin el adaptador de corriente."
    assert detect_language(text, SHOP, None, NO_ANSWER) == "es"


def test_result_is_always_an_allowed_language() -> None:
    german = "Meine Bestellung ist nach zwei Wochen immer noch nicht angekommen."
    assert detect_language(german, ("es", "en"), None, "es") in ("es", "en")


def test_too_short_text_falls_back_to_content_language() -> None:
    assert detect_language("ok", SHOP, "fr-FR, en", "es") == "fr"


def test_ambiguous_text_falls_back_to_content_language() -> None:
    # "Merci" alone scores close to Spanish: the header settles it.
    assert detect_language("Merci", SHOP, "fr", "es") == "fr"


def test_content_language_tags_outside_the_shop_are_skipped() -> None:
    assert detect_language("", SHOP, "de-DE, en-GB", "es") == "en"


def test_default_when_neither_text_nor_header_decides() -> None:
    assert detect_language("👍", SHOP, "de", "es") == "es"
    assert detect_language("", SHOP, None, "fr") == "fr"


def test_clear_text_wins_over_a_contradicting_header() -> None:
    text = "Bonjour, ma commande n'est toujours pas arrivée, ça fait deux semaines."
    assert detect_language(text, SHOP, "es-ES", "es") == "fr"


def test_a_single_shop_language_needs_no_detector() -> None:
    assert detect_language("Where is my order?", ("es",), None, "es") == "es"


def test_models_loaded_at_start_are_the_ones_detection_uses() -> None:
    """`incidencias run` loads them before building the daemon; detection must not load a
    second set (the daemon's peak memory is the moment models load)."""
    language._detector.cache_clear()
    load_models(("fr-FR", "ES", "en"))
    assert language._detector.cache_info().currsize == 1
    text = "Bonjour, ma commande n'est toujours pas arrivée, ça fait deux semaines."
    assert detect_language(text, ("es", "fr", "en"), None, "es") == "fr"
    assert language._detector.cache_info().misses == 1


def test_a_single_language_loads_no_models() -> None:
    language._detector.cache_clear()
    load_models(("es",))
    assert language._detector.cache_info().currsize == 0


def test_allowed_codes_are_normalised() -> None:
    assert detect_language("Where is my parcel? It is late.", ("ES", "en-GB"), None, "es") == "en"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-BE", "fr"),
        ("pt_PT, es", "es"),
        ("en;q=0.8", "en"),
        (" ES ", "es"),
        ("de, it", None),
        ("", None),
        (None, None),
    ],
)
def test_language_from_header_takes_first_allowed_primary_tag(
    header: str | None, expected: str | None
) -> None:
    assert language_from_header(header, ("es", "en", "fr")) == expected
