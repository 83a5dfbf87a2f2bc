from chat import consumers

from channels.routing import route

# The named group of the path becomes the consumers' room_name argument.
ROOM_PATH = r"^/ws/chat/(?P<room_name>[-a-zA-Z0-9_]{1,50})/$"

channel_routing = [
    route("websocket.connect", consumers.ws_connect, path=ROOM_PATH),
    route("websocket.receive", consumers.ws_receive, path=ROOM_PATH),
    route("websocket.disconnect", consumers.ws_disconnect, path=ROOM_PATH),
]
