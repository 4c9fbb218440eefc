"""Rate-limit keys of HTTP requests: the client address (proxy-aware), a user id, an API key.

A key function takes the request (anything with an ASGI `scope`, such as a Starlette
Request) and returns the key, or None when it has none for this request (the
middleware then keys by client address, so leaving a header out never escapes the
limit). Pure standard library.

Every key is "<kind>:<value>", the kind a fixed word: "ip:203.0.113.7" (ClientAddress),
"apikey:<key>" (api_key), "user:<id>" (user_id). An address, an API key and a user id
never produce the same key, whatever a client sends, and a policy's exempt, override
and block lists name the kind they mean ("ip:10.0.0.1", "apikey:partner-42").

Forwarded addresses are believed only from trusted proxies: when the peer is one,
the key is the right-most address of X-Forwarded-For (or Forwarded) that is not a
trusted proxy, the first hop a client cannot forge. Otherwise the headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Container, Iterable
from typing import Any, Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HasScope(Protocol):
    """A request: all the key functions here read is its ASGI scope."""

    @property
    def scope(self) -> Any: ...


KeyFunc = Callable[[Any], "str | bytes | None | Awaitable[str | bytes | None]"]
Validator = Callable[[str], bool] | Container[str]  # which API keys are genuine

IP, APIKEY, USER = "ip:", "apikey:", "user:"  # the kinds of keys, as prefixes


def _parse_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _strip_port(hop: str) -> str:
    """Returns the address of a hop written "1.2.3.4", "1.2.3.4:80", "[v6]:80" or "v6"."""
    hop = hop.strip().strip('"')
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop[1:]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _header_values(scope: Any, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == name]


def _x_forwarded_for(scope: Any) -> list[str]:
    hops = []
    for value in _header_values(scope, b"x-forwarded-for"):
        hops += [_strip_port(hop) for hop in value.split(",") if hop.strip()]
    return hops


def _forwarded(scope: Any) -> list[str]:
    """Returns the for= addresses of RFC 7239 Forwarded headers, in order."""
    hops = []
    for value in _header_values(scope, b"forwarded"):
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, hop = pair.strip().partition("=")
                if name.lower() == "for" and hop:
                    hops.append(_strip_port(hop))
    return hops


class ScopeKey:
    """A key function reading only the ASGI scope: the middleware calls of_scope, no Request built."""

    __slots__ = ("of_scope",)

    def __init__(self, of_scope: Callable[[Any], str | None]) -> None:
        self.of_scope = of_scope  # the key of an ASGI scope

    def __call__(self, request: HasScope) -> str | None:
        return self.of_scope(request.scope)


class ClientAddress:
    """Key function: "ip:" and the client's address, believing forwarded headers from trusted proxies only."""

    def __init__(self, trusted_proxies: Iterable[str] = (), header: str = "x-forwarded-for") -> None:
        if header.lower() not in ("x-forwarded-for", "forwarded"):
            raise ValueError(f'header must be "x-forwarded-for" or "forwarded", not {header!r}')
        # the proxies (IPs or CIDRs) whose forwarded headers are believed
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies
        )
        self._trusted_of: dict[str, bool] = {}  # address -> _is_trusted, remembered
        self._hops = _forwarded if header.lower() == "forwarded" else _x_forwarded_for

    def __call__(self, request: HasScope) -> str:
        return self.of_scope(request.scope)

    def of_scope(self, scope: Any) -> str:
        """Returns the key of an ASGI scope's client address ("ip:unknown" when there is none)."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self.trusted or not self._is_trusted(peer):
            return _canonical(peer or "unknown")
        hops = self._hops(scope)
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return _canonical(hop)
        return _canonical(hops[0]) if hops else _canonical(peer)

    def _is_trusted(self, text: str) -> bool:
        trusted = self._trusted_of.get(text)
        if trusted is None:
            address = _parse_ip(text)
            trusted = address is not None and any(address in network for network in self.trusted)
            if len(self._trusted_of) >= _MAX_CANONICAL:
                self._trusted_of.clear()
            self._trusted_of[text] = trusted
        return trusted


_MAX_CANONICAL = 4096  # addresses whose canonical form is remembered
_canonical_of: dict[str, str] = {}


def _canonical(text: str) -> str:
    """Returns the key of an address: "ip:" and its canonical form (text itself if not an IP)."""
    canonical = _canonical_of.get(text)
    if canonical is None:
        address = _parse_ip(text)
        canonical = IP + (str(address) if address is not None else text)
        if len(_canonical_of) >= _MAX_CANONICAL:
            _canonical_of.clear()  # addresses are the clients' choice: bounded
        _canonical_of[text] = canonical
    return canonical


def user_id(attribute: str = "user_id") -> KeyFunc:
    """Key function: "user:" and the authenticated user's id, or None for anonymous requests.

    Reads request.state.<attribute> (scope["state"], set by an authentication
    middleware that runs before this one, or by a dependency before RateLimit), else
    an authenticated scope["user"] (Starlette's AuthenticationMiddleware): its
    `identity`, `username` or `display_name`.
    """

    def of_scope(scope: Any) -> str | None:
        value = (scope.get("state") or {}).get(attribute)
        if value is not None and value != "":
            return USER + str(value)
        user = scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        for name in ("identity", "username", "display_name"):
            value = getattr(user, name, None)
            if value:
                return USER + str(value)
        return None

    return ScopeKey(of_scope)


def api_key(header: str = "x-api-key", *, valid: Validator | None) -> KeyFunc:
    """Key function: "apikey:" and the API key a request carries, if the key is genuine.

    `valid` decides which keys are genuine: a function of the key returning a bool
    (plain, not async), or a collection of the genuine keys (a set). A request without
    the header, with an empty one, or with a key `valid` refuses gets None: the
    middleware keys it by client address, so inventing keys gains a client nothing.
    valid=None believes every key: only for routes behind an authentication that has
    already refused unknown keys (say so explicitly; there is no default).
    """
    name = header.lower().encode("latin-1")
    check: Callable[[str], bool] | None
    if valid is None or callable(valid):
        check = valid
    else:
        check = valid.__contains__

    def of_scope(scope: Any) -> str | None:
        for field, value in scope.get("headers", ()):
            if field.lower() == name and value.strip():
                key = value.strip().decode("latin-1")
                if check is None or check(key):
                    return APIKEY + key
                return None
        return None

    return ScopeKey(of_scope)
