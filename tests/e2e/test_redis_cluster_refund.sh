#!/usr/bin/env bash
# A MULTI_CHECK over two masters of a Redis Cluster whose second item is refused gives
# back what its first item consumed (daemon/redis_split.c), and only what still counts
# (issue 13, point 3: never over-admit):
#   - at once: the first key has its whole limit again (exact give-back);
#   - late: the first part is decided near the end of a 1 s fixed window W1 while the
#     second is held up by a 400 ms busy script on its master; W2 fills with 5 plain
#     CHECKs of the first key before the MULTI_CHECK is answered DENIED; the give-back
#     must not take a unit off W2 (it did while it was an ADJUST -cost: 6 admitted in a
#     limit-5 window). The bound is checked whatever the timing turned out to be.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
# shellcheck source=tests/support/cluster.sh
. tests/support/cluster.sh
watchdog 90
cluster_start 3 0 || { fail "could not start the cluster"; finish; }
trap 'cluster_cleanup; cleanup' EXIT

daemon_start r '{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "cluster": '"$CLUSTER_URLS_JSON"', "command_timeout_ms": 3000},
 "policies": {
  "fw": {"algorithm": "fixed_window", "limit": 5, "period": "1s", "on_store_error": "deny"},
  "fwh": {"algorithm": "fixed_window", "limit": 5, "period": "1h", "on_store_error": "deny"},
  "hard": {"algorithm": "fixed_window", "limit": 1, "period": "1h", "on_store_error": "deny"}}}'

"$PYTHON" - "${SOCK[r]}" "${CLUSTER_MASTER_PORTS[0]}" >"$DIR/refund.txt" 2>&1 <<'PY'
import subprocess, sys, threading, time
sys.path.insert(0, "tests/tools")
import rlcluster as rc
import rlwire as w

addr, port0 = sys.argv[1], int(sys.argv[2])
owners = rc.slot_owners(port0)
tag = "%d" % (time.time() * 1000)

def other_master(policy, key, hard_prefix):
    for i in range(1000):
        cand = "%s%s_%d" % (hard_prefix, tag, i)
        if owners[rc.item_slot("hard", cand)] != owners[rc.item_slot(policy, key)]:
            return cand
    raise SystemExit("no key on another master")

A, B = w.Client(addr), w.Client(addr)
# 1. At once: fwh:b allowed, hard:y refused -> DENIED, and fwh:b has its 5 units again.
b = "b" + tag
y = other_master("fwh", b, "y")
print("exhaust", B.check("hard", y).status_name)
print("immediate", A.call(rc.multi_frame([("fwh", b), ("hard", y)])).status_name)
print("after_immediate", sum(B.check("fwh", b).status_name == "ALLOWED" for _ in range(7)))
# 2. Late: see the header.
a = "a" + tag
z = other_master("fw", a, "z")
zport = owners[rc.item_slot("hard", z)]
B.check("hard", z)
time.sleep((1 - time.time() % 1) + 0.85)
busy = subprocess.Popen(["redis-cli", "-p", str(zport), "EVAL",
    "local t0=redis.call('TIME') local s=t0[1]*1e6+t0[2] while true do "
    "local t=redis.call('TIME') if t[1]*1e6+t[2]-s > 400000 then break end end return 1", "0"],
    stdout=subprocess.DEVNULL)
time.sleep(0.03)
res = {}
th = threading.Thread(target=lambda: res.setdefault("m", A.call(rc.multi_frame([("fw", a), ("hard", z)]))))
th.start()
time.sleep((1 - time.time() % 1) + 0.05)
w2 = int(time.time())
got = [(B.check("fw", a).status_name, int(time.time())) for _ in range(5)]
th.join()
busy.wait()
time.sleep(0.05)
more = [(B.check("fw", a).status_name, int(time.time())) for _ in range(3)]
admitted = sum(1 for st, sec in got + more if st == "ALLOWED" and sec == w2)
print("late", res["m"].status_name, "admitted_in_w2", admitted)
PY
cat "$DIR/refund.txt"
expect_match "a refused MULTI_CHECK answers DENIED" '^immediate DENIED$' "$(cat "$DIR/refund.txt")"
expect_match "its allowed part is given back whole at once (5 of 7 allowed after)" \
    '^after_immediate 5$' "$(cat "$DIR/refund.txt")"
expect_match "a late give-back takes nothing from the next window (at most 5 admitted)" \
    '^late DENIED admitted_in_w2 [0-5]$' "$(cat "$DIR/refund.txt")"
daemon_stop r
finish
