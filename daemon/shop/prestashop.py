"""PrestaShop webservice (`/api/...`, XML): orders with their state, carrier and tracking, and
cart rules as coupons.

The webservice key is the HTTP Basic user name with an empty password. PrestaShop does not refuse
a second cart rule with the same code, so a coupon is looked up by its code before it is created:
finding ours means an earlier try got through, which counts as success. Order numbers that are all
digits are order ids; others are looked up as the order reference customers see ("XKBKNABJK").
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import httpx

from daemon.shop.http import client, refused, send
from daemon.shop.model import CouponRequest, CouponResult, Order, OrderItem, ShopError

_REFERENCE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class PrestaShop:
    kind = "prestashop"

    def __init__(self, url: str, key: str, timeout: float, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base = url.rstrip("/")
        self._http = client(timeout, auth=httpx.BasicAuth(key, ""), transport=transport)

    def _get(self, path: str, what: str, params: dict[str, str] | None = None) -> ET.Element | None:
        """The <prestashop> root of the answer, None on 404."""
        response = send(self._http, "GET", f"{self.base}/api{path}", what=what, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refused(what, response)
        return _xml(what, response)

    def look_up_order(self, number: str) -> Order | None:
        what = f"PrestaShop order {number}"
        if number.isdigit():
            root = self._get(f"/orders/{number}", what)
            order = None if root is None else root.find("order")
        elif set(number.upper()) <= _REFERENCE_CHARS:
            root = self._get("/orders", what, {"filter[reference]": f"[{number.upper()}]",
                                               "display": "full"})
            order = None if root is None else root.find("orders/order")
        else:
            return None
        if order is None:
            return None
        return self._order(number, order, what)

    def _order(self, number: str, order: ET.Element, what: str) -> Order:
        state = self._name(f"/order_states/{_text(order, 'current_state')}", "order_state", what)
        carriers = self._get("/order_carriers", what, {"filter[id_order]": f"[{_text(order, 'id')}]",
                                                       "display": "full"})
        shipping: list[str] = []
        tracking: list[str] = []
        for row in [] if carriers is None else carriers.findall("order_carriers/order_carrier"):
            carrier = self._name(f"/carriers/{_text(row, 'id_carrier')}", "carrier", what)
            if carrier:
                shipping.append(carrier)
            if _text(row, "tracking_number"):
                tracking.append(" ".join(part for part in (carrier, _text(row, "tracking_number"))
                                         if part))
        if not tracking and _text(order, "shipping_number"):
            tracking.append(_text(order, "shipping_number"))
        items = tuple(OrderItem(_text(row, "product_name"), _int(_text(row, "product_quantity")))
                      for row in order.findall("associations/order_rows/order_row"))
        total = _text(order, "total_paid")
        return Order(number=number,
                     status=state or None,
                     created=_text(order, "date_add") or None,
                     total=_money(total) if total else None,
                     items=items,
                     shipping_method=", ".join(dict.fromkeys(shipping)) or None,
                     tracking=tuple(tracking))

    def _name(self, path: str, element: str, what: str) -> str:
        """The `name` of a state or carrier: plain, or the first language of a multilingual one."""
        if path.endswith("/"):
            return ""
        root = self._get(path, what)
        node = None if root is None else root.find(f"{element}/name")
        if node is None:
            return ""
        language = node.find("language")
        return ((language if language is not None else node).text or "").strip()

    def create_coupon(self, request: CouponRequest) -> CouponResult:
        what = f"PrestaShop cart rule {request.code}"
        found = self._get("/cart_rules", what, {"filter[code]": f"[{request.code}]",
                                                "display": "[id]"})
        if found is not None and found.find("cart_rules/cart_rule") is not None:
            return CouponResult(request.code, created=False)
        customers = self._get("/customers", what, {"filter[email]": f"[{request.customer_email}]",
                                                   "display": "[id]"})
        customer = "" if customers is None else _text(customers, "customers/customer/id")
        languages = self._get("/languages", what, {"filter[active]": "[1]", "display": "[id]"})
        ids = [] if languages is None else [_text(lang, "id")
                                            for lang in languages.findall("languages/language")]
        title = escape(request.title)
        names = "".join(f'<language id="{lang}">{title}</language>'
                        for lang in ids if lang.isdigit()) or f'<language id="1">{title}</language>'
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<prestashop><cart_rule>'
            f"<id_customer>{escape(customer or '0')}</id_customer>"
            f"<date_from>{request.valid_from.isoformat()} 00:00:00</date_from>"
            f"<date_to>{request.valid_until.isoformat()} 23:59:59</date_to>"
            f"<name>{names}</name>"
            "<quantity>1</quantity><quantity_per_user>1</quantity_per_user>"
            f"<code>{escape(request.code)}</code>"
            f"<reduction_percent>{request.percent}</reduction_percent>"
            "<highlight>0</highlight><partial_use>0</partial_use><active>1</active>"
            "</cart_rule></prestashop>")
        response = send(self._http, "POST", f"{self.base}/api/cart_rules", what=what,
                        content=body.encode(), headers={"Content-Type": "text/xml"})
        if response.status_code not in (200, 201):
            raise _refused(what, response)
        created = _xml(what, response)
        return CouponResult(_text(created, "cart_rule/code") or request.code, created=True)

    def check(self) -> str:
        what = "PrestaShop orders"
        self._get("/orders", what, {"display": "[id]", "limit": "1"})
        return f"PrestaShop webservice at {self.base}: orders readable"

    def close(self) -> None:
        self._http.close()


def _xml(what: str, response: httpx.Response) -> ET.Element:
    try:
        return ET.fromstring(response.content)
    except ET.ParseError:
        raise ShopError(f"{what}: the shop's answer is not XML", retry=True) from None


def _refused(what: str, response: httpx.Response) -> ShopError:
    """PrestaShop's <errors><error><code/><message/></error></errors>, as one line."""
    detail = ""
    try:
        root = ET.fromstring(response.content)
        detail = "; ".join(f"{_text(error, 'code')} {_text(error, 'message')}".strip()
                           for error in root.findall("errors/error"))
    except ET.ParseError:
        pass
    return refused(what, response, detail)


def _text(node: ET.Element, path: str) -> str:
    found = node.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def _int(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _money(value: str) -> str:
    try:
        return f"{float(value):.2f}"
    except ValueError:
        return value
