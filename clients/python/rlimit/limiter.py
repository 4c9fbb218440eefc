"""Limiter: asks rlimitd about HTTP requests and rides out its outages.

Shared by RateLimitMiddleware and the RateLimit dependency; no web framework here.
check() returns the Decision, or None when the daemon cannot decide (unreachable,
too slow, failing, or refusing the question), and the caller applies `on_error`:
"allow" lets the request through without limit headers, "deny" answers 503.

An outage is logged once, as a warning on the `rlimit` logger when the first call
fails, and once more when a call succeeds again; in between, for `retry_interval`
seconds after each failure, no call is made at all, so a hung daemon does not add
its timeout to every request. A policy the daemon does not know (or a bad key or
cost) is logged once per policy and status as an error. Denials are logged at INFO
on `rlimit.denied` with policy, key and path.
"""

from __future__ import annotations

import hashlib
import logging
import time

from .aio import AsyncClient
from .decision import Decision
from .errors import CostTooLarge, RateLimitError, StatusError

log = logging.getLogger("rlimit")
denied_log = logging.getLogger("rlimit.denied")

ON_ERROR = ("allow", "deny")
MAX_PLAIN_KEY = 256  # longer keys are sent as their SHA-256 (the daemon's max_key is 512)

# A request whose cost exceeds what the policy can ever admit: denied, no retry helps.
NEVER = Decision(allowed=False, limit=0, remaining=0, reset_after=0.0, retry_after=0.0, window=0.0)

# Status errors that say the question was wrong (config or key), not that the daemon is down.
_MISCONFIGURED = frozenset(
    {"UNKNOWN_POLICY", "KEY_TOO_LONG", "KEY_EMPTY", "COST_INVALID", "NOT_PERMITTED"}
)


class Limiter:
    """One daemon client plus its health, and what to do when it cannot answer."""

    def __init__(self, client: AsyncClient, on_error: str = "allow", retry_interval: float = 1.0) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        self.client = client  # the daemon connection
        self.on_error = on_error  # "allow" or "deny" while the daemon cannot decide
        self.retry_interval = retry_interval  # seconds without calls after a failure
        self._down_since: float | None = None  # monotonic time the outage began
        self._retry_at = 0.0  # no call before this monotonic time while down
        self._undecided = 0  # requests left to on_error during this outage
        self._reported: set[tuple[str, str]] = set()  # (policy, status) errors logged

    @property
    def down(self) -> bool:
        """Whether the daemon is in an outage (its last call failed)."""
        return self._down_since is not None

    async def check(self, policy: str, key: str | bytes, cost: int = 1, path: str = "") -> Decision | None:
        """Returns the daemon's decision, NEVER for an impossible cost, None if it cannot decide."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            self._undecided += 1
            return None
        wire_key = _wire_key(key)
        try:
            decision = await self.client.check(policy, wire_key, cost)
        except CostTooLarge:
            decision = NEVER
        except StatusError as exc:
            if exc.status not in _MISCONFIGURED:
                return self._failed(exc)
            self._misconfigured(policy, exc)
            return None
        except RateLimitError as exc:
            return self._failed(exc)
        if self._down_since is not None:
            self._recovered()
        if not decision.allowed and denied_log.isEnabledFor(logging.INFO):
            denied_log.info("denied policy=%s key=%s path=%s retry_after=%.3f",
                            policy, _printable(wire_key), path, decision.retry_after)
        return decision

    def _failed(self, exc: RateLimitError) -> None:
        now = time.monotonic()
        self._retry_at = now + self.retry_interval
        self._undecided += 1
        if self._down_since is None:
            self._down_since = now
            action = "letting requests through" if self.on_error == "allow" else "answering 503"
            log.warning("rlimitd at %s cannot decide (%s: %s); %s until it answers again",
                        self.client.address, type(exc).__name__, exc, action)
        return None

    def _recovered(self) -> None:
        assert self._down_since is not None
        log.warning("rlimitd at %s answers again after %.1f s; %d requests were %s meanwhile",
                    self.client.address, time.monotonic() - self._down_since, self._undecided,
                    "let through" if self.on_error == "allow" else "refused")
        self._down_since = None
        self._undecided = 0

    def _misconfigured(self, policy: str, exc: StatusError) -> None:
        if (policy, exc.status) not in self._reported:
            self._reported.add((policy, exc.status))
            log.error("rlimitd at %s refuses policy %r: %s (on_error=%s applies)",
                      self.client.address, policy, exc.status, self.on_error)


def _wire_key(key: str | bytes) -> bytes:
    data = key.encode() if isinstance(key, str) else key
    if len(data) <= MAX_PLAIN_KEY:
        return data
    return b"sha256:" + hashlib.sha256(data).hexdigest().encode()


def _printable(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")
