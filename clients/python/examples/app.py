"""An example FastAPI service rate-limited by rlimitd.

Run the daemon (`make run`: conf/rlimitd.json listens on unix:/tmp/rlimitd.sock), then

    cd clients/python && /usr/bin/python3 -m uvicorn examples.app:app --no-proxy-headers

and try `curl -i localhost:8000/auth/token -X POST` a few times. Settings (environment):

    RLIMITD_ADDRESS         daemon address (default unix:/tmp/rlimitd.sock)
    RLIMITD_TOKEN_FILE      file holding the listener's token (for a tcp: listener with token_file)
    RLIMIT_API_KEYS_FILE    file of the genuine API keys, one a line; requests with another
                            key (or none) are limited by client address
    RLIMIT_POLICY           policy of every route without a rule (default api)
    RLIMIT_TRUSTED_PROXIES  comma-separated proxy IPs/CIDRs whose X-Forwarded-For counts
    RLIMIT_ON_ERROR         allow (default) or deny (503) while the daemon cannot answer
    RLIMIT_DISABLE=1        no middleware (to measure its overhead)

`--no-proxy-headers` keeps uvicorn from rewriting the client address from
X-Forwarded-For itself (by default it trusts 127.0.0.1); the middleware's
trusted_proxies decides instead.
"""


import logging
import os

from fastapi import Depends, FastAPI

from rlimit import Decision, read_token
from rlimit.fastapi import (
    RateLimit,
    RateLimitExceeded,
    RateLimitMiddleware,
    api_key,
    rate_limit_exceeded_handler,
)

ADDRESS = os.environ.get("RLIMITD_ADDRESS", "unix:/tmp/rlimitd.sock")
TOKEN = read_token(os.environ["RLIMITD_TOKEN_FILE"]) if os.environ.get("RLIMITD_TOKEN_FILE") else None


def genuine_api_keys() -> frozenset[str]:
    """Returns the API keys this service issued (a real one asks its user store)."""
    path = os.environ.get("RLIMIT_API_KEYS_FILE")
    if not path:
        return frozenset()
    with open(path, encoding="utf-8") as file:
        return frozenset(line.strip() for line in file if line.strip())


# A genuine API key is its own counter ("apikey:<key>"); no key, or one the service
# never issued, is limited by client address ("ip:<address>"): inventing keys gains nothing.
API_KEY = api_key("x-api-key", valid=genuine_api_keys())

# Outage warnings and denials (INFO on rlimit.denied) on stderr.
rlimit_log = logging.getLogger("rlimit")
if not rlimit_log.handlers:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    rlimit_log.addHandler(handler)
    rlimit_log.setLevel(logging.INFO)

app = FastAPI(title="rlimit example")
app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)

if os.environ.get("RLIMIT_DISABLE") != "1":
    app.add_middleware(
        RateLimitMiddleware,
        address=ADDRESS,
        policy=os.environ.get("RLIMIT_POLICY", "api"),
        rules={"/auth/token": "login", "/upload": "upload", "/search": "search", "/reports": None},
        key=API_KEY,
        trusted_proxies=[p for p in os.environ.get("RLIMIT_TRUSTED_PROXIES", "").split(",") if p],
        on_error=os.environ.get("RLIMIT_ON_ERROR", "allow"),
        token=TOKEN,
    )


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/auth/token")
async def token() -> dict[str, str]:
    return {"token": "example"}


@app.post("/upload")
async def upload() -> dict[str, bool]:
    return {"stored": True}


@app.get("/search")
async def search(q: str = "") -> dict[str, list[str]]:
    return {"results": [q] if q else []}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/reports")
async def reports(
    decision: Decision | None = Depends(RateLimit("search", key=API_KEY, cost=2, token=TOKEN)),
) -> dict[str, int | None]:
    """Limited by a per-route dependency (the middleware's rules skip /reports)."""
    return {"remaining": decision.remaining if decision else None}
