"""The benchmark harness: `python -m bench [ingest] [delivery] [batching] [live] [sync]
[group_commit]`.

Prints one line per figure against its target and writes bench/results/bench.json (a run
of some figures replaces only theirs in it, each stamped with when it was measured). Every
throughput figure is a ratio against a ceiling measured in the same run, pair by pair,
so a noisy machine does not decide it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import batching, delivery, group_commit, ingest, live, sync

RESULTS = Path(__file__).parent / "results" / "bench.json"
FIGURES = {
    "ingest": ingest,
    "delivery": delivery,
    "batching": batching,
    "live": live,
    "sync": sync,
    "group_commit": group_commit,
}


def lines(name: str, result: dict) -> list[str]:
    if name == "ingest":
        return [_ingest_line(config) for config in result["configs"].values()]
    if name == "delivery":
        far, zero = result["at_distance"], result["zero_latency"]
        rates = far["orders_per_second"]
        return [
            f"delivery   at {far['latency_ms']} ms, {far['concurrency']} in flight per worker:"
            f" {', '.join(f'{n} worker(s) {r} orders/s' for n, r in rates.items())};"
            f" one worker {far['ratio_one_worker']} of the ideal {far['ideal_per_worker']}/s"
            f" (target >= 200/s, 0.6 of ideal)",
            f"delivery   at {far['latency_ms']} ms: {far['products']['per_second']} product"
            f" updates/s in {far['products']['requests']} requests; a backlog of"
            f" {far['backlog']['orders']} orders drained by one worker in"
            f" {far['backlog']['seconds']} s; on a backlog of {far['memory']['backlog']} the"
            f" worker's RSS peaked at {far['memory']['worker_rss_mb_peak']} MB",
            f"delivery   at zero latency (the CPU's figure): relay {zero['relay_per_second']}"
            f" events/s vs plain loop {zero['plain_loop_per_second']}/s: ratio {zero['ratio']}"
            f" (target >= 0.64)"
            + (
                f"; vs a loop on the relay's own client {zero['same_path_loop_per_second']}/s:"
                f" ratio {zero['ratio_same_path']}"
                if "ratio_same_path" in zero
                else ""
            ),
        ]
    if name == "sync":
        store, memory, phases = result["store"], result["memory_mb"], result["phases"]
        rates = ", ".join(
            f"{n} {p['items_per_second']}/s" for n, p in phases.items() if isinstance(p, dict)
        )
        return [
            f"sync       {store['products']} products, {store['customers']} customers,"
            f" {store['orders']} orders at {result['latency_ms']} ms: all delivered in"
            f" {result['total_seconds']} s (the sync process {result['sync_seconds']} s;"
            f" target < 600 s), {result['workers']} workers x {result['concurrency']}",
            f"sync       read per phase: {rates}; {result['store_requests']} store requests",
            f"sync       Commerce API: {result['api_requests_total']} requests"
            f" ({', '.join(f'{p} {n}' for p, n in sorted(result['api_requests'].items()))});"
            f" {result['products_sent']} products",
            f"sync       peak RSS: sync {memory['sync_rss_peak']} MB, workers"
            f" {memory['worker_rss_peak']} MB (PSS with the scheduler"
            f" {memory['worker_pss_peak_with_scheduler']} MB) (target < 200 MB each)",
        ]
    if name == "group_commit":
        return [
            f"group commit {c['threads']} threads, {c['senders']} sender(s):"
            f" {[g['writes_per_second'] for g in c['grouped']]} writes/s (p99"
            f" {[g['p99_ms'] for g in c['grouped']]} ms) vs each its own round trip"
            f" {[o['writes_per_second'] for o in c['own_round_trips']]}: ratio {c['ratio']}"
            for c in result["configs"].values()
        ]
    if name == "batching":
        return [
            f"batching   {result['updates']} product updates in {result['requests']}"
            f" requests (largest {result['largest_batch']}) (target <= 110)"
        ]
    e2e, foot = result["e2e"], result["footprint"]
    return [
        f"end to end {e2e['delivered']}/{e2e['events']} at {e2e['rate_per_second']}/s:"
        f" p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms (target p50 < 50 ms)",
        f"footprint  idle PSS {foot['idle']['pss_mb']} MB (RSS {foot['idle']['rss_mb']} MB),"
        f" after {foot['events']} events PSS {foot['after_events']['pss_mb']} MB"
        f" (target < 150 MB)",
    ]


def _spread(ratio: dict) -> str:
    return f"{ratio['median']} ({ratio['low']}-{ratio['high']})"


def _ingest_line(c: dict) -> str:
    noise = f"{c['retried_runs']} runs retried, {c['disturbed_runs']} disturbed"
    return (
        f"ingest     {c['connection']:9} {c['redis_fsync']:8} relay {c['relay_rps']} vs store"
        f" {c['store_rps']} vs bare {c['bare_rps']} req/s: relay {_spread(c['relay_of_store'])}"
        f" of store (target >= 0.9), {_spread(c['relay_of_bare'])} of bare; store"
        f" {_spread(c['store_of_bare'])} of bare; at {c['half_peak_rps']} req/s (half the"
        f" peak {c['half_peak_target_rps']}) p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms"
        f" (target < 25 ms); {noise}"
    )


def _seconds(text: str) -> float:
    """100ms, 0.1s or 0.1."""
    try:
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        return float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 100ms, got {text!r}"
        ) from None


def _setting(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("figures", nargs="*", choices=[[], *FIGURES], default=[])
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--latency",
        type=_seconds,
        default=delivery.LATENCY,
        metavar="DURATION",
        help="the fake Commerce API's answer delay for the delivery figure, e.g. 100ms",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=_setting,
        metavar="NAME=VALUE",
        help="a relay setting for the ingest servers, e.g. RELAY_WEB_WORKERS=2 (recorded)",
    )
    args = parser.parse_args(argv)
    ingest.EXTRA_ENV.update(args.env)
    report: dict = json.loads(args.json.read_text()) if args.json.exists() else {}
    report.update(python=sys.version.split()[0], machine=platform.machine())
    report.pop("when", None)  # older reports had one date for all figures
    for name in args.figures or list(FIGURES):
        with tempfile.TemporaryDirectory(prefix=f"relay-bench-{name}-") as tmp:
            if name in ("delivery", "sync"):
                measured = FIGURES[name].measure(Path(tmp), args.latency)
            else:
                measured = FIGURES[name].measure(Path(tmp))
        report[name] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measured}
        if name == "ingest" and ingest.EXTRA_ENV:
            report[name]["env"] = dict(ingest.EXTRA_ENV)
        for line in lines(name, report[name]):
            print(line, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
