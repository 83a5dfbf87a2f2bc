"""Routing for the issue 15 real-process tests: the e2e consumers, and a disconnect
consumer for ``/auth/`` so sockets leave their user group (issue 15 item 9)."""

from channels import route
from channels.auth import channel_session_user
from tests.testproject.e2e_routing import channel_routing as e2e_routing


@channel_session_user
def auth_disconnect(message):
    pass


channel_routing = [*e2e_routing, route("websocket.disconnect", auth_disconnect, path=r"^/auth/$")]
