"""Channel routing: WebSocket traffic under /ws/rooms/<slug>/ goes to the chat consumers.

HTTP requests are not routed here: ``http.request`` falls through to Django's views via
the default route that runserver and runworker add.
"""

from chat import consumers

from channels.routing import include, route

room_routes = [
    route("websocket.connect", consumers.ws_connect),
    route("websocket.receive", consumers.ws_receive),
    route("websocket.disconnect", consumers.ws_disconnect),
]

channel_routing = [
    # The named group becomes the consumers' ``room_slug`` keyword.
    include(room_routes, path=r"^/ws/rooms/(?P<room_slug>[-\w]+)/$"),
]
