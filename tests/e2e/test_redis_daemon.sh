#!/usr/bin/env bash
# The Redis store through real daemons and rlimitctl, each daemon on its own Unix socket,
# all on one private redis-server (tests/support/redis.sh):
#
#   shared    two daemons, requests alternating between them: a limit of 20 admits
#             exactly 20 of 40, for every algorithm (state in Redis, under hash-tagged
#             keys with a TTL);
#   outage    redis-server killed: answers carry FALLBACK (on_store_error local); started
#             again (empty, no scripts): answers come from Redis again;
#   password  a wrong password stops the daemon at startup with Redis's reason; the
#             right one starts it;
#   down      Redis unreachable at startup: the daemon starts anyway, falls back, and
#             uses Redis once it is there.
#
# Environment: BUILD (default build), RLIMITD_WRAPPER (e.g. valgrind, prefixed to the
# daemon), PYTHON.
set -u
cd "$(dirname "$0")/../.."
WORK_NAME=redis-daemon
# shellcheck source=tests/e2e/redis_daemons.sh
. tests/e2e/redis_daemons.sh

# ctl NAME ARGS...: rlimitctl against daemon NAME, JSON answers.
ctl() {
    local name=$1
    shift
    "$RLIMITCTL" -s "unix:$WORK/$name.sock" -t 5000 --json "$@"
}

# Runs until CHECK policy key on daemon NAME is answered without FALLBACK (10 s at most).
wait_for_redis() {
    local i out
    for i in $(seq 1 100); do
        out=$(ctl "$1" peek "$2" "$3")
        if ! grep -qi fallback <<<"$out"; then
            return 0
        fi
        sleep 0.1
    done
    fail "daemon $1 still falls back: $out"
    return 1
}

redis_start || exit 1
URL=$REDIS_URL

POLICIES='"log": {"algorithm": "sliding_window_log", "limit": 20, "period": "1m"},
  "bucket": {"algorithm": "token_bucket", "limit": 20, "period": "1h"},
  "gcra": {"algorithm": "gcra", "limit": 20, "period": "1d", "burst": 20},
  "counter": {"algorithm": "sliding_window_counter", "limit": 20, "period": "1d"},
  "fixed": {"algorithm": "fixed_window", "limit": 20, "period": "1d"},
  "local3": {"algorithm": "sliding_window_log", "limit": 3, "period": "1h",
             "on_store_error": "local"}'
CONFIG='{"listen": ["unix:@SOCK@"],
 "store": {"type": "redis", "url": "'$URL'", "command_timeout_ms": 1000},
 "policies": {'$POLICIES'}}'

echo "== shared: two daemons, one limit"
daemon_start a "$CONFIG" || fail "daemon a did not start"
daemon_start b "$CONFIG" || fail "daemon b did not start"
for policy in log bucket gcra counter fixed; do
    allowed=0 denied=0 other=0
    for i in $(seq 1 40); do
        if [ $((i % 2)) = 0 ]; then d=a; else d=b; fi
        out=$(ctl $d check "$policy" user1)
        case $? in
        0) allowed=$((allowed + 1)) ;;
        1) denied=$((denied + 1)) ;;
        *) other=$((other + 1)) ;;
        esac
        grep -qi fallback <<<"$out" && fail "$policy: a fallback answer: $out"
    done
    echo "$policy: $allowed allowed, $denied denied, $other errors"
    [ "$allowed" = 20 ] && [ "$denied" = 20 ] || fail "$policy admitted $allowed of 40, not 20"
done
ttl=$(rcli pttl "rl:{log:user1}:0")
# (at most the period, + 1 ms: the TTL ends at a millisecond rounded up)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 60001 ] || fail "the log key's TTL is $ttl ms"
ctl a stats | grep -q '"state":"up"' || ctl a stats | grep -q 'state up' ||
    fail "stats do not show the redis store up"

echo "== outage: redis killed, then started again"
redis_stop -9
out=$(ctl a check local3 k)
grep -qi fallback <<<"$out" || fail "no FALLBACK while redis is down: $out"
grep -q '"allowed":true' <<<"$out" || fail "local fallback did not admit: $out"
ctl a check local3 k >/dev/null
ctl a check local3 k >/dev/null
out=$(ctl a check local3 k)
grep -q '"allowed":false' <<<"$out" || fail "local fallback admitted a 4th of 3: $out"
redis_restart || fail "redis-server did not start again"
wait_for_redis a local3 fresh
wait_for_redis b local3 fresh
out=$(ctl b check log user2)
grep -q '"allowed":true' <<<"$out" && ! grep -qi fallback <<<"$out" ||
    fail "not decided by redis after the restart: $out"
[ "$(rcli exists "rl:{log:user2}:0")" = 1 ] || fail "no state in the restarted redis"
grep -q "redis store: down" "$WORK/a.log" || fail "the outage was not logged"
[ "$(grep -c "redis store: down" "$WORK/a.log")" -le 2 ] || fail "the outage was logged per request"
daemon_stop a
daemon_stop b

echo "== password: a wrong one fails startup with the reason"
rcli config set requirepass s3cret >/dev/null
WRONG=${CONFIG//"$URL"/redis://:nope@127.0.0.1:$REDIS_PORT/0}
if daemon_start wrong "$WRONG"; then
    fail "the daemon started with a wrong password"
else
    grep -q "WRONGPASS" "$WORK/wrong.log" || fail "no reason given: $(cat "$WORK/wrong.log")"
fi
RIGHT=${CONFIG//"$URL"/redis://:s3cret@127.0.0.1:$REDIS_PORT/0}
daemon_start right "$RIGHT" || fail "the daemon did not start with the right password"
out=$(ctl right check log user3)
grep -q '"allowed":true' <<<"$out" && ! grep -qi fallback <<<"$out" || fail "with password: $out"
daemon_stop right
rcli -a s3cret --no-auth-warning config set requirepass "" >/dev/null

echo "== down: redis unreachable at startup"
redis_stop -9
daemon_start late "$CONFIG" || fail "the daemon did not start without redis"
out=$(ctl late check local3 k2)
grep -qi fallback <<<"$out" || fail "no FALLBACK without redis: $out"
redis_restart || fail "redis-server did not start"
wait_for_redis late local3 k3
daemon_stop late

if [ "$FAILED" != 0 ]; then
    echo "test_redis_daemon: FAILED"
    exit 1
fi
echo "test_redis_daemon: ok"
