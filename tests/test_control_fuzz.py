"""Fuzz: 12,000 random and malformed packets at the running server; afterwards it still
answers and every parameter is inside its declared range."""

from __future__ import annotations

import random
import socket
import struct
import time

from pythonosc.osc_message_builder import OscMessageBuilder

from livevace.control.addresses import COMMANDS
from livevace.params import REGISTRY
from test_control_support import OscClient, presets, running  # noqa: F401

ADDRESSES = [p.address for p in REGISTRY] + [c.address for c in COMMANDS] + [
    "/livevace/*", "/livevace/vace_*", "/livevace/{seed,noise_scale}", "/livevace/[a-z]*",
    "/livevace/[!", "/livevace/{", "/1/fader1", "/nowhere", "", "/",
]


def _random_text(rng: random.Random, length: int) -> str:
    return "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(length))


_pool = random.Random(0)
STRINGS = [_random_text(_pool, n) for n in (0, 1, 5, 100, 300, 3000) for _ in range(6)]
HUGE = _random_text(_pool, 20000)


def osc_string(text: bytes) -> bytes:
    return text + b"\0" * (4 - len(text) % 4)


def random_arg(rng: random.Random) -> tuple[str, object]:
    kind = rng.randrange(11)
    if kind == 0:
        return "f", rng.choice([float("nan"), float("inf"), -float("inf"), 1e38, -1e38, 0.5])
    if kind == 1:
        return "f", rng.uniform(-10, 10)
    if kind == 2:
        return "i", rng.choice([0, 1, -1, 2**31 - 1, -2**31, rng.randrange(-5000, 5000)])
    if kind == 3:
        return "h", rng.choice([2**62, -2**62, 3])
    if kind == 4:
        return "d", rng.choice([float("nan"), 1e300, 0.25])
    if kind == 5:
        # python-osc scans strings byte by byte in Python: huge ones are rare here to stay fast
        return "s", rng.choice(STRINGS) if rng.random() < 0.98 else HUGE
    if kind == 6:
        return "b", rng.randbytes(rng.randrange(1, 64))
    if kind == 7:
        return rng.choice("TFN"), None
    if kind == 8:
        return "m", tuple(rng.randrange(256) for _ in range(4))
    if kind == 9:
        return "s", rng.choice(["pose", "depth", "1", "on", "maybe", "a cat :: 0.5 | dog", "x :: -1",
                                "stratification/strong", "../../etc/passwd", "7", "neon_dancer"])
    return "[", [rng.uniform(0, 1) for _ in range(rng.randrange(3))]


def message(rng: random.Random) -> bytes:
    builder = OscMessageBuilder(rng.choice(ADDRESSES) or "/x")
    for _ in range(rng.choice([0, 1, 1, 1, 2, 4, 9])):
        tag, value = random_arg(rng)
        if tag in "TFN":
            builder.add_arg(tag == "T" if tag != "N" else None)
        elif tag == "[":
            builder.add_arg(value)
        else:
            builder.add_arg(value, tag)
    return builder.build().dgram


def bundle(rng: random.Random, depth: int = 0) -> bytes:
    out = b"#bundle\0" + struct.pack(">Q", rng.choice([1, 0, 2**64 - 1,
                                                        int((time.time() + 2208988800 + 0.05) * 2**32)]))
    for _ in range(rng.randrange(4)):
        inner = bundle(rng, depth + 1) if depth < 2 and rng.random() < 0.3 else message(rng)
        size = len(inner) if rng.random() < 0.8 else rng.choice([-4, 0, 3, 10**6, len(inner) + 8])
        out += struct.pack(">i", size) + inner
    return out


def packet(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        data = message(rng)
        return data[: rng.randrange(len(data) + 1)]  # truncated
    if kind == 2:
        data = bytearray(message(rng))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)  # corrupted
        return bytes(data)
    if kind == 3:
        return bundle(rng)
    if kind == 4:  # a well-formed address with a garbage type tag string
        return osc_string(rng.choice(ADDRESSES[:5]).encode()) + osc_string(
            b"," + bytes(rng.choice(b"ifsbhdtTFNIcrm[]Sx\0") for _ in range(rng.randrange(8)))
        ) + rng.randbytes(rng.randrange(32))
    return message(rng)


def test_fuzz_12000_packets_server_survives_and_values_stay_in_range(running):
    r = running()
    rng = random.Random(1234)
    sent = 0
    for _ in range(24):
        for _ in range(500):
            r.client.send_raw(packet(rng)[:65000])  # what one datagram can carry
            sent += 1
        r.client.sync()  # it answers; and the next batch does not overflow the socket buffer
        r.control.tick()
    assert sent >= 10_000
    time.sleep(0.2)
    for _ in range(3):
        r.control.tick()
    values = r.store.snapshot()
    for p in REGISTRY:
        if p.kind != "trigger":
            assert p.coerce(values[p.name]) == (values[p.name], False), (p.name, values[p.name])
    fresh = OscClient(r.port)  # hears only its own replies, not those to fuzzed queries
    fresh.send("/livevace/control", "pose")  # and it still obeys
    fresh.sync()
    fresh.close()
    assert r.store.get("control") == "pose"


def test_fuzz_tcp_streams_cannot_stop_the_server(running):
    """Garbage over TCP in both framings, cut connections and oversized frames."""
    r = running("--osc-tcp")
    rng = random.Random(99)
    for _ in range(40):
        with socket.create_connection(("127.0.0.1", r.port), timeout=30) as conn:
            slip = rng.random() < 0.5
            stream = b""
            for _ in range(rng.randrange(1, 30)):
                data = packet(rng)[:4000]
                stream += (b"\xc0" + data + b"\xc0") if slip else struct.pack(">i", len(data)) + data
            if rng.random() < 0.2:
                stream += struct.pack(">i", 2**30)  # a frame size no one should accept
            try:
                conn.sendall(stream[: rng.randrange(len(stream) + 1)])
            except OSError:
                pass  # the server may close an offending connection first
    with socket.create_connection(("127.0.0.1", r.port), timeout=30) as conn:
        msg = OscMessageBuilder("/livevace/seed")
        msg.add_arg(2024)
        data = msg.build().dgram
        conn.sendall(struct.pack(">i", len(data)) + data)
        deadline = time.monotonic() + 30
        while r.store.get("seed") != 2024 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert r.store.get("seed") == 2024
    r.client.sync()  # UDP still answers too
