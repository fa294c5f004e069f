"""The normalized model, which is the Commerce API contract (reference/commerce-api.md).

Field names, required fields and types mirror the API exactly; money is integer minor units
(`...Cents`). Unknown fields are refused, so a mapper typo fails here and not at the API.
The worker validates every record before sending; the custom endpoint validates at ingest.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from relay.mapping import Record

_non_empty = validate.Length(min=1)
_non_negative = validate.Range(min=0)


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=_non_empty, **kwargs)


def _optional_text() -> fields.String:
    return fields.String(allow_none=True)


def _cents(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=_non_negative, allow_none=True, **kwargs)


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
    name = fields.String(required=True, validate=_non_empty)
    value = fields.String(required=True)


class VariantSchema(_Strict):
    variantId = _id(required=True)
    title = fields.String(required=True, validate=_non_empty)
    sku = _optional_text()
    priceCents = _cents()
    compareAtPriceCents = _cents()
    imageUrl = _optional_text()
    inventoryQuantity = fields.Integer(strict=True, allow_none=True)
    inStock = _flag()
    options = fields.List(fields.Nested(OptionSchema), allow_none=True)


class ProductSchema(_Strict):
    productId = _id(required=True)
    title = fields.String(required=True, validate=_non_empty)
    description = _optional_text()
    imageUrl = _optional_text()
    url = _optional_text()
    priceCents = _cents()
    compareAtPriceCents = _cents()
    currency = _currency(allow_none=True)
    inStock = _flag()
    providerCreatedAt = fields.DateTime(format="iso", allow_none=True)
    variants = fields.List(fields.Nested(VariantSchema), allow_none=True)


class CustomerSchema(_Strict):
    email = fields.Email(required=True)
    firstName = _optional_text()
    lastName = _optional_text()
    externalId = _optional_text()
    attributes = fields.Dict(keys=fields.String(), allow_none=True)


class OrderItemSchema(_Strict):
    productId = _id(required=True)
    title = fields.String(required=True, validate=_non_empty)
    quantity = fields.Integer(strict=True, required=True, validate=_non_negative)
    variantId = fields.String(allow_none=True)
    variantTitle = _optional_text()
    sku = _optional_text()
    priceCents = _cents()  # the unit price


class CustomerTotalsSchema(_Strict):
    ordersCount = fields.Integer(strict=True, validate=_non_negative, allow_none=True)
    totalSpentCents = _cents()


ORDER_STATUSES = ("placed", "cancelled", "fulfilled", "refunded")


class OrderSchema(_Strict):
    orderId = _id(required=True)
    orderNumber = _optional_text()
    # Optional at the API, where it defaults to "placed".
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    totalCents = fields.Integer(strict=True, required=True, validate=_non_negative)
    currency = _currency(required=True)
    orderedAt = fields.DateTime(format="iso", allow_none=True)
    customer = fields.Nested(CustomerSchema, required=True)
    items = fields.List(fields.Nested(OrderItemSchema), allow_none=True)
    refundAmountCents = _cents()
    customerTotals = fields.Nested(CustomerTotalsSchema, allow_none=True)
    properties = fields.Dict(keys=fields.String(), allow_none=True)


class CheckoutSchema(_Strict):
    checkoutId = _id(required=True)
    customer = fields.Nested(CustomerSchema, required=True)
    checkoutUrl = _optional_text()
    totalCents = _cents()
    currency = _currency(allow_none=True)
    items = fields.List(fields.Nested(OrderItemSchema), allow_none=True)
    properties = fields.Dict(keys=fields.String(), allow_none=True)


class BackInStockSchema(_Strict):
    productId = _id(required=True)
    variantId = fields.String(allow_none=True)
    productTitle = _optional_text()
    variantTitle = _optional_text()
    customer = fields.Nested(CustomerSchema, required=True)


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
}


def record_errors(record: Record) -> dict[str, Any]:
    """Field errors of one record ({} when it is valid), in marshmallow's nested form."""
    schema = SCHEMAS.get(record.kind)
    if schema is None:
        return {"kind": [f"unknown record kind {record.kind!r}"]}
    if not isinstance(record.data, dict):
        return {"_schema": ["record data is not an object"]}
    return schema.validate(record.data)
