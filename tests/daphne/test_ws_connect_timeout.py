"""An unanswered WebSocket handshake gets 403 at ``--websocket_connect_timeout``, above
and below autobahn's 5 s opening-handshake timeout (A-83, D-43, issue 14 point 2).

A consumer that raises, one that forgets to accept, or no worker at all: the browser
must see a refusal at the configured timeout, never a bare reset from autobahn's timer.
"""

from __future__ import annotations

import time

import pytest
import websocket

from tests.daphne.process import DaphneProcess


@pytest.mark.slow
@pytest.mark.parametrize("timeout", [2, 7])
def test_unanswered_handshake_is_refused_403_at_the_connect_timeout(timeout):
    with DaphneProcess("-p", "0", "--websocket_connect_timeout", str(timeout)) as daphne:
        started = time.monotonic()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                f"ws://127.0.0.1:{daphne.port}/silent/", timeout=timeout + 20
            )
        waited = time.monotonic() - started
        assert refused.value.status_code == 403
        # Not before the timeout the user asked for (autobahn's 5 s must not pre-empt it).
        assert waited >= timeout - 0.5
        # The server is still fine afterwards.
        ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=10)
        try:
            ws.send("still here")
            assert ws.recv() == "still here"
        finally:
            ws.close()
