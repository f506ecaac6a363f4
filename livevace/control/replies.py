"""One bounded answer per request: what a packet's messages ask is sent back together.

A 20-byte `/livevace/dump` used to come back as 27 datagrams, and a 65 KB bundle of dumps
as 73,089: any sender could make the node flood whatever address it claimed. Now the
replies to one packet are gathered, one message per address (a later answer to the same
address replaces an earlier one), and go out as one message or one bundle. So one request
gets at most one answer per address the node has, however it is phrased; how often a
sender may be answered is the transport's business (transport.ReplyGuard).
"""

from __future__ import annotations

import struct

from livevace.control.transport import Reply

MAX_DATAGRAM = 60000
"""Bundle size beyond which the answer is split (a UDP datagram carries at most 65,507)."""
IMMEDIATELY = struct.pack(">Q", 1)


def bundle(messages: list[bytes]) -> bytes:
    """An OSC bundle of encoded messages, time-tagged "immediately"."""
    return b"#bundle\0" + IMMEDIATELY + b"".join(struct.pack(">i", len(m)) + m for m in messages)


class Replies:
    """Gathers a request's answers (call it like a Reply), then `send`s them at once."""

    def __init__(self, reply: Reply, source: str | None = None) -> None:
        self._reply = reply
        self.source = source
        """The MIDI port a request came from (None: OSC): a mapping file may answer only
        some ports."""
        self._messages: dict[bytes, bytes] = {}

    def __call__(self, message: bytes) -> None:
        self._messages[message[:message.find(b"\0")]] = message  # keyed by address

    def send(self) -> None:
        messages, self._messages = list(self._messages.values()), {}
        if len(messages) == 1:
            self._reply(messages[0])
            return
        group: list[bytes] = []
        size = 16
        for m in messages:
            if group and size + 4 + len(m) > MAX_DATAGRAM:
                self._reply(bundle(group))
                group, size = [], 16
            group.append(m)
            size += 4 + len(m)
        if group:
            self._reply(bundle(group))
