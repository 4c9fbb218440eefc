#!/usr/bin/env bash
# Fault test: the Redis store fails under load.
#
# One daemon on a private redis-server (command_timeout_ms 500), three policies that
# differ only in on_store_error (fo_allow, fo_deny, fo_local), 4 pipelined connections
# spread over them. Four scenarios, each with its own load run:
#
#   kill     redis-server SIGKILLed for 1.2 s, then started again (empty, no scripts);
#   pause    CLIENT PAUSE 2200 (past command_timeout_ms); at its start one connection
#            pipelines 300 requests at once: past max_pending (64) they get BUSY;
#   sleep    DEBUG SLEEP 1.8 (Redis blocked entirely);
#   gone     while Redis is paused, clients send 10 CHECKs and close without reading (or
#            half-close and read): answers owed to departed clients must be dropped
#            safely (under ASan/valgrind: no use after free), half-closed ones answered;
#   restart  SCRIPT FLUSH + FLUSHALL under load (NOSCRIPT: reloaded transparently, no
#            fallback), then redis-server stopped and started again at once.
#
# While Redis is killed, a policy with on_store_error local and limit 3 admits 3 and
# denies the 4th and 5th request of a fresh key (the embedded store counts).
#
# Then SIGTERM while Redis is paused: every request the daemon has read must still be
# answered (with its fallback) before it closes the connection and exits cleanly.
#
# For each: every request got exactly one answer (matched by id) and the daemon's
# STATS counters moved by what the client received (decisions, FALLBACK answers);
# answers sent and received while Redis was down, paused or asleep all carry FALLBACK
# with each policy's answer (allow: ALLOWED, deny: DENIED, local: decided locally);
# once the store reports every connection ready again, no answer carries FALLBACK, and
# a policy that denies on store errors admits on a fresh key with its counter in Redis.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
start_redis

RATE=2000
if [ -n "$RLIMITD_WRAPPER" ]; then
    RATE=500
    echo "under RLIMITD_WRAPPER: scaled down to $RATE requests/s"
fi

CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "url": "'$REDIS_URL'", "command_timeout_ms": 500},
 "limits": {"max_pending": 64},
 "policies": {
  "fo_allow": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h",
               "on_store_error": "allow"},
  "fo_deny": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h",
              "on_store_error": "deny"},
  "fo_local": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h",
               "on_store_error": "local"},
  "local3": {"algorithm": "fixed_window", "limit": 3, "period": "1h",
             "on_store_error": "local"},
  "pend": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"},
  "probe": {"algorithm": "fixed_window", "limit": 1000, "period": "1h",
            "on_store_error": "deny"}}}'
daemon_start d "$CONFIG"
PID=${DPID[d]}
RSS_START=$(rlload rss "$PID")

# Starts a load run for scenario $1 in the background; its marks go to $WORK/$1.marks.
start_load() {
    rm -f "$WORK/stop" "$WORK/ready"
    rlload load --address "${SOCK[d]}" --connections 4 --depth 16 --rate "$RATE" \
        --spec fo_allow:20 --spec fo_deny:20 --spec fo_local:20 --key-prefix "$1-" \
        --stop-file "$WORK/stop" --ready-file "$WORK/ready" --check-stats \
        --marks "$WORK/$1.marks" "${@:2}" --out "$WORK/$1.json" >"$WORK/$1.out" 2>&1 &
    LOAD=$!
    for _ in $(seq 1 1500); do [ -e "$WORK/ready" ] && break; sleep 0.02; done
}

# Stops the load run of scenario $1 and checks its verdict.
finish_load() {
    touch "$WORK/stop"
    if ! wait "$LOAD"; then
        cut -c1-4000 "$WORK/$1.out"
        check_failed "$1: answers lost, duplicated, miscounted or with the wrong flags"
    fi
    "$PYTHON" - "$WORK/$1.json" "$1" <<'PY'
import json, sys
d, name = json.load(open(sys.argv[1])), sys.argv[2]
print(f"{name}: {d['sent']} sent, {d['answered']} answered, {d['lost']} lost, "
      f"{d['duplicates']} duplicated")
for phase, cells in d["phases"].items():
    if phase != "*":
        print(f"  {phase:>14}: " + "; ".join(f"{p} {c['answers']} {c['status']} {c['flags']}"
                                            for p, c in sorted(cells.items())))
print("  STATS moved: " + "; ".join(f"{p} allowed {s['allowed']} denied {s['denied']} "
                                   f"fallbacks {s['fallbacks']}"
                                   for p, s in sorted(d.get("stats_deltas", {}).items())))
PY
}

wait_back() { # scenario
    if ! rlload wait-store-up "${SOCK[d]}" --timeout 60 >/dev/null; then
        check_failed "$1: the store did not come back within 60 s"
    fi
    mark "$WORK/$1.marks" back
}

# Checks that Redis is used again: 3 CHECKs of a fresh key on a deny-on-error policy are
# admitted without FALLBACK, counting down, and the key's counter is in Redis.
redis_used() { # scenario
    "$PYTHON" - "${SOCK[d]}" "$1" <<'PY' || check_failed "$1: Redis is not used again"
import sys
sys.path.insert(0, "tests/tools")
import rlwire as w
with w.Client(sys.argv[1]) as c:
    got = [c.check("probe", f"after-{sys.argv[2]}") for _ in range(3)]
if [(a.status_name, a.flags, a.remaining) for a in got] != [("ALLOWED", 0, n) for n in (999, 998, 997)]:
    print("FAIL: probe answers", got)
    sys.exit(1)
PY
    if [ "$(rcli exists "rl:{probe:after-$1}:0")" != 1 ]; then
        check_failed "$1: the probe's counter is not in Redis"
    fi
}

# While Redis is down: a fresh key of a local-fallback policy of limit 3 is decided by the
# embedded store: 3 admitted, then denied, all with FALLBACK.
local_decides() {
    "$PYTHON" - "${SOCK[d]}" <<'PY' || check_failed "kill: the local fallback does not count"
import sys
sys.path.insert(0, "tests/tools")
import rlwire as w
with w.Client(sys.argv[1]) as c:
    got = [(a.status_name, a.flags) for a in (c.check("local3", "outage") for _ in range(5))]
print(f"local3 while Redis is down: {got}")
if got != [("ALLOWED", w.FALLBACK)] * 3 + [("DENIED", w.FALLBACK)] * 2:
    print("FAIL: expected 3 ALLOWED then 2 DENIED, all FALLBACK")
    sys.exit(1)
PY
}

DOWN_EXPECT=(--expect 'up:*:-FALLBACK,min=10' --expect 'back:*:-FALLBACK,min=10')
fallback_expect() { # phase
    echo --expect "$1:fo_allow:status=ALLOWED,+FALLBACK,min=5" \
        --expect "$1:fo_deny:status=DENIED,+FALLBACK,min=5" \
        --expect "$1:fo_local:status=ALLOWED,+FALLBACK,min=5"
}

echo "-- kill: redis-server SIGKILLed under load, restarted 1.2 s later"
: >"$WORK/kill.marks"
# shellcheck disable=SC2046
start_load kill "${DOWN_EXPECT[@]}" $(fallback_expect down)
mark "$WORK/kill.marks" up
sleep 0.6
mark "$WORK/kill.marks" killing
redis_stop -9
mark "$WORK/kill.marks" down
local_decides
sleep 1.2
mark "$WORK/kill.marks" restarting
redis_restart || check_failed "kill: redis-server did not restart"
wait_back kill
sleep 0.6
finish_load kill
redis_used kill

echo "-- pause: CLIENT PAUSE 2200 under load; max_pending 64 reached meanwhile"
: >"$WORK/pause.marks"
# shellcheck disable=SC2046
start_load pause "${DOWN_EXPECT[@]}" $(fallback_expect paused)
mark "$WORK/pause.marks" up
sleep 0.6
mark "$WORK/pause.marks" pausing
rcli client pause 2200 >/dev/null
mark "$WORK/pause.marks" paused
# (in the background: the marks must not move with the burst's own time on a busy machine)
rlload burst --address "${SOCK[d]}" --policy pend --count 300 --expect-busy-min 1 \
    >"$WORK/burst.json" &
BURST=$!
sleep 1.1
mark "$WORK/pause.marks" pause-ending
wait "$BURST" || check_failed "pause: max_pending was not answered with BUSY"
cat "$WORK/burst.json"
sleep 0.6
wait_back pause
sleep 0.6
finish_load pause
redis_used pause

echo "-- gone: 60 clients send 10 CHECKs each and close at once, Redis paused (answers owed)"
rcli client pause 1500 >/dev/null
rlload midframe --address "${SOCK[d]}" --pid "$PID" --policy pend --connections 60 --kinds 3,3,4 \
    --settle 2 >"$WORK/gone.json" || check_failed "gone: clients leaving with answers owed"
cut -c1-300 "$WORK/gone.json"
if ! kill -0 "$PID" 2>/dev/null; then
    check_failed "gone: the daemon died once the answers owed to departed clients came"
    grep -A12 "ERROR: AddressSanitizer" "$(daemon_log d)" >&2 || tail -40 "$(daemon_log d)" >&2
    fault_finish test_fault_redis
fi
rlload wait-store-up "${SOCK[d]}" --timeout 60 >/dev/null || check_failed "gone: store not back"

echo "-- sleep: DEBUG SLEEP 1.8 under load"
: >"$WORK/sleep.marks"
# shellcheck disable=SC2046
start_load sleep "${DOWN_EXPECT[@]}" $(fallback_expect asleep)
mark "$WORK/sleep.marks" up
sleep 0.6
mark "$WORK/sleep.marks" sleeping
rcli debug sleep 1.8 >/dev/null &
SLEEPER=$!
# "asleep" only once Redis is seen blocked (a PING unanswered for 0.2 s): on a loaded
# machine redis-cli may take longer than a fixed pause to send the DEBUG SLEEP, and the
# answers Redis still gave meanwhile are not fallbacks.
T0=$(date +%s%N)
for _ in $(seq 1 40); do
    timeout 0.2 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || break
done
mark "$WORK/sleep.marks" asleep
# waking 1.4 s after the DEBUG SLEEP was started (it lasts 1.8 s), at least 0.3 s asleep
ASLEEP_MS=$(((1400000000 - ($(date +%s%N) - T0)) / 1000000))
[ "$ASLEEP_MS" -lt 300 ] && ASLEEP_MS=300
sleep "$(printf '%d.%03d' $((ASLEEP_MS / 1000)) $((ASLEEP_MS % 1000)))"
mark "$WORK/sleep.marks" waking
wait "$SLEEPER"
wait_back sleep
sleep 0.6
finish_load sleep
redis_used sleep

echo "-- restart: SCRIPT FLUSH + FLUSHALL under load, then a restart with an empty dataset"
: >"$WORK/restart.marks"
NOSCRIPT_BEFORE=$(rlload stats "${SOCK[d]}" --path store.noscript_retries)
start_load restart --expect 'up:*:-FALLBACK,min=10' --expect 'flushed:*:-FALLBACK,min=10' \
    --expect 'back:*:-FALLBACK,min=10'
mark "$WORK/restart.marks" up
sleep 0.6
mark "$WORK/restart.marks" flushing
rcli script flush >/dev/null
rcli flushall >/dev/null
mark "$WORK/restart.marks" flushed
sleep 0.6
mark "$WORK/restart.marks" restarting
redis_stop ""
redis_restart || check_failed "restart: redis-server did not restart"
wait_back restart
sleep 0.6
finish_load restart
NOSCRIPT_AFTER=$(rlload stats "${SOCK[d]}" --path store.noscript_retries)
echo "NOSCRIPT retries: $NOSCRIPT_BEFORE before, $NOSCRIPT_AFTER after"
[ "$NOSCRIPT_AFTER" -gt "$NOSCRIPT_BEFORE" ] ||
    check_failed "restart: no NOSCRIPT retry counted after SCRIPT FLUSH"
KEYS=$(rcli --scan --pattern 'rl:*' | wc -l)
echo "Redis keys after the restart: $KEYS"
[ "$KEYS" -gt 0 ] || check_failed "restart: the daemon wrote nothing to the restarted Redis"
redis_used restart

rlload ping "${SOCK[d]}" >/dev/null || check_failed "the daemon does not answer PING at the end"
RSS_END=$(rlload rss "$PID")
echo "RSS: start ${RSS_START} kB, end ${RSS_END} kB"
if [ "$RSS_STRICT" = 1 ] && [ "$RSS_END" -gt $((RSS_START + 32768)) ]; then
    check_failed "RSS at the end (${RSS_END} kB) is more than 32 MiB above the start"
fi

echo "-- shutdown: SIGTERM while Redis is paused with requests in flight"
rm -f "$WORK/stop" "$WORK/ready"
rlload load --address "${SOCK[d]}" --connections 4 --depth 16 --rate "$RATE" \
    --spec fo_allow:20 --key-prefix shutdown- --stop-file "$WORK/stop" \
    --ready-file "$WORK/ready" --closing-ok >"$WORK/shutdown.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 1500); do [ -e "$WORK/ready" ] && break; sleep 0.02; done
sleep 0.5
rcli client pause 2000 >/dev/null
touch "$WORK/stop" # the load sends nothing more and waits for every answer
sleep 0.3          # the daemon has read every request: they wait for Redis
kill -TERM "$PID"
if ! wait "$LOAD"; then
    cut -c1-1500 "$WORK/shutdown.out"
    check_failed "shutdown: requests the daemon had read were not all answered before it closed"
fi
daemon_stop d --signalled
fault_finish test_fault_redis
