"""What a shop's browser may call: back-in-stock requests and the notify-me widget.

    POST /storefront/back-in-stock   a shopper's "notify me", from the widget or a form
    GET  /storefront/notify-me.js    the drop-in widget for WooCommerce product pages

Off (404) while RELAY_STOREFRONT_ORIGINS is unset. The endpoint is public: no secret can
live in a browser, so what keeps it honest is the Origin check and CORS (cors.py), rate
limits per client address and per email (limits.py), a honeypot field and a small body
(validation.py). Every refusal is an answer the widget can show; none is a fake success.

A request that passes is stored through ingest's own write (relay/intake/acceptor.py: the
dedup mark, the inbox, the drain wake-up) as an event of the relay's own source
`storefront` (mappers/storefront/), and the worker delivers it like any webhook: mapped,
validated, guarded by the entity rule `once`, retried, dead-lettered.

    endpoint.py     the blueprint: the order of the checks and the answers
    cors.py         allowed origins, the preflight, the CORS headers
    validation.py   the body (JSON or form) and its fields, with the API's bounds
    catalog.py      what the relay knows of a product's variants (read-only)
    limits.py       the rate limits, in Redis
    recent.py       the last few requests for the admin page, emails masked
    widget.py       notify-me.js, cacheable

Layers (pyproject.toml): this stage imports the shared model, ingest's write (relay.intake)
and, read-only, the worker's variant memory (relay.delivery.variants); nothing else of
delivery. Intake and delivery import nothing of it.
"""
