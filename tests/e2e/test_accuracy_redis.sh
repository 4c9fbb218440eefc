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
# shellcheck source=tests/e2e/accuracy_daemons.sh
. tests/e2e/accuracy_daemons.sh
start_redis

DAEMONS=4 CLIENTS=32
accuracy_start "$DAEMONS" '{"type": "redis", "url": "'"$REDIS_URL"'"}'

"$PYTHON" tests/tools/rlaccuracy.py --self-test --addresses "$ADDRESSES" --redis-port "$REDIS_PORT" \
    --clients "$CLIENTS" --duration 11.5 "${ACCURACY_POLICIES[@]}" \
    >"$WORK/accuracy.json" 2>"$WORK/accuracy.err"
RC=$?
grep -v '^[ {}]' "$WORK/accuracy.json"
cat "$WORK/accuracy.err" >&2
if [ "$RC" != 0 ]; then
    cat "$WORK/accuracy.json"
    check_failed "over-admission (or lost answers) with $DAEMONS daemons on one Redis"
fi

accuracy_stop "$DAEMONS" check_failed
fault_finish test_accuracy_redis
