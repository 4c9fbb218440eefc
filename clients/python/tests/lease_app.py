"""The FastAPI app of test_uvicorn_leases.py: concurrency policies in the middleware and a dependency.

Endpoints hold their slot until the test opens their gate (GET /open/<gate>, not
limited), so no test sleeps: /slow/<gate> answers once its gate is open; /stream/<gate>
(and /both/<gate>, /dep/<gate>) sends "first;" at once and "last" once its gate is open; /boom raises. The key is the
x-tenant header (each test uses tenants of its own). RLIMITD_ADDRESS names the daemon,
whose policies are "two" (concurrency, limit 2) and "rate" (3 a minute).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from rlimit import Decision
from rlimit.fastapi import ConcurrencyLimit, RateLimitExceeded, RateLimitMiddleware, rate_limit_exceeded_handler


def tenant(request: Request) -> str | None:
    return request.headers.get("x-tenant")


app = FastAPI()
app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)
app.add_middleware(
    RateLimitMiddleware,
    address=os.environ["RLIMITD_ADDRESS"],
    rules={"/slow": "two", "/stream": "two", "/boom": "two", "/both": ("rate", "two"), "/open": None,
           "/dep": None, "/health": None},
    key=tenant,
    timeout=2.0,
)
gates: dict[str, asyncio.Event] = {}  # gate name -> event


def gate(name: str) -> asyncio.Event:
    return gates.setdefault(name, asyncio.Event())


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/open/{name}")
async def open_gate(name: str) -> dict[str, str]:
    gate(name).set()
    return {"opened": name}


@app.get("/slow/{name}")
async def slow(name: str) -> dict[str, str]:
    await gate(name).wait()
    return {"done": name}


@app.get("/both/{name}")
async def both(name: str) -> StreamingResponse:
    return await stream(name)


@app.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("the endpoint failed")


@app.get("/stream/{name}")
async def stream(name: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        await gate(name).wait()
        yield b"last"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/dep/{name}")
async def dep(name: str, lease: Decision | None = Depends(ConcurrencyLimit("two", key=tenant, timeout=2.0))
              ) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        await gate(name).wait()
        yield b"last"

    return StreamingResponse(chunks(), media_type="text/plain")
