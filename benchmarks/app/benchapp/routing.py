"""Channel routing in the 1.x style; http.request goes to Django's views (check_default)."""

from benchapp import consumers
from channels.routing import route

channel_routing = [
    consumers.EchoConsumer.as_route(path=r"^/echo/$"),
    route("websocket.connect", consumers.broadcast_connect, path=r"^/broadcast/$"),
    route("websocket.receive", consumers.broadcast_receive, path=r"^/broadcast/$"),
    route("websocket.disconnect", consumers.broadcast_disconnect, path=r"^/broadcast/$"),
]
