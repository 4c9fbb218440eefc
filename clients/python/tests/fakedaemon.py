"""A fake rlimitd for unit tests of the clients' transport handling.

An asyncio server on a Unix socket, in a thread of its own, speaking the protocol
through rlimit.protocol. Policies are fixed windows that never roll over. Keys
script misbehaviour, so one test can mix good and bad calls:

    slow:<ms>   answer after <ms> milliseconds (later calls overtake it)
    hang        never answer
    garbage     answer with a malformed frame (leftover bytes)
    badlength   answer with a frame whose length field is below 8
    close       close the connection without answering
    wrongid     answer with another request id, then the right answer

With a token (FakeDaemon.token), a connection is served only PING and AUTH until it
sent the token: other calls answer AUTH_REQUIRED; a wrong token answers AUTH_FAILED
and closes the connection, as rlimitd does. Policies named in `statuses` answer that
status to every item (a daemon refusing the question).

Concurrency policies (`concurrency`: name -> (limit, lease ms)) answer ACQUIRE,
RELEASE, RENEW and LEASES as the design says (lease ids random, expiry on the fake's
monotonic clock, leases taken without DETACH released when their connection closes);
the other opcodes naming them answer POLICY_KIND, as lease opcodes naming a rate
policy do.
"""


from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from rlimit.errors import InvalidRequest
from rlimit.protocol import (
    CLOSING_STATUSES,
    DEFAULT_MAX_FRAME,
    DETACH,
    LEASE_OPCODES,
    FrameSplitter,
    Item,
    Opcode,
    Request,
    Response,
    Result,
    Status,
    decode_request,
    encode_response,
)

T = TypeVar("T")
WINDOW_MS = 60_000


class FakeDaemon:
    """A scripted daemon; start() and stop() may be called repeatedly (a restart)."""

    def __init__(self, path: str, limits: dict[str, int] | None = None) -> None:
        self.path = path  # the Unix socket path
        self.limits = limits or {"five": 5, "one": 1}  # policy -> limit per window
        self.statuses: dict[str, Status] = {}  # policy -> the error status it always answers
        self.concurrency: dict[str, tuple[int, int]] = {"two": (2, 30_000)}  # policy -> (limit, lease ms)
        # (policy, key) -> lease id -> (slots, expiry on time.monotonic())
        self.held: dict[tuple[str, bytes], dict[int, tuple[int, float]]] = {}
        self.released_on_disconnect = 0  # leases released because their connection closed
        self.token: bytes | None = None  # the listener's token, if it has one
        self.usage: dict[tuple[str, bytes], int] = {}  # (policy, key) -> units used
        self.requests: list[Request] = []  # every request decoded, in arrival order
        self.accepted = 0  # connections accepted over the fake's life
        self._loop: asyncio.AbstractEventLoop | None = None  # the server thread's loop
        self._thread: threading.Thread | None = None  # runs the loop
        self._server: asyncio.AbstractServer | None = None  # the listening server
        self._writers: set[asyncio.StreamWriter] = set()  # open connections

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(asyncio.start_unix_server(self._serve, self.path))

    def stop(self) -> None:
        """Closes the listener and every connection, like a daemon that exits."""
        if self._loop is None:
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    def drop_connections(self) -> None:
        """Closes every open connection but keeps listening."""
        self._run(self._close_writers())

    def _run(self, coro: Awaitable[T]) -> T:
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(5)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._close_writers()
        await self._server.wait_closed()

    async def _close_writers(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        splitter = FrameSplitter(DEFAULT_MAX_FRAME)
        session: dict[str, object] = {"authenticated": False, "leases": []}  # this connection's state
        try:
            while data := await reader.read(65536):
                for frame in splitter.feed(data):
                    if not self._handle(frame, writer, session):
                        writer.close()
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            self._release_connection(session)

    def _release_connection(self, session: dict[str, object]) -> None:
        for policy, key, lease in session["leases"]:  # type: ignore[attr-defined]
            if self.held.get((policy, key), {}).pop(lease, None) is not None:
                self.released_on_disconnect += 1

    def _handle(self, frame: bytes, writer: asyncio.StreamWriter, session: dict[str, object]) -> bool:
        """Answers one frame; returns False when the connection must close."""
        try:
            request = decode_request(frame)
        except InvalidRequest as exc:
            writer.write(encode_response(Response(exc.request_id, exc.opcode, Result(exc.status))))
            return exc.status not in CLOSING_STATUSES
        self.requests.append(request)
        if request.opcode == Opcode.AUTH or (self.token is not None and not session["authenticated"]):
            status = self._authenticate(request, session)
            writer.write(encode_response(Response(request.id, request.opcode, Result(status))))
            return status != Status.AUTH_FAILED
        script = request.items[0].key if request.items else b""
        action = _SCRIPTS.get(script.split(b":")[0])
        if action is None:
            response = self.answer(request)
            if request.opcode == Opcode.ACQUIRE and response.lease and not request.flags & DETACH:
                item = request.items[0]
                session["leases"].append((item.policy, item.key, response.lease))  # type: ignore[attr-defined]
            writer.write(encode_response(response))
            return True
        return action(self, request, writer)

    def _authenticate(self, request: Request, session: dict[str, object]) -> Status:
        """Returns the status of an AUTH, or AUTH_REQUIRED for another call before it."""
        if request.opcode != Opcode.AUTH:
            return Status.OK if request.opcode == Opcode.PING else Status.AUTH_REQUIRED
        if self.token is None or request.items[0].key == self.token:
            session["authenticated"] = True
            return Status.OK
        return Status.AUTH_FAILED

    def answer(self, request: Request) -> Response:
        """Returns the honest answer to a request."""
        opcode = request.opcode
        if opcode == Opcode.MULTI_CHECK:
            return self._multi(request)
        if opcode in (Opcode.POLICIES, Opcode.STATS):
            return Response(request.id, opcode, Result(Status.OK), text=json.dumps(self.limits))
        if opcode == Opcode.PING:
            return Response(request.id, opcode, Result(Status.OK))
        if opcode in LEASE_OPCODES or opcode == Opcode.LEASES:
            return self._lease_answer(request)
        if request.items and request.items[0].policy in self.concurrency:
            return Response(request.id, opcode, Result(Status.POLICY_KIND))
        return Response(request.id, opcode, self._decide(opcode, request.items[0], True))

    def _lease_answer(self, request: Request) -> Response:
        item = request.items[0]
        if item.policy in self.statuses:
            return Response(request.id, request.opcode, Result(self.statuses[item.policy]))
        if item.policy not in self.concurrency:
            status = Status.POLICY_KIND if item.policy in self.limits else Status.UNKNOWN_POLICY
            return Response(request.id, request.opcode, Result(status))
        limit, lease_ms = self.concurrency[item.policy]
        if request.opcode == Opcode.LEASES:
            return Response(request.id, request.opcode, Result(Status.OK), text=self._leases_json(item))
        leases = self._trimmed(item.policy, item.key)
        held = sum(slots for slots, _expiry in leases.values())
        now = time.monotonic()
        if request.opcode == Opcode.ACQUIRE:
            if item.cost == 0:
                return Response(request.id, request.opcode, Result(Status.COST_INVALID))
            if item.cost > limit:
                return Response(request.id, request.opcode, Result(Status.COST_TOO_LARGE))
            if held + item.cost > limit:
                earliest = min(expiry for _slots, expiry in leases.values())
                last = max(expiry for _slots, expiry in leases.values())
                result = Result(Status.DENIED, 0, limit, limit - held, _ms(last - now), _ms(earliest - now), lease_ms)
                return Response(request.id, request.opcode, result)
            lease = random.getrandbits(64) | 1
            leases[lease] = (item.cost, now + lease_ms / 1000)
            result = Result(Status.ALLOWED, 0, limit, limit - held - item.cost, lease_ms, 0, lease_ms)
            return Response(request.id, request.opcode, result, lease=lease)
        if request.lease == 0:
            return Response(request.id, request.opcode, Result(Status.OK, 0, limit, limit - held, 0, 0, lease_ms))
        if request.lease not in leases:
            return Response(request.id, request.opcode, Result(Status.LEASE_UNKNOWN), lease=request.lease)
        slots, _expiry = leases[request.lease]
        if request.opcode == Opcode.RENEW:
            leases[request.lease] = (slots, now + lease_ms / 1000)
            result = Result(Status.OK, 0, limit, limit - held, lease_ms, 0, lease_ms)
        else:
            del leases[request.lease]
            last = max((expiry for _slots, expiry in leases.values()), default=now)
            result = Result(Status.OK, 0, limit, limit - held + slots, _ms(last - now), 0, lease_ms)
        return Response(request.id, request.opcode, result, lease=request.lease)

    def _trimmed(self, policy: str, key: bytes) -> dict[int, tuple[int, float]]:
        """Returns the leases of (policy, key) still held, the expired ones dropped."""
        now = time.monotonic()
        leases = self.held.setdefault((policy, key), {})
        for lease, (_slots, expiry) in list(leases.items()):
            if expiry <= now:
                del leases[lease]
        return leases

    def _leases_json(self, item: Item) -> str:
        now = time.monotonic()
        keys = [item.key] if item.key else [key for policy, key in self.held if policy == item.policy]
        listed = [{"key": key.decode(), "lease": str(lease), "slots": slots, "expires_in_ms": _ms(expiry - now)}
                  for key in keys for lease, (slots, expiry) in self._trimmed(item.policy, key).items()]
        return json.dumps({"policy": item.policy, "leases": listed, "truncated": False})

    def held_slots(self, policy: str, key: bytes) -> int:
        """Returns the slots of (policy, key) held now (thread-safe enough for tests: a read)."""
        return sum(slots for slots, expiry in list(self.held.get((policy, key), {}).values())
                   if expiry > time.monotonic())

    def _multi(self, request: Request) -> Response:
        results = tuple(self._decide(Opcode.PEEK, item, False) for item in request.items)
        failed = [r for r in results if r.status > Status.DENIED]
        denied = [r for r in results if r.status == Status.DENIED]
        if failed:
            overall = Result(failed[0].status)
        elif denied:
            overall = max(denied, key=lambda r: r.retry_after_ms)
        else:
            results = tuple(self._decide(Opcode.CHECK, item, True) for item in request.items)
            overall = min(results, key=lambda r: r.remaining)
        return Response(request.id, request.opcode, overall, results)

    def _decide(self, opcode: int, item: Item, consume: bool) -> Result:
        if item.policy in self.statuses:
            return Result(self.statuses[item.policy])
        limit = self.limits.get(item.policy)
        if limit is None:
            return Result(Status.UNKNOWN_POLICY)
        slot = (item.policy, item.key)
        used = self.usage.get(slot, 0)
        if opcode == Opcode.RESET:
            self.usage.pop(slot, None)
            return Result(Status.OK, 0, limit, limit, 0, 0, WINDOW_MS)
        if opcode == Opcode.ADJUST:
            used = self.usage[slot] = max(0, used + item.cost)
            status = Status.ALLOWED if used < limit else Status.DENIED
            return Result(status, 0, limit, max(0, limit - used), WINDOW_MS, 0, WINDOW_MS)
        if used + item.cost > limit:
            return Result(Status.DENIED, 0, limit, max(0, limit - used), WINDOW_MS, WINDOW_MS, WINDOW_MS)
        if consume and opcode == Opcode.CHECK:
            used = self.usage[slot] = used + item.cost
        else:
            used += item.cost
        return Result(Status.ALLOWED, 0, limit, limit - used, WINDOW_MS, 0, WINDOW_MS)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _slow(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    delay = int(request.items[0].key.split(b":")[1]) / 1000
    asyncio.get_running_loop().call_later(delay, _write_unless_closed, writer, fake.answer(request))
    return True


def _write_unless_closed(writer: asyncio.StreamWriter, response: Response) -> None:
    if not writer.is_closing():
        writer.write(encode_response(response))


def _hang(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    return True


def _garbage(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    frame = bytearray(encode_response(fake.answer(request)) + b"\0\0")
    frame[0:4] = (len(frame) - 4).to_bytes(4, "big")
    writer.write(bytes(frame))
    return True


def _bad_length(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"\0\0\0\3\1\2\0")
    return True


def _close(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    return False


def _wrong_id(fake: FakeDaemon, request: Request, writer: asyncio.StreamWriter) -> bool:
    answer = fake.answer(request)
    stray = Response(request.id ^ 0x5A5A, answer.opcode, answer.result)
    writer.write(encode_response(stray) + encode_response(answer))
    return True


_Script = Callable[[FakeDaemon, Request, asyncio.StreamWriter], bool]
_SCRIPTS: dict[bytes, _Script] = {
    b"slow": _slow,
    b"hang": _hang,
    b"garbage": _garbage,
    b"badlength": _bad_length,
    b"close": _close,
    b"wrongid": _wrong_id,
}
