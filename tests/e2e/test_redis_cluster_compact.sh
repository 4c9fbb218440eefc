#!/usr/bin/env bash
# A Redis Cluster node call of single-rate bucket CHECKs (redis_script.lua's fast path in
# its cluster variant: one SET ... GET per key in the common case, then decided again on
# what the key held) decides exactly as the plain form (one MGET of every key first), item
# by item and key by key, on random sequences that mix idle and busy buckets, costs above
# the burst, denials and a key met twice in one call (tests/tools/cluster_compact_diff.py:
# a one-node cluster owning every slot, and a plain redis-server), and on values no rlimitd
# writes (huge or infinite numbers, a key of another type). No daemon runs here, so
# the wrapped runs (valgrind, ASan) skip it.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
if [ -n "$RLIMITD_WRAPPER" ] || [ "${BUILD%-asan}" != "$BUILD" ]; then
    echo "$TEST_NAME: not run under a wrapper or sanitizers (no daemon runs in it)"
    exit 0
fi
watchdog 120
start_redis --cluster-enabled yes --cluster-config-file nodes.conf
PLAIN_PORT=$(free_port) || exit 1
redis-server --bind 127.0.0.1 --port "$PLAIN_PORT" --dir "$DIR" --save '' --appendonly no \
    --logfile "$DIR/plain.log" &
PLAIN_PID=$!
trap 'kill "$PLAIN_PID" 2>/dev/null; wait "$PLAIN_PID" 2>/dev/null; cleanup' EXIT
rcli cluster addslotsrange 0 16383 >/dev/null
cluster_ok() { rcli cluster info | grep -q 'cluster_state:ok'; }
plain_up() { redis-cli -p "$PLAIN_PORT" ping 2>/dev/null | grep -q PONG; }
wait_for 10 cluster_ok || fail "the one-node cluster did not reach state ok"
wait_for 10 plain_up || fail "the plain redis-server did not start"
for seed in 1 2 3; do
    if out=$("$PYTHON" tests/tools/cluster_compact_diff.py "$REDIS_PORT" "$PLAIN_PORT" \
        daemon/redis_script.lua "$seed" 1500 2>&1); then
        ok "seed $seed: the node call decides as the plain form ($(echo "$out" | tail -1))"
    else
        fail "seed $seed: the node call and the plain form differ: $out"
    fi
    rcli flushall >/dev/null
    redis-cli -p "$PLAIN_PORT" flushall >/dev/null
done
finish
