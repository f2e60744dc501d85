"""Telling a genuine agent reply from a forged one, without a database."""

from __future__ import annotations

from daemon.mail.authenticity import ANY_AGENT, authenticated_domain, check_agent, notification_id
from daemon.mail.message import Address, ParsedMessage

SECRET = b"s3cret"
AGENTS = ["ana@shop.example", "luis@shop.example"]


def _reply(sender: str, *ids: str, headers: tuple[tuple[str, str], ...] = ()) -> ParsedMessage:
    return ParsedMessage(message_id="r@x", in_reply_to=ids[:1], references=ids,
                         sender=Address("", sender), reply_to=(), to=(), cc=(), subject="Re: x",
                         date=None, text="", html="", attachments=(), headers=headers)


def test_a_reply_to_the_agents_own_notification_is_verified_for_that_ticket() -> None:
    token = notification_id(SECRET, 12, "ana@shop.example", "shop.example")
    check = check_agent(_reply("ana@shop.example", token), AGENTS, SECRET, None)
    assert check is not None and check.verified and check.ticket == 12


def test_someone_who_is_not_an_agent_is_not_checked_at_all() -> None:
    token = notification_id(SECRET, 12, "ana@shop.example", "shop.example")
    assert check_agent(_reply("eve@evil.example", token), AGENTS, SECRET, None) is None


def test_another_agents_token_another_ticket_or_another_secret_fail() -> None:
    token = notification_id(SECRET, 12, "ana@shop.example", "shop.example")
    for message, secret in [
        (_reply("luis@shop.example", token), SECRET),
        (_reply("ana@shop.example", token.replace("incidencias.12.", "incidencias.13.")), SECRET),
        (_reply("ana@shop.example", token), b"other"),
        (_reply("ana@shop.example"), SECRET),
    ]:
        check = check_agent(message, AGENTS, secret, None)
        assert check is not None and not check.verified


def test_a_group_notification_verifies_any_agent() -> None:
    token = notification_id(SECRET, 5, ANY_AGENT, "shop.example")
    check = check_agent(_reply("luis@shop.example", token), AGENTS, SECRET, None)
    assert check is not None and check.verified and check.ticket == 5


def test_trusted_authentication_results_pass_only_for_our_server_and_the_agents_domain() -> None:
    good = (("Authentication-Results", "mx.shop.example; dkim=pass header.d=shop.example; "
             "spf=pass"),)
    assert authenticated_domain(_reply("ana@shop.example", headers=good), "mx.shop.example") == (
        "shop.example")
    check = check_agent(_reply("ana@shop.example", headers=good), AGENTS, SECRET, "mx.shop.example")
    assert check is not None and check.verified
    forged_server = (("Authentication-Results", "mx.evil.example; dkim=pass header.d=shop.example"),)
    check = check_agent(_reply("ana@shop.example", headers=forged_server), AGENTS, SECRET,
                        "mx.shop.example")
    assert check is not None and not check.verified
    failed = (("Authentication-Results", "mx.shop.example; dkim=fail header.d=shop.example; "
               "dmarc=fail header.from=shop.example"),)
    check = check_agent(_reply("ana@shop.example", headers=failed), AGENTS, SECRET,
                        "mx.shop.example")
    assert check is not None and not check.verified
