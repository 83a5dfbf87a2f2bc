import json

from channels import Group


def room_group(room_name):
    """Every socket open on a room belongs to this group."""
    return f"chat-{room_name}"


def ws_connect(message, room_name):
    message.reply_channel.send({"accept": True})
    Group(room_group(room_name)).add(message.reply_channel)


def ws_receive(message, room_name):
    try:
        text = json.loads(message["text"])["message"]
    except (KeyError, TypeError, ValueError):
        error = 'Send JSON like {"message": "hello"}.'
        message.reply_channel.send({"text": json.dumps({"error": error})})
        return
    Group(room_group(room_name)).send({"text": json.dumps({"message": text})})


def ws_disconnect(message, room_name):
    Group(room_group(room_name)).discard(message.reply_channel)
