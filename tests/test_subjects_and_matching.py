"""Subject keys and the threading rules, decided without a database."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from daemon.mail.message import Address, ParsedMessage
from daemon.mail.subjects import subject_key, tagged, ticket_tag
from daemon.tickets.threading import match_ticket


@pytest.mark.parametrize(
    "subject",
    ["Re: Pedido roto", "RE: RE: pedido roto", "Fwd: Pedido Roto", "TR: pedido roto",
     "RV: Pedido roto", "AW: WG: pedido roto", "Réf : pedido roto", "re[2]: pedido roto",
     "Re: [#12] Pedido roto", "  pedido   roto "],
)
def test_reply_and_forward_prefixes_and_tags_do_not_change_the_key(subject: str) -> None:
    assert subject_key(subject) == "pedido roto"


def test_a_word_that_only_starts_like_a_prefix_is_kept() -> None:
    assert subject_key("Retraso en el envío") == "retraso en el envío"


def test_ticket_tag_is_found_anywhere_and_tagging_does_not_repeat_it() -> None:
    assert ticket_tag("RE: [#42] Pedido") == 42
    assert ticket_tag("Pedido #42") is None
    assert tagged("Re: [#42] Pedido", 42) == "[#42] Re: Pedido"


@dataclass
class FakeLookup:
    by_message_id: dict[str, int] = field(default_factory=dict)
    people: dict[int, frozenset[str]] = field(default_factory=dict)
    open_by_sender_subject: dict[tuple[str, str], int] = field(default_factory=dict)

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        return next((self.by_message_id[m] for m in message_ids if m in self.by_message_id), None)

    def participants(self, ticket: int) -> frozenset[str] | None:
        return self.people.get(ticket)

    def open_ticket_for(self, sender: str, key: str) -> int | None:
        return self.open_by_sender_subject.get((sender, key))


def _message(subject: str = "Pedido roto", sender: str = "ana@example.net",
             in_reply_to: tuple[str, ...] = (), references: tuple[str, ...] = ()) -> ParsedMessage:
    return ParsedMessage(message_id="new@example.net", in_reply_to=in_reply_to,
                         references=references, sender=Address("", sender), reply_to=(), to=(),
                         cc=(), subject=subject, date=None, text="", html="", attachments=())


def test_references_to_any_stored_message_win_over_everything_else() -> None:
    lookup = FakeLookup(by_message_id={"ack-7@shop": 7}, people={3: frozenset({"ana@example.net"})})
    match = match_ticket(_message("Re: [#3] Pedido roto", references=("old@x", "ack-7@shop")), lookup)
    assert (match.ticket, match.rule) == (7, "references")


def test_in_reply_to_is_tried_before_older_references() -> None:
    lookup = FakeLookup(by_message_id={"a@x": 1, "b@x": 2})
    assert match_ticket(_message(in_reply_to=("b@x",), references=("a@x", "b@x")), lookup).ticket == 2


def test_tag_counts_only_for_people_already_in_the_ticket() -> None:
    lookup = FakeLookup(people={5: frozenset({"ana@example.net", "jefe@example.net"})})
    assert match_ticket(_message("RE: [#5] Pedido"), lookup).ticket == 5
    assert match_ticket(_message("RE: [#5] Pedido", sender="jefe@example.net"), lookup).ticket == 5
    assert match_ticket(_message("RE: [#5] Pedido", sender="otro@example.net"), lookup).is_new
    assert match_ticket(_message("RE: [#9] Pedido"), lookup).is_new


def test_same_sender_and_subject_joins_an_open_ticket_when_references_are_dropped() -> None:
    lookup = FakeLookup(open_by_sender_subject={("ana@example.net", "pedido roto"): 4})
    assert match_ticket(_message("RE: Pedido roto"), lookup).rule == "sender-subject"
    assert match_ticket(_message("RE: Pedido roto", sender="luis@example.net"), lookup).is_new


def test_an_empty_subject_never_joins_by_subject() -> None:
    lookup = FakeLookup(open_by_sender_subject={("ana@example.net", ""): 4})
    assert match_ticket(_message(""), lookup).is_new
