#!/bin/bash
# test_ops_http.sh: the HTTP endpoint of a real daemon: /check (200, 429 and their
# headers), /auth (403), parameters from the query or X-RateLimit-* headers, 400s
# naming the parameter, 404/405/414, evhttp's limits, /healthz, /metrics, and 503
# when the store cannot decide.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "http:127.0.0.1:0"],
 "limits": {"max_key": 64},
 "policies": {
   "five": {"algorithm": "fixed_window", "limit": 5, "period": "1h"},
   "big":  {"algorithm": "token_bucket", "limit": 100, "period": "1m"},
   "lists": {"algorithm": "fixed_window", "limit": 1, "period": "1m", "block": ["foe"]}
 }}
JSON
start_daemon "$DIR/rlimitd.json"
PORT=$(http_port)
[ -n "$PORT" ] || { fail "no HTTP port in the log"; finish; }

header() { printf '%s\n' "$1" | sed -n "s/^$2: //p" | head -1; }
body() { printf '%s\n' "$1" | sed '1,/^$/d'; }

R=$(http "$PORT" /healthz)
expect_eq "/healthz: 200" "status 200" "$(echo "$R" | head -1)"
expect_eq "/healthz: body" "ok" "$(body "$R")"

# ---- /check: five allowed, then 429 ----
for i in 1 2 3 4 5; do
    R=$(http "$PORT" "/check?policy=five&key=u1")
    expect_eq "check $i: 200" "status 200" "$(echo "$R" | head -1)"
    expect_eq "check $i: X-RateLimit-Remaining" "$((5 - i))" "$(header "$R" x-ratelimit-remaining)"
done
expect_eq "X-RateLimit-Limit" 5 "$(header "$R" x-ratelimit-limit)"
expect_match "X-RateLimit-Reset: seconds up to the window" '^[1-9][0-9]*$' "$(header "$R" x-ratelimit-reset)"
expect_eq "RateLimit-Policy" '"five";q=5;w=3600' "$(header "$R" ratelimit-policy)"
expect_match "RateLimit" '^"five";r=0;t=[1-9][0-9]*$' "$(header "$R" ratelimit)"
expect_eq "no Retry-After when allowed" "" "$(header "$R" retry-after)"
expect_match "allowed body" '^\{"allowed":true,"limit":5,"remaining":0,' "$(body "$R")"
expect_eq "JSON content type" "application/json" "$(header "$R" content-type)"
R=$(http "$PORT" "/check?policy=five&key=u1")
expect_eq "over the limit: 429" "status 429" "$(echo "$R" | head -1)"
RETRY=$(header "$R" retry-after)
expect_match "429: Retry-After in whole seconds" '^[1-9][0-9]*$' "$RETRY"
[ "${RETRY:-0}" -le 3600 ] && ok "Retry-After within the window" || fail "Retry-After $RETRY > 3600"
expect_eq "429: X-RateLimit-Remaining" 0 "$(header "$R" x-ratelimit-remaining)"
expect_match "429: body" '^\{"allowed":false,"limit":5,"remaining":0,"reset_after_ms":[0-9]+,"retry_after_ms":[1-9]' "$(body "$R")"
R=$(http "$PORT" "HEAD /check?policy=five&key=u1")
expect_eq "HEAD: 429 too" "status 429" "$(echo "$R" | head -1)"
expect_eq "HEAD: no body" "" "$(body "$R")"

# ---- /auth: 403 when denied ----
R=$(http "$PORT" "/auth?policy=five&key=u1")
expect_eq "/auth denied: 403" "status 403" "$(echo "$R" | head -1)"
expect_match "/auth denied: Retry-After" '^[1-9][0-9]*$' "$(header "$R" retry-after)"
R=$(http "$PORT" "/auth?policy=five&key=u2")
expect_eq "/auth allowed: 200" "status 200" "$(echo "$R" | head -1)"
R=$(http "$PORT" "/auth?policy=lists&key=foe")
expect_eq "/auth blocked key: 403" "status 403" "$(echo "$R" | head -1)"

# ---- parameters from headers; the query wins ----
R=$(http "$PORT" "/check" "X-RateLimit-Policy: five" "X-RateLimit-Key: viaheader")
expect_eq "policy and key from headers: 200" "status 200" "$(echo "$R" | head -1)"
expect_eq "policy and key from headers: counted" 4 "$(header "$R" x-ratelimit-remaining)"
R=$(http "$PORT" "/check?policy=five&key=u1" "X-RateLimit-Key: fresh")
expect_eq "the query's key wins over the header" "status 429" "$(echo "$R" | head -1)"
R=$(http "$PORT" "/check?policy=big&key=c&cost=60")
expect_eq "cost=60: remaining 40" 40 "$(header "$R" x-ratelimit-remaining)"
R=$(http "$PORT" "/check?policy=big&key=c" "X-RateLimit-Cost: 30")
expect_eq "cost from the header: remaining 10" 10 "$(header "$R" x-ratelimit-remaining)"
R=$(http "$PORT" "/check?policy=five&key=a%00b%2Bc+d")
expect_eq "percent-encoded binary key: 200" "status 200" "$(echo "$R" | head -1)"
for i in 1 2 3 4 5; do http "$PORT" "/check?policy=five&key=a%00b%2Bc+d" >/dev/null; done
ctl -s "unix:$DIR/admin.sock" --json top five
echo "$OUT" | "$PYTHON" -c '
import json, sys
keys = {bytes.fromhex(k["key_hex"]) if "key_hex" in k else k["key"].encode(): k["denied"]
        for k in json.load(sys.stdin)["policies"][0]["keys"]}
assert keys.get(b"a\0b+c d") == 1, keys
' && ok "the key reached the engine byte for byte" || fail "binary key: $OUT"

# ---- 400s name the parameter ----
check_400() { # WHAT TARGET BODY-REGEX [HEADER]
    local what=$1 target=$2 regex=$3
    shift 3
    R=$(http "$PORT" "$target" "$@")
    expect_eq "$what: 400" "status 400" "$(echo "$R" | head -1)"
    expect_match "$what: reason" "$regex" "$(body "$R")"
}
check_400 "no policy" "/check?key=k" '^policy: missing'
check_400 "empty policy" "/check?policy=&key=k" '^policy: missing'
check_400 "unknown policy" "/check?policy=nope&key=k" '^policy: no policy named "nope"$'
check_400 "no key" "/check?policy=five" '^key: missing'
check_400 "key over max_key" "/check?policy=five&key=$(printf 'k%.0s' $(seq 65))" '^key: longer than'
check_400 "cost 0" "/check?policy=five&key=k&cost=0" '^cost: '
check_400 "cost not a number" "/check?policy=five&key=k&cost=1x" '^cost: must be a whole number'
check_400 "cost negative" "/check?policy=five&key=k&cost=-1" '^cost: must be a whole number'
check_400 "cost past 32 bits" "/check?policy=five&key=k&cost=4294967296" '^cost: must be a whole number'
check_400 "cost above the policy's capacity" "/check?policy=five&key=k&cost=6" '^cost: more than policy "five"'
check_400 "unknown parameter" "/check?policy=five&key=k&kee=x" '^unknown parameter "kee"'
check_400 "parameter twice" "/check?policy=five&key=k&key=j" '^key: given twice$'
check_400 "bad percent-encoding" "/check?policy=five&key=%zz" '^key: bad percent-encoding$'
check_400 "bad cost header" "/check?policy=five&key=k" '^cost: ' "X-RateLimit-Cost: lots"

# ---- routing and evhttp limits ----
R=$(http "$PORT" /nope)
expect_eq "unknown path: 404" "status 404" "$(echo "$R" | head -1)"
R=$(http "$PORT" "POST /check?policy=five&key=k")
expect_eq "POST: 405" "status 405" "$(echo "$R" | head -1)"
expect_eq "405: Allow" "GET, HEAD" "$(header "$R" allow)"
R=$(http "$PORT" "/check?policy=five&key=$(printf 'x%.0s' $(seq 5000))")
expect_eq "5 KB URL: 414" "status 414" "$(echo "$R" | head -1)"
R=$(http "$PORT" "/check?policy=five&key=$(printf 'x%.0s' $(seq 10000))")
expect_match "10 KB URL: refused by evhttp" '^status (400|413|414|none)$' "$(echo "$R" | head -1)"
R=$(http "$PORT" "/healthz" "X-Filler: $(printf 'y%.0s' $(seq 10000))")
expect_match "10 KB header: refused by evhttp" '^status (400|413|431|none)$' "$(echo "$R" | head -1)"
R=$(http "$PORT" /healthz)
expect_eq "still serving after refusals" "status 200" "$(echo "$R" | head -1)"

# ---- /metrics ----
R=$(http "$PORT" /metrics)
expect_eq "/metrics: 200" "status 200" "$(echo "$R" | head -1)"
expect_eq "/metrics: content type" "text/plain; version=0.0.4" "$(header "$R" content-type)"
M=$(body "$R")
# five: u1 5 allowed + 3 denied (GET, HEAD, header-key check) + /auth 1 denied; u2 1,
# viaheader 1, binary key 5 allowed + 1 denied; errors: cost 6, the key over max_key
expect_match "decisions allowed" '^rlimitd_decisions_total\{policy="five",result="allowed"\} 12$' "$M"
expect_match "decisions denied" '^rlimitd_decisions_total\{policy="five",result="denied"\} 5$' "$M"
expect_match "decisions error" '^rlimitd_decisions_total\{policy="five",result="error"\} 2$' "$M"
expect_match "blocked" '^rlimitd_blocked_total\{policy="lists"\} 1$' "$M"
expect_match "store errors" '^rlimitd_store_errors_total\{policy="five"\} 0$' "$M"
expect_match "fallbacks" '^rlimitd_fallbacks_total\{policy="big"\} 0$' "$M"
expect_match "connections" '^rlimitd_connections 0$' "$M"
expect_match "uptime" '^rlimitd_uptime_seconds [0-9]+$' "$M"
expect_match "http responses" '^rlimitd_http_responses_total\{code="4xx"\} [1-9][0-9]*$' "$M"
echo "$M" | "$PYTHON" -c '
import re, sys
declared, seen = {}, set()
for line in sys.stdin.read().splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        declared[name] = kind
    elif line.startswith("# HELP ") or not line:
        continue
    else:
        m = re.fullmatch(r"([a-z_]+)(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? (-?[0-9.e+]+|\+Inf)", line)
        assert m, line
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m.group(1) not in declared else m.group(1)
        assert family in declared, "no TYPE before " + line
        seen.add(family)
assert "rlimitd_decisions_total" in seen and len(seen) >= 10, seen
' && ok "/metrics: every sample well-formed, under a declared family" || fail "/metrics format"

stop_daemon

# ---- 503: a store that cannot decide (the embedded store is full) ----
cat >"$DIR/full.json" <<JSON
{"listen": ["unix:$DIR/admin2.sock", "http:127.0.0.1:0"],
 "store": {"type": "memory", "max_keys": 1},
 "policies": {"five": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}}}
JSON
start_daemon "$DIR/full.json" "$DIR/daemon2.log"
PORT=$(http_port)
R=$(http "$PORT" "/check?policy=five&key=first")
expect_eq "the one key the store holds: 200" "status 200" "$(echo "$R" | head -1)"
R=$(http "$PORT" "/check?policy=five&key=second")
expect_eq "store full: 503" "status 503" "$(echo "$R" | head -1)"
expect_eq "503: Retry-After" 1 "$(header "$R" retry-after)"
expect_match "503: reason" '^STORE_FULL$' "$(body "$R")"
stop_daemon
finish
