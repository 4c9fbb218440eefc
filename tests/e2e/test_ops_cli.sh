#!/bin/bash
# test_ops_cli.sh: every rlimitctl command against a real daemon, in human and JSON
# form, with its exit status (0 allowed/done, 1 denied, 2 error); usage errors; the
# admin restriction (reset and reload only on admin listeners).
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

# The public listener lists its ops: a non-admin listener's default has no refund, no top.
cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", {"address": "unix:$DIR/public.sock",
             "ops": ["check", "peek", "multi_check", "charge", "refund", "policies", "stats", "top"]}],
 "policies": {
   "five":     {"algorithm": "fixed_window", "limit": 5, "period": "1h"},
   "multi":    {"algorithm": "fixed_window", "rates": [{"limit": 3, "period": "1h"},
                                                       {"limit": 10, "period": "1d"}]},
   "bucket":   {"algorithm": "token_bucket", "limit": 10, "period": "1m", "burst": 4,
                "exempt": ["friend"], "overrides": {"partner": {"limit": 20}}},
   "shadowed": {"algorithm": "fixed_window", "limit": 1, "period": "1h", "mode": "shadow"}
 }}
JSON
start_daemon "$DIR/rlimitd.json"
ADMIN="unix:$DIR/admin.sock"
PUBLIC="unix:$DIR/public.sock"

# ---- usage errors: usage on stderr, nothing on stdout, exit 2 ----
for args in "frobnicate" "--bogus ping" "-x ping" "check five" "check" "check five k -n abc" \
    "top -k 0" "ping extra" "policies extra" "-s"; do
    ctl -s "$ADMIN" $args
    expect_eq "usage error '$args': exit status" 2 "$RC"
    expect_eq "usage error '$args': stdout empty" "" "$OUT"
    expect_match "usage error '$args': usage on stderr" '^usage: rlimitctl' "$ERR"
done
ctl -s "$ADMIN"
expect_eq "no command: exit 2" 2 "$RC"
expect_match "no command: usage" '^usage: rlimitctl' "$ERR"
ctl --help
expect_eq "--help: exit 0" 0 "$RC"
expect_match "--help: usage on stdout" '^  top \[POLICY\] \[-k N\]' "$OUT"
ctl -s "unix:$DIR/nothing-here.sock" ping
expect_eq "no daemon: exit 2" 2 "$RC"
expect_match "no daemon: a reason" '^rlimitctl: .*nothing-here.sock' "$ERR"

# ---- ping ----
ctl -s "$ADMIN" ping
expect_eq "ping: exit 0" 0 "$RC"
expect_eq "ping: output" "ok" "$OUT"
ctl -s "$PUBLIC" --json ping
expect_eq "ping --json: exit 0" 0 "$RC"
expect_match "ping --json: status" '"status":"ALLOWED"' "$OUT"

# ---- check, peek, adjust, reset ----
for i in 1 2 3 4 5; do ctl -s "$PUBLIC" check five user1; done
expect_eq "check 5th allowed: exit 0" 0 "$RC"
expect_match "check human" '^allowed  limit=5 remaining=0 reset_after=[0-9]+ms window=3600000ms$' "$OUT"
ctl -s "$PUBLIC" check five user1
expect_eq "check over the limit: exit 1" 1 "$RC"
expect_match "check denied human" '^denied  limit=5 remaining=0 reset_after=[0-9]+ms retry_after=[0-9]+ms window=3600000ms$' "$OUT"
ctl -s "$PUBLIC" --json check five user1
expect_eq "check --json denied: exit 1" 1 "$RC"
expect_match "check --json denied" '^\{"allowed":false,"limit":5,"remaining":0,"reset_after_ms":[0-9]+,"retry_after_ms":[1-9][0-9]*,"window_ms":3600000,"status":"DENIED","flags":\[\]\}$' "$OUT"
ctl -s "$PUBLIC" check five user1 # third denial of user1
ctl -s "$PUBLIC" --json check five user2
expect_eq "check --json allowed: exit 0" 0 "$RC"
expect_match "check --json allowed" '^\{"allowed":true,"limit":5,"remaining":4,' "$OUT"
ctl -s "$PUBLIC" peek five user1
expect_eq "peek denied: exit 1" 1 "$RC"
expect_match "peek human" '^denied  limit=5' "$OUT"
ctl -s "$PUBLIC" --json peek five user2
expect_eq "peek --json allowed: exit 0" 0 "$RC"
expect_match "peek: what a check would leave" '"remaining":3,' "$OUT"
ctl -s "$PUBLIC" --json peek five user2
expect_match "peek consumes nothing" '"remaining":3,' "$OUT"
ctl -s "$PUBLIC" adjust five user2 -n 2
expect_eq "adjust: exit 0" 0 "$RC"
expect_match "adjust human" '^allowed  limit=5 remaining=2 ' "$OUT"
ctl -s "$PUBLIC" --json adjust five user2 -n -1
expect_match "adjust --json gives back" '"remaining":3,' "$OUT"
ctl -s "$PUBLIC" adjust five user2
expect_eq "adjust without -n: exit 2" 2 "$RC"
ctl -s "$PUBLIC" --json check shadowed s1
ctl -s "$PUBLIC" --json check shadowed s1
expect_eq "shadow would-be denial: exit 0" 0 "$RC"
expect_match "shadow flag" '"flags":\["shadow"\]' "$OUT"
ctl -s "$PUBLIC" check bucket friend
expect_match "exempt flag (human)" 'flags=exempt$' "$OUT"
ctl -s "$PUBLIC" check nosuch k
expect_eq "unknown policy: exit 2" 2 "$RC"
expect_match "unknown policy: reason" '^rlimitctl: UNKNOWN_POLICY: no policy "nosuch"$' "$ERR"
ctl -s "$PUBLIC" check five k -n 6
expect_eq "cost too large: exit 2" 2 "$RC"
expect_match "cost too large: reason" 'COST_TOO_LARGE' "$ERR"

# ---- the admin restriction ----
ctl -s "$PUBLIC" reset five user1
expect_eq "reset on a public listener: exit 2" 2 "$RC"
expect_match "reset on a public listener: NOT_PERMITTED" '^rlimitctl: NOT_PERMITTED: only on an admin listener$' "$ERR"
ctl -s "$PUBLIC" reload
expect_eq "reload on a public listener: exit 2" 2 "$RC"
expect_match "reload on a public listener: NOT_PERMITTED" 'NOT_PERMITTED' "$ERR"
ctl -s "$PUBLIC" --json reload
expect_eq "reload --json on a public listener: exit 2" 2 "$RC"
ctl -s "$ADMIN" peek five user1
expect_eq "the public reset changed nothing" 1 "$RC"

# two keys with denials for top: "a b\tc" (escaped in top), 2 denials
for i in 1 2 3 4 5 6 7; do ctl -s "$PUBLIC" check five "$(printf 'a b\tc')"; done
expect_eq "the 7th check of the tab key is denied" 1 "$RC"

# ---- policies ----
ctl -s "$PUBLIC" policies
expect_eq "policies: exit 0" 0 "$RC"
expect_match "policies: header" '^POLICY +ALGORITHM +LIMIT +PERIOD +BURST +MODE +ON_ERROR +OVERRIDES +EXEMPT +BLOCK$' "$OUT"
expect_match "policies: five" '^five +fixed_window +5 +1h +- +enforce +local +0 +0 +0$' "$OUT"
expect_match "policies: bucket" '^bucket +token_bucket +10 +1m +4 +enforce +local +1 +1 +0$' "$OUT"
expect_match "policies: multi, first rate" '^multi +fixed_window +3 +1h +- +enforce' "$OUT"
expect_match "policies: multi, second rate" '^ +fixed_window +10 +1d +-$' "$OUT"
expect_match "policies: shadow mode" '^shadowed +fixed_window +1 +1h +- +shadow' "$OUT"
ctl -s "$PUBLIC" --json policies
expect_eq "policies --json: exit 0" 0 "$RC"
echo "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
p = {x["name"]: x for x in doc["policies"]}
assert sorted(p) == ["bucket", "five", "multi", "shadowed"], p
assert p["five"]["algorithm"] == "fixed_window" and p["five"]["limit"] == 5
assert p["five"]["period_ms"] == 3600000 and p["five"]["mode"] == "enforce"
assert p["bucket"]["burst"] == 4 and p["bucket"]["exempt"] == 1 and p["bucket"]["overrides"] == 1
assert [r["limit"] for r in p["multi"]["rates"]] == [3, 10]
assert p["shadowed"]["mode"] == "shadow"
' && ok "policies --json: fields" || fail "policies --json: fields: $OUT"

# ---- stats ----
# five, every answered item: checks (user1 5 allowed + 3 denied, user2 1 allowed, tab
# key 5 allowed + 2 denied), peeks (user2 2 allowed, user1 2 denied), adjusts (2
# allowed); the cost of 6 is an error
ctl -s "$PUBLIC" stats
expect_eq "stats: exit 0" 0 "$RC"
expect_match "stats: overall line" '^uptime [0-9]+s, connections 1, in flight 0, refused 0, reloads 0 \(0 refused\)$' "$OUT"
expect_match "stats: store line" '^store memory: keys [0-9]+, max_keys 1000000' "$OUT"
expect_match "stats: header" '^POLICY +ALLOWED +DENIED +SHADOW_DENIED +EXEMPT +BLOCKED +ERRORS +STORE_ERRORS +FALLBACKS$' "$OUT"
expect_match "stats: five" '^five +15 +7 +0 +0 +0 +1 +0 +0$' "$OUT"
expect_match "stats: shadowed" '^shadowed +1 +0 +1 +0 +0 +0 +0 +0$' "$OUT"
expect_match "stats: bucket (exempt counted as allowed)" '^bucket +1 +0 +0 +1 +0 +0 +0 +0$' "$OUT"
ctl -s "$PUBLIC" --json stats
expect_eq "stats --json: exit 0" 0 "$RC"
echo "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
five = [p for p in doc["policies"] if p["name"] == "five"][0]
assert (five["allowed"], five["denied"], five["errors"]) == (15, 7, 1), five
assert doc["connections"] == 1 and doc["uptime_s"] >= 0 and doc["store"]["type"] == "memory"
assert doc["reloads"] == 0 and doc["in_flight"] == 0
' && ok "stats --json: fields" || fail "stats --json: fields: $OUT"

# ---- top ----
ctl -s "$PUBLIC" top
expect_eq "top: exit 0" 0 "$RC"
expect_match "top: header" '^POLICY +KEY +DENIED +ERROR$' "$OUT"
expect_match "top: user1 first" '^five +user1 +3 +0$' "$OUT"
expect_match "top: the tab key, escaped" '^five +a\\x20b\\x09c +2 +0$' "$OUT"
expect_eq "top: user1 before the tab key" "user1" "$(echo "$OUT" | sed -n 2p | awk '{print $2}')"
expect_no_match "top: PEEK denials are not counted" '^five +user1 +[4-9]' "$OUT"
ctl -s "$PUBLIC" top five -k 1
expect_eq "top -k 1: exit 0" 0 "$RC"
expect_eq "top -k 1: one key" 2 "$(echo "$OUT" | wc -l)"
ctl -s "$PUBLIC" top bucket
expect_eq "top of a policy without denials: exit 0" 0 "$RC"
expect_match "top of a policy without denials" '^no denied keys in the last 60 to 120 seconds$' "$OUT"
ctl -s "$PUBLIC" top nosuch
expect_eq "top of an unknown policy: exit 2" 2 "$RC"
expect_match "top of an unknown policy: reason" 'UNKNOWN_POLICY: no policy "nosuch"' "$ERR"
ctl -s "$PUBLIC" --json top -k 5
expect_eq "top --json: exit 0" 0 "$RC"
echo "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
assert doc["window_s"] == 60
assert [p["name"] for p in doc["policies"]] == ["five"], doc
keys = doc["policies"][0]["keys"]
assert keys[0] == {"key": "user1", "denied": 3, "error": 0}, keys
assert keys[1]["key"] == "a\\x20b\\x09c" and keys[1]["escaped"] is True, keys
assert bytes.fromhex(keys[1]["key_hex"]) == b"a b\tc" and keys[1]["denied"] == 2, keys
' && ok "top --json: keys, escaping, hex" || fail "top --json: $OUT"

# ---- reload ----
ctl -s "$ADMIN" reload
expect_eq "reload: exit 0" 0 "$RC"
expect_eq "reload: human" "reloaded: 4 policies" "$OUT"
ctl -s "$ADMIN" --json reload
expect_eq "reload --json: exit 0" 0 "$RC"
expect_eq "reload --json" '{"reloaded":true,"policies":4}' "$OUT"
ctl -s "$ADMIN" reset five user1
expect_eq "reset on the admin listener: exit 0" 0 "$RC"
expect_eq "reset: human" "ok" "$OUT"
ctl -s "$PUBLIC" check five user1
expect_eq "reset forgot the key" 0 "$RC"
ctl -s "$ADMIN" --json reset five user1
expect_eq "reset --json: exit 0" 0 "$RC"
expect_match "reset --json" '^\{"allowed":true,.*"status":"ALLOWED","flags":\[\]\}$' "$OUT"
ctl -s "$PUBLIC" --json top -k 1
expect_eq "top --json -k 1: one key per policy" 1 \
    "$(echo "$OUT" | "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)["policies"][0]["keys"]))')"

stop_daemon
finish
