"""The codec on hand-made frames (the shared vectors are in test_vectors.py)."""

from __future__ import annotations

import pytest

from rlimit.errors import InvalidRequest, ProtocolError
from rlimit.protocol import (
    FrameSplitter,
    Item,
    Opcode,
    Request,
    Response,
    Result,
    Status,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    status_name,
)

# PROTOCOL.md's example: CHECK api/user1 cost 1, id 42, and its answer.
CHECK_API_USER1 = bytes.fromhex("00000017 01 02 0000 0000002a 00000001 03 0005 617069 7573657231")
ALLOWED_99 = bytes.fromhex(
    "00000020 01 02 0000 0000002a 00 00 0000 00000064 00000063 00000258 00000000 0000ea60"
)


def test_check_request_bytes() -> None:
    request = Request(42, Opcode.CHECK, (Item("api", b"user1", 1),))
    assert encode_request(request) == CHECK_API_USER1
    assert decode_request(CHECK_API_USER1) == request


def test_allowed_response_bytes() -> None:
    response = decode_response(ALLOWED_99)
    assert response == Response(42, Opcode.CHECK, Result(Status.ALLOWED, 0, 100, 99, 600, 0, 60000))
    assert encode_response(response) == ALLOWED_99


def test_adjust_cost_is_signed() -> None:
    frame = encode_request(Request(7, Opcode.ADJUST, (Item("api", b"k", -3),)))
    assert frame[12:16] == bytes.fromhex("fffffffd")
    assert decode_request(frame).items[0].cost == -3


def test_multi_check_roundtrip() -> None:
    items = (Item("a", b"x", 1), Item("b", b"\xff\x00", 2))
    frame = encode_request(Request(9, Opcode.MULTI_CHECK, items))
    assert frame[12:14] == b"\x02\x00"
    assert decode_request(frame).items == items
    response = Response(9, Opcode.MULTI_CHECK, Result(Status.DENIED, 0, 1, 0, 5, 5, 10),
                        (Result(Status.ALLOWED, 0, 3, 2, 1, 0, 10), Result(Status.DENIED, 0, 1, 0, 5, 5, 10)))
    encoded = encode_response(response)
    assert len(encoded) == 12 + 24 + 4 + 2 * 24
    assert decode_response(encoded) == response


def test_admin_text_roundtrip() -> None:
    response = Response(3, Opcode.POLICIES, Result(Status.OK), text='{"api":{}}')
    encoded = encode_response(response)
    assert encoded[36:40] == (10).to_bytes(4, "big")
    assert decode_response(encoded) == response


@pytest.mark.parametrize(
    "frame",
    [
        ALLOWED_99[:-1],  # shorter than its length says
        ALLOWED_99 + b"\0",  # longer
        b"\0\0\0\x1f" + ALLOWED_99[4:-1],  # a result cut short, length consistent
        b"\0\0\0\x21" + ALLOWED_99[4:] + b"\0",  # one byte left over
        ALLOWED_99[:4] + b"\x02" + ALLOWED_99[5:],  # version 2
        bytes.fromhex("00000004 01020000"),  # length below 8
        # MULTI_CHECK with count 17
        bytes.fromhex("00000024 01 06 0000 00000001") + bytes(24) + bytes.fromhex("11000000"),
        # POLICIES whose text is not UTF-8
        bytes.fromhex("00000025 01 20 0000 00000001") + bytes(24) + bytes.fromhex("00000001 ff"),
    ],
)
def test_malformed_responses_raise(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_response(frame)


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (CHECK_API_USER1[:4] + b"\x02" + CHECK_API_USER1[5:], Status.UNSUPPORTED_VERSION),
        (CHECK_API_USER1[:5] + b"\x13" + CHECK_API_USER1[6:], Status.UNKNOWN_OPCODE),  # reserved
        (CHECK_API_USER1[:6] + b"\x00\x01" + CHECK_API_USER1[8:], Status.MALFORMED),
        (b"\0\0\0\x18" + CHECK_API_USER1[4:] + b"!", Status.MALFORMED),
        (b"\0\0\0\x16" + CHECK_API_USER1[4:-1], Status.MALFORMED),
        (bytes.fromhex("0000000a 01 06 0000 00000005 0000"), Status.MALFORMED),
        (bytes.fromhex("0000000a 01 06 0000 00000005 1100"), Status.TOO_MANY_ITEMS),
        (bytes.fromhex("00004001 01 02 0000 00000005"), Status.FRAME_TOO_LARGE),
    ],
)
def test_refused_requests_carry_their_status(frame: bytes, status: Status) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_request(frame)
    assert caught.value.status == status
    assert caught.value.request_id == int.from_bytes(frame[8:12], "big")


@pytest.mark.parametrize(
    "request_",
    [
        Request(1, Opcode.CHECK, (Item("p" * 256, b"k"),)),
        Request(1, Opcode.CHECK, (Item("p", b"k" * 65536),)),
        Request(1, Opcode.CHECK, (Item("p", b"k", -1),)),
        Request(1, Opcode.ADJUST, (Item("p", b"k", 1 << 31),)),
        Request(1, Opcode.CHECK, ()),
    ],
)
def test_unencodable_requests_raise_value_error(request_: Request) -> None:
    with pytest.raises(ValueError):
        encode_request(request_)


def test_splitter_reassembles_byte_by_byte() -> None:
    stream = ALLOWED_99 + CHECK_API_USER1 + ALLOWED_99
    splitter = FrameSplitter()
    frames = [frame for byte in stream for frame in splitter.feed(bytes([byte]))]
    assert frames == [ALLOWED_99, CHECK_API_USER1, ALLOWED_99]
    assert splitter.pending() == 0


def test_splitter_keeps_a_partial_frame() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(ALLOWED_99 + ALLOWED_99[:5]) == [ALLOWED_99]
    assert splitter.pending() == 5
    assert splitter.feed(ALLOWED_99[5:]) == [ALLOWED_99]


@pytest.mark.parametrize("length", [0, 7, 1 << 24])
def test_splitter_refuses_impossible_lengths(length: int) -> None:
    with pytest.raises(ProtocolError):
        FrameSplitter().feed(length.to_bytes(4, "big") + b"\1" * 8)


def test_status_names() -> None:
    assert status_name(0) == "ALLOWED"
    assert status_name(19) == "UNKNOWN_POLICY"
    assert status_name(2) == "UNKNOWN"


def test_auth_request_bytes_and_statuses() -> None:
    from rlimit.calls import auth_frame

    frame = auth_frame(9, b"tok")
    assert frame == bytes.fromhex("00000012 01 07 0000 00000009 00000000 00 0003 746f6b")
    assert decode_request(frame) == Request(9, Opcode.AUTH, (Item("", b"tok", 0),))
    assert (status_name(32), status_name(33)) == ("AUTH_REQUIRED", "AUTH_FAILED")


def test_capped_flag() -> None:
    from rlimit.decision import decision_of

    capped = encode_response(Response(5, Opcode.ADJUST, Result(Status.DENIED, 0x0020, 5, 0, 1000, 1000, 1000)))
    decision = decision_of(capped)
    assert decision.capped and not decision.allowed and not decision.blocked
    assert not decision_of(ALLOWED_99).capped
