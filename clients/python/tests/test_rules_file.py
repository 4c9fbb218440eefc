"""One rules file for the middleware and `rlimitctl replay --rules` (issue 15 point 3).

The same JSON file is loaded by rlimit.rules.load_rules and by the real rlimitctl; for
a list of paths, the policy the middleware checks (or none) must be the one replay
decides each logged request under (or exempt / unmatched), and bad files must fail
both with the same message. rlimitctl is $RLIMITCTL_BIN, else the rlimitctl beside
$RLIMITD_BIN, else <repo>/build/rlimitctl; the test fails (never skips) without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rlimit import RulesFileError, load_rules
from rlimit.fastapi import DEFAULT_EXEMPT, RateLimitMiddleware
from rlimit.rules import DEFAULT_EXEMPT as FILE_DEFAULT_EXEMPT

REPO = Path(__file__).resolve().parents[3]
POLICIES = ("api", "upload", "export", "files", "admin", "search", "login", "fallback")

RULES = {
    "rules": [
        {"path": "/api/", "policy": "api"},
        {"path": "/api/public", "policy": None},
        {"path": "/upload", "policy": "upload"},
        {"route": "/users/{id}/export", "policy": "export"},
        {"route": "/files/{rest:path}", "policy": "files"},
        {"route": "/api/v{version:int}/admin", "policy": "admin"},
        {"path": "/search", "policy": "search"},
        {"path": "/search", "policy": "upload"},  # repeated: the first wins
        {"route": "/users/{id}/export", "policy": "files"},  # repeated: the first wins
        {"route": "/{tenant}/login", "policy": "login"},
    ],
    "default": "fallback",
    "exempt": ["/health", "/static/"],
}

PATHS = [
    "/", "/api", "/api/", "/api/x", "/api/x/y", "/api/public", "/api/public/x", "/api/publicity",
    "/upload", "/upload/big", "/uploads", "/Upload", "/users/7/export", "/users/7/export/x",
    "/users//export", "/users/a/b/export", "/files/a", "/files/a/b/c", "/files/", "/files",
    "/files/a\nb", "/users/a\nb/export", "/api/v2/admin", "/api/vx/admin", "/api/v/admin",
    "/search", "/search/q", "/searching", "/acme/login", "/a/b/login", "/login", "/health",
    "/health/deep", "/healthz", "/ready", "/static/app.js", "/static", "/other",
    "/\u00fcn\u00efcode/login", "/caf\u00e9",
]


def rlimitctl() -> Path:
    """The rlimitctl binary (see the module doc)."""
    daemon = os.environ.get("RLIMITD_BIN")
    default = Path(daemon).parent / "rlimitctl" if daemon else REPO / "build" / "rlimitctl"
    path = Path(os.environ.get("RLIMITCTL_BIN") or default)
    if not os.access(path, os.X_OK):
        pytest.fail(f"rlimitctl binary {path} is missing (build it with `make`, or set RLIMITCTL_BIN)")
    return path


def write_config(directory: Path) -> Path:
    policies = {name: {"algorithm": "fixed_window", "limit": 1000, "period": "1s"} for name in POLICIES}
    config = directory / "config.json"
    config.write_text(json.dumps({"listen": [f"unix:{directory}/none.sock"], "policies": policies}))
    return config


def replay(directory: Path, rules: dict[str, Any], paths: list[str]) -> tuple[dict[str, Any], dict[int, str]]:
    """Replays one request per path (distinct keys, 1 s apart) under rules with the real
    rlimitctl. Returns its --json object and {line: policy} from --decisions."""
    rules_file, log, decisions = directory / "rules.json", directory / "log.jsonl", directory / "decisions.jsonl"
    rules_file.write_text(json.dumps(rules))
    log.write_text("".join(json.dumps({"ts": 1733300000 + i, "key": f"k{i}", "path": p}) + "\n"
                           for i, p in enumerate(paths)))
    run = subprocess.run([str(rlimitctl()), "replay", "-c", str(write_config(directory)), "--rules", str(rules_file),
                          "--format", "jsonl", "--strict", "--json", "--decisions", str(decisions), str(log)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in decisions.read_text().splitlines()]
    return json.loads(run.stdout), {line["line"]: line["policy"] for line in lines}


class Recorder:
    """Stands in for the middleware's Limiter: records the policy asked, decides nothing."""

    on_error = "allow"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def check(self, policy: str, key: Any, cost: int = 1, path: str = "", switch: Any = True) -> None:
        self.asked.append(policy)
        return None


def middleware_choice(options: dict[str, Any], path: str) -> str | None:
    """Returns the policy RateLimitMiddleware checks for a GET of path, None if none."""
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    middleware = RateLimitMiddleware(app, address="unix:/nonexistent/rlimitd.sock", **options)
    recorder = Recorder()
    middleware.limiter = recorder  # type: ignore[assignment]
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "client": ("192.0.2.1", 1234), "server": ("testserver", 80), "scheme": "http",
             "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}}
    asyncio.run(middleware(scope, receive, send))
    assert reached == [path], "the app must be reached (allowed, undecided or unlimited)"
    assert len(recorder.asked) <= 1
    return recorder.asked[0] if recorder.asked else None


def test_the_middleware_picks_the_policy_replay_decides_under(tmp_path: Path) -> None:
    rules_path = tmp_path / "app-rules.json"
    rules_path.write_text(json.dumps(RULES))
    loaded = load_rules(str(rules_path))
    summary, decided = replay(tmp_path, RULES, PATHS)
    exempt = [p for i, p in enumerate(PATHS) if i + 1 not in decided]  # with a default: exempt only
    assert summary["exempt"] == len(exempt) and summary["unmatched"] == 0
    for i, path in enumerate(PATHS):
        want = decided.get(i + 1)
        assert middleware_choice(loaded.options(), path) == want, path
        assert loaded.route(path) == (("policy", want) if want else ("exempt", None)), path
    # The cases above are all there: each policy, the null rule and the exempt paths.
    assert set(decided.values()) == set(POLICIES)
    assert {"/api/public", "/api/public/x", "/health", "/health/deep", "/static/app.js"} <= set(exempt)
    assert decided[PATHS.index("/files/a\nb") + 1] == "files"  # {rest:path} takes a newline too
    assert decided[PATHS.index("/search") + 1] == "search" and decided[PATHS.index("/users/7/export") + 1] == "export"


def test_without_a_default_unmatched_paths_are_not_limited_in_both(tmp_path: Path) -> None:
    rules = {name: value for name, value in RULES.items() if name != "default"}
    (tmp_path / "r.json").write_text(json.dumps(rules))
    loaded = load_rules(str(tmp_path / "r.json"))
    assert loaded.default is None
    summary, decided = replay(tmp_path, rules, PATHS)
    kinds = [loaded.route(path)[0] for path in PATHS]
    assert summary["exempt"] == kinds.count("exempt") and summary["unmatched"] == kinds.count("unmatched") > 0
    for i, path in enumerate(PATHS):
        assert middleware_choice(loaded.options(), path) == decided.get(i + 1), path
        assert (loaded.route(path)[0] == "policy") == (i + 1 in decided), path


def test_absent_exempt_is_the_middleware_default(tmp_path: Path) -> None:
    assert FILE_DEFAULT_EXEMPT == DEFAULT_EXEMPT
    rules = {"rules": [{"path": "/", "policy": "api"}]}
    (tmp_path / "r.json").write_text(json.dumps(rules))
    loaded = load_rules(str(tmp_path / "r.json"))
    assert loaded.exempt == DEFAULT_EXEMPT and loaded.default is None
    paths = ["/health", "/healthz", "/ready/x", "/x", "/"]
    summary, decided = replay(tmp_path, rules, paths)
    assert decided == {4: "api", 5: "api"} and summary["exempt"] == 3
    assert [middleware_choice(loaded.options(), p) for p in paths] == [None, None, None, "api", "api"]


def test_the_demo_rules_file_loads_and_routes_as_replay(tmp_path: Path) -> None:
    demo = REPO / "conf" / "replay-demo-rules.json"
    loaded = load_rules(str(demo))
    paths = ["/api/v1/items", "/search", "/search/x", "/login", "/upload/a", "/health", "/static/a.css", "/", "/other"]
    summary, decided = replay(tmp_path, json.loads(demo.read_text()), paths)
    for i, path in enumerate(paths):
        assert middleware_choice(loaded.options(), path) == decided.get(i + 1), path


TOO_MANY_PARTS = "/" + "/".join("x{p%d}" % i for i in range(17))
BAD_FILES = [
    ([], 'a JSON object expected'),
    ({"policies": []}, "policies: unknown field (rules, default, exempt)"),
    ({"rules": {}}, "rules: an array of at most 4096 rules expected"),
    ({"rules": None}, "rules: an array of at most 4096 rules expected"),
    ({"rules": [{"path": "/a"}]}, 'rules[0]: {"path" or "route": ..., "policy": ...} expected'),
    ({"rules": [{"path": "/a", "policy": "api", "x": 1}]}, 'rules[0]: {"path" or "route": ..., "policy": ...} expected'),
    ({"rules": [{"path": "/a", "route": "/b/{c}"}]}, 'rules[0]: {"path" or "route": ..., "policy": ...} expected'),
    ({"rules": ["/a"]}, 'rules[0]: {"path" or "route": ..., "policy": ...} expected'),
    ({"rules": [{"path": "/", "policy": "api"}, {"path": "a", "policy": "api"}]},
     'rules[1]: a path starting with "/" and a policy name or null expected'),
    ({"rules": [{"path": "/a", "policy": 3}]}, 'rules[0]: a path starting with "/" and a policy name or null expected'),
    ({"rules": [{"route": None, "policy": "api"}]}, 'rules[0]: a path starting with "/" and a policy name or null expected'),
    ({"rules": [{"path": "/a/{id}", "policy": "api"}]}, 'rules[0].path: "{" belongs in a "route"'),
    ({"rules": [{"route": "/a", "policy": "api"}]}, "rules[0].route: a {name} parameter expected (at most 16)"),
    ({"rules": [{"route": "/a/{1}", "policy": "api"}]}, "rules[0].route: a {name} parameter expected (at most 16)"),
    ({"rules": [{"route": TOO_MANY_PARTS, "policy": "api"}]}, "rules[0].route: a {name} parameter expected (at most 16)"),
    ({"default": 1}, "default: a policy name or null expected"),
    ({"default": ["api"]}, "default: a policy name or null expected"),
    ({"exempt": "/health"}, "exempt: an array of paths expected"),
    ({"exempt": None}, "exempt: an array of paths expected"),
    ({"exempt": ["/health", "health"]}, 'exempt[1]: a path starting with "/" expected'),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_a_bad_file_fails_both_with_the_same_message(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(RulesFileError) as raised:
        load_rules(str(path))
    assert str(raised.value) == f"{path}: {message}"
    log = tmp_path / "log.jsonl"
    log.write_text('{"ts": 1733300000, "key": "k", "path": "/a"}\n')
    run = subprocess.run([str(rlimitctl()), "replay", "-c", str(write_config(tmp_path)), "--rules", str(path),
                          "--format", "jsonl", str(log)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip() == f"rlimitctl replay: {path}: {message}"


@pytest.mark.parametrize("text", ['{"rules": [}', '{"default": "a", "default": "b"}', '{"default": NaN}', ""])
def test_unreadable_json_fails_both(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RulesFileError, match=str(path)):
        load_rules(str(path))
    log = tmp_path / "log.jsonl"
    log.write_text('{"ts": 1733300000, "key": "k", "path": "/a"}\n')
    run = subprocess.run([str(rlimitctl()), "replay", "-c", str(write_config(tmp_path)), "--rules", str(path),
                          "--format", "jsonl", str(log)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and str(path) in run.stderr


def test_a_missing_or_huge_file_fails_both(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(RulesFileError, match="missing.json: cannot read the rules"):
        load_rules(str(missing))
    huge = tmp_path / "huge.json"
    huge.write_text('{"rules": []' + " " * (1 << 20) + "}")
    with pytest.raises(RulesFileError, match="huge.json: larger than 1 MiB"):
        load_rules(str(huge))
    for path, message in ((missing, "cannot read the rules"), (huge, "larger than 1 MiB")):
        log = tmp_path / "log.jsonl"
        log.write_text('{"ts": 1733300000, "key": "k", "path": "/a"}\n')
        run = subprocess.run([str(rlimitctl()), "replay", "-c", str(write_config(tmp_path)), "--rules", str(path),
                              "--format", "jsonl", str(log)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and run.stderr.strip() == f"rlimitctl replay: {path}: {message}"
