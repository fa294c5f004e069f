"""The normalized model, which is the Commerce API contract (reference/sdk-contract.md).

Field names, required fields and types mirror the API exactly; money is integer minor units
(`...Cents`). Unknown fields are refused, so a mapper typo fails here and not at the API.
The worker validates every record before sending; the custom endpoint validates at ingest.

Bounds (the API documents few; what no real store reaches is refused here, so a sender's
absurd value is a dead letter with the field named, not a request the API may choke on):

    emails          RFC 5321: local part at most 64 characters, the address at most 254
    ids             productId, variantId, orderId, checkoutId, externalId: 1-255 characters
    names           firstName, lastName: at most 255 (the SDK's limit for subscribers);
                    option names and values, SKUs, orderNumber: at most 255
    titles          product, variant and line titles: at most 1,000 characters
    descriptions    at most 100,000 characters
    URLs            imageUrl, url, checkoutUrl: at most 2,048 characters
    money           ...Cents: 0 to 2^53 - 1 (the API is JavaScript: larger integers lose digits)
    counts          quantity: 0 to 1,000,000; inventoryQuantity: ±(2^53 - 1);
                    ordersCount: 0 to 2^53 - 1
    lists           order and checkout items: at most 1,000; a product's variants: at most
                    2,000; a variant's options: at most 100 (products per request: 1-100, the
                    API's limit, is the outbox's batch size)
    free-form       properties and customer attributes: nested at most 8 levels deep, at most
                    1,000 values in all, keys at most 255 and strings at most 10,000 characters
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from relay.mapping import Record

MAX_ID = 255
MAX_NAME = 255
MAX_TITLE = 1_000
MAX_DESCRIPTION = 100_000
MAX_URL = 2_048
MAX_EMAIL = 254
MAX_EMAIL_LOCAL = 64
MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MAX_QUANTITY = 1_000_000
MAX_ITEMS = 1_000
MAX_VARIANTS = 2_000
MAX_OPTIONS = 100
MAX_FREE_FORM_DEPTH = 8
MAX_FREE_FORM_VALUES = 1_000
MAX_FREE_FORM_TEXT = 10_000


def _text(limit: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=limit), **kwargs)


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_ID), **kwargs)


def _optional_text(limit: int = MAX_NAME) -> fields.String:
    return _text(limit, allow_none=True)


def _title(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_TITLE), **kwargs)


def _integer(low: int, high: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=low, max=high), **kwargs)


def _cents(**kwargs: Any) -> fields.Integer:
    return _integer(0, MAX_SAFE_INTEGER, allow_none=True, **kwargs)


def _list(nested: type[Schema], limit: int) -> fields.List:
    return fields.List(fields.Nested(nested), validate=validate.Length(max=limit), allow_none=True)


def _email_lengths(value: str) -> None:
    local = value.rpartition("@")[0]
    if len(value) > MAX_EMAIL or len(local) > MAX_EMAIL_LOCAL:
        raise ValidationError(
            f"Longer than an address can be (local part {MAX_EMAIL_LOCAL}, "
            f"whole address {MAX_EMAIL} characters)."
        )


def _email(**kwargs: Any) -> fields.String:
    # The lengths first: marshmallow's address check runs a regex over the whole value.
    return fields.String(validate=[_email_lengths, validate.Email()], **kwargs)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts in `value` nest deeper than `limit`, walked without recursion
    (what recursive code such as `dataclasses.asdict` would overflow the stack on)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            if depth >= limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


def _free_form_bounds(value: Mapping[str, Any]) -> None:
    """Depth, count and sizes of a free-form object, walked without recursion (a value
    nested 1,000 deep must fail here, not in the JSON encoder at send time)."""
    seen = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_FREE_FORM_VALUES:
            raise ValidationError(f"More than {MAX_FREE_FORM_VALUES} values.")
        if isinstance(node, dict | list):
            if depth > MAX_FREE_FORM_DEPTH:
                raise ValidationError(f"Nested deeper than {MAX_FREE_FORM_DEPTH} levels.")
            children = node.values() if isinstance(node, dict) else node
            if isinstance(node, dict) and any(
                not isinstance(k, str) or len(k) > MAX_NAME for k in node
            ):
                raise ValidationError(f"A key is not text or longer than {MAX_NAME} characters.")
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(node, str) and len(node) > MAX_FREE_FORM_TEXT:
            raise ValidationError(f"A text longer than {MAX_FREE_FORM_TEXT} characters.")


def _free_form() -> fields.Dict:
    return fields.Dict(keys=fields.String(), allow_none=True, validate=_free_form_bounds)


def _flag() -> fields.Boolean:
    # JSON booleans only: "false" as a string is truthy to most code and a bug here.
    return fields.Boolean(truthy={True}, falsy={False}, allow_none=True)


def _currency(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[A-Z]{3}$", error="Not an ISO 4217 currency code."), **kwargs
    )


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class OptionSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME))
    value = _text(MAX_NAME, required=True)


class VariantSchema(_Strict):
    variantId = _id(required=True)
    title = _title(required=True)
    sku = _optional_text()
    priceCents = _cents()
    compareAtPriceCents = _cents()
    imageUrl = _optional_text(MAX_URL)
    inventoryQuantity = _integer(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, allow_none=True)
    inStock = _flag()
    options = _list(OptionSchema, MAX_OPTIONS)


class ProductSchema(_Strict):
    productId = _id(required=True)
    title = _title(required=True)
    description = _optional_text(MAX_DESCRIPTION)
    imageUrl = _optional_text(MAX_URL)
    url = _optional_text(MAX_URL)
    priceCents = _cents()
    compareAtPriceCents = _cents()
    currency = _currency(allow_none=True)
    inStock = _flag()
    providerCreatedAt = fields.DateTime(format="iso", allow_none=True)
    variants = _list(VariantSchema, MAX_VARIANTS)


class CustomerSchema(_Strict):
    email = _email(required=True)
    firstName = _optional_text()
    lastName = _optional_text()
    externalId = _optional_text(MAX_ID)
    attributes = _free_form()


class OrderItemSchema(_Strict):
    productId = _id(required=True)
    title = _title(required=True)
    quantity = _integer(0, MAX_QUANTITY, required=True)
    variantId = _id(allow_none=True)
    variantTitle = _optional_text(MAX_TITLE)
    sku = _optional_text()
    priceCents = _cents()  # the unit price


class CustomerTotalsSchema(_Strict):
    ordersCount = _integer(0, MAX_SAFE_INTEGER, allow_none=True)
    totalSpentCents = _cents()


ORDER_STATUSES = ("placed", "cancelled", "fulfilled", "refunded")


class OrderSchema(_Strict):
    orderId = _id(required=True)
    orderNumber = _optional_text()
    # Optional at the API, where it defaults to "placed".
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    totalCents = _integer(0, MAX_SAFE_INTEGER, required=True)
    currency = _currency(required=True)
    orderedAt = fields.DateTime(format="iso", allow_none=True)
    customer = fields.Nested(CustomerSchema, required=True)
    items = _list(OrderItemSchema, MAX_ITEMS)
    refundAmountCents = _cents()
    customerTotals = fields.Nested(CustomerTotalsSchema, allow_none=True)
    properties = _free_form()


class CheckoutSchema(_Strict):
    checkoutId = _id(required=True)
    customer = fields.Nested(CustomerSchema, required=True)
    checkoutUrl = _optional_text(MAX_URL)
    totalCents = _cents()
    currency = _currency(allow_none=True)
    items = _list(OrderItemSchema, MAX_ITEMS)
    properties = _free_form()


class BackInStockSchema(_Strict):
    productId = _id(required=True)
    variantId = _id(allow_none=True)
    productTitle = _optional_text(MAX_TITLE)
    variantTitle = _optional_text(MAX_TITLE)
    customer = fields.Nested(CustomerSchema, required=True)


class SubscriberSchema(_Strict):
    """A subscriber record (relay/mapping.py): what the worker turns into a create and, by
    externalId, updates. Names are text or absent, never null: the update endpoint refuses
    null names (an absent one is sent as "", which clears it)."""

    email = _email(required=True)
    externalId = _id()
    firstName = _text(MAX_NAME)
    lastName = _text(MAX_NAME)
    createdAt = fields.DateTime(format="iso")


class ProductDeleteSchema(_Strict):
    productId = _id(required=True)


class VariantRecordSchema(_Strict):
    productId = _id(required=True)
    variant = fields.Nested(VariantSchema, required=True)


SCHEMAS: dict[str, Schema] = {
    "product": ProductSchema(),
    "product_delete": ProductDeleteSchema(),
    "variant": VariantRecordSchema(),
    "order": OrderSchema(),
    "checkout": CheckoutSchema(),
    "back_in_stock": BackInStockSchema(),
    "subscriber": SubscriberSchema(),
}


def record_errors(record: Record) -> dict[str, Any]:
    """Field errors of one record ({} when it is valid), in marshmallow's nested form."""
    schema = SCHEMAS.get(record.kind)
    if schema is None:
        return {"kind": [f"unknown record kind {record.kind!r}"]}
    if not isinstance(record.data, dict):
        return {"_schema": ["record data is not an object"]}
    if passes(schema, record.data):
        return {}
    return schema.validate(record.data)


# --- the quick yes -------------------------------------------------------------------------
# marshmallow's load keeps an error store, a getter and a callback per field: a third of
# the worker's own CPU per event in a profile. Almost every record is valid, so a record is
# first checked with the schema's own fields and validators, none of that bookkeeping, and
# goes through marshmallow only when this says no (for the errors, in marshmallow's words).
# It may say no to a valid record (then marshmallow decides); it must never say yes to an
# invalid one: tests/test_schemas.py compares the two on every fixture and on mutations.

_FIELDS: dict[type[Schema], dict[str, fields.Field]] = {}


def _fields_of(schema: Schema) -> dict[str, fields.Field]:
    found = _FIELDS.get(type(schema))
    if found is None:
        found = {field.data_key or name: field for name, field in schema.load_fields.items()}
        _FIELDS[type(schema)] = found
    return found


def passes(schema: Schema, data: Any) -> bool:
    """True only when marshmallow would load `data` without an error."""
    if type(schema).Meta.unknown != RAISE or schema.only or schema.exclude:  # type: ignore[attr-defined]
        return False  # only the plain strict schemas of this module
    if not isinstance(data, dict):
        return False
    declared = _fields_of(schema)
    if not data.keys() <= declared.keys():
        return False  # an unknown field
    for key, field in declared.items():
        if key not in data:
            if field.required:
                return False
        elif not _field_passes(field, data[key]):
            return False
    return True


def _validators_pass(field: fields.Field, value: Any) -> bool:
    try:
        return all(validator(value) is not False for validator in field.validators)
    except ValidationError:
        return False


def _field_passes(field: fields.Field, value: Any) -> bool:
    if value is None:
        return field.allow_none
    if isinstance(field, fields.Nested):
        nested = field.schema
        return not field.many and isinstance(nested, Schema) and passes(nested, value)
    if isinstance(field, fields.List):
        return (
            isinstance(value, list)
            and all(_field_passes(field.inner, item) for item in value)
            and _validators_pass(field, value)
        )
    if type(field) is fields.String:
        return isinstance(value, str) and _validators_pass(field, value)
    try:
        field.deserialize(value)  # its type check and its validators
    except ValidationError:
        return False
    return True
