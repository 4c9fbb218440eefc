#!/usr/bin/python3
"""replay_trace.py: the trace of tests/e2e/test_replay_exact.sh (rlimitctl replay decides as
the daemon does). Pure standard library (and tests/tools/rlwire.py).

    replay_trace.py config [--listen ADDR] [--perturb]    the policies (a whole config)
    replay_trace.py run --address ADDR --log LOG --decisions OUT [--margin-ms M] [--attempts N]
    replay_trace.py compare DAEMON REPLAY [--retry-slack-ms S] [--expect-mismatch-everywhere]

The trace: a few keys per policy, one policy per algorithm (fixed_window with an override,
sliding_window_log, sliding_window_counter, token_bucket, gcra) and one with two rates,
requests of cost 1..3 at planned times over 3.5 s, all policies interleaved. Each time is
chosen away from every decision boundary of its policy: window edges (fixed, counter, the
multi-rate one), the instants where the counter's weighted previous window crosses a whole
unit (elapsed = P * (1 - k / prev)), a log entry's expiry (t_j + P) and a bucket's refill
points (t_j + k * T after the request j that found it idle). `run` proves it with a model of
daemon/algo.c's semantics before sending: the (allowed, remaining) of every request stays the
same when every request moves by any amount up to the margin (default 50 ms) independently
(the extremes and 400 random draws). Then it sends the trace to a live daemon, one request
at a time at T0 + its offset (T0 a multiple of 2 s of the epoch, because fixed windows are
aligned to it), and reads each request's clock just before it is sent and just after its
answer: the daemon decided at an instant inside that interval. The log (JSON lines) gets
the interval's middle as `ts` (epoch seconds with six decimals on even lines, RFC 3339 with
microseconds on odd lines: both forms the replay reads), the key, a path, the cost and the
policy. An attempt counts only if every interval lies within the margin of its planned
time (a busy machine can delay a send): then the daemon's instant and the logged one are
both within the margin of the plan, so by the proof no boundary separates them and any
difference between the daemon's decisions and the replay's is a difference in deciding.
A late attempt is retried with fresh keys (at most --attempts).

`compare` reads the daemon's decisions and the replay's --decisions file (one JSON object a
line: line, ts_us, policy, key, allowed, remaining, retry_after_ms) and requires, line by
line, the same policy, key, allowed and remaining, and retry_after_ms within the rounding
(1 ms) plus the largest round trip of the run (the daemon's instant is known to that
precision). --expect-mismatch-everywhere inverts it for the self-test: exit 0 only if every
policy has at least one line that differs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlwire as w  # noqa: E402

ALIGN_US = 2_000_000  # T0 is a multiple of this (every window period of the trace divides it)
MAX_ATTEMPTS = 5  # attempts at sending the trace in time (each with its own key prefix)

# name: (config, trace). Rates are (algorithm, limit, period_ms, burst). Trace: (offset_ms,
# key, cost). Comments give the planned decisions (a: allowed, d: denied, r: remaining).
POLICIES = {
    "fx": {
        "config": {"algorithm": "fixed_window", "limit": 3, "period": "1s",
                   "overrides": {"vip": {"limit": 5}}},
        "trace": [(100, "a", 1), (150, "a", 1), (200, "a", 1), (250, "a", 1),  # a a a d
                  (300, "b", 2), (350, "b", 2),  # a(r1) d
                  (400, "vip", 1), (450, "vip", 1), (500, "vip", 1), (550, "vip", 1), (600, "vip", 1),
                  (650, "vip", 1),  # five allowed, the sixth denied
                  (1150, "a", 1), (1200, "a", 3), (1500, "b", 3), (1700, "vip", 4),
                  (2300, "a", 2), (2400, "a", 2), (2900, "b", 1), (3300, "vip", 5), (3400, "vip", 1)],
    },
    "lg": {  # entries expire 1125 ms after: every pair of requests is >= 125 ms from that
        "config": {"algorithm": "sliding_window_log", "limit": 3, "period": "1125ms"},
        "trace": [(100, "a", 1), (350, "a", 1), (600, "a", 1), (850, "a", 1), (1100, "a", 1),
                  (1350, "a", 1), (1600, "a", 1), (1850, "a", 1), (2100, "a", 1), (2350, "a", 2),
                  (2850, "a", 2), (3100, "a", 1),
                  (225, "b", 2), (475, "b", 2), (1475, "b", 1), (1725, "b", 3), (2725, "b", 2),
                  (3225, "b", 3)],
    },
    "ct": {  # prev in {0, 2, 4}: crossings at quarters of the window; requests near eighths
        "config": {"algorithm": "sliding_window_counter", "limit": 4, "period": "1s"},
        "trace": [(125, "a", 1), (375, "a", 1), (625, "a", 1), (875, "a", 1), (900, "a", 1),
                  (1125, "a", 1), (1375, "a", 1), (1400, "a", 1), (1625, "a", 1), (1875, "a", 1),
                  (2125, "a", 2), (2625, "a", 2), (2650, "a", 1), (3125, "a", 3),
                  (160, "b", 2), (390, "b", 2), (1130, "b", 2), (1610, "b", 3), (2500, "b", 1),
                  (2880, "b", 4), (3380, "b", 1)],
    },
    "tb": {  # T = 500 ms; after an idle request at phase p, the key's requests are at p + 250
        "config": {"algorithm": "token_bucket", "limit": 2, "period": "1s", "burst": 3},
        "trace": [(100, "a", 1), (350, "a", 1), (355, "a", 1), (360, "a", 1), (850, "a", 1),
                  (1350, "a", 1), (1850, "a", 2), (2350, "a", 2), (2360, "a", 1),
                  (200, "b", 3), (450, "b", 1), (950, "b", 1), (1950, "b", 2), (2960, "b", 3),
                  (3450, "b", 1)],
    },
    "gc": {  # T = 500 ms, burst 2
        "config": {"algorithm": "gcra", "limit": 4, "period": "2s", "burst": 2},
        "trace": [(100, "a", 1), (350, "a", 1), (355, "a", 1), (850, "a", 1), (1350, "a", 2),
                  (2350, "a", 2), (2360, "a", 1), (3600, "a", 1),
                  (300, "b", 2), (550, "b", 1), (1050, "b", 1), (1060, "b", 1), (2575, "b", 2)],
    },
    "mr": {  # two fixed-window rates: 2 per 500 ms and 4 per 2 s; requests near quarters
        "config": {"algorithm": "fixed_window",
                   "rates": [{"limit": 2, "period": "500ms"}, {"limit": 4, "period": "2s"}]},
        "trace": [(125, "a", 1), (140, "a", 1), (160, "a", 1), (625, "a", 1), (640, "a", 1),
                  (1125, "a", 1), (1375, "a", 1), (2125, "a", 2), (2140, "a", 1), (2625, "a", 1),
                  (3125, "a", 2),
                  (250, "b", 2), (750, "b", 2), (1250, "b", 1), (2250, "b", 2), (2750, "b", 1)],
    },
}

PERIOD_MS = {"500ms": 500, "1s": 1000, "2s": 2000, "1125ms": 1125}


def rates_of(config: dict, key: str) -> list[tuple]:
    """The policy's rates for key (its override applied): (algorithm, limit, period_us, burst)."""
    algorithm = config["algorithm"]
    raw = config.get("overrides", {}).get(key, config)
    if "rates" in config:
        raw_rates = raw.get("rates", config["rates"])
    else:
        raw_rates = [{"limit": raw.get("limit", config["limit"]), "period": raw.get("period", config["period"]),
                      "burst": raw.get("burst", config.get("burst"))}]
    out = []
    for r in raw_rates:
        burst = r.get("burst") or (r["limit"] if algorithm == "token_bucket" else 1)
        out.append((algorithm, r["limit"], PERIOD_MS[r["period"]] * 1000, burst))
    return out


# ---- a model of daemon/algo.c (decisions and remaining; retry_after is not needed) ----

def bucket_interval(limit: int, period: int) -> int:
    return (period - 1) // limit + 1


def decide_rate(rate: tuple, state, now: int, cost: int):
    """Returns (allowed, remaining, state after consuming if allowed)."""
    algorithm, limit, period, burst = rate
    if algorithm == "fixed_window":
        start = now - now % period
        count = state[1] if state and state[0] == start else 0
        ok = count + cost <= limit
        count += cost if ok else 0
        return ok, max(0, limit - count), (start, count)
    if algorithm == "sliding_window_counter":
        start = now - now % period
        curr, prev = 0, 0
        if state and state[0] == start:
            curr, prev = state[1], state[2]
        elif state and state[0] == start - period:
            prev = state[1]
        est = prev * (period - (now - start)) // period + curr
        ok = est + cost <= limit
        curr += cost if ok else 0
        est += cost if ok else 0
        return ok, max(0, limit - est), (start, curr, prev)
    if algorithm == "sliding_window_log":
        entries = [e for e in (state or []) if e[0] > now - period]
        used = sum(c for _, c in entries)
        ok = used + cost <= limit
        if ok:
            entries = entries + [(now, cost)]
            used += cost
        return ok, max(0, limit - used), entries
    interval = bucket_interval(limit, period)  # token_bucket, gcra
    tolerance = burst * interval
    tat = max(state or 0, now)
    ok = tat - now + cost * interval <= tolerance
    if ok:
        tat += cost * interval
    ahead = tat - now
    left = (tolerance - ahead) // interval if ahead < tolerance else 0
    return ok, left, tat


def decide(config: dict, states: dict, key: str, now: int, cost: int) -> tuple[bool, int]:
    """A CHECK of a policy: every rate must allow; then all consume. Returns (allowed, remaining)."""
    verdicts = []
    for i, rate in enumerate(rates_of(config, key)):
        verdicts.append(decide_rate(rate, states.get((key, i)), now, cost))
    allowed = all(v[0] for v in verdicts)
    if allowed:
        for i, v in enumerate(verdicts):
            states[(key, i)] = v[2]
        return True, min(v[1] for v in verdicts)
    # Denied: rl_verdict_merge keeps a denying verdict (the longest retry; all here agree
    # on remaining only when one rate denies, which is what the trace's denials do).
    denying = [v for v in verdicts if not v[0]]
    return False, min(v[1] for v in denying)


def planned() -> list[dict]:
    """The whole trace in time order (ties: the order written)."""
    reqs = []
    for name, p in POLICIES.items():
        for n, (at_ms, key, cost) in enumerate(p["trace"]):
            reqs.append({"at_us": at_ms * 1000, "policy": name, "key": key, "cost": cost, "n": n})
    reqs.sort(key=lambda r: (r["at_us"], r["policy"], r["n"]))
    return reqs


def model(reqs: list[dict], times: list[int]) -> list[tuple[bool, int]]:
    states = {name: {} for name in POLICIES}
    return [decide(POLICIES[r["policy"]]["config"], states[r["policy"]], r["key"], t, r["cost"])
            for r, t in zip(reqs, times)]


def prove_robust(reqs: list[dict], margin_us: int, samples: int = 400) -> str | None:
    """None if no shift of the requests by up to margin_us each changes a decision; else why."""
    base = [r["at_us"] for r in reqs]
    want = model(reqs, base)
    rng = random.Random(15)
    draws = [[m] * len(base) for m in (-margin_us, margin_us)]
    draws += [[margin_us * (1 if (i + k) % 2 else -1) for i in range(len(base))] for k in (0, 1)]
    draws += [[rng.choice((-margin_us, margin_us, rng.randint(-margin_us, margin_us)))
               for _ in base] for _ in range(samples)]
    for d in draws:
        times = [t + dt for t, dt in zip(base, d)]
        for i in range(1, len(times)):  # the sender keeps the order
            times[i] = max(times[i], times[i - 1])
        got = model(reqs, times)
        for r, a, b in zip(reqs, want, got):
            if a != b:
                return (f"{r['policy']} {r['key']} at {r['at_us'] // 1000} ms: {a} planned, {b} "
                        f"when moved by up to {margin_us // 1000} ms")
    return None


# ---- config ----

def config_doc(listen: str | None, perturb: bool) -> dict:
    policies = {}
    for name, p in POLICIES.items():
        c = json.loads(json.dumps(p["config"]))
        if "overrides" in c:  # the keys as sent: each attempt's prefix before the trace's key
            c["overrides"] = {f"r{n}.{k}": v for n in range(1, MAX_ATTEMPTS + 1) for k, v in c["overrides"].items()}
        if perturb:  # one more unit in every rate (the self-test: replay must then differ)
            for holder in [c] + list(c.get("overrides", {}).values()) + c.get("rates", []):
                if "limit" in holder:
                    holder["limit"] += 1
        policies[name] = c
    doc = {"store": {"type": "memory", "max_keys": 10000}, "policies": policies}
    if listen:
        doc["listen"] = [listen]
    return doc


# ---- run ----

def rfc3339(us: int) -> str:
    t = datetime.datetime.fromtimestamp(us // 1_000_000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}Z"


def log_line(index: int, us: int, policy: str, key: str, cost: int) -> str:
    ts = f"{us // 1_000_000}.{us % 1_000_000:06d}" if index % 2 == 0 else json.dumps(rfc3339(us))
    path = json.dumps(f"/{policy}/{key}")
    return (f'{{"ts": {ts}, "key": {json.dumps(key)}, "path": {path}, "cost": {cost}, '
            f'"policy": {json.dumps(policy)}}}')


def attempt(client: w.Client, reqs: list[dict], margin_us: int, prefix: str) -> tuple[list, str | None]:
    """Sends the trace once. Returns (records, None) or (records, why the attempt is late)."""
    now = time.time_ns() // 1000
    t0 = (now + 300_000) // ALIGN_US * ALIGN_US + ALIGN_US
    out, late = [], None
    for r in reqs:
        due = t0 + r["at_us"]
        wait = due - time.time_ns() // 1000
        if wait > 0:
            time.sleep(wait / 1e6)
        key = prefix + r["key"]
        before = time.time_ns() // 1000
        answer = client.check(r["policy"], key, r["cost"])
        after = time.time_ns() // 1000
        if answer.status not in (w.ALLOWED, w.DENIED):
            raise SystemExit(f"replay_trace: {r['policy']} {key}: {answer.status_name}")
        out.append({"policy": r["policy"], "key": key, "cost": r["cost"], "ts_us": (before + after) // 2,
                    "rtt_us": after - before, "allowed": answer.status == w.ALLOWED,
                    "remaining": answer.remaining, "retry_after_ms": answer.retry_after_ms})
        off = max(abs(before - due), abs(after - due))
        if off > margin_us and late is None:
            late = f"{r['policy']} {key} was {off / 1000:.1f} ms off its time (margin {margin_us / 1000:.0f} ms)"
    return out, late


def cmd_run(args) -> int:
    reqs = planned()
    margin_us = int(args.margin_ms * 1000)
    why = prove_robust(reqs, margin_us)
    if why:
        print(f"replay_trace: the trace is not {args.margin_ms} ms from every boundary: {why}", file=sys.stderr)
        return 2
    print(f"replay_trace: {len(reqs)} requests, every decision the same under moves of up to "
          f"{args.margin_ms:g} ms (model of algo.c)")
    with w.Client(args.address) as client:
        for n in range(1, args.attempts + 1):
            records, late = attempt(client, reqs, margin_us, f"r{n}.")
            if late is None:
                break
            print(f"replay_trace: attempt {n} does not count: {late}", file=sys.stderr)
        else:
            print(f"replay_trace: every attempt was late (the machine is too busy)", file=sys.stderr)
            return 3
    planned_ok = model(reqs, [r["at_us"] for r in reqs])
    differ = sum(1 for rec, (ok, rem) in zip(records, planned_ok) if (rec["allowed"], rec["remaining"]) != (ok, rem))
    with open(args.log, "w") as log, open(args.decisions, "w") as dec:
        for i, rec in enumerate(records):
            log.write(log_line(i, rec["ts_us"], rec["policy"], rec["key"], rec["cost"]) + "\n")
            dec.write(json.dumps({"line": i + 1, **rec}) + "\n")
    allowed = sum(r["allowed"] for r in records)
    print(f"replay_trace: attempt {n}: {allowed} allowed, {len(records) - allowed} denied; largest round trip "
          f"{max(r['rtt_us'] for r in records)} us; the model of algo.c disagrees with the daemon on {differ}")
    return 0


# ---- compare ----

def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd_compare(args) -> int:
    daemon, replay = read_jsonl(args.daemon), read_jsonl(args.replay)
    slack = 1 + (max(r.get("rtt_us", 0) for r in daemon) + 999) // 1000 if daemon else 1
    slack = max(slack, args.retry_slack_ms)
    mismatched: dict[str, int] = {}
    compared: dict[str, int] = {}
    problems = []
    if len(daemon) != len(replay):
        problems.append(f"{len(daemon)} daemon decisions, {len(replay)} replayed")
    by_line = {r.get("line"): r for r in replay}
    retry_diff = 0
    for d in daemon:
        r = by_line.get(d["line"])
        compared[d["policy"]] = compared.get(d["policy"], 0) + 1
        why = None
        if r is None:
            why = "no replayed decision"
        elif (r.get("policy"), r.get("key")) != (d["policy"], d["key"]):
            why = f"replayed as {r.get('policy')} {r.get('key')}"
        elif r.get("allowed") is not d["allowed"] or r.get("remaining") != d["remaining"]:
            why = f"allowed/remaining {d['allowed']}/{d['remaining']} live, {r.get('allowed')}/{r.get('remaining')} replayed"
        elif not isinstance(r.get("retry_after_ms"), int) or abs(r["retry_after_ms"] - d["retry_after_ms"]) > slack:
            why = f"retry_after_ms {d['retry_after_ms']} live, {r.get('retry_after_ms')} replayed (slack {slack})"
        elif r.get("ts_us") != d["ts_us"]:
            why = f"ts_us {d['ts_us']} logged, {r.get('ts_us')} replayed"
        if r is not None and isinstance(r.get("retry_after_ms"), int):
            retry_diff = max(retry_diff, abs(r["retry_after_ms"] - d["retry_after_ms"]))
        if why:
            mismatched[d["policy"]] = mismatched.get(d["policy"], 0) + 1
            problems.append(f"line {d['line']} ({d['policy']} {d['key']} cost {d['cost']}): {why}")
    for p in problems[:12]:
        print("  " + p)
    summary = ", ".join(f"{p} {mismatched.get(p, 0)}/{n}" for p, n in sorted(compared.items()))
    print(f"compare: differing decisions per policy: {summary} (retry_after: largest difference {retry_diff} ms, slack {slack} ms)")
    if args.expect_mismatch_everywhere:
        return 0 if compared and all(mismatched.get(p) for p in compared) else 1
    return 1 if problems else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("--listen")
    c.add_argument("--perturb", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("--address", required=True)
    r.add_argument("--log", required=True)
    r.add_argument("--decisions", required=True)
    r.add_argument("--margin-ms", type=float, default=50)
    r.add_argument("--attempts", type=int, default=MAX_ATTEMPTS, choices=range(1, MAX_ATTEMPTS + 1))
    m = sub.add_parser("compare")
    m.add_argument("daemon")
    m.add_argument("replay")
    m.add_argument("--retry-slack-ms", type=int, default=0)
    m.add_argument("--expect-mismatch-everywhere", action="store_true")
    args = p.parse_args()
    if args.cmd == "config":
        print(json.dumps(config_doc(args.listen, args.perturb), indent=1))
        return 0
    return cmd_run(args) if args.cmd == "run" else cmd_compare(args)


if __name__ == "__main__":
    sys.exit(main())
