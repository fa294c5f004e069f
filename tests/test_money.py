from __future__ import annotations

from decimal import Decimal

import pytest

from relay.money import MoneyError, exponent, to_minor_units, unit_price_minor


@pytest.mark.parametrize(
    ("amount", "currency", "cents"),
    [
        ("19.99", "USD", 1999),
        ("0.10", "EUR", 10),
        ("1500", "JPY", 1500),
        ("1.2345", "KWD", 1235),  # 3 decimals, rounded half up
        ("24.300", "KWD", 24300),
        ("10.005", "USD", 1001),
        (279, "USD", 27900),  # CheckoutChamp sends numbers sometimes
        (10.799999999999999, "USD", 1080),  # a float artifact from WooCommerce
        (Decimal("3.5"), "CLF", 35000),  # 4 decimals
        ("12", None, 1200),  # unknown currency: 2 decimals
    ],
)
def test_to_minor_units(amount, currency, cents):
    assert to_minor_units(amount, currency) == cents


def test_empty_means_absent():
    assert to_minor_units("", "USD") is None
    assert to_minor_units(None, "USD") is None


@pytest.mark.parametrize("bad", ["12,50", "1,234.00", "abc", "NaN", "Infinity", True, [1]])
def test_unreadable_amounts_are_refused_not_guessed(bad):
    with pytest.raises(MoneyError):
        to_minor_units(bad, "USD")


def test_unit_price_from_line_total():
    assert unit_price_minor("32.40", 2, "EUR") == 1620
    assert unit_price_minor("10.00", 3, "USD") == 333
    assert unit_price_minor("21.600", 3, "KWD") == 7200
    assert unit_price_minor("5", 0, "USD") is None


def test_exponents():
    assert (exponent("usd"), exponent("JPY"), exponent("BHD"), exponent("")) == (2, 0, 3, 2)
