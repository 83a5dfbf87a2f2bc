"""Delay server benchmark (C-74, A-91): how late due messages go out, and burst throughput.

    python benchmarks/delay_server.py [--count 200] [--burst 2000]

Starts a private redis-server and `manage.py rundelay` (the test project's live settings, a
temporary SQLite file, default `--sleep 1`), then:

- lateness: sends ``count`` requests with delays spread over 500..1500 ms and measures, for
  each, arrival time minus (send time + delay). With a polling loop that checks once a
  second this averages about 500 ms; the delay server wakes at the earliest due date.
- burst: sends ``burst`` requests of 1 ms at once and times until all have arrived.

Prints one JSON line and appends it, with the command and date, to
``benchmarks/results/delay_server.md``. Everything started is stopped, also on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asgi_redis import RedisChannelLayer  # noqa: E402
from support.redis_harness import RedisServer  # noqa: E402
from tests.testproject.testapp.live import LiveProject  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "delay_server.md"
DEST = "bench.delayed"


def receive_all(layer: RedisChannelLayer, count: int, budget: float) -> list[tuple[float, dict]]:
    """Receive ``count`` messages on DEST (blocking receives), within ``budget`` seconds."""
    received: list[tuple[float, dict]] = []
    deadline = time.monotonic() + budget
    while len(received) < count and time.monotonic() < deadline:
        channel, content = layer.receive([DEST], block=True)
        if channel is not None:
            received.append((time.time(), content))
    return received


def lateness(layer: RedisChannelLayer, count: int) -> dict:
    for index in range(count):
        delay = 500 + (1000 * index) // max(count - 1, 1)
        due = time.time() + delay / 1000
        layer.send("asgi.delay", {"channel": DEST, "delay": delay, "content": {"due": due}})
    received = receive_all(layer, count, budget=30)
    late_ms = sorted((arrived - content["due"]) * 1000 for arrived, content in received)
    return {
        "sent": count,
        "received": len(received),
        "early": sum(1 for value in late_ms if value < 0),
        "late_ms_min": round(late_ms[0], 1),
        "late_ms_median": round(statistics.median(late_ms), 1),
        "late_ms_p95": round(late_ms[int(len(late_ms) * 0.95) - 1], 1),
        "late_ms_max": round(late_ms[-1], 1),
    }


def burst(layer: RedisChannelLayer, count: int) -> dict:
    started = time.monotonic()
    for index in range(count):
        layer.send("asgi.delay", {"channel": DEST, "delay": 1, "content": {"n": index}})
    received = receive_all(layer, count, budget=120)
    elapsed = time.monotonic() - started
    return {
        "sent": count,
        "received": len(received),
        "seconds": round(elapsed, 2),
        "messages_per_s": round(len(received) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()

    with RedisServer() as redis, tempfile.TemporaryDirectory() as directory:
        project = LiveProject(redis, Path(directory))
        project.migrate()
        try:
            _, output = project.manage("rundelay")
            output.wait_for("Listening on asgi.delay", timeout=30)
            layer = RedisChannelLayer(hosts=[redis.url], capacity=args.burst + 100)
            record = {
                "command": "python benchmarks/delay_server.py " + " ".join(sys.argv[1:]),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.node()} ({os.cpu_count()} cores)",
                "load_average": [round(value, 2) for value in os.getloadavg()],
                "lateness": lateness(layer, args.count),
                "burst": burst(layer, args.burst),
            }
        finally:
            project.close()

    line = json.dumps(record)
    print(line)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Delay server benchmark\n\nOne JSON line per run of the command it names "
            "(`benchmarks/delay_server.py`, see its docstring).\n\n",
            encoding="utf-8",
        )
    with RESULTS.open("a", encoding="utf-8") as results:
        results.write(f"    {line}\n")


if __name__ == "__main__":
    main()
