"""One multiplexed WebSocket at /binding/ carries every bound model's stream (C-57)."""

from todo.bindings import Demultiplexer

channel_routing = [Demultiplexer.as_route(path=r"^/binding/$")]
