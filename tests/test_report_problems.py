"""The report counts a problem broadcast (issue 16) as the first response of every ticket it
reached, as issue 17 defines first response."""

from __future__ import annotations

from datetime import timedelta

from test_problems import MONDAY_10, Shop, linked, shop  # noqa: F401  (fixtures used by name)

from daemon.tickets.report.figures import BusinessHours, Figures, gather


def _figures(shop: Shop) -> Figures:  # noqa: F811
    with shop.parts.sessions() as session:
        return gather(session, MONDAY_10 - timedelta(days=1), MONDAY_10 + timedelta(days=1),
                      now=shop.clock.now, business=BusinessHours.of(shop.parts.lifecycle.config))


def test_a_problem_broadcast_is_the_first_response_of_the_tickets_it_reached(
        shop: Shop, linked: dict[str, int]) -> None:  # noqa: F811
    before = _figures(shop)
    assert before.new == 3 and before.unanswered == 3
    shop.clock.now = MONDAY_10 + timedelta(hours=3)
    shop.reply_to(shop.problem_mail()["Message-ID"], "[es]\nLa huelga termina el lunes.\n\n"
                  "[fr]\nLa grève se termine lundi.\n\n[en]\nThe strike ends on Monday.")
    after = _figures(shop)
    assert after.unanswered == 0
    assert (after.first_response.count, after.first_response.median) == (3, 3.0)
