"""`daphne c4app.asgi:application`: /hello/ through Django, /echo/ and /broadcast/ as above."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "c4app.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # before importing consumers (app registry)

from django.urls import path  # noqa: E402

from c4app.consumers import BroadcastConsumer, EchoConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(
            [
                path("echo/", EchoConsumer.as_asgi()),
                path("broadcast/", BroadcastConsumer.as_asgi()),
            ]
        ),
    }
)
