# shellcheck shell=bash disable=SC2034
# tests/e2e/accuracy_daemons.sh: what test_accuracy_redis.sh and test_redis_cluster_reshard.sh
# share, sourced (never run) after tests/e2e/harness.sh:
#   ACCURACY_POLICIES        tests/tools/rlaccuracy.py's --policy arguments for the policies
#                            below (fixed_window, sliding_window_log, token_bucket, gcra: 50
#                            per second, on_store_error deny: a store timeout never admits)
#   accuracy_start N STORE   starts daemons a1..aN on STORE (JSON), command_timeout_ms 2 s
#                            (generous: a noisy machine must not turn it into a fallback
#                            test); sets ADDRESSES (their sockets, comma-separated)
#   accuracy_stop N FAIL     each daemon must still answer a PING (else FAIL "MSG" is
#                            called: the test's own failure function), then is stopped
ACCURACY_POLICIES=(--policy fw:fixed_window:50:1000 --policy swl:sliding_window_log:50:1000
    --policy tb:token_bucket:50:1000:10 --policy gcra:gcra:50:1000:5)

accuracy_start() {
    local n=$1 store=$2 i config
    if [ -n "$RLIMITD_WRAPPER" ]; then
        echo "under RLIMITD_WRAPPER: the same $n daemons and clients (slower decisions)"
    fi
    config='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": '${store%\}}', "command_timeout_ms": 2000},
 "policies": {
  "fw": {"algorithm": "fixed_window", "limit": 50, "period": "1s", "on_store_error": "deny"},
  "swl": {"algorithm": "sliding_window_log", "limit": 50, "period": "1s",
          "on_store_error": "deny"},
  "tb": {"algorithm": "token_bucket", "limit": 50, "period": "1s", "burst": 10,
         "on_store_error": "deny"},
  "gcra": {"algorithm": "gcra", "limit": 50, "period": "1s", "burst": 5,
           "on_store_error": "deny"}}}'
    ADDRESSES=
    for i in $(seq 1 "$n"); do
        daemon_start "a$i" "$config"
        ADDRESSES=$ADDRESSES${ADDRESSES:+,}${SOCK[a$i]}
    done
}

accuracy_stop() {
    local n=$1 fail_fn=$2 i
    for i in $(seq 1 "$n"); do
        rlload ping "${SOCK[a$i]}" >/dev/null || "$fail_fn" "daemon a$i does not answer"
        daemon_stop "a$i"
    done
}
