"""Money: decimal amounts to integer minor units, by the currency's ISO 4217 exponent.

Amounts are parsed as `Decimal`, never float: "19.99" is 1999 cents, not 1998.9999. A float
that a platform already produced (WooCommerce's line-item `price`) is read through its
shortest repr, and unit prices are better derived from a decimal line total and a quantity.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor-unit exponents that are not 2 (the list amendment of 2024; everything else
# in active use has 2). Funds codes and precious metals are omitted on purpose.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


class MoneyError(ValueError):
    """An amount or currency that cannot be read."""


def exponent(currency: str | None) -> int:
    """Decimal places of the currency's minor unit; 2 when the currency is unknown or unset."""
    if not currency:
        return 2
    return _EXPONENTS.get(currency.strip().upper(), 2)


def is_currency_code(value: str | None) -> bool:
    return bool(value) and len(value) == 3 and value.isalpha() and value.isupper()


def parse_decimal(value: object) -> Decimal | None:
    """A decimal from a string, int, Decimal or float; None for None and empty strings.

    Thousands separators are refused rather than guessed: "1,234" may mean 1.234 elsewhere.
    """
    if value is None:
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"not an amount: {value!r}") from None
    else:
        raise MoneyError(f"not an amount: {value!r}")
    if not result.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    return result


def to_minor_units(amount: object, currency: str | None) -> int | None:
    """`"19.99", "USD"` -> 1999; `"1500", "JPY"` -> 1500; `"1.2345", "KWD"` -> 1235."""
    value = parse_decimal(amount)
    if value is None:
        return None
    scaled = value.scaleb(exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def unit_price_minor(line_total: object, quantity: object, currency: str | None) -> int | None:
    """Unit price in minor units from a line total and a quantity (None if either is missing)."""
    total = parse_decimal(line_total)
    qty = parse_decimal(quantity)
    if total is None or qty is None or qty <= 0:
        return None
    return to_minor_units(total / qty, currency)
