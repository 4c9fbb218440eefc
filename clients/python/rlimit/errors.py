"""Errors raised by the rlimit clients.

Every error is a RateLimitError. Transport failures (ConnectError, Timeout,
ConnectionLost), a daemon that speaks nonsense (ProtocolError), and a daemon that
answered with an error status (one StatusError subclass per status code).
"""

from __future__ import annotations


class RateLimitError(Exception):
    """Base class of every error this package raises."""


class ConnectError(RateLimitError, ConnectionError):
    """The daemon could not be reached (no socket, refused, connect timed out)."""


class Timeout(RateLimitError, TimeoutError):
    """The daemon did not answer within the call's timeout."""


class ConnectionLost(RateLimitError, ConnectionError):
    """The connection closed or failed before the answer arrived."""


class ProtocolError(RateLimitError):
    """A frame that does not follow the protocol (malformed response)."""


class InvalidRequest(ProtocolError):
    """A request frame a daemon must refuse; `status` is the code it answers with.

    Raised only by protocol.decode_request (servers and test doubles use it).
    """

    def __init__(self, message: str, status: int, request_id: int = 0, opcode: int = 0):
        super().__init__(message)
        self.status = status  # the Status code the daemon answers with
        self.request_id = request_id  # from the header, 0 if it was not readable
        self.opcode = opcode  # from the header, 0 if it was not readable


class StatusError(RateLimitError):
    """The daemon answered with an error status; `status` is its wire name."""

    status = "UNKNOWN"  # the status name, e.g. "UNKNOWN_POLICY"
    code = -1  # the status code on the wire

    def __init__(self, message: str = "", code: int | None = None):
        super().__init__(message or self.status)
        if code is not None:
            self.code = code


class Malformed(StatusError):
    status, code = "MALFORMED", 16


class UnsupportedVersion(StatusError):
    status, code = "UNSUPPORTED_VERSION", 17


class UnknownOpcode(StatusError):
    status, code = "UNKNOWN_OPCODE", 18


class UnknownPolicy(StatusError):
    status, code = "UNKNOWN_POLICY", 19


class KeyTooLong(StatusError):
    status, code = "KEY_TOO_LONG", 20


class KeyEmpty(StatusError):
    status, code = "KEY_EMPTY", 21


class CostInvalid(StatusError):
    status, code = "COST_INVALID", 22


class CostTooLarge(StatusError):
    status, code = "COST_TOO_LARGE", 23


class FrameTooLarge(StatusError):
    status, code = "FRAME_TOO_LARGE", 24


class StoreUnavailable(StatusError):
    status, code = "STORE_UNAVAILABLE", 25


class NotPermitted(StatusError):
    status, code = "NOT_PERMITTED", 26


class TooManyItems(StatusError):
    status, code = "TOO_MANY_ITEMS", 27


class StoreFull(StatusError):
    status, code = "STORE_FULL", 28


class Busy(StatusError):
    status, code = "BUSY", 29


class InternalError(StatusError):
    status, code = "INTERNAL", 30


class ReloadFailed(StatusError):
    status, code = "RELOAD_FAILED", 31


class AuthRequired(StatusError):
    """The listener wants a token (AUTH) first: the client was given none."""

    status, code = "AUTH_REQUIRED", 32


class AuthFailed(StatusError):
    """The daemon refused the client's token and closed the connection."""

    status, code = "AUTH_FAILED", 33


class LeaseUnknown(StatusError):
    """RELEASE or RENEW of a lease not held (unknown, expired or already released)."""

    status, code = "LEASE_UNKNOWN", 34


class PolicyKind(StatusError):
    """A rate operation named a concurrency policy, or a lease operation a rate policy."""

    status, code = "POLICY_KIND", 35


class LeaseDenied(RateLimitError):
    """lease(): the daemon denied the ACQUIRE; `decision` holds its figures (retry_after...)."""

    def __init__(self, policy: str, decision: object) -> None:
        retry_after = getattr(decision, "retry_after", 0.0)
        super().__init__(f"no free slot under policy {policy!r} (retry after {retry_after:.3f}s)")
        self.policy = policy  # the concurrency policy
        self.decision = decision  # the denied Lease (a Decision with lease 0)


_BY_CODE: dict[int, type[StatusError]] = {
    cls.code: cls
    for cls in (
        Malformed, UnsupportedVersion, UnknownOpcode, UnknownPolicy, KeyTooLong, KeyEmpty,
        CostInvalid, CostTooLarge, FrameTooLarge, StoreUnavailable, NotPermitted,
        TooManyItems, StoreFull, Busy, InternalError, ReloadFailed, AuthRequired, AuthFailed,
        LeaseUnknown, PolicyKind,
    )
}


def status_error(code: int, detail: str = "") -> StatusError:
    """Returns the StatusError for a status code (a plain StatusError for an unknown code)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return StatusError(f"status {code}{': ' + detail if detail else ''}", code)
    return cls(f"{cls.status}: {detail}" if detail else cls.status)
