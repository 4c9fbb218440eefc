#!/bin/bash
# test_ops_reload.sh: hot reload through `rlimitctl reload` and SIGHUP: a good config
# is applied (counters and top keys of unchanged policies survive, changed policies
# start afresh, HTTP listeners come and go), a bad one is refused with its reason
# (exit 2) and the old config keeps serving; connections on kept listeners stay open;
# a reload racing with traffic loses no decision.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 180

ADMIN="unix:$DIR/admin.sock"
PUBLIC="unix:$DIR/public.sock"
HTTP2=$(free_port)

# write_config EXTRA_LISTENERS POLICIES
write_config() {
    # The public listener lists its ops: a non-admin listener's default has no refund, no top.
cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", {"address": "unix:$DIR/public.sock",
             "ops": ["check", "peek", "multi_check", "charge", "refund", "policies", "stats", "top"]},
            "http:127.0.0.1:0" $1],
 "policies": {$2}}
JSON
}
FIVE='"five": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}'
CHANGED_A='"changed": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}'
CHANGED_B='"changed": {"algorithm": "fixed_window", "limit": 6, "period": "1h"}'
GONE='"gone": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}'
NEW='"new": {"algorithm": "token_bucket", "limit": 10, "period": "1s"}'
BULK='"bulk": {"algorithm": "fixed_window", "limit": 1000, "period": "1h"}'

write_config "" "$FIVE, $CHANGED_A, $GONE, $BULK"
start_daemon "$DIR/rlimitd.json"
PORT1=$(http_port)

for i in 1 2 3 4 5 6 7; do ctl -s "$PUBLIC" check five u1; done
expect_eq "five/u1 denied before the reload" 1 "$RC"
for i in 1 2 3; do ctl -s "$PUBLIC" check changed u1; done

# a connection that stays open across the reloads
"$PYTHON" - "$DIR/public.sock" "$DIR/go" >"$DIR/held.out" 2>&1 <<'PY' &
import os, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
ping = lambda i: s.sendall(struct.pack(">IBBHI", 8, 1, 1, 0, i)) or s.recv(64)
first = ping(1)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
second = ping(2)
print("held connection answered" if len(first) == 36 and len(second) == 36 else "lost")
PY
HELD=$!

# ---- a good reload: counters of unchanged policies survive ----
write_config ", \"http:127.0.0.1:$HTTP2\"" "$FIVE, $CHANGED_B, $NEW, $BULK"
ctl -s "$ADMIN" reload
expect_eq "good reload: exit 0" 0 "$RC"
expect_eq "good reload: output" "reloaded: 4 policies" "$OUT"
ctl -s "$PUBLIC" check five u1
expect_eq "five/u1 still denied after the reload" 1 "$RC"
ctl -s "$PUBLIC" --json check changed u1
expect_match "changed limits: the state starts afresh" '"limit":6,"remaining":5,' "$OUT"
ctl -s "$PUBLIC" check new k
expect_eq "the new policy serves" 0 "$RC"
ctl -s "$PUBLIC" check gone k
expect_eq "the removed policy is gone" 2 "$RC"
ctl -s "$PUBLIC" --json stats
echo "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
p = {x["name"]: x for x in doc["policies"]}
assert (p["five"]["allowed"], p["five"]["denied"]) == (5, 3), p["five"]
assert (doc["reloads"], doc["reload_failures"]) == (1, 0), doc
' && ok "stats of the kept policy survived; one reload counted" || fail "stats after reload: $OUT"
ctl -s "$PUBLIC" --json top
echo "$OUT" | "$PYTHON" -c '
import json, sys
tops = {p["name"]: p["keys"] for p in json.load(sys.stdin)["policies"]}
assert tops["five"] == [{"key": "u1", "denied": 3, "error": 0}], tops
assert "changed" not in tops, tops
' && ok "top keys of the kept policy survived" || fail "top after reload: $OUT"
R=$(http "$HTTP2" /healthz)
expect_eq "the added HTTP listener serves" "status 200" "$(echo "$R" | head -1)"
R=$(http "$PORT1" /healthz)
expect_eq "the kept HTTP listener serves" "status 200" "$(echo "$R" | head -1)"

# ---- bad configs are refused with their reason; the old one keeps serving ----
refused() { # WHAT REASON-REGEX
    ctl -s "$ADMIN" reload
    expect_eq "$1: exit 2" 2 "$RC"
    expect_match "$1: reason on stderr" "^rlimitctl: RELOAD_FAILED: .*$2" "$ERR"
    expect_eq "$1: nothing on stdout" "" "$OUT"
    ctl -s "$PUBLIC" check five u1
    expect_eq "$1: the old config still denies five/u1" 1 "$RC"
}
echo '{"listen": [' >"$DIR/rlimitd.json"
refused "syntax error" 'rlimitd.json'
write_config ", \"http:127.0.0.1:$HTTP2\"" "$FIVE, \"bad\": {\"algorithm\": \"fixed_window\", \"limit\": 5, \"period\": \"5x\"}"
refused "bad period" 'policies.bad.period'
write_config ", \"http:127.0.0.1:$HTTP2\"" "$FIVE, \"bad\": {\"algorithm\": \"fixed_window\", \"limit\": 5, \"period\": \"1s\", \"colour\": 1}"
refused "unknown field" 'colour'
"$PYTHON" -c 'import socket, time, sys; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1]); sys.stdout.flush(); time.sleep(600)' >"$DIR/busy.port" &
EXTRA_PIDS="$EXTRA_PIDS $!"
for i in $(seq 100); do [ -s "$DIR/busy.port" ] && break; sleep 0.05; done
write_config ", \"http:127.0.0.1:$HTTP2\", \"http:127.0.0.1:$(cat "$DIR/busy.port")\"" "$FIVE"
refused "an HTTP port in use" 'listen http:127.0.0.1'
write_config ", \"http:127.0.0.1:$HTTP2\", \"tcp:127.0.0.1:$(cat "$DIR/busy.port")\"" "$FIVE"
refused "a TCP port in use" 'listen tcp:127.0.0.1'
R=$(http "$HTTP2" /healthz)
expect_eq "after refused reloads the HTTP listener still serves" "status 200" "$(echo "$R" | head -1)"
ctl -s "$PUBLIC" check new k
expect_eq "after refused reloads the policies are the old ones" 0 "$RC"
ctl -s "$PUBLIC" --json stats
expect_match "refused reloads are counted" '"reloads":1,"reload_failures":5' "$OUT"

# ---- SIGHUP: the same, without a client; the held connection is still open ----
write_config "" "$FIVE, $BULK"
kill -HUP "$DAEMON_PID"
wait_log "reloaded $DIR/rlimitd.json" 2
touch "$DIR/go"
wait "$HELD"
expect_eq "a connection on a kept listener survives the reloads" "held connection answered" "$(cat "$DIR/held.out")"
"$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $HTTP2), timeout=5)" 2>/dev/null &&
    fail "SIGHUP: the removed HTTP listener still accepts" ||
    ok "SIGHUP: the removed HTTP listener is closed"
ctl -s "$PUBLIC" check five u1
expect_eq "SIGHUP: five/u1 still denied" 1 "$RC"
echo 'not json' >"$DIR/rlimitd.json"
kill -HUP "$DAEMON_PID"
wait_log "reload refused" 6
ctl -s "$PUBLIC" ping
expect_eq "a bad config by SIGHUP leaves the daemon serving" 0 "$RC"

# ---- a reload racing with traffic loses no decision ----
write_config "" "$FIVE, $BULK"
flood "$DIR/public.sock" bulk racer 3000 >"$DIR/flood.out" &
FLOOD=$!
for i in 1 2 3 4 5; do ctl -s "$ADMIN" reload; done
wait "$FLOOD"
expect_eq "3000 pipelined checks across 5 reloads: all answered" "1000 2000" "$(cat "$DIR/flood.out")"

stop_daemon
finish
