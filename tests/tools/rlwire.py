"""rlwire.py: the rlimitd wire protocol for the fault and accuracy tools (see proto/PROTOCOL.md).

Pure standard library. Frames are built and parsed here; the tools do the I/O. A blocking
`Client` serves one-shot calls (PING, CHECK, STATS, POLICIES) from test scripts.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass

VERSION = 1
HEADER = struct.Struct(">IBBHI")  # length, version, opcode, flags, request id
RESULT = struct.Struct(">BBHIIIII")  # status, reserved, flags, limit, remaining, reset, retry, window
ITEM = struct.Struct(">IBH")  # cost, policy_len, key_len

PING, CHECK, PEEK, ADJUST, RESET, MULTI_CHECK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
POLICIES, STATS, TOP, RELOAD = 0x20, 0x21, 0x22, 0x23

STATUS = {
    0: "ALLOWED", 1: "DENIED", 16: "MALFORMED", 17: "UNSUPPORTED_VERSION",
    18: "UNKNOWN_OPCODE", 19: "UNKNOWN_POLICY", 20: "KEY_TOO_LONG", 21: "KEY_EMPTY",
    22: "COST_INVALID", 23: "COST_TOO_LARGE", 24: "FRAME_TOO_LARGE",
    25: "STORE_UNAVAILABLE", 26: "NOT_PERMITTED", 27: "TOO_MANY_ITEMS", 28: "STORE_FULL",
    29: "BUSY", 30: "INTERNAL", 31: "RELOAD_FAILED",
}
ALLOWED, DENIED, STORE_FULL, BUSY = 0, 1, 28, 29
FLAGS = {0x1: "FALLBACK", 0x2: "SHADOW", 0x4: "CACHED", 0x8: "EXEMPT", 0x10: "BLOCKED"}
FALLBACK, CACHED = 0x1, 0x4


def flag_names(flags: int) -> list[str]:
    """Returns the names of the result flags set in flags."""
    return [name for bit, name in FLAGS.items() if flags & bit]


def item_frame(request_id: int, policy: bytes, key: bytes, cost: int = 1,
               opcode: int = CHECK) -> bytes:
    """Returns the frame of an item request (CHECK, PEEK, ...)."""
    body = ITEM.pack(cost & 0xFFFFFFFF, len(policy), len(key)) + policy + key
    return HEADER.pack(8 + len(body), VERSION, opcode, 0, request_id) + body


def empty_frame(request_id: int, opcode: int) -> bytes:
    """Returns the frame of a request without a body (PING, STATS, POLICIES, RELOAD)."""
    return HEADER.pack(8, VERSION, opcode, 0, request_id)


def with_id(frame: bytes, request_id: int) -> bytes:
    """Returns frame with its request id replaced."""
    return frame[:8] + struct.pack(">I", request_id) + frame[12:]


@dataclass
class Answer:
    """One decoded response frame."""
    request_id: int
    opcode: int
    status: int
    flags: int
    limit: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int
    window_ms: int
    text: str | None = None
    tail: bytes = b""  # the bytes after the result: a multi result's or a lease result's

    @property
    def status_name(self) -> str:
        return STATUS.get(self.status, f"STATUS_{self.status}")


def parse_frames(buf: bytearray) -> list[Answer]:
    """Takes every complete response frame off the front of buf and decodes it.

    Raises ValueError on a frame that is not a valid response."""
    out = []
    while len(buf) >= 4:
        (length,) = struct.unpack_from(">I", buf, 0)
        if length < 8 + RESULT.size:
            raise ValueError(f"response frame of length {length}")
        if len(buf) < 4 + length:
            break
        _, version, opcode, _, request_id = HEADER.unpack_from(buf, 0)
        if version != VERSION:
            raise ValueError(f"response version {version}")
        status, _, flags, limit, remaining, reset, retry, window = RESULT.unpack_from(buf, 12)
        text = None
        if opcode in (POLICIES, STATS, TOP, RELOAD) and length >= 8 + RESULT.size + 4:
            (text_len,) = struct.unpack_from(">I", buf, 12 + RESULT.size)
            start = 12 + RESULT.size + 4
            text = bytes(buf[start:start + text_len]).decode()
        out.append(Answer(request_id, opcode, status, flags, limit, remaining, reset, retry,
                          window, text, bytes(buf[12 + RESULT.size:4 + length])))
        del buf[:4 + length]
    return out


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    """Connects a blocking socket to "unix:PATH" or "tcp:HOST:PORT"."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address[5:]
    elif address.startswith("tcp:"):
        host, _, port = address[4:].rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host.strip("[]"), int(port))
    else:
        raise ValueError(f"address {address!r}: unix:PATH or tcp:HOST:PORT")
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(target)
            return sock
        except BlockingIOError:
            # a Unix socket's accept queue is full (EAGAIN): wait for the daemon to accept
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.001)
        except OSError:
            sock.close()
            raise


class Client:
    """A blocking client for one-shot calls from test scripts."""

    def __init__(self, address: str, timeout: float = 10.0):
        self.sock = connect(address, timeout)
        self.buf = bytearray()
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, frame: bytes) -> Answer:
        """Sends one frame (its id replaced) and returns its answer."""
        request_id = self.next_id
        self.next_id += 1
        self.sock.sendall(with_id(frame, request_id))
        while True:
            for answer in parse_frames(self.buf):
                if answer.request_id == request_id:
                    return answer
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self.buf += data

    def check(self, policy: str, key: str, cost: int = 1) -> Answer:
        return self.call(item_frame(0, policy.encode(), key.encode(), cost))

    def ping(self) -> Answer:
        return self.call(empty_frame(0, PING))

    def admin(self, opcode: int) -> dict:
        answer = self.call(empty_frame(0, opcode))
        return json.loads(answer.text or "null")


def stats(address: str) -> dict:
    """Returns the daemon's STATS as a dict."""
    with Client(address) as c:
        return c.admin(STATS)


def policy_totals(stats_doc: dict) -> dict[str, dict[str, int]]:
    """Returns STATS's per-policy counters keyed by policy name."""
    return {p["name"]: p for p in stats_doc.get("policies", [])}


def rss_kb(pid: int) -> int:
    """Returns VmRSS of pid in kB (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_answering(address: str, seconds: float = 30.0) -> Answer:
    """Returns the answer to a PING once the daemon answers one (retrying start-up)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with Client(address, timeout=5.0) as c:
                return c.ping()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
