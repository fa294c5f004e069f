"""Configuration from the environment, checked once at start-up.

Every name here is part of the public interface (DESIGN.md section 3). A secret may be given
directly (`RELAY_X_SECRET=...`) or as a file (`RELAY_X_SECRET_FILE=/run/secrets/x`), which is
how Docker and Kubernetes hand out secrets. Bad values raise `ConfigError` with one line that
names the variable and what is wrong; the commands print it and exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_API_URL = "https://api.sequenzy.com"
DEFAULT_BIND = "127.0.0.1:8000"
DEFAULT_DATA_DIR = "./.relay"
DEFAULT_STORE_MAX_RPS = 2.0
DEFAULT_RECONCILE_INTERVAL_SECONDS = 15 * 60


class ConfigError(Exception):
    """A configuration value is missing or wrong. The message is one line for humans."""


@dataclass(frozen=True)
class RetryPolicy:
    """Delivery retry schedule: exponential backoff with jitter, capped and bounded.

    The defaults give 15 attempts spread over about 23 hours: 10 s, 20 s, 40 s ... 6 h.
    """

    max_attempts: int = 15
    base_seconds: float = 10.0
    max_delay_seconds: float = 6 * 3600.0
    jitter: float = 0.2  # each delay is drawn from [d * (1 - jitter), d * (1 + jitter)]

    def nominal_delay(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`, without jitter (attempt counts from 1)."""
        return min(self.base_seconds * 2 ** (attempt - 1), self.max_delay_seconds)

    def horizon_seconds(self) -> float:
        """An upper bound of the time from the first attempt to the last (each delay is
        capped at `max_delay_seconds`, a Retry-After included)."""
        return (self.max_attempts - 1) * self.max_delay_seconds


@dataclass(frozen=True)
class StoreConfig:
    """A platform's store API, for sync (relay/sync/): where it is, the credentials, the pace.

    A platform whose mapper declares a store (relay/store_api.py `StoreSpec`) reads
    RELAY_<NAME>_STORE_URL, one secret per credential it names (RELAY_<NAME>_CONSUMER_KEY,
    ...) and RELAY_<NAME>_MAX_RPS: all of the URL and credentials, or none of them."""

    platform: str
    url: str
    credentials: Mapping[str, str]
    max_rps: float = DEFAULT_STORE_MAX_RPS

    def __repr__(self) -> str:  # never the credentials, in a traceback or a log
        return f"StoreConfig(platform={self.platform!r}, url={self.url!r}, max_rps={self.max_rps})"


@dataclass(frozen=True)
class Settings:
    commerce_api_url: str = DEFAULT_API_URL
    commerce_api_key: str | None = None
    # Sent as x-company-id: the workspace a key that reaches several (a personal key) writes to.
    commerce_company_id: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    bind: str = DEFAULT_BIND
    # Where a `relay worker` run alone serves its own /metrics (None: not served; under
    # `relay run` the web server's /metrics already counts the workers).
    worker_metrics_bind: str | None = None
    admin_token: str | None = None
    sentry_dsn: str | None = None
    # Platform name -> its secret or token; a platform without one is disabled.
    platform_secrets: Mapping[str, str] = field(default_factory=dict)
    # Platform name -> {option: value} for options a mapper declares (e.g. currency).
    platform_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    max_body_bytes: int = 2 * 1024 * 1024
    dedup_window_seconds: int = 24 * 3600
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    api_timeout_seconds: float = 15.0
    web_workers: int = 1
    workers: int = 1
    # Commerce API requests each worker process keeps in flight, one per entity
    # (relay/delivery/dispatcher.py); a rate limit lowers it for a while (AIMD).
    delivery_concurrency: int = 16
    redis_fsync: str = "always"
    # Behind a TLS-terminating proxy: trust its X-Forwarded-For/-Proto (one hop).
    trust_proxy: bool = False
    # /healthz fails once Redis has been unreachable this long (an orchestrator then
    # restarts the relay); /readyz fails at once.
    healthz_grace_seconds: int = 120
    # Dead letters older than this, or the oldest beyond the cap, are dropped (counted in
    # relay_dead_letters_dropped_total): each holds a whole raw body on a Redis that never
    # evicts.
    dlq_retention_days: int = 14
    dlq_max: int = 10_000
    log_format: str | None = None  # json | text; None: text in a terminal, else JSON
    log_level: str = "INFO"
    # Shop origins (`scheme://host[:port]`) whose pages may call /storefront/...; none: the
    # storefront endpoints are off (404).
    storefront_origins: tuple[str, ...] = ()
    # Platform name -> its store API (sync, reconcile, webhook health, variant completion);
    # a platform without one is push only, as before.
    stores: Mapping[str, StoreConfig] = field(default_factory=dict)
    # How often a worker asks each store what changed (0: never).
    reconcile_interval_seconds: int = DEFAULT_RECONCILE_INTERVAL_SECONDS

    @property
    def sandbox(self) -> bool:
        """Without an API key nothing leaves the machine: requests are recorded instead."""
        return not self.commerce_api_key

    @property
    def job_timeout_seconds(self) -> int:
        """Long enough for a few API requests; short enough that a worker killed mid-job is
        noticed soon (RQ waits this plus 60 s before it calls a job abandoned)."""
        return int(self.api_timeout_seconds * 4) + 30

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    def secret_for(self, platform: str) -> str | None:
        return self.platform_secrets.get(platform)

    def options_for(self, platform: str) -> Mapping[str, str]:
        return self.platform_options.get(platform, {})

    def store_for(self, platform: str) -> StoreConfig | None:
        return self.stores.get(platform)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        platforms: Iterable[PlatformSettingsSpec] = (),
    ) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        secrets: dict[str, str] = {}
        options: dict[str, dict[str, str]] = {}
        stores: dict[str, StoreConfig] = {}
        for spec in platforms:
            store = _store_config(env, spec)
            if store is not None:
                stores[spec.name] = store
            value = env.secret(spec.secret_variable)
            if value is not None:
                if spec.check_secret is not None:
                    problem = _secret_problem(spec.check_secret, value)
                    if problem:
                        raise ConfigError(f"{spec.secret_variable}: {problem}")
                secrets[spec.name] = value
            found = {opt: env.text(var) for opt, var in spec.option_variables.items()}
            options[spec.name] = {k: v for k, v in found.items() if v is not None}
            for option, value in options[spec.name].items():
                problem = _option_problem(option, value)
                if problem:
                    raise ConfigError(f"{spec.option_variables[option]}: {problem}")
        return cls(
            commerce_api_url=env.url("RELAY_COMMERCE_API_URL", DEFAULT_API_URL),
            commerce_api_key=env.secret("RELAY_COMMERCE_API_KEY"),
            commerce_company_id=env.header_value("RELAY_COMMERCE_COMPANY_ID"),
            redis_url=env.redis_url("RELAY_REDIS_URL"),
            data_dir=Path(env.text("RELAY_DATA_DIR") or DEFAULT_DATA_DIR),
            bind=env.bind("RELAY_BIND", DEFAULT_BIND),
            worker_metrics_bind=env.optional_bind("RELAY_WORKER_METRICS_BIND"),
            admin_token=env.secret("RELAY_ADMIN_TOKEN"),
            sentry_dsn=env.secret("SENTRY_DSN"),
            platform_secrets=secrets,
            platform_options=options,
            max_body_bytes=env.integer("RELAY_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024),
            dedup_window_seconds=env.integer("RELAY_DEDUP_WINDOW_SECONDS", 24 * 3600, minimum=1),
            retry=RetryPolicy(
                max_attempts=env.integer("RELAY_RETRY_MAX_ATTEMPTS", 15, minimum=1),
                base_seconds=env.number("RELAY_RETRY_BASE_SECONDS", 10.0, minimum=0.0),
                max_delay_seconds=env.number("RELAY_RETRY_MAX_DELAY_SECONDS", 6 * 3600.0, 0.0),
            ),
            api_timeout_seconds=env.number("RELAY_API_TIMEOUT_SECONDS", 15.0, minimum=0.1),
            web_workers=env.integer("RELAY_WEB_WORKERS", 1, minimum=1),
            workers=env.integer("RELAY_WORKERS", 1, minimum=1),
            delivery_concurrency=env.integer(
                "RELAY_DELIVERY_CONCURRENCY", 16, minimum=1, maximum=256
            ),
            redis_fsync=env.choice("RELAY_REDIS_FSYNC", "always", ("always", "everysec", "no")),
            trust_proxy=env.choice("RELAY_TRUST_PROXY", "no", ("yes", "no")) == "yes",
            healthz_grace_seconds=env.integer("RELAY_HEALTHZ_GRACE_SECONDS", 120, minimum=1),
            dlq_retention_days=env.integer("RELAY_DLQ_RETENTION_DAYS", 14, minimum=1),
            dlq_max=env.integer("RELAY_DLQ_MAX", 10_000, minimum=1),
            log_format=env.text("RELAY_LOG_FORMAT")
            and env.choice("RELAY_LOG_FORMAT", "json", ("json", "text")),
            log_level=env.choice("RELAY_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            storefront_origins=env.origins("RELAY_STOREFRONT_ORIGINS"),
            stores=stores,
            reconcile_interval_seconds=env.duration(
                "RELAY_RECONCILE_INTERVAL", DEFAULT_RECONCILE_INTERVAL_SECONDS
            ),
        )


@dataclass(frozen=True)
class PlatformSettingsSpec:
    """What the settings loader needs to know about one platform (from its mapper)."""

    name: str
    secret_kind: str = "secret"  # "secret" or "token": RELAY_<NAME>_SECRET or RELAY_<NAME>_TOKEN
    options: tuple[str, ...] = ()
    # Returns a description of what is wrong with a secret value, or None when it is fine.
    check_secret: Callable[[str], str | None] | None = None
    # The credentials of the platform's store API (its mapper's StoreSpec), each a secret
    # setting RELAY_<NAME>_<CREDENTIAL>; none: the platform has no store API.
    store_credentials: tuple[str, ...] = ()

    @property
    def secret_variable(self) -> str:
        return f"RELAY_{self.env_name}_{self.secret_kind.upper()}"

    @property
    def env_name(self) -> str:
        return self.name.upper().replace("-", "_")

    @property
    def option_variables(self) -> dict[str, str]:
        return {opt: f"RELAY_{self.env_name}_{opt.upper()}" for opt in self.options}

    def variable(self, name: str) -> str:
        """RELAY_<NAME>_<SETTING>: store_url, max_rps, a credential."""
        return f"RELAY_{self.env_name}_{name.upper()}"

    @property
    def store_variables(self) -> list[str]:
        """The settings that turn the store API on, all of them needed."""
        return [self.variable("store_url"), *(self.variable(c) for c in self.store_credentials)]


def _store_config(env: _Env, spec: PlatformSettingsSpec) -> StoreConfig | None:
    """The platform's store API settings: all of them, or none (then push only)."""
    if not spec.store_credentials:
        return None
    url_variable = spec.variable("store_url")
    given = {name: env.secret(name) for name in spec.store_variables[1:]}
    url = env.text(url_variable)
    if url is None and not any(given.values()):
        if env.text(spec.variable("max_rps")) is not None:
            env.store_rps(spec.variable("max_rps"))  # checked even while unused
        return None
    values = {url_variable: url, **given}
    missing = [name for name in spec.store_variables if values[name] is None]
    if missing:
        present = next(n for n in spec.store_variables if n not in missing)
        raise ConfigError(
            f"{missing[0]}: needed with {present} (the store API takes all of "
            f"{', '.join(spec.store_variables)}, or none of them)"
        )
    credentials = {c: given[spec.variable(c)] or "" for c in spec.store_credentials}
    return StoreConfig(
        platform=spec.name,
        url=env.store_url(url_variable),
        credentials=credentials,
        max_rps=env.store_rps(spec.variable("max_rps")),
    )


@lru_cache(maxsize=256)
def secret_values(value: str) -> tuple[str, ...]:
    """The values of a RELAY_<PLATFORM>_SECRET / _TOKEN: several, separated by spaces, while
    a secret is rotated (WooCommerce gives each webhook its own secret). Cached: ingest asks
    on every webhook."""
    return tuple(value.split())


def _secret_problem(check: Callable[[str], str | None], value: str) -> str | None:
    """The platform's check applied to each value; which one is wrong is said by position,
    never by its text."""
    values = secret_values(value)
    for position, one in enumerate(values, start=1):
        problem = check(one)
        if problem:
            return problem if len(values) == 1 else f"value {position} of {len(values)}: {problem}"
    return None


def _option_problem(option: str, value: str) -> str | None:
    """Mapper options with a meaning the relay knows are checked at start-up, so a typo
    stops the relay instead of dead-lettering every event."""
    if option == "currency" and not (len(value) == 3 and value.isalpha() and value.isupper()):
        return f"expected an ISO 4217 code such as EUR, got {value!r}"
    if option == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"expected an IANA time zone such as America/New_York, got {value!r}"
    return None


DEFAULT_PORTS = {"http": 80, "https": 443}


def web_origin(raw: str) -> tuple[str, str | None]:
    """`raw` as the `Origin` header a browser sends (`https://shop.example.com`, lower case,
    no default port), or the problem with it. A browser's Origin never has a path, a query,
    credentials or a wildcard, so a value with any of them could never match."""
    example = "expected scheme://host[:port] such as https://shop.example.com"
    parts = urlsplit(raw)
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return "", example
    if parts.path not in ("", "/") or parts.query or parts.fragment or raw.endswith(("?", "#")):
        return "", f"an origin has no path, query or fragment ({example})"
    if "@" in parts.netloc or "*" in parts.netloc:
        return "", f"an origin has no user name or wildcard ({example})"
    try:
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return "", example
    if not host:
        return "", example
    if ":" in host:  # IPv6
        host = f"[{host}]"
    suffix = f":{port}" if port is not None and port != DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{suffix}", None


class _Env:
    """Typed reads of environment variables, each failing with a one-line ConfigError."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def text(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def secret(self, name: str) -> str | None:
        """`NAME`, or the contents of the file named by `NAME_FILE` (not both)."""
        direct = self.text(name)
        file_name = self.text(f"{name}_FILE")
        if direct is not None and file_name is not None:
            raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
        if file_name is None:
            return direct
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name!r} ({exc.strerror})") from None
        if not value:
            raise ConfigError(f"{name}_FILE: {file_name!r} is empty")
        return value

    def header_value(self, name: str, limit: int = 255) -> str | None:
        """A value sent as an HTTP header as it is: printable ASCII, no spaces."""
        raw = self.text(name)
        if raw is None:
            return None
        if len(raw) > limit or not all("!" <= c <= "~" for c in raw):
            raise ConfigError(
                f"{name}: expected an id of at most {limit} letters, digits or punctuation, "
                "without spaces"
            )
        return raw

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name}: must be at most {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
        if not value >= minimum:  # also rejects NaN
            raise ConfigError(f"{name}: must be at least {minimum:g}, got {raw}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in allowed:
            raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
        return raw

    def url(self, name: str, default: str) -> str:
        raw = self.text(name) or default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name}: expected an http(s) URL, got {raw!r}")
        return raw.rstrip("/")

    def store_url(self, name: str) -> str:
        """A shop's base URL (https://shop.example.com, or a WordPress in a folder)."""
        raw = self.text(name) or ""
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name}: expected the shop's http(s) URL, got {raw!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            # Credentials have their own settings; a URL is logged and shown.
            raise ConfigError(f"{name}: expected scheme://host[/path] without user, query or #")
        return raw.rstrip("/")

    def store_rps(self, name: str) -> float:
        value = self.number(name, DEFAULT_STORE_MAX_RPS, minimum=0.01)
        if value > 1000:
            raise ConfigError(f"{name}: must be at most 1000, got {value:g}")
        return value

    def duration(self, name: str, default: int) -> int:
        """Whole seconds: `900`, `900s`, `15m`, `1h`; 0 = off."""
        raw = self.text(name)
        if raw is None:
            return default
        units = {"s": 1, "m": 60, "h": 3600}
        number, unit = (raw[:-1], units[raw[-1]]) if raw[-1:] in units else (raw, 1)
        if not number.isdigit():
            raise ConfigError(f"{name}: expected seconds or a duration such as 15m, got {raw!r}")
        return int(number) * unit

    def redis_url(self, name: str) -> str | None:
        raw = self.secret(name)  # may carry a password, so it can come from a file too
        if raw is None:
            return None
        if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
            # Do not echo the value: it may contain a password.
            raise ConfigError(f"{name}: expected a redis://, rediss:// or unix:// URL")
        return raw

    def origins(self, name: str) -> tuple[str, ...]:
        """Space-separated web origins, each as a browser sends it in `Origin`."""
        found: list[str] = []
        for raw in (self.text(name) or "").split():
            origin, problem = web_origin(raw)
            if problem:
                raise ConfigError(f"{name}: {raw!r} is not an origin: {problem}")
            if origin not in found:
                found.append(origin)
        return tuple(found)

    def optional_bind(self, name: str) -> str | None:
        return self.bind(name, DEFAULT_BIND) if self.text(name) else None

    def bind(self, name: str, default: str) -> str:
        raw = self.text(name) or default
        host, sep, port = raw.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: expected HOST:PORT such as 127.0.0.1:8000, got {raw!r}")
        return raw
