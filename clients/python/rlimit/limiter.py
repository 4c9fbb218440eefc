"""Limiter: asks rlimitd about HTTP requests and rides out its outages.

Shared by RateLimitMiddleware and the RateLimit dependency; no web framework here.
check() returns the Decision; None when the daemon cannot decide this request, and
the caller applies `on_error` ("allow": the request goes through without limit
headers, "deny": 503); or raises Misconfigured when the question itself is wrong,
and the caller answers 500 whatever on_error says. What each answer means:

    connection-level failure (ConnectError, Timeout, ConnectionLost, ProtocolError):
        an outage: None now, and None without asking for `retry_interval` seconds
    STORE_UNAVAILABLE, STORE_FULL, BUSY, INTERNAL:
        None for this request only; the next request asks the daemon again
    COST_TOO_LARGE: NEVER (denied, no retry helps)
    any other status (UNKNOWN_POLICY, KEY_*, COST_INVALID, NOT_PERMITTED, AUTH_*, ...):
        Misconfigured for this request only

Concurrency policies: check() of a policy the daemon answers POLICY_KIND for is
remembered as a concurrency policy and ACQUIREd instead (and the reverse), so a
rule names a policy whatever its kind; the answer is then a Lease, whose `lease`
(when not 0) the caller must release() once the response is sent. release() never
raises: a failure is logged (the lease then ends at expiry, or at once if the
connection that took it closed).

So one request's error never changes another request's answer: a key already over
its limit stays denied while other keys get errors. An outage is logged once, as a
warning on the `rlimit` logger when the first call fails, and once more when a call
succeeds again. Per-request statuses are logged on `rlimit` at most once a minute per
(policy, status), with how many occurred: WARNING for the transient ones, ERROR for
the rest. Denials are logged at INFO on `rlimit.denied` with policy, key and path,
each quoted with backslash escapes, so a key cannot forge a log line or a field.
"""

from __future__ import annotations

import hashlib
import logging
import time

import asyncio

from .aio import AsyncClient
from .decision import Decision, Lease
from .errors import CostTooLarge, LeaseUnknown, PolicyKind, RateLimitError, StatusError
from .leases import in_background

log = logging.getLogger("rlimit")
denied_log = logging.getLogger("rlimit.denied")

ON_ERROR = ("allow", "deny")
MAX_PLAIN_KEY = 256  # longer keys are sent hashed (the daemon's max_key is 512 by default)
REPORT_INTERVAL = 60.0  # seconds between two log lines of one (policy, status)
_MAX_REPORTED = 1024  # (policy, status) pairs remembered; policy names may come from callables

# A request whose cost exceeds what the policy can ever admit: denied, no retry helps.
NEVER = Decision(allowed=False, limit=0, remaining=0, reset_after=0.0, retry_after=0.0, window=0.0)

# Statuses that say the daemon cannot decide this one request now; on_error applies to it.
TRANSIENT = frozenset({"STORE_UNAVAILABLE", "STORE_FULL", "BUSY", "INTERNAL"})

# check(..., switch=False) of a policy found to be a concurrency policy: nothing asked of it yet.
CONCURRENCY = Decision(allowed=False, limit=0, remaining=0, reset_after=0.0, retry_after=0.0, window=0.0)


class Misconfigured(RateLimitError):
    """The daemon refused the question (policy, key, cost, permission, token): a 500."""

    def __init__(self, policy: str, error: StatusError) -> None:
        super().__init__(f"rlimitd refuses policy {policy!r}: {error.status}")
        self.policy = policy  # the policy asked about
        self.status = error.status  # the status name, e.g. "UNKNOWN_POLICY"


class Limiter:
    """One daemon client plus its health, and what to do when it cannot answer."""

    def __init__(self, client: AsyncClient, on_error: str = "allow", retry_interval: float = 1.0) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        self.client = client  # the daemon connection
        self.on_error = on_error  # "allow" or "deny" while the daemon cannot decide
        self.retry_interval = retry_interval  # seconds without calls after a connection failure
        self._down_since: float | None = None  # monotonic time the outage began
        self._retry_at = 0.0  # no call before this monotonic time while down
        self._undecided = 0  # requests left to on_error during this outage
        self._reports: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last logged, since then)
        self.leased: set[str] = set()  # policies the daemon said are concurrency policies

    @property
    def down(self) -> bool:
        """Whether the daemon is in an outage (its last call failed at the connection level)."""
        return self._down_since is not None

    async def check(self, policy: str, key: str | bytes, cost: int = 1, path: str = "",
                    switch: bool | None = True) -> Decision | None:
        """Returns the daemon's decision, NEVER for an impossible cost, None if it cannot decide.

        Of a concurrency policy: acquire()'s Lease (switch=False: CONCURRENCY, nothing
        asked; None: Misconfigured). Raises Misconfigured when the daemon refuses the
        question (module doc).
        """
        if policy in self.leased:
            if switch is None:
                raise Misconfigured(policy, PolicyKind())
            return await self.acquire(policy, key, cost, path, switch) if switch else CONCURRENCY
        if self._down_since is not None and time.monotonic() < self._retry_at:
            self._undecided += 1
            return None
        wire_key = wire_key_of(key)
        try:
            decision = await self.client.check(policy, wire_key, cost)
        except CostTooLarge:
            decision = NEVER
        except PolicyKind as exc:
            if switch is None:  # acquire() was told the reverse: a daemon answering nonsense
                return self._refused(policy, exc)
            self.leased.add(policy)
            return await self.acquire(policy, key, cost, path, False) if switch else CONCURRENCY
        except StatusError as exc:
            return self._refused(policy, exc)
        except RateLimitError as exc:
            return self._failed(exc)
        if self._down_since is not None:
            self._recovered()
        if not decision.allowed and denied_log.isEnabledFor(logging.INFO):
            denied_log.info("denied policy=%s key=%s path=%s retry_after=%.3f",
                            quoted(policy), quoted(wire_key), quoted(path), decision.retry_after)
        return decision

    async def acquire(self, policy: str, key: str | bytes, slots: int = 1, path: str = "",
                      switch: bool = False) -> Lease | Decision | None:
        """Returns the ACQUIRE's Lease (NEVER for too many slots, None if the daemon cannot decide).

        switch: a policy the daemon says is a rate policy is checked instead (and remembered).
        Raises Misconfigured when the daemon refuses the question.
        """
        if self._down_since is not None and time.monotonic() < self._retry_at:
            self._undecided += 1
            return None
        wire_key = wire_key_of(key)
        try:
            decision: Lease | Decision = await self.client.acquire(policy, wire_key, slots)
        except CostTooLarge:
            decision = NEVER
        except PolicyKind as exc:
            if not switch or policy not in self.leased:
                return self._refused(policy, exc)
            self.leased.discard(policy)  # reloaded as a rate policy
            return await self.check(policy, key, slots, path, None)
        except StatusError as exc:
            return self._refused(policy, exc)
        except RateLimitError as exc:
            return self._failed(exc)
        if self._down_since is not None:
            self._recovered()
        if not decision.allowed and denied_log.isEnabledFor(logging.INFO):
            denied_log.info("denied policy=%s key=%s path=%s retry_after=%.3f concurrency",
                            quoted(policy), quoted(wire_key), quoted(path), decision.retry_after)
        return decision

    async def release(self, policy: str, key: str | bytes, lease: int) -> None:
        """Releases a lease acquire() returned; never raises, and runs on if the caller is cancelled."""
        task = asyncio.get_running_loop().create_task(self._release(policy, wire_key_of(key), lease))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            in_background(task)  # type: ignore[arg-type]
            raise

    async def _release(self, policy: str, wire_key: bytes, lease: int) -> None:
        try:
            await self.client.release(policy, wire_key, lease)
        except LeaseUnknown:  # it expired meanwhile (a response slower than the lease)
            if self._count(policy, "LEASE_UNKNOWN"):
                log.warning("rlimitd at %s: a lease of policy %s had expired before its response was sent "
                            "(a lease shorter than the slowest responses?)", self.client.address, quoted(policy))
        except RateLimitError as exc:
            log.warning("rlimitd at %s: RELEASE of a lease of policy %s failed (%s: %s); it ends when its "
                        "connection closes or at expiry", self.client.address, quoted(policy), type(exc).__name__, exc)

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

    def _refused(self, policy: str, exc: StatusError) -> None:
        """Handles a status answered to this request alone: None (on_error) or Misconfigured."""
        if self._down_since is not None:
            self._recovered()  # the daemon answered
        count = self._count(policy, exc.status)
        if exc.status in TRANSIENT:
            if count:
                action = "let through" if self.on_error == "allow" else "answered 503"
                log.warning("rlimitd at %s answered %s for policy %s: %d requests %s (on_error=%s)",
                            self.client.address, exc.status, quoted(policy), count, action, self.on_error)
            return None
        if count:
            log.error("rlimitd at %s refuses policy %s: %s; %d requests answered 500",
                      self.client.address, quoted(policy), exc.status, count)
        raise Misconfigured(policy, exc)

    def _count(self, policy: str, status: str) -> int:
        """Counts one (policy, status); returns the count to log now, 0 while it is too early."""
        now = time.monotonic()
        last, count = self._reports.get((policy, status), (now - REPORT_INTERVAL, 0))
        if now - last < REPORT_INTERVAL:
            self._reports[(policy, status)] = (last, count + 1)
            return 0
        if len(self._reports) >= _MAX_REPORTED:
            self._reports.clear()
        self._reports[(policy, status)] = (now, 0)
        return count + 1


def wire_key_of(key: str | bytes) -> bytes:
    """Returns the bytes sent for key: itself up to MAX_PLAIN_KEY bytes, else hashed.

    A longer key "kind:value" becomes "kind#sha256:<64 hex digits>" (the SHA-256 of the
    whole key), a longer key without a kind "#sha256:<hex>". No key of the key
    functions (their kind is a fixed word before the first ':') has a '#' there, so a
    hashed key never equals a key a client spelled out.
    """
    data = key.encode() if isinstance(key, str) else key
    if len(data) <= MAX_PLAIN_KEY:
        return data
    kind, colon, _value = data.partition(b":")
    prefix = kind if colon and len(kind) <= 32 else b""
    return prefix + b"#sha256:" + hashlib.sha256(data).hexdigest().encode()


def quoted(text: str | bytes) -> str:
    """Returns text in double quotes, printable and unambiguous, for a log line.

    Backslash and '"' are escaped with a backslash; every character str.isprintable()
    refuses (controls such as newline, C1 controls, bidi overrides, line separators) is
    written as Python writes it in a repr (\\n, \\x85, \\u202e); bytes that are not
    UTF-8 become \\udcXX (never the escape of a real character).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text and '"' not in text:
        return f'"{text}"'
    return '"' + "".join(_escaped(char) for char in text) + '"'


def _escaped(char: str) -> str:
    if char in '\\"':
        return "\\" + char
    if char.isprintable():
        return char
    return repr(char)[1:-1]
