"""One HTTP exchange with a shop, its failures turned into ShopError without secrets in them.

httpx logs every request line (URL with its query, where WooCommerce's OAuth parameters travel)
at INFO: its loggers are held at WARNING here so no level of ours ever prints them. Messages built
here name the method, the path and the status, never a header, a query string or an exception's
own text (which can carry the URL).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from daemon.shop.model import ShopError

for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

USER_AGENT = "incidencias"


def client(timeout: float, headers: dict[str, str] | None = None, **options: Any) -> httpx.Client:
    """A client whose every phase (connect, read, write, pool) is bounded by `timeout` seconds."""
    return httpx.Client(timeout=httpx.Timeout(timeout),
                        headers={"User-Agent": USER_AGENT, **(headers or {})},
                        follow_redirects=False, **options)


def send(http: httpx.Client, method: str, url: str, *, what: str, **options: Any) -> httpx.Response:
    """The response, whatever its status below 500; outages raise ShopError(retry=True)."""
    try:
        response = http.request(method, url, **options)
    except httpx.TimeoutException:
        raise ShopError(f"{what}: the shop did not answer in time", retry=True) from None
    except httpx.HTTPError as error:
        raise ShopError(f"{what}: could not reach the shop ({type(error).__name__})",
                        retry=True) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ShopError(f"{what}: the shop answered HTTP {response.status_code}", retry=True)
    return response


def refused(what: str, response: httpx.Response, detail: str) -> ShopError:
    """A 4xx answer, with the platform's own error code and message (never our request)."""
    return ShopError(f"{what}: the shop refused (HTTP {response.status_code}{': ' if detail else ''}"
                     f"{detail[:300]})", retry=False)
