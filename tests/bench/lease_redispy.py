"""Benchmark peer for leases: the sorted-set semaphore on redis-py's asyncio client.

    /usr/bin/python3 lease_redispy.py --redis redis://127.0.0.1:PORT/0 [--seconds 5]
        [--warmup 1] [--mode concurrent|pipelined] [--inflight 64] [--batch 256]
        [--keys 100000] [--limit 10000] [--lease-ms 30000] [--loop uvloop|asyncio]
        [--name NAME] [--script PATH]

One pair = ACQUIRE (tests/bench/lease.lua through redis-py's register_script: EVALSHA,
loaded once) and, when it was acquired, RELEASE (one ZREM of the member).

--mode concurrent: --inflight tasks, each a closed loop of pairs, one call each as a
request handler does; redis-py's pool gives each task a connection of its own (an asyncio
connection carries one call at a time).
--mode pipelined: --inflight tasks, each sending --batch ACQUIREs in one pipeline
(transaction=False), then the RELEASEs of those acquired in a second one: how a user
pipelines with redis-py, which has no automatic pipelining. A pair's latency is its
batch's.

Keys are drawn uniformly from --keys; the member is a per-process counter (the cheapest
unique id). Runs for --seconds after --warmup seconds and prints one JSON object like
rlimit-bench --json: decisions_per_s (= pairs_per_s), allowed (acquired and released),
denied, errors, release_misses (a ZREM that removed nothing: a lost lease, counted as an
error too), p50_us, p99_us, p999_us. Before measuring, a self-test on one key with limit
2 checks that the script admits 2, denies the 3rd and admits it after a release; a failure
exits 1 with no figures. --loop uvloop (the default when uvloop is installed) gives the
peer the faster event loop. --script replaces tests/bench/lease.lua (tests/e2e/
test_bench_leases.sh gives it a wrong one).
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "lease.lua"


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


class Bench:
    """The counters of one run and the pairs that feed them."""

    def __init__(self, args, redis, acquire):
        self.args, self.redis, self.acquire = args, redis, acquire
        self.measuring = self.stopping = False
        self.allowed = self.denied = self.errors = self.release_misses = 0
        self.first_error = None
        self.latencies = []  # microseconds, measured pairs only
        self.counter = 0
        self.prefix = f"{os.getpid()}:"
        self.rnd = random.Random(os.getpid())

    def next_pair(self):
        self.counter += 1
        return f"leasebench:key-{self.rnd.randrange(self.args.keys)}", self.prefix + str(self.counter)

    def count(self, outcome, t0, n=1):
        if not self.measuring:
            return
        us = (time.perf_counter() - t0) * 1e6
        self.latencies.extend([us] * n)
        if outcome == 0:
            self.allowed += n
        elif outcome == 1:
            self.denied += n
        else:
            self.errors += n

    def failed(self, e):
        if self.first_error is None:
            self.first_error = f"{type(e).__name__}: {e}"

    async def concurrent_worker(self):
        a = self.args
        while not self.stopping:
            key, member = self.next_pair()
            t0 = time.perf_counter()
            try:
                if await self.acquire(keys=[key], args=[a.limit, a.lease_ms, member]) != 1:
                    self.count(1, t0)
                    continue
                if await self.redis.zrem(key, member) != 1:
                    self.release_misses += 1
                    raise RuntimeError(f"ZREM {key} {member} removed nothing: the lease was lost")
                self.count(0, t0)
            except Exception as e:  # noqa: BLE001 - every failure is an error figure
                self.failed(e)
                self.count(2, t0)

    async def pipelined_worker(self):
        a = self.args
        while not self.stopping:
            pairs = [self.next_pair() for _ in range(a.batch)]
            t0 = time.perf_counter()
            try:
                pipe = self.redis.pipeline(transaction=False)
                for key, member in pairs:
                    await self.acquire(keys=[key], args=[a.limit, a.lease_ms, member], client=pipe)
                got = await pipe.execute()
                held = [p for p, r in zip(pairs, got) if r == 1]
                pipe = self.redis.pipeline(transaction=False)
                for key, member in held:
                    pipe.zrem(key, member)
                removed = await pipe.execute() if held else []
                misses = sum(1 for r in removed if r != 1)
                self.release_misses += misses
                self.count(0, t0, len(held) - misses)
                self.count(1, t0, len(pairs) - len(held))
                self.count(2, t0, misses)
                if misses:
                    self.failed(RuntimeError(f"{misses} ZREMs removed nothing: leases were lost"))
            except Exception as e:  # noqa: BLE001 - every failure is an error figure
                self.failed(e)
                self.count(2, t0, len(pairs))


async def self_test(redis, acquire):
    """The script admits 2 on a limit-2 key, denies the 3rd, admits it after a release."""
    key = f"leasebench:selftest:{os.getpid()}"
    got = [await acquire(keys=[key], args=[2, 60000, m]) for m in ("a", "b", "c")]
    got.append(await redis.zrem(key, "a"))
    got.append(await acquire(keys=[key], args=[2, 60000, "c"]))
    await redis.delete(key)
    if got != [1, 1, 0, 1, 1]:
        raise SystemExit(f"lease_redispy: lease script self-test: expected [1, 1, 0, 1, 1], got {got}")


async def run(args):
    import redis
    import redis.asyncio as aioredis

    pool = aioredis.ConnectionPool.from_url(args.redis, max_connections=args.inflight + 1)
    client = aioredis.Redis(connection_pool=pool)
    acquire = client.register_script(Path(args.script).read_text())
    await client.ping()
    await self_test(client, acquire)
    b = Bench(args, client, acquire)
    worker = b.pipelined_worker if args.mode == "pipelined" else b.concurrent_worker
    tasks = [asyncio.create_task(worker()) for _ in range(args.inflight)]
    await asyncio.sleep(args.warmup)
    b.measuring = True
    start = time.perf_counter()
    await asyncio.sleep(args.seconds)
    b.measuring = False
    elapsed = time.perf_counter() - start
    b.stopping = True
    await asyncio.gather(*tasks)
    await client.aclose() if hasattr(client, "aclose") else await client.close()
    await pool.disconnect()
    return b, elapsed, redis.__version__


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis", required=True, help="redis://HOST:PORT/DB or unix://PATH")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--mode", choices=("concurrent", "pipelined"), default="concurrent")
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--keys", type=int, default=100000)
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--lease-ms", type=int, default=30000)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    p.add_argument("--name", default="redispy_lease_script")
    p.add_argument("--script", default=str(SCRIPT))
    args = p.parse_args()
    for field in ("inflight", "batch", "keys", "limit", "lease_ms"):
        if getattr(args, field) < 1:
            p.error(f"--{field.replace('_', '-')} must be at least 1")
    loop = args.loop
    if loop != "asyncio":
        try:
            import uvloop
            uvloop.install()
            loop = "uvloop"
        except ImportError:
            if loop == "uvloop":
                p.error("--loop uvloop: uvloop is not installed")
            loop = "asyncio"
    b, elapsed, version = asyncio.run(run(args))
    b.latencies.sort()
    total = b.allowed + b.denied + b.errors
    out = {"name": args.name, "decisions_per_s": round(total / elapsed), "pairs_per_s": round(total / elapsed),
           "allowed": b.allowed, "denied": b.denied, "errors": b.errors, "release_misses": b.release_misses,
           "seconds": round(elapsed, 3), "mode": args.mode, "in_flight": args.inflight,
           "batch": args.batch if args.mode == "pipelined" else None, "keys": args.keys, "limit": args.limit,
           "lease_ms": args.lease_ms, "loop": loop,
           "versions": {"redis-py": version, "python": sys.version.split()[0]}}
    for q, k in ((0.5, "p50_us"), (0.99, "p99_us"), (0.999, "p999_us")):
        v = percentile(b.latencies, q)
        out[k] = None if v is None else round(v)
    if b.first_error:
        out["first_error"] = b.first_error
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
