#!/usr/bin/python3
"""gen_access_log.py: a realistic synthetic access log for `make demo-replay` (README "Replay").

    gen_access_log.py [--hours H] [--rate R] [--clients N] [--start EPOCH] [--seed S]
                      [--msec] [-o FILE]

Writes nginx/Apache combined-format lines in time order (standard output, or FILE), one
day by default, starting at --start (default 2024-12-04 00:00:00 UTC), deterministic for
a seed. What is in it:

- steady traffic from N ordinary clients (default 3000; addresses in 198.18.0.0/15 and
  2001:db8::/32, documentation ranges), each with its own share (weights 1/rank^0.6: a
  few busy users, a long tail), at R requests per second on average (default 8) along a
  daily curve: quietest at 04:00 UTC (a quarter of the peak), busiest at 16:00;
- the paths an app with an API, a search, a login and uploads sees (/api/..., /search,
  /login, /upload, /static/..., /health), statuses and sizes to match;
- three abusive clients: a scraper walking /api/items at 4 requests per second from
  02:00 to 08:00, a credential stuffer on /login every 2 s from 11:00 to 13:00, and a
  search hammer sending 25 requests per second to /search for 10 minutes at 20:00;
- a burst behind one NAT address (192.0.2.10, an office: many users, many browsers, one
  address): 09:00 to 09:30, 3 requests per second across /api and /search on top of the
  office's ordinary traffic.

--msec appends nginx's $msec and $request_time after the user agent (the replay then
takes the exact time from $msec); without it the lines carry whole seconds, as the
combined format does.
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time

DAY = 86400
DEFAULT_START = 1733270400  # 2024-12-04 00:00:00 UTC

AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "okhttp/4.12.0",
]
SCRAPER_AGENT = "python-requests/2.31.0"
STUFFER_AGENT = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1)"
HAMMER_AGENT = "curl/7.88.1"

# (path template, weight, method, status choices): what ordinary clients ask for.
ORDINARY = [
    ("/api/items/{n}", 40, "GET", (200, 200, 200, 200, 404)),
    ("/api/items?page={n}", 10, "GET", (200,)),
    ("/api/cart", 6, "POST", (200, 201)),
    ("/api/orders/{n}", 4, "GET", (200, 404)),
    ("/search?q={word}", 12, "GET", (200,)),
    ("/login", 1.5, "POST", (200, 302, 401)),
    ("/upload", 0.3, "POST", (201, 413)),
    ("/static/app.{ext}", 14, "GET", (200, 304)),
    ("/health", 3, "GET", (200,)),
    ("/", 5, "GET", (200,)),
]
WORDS = ["shoes", "hats", "red+scarf", "laptop", "gift", "lamp", "desk", "coffee", "tea", "book"]
EXTS = ["js", "css", "png", "svg", "woff2"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

NAT_ADDRESS = "192.0.2.10"


def daily_factor(t: int) -> float:
    """Traffic at time t relative to the day's peak: 1.0 at 16:00 UTC, 0.25 at 04:00."""
    hour = (t % DAY) / 3600.0
    return 0.25 + 0.75 * (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2


def client_addresses(count: int, rng: random.Random) -> list[str]:
    """Distinct ordinary client addresses: 1 in 8 IPv6, the rest IPv4."""
    seen: set[str] = set()
    while len(seen) < count:
        if rng.random() < 0.125:
            seen.add(f"2001:db8:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}")
        else:
            seen.add(f"198.{rng.randrange(18, 20)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}")
    addresses = sorted(seen)
    rng.shuffle(addresses)
    return addresses


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method below 30, a rounded normal above)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Writer:
    """Formats combined-format lines for one second at a time."""

    def __init__(self, out, msec: bool, rng: random.Random) -> None:
        self.out = out
        self.msec = msec
        self.rng = rng
        self.lines = 0

    def second(self, t: int, requests: list[tuple[str, str, str, int, str]]) -> None:
        """Writes the requests (address, method, path, status, agent) of second t."""
        if not requests:
            return
        tm = time.gmtime(t)
        stamp = (f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
                 f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} +0000")
        rng = self.rng
        fractions = sorted(rng.randrange(1000) for _ in requests) if self.msec else None
        rows = []
        for i, (addr, method, path, status, agent) in enumerate(requests):
            size = 0 if status in (302, 304) else rng.randrange(200, 24000)
            referer = "-" if path.startswith("/api/") or rng.random() < 0.5 else "https://shop.example/"
            row = f'{addr} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "{referer}" "{agent}"'
            if fractions is not None:
                row += f" {t}.{fractions[i]:03d} {rng.randrange(1, 400) / 1000:.3f}"
            rows.append(row)
        self.out.write("\n".join(rows))
        self.out.write("\n")
        self.lines += len(rows)


class Traffic:
    """Everyone's requests, second by second."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.start = args.start
        self.rate = args.rate
        self.clients = client_addresses(args.clients, self.rng)
        self.client_agents = [self.rng.choice(AGENTS) for _ in self.clients]
        weights = [1 / (rank + 1) ** 0.6 for rank in range(len(self.clients))]
        self.client_cum = list(itertools.accumulate(weights))
        self.path_cum = list(itertools.accumulate(w for _, w, _, _ in ORDINARY))
        # Daily mean is R: the curve's mean over a day is 0.625 of its peak.
        self.peak_rate = args.rate / 0.625

    def ordinary_request(self, addr: str, agent: str) -> tuple[str, str, str, int, str]:
        rng = self.rng
        template, _, method, statuses = ORDINARY[
            rng.choices(range(len(ORDINARY)), cum_weights=self.path_cum)[0]]
        path = template.format(n=rng.randrange(1, 5000), word=rng.choice(WORDS),
                               ext=rng.choice(EXTS))
        return (addr, method, path, rng.choice(statuses), agent)

    def ordinary(self, t: int) -> list[tuple[str, str, str, int, str]]:
        rng = self.rng
        count = poisson(rng, self.peak_rate * daily_factor(t))
        picks = rng.choices(range(len(self.clients)), cum_weights=self.client_cum, k=count)
        return [self.ordinary_request(self.clients[i], self.client_agents[i]) for i in picks]

    def abusive(self, t: int) -> list[tuple[str, str, str, int, str]]:
        """The scraper, the credential stuffer, the search hammer and the NAT burst."""
        rng, hour, out = self.rng, (t - self.start) / 3600.0, []
        if 2 <= hour < 8:
            out += [("203.0.113.66", "GET", f"/api/items/{rng.randrange(1, 100000)}", 200,
                     SCRAPER_AGENT) for _ in range(poisson(rng, 4))]
        if 11 <= hour < 13 and t % 2 == 0:
            out.append(("203.0.113.99", "POST", "/login", 401, STUFFER_AGENT))
        if 20 <= hour < 20 + 10 / 60:
            out += [("198.51.100.23", "GET", f"/search?q={rng.choice(WORDS)}&page={rng.randrange(1, 50)}",
                     200, HAMMER_AGENT) for _ in range(poisson(rng, 25))]
        if 9 <= hour < 9.5:
            for _ in range(poisson(rng, 3)):
                out.append(self.ordinary_request(NAT_ADDRESS, rng.choice(AGENTS)))
        return out

    def run(self, writer: Writer, seconds: int) -> None:
        for t in range(self.start, self.start + seconds):
            requests = self.ordinary(t) + self.abusive(t)
            self.rng.shuffle(requests)
            writer.second(t, requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="log span (default 24)")
    parser.add_argument("--rate", type=float, default=8.0,
                        help="ordinary requests per second, daily mean (default 8)")
    parser.add_argument("--clients", type=int, default=3000, help="ordinary clients (default 3000)")
    parser.add_argument("--start", type=int, default=DEFAULT_START,
                        help="first second, epoch (default 2024-12-04 00:00:00 UTC)")
    parser.add_argument("--seed", type=int, default=15, help="random seed (default 15)")
    parser.add_argument("--msec", action="store_true", help="append $msec and $request_time")
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args()
    if args.hours <= 0 or args.rate < 0 or args.clients < 1:
        parser.error("--hours must be > 0, --rate >= 0, --clients >= 1")
    out = open(args.output, "w", encoding="ascii") if args.output else sys.stdout
    try:
        writer = Writer(out, args.msec, random.Random(args.seed + 1))
        Traffic(args).run(writer, int(args.hours * 3600))
    finally:
        if args.output:
            out.close()
    print(f"gen_access_log: {writer.lines} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
