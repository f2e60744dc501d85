"""WooCommerce REST API v3 (`/wp-json/wc/v3`): orders by id, coupons.

Over HTTPS the consumer key and secret go as HTTP Basic credentials; over plain HTTP WooCommerce
refuses those and wants OAuth 1.0a signed query parameters instead, so each request is signed.
A customer's order number is the order's id unless a plugin renumbers orders; a number that is
not all digits cannot be an id and is reported as not found without asking.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from daemon.shop.http import client, refused, send
from daemon.shop.model import CouponRequest, CouponResult, Order, OrderItem, ShopError
from daemon.shop.oauth1 import signed_params

ALREADY_EXISTS = "woocommerce_rest_coupon_code_already_exists"
TRACKING_META = "_wc_shipment_tracking_items"  # the Shipment Tracking extension's order meta
API = "/wp-json/wc/v3"


class WooCommerce:
    kind = "woocommerce"

    def __init__(self, url: str, key: str, secret: str, timeout: float, *,
                 clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base = url.rstrip("/")
        self._key = key
        self._secret = secret
        self._clock = clock
        self._oauth = urlsplit(self.base).scheme != "https"
        auth = None if self._oauth else httpx.BasicAuth(key, secret)
        self._http = client(timeout, auth=auth, transport=transport)

    def _call(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None,
              body: dict[str, Any] | None = None) -> httpx.Response:
        url = f"{self.base}{API}{path}"
        query = dict(params or {})
        if self._oauth:
            query = signed_params(self._key, self._secret, method, url, query,
                                  nonce=secrets.token_hex(16), timestamp=int(self._clock()))
        return send(self._http, method, url, what=what, params=query, json=body)

    def look_up_order(self, number: str) -> Order | None:
        if not number.isdigit():
            return None
        what = f"WooCommerce order {number}"
        response = self._call("GET", f"/orders/{number}", what)
        if response.status_code == 404:
            return None
        data = _json(what, response)
        return _order(number, data)

    def create_coupon(self, request: CouponRequest) -> CouponResult:
        what = f"WooCommerce coupon {request.code}"
        response = self._call("POST", "/coupons", what, body={
            "code": request.code,
            "discount_type": "percent",
            "amount": str(request.percent),
            "description": request.title,
            "date_expires": f"{request.valid_until.isoformat()}T23:59:59",
            "individual_use": True,
            "usage_limit": 1,
            "usage_limit_per_user": 1,
            "email_restrictions": [request.customer_email],
        })
        if response.status_code in (200, 201):
            # WooCommerce answers with the code lower-cased; codes are case-insensitive there.
            return CouponResult(request.code, created=True)
        if _error_code(response) == ALREADY_EXISTS:
            return CouponResult(request.code, created=False)
        raise _refused(what, response)

    def check(self) -> str:
        what = "WooCommerce orders"
        response = self._call("GET", "/orders", what, params={"per_page": "1"})
        if response.status_code != 200:
            raise _refused(what, response)
        how = "OAuth 1.0a over HTTP" if self._oauth else "HTTP Basic over HTTPS"
        return f"WooCommerce REST API v3 at {self.base}: orders readable ({how})"

    def close(self) -> None:
        self._http.close()


def _json(what: str, response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200 and response.status_code != 201:
        raise _refused(what, response)
    try:
        data = response.json()
    except ValueError:
        raise ShopError(f"{what}: the shop's answer is not JSON", retry=True) from None
    if not isinstance(data, dict):
        raise ShopError(f"{what}: unexpected answer from the shop", retry=True)
    return data


def _error_code(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("code", "")) if isinstance(data, dict) else ""


def _refused(what: str, response: httpx.Response) -> ShopError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    detail = ""
    if isinstance(data, dict):
        detail = " ".join(str(data.get(key, "")) for key in ("code", "message")).strip()
    return refused(what, response, detail)


def _order(number: str, data: dict[str, Any]) -> Order:
    items = tuple(OrderItem(str(line.get("name", "")), int(line.get("quantity") or 0))
                  for line in data.get("line_items") or [] if isinstance(line, dict))
    shipping = [str(line.get("method_title")) for line in data.get("shipping_lines") or []
                if isinstance(line, dict) and line.get("method_title")]
    tracking: list[str] = []
    for meta in data.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == TRACKING_META:
            for entry in meta.get("value") or []:
                if isinstance(entry, dict) and entry.get("tracking_number"):
                    provider = entry.get("tracking_provider") or entry.get("custom_tracking_provider")
                    tracking.append(" ".join(str(part) for part in (provider, entry["tracking_number"])
                                             if part))
    total = data.get("total")
    currency = data.get("currency")
    return Order(
        number=str(data.get("number") or number),
        status=str(data["status"]) if data.get("status") else None,
        created=str(data["date_created"]) if data.get("date_created") else None,
        total=" ".join(str(part) for part in (total, currency) if part) or None,
        items=items,
        shipping_method=", ".join(shipping) or None,
        tracking=tuple(tracking),
    )
