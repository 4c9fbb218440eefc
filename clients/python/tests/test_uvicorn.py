"""examples/app.py under a real uvicorn, real HTTP through httpx, a real daemon.

Under each of uvicorn's two stacks (STACKS), two servers share one daemon: `allow` (on_error allow, trusting the proxy
127.0.0.2) and `deny` (on_error deny). Requests from 127.0.0.2 play the proxy. The
genuine API keys are GENUINE_KEYS; tests that key by address each send from a
loopback address of their own (127.0.0.3 and up). The last test kills the daemon
under both servers and brings it back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from daemons import PYTHON_DIR, Daemon, free_port, unique_key

PROXY = "127.0.0.2"
LONG_KEY = "long-" + "k" * 600  # over the daemon's max_key (512)
GENUINE_KEYS = ["genuine-key-1", "genuine-key-2", LONG_KEY]


@dataclass
class Server:
    """A uvicorn process serving examples.app:app."""

    url: str  # http://127.0.0.1:PORT
    log_path: Path  # its stderr
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# uvicorn's two stacks: the pure-Python one (asyncio's loop, h11), and the one of
# `pip install uvicorn[standard]` (uvloop, httptools), which most deployments run.
STACKS = {"asyncio-h11": ["--loop", "asyncio", "--http", "h11"],
          "uvloop-httptools": ["--loop", "uvloop", "--http", "httptools"]}


def start_server(directory: str, name: str, stack: str, env: dict[str, str], app: str = "examples.app:app") -> Server:
    port = free_port()
    log_path = Path(directory) / f"{name}-{stack}.log"
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
               "--port", str(port), "--no-proxy-headers", "--log-level", "warning", *STACKS[stack]]
    environment = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), **env}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PYTHON_DIR, env=environment, stdout=log, stderr=log)
    return Server(f"http://127.0.0.1:{port}", log_path, process)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    pytest.fail(f"uvicorn did not answer within 20 s:\n{server.log()}")


@pytest.fixture(scope="module", params=list(STACKS))
def uvicorn_servers(request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Server, Server]]:
    daemon = Daemon()
    servers: list[Server] = []
    try:
        daemon.start()
        keys_file = Path(daemon.directory) / "api-keys"
        keys_file.write_text("".join(key + "\n" for key in GENUINE_KEYS))
        common = {"RLIMITD_ADDRESS": daemon.address, "RLIMIT_TRUSTED_PROXIES": PROXY,
                  "RLIMIT_API_KEYS_FILE": str(keys_file)}
        for name in ("allow", "deny"):
            servers.append(start_server(daemon.directory, name, request.param, {**common, "RLIMIT_ON_ERROR": name}))
        for server in servers:
            wait_ready(server)
        yield daemon, servers[0], servers[1]
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(10)
        daemon.close()


@pytest.fixture
def allow(uvicorn_servers: tuple[Daemon, Server, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=uvicorn_servers[1].url, timeout=5) as client:
        yield client


def test_denial_headers_over_http(allow: httpx.Client) -> None:
    key = {"x-api-key": "genuine-key-1"}
    first = allow.post("/auth/token", headers=key)
    assert first.status_code == 200
    assert first.headers["RateLimit"] == '"login";r=1;t=900'
    assert allow.post("/auth/token", headers=key).status_code == 200
    denied = allow.post("/auth/token", headers=key)
    assert denied.status_code == 429
    assert denied.headers["Retry-After"] == "900"
    assert denied.headers["X-RateLimit-Limit"] == "2"
    assert denied.headers["X-RateLimit-Remaining"] == "0"
    assert denied.headers["X-RateLimit-Reset"] == "900"
    assert denied.headers["RateLimit-Policy"] == '"login";q=2;w=900'
    assert denied.headers["RateLimit"] == '"login";r=0;t=900'
    body = denied.json()
    assert body["error"] == "rate_limited" and body["policy"] == "login"
    assert 899 < body["retry_after"] <= 900


def test_health_is_exempt(allow: httpx.Client) -> None:
    for _ in range(30):
        answer = allow.get("/health")
        assert answer.status_code == 200 and "x-ratelimit-limit" not in answer.headers


def test_spoofed_forwarded_for_is_ignored(allow: httpx.Client, uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    remaining = [
        allow.post("/upload", headers={"X-Forwarded-For": f"203.0.113.{n}"}).headers["X-RateLimit-Remaining"]
        for n in range(3)
    ]
    assert remaining == ["9", "8", "7"]  # one key, 127.0.0.1, whatever the header says


def test_trusted_proxy_forwarded_for_is_believed(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    transport = httpx.HTTPTransport(local_address=PROXY)
    with httpx.Client(base_url=uvicorn_servers[1].url, transport=transport, timeout=5) as proxy:
        def remaining(forwarded_for: str) -> str:
            answer = proxy.post("/upload", headers={"X-Forwarded-For": forwarded_for})
            return answer.headers["X-RateLimit-Remaining"]

        assert remaining("198.51.100.7") == "9"
        assert remaining("198.51.100.8") == "9"  # another client, another counter
        assert remaining("6.6.6.6, 198.51.100.7") == "8"  # the forged left part is ignored
        assert remaining(f"198.51.100.7, {PROXY}") == "7"  # the proxy itself is skipped


def test_daemon_killed_under_the_servers(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    daemon, allow_server, deny_server = uvicorn_servers
    assert httpx.get(allow_server.url + "/").headers["X-RateLimit-Remaining"] == "19"
    daemon.stop()
    try:
        for _ in range(5):
            answer = httpx.get(allow_server.url + "/")
            assert answer.status_code == 200 and "x-ratelimit-limit" not in answer.headers
            refused = httpx.get(deny_server.url + "/")
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert refused.json() == {"error": "rate_limiter_unavailable"}
    finally:
        daemon.start()
    time.sleep(1.1)  # the middleware's retry_interval
    assert httpx.get(allow_server.url + "/").headers["X-RateLimit-Remaining"] == "19"  # a fresh daemon
    assert httpx.get(deny_server.url + "/").status_code == 200
    for server in (allow_server, deny_server):
        assert server.log().count("cannot decide") == 1, server.log()
        assert server.log().count("answers again after") == 1, server.log()


# A client cannot choose its key (issue 11, point 6): unknown API keys are limited by address.


def from_address(servers: tuple[Daemon, Server, Server], address: str) -> httpx.Client:
    """A client of the `allow` server sending from a loopback address of its own."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=servers[1].url, transport=transport, timeout=5)


def test_invented_api_keys_gain_nothing(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    with from_address(uvicorn_servers, "127.0.0.3") as client:
        answers = [client.post("/auth/token", headers={"x-api-key": unique_key("rotated")}) for _ in range(8)]
    assert [a.status_code for a in answers] == [200, 200] + [429] * 6


def test_api_key_cannot_pose_as_an_exempt_address(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    with from_address(uvicorn_servers, "127.0.0.4") as client:
        answers = [client.post("/auth/token", headers={"x-api-key": forged})
                   for forged in ("10.0.0.1", "ip:10.0.0.1", "10.0.0.1", "ip:10.0.0.1")]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert answers[0].headers["RateLimit"] == '"login";r=1;t=900'  # counted: not exempt


def test_api_key_cannot_claim_an_override(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    with from_address(uvicorn_servers, "127.0.0.5") as client:
        for forged in ("partner-42", "apikey:partner-42"):
            answer = client.post("/auth/token", headers={"x-api-key": forged})
            assert answer.headers["RateLimit-Policy"] == '"login";q=2;w=900'  # not the partner's 50


def test_api_key_cannot_spend_a_victims_address(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    with from_address(uvicorn_servers, "127.0.0.6") as attacker:
        for forged in ("127.0.0.7", "ip:127.0.0.7") * 3:
            attacker.post("/auth/token", headers={"x-api-key": forged})
    with from_address(uvicorn_servers, "127.0.0.7") as victim:
        answer = victim.post("/auth/token")
    assert answer.status_code == 200 and answer.headers["RateLimit"] == '"login";r=1;t=900'


def test_genuine_keys_have_their_own_counters(uvicorn_servers: tuple[Daemon, Server, Server]) -> None:
    with from_address(uvicorn_servers, "127.0.0.8") as client:
        assert client.post("/auth/token").headers["RateLimit"] == '"login";r=1;t=900'
        for key in ("genuine-key-2", LONG_KEY):  # the long one is hashed, never an error
            answers = [client.post("/auth/token", headers={"x-api-key": key}) for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 429]
            assert answers[0].headers["RateLimit"] == '"login";r=1;t=900'
        assert client.post("/auth/token").headers["RateLimit"] == '"login";r=0;t=900'
