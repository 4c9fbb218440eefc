#!/usr/bin/env bash
# Fault test: clients that misbehave, while a well-behaved client keeps pipelining.
#
#   - 500 connections go away mid-frame (half a header, half a body, a large frame
#     announced and abandoned, answers owed to a closed peer, half-close after ten frames:
#     those ten answers must still arrive);
#   - 20 connections send 1.4 MB of requests each and never read: each is dropped once
#     its unsent answers pass max_output; RSS measured before, at the peak, after;
#   - 20 slowloris connections send one byte a second and never complete a frame: the
#     others must still be served, and the daemon must close them (idle_timeout 2 s);
#   - 20 connections send requests whose answers stay under max_output, then go silent
#     without reading: the daemon must not hold their answers forever;
#   - meanwhile the load client got exactly one answer per request (by id), and the
#     daemon's STATS counters moved by exactly what it received.
#
# Under RLIMITD_WRAPPER (valgrind) the connection counts are scaled down (printed).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh

MIDFRAME=500 STALLERS=20 SLOWLORIS=20
if [ -n "$RLIMITD_WRAPPER" ]; then
    MIDFRAME=100 STALLERS=8 SLOWLORIS=8
    echo "under RLIMITD_WRAPPER: scaled down to $MIDFRAME mid-frame, $STALLERS never-reading," \
        "$SLOWLORIS slowloris connections"
fi

CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "limits": {"max_pending": 1024, "max_output": 1048576, "max_connections": 4000,
            "idle_timeout": "2s"},
 "policies": {
  "big": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"},
  "load": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"}}}'
daemon_start d "$CONFIG"
PID=${DPID[d]}
RSS_START=$(rlload rss "$PID")

rlload load --address "${SOCK[d]}" --connections 2 --depth 16 --rate 1000 --spec load:50 \
    --stop-file "$WORK/stop" --ready-file "$WORK/ready" --check-stats \
    --out "$WORK/load.json" >"$WORK/load.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 1500); do [ -e "$WORK/ready" ] && break; sleep 0.02; done

echo "-- mid-frame disconnects ($MIDFRAME connections)"
rlload midframe --address "${SOCK[d]}" --pid "$PID" --policy big --connections "$MIDFRAME" ||
    check_failed "mid-frame disconnects"

echo "-- never-reading clients over max_output ($STALLERS connections, 1 MiB max_output)"
rlload stall --address "${SOCK[d]}" --pid "$PID" --policy big --connections "$STALLERS" \
    --requests 40000 --hold 10 --expect-dropped all \
    --max-peak-kb $((RSS_STRICT * STALLERS * 4096)) --max-after-kb $((RSS_STRICT * 65536)) \
    --why "over max_output: each must be dropped" ||
    check_failed "never-reading clients over max_output"

echo "-- slowloris ($SLOWLORIS connections, one byte a second, idle_timeout 2 s)"
rlload slowloris --address "${SOCK[d]}" --connections "$SLOWLORIS" --interval 1 --duration 8 \
    --expect-closed-within 6 ||
    check_failed "slowloris connections are never closed (no frame-completion bound)"

echo "-- silent clients owing answers under max_output ($STALLERS connections, idle_timeout 2 s)"
rlload stall --address "${SOCK[d]}" --pid "$PID" --policy big --connections "$STALLERS" \
    --requests 20000 --hold 8 --expect-dropped all --max-after-kb $((RSS_STRICT * 65536)) \
    --why "no write progress for 4 x idle_timeout" ||
    check_failed "connections that stop reading with answers owed are held forever"

touch "$WORK/stop"
if ! wait "$LOAD"; then
    cat "$WORK/load.out"
    check_failed "the well-behaved load client lost, duplicated or miscounted answers"
else
    "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1]));
print("load client: %d sent, %d answered, %d lost, %d duplicated; STATS moved by %s" % (
    d["sent"], d["answered"], d["lost"], d["duplicates"], d["stats_deltas"]["load"]["allowed"]))' \
        "$WORK/load.json"
fi

rlload ping "${SOCK[d]}" >/dev/null || check_failed "the daemon does not answer PING at the end"
RSS_END=$(rlload rss "$PID")
echo "RSS: start ${RSS_START} kB, end ${RSS_END} kB"
if [ "$RSS_STRICT" = 1 ] && [ "$RSS_END" -gt $((RSS_START + 65536)) ]; then
    check_failed "RSS at the end (${RSS_END} kB) is more than 64 MiB above the start (${RSS_START} kB)"
fi
daemon_stop d
fault_finish test_fault_clients
