#!/usr/bin/python3
"""Python benchmarks of rlimit (used by `make bench`); prints one JSON object a line.

    /usr/bin/python3 clients/python/bench/bench_python.py -t 5 \
        --address unix:/tmp/rlimitd.sock --redis redis://127.0.0.1:6379/0

Parts (each runs for -t seconds; a part whose input is missing is skipped):

    asyncclient  AsyncClient.check with --concurrency (64) calls in flight on one connection
    client       the blocking Client, one call at a time
    limits       the `limits` library: MovingWindowRateLimiter on RedisStorage(--redis),
                 --threads (8) threads (a peer for comparison)
    app          examples/app.py under uvicorn with and without the middleware
                 (RLIMIT_DISABLE=1), loaded by wrk if it is on PATH, else by httpx:
                 both apps run at once, loads alternate between them, medians count;
                 uvicorn's pure-Python stack (--loop asyncio --http h11)
    app_standard the same on the stack of `pip install uvicorn[standard]` (--loop uvloop
                 --http httptools); its lines' names end in _standard

Lines: {"name": ..., "decisions_per_s": ...} for the deciders; the app part prints
{"name": ..., "requests_per_s": ...} for both runs (the middleware run also as
decisions_per_s) and {"name": "python_middleware_overhead", "overhead_pct": ...}.
Decisions use --policy (default "bench", a policy that admits everything).
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


def _start_app(args: argparse.Namespace, disable: bool, stack: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "RLIMITD_ADDRESS": args.address,
           "RLIMIT_POLICY": args.policy, "RLIMIT_DISABLE": "1" if disable else "0"}
    command = [sys.executable, "-m", "uvicorn", "examples.app:app", "--host", "127.0.0.1", "--port", str(port),
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
    """Both apps run at once; short loads alternate between them (without, with, without,
    ...) after a warm-up of each, and each app's figure is the median of its runs, so
    that a disturbance of the machine lands on both rather than on one whole run."""
    stack = STACKS[part]
    suffix = "" if part == "app" else "_standard"
    apps: list[tuple[subprocess.Popen[bytes], str]] = []
    seconds = max(1.0, args.seconds / APP_ROUNDS)
    runs: list[list[tuple[float, float]]] = [[], []]
    tool = "wrk"
    try:
        apps.append(_start_app(args, True, stack))
        apps.append(_start_app(args, False, stack))
        for _, url in apps:
            _load(url, 1, args.concurrency)  # warm-up: imports, first connections
        for _ in range(APP_ROUNDS):
            for index, (_, url) in enumerate(apps):
                rate, non_2xx, tool = _load(url, seconds, args.concurrency)
                runs[index].append((rate, non_2xx))
    finally:
        for process, _ in apps:
            process.terminate()
            process.wait(10)
    without = statistics.median(rate for rate, _ in runs[0])
    with_middleware = statistics.median(rate for rate, _ in runs[1])
    non_2xx = max(fraction for _, fraction in runs[1])
    emit(name="python_fastapi_without_middleware" + suffix, requests_per_s=round(without), load=tool,
         stack=" ".join(stack), runs=[round(rate) for rate, _ in runs[0]])
    emit(name="python_fastapi_with_middleware" + suffix, requests_per_s=round(with_middleware),
         decisions_per_s=round(with_middleware), non_2xx_fraction=round(non_2xx, 4), load=tool,
         stack=" ".join(stack), runs=[round(rate) for rate, _ in runs[1]])
    emit(name="python_middleware_overhead" + suffix,
         overhead_pct=round(100 * (1 - with_middleware / without), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-t", "--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--address", help="rlimitd address (unix:PATH or tcp:HOST:PORT)")
    parser.add_argument("--redis", help="redis URL for the limits peer")
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
