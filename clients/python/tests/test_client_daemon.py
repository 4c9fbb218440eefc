"""Client and AsyncClient against the real daemon: exact counts, as users rely on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from daemons import Daemon, unique_key
from rlimit import AsyncClient, Client
from rlimit.errors import (
    ConnectError,
    ConnectionLost,
    CostTooLarge,
    KeyEmpty,
    KeyTooLong,
    NotPermitted,
    UnknownPolicy,
)


T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture
def client(daemon: Daemon) -> Client:
    return Client(daemon.address)


def run_on_uvloop(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


# asyncio's own loop, and uvloop's, which uvicorn picks when it is installed (as with
# `pip install uvicorn[standard]`): its transports are not asyncio.Transport subclasses.
@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    return asyncio.run if request.param == "asyncio" else run_on_uvloop


def test_fixed_window_admits_exactly_its_limit(client: Client) -> None:
    key = unique_key("fw")
    decisions = [client.check("fw5", key) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert all(d.limit == 5 and d.window == 3600 for d in decisions)
    denied = decisions[-1]
    assert 0 < denied.retry_after <= 3600
    assert denied.retry_after == pytest.approx(denied.reset_after, abs=0.01)
    assert all(d.retry_after == 0 for d in decisions[:5])


def test_retry_after_is_when_the_request_passes(client: Client) -> None:
    key = unique_key("gcra")
    assert client.check("gcra10", key).allowed
    denied = client.check("gcra10", key)
    assert not denied.allowed
    assert 0 < denied.retry_after <= 0.1
    time.sleep(denied.retry_after + 0.005)
    assert client.check("gcra10", key).allowed


def test_cost_counts_units(client: Client) -> None:
    key = unique_key("cost")
    assert client.check("fw5", key, cost=3).remaining == 2
    assert not client.check("fw5", key, cost=3).allowed
    assert client.check("fw5", key, cost=2).remaining == 0
    with pytest.raises(CostTooLarge):
        client.check("fw5", unique_key("big"), cost=6)


def test_peek_consumes_nothing(client: Client) -> None:
    key = unique_key("peek")
    assert client.peek("fw5", key).remaining == 4
    assert client.peek("fw5", key).remaining == 4
    assert client.check("fw5", key).remaining == 4


def test_check_many_is_all_or_nothing(client: Client) -> None:
    key = unique_key("multi")
    overall, items = client.check_many([("pair_a", key, 1), ("pair_b", key, 1)])
    assert overall.allowed and [d.allowed for d in items] == [True, True]
    assert [d.remaining for d in items] == [2, 0]
    assert overall.remaining == 0  # the most restrictive item
    overall, items = client.check_many([("pair_a", key, 1), ("pair_b", key, 1)])
    assert not overall.allowed and [d.allowed for d in items] == [True, False]
    assert client.peek("pair_a", key).remaining == 1  # the denial consumed nothing
    with pytest.raises(UnknownPolicy):
        client.check_many([("pair_a", key, 1), ("no_such_policy", key, 1)])
    assert client.peek("pair_a", key).remaining == 1


def test_reset_forgets_the_key(client: Client) -> None:
    key = unique_key("reset")
    for _ in range(5):
        client.check("fw5", key)
    assert not client.check("fw5", key).allowed
    assert client.reset("fw5", key).allowed
    assert client.check("fw5", key).remaining == 4


def test_adjust_charges_and_refunds(client: Client) -> None:
    key = unique_key("adjust")
    assert client.check("fw5", key).remaining == 4
    charged = client.adjust("fw5", key, 4)
    assert not charged.allowed and charged.remaining == 0
    refunded = client.adjust("fw5", key, -2)
    assert refunded.allowed and refunded.remaining == 2


def test_errors_carry_their_status(client: Client) -> None:
    with pytest.raises(UnknownPolicy) as caught:
        client.check("no_such_policy", "k")
    assert caught.value.status == "UNKNOWN_POLICY"
    with pytest.raises(KeyEmpty):
        client.check("fw5", "")
    with pytest.raises(KeyTooLong):
        client.check("fw5", "k" * 513)
    assert client.check("fw5", unique_key("after-errors")).allowed


def test_flags_shadow_and_exempt(client: Client) -> None:
    key = unique_key("shadow")
    assert client.check("shadow1", key).allowed
    second = client.check("shadow1", key)
    assert second.allowed and second.shadow
    exempt = client.check("exempt1", "vip")
    assert exempt.allowed and exempt.exempt
    assert client.check("exempt1", "vip").allowed


def test_admin_json(client: Client) -> None:
    policies = client.policies()["policies"]
    assert {"name": "fw5", "algorithm": "fixed_window", "limit": 5}.items() <= next(
        p for p in policies if p.get("name") == "fw5").items()
    assert isinstance(client.stats(), dict)
    assert client.ping() < 1


def test_async_concurrent_calls_count_exactly(daemon: Daemon, run: Runner[Any]) -> None:
    key = unique_key("async")

    async def main() -> list[bool]:
        async with AsyncClient(daemon.address) as client:
            decisions = await asyncio.gather(*(client.check("api", key) for _ in range(200)))
            return [d.allowed for d in decisions]

    assert sum(run(main())) == 20  # the bucket's burst; the refill is 100/min


def test_async_mirrors_the_blocking_client(daemon: Daemon, run: Runner[Any]) -> None:
    key = unique_key("async-api")

    async def main() -> None:
        async with AsyncClient(daemon.address) as client:
            assert (await client.check("fw5", key, 2)).remaining == 3
            assert (await client.peek("fw5", key)).remaining == 2
            assert (await client.adjust("fw5", key, -1)).remaining == 4
            overall, items = await client.check_many([("pair_a", key, 2), ("pair_b", key, 1)])
            assert overall.allowed and [d.remaining for d in items] == [1, 0]
            overall, items = await client.check_many([("pair_a", key, 1), ("pair_b", key, 1)])
            assert not overall.allowed and [d.allowed for d in items] == [True, False]
            assert (await client.reset("fw5", key)).allowed
            with pytest.raises(UnknownPolicy):
                await client.check("no_such_policy", key)
            assert await client.ping() < 1

    run(main())


def test_clients_reconnect_after_a_daemon_restart(own_daemon: Daemon, run: Runner[Any]) -> None:
    sync_client = Client(own_daemon.address, timeout=1)
    async_client = AsyncClient(own_daemon.address, timeout=1)

    async def main() -> None:
        assert (await async_client.check("fw5", "k")).allowed
        assert sync_client.check("fw5", "k").allowed
        in_flight = [asyncio.ensure_future(async_client.check("fw5", "k")) for _ in range(3)]
        own_daemon.stop()  # blocks the loop: the calls are written, never answered
        for call in in_flight:
            with pytest.raises(ConnectionLost):
                await call
        with pytest.raises(ConnectError):
            await async_client.check("fw5", "k")
        with pytest.raises((ConnectError, ConnectionLost)):
            sync_client.check("fw5", "k")
        own_daemon.start()
        assert (await async_client.check("fw5", "k")).remaining == 4  # a fresh daemon
        assert sync_client.check("fw5", "k").remaining == 3

    run(main())


def test_tcp_listener(daemon: Daemon, run: Runner[Any]) -> None:
    key = unique_key("tcp")
    with Client(daemon.tcp_address) as client:
        assert client.check("fw5", key).remaining == 4
        with pytest.raises(NotPermitted):
            client.reset("fw5", key)  # admin opcodes only on admin listeners

    async def main() -> int:
        async with AsyncClient(daemon.tcp_address) as client:
            return (await client.check("fw5", key)).remaining

    assert run(main()) == 3


# A TCP listener with a token_file (issue 11, point 2)

TOKEN = b"python-client-token-0123456789"


@pytest.fixture
def token_daemon() -> Any:
    """A real daemon whose TCP listener requires TOKEN (its file holds it with a newline)."""
    import json
    import os
    from pathlib import Path

    instance = Daemon()
    token_path = Path(instance.directory) / "token"
    token_path.write_bytes(TOKEN + b"\n")
    os.chmod(token_path, 0o600)
    config = json.loads(Path(instance.config_path).read_text())
    config["listen"] = [instance.address, {"address": instance.tcp_address, "token_file": str(token_path)}]
    Path(instance.config_path).write_text(json.dumps(config))
    try:
        instance.start()
        yield instance, str(token_path)
    finally:
        instance.close()


def test_token_listener_with_the_real_daemon(token_daemon: Any) -> None:
    from rlimit import read_token
    from rlimit.errors import AuthFailed, AuthRequired

    daemon, token_path = token_daemon
    key = unique_key("token")
    with Client(daemon.tcp_address, token=read_token(token_path)) as client:
        assert client.check("fw5", key).remaining == 4
    with Client(daemon.tcp_address) as client:
        with pytest.raises(AuthRequired):
            client.check("fw5", key)
        assert client.ping() >= 0
    with Client(daemon.tcp_address, token=b"wrong-token-0123456789") as client:
        with pytest.raises(AuthFailed):
            client.check("fw5", key)

    async def main() -> list[int]:
        async with AsyncClient(daemon.tcp_address, token=TOKEN) as aclient:
            first = await asyncio.gather(*(aclient.check("fw5", key) for _ in range(2)))
            conn = aclient._conn
            assert conn is not None
            conn.fail(ConnectionLost("dropped by the test"))  # the next call reconnects and authenticates
            second = await aclient.check("fw5", key)
            return sorted([d.remaining for d in first], reverse=True) + [second.remaining]

    assert asyncio.run(main()) == [3, 2, 1]
    with Client(daemon.address) as admin:  # nothing was counted without the token
        peek = admin.peek("fw5", key)  # 4 used: a fifth would pass, leaving 0
        assert peek.allowed and peek.remaining == 0
