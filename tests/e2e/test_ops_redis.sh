#!/bin/bash
# test_ops_redis.sh: the operator's view of a Redis-backed daemon: `rlimitctl stats`
# shows the store's state and latency (p50/p99), /metrics exports the latency and,
# once Redis goes away, the store errors and fallbacks; top keys work the same; HTTP
# decisions answered later (Redis busy) reach their client, or are dropped safely when
# the client left, and one still waiting on Redis at SIGTERM is answered before exit.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

start_redis # (fails the test when there is no redis-server: make deps installs it)

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "http:127.0.0.1:0"],
 "store": {"type": "redis", "url": "redis://127.0.0.1:$REDIS_PORT/0", "command_timeout_ms": 3000},
 "policies": {"three": {"algorithm": "fixed_window", "limit": 3, "period": "1h",
                        "on_store_error": "local"}}}
JSON
start_daemon "$DIR/rlimitd.json"
PORT=$(http_port)
ADMIN="unix:$DIR/admin.sock"

for i in 1 2 3 4 5; do ctl -s "$ADMIN" check three abuser; done
expect_eq "the 5th check is denied by Redis" 1 "$RC"
ctl -s "$ADMIN" stats
expect_eq "stats: exit 0" 0 "$RC"
expect_match "stats: the Redis store's line" '^store redis: state up, ' "$OUT"
expect_match "stats: latency p50/p99" '^  latency: p50 [0-9]+\.[0-9]{3} ms, p99 [0-9]+\.[0-9]{3} ms, max [0-9.]+ ms \([1-9][0-9]* answers\)$' "$OUT"
expect_match "stats: the store's error counts" '^  errors: down 0, timeout 0' "$OUT"
expect_match "stats: the policy" '^three +3 +2 +0 +0 +0 +0 +0 +0$' "$OUT"
ctl -s "$ADMIN" top
expect_match "top with Redis" '^three +abuser +2 +0$' "$OUT"
M=$(http "$PORT" /metrics | sed '1,/^$/d')
expect_match "metrics: latency summary" '^# TYPE rlimitd_store_latency_seconds summary$' "$M"
expect_match "metrics: p99" '^rlimitd_store_latency_seconds\{quantile="0.99"\} [0-9.e-]+$' "$M"
expect_match "metrics: latency count" '^rlimitd_store_latency_seconds_count [1-9][0-9]*$' "$M"
# STATS and /metrics render one snapshot: every figure of the Redis store and of the
# embedded store beside it, and every engine counter, has the same value in both.
ctl -s "$ADMIN" --json stats
M=$(http "$PORT" /metrics | sed '1,/^$/d')
AGREE=$(printf '%s' "$OUT" | "$PYTHON" -c '
import json, sys
stats, text = json.load(sys.stdin), sys.argv[1]
samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
def metric(name, value):
    key = name + "_total" if name + "_total" in samples else name
    if key not in samples or float(samples[key]) != float(value):
        print("differs:", key, samples.get(key), value)
    return 1
n = 0
for prefix, store in (("rlimitd_store_", stats["store"]), ("rlimitd_local_store_", stats["local_store"])):
    for k, v in store.items():
        if isinstance(v, dict) and k != "latency_us":
            n += sum(metric(prefix + k + "_" + g, w) for g, w in v.items())
        elif not isinstance(v, (dict, str)):
            n += metric(prefix + k, v)
for k in ("refused", "reloads", "reload_failures", "refused_peers", "auth_failures"):
    n += metric("rlimitd_" + k, stats[k])
print(n, "figures")
' "$M")
expect_match "STATS and /metrics agree on every figure" '^[3-9][0-9] figures$' "$AGREE"
expect_no_match "no figure differs" '^differs' "$AGREE"

# ---- HTTP answers that come later ----
# redis_sleep: DEBUG SLEEP 1 in the background (SLEEPER); returns once Redis is asleep
# (a PING is not answered within 0.2 s). SLEEP_START: the time just before it, in ns.
redis_sleep() {
    SLEEP_START=$(date +%s%N)
    rcli DEBUG SLEEP 1 >/dev/null &
    SLEEPER=$!
    redis_asleep() { ! timeout 0.2 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; }
    wait_for "$WAIT_S" redis_asleep || fail "Redis never fell asleep"
}
# in_flight: decisions the daemon waits on (STATS in_flight), printed.
in_flight() {
    ctl -s "$ADMIN" --json stats
    echo "$OUT" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["in_flight"])'
}
no_decision_waits() { [ "$(in_flight)" = 0 ]; }
a_decision_waits() { [ "$(in_flight)" -ge 1 ] 2>/dev/null; }

redis_sleep
R=$(http "$PORT" "/check?policy=three&key=late")
LATE_MS=$((($(date +%s%N) - SLEEP_START) / 1000000))
wait "$SLEEPER"
expect_eq "a decision Redis answers late reaches its HTTP client" "status 200" "$(echo "$R" | head -1)"
[ "$LATE_MS" -ge 1000 ] && ok "... after Redis's 1 s sleep (answered ${LATE_MS} ms after it began)" ||
    fail "the late decision was answered ${LATE_MS} ms after DEBUG SLEEP 1 began: before its end"
expect_match "... Redis did sleep (INFO commandstats: a DEBUG of at least 1 s)" \
    '^cmdstat_debug:calls=1,usec=[0-9]{7,},' "$(rcli INFO commandstats | tr -d '\r')"
ctl -s "$ADMIN" --json stats
expect_match "... from Redis, not the fallback" '"fallbacks":0' "$OUT"
redis_sleep
"$PYTHON" - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /check?policy=three&key=gone HTTP/1.1\r\nHost: x\r\n\r\n")
s.close()
PY
wait "$SLEEPER"                      # Redis answers, after its sleep, the decision
wait_for "$WAIT_S" no_decision_waits # of a client that left
R=$(http "$PORT" /healthz)
expect_eq "a client that left before its answer harms nothing" "status 200" "$(echo "$R" | head -1)"

redis_stop -9
ctl -s "$ADMIN" --json check three someone
expect_match "Redis down: answered by the local fallback" '"flags":\["fallback"\]' "$OUT"
ctl -s "$ADMIN" stats
expect_match "stats: the store is down" '^store redis: state down, ' "$OUT"
expect_match "stats: store errors and fallbacks counted" '^three +6 +2 +0 +0 +0 +0 +[1-9][0-9]* +[1-9][0-9]*$' "$OUT"
M=$(http "$PORT" /metrics | sed '1,/^$/d')
expect_match "metrics: store errors" '^rlimitd_store_errors_total\{policy="three"\} [1-9][0-9]*$' "$M"
expect_match "metrics: fallbacks" '^rlimitd_fallbacks_total\{policy="three"\} [1-9][0-9]*$' "$M"

# ---- SIGTERM while an HTTP decision waits on Redis: it is still answered ----
redis_restart || fail "redis-server did not start again"
wait_log "redis store: up (connected)"
redis_sleep
http "$PORT" "/check?policy=three&key=at-shutdown" >"$DIR/at-shutdown.out" &
HTTP_PID=$!
wait_for "$WAIT_S" a_decision_waits # the daemon has read it: it waits on Redis
kill -TERM "$DAEMON_PID"
wait "$HTTP_PID"
R=$(cat "$DIR/at-shutdown.out")
expect_eq "SIGTERM: the HTTP decision waiting on Redis is answered" "status 200" "$(echo "$R" | head -1)"
expect_match "... and its connection is closed after it" '^connection: close$' "$R"
expect_match "... by Redis, not a fallback" '^x-ratelimit-remaining: 2$' "$R"
wait "$DAEMON_PID"
RC=$?
DAEMON_PID=
expect_eq "rlimitd stopped cleanly after answering it" 0 "$RC"
wait "$SLEEPER"
finish
