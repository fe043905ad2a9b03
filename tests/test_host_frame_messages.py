"""host.frame_messages against a stand-in for PromptServer's send_sync: ComfyUI's messages about a stream's
frame prompts are dropped at once when no websocket listens under the frame client id; every other message,
and any listened-to frame client id, goes through unchanged."""

from __future__ import annotations

from comfy_trickle.host.frame_messages import skip_unheard_frame_messages
from comfy_trickle.streams.pump import FRAME_CLIENT_PREFIX


class MessageServer:
    """PromptServer's ``sockets`` and ``send_sync(event, data, sid=None)``, recording what it queues."""

    def __init__(self) -> None:
        self.sockets: dict[str, object] = {}
        self.queued: list[tuple[str, object, str | None]] = []

    def send_sync(self, event, data, sid=None):
        self.queued.append((event, data, sid))


def test_frame_messages_nobody_hears_never_reach_the_servers_queue():
    server = MessageServer()
    assert skip_unheard_frame_messages(server) is True
    frames = FRAME_CLIENT_PREFIX + "cam"
    server.send_sync("executing", {"node": "1"}, frames)
    server.send_sync("progress_state", {"nodes": {}}, sid=frames)
    assert server.queued == []
    server.send_sync("status", {"queue": 1})  # broadcasts, a user's browser, another pack's client id
    server.send_sync("executing", {"node": "2"}, "browser-1")
    server.send_sync("executed", {}, "someone-else:cam")
    assert [sid for _event, _data, sid in server.queued] == [None, "browser-1", "someone-else:cam"]
    server.sockets[frames] = object()  # a websocket listens under the stream's client id (tests do)
    server.send_sync("executing", {"node": "3"}, frames)
    assert server.queued[-1] == ("executing", {"node": "3"}, frames)


def test_a_server_without_sockets_is_left_alone():
    class Bare:
        def send_sync(self, event, data, sid=None):
            return "sent"

    bare = Bare()
    original = bare.send_sync
    assert skip_unheard_frame_messages(bare) is False
    assert bare.send_sync == original and bare.send_sync("e", {}, FRAME_CLIENT_PREFIX + "x") == "sent"
