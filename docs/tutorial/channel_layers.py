# Channels: one in-memory channel layer, enough for runserver (a single process).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.inmemory.ChannelLayer",
        "ROUTING": "mysite.routing.channel_routing",
    },
}
