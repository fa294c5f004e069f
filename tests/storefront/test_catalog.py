"""What the relay knows of a product's variants (relay/storefront/catalog.py), read from
the worker's variant memory."""

from __future__ import annotations

from relay.delivery.variants import VariantMemory
from relay.storefront.catalog import Catalog


def test_only_a_known_variable_products_list_can_refuse_a_variant(redis):
    catalog = Catalog(redis)
    assert catalog.variant_problem("42", "45") is None  # never seen: passed on
    VariantMemory(redis).remember_product("42", {"productId": "42"}, None, ["43", "44"])
    assert catalog.variant_problem("42", "44") is None
    assert catalog.variant_problem("42", None) is None  # the product itself
    assert catalog.variant_problem("42", "45") == "product 42 has no variant 45"
    assert catalog.variant_problem("42", "42") is not None  # a variable product is no variant
    # The store's latest list is what counts: a variation deleted since is refused.
    VariantMemory(redis).remember_product("42", {"productId": "42"}, None, ["43"])
    assert catalog.variant_problem("42", "44") is not None
