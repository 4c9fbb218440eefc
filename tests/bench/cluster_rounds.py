"""The Redis Cluster section of tests/bench/run.sh (BENCH_ONLY=cluster): what each Redis
node did during a round, and the rounds' medians.

    cluster_rounds.py fresh PORT...
    cluster_rounds.py snapshot PORT... [--stats STATS_JSON_FILE] > SNAPSHOT
    cluster_rounds.py note FILE --before SNAPSHOT --after SNAPSHOT --keys N --tag FORMAT
    cluster_rounds.py combine FILE
    cluster_rounds.py report RESULTS_JSONL NAME...

`fresh` empties every node and zeroes its command statistics (FLUSHALL, CONFIG RESETSTAT)
before a round. `snapshot` prints, per node, the CPU seconds it has used (used_cpu_sys +
used_cpu_user of INFO cpu), its script calls (EVALSHA, EVAL, their _RO forms, FCALL: one
INFO commandstats since the last fresh) and the slots it serves (CLUSTER SLOTS; a plain
Redis serves all), plus the daemon's store figures when --stats names a file holding
`rlimitctl stats --json`. `note` adds to the last round of FILE (results.py round's JSON
lines) each node's figures during the round: decisions it decided, script calls, items
per call, CPU seconds and microseconds of CPU per decision, and the totals.

Decisions per node: the store's own per-node figures when the daemon reports them
(store.nodes[].items, or call_items), otherwise the round's decisions times the node's
share of the load's keys: the load draws keys uniformly from key-0 .. key-(N-1), so the
share is the fraction of those keys whose slot the node serves. FORMAT says how a key's
slot is found: `tag:PREFIX` (rlimitd: the hash tag {PREFIX:key-i}, PREFIX the policy) or
`key:PREFIX` (rate-limiter-flexible: the whole key PREFIX:key-i, no hash tag).

`combine` prints one record: the medians of the rounds (rate, latency, each node's items
per call and CPU per decision) and the sums of their counts. `report` prints each side's per-node figures, and what N masters
would sustain from the highest per-node CPU per decision of the first NAME (the cluster
store's): one core per master, the daemons scaled out, so N / (CPU seconds per decision);
the last NAME is the single-Redis side.
"""

import argparse
import json
import socket
import statistics
import sys

SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def _read_line(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    return line[:-2]


def _read_reply(f):
    line = _read_line(f)
    kind, rest = line[:1], line[1:]
    if kind in (b"+",):
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line[:40]!r}")


def command(port, *args):
    """One command to 127.0.0.1:port; its reply (errors raised)."""
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = str(a).encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        s.sendall(b"".join(out))
        with s.makefile("rb") as f:
            return _read_reply(f)


def info(port, section):
    fields = {}
    for line in command(port, "INFO", section).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


def slot_ranges(port):
    """The slot ranges port serves as a master: [(first, last)], or None (not a cluster)."""
    if info(port, "cluster").get("cluster_enabled") != "1":
        return None
    ranges = []
    for entry in command(port, "CLUSTER", "SLOTS"):
        if int(entry[2][1]) == int(port):
            ranges.append((int(entry[0]), int(entry[1])))
    return ranges


def script_calls(port):
    calls = 0
    for key, value in info(port, "commandstats").items():
        if key.removeprefix("cmdstat_") in SCRIPT_COMMANDS:
            calls += int(dict(kv.split("=") for kv in value.split(","))["calls"])
    return calls


def cmd_fresh(args):
    for port in args.ports:
        command(port, "FLUSHALL")
        command(port, "CONFIG", "RESETSTAT")
    return 0


def cmd_snapshot(args):
    nodes = {}
    for port in args.ports:
        cpu = info(port, "cpu")
        nodes[f"127.0.0.1:{port}"] = {
            "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            "script_calls": script_calls(port),
            "slots": slot_ranges(port),
        }
    snap = {"nodes": nodes}
    if args.stats:
        try:
            with open(args.stats) as f:
                snap["store"] = json.load(f).get("store")
        except (OSError, ValueError):
            snap["store"] = None
    print(json.dumps(snap))
    return 0


def _crc16_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


CRC16_TABLE = _crc16_table()


def crc16(data):
    """CRC16-XMODEM, as Redis Cluster's keyHashSlot uses."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[(crc >> 8) ^ byte]
    return crc


def key_slot(key):
    """Redis Cluster's slot of key (bytes), with the hash tag rule."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) & 16383


def shares(nodes, keys, tag, cache=None):
    """Each node's fraction of the load's keys key-0 .. key-(keys-1) (kept in the file
    cache, keyed by the keys, the tag and the slot map, to be computed once a run)."""
    ident = json.dumps([keys, tag, sorted((n, v["slots"]) for n, v in nodes.items())])
    if cache:
        try:
            with open(cache) as f:
                saved = json.load(f)
            if saved.get("ident") == ident:
                return saved["shares"]
        except (OSError, ValueError):
            pass
    out = _shares(nodes, keys, tag)
    if cache:
        with open(cache, "w") as f:
            json.dump({"ident": ident, "shares": out}, f)
    return out


def _shares(nodes, keys, tag):
    kind, _, prefix = tag.partition(":")
    owner = {}
    for name, node in nodes.items():
        for first, last in node["slots"] or [(0, 16383)]:
            for slot in range(first, last + 1):
                owner[slot] = name
    counts = dict.fromkeys(nodes, 0)
    for i in range(keys):
        key = f"{prefix}:key-{i}".encode()
        slot = key_slot(b"{" + key + b"}" if kind == "tag" else key)
        if slot in owner:
            counts[owner[slot]] += 1
    return {name: n / keys for name, n in counts.items()}


def store_node_items(before, after):
    """{node: items decided} from the daemon's per-node figures, or None."""
    def items_of(store):
        out = {}
        for node in (store or {}).get("nodes") or []:
            value = node.get("items", node.get("call_items"))
            if isinstance(value, int) and node.get("node"):
                out[node["node"]] = value
        return out
    b, a = items_of(before.get("store")), items_of(after.get("store"))
    if not a:
        return None
    return {n: a[n] - b.get(n, 0) for n in a}


def store_delta(before, after, field):
    b, a = (before.get("store") or {}).get(field), (after.get("store") or {}).get(field)
    return a - b if isinstance(a, int) and isinstance(b, int) else None


def round_nodes(rec, before, after, keys, tag, cache):
    """The per-node figures of one round (see the module doc)."""
    decisions = (rec.get("allowed") or 0) + (rec.get("denied") or 0) + (rec.get("errors") or 0)
    by_store = store_node_items(before, after)
    share = None if by_store else shares(after["nodes"], keys, tag, cache)
    nodes = []
    for name, a in after["nodes"].items():
        b = before["nodes"].get(name, {"cpu_s": a["cpu_s"], "script_calls": 0})
        decided = by_store.get(name, 0) if by_store else round(decisions * share[name])
        calls = a["script_calls"]  # commandstats were zeroed by `fresh`
        cpu = max(0.0, a["cpu_s"] - b["cpu_s"])
        nodes.append({
            "node": name, "decisions": decided, "script_calls": calls,
            "items_per_call": round(decided / calls, 1) if calls else None,
            "cpu_s": round(cpu, 3),
            "cpu_us_per_decision": round(1e6 * cpu / decided, 3) if decided else None,
        })
    return nodes, "store.nodes" if by_store else "key share"


def cmd_note(args):
    with open(args.file) as f:
        rounds = [json.loads(line) for line in f if line.strip()]
    if not rounds:
        print(f"cluster_rounds.py note: {args.file} holds no round", file=sys.stderr)
        return 1
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    rec = rounds[-1]
    nodes, basis = round_nodes(rec, before, after, args.keys, args.tag, args.file + ".shares")
    rec["nodes"] = nodes
    rec["node_decisions_from"] = basis
    total_cpu = sum(n["cpu_s"] for n in nodes)
    decided = sum(n["decisions"] for n in nodes)
    calls = sum(n["script_calls"] for n in nodes)
    rec["redis_cpu_s"] = round(total_cpu, 3)
    rec["redis_cpu_us_per_decision"] = round(1e6 * total_cpu / decided, 3) if decided else None
    rec["redis_script_calls"] = calls
    rec["items_per_call"] = round(decided / calls, 1) if calls else None
    for field in ("items", "calls"):
        delta = store_delta(before, after, field)
        if delta is not None:
            rec["store_" + field] = delta
    if rec.get("store_items") is not None and rec.get("store_calls"):
        rec["store_items_per_call"] = round(rec["store_items"] / rec["store_calls"], 1)
    with open(args.file, "w") as f:
        for r in rounds:
            f.write(json.dumps(r) + "\n")
    return 0


def _median(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    m = statistics.median(values)
    return round(m) if isinstance(m, float) and abs(m) >= 100 else round(m, 3) if isinstance(m, float) else m


def cmd_combine(args):
    try:
        with open(args.file) as f:
            rounds = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rounds = []
    if not rounds:
        print("no round finished", file=sys.stderr)
        return 1
    out = {k: _median(r.get(k) for r in rounds)
           for k in ("decisions_per_s", "p50_us", "p99_us", "p999_us", "server_cpu_pct", "load_cpu_pct",
                     "items_per_call", "store_items_per_call", "redis_cpu_us_per_decision")}
    out = {k: v for k, v in out.items() if v is not None}
    for k in ("allowed", "denied", "errors", "failed_connections"):
        if any(k in r for r in rounds):
            out[k] = sum(r.get(k) or 0 for r in rounds)
    for k in ("connections", "in_flight", "keys", "auto_pipelining", "versions", "node_decisions_from", "cluster"):
        if k in rounds[0]:
            out[k] = rounds[0][k]
    if any("first_error" in r for r in rounds):
        out["round_first_error"] = [r.get("first_error") for r in rounds]
    names = [n["node"] for n in rounds[0].get("nodes", [])]
    nodes = []
    for name in names:
        per = [next((n for n in r.get("nodes", []) if n["node"] == name), {}) for r in rounds]
        nodes.append({"node": name,
                      "items_per_call": _median(p.get("items_per_call") for p in per),
                      "cpu_us_per_decision": _median(p.get("cpu_us_per_decision") for p in per),
                      "decisions": sum(p.get("decisions") or 0 for p in per),
                      "script_calls": sum(p.get("script_calls") or 0 for p in per)})
    out["nodes"] = nodes
    ipc = [n["items_per_call"] for n in nodes if n["items_per_call"] is not None]
    cpu = [n["cpu_us_per_decision"] for n in nodes if n["cpu_us_per_decision"] is not None]
    if ipc:
        out["node_items_per_call_min"] = min(ipc)
    if cpu:
        out["node_cpu_us_per_decision_max"] = max(cpu)
    out["rounds"] = len(rounds)
    out["round_rates"] = [r.get("decisions_per_s") for r in rounds]
    out["round_server_cpu_pct"] = [r.get("server_cpu_pct") for r in rounds]
    print(json.dumps(out))
    return 0


def projection(us_per_decision, masters=(1, 3, 10, 30, 100)):
    """{N: decisions/s} for N masters at us_per_decision of one master's CPU per decision."""
    return {n: round(n * 1e6 / us_per_decision) for n in masters}


def cmd_report(args):
    """Prints each side's per-node figures and the projection (see the module doc)."""
    records = {}
    try:
        with open(args.results) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    records[r["name"]] = r
    except FileNotFoundError:
        pass
    for name in args.names:
        r = records.get(name)
        if not r or "skipped" in r:
            continue
        nodes = "; ".join(f"{n['node']}: {n['items_per_call']} items/call, {n['cpu_us_per_decision']} us CPU/decision"
                          for n in r.get("nodes", []))
        print(f"    {name}: per node ({r.get('node_decisions_from')}): {nodes}")
    mine, single = records.get(args.names[0]) or {}, records.get(args.names[-1]) or {}
    worst = mine.get("node_cpu_us_per_decision_max")
    if worst:
        print(f"    projection from {args.names[0]} (one core per master, the daemons scaled out; the busiest "
              f"node's {worst} us of Redis CPU per decision): "
              + ", ".join(f"{n} masters {v:,}/s" for n, v in projection(worst).items()))
    if single.get("redis_cpu_us_per_decision"):
        s = single["redis_cpu_us_per_decision"]
        print(f"    {args.names[-1]}: {s} us of Redis CPU per decision (one core: {round(1e6 / s):,}/s)")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fresh")
    f.add_argument("ports", nargs="+")
    s = sub.add_parser("snapshot")
    s.add_argument("ports", nargs="+")
    s.add_argument("--stats", help="a file holding rlimitctl stats --json")
    n = sub.add_parser("note")
    n.add_argument("file")
    n.add_argument("--before", required=True)
    n.add_argument("--after", required=True)
    n.add_argument("--keys", type=int, required=True)
    n.add_argument("--tag", required=True, help="tag:PREFIX or key:PREFIX")
    c = sub.add_parser("combine")
    c.add_argument("file")
    j = sub.add_parser("report")
    j.add_argument("results")
    j.add_argument("names", nargs="+", help="the sides; the first is the cluster store's, the last the single Redis's")
    args = p.parse_args()
    return {"fresh": cmd_fresh, "snapshot": cmd_snapshot, "note": cmd_note, "combine": cmd_combine,
            "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
