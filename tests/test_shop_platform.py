"""The shop's platform in the loop: order numbers on tickets and in agents' notifications, and
closings whose coupon the shop must confirm first — each against the local server shaped like
WooCommerce, PrestaShop and Shopify (tests/helpers/shops.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from helpers.shops import (
    PRESTA_KEY,
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    FakeShop,
    PrestaShopShop,
    ShopifyShop,
    WooCommerceShop,
)
from pydantic import SecretStr
from sqlalchemy import select
from test_lifecycle import SECRET, Clock, Shop, _config

from daemon.config import ClosingConfig, PlatformConfig, Secrets, Settings
from daemon.runtime.service import assemble
from daemon.storage import db
from daemon.storage.admin_views import search_tickets
from daemon.storage.models import DiscountCode, OutboxItem
from daemon.storage.views import show_ticket

KINDS = ("woocommerce", "prestashop", "shopify")
SERVERS: dict[str, type[FakeShop]] = {"woocommerce": WooCommerceShop,
                                      "prestashop": PrestaShopShop, "shopify": ShopifyShop}
KEYS = {"woocommerce": (WOO_KEY, WOO_SECRET), "prestashop": (PRESTA_KEY, None),
        "shopify": (SHOPIFY_TOKEN, None)}


def _platform_shop(tmp_path: Path, server: FakeShop, kind: str, timeout: str = "2s",
                   provider: str = "platform") -> Shop:
    config = _config(tmp_path).model_copy(update={
        "closing": ClosingConfig.model_validate({"discount_provider": provider, "discount_percent": 15}),
        "platform": PlatformConfig.model_validate({"kind": kind, "url": server.url, "timeout": timeout})})
    key, secret = KEYS[kind]
    engine = migrated_engine(tmp_path, "platform.db")
    clock = Clock()
    settings = Settings(config=config, path=tmp_path / "config.toml",
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr(SECRET),
                                        platform_key=SecretStr(key),
                                        platform_secret=SecretStr(secret) if secret else None))
    return Shop(assemble(settings, engine, db.session_factory(engine), clock), clock)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str) -> Iterator[FakeShop]:
    with SERVERS[kind]() as running:
        yield running


def _text(row: OutboxItem) -> str:
    body = message_from_bytes(row.raw, policy=policy.default).get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _ticket_json(shop: Shop, number: int) -> dict[str, Any]:
    with shop.parts.sessions() as session:
        found = show_ticket(session, number)
    assert found is not None
    return found


def _open(shop: Shop, body: str = "Hola, mi pedido 4411 no ha llegado todavía.") -> int:
    number = shop.receive(customer_email("Dónde está mi paquete", body))
    assert number is not None
    return number


def test_order_in_the_mail_is_on_the_ticket_and_the_notification_shows_it(
        tmp_path: Path, kind: str, server: FakeShop) -> None:
    shop = _platform_shop(tmp_path, server, kind)
    number = _open(shop)
    assert _ticket_json(shop, number)["orders"] == ["4411"]
    notifications = [row for row in shop.new_mail() if row.kind == "notification"]
    assert len(notifications) == 2  # one per agent
    text = _text(notifications[0])
    expected_status = {"woocommerce": "processing", "prestashop": "Enviado",
                       "shopify": "paid, fulfilled"}[kind]
    assert f"Pedido {'#' if kind == 'shopify' else ''}4411: {expected_status}" in text
    assert "2 \u00d7 Camiseta azul" in text and "1 \u00d7 Gorra roja" in text
    assert "Seguimiento:" in text


def test_a_slow_shop_does_not_hold_the_notification_up(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        server.delay = 3.0
        shop = _platform_shop(tmp_path, server, "woocommerce", timeout="0.5s")
        started = time.monotonic()
        _open(shop)
        first = time.monotonic() - started
        _open(shop, "Otra cosa: el pedido 5522 también.")
        both = time.monotonic() - started
        notifications = [row for row in shop.new_mail() if row.kind == "notification"]
    assert len(notifications) == 4
    assert "Pedido 4411: la tienda no ha respondido" in _text(notifications[0])
    assert "Pedido 5522: la tienda no ha respondido" in _text(notifications[-1])
    assert first < 2.0
    assert both - first < 0.5  # the shop had just failed: the next mail does not wait for it again


def test_closing_creates_one_coupon_and_then_the_closing_mail_with_its_code(
        tmp_path: Path, kind: str, server: FakeShop) -> None:
    shop = _platform_shop(tmp_path, server, kind)
    number = _open(shop)
    shop.new_mail()
    shop.agent_reply(number, "#cerrar\n\nGracias por tu paciencia.")
    ticket = _ticket_json(shop, number)
    assert ticket["status"] == "closed" and ticket["closing_pending"] is None
    code = ticket["discount_code"]
    assert code and code.startswith("GRACIAS-")
    assert len(server.coupons) == 1
    closing = [row for row in shop.new_mail() if row.kind == "closing"]
    assert len(closing) == 1 and code in _text(closing[0])
    with shop.parts.sessions() as session:
        (stored,) = session.scalars(select(DiscountCode).where(DiscountCode.code == code))
        assert (stored.source, stored.percent) == ("platform", 15)


def test_shop_down_at_closing_waits_then_one_coupon_and_one_closing_mail(
        tmp_path: Path, kind: str, server: FakeShop) -> None:
    shop = _platform_shop(tmp_path, server, kind)
    number = _open(shop)
    shop.new_mail()
    server.down = True
    shop.agent_reply(number, "#close")
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    kinds = shop.kinds()
    assert "closing" not in kinds
    assert kinds.count("notice-closing_waits") == 2  # one mail to each of the two agents, once
    ticket = _ticket_json(shop, number)
    assert ticket["status"] == "open" and ticket["discount_code"] is None
    pending = ticket["closing_pending"]
    assert pending["attempts"] == 3 and "503" in pending["last_error"]
    server.down = False
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    closing = [row for row in shop.new_mail() if row.kind == "closing"]
    ticket = _ticket_json(shop, number)
    assert ticket["status"] == "closed" and ticket["discount_code"] == pending["code"]
    assert len(closing) == 1 and pending["code"] in _text(closing[0])
    assert len(server.coupons) == 1


def test_a_coupon_that_got_through_before_a_lost_answer_is_not_made_twice(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        server.down = True
        shop.agent_reply(number, "#close")
        code = _ticket_json(shop, number)["closing_pending"]["code"]
        server.down = False
        server.coupons[code.lower()] = {"code": code.lower()}  # the lost try did reach the shop
        shop.parts.lifecycle.sweep()
        assert _ticket_json(shop, number)["discount_code"] == code
        assert len(server.coupons) == 1
        assert len(server.calls("POST", "/wp-json/wc/v3/coupons")) == 2


def test_closing_without_a_discount_ends_a_closing_that_waits(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        server.down = True
        shop.agent_reply(number, "#close")
        shop.agent_reply(number, "#close nodiscount")
        ticket = _ticket_json(shop, number)
        assert ticket["status"] == "closed" and ticket["closing_pending"] is None
        assert ticket["discount_code"] is None
        server.down = False
        shop.parts.lifecycle.sweep()
        assert server.coupons == {}
        assert [row.kind for row in shop.new_mail()].count("closing") == 1


def test_agents_correct_the_orders_and_search_finds_them(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        shop.agent_reply(number, "#pedido 7788\n#commande -4411")
        assert _ticket_json(shop, number)["orders"] == ["7788"]
        shop.receive(customer_email("Re: Dónde está mi paquete", "Repito: pedido 4411."))
        assert _ticket_json(shop, number)["orders"] == ["7788"]  # removed by an agent: stays out
        shop.agent_reply(number, "#order 4411")
        assert _ticket_json(shop, number)["orders"] == ["7788", "4411"]
        with shop.parts.sessions() as session:
            assert [t["id"] for t in search_tickets(session, "7788")] == [number]


def test_a_bad_order_command_changes_nothing(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        shop.new_mail()
        shop.agent_reply(number, "#pedido\n#nota esto no se aplica")
        assert _ticket_json(shop, number)["orders"] == ["4411"]
        assert "command-error" in shop.kinds()


def test_reopen_calls_off_a_closing_that_waits(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        server.down = True
        shop.agent_reply(number, "#close")
        shop.agent_reply(number, "#reopen")
        assert _ticket_json(shop, number)["closing_pending"] is None
        server.down = False
        shop.parts.lifecycle.sweep()
        assert server.coupons == {}
        assert "closing" not in shop.kinds()
        assert _ticket_json(shop, number)["status"] == "open"


def test_an_order_of_an_unexpected_shape_does_not_stop_the_notification(tmp_path: Path) -> None:
    with WooCommerceShop() as server:
        server.orders[4411] = {**server.orders[4411], "meta_data": 5}
        shop = _platform_shop(tmp_path, server, "woocommerce")
        number = _open(shop)
        assert _ticket_json(shop, number)["orders"] == ["4411"]
        notifications = [row for row in shop.new_mail() if row.kind == "notification"]
        assert len(notifications) == 2
        assert "Pedido 4411: la tienda no ha respondido" in _text(notifications[0])
