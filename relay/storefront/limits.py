"""Rate limits for the public endpoint, per client address and per email, in Redis (fixed
windows, atomic: relay/rate_limits.py), so every web process and restart agrees.

The address is `request.remote_addr`: the connection's, or the proxy's X-Forwarded-For
under RELAY_TRUST_PROXY=yes (ProxyFix, relay/app.py). Behind a proxy without that setting
every shopper shares the proxy's address, and so its limit.

A shopper asks for a few variants of a few products; a script asks for thousands. The
address limit counts every request that passed the Origin check (a flood of junk pays too);
the email limit counts valid requests only, so requests spread over many addresses still
cannot sign one person up for everything. Mobile carriers put many shoppers behind one address: the
address limit leaves room for that.
"""

from __future__ import annotations

from redis import Redis

from relay.rate_limits import RateLimit, Verdict

ADDRESS_LIMIT = 30
ADDRESS_WINDOW_SECONDS = 600
EMAIL_LIMIT = 10
EMAIL_WINDOW_SECONDS = 3600


class StorefrontLimits:
    def __init__(
        self,
        redis: Redis,
        address_limit: int = ADDRESS_LIMIT,
        email_limit: int = EMAIL_LIMIT,
    ):
        self._address = RateLimit(
            redis, "storefront-address", address_limit, ADDRESS_WINDOW_SECONDS
        )
        self._email = RateLimit(redis, "storefront-email", email_limit, EMAIL_WINDOW_SECONDS)

    def address(self, client: str) -> Verdict:
        """Count one request from `client`. Raises redis.RedisError when Redis is down."""
        return self._address.hit(client)

    def email(self, email: str) -> Verdict:
        """Count one valid request for `email` (case does not make another address)."""
        return self._email.hit(email.lower())
