"""Benchmark peer: the Python `limits` library (what slowapi uses) on Redis.

    /usr/bin/python3 limits_bench.py --redis redis://127.0.0.1:PORT/0 [--seconds 5]
        [--threads 8] [--keys 100000] [--limit 1000000] [--name NAME]

THREADS threads call MovingWindowRateLimiter.hit() in a closed loop over KEYS distinct keys
drawn uniformly, with a per-second limit high enough that nothing is denied, for SECONDS
after a one-second warm-up, and one JSON object is printed like rlimit-bench --json:
decisions_per_s, allowed, denied, errors, p50_us, p99_us, p999_us.

Used by tests/bench/run.sh when clients/python/bench/bench_python.py does not measure
`limits` itself. Debian's python3-limits and python3-redis belong to /usr/bin/python3.
"""

import argparse
import json
import random
import sys
import threading
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT/DB")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keys", type=int, default=100000)
    parser.add_argument("--limit", type=int, default=1000000)
    parser.add_argument("--name", default="limits-redis-moving-window")
    args = parser.parse_args()

    import limits
    from limits import RateLimitItemPerSecond, storage, strategies

    # One storage object: redis-py's connection pool hands each thread its own connection.
    store = storage.RedisStorage(args.redis)
    limiter = strategies.MovingWindowRateLimiter(store)
    item = RateLimitItemPerSecond(args.limit)
    limiter.hit(item, "warm")  # loads the scripts before the clock starts

    state = {"measuring": False, "stop": False}
    results = []  # one (allowed, denied, errors, latencies, first_error) per thread
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        allowed = denied = errors = 0
        lat = []
        first_error = None
        keys = args.keys
        perf = time.perf_counter
        while not state["stop"]:
            key = "key-%d" % rnd.randrange(keys)
            t0 = perf()
            try:
                ok = limiter.hit(item, key)
                outcome = 0 if ok else 1
            except Exception as exc:  # counted, never hidden
                outcome = 2
                if first_error is None:
                    first_error = repr(exc)
            if state["measuring"]:
                lat.append((perf() - t0) * 1e6)
                if outcome == 0:
                    allowed += 1
                elif outcome == 1:
                    denied += 1
                else:
                    errors += 1
        with lock:
            results.append((allowed, denied, errors, lat, first_error))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    state["measuring"] = True
    start = time.perf_counter()
    time.sleep(args.seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - start
    state["stop"] = True
    for t in threads:
        t.join(timeout=10)

    allowed = sum(r[0] for r in results)
    denied = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    lat = sorted(x for r in results for x in r[3])
    first_error = next((r[4] for r in results if r[4]), None)
    out = {
        "name": args.name,
        "decisions_per_s": round((allowed + denied + errors) / elapsed),
        "allowed": allowed,
        "denied": denied,
        "errors": errors,
        "p50_us": None if not lat else round(percentile(lat, 0.5)),
        "p99_us": None if not lat else round(percentile(lat, 0.99)),
        "p999_us": None if not lat else round(percentile(lat, 0.999)),
        "seconds": round(elapsed, 3),
        "threads": args.threads,
        "keys": args.keys,
        "strategy": "moving-window",
        "versions": {"python": sys.version.split()[0], "limits": limits.__version__},
    }
    if first_error:
        out["first_error"] = first_error
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
