"""Spout (Windows GPU texture sharing) through SpoutGL: send to and receive from
TouchDesigner (Spout Out/In TOP), Resolume, OBS (Spout2 plugin) on the same machine.

Spout needs an OpenGL context on the thread that calls it; SpoutGL creates a hidden one
on first use, and every call here runs on the sink's (or capture's) own thread. RGB is
sent as is (GL_RGB), so there is no conversion on the CPU. Frame sync (`setFrameSync`)
lets receivers wait for a new frame instead of polling.
"""

from __future__ import annotations

import numpy as np

from livevace.errors import SinkError, SourceError
from livevace.frames import Frame, now
from livevace.io.platform import import_backend


def _spoutgl(*, source: bool = False):
    return import_backend("spout", "SpoutGL", "SpoutGL", source=source)


def list_senders() -> list[str]:
    """Names of the Spout senders running on this machine (empty off Windows)."""
    try:
        spoutgl = _spoutgl(source=True)
    except SourceError:
        return []
    receiver = spoutgl.SpoutReceiver()
    try:
        return list(receiver.getSenderList()) if hasattr(receiver, "getSenderList") else []
    finally:
        receiver.releaseReceiver()


class SpoutSink:
    queue_size = 2

    def __init__(self, sender_name: str) -> None:
        self.sender_name = sender_name
        self.name = f"spout:{sender_name}"
        self._sender = None
        self._gl_rgb = 0

    def open(self, width: int, height: int, fps: float) -> None:
        spoutgl = _spoutgl()
        self._gl_rgb = spoutgl.enums.GL_RGB
        sender = spoutgl.SpoutSender()
        sender.setSenderName(self.sender_name)
        self._sender = sender

    def write(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        image = np.ascontiguousarray(frame.image)
        if not self._sender.sendImage(image, w, h, self._gl_rgb, False, 0):
            raise SinkError(f"Spout could not send to {self.sender_name!r} (no OpenGL/DirectX "
                            "interop on this GPU?); use ndi instead")
        self._sender.setFrameSync(self.sender_name)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.releaseSender()
            self._sender = None


class SpoutSource:
    """Receive a named Spout sender; None while it is absent (the capture thread shows
    the slate) and picks it up again when it comes back."""

    def __init__(self, sender_name: str) -> None:
        self.sender_name = sender_name
        self.name = f"spout:{sender_name}"
        self._receiver = None
        self._buf: np.ndarray | None = None
        self._gl_rgb = 0

    def open(self) -> None:
        spoutgl = _spoutgl(source=True)
        self._gl_rgb = spoutgl.enums.GL_RGB
        self._receiver = spoutgl.SpoutReceiver()
        self._receiver.setReceiverName(self.sender_name)
        self._buf = None

    def read(self, timeout: float) -> Frame | None:
        receiver = self._receiver
        if receiver is None:
            raise SourceError(f"{self.name} is closed")
        receiver.waitFrameSync(self.sender_name, max(1, int(timeout * 1000)))
        ok = receiver.receiveImage(self._buf, self._gl_rgb, False, 0)
        if receiver.isUpdated():  # first connection or the sender changed size
            w, h = receiver.getSenderWidth(), receiver.getSenderHeight()
            self._buf = np.empty((h, w, 3), np.uint8) if w and h else None
            return None
        if ok and self._buf is not None and receiver.isFrameNew():
            return Frame(self._buf.copy(), now())
        return None

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.releaseReceiver()
            self._receiver = None
