"""WebSocket consumers of the chat.

Each connection joins the room's group on connect, so one ``Group.send`` reaches every
open socket of the room, wherever its daphne runs. The logged-in Django user is copied
from the HTTP session (the cookie sent with the WebSocket handshake) into the channel
session on connect (``channel_session_user_from_http``), so the receive and
disconnect consumers, which run later and possibly in another worker process, know who
is talking (``channel_session_user``). ``enforce_ordering`` makes a
connection's messages run in the order the browser sent them, even with many workers.
"""

import json
import logging

from channels import Group
from channels.auth import channel_session_user, channel_session_user_from_http
from channels.exceptions import DenyConnection
from channels.security.websockets import allowed_hosts_only
from channels.sessions import enforce_ordering

from .models import Message, Room

logger = logging.getLogger(__name__)


def _send_json(channel, event: dict) -> None:
    channel.send({"text": json.dumps(event)})


@allowed_hosts_only
@enforce_ordering
@channel_session_user_from_http
def ws_connect(message, room_slug: str) -> None:
    """Accept logged-in users into an existing room and send them its recent history."""
    if not message.user.is_authenticated:
        raise DenyConnection  # the worker refuses the handshake
    room = Room.objects.filter(slug=room_slug).first()
    if room is None:
        raise DenyConnection
    message.reply_channel.send({"accept": True})
    Group(room.group_name).add(message.reply_channel)
    message.channel_session["room"] = room.slug
    # Sends made inside a consumer leave when it finishes, in order: the browser
    # gets the accept, then the history, then the presence event.
    history = [m.as_event() for m in room.recent_messages()]
    _send_json(message.reply_channel, {"type": "history", "messages": history})
    Group(room.group_name).send(
        {
            "text": json.dumps(
                {"type": "presence", "user": message.user.get_username(), "action": "joined"}
            )
        }
    )


@enforce_ordering
@channel_session_user
def ws_receive(message, room_slug: str) -> None:
    """Store a posted message and broadcast it to the room."""
    room = _session_room(message)
    if room is None:
        return
    text = _posted_text(message)
    if text is None:
        _send_json(
            message.reply_channel,
            {
                "type": "error",
                "error": (
                    f'Send JSON like {{"text": "hello"}} with 1 to {Message.MAX_LENGTH} characters.'
                ),
            },
        )
        return
    posted = Message.objects.create(room=room, author=message.user, text=text)
    Group(room.group_name).send({"text": json.dumps(posted.as_event())})


@enforce_ordering
@channel_session_user
def ws_disconnect(message, room_slug: str) -> None:
    """Leave the room's group and tell the others."""
    room = _session_room(message)
    if room is None:
        return
    Group(room.group_name).discard(message.reply_channel)
    Group(room.group_name).send(
        {
            "text": json.dumps(
                {"type": "presence", "user": message.user.get_username(), "action": "left"}
            )
        }
    )


def _session_room(message) -> Room | None:
    slug = message.channel_session.get("room")
    room = Room.objects.filter(slug=slug).first() if slug else None
    if room is None:
        logger.info("Message on %s for a connection without a room", message.reply_channel)
    return room


def _posted_text(message) -> str | None:
    """The text of a ``{"text": ...}`` frame, or None when the frame is not one."""
    try:
        data = json.loads(message.content.get("text") or "")
    except json.JSONDecodeError:
        return None
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    text = text.strip()
    return text if 0 < len(text) <= Message.MAX_LENGTH else None
