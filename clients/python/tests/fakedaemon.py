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
"""


from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from rlimit.errors import InvalidRequest
from rlimit.protocol import (
    CLOSING_STATUSES,
    DEFAULT_MAX_FRAME,
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
        session = {"authenticated": False}  # this connection's state
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

    def _handle(self, frame: bytes, writer: asyncio.StreamWriter, session: dict[str, bool]) -> bool:
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
            writer.write(encode_response(self.answer(request)))
            return True
        return action(self, request, writer)

    def _authenticate(self, request: Request, session: dict[str, bool]) -> Status:
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
        return Response(request.id, opcode, self._decide(opcode, request.items[0], True))

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
