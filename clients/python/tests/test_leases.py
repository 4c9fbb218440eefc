"""Concurrency leases from Python: Client and AsyncClient acquire/release/renew, and lease().

Each test runs against the fake daemon and against a real rlimitd with the same two
concurrency policies: "two" (limit 2, lease 30 s) and "short" (limit 1, lease 300 ms).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator

import pytest

from daemons import Daemon, socket_dir, unique_key
from fakedaemon import FakeDaemon
from rlimit import AsyncClient, Client, Lease, LeaseDenied, LeaseUnknown, PolicyKind
from rlimit.protocol import Opcode, Response, Result, Status, decode_response, encode_response

LEASE_POLICIES = {
    "two": {"algorithm": "concurrency", "limit": 2, "lease": "30s"},
    "short": {"algorithm": "concurrency", "limit": 1, "lease": "300ms"},
    "rate": {"algorithm": "fixed_window", "limit": 5, "period": "1h"},
}


@pytest.fixture(scope="module")
def real_lease_daemon() -> Iterator[Daemon]:
    instance = Daemon(LEASE_POLICIES)
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture(params=["fake", pytest.param("daemon", marks=pytest.mark.daemon)])
def address(request: pytest.FixtureRequest) -> Iterator[str]:
    """The address of a daemon with LEASE_POLICIES: the fake, or a real one."""
    if request.param == "daemon":
        yield request.getfixturevalue("real_lease_daemon").address
        return
    directory = socket_dir()
    fake = FakeDaemon(os.path.join(directory, "fake.sock"), {"rate": 5})
    fake.concurrency = {"two": (2, 30_000), "short": (1, 300)}
    try:
        fake.start()
        yield "unix:" + fake.path
    finally:
        fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_client_acquire_release_renew(address: str) -> None:
    key = unique_key("sync")
    with Client(address) as client:
        first = client.acquire("two", key)
        assert isinstance(first, Lease) and first.allowed and first.lease != 0
        assert (first.limit, first.remaining, first.window, first.reset_after) == (2, 1, 30.0, 30.0)
        second = client.acquire("two", key)
        assert second.allowed and second.remaining == 0 and second.lease not in (0, first.lease)
        third = client.acquire("two", key)
        assert not third.allowed and third.lease == 0 and third.remaining == 0
        assert 29.0 < third.retry_after <= 30.0  # the earliest lease's expiry
        renewed = client.renew("two", key, first.lease)
        assert renewed.allowed and renewed.lease == first.lease and renewed.reset_after == 30.0
        released = client.release("two", key, first.lease)
        assert released.allowed and released.lease == first.lease and released.remaining == 1
        with pytest.raises(LeaseUnknown):
            client.release("two", key, first.lease)  # twice: frees its slot once
        with pytest.raises(LeaseUnknown):
            client.renew("two", key, first.lease)
        assert client.acquire("two", key).allowed  # the freed slot
        assert not client.acquire("two", key).allowed  # and only that one
        assert client.release("two", key, 0).allowed  # lease 0: nothing held, OK


def test_policy_kind_both_ways(address: str) -> None:
    with Client(address) as client:
        with pytest.raises(PolicyKind):
            client.acquire("rate", unique_key("kind"))
        with pytest.raises(PolicyKind):
            client.check("two", unique_key("kind"))


def test_slots_and_detach(address: str) -> None:
    key = unique_key("detach")
    with Client(address) as holder:
        kept = holder.acquire("two", key, detach=True)
        dropped = holder.acquire("two", key)
        assert kept.allowed and dropped.allowed
    with Client(address) as client:  # the holder's connection closed: only the detached lease is left
        deadline = time.monotonic() + 5
        while not client.acquire("two", key).allowed:  # the daemon notices the close soon after
            assert time.monotonic() < deadline, "the lease taken without DETACH was not released"
        assert not client.acquire("two", key).allowed
        assert client.release("two", key, kept.lease).allowed  # released by hand, from another connection


def test_async_acquire_release_renew(address: str) -> None:
    async def scenario() -> None:
        key = unique_key("async")
        async with AsyncClient(address) as client:
            first, second, third = await asyncio.gather(*(client.acquire("two", key) for _ in range(3)))
            assert sorted([first.allowed, second.allowed, third.allowed]) == [False, True, True]
            held = [lease for lease in (first, second, third) if lease.allowed]
            assert (await client.renew("two", key, held[0].lease)).lease == held[0].lease
            await client.release("two", key, held[0].lease)
            with pytest.raises(LeaseUnknown):
                await client.release("two", key, held[0].lease)
            assert (await client.acquire("two", key)).allowed

    asyncio.run(scenario())


def test_lease_context_releases_on_exit_and_exception(address: str) -> None:
    async def scenario() -> None:
        key = unique_key("ctx")
        async with AsyncClient(address) as client:
            async with client.lease("two", key) as held:
                assert held.lease != 0 and held.decision is not None and held.decision.remaining == 1
            with pytest.raises(RuntimeError):
                async with client.lease("two", key, slots=2):
                    with pytest.raises(LeaseDenied) as denied:
                        async with client.lease("two", key):
                            pass
                    assert denied.value.decision.retry_after > 0
                    raise RuntimeError("the endpoint failed")
            both = await client.acquire("two", key, 2)  # both slots free again
            assert both.allowed

    asyncio.run(scenario())


def test_lease_context_releases_on_cancellation(address: str) -> None:
    async def scenario() -> None:
        key = unique_key("cancel")
        async with AsyncClient(address) as client:
            entered = asyncio.Event()

            async def holder() -> None:
                async with client.lease("two", key, slots=2):
                    entered.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(holder())
            await asyncio.wait_for(entered.wait(), 5)
            assert not (await client.acquire("two", key)).allowed
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await client.acquire("two", key, 2)).allowed  # released before the task ended

    asyncio.run(scenario())


def test_background_renew_keeps_a_short_lease(address: str) -> None:
    """A 300 ms lease held for 1.2 s stays held (renewed every ~100 ms), then is released."""
    async def scenario() -> None:
        key = unique_key("renew")
        async with AsyncClient(address) as client:
            async with client.lease("short", key) as held:
                await asyncio.sleep(1.2)  # four lease lengths
                assert held.lost is None and held.renewals >= 4
                other = await client.acquire("short", key)
                assert not other.allowed  # still held by the block
            assert (await client.acquire("short", key)).allowed
            async with client.lease("short", unique_key("norenew"), renew=False) as unrenewed:
                await asyncio.sleep(0.45)  # expired
            assert unrenewed.release_error is not None and isinstance(unrenewed.release_error, LeaseUnknown)

    asyncio.run(scenario())


def test_leases_listing(address: str) -> None:
    key = unique_key("list")
    with Client(address) as client:
        lease = client.acquire("two", key, 2)
        listing = client.leases("two", key)
        assert listing["policy"] == "two" and listing["truncated"] is False
        assert [(entry["key"], entry["lease"], entry["slots"]) for entry in listing["leases"]] == [
            (key, str(lease.lease), 2)]
        assert 0 < listing["leases"][0]["expires_in_ms"] <= 30_000


def test_cancelled_acquire_releases_what_it_was_granted() -> None:
    """An ACQUIRE whose task is cancelled before the answer: the lease granted is released."""
    directory = socket_dir()
    fake = FakeDaemon(os.path.join(directory, "fake.sock"))

    async def scenario() -> None:
        async with AsyncClient("unix:" + fake.path) as client:
            task = asyncio.create_task(client.lease("two", b"slow:200").__aenter__())
            await asyncio.sleep(0.05)  # ACQUIRE sent, not answered
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deadline = time.monotonic() + 5
            while not any(r.opcode == Opcode.RELEASE for r in fake.requests):
                assert time.monotonic() < deadline, "the late lease was never released"
                await asyncio.sleep(0.01)
            await client.ping()
            assert fake.held_slots("two", b"slow:200") == 0

    try:
        fake.start()
        asyncio.run(scenario())
    finally:
        fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_lease_answers_without_their_lease_field_are_refused() -> None:
    whole = encode_response(Response(7, Opcode.ACQUIRE, Result(Status.ALLOWED, 0, 2, 1, 30000, 0, 30000), lease=9))
    assert decode_response(whole).lease == 9
    short = (len(whole) - 12).to_bytes(4, "big") + whole[4:-8]
    with pytest.raises(Exception, match="inside a field"):
        decode_response(short)
    # An older daemon answers an undefined opcode with the result alone: UNKNOWN_OPCODE, lease 0.
    old = encode_response(Response(7, Opcode.PING, Result(Status.UNKNOWN_OPCODE)))
    old = old[:5] + bytes([Opcode.ACQUIRE]) + old[6:]
    assert decode_response(old).result.status == Status.UNKNOWN_OPCODE
