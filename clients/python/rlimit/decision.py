"""Decision: what a check answers, and how responses become decisions or errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError, status_error
from .protocol import Flag, Response, Result, Status, decode_plain, decode_response

# Flag bits as plain ints: IntFlag arithmetic costs microseconds per request.
_SHADOW, _FALLBACK, _EXEMPT, _BLOCKED, _CACHED, _CAPPED = (
    int(Flag.SHADOW), int(Flag.FALLBACK), int(Flag.EXEMPT), int(Flag.BLOCKED), int(Flag.CACHED),
    int(Flag.CAPPED))


@dataclass(frozen=True, slots=True)
class Decision:
    """The daemon's answer for one (policy, key, cost); times are in seconds."""

    allowed: bool  # the request may pass (also true for RESET's OK)
    limit: int  # admitted per window of the binding rate (bucket capacity for buckets)
    remaining: int  # units still available after this decision
    reset_after: float  # seconds until the key's usage is back to zero
    retry_after: float  # when denied: seconds until the same request would pass; else 0
    window: float  # the binding rate's window, in seconds
    flags: int = 0  # protocol.Flag bits

    @property
    def shadow(self) -> bool:
        """Shadow mode: the request would have been denied, and was allowed."""
        return bool(self.flags & _SHADOW)

    @property
    def fallback(self) -> bool:
        """The store was down; the policy's on_store_error answered."""
        return bool(self.flags & _FALLBACK)

    @property
    def exempt(self) -> bool:
        """The key is in the policy's exempt list: allowed, not counted."""
        return bool(self.flags & _EXEMPT)

    @property
    def blocked(self) -> bool:
        """The key is in the policy's block list: always denied."""
        return bool(self.flags & _BLOCKED)

    @property
    def cached(self) -> bool:
        """Denied from the daemon's over-limit cache."""
        return bool(self.flags & _CACHED)

    @property
    def capped(self) -> bool:
        """An ADJUST charge was held at the ceiling: usage stops at twice the capacity."""
        return bool(self.flags & _CAPPED)


@dataclass(frozen=True, slots=True)
class Lease(Decision):
    """The answer to ACQUIRE, RELEASE or RENEW: a Decision plus the lease id.

    ACQUIRE allowed: `lease` is the new lease's id (0 when nothing is held: an exempt key,
    or a shadow-mode policy letting a would-be denial through); RELEASE/RENEW: the id
    named. `limit` is the key's slot limit, `remaining` its free slots after the
    operation, `window` the lease duration; allowed: `reset_after` is when this lease
    expires unless renewed; denied: `retry_after` is when the earliest held lease would
    expire (an upper bound: a RELEASE frees a slot sooner).
    """

    lease: int = 0  # the lease id; 0: none


_ALLOWED, _DENIED = int(Status.ALLOWED), int(Status.DENIED)


def _decision(status: int, flags: int, limit: int, remaining: int, reset_ms: int, retry_ms: int,
              window_ms: int) -> Decision:
    if status > _DENIED:
        raise status_error(status)
    return Decision(status == _ALLOWED, limit, remaining, reset_ms / 1000, retry_ms / 1000, window_ms / 1000, flags)


def to_decision(result: Result) -> Decision:
    """Returns the Decision of an ALLOWED/OK or DENIED result; raises its StatusError otherwise."""
    return _decision(result.status, result.flags, result.limit, result.remaining, result.reset_after_ms,
                     result.retry_after_ms, result.window_ms)


def decision_of(frame: bytes) -> Decision:
    """Returns the Decision of a whole response frame to CHECK, PEEK, ADJUST or RESET.

    Raises its StatusError, or ProtocolError if the frame is malformed. The same as
    to_decision(decode_response(frame).result), without the Response and Result.
    """
    plain = decode_plain(frame)
    if plain is None:
        return to_decision(decode_response(frame).result)  # raises ProtocolError
    return _decision(*plain[5:])


def to_lease(response: Response) -> Lease:
    """Returns the Lease of an answer to ACQUIRE, RELEASE or RENEW; raises its StatusError otherwise."""
    result = response.result
    if result.status > _DENIED:
        raise status_error(result.status)
    return Lease(result.status == _ALLOWED, result.limit, result.remaining, result.reset_after_ms / 1000,
                 result.retry_after_ms / 1000, result.window_ms / 1000, result.flags, response.lease)


def lease_of(frame: bytes) -> Lease:
    """Returns the Lease of a whole response frame to ACQUIRE, RELEASE or RENEW."""
    return to_lease(decode_response(frame))


def to_multi(response: Response, count: int) -> tuple[Decision, list[Decision]]:
    """Returns (overall, per item) of a MULTI_CHECK response to `count` items.

    Raises the overall StatusError, or ProtocolError if the item count is wrong.
    """
    overall = to_decision(response.result)
    if len(response.items) != count:
        raise ProtocolError(f"MULTI_CHECK of {count} items answered with {len(response.items)}")
    return overall, [to_decision(item) for item in response.items]


def to_json(response: Response) -> Any:
    """Returns the parsed JSON text of an admin response; raises its StatusError first."""
    if response.result.status > Status.DENIED:
        raise status_error(response.result.status, response.text or "")
    try:
        return json.loads(response.text or "null")
    except ValueError as exc:
        raise ProtocolError(f"admin text is not JSON: {exc}") from None
