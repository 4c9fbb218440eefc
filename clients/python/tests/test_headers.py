"""The rate-limit headers against proto/vectors/headers.json (the contract of
proto/HEADERS.md), line for line: the header functions, the middleware's ASGI output
for every vector, and the daemon's own /check answers for the same decisions."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemons import REPO, Daemon, free_port
from rlimit.decision import Decision, to_decision
from rlimit.errors import StatusError
from rlimit.fastapi import RateLimitMiddleware
from rlimit.headers import decision_headers, denied_headers, limit_headers, policy_sf, raw_limit_headers
from rlimit.protocol import Flag, Result, Status

HEADER_VECTORS = REPO / "proto" / "vectors" / "headers.json"


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared header vectors must be in the repository")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    return list(document["vectors"])


VECTORS = _load(HEADER_VECTORS) if HEADER_VECTORS.exists() else []
NAMES = [vector["name"] for vector in VECTORS]


def result_of(vector: dict[str, Any]) -> Result:
    fields = dict(vector["result"])
    flags = 0
    for name in fields.pop("flags"):
        flags |= int(Flag[name])
    return Result(int(Status[fields.pop("status")]), flags, **fields)


def lines(headers: list[tuple[str, str]]) -> list[str]:
    return [f"{name}: {value}" for name, value in headers]


def test_the_file_holds_every_case_of_the_contract() -> None:
    assert len(VECTORS) >= 20
    for needed in ("allowed", "denied", "exempt", "blocked", "shadow_denied", "fallback_allow", "fallback_deny",
                   "policy_quote_backslash", "policy_percent", "policy_non_ascii", "policy_controls",
                   "policy_header_injection", "denied_retry_zero", "error_status"):
        assert needed in NAMES


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_header_functions_match_the_vector(vector: dict[str, Any]) -> None:
    result = result_of(vector)
    policy, expected = vector["policy"], vector["headers"]
    if result.status > Status.DENIED:
        with pytest.raises(StatusError):  # not a decision: nothing to write headers from
            to_decision(result)
        assert expected == []
        return
    decision = to_decision(result)
    assert lines(decision_headers(policy, decision)) == expected
    if decision.allowed:
        assert lines(limit_headers(policy, decision)) == expected
        raw = [(name.lower().encode(), value.encode()) for name, value in (line.split(": ", 1) for line in expected)]
        assert raw_limit_headers(policy, decision) == raw
        assert raw_limit_headers(policy, decision) == raw  # its remembered parts
    else:
        assert lines(denied_headers(policy, decision)) == expected


class StubClient:
    """Answers every check with one result, as the daemon would have."""

    address = "stub"

    def __init__(self, result: Result) -> None:
        self.result = result  # what every check answers

    async def check(self, policy: str, key: str | bytes, cost: int = 1) -> Decision:
        return to_decision(self.result)  # raises the StatusError of an error status


async def _bare_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _through_middleware(policy: str, result: Result) -> tuple[int, list[tuple[bytes, bytes]]]:
    middleware = RateLimitMiddleware(_bare_app, policy=policy, client=StubClient(result))  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [],
             "client": ("203.0.113.7", 1234)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    start = sent[0]
    headers = [(name, value) for name, value in start["headers"] if name not in (b"content-type", b"content-length")]
    return start["status"], headers


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_middleware_sends_exactly_the_vector(vector: dict[str, Any]) -> None:
    result = result_of(vector)
    status, headers = asyncio.run(_through_middleware(vector["policy"], result))
    assert status == (429 if result.status == Status.DENIED else 200)  # an error status: on_error allow
    assert [f"{name.decode('ascii')}: {value.decode('ascii')}" for name, value in headers] == [
        line.lower().split(": ", 1)[0] + ": " + line.split(": ", 1)[1] for line in vector["headers"]]


def test_policy_name_is_remembered_and_printable() -> None:
    assert policy_sf("x\r\nSet-Cookie: a=b") == '"x%0d%0aSet-Cookie: a=b"'
    assert policy_sf("x\r\nSet-Cookie: a=b") is policy_sf("x\r\nSet-Cookie: a=b")  # computed once
    assert policy_sf("\udcff") == '"%ff"'  # what the client sends for a lone surrogate: byte 0xff
    for code in range(0x300):
        assert all(0x20 <= ord(c) <= 0x7E for c in policy_sf(f"a{chr(code)}z"))


# The daemon's /check against the same contract, on real decisions.

ODD_NAME = 'lögin "x" 50%'
HTTP_POLICIES: dict[str, dict[str, Any]] = {
    "exempt1": {"algorithm": "fixed_window", "limit": 2, "period": "1h", "exempt": ["vip"], "block": ["foe"]},
    "shadow1": {"algorithm": "fixed_window", "limit": 1, "period": "1h", "mode": "shadow"},
    ODD_NAME: {"algorithm": "fixed_window", "limit": 1, "period": "90s"},
}


@pytest.fixture(scope="module")
def http_daemon() -> Iterator[tuple[Daemon, int]]:
    daemon = Daemon(HTTP_POLICIES)
    port = free_port()
    config = json.loads(Path(daemon.config_path).read_text())
    config["listen"].append(f"http:127.0.0.1:{port}")
    Path(daemon.config_path).write_text(json.dumps(config))
    try:
        daemon.start()
        yield daemon, port
    finally:
        daemon.close()


def check_over_http(port: int, policy: str, key: str) -> tuple[int, list[str], dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/check", headers={"X-RateLimit-Policy": policy.encode().decode("latin-1"),
                                                     "X-RateLimit-Key": key})
        answer = connection.getresponse()
        wanted = ("retry-after", "x-ratelimit-", "ratelimit")
        got = [f"{name}: {value}" for name, value in answer.getheaders() if name.lower().startswith(wanted)]
        return answer.status, got, json.loads(answer.read())
    finally:
        connection.close()


def contract(policy: str, body: dict[str, Any], flags: int) -> list[str]:
    result = Result(int(Status.ALLOWED if body["allowed"] else Status.DENIED), flags, body["limit"],
                    body["remaining"], body["reset_after_ms"], body["retry_after_ms"], body["window_ms"])
    return lines(decision_headers(policy, to_decision(result)))


@pytest.mark.parametrize(("policy", "key", "flags", "status"), [
    ("exempt1", "vip", int(Flag.EXEMPT), 200),
    ("exempt1", "foe", int(Flag.BLOCKED), 429),
    ("exempt1", "someone", 0, 200),
    ("shadow1", "s", 0, 200),
    ("shadow1", "s", int(Flag.SHADOW), 200),
    (ODD_NAME, "o", 0, 200),
    (ODD_NAME, "o", 0, 429),
])
def test_check_endpoint_writes_the_same_headers(http_daemon: tuple[Daemon, int], policy: str, key: str,
                                                flags: int, status: int) -> None:
    code, got, body = check_over_http(http_daemon[1], policy, key)
    assert code == status
    assert got == contract(policy, body, flags)
    if flags & (Flag.EXEMPT | Flag.BLOCKED):
        assert not any(line.startswith(("X-RateLimit", "RateLimit")) for line in got)
    if policy == ODD_NAME:
        assert '"l%c3%b6gin \\"x\\" 50%25";q=1;w=90' in got[-2]
