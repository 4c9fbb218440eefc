"""The example FastAPI app under the two middlewares rlimitd's is measured against.

    RLIMIT_BENCH_PEER=limits  uvicorn peer_apps:app     (PYTHONPATH: clients/python and this folder)
    RLIMIT_BENCH_PEER=redis RLIMIT_BENCH_REDIS_SOCKET=/path/redis.sock uvicorn peer_apps:app

Both are pure ASGI middlewares, added to examples/app.py (imported with RLIMIT_DISABLE=1,
so without rlimitd's) the way rlimit.fastapi.RateLimitMiddleware is, keyed by the client
address as it is by default, on the policy RLIMIT_POLICY (default "bench") with
RLIMIT_BENCH_LIMIT (default 1,000,000,000) requests per second, so nothing is denied. An
allowed response carries the same five limit headers as rlimitd's middleware gives, a
denied one is the same 429 (Retry-After, the headers, the JSON body):

    limits  slowapi's engine: the `limits` library's FixedWindowRateLimiter (slowapi's
            default strategy) on MemoryStorage, in the process: hit(), then
            get_window_stats() for the headers, as slowapi does with headers enabled.
            (Debian's limits 2.8 expires MemoryStorage's keys from a threading.Timer that
            it starts again every 10 ms while keys exist: ~100 thread starts a second,
            each holding the event loop until the new thread runs, ~1 ms each on a busy
            machine. That is part of what this peer costs, as it is for slowapi's
            memory:// storage; hit() + get_window_stats() alone take ~5 us.)
    redis   the usual hand-written Redis limiter: a fixed window counter per client,
            redis.asyncio INCR of "<policy>:<address>:<window>" and, when that created the
            key, EXPIRE; one Redis round trip per request (two on a window's first).

Used by bench_python.py's app parts (make bench); not part of the rlimit package.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

os.environ["RLIMIT_DISABLE"] = "1"  # the example app without rlimitd's middleware

from examples.app import app  # noqa: E402

Scope = dict[str, Any]


def limit_headers(policy: str, limit: int, window: int, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    """The headers rlimit's middleware puts on a response, as ASGI raw headers."""
    quoted = f'"{policy}"'.encode()
    limit_b, remaining_b, reset_b = str(limit).encode(), str(remaining).encode(), str(reset).encode()
    return [
        (b"x-ratelimit-limit", limit_b),
        (b"x-ratelimit-remaining", remaining_b),
        (b"x-ratelimit-reset", reset_b),
        (b"ratelimit-policy", b"%s;q=%s;w=%d" % (quoted, limit_b, window)),
        (b"ratelimit", b"%s;r=%s;t=%s" % (quoted, remaining_b, reset_b)),
    ]


async def send_denied(send: Any, policy: str, headers: list[tuple[bytes, bytes]], retry_after: float) -> None:
    """Sends the 429 rlimit's middleware sends."""
    body = json.dumps({"error": "rate_limited", "policy": policy, "retry_after": round(retry_after, 3)},
                      separators=(",", ":")).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
             (b"retry-after", str(math.ceil(retry_after)).encode()), *headers]
    await send({"type": "http.response.start", "status": 429, "headers": start})
    await send({"type": "http.response.body", "body": body})


def with_headers(send: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    """send, adding headers to the response start."""

    async def send_with_headers(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return send_with_headers


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


class LimitsMiddleware:
    """`limits` (slowapi's engine) in the process: fixed window on MemoryStorage."""

    def __init__(self, app: Any, policy: str, limit: int, window: int) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        self.app = app
        self.policy, self.limit, self.window = policy, limit, window
        self.storage = MemoryStorage()  # the limiter holds it by a weak reference only
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.item = RateLimitItemPerSecond(limit, window)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = client_address(scope)
        allowed = self.limiter.hit(self.item, self.policy, key)
        reset_at, remaining = self.limiter.get_window_stats(self.item, self.policy, key)
        wait = max(0.0, reset_at - time.time())
        headers = limit_headers(self.policy, self.limit, self.window, remaining, math.ceil(wait))
        if not allowed:
            await send_denied(send, self.policy, headers, wait)
            return
        await self.app(scope, receive, with_headers(send, headers))


class RedisMiddleware:
    """A fixed window counter in Redis: INCR, and EXPIRE when the INCR created the key."""

    def __init__(self, app: Any, socket_path: str, policy: str, limit: int, window: int) -> None:
        import redis.asyncio

        self.app = app
        self.policy, self.limit, self.window = policy, limit, window
        self.redis = redis.asyncio.Redis(unix_socket_path=socket_path)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = time.time()
        window_index = int(now) // self.window
        key = f"{self.policy}:{client_address(scope)}:{window_index}"
        count = await self.redis.incr(key)
        if count == 1:
            await self.redis.expire(key, self.window)
        wait = (window_index + 1) * self.window - now
        headers = limit_headers(self.policy, self.limit, self.window, max(0, self.limit - count), math.ceil(wait))
        if count > self.limit:
            await send_denied(send, self.policy, headers, wait)
            return
        await self.app(scope, receive, with_headers(send, headers))


def _add_peer() -> None:
    peer = os.environ.get("RLIMIT_BENCH_PEER")
    policy = os.environ.get("RLIMIT_POLICY", "bench")
    limit = int(os.environ.get("RLIMIT_BENCH_LIMIT", "1000000000"))
    if peer == "limits":
        app.add_middleware(LimitsMiddleware, policy=policy, limit=limit, window=1)
    elif peer == "redis":
        app.add_middleware(RedisMiddleware, socket_path=os.environ["RLIMIT_BENCH_REDIS_SOCKET"], policy=policy,
                           limit=limit, window=1)
    else:
        raise SystemExit(f"RLIMIT_BENCH_PEER must be limits or redis, not {peer!r}")


_add_peer()

__all__ = ["app"]
