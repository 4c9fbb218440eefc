#!/usr/bin/env bash
# Redis Cluster, failover under load (issue 13): two daemons on a 3-master cluster (a
# replica each), command_timeout_ms 500, 8 clients in a closed loop over 200 keys of two
# policies, one with on_store_error deny and one with allow (tests/tools/rlcluster.py load).
# 1. kill -9 of a master: every request is answered once, none later than the timeout plus
#    slack (measured by the clients); answers fall back (DENIED+FALLBACK, ALLOWED+FALLBACK)
#    while the cluster is down, none before the kill; once the replica is promoted the
#    daemons' stats say up with 3 masters and no unowned slot, their logs name the new
#    master in their last "slot map changed" line (a few such lines, not one per request),
#    and no request sent after that falls back; fresh keys are then admitted exactly.
# 2. CLUSTER FAILOVER on a replica (graceful): the same load, no FALLBACK answer at all and
#    no answer past the bound; the daemons follow the new master.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
# shellcheck source=tests/support/cluster.sh
. tests/support/cluster.sh
trap 'cleanup; cluster_cleanup' EXIT
watchdog 100
cluster_start || {
    fail "the cluster did not start"
    finish
}
TIMEOUT_MS=500 SLACK_MS=300 GRACE_MS=300 CLIENTS=8
if [ -n "$RLIMITD_WRAPPER" ]; then
    SLACK_MS=2000 GRACE_MS=1500 CLIENTS=4
    echo "under RLIMITD_WRAPPER: slack ${SLACK_MS} ms past the timeout, $CLIENTS clients"
fi
CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "cluster": '$CLUSTER_URLS_JSON', "command_timeout_ms": '$TIMEOUT_MS'},
 "policies": {
  "d": {"algorithm": "fixed_window", "limit": 100000000, "period": "1h", "on_store_error": "deny"},
  "a": {"algorithm": "fixed_window", "limit": 100000000, "period": "1h", "on_store_error": "allow"},
  "e": {"algorithm": "fixed_window", "limit": 4, "period": "2h", "on_store_error": "deny"}}}'
daemon_start a "$CONFIG"
daemon_start b "$CONFIG"
ADDRESSES=${SOCK[a]},${SOCK[b]}

# True when both daemons' stats say: state up, 3 masters, no slot without a master, and
# their last slot map line names 127.0.0.1:$1.
daemons_follow() {
    local d fig
    for d in a b; do
        fig=$("$RLIMITCTL" -s "${SOCK[$d]}" stats --json 2>/dev/null | "$PYTHON" -c 'import json, sys
s = json.load(sys.stdin)["store"]
print(s["state"], s["cluster"]["masters"], s["cluster"]["slots_unowned"])' 2>/dev/null)
        [ "$fig" = "up 3 0" ] || return 1
        grep "slot map changed" "$(daemon_log "$d")" | tail -1 | grep -q "127.0.0.1:$1 " || return 1
    done
}

# start_load NAME: the closed-loop load in the background until $DIR/NAME.stop exists.
start_load() {
    "$PYTHON" tests/tools/rlcluster.py load --addresses "$ADDRESSES" --policy d --policy a \
        --keys 200 --clients "$CLIENTS" --duration 40 --until-file "$DIR/$1.stop" \
        --marks "$DIR/$1.marks" --max-latency-ms $((TIMEOUT_MS + SLACK_MS)) "${@:2}" \
        >"$DIR/$1.json" 2>"$DIR/$1.err" &
    LOAD=$!
}

# end_load NAME: stops the load, waits for it and judges its report.
end_load() {
    touch "$DIR/$1.stop"
    wait_for 60 bash -c "! kill -0 $LOAD 2>/dev/null" || fail "$1: the load did not stop"
    wait "$LOAD"
    local rc=$?
    cat "$DIR/$1.err" >&2
    if [ "$rc" != 0 ]; then
        cat "$DIR/$1.json" >&2
        fail "$1: see above"
    else
        ok "$1: $(tr -d ' \n' <"$DIR/$1.json" | cut -c1-600)"
    fi
}

# Requests per policy and status of a load's report: "policy:STATUS[+FALLBACK]=N ...".
load_counts() {
    "$PYTHON" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(f"{p}:{k}={v}" for p, c in sorted(r["per_policy"].items()) for k, v in sorted(c.items())))' "$DIR/$1.json"
}

# 1. kill -9 of a master.
VICTIM=${CLUSTER_MASTER_PORTS[0]}
start_load kill --clean-before kill --clean-after up:$GRACE_MS --min-after 50
sleep 1 # load on the healthy cluster first
mark "$DIR/kill.marks" kill
cluster_kill_master "$VICTIM"
# (not in $(...): cluster_wait_promoted updates CLUSTER_MASTER_PORTS)
cluster_wait_promoted "$VICTIM" 20 >"$DIR/promoted" || fail "no replica of $VICTIM took over"
NEW=$(cat "$DIR/promoted")
mark "$DIR/kill.marks" promoted
if wait_for $((WAIT_S + 10)) daemons_follow "$NEW"; then
    mark "$DIR/kill.marks" up
    ok "both daemons follow the promoted master 127.0.0.1:$NEW (stats up, 3 masters)"
else
    fail "the daemons did not follow the promoted master 127.0.0.1:$NEW"
    for d in a b; do tail -5 "$(daemon_log "$d")" >&2; done
fi
# load on the repaired cluster: the grace period, then 1.2 s counted (--min-after)
AFTER_MS=$((GRACE_MS + 1200))
sleep "$((AFTER_MS / 1000)).$(printf '%03d' $((AFTER_MS % 1000)))"
end_load kill
COUNTS=$(load_counts kill)
echo "kill: $COUNTS"
expect_match "kill: policy d fell back to deny" 'd:DENIED\+FALLBACK=[1-9]' "$COUNTS"
expect_match "kill: policy a fell back to allow" 'a:ALLOWED\+FALLBACK=[1-9]' "$COUNTS"
expect_no_match "kill: policy d never admitted by a fallback" 'd:ALLOWED\+FALLBACK' "$COUNTS"
for d in a b; do
    LINES=$(grep -c "slot map changed" "$(daemon_log "$d")")
    grep "slot map changed" "$(daemon_log "$d")" | sed "s/^/  $d: /"
    if [ "$LINES" -ge 2 ] && [ "$LINES" -le 4 ]; then
        ok "$d: the slot map change logged $LINES times in all (start, outage, promotion)"
    else
        fail "$d: \"slot map changed\" logged $LINES times (expected 2..4)"
    fi
done

# Fresh keys (new windows) are admitted exactly, on every master including the new one.
"$PYTHON" tests/tools/rlcluster.py exact --addresses "$ADDRESSES" --cluster-port "$NEW" \
    --policy e:4 --keys 300 --extra 2 --key-prefix-keys after >"$DIR/exact.json" 2>"$DIR/exact.err"
RC=$?
cat "$DIR/exact.err" >&2
if [ "$RC" = 0 ]; then ok "exact after the failover: $(tr -d ' \n' <"$DIR/exact.json" | cut -c1-300)"; else
    cat "$DIR/exact.json" >&2
    fail "counts after the failover are not exact"
fi

# 2. CLUSTER FAILOVER on the replica of another master.
OTHER=
for port in "${CLUSTER_MASTER_PORTS[@]}"; do
    [ "$port" != "$NEW" ] && OTHER=$port && break
done
REPLICA=$(_cluster_replicas_of "$OTHER" | head -1)
start_load graceful --clean-after start:0 --min-after 50
echo "start $(date +%s.%N)" >"$DIR/graceful.marks"
sleep 1 # load before the failover
cluster_failover "$REPLICA" || fail "CLUSTER FAILOVER on $REPLICA did not complete"
mark "$DIR/graceful.marks" promoted
wait_for $((WAIT_S + 10)) daemons_follow "$REPLICA" ||
    fail "the daemons did not follow 127.0.0.1:$REPLICA after CLUSTER FAILOVER"
sleep 1
end_load graceful
echo "graceful: $(load_counts graceful)"

for d in a b; do
    daemon_stop "$d"
done
finish
