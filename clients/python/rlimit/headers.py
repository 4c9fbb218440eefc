"""HTTP rate-limit headers and the 429 body of a Decision. Pure standard library.

The contract is proto/HEADERS.md (the daemon's /check and /auth follow it too, and both
test against proto/vectors/headers.json):

    Retry-After: 2                  (denials only; whole seconds rounded up, at least 1)
    X-RateLimit-Limit: 100          X-RateLimit-Remaining: 0    X-RateLimit-Reset: 37
    RateLimit-Policy: "api";q=100;w=60                          RateLimit: "api";r=0;t=37

Times are whole seconds, rounded up: a client that waits Retry-After seconds is
never early. `t`/X-RateLimit-Reset is when the full quota is back. The five limit
headers only when the figures are the key's counted usage: not for an exempt or
blocked key, nor for a fallback answer (the daemon's store was down). The policy
name is a structured-field string: a quote or backslash escaped by a backslash, `%`
and every byte outside printable ASCII as %xx.
"""

from __future__ import annotations

import json
import math

from .decision import Decision


def seconds(value: float) -> int:
    """Returns value (seconds) rounded up to a whole second."""
    return math.ceil(value)


# protocol.Flag bits as plain ints (IntFlag arithmetic is slow): figures not counted.
_FALLBACK, _EXEMPT, _BLOCKED = 0x0001, 0x0008, 0x0010
_UNCOUNTED = _FALLBACK | _EXEMPT | _BLOCKED

# How each byte of a policy name is written inside the quotes.
_WRITTEN = tuple(
    "\\" + chr(b) if b in (0x22, 0x5C) else f"%{b:02x}" if b == 0x25 or b < 0x20 or b > 0x7E else chr(b)
    for b in range(256)
)
_MAX_NAMES = 1024  # policy names whose written form is remembered
_names: dict[str, str] = {}


def policy_sf(policy: str) -> str:
    """Returns policy as RateLimit-Policy and RateLimit write it (proto/HEADERS.md)."""
    written = _names.get(policy)
    if written is None:
        raw = policy.encode("utf-8", "surrogateescape")  # the bytes the daemon is sent
        written = '"' + "".join([_WRITTEN[b] for b in raw]) + '"'
        if len(_names) >= _MAX_NAMES:
            _names.clear()
        _names[policy] = written
    return written


def limit_headers(policy: str, decision: Decision) -> list[tuple[str, str]]:
    """Returns the five limit headers of decision (none unless its figures were counted)."""
    if decision.flags & _UNCOUNTED or decision.limit == 0:
        return []
    name = policy_sf(policy)
    reset = str(seconds(decision.reset_after))
    remaining = str(decision.remaining)
    limit = str(decision.limit)
    return [
        ("X-RateLimit-Limit", limit),
        ("X-RateLimit-Remaining", remaining),
        ("X-RateLimit-Reset", reset),
        ("RateLimit-Policy", f"{name};q={limit};w={seconds(decision.window)}"),
        ("RateLimit", f"{name};r={remaining};t={reset}"),
    ]


_MAX_FIXED = 1024  # (policy, limit, window) whose header parts are remembered
_fixed: dict[tuple[str, int, int], tuple[bytes, bytes, bytes]] = {}


def raw_limit_headers(policy: str, decision: Decision) -> list[tuple[bytes, bytes]]:
    """Returns limit_headers as ASGI headers: lower-case names, encoded values."""
    limit = decision.limit
    if decision.flags & _UNCOUNTED or limit == 0:
        return []
    slot = (policy, limit, seconds(decision.window))
    fixed = _fixed.get(slot)
    if fixed is None:  # the parts that depend on the policy only
        quoted = policy_sf(policy).encode("ascii")
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
        headers.insert(0, ("Retry-After", str(max(1, seconds(decision.retry_after)))))
    return headers


def decision_headers(policy: str, decision: Decision) -> list[tuple[str, str]]:
    """Returns the headers proto/HEADERS.md gives decision: denied_headers or limit_headers."""
    return limit_headers(policy, decision) if decision.allowed else denied_headers(policy, decision)


def denied_body(policy: str, decision: Decision) -> dict[str, object]:
    """Returns the JSON body of a 429: retry_after in seconds (ms precision), null if never."""
    retry_after = round(decision.retry_after, 3) if decision.limit else None
    return {"error": "rate_limited", "policy": policy, "retry_after": retry_after}


def json_bytes(value: object) -> bytes:
    """Returns compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()
