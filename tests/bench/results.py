"""Collects the figures of tests/bench/run.sh, prints them, and writes the summary JSON.

    results.py record FILE --name NAME --desc TEXT [--where TEXT] [--cmd TEXT] < JSON_LINES
    results.py skip FILE --name NAME --desc TEXT --reason TEXT
    results.py annotate FILE NAME FIELD=VALUE...
    results.py summary FILE --out BENCH_JSON [--meta JSON]

`record` reads one JSON object a line on stdin (rlimit-bench --json, rlf_bench.js,
limits_bench.py, redis-benchmark converted by run.sh, bench_python.py lines), adds the
name (unless the line has its own), description, placement and command, appends each to
FILE (JSON lines) and prints one human line each. A line that is not JSON is echoed and
ignored. No object at all on stdin is recorded as skipped (the measurement printed
nothing), never as a zero.

`summary` prints the table, the ratios and the targets of issues 2, 3 and 4, and writes
everything as one JSON object to --out. A figure that is missing makes its ratio and
target "skipped: <why>", never a guess.
"""

import argparse
import datetime
import json
import sys

TARGET_MEMORY_PIPELINED = 1_000_000  # issue 2: decisions/s, memory store, Unix socket
TARGET_MEMORY_P99_US = 1000  # issue 2: p99 at 100,000/s without pipelining
TARGET_REDIS_RATIO = 3.0  # issue 3: rlimitd+redis / rate-limiter-flexible
TARGET_REDIS_P99_US = 2000  # issue 3: p99 at 50,000/s
TARGET_MIDDLEWARE_PCT = 10.0  # issue 4: throughput lost to the middleware
TARGET_ASYNC_RATIO = 5.0  # issue 4: AsyncClient / limits with redis
OPEN_LOOP_SHORTFALL = 0.97  # an open-loop run that reached less than this of its rate failed


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


def cmd_summary(args):
    records = load(args.file)
    meta = json.loads(args.meta) if args.meta else {}

    print()
    print("== results (one run, this machine) " + "=" * 44)
    head = f"{'measurement':44} {'per s':>11} {'allowed':>10} {'denied':>10} {'err':>5} " \
           f"{'p50us':>7} {'p99us':>7} {'p999us':>7} {'cpu%':>7}  where"
    print("(cpu%: what a spinning process got on core 0 / core 1 just before that section; "
          "100/100: the machine was ours)")
    print(head)
    print("-" * len(head))
    for r in records.values():
        if "skipped" in r:
            print(f"{r['name']:44} skipped: {r['skipped']}")
            continue
        if r.get("overhead_pct") is not None and r.get("decisions_per_s") is None:
            continue  # printed with the ratios
        rate = r.get("requests_per_s", r.get("decisions_per_s"))
        print(f"{r['name']:44} {fmt_int(rate):>11} {fmt_int(r.get('allowed')):>10} "
              f"{fmt_int(r.get('denied')):>10} {fmt_int(r.get('errors')):>5} "
              f"{fmt_int(r.get('p50_us')):>7} {fmt_int(r.get('p99_us')):>7} "
              f"{fmt_int(r.get('p999_us')):>7} {short_cpu(r.get('cpu_available_before')):>7}  "
              f"{r.get('where', '')}")

    ratios = {}
    targets = []

    def ratio(key, num, den, label):
        (a, wa), (b, wb) = figure(records, *num), figure(records, *den)
        if wa or wb:
            ratios[key] = {"label": label, "skipped": wa or wb}
        elif not b:
            ratios[key] = {"label": label, "skipped": f"{den[0]} is zero"}
        else:
            ratios[key] = {"label": label, "value": round(a / b, 2), "numerator": a, "denominator": b}
        return ratios[key]

    def target(label, rec_or_value, goal, met_fn, unit="", problem=None):
        if isinstance(rec_or_value, dict) and "skipped" in rec_or_value:
            t = {"target": label, "goal": goal, "status": "skipped: " + rec_or_value["skipped"]}
        elif isinstance(rec_or_value, tuple):
            v, why = rec_or_value
            if why:
                t = {"target": label, "goal": goal, "status": "skipped: " + why}
            elif problem:
                t = {"target": label, "goal": goal, "value": v, "status": "NOT met: " + problem}
            else:
                t = {"target": label, "goal": goal, "value": v, "status": "met" if met_fn(v) else "NOT met"}
        else:
            v = rec_or_value["value"]
            t = {"target": label, "goal": goal, "value": v, "status": "met" if met_fn(v) else "NOT met"}
        targets.append(t)

    # Memory store, pipelined, never denying: decisions/s against 1M/s.
    mem = figure(records, "rlimitd_memory_pipelined", "decisions_per_s")
    if mem[1] is None:
        ratios["memory_pipelined_vs_1M"] = {"label": "rlimitd memory pipelined / 1,000,000 per s",
                                            "value": round(mem[0] / TARGET_MEMORY_PIPELINED, 2)}
    else:
        ratios["memory_pipelined_vs_1M"] = {"label": "rlimitd memory pipelined / 1,000,000 per s",
                                            "skipped": mem[1]}
    target("issue 2: memory store, Unix socket, pipelined", mem, ">= 1,000,000 decisions/s",
           lambda v: v >= TARGET_MEMORY_PIPELINED)
    p99 = figure(records, "rlimitd_memory_open_loop_100k", "p99_us")
    target("issue 2: memory store, no pipelining, 100,000/s open loop: p99", p99, "< 1000 us",
           lambda v: v < TARGET_MEMORY_P99_US,
           problem=open_loop_problem(records, "rlimitd_memory_open_loop_100k") if p99[1] is None else None)

    # Redis store against the peers.
    rr = ratio("redis_vs_rate_limiter_flexible", ("rlimitd_redis_pipelined", "decisions_per_s"),
               ("rate_limiter_flexible", "decisions_per_s"),
               "rlimitd (redis store) / rate-limiter-flexible (ioredis, 64 in flight)")
    target("issue 3: rlimitd with Redis vs rate-limiter-flexible", rr, ">= 3.0x",
           lambda v: v >= TARGET_REDIS_RATIO)
    if "rate_limiter_flexible_autopipeline" in records:
        ra = ratio("redis_vs_rate_limiter_flexible_autopipeline",
                   ("rlimitd_redis_pipelined", "decisions_per_s"),
                   ("rate_limiter_flexible_autopipeline", "decisions_per_s"),
                   "rlimitd (redis store) / rate-limiter-flexible with ioredis auto-pipelining")
        target("issue 3 (also): rlimitd with Redis vs rate-limiter-flexible, auto-pipelined", ra,
               ">= 3.0x", lambda v: v >= TARGET_REDIS_RATIO)
    ratio("redis_vs_evalsha_ceiling", ("rlimitd_redis_pipelined", "decisions_per_s"),
          ("redis_evalsha_gcra_ceiling", "decisions_per_s"),
          "rlimitd (redis store) / one pipelined EVALSHA per decision (the ceiling without batching)")
    ratio("redis_vs_limits", ("rlimitd_redis_pipelined", "decisions_per_s"),
          ("python_limits_moving_window_redis", "decisions_per_s"),
          "rlimitd (redis store) / limits (moving window, 8 threads)")
    p99r = figure(records, "rlimitd_redis_open_loop_50k", "p99_us")
    target("issue 3: Redis store, 50,000/s open loop, clients pipelining: p99", p99r, "< 2000 us",
           lambda v: v < TARGET_REDIS_P99_US,
           problem=open_loop_problem(records, "rlimitd_redis_open_loop_50k") if p99r[1] is None else None)
    ratio("memory_vs_redis", ("rlimitd_memory_pipelined", "decisions_per_s"),
          ("rlimitd_redis_pipelined", "decisions_per_s"), "rlimitd memory store / redis store")

    # Python.
    for suffix, stack in (("", ""), ("_standard", " (uvicorn[standard]: uvloop, httptools)")):
        ov = figure(records, "python_middleware_overhead" + suffix, "overhead_pct")
        if ov[1] is not None:
            # bench_python.py did not print it: compute it from the two app runs if both exist.
            w, ww = figure(records, "python_fastapi_with_middleware" + suffix, "requests_per_s")
            wo, wwo = figure(records, "python_fastapi_without_middleware" + suffix, "requests_per_s")
            if not (ww or wwo) and wo:
                ov = (round(100 * (1 - w / wo), 1), None)
        label = "FastAPI throughput lost to the middleware" + stack + ", %"
        ratios["middleware_overhead_pct" + suffix] = ({"label": label, "value": ov[0]} if ov[1] is None else
                                                      {"label": label, "skipped": ov[1]})
        app_problem = None
        with_mw = records.get("python_fastapi_with_middleware" + suffix) or {}
        if with_mw.get("non_2xx_fraction"):
            app_problem = f"{with_mw['non_2xx_fraction']:.1%} of the middleware run's answers were not 2xx"
        target("issue 4" + (" (also)" if suffix else "") + ": FastAPI middleware overhead" + stack, ov, "< 10 %",
               lambda v: v < TARGET_MIDDLEWARE_PCT, problem=app_problem if ov[1] is None else None)
    ra = ratio("asyncclient_vs_limits", ("python_asyncclient", "decisions_per_s"),
               ("python_limits_moving_window_redis", "decisions_per_s"),
               "AsyncClient (64 concurrent) / limits with Redis (8 threads)")
    target("issue 4: AsyncClient vs limits with Redis", ra, ">= 5.0x", lambda v: v >= TARGET_ASYNC_RATIO)

    print()
    print("== ratios " + "=" * 70)
    for key, r in ratios.items():
        if "skipped" in r:
            print(f"  {r['label']}: skipped: {r['skipped']}")
        elif key.startswith("middleware_overhead_pct"):
            print(f"  {r['label']}: {r['value']}%")
        else:
            print(f"  {r['label']}: {r['value']}x")
    print()
    print("== targets " + "=" * 69)
    machine = meta.get("machine", {})
    spare = []
    for k in ("cpu_available_start", "cpu_available_end"):
        for part in str(machine.get(k, "")).split():
            try:
                spare.append(int(part.split("=")[1].rstrip("%")))
            except (IndexError, ValueError):
                pass
    busy = bool(spare) and min(spare) < 90
    if busy:
        for t in targets:
            t["machine_busy"] = True
            if t["status"].startswith(("met", "NOT met")):
                t["status"] += ": inconclusive, the machine was busy"
        print(f"  caution: other work held part of the cores during this run (a spinning process got "
              f"{machine.get('cpu_available_start')} at the start, {machine.get('cpu_available_end')} at the "
              f"end); figures are low and noisy, run again on an idle machine")
    for t in targets:
        v = t.get("value")
        shown = "" if v is None else (f" = {v:,}" if isinstance(v, int) else f" = {v}")
        print(f"  [{t['status'].split(':')[0]:>7}] {t['target']}: goal {t['goal']}{shown}"
              + (f"  ({t['status']})" if ":" in t["status"] else ""))
    print()

    summary = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "results": records,
        "ratios": ratios,
        "targets": targets,
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
    m = sub.add_parser("summary")
    m.add_argument("file")
    m.add_argument("--out", required=True)
    m.add_argument("--meta", default="")
    args = p.parse_args()
    return {"record": cmd_record, "skip": cmd_skip, "annotate": cmd_annotate,
            "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
