"""The shop's platform in the loop, end to end: real Dovecot, the SMTP sink, `incidencias run
--once`, and a local server shaped like the shop's API (WooCommerce; the order and coupon flows
also against PrestaShop and Shopify)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.harness import (
    SHOP_USER,
    agent_reply,
    cli,
    customer_email,
    run_once,
    ticket,
    tickets,
    to_agent,
    to_customers,
    write_config,
)
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink
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

SERVERS: dict[str, type[FakeShop]] = {"woocommerce": WooCommerceShop,
                                      "prestashop": PrestaShopShop, "shopify": ShopifyShop}
KEYS = {"woocommerce": (WOO_KEY, WOO_SECRET), "prestashop": (PRESTA_KEY, None),
        "shopify": (SHOPIFY_TOKEN, None)}
AGENT = "agent1@example.com"


def _config(tmp_path: Path, imap: Dovecot, sink: SmtpSink, server: FakeShop, kind: str,
            timeout: str = "2s", key: str | None = None) -> Path:
    secret_key, secret = KEYS[kind]
    (tmp_path / "platform-key").write_text(key or secret_key)
    lines = [f'kind = "{kind}"', f'url = "{server.url}"', 'key_file = "platform-key"',
             f'timeout = "{timeout}"']
    if secret:
        (tmp_path / "platform-secret").write_text(secret)
        lines.append('secret_file = "platform-secret"')
    return write_config(tmp_path, imap, sink,
                        closing='discount_provider = "platform"\ndiscount_percent = 15\n'
                                'discount_valid_for = "30d"',
                        extra="\n[platform]\n" + "\n".join(lines) + "\n")


def _text(mail: CapturedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _open_ticket(config: Path, imap: Dovecot, sink: SmtpSink) -> tuple[int, CapturedMail]:
    imap.append(SHOP_USER, customer_email("No me ha llegado", "Hola, el pedido 4411 no ha llegado."))
    run_once(config)
    [opened] = tickets(config)
    [notification] = to_agent(sink, AGENT)
    return int(opened["id"]), notification


@pytest.mark.parametrize("kind", ["woocommerce", "prestashop", "shopify"])
def test_order_shown_to_agents_and_closing_with_a_coupon_the_shop_created(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, kind: str) -> None:
    with SERVERS[kind]() as server:
        config = _config(tmp_path, imap, smtp_sink, server, kind)
        number, notification = _open_ticket(config, imap, smtp_sink)
        assert ticket(config, number)["orders"] == ["4411"]
        text = _text(notification)
        status = {"woocommerce": "processing", "prestashop": "Enviado",
                  "shopify": "paid, fulfilled"}[kind]
        assert status in text and "Camiseta azul" in text and "Gorra roja" in text
        found = json.loads(cli(config, "tickets", "search", "4411", "--json").stdout)
        assert [t["id"] for t in found] == [number]

        smtp_sink.clear()
        imap.append(SHOP_USER, agent_reply(notification, AGENT, "#cerrar\n\nSentimos el retraso."))
        run_once(config)
        closed = ticket(config, number)
        code = closed["discount_code"]
        assert closed["status"] == "closed" and code and closed["closing_pending"] is None
        [closing] = to_customers(smtp_sink)
        assert code in _text(closing) and "Sentimos el retraso." in _text(closing)
        (coupon,) = server.coupons.values()
        if kind == "woocommerce":
            assert coupon["code"] == code.lower() and coupon["discount_type"] == "percent"
            assert coupon["amount"] == "15.00" and coupon["usage_limit"] == 1
            assert coupon["email_restrictions"] == ["maria@example.net"]
            assert coupon["date_expires"].endswith("T23:59:59")
        elif kind == "prestashop":
            assert (coupon["code"], coupon["reduction_percent"], coupon["quantity"]) == (code, "15", "1")
            assert coupon["id_customer"] == "7" and coupon["date_to"].endswith("23:59:59")
        else:
            assert coupon["code"] == code and coupon["usageLimit"] == 1
            assert coupon["appliesOncePerCustomer"] is True
            assert coupon["customerGets"]["value"]["percentage"] == 0.15 and coupon["endsAt"]


def test_shop_down_at_closing_then_back_one_coupon_one_closing_mail(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    with WooCommerceShop() as server:
        config = _config(tmp_path, imap, smtp_sink, server, "woocommerce")
        number, notification = _open_ticket(config, imap, smtp_sink)
        smtp_sink.clear()
        server.down = True
        imap.append(SHOP_USER, agent_reply(notification, AGENT, "#close"))
        run_once(config)
        run_once(config)
        assert to_customers(smtp_sink) == [], "no closing mail while the shop has no coupon"
        waiting = ticket(config, number)
        assert waiting["status"] == "open" and waiting["closing_pending"]["code"]
        told = [m for m in to_agent(smtp_sink, AGENT) if "Cierre en espera" in str(m.message["Subject"])]
        assert len(told) == 1, "agents are told once, not at every retry"
        assert server.coupons == {}

        server.down = False
        run_once(config)
        run_once(config)
        closed = ticket(config, number)
        assert closed["status"] == "closed"
        assert closed["discount_code"] == waiting["closing_pending"]["code"]
        [closing] = to_customers(smtp_sink)
        assert closed["discount_code"] in _text(closing)
        assert len(server.coupons) == 1


def test_slow_shop_the_notification_goes_out_saying_the_shop_did_not_answer(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    with WooCommerceShop() as server:
        server.delay = 30.0
        config = _config(tmp_path, imap, smtp_sink, server, "woocommerce", timeout="1s")
        imap.append(SHOP_USER, customer_email("Retraso", "Mi pedido 4411 no llega."))
        started = time.monotonic()
        run_once(config)
        took = time.monotonic() - started
        [notification] = to_agent(smtp_sink, AGENT)
        assert "Pedido 4411: la tienda no ha respondido" in _text(notification)
        assert took < 20.0, f"run --once took {took:.1f}s: it waited for the shop"


def test_check_config_connect_calls_the_shop_and_names_no_secret(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    with WooCommerceShop() as server:
        config = _config(tmp_path, imap, smtp_sink, server, "woocommerce")
        cli(config, "check-config", "--connect")
        assert server.calls("GET", "/wp-json/wc/v3/orders")
        (tmp_path / "platform-secret").write_text("cs_wrong_secret")
        refused = cli(config, "check-config", "--connect", check=False)
        assert refused.returncode == 1
        assert "Invalid signature" in refused.stderr
        assert "cs_wrong_secret" not in refused.stderr and WOO_KEY not in refused.stderr
