"""AsyncClient: an asyncio client of rlimitd that pipelines calls on one connection.

    call -> frame -> write buffer --(one write per loop turn)--> daemon
    daemon --> data_received -> FrameSplitter -> pending[request_id] -> call -> decode

Concurrent calls share one connection: each registers a future under its request
id, answers are matched by id (they may come out of order) and decoded by their call
(a CHECK's straight into a Decision); a malformed answer fails the connection. When
the connection dies, the calls in flight fail with ConnectionLost and the next call
reconnects. A call that times out forgets its id, and its late answer is dropped. A
client belongs to one event loop at a time; used from another loop it reconnects there.
Given a token, a new connection sends AUTH and is used only once the daemon accepted
it: calls waiting for the connection go out after the AUTH answer, never before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from threading import get_ident
from typing import Any, TypeVar, cast

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
from .decision import Decision, Lease, decision_of, lease_of, to_decision, to_json, to_multi
from .errors import ConnectError, ConnectionLost, ProtocolError, RateLimitError, Timeout
from .leases import HeldLease
from .protocol import (
    CLOSING_STATUSES,
    HEADER_LEN,
    VERSION,
    FrameSplitter,
    Opcode,
    Response,
    decode_response,
    encode_empty_request,
    read_header,
)

_Pending = dict[int, tuple["asyncio.Future[bytes]", int, float]]
_CHECK = Opcode.CHECK
_T = TypeVar("_T")
_EARLY = 0.001  # timers may fire this much before their deadline
_UNKNOWN = object()  # a loop without asyncio's _thread_id


def _runs_here(conn: _Connection) -> bool:
    """Whether conn's loop is running in this thread, hence is the running loop.

    asyncio.get_running_loop() makes a getpid() system call (its fork check) on every
    call: ~2 us on a VM, once per check. asyncio's loops say which thread runs them
    (_thread_id); for others (uvloop), the thread conn's loop was last seen running in
    by get_running_loop stands in, which is right unless the loop has since moved to
    another thread while this one runs another loop with the same client (a client is
    not thread-safe).
    """
    loop = conn.loop
    thread = getattr(loop, "_thread_id", _UNKNOWN)
    if thread is _UNKNOWN:
        return conn.thread == get_ident() and loop.is_running()
    return thread == get_ident()


class _Connection(asyncio.Protocol):
    """One connection: writes batched per loop turn, answer frames routed by request id."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str) -> None:
        self.loop = loop  # the loop the transport belongs to
        self.address = address  # for messages
        self.transport: asyncio.Transport | None = None  # set once connected
        self.pending: _Pending = {}  # request id -> (future, opcode, deadline)
        self.closed = False  # no more calls may use it
        self._splitter = FrameSplitter()  # frames out of the byte stream
        self._outgoing: list[bytes] = []  # frames to write at the end of this loop turn
        self._sweep: asyncio.TimerHandle | None = None  # fires at the earliest deadline
        self.thread = get_ident()  # the thread the loop was last seen running in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def call(self, request_id: int, opcode: int, frame: bytes, deadline: float) -> asyncio.Future[bytes]:
        """Sends frame; returns the future of its answer frame, failed with Timeout at deadline."""
        future: asyncio.Future[bytes] = self.loop.create_future()
        self.pending[request_id] = (future, opcode, deadline)
        if self._sweep is None or deadline < self._sweep.when():
            self._arm(deadline)
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(frame)
        return future

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(frames))

    def _arm(self, deadline: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Fails the calls whose deadline passed; re-arms for the earliest other one."""
        self._sweep = None
        now = self.loop.time() + _EARLY
        earliest = None
        for request_id, (future, _opcode, deadline) in list(self.pending.items()):
            if deadline <= now:
                del self.pending[request_id]
                if not future.done():
                    future.set_exception(Timeout(f"no answer from {self.address} in time"))
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm(earliest)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._splitter.feed(data)
        except ProtocolError as exc:
            self.fail(exc)
            return
        for frame in frames:
            self._deliver(frame)

    def _deliver(self, frame: bytes) -> None:
        _length, version, opcode, _flags, request_id = read_header(frame)
        if version != VERSION:
            self.fail(ProtocolError(f"unsupported protocol version {version}"))
            return
        entry = self.pending.pop(request_id, None)
        if entry is None:
            return  # the call timed out or was cancelled
        future, expected, _deadline = entry
        if opcode != expected:
            error = ProtocolError(f"answer to opcode {expected} carries opcode {opcode}")
            if not future.done():
                future.set_exception(error)
            self.fail(error)
            return
        if not future.done():
            future.set_result(frame)
        if len(frame) > HEADER_LEN and frame[HEADER_LEN] in CLOSING_STATUSES:
            self.closed = True  # the daemon closes it after this answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionLost(f"connection to {self.address} lost" + (f": {exc}" if exc else "")))

    def fail(self, exc: RateLimitError) -> None:
        """Closes the connection and fails every call in flight with exc."""
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self.transport is not None:
            self.transport.abort()
        pending, self.pending = self.pending, {}
        for future, _opcode, _deadline in pending.values():
            if not future.done():
                future.set_exception(exc)


class AsyncClient:
    """An asyncio rlimitd client for "unix:PATH" or "tcp:HOST:PORT" (token: the listener's)."""

    def __init__(self, address: str, timeout: float = 1.0, token: str | bytes | None = None) -> None:
        self.address = parse_address(address)  # where the daemon listens
        self.timeout = timeout  # seconds per call (connecting included), unless a call says otherwise
        self._token = token_bytes(token)  # sent in AUTH on every new connection, if any
        self._conn: _Connection | None = None  # the current connection
        self._connecting: asyncio.Task[_Connection] | None = None  # a connect in progress
        self._request_id = 0  # the last request id used

    async def check(self, policy: str, key: Key, cost: int = 1, *, timeout: float | None = None) -> Decision:
        """Decides whether cost units of key may pass policy, consuming them if so."""
        request_id = self._new_id()
        frame = item_frame(request_id, _CHECK, policy, key, cost)
        return await self._send(_CHECK, request_id, frame, timeout, decision_of)

    async def peek(self, policy: str, key: Key, cost: int = 1, *, timeout: float | None = None) -> Decision:
        """Answers what check would, consuming nothing."""
        return await self._item(Opcode.PEEK, policy, key, cost, timeout)

    async def adjust(self, policy: str, key: Key, delta: int, *, timeout: float | None = None) -> Decision:
        """Adds delta (non-zero, may be negative) units to the key's usage; returns the state."""
        return await self._item(Opcode.ADJUST, policy, key, delta, timeout)

    async def reset(self, policy: str, key: Key, *, timeout: float | None = None) -> Decision:
        """Forgets the key's usage under policy (admin listeners only)."""
        return await self._item(Opcode.RESET, policy, key, 0, timeout)

    async def check_many(
        self, items: Sequence[CheckItem], *, timeout: float | None = None
    ) -> tuple[Decision, list[Decision]]:
        """Checks 1..16 (policy, key, cost) items all-or-nothing: (overall, per item)."""
        response = await self._call(Opcode.MULTI_CHECK, lambda rid: multi_frame(rid, items), timeout)
        return to_multi(response, len(items))

    async def acquire(self, policy: str, key: Key, slots: int = 1, *, detach: bool = False,
                      timeout: float | None = None) -> Lease:
        """Takes slots of key under a concurrency policy: a Lease (allowed: its id in .lease).

        The daemon releases the lease when this client's connection closes (a lost
        connection too), unless detach: then only release() or expiry ends it.
        """
        request_id = self._new_id()
        frame = acquire_frame(request_id, policy, key, slots, detach)
        return await self._send(Opcode.ACQUIRE, request_id, frame, timeout, lease_of)

    async def release(self, policy: str, key: Key, lease: int, *, timeout: float | None = None) -> Lease:
        """Ends a lease; raises errors.LeaseUnknown if it is not held (released, expired)."""
        return await self._lease_call(Opcode.RELEASE, policy, key, lease, timeout)

    async def renew(self, policy: str, key: Key, lease: int, *, timeout: float | None = None) -> Lease:
        """Extends a held lease by its policy's `lease` from now; raises errors.LeaseUnknown if not held."""
        return await self._lease_call(Opcode.RENEW, policy, key, lease, timeout)

    def lease(self, policy: str, key: Key, slots: int = 1, *, renew: bool = True,
              detach: bool = False) -> HeldLease:
        """`async with client.lease(policy, key) as held:` holds slots for the block.

        Raises errors.LeaseDenied when no slot is free. Releases on exit, exception or
        cancellation; renews in the background every lease/3 while the block runs
        (renew=False: never). See rlimit.leases.
        """
        return HeldLease(self, policy, key, slots, renew=renew, detach=detach)

    async def leases(self, policy: str, key: Key | None = None) -> Any:
        """Returns the leases held under policy (of key, or of every key) (admin; parsed JSON)."""
        return to_json(await self._call(Opcode.LEASES, lambda rid: leases_frame(rid, policy, key)))

    async def _lease_call(self, opcode: Opcode, policy: str, key: Key, lease: int, timeout: float | None) -> Lease:
        request_id = self._new_id()
        frame = lease_frame(request_id, opcode, policy, key, lease)
        return await self._send(opcode, request_id, frame, timeout, lease_of)

    async def ping(self, *, timeout: float | None = None) -> float:
        """Returns the round trip of a PING in seconds."""
        start = time.monotonic()
        response = await self._call(Opcode.PING, lambda rid: encode_empty_request(rid, Opcode.PING), timeout)
        to_decision(response.result)
        return time.monotonic() - start

    async def policies(self) -> Any:
        """Returns the daemon's policies (parsed JSON)."""
        return to_json(await self._call(Opcode.POLICIES, lambda rid: encode_empty_request(rid, Opcode.POLICIES)))

    async def stats(self) -> Any:
        """Returns the daemon's statistics (parsed JSON)."""
        return to_json(await self._call(Opcode.STATS, lambda rid: encode_empty_request(rid, Opcode.STATS)))

    async def top(self, policy: str = "", count: int = 10) -> Any:
        """Returns the most denied keys of policy ("" for all) (parsed JSON)."""
        return to_json(await self._call(Opcode.TOP, lambda rid: item_frame(rid, Opcode.TOP, policy, b"", count)))

    async def aclose(self) -> None:
        """Closes the connection; calls in flight fail with ConnectionLost."""
        if self._connecting is not None:
            self._connecting.cancel()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.fail(ConnectionLost("client closed"))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _item(self, opcode: Opcode, policy: str, key: Key, cost: int, timeout: float | None) -> Decision:
        request_id = self._new_id()
        frame = item_frame(request_id, opcode, policy, key, cost)
        return await self._send(opcode, request_id, frame, timeout, decision_of)

    async def _call(self, opcode: Opcode, build: Callable[[int], bytes], timeout: float | None = None) -> Response:
        request_id = self._new_id()
        return await self._send(opcode, request_id, build(request_id), timeout, decode_response)

    def _new_id(self) -> int:
        request_id = next_id(self._request_id)
        conn = self._conn
        while conn is not None and request_id in conn.pending:
            request_id = next_id(request_id)
        self._request_id = request_id
        return request_id

    async def _send(self, opcode: Opcode, request_id: int, frame: bytes, timeout: float | None,
                    decode: Callable[[bytes], _T]) -> _T:
        """Sends frame and returns its answer decoded; a malformed answer fails the connection."""
        conn = self._conn
        if conn is not None and _runs_here(conn):
            loop = conn.loop  # the running loop, known without asking for it
        else:
            loop = asyncio.get_running_loop()
            if conn is not None and conn.loop is loop:
                conn.thread = get_ident()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        if conn is None or conn.closed or conn.loop is not loop:
            conn = await self._reconnect(loop, deadline)
        future = conn.call(request_id, opcode, frame, deadline)
        try:
            answer = await future
        finally:
            conn.pending.pop(request_id, None)  # when cancelled
        try:
            return decode(answer)
        except ProtocolError as exc:
            conn.fail(exc)
            raise

    async def _reconnect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        task = self._connecting
        if task is None or task.get_loop() is not loop:
            old, self._conn = self._conn, None
            if old is not None and not old.closed and old.loop is loop:
                old.fail(ConnectionLost("replaced"))
            task = loop.create_task(self._open(loop))
            self._connecting = task
            task.add_done_callback(self._connected)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            raise ConnectError(f"cannot connect to {self.address}: timed out") from None

    def _connected(self, task: asyncio.Task[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        address = self.address
        conn = _Connection(loop, str(address))
        try:
            if address.family == "unix":
                await loop.create_unix_connection(lambda: conn, address.path)
            else:  # asyncio sets TCP_NODELAY itself
                await loop.create_connection(lambda: conn, address.host, address.port)
        except OSError as exc:
            raise ConnectError(f"cannot connect to {address}: {exc}") from exc
        if self._token is not None:
            await self._authenticate(conn, self._token)
        return conn

    async def _authenticate(self, conn: _Connection, token: bytes) -> None:
        """Sends AUTH first on conn; raises its StatusError (AuthFailed) or transport error."""
        request_id = self._new_id()
        future = conn.call(request_id, Opcode.AUTH, auth_frame(request_id, token), conn.loop.time() + self.timeout)
        try:
            decision_of(await future)
        except RateLimitError as exc:
            conn.fail(exc)
            raise

