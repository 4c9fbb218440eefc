"""Which policy a request path falls under: exempt paths, prefixes and route patterns.

    PathRules({"/auth/token": "login", "/upload": "upload", "/users/{id}/export": "export"},
              exempt=["/health"])

A prefix rule matches the path itself and everything below it ("/upload" matches
"/upload" and "/upload/big", not "/uploads"); the longest matching prefix wins. A
rule containing "{name}" (one path segment) or "{name:path}" (the rest) is a route
pattern that must match the whole path; patterns are tried first, in order. A rule
mapping to None leaves the matching paths unlimited; a rule may name several policies
(a list or tuple: every one must allow, e.g. a rate and a concurrency policy). Exempt
paths (prefixes) come before every rule. Pure standard library.

load_rules(path) reads the JSON rules file `rlimitctl replay --rules` reads (README
"Replay"), with the same checks and messages, so the app enforces exactly what a
replay of its log applies:

    app.add_middleware(RateLimitMiddleware, **load_rules("rules.json").options())
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_MAX_ROUTES = 4096  # paths whose route() is remembered
Policies = str | tuple[str, ...] | None  # what a rule maps to (a tuple: several policies)
RuleValue = str | Sequence[str] | None  # what a rule may be given as


def _policies(value: RuleValue) -> Policies:
    if value is None or isinstance(value, str):
        return value
    names = tuple(value)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"a rule names a policy, several (a non-empty list of names) or None, not {value!r}")
    return names[0] if len(names) == 1 else names


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path|str|int))?\}")


def _pattern(route: str) -> re.Pattern[str]:
    parts = []
    position = 0
    for match in _PARAM.finditer(route):
        parts.append(re.escape(route[position : match.start()]))
        parts.append(".+" if match.group(2) == "path" else "[^/]+")
        position = match.end()
    parts.append(re.escape(route[position:]))
    # DOTALL: "{name:path}" takes every character, a decoded "%0A" too, as replay does.
    return re.compile("".join(parts), re.DOTALL)


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


class PathRules:
    """Maps a request path to (matched, policy); policy None means not limited."""

    def __init__(self, rules: Mapping[str, RuleValue] | None = None, exempt: Iterable[str] = ()) -> None:
        rules = {route: _policies(value) for route, value in (rules or {}).items()}
        self.exempt = tuple(sorted(exempt, key=len, reverse=True))  # exempt prefixes
        # route patterns, in the order given
        self.patterns = [(_pattern(route), policy) for route, policy in rules.items() if "{" in route]
        # prefixes, longest first
        self.prefixes = sorted(
            ((prefix, policy) for prefix, policy in rules.items() if "{" not in prefix),
            key=lambda rule: len(rule[0]),
            reverse=True,
        )
        self._routes: dict[str, tuple[bool, bool, Policies]] = {}  # path -> route()

    def route(self, path: str) -> tuple[bool, bool, Policies]:
        """Returns (exempt, matched, policy) of path, remembered for the paths seen last."""
        route = self._routes.get(path)
        if route is None:
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()  # paths are the client's choice: bounded
            route = (self.is_exempt(path), *self.lookup(path))
            self._routes[path] = route
        return route

    def is_exempt(self, path: str) -> bool:
        """Returns whether path is exempt from every limit."""
        return any(_under(path, prefix) for prefix in self.exempt)

    def lookup(self, path: str) -> tuple[bool, Policies]:
        """Returns (True, policy) for the first rule matching path, (False, None) if none does."""
        for pattern, policy in self.patterns:
            if pattern.fullmatch(path):
                return True, policy
        for prefix, policy in self.prefixes:
            if _under(path, prefix):
                return True, policy
        return False, None


# ---- the rules file (clients/c/replay_rules.c reads the same; keep the two in step) ----

DEFAULT_EXEMPT = ("/health", "/healthz", "/ready")  # the middleware's default exempt paths
_MAX_FILE_RULES = 4096  # rules, and exempt paths, of a file at most
_MAX_ROUTE_PARTS = 33  # literal and parameter parts of a route at most
_MAX_FILE_BYTES = (1 << 20) - 1  # a file this long or longer is refused ("larger than 1 MiB")
_RULE_SHAPE = '{"path" or "route": ..., "policy": ...} expected'


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class RulesFile:
    """A rules file: rules (in file order; of a repeated path the first), exempt, default."""

    rules: dict[str, str | None]  # path prefix or route -> policy (None: not limited)
    exempt: tuple[str, ...]  # exempt path prefixes
    default: str | None  # the policy of a path no rule matches (None: not limited)

    def options(self) -> dict[str, Any]:
        """Returns RateLimitMiddleware's rules, exempt and policy for this file."""
        return {"rules": self.rules, "exempt": self.exempt, "policy": self.default}

    def route(self, path: str) -> tuple[str, str | None]:
        """Returns replay's verdict on path: ("policy", name), ("exempt", None) or ("unmatched", None)."""
        exempt, matched, policy = PathRules(self.rules, self.exempt).route(path)
        if exempt or (matched and policy is None):
            return "exempt", None
        policy = policy if matched else self.default
        return ("policy", policy) if isinstance(policy, str) else ("unmatched", None)


def _route_parts(route: str) -> tuple[int, bool]:
    """Returns (parts, has a parameter) of route, counted as replay_rules.c counts them."""
    parts, position, params = 0, 0, 0
    for match in _PARAM.finditer(route):
        parts += (match.start() > position) + 1
        position, params = match.end(), params + 1
    return parts + (len(route) > position), params > 0


def _name(value: Any) -> bool:
    """Returns whether value is a string jansson accepts (UTF-8, no NUL)."""
    if not isinstance(value, str) or "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): jansson refuses the file
        return False
    return True


def _load_rule(rule: Any, i: int, src: str) -> tuple[str, str | None]:
    """Returns (text, policy) of rules[i], or raises RulesFileError as replay does."""
    entry = rule if isinstance(rule, dict) else {}
    path, route = entry.get("path"), entry.get("route")
    text, policy = (path if "path" in entry else route), entry.get("policy")
    if not isinstance(rule, dict) or "policy" not in rule or len(rule) != 2 or ("path" in rule) == ("route" in rule):
        raise RulesFileError(f"{src}: rules[{i}]: {_RULE_SHAPE}")
    if not _name(text) or not text.startswith("/") or not (policy is None or _name(policy)):
        raise RulesFileError(f'{src}: rules[{i}]: a path starting with "/" and a policy name or null expected')
    if "path" in rule and "{" in text:
        raise RulesFileError(f'{src}: rules[{i}].path: "{{" belongs in a "route"')
    if "route" in rule:
        parts, has_param = _route_parts(text)
        if parts > _MAX_ROUTE_PARTS or not has_param:
            raise RulesFileError(f"{src}: rules[{i}].route: a {{name}} parameter expected (at most 16)")
    return text, policy


def _load_exempt(root: dict[str, Any], src: str) -> tuple[str, ...]:
    """Returns the file's exempt paths (absent: DEFAULT_EXEMPT), or raises RulesFileError."""
    if "exempt" not in root:
        return DEFAULT_EXEMPT
    exempt = root["exempt"]
    if not isinstance(exempt, list) or len(exempt) > _MAX_FILE_RULES:
        raise RulesFileError(f"{src}: exempt: an array of paths expected")
    for i, path in enumerate(exempt):
        if not _name(path) or not path.startswith("/"):
            raise RulesFileError(f'{src}: exempt[{i}]: a path starting with "/" expected')
    return tuple(exempt)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of the file, refused with a member named twice (jansson's JSON_REJECT_DUPLICATES)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate object key")
    return members


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid token {name!r}")


def parse_rules(text: str, source: str = "<rules>") -> RulesFile:
    """Reads a rules file's JSON text; source names it in messages. Raises RulesFileError."""
    try:
        root = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ValueError as error:  # json.JSONDecodeError is one
        line = getattr(error, "lineno", None)
        raise RulesFileError(f"{source}:{line}: {error}" if line else f"{source}: {error}") from None
    if not isinstance(root, dict):
        raise RulesFileError(f"{source}: a JSON object expected")
    for name in root:
        if name not in ("rules", "default", "exempt"):
            raise RulesFileError(f"{source}: {name}: unknown field (rules, default, exempt)")
    rules = root.get("rules", [])
    if not isinstance(rules, list) or len(rules) > _MAX_FILE_RULES:
        raise RulesFileError(f"{source}: rules: an array of at most {_MAX_FILE_RULES} rules expected")
    default = root.get("default")
    if not (default is None or _name(default)):
        raise RulesFileError(f"{source}: default: a policy name or null expected")
    table: dict[str, str | None] = {}
    for i, rule in enumerate(rules):
        text, policy = _load_rule(rule, i, source)
        table.setdefault(text, policy)  # a repeated path or route: the first wins, as in replay
    return RulesFile(table, _load_exempt(root, source), default)


def load_rules(path: str) -> RulesFile:
    """Reads the rules file at path (the format of `rlimitctl replay --rules`, README
    "Replay"). Raises RulesFileError naming the file and the field, as replay does."""
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_FILE_BYTES)
    except OSError:
        raise RulesFileError(f"{path}: cannot read the rules") from None
    if len(data) >= _MAX_FILE_BYTES:
        raise RulesFileError(f"{path}: larger than 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RulesFileError(f"{path}: not UTF-8 (byte {error.start})") from None
    return parse_rules(text, path)
