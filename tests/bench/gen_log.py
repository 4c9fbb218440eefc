#!/usr/bin/python3
"""gen_log.py: a synthetic access log for the replay benchmark (tests/bench/run.sh, BENCH_ONLY=replay).

    gen_log.py --format combined|jsonl --lines N [--keys K] [--rate R] [--start EPOCH] [--seed S] [-o FILE]

Writes N lines (standard output, or FILE) in time order, R lines per second of log time
(default 1000), from K distinct client addresses (default 10,000: a bounded key set, so a
replay's state does not grow with the log), the busiest addresses far busier than the rest
(weights 1/rank), over 40 paths, with statuses, sizes, referers and user agents as a web
server writes them. combined: nginx/Apache's combined format with whole seconds (what
GoAccess reads with --log-format=COMBINED); jsonl: {"ts": epoch seconds with six
decimals, "key", "path"}, a second's lines spread evenly over it. Deterministic for a seed.
Fast enough to feed a replay through a pipe (lines are assembled from pools a second at a
time).
"""
from __future__ import annotations

import argparse
import itertools
import random
import sys
import time

PATHS = ([f"/api/items/{i}" for i in range(12)] + [f"/api/users/{i}/profile" for i in range(8)]
         + ["/", "/login", "/logout", "/search?q=shoes", "/search?q=hats", "/static/app.js",
            "/static/app.css", "/static/logo.png", "/health", "/api/orders", "/api/cart",
            "/api/checkout", "/favicon.ico", "/robots.txt", "/api/upload", "/api/export",
            "/docs", "/docs/api", "/blog", "/blog/rate-limits"])
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "curl/7.88.1", "python-requests/2.31.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"]
REFERERS = ["-", "-", "-", "https://www.example.com/", "https://search.example.org/?q=shop"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def address(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def clf_time(sec: int) -> str:
    t = time.gmtime(sec)
    return f"[{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000] "


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--format", choices=("combined", "jsonl"), required=True)
    p.add_argument("--lines", type=int, required=True)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--rate", type=int, default=1000, help="lines per second of log time")
    p.add_argument("--start", type=int, default=1733300000, help="the first second (epoch)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("-o", "--output")
    args = p.parse_args()
    if args.lines < 0 or args.keys < 1 or args.rate < 1:
        p.error("--lines >= 0, --keys >= 1, --rate >= 1")
    rng = random.Random(args.seed)
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(args.keys)))
    pool = 1 << 16  # draws made once and cycled through with a moving offset
    who = [address(i) for i in rng.choices(range(args.keys), cum_weights=cum, k=pool)]
    if args.format == "combined":
        tails = []
        for i in range(997):  # a prime, so that (who, tail) pairs vary over the cycle
            status = rng.choice((200, 200, 200, 200, 304, 404, 301, 500))
            tails.append(f'"{rng.choice(("GET", "GET", "GET", "POST"))} {rng.choice(PATHS)} HTTP/1.1" {status} '
                         f'{rng.randint(0, 50000)} "{rng.choice(REFERERS)}" "{rng.choice(AGENTS)}"\n')
    else:
        tails = [f'", "path": "{rng.choice(PATHS).split("?")[0]}"}}\n' for _ in range(997)]
    out = open(args.output, "w") if args.output else sys.stdout
    written, sec, offset = 0, args.start, 0
    while written < args.lines:
        n = min(args.rate, args.lines - written)
        if args.format == "combined":
            stamp = " - - " + clf_time(sec)
            lines = [who[(offset + i) % pool] + stamp + tails[(offset + i) % 997] for i in range(n)]
        else:
            step = 1_000_000 // n
            lines = [f'{{"ts": {sec}.{i * step:06d}, "key": "{who[(offset + i) % pool]}' + tails[(offset + i) % 997]
                     for i in range(n)]
        out.write("".join(lines))
        written += n
        offset += n
        sec += 1
    out.flush()
    if args.output:
        out.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early
        sys.exit(1)
