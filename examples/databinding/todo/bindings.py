"""Data binding for ``Item``: every change goes to the ``todo`` group, live.

Outbound: any save or delete of an ``Item``, in any process, sends
``{"stream": "items", "payload": {"action", "pk", "data", "model"}}`` to the group.
Inbound: frames ``{"stream": "items", "payload": {"action": "create"|"update"|"delete",
"pk": ..., "data": {...}}}`` from the page create, update or delete items.
"""

from channels.binding.websockets import WebsocketBinding
from channels.generic.websockets import WebsocketDemultiplexer

from .models import Item

GROUP = "todo"


class ItemBinding(WebsocketBinding):
    model = Item
    stream = "items"
    fields = ["name", "done"]

    @classmethod
    def group_names(cls, instance):
        return [GROUP]

    def has_permission(self, user, action, pk):
        # A shared demo list: everyone may edit. A real application checks ``user``
        # (set from the session because bindings use channel_session_user).
        return True


class Demultiplexer(WebsocketDemultiplexer):
    consumers = {"items": ItemBinding.consumer}

    def connection_groups(self, **kwargs):
        return [GROUP]
