"""Rate-limit keys of HTTP requests: the client address (proxy-aware), a user id, an API key.

A key function takes the request (anything with an ASGI `scope`, such as a Starlette
Request) and returns the key, or None when it has none for this request (the
middleware then keys by client address, so leaving a header out never escapes the
limit). Pure standard library.

Forwarded addresses are believed only from trusted proxies: when the peer is one,
the key is the right-most address of X-Forwarded-For (or Forwarded) that is not a
trusted proxy, the first hop a client cannot forge. Otherwise the headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HasScope(Protocol):
    """A request: all the key functions here read is its ASGI scope."""

    @property
    def scope(self) -> Any: ...


KeyFunc = Callable[[Any], "str | bytes | None | Awaitable[str | bytes | None]"]


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
    """Key function: the client's IP address, believing forwarded headers from trusted proxies only."""

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
        """Returns the client address of an ASGI scope ("unknown" when there is none)."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self.trusted or not self._is_trusted(peer):
            return _canonical(peer) or "unknown"
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
    canonical = _canonical_of.get(text)
    if canonical is None:
        address = _parse_ip(text)
        canonical = str(address) if address is not None else text
        if len(_canonical_of) >= _MAX_CANONICAL:
            _canonical_of.clear()  # addresses are the clients' choice: bounded
        _canonical_of[text] = canonical
    return canonical


def user_id(attribute: str = "user_id") -> KeyFunc:
    """Key function: the authenticated user's id, or None for anonymous requests.

    Reads request.state.<attribute> (scope["state"], set by an authentication
    middleware that runs before this one, or by a dependency before RateLimit), else
    an authenticated scope["user"] (Starlette's AuthenticationMiddleware): its
    `identity`, `username` or `display_name`.
    """

    def of_scope(scope: Any) -> str | None:
        value = (scope.get("state") or {}).get(attribute)
        if value is not None:
            return str(value)
        user = scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        for name in ("identity", "username", "display_name"):
            value = getattr(user, name, None)
            if value:
                return str(value)
        return None

    return ScopeKey(of_scope)


def api_key(header: str = "x-api-key") -> KeyFunc:
    """Key function: the value of an API key header, or None when it is absent or empty."""
    name = header.lower().encode("latin-1")

    def of_scope(scope: Any) -> str | None:
        for field, value in scope.get("headers", ()):
            if field.lower() == name and value.strip():
                return value.strip().decode("latin-1")
        return None

    return ScopeKey(of_scope)
