"""The Flask application factory (gunicorn loads it through wsgi.py)."""

from __future__ import annotations

from flask import Flask
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from relay import admin
from relay.errors import install_error_handlers
from relay.event_queue import EventQueue
from relay.intake import webhooks
from relay.intake.acceptor import Acceptor
from relay.intake.auth_throttle import AuthThrottle
from relay.intake.fast_path import WebhookFastPath
from relay.intake.web_context import WebContext
from relay.redis_conn import connect_web
from relay.registry import Registry, default_registry
from relay.runtime import health
from relay.settings import ConfigError, Settings
from relay.storefront import endpoint as storefront


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    redis: Redis | None = None,
) -> Flask:
    registry = registry or default_registry()
    settings = settings or Settings.from_env(platforms=registry.settings_specs())
    if redis is None:
        if not settings.redis_url:
            raise ConfigError(
                "RELAY_REDIS_URL: the web server needs the Redis URL "
                "(`relay run` sets it for its embedded Redis)"
            )
        redis = connect_web(settings.redis_url)  # ingest's: 503 within about a second

    app = Flask("relay")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    events = EventQueue(redis, settings.dedup_window_seconds, settings.job_timeout_seconds)
    app.extensions["relay"] = WebContext(
        settings=settings,
        registry=registry,
        redis=redis,
        events=events,
        acceptor=Acceptor(events),
        auth_throttle=AuthThrottle(redis),
    )
    install_error_handlers(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(storefront.bp)  # off (404) unless RELAY_STOREFRONT_ORIGINS is set
    # Webhooks that are stored skip Flask's request handling; every other request, and every
    # webhook answered otherwise, is Flask's as before (relay/intake/fast_path.py).
    app.wsgi_app = WebhookFastPath(app, app.wsgi_app, app.extensions["relay"])  # type: ignore[method-assign]
    if settings.trust_proxy:
        # The admin cookie is marked Secure only for HTTPS requests, and rate limits and
        # logs want the client's address: both come from the proxy's headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    return app
