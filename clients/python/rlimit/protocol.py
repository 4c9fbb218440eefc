"""The rlimitd wire protocol, version 1 (proto/PROTOCOL.md): a pure codec.

Bytes in, objects out; nothing here touches a socket. Clients encode requests and
decode responses; test servers do the opposite. FrameSplitter cuts a byte stream
into whole frames. Every multibyte integer is big-endian.

    frame    = length:u32 version:u8 opcode:u8 flags:u16 request_id:u32 body
    item     = cost:u32 (i32 for ADJUST) policy_len:u8 key_len:u16 policy key
    multi    = count:u8 reserved:u8 item*count
    leased   = lease:u64 item (RELEASE, RENEW: cost 0)
    result   = status:u8 reserved:u8 flags:u16 limit remaining reset_after_ms
               retry_after_ms window_ms (u32 each)
    response = result [count:u8 reserved:3 result*count | text_len:u32 text | lease:u64]

The only request flag is DETACH (ACQUIRE only): the lease outlives the connection.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidRequest, ProtocolError

VERSION = 1
HEADER_LEN = 12  # length + version + opcode + flags + request id
RESULT_LEN = 24  # one encoded result
ITEM_FIXED_LEN = 7  # cost + policy_len + key_len
MAX_ITEMS = 16  # MULTI_CHECK items
MAX_POLICY_LEN = 255  # policy names fit policy_len
MAX_KEY_LEN = 65535  # the wire limit; the daemon's max_key is lower
DEFAULT_MAX_FRAME = 16384  # the daemon's default max_frame: the largest request `length`
MAX_RESPONSE_FRAME = 1 << 24  # the largest response a client buffers (admin text)


class Opcode(enum.IntEnum):
    PING = 0x01
    CHECK = 0x02
    PEEK = 0x03
    ADJUST = 0x04
    RESET = 0x05
    MULTI_CHECK = 0x06
    AUTH = 0x07  # body: an item of cost 0, no policy, the token as key
    ACQUIRE = 0x10  # body: an item (cost = slots); answer: result + lease
    RELEASE = 0x11  # body: lease + an item of cost 0; answer: result + lease
    RENEW = 0x12  # body: lease + an item of cost 0; answer: result + lease
    POLICIES = 0x20
    STATS = 0x21
    TOP = 0x22
    RELOAD = 0x23
    LEASES = 0x24  # body: an item of cost 0 (key empty: every key); answer: result + text


class Status(enum.IntEnum):
    ALLOWED = 0
    OK = 0  # alias of ALLOWED
    DENIED = 1
    MALFORMED = 16
    UNSUPPORTED_VERSION = 17
    UNKNOWN_OPCODE = 18
    UNKNOWN_POLICY = 19
    KEY_TOO_LONG = 20
    KEY_EMPTY = 21
    COST_INVALID = 22
    COST_TOO_LARGE = 23
    FRAME_TOO_LARGE = 24
    STORE_UNAVAILABLE = 25
    NOT_PERMITTED = 26
    TOO_MANY_ITEMS = 27
    STORE_FULL = 28
    BUSY = 29
    INTERNAL = 30
    RELOAD_FAILED = 31
    AUTH_REQUIRED = 32  # the listener has a token and the connection has not sent AUTH
    AUTH_FAILED = 33  # a wrong token; the daemon closes the connection after it
    LEASE_UNKNOWN = 34  # RELEASE/RENEW of a lease not held (unknown, expired, released)
    POLICY_KIND = 35  # a rate opcode naming a concurrency policy, or the reverse


class Flag(enum.IntFlag):
    FALLBACK = 0x0001  # the store failed; the policy's on_store_error answered
    SHADOW = 0x0002  # shadow mode: would have been denied, allowed
    CACHED = 0x0004  # denied from the over-limit cache
    EXEMPT = 0x0008  # the key is exempt: allowed, not counted
    BLOCKED = 0x0010  # the key is blocked: always denied
    CAPPED = 0x0020  # an ADJUST charge was held at the ceiling (twice the capacity)


DETACH = 0x0001  # request flag of ACQUIRE: the lease is not released when the connection closes
MAX_LEASE = (1 << 64) - 1  # lease ids are u64; 0 means "no lease held"

# Statuses after which the daemon closes the connection.
CLOSING_STATUSES = frozenset(
    {Status.MALFORMED, Status.UNSUPPORTED_VERSION, Status.FRAME_TOO_LARGE, Status.TOO_MANY_ITEMS,
     Status.AUTH_FAILED}
)

_HEADER = struct.Struct(">IBBHI")
_ITEM = struct.Struct(">IBH")
_SIGNED_ITEM = struct.Struct(">iBH")
_ITEM_REQUEST = struct.Struct(">IBBHI" + "IBH")  # header + an unsigned item's fixed part
_MULTI_HEAD = struct.Struct(">BB")
_RESULT = struct.Struct(">BxHIIIII")
_MULTI_TAIL = struct.Struct(">B3x")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PLAIN_RESPONSE = struct.Struct(">IBBHI" + "BxHIIIII")  # header + one result

_NO_BODY = frozenset({Opcode.PING, Opcode.POLICIES, Opcode.STATS, Opcode.RELOAD})
_ITEM_BODY = frozenset({Opcode.CHECK, Opcode.PEEK, Opcode.RESET, Opcode.TOP, Opcode.ADJUST, Opcode.AUTH,
                        Opcode.ACQUIRE, Opcode.LEASES})
_LEASED_BODY = frozenset({Opcode.RELEASE, Opcode.RENEW})  # lease + item
LEASE_OPCODES = frozenset({Opcode.ACQUIRE, Opcode.RELEASE, Opcode.RENEW})  # answers: result + lease
_TEXT_OPCODES = frozenset({Opcode.POLICIES, Opcode.STATS, Opcode.TOP, Opcode.RELOAD, Opcode.LEASES})
_TAILED = _TEXT_OPCODES | LEASE_OPCODES | {Opcode.MULTI_CHECK}  # responses with more than the result


@dataclass(frozen=True, slots=True)
class Item:
    """One (policy, key, cost) item of a request."""

    policy: str  # policy name
    key: bytes  # key bytes (any bytes)
    cost: int = 1  # units; signed for ADJUST, 0 for RESET


@dataclass(frozen=True, slots=True)
class Request:
    """A request frame: PING and admin opcodes carry no items (TOP one)."""

    id: int  # request id, echoed in the response
    opcode: int  # an Opcode (or any byte, to test a server)
    items: tuple[Item, ...] = ()  # one item, or 1..16 for MULTI_CHECK
    flags: int = 0  # header flags: DETACH (ACQUIRE only) or 0
    lease: int = 0  # RELEASE, RENEW: the lease id named


@dataclass(frozen=True, slots=True)
class Result:
    """One decision (or error) as it travels on the wire."""

    status: int  # a Status code
    flags: int = 0  # Flag bits
    limit: int = 0  # admitted per window of the binding rate
    remaining: int = 0  # units left after this decision
    reset_after_ms: int = 0  # until usage is back to zero
    retry_after_ms: int = 0  # until the same request would pass; 0 if allowed
    window_ms: int = 0  # the binding rate's window


@dataclass(frozen=True, slots=True)
class Response:
    """A response frame: the (overall) result, MULTI_CHECK items, admin text."""

    id: int  # the request id it answers
    opcode: int  # the request's opcode
    result: Result  # the result (overall for MULTI_CHECK)
    items: tuple[Result, ...] = ()  # MULTI_CHECK: one result per item
    text: str | None = None  # admin opcodes: the JSON text
    lease: int = 0  # ACQUIRE, RELEASE, RENEW: the lease id (0: none)


def status_name(code: int) -> str:
    """Returns the wire name of a status code ("ALLOWED", ...), "UNKNOWN" if undefined."""
    try:
        return Status(code).name
    except ValueError:
        return "UNKNOWN"


def opcode_name(code: int) -> str | None:
    """Returns the name of an opcode ("CHECK", ...), None if undefined."""
    try:
        return Opcode(code).name
    except ValueError:
        return None


def _encode_text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _header(request_id: int, opcode: int, body_len: int, flags: int = 0) -> bytes:
    return _HEADER.pack(8 + body_len, VERSION, opcode, flags, request_id)


def _item_bytes(policy: bytes, key: bytes, cost: int, signed: bool) -> bytes:
    if len(policy) > MAX_POLICY_LEN:
        raise ValueError(f"policy name of {len(policy)} bytes (at most {MAX_POLICY_LEN})")
    if len(key) > MAX_KEY_LEN:
        raise ValueError(f"key of {len(key)} bytes (at most {MAX_KEY_LEN})")
    low, high = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
    if not low <= cost <= high:
        raise ValueError(f"cost {cost} does not fit the wire ({low}..{high})")
    fixed = (_SIGNED_ITEM if signed else _ITEM).pack(cost, len(policy), len(key))
    return fixed + policy + key


def encode_item_request(request_id: int, opcode: int, policy: bytes, key: bytes, cost: int) -> bytes:
    """Encodes a one-item request (CHECK, PEEK, ADJUST, RESET, TOP, AUTH).

    The cost is signed for ADJUST. Raises ValueError for what the wire cannot carry.
    """
    policy_len, key_len = len(policy), len(key)
    signed = opcode == Opcode.ADJUST
    if signed or policy_len > MAX_POLICY_LEN or key_len > MAX_KEY_LEN or not 0 <= cost <= 0xFFFFFFFF:
        body = _item_bytes(policy, key, cost, signed)  # a signed cost, or raises
        return _header(request_id, opcode, len(body)) + body
    # the common case in one pack: header and the item's fixed part
    fixed = _ITEM_REQUEST.pack(8 + ITEM_FIXED_LEN + policy_len + key_len, VERSION, opcode, 0, request_id,
                               cost, policy_len, key_len)
    return fixed + policy + key


def encode_acquire_request(request_id: int, policy: bytes, key: bytes, slots: int, detach: bool = False) -> bytes:
    """Encodes an ACQUIRE of slots; detach sets the DETACH flag. Raises ValueError as items do."""
    body = _item_bytes(policy, key, slots, False)
    return _header(request_id, Opcode.ACQUIRE, len(body), DETACH if detach else 0) + body


def encode_lease_request(request_id: int, opcode: int, lease: int, policy: bytes, key: bytes) -> bytes:
    """Encodes a RELEASE or RENEW of lease (u64) held under (policy, key)."""
    if not 0 <= lease <= MAX_LEASE:
        raise ValueError(f"lease id {lease} does not fit 64 bits")
    body = _U64.pack(lease) + _item_bytes(policy, key, 0, False)
    return _header(request_id, opcode, len(body)) + body


def encode_multi_request(request_id: int, items: list[tuple[bytes, bytes, int]]) -> bytes:
    """Encodes a MULTI_CHECK of (policy, key, cost) items (0..255 on the wire; 1..16 valid)."""
    if len(items) > 255:
        raise ValueError(f"{len(items)} items do not fit the count byte")
    parts = [_MULTI_HEAD.pack(len(items), 0)]
    parts += [_item_bytes(policy, key, cost, False) for policy, key, cost in items]
    body = b"".join(parts)
    return _header(request_id, Opcode.MULTI_CHECK, len(body)) + body


def encode_empty_request(request_id: int, opcode: int) -> bytes:
    """Encodes a request without a body (PING, POLICIES, STATS, RELOAD)."""
    return _header(request_id, opcode, 0)


def encode_request(request: Request) -> bytes:
    """Encodes any Request: the body follows from the opcode (none for unknown opcodes)."""
    items = [(_encode_text(it.policy), it.key, it.cost) for it in request.items]
    if request.opcode == Opcode.MULTI_CHECK:
        return encode_multi_request(request.id, items)
    if request.opcode in _ITEM_BODY or request.opcode in _LEASED_BODY:
        if len(items) != 1:
            raise ValueError(f"{opcode_name(request.opcode)} carries exactly one item")
    if request.opcode in _LEASED_BODY:
        policy, key, _cost = items[0]
        return encode_lease_request(request.id, request.opcode, request.lease, policy, key)
    if request.opcode == Opcode.ACQUIRE:
        body = _item_bytes(*items[0], False)
        return _header(request.id, request.opcode, len(body), request.flags) + body
    if request.opcode in _ITEM_BODY:
        return encode_item_request(request.id, request.opcode, *items[0])
    return encode_empty_request(request.id, request.opcode)


class _Cursor:
    """Reads fields from one frame's body, refusing short reads and leftover bytes."""

    def __init__(self, frame: bytes, error: Callable[[str], Exception] = ProtocolError):
        self.frame = frame  # the whole frame
        self.pos = HEADER_LEN  # next byte to read
        self.error = error  # raised on a short read

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        end = self.pos + layout.size
        if end > len(self.frame):
            raise self.error("frame ends inside a field")
        values = layout.unpack_from(self.frame, self.pos)
        self.pos = end
        return values

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.frame):
            raise self.error("frame ends inside a string")
        data = self.frame[self.pos : end]
        self.pos = end
        return data

    def done(self) -> bool:
        return self.pos == len(self.frame)


def read_header(frame: bytes) -> tuple[int, int, int, int, int]:
    """Returns (length, version, opcode, flags, request_id) of a frame's first 12 bytes.

    Raises ProtocolError if fewer than 12 bytes are given.
    """
    if len(frame) < HEADER_LEN:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than a header")
    length, version, opcode, flags, request_id = _HEADER.unpack_from(frame)
    return length, version, opcode, flags, request_id


def _check_response_header(frame: bytes) -> tuple[int, int]:
    length, version, opcode, _flags, request_id = read_header(frame)
    if length < HEADER_LEN - 4:
        raise ProtocolError(f"frame length {length} is below {HEADER_LEN - 4}")
    if length + 4 != len(frame):
        raise ProtocolError(f"frame length {length} but {len(frame) - 4} bytes follow it")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version}")
    return opcode, request_id


def _read_result(cursor: _Cursor) -> Result:
    return Result(*cursor.unpack(_RESULT))


PlainFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int]


def decode_plain(frame: bytes) -> PlainFields | None:
    """Returns the fields of a well-formed response of one result and no tail (the
    answer to CHECK, PEEK, ADJUST, RESET or PING), None for any other frame: (length,
    version, opcode, header flags, request id, status, flags, limit, remaining,
    reset_after_ms, retry_after_ms, window_ms); [5:] are a Result's fields, in order.
    """
    if len(frame) != _PLAIN_RESPONSE.size:
        return None
    fields = _PLAIN_RESPONSE.unpack(frame)
    if fields[0] != _PLAIN_RESPONSE.size - 4 or fields[1] != VERSION or fields[2] in _TAILED:
        return None
    return fields  # type: ignore[return-value]


def decode_response(frame: bytes) -> Response:
    """Decodes one whole response frame. Raises ProtocolError if it is malformed."""
    plain = decode_plain(frame)
    if plain is not None:  # the common case
        return Response(plain[4], plain[2], Result(*plain[5:]))
    opcode, request_id = _check_response_header(frame)
    cursor = _Cursor(frame)
    result = _read_result(cursor)
    items: tuple[Result, ...] = ()
    text = None
    if opcode == Opcode.MULTI_CHECK:
        (count,) = cursor.unpack(_MULTI_TAIL)
        if count > MAX_ITEMS:
            raise ProtocolError(f"MULTI_CHECK response with {count} items")
        items = tuple(_read_result(cursor) for _ in range(count))
    elif opcode in _TEXT_OPCODES:
        (text_len,) = cursor.unpack(_U32)
        try:
            text = cursor.take(text_len).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"admin text is not UTF-8: {exc}") from None
    elif opcode in LEASE_OPCODES and not (cursor.done() and result.status == Status.UNKNOWN_OPCODE):
        (lease,) = cursor.unpack(_U64)  # absent only from an older daemon's UNKNOWN_OPCODE
        if not cursor.done():
            raise ProtocolError(f"{len(frame) - cursor.pos} bytes left over after the response")
        return Response(request_id, opcode, result, lease=lease)
    if not cursor.done():
        raise ProtocolError(f"{len(frame) - cursor.pos} bytes left over after the response")
    return Response(request_id, opcode, result, items, text)


def _result_bytes(result: Result) -> bytes:
    return _RESULT.pack(
        result.status, result.flags, result.limit, result.remaining,
        result.reset_after_ms, result.retry_after_ms, result.window_ms,
    )


def encode_response(response: Response) -> bytes:
    """Encodes a response; its tail (items or text) follows from the opcode."""
    body = _result_bytes(response.result)
    if response.opcode == Opcode.MULTI_CHECK:
        body += _MULTI_TAIL.pack(len(response.items))
        body += b"".join(_result_bytes(item) for item in response.items)
    elif response.opcode in _TEXT_OPCODES:
        text = (response.text or "").encode("utf-8")
        body += _U32.pack(len(text)) + text
    elif response.opcode in LEASE_OPCODES:
        body += _U64.pack(response.lease)
    return _header(response.id, response.opcode, len(body)) + body


def _refuse(message: str, status: Status, request_id: int, opcode: int) -> InvalidRequest:
    return InvalidRequest(message, int(status), request_id, opcode)


def _read_item(cursor: _Cursor, signed: bool) -> Item:
    cost, policy_len, key_len = cursor.unpack(_SIGNED_ITEM if signed else _ITEM)
    policy = cursor.take(policy_len).decode("utf-8", "surrogateescape")
    return Item(policy, cursor.take(key_len), cost)


def _read_request_body(cursor: _Cursor, request_id: int, opcode: int) -> tuple[Item, ...]:
    if opcode in _ITEM_BODY or opcode in _LEASED_BODY:
        return (_read_item(cursor, opcode == Opcode.ADJUST),)
    if opcode != Opcode.MULTI_CHECK:
        return ()
    count, _reserved = cursor.unpack(_MULTI_HEAD)
    if count == 0:
        raise _refuse("MULTI_CHECK of 0 items", Status.MALFORMED, request_id, opcode)
    if count > MAX_ITEMS:
        raise _refuse(f"MULTI_CHECK of {count} items", Status.TOO_MANY_ITEMS, request_id, opcode)
    return tuple(_read_item(cursor, False) for _ in range(count))


def decode_request(frame: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Request:
    """Decodes one whole request frame as the daemon does.

    Raises InvalidRequest carrying the status the daemon answers with (MALFORMED,
    UNSUPPORTED_VERSION, FRAME_TOO_LARGE, UNKNOWN_OPCODE, TOO_MANY_ITEMS). Checks only
    the wire format, not limits such as max_key or a zero cost.
    """
    if len(frame) < HEADER_LEN:
        raise _refuse("frame shorter than a header", Status.MALFORMED, 0, 0)
    length, version, opcode, flags, request_id = read_header(frame)
    if length < HEADER_LEN - 4:
        raise _refuse(f"frame length {length}", Status.MALFORMED, request_id, opcode)
    if length > max_frame:
        raise _refuse(f"frame length {length}", Status.FRAME_TOO_LARGE, request_id, opcode)
    if version != VERSION:
        raise _refuse(f"version {version}", Status.UNSUPPORTED_VERSION, request_id, opcode)
    if length + 4 != len(frame):
        raise _refuse("frame length does not match its bytes", Status.MALFORMED, request_id, opcode)
    if opcode not in _NO_BODY and opcode not in _ITEM_BODY and opcode not in _LEASED_BODY \
            and opcode != Opcode.MULTI_CHECK:
        raise _refuse(f"opcode {opcode:#04x}", Status.UNKNOWN_OPCODE, request_id, opcode)
    if flags != 0 and not (opcode == Opcode.ACQUIRE and flags == DETACH):
        raise _refuse(f"request flags {flags:#06x}", Status.MALFORMED, request_id, opcode)
    cursor = _Cursor(frame, lambda message: _refuse(message, Status.MALFORMED, request_id, opcode))
    lease = cursor.unpack(_U64)[0] if opcode in _LEASED_BODY else 0
    items = _read_request_body(cursor, request_id, opcode)
    if not cursor.done():
        raise _refuse("bytes left over after the body", Status.MALFORMED, request_id, opcode)
    return Request(request_id, opcode, items, flags, lease)


class FrameSplitter:
    """Cuts a byte stream into whole frames; feed it whatever the socket returned."""

    def __init__(self, max_frame: int = MAX_RESPONSE_FRAME):
        self.max_frame = max_frame  # frames larger than this are a protocol error
        self._buffer = bytearray()  # bytes of the incomplete next frame

    def feed(self, data: bytes) -> list[bytes]:
        """Returns the frames completed by data (possibly none), in stream order.

        Raises ProtocolError when a length field is below 8 or above max_frame: the
        stream cannot be resynchronised and the connection must be dropped.
        """
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        available = len(buffer)
        while available - start >= 4:
            (length,) = _U32.unpack_from(buffer, start)
            if length < HEADER_LEN - 4 or length + 4 > self.max_frame:
                raise ProtocolError(f"frame length {length} is out of range")
            end = start + 4 + length
            if end > available:
                break
            frames.append(bytes(buffer[start:end]))
            start = end
        if start:
            del buffer[:start]
        return frames

    def pending(self) -> int:
        """Returns how many bytes of an incomplete frame are buffered."""
        return len(self._buffer)
