"""The IPC layer against the shared conformance suite (L-2, L-58)."""

from __future__ import annotations

from asgi_ipc import IPCChannelLayer
from channels.layers import conformance
from tests.asgi_ipc.helpers import remove_store, unique_prefix


class IPCConformanceTests(conformance.ConformanceTestCase):
    """L-58: expiry=1, group_expiry=2, capacity=5 on a prefix of its own (L-57)."""

    channel_layer = IPCChannelLayer(
        prefix=unique_prefix("conformance"), expiry=1, group_expiry=2, capacity=5
    )
    expiry_delay = 1.1
    capacity_limit = 5

    @classmethod
    def tearDownClass(cls) -> None:
        cls.channel_layer.flush()
        remove_store(cls.channel_layer.prefix)
        super().tearDownClass()
