"""Order numbers in customers' mail, the ticket's list of them, and the [orders]/[platform] config."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import MINIMAL, _write

from daemon.config import ConfigError, load_settings
from daemon.mail.orders import (
    compile_patterns,
    edit_orders,
    find_orders,
    listed_orders,
    merge_orders,
)


@pytest.mark.parametrize(("text", "numbers"), [
    ("Hola, mi pedido 4411 no ha llegado", ("4411",)),
    ("N.º de pedido: 4411", ("4411",)),
    ("mi pedido nº4411 y el pedido #4412", ("4411", "4412")),
    ("Bonjour, ma commande n° 12345 n'est pas arrivée", ("12345",)),
    ("numéro de commande 12345", ("12345",)),
    ("Where is order #1234?", ("1234",)),
    ("your order number 5521 has shipped", ("5521",)),
    ("Referencia del pedido: XKBKNABJK", ("XKBKNABJK",)),
])
def test_default_patterns_find_the_numbers_customers_write(text: str, numbers: tuple[str, ...]) -> None:
    assert find_orders([text]) == numbers


@pytest.mark.parametrize("text", [
    "He pedido 2 camisetas y una gorra",
    "in order to help you, call 912345678",
    "pedido 4411-B",
    "Mi pedido xkbknabjk",  # a PrestaShop reference is written in capitals
    "orders from 2026",
])
def test_text_that_is_no_order_number_finds_none(text: str) -> None:
    assert find_orders([text]) == ()


def test_subject_and_body_give_each_number_once_in_order_of_appearance() -> None:
    assert find_orders(["Pedido 7001", "sobre el pedido 7002 y el pedido 7001"]) == ("7001", "7002")


def test_configured_patterns_replace_a_language_or_add_one() -> None:
    german = compile_patterns({"de": [r"(?i)\bbestellung\s+(\d+)"]})
    assert find_orders(["Bestellung 8812 fehlt"], german) == ("8812",)
    assert find_orders(["pedido 4411"], german) == ("4411",)  # Spanish defaults kept
    no_spanish = compile_patterns({"es": []})
    assert find_orders(["pedido 4411"], no_spanish) == ()
    assert find_orders(["order 4411"], no_spanish) == ("4411",)


def test_an_agent_removal_outlives_the_next_mail_and_an_agent_can_add_it_back() -> None:
    stored = merge_orders("", ["4411", "7788"])
    stored = edit_orders(stored, "4411", remove=True)
    stored = merge_orders(stored, ["4411", "9900"])
    assert listed_orders(stored) == ["7788", "9900"]
    assert listed_orders(edit_orders(stored, "4411", remove=False)) == ["7788", "9900", "4411"]


def test_a_pattern_without_exactly_one_group_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[orders\] patterns: de: .*exactly one group"):
        load_settings(_write(tmp_path, MINIMAL + '\n[orders]\npatterns.de = ["bestellung \\\\d+"]\n'))


def test_platform_needs_its_key_and_woocommerce_its_secret(tmp_path: Path) -> None:
    platform = '\n[platform]\nkind = "woocommerce"\nurl = "https://tienda.example"\n'
    with pytest.raises(ConfigError, match=r"\[platform\] key_file: required"):
        load_settings(_write(tmp_path, MINIMAL + platform))
    (tmp_path / "platform-key").write_text("ck_1\n")
    keyed = platform + 'key_file = "platform-key"\n'
    with pytest.raises(ConfigError, match=r"\[platform\] secret_file: required for WooCommerce"):
        load_settings(_write(tmp_path, MINIMAL + keyed))
    (tmp_path / "platform-secret").write_text("cs_1\n")
    settings = load_settings(_write(tmp_path, MINIMAL + keyed + 'secret_file = "platform-secret"\n'))
    assert settings.secrets.platform_key is not None
    assert settings.secrets.platform_key.get_secret_value() == "ck_1"
    assert "cs_1" not in repr(settings)
    assert settings.config.platform is not None
    assert settings.config.platform.timeout.total_seconds() == 5


def test_coupons_from_the_platform_need_a_platform(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='discount_provider = "platform" needs a \\[platform\\]'):
        load_settings(_write(tmp_path, MINIMAL + '\n[closing]\ndiscount_provider = "platform"\n'))
