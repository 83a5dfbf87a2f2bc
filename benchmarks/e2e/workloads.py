"""W1..W6 of issue 9. Each function starts its own stack, runs, stops it, returns one dict.

A fresh stack per workload keeps one workload's aftermath (10,000 disconnects after W5, a
killed Redis in W6) out of the next one's figures.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.e2e.clients import NodeClient, run_node, run_wrk
from benchmarks.e2e.procs import rss_mb
from benchmarks.e2e.stack import GunicornControl, Stack

W1_DURATION_S = 15
W1_PACED_RATE = 300
ECHO_CLIENTS = 100
ECHO_WARMUP_S = 1
ECHO_DURATION_S = 10
# Issue 17: the layer setting of W2-alo, W8 and W9 (the bench app reads it, settings.py).
ALO_ENV = {"BENCH_AT_LEAST_ONCE": "websocket.receive"}


def echo_config(url: str, clients: int, **extra: Any) -> dict[str, Any]:
    config = {
        "mode": "echo",
        "url": url,
        "clients": clients,
        "warmup_s": ECHO_WARMUP_S,
        "duration_s": ECHO_DURATION_S,
        "stall_ms": 5000,
        "max_s": 120,
    }
    config.update(extra)
    return config


StackFactory = Callable[[Path], Stack]


# Issue 18: W1-metrics and W2-metrics run daphne and the worker with --metrics-port.
METRICS_ON_ENV = {"BENCH_METRICS": "1"}


def w1(
    log_dir: Path,
    profiler: Callable[[Stack, int], Any] | None = None,
    stack_factory: StackFactory = Stack,
    metrics: bool = False,
) -> dict[str, Any]:
    """GET /hello/ under wrk -t1 -c50 -d15s, then paced at 300 req/s.

    The gunicorn controls are separate rounds (`w1_gunicorn`), interleaved by run.py.
    W1-metrics (issue 18): the same with metrics on in daphne and the worker.
    """
    if metrics:
        stack_factory = functools.partial(stack_factory, extra_env=METRICS_ON_ENV)
    with stack_factory(log_dir) as stack:
        url = f"{stack.http_url}/hello/"
        recording = profiler(stack, W1_DURATION_S) if profiler else None
        cpu_before, commands_before = stack.cpu(), stack.redis_commands()
        saturated = run_wrk(url, threads=1, connections=50, duration_s=W1_DURATION_S)
        cpu = stack.cpu_per_message(cpu_before, saturated["requests"])
        commands = stack.redis_commands_per_message(commands_before, saturated["requests"])
        if recording is not None:
            recording.finish()
        paced = run_node(
            {
                "mode": "paced",
                "url": url,
                "rate_per_s": W1_PACED_RATE,
                "duration_s": W1_DURATION_S,
                "connections": 10,
                "max_s": W1_DURATION_S + 30,
            }
        )
        stack.check_alive()
    return {
        **_wrk_figures(saturated, cpu),
        "workload": "W1-metrics" if metrics else "W1",
        "redis_commands_per_request": commands,
        "paced_300": {
            "achieved_per_s": paced["achieved_per_s"],
            "p50_ms": paced["latency"]["p50_ms"],
            "p99_ms": paced["latency"]["p99_ms"],
            "schedule_lag_p99_ms": paced["schedule_lag"]["p99_ms"],
            "non_2xx": paced["non_2xx"],
            "errors": paced["errors"],
        },
    }


def w1_gunicorn(log_dir: Path, workers: int = 1) -> dict[str, Any]:
    """The W1 control: the same wrk command against the view under gunicorn's sync workers."""
    with GunicornControl(log_dir, workers) as control:
        cpu_before = control.cpu()
        saturated = run_wrk(
            f"{control.http_url}/hello/", threads=1, connections=50, duration_s=W1_DURATION_S
        )
        cpu = control.cpu_per_message(cpu_before, saturated["requests"])
    return _wrk_figures(saturated, cpu)


def _wrk_figures(saturated: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:
    return {
        "workload": "W1",
        "requests_per_s": saturated["requests_per_s"],
        "p50_ms": saturated["latency"]["p50_ms"],
        "p99_ms": saturated["latency"]["p99_ms"],
        "non_2xx": saturated["non_2xx"],
        "socket_errors": saturated["socket_errors"],
        "cpu_per_request": {**cpu, "wrk_us": saturated["client_cpu_us_per_request"]},
        "wrk": saturated,
    }


def w2(
    log_dir: Path,
    profiler: Callable[[Stack, int], Any] | None = None,
    stack_factory: StackFactory = Stack,
    at_least_once: bool = False,
    metrics: bool = False,
) -> dict[str, Any]:
    """100 closed-loop echo clients for 10 s (after 1 s of warm-up).

    W2-alo (issue 17): the same with ``at_least_once: ["websocket.receive"]``.
    W2-metrics (issue 18): the same with metrics on in daphne and the worker.
    """
    if at_least_once:
        stack_factory = functools.partial(stack_factory, extra_env=ALO_ENV)
    if metrics:
        stack_factory = functools.partial(stack_factory, extra_env=METRICS_ON_ENV)
    with stack_factory(log_dir) as stack:
        config = echo_config(f"{stack.ws_url}/echo/", ECHO_CLIENTS)
        with NodeClient(config) as client:
            client.wait_event("running", timeout=60)
            cpu_before, commands_before = stack.cpu(), stack.redis_commands()
            recording = profiler(stack, ECHO_DURATION_S - 1) if profiler else None
            result = client.result()
            cpu = stack.cpu_per_message(cpu_before, result["echoed"])
            commands = stack.redis_commands_per_message(commands_before, result["echoed"])
        if recording is not None:
            recording.finish()
        stack.check_alive()
    return {
        "workload": "W2-alo" if at_least_once else "W2-metrics" if metrics else "W2",
        "messages_per_s": result["messages_per_s"],
        "rtt_p50_ms": result["rtt"]["p50_ms"],
        "rtt_p99_ms": result["rtt"]["p99_ms"],
        "stalls": result["stalls"],
        "closed": result["closed"],
        "cpu_per_message": {**cpu, "client_us": result["client_cpu_us_per_echo"]},
        "redis_commands_per_message": commands,
        "echo": result,
    }


def w3(log_dir: Path, stack_factory: StackFactory = Stack, members: int = 200) -> dict[str, Any]:
    """200 group members (W3-2000: 2,000); one sends 200 messages at 10/s; each to all."""
    with stack_factory(log_dir) as stack:
        cpu_before = stack.cpu()
        result = run_node(
            {
                "mode": "broadcast",
                "url": f"{stack.ws_url}/broadcast/",
                "clients": members,
                "messages": 200,
                "rate_per_s": 10,
                "drain_s": 10,
                "open_timeout_ms": 180000,
                "max_s": 300,
            }
        )
        # Per message delivered to a member (the members' handshakes included).
        cpu = stack.cpu_per_message(cpu_before, result["delivered"])
        stack.check_alive()
    return {
        "workload": "W3" if members == 200 else f"W3-{members}",
        "delivered": result["delivered"],
        "expected": result["expected"],
        "delivered_ratio": result["delivered"] / result["expected"],
        "fanout_p50_ms": result["fanout"]["p50_ms"],
        "fanout_p99_ms": result["fanout"]["p99_ms"],
        "complete_messages": result["complete_messages"],
        "closed": result["closed"],
        "cpu_per_delivery": cpu,
        "broadcast": result,
    }


def w4(
    log_dir: Path,
    profiler: Callable[[Stack, int], Any] | None = None,
    stack_factory: StackFactory = Stack,
) -> dict[str, Any]:
    """1,000 connections (connect, one echo, close), 50 at a time."""
    with stack_factory(log_dir) as stack:
        # The storm lasts a few seconds; a profile covers its first 2 s.
        recording = profiler(stack, 2) if profiler else None
        cpu_before = stack.cpu()
        result = run_node(
            {
                "mode": "storm",
                "url": f"{stack.ws_url}/echo/",
                "total": 1000,
                "concurrency": 50,
                "timeout_ms": 10000,
                "max_s": 300,
            }
        )
        cpu = stack.cpu_per_message(cpu_before, result["completed"])
        if recording is not None:
            recording.finish()
        stack.check_alive()
    return {
        "workload": "W4",
        "connections_per_s": result["connections_per_s"],
        "cpu_per_connection": cpu,
        "failed": result["failed"],
        "failures": result["failures"],
        "storm": result,
    }


IDLE_WINDOW_S = 10


def idle_cpu_cores(pid: int, seconds: float) -> float:
    """CPU (user + system, in cores) `pid` uses over `seconds` while nothing is sent."""

    def ticks() -> int:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    start, began = ticks(), time.monotonic()
    time.sleep(seconds)  # a measurement window, not synchronisation
    return (ticks() - start) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - began)


def w5(
    log_dir: Path,
    profiler: Callable[[Stack, int], Any] | None = None,
    stack_factory: StackFactory = Stack,
    deflate: bool = False,
    total: int = 10000,
) -> dict[str, Any]:
    """10,000 idle WebSockets (200 handshakes at a time); W2 echo beside them vs without.

    `deflate` (W5-deflate, issue 21): every idle socket offers permessage-deflate, as
    browsers do; `negotiated` says on how many daphne accepted it. `total` (W5-100k,
    issue 20): past 20,000 the clients spread over source addresses 127.0.0.2.. (about
    28,000 ephemeral ports each); daphne's idle CPU is read over `IDLE_WINDOW_S` while
    they are held."""
    sources = 0 if total <= 20000 else -(-total // 20000)
    minutes = max(1, total // 10000)
    with stack_factory(log_dir) as stack:
        url = f"{stack.ws_url}/echo/"
        alone = run_node(echo_config(url, ECHO_CLIENTS))
        rss_before = {"daphne": rss_mb(stack.daphne.pid), "worker": rss_mb(stack.worker.pid)}
        holder_config = {
            "mode": "hold",
            "url": url,
            "total": total,
            "concurrency": 200,
            "open_timeout_ms": 180000 * minutes,
            "hold_s": 240 * minutes,
            "max_s": 300 * minutes,
            "deflate": deflate,
        }
        if sources:
            holder_config["local_addresses"] = [f"127.0.0.{2 + n}" for n in range(sources)]
        with NodeClient(holder_config, keep_stdin=True) as holder:
            held = holder.wait_event("held", timeout=240 * minutes)
            rss_held = {"daphne": rss_mb(stack.daphne.pid), "worker": rss_mb(stack.worker.pid)}
            idle_cores = idle_cpu_cores(stack.daphne.pid, IDLE_WINDOW_S)
            recording = profiler(stack, ECHO_WARMUP_S + ECHO_DURATION_S) if profiler else None
            beside = run_node(echo_config(url, ECHO_CLIENTS))
            if recording is not None:
                recording.finish()
            rss_after = {"daphne": rss_mb(stack.daphne.pid), "worker": rss_mb(stack.worker.pid)}
            holder.close_stdin()
            hold = holder.result()
        stack.check_alive()
    name = "W5-100k" if total == 100000 else "W5-deflate" if deflate else "W5"
    return {
        "workload": name,
        "daphne_idle_cpu_cores": idle_cores,
        "connected": held["opened"],
        "negotiated_deflate": held.get("negotiated", 0),
        "failed": held["failed"],
        "handshake_errors": held["errors"],
        "open_seconds": held["seconds"],
        "connections_per_s": held["opened"] / held["seconds"],
        "closed_while_held": hold["closed_while_held"],
        "still_open_at_end": hold["still_open"],
        "daphne_rss_mb": max(rss_held["daphne"], rss_after["daphne"]),
        "worker_rss_mb": max(rss_held["worker"], rss_after["worker"]),
        "rss_mb": {"before": rss_before, "held": rss_held, "after_echo": rss_after},
        "per_socket_kb": (rss_held["daphne"] - rss_before["daphne"])
        * 1024
        / max(1, held["opened"]),
        "echo_alone_per_s": alone["messages_per_s"],
        "echo_beside_per_s": beside["messages_per_s"],
        "echo_beside_ratio": beside["messages_per_s"] / alone["messages_per_s"],
        "echo_alone_p99_ms": alone["rtt"]["p99_ms"],
        "echo_beside_p99_ms": beside["rtt"]["p99_ms"],
    }


W6_CLIENTS = 50
W6_BEFORE_S = 5
W6_OUTAGE_S = 3
W6_AFTER_S = 20
W6_BUCKET_MS = 10
W6_WINDOW_BUCKETS = 10  # the rate after the restart is judged over 100 ms windows


def w6(log_dir: Path, stack_factory: StackFactory = Stack) -> dict[str, Any]:
    """50 echo clients; SIGKILL redis-server, restart it on the same port 3 s later."""
    with stack_factory(log_dir) as stack:
        config = echo_config(
            f"{stack.ws_url}/echo/",
            W6_CLIENTS,
            duration_s=W6_BEFORE_S + W6_OUTAGE_S + W6_AFTER_S,
            # A message lost with Redis (at most once) must not stop a client: with no echo
            # anywhere for 100 ms, each client sends its next one (loadgen.js, echo mode).
            stall_ms=100,
            bucket_ms=W6_BUCKET_MS,
            events=True,
            reconnect=True,
        )
        with NodeClient(config) as client:
            running = client.wait_event("running", timeout=60)
            time.sleep(W6_BEFORE_S)  # the workload's schedule: steady load before the kill
            killed_at = time.time() * 1000
            stack.redis.kill()
            time.sleep(W6_OUTAGE_S)  # the workload's schedule: Redis down for 3 s
            stack.redis.start()
            restarted_at = time.time() * 1000
            result = client.result()
        daphne_alive = stack.daphne.alive()
        worker_alive = stack.worker.alive()
        probe = run_node(
            {"mode": "probe", "url": f"{stack.ws_url}/echo/", "timeout_ms": 5000, "max_s": 10},
            measured_failure=True,
        )
    return {
        "workload": "W6",
        **bounce_figures(result, running["epoch_ms"], killed_at, restarted_at),
        "daphne_alive": daphne_alive,
        "worker_alive": worker_alive,
        "new_client_echo": probe["ok"],
        "probe": probe,
        "closed": result["closed"],
        "close_codes": result["close_codes"],
    }


def bounce_figures(
    result: dict[str, Any], running_at: float, killed_at: float, restarted_at: float
) -> dict[str, Any]:
    """Recovery times from the echo timeline (epoch-ms buckets of W6_BUCKET_MS)."""
    buckets = [(start, count) for start, count in result["timeline"]]
    before = [c for s, c in buckets if running_at <= s and s + W6_BUCKET_MS <= killed_at]
    before_s = (killed_at - running_at) / 1000
    rate_before = sum(before) / before_s
    during = sum(c for s, c in buckets if killed_at <= s < restarted_at)
    after = {s: c for s, c in buckets if s >= restarted_at - W6_BUCKET_MS}
    first_echo = min((s for s in after if s + W6_BUCKET_MS > restarted_at), default=None)
    half_at = None
    if after:
        start = int(restarted_at // W6_BUCKET_MS) * W6_BUCKET_MS
        end = max(after) + W6_BUCKET_MS
        window_ms = W6_WINDOW_BUCKETS * W6_BUCKET_MS
        for window_start in range(start, end, W6_BUCKET_MS):
            count = sum(
                after.get(window_start + i * W6_BUCKET_MS, 0) for i in range(W6_WINDOW_BUCKETS)
            )
            if count * 1000 / window_ms >= rate_before / 2:
                half_at = window_start + window_ms
                break

    def since_restart(at: float | None) -> float | None:
        return None if at is None else max(0.0, (at - restarted_at) / 1000)

    if rate_before <= 0:  # nothing to recover to: the figures would be meaningless
        half_at = None

    ended_at = running_at + result["seconds"] * 1000
    rate_last_5s = sum(c for s, c in buckets if ended_at - 5000 <= s < ended_at) / 5
    return {
        "rate_before_per_s": rate_before,
        "rate_last_5s_per_s": rate_last_5s,
        "echoes_during_outage": during,
        "first_echo_after_restart_s": since_restart(first_echo),
        "half_rate_after_restart_s": since_restart(half_at),
        "stalls": result["stalls"],
        "reconnects": result.get("reconnects", 0),
    }


W8_CLIENTS = 1000
W8_WORKERS = 2
# Each socket sends a message every 4 s: 250 messages/s in all, well below what the stack
# echoes on 2 busy cores while two workers start, so the figures are about the restart, not
# a backlog.
W8_INTERVAL_MS = 4000
W8_MESSAGES = 10  # 40 s of sending
W8_FIRST_RESTART_S = 5


def w8(log_dir: Path, stack_factory: StackFactory = Stack) -> dict[str, Any]:
    """Rolling restart of every worker under 1,000 echoing WebSockets (issue 17).

    Two workers with at-least-once on websocket.receive; each socket sends a numbered
    message every 4 s for 40 s. From 5 s on, each worker in turn is replaced: its
    successor is started and listening, then it gets SIGTERM (a deploy). Nothing is
    resent by the clients: the figures are sockets closed and messages lost.
    """
    factory = functools.partial(stack_factory, workers=W8_WORKERS, extra_env=ALO_ENV)
    with factory(log_dir) as stack:
        config = {
            "mode": "numbered",
            "url": f"{stack.ws_url}/echo/",
            "clients": W8_CLIENTS,
            "messages": W8_MESSAGES,
            "interval_ms": W8_INTERVAL_MS,
            "open_concurrency": 200,
            "drain_s": 60,
            "events": True,
            "max_s": 300,
        }
        restarts = []
        with NodeClient(config) as client:
            running = client.wait_event("running", timeout=180)
            time.sleep(W8_FIRST_RESTART_S)  # the workload's schedule: steady load first
            for index in range(len(stack.workers)):
                began = time.monotonic()
                code = stack.restart_worker(index)
                restarts.append({"exit_status": code, "seconds": time.monotonic() - began})
            restarts_done = time.time() * 1000
            result = client.result()
        stack.check_alive()
        delivery = _delivery_figures(stack)
    sending_ended = running["epoch_ms"] + W8_MESSAGES * W8_INTERVAL_MS
    return {
        "workload": "W8",
        **_numbered_figures(result),
        "workers": W8_WORKERS,
        "restarts": restarts,
        "old_workers_exit_status": [r["exit_status"] for r in restarts],
        "restarts_within_load": restarts_done < sending_ended,
        **delivery,
        "numbered": result,
    }


W9_CLIENTS = 100
W9_WORKERS = 2
W9_INTERVAL_MS = 200  # 5 messages/s per socket: 500 messages/s in all
W9_MESSAGES = 150  # 30 s of sending
W9_KILL_EVERY_S = 3


def w9(log_dir: Path, stack_factory: StackFactory = Stack) -> dict[str, Any]:
    """A worker SIGKILLed every 3 s under echo load, at-least-once on (issue 17).

    Two workers with at-least-once on websocket.receive (default ack_timeout, 30 s);
    100 sockets each send a numbered message every 200 ms for 30 s. Every 3 s one worker
    (in turn) gets SIGKILL and a new one is started at once. The clients wait up to 45 s
    after their last send: a killed worker's messages come back after ack_timeout.
    """
    factory = functools.partial(stack_factory, workers=W9_WORKERS, extra_env=ALO_ENV)
    with factory(log_dir) as stack:
        config = {
            "mode": "numbered",
            "url": f"{stack.ws_url}/echo/",
            "clients": W9_CLIENTS,
            "messages": W9_MESSAGES,
            "interval_ms": W9_INTERVAL_MS,
            "drain_s": 45,
            "events": True,
            "max_s": 300,
        }
        killed = 0
        with NodeClient(config) as client:
            running = client.wait_event("running", timeout=120)
            sending_ends = running["epoch_ms"] / 1000 + W9_MESSAGES * W9_INTERVAL_MS / 1000
            while time.time() + W9_KILL_EVERY_S < sending_ends:
                time.sleep(W9_KILL_EVERY_S)  # the workload's schedule: a kill every 3 s
                stack.kill_worker(killed % len(stack.workers))
                killed += 1
            result = client.result()
        stack.check_alive()
        delivery = _delivery_figures(stack)
    return {
        "workload": "W9",
        **_numbered_figures(result),
        "workers": W9_WORKERS,
        "killed": killed,
        **delivery,
        "numbered": result,
    }


def _numbered_figures(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "clients": result["clients"],
        "sent": result["sent"],
        "expected": result["expected"],
        "lost": result["lost"],
        "unsent": result["unsent"],
        "duplicates": result["duplicates"],
        "closed": result["closed"],
        "close_codes": result["close_codes"],
        "echoes_per_s": result["echoes_per_s"],
        "rtt_p50_ms": result["rtt"]["p50_ms"],
        "rtt_p99_ms": result["rtt"]["p99_ms"],
        "rtt_max_ms": result["rtt"]["max_ms"],
        "drain_seconds": result["drain_seconds"],
    }


def _delivery_figures(stack: Stack) -> dict[str, Any]:
    """The layer's redelivered and dead-lettered counts (issue 17), from its Redis."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[stack.redis.url], at_least_once=["websocket.receive"])
    try:
        figures = layer.global_statistics()
        receive = layer.channel_statistics("websocket.receive")
    finally:
        layer.close()
    # A message "lost" by the clients yet still pending here was late (a backlog), not lost.
    return {
        "redelivered_count": figures.get("redelivered_count"),
        "dead_lettered_count": figures.get("dead_lettered_count"),
        "expired_count": figures.get("expired_count"),
        "channel_full_count": figures.get("channel_full_count"),
        "receive_pending_at_end": receive.get("messages_pending"),
    }
