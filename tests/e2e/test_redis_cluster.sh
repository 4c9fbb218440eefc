#!/usr/bin/env bash
# Redis Cluster, exactness (issue 13): a private cluster of 3 masters with a replica each
# (tests/support/cluster.sh) and two daemons on it. Every algorithm (fixed_window,
# sliding_window_log, sliding_window_counter, token_bucket, gcra; periods of hours, so nothing
# refills during the test) admits each of 1,000 keys exactly its limit, with the requests of
# each key spread over both daemons and pipelined; the keys spread over all three masters
# (their slots, as the daemon routes them, per CLUSTER SLOTS), and sampled keys exist on the
# master serving their slot. A multi-rate policy: exact for its tightest rate, both rates'
# Redis keys on one master. MULTI_CHECK of keys on three masters: all-or-nothing (a refused
# one gives back what its allowed parts consumed: PEEK shows everything back), exact under
# concurrency. Concurrency leases: exactly the limit per key, a RELEASE through the other
# daemon frees one. rlimitctl stats --json: mode cluster, 3 masters, no store errors.
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

KEYS=1000
LEASE_KEYS=300
if [ -n "$RLIMITD_WRAPPER" ]; then
    echo "under RLIMITD_WRAPPER: the same keys and requests (slower decisions)"
fi
CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "cluster": '$CLUSTER_URLS_JSON', "command_timeout_ms": 5000},
 "policies": {
  "fw": {"algorithm": "fixed_window", "limit": 4, "period": "2h", "on_store_error": "deny"},
  "swl": {"algorithm": "sliding_window_log", "limit": 4, "period": "2h", "on_store_error": "deny"},
  "swc": {"algorithm": "sliding_window_counter", "limit": 4, "period": "2h",
          "on_store_error": "deny"},
  "tb": {"algorithm": "token_bucket", "limit": 4, "period": "2h", "burst": 3,
         "on_store_error": "deny"},
  "gcra": {"algorithm": "gcra", "limit": 4, "period": "2h", "burst": 3, "on_store_error": "deny"},
  "mr": {"rates": [{"algorithm": "fixed_window", "limit": 5, "period": "2h"},
                   {"algorithm": "sliding_window_log", "limit": 3, "period": "3h"}],
         "on_store_error": "deny"},
  "conc": {"algorithm": "concurrency", "limit": 3, "lease": "10m", "on_store_error": "deny"}}}'
daemon_start a "$CONFIG"
daemon_start b "$CONFIG"
ADDRESSES=${SOCK[a]},${SOCK[b]}
PORT0=${CLUSTER_MASTER_PORTS[0]}

# Runs rlcluster.py SUBCOMMAND ARGS...: its report kept in $DIR/NAME.json.
cluster_tool() {
    local name=$1
    shift
    "$PYTHON" tests/tools/rlcluster.py "$@" --addresses "$ADDRESSES" --cluster-port "$PORT0" \
        >"$DIR/$name.json" 2>"$DIR/$name.err"
    local rc=$?
    cat "$DIR/$name.err" >&2
    if [ "$rc" != 0 ]; then
        cat "$DIR/$name.json" >&2
        fail "$name: see above"
    else
        ok "$name: $(tr -d ' \n' <"$DIR/$name.json" | cut -c1-300)"
    fi
}

# The slots the tool computes are those Redis computes (CLUSTER KEYSLOT of the Redis key).
for key in k0 k1 k999 'odd{key'; do
    expect_eq "slot of {fw:$key}" "$(cluster_keyslot "rl:{fw:$key}:0")" \
        "$("$PYTHON" -c 'import sys; sys.path.insert(0, "tests/tools"); import rlcluster
print(rlcluster.item_slot("fw", sys.argv[1]))' "$key")"
done

T0=$(date +%s.%N)
cluster_tool exact exact --keys "$KEYS" --extra 2 \
    --policy fw:4 --policy swl:4 --policy swc:4 --policy tb:3 --policy gcra:3
cluster_tool multirate exact --keys "$KEYS" --extra 2 --rates 2 --policy mr:3
cluster_tool multi multi --policy fw:4 --policy tb:3 --key-prefix-keys mc
cluster_tool leases leases --keys "$LEASE_KEYS" --extra 2 --policy conc:3 --key-prefix-keys lk
echo "load phases: $(echo "$(date +%s.%N) - $T0" | bc) s"

for d in a b; do
    ctl -s "${SOCK[$d]}" stats --json
    expect_eq "$d: stats --json works" 0 "$RC"
    FIG=$(printf '%s' "$OUT" | "$PYTHON" -c 'import json, sys
s = json.load(sys.stdin)["store"]
c = s.get("cluster", {})
errors = sum(s["errors"].values())
print(s["mode"], s["state"], c.get("masters"), c.get("slots_unowned"), errors,
      "split" if c.get("split_requests", 0) > 0 else "nosplit")')
    expect_eq "$d: stats: mode, state, masters, unowned slots, store errors, splits" \
        "cluster up 3 0 0 split" "$FIG"
done
REFUNDS=$(for d in a b; do
    "$RLIMITCTL" -s "${SOCK[$d]}" stats --json | "$PYTHON" -c 'import json, sys
print(json.load(sys.stdin)["store"]["cluster"]["refunds"])'
done | paste -sd+ | bc)
if [ "${REFUNDS:-0}" -gt 0 ]; then ok "refunds counted ($REFUNDS)"; else fail "no refund counted"; fi

for d in a b; do
    daemon_stop "$d"
done
finish
