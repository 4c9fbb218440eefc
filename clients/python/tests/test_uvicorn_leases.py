"""Concurrency leases through FastAPI under a real uvicorn (tests/lease_app.py), real HTTP.

Under each of uvicorn's two stacks, against the fake daemon and a real rlimitd with
the same policies ("two": concurrency, limit 2; "rate": 3 a minute). Each
test uses tenants (keys) and gates of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from daemons import Daemon, socket_dir, unique_key
from fakedaemon import FakeDaemon
from test_uvicorn import Server, start_server, wait_ready

POLICIES = {
    "two": {"algorithm": "concurrency", "limit": 2, "lease": "30s"},
    # limit 3 a minute, as the fake's window (60 s, never rolls over): a sliding window, so
    # that a minute's boundary between a test's requests gives no unit back (a fixed window
    # did, now and then: the 4th request of test_rate_and_concurrency_on_one_route allowed)
    "rate": {"algorithm": "sliding_window_log", "limit": 3, "period": "1m"},
}
TARGETS = [(stack, target) for target in ("fake", "daemon") for stack in ("asyncio-h11", "uvloop-httptools")]


@pytest.fixture(scope="module",
                params=[pytest.param(t, marks=[pytest.mark.daemon] if t[1] == "daemon" else []) for t in TARGETS],
                ids=[f"{target}-{stack}" for stack, target in TARGETS])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    stack, target = request.param
    directory = socket_dir()
    daemon = fake = None
    process = None
    try:
        if target == "daemon":
            daemon = Daemon(POLICIES)
            daemon.start()
            address = daemon.address
        else:
            fake = FakeDaemon(os.path.join(directory, "fake.sock"), {"rate": 3})
            fake.concurrency = {"two": (2, 30_000)}
            fake.start()
            address = "unix:" + fake.path
        app_env = {"RLIMITD_ADDRESS": address}
        process = start_server(directory, "leases", stack, app_env, "tests.lease_app:app")
        wait_ready(process)
        yield process
    finally:
        if process is not None:
            process.process.kill()  # gates left closed keep requests open: a graceful stop would wait for them
            process.process.wait(10)
        if daemon is not None:
            daemon.close()
        if fake is not None:
            fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


def started(response: httpx.Response) -> Iterator[bytes]:
    """Reads a gated stream's first part; returns its iterator, to be kept (dropping it closes the response)."""
    chunks = response.iter_raw()
    received = b""
    while received != b"first;":
        received += next(chunks)
        assert b"first;".startswith(received), received
    return chunks


def tenant() -> dict[str, str]:
    return {"x-tenant": unique_key("tenant")}


def eventually_allowed(url: str, headers: dict[str, str]) -> httpx.Response:
    """GETs url until it is not 429 (the server frees a slot right after an event it sees
    asynchronously: a disconnect); fails after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        answer = httpx.get(url, headers=headers, timeout=5)
        if answer.status_code != 429 or time.monotonic() > deadline:
            return answer


def test_third_concurrent_request_is_denied(server: Server) -> None:
    who = tenant()
    gate = unique_key("gate")
    with httpx.Client(base_url=server.url, headers=who, timeout=10) as one, \
            httpx.Client(base_url=server.url, headers=who, timeout=10) as two:
        with one.stream("GET", f"/stream/{gate}") as first, two.stream("GET", f"/stream/{gate}") as second:
            rest = started(first), started(second)
            third = httpx.get(f"{server.url}/slow/{gate}", headers=who, timeout=5)
            assert third.status_code == 429
            assert third.json() == {"error": "rate_limited", "policy": "two", "retry_after": third.json()["retry_after"]}
            assert 29 < third.json()["retry_after"] <= 30
            assert third.headers["Retry-After"] == "30"
            assert third.headers["X-RateLimit-Limit"] == "2" and third.headers["X-RateLimit-Remaining"] == "0"
            assert third.headers["RateLimit-Policy"] == '"two";q=2;w=30'
            assert first.headers["RateLimit-Policy"] == '"two";q=2;w=30'
            assert first.headers["RateLimit"] == '"two";r=1;t=30'
            httpx.get(f"{server.url}/open/{gate}", timeout=5)
            assert [b"".join(chunks) for chunks in rest] == [b"last", b"last"]
    # Both streams have sent their last byte: both slots are free again.
    gate2 = unique_key("gate")
    httpx.get(f"{server.url}/open/{gate2}", timeout=5)
    answers = [httpx.get(f"{server.url}/slow/{gate2}", headers=who, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


def test_streaming_response_holds_its_slot_until_its_last_byte(server: Server) -> None:
    who = tenant()
    gate = unique_key("gate")
    with httpx.Client(base_url=server.url, headers=who, timeout=10) as client:
        with client.stream("GET", f"/stream/{gate}") as first:
            first_rest = started(first)
            with httpx.Client(base_url=server.url, headers=who, timeout=10) as other:
                with other.stream("GET", f"/stream/{gate}") as second:
                    second_rest = started(second)
                    assert httpx.get(f"{server.url}/boom", headers=who).status_code == 429  # both held
                    httpx.get(f"{server.url}/open/{gate}", timeout=5)
                    assert b"".join(second_rest) == b"last"
            assert httpx.get(f"{server.url}/boom", headers=who).status_code == 500  # the second's slot
            assert b"".join(first_rest) == b"last"
    # Exceptions free their slot too: three failures in a row, each got a slot.
    assert [httpx.get(f"{server.url}/boom", headers=who).status_code for _ in range(3)] == [500, 500, 500]


def test_client_disconnecting_mid_stream_frees_its_slot(server: Server) -> None:
    who = tenant()
    gate = unique_key("gate")  # never opened: the streams would hang forever
    host, port = server.url.removeprefix("http://").split(":")
    request = f"GET /stream/{gate} HTTP/1.1\r\nhost: x\r\nx-tenant: {who['x-tenant']}\r\n\r\n".encode()
    for _ in range(2):  # both slots, then the clients vanish mid-response
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(request)
            received = b""
            while b"first;" not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
            assert received.startswith(b"HTTP/1.1 200")
    opened = unique_key("gate")
    httpx.get(f"{server.url}/open/{opened}", timeout=5)
    assert eventually_allowed(f"{server.url}/slow/{opened}", who).status_code == 200
    assert httpx.get(f"{server.url}/slow/{opened}", headers=who, timeout=5).status_code == 200  # both free


def test_dependency_holds_the_slot_until_the_stream_ends(server: Server) -> None:
    who = tenant()
    gate = unique_key("gate")
    with httpx.Client(base_url=server.url, headers=who, timeout=10) as one, \
            httpx.Client(base_url=server.url, headers=who, timeout=10) as two:
        with one.stream("GET", f"/dep/{gate}") as first, two.stream("GET", f"/dep/{gate}") as second:
            rest = started(first), started(second)
            # (FastAPI adds a dependency's headers only to responses it makes, not to a returned StreamingResponse.)
            third = httpx.get(f"{server.url}/dep/{gate}", headers=who, timeout=5)
            assert third.status_code == 429 and third.headers["Retry-After"] == "30"
            assert third.headers["RateLimit-Policy"] == '"two";q=2;w=30'
            httpx.get(f"{server.url}/open/{gate}", timeout=5)
            assert [b"".join(chunks) for chunks in rest] == [b"last", b"last"]
    answers = [httpx.get(f"{server.url}/dep/{gate}", headers=who, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


def test_rate_and_concurrency_on_one_route(server: Server) -> None:
    who = tenant()
    gate = unique_key("gate")
    with httpx.Client(base_url=server.url, headers=who, timeout=10) as one, \
            httpx.Client(base_url=server.url, headers=who, timeout=10) as two:
        with one.stream("GET", f"/both/{gate}") as first, two.stream("GET", f"/both/{gate}") as second:
            rest = started(first), started(second)
            # rate: 2 of 3 spent; concurrency: both slots held (the responses wait for the gate)
            third = httpx.get(f"{server.url}/both/{gate}", headers=who, timeout=5)
            assert third.status_code == 429 and third.json()["policy"] == "two"  # the rate unit stays spent
            fourth = httpx.get(f"{server.url}/both/{gate}", headers=who, timeout=5)
            assert fourth.status_code == 429 and fourth.json()["policy"] == "rate"  # acquires nothing
            httpx.get(f"{server.url}/open/{gate}", timeout=5)
            assert [b"".join(chunks) for chunks in rest] == [b"last", b"last"]
            assert first.headers["RateLimit-Policy"] == '"rate";q=3;w=60'  # the rule's first policy
    other = tenant()  # the denied rate check above took no slot: a fresh tenant gets both
    answers = [httpx.get(f"{server.url}/both/{gate}", headers=other, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
