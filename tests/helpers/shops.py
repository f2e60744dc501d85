"""Local HTTP servers that answer like the three shop platforms, for the tests of daemon/shop.

None of WooCommerce, PrestaShop or Shopify can run here, so each server implements the documented
subset incidencias uses, and checks the requests as strictly as the platform does: method, path,
credentials (WooCommerce's OAuth 1.0a signature recomputed the way WooCommerce does, nonces not
reusable), body fields and their types. Answers, errors included, have the documented shapes:

- WooCommerce REST API v3 (WooCommerce 8/9): `GET /wp-json/wc/v3/orders/{id}`, `GET .../orders`,
  `POST .../coupons`; errors as WordPress REST `{"code", "message", "data": {"status"}}`, the
  duplicate code as 400 `woocommerce_rest_coupon_code_already_exists`.
- PrestaShop 8 webservice: `/api/orders`, `/api/order_states`, `/api/order_carriers`,
  `/api/carriers`, `/api/customers`, `/api/languages`, `/api/cart_rules`, XML in and out, the key
  as Basic user, errors as `<prestashop><errors><error><code/><message/>`.
- Shopify Admin GraphQL API 2025-01: `POST /admin/api/2025-01/graphql.json` with
  `X-Shopify-Access-Token`; the three operations incidencias sends, recognised by their root
  field; input fields checked against `DiscountCodeBasicInput`; `userErrors` code `TAKEN` for a
  code in use.

Every server can be told to answer 503 (`down = True`) or to answer late (`delay` seconds), and
keeps what it was asked (`requests`) and what it holds (`coupons`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

WOO_KEY = "ck_" + "4f" * 20
WOO_SECRET = "cs_" + "9a" * 20
PRESTA_KEY = "UCCLLQ9N2ARSHWCXLT74KUKSSK34BFKX"
SHOPIFY_TOKEN = "shpat_" + "0b" * 16


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any) -> Answer:
    return Answer(status, json.dumps(data).encode())


class FakeShop:
    """The HTTP plumbing shared by the three platforms; subclasses implement `answer`."""

    def __init__(self) -> None:
        self.down = False
        self.delay = 0.0
        self.requests: list[Request] = []
        self.coupons: dict[str, Any] = {}
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, dict(parse_qsl(parts.query)),
                                  {key.lower(): value for key, value in self.headers.items()}, body)
                with shop._lock:
                    shop.requests.append(request)
                if shop.delay:
                    time.sleep(shop.delay)
                if shop.down:
                    answer = Answer(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                                    "text/html")
                else:
                    with shop._lock:
                        answer = shop.answer(request)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: its time-out, which is what a test wanted

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeShop:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeShop:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    def calls(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]


# --- WooCommerce -------------------------------------------------------------------------------

def woo_order(number: int, *, status: str = "processing", tracking: str | None = "1Z999AA10123456784"
              ) -> dict[str, Any]:
    """An order as `GET /wp-json/wc/v3/orders/{id}` returns it (the fields incidencias reads and
    some it does not), with the Shipment Tracking extension's meta when `tracking` is given."""
    meta = [{"id": 901, "key": "_wc_shipment_tracking_items", "value": [
        {"tracking_provider": "Correos", "custom_tracking_provider": "", "tracking_number": tracking,
         "date_shipped": "1764892800", "tracking_id": "a1b2c3"}]}] if tracking else []
    return {
        "id": number, "parent_id": 0, "number": str(number), "order_key": f"wc_order_{number}abc",
        "created_via": "checkout", "version": "9.4.2", "status": status, "currency": "EUR",
        "date_created": "2026-11-28T10:15:02", "date_created_gmt": "2026-11-28T09:15:02",
        "discount_total": "0.00", "shipping_total": "4.95", "total": "54.85", "total_tax": "9.52",
        "customer_id": 12, "billing": {"first_name": "María", "email": "maria@example.net"},
        "payment_method": "redsys", "payment_method_title": "Tarjeta",
        "line_items": [
            {"id": 315, "name": "Camiseta azul - M", "product_id": 93, "variation_id": 94,
             "quantity": 2, "subtotal": "29.90", "total": "29.90", "sku": "CAM-AZ-M",
             "price": 14.95},
            {"id": 316, "name": "Gorra roja", "product_id": 22, "variation_id": 0, "quantity": 1,
             "subtotal": "20.00", "total": "20.00", "sku": "GOR-R", "price": 20},
        ],
        "shipping_lines": [{"id": 317, "method_title": "Envío urgente", "method_id": "flat_rate",
                            "instance_id": "2", "total": "4.95", "total_tax": "0.00"}],
        "meta_data": meta,
    }


_COUPON_FIELDS = {
    "code": str, "amount": str, "discount_type": str, "description": str, "date_expires": str,
    "date_expires_gmt": str, "individual_use": bool, "product_ids": list,
    "excluded_product_ids": list, "usage_limit": int, "usage_limit_per_user": int,
    "limit_usage_to_x_items": int, "free_shipping": bool, "product_categories": list,
    "excluded_product_categories": list, "exclude_sale_items": bool, "minimum_amount": str,
    "maximum_amount": str, "email_restrictions": list, "meta_data": list,
}


def _woo_error(status: int, code: str, message: str, **data: Any) -> Answer:
    return _json(status, {"code": code, "message": message, "data": {"status": status, **data}})


def _rfc3986(value: str) -> str:
    return quote(value, safe="~")


class WooCommerceShop(FakeShop):
    """Answers over plain HTTP, so like WooCommerce it accepts only OAuth 1.0a signed requests
    (`basic_allowed` pretends the connection was HTTPS, where HTTP Basic is the way)."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[int, dict[str, Any]] = {4411: woo_order(4411)}
        self.basic_allowed = False
        self._nonces: set[str] = set()
        self._next_id = 700

    def _authenticated(self, request: Request) -> Answer | None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic ") and self.basic_allowed:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, password) == (WOO_KEY, WOO_SECRET):
                return None
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              "Consumer secret is invalid.")
        params = dict(request.query)
        if "oauth_consumer_key" not in params:
            return _woo_error(401, "woocommerce_rest_cannot_view",
                              "Sorry, you cannot list resources.")
        missing = [name for name in ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce",
                                     "oauth_signature", "oauth_signature_method") if name not in params]
        if missing:
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              f"{', '.join(missing)} parameter is missing.")
        if params["oauth_consumer_key"] != WOO_KEY:
            return _woo_error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if params["oauth_signature_method"] not in ("HMAC-SHA1", "HMAC-SHA256"):
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              "Invalid signature - signature method is invalid.")
        given = params.pop("oauth_signature")
        # WooCommerce: keys sorted, keys and values RFC 3986 encoded, joined by %3D and %26.
        pairs = [f"{_rfc3986(key)}%3D{_rfc3986(value)}" for key, value in sorted(params.items())]
        base = "&".join((request.method, _rfc3986(self.url + request.path), "%26".join(pairs)))
        algorithm = hashlib.sha1 if params["oauth_signature_method"] == "HMAC-SHA1" else hashlib.sha256
        expected = base64.b64encode(hmac.new(f"{WOO_SECRET}&".encode(), base.encode(),
                                             algorithm).digest()).decode()
        if not hmac.compare_digest(expected, given):
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              "Invalid signature - provided signature does not match.")
        if abs(int(params["oauth_timestamp"]) - time.time()) > 15 * 60:
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              "Invalid timestamp.")
        if params["oauth_nonce"] in self._nonces:
            return _woo_error(401, "woocommerce_rest_authentication_error",
                              "Invalid nonce - nonce has already been used.")
        self._nonces.add(params["oauth_nonce"])
        return None

    def answer(self, request: Request) -> Answer:
        refused = self._authenticated(request)
        if refused is not None:
            return refused
        path = request.path.removeprefix("/wp-json/wc/v3")
        if request.method == "GET" and path == "/orders":
            return _json(200, list(self.orders.values())[:int(request.query.get("per_page", 10))])
        if request.method == "GET" and path.startswith("/orders/"):
            order_id = path.removeprefix("/orders/")
            order = self.orders.get(int(order_id)) if order_id.isdigit() else None
            if order is None:
                return _woo_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return _json(200, order)
        if request.method == "POST" and path == "/coupons":
            return self._create_coupon(request)
        return _woo_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def _create_coupon(self, request: Request) -> Answer:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _woo_error(400, "rest_missing_callback_param", "Missing parameter(s): code",
                              params=["code"])
        body = json.loads(request.body)
        if not body.get("code"):
            return _woo_error(400, "rest_missing_callback_param", "Missing parameter(s): code",
                              params=["code"])
        for name, value in body.items():
            expected = _COUPON_FIELDS.get(name)
            if expected is None or not isinstance(value, expected) or (
                    expected is int and isinstance(value, bool)):
                return _woo_error(400, "rest_invalid_param", f"Invalid parameter(s): {name}",
                                  params={name: f"{name} is not of type {expected}."})
        if body.get("discount_type", "fixed_cart") not in ("percent", "fixed_cart", "fixed_product"):
            return _woo_error(400, "rest_invalid_param", "Invalid parameter(s): discount_type",
                              params={"discount_type": "discount_type is not one of percent, "
                                                       "fixed_cart, and fixed_product."})
        code = body["code"].lower()  # WooCommerce codes are case-insensitive
        if code in self.coupons:
            return _woo_error(400, "woocommerce_rest_coupon_code_already_exists",
                              "The coupon code already exists")
        self._next_id += 1
        coupon = {"id": self._next_id, "code": code, "amount": f"{float(body.get('amount', 0)):.2f}",
                  "discount_type": body.get("discount_type", "fixed_cart"),
                  "description": body.get("description", ""),
                  "date_expires": body.get("date_expires"), "usage_count": 0,
                  "individual_use": body.get("individual_use", False),
                  "usage_limit": body.get("usage_limit"),
                  "usage_limit_per_user": body.get("usage_limit_per_user"),
                  "email_restrictions": body.get("email_restrictions", []), "used_by": [],
                  "date_created": "2026-12-06T10:00:00", "meta_data": []}
        self.coupons[code] = coupon
        return _json(201, coupon)


# --- PrestaShop ----------------------------------------------------------------------------------

_PS_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<prestashop xmlns:xlink="http://www.w3.org/1999/xlink">\n'


def _xml(status: int, inner: str) -> Answer:
    return Answer(status, (_PS_HEAD + inner + "\n</prestashop>\n").encode(), "text/xml;charset=utf-8",
                  {"PSWS-Version": "8.2.0"})


def _ps_error(status: int, code: int, message: str) -> Answer:
    return _xml(status, f"<errors>\n<error>\n<code><![CDATA[{code}]]></code>\n"
                        f"<message><![CDATA[{message}]]></message>\n</error>\n</errors>")


def _cdata(name: str, value: object) -> str:
    return f"<{name}><![CDATA[{value}]]></{name}>"


_CART_RULE_FIELDS = {
    "id_customer", "date_from", "date_to", "description", "quantity", "quantity_per_user",
    "priority", "partial_use", "code", "minimum_amount", "minimum_amount_tax",
    "minimum_amount_currency", "minimum_amount_shipping", "country_restriction",
    "carrier_restriction", "group_restriction", "cart_rule_restriction", "product_restriction",
    "shop_restriction", "free_shipping", "reduction_percent", "reduction_amount", "reduction_tax",
    "reduction_currency", "reduction_product", "reduction_exclude_special", "gift_product",
    "gift_product_attribute", "highlight", "active", "date_add", "date_upd", "name",
}


class PrestaShopShop(FakeShop):
    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[int, dict[str, Any]] = {4411: {
            "id": 4411, "reference": "XKBKNABJK", "current_state": 4, "id_customer": 7,
            "date_add": "2026-11-28 10:15:02", "total_paid": "54.850000", "shipping_number": "",
            "rows": [("Camiseta azul - Talla M", 2), ("Gorra roja", 1)]}}
        self.order_carriers = [{"id": 31, "id_order": 4411, "id_carrier": 2,
                                "tracking_number": "PK123456789ES"}]
        self.states = {4: "Enviado", 5: "Entregado"}
        self.carriers = {2: "Correos Express"}
        self.customers = {7: "maria@example.net"}
        self.languages = [1, 2]
        self._next_id = 40

    def answer(self, request: Request) -> Answer:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return _ps_error(401, 17, "Authentication key is empty")
        user = base64.b64decode(auth[6:]).decode().partition(":")[0]
        if user != PRESTA_KEY:
            return _ps_error(401, 22, "Authentication key does not exist")
        parts = request.path.removeprefix("/api").strip("/").split("/")
        resource, ident = parts[0], (parts[1] if len(parts) > 1 else "")
        if request.method == "GET":
            return self._get(resource, ident, request.query)
        if request.method == "POST" and resource == "cart_rules" and not ident:
            return self._create_cart_rule(request.body)
        return _ps_error(405, 100, f"Method {request.method} is not valid for {resource}")

    def _filter(self, query: dict[str, str], name: str) -> str | None:
        value = query.get(f"filter[{name}]")
        if value is None:
            return None
        return value[1:-1] if value.startswith("[") and value.endswith("]") else value

    def _get(self, resource: str, ident: str, query: dict[str, str]) -> Answer:
        if resource == "orders":
            if ident:
                order = self.orders.get(int(ident)) if ident.isdigit() else None
                if order is None:
                    return _ps_error(404, 87, f"Id(s) not exists: {ident}")
                return _xml(200, self._order(order))
            reference = self._filter(query, "reference")
            found = [o for o in self.orders.values() if reference is None or o["reference"] == reference]
            if query.get("limit"):
                found = found[:int(query["limit"].split(",")[-1])]
            if query.get("display") == "full":
                return _xml(200, "<orders>" + "".join(self._order(o) for o in found) + "</orders>")
            return _xml(200, "<orders>" + "".join(f"<order>{_cdata('id', o['id'])}</order>"
                                                  for o in found) + "</orders>")
        if resource == "order_states" and ident.isdigit() and int(ident) in self.states:
            name = "".join(f'<language id="{lang}" xlink:href="{self.url}/api/languages/{lang}">'
                           f"<![CDATA[{self.states[int(ident)]}]]></language>" for lang in self.languages)
            return _xml(200, f"<order_state>{_cdata('id', ident)}<name>{name}</name></order_state>")
        if resource == "carriers" and ident.isdigit() and int(ident) in self.carriers:
            return _xml(200, f"<carrier>{_cdata('id', ident)}{_cdata('name', self.carriers[int(ident)])}"
                             "</carrier>")
        if resource == "order_carriers" and not ident:
            wanted = self._filter(query, "id_order")
            rows = [row for row in self.order_carriers if str(row["id_order"]) == wanted]
            return _xml(200, "<order_carriers>" + "".join(
                "<order_carrier>" + "".join(_cdata(key, value) for key, value in row.items())
                + "</order_carrier>" for row in rows) + "</order_carriers>")
        if resource == "customers" and not ident:
            email = self._filter(query, "email")
            ids = [cid for cid, address in self.customers.items() if address == email]
            return _xml(200, "<customers>" + "".join(f"<customer>{_cdata('id', cid)}</customer>"
                                                     for cid in ids) + "</customers>")
        if resource == "languages" and not ident:
            return _xml(200, "<languages>" + "".join(f"<language>{_cdata('id', lang)}</language>"
                                                     for lang in self.languages) + "</languages>")
        if resource == "cart_rules" and not ident:
            code = self._filter(query, "code")
            found = [rule for rule in self.coupons.values() if code is None or rule["code"] == code]
            return _xml(200, "<cart_rules>" + "".join(f"<cart_rule>{_cdata('id', rule['id'])}</cart_rule>"
                                                      for rule in found) + "</cart_rules>")
        return _ps_error(404, 87, f"Id(s) not exists: {ident}" if ident else
                         f"Resource of type \"{resource}\" does not exists")

    def _order(self, order: dict[str, Any]) -> str:
        rows = "".join(
            f"<order_row>{_cdata('id', n)}{_cdata('product_id', 90 + n)}"
            f"{_cdata('product_quantity', quantity)}{_cdata('product_name', name)}"
            f"{_cdata('product_price', '14.950000')}</order_row>"
            for n, (name, quantity) in enumerate(order["rows"], start=1))
        fields = "".join(_cdata(key, order[key]) for key in (
            "id", "reference", "current_state", "id_customer", "date_add", "total_paid",
            "shipping_number"))
        return (f"<order>{fields}{_cdata('id_carrier', 2)}{_cdata('payment', 'Redsys')}"
                f'<associations><order_rows nodeType="order_row" virtualEntity="true">{rows}'
                "</order_rows></associations></order>")

    def _create_cart_rule(self, body: bytes) -> Answer:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return _ps_error(400, 127, "XML error : String could not be parsed as XML")
        rule = root.find("cart_rule")
        if root.tag != "prestashop" or rule is None:
            return _ps_error(400, 93, "Resource name is missing in the XML")
        values: dict[str, Any] = {}
        for child in rule:
            if child.tag not in _CART_RULE_FIELDS:
                return _ps_error(400, 127, f"Unable to save resource: field {child.tag} does not exist")
            values[child.tag] = child if child.tag == "name" else (child.text or "").strip()
        for required in ("date_from", "date_to", "name"):
            if required not in values:
                return _ps_error(400, 41, f"Validation error: \"Property CartRule->{required} is empty\"")
        names = values["name"].findall("language")
        if not names or not all((n.text or "").strip() and n.get("id", "").isdigit() for n in names):
            return _ps_error(400, 41, "Validation error: \"Property CartRule->name is empty\"")
        for number in ("quantity", "quantity_per_user", "id_customer", "reduction_percent"):
            if number in values and not values[number].replace(".", "", 1).isdigit():
                return _ps_error(400, 41, f"Validation error: \"Property CartRule->{number} is not valid\"")
        self._next_id += 1
        values["id"] = self._next_id
        values["name"] = names[0].text
        self.coupons[str(self._next_id)] = values
        inner = "".join(_cdata(key, value) for key, value in values.items() if key != "name")
        return _xml(201, f"<cart_rule>{inner}<name><language id=\"1\"><![CDATA[{values['name']}]]>"
                         "</language></name></cart_rule>")


# --- Shopify -------------------------------------------------------------------------------------

SHOPIFY_PATH = "/admin/api/2025-01/graphql.json"
_BASIC_INPUT_FIELDS = {
    "appliesOncePerCustomer", "code", "combinesWith", "customerGets", "customerSelection",
    "endsAt", "minimumRequirement", "recurringCycleLimit", "startsAt", "title", "usageLimit",
}


def shopify_order(name: str) -> dict[str, Any]:
    return {
        "name": name, "createdAt": "2026-11-28T09:15:02Z", "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "FULFILLED",
        "totalPriceSet": {"shopMoney": {"amount": "54.85", "currencyCode": "EUR"}},
        "lineItems": {"nodes": [{"title": "Camiseta azul", "quantity": 2},
                                {"title": "Gorra roja", "quantity": 1}]},
        "shippingLine": {"title": "Envío urgente"},
        "fulfillments": [{"trackingInfo": [{"company": "SEUR", "number": "SEUR0001234"}]}],
    }


class ShopifyShop(FakeShop):
    def __init__(self) -> None:
        super().__init__()
        self.orders = {"#4411": shopify_order("#4411")}

    def answer(self, request: Request) -> Answer:
        if request.path != SHOPIFY_PATH or request.method != "POST":
            return _json(404, {"errors": "Not Found"})
        if request.headers.get("x-shopify-access-token") != SHOPIFY_TOKEN:
            return _json(401, {"errors": "[API] Invalid API key or access token (unrecognized login "
                                         "or wrong password)"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _json(400, {"errors": {"query": "Required parameter missing or invalid"}})
        payload = json.loads(request.body)
        query, variables = payload.get("query", ""), payload.get("variables") or {}
        if "discountCodeBasicCreate" in query:
            return self._discount(variables)
        if "orders(" in query:
            search = str(variables.get("query", ""))
            name = search.removeprefix("name:")
            nodes = [self.orders[name]] if name in self.orders else []
            return _json(200, {"data": {"orders": {"nodes": nodes}}, "extensions": self._cost()})
        if "shop" in query:
            return _json(200, {"data": {"shop": {"name": "Tienda Ejemplo"}}, "extensions": self._cost()})
        return _json(200, {"errors": [{"message": "Field 'unknown' doesn't exist on type 'QueryRoot'",
                                       "extensions": {"code": "undefinedField"}}]})

    @staticmethod
    def _cost() -> dict[str, Any]:
        return {"cost": {"requestedQueryCost": 12, "actualQueryCost": 12, "throttleStatus": {
            "maximumAvailable": 2000.0, "currentlyAvailable": 1988, "restoreRate": 100.0}}}

    def _discount(self, variables: dict[str, Any]) -> Answer:
        given = variables.get("basicCodeDiscount")
        if not isinstance(given, dict):
            return _json(200, {"errors": [{"message": "Variable $basicCodeDiscount of type "
                                                      "DiscountCodeBasicInput! was provided invalid value",
                                           "extensions": {"code": "INVALID_VARIABLE"}}]})
        unknown = sorted(set(given) - _BASIC_INPUT_FIELDS)
        if unknown:
            return _json(200, {"errors": [{
                "message": f"Variable $basicCodeDiscount of type DiscountCodeBasicInput! was provided "
                           f"invalid value for {unknown[0]} (Field is not defined on DiscountCodeBasicInput)",
                "extensions": {"code": "INVALID_VARIABLE"}}]})
        errors = []
        for required in ("title", "code", "startsAt", "customerGets", "customerSelection"):
            if not given.get(required):
                errors.append({"field": ["basicCodeDiscount", required], "code": "BLANK",
                               "message": f"{required} can't be blank"})
        percentage = ((given.get("customerGets") or {}).get("value") or {}).get("percentage")
        if percentage is not None and not 0 <= percentage <= 1:
            errors.append({"field": ["basicCodeDiscount", "customerGets", "value", "percentage"],
                           "code": "VALUE_OUTSIDE_RANGE", "message": "Value must be between 0.0 and 1.0"})
        code = str(given.get("code", ""))
        if code.lower() in self.coupons:
            errors.append({"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
                           "message": "Code must be unique. Please try a different code."})
        if errors:
            return _json(200, {"data": {"discountCodeBasicCreate": {"codeDiscountNode": None,
                                                                    "userErrors": errors}},
                               "extensions": self._cost()})
        node_id = f"gid://shopify/DiscountCodeNode/{1000 + len(self.coupons)}"
        self.coupons[code.lower()] = {**given, "id": node_id}
        return _json(200, {"data": {"discountCodeBasicCreate": {"codeDiscountNode": {"id": node_id},
                                                                "userErrors": []}},
                           "extensions": self._cost()})
