"""Cross-process throughput and latency of asgi_ipc beside asgi_redis (issue 7, L-56.12).

    python benchmarks/ipc_layer.py [--messages 20000] [--round-trips 2000]

Starts a private redis-server on a free loopback port (support/redis_harness.py),
then for each layer (`asgi_ipc.IPCChannelLayer`, `asgi_redis.RedisChannelLayer`
on that server, both with their defaults apart from capacity and prefix):

- throughput: one process sends ``--messages`` small messages to one channel
  while another process takes them with blocking receives; messages/s is the
  count over the time from the start signal to the last receive (each message
  is one cross-process send+receive pair);
- latency: two processes play ping-pong over two channels with blocking
  receives, ``--round-trips`` times; one-way latency is half a round trip.

Prints one JSON object and rewrites benchmarks/results/ipc_layer.md. Every
wait is bounded; the Redis server is stopped on exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RESULTS = REPO_ROOT / "benchmarks" / "results" / "ipc_layer.md"
SPAWN = multiprocessing.get_context("spawn")
# Every child gives up after this long, so a stuck layer ends the run instead of hanging it.
BUDGET = 120.0
MESSAGE = {"reply_channel": "daphne.response.AbCdEfGhIj!KlMnOpQrSt", "text": "hello world"}


def build_layer(kind: str, options: dict[str, Any]):
    if kind == "ipc":
        from asgi_ipc import IPCChannelLayer

        return IPCChannelLayer(**options)
    from asgi_redis import RedisChannelLayer

    return RedisChannelLayer(**options)


# -- child processes -----------------------------------------------------------------


def sender(kind: str, options: dict, channel: str, count: int, ready, go) -> None:
    layer = build_layer(kind, options)
    ready.set()
    if not go.wait(BUDGET):
        return
    for seq in range(count):
        layer.send(channel, {**MESSAGE, "seq": seq})


def receiver(kind: str, options: dict, channel: str, count: int, ready, results) -> None:
    layer = build_layer(kind, options)
    ready.set()
    got = 0
    give_up = time.monotonic() + BUDGET
    while got < count and time.monotonic() < give_up:
        name, _ = layer.receive([channel], block=True)
        if name is not None:
            got += 1
    results.put((got, time.time()))


def ponger(kind: str, options: dict, rounds: int, ready) -> None:
    layer = build_layer(kind, options)
    ready.set()
    answered = 0
    give_up = time.monotonic() + BUDGET
    while answered < rounds and time.monotonic() < give_up:
        name, message = layer.receive(["bench.ping"], block=True)
        if name is not None:
            layer.send("bench.pong", message)
            answered += 1


# -- measurements ----------------------------------------------------------------------


def start(target, *args) -> multiprocessing.Process:
    process = SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def finish(*processes: multiprocessing.Process) -> None:
    for process in processes:
        process.join(BUDGET)
        if process.is_alive():
            process.kill()
            process.join(10)
            raise RuntimeError(f"{process.name} did not finish within {BUDGET} s")
        if process.exitcode != 0:
            raise RuntimeError(f"{process.name} exited with {process.exitcode}")


def throughput(kind: str, options: dict, count: int) -> dict[str, float]:
    channel = "bench.throughput"
    send_ready, receive_ready, go = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    results = SPAWN.Queue()
    receiving = start(receiver, kind, options, channel, count, receive_ready, results)
    sending = start(sender, kind, options, channel, count, send_ready, go)
    if not (send_ready.wait(BUDGET) and receive_ready.wait(BUDGET)):
        raise RuntimeError("benchmark processes did not start")
    started = time.time()
    go.set()
    got, ended = results.get(timeout=BUDGET)
    finish(sending, receiving)
    if got != count:
        raise RuntimeError(f"{kind}: received {got} of {count} messages")
    elapsed = ended - started
    return {"messages": count, "seconds": round(elapsed, 3), "per_second": round(count / elapsed)}


def latency(kind: str, options: dict, rounds: int) -> dict[str, float]:
    layer = build_layer(kind, options)
    ready = SPAWN.Event()
    process = start(ponger, kind, options, rounds, ready)
    if not ready.wait(BUDGET):
        raise RuntimeError("ponger did not start")
    samples = []
    give_up = time.monotonic() + BUDGET
    for seq in range(rounds):
        began = time.perf_counter()
        layer.send("bench.ping", {**MESSAGE, "seq": seq})
        while time.monotonic() < give_up:
            name, message = layer.receive(["bench.pong"], block=True)
            if name is not None:
                break
        else:
            raise RuntimeError(f"{kind}: no pong for round {seq}")
        if message["seq"] != seq:
            raise RuntimeError(f"{kind}: pong {message['seq']} for ping {seq}")
        samples.append(time.perf_counter() - began)
    finish(process)
    samples.sort()
    return {
        "round_trips": rounds,
        "one_way_p50_us": round(statistics.median(samples) / 2 * 1e6),
        "one_way_p99_us": round(samples[int(len(samples) * 0.99) - 1] / 2 * 1e6),
        "round_trips_per_second": round(rounds / sum(samples)),
    }


def measure(kind: str, options: dict, count: int, rounds: int) -> dict[str, Any]:
    build_layer(kind, options).flush()
    throughput(kind, options, min(500, count))  # warm-up: imports, files, connections
    build_layer(kind, options).flush()
    result = {"throughput": throughput(kind, options, count)}
    build_layer(kind, options).flush()
    result["latency"] = latency(kind, options, rounds)
    build_layer(kind, options).flush()
    return result


# -- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def write_markdown(record: dict[str, Any]) -> None:
    ipc, rds = record["layers"]["asgi_ipc"], record["layers"]["asgi_redis"]
    lines = [
        "# asgi_ipc beside asgi_redis: cross-process throughput and latency",
        "",
        f"Command: `{record['command']}`  ",
        f"Date: {record['date']}  ",
        f"Machine: {record['machine']['nproc']} cores, {record['machine']['cpu']}, "
        f"Linux {record['machine']['kernel']}, Python {record['machine']['python']}, "
        f"{record['redis_version']}  ",
        f"Load average before the run: {record['load_before']} (the machine is shared)",
        "",
        "Small messages (a reply channel, a short text and a sequence number). Throughput: "
        "one sender process, one receiver process in blocking receives, one channel. "
        "Latency: ping-pong between two processes over two channels with blocking receives.",
        "",
        "| layer | messages/s (send+receive pairs) | one-way p50 | one-way p99 |",
        "|---|---|---|---|",
    ]
    for name, figures in (("asgi_ipc", ipc), ("asgi_redis (private local Redis)", rds)):
        lines.append(
            f"| {name} | {figures['throughput']['per_second']} | "
            f"{figures['latency']['one_way_p50_us']} µs | "
            f"{figures['latency']['one_way_p99_us']} µs |"
        )
    lines += [
        "",
        f"asgi_ipc throughput is {record['ipc_over_redis_throughput']}x asgi_redis's; "
        f"its median latency is {record['ipc_over_redis_latency']}x asgi_redis's. "
        f"L-56.12 asks for at least 1000 pairs/s: "
        f"{'met' if ipc['throughput']['per_second'] >= 1000 else 'NOT met'}.",
        "",
        "What the figures measure: an asgi_ipc send or receive is one SQLite transaction on "
        "tmpfs under an fcntl lock, plus one FIFO write when a receiver is blocked on the "
        "channel; an asgi_redis send or receive is a TCP round trip to redis-server running "
        "a Lua script. Both encode with msgpack. On 2 shared cores the figures move with "
        "the load average; compare the two layers within one run.",
        "",
        "Raw record:",
        "",
        "```json",
        json.dumps(record, indent=2, sort_keys=True),
        "```",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args()

    from support.redis_harness import RedisServer, redis_server_path

    if redis_server_path() is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    load_before = os.getloadavg()
    tag = uuid.uuid4().hex[:8]
    capacity = args.messages + 100  # measure the layers, not ChannelFull back-off
    with RedisServer() as server:
        import redis

        redis_version = "redis " + redis.Redis.from_url(server.url).info()["redis_version"]
        layers = {
            "asgi_ipc": measure(
                "ipc",
                {"prefix": f"bench-{tag}", "capacity": capacity},
                args.messages,
                args.round_trips,
            ),
            "asgi_redis": measure(
                "redis",
                {"hosts": [server.url], "prefix": f"bench-{tag}:", "capacity": capacity},
                args.messages,
                args.round_trips,
            ),
        }
    _remove_ipc_files(f"bench-{tag}")
    ipc, rds = layers["asgi_ipc"], layers["asgi_redis"]
    record = {
        "command": "python benchmarks/ipc_layer.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine(),
        "redis_version": redis_version,
        "load_before": [round(value, 2) for value in load_before],
        "layers": layers,
        "ipc_over_redis_throughput": round(
            ipc["throughput"]["per_second"] / rds["throughput"]["per_second"], 2
        ),
        "ipc_over_redis_latency": round(
            ipc["latency"]["one_way_p50_us"] / rds["latency"]["one_way_p50_us"], 2
        ),
    }
    print(json.dumps(record, sort_keys=True))
    write_markdown(record)


def _remove_ipc_files(prefix: str) -> None:
    from asgi_ipc.store import store_directory

    directory = store_directory()
    for entry in os.listdir(directory):
        if entry.startswith(f"{prefix}-"):
            os.unlink(os.path.join(directory, entry))


if __name__ == "__main__":
    main()
