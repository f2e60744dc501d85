from __future__ import annotations

import pytest

from daemon.tickets.satisfaction import satisfaction_score


@pytest.mark.parametrize(("text", "score"), [("5", 5), (" 4.\n", 4), ("3/5", 3), ("2 de 5", 2),
                                             ("4 sur 5", 4), ("★★★★", 4), ("1!", 1)])
def test_a_bare_score_is_recognised(text: str, score: int) -> None:
    assert satisfaction_score(text) == score


@pytest.mark.parametrize("text", ["6", "0", "5 stars but the parcel is broken again",
                                  "Pedido 5", "", "12"])
def test_anything_more_than_a_score_is_a_real_reply(text: str) -> None:
    assert satisfaction_score(text) is None
