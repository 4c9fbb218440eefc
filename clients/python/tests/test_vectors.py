"""The codec against proto/vectors/vectors.json, byte for byte, both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemons import VECTORS
from rlimit.decision import Decision, Lease, decision_of, lease_of, to_decision, to_lease
from rlimit.errors import InvalidRequest, ProtocolError, StatusError
from rlimit.protocol import (
    Item,
    Opcode,
    Request,
    Response,
    Result,
    Status,
    decode_plain,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    status_name,
)


def _load() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.fail(f"{VECTORS} is missing: the shared protocol vectors must be in the repository")
    document: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert document["version"] == 1
    return document


DOCUMENT = _load() if VECTORS.exists() else {"vectors": [], "max_frame": 16384}
VECTORS_BY_KIND: dict[str, list[dict[str, Any]]] = {"request": [], "refused": [], "response": []}
for _vector in DOCUMENT["vectors"]:
    _kind = "refused" if _vector["error"] else _vector["direction"]
    VECTORS_BY_KIND[_kind].append(_vector)


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [vector["name"] for vector in vectors]


def _opcode(value: str | int) -> int:
    return Opcode[value] if isinstance(value, str) else value


def _item(data: dict[str, Any]) -> Item:
    key = bytes.fromhex(data["key_hex"]) if "key_hex" in data else data["key"].encode()
    return Item(data["policy"], key, data["cost"])


def _request(data: dict[str, Any]) -> Request:
    items = tuple(_item(it) for it in data["items"])
    return Request(data["id"], _opcode(data["opcode"]), items, data.get("flags", 0), int(data.get("lease", "0")))


def _result(data: dict[str, Any]) -> Result:
    return Result(
        Status[data["status"]], data["flags"], data["limit"], data["remaining"],
        data["reset_after_ms"], data["retry_after_ms"], data["window_ms"],
    )


def _response(data: dict[str, Any]) -> Response:
    items = tuple(_result(item) for item in data.get("items", ()))
    return Response(data["id"], _opcode(data["opcode"]), _result(data["result"]), items, data.get("text"),
                    int(data.get("lease", "0")))


def test_vectors_are_there() -> None:
    document = _load()
    assert all(VECTORS_BY_KIND.values()), "expected requests, refused requests and responses"
    assert len(document["vectors"]) == sum(map(len, VECTORS_BY_KIND.values()))


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["request"], ids=_ids(VECTORS_BY_KIND["request"]))
def test_request_vector(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    expected = _request(vector["decoded"])
    assert encode_request(expected) == frame
    assert decode_request(frame, DOCUMENT["max_frame"]) == expected


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["refused"], ids=_ids(VECTORS_BY_KIND["refused"]))
def test_refused_request_vector(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    with pytest.raises(InvalidRequest) as caught:
        decode_request(frame, DOCUMENT["max_frame"])
    assert status_name(caught.value.status) == vector["error"]
    assert caught.value.request_id == int.from_bytes(frame[8:12], "big")


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["response"], ids=_ids(VECTORS_BY_KIND["response"]))
def test_response_vector(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    expected = _response(vector["decoded"])
    assert decode_response(frame) == expected
    assert encode_response(expected) == frame


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["response"], ids=_ids(VECTORS_BY_KIND["response"]))
def test_response_vector_as_decision(vector: dict[str, Any]) -> None:
    """Every result becomes a Decision with the same figures, or the StatusError of its name."""
    result = decode_response(bytes.fromhex(vector["hex"])).result
    expected = vector["decoded"]["result"]
    if expected["status"] in ("ALLOWED", "DENIED"):
        decision = to_decision(result)
        assert decision.allowed == (expected["status"] == "ALLOWED")
        assert (decision.limit, decision.remaining, decision.flags) == (
            expected["limit"], expected["remaining"], expected["flags"])
        assert decision.retry_after * 1000 == pytest.approx(expected["retry_after_ms"])
        assert decision.reset_after * 1000 == pytest.approx(expected["reset_after_ms"])
        assert decision.window * 1000 == pytest.approx(expected["window_ms"])
    else:
        with pytest.raises(StatusError) as caught:
            to_decision(result)
        assert caught.value.status == expected["status"]


_ITEM_ANSWERS = {"CHECK", "PEEK", "ADJUST", "RESET"}  # answers decision_of decodes


_LEASE_ANSWERS = {"ACQUIRE", "RELEASE", "RENEW"}  # answers lease_of decodes


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["response"], ids=_ids(VECTORS_BY_KIND["response"]))
def test_response_vector_as_lease(vector: dict[str, Any]) -> None:
    """A lease result becomes a Lease (the Decision's figures and the id), or its StatusError."""
    frame = bytes.fromhex(vector["hex"])
    response = decode_response(frame)
    if _opcode_name(response.opcode) not in _LEASE_ANSWERS:
        return
    expected = vector["decoded"]
    if expected["result"]["status"] not in ("ALLOWED", "DENIED"):
        with pytest.raises(StatusError) as caught:
            lease_of(frame)
        assert caught.value.status == expected["result"]["status"]
        return
    lease = lease_of(frame)
    assert isinstance(lease, Lease) and lease == to_lease(response)
    assert lease.lease == int(expected["lease"])
    assert Decision(*[getattr(lease, f) for f in Decision.__dataclass_fields__]) == to_decision(response.result)


def _opcode_name(opcode: int) -> str:
    return Opcode(opcode).name if opcode in Opcode._value2member_map_ else f"opcode {opcode}"


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["response"], ids=_ids(VECTORS_BY_KIND["response"]))
def test_response_vector_straight_to_decision(vector: dict[str, Any]) -> None:
    """decision_of (AsyncClient's path) gives what to_decision(decode_response()) gives."""
    frame = bytes.fromhex(vector["hex"])
    response = decode_response(frame)
    plain = decode_plain(frame)
    tailed = _opcode_name(response.opcode) in ("MULTI_CHECK", "POLICIES", "STATS", "TOP", "RELOAD", "LEASES",
                                               "ACQUIRE", "RELEASE", "RENEW")
    assert (plain is not None) == (not tailed)
    if plain is not None:
        assert (plain[4], plain[2], Result(*plain[5:])) == (response.id, response.opcode, response.result)
    if _opcode_name(response.opcode) not in _ITEM_ANSWERS:
        return
    try:
        expected: Decision | StatusError = to_decision(response.result)
    except StatusError as exc:
        expected = exc
    if isinstance(expected, Decision):
        assert decision_of(frame) == expected
    else:
        with pytest.raises(type(expected)):
            decision_of(frame)


@pytest.mark.parametrize("vector", VECTORS_BY_KIND["response"], ids=_ids(VECTORS_BY_KIND["response"]))
def test_truncated_or_padded_response_is_refused_by_decision_of(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    if _opcode_name(decode_response(frame).opcode) not in _ITEM_ANSWERS:
        return
    length = int.from_bytes(frame[:4], "big")
    padded = (length + 4).to_bytes(4, "big") + frame[4:] + bytes(4)
    for bad in (frame[:-1], frame[:-4], padded):
        assert decode_plain(bad) is None
        with pytest.raises(ProtocolError):
            decision_of(bad)
