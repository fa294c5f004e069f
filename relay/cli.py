"""The `relay` command. Names and options are public interface (DESIGN.md section 3)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from relay.registry import Registry, default_registry
from relay.settings import ConfigError, Settings

if TYPE_CHECKING:  # redis-py is heavy: `relay run`'s supervisor never imports it
    from redis import Redis


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"relay: {message}", err=True)
    sys.exit(code)


def _load() -> tuple[Settings, Registry]:
    registry = default_registry()
    try:
        return Settings.from_env(platforms=registry.settings_specs()), registry
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", 2)
        raise  # unreachable


@contextlib.contextmanager
def _redis(settings: Settings) -> Iterator[Redis]:
    """Redis for a one-off command: RELAY_REDIS_URL, or the embedded Redis of a running
    `relay run`, or (when none runs) the embedded Redis started just for this command."""
    from relay.redis_conn import connect
    from relay.runtime.embedded_redis import EmbeddedRedis, running_url

    url = settings.redis_url or running_url(settings.data_dir)
    if url:
        yield connect(url, socket_timeout=10)
        return
    try:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_fsync).start()
    except ConfigError as exc:
        _fail(str(exc), 2)
    try:
        yield connect(embedded.url, socket_timeout=10)
    finally:
        embedded.stop()


# What a terminal would act on rather than show: C0 and C1 controls (ESC starts the OSC and
# CSI sequences that retitle windows, rewrite lines or, in some terminals, write files),
# DEL, and the Unicode line separators and bidirectional overrides that make text read
# other than it is. Shown escaped instead, so the operator sees that something odd was sent.
_TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _printable(value: object) -> str:
    """Stored text (platform, topic, errors quoting the payload) made safe for a terminal."""
    return _TERMINAL_CONTROLS.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}",
        str(value),
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _setup_process(component: str, settings: Settings) -> None:
    """Logs (JSON lines, or text in a terminal), Sentry when configured, and a metrics
    directory shared by this process's children unless `relay run` gave one."""
    from relay.runtime import logs, sentry

    logs.configure(settings.log_level, log_format=settings.log_format)
    sentry.init_sentry(settings, component)
    if component == "supervisor":  # `relay run`: its children share <data dir>/metrics
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    elif not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"relay-{component}-")


@click.group()
def main() -> None:
    """Commerce relay: platform webhooks in, Commerce API requests out."""


# --- processes ----------------------------------------------------------------------------


@main.command()
def run() -> None:
    """Web server, worker(s) and scheduler, with an embedded Redis when RELAY_REDIS_URL is unset."""
    from relay.runtime.supervisor import Supervisor

    settings, _ = _load()
    _setup_process("supervisor", settings)
    try:
        code = Supervisor(settings).run()
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", 2)
    sys.exit(code)


def _with_redis_url(settings: Settings) -> Settings:
    """`relay web` and `relay worker` alone use RELAY_REDIS_URL, or the embedded Redis of a
    `relay run` on the same data directory."""
    from dataclasses import replace

    from relay.runtime.embedded_redis import running_url

    if settings.redis_url:
        return settings
    url = running_url(settings.data_dir)
    if not url:
        _fail(
            "configuration error: RELAY_REDIS_URL: unset, and no embedded Redis is running "
            f"in {settings.data_dir} (start `relay run`, or set RELAY_REDIS_URL)",
            2,
        )
    return replace(settings, redis_url=url)


@main.command()
def web() -> None:
    """The web server alone (gunicorn)."""
    settings, _ = _load()
    _setup_process("web", settings)  # before the app (and prometheus_client) is imported
    from relay.runtime.web_server import serve

    try:
        serve(_with_redis_url(settings))
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", 2)


@main.command()
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
def worker(burst: bool) -> None:
    """A delivery worker alone (RQ, with the retry scheduler)."""
    settings, registry = _load()
    _setup_process("worker", settings)  # before prometheus_client is imported
    from relay.delivery.worker import run_worker

    settings = _with_redis_url(settings)
    if settings.worker_metrics_bind:
        from relay.runtime.metrics import serve_worker_metrics

        try:
            serve_worker_metrics(settings.worker_metrics_bind)
        except OSError as exc:
            _fail(
                "configuration error: RELAY_WORKER_METRICS_BIND: cannot listen on "
                f"{settings.worker_metrics_bind}: {exc.strerror or exc}",
                2,
            )
    run_worker(settings, registry, burst=burst)


# --- dead letters -------------------------------------------------------------------------


@main.group()
def dlq() -> None:
    """Dead letters: events the relay gave up on."""


def _platform_option(f: Any) -> Any:
    return click.option("--platform", "-p", default=None, help="Only this platform.")(f)


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=50, show_default=True)
@_platform_option
def dlq_list(as_json: bool, limit: int, platform: str | None) -> None:
    """List dead letters, newest first."""
    from relay.delivery.deadletters import DeadLetters
    from relay.redaction import redact, secrets_of

    settings, _ = _load()
    with _redis(settings) as redis:
        letters = DeadLetters(redis).list(platform, limit)
        total = DeadLetters(redis).count(platform)
    # As the admin page: a platform may echo its own token in what it sent.
    rows = redact([letter.summary() for letter in letters], secrets_of(settings))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
        return
    from relay.delivery.letter_context import as_text

    click.echo(
        f"{'ID':<28} {'PLATFORM':<14} {'TOPIC':<18} {'REASON':<18} {'TRIES':>5}  "
        f"{'DEAD AT':<20} {'ABOUT':<48} ERROR"
    )
    for row in rows:
        text = {key: _printable(row[key]) for key in ("id", "platform", "topic", "reason")}
        about = _printable(as_text(row.get("about"))) or "-"
        click.echo(
            f"{text['id']:<28} {text['platform']:<14} {text['topic']:<18} "
            f"{text['reason']:<18} {row['attempts']:>5}  {_when(row['dead_at']):<20} "
            f"{about:<48} {_printable(row['error'][:80])}"
        )
    if total > len(letters):
        click.echo(f"... {total - len(letters)} more (use --limit)")


@dlq.command("show")
@click.argument("event_id")
def dlq_show(event_id: str) -> None:
    """Everything kept for one dead letter (raw event, records, error, API answer)."""
    from dataclasses import asdict

    from relay.delivery.deadletters import DeadLetters
    from relay.redaction import redact, secrets_of

    settings, _ = _load()
    with _redis(settings) as redis:
        letter = DeadLetters(redis).get(event_id)
    if letter is None:
        _fail(f"no dead letter {_printable(repr(event_id))}")
    # Redacted as the admin page shows it. JSON escapes every control character.
    shown = redact({**asdict(letter), "about": letter.context()}, secrets_of(settings))
    click.echo(json.dumps(shown, indent=2 if sys.stdout.isatty() else None))


def _select(redis: Redis, ids: tuple[str, ...], all_: bool) -> list[Any]:
    """The letters named by id (each checked before anything is done); [] with --all,
    which the commands page through themselves rather than load every letter."""
    from relay.delivery.deadletters import DeadLetters

    if ids and all_:
        _fail("give dead letter ids or --all, not both", 2)
    if all_:
        return []
    if not ids:
        _fail("give dead letter ids, or --all", 2)
    store = DeadLetters(redis)
    letters = []
    for event_id in ids:
        letter = store.get(event_id)
        if letter is None:
            _fail(f"no dead letter {_printable(repr(event_id))}")
        letters.append(letter)
    return letters


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter (of --platform).")
@_platform_option
def dlq_replay(ids: tuple[str, ...], all_: bool, platform: str | None) -> None:
    """Map the raw events again with today's code and queue them for delivery."""
    from relay.delivery.deadletters import replay, replay_all
    from relay.event_queue import EventQueue

    settings, _ = _load()
    with _redis(settings) as redis:
        letters = _select(redis, ids, all_)
        events = EventQueue(redis, job_timeout=settings.job_timeout_seconds)
        count = replay_all(events, platform) if all_ else replay(events, letters)
    click.echo(f"replayed {count} dead letter{'s' if count != 1 else ''}")


@dlq.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter (of --platform).")
@_platform_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation with --all.")
def dlq_purge(ids: tuple[str, ...], all_: bool, platform: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    from relay.delivery.deadletters import DeadLetters

    settings, _ = _load()
    with _redis(settings) as redis:
        letters = _select(redis, ids, all_)
        store = DeadLetters(redis)
        if all_:
            # Only what was counted for the question: letters that die meanwhile are kept.
            total, upto = store.count(platform), store.newest_dead_at(platform)
            if total and not yes:
                click.confirm(f"delete {total} dead letters for good?", abort=True)
            count = store.purge(platform, upto) if upto is not None else 0
        else:
            store.remove(letters)
            count = len(letters)
    click.echo(f"purged {count} dead letter{'s' if count != 1 else ''}")


# --- sandbox, checks, platforms -----------------------------------------------------------


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full requests as JSON.")
def sandbox(limit: int, as_json: bool) -> None:
    """The latest requests the relay would have sent (sandbox mode: no API key)."""
    from relay.delivery.commerce_api import SandboxClient
    from relay.redaction import redact, secrets_of

    settings, _ = _load()
    with _redis(settings) as redis:
        records = redact(SandboxClient(redis).latest(limit), secrets_of(settings))
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not settings.sandbox:
        click.echo("note: RELAY_COMMERCE_API_KEY is set, so new requests are really sent")
    if not records:
        click.echo("no sandbox records")
    for record in records:
        body = json.dumps(record.get("body"), separators=(",", ":"))
        click.echo(
            f"{_when(record['at'])}  {record['method']:<6} {_printable(record['path']):<28} "
            f"{_printable(record.get('entity', '')):<24} {body[:100]}"
        )


@main.command()
def check() -> None:
    """Validate configuration, reach Redis and the Commerce API, say which workspace the
    data lands in; exit non-zero on a problem."""
    from redis import exceptions as redis_errors

    settings, registry = _load()
    problems = 0
    click.echo("configuration  ok")
    workspace_lines, workspace, failed = _check_workspace(settings)
    problems += failed
    try:
        with _redis(settings) as redis:
            redis.ping()
            if workspace is not None:  # for /readyz and the admin page, which never ask
                from relay.workspace import save

                save(redis, workspace)
        where = "RELAY_REDIS_URL" if settings.redis_url else f"embedded, {settings.data_dir}"
        click.echo(f"redis          ok ({where})")
    except (redis_errors.RedisError, OSError) as exc:
        problems += 1
        click.echo(f"redis          UNREACHABLE: {type(exc).__name__}")
    for line in workspace_lines:
        click.echo(line)
    for platform in registry:
        from relay.settings import PlatformSettingsSpec

        variable = PlatformSettingsSpec(platform.name, platform.secret_kind).secret_variable
        state = "enabled" if settings.secret_for(platform.name) else f"disabled (set {variable})"
        click.echo(f"platform       {platform.name}: {state}")
    sys.exit(1 if problems else 0)


def _check_workspace(settings: Settings) -> tuple[list[str], Any, bool]:
    """The lines `relay check` prints for the Commerce API and the workspace, the workspace
    found (to keep in Redis) or None, and whether that is a problem."""
    if settings.sandbox:
        return (
            [
                "commerce api   sandbox: RELAY_COMMERCE_API_KEY is unset, nothing is sent",
                "workspace      none: sandbox mode sends nothing",
            ],
            None,
            False,
        )
    from relay.delivery.account import check as check_account
    from relay.delivery.commerce_api import CommerceClient

    outcome, found = check_account(CommerceClient.from_settings(settings), settings)
    if found is None:
        hint = " (is the API key right?)" if outcome.status in (401, 403) else ""
        return [f"commerce api   FAILED: {_printable(outcome.error)}{hint}"], None, True
    lines = [f"commerce api   ok ({settings.commerce_api_url})"]
    if not outcome.ok:  # one of the two reads failed: what the other said is shown
        lines[0] += f"; one account read failed: {_printable(outcome.error)}"
    if found.problem:
        lines.append(f"workspace      FAILED: {_printable(found.problem)}")
        return lines, found, True
    key = f"{found.key_type} key" if found.key_type else "key type not reported"
    how = "" if found.selected_by == "api key" else f", selected by {found.selected_by}"
    lines.append(f"workspace      {_printable(found.label())}: the data lands here ({key}{how})")
    return lines, found, False


@main.command()
def mappers() -> None:
    """Platforms, their webhook URL, how they authenticate, and whether they are enabled."""
    settings, registry = _load()
    base = f"http://{settings.bind}"
    for platform in registry:
        url = f"{base}/webhooks/{platform.name}"
        if platform.token_in_path:
            url += "/<token>"
        enabled = "enabled" if settings.secret_for(platform.name) else "disabled"
        click.echo(f"{platform.name:<14} {enabled:<9} {url}")
        click.echo(f"{'':<14} auth: {platform.verifier.description}")
        # The token itself is never printed: the merchant fills it in.
        for template in platform.url_template.splitlines():
            click.echo(f"{'':<14} paste: {template.replace('{relay}', base)}")


@main.command()
@click.argument("platform_name", metavar="PLATFORM")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default=None, help="The relay's base URL (default: http://RELAY_BIND).")
@click.option("--topic", default=None, help="Event topic, when the platform sends one.")
def send(platform_name: str, file: Path, url: str | None, topic: str | None) -> None:
    """Sign FILE as PLATFORM would and post it to a running relay (like "send test")."""
    import requests

    from relay.sender import SendError, build_request

    settings, registry = _load()
    platform = registry.get(platform_name)
    if platform is None:
        _fail(f"no platform named {platform_name!r} (see `relay mappers`)", 2)
    secret = settings.secret_for(platform.name)
    if not secret:
        from relay.settings import PlatformSettingsSpec

        variable = PlatformSettingsSpec(platform.name, platform.secret_kind).secret_variable
        _fail(f"set {variable} to sign as {platform.title}", 2)
    try:
        outgoing = build_request(platform, secret, file, topic)
    except SendError as exc:
        _fail(str(exc), 2)
    base = (url or f"http://{settings.bind}").rstrip("/")
    try:
        response = requests.request(
            outgoing.method,
            base + outgoing.path,
            data=outgoing.body,
            headers=outgoing.headers,
            timeout=30,
        )
    except requests.RequestException as exc:
        _fail(f"could not reach {base}: {type(exc).__name__}")
    click.echo(f"{response.status_code} {response.text.strip()}")
    sys.exit(0 if response.ok else 1)


# --- the store: sync, reconcile, connect (relay/sync/) ------------------------------------


def _date_option(value: str | None) -> str | None:
    """--orders-since: a date (2024-01-31) or a UTC time (2024-01-31T12:00:00)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--orders-since: expected a date such as 2024-01-31, got {value!r}", 2)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@contextlib.contextmanager
def _store(settings: Settings, registry: Registry, name: str) -> Iterator[Any]:
    """The platform's store, open, with Ctrl-C (and SIGTERM) stopping the run cleanly at
    the next page: its checkpoints say where it was."""
    import signal
    import threading

    from relay.sync.service import NoStore, open_store

    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: now
            raise KeyboardInterrupt
        click.echo("\nstopping after this request (Ctrl-C again to quit now)", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _redis(settings) as redis:
            try:
                store = open_store(settings, registry, redis, name, stop=stop)
            except NoStore as exc:
                _fail(str(exc), 2)
            try:
                yield store
            finally:
                store.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sync_logs(settings: Settings) -> None:
    """The command line says itself what happened (progress, skipped records, the end): the
    sync's own log lines only when RELAY_LOG_LEVEL asks for them."""

    from relay.runtime import logs

    level = settings.log_level if os.environ.get("RELAY_LOG_LEVEL") else "ERROR"
    logs.configure(level, log_format=settings.log_format)


def _run_ended(store: Any, run: Any, again: str) -> int:
    """One line for how the run ended; the exit status."""
    if run.auth_failed:
        click.echo(
            f"relay: the store refused the credentials ({_printable(run.error)}): "
            f"{store.credentials_hint()}",
            err=True,
        )
        return 2
    if run.status == "done":
        return 0
    if run.status == "incomplete":
        return 1
    if run.status == "interrupted":
        click.echo(
            f"{run.kind} interrupted ({_printable(run.error)}): run `{again}` again to "
            "go on from where it stopped",
            err=True,
        )
        return 1
    click.echo(
        f"relay: {run.kind} failed: {_printable(run.error)} (run `{again}` again to go "
        "on from where it stopped)",
        err=True,
    )
    return 1


def _skipped_lines(redis: Any, run: Any) -> list[str]:
    from relay.sync.checkpoints import Checkpoints

    lines = []
    for state in Checkpoints(redis, run.platform, run.kind).phases(run):
        if state.skipped:
            ids = ", ".join(state.skipped_ids)
            more = (
                f" and {state.skipped - len(state.skipped_ids)} more"
                if (state.skipped > len(state.skipped_ids))
                else ""
            )
            lines.append(f"  {state.name}: could not read {ids}{more}")
    return lines


@main.command()
@click.argument("platform_name", metavar="PLATFORM")
@click.option(
    "--orders-since",
    default=None,
    metavar="DATE",
    help="Also send the orders placed since DATE (UTC). Whether historical `placed` orders "
    "start automations at Sequenzy is not documented: pause order automations first.",
)
@click.option(
    "--dry-run", is_flag=True, help="Fetch and map, count what would be sent, send nothing."
)
def sync(platform_name: str, orders_since: str | None, dry_run: bool) -> None:
    """Initial sync from the store's own API: products with their complete variants,
    customers, guest buyers (and orders with --orders-since). Resumable: run it again after
    an interruption and it goes on from the last page stored. Needs a worker running
    (`relay run` or `relay worker`) to deliver what it finds."""
    from relay.sync.lock import StoreBusy
    from relay.sync.progress import ProgressPrinter
    from relay.sync.service import backfill

    since = _date_option(orders_since)
    settings, registry = _load()
    _sync_logs(settings)
    again = f"relay sync {platform_name}" + (f" --orders-since {orders_since}" if since else "")
    printer = ProgressPrinter()

    def started(run: Any, resumed: bool) -> None:
        what = ", ".join(p.title for p in run.phases)
        if run.dry_run:
            printer.header = f"dry run of {store.config.url}: {what} (nothing is sent)"
        elif resumed:
            printer.header = f"resuming {run.run_id} ({what})"
        else:
            printer.header = f"sync {run.run_id} of {store.config.url}: {what}"

    with _store(settings, registry, platform_name) as store:
        try:
            run = backfill(
                store, orders_since=since, dry_run=dry_run, progress=printer, on_start=started
            )
        except StoreBusy as exc:
            _fail(f"another process is talking to the store ({_printable(exc)}); wait for it", 1)
        printer.finish()
        code = _run_ended(store, run, again)
        if run.dry_run and run.status == "done":
            counts = run.params.get("counts", {})
            shown = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing"
            click.echo(f"dry run: the workers would be handed {shown}; nothing was sent")
        elif run.status in ("done", "incomplete"):
            pushed = sum(p["pushed"] for p in _phase_counts(store.redis, run))
            click.echo(
                f"{run.status}: {pushed} records handed to the workers, which send what the "
                "entity rules do not find unchanged"
            )
            for line in _skipped_lines(store.redis, run):
                click.echo(line)
    sys.exit(code)


def _phase_counts(redis: Any, run: Any) -> list[dict[str, Any]]:
    from relay.sync.checkpoints import Checkpoints

    return [
        {"name": s.name, "pushed": s.pushed, "scanned": s.scanned, "skipped": s.skipped}
        for s in Checkpoints(redis, run.platform, run.kind).phases(run)
    ]


@main.command()
@click.argument("platform_name", metavar="PLATFORM", required=False)
def reconcile(platform_name: str | None) -> None:
    """Ask the store now what changed since the last run (webhooks it may have missed), and
    check its webhooks (a disabled one is re-enabled). Without PLATFORM: every store set up."""
    from relay.sync.lock import StoreBusy
    from relay.sync.progress import ProgressPrinter
    from relay.sync.service import reconcile as reconcile_store

    settings, registry = _load()
    _sync_logs(settings)
    names = [platform_name] if platform_name else sorted(settings.stores)
    if not names:
        _fail("no store API is set up (e.g. RELAY_WOOCOMMERCE_STORE_URL and its key)", 2)
    worst = 0
    for name in names:
        printer = ProgressPrinter()
        with _store(settings, registry, name) as store:
            try:
                result = reconcile_store(store, progress=printer)
            except StoreBusy as exc:
                _fail(f"another process is talking to the store ({_printable(exc)}); wait", 1)
            except Exception as exc:
                from relay.store_api import StoreAuthError

                if not isinstance(exc, StoreAuthError):
                    raise
                _fail(
                    f"the store refused the credentials ({_printable(exc)}): "
                    f"{store.credentials_hint()}",
                    2,
                )
            printer.finish()
            run = result.run
            code = _run_ended(store, run, f"relay reconcile {name}")
            if run.status in ("done", "incomplete"):
                pushed = sum(p["pushed"] for p in _phase_counts(store.redis, run))
                click.echo(
                    f"{name}: {run.status}, {run.params['since']} to {run.params['until']} UTC: "
                    f"{pushed} records handed to the workers (what they send is what webhooks "
                    "had missed: relay_reconcile_found_total, the admin page)"
                )
                for line in _skipped_lines(store.redis, run):
                    click.echo(line)
            if result.health is not None:
                for line in _health_lines(result.health):
                    click.echo(f"{name}: {line}")
            worst = max(worst, code)
    sys.exit(worst)


def _health_lines(health: Any) -> list[str]:
    lines = [f"webhook {i} re-enabled" for i in health.reenabled]
    lines += [f"webhook {i} created" for i in health.created]
    if health.missing:
        lines.append(
            f"no active webhook for {', '.join(health.missing)} "
            "(run `relay connect PLATFORM --url URL`)"
        )
    lines += [_printable(p) for p in health.problems]
    if not lines:
        lines.append(f"webhooks ok ({len(health.webhooks)})")
    return lines


@main.command()
@click.argument("platform_name", metavar="PLATFORM")
@click.option(
    "--url", required=True, help="The relay's public base URL, e.g. https://relay.example.com"
)
def connect(platform_name: str, url: str) -> None:
    """Create or repair the store's webhooks for every topic the relay uses, delivered to
    URL/webhooks/PLATFORM and signed with the first value of the platform's secret."""
    from urllib.parse import urlsplit

    from relay.store_api import StoreError, StoreWriteRefused
    from relay.sync import webhooks
    from relay.sync.lock import StoreBusy

    settings, registry = _load()
    _sync_logs(settings)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        _fail(f"--url: expected the relay's http(s) base URL, got {url!r}", 2)
    secret = (settings.secret_for(platform_name) or "").split()
    if not secret:
        from relay.settings import PlatformSettingsSpec

        platform = registry.get(platform_name)
        kind = platform.secret_kind if platform else "secret"
        variable = PlatformSettingsSpec(platform_name, kind).secret_variable
        _fail(f"set {variable} first: the webhooks are signed with its first value", 2)
    with _store(settings, registry, platform_name) as store:
        try:
            with store.lock() as lock:
                lock.acquire(30.0)
                health = webhooks.connect(store, url, secret[0])
        except StoreBusy as exc:
            _fail(f"another process is talking to the store ({_printable(exc)}); wait", 1)
        except StoreWriteRefused as exc:
            _fail(
                f"the key may not write ({_printable(exc)}): connect needs a Read/Write "
                f"key; {store.credentials_hint()}",
                2,
            )
        except StoreError as exc:
            from relay.store_api import StoreAuthError

            if isinstance(exc, StoreAuthError):
                _fail(
                    f"the store refused the credentials ({_printable(exc)}): "
                    f"{store.credentials_hint()}",
                    2,
                )
            _fail(f"the store answered: {_printable(exc)}", 1)
    target = webhooks.delivery_url(url, platform_name)
    for hook in health.webhooks:
        what = (
            "created"
            if hook["id"] in health.created
            else "re-enabled"
            if hook["id"] in health.reenabled
            else "ok"
        )
        click.echo(f"{hook['topic']:<20} webhook {hook['id']:<8} {what}")
    for problem in health.problems:
        click.echo(_printable(problem))
    click.echo(f"{len(health.webhooks)} webhooks deliver to {target}")
    sys.exit(0 if health.ok else 1)


if __name__ == "__main__":
    main()
