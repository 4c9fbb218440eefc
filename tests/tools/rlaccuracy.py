#!/usr/bin/python3
"""rlaccuracy.py: do N daemons on one Redis over-admit one hot key under concurrency?

For each policy given with --policy NAME:ALGORITHM:LIMIT:PERIOD_MS[:BURST], CLIENTS
connections (spread over the daemons' addresses) send CHECKs of cost 1 on ONE key, each
waiting for its answer before the next, for DURATION seconds. Every answer is recorded
with the time its request was sent and the time it came back.

Timing: the daemons decide on Redis's clock (TIME), and Redis runs on this machine, so a
decision was taken at a Redis time inside [sent, received] of its request on this
machine's CLOCK_REALTIME (the clock time.time() and Redis's TIME both read). The checks
use those intervals, never a single client-side timestamp:

  fixed_window        the window of an admission comes from reset_after_ms: the window
                      ends at decision time + reset_after (to 1 ms), and window ends are
                      multiples of the period, so the window is the one multiple of the
                      period in [sent + reset_after - 1 ms, received + reset_after];
                      admissions per window must be <= limit (exact). Also the
                      `remaining` values in a window must be distinct.
  sliding_window_log  exact, from Redis's own state: the sorted set of the key (one entry
                      per admission, scored by its Redis time in us) is read every 200 ms
                      and merged, then every trailing period must hold <= limit entries.
                      From the client side, L+1 admissions whose intervals all fit in
                      less than a period are a certain violation (checked too).
  token_bucket, gcra  with T = ceil(period/limit) (us): any L admissions i..j must satisfy
                      count <= burst + floor(d/T), with d = (latest `received` among them)
                      - (`sent` of the first), an upper bound of their true span, so any
                      failure is a certain over-admission.

A Redis command timeout would make a daemon answer with the policy's on_store_error: the
test's policies deny then, and an admission carrying FALLBACK is a failure.

Prints per policy the largest admitted count seen (per window, per trailing period, or
the largest burst above the rate) and exits 1 on any violation.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import threading
import time
from bisect import bisect_left
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlwire as w  # noqa: E402

EPS_MS = 1.0  # clock reading granularity, on top of the 1 ms rounding of reset_after_ms


class Policy:
    def __init__(self, text: str):
        parts = text.split(":")
        self.name, self.algorithm = parts[0], parts[1]
        self.limit, self.period_ms = int(parts[2]), int(parts[3])
        self.burst = int(parts[4]) if len(parts) > 4 else (
            self.limit if self.algorithm == "token_bucket" else 1)
        self.records: list[tuple] = []  # (sent_ms, recv_ms, status, flags, remaining, reset)
        self.sent = 0


class Checker(asyncio.Protocol):
    """One client: a CHECK, its answer, the next CHECK."""

    def __init__(self, policy: Policy, key: bytes, stop: asyncio.Event):
        self.policy, self.stop = policy, stop
        self.frame = w.item_frame(0, policy.name.encode(), key)
        self.buf = bytearray()
        self.next_id = 1
        self.sent_at = 0.0
        self.transport = None
        self.done = asyncio.get_running_loop().create_future()
        self.errors: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport  # the first CHECK waits until every client is connected

    def send(self) -> None:
        if self.stop.is_set():
            self.transport.close()
            return
        self.sent_at = time.time()
        self.transport.write(w.with_id(self.frame, self.next_id))
        self.policy.sent += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.time()
        for a in w.parse_frames(self.buf):
            if a.request_id != self.next_id:
                self.errors.append(f"answer to id {a.request_id}, expected {self.next_id}")
                continue
            self.policy.records.append((self.sent_at * 1000, now * 1000, a.status, a.flags,
                                        a.remaining, a.reset_after_ms))
            self.next_id += 1
            self.send()

    def connection_lost(self, exc) -> None:
        if not self.stop.is_set():
            self.errors.append(f"connection lost: {exc}")
        if not self.done.done():
            self.done.set_result(None)


# ---------------------------------------------------------------- Redis, for the log

def resp_command(sock: socket.socket, *args: str) -> object:
    """Sends one Redis command and returns its reply (arrays of bulk strings only)."""
    out = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    sock.sendall(out.encode())
    f = sock.makefile("rb")
    try:
        return _resp_read(f)
    finally:
        f.close()


def _resp_read(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [_resp_read(f) for _ in range(int(rest))] if int(rest) >= 0 else None
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = f.read(int(rest) + 2)[:-2]
        return data.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    return rest.decode()


def zrange_following(socks: dict, port: int, key: str) -> tuple[list, int]:
    """ZRANGE key WITHSCORES on the node of port, following a Redis Cluster's MOVED (the
    port changes) and ASK (ASKING, then the command, at the target). Returns the reply and
    the port of the node that owns the key now."""
    owner, asking = port, False
    for _ in range(5):
        if port not in socks:
            socks[port] = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            if asking:
                resp_command(socks[port], "ASKING")
            return resp_command(socks[port], "ZRANGE", key, "0", "-1", "WITHSCORES"), owner
        except RuntimeError as e:
            kind, _, where = str(e).partition(" ")
            if kind not in ("MOVED", "ASK"):
                raise
            port = int(where.split(" ")[1].rpartition(":")[2])
            asking = kind == "ASK"  # ASK: this read only; the owner stays the source
            owner = owner if asking else port
    raise RuntimeError(f"ZRANGE {key}: too many redirects")


def watch_log(port: int, key: str, stop: threading.Event, seen: dict, gaps: list) -> None:
    """Merges the sorted set's entries every 200 ms until stop, and once more after it.

    Runs in its own thread, so that the clients' event loop cannot delay it. On a Redis
    Cluster, follows the key's slot when it moves (MOVED, ASK)."""
    socks: dict = {}
    home = port
    last = None
    try:
        while True:
            final = stop.is_set()
            reply, home = zrange_following(socks, home, key)
            now = time.monotonic()
            if last is not None:
                gaps.append(now - last)
            last = now
            for member in reply[0::2]:  # "<at us>:<cost>": the cost admitted at that instant
                at, _, cost = member.partition(":")
                seen[int(at)] = max(seen.get(int(at), 0), int(cost))
            if final:
                break
            stop.wait(0.2)
    finally:
        for sock in socks.values():
            sock.close()


# ---------------------------------------------------------------- checks

def check_fixed_window(p: Policy, admitted) -> tuple[dict, list[str]]:
    per_window: dict[int, list] = defaultdict(list)
    unattributed = 0
    for sent, recv, _, _, remaining, reset in admitted:
        lo = sent + reset - 1 - EPS_MS
        hi = recv + reset + EPS_MS
        ends = list(range(math.ceil(lo / p.period_ms), math.floor(hi / p.period_ms) + 1))
        if len(ends) != 1:
            unattributed += 1
            continue
        per_window[ends[0]].append(remaining)
    counts = {k: len(v) for k, v in per_window.items()}
    failures = []
    over = {k: c for k, c in counts.items() if c > p.limit}
    if over:
        failures.append(f"{p.name}: windows admitting more than {p.limit}: {over}")
    dup = {k: [r for r, n in Counter(v).items() if n > 1] for k, v in per_window.items()}
    dup = {k: v for k, v in dup.items() if v}
    if dup:
        failures.append(f"{p.name}: admissions in one window with the same remaining: {dup}")
    if unattributed > len(admitted) // 10:
        failures.append(f"{p.name}: {unattributed} admissions could not be placed in a window")
    full = sorted(counts)[1:-1]  # the first and last windows were only partly observed
    summary = {"windows": len(counts), "largest_per_window": max(counts.values(), default=0),
               "per_full_window": [counts[k] for k in full], "unattributed": unattributed}
    if len(full) < 10:
        failures.append(f"{p.name}: only {len(full)} whole windows observed")
    return summary, failures


def max_in_trailing(times: list[float], period: float, weights: list[int] | None = None) -> int:
    """Largest number (or weight) of times in any half-open interval of length period."""
    pairs = sorted(zip(times, weights or [1] * len(times)))
    times = [t for t, _ in pairs]
    prefix = [0]
    for _, weight in pairs:
        prefix.append(prefix[-1] + weight)
    best = 0
    for i, t in enumerate(times):
        best = max(best, prefix[bisect_left(times, t + period)] - prefix[i])
    return best


def check_sliding_log(p: Policy, admitted, redis_entries: dict, gaps) -> tuple[dict, list[str]]:
    failures = []
    by_sent = sorted(admitted)
    certain = 0
    for i in range(len(by_sent) - p.limit):
        group = by_sent[i:i + p.limit + 1]
        if max(r[1] for r in group) - group[0][0] < p.period_ms:
            certain += 1
    if certain:
        failures.append(f"{p.name}: {certain} groups of {p.limit + 1} admissions within less "
                        f"than a period (client-side, certain)")
    mids = [(s + r) / 2 for s, r, *_ in admitted]
    instants = sorted(redis_entries)  # us
    redis_total = sum(redis_entries.values())
    largest_redis = max_in_trailing([t / 1000 for t in instants], p.period_ms,
                                    [redis_entries[t] for t in instants])
    if largest_redis > p.limit:
        failures.append(f"{p.name}: Redis's log holds {largest_redis} entries within one "
                        f"period (limit {p.limit})")
    worst_gap = max(gaps, default=0)
    complete = worst_gap < p.period_ms / 1000 * 0.8  # each entry lives a period at least
    if complete and redis_total < len(admitted):
        failures.append(f"{p.name}: Redis's log shows {redis_total} admissions, clients "
                        f"got {len(admitted)} (snapshot gap up to {worst_gap:.2f}s)")
    if not complete:
        print(f"note: {p.name}: Redis's log was read with gaps up to {worst_gap:.2f}s, some "
              "entries may have been missed: only the per-period bound is checked on it",
              file=sys.stderr)
    summary = {"largest_in_any_period_redis": largest_redis,
               "largest_in_any_period_client_estimate": max_in_trailing(mids, p.period_ms),
               "redis_admissions": redis_total, "redis_instants": len(instants),
               "admitted_answers": len(admitted),
               "largest_snapshot_gap_s": round(worst_gap, 3)}
    return summary, failures


def check_meter(p: Policy, admitted) -> tuple[dict, list[str]]:
    t_ms = math.ceil(p.period_ms * 1000 / p.limit) / 1000.0  # emission interval, us -> ms
    by_sent = sorted(admitted)
    violations, worst = 0, (0, None)
    excess_est = excess_certain = 0
    for i in range(len(by_sent)):
        latest = by_sent[i][1]
        for j in range(i, len(by_sent)):
            latest = max(latest, by_sent[j][1])
            count = j - i + 1
            bound = p.burst + math.floor((latest - by_sent[i][0]) / t_ms)
            excess_certain = max(excess_certain, count - (bound - p.burst))
            if count > bound:
                violations += 1
                if count - bound > worst[0]:
                    worst = (count - bound, (i, j))
            mid_span = (by_sent[j][0] + by_sent[j][1] - by_sent[i][0] - by_sent[i][1]) / 2
            excess_est = max(excess_est, count - math.floor(max(mid_span, 0) / t_ms))
    failures = []
    if violations:
        failures.append(f"{p.name}: {violations} runs of admissions above burst + d/T "
                        f"(worst by {worst[0]}), certain over-admission")
    mids = [(s + r) / 2 for s, r, *_ in admitted]
    summary = {"burst": p.burst, "emission_interval_ms": t_ms,
               "largest_burst_estimate": excess_est,
               "largest_burst_certain": excess_certain,
               "largest_in_any_period_estimate": max_in_trailing(mids, p.period_ms),
               "bound_in_any_period": p.burst + math.floor(p.period_ms / t_ms)}
    return summary, failures


def self_test() -> list[str]:
    """The checks must flag a synthetic over-admission and pass the exact limit."""
    problems = []
    base = 1_800_000_000_000.0  # ms, on a window boundary

    def admissions(n, start, step=1.0, period=1000):
        # n admissions, each answered 2 ms after being sent; reset_after to the window end
        out = []
        for i in range(n):
            sent = start + i * step
            end = (math.floor((sent + 1) / period) + 1) * period
            out.append((sent, sent + 2, w.ALLOWED, 0, max(0, 49 - i), math.ceil(end - sent - 1)))
        return out
    fw = Policy("fw:fixed_window:50:1000")
    for n, bad in ((50, False), (51, True)):
        recs = [r for k in range(12) for r in admissions(n, base + k * 1000 + 100)]
        flagged = any("more than" in f for f in check_fixed_window(fw, recs)[1])
        if flagged != bad:
            problems.append(f"fixed_window check with {n} a window: flagged={flagged}")
    swl = Policy("swl:sliding_window_log:50:1000")
    for n, bad in ((50, False), (51, True)):
        recs = admissions(n, base + 100)
        entries = {int(r[0] * 1000): 1 for r in recs}
        fails = check_sliding_log(swl, recs, entries, [0.2])[1]
        if bool(fails) != bad:
            problems.append(f"sliding_window_log check with {n} a period: {fails}")
    tb = Policy("tb:token_bucket:50:1000:10")
    for n, bad in ((10, False), (11, True)):
        recs = admissions(n, base + 100, step=0.1)
        fails = check_meter(tb, recs)[1]
        if bool(fails) != bad:
            problems.append(f"token_bucket check with a burst of {n}: {fails}")
    steady = admissions(60, base + 100, step=20.0)  # exactly the rate: 1 per T
    if check_meter(Policy("g:gcra:50:1000:1"), steady)[1]:
        problems.append("gcra check flags admissions at exactly the rate")
    return problems


# ---------------------------------------------------------------- main

async def run(args, policies: list[Policy]) -> tuple[list[Checker], dict, list]:
    stop, watched = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    checkers = []
    addresses = args.addresses.split(",")
    redis_entries: dict = {}
    gaps: list = []
    watchers = [threading.Thread(target=watch_log, args=(
        args.redis_port, f"{args.key_prefix}{{{p.name}:{args.key}}}:0", watched, redis_entries,
        gaps)) for p in policies if p.algorithm == "sliding_window_log"]
    for thread in watchers:
        thread.daemon = True
        thread.start()
    try:
        for p in policies:
            for i in range(args.clients):
                address = addresses[i % len(addresses)]
                checker_box = []

                def factory(p=p, box=checker_box):
                    c = Checker(p, args.key.encode(), stop)
                    box.append(c)
                    return c
                await loop.create_unix_connection(factory, address[5:])
                checkers.append(checker_box[0])
        for c in checkers:
            c.send()
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*(c.done for c in checkers)), 60)
    finally:
        watched.set()  # a last snapshot: the newest entries live a period longer
        for thread in watchers:
            thread.join(10)
    return checkers, redis_entries, gaps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addresses", required=True, help="unix:PATH,unix:PATH,...")
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--key-prefix", default="rl:")
    ap.add_argument("--policy", action="append", required=True,
                    help="NAME:ALGORITHM:LIMIT:PERIOD_MS[:BURST]")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=11)
    ap.add_argument("--key", default="hot")
    ap.add_argument("--self-test", action="store_true",
                    help="first check that the checks catch synthetic over-admission")
    args = ap.parse_args()
    if args.self_test:
        problems = self_test()
        for problem in problems:
            print(f"FAIL: self-test: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("self-test: the checks catch one admission over each bound")
    policies = [Policy(t) for t in args.policy]
    checkers, redis_entries, gaps = asyncio.run(run(args, policies))
    failures = [e for c in checkers for e in c.errors]
    report = {}
    for p in policies:
        answered = len(p.records)
        admitted = [r for r in p.records if r[2] == w.ALLOWED]
        statuses = Counter(w.STATUS.get(r[2], str(r[2])) for r in p.records)
        flags = Counter(n for r in p.records for n in w.flag_names(r[3]))
        fallback_admits = sum(1 for r in admitted if r[3] & w.FALLBACK)
        if fallback_admits:
            failures.append(f"{p.name}: {fallback_admits} admissions by the fallback")
        if answered != p.sent:
            failures.append(f"{p.name}: {p.sent} sent, {answered} answered")
        if set(statuses) - {"ALLOWED", "DENIED"}:
            failures.append(f"{p.name}: statuses {dict(statuses)}")
        if p.algorithm == "fixed_window":
            summary, more = check_fixed_window(p, admitted)
        elif p.algorithm == "sliding_window_log":
            summary, more = check_sliding_log(p, admitted, redis_entries, gaps)
        else:
            summary, more = check_meter(p, admitted)
        failures += more
        span_s = (max(r[1] for r in p.records) - min(r[0] for r in p.records)) / 1000
        summary.update(algorithm=p.algorithm, limit=p.limit, period_ms=p.period_ms,
                       requests=p.sent, answers=answered, admitted=len(admitted),
                       status=dict(statuses), flags=dict(flags), seconds=round(span_s, 2),
                       admitted_per_second=round(len(admitted) / span_s, 2))
        report[p.name] = summary
    print(json.dumps(report, indent=1, sort_keys=True))
    for p in policies:
        s = report[p.name]
        largest = {"fixed_window": f"largest admitted per aligned window {s.get('largest_per_window')}"
                                   f" (limit {p.limit}) over {s.get('windows')} windows",
                   "sliding_window_log": f"largest admitted in any trailing period "
                                         f"{s.get('largest_in_any_period_redis')} from Redis's "
                                         f"log (limit {p.limit})"}.get(
            p.algorithm, f"largest burst above the rate {s.get('largest_burst_certain')} "
                         f"for certain, ~{s.get('largest_burst_estimate')} from midpoints "
                         f"(burst {p.burst}), largest admitted in any period "
                         f"~{s.get('largest_in_any_period_estimate')} (bound "
                         f"{s.get('bound_in_any_period')})")
        print(f"{p.name}: {s['requests']} requests, {s['admitted']} admitted: {largest}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
