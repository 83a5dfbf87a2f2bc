"""daphne.autobahn_costs: the cheaper masker gives autobahn's bytes; the lazy debug
formatting still renders in full and leaves autobahn's pformat in place (issue 9)."""

from __future__ import annotations

import pprint

import autobahn.websocket.protocol as autobahn_protocol
from autobahn.nvx._xormasker import create_xor_masker as nvx_create_xor_masker
from hypothesis import given
from hypothesis import strategies as st

from daphne import autobahn_costs


@given(
    mask=st.binary(min_size=4, max_size=4),
    payload=st.binary(max_size=2048),
    cuts=st.lists(st.integers(min_value=0, max_value=2048), max_size=4),
)
def test_masker_matches_autobahn_across_split_payloads(mask, payload, cuts):
    """RFC 6455 §5.3: unmasking a frame that arrives in pieces gives autobahn's bytes."""
    ours = autobahn_costs.create_xor_masker(mask, len(payload))
    reference = nvx_create_xor_masker(mask, len(payload))
    bounds = [0, *sorted(min(cut, len(payload)) for cut in cuts), len(payload)]
    pieces = [payload[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
    assert b"".join(ours.process(piece) for piece in pieces) == b"".join(
        reference.process(piece) for piece in pieces
    )
    assert ours.pointer() == reference.pointer() == len(payload)


def test_small_frames_get_the_cheap_masker_large_ones_autobahns():
    assert isinstance(
        autobahn_costs.create_xor_masker(b"abcd", 125), autobahn_costs.SmallFrameMasker
    )
    assert not isinstance(
        autobahn_costs.create_xor_masker(b"abcd", 1 << 20), autobahn_costs.SmallFrameMasker
    )


def test_daphne_installs_the_masker_in_autobahn():
    import daphne.ws_protocol  # noqa: F401  (installs on import)

    assert autobahn_protocol.create_xor_masker is autobahn_costs.create_xor_masker


def test_lazy_pformat_renders_in_full_and_is_scoped():
    options = [("openHandshakeTimeout", 5, "WebSocketFactory")] * 3
    with autobahn_costs.lazy_pformat():
        lazy = autobahn_protocol.pformat(options)
    assert f"\n{lazy}" == "\n" + pprint.pformat(options)
    assert autobahn_protocol.pformat is pprint.pformat
    assert str(autobahn_protocol.Timings()) == pprint.pformat({})


def test_debug_line_stylers_are_lazy_and_render_as_autobahns():
    """issue 9 W4: hltype/hlval style text only when a log line is rendered."""
    import autobahn.twisted.websocket as autobahn_twisted
    import autobahn.util as autobahn_util

    import daphne.ws_protocol  # noqa: F401  (installs on import)

    for module in (autobahn_protocol, autobahn_twisted):
        assert module.hltype is autobahn_costs.lazy_hltype
        assert module.hlval is autobahn_costs.lazy_hlval
    func = autobahn_protocol.WebSocketServerProtocol.processHandshake
    line = "{func} at byte {end}: {peer:>30}"
    assert line.format(
        func=autobahn_costs.lazy_hltype(func),
        end=autobahn_costs.lazy_hlval(42),
        peer=autobahn_costs.lazy_hlval("tcp:127.0.0.1:5000", color="green", bold=False),
    ) == line.format(
        func=autobahn_util.hltype(func),
        end=autobahn_util.hlval(42),
        peer=autobahn_util.hlval("tcp:127.0.0.1:5000", color="green", bold=False),
    )
