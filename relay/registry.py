"""Finds platforms: built-in packages under `mappers/` and installed third-party packages.

A built-in platform is a package `mappers/<name>/` whose `__init__` defines `PLATFORM`. A
third-party package registers `PLATFORM` (or a module that has one) under the entry point
group `relay.mappers`:

    [project.entry-points."relay.mappers"]
    shopline = "relay_shopline:PLATFORM"

Nothing else needs to change for a new platform: settings, routes, `relay mappers` and the
golden fixture test all read this registry.

Beside the platforms it keeps the relay's own event sources (`SOURCE` in a built-in package,
relay/mapping.py `Source`): the worker maps their events (`mapper_of`), but they are no
platform: `get`, iteration and `names` (webhook routes, settings, `relay mappers`, the
admin's platform rows) know only the platforms. A platform may not take a source's name.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import mappers
from relay.mapping import Platform, Source
from relay.settings import PlatformSettingsSpec
from relay.verifiers import check_token

ENTRY_POINT_GROUP = "relay.mappers"
log = logging.getLogger(__name__)


class RegistryError(Exception):
    pass


class Registry:
    def __init__(self, platforms: dict[str, Platform], sources: dict[str, Source] | None = None):
        self._platforms = dict(sorted(platforms.items()))
        self._sources = dict(sources or {})
        taken = sorted(set(self._platforms) & set(self._sources))
        if taken:
            raise RegistryError(f"platform {taken[0]!r} takes the name of the relay's own source")

    def get(self, name: str) -> Platform | None:
        """The webhook platform of that name (never one of the relay's own sources)."""
        return self._platforms.get(name)

    def mapper_of(self, name: str) -> Platform | Source | None:
        """Whatever maps the stored events whose `platform` is `name`: a platform or one of
        the relay's own sources (the worker's lookup)."""
        return self._platforms.get(name) or self._sources.get(name)

    def __iter__(self) -> Iterator[Platform]:
        return iter(self._platforms.values())

    def __contains__(self, name: object) -> bool:
        return name in self._platforms

    def names(self) -> list[str]:
        return list(self._platforms)

    def settings_specs(self) -> list[PlatformSettingsSpec]:
        return [
            PlatformSettingsSpec(
                name=p.name,
                secret_kind=p.secret_kind,
                options=p.options,
                # A token is all that proves a postback genuine: never a weak one.
                check_secret=p.check_secret or (check_token if p.secret_kind == "token" else None),
                store_credentials=p.store.credentials if p.store else (),
            )
            for p in self
        ]


def _platform_of(obj: object, where: str) -> Platform:
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "PLATFORM", None)
    if not isinstance(obj, Platform):
        raise RegistryError(f"{where} does not provide a relay.mapping.Platform")
    return obj


def builtin_platforms() -> dict[str, Platform]:
    found: dict[str, Platform] = {}
    for info in pkgutil.iter_modules(mappers.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"mappers.{info.name}")
        if hasattr(module, "PLATFORM"):
            platform = _platform_of(module, f"mappers.{info.name}")
            found[platform.name] = platform
    return found


def builtin_sources() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for info in pkgutil.iter_modules(mappers.__path__):
        if not info.ispkg:
            continue
        source = getattr(importlib.import_module(f"mappers.{info.name}"), "SOURCE", None)
        if isinstance(source, Source):
            found[source.name] = source
    return found


def installed_platforms() -> dict[str, Platform]:
    found: dict[str, Platform] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        platform = _platform_of(ep.load(), f"entry point {ep.name!r} ({ep.value})")
        found[platform.name] = platform
    return found


def discover() -> Registry:
    platforms = builtin_platforms()
    for name, platform in installed_platforms().items():
        if name in platforms:
            log.warning("installed mapper %r replaces the built-in one", name)
        platforms[name] = platform
    return Registry(platforms, builtin_sources())


@cache
def default_registry() -> Registry:
    """The registry of this process (discovery imports every mapper once)."""
    return discover()


def package_dir(platform: Platform) -> Path:
    """The folder of the package that defines the platform's mapper (fixtures/ lives there)."""
    module = sys.modules[platform.map_event.__module__]
    return Path(module.__file__ or ".").parent
