"""Shopify Admin GraphQL API, version 2025-01 (pinned: Shopify retires each version after a year,
and a newer one is a deliberate upgrade): orders by name, `discountCodeBasicCreate`.

The access token goes in `X-Shopify-Access-Token`. GraphQL answers 200 even when something went
wrong: top-level `errors` (throttling, a bad query) and the mutation's `userErrors` are read; a
`TAKEN` error on our code means an earlier try got through, which counts as success. Shopify
limits a coupon to one use per customer and a total usage limit, not to an email address.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import httpx

from daemon.shop.http import client, refused, send
from daemon.shop.model import CouponRequest, CouponResult, Order, OrderItem, ShopError

API_VERSION = "2025-01"

ORDER_QUERY = """
query OrderByName($query: String!) {
  orders(first: 1, query: $query) {
    nodes {
      name
      createdAt
      displayFinancialStatus
      displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { title quantity } }
      shippingLine { title }
      fulfillments(first: 10) { trackingInfo(first: 10) { company number } }
    }
  }
}
"""

COUPON_MUTATION = """
mutation CreateCoupon($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""

SHOP_QUERY = "query { shop { name } }"


class Shopify:
    kind = "shopify"

    def __init__(self, url: str, token: str, timeout: float, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base = url.rstrip("/")
        self._http = client(timeout, transport=transport,
                            headers={"X-Shopify-Access-Token": token})
        self.endpoint = f"{self.base}/admin/api/{API_VERSION}/graphql.json"

    def _graphql(self, what: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = send(self._http, "POST", self.endpoint, what=what,
                        json={"query": query, "variables": variables})
        if response.status_code != 200:
            raise _refused(what, response)
        try:
            answer = response.json()
        except ValueError:
            raise ShopError(f"{what}: the shop's answer is not JSON", retry=True) from None
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            codes = [str((error.get("extensions") or {}).get("code", "")) for error in errors
                     if isinstance(error, dict)]
            messages = "; ".join(str(error.get("message", "")) for error in errors
                                 if isinstance(error, dict))
            raise ShopError(f"{what}: {messages[:300]}",
                            retry="THROTTLED" in codes or "INTERNAL_SERVER_ERROR" in codes)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ShopError(f"{what}: unexpected answer from the shop", retry=True)
        return data

    def look_up_order(self, number: str) -> Order | None:
        name = number.lstrip("#")
        if not name or '"' in name or "\\" in name:
            return None
        data = self._graphql(f"Shopify order {number}", ORDER_QUERY, {"query": f"name:#{name}"})
        nodes = ((data.get("orders") or {}).get("nodes")) or []
        return _order(number, nodes[0]) if nodes else None

    def create_coupon(self, request: CouponRequest) -> CouponResult:
        what = f"Shopify discount {request.code}"
        data = self._graphql(what, COUPON_MUTATION, {"basicCodeDiscount": {
            "title": request.title,
            "code": request.code,
            "startsAt": _instant(request.valid_from, time(0, 0)),
            "endsAt": _instant(request.valid_until, time(23, 59, 59)),
            "customerSelection": {"all": True},
            "customerGets": {"value": {"percentage": request.percent / 100},
                             "items": {"all": True}},
            "appliesOncePerCustomer": True,
            "usageLimit": 1,
        }})
        payload = data.get("discountCodeBasicCreate") or {}
        errors = [error for error in payload.get("userErrors") or [] if isinstance(error, dict)]
        if not errors and payload.get("codeDiscountNode"):
            return CouponResult(request.code, created=True)
        if errors and all(error.get("code") == "TAKEN" for error in errors):
            return CouponResult(request.code, created=False)
        detail = "; ".join(f"{error.get('code')} {error.get('message')}" for error in errors)
        raise ShopError(f"{what}: the shop refused ({detail[:300] or 'no discount created'})",
                        retry=False)

    def check(self) -> str:
        data = self._graphql("Shopify shop", SHOP_QUERY, {})
        name = (data.get("shop") or {}).get("name", "")
        return f"Shopify Admin GraphQL API {API_VERSION} at {self.base}: shop {name!r} readable"

    def close(self) -> None:
        self._http.close()


def _instant(day: Any, at: time) -> str:
    return datetime.combine(day, at, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _refused(what: str, response: httpx.Response) -> ShopError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    errors = data.get("errors", "") if isinstance(data, dict) else ""
    return refused(what, response, errors if isinstance(errors, str) else str(errors))


def _order(number: str, node: dict[str, Any]) -> Order:
    money = ((node.get("totalPriceSet") or {}).get("shopMoney")) or {}
    status = ", ".join(str(part).lower().replace("_", " ") for part in
                       (node.get("displayFinancialStatus"), node.get("displayFulfillmentStatus"))
                       if part)
    tracking = [" ".join(str(part) for part in (info.get("company"), info.get("number")) if part)
                for fulfillment in node.get("fulfillments") or []
                for info in fulfillment.get("trackingInfo") or [] if info.get("number")]
    return Order(
        number=str(node.get("name") or number),
        status=status or None,
        created=node.get("createdAt"),
        total=" ".join(str(money[key]) for key in ("amount", "currencyCode") if money.get(key))
        or None,
        items=tuple(OrderItem(str(item.get("title", "")), int(item.get("quantity") or 0))
                    for item in (node.get("lineItems") or {}).get("nodes") or []),
        shipping_method=(node.get("shippingLine") or {}).get("title"),
        tracking=tuple(tracking),
    )
