"""The JavaScript WebSocketBridge in a real browser against a live server (C-84..C-86).

Headless Chromium (Debian's package, driven by Playwright) loads a page from daphne, whose
runworker serves the bridge as a static file; the bridge connects to a demultiplexing
consumer on a private Redis layer. Covered: connect, stream and plain frames both ways, a
binding change broadcast back to the browser, and reconnecting after the server closes the
socket and after daphne itself restarts.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from support.redis_harness import free_port
from tests.testproject.testapp.live import LiveProject

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BRIDGE_JS = Path(__file__).resolve().parents[2] / "channels/static/channels/js/websocketbridge.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000  # bound on every in-browser wait

SETUP_BRIDGE = """() => {
    window.events = [];
    const record = (kind) => (payload, stream) => events.push({kind, payload, stream});
    const bridge = new channels.WebSocketBridge();
    // Short reconnection delays keep the test quick; the defaults are checked separately.
    bridge.connect("/ws/", undefined,
        {minReconnectionDelay: 100, maxReconnectionDelay: 400, restartSpread: 300});
    bridge.listen(record("default"));
    bridge.demultiplex("echo", record("echo"));
    bridge.demultiplex("notes", record("notes"));
    bridge.socket.addEventListener("open", () => events.push({kind: "open"}));
    bridge.socket.addEventListener("close", (e) => events.push({kind: "close", code: e.code}));
    window.bridge = bridge;
}"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found (scripts/test installs Debian's chromium package)")

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(redis_server, tmp_path) -> Iterator[LiveProject]:
    project = LiveProject(redis_server, tmp_path)
    project.migrate()
    project.start_daphne()
    project.start_worker()
    try:
        yield project
    except BaseException:
        print(project.output())
        raise
    finally:
        project.close()


@pytest.fixture
def page(browser, live) -> Iterator:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{live.port}/bridge/", timeout=WAIT_MS)
    page.evaluate(SETUP_BRIDGE)
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def wait_events(page, condition: str) -> None:
    """Wait (bounded) until ``condition`` over `events`, a JS expression, holds."""
    page.wait_for_function(f"() => {condition}", timeout=WAIT_MS)


def count(page, condition: str) -> int:
    return page.evaluate(f"() => events.filter((e) => {condition}).length")


HELLO = 'e.kind === "echo" && e.payload.hello === true'


def test_bridge_round_trip_and_reconnect(page, live):
    # Connect: the echo stream greets every new connection.
    wait_events(page, f"events.some((e) => {HELLO})")
    assert page.evaluate("() => bridge.socket.readyState") == 1
    assert page.evaluate("() => bridge.socket.url") == f"ws://127.0.0.1:{live.port}/ws/"

    # A stream frame out and its echo back, demultiplexed to the stream's callback.
    page.evaluate('() => bridge.stream("echo").send({n: 1, text: "caf\\u00e9"})')
    wait_events(page, 'events.some((e) => e.kind === "echo" && e.payload.echo)')
    echo = page.evaluate('() => events.find((e) => e.kind === "echo" && e.payload.echo)')
    assert echo == {
        "kind": "echo",
        "payload": {"echo": {"n": 1, "text": "caf\u00e9"}},
        "stream": "echo",
    }

    # A frame without a stream reaches the default callback with stream null.
    page.evaluate('() => bridge.send({stream: "control", payload: {plain: "x"}})')
    wait_events(page, 'events.some((e) => e.kind === "default")')
    default = page.evaluate('() => events.find((e) => e.kind === "default")')
    assert default == {"kind": "default", "payload": {"plain": "x"}, "stream": None}

    # The server closes the socket: the bridge reconnects and is greeted again.
    page.evaluate('() => bridge.stream("control").send({drop: true})')
    wait_events(page, 'events.some((e) => e.kind === "close")')
    wait_events(page, f"events.filter((e) => {HELLO}).length === 2")
    assert count(page, 'e.kind === "open"') == 2
    # Listeners and the stream callbacks survived: the new socket works the same way.
    page.evaluate('() => bridge.stream("echo").send({n: 2})')
    wait_events(
        page, 'events.some((e) => e.kind === "echo" && e.payload.echo && e.payload.echo.n === 2)'
    )


def test_binding_change_reaches_the_browser(page, live):
    """A create sent on the "notes" stream is saved by the worker's binding and its
    create frame comes back to every member of the group, this browser included."""
    wait_events(page, f"events.some((e) => {HELLO})")
    page.evaluate(
        '() => bridge.stream("notes").send({action: "create", data: {title: "from browser"}})'
    )
    wait_events(page, 'events.some((e) => e.kind === "notes")')
    frame = page.evaluate('() => events.find((e) => e.kind === "notes")')
    assert frame["stream"] == "notes"
    assert frame["payload"]["action"] == "create"
    assert frame["payload"]["model"] == "testapp.note"
    assert frame["payload"]["data"] == {"title": "from browser", "room": "lobby"}


def test_reconnects_after_daphne_restarts(page, live):
    """Issue 17 item 4: daphne's SIGTERM closes the socket with 1012 (service restart);
    the bridge's first delay is then drawn from [min, min + restartSpread)."""
    wait_events(page, f"events.some((e) => {HELLO})")
    logs: list[str] = []
    page.on("console", lambda message: logs.append(message.text))
    page.evaluate("() => { bridge.socket._config.debug = true; }")
    [(daphne, _), *_] = live.started
    live.stop(daphne)
    wait_events(page, 'events.some((e) => e.kind === "close")')
    assert page.evaluate('() => events.find((e) => e.kind === "close").code') == 1012
    page.wait_for_function("() => true")  # the console messages of that turn are in
    delays = [float(text.split()[-2]) for text in logs if "reconnect in" in text]
    assert delays and 100 <= delays[0] < 400
    live.start_daphne()  # same port
    wait_events(page, f"events.filter((e) => {HELLO}).length === 2")
    page.evaluate('() => bridge.stream("echo").send({n: 3})')
    wait_events(
        page, 'events.some((e) => e.kind === "echo" && e.payload.echo && e.payload.echo.n === 3)'
    )


def test_bridge_file_is_plain_es5_umd():
    """C-84: no ES2015 syntax, and all three module systems are handled."""
    source = BRIDGE_JS.read_text(encoding="utf-8")
    code = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith(("*", "/*", "//"))
    )
    for token in ("=>", "`", "let ", "const ", "class "):
        assert token not in code, f"ES2015 syntax {token!r} in websocketbridge.js"
    assert "define.amd" in source and "module.exports" in source and "root.channels" in source


@pytest.fixture
def blank_page(browser) -> Iterator:
    """A page with nothing loaded yet; the tests add the bridge themselves."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.mark.parametrize(
    ("prelude", "exported"),
    [
        ("", "window.channels"),
        ("window.define = (deps, f) => { window.amd = f(); }; define.amd = {};", "window.amd"),
        ("window.module = {exports: {}};", "module.exports"),
    ],
    ids=["global", "amd", "commonjs"],
)
def test_umd_exports(blank_page, prelude, exported):
    """C-84: a global `channels`, an AMD module or a CommonJS export."""
    if prelude:
        blank_page.evaluate(f"() => {{ {prelude} }}")
    blank_page.add_script_tag(path=str(BRIDGE_JS))
    assert blank_page.evaluate(f"() => typeof {exported}.WebSocketBridge") == "function"
    bridge = blank_page.evaluate(
        f"() => {{ const b = new {exported}.WebSocketBridge({{debug: false}});"
        " return [b.socket, b.streams, b.default_cb, b.options]; }"
    )
    assert bridge == [None, {}, None, {"debug": False}]
    if prelude:
        assert blank_page.evaluate("() => typeof window.channels") == "undefined"


def test_reconnect_delays_grow_then_retries_run_out(blank_page):
    """C-86: first delay in [min, 2 min), then x factor up to max; after maxRetries the
    socket emits EHOSTDOWN and stops. Real connection attempts to a closed port."""
    port = free_port()  # nothing listens there
    blank_page.add_script_tag(path=str(BRIDGE_JS))
    logs: list[str] = []
    blank_page.on("console", lambda message: logs.append(message.text))
    blank_page.evaluate(
        """(url) => {
        window.errors = [];
        window.closes = 0;
        const socket = new channels.ReconnectingWebSocket(url, undefined, {
            minReconnectionDelay: 20, maxReconnectionDelay: 60,
            reconnectionDelayGrowFactor: 1.3, maxRetries: 6, debug: true});
        socket.onclose = () => { closes += 1; };
        socket.addEventListener("error", (e) => { if (e.code) errors.push(e.code); });
        window.socket = socket;
    }""",
        f"ws://127.0.0.1:{port}/",
    )
    blank_page.wait_for_function("() => errors.includes('EHOSTDOWN')", timeout=WAIT_MS)
    assert blank_page.evaluate("() => closes") == 7  # the first try and 6 retries
    delays = [float(text.split()[-2]) for text in logs if "reconnect in" in text]
    # Six delays reach the cap whatever the random first one: 20 x 1.3**5 > 60.
    assert len(delays) == 6
    assert 20 <= delays[0] < 40
    for previous, delay in zip(delays, delays[1:], strict=False):
        assert delay == pytest.approx(min(previous * 1.3, 60))
    assert delays[-1] == 60


def test_connection_timeout(blank_page):
    """C-86: a handshake slower than connectionTimeout is closed with ETIMEDOUT."""
    with socket.socket() as silent:  # accepts TCP, never answers the handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        blank_page.add_script_tag(path=str(BRIDGE_JS))
        blank_page.evaluate(
            """(url) => {
            window.errors = [];
            const socket = new channels.ReconnectingWebSocket(url, undefined,
                {connectionTimeout: 200, maxRetries: 0});
            socket.onerror = (e) => { if (e.code) errors.push(e.code); };
        }""",
            f"ws://127.0.0.1:{silent.getsockname()[1]}/",
        )
        blank_page.wait_for_function("() => errors.length === 2", timeout=WAIT_MS)
        assert blank_page.evaluate("() => errors") == ["ETIMEDOUT", "EHOSTDOWN"]


def test_keep_closed_and_fast_close(page, live):
    """C-86: close() reconnects unless keepClosed; fastClose reports the close at once."""
    wait_events(page, f"events.some((e) => {HELLO})")
    page.evaluate("() => bridge.socket.close()")  # fastClose, reconnects
    assert page.evaluate('() => events.filter((e) => e.kind === "close")') == [
        {"kind": "close", "code": 1000}
    ]
    wait_events(page, f"events.filter((e) => {HELLO}).length === 2")
    page.evaluate('() => bridge.socket.close(4001, "bye", {keepClosed: true})')
    assert count(page, 'e.kind === "close"') == 2
    page.wait_for_function("() => bridge.socket.readyState === 3", timeout=WAIT_MS)
    # No reconnect: with delays capped at 400 ms, a third open would come well within
    # 2 s. (An absence cannot be awaited as an event; this bound is the check.)
    with pytest.raises(PlaywrightTimeout):
        page.wait_for_function(
            '() => events.filter((e) => e.kind === "open").length > 2', timeout=2000
        )


def test_connect_url_forms(page, live):
    """C-85: no url → the page's host; a path → joined to it; a ws:// URL → as given."""
    urls = page.evaluate(
        """() => [undefined, "", "/ws/", "ws://127.0.0.1:1/elsewhere/"].map((url) => {
            const bridge = new channels.WebSocketBridge();
            bridge.connect(url, undefined, {maxRetries: 0});
            const resolved = bridge.socket.url;
            bridge.socket.close(1000, "", {keepClosed: true});
            return resolved;
        })"""
    )
    base = f"ws://127.0.0.1:{live.port}/"
    assert urls == [base, base, base + "ws/", "ws://127.0.0.1:1/elsewhere/"]


class ClosingServer:
    """Completes every WebSocket handshake (RFC 6455 §4.2.2) and closes the socket at
    once with `code`: a server restarting (1012), going away (1001) or shedding load
    (1013), or a plain close (1000)."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, code: int) -> None:
        self.code = code
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed by close()
            with connection:
                try:
                    self._serve(connection)
                except OSError:
                    pass  # the browser went away first

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(4096)
            if not chunk:
                return
            head += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            b"\x88\x02" + struct.pack("!H", self.code)
        )
        connection.recv(64)  # the browser's close reply (bounded by the timeout)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


def reconnect_delays(page, port: int, samples: int) -> list[float]:
    """The first reconnect delays of a socket closed by the server each time it opens."""
    logs: list[str] = []
    page.on("console", lambda message: logs.append(message.text))
    page.add_script_tag(path=str(BRIDGE_JS))
    page.evaluate(
        """(url) => {
        window.opens = 0;
        window.socket = new channels.ReconnectingWebSocket(url, undefined, {
            minReconnectionDelay: 20, maxReconnectionDelay: 10000, restartSpread: 200,
            debug: true});
        socket.addEventListener("open", () => { opens += 1; });
    }""",
        f"ws://127.0.0.1:{port}/",
    )
    page.wait_for_function(f"() => opens > {samples}", timeout=WAIT_MS)
    page.evaluate('() => socket.close(1000, "", {keepClosed: true})')
    delays = [float(text.split()[-2]) for text in logs if "reconnect in" in text]
    return delays[:samples]


@pytest.mark.parametrize("code", [1012, 1001, 1013])
def test_reconnects_after_a_restart_close_spread_over_restart_spread(blank_page, code):
    """Issue 17 item 4: after 1012/1001/1013 the first delay is drawn from
    [min, min + restartSpread), so a fleet of clients spreads out; every reconnect here
    follows an open, so each delay is such a first one."""
    server = ClosingServer(code)
    try:
        delays = reconnect_delays(blank_page, server.port, 25)
    finally:
        server.close()
    assert len(delays) == 25
    assert all(20 <= delay < 220 for delay in delays), delays
    # C-86's range is [20, 40): 25 draws all below 40 would have odds of 0.1 ** 25.
    assert max(delays) >= 40, delays


def test_other_closes_keep_c86_first_delays(blank_page):
    """C-86 unchanged for any other close: the first delay is in [min, 2 min)."""
    server = ClosingServer(1000)
    try:
        delays = reconnect_delays(blank_page, server.port, 10)
    finally:
        server.close()
    assert len(delays) == 10
    assert all(20 <= delay < 40 for delay in delays), delays


def test_restart_spread_defaults(blank_page):
    """C-86's defaults stay; restartSpread defaults to 5000 ms."""
    blank_page.add_script_tag(path=str(BRIDGE_JS))
    config = blank_page.evaluate(
        """() => {
        const socket = new channels.ReconnectingWebSocket("ws://127.0.0.1:1/", undefined,
            {maxRetries: 0});
        const config = Object.assign({}, socket._config);
        socket.close(1000, "", {keepClosed: true});
        delete config.constructor;
        return config;
    }"""
    )
    assert config == {
        "maxReconnectionDelay": 10000,
        "minReconnectionDelay": 1500,
        "reconnectionDelayGrowFactor": 1.3,
        "connectionTimeout": 4000,
        "maxRetries": 0,
        "restartSpread": 5000,
        "debug": False,
    }
