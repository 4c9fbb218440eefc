"""HTTP rate-limit headers and the 429 body of a Decision. Pure standard library.

    X-RateLimit-Limit: 100          X-RateLimit-Remaining: 0    X-RateLimit-Reset: 37
    RateLimit-Policy: "api";q=100;w=60                          RateLimit: "api";r=0;t=37
    Retry-After: 2                  (denials only)

Times are whole seconds, rounded up: a client that waits Retry-After seconds is
never early. `t`/X-RateLimit-Reset is when the full quota is back.
"""

from __future__ import annotations

import json
import math

from .decision import Decision


def seconds(value: float) -> int:
    """Returns value (seconds) rounded up to a whole second."""
    return math.ceil(value)


def limit_headers(policy: str, decision: Decision) -> list[tuple[str, str]]:
    """Returns the headers describing the limit after decision (none for an exempt key)."""
    if decision.exempt or decision.limit == 0:
        return []
    reset = str(seconds(decision.reset_after))
    remaining = str(decision.remaining)
    limit = str(decision.limit)
    return [
        ("X-RateLimit-Limit", limit),
        ("X-RateLimit-Remaining", remaining),
        ("X-RateLimit-Reset", reset),
        ("RateLimit-Policy", f'"{policy}";q={limit};w={seconds(decision.window)}'),
        ("RateLimit", f'"{policy}";r={remaining};t={reset}'),
    ]


_EXEMPT = 0x0008  # protocol.Flag.EXEMPT, as a plain int (IntFlag arithmetic is slow)
_MAX_FIXED = 1024  # (policy, limit, window) whose header parts are remembered
_fixed: dict[tuple[str, int, int], tuple[bytes, bytes, bytes]] = {}


def raw_limit_headers(policy: str, decision: Decision) -> list[tuple[bytes, bytes]]:
    """Returns limit_headers as ASGI headers: lower-case names, encoded values."""
    limit = decision.limit
    if decision.flags & _EXEMPT or limit == 0:
        return []
    slot = (policy, limit, seconds(decision.window))
    fixed = _fixed.get(slot)
    if fixed is None:  # the parts that depend on the policy only
        quoted = f'"{policy}"'.encode()
        limit_bytes = str(limit).encode()
        fixed = (limit_bytes, b"%s;q=%s;w=%s" % (quoted, limit_bytes, str(slot[2]).encode()), quoted + b";r=")
        if len(_fixed) >= _MAX_FIXED:
            _fixed.clear()
        _fixed[slot] = fixed
    limit_bytes, policy_value, rate_prefix = fixed
    reset = str(seconds(decision.reset_after)).encode()
    remaining = str(decision.remaining).encode()
    return [
        (b"x-ratelimit-limit", limit_bytes),
        (b"x-ratelimit-remaining", remaining),
        (b"x-ratelimit-reset", reset),
        (b"ratelimit-policy", policy_value),
        (b"ratelimit", rate_prefix + remaining + b";t=" + reset),
    ]


def denied_headers(policy: str, decision: Decision) -> list[tuple[str, str]]:
    """Returns the headers of a 429: Retry-After (unless no retry can pass) and the limit."""
    headers = limit_headers(policy, decision)
    if decision.limit:
        headers.insert(0, ("Retry-After", str(seconds(decision.retry_after))))
    return headers


def denied_body(policy: str, decision: Decision) -> dict[str, object]:
    """Returns the JSON body of a 429: retry_after in seconds (ms precision), null if never."""
    retry_after = round(decision.retry_after, 3) if decision.limit else None
    return {"error": "rate_limited", "policy": policy, "retry_after": retry_after}


def json_bytes(value: object) -> bytes:
    """Returns compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()
