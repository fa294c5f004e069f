"""What the admin page shows of a store: the last backfill and reconcile with their phases'
progress, what reconcile found that webhooks had missed, and the webhooks' health."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from relay import sync_signals
from relay.sync.checkpoints import Checkpoints
from relay.sync.lock import StoreLock
from relay.sync.progress import phase_line


def run_status(redis: Redis, platform: str, kind: str) -> dict[str, Any] | None:
    checkpoints = Checkpoints(redis, platform, kind)
    run = checkpoints.load()
    if run is None:
        return None
    phases = []
    for phase, state in zip(run.phases, checkpoints.phases(run), strict=True):
        phases.append(
            {
                "name": phase.name,
                "title": phase.title,
                "line": phase_line(phase.title, state),
                "scanned": state.scanned,
                "total": state.total,
                "pushed": state.pushed,
                "skipped": state.skipped,
                "skipped_ids": state.skipped_ids,
                "done": state.done,
            }
        )
    found = sync_signals.run_found(redis, run.run_id) if kind == "reconcile" else {}
    return {
        "run_id": run.run_id,
        "status": run.status,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "params": {k: v for k, v in run.params.items() if k != "counts"},
        "phases": phases,
        "found": found,
    }


def store_status(redis: Redis, platform: str, interval: int) -> dict[str, Any]:
    totals = {
        kind: count
        for (name, kind), count in sync_signals.found_totals(redis).items()
        if name == platform
    }
    now = time.time()
    return {
        "platform": platform,
        "busy": StoreLock(redis, platform).holder(),
        "backfill": run_status(redis, platform, "backfill"),
        "reconcile": run_status(redis, platform, "reconcile"),
        "found_total": totals,
        "webhooks": sync_signals.webhook_health(redis).get(platform),
        "reenabled_total": sync_signals.reenabled_totals(redis).get(platform, 0),
        "wanted": int(redis.zcard(sync_signals.wanted_key(platform))),
        "interval": interval,
        "next_reconcile_in": (interval - now % interval) if interval > 0 else None,
    }
