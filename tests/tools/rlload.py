#!/usr/bin/python3
"""rlload.py: load and fault-injection clients for rlimitd's fault tests.

Every request carries a request id unique on its connection; every answer is matched to
its request by id, so the tool counts requests sent, answers received, answers missing
(lost), answered twice (duplicates) and answers nobody asked for (unknown), exactly.

Subcommands (each prints a JSON summary on stdout and exits 1 if an expectation fails):

  load       N pipelined connections for a while (or until a stop file appears); phases
             from a marks file ("NAME EPOCH_SECONDS" lines written by the test script)
             with expectations on each phase's answers; STATS counters diffed against
             what the tool saw
  burst      one connection sends COUNT requests in one write (max_pending -> BUSY)
  checks     CHECKs on KEYS distinct keys over one connection (max_keys -> STORE_FULL)
  flood      N concurrent connections, one CHECK each, then all closed; RSS measured
  slowloris  connections that send one byte every INTERVAL seconds; a probe measures
             that others are still served; reports when the daemon closed each one
  stall      connections that send requests and never read an answer; RSS measured;
             reports which connections the daemon dropped
  midframe   connections that go away in the middle of a frame, or with answers owed
  ping, stats, rss, wait-store-up: small helpers for the scripts

Only loopback addresses are used: "unix:PATH" or "tcp:127.0.0.1:PORT".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlwire as w  # noqa: E402


def emit(summary: dict, failures: list[str], out: str | None = None) -> int:
    """Prints the summary (and writes it to out), then the failures. Returns the exit code."""
    summary["failures"] = failures
    text = json.dumps(summary, sort_keys=True)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    print(text)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def open_connection(address: str):
    """Opens an asyncio connection coroutine for address with a protocol factory."""
    loop = asyncio.get_running_loop()
    if address.startswith("unix:"):
        return lambda factory: loop.create_unix_connection(factory, address[5:])
    host, _, port = address[4:].rpartition(":")
    return lambda factory: loop.create_connection(factory, host.strip("[]"), int(port))


# ---------------------------------------------------------------- load

class Spec:
    """One kind of request the load sends: a policy over a set of keys."""

    def __init__(self, text: str, key_prefix: str):
        policy, _, keys = text.partition(":")
        self.policy = policy
        self.keys = [f"{key_prefix}{i}".encode() for i in range(int(keys or 1))]
        self.frames = [w.item_frame(0, policy.encode(), k) for k in self.keys]
        self.next = 0

    def frame(self) -> bytes:
        frame = self.frames[self.next % len(self.frames)]
        self.next += 1
        return frame


class Load:
    """The shared state of a load run: what was sent, what came back."""

    def __init__(self, args):
        self.args = args
        self.specs = [Spec(s, args.key_prefix) for s in args.spec]
        self.spec_turn = 0
        self.stopping = False
        self.sent = 0
        self.answered = 0
        self.duplicates = 0
        self.unknown = 0
        self.lost = 0
        self.protocol_errors = 0
        self.connections_lost = 0
        self.loss_notes: list[dict] = []  # what a connection closed by the daemon still owed
        self.overran = False  # stopped by --max-seconds, not by the test
        self.records: list[tuple] = []  # (t_send, t_recv, spec, status, flags)
        self.conns: list[LoadConn] = []

    def take(self, conn: "LoadConn") -> tuple[int, bytes] | None:
        if self.stopping or conn.tokens < 1:
            return None
        if self.args.max_requests and self.sent >= self.args.max_requests:
            return None
        conn.tokens -= 1
        index = self.spec_turn % len(self.specs)
        self.spec_turn += 1
        return index, self.specs[index].frame()

    def inflight(self) -> int:
        return sum(len(c.inflight) for c in self.conns)


class LoadConn(asyncio.Protocol):
    """One pipelined connection of a load run."""

    def __init__(self, load: Load):
        self.load = load
        self.transport = None
        self.buf = bytearray()
        self.inflight: dict[int, tuple[float, int]] = {}
        self.next_id = 1
        self.closing = False
        # each connection gets its share of the rate, so that none sits idle
        self.tokens = float("inf") if load.args.rate <= 0 else 0.0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.fill()

    def fill(self) -> None:
        if self.transport is None or self.closing:
            return
        parts = []
        now = time.time()
        while len(self.inflight) < self.load.args.depth:
            taken = self.load.take(self)
            if taken is None:
                break
            index, frame = taken
            request_id = self.next_id
            self.next_id += 1
            parts.append(w.with_id(frame, request_id))
            self.inflight[request_id] = (now, index)
            self.load.sent += 1
        if parts:
            self.transport.write(b"".join(parts))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            answers = w.parse_frames(self.buf)
        except ValueError:
            self.load.protocol_errors += 1
            self.transport.close()
            return
        now = time.time()
        for a in answers:
            entry = self.inflight.pop(a.request_id, None)
            if entry is None:
                if a.request_id < self.next_id:
                    self.load.duplicates += 1
                else:
                    self.load.unknown += 1
                continue
            self.load.answered += 1
            self.load.records.append((entry[0], now, entry[1], a.status, a.flags))
        self.fill()

    def connection_lost(self, exc) -> None:
        if not self.closing:
            self.load.connections_lost += 1
            oldest = min((t for t, _ in self.inflight.values()), default=None)
            self.load.loss_notes.append({
                "in_flight": len(self.inflight),
                "unsent_bytes": self.transport.get_write_buffer_size(),
                "unparsed_bytes": len(self.buf),
                "oldest_unanswered_age_s": round(time.time() - oldest, 3) if oldest else None,
                "error": str(exc)})
        self.load.lost += len(self.inflight)
        self.inflight.clear()
        if not self.done.done():
            self.done.set_result(None)


async def run_load(load: Load) -> None:
    args = load.args
    opener = open_connection(args.address)
    for _ in range(args.connections):
        transport, conn = await opener(lambda: LoadConn(load))
        load.conns.append(conn)
    if args.ready_file:
        open(args.ready_file, "w").close()
    start = time.monotonic()
    last = start
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        now = time.monotonic()
        if all(c.done.done() for c in load.conns):
            break  # every connection is gone (counted as lost): nothing left to do
        if now - start >= args.max_seconds:
            print(f"rlload: stopping after --max-seconds {args.max_seconds}", file=sys.stderr)
            load.overran = True
            break
        if args.rate > 0:
            share = args.rate / len(load.conns)
            for conn in load.conns:
                conn.tokens = min(conn.tokens + share * (now - last), max(share * 0.05, 1))
        last = now
        if args.duration and now - start >= args.duration:
            break
        if args.stop_file and os.path.exists(args.stop_file):
            break
        if args.max_requests and load.sent >= args.max_requests and load.inflight() == 0:
            break
        for conn in load.conns:
            conn.fill()
        await asyncio.sleep(0.005)
    load.stopping = True
    deadline = time.monotonic() + args.drain_timeout
    while load.inflight() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for conn in load.conns:
        conn.closing = True
        if conn.transport:
            conn.transport.close()
    await asyncio.wait_for(asyncio.gather(*(c.done for c in load.conns)), 30)


def read_marks(path: str | None, start: float) -> list[tuple[str, float]]:
    marks = [("start", start)]
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    marks.append((parts[0], float(parts[1])))
    marks.sort(key=lambda m: m[1])
    return marks


def phase_of(marks, t_send: float, t_recv: float) -> str | None:
    """The phase an answer belongs to: sent after its mark, answered before the next."""
    index = None
    for i, (_, t) in enumerate(marks):
        if t <= t_send:
            index = i
    if index is None:
        return None
    if index + 1 < len(marks) and t_recv >= marks[index + 1][1]:
        return None  # straddles two phases: belongs to neither
    return marks[index][0]


def tally(records, specs, marks) -> dict:
    """Counts statuses and flags per phase and policy (phase "*" = every answer)."""
    out: dict = defaultdict(lambda: defaultdict(lambda: {"answers": 0, "status": Counter(),
                                                         "flags": Counter()}))
    for t_send, t_recv, index, status, flags in records:
        policy = specs[index].policy
        for phase in ("*", phase_of(marks, t_send, t_recv)):
            if phase is None:
                continue
            cell = out[phase][policy]
            cell["answers"] += 1
            cell["status"][w.STATUS.get(status, str(status))] += 1
            for name in w.flag_names(flags):
                cell["flags"][name] += 1
    return out


def check_expectation(text: str, table, records, specs, marks) -> list[str]:
    """Checks "PHASE:POLICY:TOKEN,TOKEN..." (status=A|B, +FLAG, -FLAG, min=N)."""
    phase, policy, tokens = text.split(":", 2)
    failures = []
    policies = [s.policy for s in specs] if policy == "*" else [policy]
    for pol in dict.fromkeys(policies):
        cell = table.get(phase, {}).get(pol, {"answers": 0, "status": {}, "flags": {}})
        n = cell["answers"]
        for token in tokens.split(","):
            if token.startswith("min="):
                if n < int(token[4:]):
                    failures.append(f"{phase}/{pol}: {n} answers, expected at least {token[4:]}")
            elif token.startswith("status="):
                wanted = set(token[7:].split("|"))
                bad = {s: c for s, c in cell["status"].items() if s not in wanted}
                if bad:
                    failures.append(f"{phase}/{pol}: statuses {bad} outside {sorted(wanted)}")
            elif token[0] in "+-":
                have = cell["flags"].get(token[1:], 0)
                if token[0] == "+" and have != n:
                    failures.append(f"{phase}/{pol}: {n - have} of {n} answers lack {token[1:]}")
                if token[0] == "-" and have:
                    failures.append(f"{phase}/{pol}: {have} of {n} answers carry {token[1:]}")
            else:
                raise SystemExit(f"bad expectation token {token!r}")
    return failures


def stats_deltas(before: dict, after: dict, table, specs) -> tuple[dict, list[str]]:
    """Compares the daemon's per-policy counters with what the tool received."""
    b, a = w.policy_totals(before), w.policy_totals(after)
    deltas, failures = {}, []
    for pol in dict.fromkeys(s.policy for s in specs):
        if pol not in a or pol not in b:
            failures.append(f"STATS has no policy {pol}")
            continue
        d = {k: a[pol][k] - b[pol][k] for k in a[pol] if isinstance(a[pol][k], int)}
        deltas[pol] = d
        cell = table["*"].get(pol, {"answers": 0, "status": {}, "flags": {}})
        busy = cell["status"].get("BUSY", 0)
        counted = d["allowed"] + d["denied"] + d["shadow_denied"] + d["errors"]
        if counted != cell["answers"] - busy:
            failures.append(f"STATS {pol}: allowed+denied+shadow_denied+errors moved by "
                            f"{counted}, the tool got {cell['answers'] - busy} decisions")
        if d["fallbacks"] != cell["flags"].get("FALLBACK", 0):
            failures.append(f"STATS {pol}: fallbacks moved by {d['fallbacks']}, the tool saw "
                            f"{cell['flags'].get('FALLBACK', 0)} FALLBACK answers")
    return deltas, failures


def cmd_load(args) -> int:
    stats_address = args.stats_address or args.address
    before = w.stats(stats_address) if args.check_stats else None
    load = Load(args)
    start = time.time()
    asyncio.run(run_load(load))
    marks = read_marks(args.marks, start)
    table = tally(load.records, load.specs, marks)
    failures = []
    if load.answered != load.sent:
        failures.append(f"{load.sent} requests sent, {load.answered} answered")
    counted = ["lost", "duplicates", "unknown", "protocol_errors", "overran"]
    if not args.closing_ok:
        counted.append("connections_lost")
    for name in counted:
        if getattr(load, name):
            failures.append(f"{name}: {getattr(load, name)}")
    for text in args.expect:
        failures += check_expectation(text, table, load.records, load.specs, marks)
    summary = {
        "sent": load.sent, "answered": load.answered, "lost": load.lost,
        "duplicates": load.duplicates, "unknown": load.unknown,
        "protocol_errors": load.protocol_errors, "connections_lost": load.connections_lost,
        "loss_notes": load.loss_notes,
        "seconds": round(time.time() - start, 2), "marks": marks,
        "phases": {ph: {pol: {"answers": c["answers"], "status": dict(c["status"]),
                              "flags": dict(c["flags"])} for pol, c in cells.items()}
                   for ph, cells in table.items()},
    }
    if args.check_stats:
        after = w.stats(stats_address)
        summary["stats_deltas"], more = stats_deltas(before, after, table, load.specs)
        failures += more
    return emit(summary, failures, args.out)


# ---------------------------------------------------------------- burst, checks

def read_answers(sock: socket.socket, want: int, timeout: float) -> tuple[list, bool]:
    """Reads until want answers came, EOF, or timeout. Returns (answers, eof)."""
    buf, answers = bytearray(), []
    deadline = time.monotonic() + timeout
    sock.settimeout(1.0)
    while len(answers) < want and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionError:
            return answers, True
        if not data:
            return answers, True
        buf += data
        answers += w.parse_frames(buf)
    return answers, False


def cmd_burst(args) -> int:
    sock = w.connect(args.address)
    frame = w.item_frame(0, args.policy.encode(), args.key.encode())
    sock.sendall(b"".join(w.with_id(frame, i + 1) for i in range(args.count)))
    answers, eof = read_answers(sock, args.count, args.timeout)
    sock.close()
    ids = Counter(a.request_id for a in answers)
    statuses = Counter(a.status_name for a in answers)
    flags = Counter(n for a in answers for n in w.flag_names(a.flags))
    failures = []
    if len(answers) != args.count or set(ids) != set(range(1, args.count + 1)):
        failures.append(f"{args.count} requests, {len(answers)} answers, "
                        f"{len(set(ids))} distinct ids (eof={eof})")
    if any(c > 1 for c in ids.values()):
        failures.append("an id was answered twice")
    if statuses.get("BUSY", 0) < args.expect_busy_min:
        failures.append(f"{statuses.get('BUSY', 0)} BUSY answers, expected at least "
                        f"{args.expect_busy_min}")
    return emit({"requests": args.count, "answers": len(answers), "status": dict(statuses),
                 "flags": dict(flags)}, failures)


def cmd_checks(args) -> int:
    sock = w.connect(args.address)
    frames = [w.with_id(w.item_frame(0, args.policy.encode(), f"{args.key_prefix}{i}".encode()),
                        i + 1) for i in range(args.keys)]
    sock.sendall(b"".join(frames))
    answers, eof = read_answers(sock, args.keys, 60)
    sock.close()
    by_id = {a.request_id: a.status_name for a in answers}
    statuses = Counter(by_id.values())
    first_full = min((i for i, s in by_id.items() if s == "STORE_FULL"), default=None)
    failures = [] if len(by_id) == args.keys else [f"{args.keys} requests, {len(by_id)} answers"]
    for text in args.expect:
        status, _, count = text.partition("=")
        if statuses.get(status, 0) != int(count):
            failures.append(f"{statuses.get(status, 0)} {status} answers, expected {count}")
    return emit({"answers": len(by_id), "status": dict(statuses),
                 "first_store_full_request": first_full}, failures)


# ---------------------------------------------------------------- flood

def cmd_flood(args) -> int:
    summary: dict = {"connections": args.connections, "rounds": []}
    failures: list[str] = []
    for round_no in range(args.rounds):
        r: dict = {"rss_before_kb": w.rss_kb(args.pid)}
        socks = []
        t0 = time.monotonic()
        try:
            for _ in range(args.connections):
                socks.append(w.connect(args.address, timeout=30))
        except OSError as e:
            failures.append(f"round {round_no}: connection {len(socks) + 1} failed: {e}")
        r["connect_seconds"] = round(time.monotonic() - t0, 2)
        poller = select.epoll()
        bufs = {}
        frame = w.item_frame(0, args.policy.encode(), b"flood")
        for i, s in enumerate(socks):
            s.setblocking(False)
            s.send(w.with_id(frame, i + 1))
            poller.register(s.fileno(), select.EPOLLIN)
            bufs[s.fileno()] = (s, bytearray(), i + 1)
        answers: dict[int, w.Answer] = {}
        eofs = 0
        deadline = time.monotonic() + args.timeout
        while len(answers) + eofs < len(socks) and time.monotonic() < deadline:
            for fd, _ in poller.poll(1.0):
                s, buf, request_id = bufs[fd]
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if not data:
                    eofs += 1
                    poller.unregister(fd)
                    continue
                buf += data
                for a in w.parse_frames(buf):
                    if fd in answers or a.request_id != request_id:
                        failures.append(f"round {round_no}: unexpected answer {a}")
                    answers[fd] = a
                if fd in answers:
                    poller.unregister(fd)
        r["rss_peak_kb"] = w.rss_kb(args.pid)
        statuses = Counter(a.status_name for a in answers.values())
        r.update(answers=len(answers), closed_by_daemon=eofs, status=dict(statuses))
        try:
            r["ping_with_all_open"] = w.Client(args.address).ping().status_name
        except OSError as e:
            r["ping_with_all_open"] = str(e)
        for s in socks:
            s.close()
        poller.close()
        time.sleep(args.settle)
        r["ping_after_close"] = w.wait_answering(args.address).status_name
        r["rss_after_kb"] = w.rss_kb(args.pid)
        if len(answers) != len(socks) or statuses.get("ALLOWED", 0) != len(socks):
            failures.append(f"round {round_no}: {len(socks)} connections, answers "
                            f"{dict(statuses)}, {eofs} closed by the daemon")
        if r["ping_with_all_open"] != "ALLOWED" or r["ping_after_close"] != "ALLOWED":
            failures.append(f"round {round_no}: PING failed: {r}")
        summary["rounds"].append(r)
    rounds = summary["rounds"]
    if len(rounds) >= 2 and not failures:
        growth = rounds[-1]["rss_after_kb"] - rounds[0]["rss_after_kb"]
        summary["rss_growth_between_rounds_kb"] = growth
        if growth > args.max_growth_kb:
            failures.append(f"RSS grew by {growth} kB between rounds of the same load "
                            f"(more than {args.max_growth_kb} kB)")
    return emit(summary, failures)


# ---------------------------------------------------------------- slowloris

def slow_frame(args) -> bytes:
    """A CHECK whose key is long: a slow client never gets to its end."""
    key = b"s" * args.key_len
    return w.item_frame(7, args.policy.encode(), key)


def cmd_slowloris(args) -> int:
    frame = slow_frame(args)
    socks = [w.connect(args.address) for _ in range(args.connections)]
    for s in socks:
        s.setblocking(False)
    closed_at: dict[int, float] = {}
    sent = [0] * len(socks)
    probe = w.Client(args.address, timeout=args.probe_timeout)
    probe_answers, probe_worst = 0, 0.0
    failures = []
    start = time.monotonic()
    next_byte = start
    while time.monotonic() - start < args.duration:
        now = time.monotonic()
        if now >= next_byte:
            for i, s in enumerate(socks):
                if i in closed_at:
                    continue
                try:
                    s.send(frame[sent[i] % len(frame):sent[i] % len(frame) + 1])
                    sent[i] += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed_at[i] = now - start
            next_byte += args.interval
        for i, s in enumerate(socks):  # the daemon closing it shows as EOF or HUP
            if i not in closed_at:
                p = select.poll()
                p.register(s, select.POLLIN | select.POLLRDHUP)
                if p.poll(0):
                    try:
                        if s.recv(4096) == b"":
                            closed_at[i] = now - start
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed_at[i] = now - start
        t0 = time.monotonic()
        try:
            answer = probe.check(args.probe_policy, "probe")
            probe_answers += answer.status_name in ("ALLOWED", "DENIED")
        except OSError as e:
            failures.append(f"the probe got no answer while slow clients were connected: {e}")
            break
        probe_worst = max(probe_worst, time.monotonic() - t0)
        if len(closed_at) == len(socks) and probe_answers >= 10:
            break  # every slow connection is gone: nothing more to see
        time.sleep(0.05)
    probe.close()
    for s in socks:
        s.close()
    summary = {"slow_connections": len(socks), "bytes_sent_each": max(sent),
               "closed_by_daemon": len(closed_at),
               "closed_after_s": sorted(round(t, 2) for t in closed_at.values()),
               "probe_answers": probe_answers, "probe_worst_latency_s": round(probe_worst, 3)}
    if probe_answers == 0:
        failures.append("the probe was never answered")
    if args.expect_closed_within is not None:
        late = [t for t in closed_at.values() if t > args.expect_closed_within]
        never = len(socks) - len(closed_at)
        if never or late:
            failures.append(
                f"slowloris: {never} of {len(socks)} connections that sent one byte every "
                f"{args.interval}s (never completing a frame) were still open after "
                f"{args.duration}s, {len(late)} closed later than {args.expect_closed_within}s: "
                f"the daemon has no bound on the time a frame may take to arrive")
    return emit(summary, failures)


# ---------------------------------------------------------------- stall

def peer_closed(sock: socket.socket) -> bool:
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))


def cmd_stall(args) -> int:
    rss = {"before_kb": w.rss_kb(args.pid)}
    frame = w.item_frame(0, args.policy.encode(), b"stall")
    payload = b"".join(w.with_id(frame, i + 1) for i in range(args.requests))
    socks = []
    for _ in range(args.connections):
        s = w.connect(args.address)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        socks.append([s, 0, None])  # socket, bytes sent, closed at
    start = time.monotonic()
    peak = 0
    while time.monotonic() - start < args.send_seconds:  # send what the daemon takes
        progress = False
        for entry in socks:
            s, off, _ = entry
            if off >= len(payload) or entry[2] is not None:
                continue
            try:
                n = s.send(payload[off:off + 65536])
                entry[1] += n
                progress = True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                entry[2] = time.monotonic() - start
        peak = max(peak, w.rss_kb(args.pid))
        if all(e[1] >= len(payload) or e[2] is not None for e in socks):
            break
        if not progress:
            time.sleep(0.01)
    rss["after_sending_kb"] = w.rss_kb(args.pid)
    hold_end = time.monotonic() + args.hold
    while time.monotonic() < hold_end:  # read nothing; watch for the daemon closing
        for entry in socks:
            if entry[2] is None and peer_closed(entry[0]):
                entry[2] = time.monotonic() - start
        peak = max(peak, w.rss_kb(args.pid))
        if args.expect_dropped == "all" and all(e[2] is not None for e in socks):
            break
        time.sleep(0.1)
    rss["peak_kb"] = peak
    rss["with_connections_held_kb"] = w.rss_kb(args.pid)
    dropped = sum(e[2] is not None for e in socks)
    fully_sent = sum(e[1] >= len(payload) for e in socks)
    for entry in socks:
        entry[0].close()
    time.sleep(args.settle)
    ping = w.wait_answering(args.address).status_name
    rss["after_kb"] = w.rss_kb(args.pid)
    summary = {"connections": len(socks), "request_bytes_each": len(payload),
               "answer_bytes_each": args.requests * 36, "fully_sent": fully_sent,
               "dropped_by_daemon": dropped,
               "dropped_after_s": sorted(round(e[2], 2) for e in socks if e[2] is not None),
               "rss": rss, "ping_after": ping}
    failures = []
    if ping != "ALLOWED":
        failures.append(f"PING after: {ping}")
    if args.expect_dropped == "all" and dropped != len(socks):
        failures.append(
            f"{len(socks) - dropped} of {len(socks)} connections that never read were still "
            f"open after {args.hold}s of silence, holding their unsent answers ({args.why})")
    if args.max_peak_kb and peak - rss["before_kb"] > args.max_peak_kb:
        failures.append(f"RSS rose by {peak - rss['before_kb']} kB (bound {args.max_peak_kb})")
    if args.max_after_kb and rss["after_kb"] - rss["before_kb"] > args.max_after_kb:
        failures.append(f"RSS after the clients left is {rss['after_kb'] - rss['before_kb']} kB "
                        f"above the start (bound {args.max_after_kb})")
    return emit(summary, failures)


# ---------------------------------------------------------------- midframe

def cmd_midframe(args) -> int:
    rss_before = w.rss_kb(args.pid)
    frame = w.item_frame(1, args.policy.encode(), b"midframe-key")
    whole = b"".join(w.with_id(frame, i + 1) for i in range(10))
    big_header = struct.pack(">IBBHI", args.big_length, 1, w.CHECK, 0, 99)
    variants = Counter()
    half_close_answers = Counter()
    failures = []
    kinds = [int(k) for k in args.kinds.split(",")]
    for i in range(args.connections):
        kind = kinds[i % len(kinds)]
        s = w.connect(args.address)
        if kind == 0:  # half a header
            s.sendall(frame[:6])
        elif kind == 1:  # a header and half the body
            s.sendall(frame[:len(frame) // 2 + 6])
        elif kind == 2:  # a large frame announced, a little of it sent
            s.sendall(big_header + b"x" * 100)
        elif kind == 3:  # ten whole frames and a partial one, gone without reading
            s.sendall(whole + frame[:9])
        else:  # ten whole frames, then half-close: all ten answers must still come
            s.sendall(whole + frame[:5])
            s.shutdown(socket.SHUT_WR)
            answers, eof = read_answers(s, 11, 30)
            half_close_answers[len(answers)] += 1
            if len(answers) != 10 or not (eof or read_answers(s, 1, 10)[1]):
                failures.append(f"half-closed connection: {len(answers)} answers (eof={eof}),"
                                " expected 10 then the end of the stream")
        variants[kind] += 1
        s.close()
    time.sleep(args.settle)
    ping = w.wait_answering(args.address).status_name
    rss_after = w.rss_kb(args.pid)
    if ping != "ALLOWED":
        failures.append(f"PING after: {ping}")
    if args.max_growth_kb and rss_after - rss_before > args.max_growth_kb:
        failures.append(f"RSS grew by {rss_after - rss_before} kB (bound {args.max_growth_kb})")
    return emit({"connections": args.connections, "variants": dict(variants),
                 "half_close_answer_counts": dict(half_close_answers), "ping_after": ping,
                 "rss_before_kb": rss_before, "rss_after_kb": rss_after}, failures)


# ---------------------------------------------------------------- helpers

def cmd_ping(args) -> int:
    try:
        a = w.wait_answering(args.address, args.timeout)
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        return 1
    print(a.status_name)
    return 0 if a.status == w.ALLOWED else 1


def cmd_stats(args) -> int:
    doc = w.stats(args.address)
    for part in args.path.split(".") if args.path else []:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    print(json.dumps(doc))
    return 0


def cmd_rss(args) -> int:
    print(w.rss_kb(args.pid))
    return 0


def cmd_wait_store_up(args) -> int:
    """Waits until the Redis store has every connection ready again."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        store = w.stats(args.address).get("store", {})
        if store.get("state") == "up" and store.get("ready") == store.get("connections"):
            print(json.dumps(store))
            return 0
        time.sleep(0.05)
    print(f"the store is not back after {args.timeout}s", file=sys.stderr)
    return 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("load")
    s.add_argument("--address", required=True)
    s.add_argument("--stats-address")
    s.add_argument("--connections", type=int, default=4)
    s.add_argument("--depth", type=int, default=32)
    s.add_argument("--rate", type=float, default=0, help="requests/s in all (0: as fast)")
    s.add_argument("--duration", type=float, default=0)
    s.add_argument("--max-requests", type=int, default=0)
    s.add_argument("--stop-file")
    s.add_argument("--ready-file")
    s.add_argument("--spec", action="append", required=True, help="POLICY[:KEYS]")
    s.add_argument("--key-prefix", default="k")
    s.add_argument("--marks")
    s.add_argument("--expect", action="append", default=[])
    s.add_argument("--check-stats", action="store_true")
    s.add_argument("--closing-ok", action="store_true",
                   help="the daemon may close connections (shutdown) once nothing is owed")
    s.add_argument("--drain-timeout", type=float, default=60)
    s.add_argument("--max-seconds", type=float, default=300,
                   help="a hard stop, should the test script never say stop")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_load)

    s = sub.add_parser("burst")
    s.add_argument("--address", required=True)
    s.add_argument("--policy", required=True)
    s.add_argument("--key", default="burst")
    s.add_argument("--count", type=int, default=500)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--expect-busy-min", type=int, default=0)
    s.set_defaults(fn=cmd_burst)

    s = sub.add_parser("checks")
    s.add_argument("--address", required=True)
    s.add_argument("--policy", required=True)
    s.add_argument("--keys", type=int, required=True)
    s.add_argument("--key-prefix", default="key")
    s.add_argument("--expect", action="append", default=[], help="STATUS=COUNT")
    s.set_defaults(fn=cmd_checks)

    s = sub.add_parser("flood")
    s.add_argument("--address", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--policy", required=True)
    s.add_argument("--connections", type=int, default=10000)
    s.add_argument("--rounds", type=int, default=2)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--max-growth-kb", type=int, default=16384)
    s.set_defaults(fn=cmd_flood)

    s = sub.add_parser("slowloris")
    s.add_argument("--address", required=True)
    s.add_argument("--policy", default="big")
    s.add_argument("--probe-policy", default="big")
    s.add_argument("--key-len", type=int, default=400)
    s.add_argument("--connections", type=int, default=20)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--duration", type=float, default=8.0)
    s.add_argument("--probe-timeout", type=float, default=30.0)
    s.add_argument("--expect-closed-within", type=float)
    s.set_defaults(fn=cmd_slowloris)

    s = sub.add_parser("stall")
    s.add_argument("--address", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--policy", required=True)
    s.add_argument("--connections", type=int, default=20)
    s.add_argument("--requests", type=int, default=30000)
    s.add_argument("--send-seconds", type=float, default=30)
    s.add_argument("--hold", type=float, default=5)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--expect-dropped", choices=["all", "any"], default="any")
    s.add_argument("--why", default="")
    s.add_argument("--max-peak-kb", type=int, default=0)
    s.add_argument("--max-after-kb", type=int, default=0)
    s.set_defaults(fn=cmd_stall)

    s = sub.add_parser("midframe")
    s.add_argument("--address", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--policy", required=True)
    s.add_argument("--connections", type=int, default=500)
    s.add_argument("--big-length", type=int, default=8000)
    s.add_argument("--kinds", default="0,1,2,3,4",
                   help="0 half a header, 1 half a body, 2 a large frame begun, 3 ten frames "
                        "and gone, 4 ten frames and half-close (their answers must come)")
    s.add_argument("--settle", type=float, default=0.5)
    s.add_argument("--max-growth-kb", type=int, default=0)
    s.set_defaults(fn=cmd_midframe)

    s = sub.add_parser("ping")
    s.add_argument("address")
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(fn=cmd_ping)

    s = sub.add_parser("stats")
    s.add_argument("address")
    s.add_argument("--path")
    s.set_defaults(fn=cmd_stats)

    s = sub.add_parser("rss")
    s.add_argument("pid", type=int)
    s.set_defaults(fn=cmd_rss)

    s = sub.add_parser("wait-store-up")
    s.add_argument("address")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(fn=cmd_wait_store_up)

    args = p.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
