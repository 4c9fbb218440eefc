"""Rate limiting for FastAPI and Starlette backed by rlimitd.

    app.add_middleware(RateLimitMiddleware, address="unix:/tmp/rlimitd.sock", policy="api")

    @app.get("/export", dependencies=[Depends(RateLimit("export", key=user_id()))])

RateLimitMiddleware is a pure ASGI middleware. For each HTTP request:

    exempt path? --yes--> app
    policy: the first matching rule, else `policy` (a name, or a callable of the request)
    key: `key(request)`, else (None) the client address;  cost: `cost` (int or callable)
    Limiter.check -> allowed: app, and its response carries the limit headers
                  -> denied:  429 {"error":"rate_limited","policy":..,"retry_after":..}
                              with Retry-After and the limit headers
                  -> daemon cannot decide: on_error "allow" -> app (no headers);
                                           on_error "deny"  -> 503 with Retry-After: 1
                  -> daemon refuses the question (Misconfigured): 500
                     {"error":"rate_limiter_misconfigured"}

Concurrency policies (leases): a policy the daemon says is a concurrency policy is
ACQUIREd (cost = slots) before the app runs, and RELEASEd as soon as the response is
completely sent (the last body chunk, more_body false, went out), or when the app
ends without sending it (an exception, a client that disconnected mid-stream and a
send that failed or a StreamingResponse that stopped). A rule may name several
policies, `rules={"/upload": ("upload", "uploads")}`: the rate policies are checked
first, in order, then the concurrency ones acquired; a denial stops there (a denied
rate check acquires nothing; a denied acquire releases the leases this request took,
and the rate units already consumed stay spent). The headers are those of the denying
policy, else of the rule's first policy. ConcurrencyLimit is the dependency.

Callables may be plain or async functions of the Starlette Request. The middleware
puts its Limiter in the scope, so RateLimit dependencies of the same app share its
connection, trusted proxies and on_error. This is the only module importing
Starlette or FastAPI.
"""


import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .aio import AsyncClient
from .decision import Decision, Lease
from .headers import denied_body, denied_headers, json_bytes, limit_headers, raw_limit_headers
from .keys import ClientAddress, KeyFunc, ScopeKey, api_key, user_id
from .limiter import CONCURRENCY, Limiter, Misconfigured
from .rules import DEFAULT_EXEMPT, PathRules, RuleValue

__all__ = [
    "ClientAddress",
    "ConcurrencyLimit",
    "RateLimit",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "api_key",
    "rate_limit_exceeded_handler",
    "user_id",
]

DEFAULT_ADDRESS = "unix:/run/rlimitd/rlimitd.sock"  # unless RLIMITD_ADDRESS says otherwise
DEFAULT_TIMEOUT = 0.1  # seconds a request waits for the daemon
SCOPE_KEY = "rlimit.middleware"  # the scope entry holding the middleware's settings

PolicyFunc = Callable[[Request], "str | None | Awaitable[str | None]"]
CostFunc = Callable[[Request], "int | Awaitable[int]"]
UNAVAILABLE_BODY = json_bytes({"error": "rate_limiter_unavailable"})
MISCONFIGURED = {"error": "rate_limiter_misconfigured"}
MISCONFIGURED_BODY = json_bytes(MISCONFIGURED)

_shared: dict[tuple[str, float, str, str | bytes | None], Limiter] = {}


def shared_limiter(address: str | None, timeout: float = DEFAULT_TIMEOUT, on_error: str = "allow",
                   token: str | bytes | None = None) -> Limiter:
    """Returns the process-wide Limiter of address (default: $RLIMITD_ADDRESS or DEFAULT_ADDRESS)."""
    address = address or os.environ.get("RLIMITD_ADDRESS") or DEFAULT_ADDRESS
    slot = (address, timeout, on_error, token)
    if slot not in _shared:
        _shared[slot] = Limiter(AsyncClient(address, timeout, token), on_error)
    return _shared[slot]


async def _resolve(value: Any, request: Request) -> Any:
    """Returns value, or what calling it with request returns (awaited if need be)."""
    if not callable(value):
        return value
    return await _result(value(request))


_PLAIN = (str, bytes, int, type(None))  # results that are certainly not awaitable


async def _result(result: Any) -> Any:
    """Returns result, awaited if it is awaitable."""
    if isinstance(result, _PLAIN) or not inspect.isawaitable(result):
        return result
    return await result


class RateLimitMiddleware:
    """Pure ASGI middleware asking rlimitd before every HTTP request (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        address: str | None = None,
        policy: str | PolicyFunc | None = None,
        rules: Mapping[str, RuleValue] | None = None,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        exempt: Iterable[str] = DEFAULT_EXEMPT,
        trusted_proxies: Iterable[str] = (),
        forwarded_header: str = "x-forwarded-for",
        on_error: str = "allow",
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = 1.0,
        headers: bool = True,
        client: AsyncClient | None = None,
        token: str | bytes | None = None,
    ) -> None:
        if policy is None and not rules:
            raise ValueError("RateLimitMiddleware needs a policy or rules")
        self.app = app  # the wrapped application
        self.policy = policy  # default policy name, or a callable choosing it
        self.rules = PathRules(rules, exempt)  # exempt paths and per-path policies
        self.key = key  # key function; None or a None result: the client address
        self.cost = cost  # units per request, or a callable computing them
        self.client_address = ClientAddress(trusted_proxies, forwarded_header)  # default key
        if client is None:
            address = address or os.environ.get("RLIMITD_ADDRESS") or DEFAULT_ADDRESS
            client = AsyncClient(address, timeout, token)
        self.limiter = Limiter(client, on_error, retry_interval)  # daemon, health, on_error
        self.headers = headers  # add limit headers to allowed responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self
        path = scope["path"]
        exempt, matched, policy = self.rules.route(path)
        if exempt:
            await self.app(scope, receive, send)
            return
        # A Starlette Request only for the user's callables: building one costs.
        request: Request | None = None
        if not matched:
            policy = self.policy
            if callable(policy):
                request = Request(scope, receive)
                policy = await _result(policy(request))
        if policy is None:
            await self.app(scope, receive, send)
            return
        if type(policy) is tuple:
            await self._several(scope, receive, send, policy, request)
            return
        key = self.key
        if callable(key):
            if type(key) is ScopeKey or type(key) is ClientAddress:  # they read the scope only
                key = key.of_scope(scope)
            else:
                if request is None:
                    request = Request(scope, receive)
                key = await _result(key(request))
        if not key:
            key = self.client_address.of_scope(scope)
        cost = self.cost
        if callable(cost):
            if request is None:
                request = Request(scope, receive)
            cost = await _result(cost(request))
        try:
            decision = await self.limiter.check(policy, key, cost, path)
        except Misconfigured:
            await _send_raw(send, 500, MISCONFIGURED_BODY, [])
            return
        if decision is None:
            await self._undecided(scope, receive, send)
        elif not decision.allowed:
            await _send_json(send, 429, denied_body(policy, decision), denied_headers(policy, decision))
        elif type(decision) is Lease and decision.lease:
            raw = raw_limit_headers(policy, decision) if self.headers else []
            await self._holding(scope, receive, send, [(policy, decision.lease)], key, raw)
        elif self.headers:
            raw = raw_limit_headers(policy, decision)
            await self.app(scope, receive, _with_raw_headers(send, raw) if raw else send)
        else:
            await self.app(scope, receive, send)

    async def _several(self, scope: Scope, receive: Receive, send: Send, policies: tuple[str, ...],
                       request: Request | None) -> None:
        """Serves a rule of several policies: rate checks first, then acquires (module doc)."""
        if request is None:
            request = Request(scope, receive)
        key = await self.key_of(request, self.key)
        cost = await _resolve(self.cost, request)
        held: list[tuple[str, int]] = []  # leases this request took
        try:
            shown = await self._ask_several(send, policies, key, cost, scope["path"], held)
        except BaseException:
            await self._release_all(held, key)
            raise
        if shown is False:  # answered here (429, 500, 503): nothing stays held
            await self._release_all(held, key)
            return
        raw = raw_limit_headers(*shown) if self.headers and shown is not None else []
        await self._holding(scope, receive, send, held, key, raw)

    async def _ask_several(self, send: Send, policies: tuple[str, ...], key: str | bytes, cost: int, path: str,
                           held: list[tuple[str, int]]) -> tuple[str, Decision] | None | bool:
        """Asks every policy, appending leases to held; returns the headers' (policy, decision)
        (None: no headers), or False after answering the request itself."""
        limiter = self.limiter
        shown: tuple[str, Decision] | None = None
        order = [p for p in policies if p not in limiter.leased] + [p for p in policies if p in limiter.leased]
        try:
            for policy in order:
                if policy in limiter.leased:
                    decision = await limiter.acquire(policy, key, cost, path, switch=True)
                else:
                    decision = await limiter.check(policy, key, cost, path, switch=False)
                if decision is CONCURRENCY:
                    order.append(policy)  # found to be a concurrency policy: acquired after the rates
                    continue
                if decision is None:
                    if limiter.on_error == "deny":
                        await _send_raw(send, 503, UNAVAILABLE_BODY, [("Retry-After", "1")])
                        return False
                    continue
                if not decision.allowed:
                    await _send_json(send, 429, denied_body(policy, decision), denied_headers(policy, decision))
                    return False
                if type(decision) is Lease and decision.lease:
                    held.append((policy, decision.lease))
                if shown is None or policies.index(policy) < policies.index(shown[0]):
                    shown = (policy, decision)
        except Misconfigured:
            await _send_raw(send, 500, MISCONFIGURED_BODY, [])
            return False
        return shown

    async def _release_all(self, held: list[tuple[str, int]], key: str | bytes) -> None:
        for policy, lease in held:
            await self.limiter.release(policy, key, lease)

    async def _holding(self, scope: Scope, receive: Receive, send: Send, held: list[tuple[str, int]],
                       key: str | bytes, raw: list[tuple[bytes, bytes]]) -> None:
        """Runs the app with leases held; releases them once the response is sent or the app ends."""
        limiter = self.limiter
        pending = held  # leases not yet released

        async def release() -> None:
            nonlocal pending
            leases, pending = pending, []
            for policy, lease in leases:
                await limiter.release(policy, key, lease)

        async def send_then_release(message: Message) -> None:
            if raw and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *raw]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await release()

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            await release()

    async def key_of(self, request: Request, key: KeyFunc | None) -> str | bytes:
        """Returns key(request), or the client address when there is no key function or key."""
        value = await _resolve(key, request) if key is not None else None
        return value or self.client_address.of_scope(request.scope)

    async def _undecided(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter.on_error == "deny":
            await _send_raw(send, 503, UNAVAILABLE_BODY, [("Retry-After", "1")])
        else:
            await self.app(scope, receive, send)


def _with_raw_headers(send: Send, raw: list[tuple[bytes, bytes]]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *raw]}
        await send(message)

    return send_with_headers


async def _send_json(send: Send, status: int, body: object, headers: list[tuple[str, str]]) -> None:
    await _send_raw(send, status, json_bytes(body), headers)


async def _send_raw(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RateLimitExceeded(HTTPException):
    """Raised by RateLimit on a denial: 429 with the limit headers.

    FastAPI's default handler answers {"detail": {...}}; register
    rate_limit_exceeded_handler for the middleware's flat body.
    """

    def __init__(self, policy: str, decision: Decision) -> None:
        super().__init__(429, denied_body(policy, decision), dict(denied_headers(policy, decision)))
        self.policy = policy  # the policy that denied
        self.decision = decision  # the daemon's decision


async def rate_limit_exceeded_handler(request: Request, exc: Exception) -> Response:
    """Exception handler answering RateLimitExceeded like the middleware does."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(exc.detail, exc.status_code, exc.headers)


class RateLimit:
    """A FastAPI dependency limiting one route: Depends(RateLimit("export", key=user_id())).

    Returns the Decision (None when the daemon could not decide and on_error is
    "allow") and sets the limit headers on the response; raises HTTPException 503
    (on_error "deny") or 500 (the daemon refuses the question). Uses the app's
    RateLimitMiddleware settings (connection, trusted proxies, on_error) when there
    is one, else a process-wide client of `address` (default $RLIMITD_ADDRESS).
    """

    def __init__(
        self,
        policy: str,
        *,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        address: str | None = None,
        on_error: str = "allow",
        timeout: float = DEFAULT_TIMEOUT,
        trusted_proxies: Iterable[str] = (),
        token: str | bytes | None = None,
    ) -> None:
        self.policy = policy  # the policy name
        self.key = key  # key function; None or a None result: the client address
        self.cost = cost  # units per request, or a callable computing them
        self.address = address  # daemon address when no middleware is installed
        self.on_error = on_error  # used without a middleware
        self.timeout = timeout  # used without a middleware
        self.token = token  # used without a middleware: the daemon listener's token
        self.client_address = ClientAddress(trusted_proxies)  # used without a middleware

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        limiter, key = await self.limiter_and_key(request)
        try:
            decision = await limiter.check(self.policy, key, await _resolve(self.cost, request), request.url.path,
                                           switch=None)
        except Misconfigured:
            raise HTTPException(500, MISCONFIGURED) from None
        return self.answer(limiter, decision, response)

    async def limiter_and_key(self, request: Request) -> tuple[Limiter, str | bytes]:
        """Returns the Limiter to ask (the middleware's, else a shared one) and the request's key."""
        middleware: RateLimitMiddleware | None = request.scope.get(SCOPE_KEY)
        if middleware is not None and self.address is None:
            return middleware.limiter, await middleware.key_of(request, self.key)
        limiter = shared_limiter(self.address, self.timeout, self.on_error, self.token)
        return limiter, (await _resolve(self.key, request) if self.key else None) or self.client_address(request)

    def answer(self, limiter: Limiter, decision: Decision | None, response: Response) -> Decision | None:
        """Returns an allowed decision (headers set on response); raises the HTTPException of the others."""
        if decision is None:
            if limiter.on_error == "deny":
                raise HTTPException(503, {"error": "rate_limiter_unavailable"}, {"Retry-After": "1"})
            return None
        if not decision.allowed:
            raise RateLimitExceeded(self.policy, decision)
        for name, value in limit_headers(self.policy, decision):
            response.headers[name] = value
        return decision


class ConcurrencyLimit:
    """A FastAPI dependency holding a slot for the request: Depends(ConcurrencyLimit("uploads", key=user_id())).

    ACQUIREs `slots` (default 1) under a concurrency policy before the endpoint runs and
    yields the Lease (None when the daemon could not decide and on_error is "allow");
    the slot is RELEASEd when FastAPI closes the dependency, after the response has
    been sent (a StreamingResponse's last chunk included; also when the endpoint
    raised or the client disconnected mid-stream). Denied: RateLimitExceeded (429 with
    Retry-After and the limit headers). Settings as for RateLimit.
    """

    def __init__(
        self,
        policy: str,
        *,
        key: KeyFunc | None = None,
        slots: int | CostFunc = 1,
        address: str | None = None,
        on_error: str = "allow",
        timeout: float = DEFAULT_TIMEOUT,
        trusted_proxies: Iterable[str] = (),
        token: str | bytes | None = None,
    ) -> None:
        self.limit = RateLimit(policy, key=key, cost=slots, address=address, on_error=on_error, timeout=timeout,
                               trusted_proxies=trusted_proxies, token=token)  # the same settings

    async def __call__(self, request: Request, response: Response) -> AsyncIterator[Decision | None]:
        limit = self.limit
        limiter, key = await limit.limiter_and_key(request)
        try:
            decision = await limiter.acquire(limit.policy, key, await _resolve(limit.cost, request), request.url.path)
        except Misconfigured:
            raise HTTPException(500, MISCONFIGURED) from None
        limit.answer(limiter, decision, response)
        if decision is None or type(decision) is not Lease or not decision.lease:
            yield decision
            return
        try:
            yield decision
        finally:
            await limiter.release(limit.policy, key, decision.lease)
