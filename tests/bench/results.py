"""Collects the figures of tests/bench/run.sh, prints them, and writes the summary JSON.

    results.py record FILE --name NAME --desc TEXT [--where TEXT] [--cmd TEXT] < JSON_LINES
    results.py skip FILE --name NAME --desc TEXT --reason TEXT
    results.py annotate FILE NAME FIELD=VALUE...
    results.py round FILE --format rlimit-bench|redis-benchmark [--server-cpu "C0 C1"]
                          [--wall "T0 T1"] [--requests N] < OUTPUT
    results.py note-round FILE FIELD=VALUE...
    results.py lease-counters POLICY < STATS_JSON
    results.py combine FILE
    results.py summary FILE --out BENCH_JSON [--meta JSON]

`record` reads one JSON object a line on stdin (rlimit-bench --json, rlf_bench.js,
limits_bench.py, redis-benchmark converted by run.sh, bench_python.py lines), adds the
name (unless the line has its own), description, placement and command, appends each to
FILE (JSON lines) and prints one human line each. A line that is not JSON is echoed and
ignored. No object at all on stdin is recorded as skipped (the measurement printed
nothing), never as a zero.

`round` appends one round of a side-by-side pair to FILE: rlimit-bench's JSON line or
redis-benchmark's --csv output (rps and p50/p95/p99/max in ms) on stdin, with the server's
CPU use meanwhile (--server-cpu: its CPU seconds before and after, --wall: the clock
before and after). `note-round` adds fields to the last round of FILE (what redis-server
ran meanwhile); `lease-counters` prints a concurrency policy's counters from rlimitctl stats
--json (acquired released released_on_disconnect held, or nothing). `combine` prints one JSON object for the rounds of FILE: the medians of
their rates and percentiles, the rounds' own figures beside them.

`summary` prints the table of figures, then one table of every ratio with its target and
"met" / "not met" (issue 12: targets are ratios to peers measured in the same run), and
writes everything as one JSON object to --out. A figure that is missing makes its ratio
"skipped: <why>", never a guess. Latencies are information, not targets, except the one
ratio of p99s against redis-server.
"""

import argparse
import csv
import datetime
import io
import json
import statistics
import sys

# The targets (issue 12), each a ratio of two figures measured in the same run.
TARGET_VS_REDIS_INCR = 1.0  # memory store / redis-server INCR, same shape: throughput at least
TARGET_VS_REDIS_INCR_P99 = 1.0  # memory store p99 / redis-server INCR p99, 64 x 1: at most
TARGET_REDIS_RATIO = 3.0  # rlimitd+redis / rate-limiter-flexible: at least
TARGET_VS_LIMITS_OVERHEAD = 1.0  # middleware overhead / in-process `limits` one (h11): at most
TARGET_VS_REDIS_MW_OVERHEAD = 0.5  # middleware overhead / per-request Redis one: at most
TARGET_ASYNC_RATIO = 5.0  # AsyncClient / limits with redis: at least
TARGET_LEASE_RATIO = 3.0  # leases (issue 14): rlimitd's pairs/s / the best peer's: at least
TARGET_CLUSTER_RATIO = 3.0  # Redis Cluster (issue 13): rlimitd / rate-limiter-flexible on ioredis Cluster: at least
TARGET_CLUSTER_BATCH = 2.0  # single-Redis items per call / the cluster's lowest per node, same load: at most
PROJECTED_MASTERS = (1, 3, 10, 30, 100)  # the Redis Cluster projection's sizes
# The peers of the leases target: the sorted-set lease script and a ZREM per pair.
LEASE_PEERS = ("ioredis_lease_script", "ioredis_lease_script_autopipeline", "redispy_lease_script",
               "redispy_lease_script_pipelined")
SATURATED_PCT = 85  # a server below this CPU use (% of a core) was not what set the pace
OPEN_LOOP_SHORTFALL = 0.97  # an open-loop run that reached less than this of its rate fell short


def load(path):
    records = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    records[r["name"]] = r
    except FileNotFoundError:
        pass
    return records


def fmt_int(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def short_cpu(text):
    """'core0=88% core1=44%' -> '88/44'."""
    if not text:
        return "-"
    return "/".join(p.split("=")[-1].rstrip("%") for p in str(text).split())


def human(r):
    if "skipped" in r:
        return f"  {r['name']}: skipped: {r['skipped']}"
    parts = []
    if r.get("decisions_per_s") is not None and "requests_per_s" not in r:
        parts.append(f"{fmt_int(r['decisions_per_s'])} decisions/s")
    if r.get("requests_per_s") is not None:
        parts.append(f"{fmt_int(r['requests_per_s'])} requests/s")
    if r.get("lines_per_s") is not None:  # replay section: log lines
        parts.append(f"{fmt_int(r['lines_per_s'])} lines/s ({fmt_int(r.get('lines_per_cpu_s'))} per CPU-s)")
    if r.get("rss_kb") is not None:
        parts.append(f"max RSS {fmt_int(r['rss_kb'])} KB")
    if r.get("target_rate"):
        parts.append(f"(target {fmt_int(r['target_rate'])}/s)")
    if r.get("overhead_pct") is not None:
        parts.append(f"overhead {r['overhead_pct']}%")
    for k in ("allowed", "denied", "errors"):
        if r.get(k) is not None:
            parts.append(f"{k}={fmt_int(r[k])}")
    lat = [f"{q}={fmt_int(r[q + '_us'])}us" for q in ("p50", "p99", "p999") if r.get(q + "_us") is not None]
    if lat:
        parts.append("latency " + " ".join(lat))
    if r.get("non_2xx_fraction"):
        parts.append(f"non-2xx={r['non_2xx_fraction']}")
    if r.get("server_cpu_pct") is not None:
        parts.append(f"server CPU {r['server_cpu_pct']}%")
    if r.get("load_cpu_pct") is not None:
        parts.append(f"load generator CPU {r['load_cpu_pct']}%")
    if r.get("daemon_cpu_pct") is not None:
        parts.append(f"rlimitd CPU {r['daemon_cpu_pct']}%")
    if r.get("rounds"):
        parts.append(f"median of {r['rounds']} rounds {r.get('round_rates')}")
    if r.get("where"):
        parts.append(f"[{r['where']}]")
    return f"  {r['name']}: " + "  ".join(parts)


def cmd_record(args):
    got = 0
    with open(args.file, "a") as out:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                print(f"    | {line}")
                continue
            if not isinstance(obj, dict):
                continue
            obj.setdefault("name", args.name)
            obj.setdefault("description", args.desc)
            if args.where:
                obj.setdefault("where", args.where)
            if args.command:
                obj.setdefault("command", args.command)
            if args.source:
                obj.setdefault("source", args.source)
            if args.cpu:
                obj.setdefault("cpu_available_before", args.cpu)
            out.write(json.dumps(obj) + "\n")
            print(human(obj), flush=True)
            got += 1
    if got == 0:
        rec = {"name": args.name, "description": args.desc,
               "skipped": args.empty_reason or "the measurement printed no figures"}
        with open(args.file, "a") as out:
            out.write(json.dumps(rec) + "\n")
        print(human(rec), flush=True)
    return 0


def cmd_skip(args):
    rec = {"name": args.name, "description": args.desc, "skipped": args.reason}
    with open(args.file, "a") as out:
        out.write(json.dumps(rec) + "\n")
    print(human(rec), flush=True)
    return 0


def cmd_annotate(args):
    """Adds fields (name=value, numbers where they parse) to the last record called NAME."""
    with open(args.file) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    extra = {}
    for kv in args.fields:
        k, _, v = kv.partition("=")
        try:
            extra[k] = int(v)
        except ValueError:
            try:
                extra[k] = float(v)
            except ValueError:
                extra[k] = v
    for r in reversed(lines):
        if r.get("name") == args.name:
            if "skipped" not in r:
                r.update(extra)
                if extra.get("redis_script_calls_per_s") == 0:
                    r["warning"] = "redis-server ran no script meanwhile: these decisions did not come from Redis"
                    print(f"    WARNING: {args.name}: {r['warning']}")
                rate = r.get("decisions_per_s")
                calls_per_s = extra.get("redis_script_calls_per_s")
                if rate and calls_per_s:
                    r["decisions_per_script_call"] = round(rate / calls_per_s, 1)
                    if extra.get("redis_script_usec_per_s"):
                        r["redis_script_us_per_decision"] = round(extra["redis_script_usec_per_s"] / rate, 2)
            break
    with open(args.file, "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    return 0


def figure(records, name, field):
    """(value, None) or (None, why it is missing)."""
    r = records.get(name)
    if r is None:
        return None, f"{name} was not measured"
    if "skipped" in r:
        return None, f"{name} skipped: {r['skipped']}"
    v = r.get(field)
    if v is None:
        return None, f"{name} has no {field}"
    return v, None


def open_loop_problem(records, name):
    """Why an open-loop run does not count (errors, or it fell short of its rate), or None."""
    r = records.get(name) or {}
    if r.get("errors"):
        return f"{name} had {r['errors']} errors"
    rate, achieved = r.get("target_rate"), r.get("decisions_per_s")
    if rate and achieved is not None and achieved < OPEN_LOOP_SHORTFALL * rate:
        return f"{name} reached only {achieved:,.0f} of {rate:,.0f}/s"
    return None


def _median(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    m = statistics.median(values)
    return round(m) if isinstance(m, float) and abs(m) >= 10 else m


def _redis_benchmark_csv(text, requests):
    """One record from redis-benchmark --csv: its last row (rps, latencies in ms)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not rows[-1].get("rps"):
        return None
    row = rows[-1]

    def us(field):
        value = row.get(field)
        return None if value in (None, "") else round(float(value) * 1000)

    return {"decisions_per_s": round(float(row["rps"])), "p50_us": us("p50_latency_ms"),
            "p95_us": us("p95_latency_ms"), "p99_us": us("p99_latency_ms"), "max_us": us("max_latency_ms"),
            "avg_us": us("avg_latency_ms"), "requests": requests, "test": row.get("test")}


def _pair_of_floats(text):
    try:
        a, b = (float(x) for x in text.split())
        return a, b
    except ValueError:
        return None


def _bash_times(text):
    """Seconds of user + system CPU from a line of bash's `times` ("0m1.250s 0m0.310s")."""
    try:
        total = 0.0
        for part in text.split():
            minutes, _, rest = part.partition("m")
            total += 60 * float(minutes) + float(rest.rstrip("s"))
        return total if text.split() else None
    except ValueError:
        return None


def cmd_round(args):
    """Appends one round (see the module doc); exit status 1 when stdin holds no figures."""
    text = sys.stdin.read()
    if args.format == "redis-benchmark":
        rec = _redis_benchmark_csv(text, args.requests)
    else:
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        rec = lines[-1] if lines else None
    if rec is None:
        print(f"results.py round: no figures in: {text[-300:]!r}", file=sys.stderr)
        return 1
    cpu, wall = _pair_of_floats(args.server_cpu), _pair_of_floats(args.wall)
    if cpu and wall and wall[1] > wall[0]:
        rec["server_cpu_pct"] = round(100 * (cpu[1] - cpu[0]) / (wall[1] - wall[0]))
        load = _bash_times(args.load_times)
        if load is not None:
            rec["load_cpu_pct"] = round(100 * load / (wall[1] - wall[0]))
        if cpu[1] > cpu[0] and rec.get("decisions_per_s"):
            # What the server does per second of its own CPU: the load generator's speed
            # drops out (it does not when the server's core was not kept busy).
            rec["decisions_per_server_cpu_s"] = round(rec["decisions_per_s"] * (wall[1] - wall[0]) / (cpu[1] - cpu[0]))
    with open(args.file, "a") as out:
        out.write(json.dumps(rec) + "\n")
    return 0


def cmd_note_round(args):
    """Adds FIELD=VALUE pairs (integers) to the last round of FILE."""
    with open(args.file) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines:
        print(f"results.py note-round: {args.file} holds no round", file=sys.stderr)
        return 1
    for kv in args.fields:
        k, _, v = kv.partition("=")
        lines[-1][k] = int(v)
    with open(args.file, "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")
    return 0


LEASE_COUNTERS = ("acquired", "released", "released_on_disconnect", "held")


def cmd_lease_counters(args):
    """Prints POLICY's lease counters from a STATS answer on stdin, or nothing."""
    try:
        stats = json.loads(sys.stdin.read())
        policy = next(p for p in stats["policies"] if p.get("name") == args.policy)
        print(" ".join(str(int(policy[k])) for k in LEASE_COUNTERS))
    except (ValueError, KeyError, TypeError, StopIteration):
        pass
    return 0


def cmd_combine(args):
    """Prints the medians of the rounds in FILE as one record (exit status 1 if none)."""
    try:
        with open(args.file) as f:
            rounds = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rounds = []
    if not rounds:
        print("no round finished", file=sys.stderr)
        return 1
    out = {k: _median(r.get(k) for r in rounds)
           for k in ("decisions_per_s", "pairs_per_s", "p50_us", "p95_us", "p99_us", "p999_us", "server_cpu_pct",
                     "load_cpu_pct", "decisions_per_server_cpu_s", "redis_script_calls", "redis_commands",
                     "daemon_cpu_pct")}
    out = {k: v for k, v in out.items() if v is not None}
    out["max_us"] = max((r["max_us"] for r in rounds if r.get("max_us") is not None), default=None)
    for k in ("allowed", "denied", "errors", "failed_connections", "requests", "release_misses",
              "daemon_acquired", "daemon_released", "daemon_released_on_disconnect"):
        if any(k in r for r in rounds):
            out[k] = sum(r.get(k) or 0 for r in rounds)
    for k in ("connections", "in_flight", "keys", "test", "op", "mode", "batch", "loop", "auto_pipelining",
              "limit", "lease_ms", "versions"):
        if k in rounds[0]:
            out[k] = rounds[0][k]
    for k in ("redis_script_calls", "redis_keys_after", "first_error", "daemon_held_after"):
        if any(k in r for r in rounds):
            out["round_" + k] = [r.get(k) for r in rounds]
    out["rounds"] = len(rounds)
    out["round_rates"] = [r.get("decisions_per_s") for r in rounds]
    out["round_p99_us"] = [r.get("p99_us") for r in rounds]
    out["round_server_cpu_pct"] = [r.get("server_cpu_pct") for r in rounds]
    out["round_load_cpu_pct"] = [r.get("load_cpu_pct") for r in rounds]
    print(json.dumps(out))
    return 0


def print_figures(records):
    print()
    print("== figures (one run, this machine; latencies are information, not targets) " + "=" * 5)
    head = f"{'measurement':44} {'per s':>11} {'allowed':>10} {'denied':>10} {'err':>5} " \
           f"{'p50us':>7} {'p99us':>7} {'p999us':>7} {'srv%':>5} {'load%':>5} {'cpu%':>7}  where"
    print("(srv%, load%: the server's and the load generator's CPU use meanwhile, % of one core, median "
          "of the rounds where there are rounds; cpu%: what a spinning process got on core 0 / core 1 just "
          "before that section, 100/100: the machine was ours)")
    print(head)
    print("-" * len(head))
    for r in records.values():
        if "skipped" in r:
            print(f"{r['name']:44} skipped: {r['skipped']}")
            continue
        if r.get("overhead_pct") is not None and r.get("decisions_per_s") is None:
            continue  # printed with the ratios
        rate = r.get("requests_per_s", r.get("decisions_per_s", r.get("lines_per_s")))
        srv = r.get("server_cpu_pct", r.get("redis_cpu_pct"))
        short = open_loop_problem(records, r["name"]) if r.get("target_rate") else None
        print(f"{r['name']:44} {fmt_int(rate):>11} {fmt_int(r.get('allowed')):>10} "
              f"{fmt_int(r.get('denied')):>10} {fmt_int(r.get('errors')):>5} "
              f"{fmt_int(r.get('p50_us')):>7} {fmt_int(r.get('p99_us')):>7} "
              f"{fmt_int(r.get('p999_us')):>7} {fmt_int(srv):>5} {fmt_int(r.get('load_cpu_pct')):>5} "
              f"{short_cpu(r.get('cpu_available_before')):>7}  "
              f"{r.get('where', '')}" + (f"  ({short})" if short else ""))


def run_problem(records, *names):
    """Why the runs of names do not count (errors, lost connections, non-2xx answers), or None."""
    for name in names:
        r = records.get(name) or {}
        if r.get("errors"):
            return f"{name} had {r['errors']:,} errors"
        if r.get("failed_connections"):
            return f"{name} lost {r['failed_connections']} connections"
        if r.get("non_2xx_fraction"):
            return f"{r['non_2xx_fraction']:.1%} of {name}'s answers were not 2xx"
        if r.get("daemon_released") is not None and r["daemon_released"] < (r.get("allowed") or 0):
            return (f"{name}: the daemon counted {r['daemon_released']:,} RELEASEs for {r['allowed']:,} "
                    f"pairs reported allowed")
        if r.get("redis_script_calls_per_s") == 0 or 0 in (r.get("round_redis_script_calls") or ()):
            return f"redis-server ran no script during (a round of) {name}: its decisions did not come from Redis"
        idle = [n["node"] for n in r.get("nodes") or () if not n.get("script_calls")]
        if idle:
            return f"{', '.join(idle)} ran no script during {name}: its decisions did not all come from Redis"
    return None


class Ratios:
    """The ratios of one run: each with its goal ("at least" / "at most" a value, or none)."""

    def __init__(self, records):
        self.records = records
        self.rows = []

    def add(self, key, label, num, den, goal=None, at_most=False, problem_of=()):
        """num and den: (record name, field). goal None: a ratio reported, not a target."""
        row = {"key": key, "label": label, "goal": goal, "at_most": at_most}
        (a, wa), (b, wb) = figure(self.records, *num), figure(self.records, *den)
        if wa or wb:
            row["status"] = "skipped: " + (wa or wb)
        elif b <= 0:
            row["status"] = f"skipped: {den[0]} {den[1]} is {b}"
        else:
            row.update(value=round(a / b, 2), numerator=a, denominator=b)
            row["status"] = self._status(row["value"], goal, at_most, problem_of)
        self.rows.append(row)
        return row

    def add_overheads(self, key, label, num, den, goal=None, problem_of=()):
        """The ratio of two overheads (%), at most goal. When den's overhead is not above
        zero (the peer cost nothing measurable) the ratio has no value; the goal then
        reads num <= goal * den directly."""
        (a, wa), (b, wb) = figure(self.records, num, "overhead_pct"), figure(self.records, den, "overhead_pct")
        row = {"key": key, "label": label, "goal": goal, "at_most": True}
        if wa or wb:
            row["status"] = "skipped: " + (wa or wb)
        else:
            row.update(numerator=a, denominator=b, unit="%")
            if b > 0:
                row["value"] = round(a / b, 2)
                row["status"] = self._status(row["value"], goal, True, problem_of)
            else:
                met = goal is None or a <= goal * b
                row["status"] = self._status(None, goal, True, problem_of, met=met,
                                             why=f"{den} cost {b}%: no ratio; compared directly")
        self.rows.append(row)
        return row

    def add_best(self, key, label, num, peers, goal=None, problem_of=()):
        """num (record name, field) over the highest decisions_per_s among the records of
        peers that were measured; the note names that peer and the ones not measured."""
        rates = {p: figure(self.records, p, "decisions_per_s") for p in peers}
        measured = {p: v for p, (v, why) in rates.items() if why is None}
        missing = [why for v, why in rates.values() if why is not None]
        if not measured:
            row = {"key": key, "label": label, "goal": goal, "at_most": False,
                   "status": "skipped: no peer was measured (" + "; ".join(missing) + ")"}
            self.rows.append(row)
            return row
        best = max(measured, key=measured.get)
        row = self.add(key, label, num, (best, "decisions_per_s"), goal, problem_of=problem_of)
        row["best_peer"] = best
        notes = [f"best peer: {best} ({fmt_int(measured[best])}/s)"]
        others = [f"{p} {fmt_int(v)}/s" for p, v in measured.items() if p != best]
        if others:
            notes.append("others: " + ", ".join(others))
        problem = run_problem(self.records, best)
        if problem:
            notes.append("the best peer's figure does not count in full: " + problem)
        if missing:
            notes.append("not among the peers: " + "; ".join(missing))
            if row["status"].startswith(("met", "not met")):
                row["status"] += f" (best of the {len(measured)} of {len(peers)} peers measured)"
        row["note"] = "; ".join(notes)
        return row

    def _status(self, value, goal, at_most, problem_of, met=None, why=None):
        if goal is None:
            return "reported" + (f": {why}" if why else "")
        problem = run_problem(self.records, *problem_of)
        if problem:
            return "not met: " + problem
        if met is None:
            met = value <= goal if at_most else value >= goal
        return ("met" if met else "not met") + (f": {why}" if why else "")


def fill_ratios(records):
    rt = Ratios(records)
    for shape, label in (("closed_64x1", "64 conns x 1, closed loop"),
                         ("pipelined_2x256", "2 conns x 256, pipelined")):
        mine, peer = "rlimitd_memory_" + shape, "redis_incr_" + shape
        row = rt.add("memory_vs_redis_incr_" + shape, f"memory store / redis-server INCR, {label}: throughput",
                     (mine, "decisions_per_s"), (peer, "decisions_per_s"), TARGET_VS_REDIS_INCR, problem_of=(mine,))
        peer_cpu, _ = figure(records, peer, "server_cpu_pct")
        if peer_cpu is not None and peer_cpu < SATURATED_PCT and "value" in row:
            load_cpu, _ = figure(records, peer, "load_cpu_pct")
            if load_cpu is None or load_cpu >= SATURATED_PCT:
                why = "the load generator, not redis-server, set the pace"
            else:
                why = "neither kept its core busy (other work on the machine?)"
            row["note"] = (f"redis-server used {peer_cpu}% of its core"
                           + ("" if load_cpu is None else f", redis-benchmark {load_cpu}% of its own")
                           + f": {why}; see the per-CPU ratio")
        rt.add("memory_vs_redis_incr_p99_" + shape, f"memory store / redis-server INCR, {label}: p99",
               (mine, "p99_us"), (peer, "p99_us"),
               TARGET_VS_REDIS_INCR_P99 if shape == "closed_64x1" else None, at_most=True, problem_of=(mine,))
        rt.add("memory_vs_redis_incr_per_cpu_" + shape,
               f"memory store / redis-server INCR, {label}: decisions per server CPU-s",
               (mine, "decisions_per_server_cpu_s"), (peer, "decisions_per_server_cpu_s"))
    rt.add("redis_vs_rate_limiter_flexible", "Redis store / rate-limiter-flexible (ioredis, 64 in flight)",
           ("rlimitd_redis_pipelined", "decisions_per_s"), ("rate_limiter_flexible", "decisions_per_s"),
           TARGET_REDIS_RATIO, problem_of=("rlimitd_redis_pipelined",))
    if "rate_limiter_flexible_autopipeline" in records:
        rt.add("redis_vs_rate_limiter_flexible_autopipeline",
               "Redis store / rate-limiter-flexible with ioredis auto-pipelining",
               ("rlimitd_redis_pipelined", "decisions_per_s"),
               ("rate_limiter_flexible_autopipeline", "decisions_per_s"), TARGET_REDIS_RATIO,
               problem_of=("rlimitd_redis_pipelined",))
    rt.add("redis_vs_evalsha_ceiling", "Redis store / one pipelined EVALSHA per decision (no batching)",
           ("rlimitd_redis_pipelined", "decisions_per_s"), ("redis_evalsha_gcra_ceiling", "decisions_per_s"))
    rt.add("memory_vs_redis_store", "memory store / Redis store, pipelined",
           ("rlimitd_memory_pipelined_2x256", "decisions_per_s"), ("rlimitd_redis_pipelined", "decisions_per_s"))
    for suffix, stack in (("", "asyncio + h11"), ("_standard", "uvloop + httptools")):
        mine = "python_middleware_overhead" + suffix
        runs = ("python_fastapi_with_middleware" + suffix,)
        rt.add_overheads("middleware_vs_limits" + suffix,
                         f"FastAPI middleware overhead / in-process `limits` middleware's, {stack}",
                         mine, "python_limits_middleware_overhead" + suffix,
                         TARGET_VS_LIMITS_OVERHEAD if not suffix else None,
                         problem_of=runs + ("python_fastapi_with_limits_middleware" + suffix,))
        rt.add_overheads("middleware_vs_redis_middleware" + suffix,
                         f"FastAPI middleware overhead / per-request Redis middleware's, {stack}",
                         mine, "python_redis_middleware_overhead" + suffix, TARGET_VS_REDIS_MW_OVERHEAD,
                         problem_of=runs + ("python_fastapi_with_redis_middleware" + suffix,))
    rt.add("asyncclient_vs_limits", "AsyncClient (64 concurrent) / `limits` with Redis (8 threads)",
           ("python_asyncclient", "decisions_per_s"), ("python_limits_moving_window_redis", "decisions_per_s"),
           TARGET_ASYNC_RATIO)
    for mine, store in (("rlimitd_memory_leases", "memory store"), ("rlimitd_redis_leases", "Redis store")):
        rt.add_best(mine.replace("rlimitd_", "leases_") + "_vs_best_peer",
                    f"leases, {store}, pipelined: ACQUIRE+RELEASE pairs/s / best sorted-set script peer's",
                    (mine, "decisions_per_s"), LEASE_PEERS, TARGET_LEASE_RATIO, problem_of=(mine,))
    cluster_rows(rt)
    return rt.rows


def cluster_rows(rt):
    """The Redis Cluster rows (issue 13; tests/bench/run.sh BENCH_ONLY=cluster): throughput
    against rate-limiter-flexible on ioredis's Cluster client, batching per node against
    the single redis-server at the same load, Redis CPU per decision per node, and the
    projection to N masters (one core each) from the busiest node's CPU per decision."""
    mine, single = "rlimitd_cluster", "rlimitd_redis_single"
    for peer, how in (("rate_limiter_flexible_cluster", "defaults"),
                      ("rate_limiter_flexible_cluster_autopipeline", "auto-pipelining")):
        rt.add(peer.replace("rate_limiter_flexible", "cluster_vs_rate_limiter_flexible"),
               f"Redis Cluster, 3 masters: cluster store / rate-limiter-flexible (ioredis Cluster, {how}, 64 in flight)",
               (mine, "decisions_per_s"), (peer, "decisions_per_s"), TARGET_CLUSTER_RATIO, problem_of=(mine,))
    rt.add("cluster_items_per_call_split", "Redis Cluster: single-Redis items per call / the cluster's lowest per "
           "node, same load (connections x in flight)", (single, "items_per_call"), (mine, "node_items_per_call_min"),
           TARGET_CLUSTER_BATCH, at_most=True, problem_of=(mine, single))
    rt.add("cluster_3x_items_per_call_split", "Redis Cluster: single-Redis items per call / the cluster's lowest per "
           "node, 3x the connections (as many in flight per master)", (single, "items_per_call"),
           ("rlimitd_cluster_3x", "node_items_per_call_min"))
    row = rt.add("cluster_cpu_per_decision", "Redis Cluster: Redis CPU per decision, busiest master / single "
                 "redis-server's, same load", (mine, "node_cpu_us_per_decision_max"),
                 (single, "redis_cpu_us_per_decision"))
    worst, _ = figure(rt.records, mine, "node_cpu_us_per_decision_max")
    if worst:
        row["projection"] = {n: round(n * 1e6 / worst) for n in PROJECTED_MASTERS}
        row["note"] = (f"projection, one core per master and the daemons scaled out, N / ({worst} us per "
                       "decision): " + ", ".join(f"{n} masters {fmt_int(v)}/s" for n, v in row["projection"].items()))
    rt.add("cluster_peer_cpu_per_decision", "Redis Cluster: Redis CPU per decision, rate-limiter-flexible's busiest "
           "master / the cluster store's", ("rate_limiter_flexible_cluster", "node_cpu_us_per_decision_max"),
           (mine, "node_cpu_us_per_decision_max"))


# The replay targets (issue 15): lines of the same combined log per second, on one core,
# against GoAccess processing it to a report; absolute figures; memory bounded by the keys.
TARGET_REPLAY_VS_GOACCESS = 1.0  # rlimitctl replay / goaccess, lines/s: at least
TARGET_REPLAY_COMBINED_LINES = 1_000_000  # combined lines/s: at least
TARGET_REPLAY_JSONL_LINES = 300_000  # JSON lines/s: at least
TARGET_REPLAY_RSS_GROWTH = 1.1  # max RSS of the long run / the short run's (same keys): at most


def replay_rows(records):
    """The rows of the replay section (tests/bench/run.sh BENCH_ONLY=replay). The absolute
    targets are written as ratios to the figure they name (value >= 1.0x: met)."""
    fixed = {"replay_target_combined": {"name": "replay_target_combined", "lines_per_s": TARGET_REPLAY_COMBINED_LINES},
             "replay_target_jsonl": {"name": "replay_target_jsonl", "lines_per_s": TARGET_REPLAY_JSONL_LINES}}
    rt = Ratios({**records, **fixed})
    rt.add("replay_vs_goaccess", "replay / GoAccess, same combined log, one core: lines/s",
           ("replay_combined", "lines_per_s"), ("goaccess_combined", "lines_per_s"), TARGET_REPLAY_VS_GOACCESS,
           problem_of=("replay_combined", "goaccess_combined"))
    rt.add("replay_vs_goaccess_per_cpu", "replay / GoAccess, same combined log: lines per CPU-s",
           ("replay_combined", "lines_per_cpu_s"), ("goaccess_combined", "lines_per_cpu_s"))
    rt.add("replay_combined_absolute", f"replay, combined: lines/s / {TARGET_REPLAY_COMBINED_LINES:,}",
           ("replay_combined", "lines_per_s"), ("replay_target_combined", "lines_per_s"), 1.0,
           problem_of=("replay_combined",))
    rt.add("replay_jsonl_absolute", f"replay, JSON lines: lines/s / {TARGET_REPLAY_JSONL_LINES:,}",
           ("replay_jsonl", "lines_per_s"), ("replay_target_jsonl", "lines_per_s"), 1.0, problem_of=("replay_jsonl",))
    small, large = records.get("replay_rss_small", {}), records.get("replay_rss_large", {})
    rt.add("replay_rss_growth", f"replay, max RSS: {fmt_int(large.get('lines'))} lines / "
           f"{fmt_int(small.get('lines'))} lines, same keys",
           ("replay_rss_large", "rss_kb"), ("replay_rss_small", "rss_kb"), TARGET_REPLAY_RSS_GROWTH, at_most=True,
           problem_of=("replay_rss_small", "replay_rss_large"))
    rt.rows[-1]["busy_proof"] = True  # memory does not depend on how busy the machine was
    return rt.rows


def overheads_line(records):
    parts = []
    for suffix, stack in (("", "asyncio+h11"), ("_standard", "uvloop+httptools")):
        shown = []
        for name, who in (("python_middleware_overhead", "rlimitd"), ("python_limits_middleware_overhead", "limits"),
                          ("python_redis_middleware_overhead", "redis")):
            v, _ = figure(records, name + suffix, "overhead_pct")
            shown.append(f"{who} {'-' if v is None else f'{v}%'}")
        parts.append(f"{stack}: " + ", ".join(shown))
    return "FastAPI overheads (1 - req/s with / req/s without): " + "; ".join(parts)


def machine_busy(meta):
    spare = []
    machine = meta.get("machine", {})
    for k in ("cpu_available_start", "cpu_available_end"):
        for part in str(machine.get(k, "")).split():
            try:
                spare.append(int(part.split("=")[1].rstrip("%")))
            except (IndexError, ValueError):
                pass
    return bool(spare) and min(spare) < 90


def print_ratios(rows, records, busy, meta):
    print()
    print("== ratios and targets (each side measured in this run, same shape and placement) " + "=" * 3)
    print("  " + overheads_line(records))
    if busy:
        machine = meta.get("machine", {})
        print(f"  caution: other work held part of the cores during this run (a spinning process got "
              f"{machine.get('cpu_available_start')} at the start, {machine.get('cpu_available_end')} at the "
              f"end); figures are low and noisy, run again on an idle machine")
    head = f"  {'ratio':88} {'value':>7} {'target':>8}  status"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in rows:
        value = "-" if r.get("value") is None else f"{r['value']}x"
        goal = "-" if r["goal"] is None else ("<= " if r["at_most"] else ">= ") + f"{r['goal']}x"
        detail = ""
        if r.get("numerator") is not None:
            unit = r.get("unit", "")
            detail = f"  ({fmt_int(r['numerator'])}{unit} / {fmt_int(r['denominator'])}{unit})"
        status = r["status"]
        if busy and status.startswith(("met", "not met")) and not r.get("busy_proof"):
            status += " (inconclusive: the machine was busy)"
        print(f"  {r['label']:88} {value:>7} {goal:>8}  {status}{detail}")
        if r.get("note"):
            print(f"  {'':88} {'':>7} {'':>8}  note: {r['note']}")
    met = sum(1 for r in rows if r["goal"] is not None and r["status"].startswith("met"))
    total = sum(1 for r in rows if r["goal"] is not None)
    print(f"  targets met: {met} of {total}")


def cmd_summary(args):
    records = load(args.file)
    meta = json.loads(args.meta) if args.meta else {}
    print_figures(records)
    rows = fill_ratios(records)
    rows += replay_rows(records)
    busy = machine_busy(meta)
    print_ratios(rows, records, busy, meta)
    print()
    summary = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "machine_busy": busy,
        "results": records,
        "ratios": rows,
        "targets": [r for r in rows if r["goal"] is not None],
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"figures written to {args.out}")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("file")
    r.add_argument("--name")
    r.add_argument("--desc", default="")
    r.add_argument("--where", default="")
    r.add_argument("--cmd", dest="command", default="")
    r.add_argument("--source", default="")
    r.add_argument("--empty-reason", default="")
    r.add_argument("--cpu", default="", help="what cpu_available said before this section")
    s = sub.add_parser("skip")
    s.add_argument("file")
    s.add_argument("--name", required=True)
    s.add_argument("--desc", default="")
    s.add_argument("--reason", required=True)
    a = sub.add_parser("annotate")
    a.add_argument("file")
    a.add_argument("name")
    a.add_argument("fields", nargs="*")
    o = sub.add_parser("round")
    o.add_argument("file")
    o.add_argument("--format", choices=("rlimit-bench", "redis-benchmark"), required=True)
    o.add_argument("--server-cpu", default="", help="the server's CPU seconds before and after")
    o.add_argument("--wall", default="", help="the clock (s) before and after")
    o.add_argument("--requests", type=int, help="redis-benchmark -n")
    o.add_argument("--load-times", default="", help="the load generator's CPU: a line of bash's times")
    n = sub.add_parser("note-round")
    n.add_argument("file")
    n.add_argument("fields", nargs="*")
    lc = sub.add_parser("lease-counters")
    lc.add_argument("policy")
    c = sub.add_parser("combine")
    c.add_argument("file")
    m = sub.add_parser("summary")
    m.add_argument("file")
    m.add_argument("--out", required=True)
    m.add_argument("--meta", default="")
    args = p.parse_args()
    return {"record": cmd_record, "skip": cmd_skip, "annotate": cmd_annotate, "round": cmd_round,
            "note-round": cmd_note_round, "lease-counters": cmd_lease_counters, "combine": cmd_combine, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
