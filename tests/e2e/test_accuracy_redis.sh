#!/usr/bin/env bash
# Accuracy under concurrency: 4 daemons on one Redis, 32 concurrent clients on ONE key,
# for each exact algorithm at once (fixed_window, sliding_window_log, token_bucket,
# gcra: 50 per second), for 11.5 s (at least 10 whole windows). Admissions must never exceed
# the bound: per aligned window <= limit (fixed window), in any trailing period <= limit
# (sliding log, read from Redis's own sorted set), in any span d <= burst + d/T (token
# bucket, GCRA). See tests/tools/rlaccuracy.py for how decision times are bounded
# without trusting a client-side timestamp. Prints the largest admitted count seen.
#
# on_store_error is deny, so a Redis timeout can never admit; command_timeout_ms is
# generous (2 s) so that a noisy machine does not turn the test into a fallback test.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
start_redis

DAEMONS=4 CLIENTS=32
if [ -n "$RLIMITD_WRAPPER" ]; then
    echo "under RLIMITD_WRAPPER: the same 4 daemons and 32 clients per key (slower decisions)"
fi

CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "redis", "url": "'$REDIS_URL'", "command_timeout_ms": 2000},
 "policies": {
  "fw": {"algorithm": "fixed_window", "limit": 50, "period": "1s", "on_store_error": "deny"},
  "swl": {"algorithm": "sliding_window_log", "limit": 50, "period": "1s",
          "on_store_error": "deny"},
  "tb": {"algorithm": "token_bucket", "limit": 50, "period": "1s", "burst": 10,
         "on_store_error": "deny"},
  "gcra": {"algorithm": "gcra", "limit": 50, "period": "1s", "burst": 5,
           "on_store_error": "deny"}}}'
ADDRESSES=
for i in $(seq 1 $DAEMONS); do
    daemon_start "a$i" "$CONFIG"
    ADDRESSES=$ADDRESSES${ADDRESSES:+,}${SOCK[a$i]}
done

"$PYTHON" tests/tools/rlaccuracy.py --self-test --addresses "$ADDRESSES" --redis-port "$REDIS_PORT" \
    --clients "$CLIENTS" --duration 11.5 \
    --policy fw:fixed_window:50:1000 --policy swl:sliding_window_log:50:1000 \
    --policy tb:token_bucket:50:1000:10 --policy gcra:gcra:50:1000:5 \
    >"$WORK/accuracy.json" 2>"$WORK/accuracy.err"
RC=$?
grep -v '^[ {}]' "$WORK/accuracy.json"
cat "$WORK/accuracy.err" >&2
if [ "$RC" != 0 ]; then
    cat "$WORK/accuracy.json"
    check_failed "over-admission (or lost answers) with $DAEMONS daemons on one Redis"
fi

for i in $(seq 1 $DAEMONS); do
    rlload ping "${SOCK[a$i]}" >/dev/null || check_failed "daemon a$i does not answer"
    daemon_stop "a$i"
done
fault_finish test_accuracy_redis
