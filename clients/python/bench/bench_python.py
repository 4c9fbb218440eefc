#!/usr/bin/python3
"""Python benchmarks of rlimit (used by `make bench`); prints one JSON object a line.

    /usr/bin/python3 clients/python/bench/bench_python.py -t 5 \
        --address unix:/tmp/rlimitd.sock --redis redis://127.0.0.1:6379/0

Parts (each runs for -t seconds; a part whose input is missing is skipped):

    asyncclient  AsyncClient.check with --concurrency (64) calls in flight on one connection
    client       the blocking Client, one call at a time
    limits       the `limits` library: MovingWindowRateLimiter on RedisStorage(--redis),
                 --threads (8) threads (a peer for comparison)
    app          examples/app.py under uvicorn without a middleware (RLIMIT_DISABLE=1),
                 with rlimit's RateLimitMiddleware, with an in-process `limits` middleware
                 and with a per-request Redis middleware (peer_apps.py; the last only with
                 --redis-socket), loaded by wrk if it is on PATH, else by httpx: all apps
                 run at once, short loads alternate between them (each round in another
                 order), medians count; uvicorn's pure-Python stack (--loop asyncio --http h11)
    app_standard the same on the stack of `pip install uvicorn[standard]` (--loop uvloop
                 --http httptools); its lines' names end in _standard

Lines: {"name": ..., "decisions_per_s": ...} for the deciders; the app part prints
{"name": ..., "requests_per_s": ...} for each app (a middleware's run also as
decisions_per_s) and, per middleware, {"name": ..., "overhead_pct": ...}: 1 - its req/s /
the req/s without a middleware, in %: python_middleware_overhead (rlimit's),
python_limits_middleware_overhead, python_redis_middleware_overhead.
Decisions use --policy (default "bench", a policy that admits everything; the peers get
the same name and a limit nothing reaches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PYTHON_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PYTHON_DIR))

from rlimit import AsyncClient, Client  # noqa: E402


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _asyncclient(address: str, policy: str, seconds: float, concurrency: int) -> int:
    count = 0
    async with AsyncClient(address, timeout=5) as client:
        await client.ping()
        deadline = time.monotonic() + seconds

        async def worker(index: int) -> None:
            nonlocal count
            key = f"bench-async-{index}"
            while time.monotonic() < deadline:
                await client.check(policy, key)
                count += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return count


def bench_asyncclient(args: argparse.Namespace) -> None:
    start = time.monotonic()
    count = asyncio.run(_asyncclient(args.address, args.policy, args.seconds, args.concurrency))
    emit(name="python_asyncclient", decisions_per_s=round(count / (time.monotonic() - start)),
         concurrency=args.concurrency)


def bench_client(args: argparse.Namespace) -> None:
    count = 0
    with Client(args.address, timeout=5) as client:
        start = time.monotonic()
        deadline = start + args.seconds
        while time.monotonic() < deadline:
            client.check(args.policy, "bench-sync")
            count += 1
    emit(name="python_client_sync", decisions_per_s=round(count / (time.monotonic() - start)))


def bench_limits(args: argparse.Namespace) -> None:
    from limits import RateLimitItemPerSecond
    from limits.storage import RedisStorage
    from limits.strategies import MovingWindowRateLimiter

    storage = RedisStorage(args.redis)  # the limiter holds it by a weak reference only
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(1_000_000)
    counts = [0] * args.threads
    errors: list[BaseException] = []
    deadline = time.monotonic() + args.seconds

    def worker(index: int) -> None:
        key = f"bench-limits-{index}"
        try:
            while time.monotonic() < deadline:
                limiter.hit(item, key)
                counts[index] += 1
        except Exception as exc:  # reported after the join, not lost in a thread
            errors.append(exc)

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"limits benchmark failed: {errors[0]!r}")
    emit(name="python_limits_moving_window_redis", decisions_per_s=round(sum(counts) / (time.monotonic() - start)),
         threads=args.threads)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# uvicorn's event loop and HTTP parser per app part.
STACKS = {"app": ["--loop", "asyncio", "--http", "h11"],
          "app_standard": ["--loop", "uvloop", "--http", "httptools"]}


# The apps of an app part: (line name, what uvicorn serves, RLIMIT_DISABLE, RLIMIT_BENCH_PEER).
APPS = [("fastapi_without_middleware", "examples.app:app", "1", ""),
        ("fastapi_with_middleware", "examples.app:app", "0", ""),
        ("fastapi_with_limits_middleware", "peer_apps:app", "1", "limits"),
        ("fastapi_with_redis_middleware", "peer_apps:app", "1", "redis")]
# The overhead line of each middleware's app.
OVERHEAD_NAMES = {"fastapi_with_middleware": "middleware_overhead",
                  "fastapi_with_limits_middleware": "limits_middleware_overhead",
                  "fastapi_with_redis_middleware": "redis_middleware_overhead"}


def _start_app(args: argparse.Namespace, target: str, disable: str, peer: str,
               stack: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{PYTHON_DIR}{os.pathsep}{Path(__file__).resolve().parent}",
           "RLIMITD_ADDRESS": args.address, "RLIMIT_POLICY": args.policy, "RLIMIT_DISABLE": disable,
           "RLIMIT_BENCH_PEER": peer, "RLIMIT_BENCH_REDIS_SOCKET": args.redis_socket or ""}
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
               "--no-proxy-headers", "--no-access-log", "--log-level", "warning", *stack]
    process = subprocess.Popen(command, cwd=PYTHON_DIR, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"uvicorn did not start on port {port}")


def _load_wrk(url: str, seconds: float, concurrency: int) -> tuple[float, float]:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    total = float(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return rate, (int(non_2xx.group(1)) / total if non_2xx else 0.0)


async def _load_httpx(url: str, seconds: float, concurrency: int) -> tuple[float, float]:
    import httpx

    done = failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done, failed
            while time.monotonic() < deadline:
                failed += (await client.get(url)).status_code >= 300
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - start), failed / max(done, 1)


APP_ROUNDS = 3  # runs per app, alternated, each a third of --seconds (at least 1 s)


def _load(url: str, seconds: float, concurrency: int) -> tuple[float, float, str]:
    if shutil.which("wrk"):
        return (*_load_wrk(url, seconds, concurrency), "wrk")
    return (*asyncio.run(_load_httpx(url, seconds, concurrency)), "httpx")


def bench_app(args: argparse.Namespace, part: str = "app") -> None:
    """All apps run at once; short loads alternate between them after a warm-up of each,
    each round in another order (rotated), and each app's figure is the median of its
    runs, so that a disturbance of the machine lands on all rather than on one."""
    stack = STACKS[part]
    suffix = "" if part == "app" else "_standard"
    chosen = [a for a in APPS if a[3] != "redis" or args.redis_socket]
    apps: list[tuple[subprocess.Popen[bytes], str]] = []
    seconds = max(1.0, args.seconds / APP_ROUNDS)
    runs: list[list[tuple[float, float]]] = [[] for _ in chosen]
    tool = "wrk"
    try:
        for _, target, disable, peer in chosen:
            apps.append(_start_app(args, target, disable, peer, stack))
        for _, url in apps:
            _load(url, 1, args.concurrency)  # warm-up: imports, first connections
        for round_index in range(APP_ROUNDS):
            for step in range(len(apps)):
                index = (round_index + step) % len(apps)
                rate, non_2xx, tool = _load(apps[index][1], seconds, args.concurrency)
                runs[index].append((rate, non_2xx))
    finally:
        for process, _ in apps:
            process.terminate()
            process.wait(10)
    without = statistics.median(rate for rate, _ in runs[0])
    for (name, *_), app_runs in zip(chosen, runs):
        rate = statistics.median(r for r, _ in app_runs)
        line: dict[str, Any] = {"requests_per_s": round(rate), "load": tool, "stack": " ".join(stack),
                                "runs": [round(r) for r, _ in app_runs]}
        if name in OVERHEAD_NAMES:
            line.update(decisions_per_s=round(rate), non_2xx_fraction=round(max(f for _, f in app_runs), 4))
        emit(name=f"python_{name}{suffix}", **line)
    for (name, *_), app_runs in zip(chosen, runs):
        if name in OVERHEAD_NAMES:
            rate = statistics.median(r for r, _ in app_runs)
            emit(name=f"python_{OVERHEAD_NAMES[name]}{suffix}", overhead_pct=round(100 * (1 - rate / without), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-t", "--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--address", help="rlimitd address (unix:PATH or tcp:HOST:PORT)")
    parser.add_argument("--redis", help="redis URL for the limits peer")
    parser.add_argument("--redis-socket", help="redis-server's Unix socket for the app parts' Redis middleware")
    parser.add_argument("--policy", default="bench", help="policy to check (default bench)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls/connections in flight")
    parser.add_argument("--threads", type=int, default=8, help="threads of the limits peer")
    parser.add_argument("--parts", default="asyncclient,client,limits,app,app_standard",
                        help="comma-separated parts to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    needs = {"asyncclient": args.address, "client": args.address, "limits": args.redis, "app": args.address,
             "app_standard": args.address}
    runners = {"asyncclient": bench_asyncclient, "client": bench_client, "limits": bench_limits, "app": bench_app,
               "app_standard": lambda a: bench_app(a, "app_standard")}
    for name, runner in runners.items():
        if name in parts and needs[name]:
            runner(args)
        elif name in parts:
            print(f"bench_python: skipping {name} (needs {'--redis' if name == 'limits' else '--address'})",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
