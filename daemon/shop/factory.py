"""The client that `[platform] kind` names, built from the config and its secrets."""

from __future__ import annotations

import httpx

from daemon.config import PlatformConfig, Secrets
from daemon.shop.model import Platform
from daemon.shop.prestashop import PrestaShop
from daemon.shop.shopify import Shopify
from daemon.shop.woocommerce import WooCommerce


def make_platform(config: PlatformConfig, secrets: Secrets, *,
                  transport: httpx.BaseTransport | None = None) -> Platform:
    key = secrets.platform_key.get_secret_value() if secrets.platform_key else ""
    timeout = config.timeout.total_seconds()
    if config.kind == "woocommerce":
        secret = secrets.platform_secret.get_secret_value() if secrets.platform_secret else ""
        return WooCommerce(config.url, key, secret, timeout, transport=transport)
    if config.kind == "prestashop":
        return PrestaShop(config.url, key, timeout, transport=transport)
    return Shopify(config.url, key, timeout, transport=transport)
