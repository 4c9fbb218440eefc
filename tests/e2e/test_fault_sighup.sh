#!/usr/bin/env bash
# Fault test: a SIGHUP storm during pipelined load.
#
# 50 SIGHUPs in about 3 s while 4 connections pipeline CHECKs. Before each signal the
# config file is replaced (atomically) by one of two versions: B changes policy `flip`
# (its state is forgotten), adds a policy and a second listener; A takes them away
# again. Policy `steady` is the same in both, so its counter must survive every reload:
# the load sends more than its limit on one key, and exactly `limit` must be admitted (a
# sliding log: a fixed window of 1 h rolls over at the top of the hour, and a run across
# it admitted twice the limit once).
# Then a final config with a new policy `final` is loaded and must be in force.
#
# Asserts: every request got exactly one answer (by id), STATS counters moved by what
# the client received, no crash, no refused reload, the daemon answers, the final
# config is in force (and the removed listener's socket is gone), RSS bounded.
#
# Part 2 does a smaller storm on a Redis-backed daemon while Redis is paused now and
# then, so that answers are in flight across reloads; the same exactly-once and STATS
# assertions apply.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh

RATE=4000 STEADY_LIMIT=2000 SIGNALS=50 GAP=0.06
if [ -n "$RLIMITD_WRAPPER" ]; then
    RATE=800 STEADY_LIMIT=400
    echo "under RLIMITD_WRAPPER: scaled down to $RATE requests/s, steady limit $STEADY_LIMIT"
fi

config() { # extra-listener extra-policies flip-limit
    cat <<EOF
{"listen": ["unix:@DIR@/rlimitd.sock"$1],
 "policies": {
  "steady": {"algorithm": "sliding_window_log", "limit": $STEADY_LIMIT, "period": "1h"},
  "flip": {"algorithm": "token_bucket", "limit": $3, "period": "1s"}$2}}
EOF
}
CONFIG_A=$(config "" "" 100)
CONFIG_B=$(config ', "unix:@DIR@/extra.sock"' \
    ', "b_only": {"algorithm": "gcra", "limit": 10, "period": "1s"}' 200)
CONFIG_FINAL=$(config "" ', "final": {"algorithm": "fixed_window", "limit": 7, "period": "1h"}' 100)

daemon_start d "$CONFIG_A"
PID=${DPID[d]}
RSS_START=$(rlload rss "$PID")

rlload load --address "${SOCK[d]}" --connections 4 --depth 32 --rate "$RATE" \
    --spec steady:1 --spec flip:10 --stop-file "$WORK/stop" --ready-file "$WORK/ready" \
    --check-stats --expect '*:steady:status=ALLOWED|DENIED' \
    --expect '*:flip:status=ALLOWED|DENIED' --out "$WORK/load.json" >"$WORK/load.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 1500); do [ -e "$WORK/ready" ] && break; sleep 0.02; done
sleep 0.5

echo "-- $SIGNALS SIGHUPs, ${GAP}s apart, alternating two configs"
for i in $(seq 1 "$SIGNALS"); do
    if [ $((i % 2)) = 1 ]; then
        daemon_reconfig d "$CONFIG_B"
    else
        daemon_reconfig d "$CONFIG_A"
    fi
    kill -HUP "$PID" 2>/dev/null || break
    sleep "$GAP"
done
RSS_STORM=$(rlload rss "$PID")
sleep 0.5
daemon_reconfig d "$CONFIG_FINAL"
kill -HUP "$PID"
FINAL=no
for _ in $(seq 1 600); do
    if "$PYTHON" - "${SOCK[d]}" <<'PY' 2>/dev/null; then
import sys
sys.path.insert(0, "tests/tools")
import rlwire as w
with w.Client(sys.argv[1]) as c:
    names = [p["name"] for p in c.admin(w.POLICIES)["policies"]]
sys.exit(0 if "final" in names and "b_only" not in names else 1)
PY
        FINAL=yes
        break
    fi
    sleep 0.1
done
touch "$WORK/stop"
if ! wait "$LOAD"; then
    cut -c1-3000 "$WORK/load.out"
    check_failed "the load during the SIGHUP storm lost, duplicated or miscounted answers"
fi
kill -0 "$PID" 2>/dev/null || check_failed "the daemon died during the SIGHUP storm"
[ "$FINAL" = yes ] || check_failed "the final config is not in force 60 s after its SIGHUP"

LOG=$(daemon_log d)
RELOADED=$(grep -c "reloaded" "$LOG")
REFUSED=$(grep -c "reload refused" "$LOG")
[ "$REFUSED" = 0 ] || check_failed "$REFUSED reloads were refused: $(grep 'reload refused' "$LOG" | head -3)"
[ "$RELOADED" -ge 2 ] || check_failed "only $RELOADED reloads were logged"
[ ! -e "$WORK/d/extra.sock" ] || check_failed "the listener removed by the final config left its socket"

"$PYTHON" - "$WORK/load.json" "${SOCK[d]}" "$STEADY_LIMIT" <<'PY' || check_failed "after the storm"
import json, sys
sys.path.insert(0, "tests/tools")
import rlwire as w
load, address, limit = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
steady = load["phases"]["*"]["steady"]
print(f"load: {load['sent']} sent, {load['answered']} answered, {load['lost']} lost, "
      f"{load['duplicates']} duplicated; steady: {steady['status']}")
failures = []
admitted = steady["status"].get("ALLOWED", 0)
if steady["status"].get("DENIED", 0) == 0:  # a very slow machine: the limit was not reached
    print(f"note: the load sent only {steady['answers']} steady requests (limit {limit})")
    if admitted != steady["answers"]:
        failures.append(f"steady admitted {admitted} of {steady['answers']} under its limit")
elif admitted != limit:
    failures.append(f"steady admitted {admitted}, its limit is {limit}:"
                    " a reload lost (or duplicated) the counter of an unchanged policy")
with w.Client(address) as c:
    final = c.check("final", "k")
    stats = c.admin(w.STATS)
if final.status_name != "ALLOWED" or final.limit != 7 or final.remaining != 6:
    failures.append(f"policy final answers {final}")
print(f"STATS: reloads {stats['reloads']}, reload_failures {stats['reload_failures']}")
if stats["reload_failures"]:
    failures.append(f"{stats['reload_failures']} reload failures")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY
echo "reloads logged: $RELOADED of $((SIGNALS + 1)) SIGHUPs (signals sent close together may merge)"

RSS_END=$(rlload rss "$PID")
echo "RSS: start ${RSS_START} kB, after the storm ${RSS_STORM} kB, end ${RSS_END} kB"
if [ "$RSS_STRICT" = 1 ] && [ "$RSS_END" -gt $((RSS_START + 32768)) ]; then
    check_failed "RSS at the end (${RSS_END} kB) is more than 32 MiB above the start"
fi
daemon_stop d

# Part 2: the same storm on a Redis-backed daemon while Redis is paused now and then, so
# that answers are in flight across reloads (decided under the old config, answered under
# the new one): still exactly one answer each, and STATS must count every one of them.
echo "-- Redis store: 20 SIGHUPs while Redis is paused now and then (answers in flight)"
start_redis
redis_config() { # flip-limit
    cat <<EOF
{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "url": "$REDIS_URL", "command_timeout_ms": 500},
 "policies": {
  "steady": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"},
  "flip": {"algorithm": "token_bucket", "limit": $1, "period": "1s"}}}
EOF
}
daemon_start r "$(redis_config 1000)"
rm -f "$WORK/stop" "$WORK/ready"
rlload load --address "${SOCK[r]}" --connections 4 --depth 32 --rate "$RATE" \
    --spec steady:10 --spec flip:10 --stop-file "$WORK/stop" --ready-file "$WORK/ready" \
    --check-stats --out "$WORK/redis.json" >"$WORK/redis.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 1500); do [ -e "$WORK/ready" ] && break; sleep 0.02; done
for i in $(seq 1 20); do
    if [ $((i % 7)) = 1 ]; then
        rcli client pause 700 >/dev/null
    fi
    daemon_reconfig r "$(redis_config $((1000 + i % 2)))"
    kill -HUP "${DPID[r]}" 2>/dev/null || break
    sleep 0.15
done
sleep 1
touch "$WORK/stop"
if ! wait "$LOAD"; then
    cut -c1-1500 "$WORK/redis.out"
    check_failed "Redis store: answers in flight across reloads were lost, duplicated or not" \
        "counted in STATS"
else
    "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1]));
print("load: %d sent, %d answered; STATS moved as the client saw: %s" % (d["sent"], d["answered"],
      {p: (s["allowed"] + s["denied"], s["fallbacks"]) for p, s in d["stats_deltas"].items()}))' \
        "$WORK/redis.json"
fi
daemon_stop r
fault_finish test_fault_sighup
