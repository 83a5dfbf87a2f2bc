"""One multiplexed WebSocket at /binding/ carries every bound model's stream."""

from todo.bindings import Demultiplexer

channel_routing = [Demultiplexer.as_route(path=r"^/binding/$")]
