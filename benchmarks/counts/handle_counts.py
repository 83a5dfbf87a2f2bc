"""Instructions per message of `Worker.handle` alone, in-process (PROFILE.md, session 8).

    python benchmarks/counts/handle_counts.py CODE_ROOT http|ws [COUNT] [--checks]

Runs ``Worker.handle`` COUNT times (2,000 by default, after 50) on a GET /hello/ (W1) or a
WebSocket frame for the echo consumer (W2), with the bench app's routing on an in-memory
layer given a no-op ``send_many`` (so the replies are carried as with Redis), under
callgrind counting only inside the loop. ``--checks`` first runs Django's system checks,
as ``runworker`` does. CODE_ROOT goes first on PYTHONPATH (this tree or a ``git
archive``).
"""

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"


def http() -> tuple[str, dict]:
    return "http.request", {
        "reply_channel": "daphne.response.abc!def",
        "http_version": "1.1",
        "method": "GET",
        "path": "/hello/",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [[b"host", b"127.0.0.1:8000"], [b"connection", b"keep-alive"]],
        "client": ["127.0.0.1", 50000],
        "server": ["127.0.0.1", 8000],
        "body": b"",
    }


def ws() -> tuple[str, dict]:
    return "websocket.receive", {
        "reply_channel": "daphne.response.abc!def",
        "path": "/echo/",
        "order": 1,
        "text": "hello, world",
    }


def drive(mode: str, count: int, checks: bool) -> None:
    sys.path.insert(0, str(APP))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchapp.settings"
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")  # never connected
    import django

    django.setup()
    from channels.asgi import ChannelLayerWrapper
    from channels.layers.inmemory import ChannelLayer
    from channels.worker import Worker

    class Layer(ChannelLayer):
        def send_many(self, pairs: list) -> list:
            return [None] * len(pairs)

    if checks:
        from django.core import checks as django_checks

        django_checks.run_checks()
    wrapper = ChannelLayerWrapper(Layer(), "default", "benchapp.routing.channel_routing")
    wrapper.router.check_default()
    worker = Worker(wrapper, signal_handlers=False)
    worker._looping = True  # carry the replies, as the receive loop does
    make = http if mode == "http" else ws

    def loop(_a: object, _b: object) -> None:
        for _ in range(count):
            worker.handle(*make())
            if worker._replies is None:
                raise SystemExit("no replies carried: the consumer failed")
            worker._replies = None

    for _ in range(50):
        worker.handle(*make())
        worker._replies = None
    functools.reduce(loop, (None,), None)


def main() -> None:
    if os.environ.get("HANDLE_COUNTS_CHILD"):
        drive(sys.argv[1], int(sys.argv[2]), "--checks" in sys.argv)
        return
    code_root, mode = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 2000
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                mode,
                str(count),
                *(["--checks"] if "--checks" in sys.argv else []),
            ],
            env=dict(os.environ, PYTHONPATH=code_root, HANDLE_COUNTS_CHILD="1"),
            check=True,
            capture_output=True,
        )
        total = next(
            int(row.split()[1])
            for row in out.read_text().splitlines()
            if row.startswith("summary:")
        )
    print(f"{mode}: {total // count} instructions per message in Worker.handle")


if __name__ == "__main__":
    main()
