#!/bin/bash
# test_leases_cli.sh: rlimitctl acquire, release, renew and leases against a real daemon
# with a concurrency policy of limit 2: the leases rlimitctl takes outlive its process
# (DETACH), the third acquire is denied (exit 1) with a retry_after, a release frees a
# slot, a second release of the same lease is LEASE_UNKNOWN (exit 2), renew, the leases
# table and its --json, the kind of policy each command takes, and the admin restriction.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", {"address": "unix:$DIR/public.sock", "admin": false}],
 "policies": {
   "uploads": {"algorithm": "concurrency", "limit": 2, "lease": "30s", "exempt": ["friend"]},
   "api":     {"algorithm": "fixed_window", "limit": 5, "period": "1h"}
 }}
JSON
start_daemon "$DIR/rlimitd.json"
ADMIN="unix:$DIR/admin.sock"
PUBLIC="unix:$DIR/public.sock"

# json FIELD: the field of the JSON object in $OUT, as Python prints it.
json() {
    printf '%s' "$OUT" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# ---- two acquires by two processes: both held after their processes ended ----
ctl -s "$PUBLIC" acquire uploads user1
expect_eq "acquire 1: exit 0" 0 "$RC"
expect_match "acquire 1: prints the lease id alone" '^[1-9][0-9]*$' "$OUT"
LEASE1=$OUT
ctl -s "$PUBLIC" --json acquire uploads user1
expect_eq "acquire 2 --json: exit 0" 0 "$RC"
expect_match "acquire 2 --json: lease as a decimal string" '"lease":"[1-9][0-9]*"\}$' "$OUT"
expect_eq "acquire 2 --json: allowed" True "$(json allowed)"
expect_eq "acquire 2 --json: limit" 2 "$(json limit)"
expect_eq "acquire 2 --json: remaining (free slots)" 0 "$(json remaining)"
expect_eq "acquire 2 --json: window_ms = lease" 30000 "$(json window_ms)"
expect_eq "acquire 2 --json: reset_after_ms = lease" 30000 "$(json reset_after_ms)"
expect_eq "acquire 2 --json: status" ALLOWED "$(json status)"
LEASE2=$(json lease)
if [ "$LEASE1" != "$LEASE2" ]; then ok "two leases, two ids"; else fail "one id twice: $LEASE1"; fi

# ---- the third is denied: the first two outlived their connections ----
ctl -s "$PUBLIC" acquire uploads user1
expect_eq "acquire 3: denied, exit 1" 1 "$RC"
expect_match "acquire 3: the decision with a retry_after" \
    '^denied  limit=2 remaining=0 reset_after=[0-9]+ms retry_after=[0-9]+ms window=30000ms$' "$OUT"
RETRY=$(printf '%s' "$OUT" | sed -n 's/.*retry_after=\([0-9]*\)ms.*/\1/p')
if [ "$RETRY" -gt 0 ] && [ "$RETRY" -le 30000 ]; then ok "retry_after within the lease ($RETRY ms)"; else
    fail "retry_after $RETRY ms is not in 1..30000"
fi
ctl -s "$PUBLIC" --json acquire uploads user1
expect_eq "acquire 3 --json: exit 1" 1 "$RC"
expect_eq "acquire 3 --json: lease 0" 0 "$(json lease)"
expect_eq "acquire 3 --json: status" DENIED "$(json status)"
ctl -s "$PUBLIC" acquire uploads user2
expect_eq "another key has its own slots" 0 "$RC"
LEASE_OTHER=$OUT

# ---- leases (admin) ----
ctl -s "$ADMIN" leases uploads user1
expect_eq "leases KEY: exit 0" 0 "$RC"
expect_match "leases: header" '^KEY +LEASE +SLOTS +EXPIRES_IN$' "$OUT"
expect_match "leases: lease 1" "^user1 +$LEASE1 +1 +[0-9]+(ms|s)\$" "$OUT"
expect_match "leases: lease 2" "^user1 +$LEASE2 +1 +[0-9]+(ms|s)\$" "$OUT"
expect_eq "leases KEY: only that key's two" 3 "$(printf '%s\n' "$OUT" | wc -l)"
ctl -s "$ADMIN" leases uploads
expect_match "leases POLICY: every key" "^user2 +$LEASE_OTHER +1 " "$OUT"
ctl -s "$ADMIN" --json leases uploads user1
expect_eq "leases --json: exit 0" 0 "$RC"
expect_eq "leases --json: ids as strings, slots, expiry" "ok" "$(printf '%s' "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
leases = sorted(doc["leases"], key=lambda l: l["lease"])
want = sorted(sys.argv[1:])
ok = (doc["policy"] == "uploads" and doc["truncated"] is False
      and [l["lease"] for l in leases] == want
      and all(l["key"] == "user1" and l["slots"] == 1 and 0 < l["expires_in_ms"] <= 30000
              for l in leases))
print("ok" if ok else doc)' "$LEASE1" "$LEASE2")"
ctl -s "$PUBLIC" leases uploads
expect_eq "leases on a non-admin listener: exit 2" 2 "$RC"
expect_match "leases on a non-admin listener: NOT_PERMITTED" 'NOT_PERMITTED' "$ERR"
ctl -s "$ADMIN" acquire uploads $'tab\tkey'
ctl -s "$ADMIN" leases uploads $'tab\tkey'
expect_match "leases: a key with a control byte is escaped" '^tab\\x09key +[0-9]+ +1 ' "$OUT"

# ---- renew ----
ctl -s "$PUBLIC" renew uploads user1 "$LEASE1"
expect_eq "renew: exit 0" 0 "$RC"
expect_eq "renew: human" "renewed  limit=2 remaining=0 reset_after=30000ms" "$OUT"
ctl -s "$PUBLIC" --json renew uploads user1 "$LEASE1"
expect_match "renew --json: the lease named" "\"status\":\"ALLOWED\".*\"lease\":\"$LEASE1\"\\}\$" "$OUT"

# ---- release frees a slot; twice is LEASE_UNKNOWN ----
ctl -s "$PUBLIC" release uploads user1 "$LEASE1"
expect_eq "release: exit 0" 0 "$RC"
expect_match "release: human, one slot free" '^released  limit=2 remaining=1 reset_after=[0-9]+ms$' "$OUT"
ctl -s "$PUBLIC" release uploads user1 "$LEASE1"
expect_eq "release twice: exit 2" 2 "$RC"
expect_match "release twice: LEASE_UNKNOWN" '^rlimitctl: LEASE_UNKNOWN' "$ERR"
ctl -s "$PUBLIC" --json release uploads user1 "$LEASE1"
expect_eq "release twice --json: exit 2" 2 "$RC"
expect_match "release twice --json: status and lease" \
    "\"status\":\"LEASE_UNKNOWN\".*\"lease\":\"$LEASE1\"\\}\$" "$OUT"
ctl -s "$PUBLIC" renew uploads user1 "$LEASE1"
expect_eq "renew of a released lease: exit 2" 2 "$RC"
expect_match "renew of a released lease: LEASE_UNKNOWN" 'LEASE_UNKNOWN' "$ERR"
ctl -s "$PUBLIC" release uploads user1 12345
expect_eq "release of an unknown lease: exit 2" 2 "$RC"
ctl -s "$PUBLIC" acquire uploads user1
expect_eq "the freed slot is taken again" 0 "$RC"
LEASE3=$OUT
ctl -s "$PUBLIC" acquire uploads user1
expect_eq "and the key is full again" 1 "$RC"

# ---- exempt keys, lease 0, bad ids ----
ctl -s "$PUBLIC" acquire uploads friend
expect_eq "exempt key: allowed" 0 "$RC"
expect_eq "exempt key: lease 0" "0" "$OUT"
expect_match "exempt key: said on stderr" 'exempt' "$ERR"
ctl -s "$PUBLIC" release uploads user1 0
expect_eq "release of lease 0: OK, exit 0" 0 "$RC"
for bad in abc -1 18446744073709551616 " 5" "5x" ""; do
    ctl -s "$PUBLIC" release uploads user1 -- "$bad"
    expect_eq "release with lease id '$bad': usage error" 2 "$RC"
    expect_match "release with lease id '$bad': says so" 'bad lease id|usage' "$ERR"
done
ctl -s "$PUBLIC" release uploads user1 18446744073709551615
expect_eq "lease id 2^64-1 parses (not held: exit 2)" 2 "$RC"
expect_match "lease id 2^64-1: LEASE_UNKNOWN" 'LEASE_UNKNOWN' "$ERR"

# ---- the kind of policy each command takes ----
ctl -s "$PUBLIC" acquire api user1
expect_eq "acquire of a rate policy: exit 2" 2 "$RC"
expect_match "acquire of a rate policy: POLICY_KIND" '^rlimitctl: POLICY_KIND' "$ERR"
ctl -s "$PUBLIC" check uploads user1
expect_eq "check of a concurrency policy: exit 2" 2 "$RC"
expect_match "check of a concurrency policy: POLICY_KIND" 'POLICY_KIND' "$ERR"
ctl -s "$PUBLIC" acquire uploads user2 -n 3
expect_eq "acquire of more slots than the limit: exit 2" 2 "$RC"
expect_match "acquire of more slots than the limit: COST_TOO_LARGE" 'COST_TOO_LARGE' "$ERR"
ctl -s "$PUBLIC" acquire nothing user1
expect_match "acquire of an unknown policy" 'UNKNOWN_POLICY' "$ERR"

# ---- usage errors ----
for args in "acquire uploads" "release uploads user1" "renew uploads" "leases" \
    "leases uploads a b"; do
    # shellcheck disable=SC2086 # the words of args are the arguments
    ctl -s "$ADMIN" $args
    expect_eq "usage error '$args': exit 2" 2 "$RC"
    expect_match "usage error '$args': usage" '^usage: rlimitctl' "$ERR"
done

# ---- what is left: the leases of user1 and user2 ----
ctl -s "$ADMIN" --json leases uploads
expect_eq "left held: lease 2, lease 3, user2's and the tab key's" 4 \
    "$(printf '%s' "$OUT" | "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)["leases"]))')"
expect_match "lease 3 among them" "\"lease\":\"$LEASE3\"" "$OUT"

stop_daemon
finish
