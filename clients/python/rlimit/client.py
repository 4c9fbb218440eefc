"""Client: a blocking client of rlimitd over one socket, one call at a time.

The connection opens on the first call and again on the call after it failed or
the daemon closed it (a restart): an idle connection the daemon closed is noticed
before sending, so such a call does not fail. A call that times out drops the
connection, since its answer may still arrive. Given a token, every new connection
sends AUTH first (raising AuthFailed if the daemon refuses it). Thread-safe: calls
take a lock.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .address import parse_address
from .calls import (
    CheckItem,
    Key,
    acquire_frame,
    auth_frame,
    item_frame,
    lease_frame,
    leases_frame,
    multi_frame,
    next_id,
    token_bytes,
)
from .decision import Decision, Lease, to_decision, to_json, to_lease, to_multi
from .errors import ConnectError, ConnectionLost, ProtocolError, Timeout
from .protocol import (
    CLOSING_STATUSES,
    FrameSplitter,
    Opcode,
    Response,
    decode_response,
    encode_empty_request,
    read_header,
)

_RECV_SIZE = 65536


class Client:
    """A blocking rlimitd client for "unix:PATH" or "tcp:HOST:PORT" (token: the listener's)."""

    def __init__(self, address: str, timeout: float = 1.0, token: str | bytes | None = None) -> None:
        self.address = parse_address(address)  # where the daemon listens
        self.timeout = timeout  # seconds for a whole call, connecting included, unless it says otherwise
        self._token = token_bytes(token)  # sent in AUTH on every new connection, if any
        self._sock: socket.socket | None = None  # the open connection, if any
        self._splitter = FrameSplitter()  # frames of the current connection
        self._request_id = 0  # the last request id used
        self._lock = threading.Lock()  # one call at a time

    def check(self, policy: str, key: Key, cost: int = 1, *, timeout: float | None = None) -> Decision:
        """Decides whether cost units of key may pass policy, consuming them if so."""
        return to_decision(self._item(Opcode.CHECK, policy, key, cost, timeout).result)

    def peek(self, policy: str, key: Key, cost: int = 1, *, timeout: float | None = None) -> Decision:
        """Answers what check would, consuming nothing."""
        return to_decision(self._item(Opcode.PEEK, policy, key, cost, timeout).result)

    def adjust(self, policy: str, key: Key, delta: int, *, timeout: float | None = None) -> Decision:
        """Adds delta (non-zero, may be negative) units to the key's usage; returns the state."""
        return to_decision(self._item(Opcode.ADJUST, policy, key, delta, timeout).result)

    def reset(self, policy: str, key: Key, *, timeout: float | None = None) -> Decision:
        """Forgets the key's usage under policy (admin listeners only)."""
        return to_decision(self._item(Opcode.RESET, policy, key, 0, timeout).result)

    def check_many(
        self, items: Sequence[CheckItem], *, timeout: float | None = None
    ) -> tuple[Decision, list[Decision]]:
        """Checks 1..16 (policy, key, cost) items all-or-nothing: (overall, per item)."""
        response = self._call(Opcode.MULTI_CHECK, lambda rid: multi_frame(rid, items), timeout)
        return to_multi(response, len(items))

    def acquire(self, policy: str, key: Key, slots: int = 1, *, detach: bool = False,
                timeout: float | None = None) -> Lease:
        """Takes slots of key under a concurrency policy: a Lease (allowed: its id in .lease).

        The daemon releases the lease when this client's connection closes, unless
        detach: then only release() or expiry (the policy's `lease`) ends it.
        """
        build = lambda rid: acquire_frame(rid, policy, key, slots, detach)  # noqa: E731
        return to_lease(self._call(Opcode.ACQUIRE, build, timeout))

    def release(self, policy: str, key: Key, lease: int, *, timeout: float | None = None) -> Lease:
        """Ends a lease; raises errors.LeaseUnknown if it is not held (released, expired)."""
        return self._lease_call(Opcode.RELEASE, policy, key, lease, timeout)

    def renew(self, policy: str, key: Key, lease: int, *, timeout: float | None = None) -> Lease:
        """Extends a held lease by its policy's `lease` from now; raises errors.LeaseUnknown if not held."""
        return self._lease_call(Opcode.RENEW, policy, key, lease, timeout)

    def leases(self, policy: str, key: Key | None = None) -> Any:
        """Returns the leases held under policy (of key, or of every key) (admin; parsed JSON)."""
        return to_json(self._call(Opcode.LEASES, lambda rid: leases_frame(rid, policy, key)))

    def _lease_call(self, opcode: Opcode, policy: str, key: Key, lease: int, timeout: float | None) -> Lease:
        return to_lease(self._call(opcode, lambda rid: lease_frame(rid, opcode, policy, key, lease), timeout))

    def ping(self, *, timeout: float | None = None) -> float:
        """Returns the round trip of a PING in seconds."""
        start = time.monotonic()
        to_decision(self._call(Opcode.PING, lambda rid: encode_empty_request(rid, Opcode.PING), timeout).result)
        return time.monotonic() - start

    def policies(self) -> Any:
        """Returns the daemon's policies (parsed JSON)."""
        return to_json(self._call(Opcode.POLICIES, lambda rid: encode_empty_request(rid, Opcode.POLICIES)))

    def stats(self) -> Any:
        """Returns the daemon's statistics (parsed JSON)."""
        return to_json(self._call(Opcode.STATS, lambda rid: encode_empty_request(rid, Opcode.STATS)))

    def top(self, policy: str = "", count: int = 10) -> Any:
        """Returns the most denied keys of policy ("" for all) (parsed JSON)."""
        return to_json(self._item(Opcode.TOP, policy, b"", count, None))

    def close(self) -> None:
        """Closes the connection; the next call opens a new one."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _item(self, opcode: Opcode, policy: str, key: Key, cost: int, timeout: float | None) -> Response:
        return self._call(opcode, lambda rid: item_frame(rid, opcode, policy, key, cost), timeout)

    def _call(self, opcode: Opcode, build: Callable[[int], bytes], timeout: float | None = None) -> Response:
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            deadline = time.monotonic() + timeout
            self._request_id = request_id = next_id(self._request_id)
            frame = build(request_id)
            try:
                sock = self._connection(deadline)
                sock.settimeout(_left(deadline))
                sock.sendall(frame)
                response = self._receive(sock, request_id, deadline)
            except ConnectError:
                raise
            except TimeoutError:
                self._drop()
                raise Timeout(f"no answer from {self.address} within {timeout}s") from None
            except OSError as exc:
                self._drop()
                raise ConnectionLost(f"connection to {self.address} failed: {exc}") from exc
            except (ProtocolError, ConnectionLost):
                self._drop()
                raise
            if response.opcode != opcode:
                self._drop()
                raise ProtocolError(f"answer to {opcode.name} carries opcode {response.opcode}")
            if response.result.status in CLOSING_STATUSES:
                self._drop()
            return response

    def _receive(self, sock: socket.socket, request_id: int, deadline: float) -> Response:
        while True:
            sock.settimeout(_left(deadline))
            data = sock.recv(_RECV_SIZE)
            if not data:
                raise ConnectionLost(f"{self.address} closed the connection")
            for frame in self._splitter.feed(data):
                if read_header(frame)[4] == request_id:
                    return decode_response(frame)

    def _connection(self, deadline: float) -> socket.socket:
        if self._sock is not None and not _closed_by_peer(self._sock):
            return self._sock
        self._drop()
        self._sock = self._open(deadline)
        if self._token is not None:
            self._authenticate(self._sock, deadline)
        return self._sock

    def _authenticate(self, sock: socket.socket, deadline: float) -> None:
        """Sends AUTH on a new connection; raises its StatusError (AuthFailed) if refused."""
        self._request_id = request_id = next_id(self._request_id)
        assert self._token is not None
        sock.settimeout(_left(deadline))
        sock.sendall(auth_frame(request_id, self._token))
        response = self._receive(sock, request_id, deadline)
        if response.opcode != Opcode.AUTH:
            raise ProtocolError(f"answer to AUTH carries opcode {response.opcode}")
        if response.result.status != 0:
            self._drop()
            to_decision(response.result)  # raises the status's error

    def _open(self, deadline: float) -> socket.socket:
        address = self.address
        sock = None
        try:
            if address.family == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(_left(deadline))
                sock.connect(address.path)
            else:
                sock = socket.create_connection((address.host, address.port), _left(deadline))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise ConnectError(f"cannot connect to {address}: {exc}") from exc
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._splitter = FrameSplitter()


def _left(deadline: float) -> float:
    """Returns the seconds left until deadline; raises TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _closed_by_peer(sock: socket.socket) -> bool:
    """Returns whether the daemon closed this idle connection (e.g. it restarted)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
