"""`daphne.ws_state.WebSocketSession` without a transport (issue 16 item 1).

In the style of h11's test_state.py: feed inputs, assert the state after each; an input
the table does not allow raises and leaves the state unchanged. D-38..D-43, A-83..A-89.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from daphne import ws_state as st
from daphne.errors import ApplicationError, IllegalTransition
from daphne.ws_state import Outcome, SocketState, WebSocketSession

S = SocketState
OPENED = 100.0


def awaiting_app() -> WebSocketSession:
    session = WebSocketSession()
    session.connect("r!x", "/ws/", [], b"", ("10.0.0.1", 5000), ("10.0.0.2", 80), OPENED)
    return session


def delivered() -> WebSocketSession:
    session = awaiting_app()
    assert session.connect_outcome(None, retried=False, expired=False) is st.DELIVERED
    return session


def open_session() -> WebSocketSession:
    session = delivered()
    assert session.accept()
    return session


def queued() -> WebSocketSession:
    session = awaiting_app()
    assert session.connect_outcome(Outcome.FULL, retried=False, expired=False) is st.QUEUE
    return session


def assert_illegal(session: WebSocketSession, call, *args) -> None:
    before = session.state
    with pytest.raises(IllegalTransition):
        call(*args)
    assert session.state is before


# -- the handshake (D-38, D-39, A-83) -------------------------------------------------


def test_connect_builds_the_connect_message_and_waits_for_the_application():
    session = WebSocketSession()
    assert session.state is S.CONNECTING
    message = session.connect(
        "r!x", "/ws/", [(b"host", b"a")], b"a=1", ("10.0.0.1", 5000), None, OPENED
    )
    assert message == {
        "reply_channel": "r!x",
        "path": "/ws/",
        "headers": [(b"host", b"a")],
        "query_string": b"a=1",
        "client": ("10.0.0.1", 5000),
        "server": None,
        "order": 0,
    }
    assert session.state is S.AWAITING_APP
    assert session.in_flight == 1
    assert_illegal(session, session.connect, "r!y", "/", [], b"", None, None, OPENED)


def test_accept_opens_once():
    session = delivered()
    assert session.accept()
    assert session.state is S.OPEN
    assert not session.accept()  # D-39: accept on an open socket is ignored
    assert not session.reject()
    assert session.state is S.OPEN


def test_rejected_handshake_still_owes_a_disconnect():
    """D-41: a rejected connection also produces websocket.disconnect."""
    session = delivered()
    assert session.reject()
    assert session.state is S.REJECTED
    assert not session.accept() and not session.reject()
    assert session.client_gone(1006) == {
        "reply_channel": "r!x",
        "code": 1006,
        "path": "/ws/",
        "order": 1,
    }
    assert session.state is S.CLOSED


def test_inputs_before_the_handshake_arrived_are_illegal():
    session = WebSocketSession()
    assert_illegal(session, session.accept)
    assert_illegal(session, session.reject)
    assert_illegal(session, session.reply, {"accept": True})
    assert_illegal(session, session.receive, b"x", True, OPENED)
    assert session.client_gone(1006) is None  # D-44: autobahn refused it; nothing owed
    assert session.state is S.CLOSED


def test_no_frame_before_the_socket_is_open():
    session = delivered()
    assert_illegal(session, session.receive, b"x", True, OPENED)


def test_closed_socket_cannot_close_again():
    session = delivered()
    session.client_gone(1000)
    assert_illegal(session, session.client_gone, 1000)


# -- a websocket.connect the layer has no room for (A-89, A-85) -------------------------


def test_full_connect_channel_is_retried_then_delivered():
    session = queued()
    assert session.state is S.CONNECT_QUEUED
    assert not session.connect_expired(OPENED + 60, 5)  # its retry answers, not a 403
    assert_illegal(session, session.accept)
    assert_illegal(session, session.reply, {"accept": True})
    assert session.retry_connect()
    assert session.state is S.CONNECT_RETRY
    assert session.connect_outcome(Outcome.FULL, retried=True, expired=False) is st.QUEUE
    assert session.state is S.CONNECT_QUEUED
    assert session.retry_connect()
    assert session.connect_outcome(None, retried=True, expired=False) is st.DELIVERED
    assert session.state is S.AWAITING_APP
    assert session.in_flight == 0


def test_full_connect_channel_past_the_connect_timeout_is_refused_with_503():
    session = queued()
    session.retry_connect()
    assert session.connect_outcome(Outcome.FULL, retried=True, expired=True) is st.REFUSE_FULL
    assert session.state is S.SILENT
    assert session.client_gone(1006) is None  # the application never saw the connect
    assert session.state is S.SILENT


def test_unreachable_layer_refuses_the_handshake_and_goes_silent():
    session = awaiting_app()
    outcome = session.connect_outcome(Outcome.UNAVAILABLE, retried=False, expired=False)
    assert outcome is st.REFUSE_UNAVAILABLE
    assert session.state is S.SILENT
    assert session.receive(b"x", True, OPENED) is None
    assert session.reply({"text": "late"}) == ()
    assert session.client_gone(1006) is None


def test_client_leaving_while_queued_owes_nothing():
    session = queued()
    assert session.client_gone(1001) is None
    assert session.state is S.SILENT
    assert not session.retry_connect()  # the timer finds nobody to retry for


def test_stop_while_queued_refuses_without_a_disconnect():
    """D-17 refuses pending handshakes with 503; this one the application never saw."""
    session = queued()
    assert session.reject()
    assert session.state is S.SILENT
    assert not session.retry_connect()


@pytest.mark.parametrize(
    ("outcome", "disconnect_sent"),
    [(None, True), (Outcome.FULL, False), (Outcome.UNAVAILABLE, False)],
)
def test_client_leaving_while_a_retry_is_in_flight(outcome, disconnect_sent):
    """The disconnect waits for the retried connect: sent only if it was delivered (A-85)."""
    session = queued()
    session.retry_connect()
    assert session.client_gone(1001) is None
    assert session.state is S.CLOSED
    session.connect_outcome(outcome, retried=True, expired=False)
    disconnect = session.settled()
    assert (disconnect is not None) is disconnect_sent
    assert session.state is (S.CLOSED if disconnect_sent else S.SILENT)


def test_application_may_answer_before_the_retry_outcome_arrives():
    session = queued()
    session.retry_connect()
    assert session.accept()
    assert session.state is S.OPEN
    assert session.connect_outcome(None, retried=True, expired=False) is st.DELIVERED
    assert session.state is S.OPEN


def test_first_connect_failing_after_the_client_left_drops_the_waiting_disconnect():
    session = awaiting_app()
    assert session.client_gone(1006) is None  # waits: the connect's outcome is unknown
    assert session.connect_outcome(Outcome.FULL, retried=False, expired=False) is st.DROPPED
    assert session.settled() is None
    assert session.state is S.SILENT


# -- frames in (D-40, D-42, A-84, A-87) -------------------------------------------------


def test_frames_count_up_and_the_disconnect_follows_them():
    session = open_session()
    first = session.receive(b"\x00", True, OPENED + 1)
    second = session.receive("hé".encode(), False, OPENED + 2)
    assert first == {"reply_channel": "r!x", "path": "/ws/", "order": 1, "bytes": b"\x00"}
    assert second == {"reply_channel": "r!x", "path": "/ws/", "order": 2, "text": "hé"}
    assert session.last_data == OPENED + 2
    assert session.in_flight == 2
    assert session.client_gone(1000) is None  # waits for both outcomes
    assert session.landed() is None
    assert session.landed() == {"reply_channel": "r!x", "code": 1000, "path": "/ws/", "order": 3}


def test_full_channel_holds_frames_in_order():
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert session.frame_refused(Outcome.FULL, "websocket.receive", message) is st.HOLD
    assert session.state is S.OPEN
    assert session.receive(b"b", True, OPENED) is None  # behind the held one
    assert session.client_gone(1000) is None
    assert [m["order"] for _, m in session.held] == [1, 2, 3]
    assert session.held[-1][0] == "websocket.disconnect"


def test_unreachable_backend_holds_frames_longer():
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert (
        session.frame_refused(Outcome.UNAVAILABLE, "websocket.receive", message) is st.HOLD_BACKEND
    )


@pytest.mark.parametrize(
    ("outcome", "action"),
    [(Outcome.TOO_LARGE, st.CLOSE_FOR_SIZE), (Outcome.OUTBOX_FULL, st.CLOSE_FOR_ROOM)],
)
def test_frame_the_layer_cannot_take_silences_the_socket(outcome, action):
    """D-40, D-65: close 1009 (or 1013) and send no websocket.disconnect."""
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert session.frame_refused(outcome, "websocket.receive", message) is action
    assert session.state is S.SILENT
    assert session.receive(b"b", True, OPENED) is None
    assert session.client_gone(1009) is None
    assert session.state is S.SILENT


def test_outcomes_after_going_silent_are_ignored():
    session = open_session()
    first = session.receive(b"a", True, OPENED)
    second = session.receive(b"b", True, OPENED)
    session.frame_refused(Outcome.TOO_LARGE, "websocket.receive", first)
    assert session.frame_refused(Outcome.FULL, "websocket.receive", second) is st.IGNORE
    assert session.held is None and session.in_flight == 0


# -- a send failing for a bug (issue 16 item 2) ------------------------------------------


@pytest.mark.parametrize("retried", [False, True])
def test_failed_connect_refuses_the_handshake_with_500_and_goes_silent(retried):
    """An error the layer contract does not name is a bug: no retry, no 503 (issue 16)."""
    session = awaiting_app()
    if retried:
        session = queued()
        session.retry_connect()
    outcome = session.connect_outcome(Outcome.FAILED, retried=retried, expired=False)
    assert outcome is st.REFUSE_FAILED
    assert session.state is S.SILENT
    assert session.receive(b"x", True, OPENED) is None
    assert session.client_gone(1006) is None  # the application never saw the connect


def test_failed_connect_after_the_application_accepted_closes_with_1011():
    session = queued()
    session.retry_connect()
    assert session.accept()
    assert session.connect_outcome(Outcome.FAILED, retried=True, expired=False) is (
        st.CLOSE_FOR_ERROR
    )
    assert session.state is S.SILENT


def queued_and_rejected() -> WebSocketSession:
    session = queued()
    session.retry_connect()
    assert session.reject()
    assert session.state is S.REJECTED
    return session


@pytest.mark.parametrize("make", [awaiting_app, queued_and_rejected])
def test_failed_connect_after_the_handshake_was_answered_is_dropped(make):
    session = make()
    if session.state is S.AWAITING_APP:
        assert session.client_gone(1006) is None  # CLOSED, the disconnect waits
    assert session.connect_outcome(Outcome.FAILED, retried=True, expired=False) is st.DROPPED
    assert session.state is S.SILENT
    assert session.settled() is None  # the waiting disconnect is dropped


def test_failed_frame_closes_with_1011_instead_of_holding():
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert session.frame_refused(Outcome.FAILED, "websocket.receive", message) is (
        st.CLOSE_FOR_ERROR
    )
    assert session.state is S.SILENT
    assert session.held is None
    assert session.receive(b"b", True, OPENED) is None
    assert session.client_gone(1011) is None


def test_failed_frame_after_the_client_left_drops_the_disconnect():
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert session.client_gone(1000) is None  # waits for the frame's outcome
    assert session.frame_refused(Outcome.FAILED, "websocket.receive", message) is (
        st.CLOSE_FOR_ERROR
    )
    assert session.settled() is None
    assert session.state is S.SILENT


def test_failure_is_not_possible_while_nothing_is_in_flight():
    session = queued()  # websocket.connect waits for its retry: no outcome can come
    assert_illegal(session, session._event, st.Event.FAILED)


# -- replies (D-39, A-86) -----------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [{"accept": True, "foo": 1}, {"text": "a", "bytes": b"b"}],
)
@pytest.mark.parametrize("make", [delivered, open_session])
def test_invalid_reply_raises_and_changes_nothing(make, message):
    session = make()
    before = session.state
    with pytest.raises(ApplicationError):
        session.reply(message)
    assert session.state is before


def test_accept_false_rejects_and_ignores_the_rest():
    session = delivered()
    assert session.reply({"accept": False, "text": "ignored", "close": True}) == ((st.REJECT,),)
    assert session.state is S.REJECTED


def test_close_during_the_handshake_rejects():
    session = delivered()
    assert session.reply({"close": 4000}) == ((st.REJECT,),)
    assert session.state is S.REJECTED


def test_content_during_the_handshake_implies_accept():
    session = delivered()
    actions = session.reply({"text": "hi", "close": 4000})
    assert actions == ((st.ACCEPT,), (st.SEND, "hi", False), (st.CLOSE, 4000))
    assert session.state is S.OPEN


def test_open_socket_sends_bytes_then_text_then_close():
    session = open_session()
    assert session.reply({"accept": True}) == ()
    assert session.reply({"text": "t"}) == ((st.SEND, "t", False),)
    assert session.reply({"bytes": b"b", "close": True}) == (
        (st.SEND, b"b", True),
        (st.CLOSE, True),
    )
    assert session.state is S.OPEN  # autobahn runs the closing handshake; frames still count


@pytest.mark.parametrize(
    ("message", "actions"),
    [
        ({"text": ""}, ((st.SEND, "", False),)),
        ({"bytes": b""}, ((st.SEND, b"", True),)),
        ({"text": "", "bytes": None}, ((st.SEND, "", False),)),
        ({"bytes": b"", "accept": True}, ((st.SEND, b"", True),)),
        ({"text": "", "close": True}, ((st.CLOSE, True),)),
        ({"text": "", "bytes": b""}, ()),
    ],
)
def test_empty_frame_on_an_open_socket(message, actions):
    """Deviation from A-86 (docs/differences.rst): only an empty text or bytes alone sends
    one empty frame; next to the other data key or close, empty counts as absent."""
    session = open_session()
    assert session.reply(message) == actions


@pytest.mark.parametrize("message", [{"text": ""}, {"bytes": b""}])
def test_empty_frame_during_the_handshake_counts_as_absent(message):
    session = delivered()
    assert session.reply(message) == ()
    assert session.state is S.AWAITING_APP


# -- timers (D-24, D-43) ------------------------------------------------------------


def test_deadlines_follow_the_state():
    session = delivered()
    assert session.deadline(5, 20, 60) == OPENED + 5
    assert session.connect_expired(OPENED + 5, 5)
    assert not session.connect_expired(OPENED + 4.9, 5)
    session.accept()
    session.last_data = OPENED + 50
    assert session.deadline(5, 20, 60) == OPENED + 60  # lifetime before the next ping
    assert session.deadline(5, 20, None) == OPENED + 70
    assert session.deadline(5, 0, -1) is None
    assert not session.connect_expired(OPENED + 60, 5)
    assert session.lifetime_over(OPENED + 60, 60)
    assert not session.lifetime_over(OPENED + 60, -1)
    assert not session.ping_due(OPENED + 69, 20)
    assert session.ping_due(OPENED + 70, 20)
    assert session.last_data == OPENED + 70  # the ping counts as data
    session.client_gone(1000)
    assert session.deadline(5, 20, 60) is None


def test_every_state_has_a_row():
    assert set(st._TRANSITIONS) == set(SocketState)
    silent = st._TRANSITIONS[S.SILENT]
    assert set(silent.values()) == {S.SILENT}  # nothing brings a silenced socket back


def test_no_io_imports():
    """The session is sans-I/O: importing it loads neither Twisted nor autobahn."""
    code = (
        "import sys, daphne.ws_state; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'autobahn')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- a graceful stop (D-17, issue 17 item 4) ------------------------------------------------


def test_stop_closes_an_open_socket_once_and_the_disconnect_carries_1012():
    session = open_session()
    assert session.stop()
    assert session.state is S.STOPPING
    assert not session.stop()  # the stop's last step finds it closing already
    assert session.state is S.STOPPING
    # The client answers the close with any code (or none): the application hears 1012.
    assert session.client_gone(1000) == {
        "reply_channel": "r!x",
        "code": st.CLOSE_SERVICE_RESTART,
        "path": "/ws/",
        "order": 1,
    }
    assert session.state is S.CLOSED
    assert not session.stop()  # gone before a later batch came to it


def test_frames_sent_before_the_client_saw_the_close_are_still_forwarded():
    session = open_session()
    session.stop()
    message = session.receive(b"late", False, OPENED + 1)
    assert message is not None and message["order"] == 1 and message["text"] == "late"
    assert session.client_gone(1012) is None  # waits for the frame's outcome
    assert session.landed()["code"] == 1012


def test_a_stopping_socket_sends_no_replies_and_no_pings():
    session = open_session()
    session.stop()
    assert session.reply({"text": "too late", "close": True}) == ()
    assert session.deadline(5, 20, 60) is None
    assert not session.ping_due(OPENED + 1000, 20)
    assert not session.lifetime_over(OPENED + 1000, 60)


def test_held_frames_of_a_stopping_socket_keep_their_order_and_the_disconnect_follows():
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    assert session.frame_refused(Outcome.FULL, "websocket.receive", message) is st.HOLD
    session.stop()
    assert session.state is S.STOPPING
    assert session.client_gone(1006) is None
    assert [(channel, m["order"]) for channel, m in session.held] == [
        ("websocket.receive", 1),
        ("websocket.disconnect", 2),
    ]
    assert session.held[-1][1]["code"] == 1012


@pytest.mark.parametrize("make", [awaiting_app, delivered, queued])
def test_a_handshake_cannot_be_stopped_only_refused(make):
    """A handshake still waiting for the application is refused with 503 (`reject`)."""
    session = make()
    assert_illegal(session, session.stop)
    assert session.reject()


def test_stop_after_the_socket_was_refused_or_silenced_changes_nothing():
    refused = delivered()
    refused.reject()
    assert not refused.stop() and refused.state is S.REJECTED
    silenced = open_session()
    silenced.give_up()
    assert not silenced.stop() and silenced.state is S.SILENT


def test_no_ping_while_frames_are_held():
    """A held socket is not read, so its pong could not be: no ping until room came
    (issue 17 item 3); the lifetime limit still applies."""
    session = open_session()
    message = session.receive(b"a", True, OPENED)
    session.frame_refused(Outcome.FULL, "websocket.receive", message)
    assert not session.ping_due(OPENED + 1000, 20)
    assert session.deadline(5, 20, 60) == OPENED + 60
    assert session.deadline(5, 20, None) is None
    session.held = None  # the adapter's retry delivered it
    assert session.deadline(5, 20, None) == OPENED + 20
    assert session.ping_due(OPENED + 1000, 20)


# -- failing the connection (RFC 6455 §7.1.7, issue 21) --------------------------------


def test_protocol_error_with_nothing_forwarded_closes_at_once():
    session = open_session()
    assert session.fail() is False
    assert session.state is S.OPEN


def test_protocol_error_waits_for_replies_to_forwarded_messages():
    session = open_session()
    session.receive(b"one", False, OPENED)
    session.receive(b"two", False, OPENED)
    session.landed()
    session.landed()
    assert session.fail() is True
    assert session.state is S.FAILING
    assert session.receive(b"late", False, OPENED) is None  # nothing more is read
    assert session.received == 2
    assert session.reply({"text": "one"}) == ((st.SEND, "one", False),)
    assert not session.replies_written
    assert session.reply({"text": "two"}) == ((st.SEND, "two", False),)
    assert session.replies_written
    session.fail_close()
    assert session.state is S.CLOSING
    assert session.reply({"text": "three"}) == ()  # the close frame is out
    assert session.receive(b"x", False, OPENED) is None
    disconnect = session.client_gone(1002)
    assert session.state is S.CLOSED
    assert disconnect["order"] == 3 and disconnect["code"] == 1002


def test_answered_counts_up_to_received_only():
    """A broadcast before the messages does not stand in for their replies."""
    session = open_session()
    session.reply({"text": "broadcast"})
    session.receive(b"one", False, OPENED)
    assert session.answered == 0
    assert session.fail() is True


def test_failing_socket_may_be_closed_for_the_layer_or_left():
    session = open_session()
    session.receive(b"one", False, OPENED)
    assert session.fail()
    session.give_up()
    assert session.state is S.SILENT
    session = open_session()
    session.receive(b"one", False, OPENED)
    session.landed()
    assert session.fail()
    assert session.client_gone(1006)["order"] == 2
    assert session.state is S.CLOSED


def test_fail_is_only_for_open_sockets():
    session = delivered()
    assert session.fail() is False
    assert session.state is S.AWAITING_APP
    assert_illegal(session, session.fail_close)


def test_a_stop_finds_a_failing_socket_closing_already():
    """Issue 17 item 4 beside issue 21: a graceful stop reaching a socket that waits for
    replies before its protocol-error close (or has sent it) leaves it to that close."""
    session = open_session()
    session.receive(b"one", False, OPENED + 1)
    assert session.landed() is None  # sent to the application, no reply yet
    assert session.fail()
    assert session.state is S.FAILING
    assert not session.stop()
    assert session.state is S.FAILING
    session.fail_close()
    assert session.state is S.CLOSING
    assert not session.stop()
    assert session.state is S.CLOSING
    assert session.client_gone(1007)["code"] == 1007


def test_a_protocol_error_while_stopping_closes_at_once():
    session = open_session()
    session.receive(b"one", False, OPENED + 1)
    assert session.stop()
    assert not session.fail()  # the 1012 close is out already: nothing to wait for
    assert session.state is S.STOPPING
