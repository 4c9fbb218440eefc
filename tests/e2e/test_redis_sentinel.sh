#!/usr/bin/env bash
# The Redis store behind Redis Sentinel (issue 13, point 5): a master, its replica and 3
# Sentinels (tests/support/sentinel.sh), each with a password (the Sentinels' own and the
# master's differ, so both sets of credentials are exercised). One daemon, configured
# with the Sentinels only:
#   - resolves the master at startup (STATS: mode sentinel, the master's address) and
#     admits exactly the limit per key;
#   - with a Sentinel address that refuses connections listed first, still starts;
#   - under load, the master is killed (SIGKILL): every request is answered (from Redis,
#     or by on_store_error within command_timeout_ms: flag FALLBACK), the daemon follows
#     the promoted replica without a restart (logged once), and the time from the kill
#     to the first answer decided by the new master is printed;
#   - counts are exact again afterwards on new keys.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
# shellcheck source=tests/support/sentinel.sh
. tests/support/sentinel.sh
watchdog 120

for example in conf/redis/sentinel.json conf/redis/cluster.json; do
    if $RLIMITD_WRAPPER "$RLIMITD" --check-config -c "$example" >/dev/null; then
        ok "the example $example loads"
    else
        fail "the example $example does not load"
    fi
done

export SENTINEL_PASSWORD=sentinel-secret-1 SENTINEL_MASTER_PASSWORD=master-secret-2
sentinel_start || { fail "could not start the sentinel set"; finish; }
trap 'sentinel_cleanup; cleanup' EXIT

DEAD_PORT=$(free_port)
NODES=$("$PYTHON" -c 'import json, sys; print(json.dumps(["127.0.0.1:" + sys.argv[1]] + json.loads(sys.argv[2])))' \
    "$DEAD_PORT" "$SENTINEL_NODES_JSON")
CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "password": "'$SENTINEL_MASTER_PASSWORD'", "command_timeout_ms": 500,
           "connect_timeout_ms": 300,
           "sentinel": {"master": "mymaster", "nodes": '$NODES', "password": "'$SENTINEL_PASSWORD'"}},
 "policies": {
  "fw": {"algorithm": "fixed_window", "limit": 7, "period": "1h", "on_store_error": "deny"},
  "tb": {"algorithm": "token_bucket", "limit": 5, "period": "600s", "burst": 5,
         "on_store_error": "allow"}}}'
daemon_start s "$CONFIG"
SOCK_S=${SOCK[s]}

store_json() {
    "$RLIMITCTL" -s "$SOCK_S" -t 5000 stats --json | "$PYTHON" -c 'import json, sys
s = json.load(sys.stdin)["store"]
print(s.get("mode"), s.get("state"), s.get("sentinel", {}).get("master"), s.get("sentinel", {}).get("switches"))'
}
expect_eq "startup: mode, state, master" "sentinel up 127.0.0.1:$SENTINEL_MASTER_PORT 0" "$(store_json)"

# exact_counts PREFIX: 40 keys x (limit + 3) checks on each policy; prints allowed counts.
exact_counts() {
    "$PYTHON" - "$SOCK_S" "$1" <<'PY'
import sys
sys.path.insert(0, "clients/python")
from rlimit import Client
c = Client(sys.argv[1], timeout=5.0)
out = []
for policy, limit in (("fw", 7), ("tb", 5)):
    bad = 0
    for k in range(40):
        allowed = sum(c.check(policy, f"{sys.argv[2]}-{k}").allowed for _ in range(limit + 3))
        bad += allowed != limit
    out.append(f"{policy}:{bad}")
print(" ".join(out))
PY
}
expect_eq "before the failover: every key admitted exactly its limit" "fw:0 tb:0" "$(exact_counts before)"

# Load during the failover: one client, one CHECK at a time on fresh keys of fw (deny
# on store errors), each answer's time and source recorded until the stop file appears.
"$PYTHON" - "$SOCK_S" "$DIR/stop" "$DIR/load.json" <<'PY' &
import json, os, sys, time
sys.path.insert(0, "clients/python")
from rlimit import Client
c = Client(sys.argv[1], timeout=5.0)
rows, i = [], 0
while not os.path.exists(sys.argv[2]):
    t0 = time.monotonic()
    d = c.check("fw", f"load-{i}")
    rows.append([time.time(), time.monotonic() - t0, d.allowed, d.fallback])
    i += 1
    time.sleep(0.002)
json.dump(rows, open(sys.argv[3], "w"))
PY
LOAD_PID=$!
sleep 0.5
KILLED_AT=$(date +%s.%N)
sentinel_kill_master
sentinel_wait_switch 30 || fail "the Sentinels did not promote the replica"
wait_for 30 sh -c "[ \"\$(\"$RLIMITCTL\" -s \"$SOCK_S\" -t 5000 stats --json | grep -c '127.0.0.1:$SENTINEL_REPLICA_PORT')\" -gt 0 ]" ||
    fail "the daemon did not follow the new master"
sleep 1
touch "$DIR/stop"
wait "$LOAD_PID"

"$PYTHON" - "$DIR/load.json" "$KILLED_AT" <<'PY' >"$DIR/load.txt"
import json, sys
rows, killed = json.load(open(sys.argv[1])), float(sys.argv[2])
after = [r for r in rows if r[0] > killed]
fallback = [r for r in after if r[3]]
redis_again = [r for r in after if not r[3] and r[2]]
first_back = next((r[0] for r in after if not r[3] and r[0] > max([f[0] for f in fallback] or [killed])), None)
slowest = max(r[1] for r in rows)
print(f"answers {len(rows)} after_kill {len(after)} fallback {len(fallback)} "
      f"slowest_ms {slowest * 1000:.0f} "
      f"follow_ms {(first_back - killed) * 1000 if first_back else -1:.0f} "
      f"fallback_allowed {sum(1 for r in fallback if r[2])}")
PY
LOAD=$(cat "$DIR/load.txt")
echo "    load: $LOAD"
SLOWEST=$(echo "$LOAD" | sed -n 's/.*slowest_ms \([0-9]*\).*/\1/p')
FOLLOW=$(echo "$LOAD" | sed -n 's/.*follow_ms \(-\?[0-9]*\).*/\1/p')
LIMIT_MS=1500
[ -n "$RLIMITD_WRAPPER" ] && LIMIT_MS=6000
if [ "${SLOWEST:-99999}" -le "$LIMIT_MS" ]; then
    ok "every answer within ${LIMIT_MS} ms (command_timeout_ms 500 + scheduling; slowest ${SLOWEST} ms)"
else
    fail "an answer took ${SLOWEST} ms"
fi
expect_match "answers from the new master after the failover (time to follow: ${FOLLOW} ms)" \
    '^[0-9]+$' "$FOLLOW"
expect_match "fallback answers during the outage deny (on_store_error deny)" \
    'fallback_allowed 0$' "$LOAD"
expect_eq "after: mode, state, the new master, one switch" \
    "sentinel up 127.0.0.1:$SENTINEL_REPLICA_PORT 1" "$(store_json)"
SWITCH_LINES=$(grep -c "master mymaster is now 127.0.0.1:$SENTINEL_REPLICA_PORT" "$(daemon_log s)")
expect_eq "the switch is logged once" "1" "$SWITCH_LINES"
expect_eq "after the failover: every new key admitted exactly its limit" "fw:0 tb:0" \
    "$(exact_counts after)"
daemon_stop s
finish
