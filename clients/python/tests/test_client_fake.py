"""Transport handling of Client and AsyncClient against the scripted fake daemon.

Timeouts, malformed answers, closed sockets, out-of-order answers and restarts
are hard to provoke in a real daemon; the fake does them on demand (see
fakedaemon.py for the scripted keys).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest
import uvloop

from fakedaemon import FakeDaemon
from rlimit import AsyncClient, Client
from rlimit.calls import read_token
from rlimit.protocol import Opcode, decode_response
from rlimit.errors import (
    AuthFailed,
    AuthRequired,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    StatusError,
    Timeout,
    UnknownPolicy,
)


def address(fake: FakeDaemon) -> str:
    return f"unix:{fake.path}"


async def until(event: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Waits (polling every millisecond) until event() is true; fails after timeout."""
    deadline = time.monotonic() + timeout
    while not event():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.001)


# Client (blocking)


def test_client_decisions(fake: FakeDaemon) -> None:
    with Client(address(fake)) as client:
        decisions = [client.check("five", "k") for _ in range(8)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
        assert decisions[-1].retry_after == 60.0
        assert decisions[0].window == 60.0
        assert client.peek("five", "other", 2).remaining == 3
        assert client.reset("five", "k").allowed
        assert client.check("five", "k").allowed
        assert isinstance(client.ping(), float)
        assert client.policies() == fake.limits


def test_client_status_error(fake: FakeDaemon) -> None:
    with Client(address(fake)) as client:
        with pytest.raises(UnknownPolicy) as caught:
            client.check("nope", "k")
        assert caught.value.status == "UNKNOWN_POLICY"
        assert client.check("five", "k").allowed  # the connection stays usable


def test_client_check_many(fake: FakeDaemon) -> None:
    with Client(address(fake)) as client:
        overall, items = client.check_many([("five", "a", 2), ("one", "a", 1)])
        assert overall.allowed and [d.allowed for d in items] == [True, True]
        overall, items = client.check_many([("five", "a", 2), ("one", "a", 1)])
        assert not overall.allowed and [d.allowed for d in items] == [True, False]
        assert client.peek("five", "a").remaining == 2  # nothing consumed by the denial
        with pytest.raises(ValueError):
            client.check_many([("five", "a", 1)] * 17)


@pytest.mark.parametrize("script", ["garbage", "badlength"])
def test_client_malformed_answer(fake: FakeDaemon, script: str) -> None:
    with Client(address(fake)) as client:
        with pytest.raises(ProtocolError):
            client.check("five", script)
        assert client.check("five", "k").allowed
    assert fake.accepted == 2


def test_client_connection_closed_mid_call(fake: FakeDaemon) -> None:
    with Client(address(fake)) as client:
        with pytest.raises(ConnectionLost):
            client.check("five", "close")
        assert client.check("five", "k").allowed


def test_client_timeout(fake: FakeDaemon) -> None:
    with Client(address(fake), timeout=0.2) as client:
        start = time.monotonic()
        with pytest.raises(Timeout):
            client.check("five", "hang")
        assert 0.2 <= time.monotonic() - start < 1
        assert client.check("five", "k").allowed
    with Client(address(fake), timeout=5) as client:
        start = time.monotonic()
        with pytest.raises(Timeout):
            client.check("five", "hang", timeout=0.05)  # the call's timeout, not the client's
        assert 0.05 <= time.monotonic() - start < 1


def test_client_ignores_a_stray_answer(fake: FakeDaemon) -> None:
    with Client(address(fake)) as client:
        assert client.check("five", "wrongid").remaining == 4


def test_client_survives_restart(fake: FakeDaemon) -> None:
    with Client(address(fake), timeout=0.5) as client:
        assert client.check("five", "k").allowed
        fake.drop_connections()  # the daemon closed an idle connection: not an error
        assert client.check("five", "k").allowed
        fake.stop()
        with pytest.raises(ConnectError):
            client.check("five", "k")
        fake.start()
        assert client.check("five", "k").allowed


def test_client_without_daemon() -> None:
    with pytest.raises(ConnectError):
        Client("unix:/nonexistent/rlimitd.sock").check("api", "k")
    with pytest.raises(ValueError):
        Client("udp:1.2.3.4:5")


# AsyncClient


def test_async_pipelines_on_one_connection(fake: FakeDaemon) -> None:
    async def main() -> list[bool]:
        async with AsyncClient(address(fake)) as client:
            decisions = await asyncio.gather(*(client.check("five", "k") for _ in range(50)))
            return [d.allowed for d in decisions]

    assert sorted(asyncio.run(main())) == [False] * 45 + [True] * 5
    assert fake.accepted == 1


def test_async_answers_out_of_order(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            finished: list[str] = []

            async def call(key: str) -> None:
                await client.peek("five", key, 2)
                finished.append(key)

            await asyncio.gather(call("slow:150"), call("fast"))
            assert finished == ["fast", "slow:150"]

    asyncio.run(main())


def test_async_status_error(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            with pytest.raises(UnknownPolicy):
                await client.check("nope", "k")
            overall, items = await client.check_many([("five", "a", 5), ("one", "a", 2)])
            assert not overall.allowed and [d.allowed for d in items] == [True, False]
            assert await client.policies() == fake.limits

    asyncio.run(main())


def test_async_malformed_answer_fails_the_connection(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            slow = asyncio.ensure_future(client.check("five", "slow:300"))
            await until(lambda: len(fake.requests) == 1, "the fake has the slow request")
            with pytest.raises(ProtocolError):
                await client.check("five", "garbage")
            with pytest.raises(ProtocolError):
                await slow  # in flight on the connection that was dropped
            assert (await client.check("five", "k")).allowed

    asyncio.run(main())
    assert fake.accepted == 2


def test_async_connection_lost_in_flight(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            calls = [asyncio.ensure_future(client.check("five", "slow:500")) for _ in range(3)]
            await until(lambda: len(fake.requests) == 3, "the fake has the 3 requests")
            fake.drop_connections()
            for call in calls:
                with pytest.raises(ConnectionLost):
                    await call
            assert (await client.check("five", "k")).allowed

    asyncio.run(main())


def test_async_timeout_keeps_the_connection(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake), timeout=0.2) as client:
            start = time.monotonic()
            # per-call timeouts, one longer and one shorter than the client's
            hanging = [asyncio.ensure_future(client.check("five", "hang", timeout=t)) for t in (0.4, 0.1)]
            with pytest.raises(Timeout):
                await hanging[1]
            assert 0.1 <= time.monotonic() - start and not hanging[0].done()
            with pytest.raises(Timeout):
                await hanging[0]
            assert 0.4 <= time.monotonic() - start < 2
            with pytest.raises(Timeout):
                await client.check("five", "hang")
            with pytest.raises(Timeout):
                await client.check("five", "slow:400")
            await asyncio.sleep(0.3)  # the late answer arrives and is dropped
            assert (await client.check("five", "k")).remaining == 4

    asyncio.run(main())
    assert fake.accepted == 1


def test_async_reconnects_after_restart(fake: FakeDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(address(fake), timeout=0.5) as client:
            assert (await client.check("five", "k")).allowed
            fake.stop()
            conn = client._conn
            await until(lambda: conn is not None and conn.closed, "the loop sees the connection close")
            with pytest.raises(ConnectError):
                await client.check("five", "k")
            fake.start()
            assert (await client.check("five", "k")).allowed

    asyncio.run(main())


def test_async_client_moves_between_loops(fake: FakeDaemon) -> None:
    client = AsyncClient(address(fake))
    assert asyncio.run(client.check("five", "k")).allowed
    assert asyncio.run(client.check("five", "k")).remaining == 3
    assert fake.accepted == 2


def test_async_client_moves_between_uvloop_loops(fake: FakeDaemon) -> None:
    # uvloop's loops do not say which thread runs them: the client must still notice a
    # new loop (and reconnect there), and keep one connection within a loop.
    client = AsyncClient(address(fake))

    async def three() -> list[tuple[bool, int]]:
        first = await client.check("five", "k")
        rest = await asyncio.gather(client.check("five", "k"), client.check("five", "k"))
        return [(d.allowed, d.remaining) for d in (first, *rest)]

    decisions = []
    for _ in range(2):
        loop = uvloop.new_event_loop()
        try:
            decisions += loop.run_until_complete(three())
        finally:
            loop.close()
    assert decisions == [(True, 4), (True, 3), (True, 2), (True, 1), (True, 0), (False, 0)]
    assert fake.accepted == 2


def test_async_closing_status_drops_the_connection(fake: FakeDaemon) -> None:
    fake.limits["many"] = 100

    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            assert (await client.check("many", "k")).allowed
            conn = client._conn
            assert conn is not None
            # a PING with a body, which the fake refuses with MALFORMED and closes
            answer = conn.call(0x999, 0x01, bytes.fromhex("0000000a 01 01 0000 00000999 0000"), 1e12)
            assert decode_response(await answer).result.status == 16
            assert conn.closed
            assert (await client.check("many", "k")).allowed

    asyncio.run(main())
    assert fake.accepted == 2


def test_status_errors_carry_names() -> None:
    from rlimit.errors import status_error

    assert isinstance(status_error(19), UnknownPolicy)
    assert status_error(29).status == "BUSY"
    unknown = status_error(99)
    assert type(unknown) is StatusError and unknown.code == 99


# Token (AUTH)

TOKEN = b"s3cret-token-0123456789"


def opcodes_of(fake: FakeDaemon) -> list[str]:
    return [Opcode(request.opcode).name for request in fake.requests]


def test_client_sends_auth_first_on_every_connection(fake: FakeDaemon) -> None:
    fake.token = TOKEN
    with Client(address(fake), token=TOKEN.decode()) as client:
        assert client.check("five", "k").remaining == 4
        fake.drop_connections()
        assert client.check("five", "k").remaining == 3
    assert opcodes_of(fake) == ["AUTH", "CHECK", "AUTH", "CHECK"]
    assert [r.items[0].key for r in fake.requests if r.opcode == Opcode.AUTH] == [TOKEN, TOKEN]
    assert fake.accepted == 2


def test_client_without_or_with_a_wrong_token(fake: FakeDaemon) -> None:
    fake.token = TOKEN
    with Client(address(fake)) as client:
        with pytest.raises(AuthRequired):
            client.check("five", "k")
        assert client.ping() >= 0  # PING needs no token; the connection stays open
    with Client(address(fake), token=b"wrong-token-0123456789") as client:
        with pytest.raises(AuthFailed):
            client.check("five", "k")
        with pytest.raises(AuthFailed):  # a new connection, a new AUTH
            client.check("five", "k")
    assert fake.accepted == 3
    assert ("five", b"k") not in fake.usage  # nothing was counted


def test_token_must_fit_the_wire() -> None:
    with pytest.raises(ValueError):
        Client("unix:/nonexistent", token=b"")
    with pytest.raises(ValueError):
        AsyncClient("unix:/nonexistent", token=b"x" * 1025)


def test_read_token_strips_one_trailing_newline(tmp_path: Any) -> None:
    path = tmp_path / "token"
    path.write_bytes(TOKEN + b"\n")
    assert read_token(str(path)) == TOKEN
    path.write_bytes(b"\n")
    with pytest.raises(ValueError):
        read_token(str(path))


def test_async_queued_calls_wait_for_auth(fake: FakeDaemon) -> None:
    fake.token = TOKEN

    async def main() -> list[int]:
        async with AsyncClient(address(fake), token=TOKEN) as client:
            first = await asyncio.gather(*(client.check("five", "k") for _ in range(3)))
            fake.drop_connections()
            conn = client._conn
            await until(lambda: conn is None or conn.closed, "the loop sees the connection close")
            second = await asyncio.gather(*(client.check("five", "k") for _ in range(2)))
            return [d.remaining for d in first + second]

    assert sorted(asyncio.run(main()), reverse=True) == [4, 3, 2, 1, 0]
    assert opcodes_of(fake) == ["AUTH", "CHECK", "CHECK", "CHECK", "AUTH", "CHECK", "CHECK"]


def test_async_wrong_token_fails_every_waiting_call(fake: FakeDaemon) -> None:
    fake.token = TOKEN

    async def main() -> list[BaseException | object]:
        async with AsyncClient(address(fake), token=b"wrong-token-0123456789") as client:
            return await asyncio.gather(*(client.check("five", "k") for _ in range(3)), return_exceptions=True)

    assert all(isinstance(result, AuthFailed) for result in asyncio.run(main()))
    assert opcodes_of(fake) == ["AUTH"]


def test_async_without_token_gets_auth_required(fake: FakeDaemon) -> None:
    fake.token = TOKEN

    async def main() -> None:
        async with AsyncClient(address(fake)) as client:
            with pytest.raises(AuthRequired):
                await client.check("five", "k")
            assert (await client.ping()) >= 0

    asyncio.run(main())
