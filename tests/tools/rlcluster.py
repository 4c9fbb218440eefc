#!/usr/bin/python3
"""rlcluster.py: drives daemons on a Redis Cluster for the end-to-end tests (tests/e2e/test_redis_cluster*.sh).

Subcommands (each prints a JSON report on stdout, its failures on stderr, exits 1 on any):

  exact   --policy NAME:EXPECTED ... : for KEYS keys per policy, EXPECTED + EXTRA CHECKs
          per key, spread over the daemons and their connections, pipelined: every key must
          be admitted exactly EXPECTED times, every answer ALLOWED or DENIED without FALLBACK.
          The keys' slots (CRC16 of the hash tag "{policy:key}", as the daemon routes them)
          must spread over every master (each at least a sixth of the keys, per CLUSTER
          SLOTS), and a sample of keys must exist on the master that serves their slot
          (--rates R: the R Redis keys of a multi-rate item, all on that master).
  multi   MULTI_CHECK of keys on three different masters: all-or-nothing, and the refunds
          of a refused MULTI_CHECK give back exactly what its allowed parts consumed.
  leases  ACQUIRE/RELEASE of a concurrency policy on KEYS keys over every master: exactly
          LIMIT leases per key, a RELEASE (through the other daemon) frees exactly one.
  load    closed-loop CHECKs (CLIENTS connections, one request in flight each) on KEYS keys
          for DURATION seconds: every request answered once, no answer slower than
          --max-latency-ms, and no FALLBACK answer before --clean-before MARK or after
          --clean-after MARK:GRACE_MS (times from the --marks file, "NAME EPOCH_SECONDS").
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import struct
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlwire as w  # noqa: E402

MULTI_CHECK, ACQUIRE, RELEASE = 0x06, 0x10, 0x11
WINDOW = 128  # requests in flight per connection (pipelined phases)


# ---------------------------------------------------------------- slots, Redis

def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of key (the hash tag rule of keyHashSlot)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return _crc16(key) & 16383


def item_slot(policy: str, key: str) -> int:
    """The slot the daemon routes (policy, key) to: its Redis keys share the tag {policy:key}."""
    return key_slot(("{%s:%s}" % (policy, key)).encode())


class Redis:
    """A blocking RESP client for one node (replies: simple, error, integer, bulk, array)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.sock.makefile("rb")

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def call(self, *args) -> object:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(out)
        return self._read()

    def _read(self):
        line = self.f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"-":
            return RuntimeError(rest.decode())
        return rest.decode()


def slot_owners(port: int) -> list[int]:
    """The port of the master serving each slot (CLUSTER SLOTS of the node on port)."""
    r = Redis(port)
    try:
        reply = r.call("CLUSTER", "SLOTS")
    finally:
        r.close()
    owners = [0] * 16384
    for start, end, master, *_ in reply:
        for slot in range(start, end + 1):
            owners[slot] = master[1]
    return owners


# ---------------------------------------------------------------- frames

def multi_frame(items: list[tuple[str, str]], cost: int = 1) -> bytes:
    body = struct.pack(">BB", len(items), 0)
    for policy, key in items:
        p, k = policy.encode(), key.encode()
        body += w.ITEM.pack(cost, len(p), len(k)) + p + k
    return w.HEADER.pack(8 + len(body), w.VERSION, MULTI_CHECK, 0, 0) + body


def release_frame(policy: str, key: str, lease: int) -> bytes:
    p, k = policy.encode(), key.encode()
    body = struct.pack(">Q", lease) + w.ITEM.pack(0, len(p), len(k)) + p + k
    return w.HEADER.pack(8 + len(body), w.VERSION, RELEASE, 0, 0) + body


def multi_verdicts(a: w.Answer) -> list[int]:
    """The per-item statuses of a multi result."""
    count = a.tail[0] if a.tail else 0
    return [a.tail[4 + 24 * i] for i in range(count)]


def lease_of(a: w.Answer) -> int:
    return struct.unpack(">Q", a.tail[:8])[0] if len(a.tail) >= 8 else 0


# ---------------------------------------------------------------- connections

class Conn:
    """One pipelined connection: run() sends frames (WINDOW in flight) and returns their answers."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.buf = bytearray()
        self.next_id = 1

    async def run(self, frames: list[bytes], timeout: float) -> list[w.Answer]:
        answers: dict[int, w.Answer] = {}
        ids = []
        sent = 0
        deadline = time.monotonic() + timeout
        while len(answers) < len(frames):
            while sent < len(frames) and sent - len(answers) < WINDOW:
                ids.append(self.next_id)
                self.writer.write(w.with_id(frames[sent], self.next_id))
                self.next_id += 1
                sent += 1
            await self.writer.drain()
            left = deadline - time.monotonic()
            data = await asyncio.wait_for(self.reader.read(65536), max(left, 0.001))
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self.buf += data
            for a in w.parse_frames(self.buf):
                if a.request_id in answers or not ids or a.request_id < ids[0]:
                    raise ValueError(f"an unexpected or second answer to id {a.request_id}")
                answers[a.request_id] = a
        return [answers[i] for i in ids]


async def connect_all(addresses: list[str], per_address: int) -> list[list[Conn]]:
    out = []
    for address in addresses:
        conns = []
        for _ in range(per_address):
            reader, writer = await asyncio.open_unix_connection(address[5:], limit=1 << 22)
            conns.append(Conn(reader, writer))
        out.append(conns)
    return out


async def run_spread(pools: list[list[Conn]], work: list[tuple[int, bytes]],
                     timeout: float) -> list[w.Answer]:
    """Runs work [(daemon index, frame)], each daemon's frames spread over its connections
    (round robin), every connection at once; returns the answers in work's order."""
    per_conn: dict[tuple[int, int], list[int]] = defaultdict(list)
    counters = Counter()
    for i, (d, _) in enumerate(work):
        c = counters[d] % len(pools[d])
        counters[d] += 1
        per_conn[(d, c)].append(i)
    keys = list(per_conn)
    results = await asyncio.gather(*(
        pools[d][c].run([work[i][1] for i in per_conn[(d, c)]], timeout) for d, c in keys))
    out: list = [None] * len(work)
    for (d, c), answers in zip(keys, results):
        for i, a in zip(per_conn[(d, c)], answers):
            out[i] = a
    return out


def close_all(pools) -> None:
    for conns in pools:
        for c in conns:
            c.writer.close()


# ---------------------------------------------------------------- exact

def spread_failures(owners, policy: str, keys: list[str]) -> tuple[dict, list[str]]:
    per_master = Counter(owners[item_slot(policy, k)] for k in keys)
    failures = []
    if len(per_master) < 3 or min(per_master.values()) < len(keys) // 6:
        failures.append(f"{policy}: keys spread unevenly over the masters: {dict(per_master)}")
    return dict(per_master), failures


def placement_failures(owners, args, policy: str, keys: list[str]) -> list[str]:
    """A sample of keys must exist, all rates of one, on the master of their slot."""
    failures = []
    conns: dict[int, Redis] = {}
    try:
        for key in keys[:: max(1, len(keys) // 30)]:
            port = owners[item_slot(policy, key)]
            r = conns.setdefault(port, Redis(port))
            names = [f"{args.key_prefix}{{{policy}:{key}}}:{i}" for i in range(args.rates)]
            found = r.call("EXISTS", *names)
            if found != args.rates:
                failures.append(f"{policy}/{key}: EXISTS {names} on its master {port}: {found}")
    finally:
        for r in conns.values():
            r.close()
    return failures


async def cmd_exact(args) -> tuple[dict, list[str]]:
    addresses = args.addresses.split(",")
    owners = slot_owners(args.cluster_port)
    pools = await connect_all(addresses, args.conns)
    report, failures = {}, []
    try:
        for spec in args.policy:
            policy, expected = spec.split(":")[0], int(spec.split(":")[1])
            keys = [f"{args.key_prefix_keys}{i}" for i in range(args.keys)]
            frames = {k: w.item_frame(0, policy.encode(), k.encode()) for k in keys}
            work = [(j % len(addresses), k) for k in keys for j in range(expected + args.extra)]
            random.Random(1).shuffle(work)
            t0 = time.monotonic()
            answers = await run_spread(pools, [(d, frames[k]) for d, k in work], args.timeout)
            seconds = time.monotonic() - t0
            allowed, statuses, flags = Counter(), Counter(), Counter()
            for (_, k), a in zip(work, answers):
                statuses[a.status_name] += 1
                flags.update(w.flag_names(a.flags))
                allowed[k] += a.status == w.ALLOWED
            wrong = {k: allowed[k] for k in keys if allowed[k] != expected}
            if wrong:
                failures.append(f"{policy}: {len(wrong)} keys not admitted exactly {expected} "
                                f"times, e.g. {dict(list(wrong.items())[:5])}")
            if set(statuses) - {"ALLOWED", "DENIED"} or flags.get("FALLBACK"):
                failures.append(f"{policy}: statuses {dict(statuses)}, flags {dict(flags)}")
            spread, more = spread_failures(owners, policy, keys)
            failures += more + placement_failures(owners, args, policy, keys)
            report[policy] = {"keys": len(keys), "requests": len(work),
                              "admitted": sum(allowed.values()), "expected_per_key": expected,
                              "statuses": dict(statuses), "flags": dict(flags),
                              "keys_per_master": spread, "seconds": round(seconds, 2)}
    finally:
        close_all(pools)
    return report, failures


# ---------------------------------------------------------------- multi

def keys_on_masters(owners, policy: str, prefix: str, count: int = 3) -> list[str]:
    """count keys of policy, each on a different master."""
    chosen, masters = [], set()
    for i in range(10000):
        key = f"{prefix}{i}"
        port = owners[item_slot(policy, key)]
        if port not in masters:
            masters.add(port)
            chosen.append(key)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("fewer than 3 masters serve slots")


async def peek_remaining(pools, policy: str, keys: list[str], timeout: float) -> list[int]:
    """The units each key has left: a PEEK of cost 1 answers what a CHECK would, so its
    remaining is what would be left after one more unit (0 and DENIED when none is left)."""
    work = [(0, w.item_frame(0, policy.encode(), k.encode(), opcode=w.PEEK)) for k in keys]
    return [a.remaining + 1 if a.status == w.ALLOWED else 0
            for a in await run_spread(pools, work, timeout)]


async def settled_remaining(pools, policy: str, keys: list[str], timeout: float,
                            expected: list[int]) -> list[int]:
    """peek_remaining once the give-backs of refused MULTI_CHECKs have landed: a refund is
    sent after its MULTI_CHECK is answered (by whichever daemon split it), so it may reach
    Redis a little after the answers the test waited for. Polls for up to 5 s (the units
    never grow past what was given back: a key with more than expected stays unequal and
    fails)."""
    deadline = time.monotonic() + 5.0
    while True:
        left = await peek_remaining(pools, policy, keys, timeout)
        if left == expected or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


async def multi_policy(pools, owners, args, policy: str, limit: int) -> tuple[dict, list[str]]:
    failures, report = [], {}
    n = len(pools)
    a, b, c = keys_on_masters(owners, policy, args.key_prefix_keys + "m")
    items = lambda *ks: [(policy, k) for k in ks]  # noqa: E731
    # 1: fresh keys on two masters: allowed, one unit each.
    [ans] = await run_spread(pools, [(0, multi_frame(items(a, b)))], args.timeout)
    if ans.status != w.ALLOWED or await peek_remaining(pools, policy, [a, b], args.timeout) != [
            limit - 1] * 2:
        failures.append(f"{policy}: MULTI_CHECK of fresh {a},{b}: {ans.status_name}")
    # 2: c exhausted; then MULTI_CHECKs of a, b, c from every daemon at once: all denied (c
    # refused), and the parts a and b consumed are given back: nothing of a or b is used.
    work = [(j % n, w.item_frame(0, policy.encode(), c.encode())) for j in range(limit + 1)]
    got = sorted(x.status for x in await run_spread(pools, work, args.timeout))
    if got != [w.ALLOWED] * limit + [w.DENIED]:  # (concurrent: in any order)
        failures.append(f"{policy}: exhausting {c}: {got}")
    work = [(j % n, multi_frame(items(a, b, c))) for j in range(args.multi)]
    answers = await run_spread(pools, work, args.timeout)
    statuses = Counter(x.status_name for x in answers)
    verdicts = Counter(tuple(multi_verdicts(x)) for x in answers)
    left = await settled_remaining(pools, policy, [a, b, c], args.timeout,
                                   [limit - 1, limit - 1, 0])
    if statuses != Counter({"DENIED": args.multi}) or left != [limit - 1, limit - 1, 0]:
        failures.append(f"{policy}: MULTI_CHECKs with {c} exhausted: {dict(statuses)}, "
                        f"remaining afterwards {left} (expected {[limit - 1, limit - 1, 0]})")
    report["denied_all_or_nothing"] = {"statuses": dict(statuses), "remaining_after": left,
                                       "item_verdicts": {str(k): v for k, v in verdicts.items()}}
    # 3: fresh x, y, z: many MULTI_CHECKs at once from every daemon: at most limit allowed,
    # and what each key holds afterwards is exactly the allowed ones (refunds exact); then
    # one at a time, the rest of the limit is admitted, and no more.
    x, y, z = keys_on_masters(owners, policy, args.key_prefix_keys + "c")
    work = [(j % n, multi_frame(items(x, y, z))) for j in range(max(4 * limit, args.multi))]
    answers = await run_spread(pools, work, args.timeout)
    allowed = sum(1 for r in answers if r.status == w.ALLOWED)
    statuses = Counter(r.status_name for r in answers)
    left = await settled_remaining(pools, policy, [x, y, z], args.timeout,
                                   [limit - allowed] * 3)
    if allowed > limit or set(statuses) - {"ALLOWED", "DENIED"} or left != [limit - allowed] * 3:
        failures.append(f"{policy}: {len(work)} concurrent MULTI_CHECKs: {dict(statuses)}, "
                        f"remaining afterwards {left} (expected {[limit - allowed] * 3})")
    seq, seq_flags = [], Counter()
    for j in range(limit - allowed + 1):
        [r] = await run_spread(pools, [(j % n, multi_frame(items(x, y, z)))], args.timeout)
        seq.append(r.status)
        seq_flags.update(w.flag_names(r.flags))
    if seq != [w.ALLOWED] * (limit - allowed) + [w.DENIED]:
        failures.append(f"{policy}: after the concurrent ones (allowed {allowed}, units left "
                        f"{left}), one at a time: {[w.STATUS[x] for x in seq]} (expected "
                        f"{limit - allowed} ALLOWED, then DENIED), flags {dict(seq_flags)}")
    report["concurrent"] = {"statuses": dict(statuses), "remaining_after": left,
                            "then_one_at_a_time": [w.STATUS[s] for s in seq]}
    report["keys_masters"] = {k: owners[item_slot(policy, k)] for k in (a, b, c, x, y, z)}
    return report, failures


async def cmd_multi(args) -> tuple[dict, list[str]]:
    owners = slot_owners(args.cluster_port)
    pools = await connect_all(args.addresses.split(","), args.conns)
    report, failures = {}, []
    try:
        for spec in args.policy:
            policy, limit = spec.split(":")[0], int(spec.split(":")[1])
            report[policy], more = await multi_policy(pools, owners, args, policy, limit)
            failures += more
    finally:
        close_all(pools)
    return report, failures


# ---------------------------------------------------------------- leases

async def cmd_leases(args) -> tuple[dict, list[str]]:
    owners = slot_owners(args.cluster_port)
    addresses = args.addresses.split(",")
    n = len(addresses)
    pools = await connect_all(addresses, args.conns)
    policy, limit = args.policy[0].split(":")[0], int(args.policy[0].split(":")[1])
    keys = [f"{args.key_prefix_keys}{i}" for i in range(args.keys)]
    failures, report = [], {}
    try:
        acq = {k: w.item_frame(0, policy.encode(), k.encode(), opcode=ACQUIRE) for k in keys}
        work = [(j % n, k) for k in keys for j in range(limit + args.extra)]
        random.Random(2).shuffle(work)
        answers = await run_spread(pools, [(d, acq[k]) for d, k in work], args.timeout)
        held: dict[str, list[tuple[int, int]]] = defaultdict(list)
        statuses = Counter(a.status_name for a in answers)
        for (d, k), a in zip(work, answers):
            if a.status == w.ALLOWED:
                held[k].append((d, lease_of(a)))
        wrong = {k: len(held[k]) for k in keys if len(held[k]) != limit}
        if wrong or set(statuses) - {"ALLOWED", "DENIED"}:
            failures.append(f"acquire: {dict(statuses)}; keys without exactly {limit} leases: "
                            f"{len(wrong)}, e.g. {dict(list(wrong.items())[:5])}")
        # RELEASE one lease per key through the other daemon than the one that took it.
        work = [((held[k][0][0] + 1) % n, release_frame(policy, k, held[k][0][1]))
                for k in keys if held[k]]
        rel = Counter(a.status_name for a in await run_spread(pools, work, args.timeout))
        if rel != Counter({"ALLOWED": len(work)}):  # OK
            failures.append(f"release: {dict(rel)}")
        work = [(j % n, acq[k]) for k in keys for j in range(2)]
        again = await run_spread(pools, work, args.timeout)
        per_key = Counter(k for (_, k), a in zip([(d, keys[i // 2]) for i, (d, _) in
                                                  enumerate(work)], again)
                          if a.status == w.ALLOWED)
        wrong = {k: per_key[k] for k in keys if per_key[k] != 1}
        if wrong:
            failures.append(f"after one RELEASE per key, 2 ACQUIREs: keys not given exactly "
                            f"one: {len(wrong)}, e.g. {dict(list(wrong.items())[:5])}")
        spread, more = spread_failures(owners, policy, keys)
        failures += more
        report = {"keys": len(keys), "acquire": dict(statuses), "release": dict(rel),
                  "reacquired": sum(per_key.values()), "keys_per_master": spread}
    finally:
        close_all(pools)
    return report, failures


# ---------------------------------------------------------------- load

class LoadClient(asyncio.Protocol):
    """One connection, one CHECK in flight; records (sent, received, policy, status, flags)."""

    def __init__(self, frames, records, stop):
        self.frames, self.records, self.stop = frames, records, stop
        self.buf = bytearray()
        self.next_id, self.sent_at, self.turn = 1, 0.0, 0
        self.errors: list[str] = []
        self.sent = 0
        self.transport = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self) -> None:
        if self.stop.is_set():
            self.transport.close()
            return
        self.policy, frame = self.frames[self.turn % len(self.frames)]
        self.turn += 1
        self.sent_at = time.time()
        self.transport.write(w.with_id(frame, self.next_id))
        self.sent += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.time()
        for a in w.parse_frames(self.buf):
            if a.request_id != self.next_id:
                self.errors.append(f"answer to id {a.request_id}, expected {self.next_id}")
                continue
            self.records.append((self.sent_at, now, self.policy, a.status, a.flags))
            self.next_id += 1
            self.send()

    def connection_lost(self, exc) -> None:
        if not self.stop.is_set():
            self.errors.append(f"connection lost: {exc}")
        if not self.done.done():
            self.done.set_result(None)


def read_marks(path: str) -> dict[str, float]:
    marks = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                name, _, at = line.strip().partition(" ")
                marks[name] = float(at)
    return marks


async def cmd_load(args) -> tuple[dict, list[str]]:
    addresses = args.addresses.split(",")
    policies = [p.split(":")[0] for p in args.policy]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    records: list[tuple] = []
    clients = []
    for i in range(args.clients):
        rng = random.Random(i)
        frames = [(p, w.item_frame(0, p.encode(), f"{args.key_prefix_keys}{rng.randrange(args.keys)}"
                                   .encode())) for _ in range(64) for p in policies]
        _, c = await loop.create_unix_connection(
            lambda f=frames: LoadClient(f, records, stop), addresses[i % len(addresses)][5:])
        clients.append(c)
    start = time.time()
    for c in clients:
        c.send()
    if args.until_file:
        while time.time() - start < args.duration and not os.path.exists(args.until_file):
            await asyncio.sleep(0.05)
    else:
        await asyncio.sleep(args.duration)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), args.timeout)
    return load_report(args, clients, records, start)


def load_report(args, clients, records, start) -> tuple[dict, list[str]]:
    failures = [e for c in clients for e in c.errors]
    sent = sum(c.sent for c in clients)
    if sent != len(records):
        failures.append(f"{sent} requests sent, {len(records)} answered")
    marks = read_marks(args.marks)
    latency = sorted(r[1] - r[0] for r in records)
    worst = max(records, key=lambda r: r[1] - r[0], default=None)
    if worst and (worst[1] - worst[0]) * 1000 > args.max_latency_ms:
        failures.append(f"an answer took {(worst[1] - worst[0]) * 1000:.0f} ms (bound "
                        f"{args.max_latency_ms} ms), sent at +{worst[0] - start:.2f}s")
    fallback = [r for r in records if r[4] & w.FALLBACK]
    bad = Counter(w.STATUS.get(r[3], str(r[3])) for r in records
                  if r[3] not in (w.ALLOWED, w.DENIED))
    if bad:
        failures.append(f"statuses other than ALLOWED/DENIED: {dict(bad)}")
    per_policy = defaultdict(Counter)
    for r in records:
        per_policy[r[2]][w.STATUS.get(r[3], str(r[3])) + ("+FALLBACK" if r[4] & w.FALLBACK
                                                          else "")] += 1
    for name in args.clean_before or []:
        if name in marks:
            early = [r for r in fallback if r[0] < marks[name]]
            if early:
                failures.append(f"{len(early)} FALLBACK answers before {name}")
    for spec in args.clean_after or []:
        name, _, grace = spec.partition(":")
        if name not in marks:
            failures.append(f"no mark {name}")
            continue
        late = [r for r in fallback if r[0] > marks[name] + float(grace or 0) / 1000]
        if late:
            failures.append(f"{len(late)} FALLBACK answers sent more than {grace} ms after "
                            f"{name} (the last at +{late[-1][0] - marks[name]:.2f}s)")
        after = [r for r in records if r[0] > marks[name] + float(grace or 0) / 1000]
        if len(after) < args.min_after:
            failures.append(f"only {len(after)} requests after {name} + {grace} ms")
    timeline = Counter()
    for r in fallback:
        timeline[f"{r[2]}@{int(r[0] - start)}s"] += 1
    rel = {k: round(v - start, 3) for k, v in marks.items()}
    report = {"requests": sent, "answers": len(records),
              "latency_ms": {"p50": round(latency[len(latency) // 2] * 1000, 2) if latency else 0,
                             "p99": round(latency[int(len(latency) * .99)] * 1000, 2)
                             if latency else 0,
                             "max": round(latency[-1] * 1000, 2) if latency else 0},
              "per_policy": {k: dict(v) for k, v in per_policy.items()},
              "fallback_answers": len(fallback),
              "fallback_first_last_s": [round(fallback[0][0] - start, 3),
                                        round(max(r[0] for r in fallback) - start, 3)]
              if fallback else None,
              "fallback_timeline": dict(timeline), "marks_s": rel,
              "seconds": round(time.time() - start, 2)}
    return report, failures


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["exact", "multi", "leases", "load"])
    ap.add_argument("--addresses", required=True, help="unix:PATH,unix:PATH,...")
    ap.add_argument("--cluster-port", type=int, default=0, help="a node to ask CLUSTER SLOTS")
    ap.add_argument("--policy", action="append", required=True, help="NAME[:LIMIT]")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--extra", type=int, default=2, help="requests past the limit per key")
    ap.add_argument("--conns", type=int, default=4, help="connections per daemon")
    ap.add_argument("--rates", type=int, default=1, help="Redis keys per item (multi-rate)")
    ap.add_argument("--multi", type=int, default=40, help="MULTI_CHECKs of the denied phase")
    ap.add_argument("--key-prefix", default="rl:", help="the store's key_prefix")
    ap.add_argument("--key-prefix-keys", default="k", help="the keys' names start with this")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for a phase")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--until-file", help="load: stop as soon as this file exists")
    ap.add_argument("--max-latency-ms", type=float, default=1e9)
    ap.add_argument("--marks", help="load: the marks file (NAME EPOCH_SECONDS lines)")
    ap.add_argument("--clean-before", action="append", help="load: MARK")
    ap.add_argument("--clean-after", action="append", help="load: MARK:GRACE_MS")
    ap.add_argument("--min-after", type=int, default=1)
    args = ap.parse_args()
    run = {"exact": cmd_exact, "multi": cmd_multi, "leases": cmd_leases, "load": cmd_load}
    report, failures = asyncio.run(run[args.command](args))
    print(json.dumps(report, indent=1, sort_keys=True))
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
