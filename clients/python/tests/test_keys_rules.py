"""Key functions, path rules and header figures (no daemon, no framework)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rlimit.decision import Decision
from rlimit.headers import denied_body, denied_headers, limit_headers, raw_limit_headers
from rlimit.keys import ClientAddress, api_key, user_id
from rlimit.rules import PathRules


def request(peer: str | None, *headers: tuple[str, str], **scope: Any) -> SimpleNamespace:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers]
    return SimpleNamespace(scope={"client": (peer, 1234) if peer else None, "headers": raw, **scope})


PROXIES = ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("203.0.113.9", [("X-Forwarded-For", "1.2.3.4")], "203.0.113.9"),  # untrusted peer: spoof ignored
        ("10.1.1.1", [], "10.1.1.1"),  # trusted peer without a header
        ("10.1.1.1", [("X-Forwarded-For", "1.2.3.4")], "1.2.3.4"),
        # the client forged the left part; the right-most untrusted hop is the real client
        ("10.1.1.1", [("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.9.9.9")], "1.2.3.4"),
        ("10.1.1.1", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.2.3.4")], "1.2.3.4"),
        ("192.168.1.1", [("X-Forwarded-For", "10.2.2.2, 10.3.3.3")], "10.2.2.2"),  # all trusted
        ("10.1.1.1", [("X-Forwarded-For", "1.2.3.4:5678")], "1.2.3.4"),
        ("10.1.1.1", [("X-Forwarded-For", "[2001:db9::1]:443")], "2001:db9::1"),
        ("::ffff:10.1.1.1", [("X-Forwarded-For", "1.2.3.4")], "1.2.3.4"),  # v4-mapped peer
        ("2001:db8::5", [("X-Forwarded-For", "2001:0db9:0::1")], "2001:db9::1"),  # canonical form
        ("10.1.1.1", [("Forwarded", "for=1.2.3.4")], "10.1.1.1"),  # not the configured header
    ],
)
def test_client_address_x_forwarded_for(peer: str, headers: list[tuple[str, str]], expected: str) -> None:
    assert ClientAddress(PROXIES)(request(peer, *headers)) == "ip:" + expected


def test_client_address_forwarded_header() -> None:
    key = ClientAddress(PROXIES, header="forwarded")
    header = ("Forwarded", 'for=6.6.6.6, for="[2001:db9::7]:4711";proto=https, for=10.0.0.2;by=10.0.0.1')
    assert key(request("10.0.0.1", header)) == "ip:2001:db9::7"
    assert key(request("10.0.0.1", ("X-Forwarded-For", "1.2.3.4"))) == "ip:10.0.0.1"
    assert key(request("8.8.8.8", header)) == "ip:8.8.8.8"


def test_client_address_without_trusted_proxies_ignores_headers() -> None:
    assert ClientAddress()(request("127.0.0.1", ("X-Forwarded-For", "1.2.3.4"))) == "ip:127.0.0.1"
    assert ClientAddress()(request(None)) == "ip:unknown"
    with pytest.raises(ValueError):
        ClientAddress(["not-an-ip"])
    with pytest.raises(ValueError):
        ClientAddress(header="x-real-ip")


def test_user_id_and_api_key() -> None:
    by_user = user_id()
    assert by_user(request("1.1.1.1", state={"user_id": 42})) == "user:42"
    assert by_user(request("1.1.1.1", state={"user_id": ""})) is None
    user = SimpleNamespace(is_authenticated=True, display_name="alice")
    assert by_user(request("1.1.1.1", user=user)) == "user:alice"
    assert by_user(request("1.1.1.1", user=SimpleNamespace(is_authenticated=False))) is None
    assert by_user(request("1.1.1.1")) is None
    by_key = api_key("X-API-Key", valid=None)
    assert by_key(request("1.1.1.1", ("x-api-key", " k-1 "))) == "apikey:k-1"
    assert by_key(request("1.1.1.1", ("x-api-key", ""))) is None
    assert by_key(request("1.1.1.1")) is None
    with pytest.raises(TypeError):
        api_key("x-api-key")  # type: ignore[call-arg]  # which keys are genuine must be said


@pytest.mark.parametrize("valid", [{"k-1", "k-2"}, frozenset({"k-1", "k-2"}), lambda key: key in ("k-1", "k-2")])
def test_api_key_validator(valid: Any) -> None:
    by_key = api_key(valid=valid)
    assert by_key(request("1.1.1.1", ("x-api-key", "k-2"))) == "apikey:k-2"
    for forged in ("k-3", "10.0.0.1", "ip:10.0.0.1", "partner-42", "k-1x", "x" * 600):
        assert by_key(request("1.1.1.1", ("x-api-key", forged))) is None, forged


def test_kinds_of_keys_never_collide() -> None:
    """Whatever a client sends as API key or user id, it never spells an address key."""
    by_key, by_user, by_address = api_key(valid=None), user_id(), ClientAddress()
    for text in ("10.0.0.1", "ip:10.0.0.1", "user:1", "apikey:1", "#sha256:00"):
        as_key = by_key(request("1.1.1.1", ("x-api-key", text)))
        as_user = by_user(request("1.1.1.1", state={"user_id": text}))
        assert as_key == "apikey:" + text and as_user == "user:" + text
        assert by_address(request(text)) not in (as_key, as_user)
    assert by_address(request("10.0.0.1")) == "ip:10.0.0.1"


def test_long_keys_are_hashed_where_no_client_key_can_be() -> None:
    from hashlib import sha256

    from rlimit.limiter import MAX_PLAIN_KEY, wire_key_of

    long_key = "apikey:" + "k" * 600
    digest = sha256(long_key.encode()).hexdigest()
    assert wire_key_of(long_key) == f"apikey#sha256:{digest}".encode()
    assert wire_key_of("apikey:" + "k" * (MAX_PLAIN_KEY - 7)) == ("apikey:" + "k" * (MAX_PLAIN_KEY - 7)).encode()
    assert wire_key_of("x" * 300) == b"#sha256:" + sha256(b"x" * 300).hexdigest().encode()
    # what a client can spell: "apikey:" followed by its text, never "apikey#..."
    spelled = api_key(valid=None)(request("1.1.1.1", ("x-api-key", f"#sha256:{digest}")))
    assert spelled is not None and wire_key_of(spelled) != wire_key_of(long_key)
    assert wire_key_of("ip:" + "1" * 300).startswith(b"ip#sha256:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain-key", '"plain-key"'),
        ("a\nb", '"a\\nb"'),  # a newline cannot start a line of its own
        ("a\\nb", '"a\\\\nb"'),  # a literal backslash-n stays distinguishable
        ('x" path="/admin', '"x\\" path=\\"/admin"'),
        ("\u202eevil", '"\\u202eevil"'),  # bidi override
        ("\x85\x9b", '"\\x85\\x9b"'),  # C1 controls
        (b"\xff\xc3", '"\\udcff\\udcc3"'),  # bytes that are not UTF-8
        ("caf\u00e9", '"caf\u00e9"'),
    ],
)
def test_quoted_log_fields(text: str | bytes, expected: str) -> None:
    from rlimit.limiter import quoted

    assert quoted(text) == expected


def test_path_rules() -> None:
    rules = PathRules(
        {"/auth/token": "login", "/upload": "upload", "/static/": None,
         "/users/{id}/export": "export", "/files/{rest:path}": "files", "/users": "users"},
        exempt=["/health", "/ready"],
    )
    assert rules.lookup("/auth/token") == (True, "login")
    assert rules.lookup("/upload/big") == (True, "upload")
    assert rules.lookup("/uploads") == (False, None)
    assert rules.lookup("/static/app.js") == (True, None)
    assert rules.lookup("/users/7/export") == (True, "export")
    assert rules.lookup("/users/7/export/x") == (True, "users")
    assert rules.lookup("/files/a/b/c") == (True, "files")
    assert rules.lookup("/") == (False, None)
    assert rules.is_exempt("/health") and rules.is_exempt("/health/live")
    assert not rules.is_exempt("/healthz") and not rules.is_exempt("/")


def test_headers_round_up() -> None:
    decision = Decision(False, 10, 0, reset_after=59.001, retry_after=1.2, window=60.0)
    assert denied_headers("api", decision) == [
        ("Retry-After", "2"),
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "60"),
        ("RateLimit-Policy", '"api";q=10;w=60'),
        ("RateLimit", '"api";r=0;t=60'),
    ]
    assert denied_body("api", decision) == {"error": "rate_limited", "policy": "api", "retry_after": 1.2}
    assert limit_headers("api", Decision(True, 5, 5, 0.0, 0.0, 1.0, flags=0x8)) == []  # exempt
    never = Decision(False, 0, 0, 0.0, 0.0, 0.0)
    assert denied_headers("api", never) == [] and denied_body("api", never)["retry_after"] is None


@pytest.mark.parametrize("policy", ["api", "lögin"])
def test_raw_limit_headers_are_the_encoded_limit_headers(policy: str) -> None:
    decisions = [
        Decision(True, 100, 99, 0.6, 0.0, 60.0),
        Decision(True, 100, 98, 1.2, 0.0, 60.0),  # the same policy again: its remembered parts
        Decision(False, 10, 0, 59.001, 1.2, 2.5, flags=0x4),
        Decision(True, 5, 5, 0.0, 0.0, 1.0, flags=0x8),  # exempt: none
        Decision(False, 0, 0, 0.0, 0.0, 0.0),  # never: none
    ]
    for decision in decisions:
        expected = [(name.lower().encode(), value.encode()) for name, value in limit_headers(policy, decision)]
        assert raw_limit_headers(policy, decision) == expected


def test_route_remembers_what_is_exempt_and_lookup_say() -> None:
    rules = PathRules({"/auth/token": "login", "/users/{id}/export": "export", "/static": None}, exempt=["/health"])
    for path in ["/health", "/health/live", "/auth/token", "/auth/token/x", "/users/7/export", "/static/a", "/", "/x"]:
        for _ in range(2):
            assert rules.route(path) == (rules.is_exempt(path), *rules.lookup(path))


def test_scope_keys_answer_as_key_functions() -> None:
    req = request("10.0.0.9", ("X-Api-Key", " k1 "))
    for key in (api_key(valid=None), user_id(), ClientAddress()):
        assert key.of_scope(req.scope) == key(req)  # type: ignore[attr-defined]
