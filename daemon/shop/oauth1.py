"""OAuth 1.0a "one-legged" request signing (RFC 5849, HMAC-SHA1), as WooCommerce wants over plain
HTTP: the consumer key and signature travel as query parameters, no token, and the signing key is
the consumer secret followed by '&'. Pure: the nonce and the time are passed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote


def _encode(value: str) -> str:
    return quote(value, safe="~")


def base_string(method: str, url: str, params: Mapping[str, str]) -> str:
    """METHOD&encoded-URL&encoded-sorted-parameters; `url` has no query string."""
    pairs = sorted((_encode(key), _encode(value)) for key, value in params.items())
    normalized = "&".join(f"{key}={value}" for key, value in pairs)
    return "&".join((method.upper(), _encode(url), _encode(normalized)))


def signature(secret: str, method: str, url: str, params: Mapping[str, str]) -> str:
    key = f"{_encode(secret)}&".encode()
    digest = hmac.new(key, base_string(method, url, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_params(key: str, secret: str, method: str, url: str, params: Mapping[str, str], *,
                  nonce: str, timestamp: int) -> dict[str, str]:
    """`params` plus the oauth_* parameters and their signature."""
    oauth = {**params, "oauth_consumer_key": key, "oauth_nonce": nonce,
             "oauth_signature_method": "HMAC-SHA1", "oauth_timestamp": str(timestamp)}
    return {**oauth, "oauth_signature": signature(secret, method, url, oauth)}
