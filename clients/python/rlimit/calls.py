"""The frames each client call sends, shared by Client and AsyncClient."""

from __future__ import annotations

from collections.abc import Sequence

from .protocol import MAX_ITEMS, encode_item_request, encode_multi_request

Key = str | bytes  # keys are bytes on the wire; str is sent as UTF-8
CheckItem = tuple[str, Key, int]  # (policy, key, cost) of check_many


def key_bytes(key: Key) -> bytes:
    """Returns the wire bytes of a key."""
    return key.encode() if isinstance(key, str) else bytes(key)


def item_frame(request_id: int, opcode: int, policy: str, key: Key, cost: int) -> bytes:
    """Encodes a one-item request; raises ValueError for what the wire cannot carry."""
    return encode_item_request(request_id, opcode, policy.encode(), key_bytes(key), cost)


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
