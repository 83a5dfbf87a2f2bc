"""daphne.autobahn_patches: the cheaper masker gives autobahn's bytes; the lazy debug
formatting still renders in full and leaves autobahn's pformat in place (issue 9)."""

from __future__ import annotations

import pprint
import subprocess
import sys
from pathlib import Path

import autobahn.websocket.protocol as autobahn_protocol
from autobahn.nvx._xormasker import create_xor_masker as nvx_create_xor_masker
from hypothesis import given
from hypothesis import strategies as st

from daphne import autobahn_patches

ROOT = Path(__file__).resolve().parents[2]


@given(
    mask=st.binary(min_size=4, max_size=4),
    payload=st.binary(max_size=2048),
    cuts=st.lists(st.integers(min_value=0, max_value=2048), max_size=4),
)
def test_masker_matches_autobahn_across_split_payloads(mask, payload, cuts):
    """RFC 6455 §5.3: unmasking a frame that arrives in pieces gives autobahn's bytes."""
    ours = autobahn_patches.create_xor_masker(mask, len(payload))
    reference = nvx_create_xor_masker(mask, len(payload))
    bounds = [0, *sorted(min(cut, len(payload)) for cut in cuts), len(payload)]
    pieces = [payload[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
    assert b"".join(ours.process(piece) for piece in pieces) == b"".join(
        reference.process(piece) for piece in pieces
    )
    assert ours.pointer() == reference.pointer() == len(payload)


def test_small_frames_get_the_cheap_masker_large_ones_autobahns():
    assert isinstance(
        autobahn_patches.create_xor_masker(b"abcd", 125), autobahn_patches.SmallFrameMasker
    )
    assert not isinstance(
        autobahn_patches.create_xor_masker(b"abcd", 1 << 20), autobahn_patches.SmallFrameMasker
    )


def test_importing_daphne_patches_nothing_server_start_installs():
    """Structure plan section 8: autobahn is patched by `Server.start`, not at import."""
    code = (
        "import autobahn.websocket.protocol as p, autobahn.util as u\n"
        "import daphne.server, daphne.http_protocol, daphne.ws_protocol\n"
        "from daphne import autobahn_patches\n"
        "from channels.layers.inmemory import ChannelLayer\n"
        "state = lambda: (p.create_xor_masker is autobahn_patches.create_xor_masker,"
        " p.hltype is u.hltype)\n"
        "before = state()\n"
        "daphne.server.Server(ChannelLayer(), endpoints=['tcp:0:interface=127.0.0.1']).start()\n"
        "print(before, state())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "(False, True) (True, False)", result.stderr


def test_lazy_pformat_renders_in_full_and_is_scoped():
    options = [("openHandshakeTimeout", 5, "WebSocketFactory")] * 3
    with autobahn_patches.lazy_pformat():
        lazy = autobahn_protocol.pformat(options)
    assert f"\n{lazy}" == "\n" + pprint.pformat(options)
    assert autobahn_protocol.pformat is pprint.pformat
    assert str(autobahn_protocol.Timings()) == pprint.pformat({})


def test_debug_line_stylers_are_lazy_and_render_as_autobahns():
    """issue 9 W4: hltype/hlval style text only when a log line is rendered."""
    import autobahn.twisted.websocket as autobahn_twisted
    import autobahn.util as autobahn_util

    autobahn_patches.install()
    for module in (autobahn_protocol, autobahn_twisted):
        assert module.hltype is autobahn_patches.lazy_hltype
        assert module.hlval is autobahn_patches.lazy_hlval
    func = autobahn_protocol.WebSocketServerProtocol.processHandshake
    line = "{func} at byte {end}: {peer:>30}"
    assert line.format(
        func=autobahn_patches.lazy_hltype(func),
        end=autobahn_patches.lazy_hlval(42),
        peer=autobahn_patches.lazy_hlval("tcp:127.0.0.1:5000", color="green", bold=False),
    ) == line.format(
        func=autobahn_util.hltype(func),
        end=autobahn_util.hlval(42),
        peer=autobahn_util.hlval("tcp:127.0.0.1:5000", color="green", bold=False),
    )
