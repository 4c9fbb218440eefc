"""RateLimitMiddleware and RateLimit through FastAPI's TestClient, against the real daemon.

TestClient's peer is "testclient"; tests key by an X-Key header of their own so
they do not share counters (the session daemon outlives each test).
"""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from starlette.testclient import TestClient

from daemons import Daemon, unique_key
from rlimit import Decision
from rlimit.fastapi import (
    RateLimit,
    RateLimitExceeded,
    RateLimitMiddleware,
    api_key,
    rate_limit_exceeded_handler,
    user_id,
)

BY_HEADER = api_key("x-key", valid=None)  # tests believe every key: "apikey:<x-key>"


def raw_key(request: Request) -> str | None:
    """The X-Key header as it is: keys the fake daemon reads as scripts."""
    return request.headers.get("x-key")



def make_app(**middleware: Any) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(RateLimitMiddleware, **middleware)

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/auth/token")
    async def token() -> dict[str, str]:
        return {"token": "t"}

    @app.post("/upload")
    async def upload() -> dict[str, bool]:
        return {"stored": True}

    @app.get("/items/{item_id}/search")
    async def item_search(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/limited")
    async def limited(decision: Decision | None = Depends(RateLimit("swl1", key=BY_HEADER))) -> dict[str, Any]:
        return {"remaining": decision.remaining if decision else None}

    return app


@pytest.fixture
def http(daemon: Daemon) -> Iterator[TestClient]:
    """A client of an app limited by policy swl3, keyed by X-Key."""
    with TestClient(make_app(address=daemon.address, policy="swl3", key=BY_HEADER)) as client:
        yield client


def test_minimal_configuration_keys_by_client_address(daemon: Daemon) -> None:
    app = make_app(address=daemon.address, policy="swl3")  # nothing else
    with TestClient(app) as client:
        answers = [client.get("/") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        spoofed = client.get("/", headers={"X-Forwarded-For": "1.2.3.4"})  # no trusted proxies
        assert spoofed.status_code == 429
        assert client.get("/health").status_code == 200  # exempt by default
        assert "x-ratelimit-limit" not in client.get("/health").headers


def test_allowed_responses_carry_the_limit(http: TestClient) -> None:
    key = {"x-key": unique_key("allowed")}
    answer = http.get("/", headers=key)
    assert answer.status_code == 200 and answer.json() == {"ok": "yes"}
    assert answer.headers["X-RateLimit-Limit"] == "3"
    assert answer.headers["X-RateLimit-Remaining"] == "2"
    assert answer.headers["X-RateLimit-Reset"] == "3600"
    assert answer.headers["RateLimit-Policy"] == '"swl3";q=3;w=3600'
    assert answer.headers["RateLimit"] == '"swl3";r=2;t=3600'
    assert "retry-after" not in answer.headers


def test_denial_is_a_429_with_exact_headers(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    key = unique_key("denied")
    caplog.set_level(logging.INFO, logger="rlimit.denied")
    for _ in range(3):
        assert http.get("/", headers={"x-key": key}).status_code == 200
    answer = http.get("/", headers={"x-key": key})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3600"
    assert answer.headers["X-RateLimit-Limit"] == "3"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["X-RateLimit-Reset"] == "3600"
    assert answer.headers["RateLimit-Policy"] == '"swl3";q=3;w=3600'
    assert answer.headers["RateLimit"] == '"swl3";r=0;t=3600'
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["error"] == "rate_limited" and body["policy"] == "swl3"
    assert 3599 < body["retry_after"] <= 3600
    denials = [r.getMessage() for r in caplog.records if r.name == "rlimit.denied"]
    assert len(denials) == 1
    assert denials[0].startswith(f'denied policy="swl3" key="apikey:{key}" path="/" retry_after=')


def test_exempt_paths(daemon: Daemon) -> None:
    app = make_app(address=daemon.address, policy="pair_b", key=BY_HEADER, exempt=["/health", "/upload"])
    with TestClient(app) as client:
        key = {"x-key": unique_key("exempt")}
        assert client.get("/", headers=key).status_code == 200
        assert client.get("/", headers=key).status_code == 429
        for _ in range(3):
            assert client.get("/health", headers=key).status_code == 200
            assert client.post("/upload", headers=key).status_code == 200


def test_rules_choose_the_policy(daemon: Daemon) -> None:
    rules = {"/auth/token": "login", "/upload": "upload", "/items/{id}/search": "pair_b"}
    app = make_app(address=daemon.address, policy="fw5", rules=rules, key=BY_HEADER)
    with TestClient(app) as client:
        key = {"x-key": unique_key("rules")}
        assert client.post("/auth/token", headers=key).headers["RateLimit-Policy"] == '"login";q=2;w=900'
        assert client.post("/upload", headers=key).headers["RateLimit-Policy"] == '"upload";q=10;w=3600'
        assert client.get("/", headers=key).headers["RateLimit-Policy"] == '"fw5";q=5;w=3600'
        assert client.get("/items/3/search", headers=key).status_code == 200
        assert client.get("/items/4/search", headers=key).status_code == 429  # one limit for the route
        assert [client.post("/auth/token", headers=key).status_code for _ in range(2)] == [200, 429]


def test_policy_callable_gives_tiered_limits(daemon: Daemon) -> None:
    async def tier(request: Request) -> str:
        return "pair_a" if request.headers.get("x-plan") == "pro" else "pair_b"

    app = make_app(address=daemon.address, policy=tier, key=BY_HEADER)
    with TestClient(app) as client:
        free = {"x-key": unique_key("free")}
        pro = {"x-key": unique_key("pro"), "x-plan": "pro"}
        assert [client.get("/", headers=free).status_code for _ in range(2)] == [200, 429]
        assert [client.get("/", headers=pro).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_cost_function(daemon: Daemon) -> None:
    app = make_app(address=daemon.address, policy="fw5", key=BY_HEADER,
                   cost=lambda request: int(request.headers.get("x-cost", "1")))
    with TestClient(app) as client:
        key = unique_key("cost")
        assert client.get("/", headers={"x-key": key, "x-cost": "4"}).headers["X-RateLimit-Remaining"] == "1"
        assert client.get("/", headers={"x-key": key, "x-cost": "2"}).status_code == 429
        too_big = client.get("/", headers={"x-key": key, "x-cost": "6"})
        assert too_big.status_code == 429 and "retry-after" not in too_big.headers
        assert too_big.json() == {"error": "rate_limited", "policy": "fw5", "retry_after": None}


def test_user_id_key(daemon: Daemon) -> None:
    class Auth:
        """Sets request.state.user_id from X-User, like an authentication middleware."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            for name, value in scope.get("headers", ()):
                if name == b"x-user":
                    scope.setdefault("state", {})["user_id"] = value.decode()
            await self.app(scope, receive, send)

    app = make_app(address=daemon.address, policy="pair_b", key=user_id())
    app.add_middleware(Auth)  # added last: runs first
    with TestClient(app) as client:
        alice, bob = {"x-user": unique_key("alice")}, {"x-user": unique_key("bob")}
        assert [client.get("/", headers=alice).status_code for _ in range(2)] == [200, 429]
        assert client.get("/", headers=bob).status_code == 200


def test_dependency_with_and_without_handler(daemon: Daemon) -> None:
    app = make_app()  # no middleware: RateLimit's own client of $RLIMITD_ADDRESS / address
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLIMITD_ADDRESS", daemon.address)
        with TestClient(app) as client:
            key = {"x-key": unique_key("dependency")}
            first = client.get("/limited", headers=key)
            assert first.status_code == 200 and first.json() == {"remaining": 0}
            assert first.headers["RateLimit"] == '"swl1";r=0;t=3600'
            denied = client.get("/limited", headers=key)
            assert denied.status_code == 429 and denied.headers["X-RateLimit-Limit"] == "1"
            assert denied.json()["detail"]["error"] == "rate_limited"
        app = make_app()
        app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)
        with TestClient(app) as client:
            denied = client.get("/limited", headers=key)
            assert denied.status_code == 429 and denied.json()["policy"] == "swl1"
            assert denied.headers["Retry-After"] == "3600"


def test_dependency_uses_the_middleware_settings(daemon: Daemon) -> None:
    app = make_app(address=daemon.address, policy="fw5", rules={"/limited": None}, key=BY_HEADER)
    with TestClient(app) as client:
        key = {"x-key": unique_key("shared")}
        assert client.get("/limited", headers=key).headers["RateLimit"] == '"swl1";r=0;t=3600'
        assert client.get("/limited", headers=key).status_code == 429
    limiter = app.middleware_stack.app.limiter  # type: ignore[attr-defined]
    assert str(limiter.client.address) == daemon.address


@pytest.mark.parametrize("on_error", ["allow", "deny"])
def test_unreachable_daemon(on_error: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlimit")
    app = make_app(address="unix:/nonexistent/rlimitd.sock", policy="api", on_error=on_error)
    with TestClient(app) as client:
        answers = [client.get("/") for _ in range(5)]
    if on_error == "allow":
        assert [a.status_code for a in answers] == [200] * 5
        assert "x-ratelimit-limit" not in answers[0].headers
    else:
        assert [a.status_code for a in answers] == [503] * 5
        assert answers[0].headers["Retry-After"] == "1"
        assert answers[0].json() == {"error": "rate_limiter_unavailable"}
    assert len([r for r in caplog.records if r.name == "rlimit"]) == 1


@pytest.mark.parametrize("on_error", ["allow", "deny"])
def test_unknown_policy_is_a_500_logged_once(on_error: str, daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlimit")
    app = make_app(address=daemon.address, policy="fw5", rules={"/upload": "no_such_policy"}, on_error=on_error)
    with TestClient(app) as client:
        answers = [client.post("/upload") for _ in range(3)]
        assert [a.status_code for a in answers] == [500] * 3
        assert answers[0].json() == {"error": "rate_limiter_misconfigured"}
        assert client.get("/").headers["X-RateLimit-Limit"] == "5"  # other policies go on
    errors = [r for r in caplog.records if r.name == "rlimit"]
    assert len(errors) == 1 and errors[0].levelname == "ERROR"
    assert "UNKNOWN_POLICY" in errors[0].getMessage()


def test_daemon_killed_mid_test(own_daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlimit")
    app = make_app(address=own_daemon.address, policy="fw5", retry_interval=0)
    with TestClient(app) as client:
        assert client.get("/").headers["X-RateLimit-Remaining"] == "4"
        own_daemon.stop()
        answers = [client.get("/") for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert all("x-ratelimit-limit" not in a.headers for a in answers)
        own_daemon.start()
        assert client.get("/").headers["X-RateLimit-Remaining"] == "4"  # a fresh daemon
    messages = [r.getMessage() for r in caplog.records if r.name == "rlimit"]
    assert len(messages) == 2
    assert "cannot decide" in messages[0] and "answers again after" in messages[1]


def test_slow_daemon_times_out(fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlimit")
    app = make_app(address=f"unix:{fake.path}", policy="five", key=raw_key, timeout=0.1)
    with TestClient(app) as client:
        answer = client.get("/", headers={"x-key": "hang"})
        assert answer.status_code == 200 and "x-ratelimit-limit" not in answer.headers
        answer = client.get("/", headers={"x-key": "k"})  # within retry_interval: not asked
        assert answer.status_code == 200 and "x-ratelimit-limit" not in answer.headers
    assert len([r for r in caplog.records if r.name == "rlimit"]) == 1


# One request's error status is that request's alone (issue 11, point 5).


def test_store_full_for_one_request_leaves_every_other_answer_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlimit")
    daemon = Daemon({"pair_b": {"algorithm": "fixed_window", "limit": 1, "period": "1h"}},
                    store={"type": "memory", "max_keys": 2})
    try:
        daemon.start()
        app = make_app(address=daemon.address, policy="pair_b", key=raw_key, retry_interval=60)
        with TestClient(app) as client:
            def status(key: str) -> int:
                return client.get("/", headers={"x-key": key}).status_code

            assert [status("limited"), status("limited"), status("second")] == [200, 429, 200]
            full = client.get("/", headers={"x-key": "third"})  # the store holds max_keys keys
            assert full.status_code == 200 and "x-ratelimit-limit" not in full.headers  # on_error allow
            assert [status("limited") for _ in range(50)] == [429] * 50
            assert status("second") == 429
            assert status("fourth") == 200  # STORE_FULL again: that request alone
    finally:
        daemon.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "rlimit"]
    assert len(warnings) == 1 and "STORE_FULL" in warnings[0], warnings


TRANSIENT = ["STORE_FULL", "BUSY", "INTERNAL", "STORE_UNAVAILABLE"]
REFUSALS = ["UNKNOWN_POLICY", "KEY_TOO_LONG", "KEY_EMPTY", "COST_INVALID", "NOT_PERMITTED", "AUTH_REQUIRED",
            "AUTH_FAILED", "UNKNOWN_OPCODE"]


@pytest.mark.parametrize("on_error", ["allow", "deny"])
@pytest.mark.parametrize("status", TRANSIENT + REFUSALS)
def test_error_status_is_answered_for_that_request_alone(
    fake: Any, status: str, on_error: str, caplog: pytest.LogCaptureFixture
) -> None:
    from rlimit.protocol import Status

    caplog.set_level(logging.WARNING, logger="rlimit")
    fake.statuses["broken"] = Status[status]
    app = make_app(address=f"unix:{fake.path}", policy="one", rules={"/upload": "broken"}, key=raw_key,
                   on_error=on_error, retry_interval=60)
    with TestClient(app) as client:
        def get(key: str) -> Any:
            return client.get("/", headers={"x-key": key})

        assert [get("limited").status_code, get("limited").status_code] == [200, 429]
        broken = [client.post("/upload", headers={"x-key": "someone"}) for _ in range(3)]
        if status in TRANSIENT:
            expected = 200 if on_error == "allow" else 503
        else:
            expected = 500  # the question is wrong: never let through, whatever on_error says
        assert [b.status_code for b in broken] == [expected] * 3
        assert all("x-ratelimit-limit" not in b.headers for b in broken)
        assert [get("limited").status_code for _ in range(20)] == [429] * 20
        fresh = get("fresh")
        assert fresh.status_code == 200 and fresh.headers["X-RateLimit-Remaining"] == "0"
    logged = [r for r in caplog.records if r.name == "rlimit"]
    assert len(logged) == 1 and status in logged[0].getMessage()
    assert logged[0].levelname == ("WARNING" if status in TRANSIENT else "ERROR")


def test_dependency_answers_500_when_the_daemon_refuses_the_question(fake: Any) -> None:
    from rlimit.protocol import Status

    fake.statuses["swl1"] = Status.UNKNOWN_POLICY
    app = make_app(address=f"unix:{fake.path}", policy="one", rules={"/limited": None}, key=raw_key)
    with TestClient(app) as client:
        answer = client.get("/limited", headers={"x-key": "k"})
        assert answer.status_code == 500
        assert answer.json() == {"detail": {"error": "rate_limiter_misconfigured"}}


def test_denial_log_cannot_be_forged(daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rlimit.denied")
    forged = f"{unique_key('evil')}\nINFO rlimit.denied: denied policy=swl1 key=victim"

    def from_query(request: Request) -> str:
        return "user:" + request.query_params["who"]

    app = make_app(address=daemon.address, policy="swl1", key=from_query)

    @app.get("/a\nb")
    async def odd() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        assert [client.get("/", params={"who": forged}).status_code for _ in range(2)] == [200, 429]
        assert client.get("/a%0Ab", params={"who": forged}).status_code == 429
    lines = [r.getMessage() for r in caplog.records if r.name == "rlimit.denied"]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    escaped = forged.replace("\n", "\\n")
    assert lines[0].startswith(f'denied policy="swl1" key="user:{escaped}" path="/" ')
    assert f'path="/a\\nb"' in lines[1]


def test_middleware_authenticates_with_its_token(fake: Any) -> None:
    fake.token = b"s3cret-token-0123456789"
    good = make_app(address=f"unix:{fake.path}", policy="five", key=raw_key, token="s3cret-token-0123456789")
    with TestClient(good) as client:
        assert client.get("/", headers={"x-key": "k"}).headers["X-RateLimit-Remaining"] == "4"
    for token in (None, "wrong-token-0123456789"):
        app = make_app(address=f"unix:{fake.path}", policy="five", key=raw_key, token=token)
        with TestClient(app) as client:
            assert [client.get("/", headers={"x-key": "k"}).status_code for _ in range(3)] == [500] * 3
    assert fake.usage[("five", b"k")] == 1
