#!/usr/bin/python3
"""replay_rounds.py: the rounds of the replay section of tests/bench/run.sh (BENCH_ONLY=replay).

    replay_rounds.py round FILE --lines N --time TIME_FILE [--output OUT_FILE]
    replay_rounds.py combine FILE

`round` appends one run of a log processor (rlimitctl replay or GoAccess) to FILE (JSON
lines): GNU time's line `-f '%e %U %S %M %x'` in TIME_FILE (wall seconds, user and system
CPU seconds, maximum resident set size in KB, exit status) and the lines it read, giving
lines per second of wall time and per second of CPU. With --output, the run must also
have written a non-empty OUT_FILE (its report): a run that printed nothing counts as failed.
`combine` prints one record (for results.py record): the medians over the rounds that
exited 0, the largest RSS, each round's rate, and `errors`, the rounds that failed (a
failed round's figures are left out; results.py then says the target is not met).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys


def cmd_round(args) -> int:
    try:
        with open(args.time) as f:
            fields = f.read().split()
        wall, user, system, rss, status = float(fields[-5]), float(fields[-4]), float(fields[-3]), \
            int(fields[-2]), int(fields[-1])
    except (OSError, ValueError, IndexError) as e:
        wall, user, system, rss, status = None, None, None, None, f"no time figures ({e})"
    if status == 0 and args.output and not (os.path.exists(args.output) and os.path.getsize(args.output) > 0):
        status = f"no output in {args.output}"
    rec = {"lines": args.lines, "wall_s": wall, "cpu_s": None if user is None else round(user + system, 3),
           "rss_kb": rss, "exit": status}
    if status == 0 and wall is not None:  # GNU time shows 10 ms steps: 0.00 is below them
        rec["lines_per_s"] = round(args.lines / max(wall, 0.005))
        rec["lines_per_cpu_s"] = round(args.lines / max(user + system, 0.001))
    with open(args.file, "a") as out:
        out.write(json.dumps(rec) + "\n")
    shown = f"{rec['lines_per_s']:,} lines/s" if "lines_per_s" in rec else f"failed: {status}"
    print(f"    round: {shown}, {rec['wall_s']} s, RSS {rss} KB", file=sys.stderr)
    return 0


def cmd_combine(args) -> int:
    try:
        with open(args.file) as f:
            rounds = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rounds = []
    if not rounds:
        print("no round ran", file=sys.stderr)
        return 1
    good = [r for r in rounds if r.get("exit") == 0]
    out = {"lines": rounds[0]["lines"], "rounds": len(rounds), "errors": len(rounds) - len(good),
           "round_rates": [r.get("lines_per_s") for r in rounds],
           "round_wall_s": [r.get("wall_s") for r in rounds]}
    if good:
        out["lines_per_s"] = round(statistics.median(r["lines_per_s"] for r in good))
        out["lines_per_cpu_s"] = round(statistics.median(r["lines_per_cpu_s"] for r in good))
        out["rss_kb"] = max(r["rss_kb"] for r in good)
    failed = [r["exit"] for r in rounds if r.get("exit") != 0]
    if failed:
        out["failure"] = str(failed[0])
    print(json.dumps(out))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("round")
    r.add_argument("file")
    r.add_argument("--lines", type=int, required=True)
    r.add_argument("--time", required=True)
    r.add_argument("--output")
    c = sub.add_parser("combine")
    c.add_argument("file")
    args = p.parse_args()
    return cmd_round(args) if args.cmd == "round" else cmd_combine(args)


if __name__ == "__main__":
    sys.exit(main())
