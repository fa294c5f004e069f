"""What a browser GETs from the admin: the login form, the overview, one dead letter, and
the confirmation pages before a purge (and the login and logout POSTs)."""

from __future__ import annotations

from typing import Any

from flask import g, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from mappers.storefront.mapper import NAME as STOREFRONT
from relay import stats, workspace
from relay.admin.auth import FailedLogins, Sessions
from relay.admin.blueprint import (
    DEAD_LETTERS_SHOWN,
    SANDBOX_RECORDS_SHOWN,
    Admin,
    Refused,
    bp,
    client,
    context,
    letter_dict,
    platform_arg,
    queue_state,
    sandbox_records,
    token,
)
from relay.admin.guard import current_session, drop_session_cookie, set_session_cookie
from relay.admin.view import platform_rows, without_credentials
from relay.delivery.deadletters import DeadLetters
from relay.redaction import redact, secrets_of
from relay.storefront.recent import RecentRequests
from relay.sync.status import store_status

_NOTICES = {
    "replayed": "Replayed {n} dead letter{s}: back on the queue, to be mapped again with "
    "today's code and delivered.",
    "purged": "Deleted {n} dead letter{s} for good.",
    "gone": "That dead letter is no longer there (replayed or purged meanwhile).",
    "logged_out": "You are logged out.",
    "sync_queued": "Store sync queued: a worker runs it (resuming one that stopped); its "
    "progress shows below.",
    "reconcile_queued": "Reconcile queued: a worker asks the store what changed.",
}


def notice() -> str | None:
    """The message of a redirect after an action: a fixed text, never the query's words."""
    template = _NOTICES.get(request.args.get("notice", ""))
    if template is None:
        return None
    n = request.args.get("n", default=0, type=int)
    return template.format(n=n, s="" if n == 1 else "s")


# --- login -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    if request.method == "GET":
        if current_session() is not None:
            return redirect(url_for("admin.overview"), 303)
        return render_template("admin/login.html", notice=notice()), 200
    # The token typed is never put back into the page.
    check = FailedLogins(context().redis).check(client(), request.form.get("token", ""), token())
    if check.blocked:
        error = "Too many wrong tokens were tried. Wait a minute, then try again."
        page = make_response(render_template("admin/login.html", error=error), 429)
        page.headers["Retry-After"] = str(check.retry_after)
        return page
    if not check.ok:
        return render_template("admin/login.html", error="That is not the admin token."), 401
    sessions = Sessions(context().redis, token())
    old = current_session()
    if old is not None:
        sessions.end(old)
    _, cookie = sessions.start()  # a new id at every login: no session fixation
    g.drop_cookie = False
    response = redirect(url_for("admin.overview"), 303)
    set_session_cookie(response, cookie)
    return response


@bp.post("/logout")
def logout() -> Response:
    admin: Admin = g.admin
    if admin.session is not None:
        Sessions(context().redis, token()).end(admin.session)
    response = redirect(url_for("admin.login", notice="logged_out"), 303)
    drop_session_cookie(response)
    return response


# --- pages -----------------------------------------------------------------------------------


@bp.get("/", strict_slashes=False)
def overview() -> str:
    ctx = context()
    platform = platform_arg(request.args)
    store = DeadLetters(ctx.redis)
    return render_template(
        "admin/overview.html",
        notice=notice(),
        platforms=platform_rows(ctx.redis, ctx.registry, ctx.settings),
        queue=queue_state(),
        # Summaries, redacted as the API and the CLI show them (a payload may echo a
        # platform's own token in an id or an error).
        letters=redact(
            [letter.summary() for letter in store.list(platform, DEAD_LETTERS_SHOWN)],
            secrets_of(ctx.settings),
        ),
        letters_total=store.count(platform),
        platform_filter=platform,
        records=sandbox_records(SANDBOX_RECORDS_SHOWN),
        api_url=without_credentials(ctx.settings.commerce_api_url),
        workspace=workspace.status(ctx.settings, workspace.load(ctx.redis)),
        storefront=storefront_state(),
        stores=[
            store_status(ctx.redis, name, ctx.settings.reconcile_interval_seconds)
            for name in sorted(ctx.settings.stores)
        ],
    )


STOREFRONT_REQUESTS_SHOWN = 10


def storefront_state() -> dict[str, Any] | None:
    """The storefront's origins, counts and latest requests (emails masked); None: off."""
    ctx = context()
    if not ctx.settings.storefront_origins:
        return None
    [counts] = stats.read(ctx.redis, [STOREFRONT])
    return {
        "origins": ctx.settings.storefront_origins,
        "stats": counts,
        "recent": RecentRequests(ctx.redis).latest(STOREFRONT_REQUESTS_SHOWN),
    }


@bp.get("/dead-letters/<event_id>")
def dead_letter(event_id: str) -> str:
    letter = DeadLetters(context().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", "no such dead letter (replayed or purged meanwhile?)")
    return render_template("admin/dead_letter.html", letter=letter_dict(letter))


@bp.get("/dead-letters/<event_id>/purge")
def confirm_purge_one(event_id: str) -> str:
    letter = DeadLetters(context().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", "no such dead letter (replayed or purged meanwhile?)")
    return render_template("admin/purge.html", letters=[letter], total=1, single=letter)


@bp.get("/dead-letters/purge")
def confirm_purge_all() -> str:
    """Purging all asks first, as `relay dlq purge --all` does."""
    platform = platform_arg(request.args)
    store = DeadLetters(context().redis)
    return render_template(
        "admin/purge.html",
        letters=store.list(platform, 20),  # the newest; the rest are counted, not loaded
        total=store.count(platform),
        platform_filter=platform,
        upto=repr(store.newest_dead_at(platform) or 0.0),
    )
