"""gunicorn entry point at the repository root: `gunicorn wsgi:app`."""

from relay.wsgi import app

__all__ = ["app"]
