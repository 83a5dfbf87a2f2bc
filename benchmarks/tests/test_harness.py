"""Checks of the benchmark harness itself (issue 9), without daphne or the worker.

The Node.js load clients run against a trivial in-process Twisted + autobahn server (echo,
broadcast, a 14-byte /hello/), so their counting can be trusted before the real stack is
measured. Also: the W6 recovery arithmetic, target judging, results rendering and the child
process management. Run with `python -m pytest benchmarks/tests -q`.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.threads import blockingCallFromThread
from twisted.web import resource, server

from benchmarks.e2e import LOADGEN_DIR, control_venv, results, targets
from benchmarks.e2e.clients import NodeClient, run_node
from benchmarks.e2e.procs import Child, child_pids, http_get, rss_mb, wait_until
from benchmarks.e2e.stack import Channels4Stack, GunicornControl, Stack
from benchmarks.e2e.workloads import W6_BUCKET_MS, bounce_figures
from channels.layers import conformance
from support.redis_harness import redis_server_path

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (LOADGEN_DIR / "node_modules" / "ws").is_dir(),
    reason="needs node and `npm ci --prefix benchmarks/loadgen`",
)


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


class Broadcast(WebSocketServerProtocol):
    def onOpen(self):
        self.factory.members.add(self)

    def onClose(self, wasClean, code, reason):
        self.factory.members.discard(self)

    def onMessage(self, payload, isBinary):
        for member in list(self.factory.members):
            member.sendMessage(payload, isBinary)


class Lossy(WebSocketServerProtocol):
    """Numbered echo that drops every number divisible by 7 and echoes those divisible by
    5 twice: what the W8/W9 client must count as lost and duplicated."""

    def onMessage(self, payload, isBinary):
        number = int(payload.split(b":")[1])
        if number % 7 == 0:
            return
        for _ in range(2 if number % 5 == 0 else 1):
            self.sendMessage(payload, isBinary)


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"Hello, world!\n"


def _listen(reactor):
    root = resource.Resource()
    root.putChild(b"hello", Hello())
    for name, protocol in ((b"echo", Echo), (b"broadcast", Broadcast), (b"lossy", Lossy)):
        factory = WebSocketServerFactory()
        factory.protocol = protocol
        factory.members = set()
        root.putChild(name, WebSocketResource(factory))
    return reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")


@pytest.fixture(scope="module")
def base_url():
    reactor = conformance.run_reactor_in_thread()
    port = blockingCallFromThread(reactor, _listen, reactor)
    yield f"127.0.0.1:{port.getHost().port}"
    blockingCallFromThread(reactor, port.stopListening)


def test_echo_counts_every_round_trip(base_url):
    result = run_node(
        {
            "mode": "echo",
            "url": f"ws://{base_url}/echo/",
            "clients": 5,
            "warmup_s": 0.2,
            "duration_s": 1,
            "stall_ms": 2000,
            "bucket_ms": 10,
            "max_s": 20,
        }
    )
    assert result["echoed"] > 0
    assert result["rtt"]["count"] == result["echoed"]
    assert result["stalls"] == 0 and result["closed"] == 0 and result["late"] == 0
    # every echo is in the timeline (warm-up included), none invented
    assert sum(count for _, count in result["timeline"]) >= result["echoed"]
    # closed loop: at most one message in flight per client when the window closes
    assert result["sent"] - result["echoed"] <= 5


def _numbered(url: str) -> dict:
    return run_node(
        {
            "mode": "numbered",
            "url": url,
            "clients": 4,
            "messages": 35,
            "interval_ms": 10,
            "drain_s": 1,
            "max_s": 30,
        }
    )


def test_numbered_counts_lost_and_duplicates(base_url):
    """W8/W9's client (issue 17): every number back once on a plain echo; on a server
    that drops some and doubles others, exactly those are counted."""
    clean = _numbered(f"ws://{base_url}/echo/")
    assert (clean["sent"], clean["received"], clean["lost"]) == (140, 140, 0)
    assert (clean["duplicates"], clean["closed"], clean["unsent"]) == (0, 0, 0)
    assert clean["rtt"]["count"] == 140
    lossy = _numbered(f"ws://{base_url}/lossy/")
    dropped = len([n for n in range(35) if n % 7 == 0])  # 0, 7, 14, 21, 28
    doubled = len([n for n in range(35) if n % 5 == 0 and n % 7 != 0])  # 5, 10, 15, 20, 25, 30
    assert lossy["lost"] == 4 * dropped and lossy["duplicates"] == 4 * doubled
    assert lossy["missing_sample"][:2] == ["0:0", "0:7"]


def test_broadcast_reaches_every_member(base_url):
    result = run_node(
        {
            "mode": "broadcast",
            "url": f"ws://{base_url}/broadcast/",
            "clients": 20,
            "messages": 10,
            "rate_per_s": 50,
            "drain_s": 5,
            "max_s": 30,
        }
    )
    assert result["expected"] == 200
    assert result["delivered"] == 200
    assert result["complete_messages"] == 10
    assert result["fanout"]["count"] == 10


def test_storm_completes_every_connection(base_url):
    result = run_node(
        {
            "mode": "storm",
            "url": f"ws://{base_url}/echo/",
            "total": 60,
            "concurrency": 10,
            "timeout_ms": 5000,
            "max_s": 30,
        }
    )
    assert result["completed"] == 60
    assert result["failed"] == 0


def test_storm_counts_refused_handshakes_as_failures(base_url):
    result = run_node(
        {
            "mode": "storm",
            "url": f"ws://{base_url}/hello/",  # plain HTTP: the upgrade is not honoured
            "total": 5,
            "concurrency": 5,
            "timeout_ms": 5000,
            "max_s": 30,
        }
    )
    assert result["completed"] == 0
    assert result["failed"] == 5


def test_hold_keeps_sockets_until_stdin_closes(base_url):
    config = {
        "mode": "hold",
        "url": f"ws://{base_url}/echo/",
        "total": 50,
        "concurrency": 20,
        "open_timeout_ms": 10000,
        "hold_s": 30,
        "max_s": 40,
    }
    with NodeClient(config, keep_stdin=True) as holder:
        held = holder.wait_event("held", timeout=20)
        assert held["opened"] == 50 and held["failed"] == 0
        holder.close_stdin()
        final = holder.result()
    assert final["still_open"] == 50
    assert final["closed_while_held"] == 0


def test_probe_and_paced(base_url):
    assert run_node(
        {"mode": "probe", "url": f"ws://{base_url}/echo/", "timeout_ms": 5000, "max_s": 10}
    )["ok"]
    paced = run_node(
        {
            "mode": "paced",
            "url": f"http://{base_url}/hello/",
            "rate_per_s": 100,
            "duration_s": 1,
            "connections": 4,
            "max_s": 20,
        }
    )
    assert paced["requests"] == 100
    assert paced["statuses"] == {"200": 100}
    assert paced["non_2xx"] == 0 and paced["errors"] == 0
    assert paced["latency"]["count"] == 100


def test_bounce_figures_from_a_timeline():
    # 1000 echoes/s before the kill at t=5000, none while down, back 300 ms after the restart
    # at t=8000, at full rate from then on.
    per_bucket = 1000 * W6_BUCKET_MS // 1000
    timeline = [[t, per_bucket] for t in range(0, 5000, W6_BUCKET_MS)]
    timeline += [[t, per_bucket] for t in range(8300, 10000, W6_BUCKET_MS)]
    figures = bounce_figures(
        {"timeline": timeline, "stalls": 7, "seconds": 10},
        running_at=0,
        killed_at=5000,
        restarted_at=8000,
    )
    assert figures["rate_before_per_s"] == pytest.approx(1000)
    assert figures["echoes_during_outage"] == 0
    assert figures["rate_last_5s_per_s"] == pytest.approx(1700 / 5)  # 8.3 s to 10 s at full rate
    assert figures["first_echo_after_restart_s"] == pytest.approx(0.3)
    # the first 100 ms window at half rate or more ends 0.35 s after the restart
    assert 0.3 < figures["half_rate_after_restart_s"] <= 0.4


def test_bounce_figures_without_recovery():
    timeline = [[t, 5] for t in range(0, 5000, W6_BUCKET_MS)]
    figures = bounce_figures(
        {"timeline": timeline, "stalls": 0, "seconds": 10},
        running_at=0,
        killed_at=5000,
        restarted_at=8000,
    )
    assert figures["first_echo_after_restart_s"] is None
    assert figures["half_rate_after_restart_s"] is None
    assert figures["rate_last_5s_per_s"] == 0


def test_targets_judge_and_render(tmp_path: Path):
    checks = targets.judge({"workload": "W4", "connections_per_s": 900.0, "failed": 2, "storm": {}})
    assert [(c["figure"], c["met"]) for c in checks] == [
        ("connections/s", True),
        ("failures", False),
    ]
    assert targets.judge({"workload": "W2"})[0]["met"] is False  # a missing figure is not met
    record = {
        "workload": "W4",
        "run_id": "r1",
        "command": "python benchmarks/run.py -w W4",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": results.machine(),
        "result": {"workload": "W4", "connections_per_s": 900.0, "failed": 2},
        "checks": checks,
    }
    text = results.render({"W4": record})
    assert "| W4 | failures | 2 | 0 | **no** |" in text
    assert "| W1 | not run yet | | | |" in text
    assert "python benchmarks/run.py -w W4" in text


def test_child_stops_with_sigterm_and_reports_status(tmp_path: Path):
    child = Child(
        "sleeper",
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        tmp_path,
    ).start()
    assert child.alive()
    wait_until(lambda: "up" in child.log_tail(), 10, "the child printing 'up'")
    assert rss_mb(child.pid) > 1
    assert child.stop() == -signal.SIGTERM
    assert not child.alive()


@pytest.mark.skipif(redis_server_path() is None, reason="needs redis-server")
def test_benchmark_app_on_the_real_stack(tmp_path: Path):
    """The stack W1..W6 use: /hello/ through the worker, echo, group broadcast, clean stop."""
    stack = Stack(tmp_path)
    with stack:
        assert http_get(f"{stack.http_url}/hello/") == (200, b"Hello, world!\n")
        probe = run_node(
            {"mode": "probe", "url": f"{stack.ws_url}/echo/", "timeout_ms": 10000, "max_s": 20}
        )
        assert probe["ok"], probe
        broadcast = run_node(
            {
                "mode": "broadcast",
                "url": f"{stack.ws_url}/broadcast/",
                "clients": 5,
                "messages": 3,
                "rate_per_s": 10,
                "drain_s": 10,
                "max_s": 60,
            }
        )
        assert broadcast["delivered"] == broadcast["expected"] == 15
        assert stack.cpu()["daphne"] > 0
        assert stack.redis_commands().get("evalsha", 0) > 0
        pids = [stack.daphne.pid, stack.worker.pid]
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


@pytest.mark.skipif(redis_server_path() is None, reason="needs redis-server")
def test_stack_replaces_workers(tmp_path: Path):
    """W8/W9's stack (issue 17): two workers with at-least-once on; a rolling restart
    (successor listening, then SIGTERM: exit 0) and a SIGKILL each leave it echoing."""
    from benchmarks.e2e.workloads import ALO_ENV

    stack = Stack(tmp_path, workers=2, extra_env=ALO_ENV)
    with stack:
        first, second = (worker.pid for worker in stack.workers)
        assert stack.restart_worker(0) == 0
        stack.kill_worker(1)
        assert {w.pid for w in stack.workers}.isdisjoint({first, second})
        for worker in stack.workers:
            stack.wait_listening(worker)
        probe = run_node(
            {"mode": "probe", "url": f"{stack.ws_url}/echo/", "timeout_ms": 10000, "max_s": 20}
        )
        assert probe["ok"], probe
        assert len(stack.retired) == 2
        pids = [worker.pid for worker in stack.workers]
    for pid in pids:  # the stop stopped the replacements too
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


@pytest.mark.skipif(redis_server_path() is None, reason="needs redis-server")
@pytest.mark.skipif(
    not control_venv.ready(),
    reason="needs the Channels 4.3 control venv (built by `python benchmarks/run.py -w W2`)",
)
def test_channels4_control_has_the_bench_app_semantics(tmp_path: Path):
    """The W2..W4 control (issue 20): echo and group broadcast on daphne 4, clean stop."""
    stack = Channels4Stack(tmp_path, control_venv.venv_python())
    with stack:
        probe = run_node(
            {"mode": "probe", "url": f"{stack.ws_url}/echo/", "timeout_ms": 10000, "max_s": 20}
        )
        assert probe["ok"], probe
        broadcast = run_node(
            {
                "mode": "broadcast",
                "url": f"{stack.ws_url}/broadcast/",
                "clients": 5,
                "messages": 3,
                "rate_per_s": 10,
                "drain_s": 10,
                "max_s": 60,
            }
        )
        assert broadcast["delivered"] == broadcast["expected"] == 15
        assert set(stack.cpu()) == {"daphne", "redis"}
        pid = stack.daphne.pid
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_gunicorn_control_with_two_workers(tmp_path: Path):
    """The W1 stretch control: two sync workers, their CPU read from /proc."""
    pytest.importorskip("gunicorn")
    with GunicornControl(tmp_path, workers=2) as control:
        assert http_get(f"{control.http_url}/hello/") == (200, b"Hello, world!\n")
        wait_until(lambda: len(child_pids(control.child.pid)) == 2, 30, "gunicorn's two workers up")
        cpu = control.cpu()
        assert set(cpu) == {"gunicorn_master", "gunicorn_workers"} and cpu["gunicorn_workers"] > 0


def test_history_has_one_row_per_run():
    machine = {"commit": "abc1234"}
    records = [
        {
            "workload": "W2",
            "run_id": "r1",
            "machine": machine,
            "loadavg_before": [1.5, 1, 1],
            "result": {"messages_per_s": 1500.0},
        },
        {"workload": "W4", "run_id": "r1", "machine": machine, "error": "daphne exited"},
        {
            "workload": "W2",
            "run_id": "r2",
            "machine": machine,
            "loadavg_before": [0.5, 1, 1],
            "result": {"messages_per_s": 2500.0},
        },
    ]
    rows = [
        line
        for line in results.render_history(records)
        if line.startswith("| r") and "commit" not in line
    ]
    assert rows == [
        "| r1 | abc1234 | 1.5 |  | 1,500 |  |  | error |  |  |  |  |  |  |  |",
        "| r2 | abc1234 | 0.5 |  | 2,500 |  |  |  |  |  |  |  |  |  |  |",
    ]
