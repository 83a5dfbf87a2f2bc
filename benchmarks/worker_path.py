"""Per-message CPU of `channels.worker.Worker.handle` on the in-memory layer (issue 9).

Two paths, in one process, with no sockets and no Redis, so what is measured is the
worker's own per-message cost (routing, signals, Message, consumer, handler, the reply's
deferred send) plus the in-memory layer's small and constant send:

- ``http``: an ``http.request`` for ``GET /hello/`` through the default `ViewConsumer` /
  `AsgiHandler` to a Django view returning 14 bytes (as W1 of benchmarks/run.py);
- ``ws``: a ``websocket.receive`` to a `WebsocketConsumer` echo routed on ``path``
  (as W2).

The settings mirror benchmarks/app (no middleware, no database, DEBUG off), with
``channels`` the only app unless ``--with-auth`` adds contenttypes and auth as the e2e
app does. Replies are drained from the reply channel between batches, outside the timed
part. CPU time is `time.process_time` over each batch of ``--batch`` messages; the
figure is the median over ``--rounds`` batches, in microseconds per message.

``--redis`` instead runs `Worker.run` (one thread, as runworker's default benchmark
setup) on asgi_redis with its defaults against a private redis-server, fed by a driver
child process playing daphne: ``--in-flight`` messages outstanding, one more sent per
reply, for ``--seconds`` after a 1 s warm-up; it reports replies/s and this process's CPU
per message (the worker plus any thread it starts).

    python benchmarks/worker_path.py                 # both paths, one JSON line each
    python benchmarks/worker_path.py --profile http  # cProfile of one path (SORT=cumtime)
    python benchmarks/worker_path.py --redis         # closed loop on Redis, both paths

Results: benchmarks/results/worker_path.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELLO = b"Hello, world!\n"  # 14 bytes, as W1 asks
REPLY_PREFIX = "daphne.response.bench!"
REPLY = REPLY_PREFIX + "conn"


def hello(request):
    from django.http import HttpResponse

    return HttpResponse(HELLO, content_type="text/plain")


urlpatterns: list = []
channel_routing: list = []


def configure(with_auth: bool, redis_url: str | None = None) -> None:
    import django
    from django.conf import settings
    from django.urls import path

    apps = ["channels"]
    if with_auth:
        apps = ["django.contrib.contenttypes", "django.contrib.auth", "channels"]
    settings.configure(
        SECRET_KEY="benchmark-only-not-a-secret",
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=apps,
        MIDDLEWARE=[],
        ROOT_URLCONF=__name__,
        DATABASES={},
        USE_TZ=True,
        CHANNEL_LAYERS={"default": layer_config(redis_url)},
    )
    django.setup()
    from channels.generic.websockets import WebsocketConsumer

    class EchoConsumer(WebsocketConsumer):
        def receive(self, text=None, bytes=None, **kwargs):
            self.send(text=text, bytes=bytes)

    urlpatterns.append(path("hello/", hello))
    channel_routing.append(EchoConsumer.as_route(path=r"^/echo/$"))


def layer_config(redis_url: str | None) -> dict:
    if redis_url is None:
        # Room for one batch of replies between drains.
        return {
            "BACKEND": "channels.layers.inmemory.ChannelLayer",
            "ROUTING": f"{__name__}.channel_routing",
            "CONFIG": {"capacity": 10_000},
        }
    # Defaults, as the e2e benchmark runs it.
    return {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "ROUTING": f"{__name__}.channel_routing",
        "CONFIG": {"hosts": [redis_url], **at_least_once()},
    }


def at_least_once() -> dict:
    """Issue 17: ``BENCH_AT_LEAST_ONCE=websocket.receive`` (comma-separated patterns) runs
    the Redis closed loop with those channels at-least-once (worker and driver alike)."""
    patterns = os.environ.get("BENCH_AT_LEAST_ONCE")
    return {"at_least_once": patterns.split(",")} if patterns else {}


def http_message() -> dict:
    # What daphne sends for `GET /hello/` from wrk.
    return {
        "reply_channel": REPLY,
        "http_version": "1.1",
        "method": "GET",
        "path": "/hello/",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [[b"host", b"127.0.0.1:8000"]],
        "body": b"",
        "client": ["127.0.0.1", 50000],
        "server": ["127.0.0.1", 8000],
    }


def ws_message() -> dict:
    # What daphne sends for one text frame on /echo/ (A-84).
    return {"reply_channel": REPLY, "path": "/echo/", "order": 1, "text": "x" * 16}


PATHS = {"http": ("http.request", http_message), "ws": ("websocket.receive", ws_message)}


def make_worker():
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers
    from channels.worker import Worker

    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    layer.router.check_default()
    return layer, Worker(channel_layer=layer, signal_handlers=False)


def drain(layer, expected: int) -> None:
    got = 0
    while True:
        channel, _ = layer.receive([REPLY_PREFIX], block=False)
        if channel is None:
            break
        got += 1
    if got != expected:
        raise RuntimeError(f"expected {expected} replies, drained {got}: the path broke")


def measure(name: str, batch: int, rounds: int) -> dict:
    layer, worker = make_worker()
    channel, build = PATHS[name]
    handle = worker.handle
    per_message = []
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        messages = [build() for _ in range(batch)]
        started = time.process_time()
        for content in messages:
            handle(channel, content)
        per_message.append((time.process_time() - started) / batch * 1e6)
        drain(layer, batch)
    per_message = per_message[1:]
    return {
        "path": name,
        "cpu_us_per_message_median": round(statistics.median(per_message), 1),
        "cpu_us_per_message_min": round(min(per_message), 1),
        "batch": batch,
        "rounds": rounds,
    }


def profile(name: str, batch: int) -> None:
    import cProfile
    import pstats

    layer, worker = make_worker()
    channel, build = PATHS[name]
    for _ in range(2):
        messages = [build() for _ in range(batch)]
        for content in messages:
            worker.handle(channel, content)
        drain(layer, batch)
    messages = [build() for _ in range(batch)]
    profiler = cProfile.Profile()
    profiler.enable()
    for content in messages:
        worker.handle(channel, content)
    profiler.disable()
    pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(30)


def drive(redis_url: str, name: str, in_flight: int, seconds: float) -> None:
    """A child process playing daphne: `in_flight` messages outstanding, one more sent per
    reply received on its process-specific prefix, for `seconds` (then it stops sending)."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_url], **at_least_once())
    channel, build = PATHS[name]
    replies = 0
    deadline = time.monotonic() + seconds + 1
    for n in range(in_flight):
        layer.send(channel, {**build(), "reply_channel": f"{REPLY_PREFIX}{n}"})
    measuring_from = None
    while time.monotonic() < deadline:
        got, reply = layer.receive([REPLY_PREFIX], block=True)
        if got is None:
            continue
        now = time.monotonic()
        if measuring_from is None and now >= deadline - seconds:  # 1 s warm-up
            measuring_from, replies = now, 0
        replies += 1
        layer.send(channel, {**build(), "reply_channel": got})
    print(json.dumps([replies, time.monotonic() - (measuring_from or deadline)]), flush=True)


def closed_loop(name: str, redis_url: str, in_flight: int, seconds: float) -> dict:
    """Worker.run on the Redis layer in this process, fed by `drive` in a child process:
    replies/s and this process's CPU per message (the worker and its sender thread)."""
    import resource
    import threading

    from channels.worker import Worker

    layer, _ = make_worker()
    worker = Worker(channel_layer=layer, signal_handlers=False, only_channels=[PATHS[name][0]])
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    command = [sys.executable, __file__, "--drive", redis_url, "--path", name]
    command += ["--in-flight", str(in_flight), "--seconds", str(seconds)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    time.sleep(1)  # the driver's warm-up second (a benchmark, not a test)
    before = resource.getrusage(resource.RUSAGE_SELF)
    output, _ = driver.communicate(timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_SELF)
    replies, elapsed = json.loads(output)
    worker.stop()
    thread.join(10)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "path": name,
        "mode": "redis closed loop",
        "in_flight": in_flight,
        "messages_per_s": round(replies / elapsed),
        "worker_process_cpu_us_per_message": round(cpu / max(replies, 1) * 1e6, 1),
    }


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", choices=sorted(PATHS), action="append")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--with-auth", action="store_true", help="install contenttypes+auth")
    parser.add_argument("--profile", choices=sorted(PATHS), help="cProfile one path instead")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="Worker.run on asgi_redis against a private redis-server, fed by a child process",
    )
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--drive", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.path[0], args.in_flight, args.seconds)
        return
    if args.redis and len(args.path or PATHS) > 1:
        # One process per path: each gets a fresh layer, worker and redis-server.
        for name in args.path or ["ws", "http"]:
            command = [sys.executable, __file__, "--redis", "--path", name]
            command += ["--in-flight", str(args.in_flight), "--seconds", str(args.seconds)]
            subprocess.run(command, check=True, timeout=args.seconds + 120)
        return
    if args.redis:
        from support.redis_harness import RedisServer

        server = RedisServer().start()
        try:
            configure(args.with_auth, server.url)
            result = closed_loop(args.path[0], server.url, args.in_flight, args.seconds)
            print(json.dumps({**result, "commit": git_commit(), "date": now()}), flush=True)
        finally:
            server.stop()
        return
    configure(args.with_auth)
    if args.profile:
        profile(args.profile, args.batch)
        return
    common = {
        "commit": git_commit(),
        "date": now(),
        "python": sys.version.split()[0],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "with_auth": args.with_auth,
    }
    for name in args.path or ["http", "ws"]:
        print(json.dumps({**measure(name, args.batch, args.rounds), **common}), flush=True)


if __name__ == "__main__":
    main()
