#!/bin/bash
# test_bench_cluster.sh: the Redis Cluster section of make bench (issue 13) measures what it says.
# 1. cluster_rounds.py: slots as Redis computes them (hash tags included), per-node figures of
#    a round from two snapshots (decisions by key share, items per call, CPU per decision).
# 2. results.py: the cluster rows; a master that ran no script makes the ratio "not met".
# 3. run.sh BENCH_ONLY=cluster end to end with this build: every side measured, every master
#    ran scripts in every side, the ratios and the projection have values, no node is left.
# Figures themselves are not checked (the machine is shared); only that they are real.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
if [ -n "$RLIMITD_WRAPPER" ]; then
    echo "$TEST_NAME: not run under RLIMITD_WRAPPER (the bench harness starts its own daemons)"
    exit 0
fi
case "${BUILD:-build}" in
*-asan) echo "$TEST_NAME: not run on the ASan build (a benchmark harness; checked in the plain run)"; exit 0 ;;
esac
watchdog 240
BENCH=$ROOT/tests/bench
RP=$BENCH/cluster_rounds.py

# ---- 1. cluster_rounds.py ------------------------------------------------------------
# Slots given by a real Redis 7.0.15 (CLUSTER KEYSLOT; notes/CLUSTER_FACTS.md).
OUT=$("$PYTHON" -c "
import sys; sys.path.insert(0, '$BENCH'); import cluster_rounds as c
print(*(c.key_slot(k) for k in (b'b', b'f', b'{b}absent', b'foo')), c.key_slot(b'{}foo') == c.crc16(b'{}foo') & 16383)")
expect_eq "key slots (b, f, {b}absent, foo; an empty tag hashes the whole key)" "3300 3168 3300 12182 True" "$OUT"
cat >"$DIR/before.json" <<'EOF'
{"nodes": {"127.0.0.1:1": {"cpu_s": 1.0, "script_calls": 0, "slots": [[0, 8191]]},
           "127.0.0.1:2": {"cpu_s": 2.0, "script_calls": 0, "slots": [[8192, 16383]]}}}
EOF
cat >"$DIR/after.json" <<'EOF'
{"nodes": {"127.0.0.1:1": {"cpu_s": 1.5, "script_calls": 100, "slots": [[0, 8191]]},
           "127.0.0.1:2": {"cpu_s": 2.25, "script_calls": 0, "slots": [[8192, 16383]]}}}
EOF
echo '{"decisions_per_s": 1000, "allowed": 10000, "denied": 0, "errors": 0}' >"$DIR/rounds"
"$PYTHON" "$RP" note "$DIR/rounds" --before "$DIR/before.json" --after "$DIR/after.json" --keys 1000 --tag tag:bench
expect_eq "note: exit status" 0 "$?"
OUT=$("$PYTHON" -c "
import json, sys; sys.path.insert(0, '$BENCH'); import cluster_rounds as c
r = json.loads(open('$DIR/rounds').read())
share = c._shares({'a': {'slots': [[0, 8191]]}, 'b': {'slots': [[8192, 16383]]}}, 1000, 'tag:bench')['a']
n1, n2 = r['nodes']
print(n1['decisions'] == round(10000 * share), n1['script_calls'], n1['items_per_call'] == round(n1['decisions'] / 100, 1),
      n1['cpu_s'], n1['cpu_us_per_decision'] == round(5e5 / n1['decisions'], 3), n2['script_calls'], n2['items_per_call'],
      n1['decisions'] + n2['decisions'], r['node_decisions_from'])")
expect_eq "note: per node decisions by key share, calls, items per call, CPU per decision" \
    "True 100 True 0.5 True 0 None 10000 key share" "$OUT"

# ---- 2. results.py ------------------------------------------------------------------
rows() {  # rows RESULTS_JSONL: the cluster rows of the summary, "key value | status"
    "$PYTHON" "$BENCH/results.py" summary "$1" --out "$1.json" >/dev/null &&
        "$PYTHON" -c "
import json
for r in json.load(open('$1.json'))['ratios']:
    if r['key'].startswith('cluster'):
        print(r['key'], r.get('value'), '|', r['status'], '|', r.get('projection', {}).get('3', ''))" "$1"
}
node() { printf '{"node": "n%s", "script_calls": %s, "items_per_call": %s, "cpu_us_per_decision": %s}' "$@"; }
cat >"$DIR/res.jsonl" <<EOF
{"name": "rlimitd_cluster", "decisions_per_s": 90000, "node_items_per_call_min": 50, "node_cpu_us_per_decision_max": 5.0, "nodes": [$(node 1 10 50 5.0), $(node 2 10 60 4.0)]}
{"name": "rlimitd_cluster_3x", "decisions_per_s": 99000, "node_items_per_call_min": 100, "node_cpu_us_per_decision_max": 4.0, "nodes": [$(node 1 10 100 4.0)]}
{"name": "rate_limiter_flexible_cluster", "decisions_per_s": 30000, "node_cpu_us_per_decision_max": 15.0, "nodes": [$(node 1 10 1 15.0)]}
{"name": "rate_limiter_flexible_cluster_autopipeline", "decisions_per_s": 45000, "nodes": [$(node 1 10 1 12.0)]}
{"name": "rlimitd_redis_single", "decisions_per_s": 200000, "items_per_call": 150, "redis_cpu_us_per_decision": 4.0, "nodes": [$(node 1 10 150 4.0)]}
EOF
OUT=$(rows "$DIR/res.jsonl")
printf '%s\n' "$OUT" | sed 's/^/    | /'
expect_match "results: 3.0x the peer is met" '^cluster_vs_rate_limiter_flexible_cluster 3.0 \| met' "$OUT"
expect_match "results: 2.0x the auto-pipelining peer is not met" \
    '^cluster_vs_rate_limiter_flexible_cluster_autopipeline 2.0 \| not met' "$OUT"
expect_match "results: items per call 150 / 50 = 3.0 > 2.0: not met" '^cluster_items_per_call_split 3.0 \| not met' "$OUT"
expect_match "results: 3x the connections: 1.5, reported" '^cluster_3x_items_per_call_split 1.5 \| reported' "$OUT"
expect_match "results: CPU per decision 5.0 / 4.0 and the projection (3 masters: 600,000/s)" \
    '^cluster_cpu_per_decision 1.25 \| reported \| 600000$' "$OUT"
sed -i 's/"nodes": \[{"node": "n1", "script_calls": 10, "items_per_call": 50/"nodes": [{"node": "n1", "script_calls": 0, "items_per_call": 50/' "$DIR/res.jsonl"
OUT=$(rows "$DIR/res.jsonl")
expect_match "results: a master that ran no script: not met" \
    '^cluster_vs_rate_limiter_flexible_cluster 3.0 \| not met: n1 ran no script' "$OUT"

# ---- 3. run.sh end to end -----------------------------------------------------------
BUILD=$BUILD_DIR BENCH_NO_NPM=1 BENCH_ONLY=cluster BENCH_SECONDS=1 BENCH_ROUNDS=1 BENCH_KEYS=1000 BENCH_PIN=0 \
    BENCH_JSON=$DIR/bench.json PYTHON=$PYTHON timeout 200 bash "$BENCH/run.sh" >"$DIR/bench.log" 2>&1
expect_eq "run.sh BENCH_ONLY=cluster: exit 0" 0 "$?"
OUT=$("$PYTHON" - "$DIR/bench.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
for name in ("rlimitd_cluster", "rlimitd_cluster_3x", "rate_limiter_flexible_cluster",
             "rate_limiter_flexible_cluster_autopipeline", "rlimitd_redis_single"):
    r = s["results"].get(name, {})
    if "skipped" in r:
        print(name, "skipped:", r["skipped"])
        continue
    nodes = r.get("nodes") or []
    print(name, "measured", "rate=%s" % bool(r.get("decisions_per_s")), "errors=%s" % r.get("errors"),
          "nodes=%d" % len(nodes), "all_scripts=%s" % all(n.get("script_calls") for n in nodes))
for r in s["ratios"]:
    if r["key"].startswith("cluster"):
        print(r["key"], "value=%s" % (r.get("value") is not None), "|", r["status"])
EOF
)
printf '%s\n' "$OUT" | sed 's/^/    | /'
for name in rlimitd_cluster rlimitd_cluster_3x rlimitd_redis_single; do
    expect_match "run.sh: $name measured on every node" "^$name measured rate=True errors=0 nodes=[13] all_scripts=True$" "$OUT"
done
if [ -d "$BENCH/node/node_modules/ioredis" ] && command -v node >/dev/null; then
    expect_match "run.sh: rate-limiter-flexible on ioredis Cluster measured on 3 masters" \
        '^rate_limiter_flexible_cluster measured rate=True errors=0 nodes=3 all_scripts=True$' "$OUT"
    expect_match "run.sh: the cluster ratio has a value" '^cluster_vs_rate_limiter_flexible_cluster value=True' "$OUT"
fi
expect_match "run.sh: the projection row has a value" '^cluster_cpu_per_decision value=True \| reported' "$OUT"
expect_match "run.sh: the projection is printed" 'projection from rlimitd_cluster .* 3 masters [0-9,]+/s' "$(cat "$DIR/bench.log")"
dir=$(sed -n 's/.*(no replicas), \(.*\)$/\1/p' "$DIR/bench.log")
expect_match "run.sh: the cluster's directory was named" '^/tmp/rlt-cluster-' "$dir"
expect_eq "run.sh: the cluster's directory is gone" "" "$(ls -d "$dir" 2>/dev/null)"
for port in $(sed -n 's/.*masters on ports \([0-9 ]*\) (no replicas).*/\1/p' "$DIR/bench.log"); do
    expect_no_match "run.sh: the master on port $port is stopped" PONG "$(redis-cli -p "$port" ping 2>&1)"
done
finish
