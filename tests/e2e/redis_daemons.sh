# shellcheck shell=bash disable=SC2034
# tests/e2e/redis_daemons.sh: the daemons of test_redis_daemon.sh and test_leases_redis.sh,
# sourced (never run). Before sourcing, set WORK_NAME (the temporary directory's name).
# Gives: RLIMITD, RLIMITCTL, WRAPPER (from RLIMITD_WRAPPER), PYTHON, WORK, FAILED, the
# private redis-server helpers of tests/support/redis.sh, an EXIT trap that stops the
# daemons and Redis and removes WORK, and:
#   fail MSG                  records a failure (FAILED=1)
#   daemon_start NAME CONFIG  rlimitd on $WORK/NAME.sock with CONFIG (@SOCK@ is its socket),
#                             waits until it is ready; sets PID_NAME; returns 1 (its log
#                             printed) if it exited or never became ready
#   daemon_stop NAME          SIGTERM, wait: exit status 0, no valgrind or sanitizer errors
BUILD=${BUILD:-build}
RLIMITD=$BUILD/rlimitd
RLIMITCTL=$BUILD/rlimitctl
WRAPPER=${RLIMITD_WRAPPER:-}
PYTHON=${PYTHON:-/usr/bin/python3}
WORK=$(mktemp -d "/tmp/rlt-$WORK_NAME-XXXXXX")
PIDS=()
FAILED=0

# shellcheck source=../support/redis.sh
. tests/support/redis.sh

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    redis_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    FAILED=1
}

daemon_start() {
    local name=$1 sock=$WORK/$1.sock log=$WORK/$1.log
    printf '%s\n' "${2//@SOCK@/$sock}" >"$WORK/$name.json"
    $WRAPPER "$RLIMITD" -f -c "$WORK/$name.json" 2>"$log" &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_$name=$pid"
    local i
    for i in $(seq 1 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            return 1
        fi
        if [ -S "$sock" ] && grep -q "ready" "$log"; then
            return 0
        fi
        sleep 0.05
    done
    fail "daemon $name did not become ready"
    cat "$log" >&2
    return 1
}

daemon_stop() {
    local pid
    pid=$(eval echo "\$PID_$1")
    kill "$pid" 2>/dev/null
    wait "$pid"
    local rc=$?
    [ "$rc" = 0 ] || fail "daemon $1 exited with $rc"
    grep -q "ERROR SUMMARY: [1-9]" "$WORK/$1.log" && fail "daemon $1: valgrind errors"
    grep -q "ERROR: AddressSanitizer\|runtime error:" "$WORK/$1.log" &&
        fail "daemon $1: sanitizer errors"
}
