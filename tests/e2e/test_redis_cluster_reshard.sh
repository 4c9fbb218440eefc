#!/usr/bin/env bash
# Redis Cluster, live resharding under load (issue 13): 4 daemons on a 3-master cluster,
# 32 clients per policy (spread over the daemons) hammer one hot key per algorithm
# (fixed_window, sliding_window_log, token_bucket, gcra: 50 per second) for 11.5 s while
# the slots of those keys move between masters and back (CLUSTER SETSLOT IMPORTING /
# MIGRATING, MIGRATE in batches of 10 keys with pauses, so that each hot key is served by
# the source, the target or both for about a second: each slot carries 100 filler keys).
# tests/tools/rlaccuracy.py checks the bound of each algorithm as test_accuracy_redis does
# (the sliding log read from Redis, following the key's slot), that no admission came from
# the fallback and that every request got exactly one answer. Over-counting during a
# migration is allowed; over-admission never. The daemons' stats must show the redirects.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
# shellcheck source=tests/support/cluster.sh
. tests/support/cluster.sh
# shellcheck source=tests/e2e/accuracy_daemons.sh
. tests/e2e/accuracy_daemons.sh
trap 'cleanup; cluster_cleanup' EXIT
watchdog 100
cluster_start || {
    fail "the cluster did not start"
    finish
}
DAEMONS=4 CLIENTS=32 FILLER=100
accuracy_start "$DAEMONS" '{"type": "redis", "cluster": '"$CLUSTER_URLS_JSON"'}'

# The hot keys' slots, each filled with FILLER keys of its hash tag (so that a move takes
# a while), and the master each starts on.
declare -A SLOT=() HOME_PORT=()
for p in fw swl tb gcra; do
    SLOT[$p]=$(cluster_keyslot "rl:{$p:hot}:0")
    HOME_PORT[$p]=$(cluster_owner_port "${SLOT[$p]}")
    args=()
    for n in $(seq 1 $FILLER); do
        args+=("{$p:hot}filler:$n" x)
    done
    expect_eq "$p: filler keys in slot ${SLOT[$p]}" OK \
        "$(cluster_cli "${HOME_PORT[$p]}" mset "${args[@]}")"
done

# Another master than PORT.
other_master() {
    local port
    for port in "${CLUSTER_MASTER_PORTS[@]}"; do
        [ "$port" != "$1" ] && echo "$port" && return
    done
}

# The mover: after 1 s of load, each hot slot to another master, then each back; every
# move logged to $DIR/moves.
mover() {
    sleep 1
    local p
    for p in fw swl tb gcra; do
        cluster_move_slot_slowly "${SLOT[$p]}" "$(other_master "${HOME_PORT[$p]}")" 0.05 10 &&
            echo "$p away $(date +%s.%N)" >>"$DIR/moves"
    done
    for p in fw swl tb gcra; do
        cluster_move_slot_slowly "${SLOT[$p]}" "${HOME_PORT[$p]}" 0.05 10 &&
            echo "$p back $(date +%s.%N)" >>"$DIR/moves"
    done
}
mover 2>"$DIR/mover.err" &
MOVER=$!

"$PYTHON" tests/tools/rlaccuracy.py --addresses "$ADDRESSES" --redis-port "${CLUSTER_PORTS[0]}" \
    --clients "$CLIENTS" --duration 11.5 \
    "${ACCURACY_POLICIES[@]}" \
    >"$DIR/accuracy.json" 2>"$DIR/accuracy.err"
RC=$?
grep -v '^[ {}]' "$DIR/accuracy.json"
cat "$DIR/accuracy.err" >&2
if [ "$RC" != 0 ]; then
    cat "$DIR/accuracy.json"
    fail "over-admission (or lost answers) with $DAEMONS daemons while slots moved"
else
    ok "no over-admission, every request answered once, while slots moved"
fi
wait_for 60 bash -c "! kill -0 $MOVER 2>/dev/null" || fail "the slot moves did not end"
wait "$MOVER"
cat "$DIR/mover.err" >&2
expect_eq "slot moves done (4 away, 4 back)" 8 "$(wc -l <"$DIR/moves" 2>/dev/null || echo 0)"
cat "$DIR/moves"
for p in fw swl tb gcra; do
    expect_eq "$p: slot ${SLOT[$p]} back on its master" "${HOME_PORT[$p]}" \
        "$(cluster_owner_port "${SLOT[$p]}")"
done

# The redirects the daemons followed (summed), and no request lost in them.
SUMS=$(for i in $(seq 1 $DAEMONS); do
    "$RLIMITCTL" -s "${SOCK[a$i]}" stats --json
done | "$PYTHON" -c 'import json, sys
keys = ("moved", "ask", "tryagain", "redirected", "redirected_after_write", "redirects_exhausted")
total = dict.fromkeys(keys, 0)
for line in sys.stdin:
    c = json.loads(line)["store"]["cluster"]
    for k in keys:
        total[k] += c[k]
print(" ".join(f"{k}={v}" for k, v in total.items()))')
echo "redirects: $SUMS"
case $SUMS in
*"moved=0 ask=0 "*) fail "the daemons' stats show no MOVED and no ASK: $SUMS" ;;
*) ok "the daemons followed redirects: $SUMS" ;;
esac
expect_match "redirected requests counted" 'redirected=[1-9]' "$SUMS"

accuracy_stop "$DAEMONS" fail
finish
