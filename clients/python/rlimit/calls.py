"""The frames each client call sends, shared by Client and AsyncClient."""

from __future__ import annotations

from collections.abc import Sequence

from .protocol import (
    MAX_ITEMS,
    Opcode,
    encode_acquire_request,
    encode_item_request,
    encode_lease_request,
    encode_multi_request,
)

Key = str | bytes  # keys are bytes on the wire; str is sent as UTF-8
CheckItem = tuple[str, Key, int]  # (policy, key, cost) of check_many
MAX_TOKEN_LEN = 1024  # AUTH: token bytes at most


def token_bytes(token: str | bytes | None) -> bytes | None:
    """Returns the wire bytes of a token (None: no token); raises ValueError unless 1..1024 bytes."""
    if token is None:
        return None
    data = token.encode() if isinstance(token, str) else bytes(token)
    if not 1 <= len(data) <= MAX_TOKEN_LEN:
        raise ValueError(f"a token has 1..{MAX_TOKEN_LEN} bytes, not {len(data)}")
    return data


def read_token(path: str) -> bytes:
    """Returns the token held by the file at path, as the daemon reads its token_file.

    One trailing newline (LF or CRLF) is stripped. Raises OSError if the file cannot
    be read, ValueError if what is left is not 1..1024 bytes.
    """
    with open(path, "rb") as file:
        data = file.read(MAX_TOKEN_LEN + 3)
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    token = token_bytes(data)
    assert token is not None
    return token


def auth_frame(request_id: int, token: bytes) -> bytes:
    """Encodes an AUTH request carrying token."""
    return encode_item_request(request_id, Opcode.AUTH, b"", token, 0)


def key_bytes(key: Key) -> bytes:
    """Returns the wire bytes of a key."""
    return key.encode() if isinstance(key, str) else bytes(key)


def item_frame(request_id: int, opcode: int, policy: str, key: Key, cost: int) -> bytes:
    """Encodes a one-item request; raises ValueError for what the wire cannot carry."""
    return encode_item_request(request_id, opcode, policy.encode(), key_bytes(key), cost)


def acquire_frame(request_id: int, policy: str, key: Key, slots: int, detach: bool) -> bytes:
    """Encodes an ACQUIRE of slots (DETACH flag if detach)."""
    return encode_acquire_request(request_id, policy.encode(), key_bytes(key), slots, detach)


def lease_frame(request_id: int, opcode: int, policy: str, key: Key, lease: int) -> bytes:
    """Encodes a RELEASE or RENEW of lease held under (policy, key)."""
    return encode_lease_request(request_id, opcode, lease, policy.encode(), key_bytes(key))


def leases_frame(request_id: int, policy: str, key: Key | None) -> bytes:
    """Encodes a LEASES of policy's key (None: every key of the policy)."""
    return encode_item_request(request_id, Opcode.LEASES, policy.encode(), key_bytes(key or b""), 0)


def multi_frame(request_id: int, items: Sequence[CheckItem]) -> bytes:
    """Encodes a MULTI_CHECK; raises ValueError unless there are 1..16 items."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise ValueError(f"check_many takes 1..{MAX_ITEMS} items, not {len(items)}")
    return encode_multi_request(
        request_id, [(policy.encode(), key_bytes(key), cost) for policy, key, cost in items]
    )


def next_id(request_id: int) -> int:
    """Returns the request id after request_id (wrapping at 2^32, skipping 0)."""
    return (request_id + 1) & 0xFFFFFFFF or 1
