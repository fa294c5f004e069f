"""Where the web process's CPU goes under ingest load: `python -m bench.profile_ingest`.

Starts `relay web` on its own Redis (as bench/ingest.py does), loads it with wrk (keep-alive
by default: connection setup would otherwise fill the profile), samples the gunicorn worker
with py-spy (`pip install py-spy`; it needs ptrace, as root or with CAP_SYS_PTRACE) and
prints the functions that take the most of its busy time: by their own time (the leaf of
each sample) and including what they call. The raw samples are kept for a flame graph
(`flamegraph.pl` or speedscope read them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from redis import Redis

from bench.common import ROOT, process_tree, redis_server, relay_env
from bench.ingest import _bodies_file, _serve, run_wrk
from tests.redis_server import free_port


def _frame_name(frame: str) -> str:
    """`function (path/to/file.py:line)` -> `function (file.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def summarize(raw: Path, top: int) -> list[str]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [f"{total} samples of the worker's busy time", "own time:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    out.append("including callees:")
    out += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fsync", default="everysec", choices=["always", "everysec"])
    parser.add_argument("--connection", default="keepalive", choices=["close", "keepalive"])
    # 40,000 different bodies: at most this many seconds before one is sent again
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, default=ROOT / "bench" / "results" / "ingest.raw")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-profile-") as tmp:
        work = Path(tmp)
        bodies = _bodies_file(work / "bodies.tsv", 40000)
        with redis_server(work, args.fsync) as redis:
            port = free_port()
            server = _serve("relay", port, relay_env(RELAY_REDIS_URL=redis.url), work / "w.log")
            try:
                url = f"http://127.0.0.1:{port}/webhooks/woocommerce"
                run_wrk(url, bodies, 2, connection=args.connection)  # warm-up
                Redis.from_url(redis.url).flushall()  # none of the bodies is a duplicate
                worker = process_tree(server.pid)[1]  # gunicorn's one worker
                load = threading.Thread(
                    target=lambda: print(
                        run_wrk(url, bodies, args.seconds + 2, connection=args.connection)
                    )
                )
                load.start()
                args.raw.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [
                        args.py_spy,
                        "record",
                        "--pid",
                        str(worker),
                        "--duration",
                        str(args.seconds),
                        "--rate",
                        "100",
                        "--format",
                        "raw",
                        "--output",
                        str(args.raw),
                    ],
                    check=True,
                    capture_output=True,
                )
                load.join()
            finally:
                server.terminate()
                server.wait(30)
    print("\n".join(summarize(args.raw, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
