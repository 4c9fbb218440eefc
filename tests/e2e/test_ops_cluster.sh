#!/usr/bin/env bash
# test_ops_cluster.sh: the operator's view of a daemon on a Redis Cluster (issue 13, point 6),
# on a private cluster of 3 masters with a replica each (tests/support/cluster.sh).
# `rlimitctl stats` shows the mode, the cluster's counters and a table of the nodes (address,
# role, slots, state, calls, items per call, latency); STATS (--json) has one object per
# node whose slots cover the 16384 slots and whose calls add up to the store's; /metrics has
# one family per node figure (HELP/TYPE once, samples together, node="..." label) agreeing
# with STATS on every number. A slot moved by hand shows as a MOVED redirect and in the
# nodes' slot counts; a CLUSTER FAILOVER shows the replica as a master with the slots and
# the old master as a replica without any.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
# shellcheck source=tests/support/cluster.sh
. tests/support/cluster.sh
trap 'cleanup; cluster_cleanup' EXIT
watchdog 90
cluster_start || {
    fail "the cluster did not start"
    finish
}

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "http:127.0.0.1:0"],
 "store": {"type": "redis", "cluster": $CLUSTER_URLS_JSON, "command_timeout_ms": 5000},
 "policies": {"api": {"algorithm": "fixed_window", "limit": 100, "period": "1h",
                      "on_store_error": "deny"}}}
JSON
start_daemon "$DIR/rlimitd.json"
PORT=$(http_port)
ADMIN="unix:$DIR/admin.sock"

# decide: one CHECK of each of the keys k1..k60 (their slots spread over the 3 masters).
decide() {
    local k
    for k in $(seq 1 60); do
        "$RLIMITCTL" -s "$ADMIN" check api "k$k" >/dev/null || fail "check api k$k"
    done
}

# view: STATS as JSON in $DIR/stats.json and /metrics in $DIR/metrics.txt, from one moment
# (no decision runs in between).
view() {
    ctl -s "$ADMIN" --json stats
    printf '%s' "$OUT" >"$DIR/stats.json"
    http "$PORT" /metrics | sed '1,/^$/d' >"$DIR/metrics.txt"
}

# settled: view and judge (into J) again, up to 4 s, until STATS and /metrics agree: the
# background work (a topology refresh after a MOVED, the periodic one) may move a counter
# between the two reads of one view.
settled() {
    local _
    for _ in $(seq 1 20); do
        view
        J=$(judge)
        printf '%s\n' "$J" | grep -Eq '^agree [0-9]+ differ 0$' && return 0
        sleep 0.2
    done
}

# judge: prints facts about the view, one per line, for expect_* to check.
judge() {
    "$PYTHON" - "$DIR/stats.json" "$DIR/metrics.txt" <<'PY'
import json, sys
store = json.load(open(sys.argv[1]))["store"]
text = open(sys.argv[2]).read().splitlines()
nodes = store.get("nodes", [])
print("mode", store["mode"])
masters = [n for n in nodes if n["role"] == "master"]
print("masters", len(masters), "up", sum(n["state"] == "up" for n in masters))
print("slots", sum(n["slots"] for n in nodes), "on replicas", sum(n["slots"] for n in nodes if n["role"] != "master"))
print("calls", "add up" if sum(n["calls"] for n in nodes) == store["calls"] else "differ")
print("masters with calls", sum(n["calls"] > 0 for n in masters))
print("node errors", sum(n["errors"] for n in nodes))
for n in nodes:
    print("node", n["node"], n["role"], n["slots"], n["state"])
# /metrics: the families of node figures, each with HELP/TYPE once and its samples together.
types = [l.split()[2] for l in text if l.startswith("# TYPE rlimitd_store_node_")]
print("node families", len(types), "distinct", len(set(types)))
samples = [l for l in text if l and l[0] != "#"]
runs, last = {}, None
for l in samples:
    family = l.split("{")[0].split(" ")[0]
    if family != last:
        runs[family] = runs.get(family, 0) + 1
        last = family
print("scattered families", sum(1 for f, r in runs.items() if r > 1))
values = {}
for l in samples:
    name, value = l.rsplit(" ", 1)
    values[name] = float(value)
agree = differ = 0
def check(name, want):
    global agree, differ
    if values.get(name) == float(want):
        agree += 1
    else:
        differ += 1
        print("differs", name, values.get(name), want)
for n in nodes:
    label = 'node="%s"' % n["node"]
    for k, v in n.items():
        if k == "node":
            continue
        if isinstance(v, dict):
            for g, w in v.items():
                check("rlimitd_store_node_%s_%s{%s}" % (k, g, label), w)
        elif isinstance(v, str):
            check('rlimitd_store_node_%s{%s,%s="%s"}' % (k, label, k, v), 1)
        elif k in ("calls", "errors"):
            check("rlimitd_store_node_%s_total{%s}" % (k, label), v)
        else:
            check("rlimitd_store_node_%s{%s}" % (k, label), v)
for k, v in store["cluster"].items():
    name = "rlimitd_store_cluster_" + k
    check(name + "_total" if name + "_total" in values else name, v)
print("agree", agree, "differ", differ)
print("moved", store["cluster"]["moved"])
PY
}

decide
ctl -s "$ADMIN" stats
expect_eq "stats: exit 0" 0 "$RC"
expect_match "stats: the store's mode" '^store redis: state up, mode cluster, ' "$OUT"
expect_match "stats: the redirect counters" \
    '^  cluster: masters 3, nodes 3, slots_unowned 0, moved 0, ask 0, tryagain 0, redirected 0, ' "$OUT"
expect_match "stats: the nodes' table" \
    '^  NODE +ROLE +SLOTS +STATE +CALLS +ITEMS/CALL +MEAN_MS +MAX_MS +ERRORS$' "$OUT"
for port in "${CLUSTER_MASTER_PORTS[@]}"; do
    expect_match "stats: master $port in the table" \
        "^  127\.0\.0\.1:$port +master +54[0-9]{2} +up +[1-9][0-9]* +1\.00 +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} +0$" "$OUT"
done
settled
expect_match "STATS: mode cluster" '^mode cluster$' "$J"
expect_match "STATS: 3 masters, all up" '^masters 3 up 3$' "$J"
expect_match "STATS: the masters' slots cover the 16384" '^slots 16384 on replicas 0$' "$J"
expect_match "STATS: the nodes' calls add up to the store's" '^calls add up$' "$J"
expect_match "STATS: every master got calls" '^masters with calls 3$' "$J"
expect_match "metrics: 8 node families, each announced once" '^node families 8 distinct 8$' "$J"
expect_match "metrics: each family's samples together" '^scattered families 0$' "$J"
expect_match "metrics and STATS agree on every node and cluster figure" \
    '^agree (2[0-9]|[3-9][0-9]) differ 0$' "$J"

# ---- a slot moved by hand: a MOVED redirect, and the slot counts follow ----
SLOT=$(cluster_keyslot "{api:k1}")
FROM=$(cluster_owner_port "$SLOT")
for port in "${CLUSTER_MASTER_PORTS[@]}"; do
    [ "$port" != "$FROM" ] && TO=$port && break
done
BEFORE_FROM=$(grep -o "\"node\": *\"127.0.0.1:$FROM\", *\"role\": *\"master\", *\"slots\": *[0-9]*" "$DIR/stats.json" | grep -o '[0-9]*$')
cluster_move_slot "$SLOT" "$TO" || fail "slot $SLOT did not move"
"$RLIMITCTL" -s "$ADMIN" check api k1 >/dev/null || fail "check api k1 after the move"
settled
expect_match "STATS: the MOVED redirect counted" '^moved [1-9]' "$J"
expect_match "STATS: the source master has one slot less" \
    "^node 127\.0\.0\.1:$FROM master $((BEFORE_FROM - 1)) up$" "$J"
expect_match "STATS: still 16384 slots" '^slots 16384 on replicas 0$' "$J"
expect_match "metrics agree after the move" '^agree [0-9]+ differ 0$' "$J"

# ---- CLUSTER FAILOVER: the replica is a master with the slots, the old one a replica ----
OLD=${CLUSTER_MASTER_PORTS[0]}
REPLICA=
for port in "${CLUSTER_PORTS[@]}"; do
    if [ "$(redis-cli -p "$port" role | sed -n 3p)" = "$OLD" ]; then REPLICA=$port; fi
done
[ -n "$REPLICA" ] || fail "no replica of $OLD found"
cluster_failover "$REPLICA" || fail "CLUSTER FAILOVER on $REPLICA did not complete"
promoted_shown() {
    decide
    view
    judge | grep -Eq "^node 127\.0\.0\.1:$REPLICA master [1-9][0-9]* up$"
}
wait_for 20 promoted_shown || fail "STATS never showed $REPLICA as a master"
settled
expect_match "STATS: the promoted replica serves slots" "^node 127\.0\.0\.1:$REPLICA master [1-9][0-9]* up$" "$J"
expect_match "STATS: the old master serves none" "^node 127\.0\.0\.1:$OLD replica 0 " "$J"
expect_match "STATS: 3 masters, all up" '^masters 3 up 3$' "$J"
expect_match "metrics agree after the failover" '^agree [0-9]+ differ 0$' "$J"
ctl -s "$ADMIN" stats
expect_match "stats: the promoted replica in the table" "^  127\.0\.0\.1:$REPLICA +master +[1-9][0-9]* +up " "$OUT"
expect_match "stats: the old master in the table" "^  127\.0\.0\.1:$OLD +replica +0 " "$OUT"
stop_daemon
finish
