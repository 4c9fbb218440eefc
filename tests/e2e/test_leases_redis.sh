#!/usr/bin/env bash
# Concurrency leases on the Redis store, through two real daemons on one private
# redis-server (tests/support/redis.sh), each daemon on its own Unix socket:
#
#   exact     32 clients (16 on each daemon) each acquire and release on one key of a
#             limit-5 policy, over and over: the leases held at once never exceed 5,
#             checked from the clients' own timeline (acquire answer -> release send, a
#             part of each lease's true life) and from Redis (ZCARD sampled throughout);
#             every lease is released once, the set ends empty;
#   expiry    a lease taken through one daemon and never released holds its slot against
#             the other until `lease` has passed on Redis's clock (its score is Redis TIME
#             at the ACQUIRE + lease), then the slot is free and the old lease is
#             LEASE_UNKNOWN;
#   ttl       two leases on a key 0.3 s apart, the later released: the set's TTL still
#             reaches the later one's end (RELEASE leaves the TTL) and at most `lease`;
#             releasing the other removes the set;
#   listing   rlimitctl leases (LEASES, read with plain commands, not the script): one
#             key's leases, every key of a policy whose name Redis keys escape, expired
#             members left out, 1000 at most with truncated; with Redis down exit 2,
#             STORE_UNAVAILABLE;
#   down      redis-server killed: ACQUIRE with on_store_error allow is allowed with
#             FALLBACK and lease 0, deny is denied, local is decided by the embedded store
#             (limit 1: allowed with a lease, then denied, released); Redis back: decided
#             there again.
#
# Environment: BUILD (default build), RLIMITD_WRAPPER (prefixed to the daemon), PYTHON.
set -u
cd "$(dirname "$0")/../.."
WORK_NAME=leases-redis
# shellcheck source=tests/e2e/redis_daemons.sh
. tests/e2e/redis_daemons.sh

# leases MODE: runs the Python side of a part (tests/tools/rlwire.py frames).
leases() {
    "$PYTHON" - "$@" <<'EOF'
import socket, struct, sys, threading, time, random
sys.path.insert(0, "tests/tools")
import rlwire
from rlwire import HEADER, RESULT, ITEM

ACQUIRE, RELEASE, RENEW, DETACH = 0x10, 0x11, 0x12, 0x0001
ALLOWED, DENIED, LEASE_UNKNOWN, FALLBACK = 0, 1, 34, 0x1
mode, work, redis_port = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Conn:
    """A blocking connection to one daemon: one lease request at a time."""
    def __init__(self, name):
        self.sock = rlwire.connect(f"unix:{work}/{name}.sock")
        self.next_id = 1
    def call(self, opcode, policy, key, cost=1, lease=None, flags=0):
        body = ITEM.pack(cost, len(policy), len(key)) + policy + key
        if lease is not None:
            body = struct.pack(">Q", lease) + body
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(HEADER.pack(8 + len(body), 1, opcode, flags, rid) + body)
        head = self.recv(4)
        (length,) = struct.unpack(">I", head)
        rest = self.recv(length)
        status, _, rflags, limit, remaining, reset, retry, window = RESULT.unpack_from(rest, 8)
        assert struct.unpack_from(">I", rest, 4)[0] == rid, "answer to another request"
        got = struct.unpack_from(">Q", rest, 8 + RESULT.size)[0] if length >= 8 + RESULT.size + 8 else None
        return {"status": status, "flags": rflags, "remaining": remaining, "reset": reset,
                "retry": retry, "lease": got}
    def recv(self, n):
        out = b""
        while len(out) < n:
            data = self.sock.recv(n - len(out))
            if not data:
                raise ConnectionError("the daemon closed the connection")
            out += data
        return out

class Redis:
    """The few Redis commands the test reads with (RESP over TCP)."""
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", redis_port), timeout=10)
        self.f = self.sock.makefile("rb")
    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()
    def read(self):
        line = self.f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if int(rest) < 0 else self.f.read(int(rest) + 2)[:-2].decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()
    def time_us(self):
        s, us = self.cmd("TIME")
        return int(s) * 1000000 + int(us)

def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)

def exact():
    policy, key, clients, rounds = b"conc", b"hot", 32, 40
    events, lock, problems = [], threading.Lock(), []
    counts = {"allowed": 0, "denied": 0, "released": 0}
    done = threading.Event()
    def client(n):
        conn, rng = Conn("a" if n % 2 else "b"), random.Random(n)
        try:
            got = 0
            while got < rounds:
                r = conn.call(ACQUIRE, policy, key)
                t_acq = time.monotonic()
                if r["status"] == DENIED:
                    with lock:
                        counts["denied"] += 1
                    time.sleep(rng.random() * 0.002)
                    continue
                if r["status"] != ALLOWED or r["flags"] & FALLBACK or not r["lease"]:
                    problems.append(f"client {n}: ACQUIRE answered {r}")
                    return
                time.sleep(rng.random() * 0.003)
                t_rel = time.monotonic()
                rel = conn.call(RELEASE, policy, key, 0, r["lease"])
                if rel["status"] != ALLOWED:
                    problems.append(f"client {n}: RELEASE of {r['lease']} answered {rel}")
                    return
                with lock:
                    events.append((t_acq, 1))
                    events.append((t_rel, -1))
                    counts["allowed"] += 1
                    counts["released"] += 1
                got += 1
        except Exception as e:
            problems.append(f"client {n}: {e!r}")
    most = [0, 0]
    def sampler():
        r = Redis()
        while not done.is_set():
            n = r.cmd("ZCARD", "rl:{conc:hot}:0")
            most[0] = max(most[0], n)
            most[1] += 1
    s = threading.Thread(target=sampler)
    s.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    s.join(10)
    check(not problems, "; ".join(problems[:5]))
    check(all(not t.is_alive() for t in threads), "clients still running after 120 s")
    held = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):  # a release before an acquire
        held += d
        peak = max(peak, held)
    print(f"exact: {counts['allowed']} leases, {counts['denied']} denials; at once: "
          f"{peak} by the clients' timeline, {most[0]} by ZCARD ({most[1]} samples)")
    check(counts["allowed"] == clients * rounds, f"{counts['allowed']} leases taken")
    check(peak <= 5, f"{peak} leases held at once by the clients' timeline")
    check(most[0] <= 5, f"ZCARD saw {most[0]} leases at once")
    check(counts["denied"] > 0, "no ACQUIRE was ever denied: the limit was never reached")
    check(most[1] > 10, "too few ZCARD samples")
    check(Redis().cmd("EXISTS", "rl:{conc:hot}:0") == 0, "the lease set outlived its leases")

def expiry():
    redis, a, b = Redis(), Conn("a"), Conn("b")
    before = redis.time_us()
    r = a.call(ACQUIRE, b"short", b"k")
    after = redis.time_us()
    check(r["status"] == ALLOWED and r["lease"], f"ACQUIRE: {r}")
    members = redis.cmd("ZRANGE", "rl:{short:k}:0", 0, -1, "WITHSCORES")
    check(len(members) == 2 and members[0] == f"{r['lease']}:1", f"the set holds {members}")
    expires = int(members[1])
    check(before + 500000 <= expires <= after + 500000,
          f"expiry {expires} not Redis TIME at the ACQUIRE + 500 ms ({before}..{after})")
    # the set expires at its lease's end, rounded up to Redis's millisecond
    at_ms = redis.cmd("PEXPIRETIME", "rl:{short:k}:0")
    check(expires <= at_ms * 1000 < expires + 1000,
          f"the set expires at {at_ms} ms, its lease at {expires} us")
    d = b.call(ACQUIRE, b"short", b"k")
    check(d["status"] == DENIED and 0 < d["retry"] <= 500, f"the other daemon: {d}")
    while True:  # the slot stays taken until Redis's clock passes the expiry
        now = redis.time_us()
        d = b.call(ACQUIRE, b"short", b"k")
        if d["status"] == ALLOWED:
            break
        check(d["status"] == DENIED, f"ACQUIRE while held: {d}")
        check(now < expires, f"still denied at {now}, past the expiry {expires}")
        time.sleep(0.02)
    check(redis.time_us() >= expires, "the slot came back before the lease expired")
    print(f"expiry: the slot came back {(redis.time_us() - before) / 1000:.0f} ms after the "
          f"ACQUIRE (lease 500 ms)")
    u = a.call(RELEASE, b"short", b"k", 0, r["lease"])
    check(u["status"] == LEASE_UNKNOWN, f"RELEASE of the expired lease: {u}")
    check(b.call(RELEASE, b"short", b"k", 0, d["lease"])["status"] == ALLOWED, "RELEASE")

def ttl():
    redis, a, b = Redis(), Conn("a"), Conn("b")
    first = a.call(ACQUIRE, b"conc", b"ttl")
    time.sleep(0.3)
    latest = b.call(ACQUIRE, b"conc", b"ttl")
    check(first["status"] == ALLOWED and latest["status"] == ALLOWED, f"ACQUIREs: {first}, {latest}")
    scores = dict(zip(*[iter(redis.cmd("ZRANGE", "rl:{conc:ttl}:0", 0, -1, "WITHSCORES"))] * 2))
    ends = {lease: int(scores[f"{lease}:1"]) for lease in (first["lease"], latest["lease"])}
    check(a.call(RELEASE, b"conc", b"ttl", 0, latest["lease"])["status"] == ALLOWED, "RELEASE")
    now, ttl_ms = redis.time_us(), redis.cmd("PTTL", "rl:{conc:ttl}:0")
    # The set outlives the lease still held and is gone by the end of the latest lease
    # written to it (RELEASE leaves the TTL), at most lease (30 s) from its ACQUIRE (+ 1 ms:
    # the TTL ends at that lease's end rounded up to Redis's millisecond).
    check((ends[first["lease"]] - now) / 1000 <= ttl_ms <= 30001,
          f"TTL {ttl_ms} ms with the first lease ending in {(ends[first['lease']] - now) / 1000} ms")
    check(ttl_ms >= (ends[latest["lease"]] - now) / 1000 - 50,
          f"TTL {ttl_ms} ms: shortened below the latest lease's end "
          f"({(ends[latest['lease']] - now) / 1000} ms)")
    check(b.call(RELEASE, b"conc", b"ttl", 0, first["lease"])["status"] == ALLOWED, "RELEASE")
    check(redis.cmd("EXISTS", "rl:{conc:ttl}:0") == 0, "the set outlived its last lease's RELEASE")
    print(f"ttl: after releasing the latest lease the set's TTL is {ttl_ms} ms; gone with its last")

def down():
    a = Conn("a")
    r = a.call(ACQUIRE, b"c_allow", b"k")
    check(r["status"] == ALLOWED and r["flags"] & FALLBACK and r["lease"] == 0,
          f"allow while Redis is down: {r}")
    r = a.call(ACQUIRE, b"c_deny", b"k")
    check(r["status"] == DENIED and r["lease"] == 0, f"deny while Redis is down: {r}")
    r = a.call(ACQUIRE, b"c_local", b"k")
    check(r["status"] == ALLOWED and r["flags"] & FALLBACK and r["lease"],
          f"local while Redis is down: {r}")
    d = a.call(ACQUIRE, b"c_local", b"k")
    check(d["status"] == DENIED and d["flags"] & FALLBACK, f"local, a 2nd of 1: {d}")
    u = a.call(RELEASE, b"c_local", b"k", 0, r["lease"])
    check(u["status"] == ALLOWED, f"local RELEASE: {u}")
    print("down: allow, deny and local answered as configured")

def back():
    a, redis = Conn("a"), Redis()
    deadline = time.monotonic() + 15
    while True:
        r = a.call(ACQUIRE, b"c_deny", b"back")
        if r["status"] == ALLOWED and not r["flags"] & FALLBACK:
            break
        check(time.monotonic() < deadline, f"not decided by Redis after its restart: {r}")
        time.sleep(0.1)
    check(redis.cmd("ZCARD", "rl:{c_deny:back}:0") == 1, "no lease in the restarted Redis")

{"exact": exact, "expiry": expiry, "ttl": ttl, "down": down, "back": back}[mode]()
EOF
}

# ctl ARGS...: runs rlimitctl; sets OUT, ERR and RC.
ctl() {
    OUT=$("$RLIMITCTL" "$@" 2>"$WORK/ctl.err")
    RC=$?
    ERR=$(cat "$WORK/ctl.err")
}

# list_check WANT...: checks the --json listing in $OUT (policy, truncated, then each
# lease as KEY=ID=SLOTS, in any order) with every expires_in_ms in 1..LEASE_MS.
list_check() {
    printf '%s' "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.loads(sys.stdin.read())
policy, truncated, lease_ms, want = sys.argv[1], sys.argv[2] == "true", int(sys.argv[3]), sys.argv[4:]
got = sorted("%s=%s=%d" % (l["key"], l["lease"], l["slots"]) for l in doc["leases"])
bad = [l for l in doc["leases"] if not (0 < l["expires_in_ms"] <= lease_ms)
       or not isinstance(l["lease"], str)]
if doc["policy"] != policy or doc["truncated"] is not truncated or got != sorted(want) or bad:
    print(f"got {doc}, want {sorted(want)} truncated {truncated}")
    sys.exit(1)' "$@"
}

# listing: LEASES on the Redis store (plain commands, not the script): one key's
# leases, every key of the policy (a policy name Redis keys escape, a key holding : } *,
# another policy whose name starts the same left out), expired members left out (one
# written behind the script's back, one that ran out on Redis's clock), a cap of 1000
# with truncated, unknown key and empty policy.
listing() {
    local a="unix:$WORK/a.sock" b="unix:$WORK/b.sock" p='ls:t{1}' l1 l2 l3 lo
    l1=$("$RLIMITCTL" -s "$a" acquire "$p" k1 -n 2) || fail "acquire 1"
    l2=$("$RLIMITCTL" -s "$b" acquire "$p" k1) || fail "acquire 2"
    l3=$("$RLIMITCTL" -s "$a" acquire "$p" 'a:b}c*') || fail "acquire 3"
    lo=$("$RLIMITCTL" -s "$a" acquire ls k1) || fail "acquire on the other policy"
    rcli ZADD 'rl:{ls%3At%7B1%7D:k1}:0' "$(( $(rcli TIME | head -1) * 1000000 - 1000 ))" 77:1 \
        >/dev/null
    ctl -s "$a" --json leases "$p" k1
    [ "$RC" = 0 ] || fail "leases KEY: exit $RC ($ERR)"
    list_check "$p" false 30000 "k1=$l1=2" "k1=$l2=1" || fail "leases KEY lists its two leases"
    ctl -s "$b" --json leases "$p"
    [ "$RC" = 0 ] || fail "leases POLICY: exit $RC ($ERR)"
    list_check "$p" false 30000 "k1=$l1=2" "k1=$l2=1" "a:b}c*=$l3=1" ||
        fail "leases POLICY lists all three, not the expired one nor policy ls"
    ctl -s "$a" --json leases ls
    list_check ls false 30000 "k1=$lo=1" || fail "leases of policy ls: its one lease"
    ctl -s "$a" --json leases "$p" nokey
    list_check "$p" false 30000 || fail "leases of a key with none: empty"
    ctl -s "$a" --json leases ls_short
    list_check ls_short false 300 || fail "leases of a policy with none: empty"
    ctl -s "$a" leases "$p" k1
    [ "$RC" = 0 ] && [ "$(printf '%s\n' "$OUT" | grep -c "^k1 ")" = 2 ] ||
        fail "leases KEY as a table: $OUT"
    # A lease that ran out on Redis's clock is not listed (nothing trimmed it).
    local ls
    ls=$("$RLIMITCTL" -s "$a" acquire ls_short k) || fail "acquire ls_short"
    ctl -s "$a" --json leases ls_short k
    list_check ls_short false 300 "k=$ls=1" || fail "the short lease while held"
    local i
    for i in $(seq 1 100); do
        ctl -s "$a" --json leases ls_short
        list_check ls_short false 300 2>/dev/null >/dev/null && break
        sleep 0.02
    done
    list_check ls_short false 300 || fail "the short lease still listed after 2 s"
    # More than 1000: 1000 listed, truncated; every key's too.
    local now args=() n
    now=$(( $(rcli TIME | head -1) * 1000000 + 60000000 ))
    for n in $(seq 1 1001); do args+=("$now" "$n:1"); done
    rcli ZADD 'rl:{big:k}:0' "${args[@]}" >/dev/null
    ctl -s "$a" --json leases big k
    [ "$(printf '%s' "$OUT" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["leases"]), d["truncated"])')" = "1000 True" ] ||
        fail "1001 leases on one key: ${OUT:0:200}"
    ctl -s "$a" --json leases big
    [ "$(printf '%s' "$OUT" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["leases"]), d["truncated"])')" = "1000 True" ] ||
        fail "1001 leases on the policy: ${OUT:0:200}"
    "$RLIMITCTL" -s "$a" release "$p" k1 "$l1" >/dev/null || fail "release 1"
    ctl -s "$a" --json leases "$p" k1
    list_check "$p" false 30000 "k1=$l2=1" || fail "leases KEY after a release"
    [ "$FAILED" = 0 ] && echo "listing: one key, every key, expired left out, 1000 and truncated"
}

# listing_down: LEASES while Redis is down is a clear error.
listing_down() {
    local p
    for p in "ls k1" "ls"; do
        # shellcheck disable=SC2086
        ctl -s "unix:$WORK/a.sock" leases $p
        [ "$RC" = 2 ] || fail "leases $p with Redis down: exit $RC, want 2"
        printf '%s' "$ERR" | grep -q STORE_UNAVAILABLE ||
            fail "leases $p with Redis down: no STORE_UNAVAILABLE in '$ERR'"
    done
    [ "$FAILED" = 0 ] && echo "listing down: exit 2, STORE_UNAVAILABLE"
}

redis_start || exit 1
CONFIG='{"listen": ["unix:@SOCK@"],
 "store": {"type": "redis", "url": "'$REDIS_URL'", "command_timeout_ms": 1000},
 "policies": {
  "conc": {"algorithm": "concurrency", "limit": 5, "lease": "30s"},
  "ls:t{1}": {"algorithm": "concurrency", "limit": 5, "lease": "30s"},
  "ls": {"algorithm": "concurrency", "limit": 5, "lease": "30s"},
  "ls_short": {"algorithm": "concurrency", "limit": 1, "lease": "300ms"},
  "big": {"algorithm": "concurrency", "limit": 10000, "lease": "30s"},
  "short": {"algorithm": "concurrency", "limit": 1, "lease": "500ms"},
  "c_allow": {"algorithm": "concurrency", "limit": 1, "lease": "10s", "on_store_error": "allow"},
  "c_deny": {"algorithm": "concurrency", "limit": 1, "lease": "10s", "on_store_error": "deny"},
  "c_local": {"algorithm": "concurrency", "limit": 1, "lease": "10s", "on_store_error": "local"}}}'

daemon_start a "$CONFIG" || fail "daemon a did not start"
daemon_start b "$CONFIG" || fail "daemon b did not start"

echo "== exact: 32 clients, 2 daemons, limit 5"
leases exact "$WORK" "$REDIS_PORT" || fail "exact"
echo "== expiry: a lease never released ends after lease, on Redis's clock"
leases expiry "$WORK" "$REDIS_PORT" || fail "expiry"
echo "== ttl: the set's TTL covers its leases; RELEASE leaves it; the last RELEASE removes the set"
leases ttl "$WORK" "$REDIS_PORT" || fail "ttl"
echo "== listing: rlimitctl leases on the Redis store"
listing
echo "== down: redis killed, each on_store_error"
redis_stop -9
leases down "$WORK" "$REDIS_PORT" || fail "down"
listing_down
redis_restart || fail "redis-server did not start again"
leases back "$WORK" "$REDIS_PORT" || fail "back"
daemon_stop a
daemon_stop b

if [ "$FAILED" != 0 ]; then
    echo "test_leases_redis: FAILED"
    exit 1
fi
echo "test_leases_redis: ok"
