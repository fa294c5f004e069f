"""gunicorn entry point: `gunicorn relay.wsgi:app` (or the repository's wsgi.py)."""

from relay.app import create_app

app = create_app()
