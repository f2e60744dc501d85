"""The three platform clients against local servers shaped like each platform's API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from helpers.shops import (
    PRESTA_KEY,
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    PrestaShopShop,
    Request,
    ShopifyShop,
    WooCommerceShop,
)

from daemon.shop.lookup import OrderLookup
from daemon.shop.model import CouponRequest, Platform, ShopError
from daemon.shop.oauth1 import base_string
from daemon.shop.prestashop import PrestaShop
from daemon.shop.shopify import Shopify
from daemon.shop.woocommerce import WooCommerce

REQUEST = CouponRequest(code="GRACIAS-7KQ2M9XW4P", percent=15, valid_from=date(2026, 12, 6),
                        valid_until=date(2027, 3, 6), customer_email="maria@example.net",
                        title="incidencias ticket 12")


@pytest.fixture
def woo() -> Iterator[WooCommerceShop]:
    with WooCommerceShop() as shop:
        yield shop  # type: ignore[misc]


@pytest.fixture
def presta() -> Iterator[PrestaShopShop]:
    with PrestaShopShop() as shop:
        yield shop  # type: ignore[misc]


@pytest.fixture
def shopify() -> Iterator[ShopifyShop]:
    with ShopifyShop() as shop:
        yield shop  # type: ignore[misc]


def woo_client(shop: WooCommerceShop, timeout: float = 2.0, secret: str = WOO_SECRET) -> WooCommerce:
    return WooCommerce(shop.url, WOO_KEY, secret, timeout)


# --- WooCommerce ---

def test_woocommerce_order_is_read_with_an_oauth_signature_over_plain_http(woo: WooCommerceShop) -> None:
    order = woo_client(woo).look_up_order("4411")
    assert order is not None
    assert order.status == "processing"
    assert order.total == "54.85 EUR"
    assert [(item.name, item.quantity) for item in order.items] == [("Camiseta azul - M", 2),
                                                                    ("Gorra roja", 1)]
    assert order.shipping_method == "Envío urgente"
    assert order.tracking == ("Correos 1Z999AA10123456784",)
    request = woo.requests[-1]
    assert request.path == "/wp-json/wc/v3/orders/4411"
    assert request.query["oauth_signature_method"] == "HMAC-SHA1"
    assert "authorization" not in request.headers


def test_woocommerce_refuses_a_wrong_signature_and_the_client_says_so(woo: WooCommerceShop) -> None:
    with pytest.raises(ShopError) as refused:
        woo_client(woo, secret="cs_wrong").look_up_order("4411")
    assert not refused.value.retry
    assert "Invalid signature" in str(refused.value)
    assert "cs_wrong" not in str(refused.value) and WOO_KEY not in str(refused.value)


def test_woocommerce_unknown_order_is_none_and_a_reference_is_not_asked(woo: WooCommerceShop) -> None:
    client = woo_client(woo)
    assert client.look_up_order("9999") is None
    asked = len(woo.requests)
    assert client.look_up_order("XKBKNABJK") is None
    assert len(woo.requests) == asked


def test_woocommerce_coupon_is_single_use_percent_for_the_customer(woo: WooCommerceShop) -> None:
    result = woo_client(woo).create_coupon(REQUEST)
    assert result.created and result.code == REQUEST.code
    coupon = woo.coupons[REQUEST.code.lower()]
    assert coupon["discount_type"] == "percent" and coupon["amount"] == "15.00"
    assert coupon["usage_limit"] == 1 and coupon["usage_limit_per_user"] == 1
    assert coupon["email_restrictions"] == ["maria@example.net"]
    assert coupon["date_expires"] == "2027-03-06T23:59:59"
    body = json.loads(woo.calls("POST", "/wp-json/wc/v3/coupons")[-1].body)
    assert body["code"] == REQUEST.code


def test_woocommerce_code_already_there_counts_as_success(woo: WooCommerceShop) -> None:
    client = woo_client(woo)
    client.create_coupon(REQUEST)
    again = client.create_coupon(REQUEST)
    assert again.code == REQUEST.code and not again.created
    assert len(woo.coupons) == 1


def test_woocommerce_503_and_slowness_are_retryable_errors(woo: WooCommerceShop) -> None:
    woo.down = True
    with pytest.raises(ShopError) as down:
        woo_client(woo).create_coupon(REQUEST)
    assert down.value.retry and "503" in str(down.value)
    woo.down, woo.delay = False, 1.0
    started = time.monotonic()
    with pytest.raises(ShopError) as slow:
        woo_client(woo, timeout=0.3).look_up_order("4411")
    assert slow.value.retry and time.monotonic() - started < 0.9


def test_woocommerce_check_reads_orders(woo: WooCommerceShop) -> None:
    assert "orders readable" in woo_client(woo).check()
    assert woo.requests[-1].query["per_page"] == "1"


def test_oauth_base_string_follows_rfc5849_example() -> None:
    # RFC 5849 section 3.4.1.1's parameters, reduced to a GET without a token.
    text = base_string("get", "http://example.com/request", {"b5": "=%3D", "a3": "a", "c@": ""})
    assert text == "GET&http%3A%2F%2Fexample.com%2Frequest&a3%3Da%26b5%3D%253D%25253D%26c%2540%3D"


# --- PrestaShop ---

def test_prestashop_order_with_state_carrier_and_tracking(presta: PrestaShopShop) -> None:
    client = PrestaShop(presta.url, PRESTA_KEY, 2.0)
    order = client.look_up_order("4411")
    assert order is not None
    assert (order.status, order.total, order.shipping_method) == ("Enviado", "54.85", "Correos Express")
    assert order.tracking == ("Correos Express PK123456789ES",)
    assert [(item.name, item.quantity) for item in order.items] == [("Camiseta azul - Talla M", 2),
                                                                    ("Gorra roja", 1)]
    by_reference = client.look_up_order("XKBKNABJK")
    assert by_reference is not None and by_reference.status == "Enviado"
    assert client.look_up_order("4412") is None


def test_prestashop_cart_rule_for_the_customer_once_only(presta: PrestaShopShop) -> None:
    client = PrestaShop(presta.url, PRESTA_KEY, 2.0)
    first = client.create_coupon(REQUEST)
    again = client.create_coupon(REQUEST)
    assert first.created and not again.created
    (rule,) = presta.coupons.values()
    assert rule["code"] == REQUEST.code and rule["reduction_percent"] == "15"
    assert rule["quantity"] == "1" and rule["quantity_per_user"] == "1"
    assert rule["id_customer"] == "7" and rule["date_to"] == "2027-03-06 23:59:59"


def test_prestashop_wrong_key_is_refused_with_the_webservice_error(presta: PrestaShopShop) -> None:
    with pytest.raises(ShopError) as refused:
        PrestaShop(presta.url, "WRONGKEY" * 4, 2.0).check()
    assert not refused.value.retry and "Authentication key does not exist" in str(refused.value)


# --- Shopify ---

def test_shopify_order_by_name(shopify: ShopifyShop) -> None:
    order = Shopify(shopify.url, SHOPIFY_TOKEN, 2.0).look_up_order("4411")
    assert order is not None
    assert (order.number, order.status, order.total) == ("#4411", "paid, fulfilled", "54.85 EUR")
    assert order.tracking == ("SEUR SEUR0001234",)
    request = shopify.requests[-1]
    assert request.headers["x-shopify-access-token"] == SHOPIFY_TOKEN
    assert json.loads(request.body)["variables"] == {"query": "name:#4411"}
    assert Shopify(shopify.url, SHOPIFY_TOKEN, 2.0).look_up_order("1") is None


def test_shopify_discount_once_per_customer_and_taken_is_success(shopify: ShopifyShop) -> None:
    client = Shopify(shopify.url, SHOPIFY_TOKEN, 2.0)
    assert client.create_coupon(REQUEST).created
    assert not client.create_coupon(REQUEST).created
    (discount,) = shopify.coupons.values()
    assert discount["customerGets"]["value"]["percentage"] == 0.15
    assert discount["appliesOncePerCustomer"] is True and discount["usageLimit"] == 1
    assert discount["endsAt"] == "2027-03-06T23:59:59Z"


def test_shopify_bad_token_is_refused(shopify: ShopifyShop) -> None:
    with pytest.raises(ShopError) as refused:
        Shopify(shopify.url, "shpat_wrong", 2.0).check()
    assert not refused.value.retry and "Invalid API key" in str(refused.value)


# --- the cache in front of the notification ---

class Counting:
    kind = "test"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.calls = 0

    def look_up_order(self, number: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.platform.look_up_order(number)


def test_lookup_caches_answers_and_pauses_after_a_failure(woo: WooCommerceShop) -> None:
    now = [0.0]
    counting = Counting(woo_client(woo, timeout=0.3))
    lookup = OrderLookup(counting, clock=lambda: now[0])  # type: ignore[arg-type]
    (first,) = lookup.orders(["4411"])
    assert first.answered and first.order is not None
    lookup.orders(["4411"])
    assert counting.calls == 1
    woo.down = True
    now[0] = 400.0
    assert [info.answered for info in lookup.orders(["4411", "4412"])] == [False, False]
    assert counting.calls == 2  # the second number was not tried: the shop had just failed
    woo.down = False
    now[0] = 470.0
    assert lookup.orders(["4411"])[0].answered


def test_woocommerce_over_https_sends_basic_credentials_and_no_signature() -> None:
    shop = WooCommerceShop()
    shop.basic_allowed = True  # as WooCommerce does when the request came over HTTPS
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = shop.answer(Request(request.method, request.url.path, dict(request.url.params),
                                     dict(request.headers), request.content))
        return httpx.Response(answer.status, content=answer.body,
                              headers={"content-type": answer.content_type})

    try:
        client = WooCommerce("https://tienda.example", WOO_KEY, WOO_SECRET, 2.0,
                             transport=httpx.MockTransport(handler))
        order = client.look_up_order("4411")
    finally:
        shop.stop()
    assert order is not None and order.status == "processing"
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert not any(name.startswith("oauth_") for name in seen[0].url.params)


def test_no_log_line_carries_a_key_a_secret_or_a_signature(
        woo: WooCommerceShop, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = woo_client(woo)
    client.look_up_order("4411")
    woo.down = True
    lookup = OrderLookup(client)
    lookup.orders(["4411"])
    assert caplog.records, "the failure is logged"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    signature = woo.requests[0].query["oauth_signature"]
    for secret in (WOO_KEY, WOO_SECRET, signature, "oauth_"):
        assert secret not in logged
