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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

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
    return re.compile("".join(parts))


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
