"""The admin page and its JSON API (relay/admin/blueprint.py says which module does what)."""

from relay.admin import actions, api, guard, pages  # noqa: F401  (their routes join the blueprint)
from relay.admin.blueprint import bp

__all__ = ["bp"]
