"""Sticky.io: Order and Prospect postbacks, proven by a secret token in the URL (README.md).

Postbacks cannot sign, and Sticky.io names no event in them: the merchant's URL says what it
is (`type=order` or `type=prospect`), and the order's tokens say what happened to it.
"""

from __future__ import annotations

from mappers.stickyio import tokens
from mappers.stickyio.mapper import map_event
from mappers.stickyio.tokens import Fields
from relay.mapping import BadRequest, IncomingRequest, Intake, Platform
from relay.money import MoneyError, parse_decimal
from relay.verifiers import SharedToken, check_token

TOPICS = frozenset({"order", "refund", "chargeback", "prospect"})
IGNORED_TOPICS = {"decline": "a declined payment (order_status=0) is not an order"}
KINDS = ("order", "prospect")

# The tokens each postback URL carries, in the order the README lists them.
ORDER_TOKENS = (
    "order_id",
    "order_status",
    "order_total",
    "currency_code",
    "order_date_time",
    "void_refund_amount",
    "ischargeback",
    "decline_reason",
    "customer_id",
    "email",
    "first_name",
    "last_name",
    "product_id_csv",
    "product_skus_csv",
    "product_qtys_csv",
    "product_prices_csv",
    "product_names_csv",
    "campaign_id",
    "rebill_depth",
    "parent_order_id",
    "is_test_cc",
)
PROSPECT_TOKENS = ("prospect_id", "email", "first_name", "last_name", "campaign_id")


def url_template(kind: str, names: tuple[str, ...]) -> str:
    """`{relay}` and `{token}` are the relay's to fill; every other `{...}` is Sticky.io's."""
    query = "&".join(f"{name}={{{name}}}" for name in names)
    return f"{{relay}}/webhooks/stickyio/{{token}}?type={kind}&{query}"


ORDER_URL_TEMPLATE = url_template("order", ORDER_TOKENS)
PROSPECT_URL_TEMPLATE = url_template("prospect", PROSPECT_TOKENS)


def describe(request: IncomingRequest) -> Intake:
    try:
        fields = request.fields()
    except ValueError:
        raise BadRequest(
            "malformed_body",
            "the body is not a JSON object: send a query string, form fields or a JSON object",
        ) from None
    # No delivery id: Sticky.io sends none, so a repeated postback is recognised by content.
    return Intake(topic=topic_of(fields), delivery_id=None)


def topic_of(fields: Fields) -> str:
    """order, refund, chargeback, decline or prospect; BadRequest saying what the URL lacks."""
    if _kind(fields) == "prospect":
        _require(fields, "prospect_id", "a Prospect postback")
        return "prospect"
    _require(fields, "order_id", "an Order postback")
    status = tokens.text(fields, "order_status")
    if status == "0":
        return "decline"
    if status != "1":
        raise BadRequest(
            "incomplete_postback",
            "an Order postback needs order_status, 1 (approved) or 0 (declined): "
            "add order_status={order_status} to the postback URL",
        )
    if tokens.flag(fields, "ischargeback"):
        return "chargeback"
    return "refund" if _has_refund(fields) else "order"


def _kind(fields: Fields) -> str:
    given = tokens.text(fields, "type")
    if given is not None:
        if given.lower() in KINDS:
            return given.lower()
        raise BadRequest(
            "unknown_postback",
            "type must be order or prospect: put type=order in the URL of Order postbacks "
            "and type=prospect in the URL of Prospect postbacks",
        )
    # Without `type`, the tokens still tell: only orders have an order_id.
    if tokens.identifier(fields, "order_id"):
        return "order"
    if tokens.identifier(fields, "prospect_id"):
        return "prospect"
    raise BadRequest(
        "unknown_postback",
        "cannot tell an Order postback from a Prospect postback: add type=order (with "
        "order_id={order_id}) or type=prospect (with prospect_id={prospect_id}) to the "
        "postback URL",
    )


def _require(fields: Fields, name: str, what: str) -> None:
    if tokens.identifier(fields, name) is None:
        raise BadRequest(
            "incomplete_postback", f"{what} needs {name}: add {name}={{{name}}} to the postback URL"
        )


def _has_refund(fields: Fields) -> bool:
    try:
        amount = parse_decimal(tokens.text(fields, "void_refund_amount"))
    except MoneyError:
        return False  # the mapper reports it; intake only names the topic
    return amount is not None and amount > 0


PLATFORM = Platform(
    name="stickyio",
    title="Sticky.io",
    verifier=SharedToken(),
    describe=describe,
    map_event=map_event,
    topics=TOPICS,
    secret_kind="token",
    options=("currency", "timezone"),
    methods=("GET", "POST", "PUT"),
    check_secret=check_token,
    token_in_path=True,
    ignored_topics=IGNORED_TOPICS,
    # One line per postback: Order, then Prospect.
    url_template=f"{ORDER_URL_TEMPLATE}\n{PROSPECT_URL_TEMPLATE}",
)
