"""A shopper's request, read and checked before anything is stored.

The body is JSON (`application/json`, what the widget sends) or a form
(`application/x-www-form-urlencoded`), at most MAX_BODY_BYTES. Fields, in either:

    email           required; RFC 5321 lengths and a valid address (relay/schemas.py)
    productId       required; a string or an integer, 1-255 characters
    variantId       optional, as productId (the chosen variation of a variable product)
    productTitle    optional, at most 1,000 characters
    variantTitle    optional, at most 1,000 characters
    leave_this_empty  the honeypot: people never see it, bots fill it

The bounds are the schemas' own: the request is checked as the BackInStock record the
worker will send (mappers/storefront/), so what is stored also passes the worker's check.
Other fields are ignored (a theme's form may carry its own).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from mappers.storefront.mapper import back_in_stock
from relay.events import loads
from relay.schemas import record_errors

MAX_BODY_BYTES = 4096
FIELDS = ("email", "productId", "variantId", "productTitle", "variantTitle")
IDS = ("productId", "variantId")
HONEYPOT = "leave_this_empty"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = (JSON, FORM)
MAX_FORM_FIELDS = 50


class Invalid(Exception):
    """A request that cannot be taken as it is: 400 with the fields named in `details`."""

    def __init__(self, code: str, message: str, details: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def read_fields(body: bytes, mimetype: str) -> dict[str, Any]:
    """The body's fields; `mimetype` is one of CONTENT_TYPES."""
    if mimetype == JSON:
        try:
            data = loads(body)
        except ValueError:
            raise Invalid("malformed_body", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Invalid("malformed_body", "the body is not a JSON object")
        return data
    try:
        text = body.decode("utf-8")
        # The last of a repeated field wins, as in a JSON object.
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise Invalid("malformed_body", "the form is not valid UTF-8 form data") from None


def check_honeypot(fields: dict[str, Any]) -> None:
    value = fields.get(HONEYPOT)
    if value is None or (isinstance(value, str) and not value.strip()):
        return
    raise Invalid(
        "honeypot",
        "this request filled a field that people cannot see; nothing was stored",
        {HONEYPOT: ["Must be empty."]},
    )


def back_in_stock_request(fields: dict[str, Any]) -> dict[str, str]:
    """The request to store (trimmed strings, empty fields left out), or Invalid naming
    each field that is wrong."""
    request: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name in FIELDS:
        value = fields.get(name)
        if name in IDS and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # WooCommerce's ids are numbers in its page data
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = ["Not a valid string."]
            continue
        if value.strip():
            request[name] = value.strip()
    for name, messages in record_errors(back_in_stock(request)).items():
        if name == "customer":  # the record nests the email: name the request's field
            for field, inner in messages.items():
                errors.setdefault("email" if field == "email" else field, []).extend(inner)
        else:
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise Invalid("invalid_request", "some fields are missing or not valid", errors)
    return request
