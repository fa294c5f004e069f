"""Error reporting to Sentry (when SENTRY_DSN is set), with personal data scrubbed first.

What a webhook carries is the merchant's customers' data: emails, names, addresses. None of
it may leave in an error report. `scrub_event` runs on every event before it is sent: it
drops request bodies, cookies, query strings and secret headers, masks tokens in webhook
URLs, drops the local variables of stack frames (they hold raw events) and RQ job
arguments, and masks email addresses anywhere in the text that remains.
"""

from __future__ import annotations

from typing import Any

from relay.runtime.logs import mask_emails, mask_token_paths
from relay.settings import Settings

SECRET_HEADERS = {
    "authorization",
    "cookie",
    "x-wc-webhook-signature",
    "x-relay-token",
    "webhook-signature",
    "x-api-key",
    "proxy-authorization",
}
FILTERED = "[Filtered]"


def init_sentry(settings: Settings, component: str) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[FlaskIntegration(), RqIntegration()],
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        server_name=component,
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("component", component)
    return True


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        for field in ("data", "cookies", "query_string", "env"):
            if field in request:
                request[field] = FILTERED
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in SECRET_HEADERS:
                    headers[name] = FILTERED
        if isinstance(request.get("url"), str):
            request["url"] = mask_token_paths(request["url"], FILTERED)
    event.pop("user", None)
    extra = event.get("extra")
    if isinstance(extra, dict) and "rq-job" in extra:
        job = extra["rq-job"]
        if isinstance(job, dict):
            for field in ("args", "kwargs", "description"):
                if field in job:
                    job[field] = FILTERED
    for exception in (event.get("exception") or {}).get("values", []) or []:
        for frame in (exception.get("stacktrace") or {}).get("frames", []) or []:
            frame.pop("vars", None)
    return _mask_strings(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    return _mask_strings(crumb)


def _mask_strings(value: Any) -> Any:
    if isinstance(value, str):
        return mask_token_paths(mask_emails(value), FILTERED)
    if isinstance(value, dict):
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v) for v in value]
    return value
