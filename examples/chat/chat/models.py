"""Rooms and the messages posted in them."""

from django.conf import settings
from django.db import models

HISTORY_LENGTH = 50
"""How many past messages a client gets when it joins a room."""


class Room(models.Model):
    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def group_name(self) -> str:
        """The channel-layer group every open WebSocket of this room belongs to."""
        return f"chat-room-{self.slug}"

    def recent_messages(self) -> list["Message"]:
        """The last ``HISTORY_LENGTH`` messages, oldest first."""
        latest = self.messages.select_related("author").order_by("-created", "-id")
        return list(reversed(latest[:HISTORY_LENGTH]))


class Message(models.Model):
    MAX_LENGTH = 2000

    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(max_length=MAX_LENGTH)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    def as_event(self) -> dict:
        """The JSON-ready form sent to browsers."""
        return {
            "type": "message",
            "id": self.id,
            "user": self.author.get_username(),
            "text": self.text,
            "created": self.created.isoformat(),
        }
