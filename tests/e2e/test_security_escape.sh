#!/bin/bash
# test_security_escape.sh: names and keys are shown escaped wherever they are printed
# (issue 11, point 11): a policy name with a newline cannot forge a denial-log line or a
# daemon log line; rlimitctl top, stats and policies print no C1 control, bidi override
# or other control byte from a key or name; a key spelling `\x0a` and a key holding a
# newline print differently; the admin JSON is ASCII, so --json output cannot drive a
# terminal either.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

# Policy names as a hostile config may hold them (JSON escapes: \n, U+202E, U+009B).
EVIL_NL='evil\nname 2026-01-01T00:00:00.000Z policy=api key=forged retry_after_ms=1'
write_config() { # EXTRA_POLICY_FIELDS
    cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock"],
 "denial_log": {"path": "$DIR/denials.log", "lines_per_s": 1000},
 "policies": {
   "one": {"algorithm": "fixed_window", "limit": 1, "period": "1h"},
   "$EVIL_NL": {"algorithm": "fixed_window", "limit": 1, "period": "1h"},
   "rtl\u202eexe": {"algorithm": "fixed_window", "limit": 1, "period": "1h"},
   "csi\u009b2J": {"algorithm": "fixed_window", "limit": 1, "period": "1h"$1}
 }}
JSON
}
write_config ""
start_daemon "$DIR/rlimitd.json"
ADMIN="unix:$DIR/admin.sock"
NL_NAME=$(printf 'evil\nname 2026-01-01T00:00:00.000Z policy=api key=forged retry_after_ms=1')
RTL_NAME=$(printf 'rtl\xe2\x80\xaeexe')
CSI_NAME=$(printf 'csi\xc2\x9b2J')

# Bytes no human output may hold: C0 controls but newline and tab... none at all but
# newline; DEL; C1 (U+0080-U+009F as UTF-8); U+202E and the other bidi controls.
no_raw_controls() { # WHAT TEXT
    if printf '%s' "$2" | LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]|\xd8\x9c'; then
        fail "$1: raw control or bidi bytes in: $(printf '%s' "$2" | od -c | head -5)"
    else
        ok "$1: no raw control or bidi bytes"
    fi
}

# ---- denials: two of each policy, keys chosen to look alike ----
for key in 'a\x0a' "$(printf 'a\nb')" "$(printf 'x\xc2\x9b31my')" "$(printf 'doc\xe2\x80\xaefdp.exe')"; do
    ctl -s "$ADMIN" check one "$key"
    ctl -s "$ADMIN" check one "$key"
done
expect_eq "the last odd key is denied" 1 "$RC"
for name in "$NL_NAME" "$RTL_NAME" "$CSI_NAME"; do
    ctl -s "$ADMIN" check "$name" k
    ctl -s "$ADMIN" check "$name" k
    expect_eq "a check under an odd policy name is denied" 1 "$RC"
done

# ---- the denial log: 7 denials, 7 lines, printable ASCII, names escaped ----
expect_eq "one line per denial (no forged line)" 7 "$(wc -l <"$DIR/denials.log")"
expect_no_match "no line starts with the forged text" '^2026-01-01T' "$(cat "$DIR/denials.log")"
expect_match "the newline name is escaped" ' policy=evil\\x0aname\\x202026-01-01T00:00:00\.000Z\\x20policy=api\\x20key=forged\\x20retry_after_ms=1 key=k retry_after_ms=[0-9]+$' "$(cat "$DIR/denials.log")"
expect_match "the bidi name is escaped" ' policy=rtl\\xe2\\x80\\xaeexe key=k ' "$(cat "$DIR/denials.log")"
expect_match "a literal backslash key" ' key=a\\\\x0a ' "$(cat "$DIR/denials.log")"
expect_match "a newline key" ' key=a\\x0ab ' "$(cat "$DIR/denials.log")"
[ -z "$(LC_ALL=C tr -d '\n\041-\176 ' <"$DIR/denials.log")" ] && ok "the denial log is printable ASCII" ||
    fail "non-printable bytes in the denial log"

# ---- rlimitctl top: exact bytes, escaped; look-alike keys look different ----
ctl -s "$ADMIN" top
expect_eq "top: exit 0" 0 "$RC"
no_raw_controls "top" "$OUT"
expect_match "top: the key spelling \\x0a" '^one +a\\\\x0a +1 +0$' "$OUT"
expect_match "top: the key holding a newline" '^one +a\\x0ab +1 +0$' "$OUT"
expect_match "top: C1 CSI escaped" '^one +x\\xc2\\x9b31my +1 +0$' "$OUT"
expect_match "top: U+202E escaped" '^one +doc\\xe2\\x80\\xaefdp\.exe +1 +0$' "$OUT"
expect_match "top: the newline policy on one row" '^evil\\x0aname\\x202026-01-01T00:00:00\.000Z\\x20policy=api\\x20key=forged\\x20retry_after_ms=1 +k +1 +0$' "$OUT"
expect_match "top: the bidi policy" '^rtl\\xe2\\x80\\xaeexe +k +1 +0$' "$OUT"
expect_match "top: the CSI policy" '^csi\\xc2\\x9b2J +k +1 +0$' "$OUT"
ctl -s "$ADMIN" --json top
no_raw_controls "top --json" "$OUT"
[ -z "$(printf '%s' "$OUT" | LC_ALL=C tr -d '\n\040-\176')" ] && ok "top --json is ASCII" ||
    fail "top --json holds non-ASCII bytes"
echo "$OUT" | "$PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
keys = {}
for p in doc["policies"]:
    for k in p["keys"]:
        raw = bytes.fromhex(k["key_hex"]) if "key_hex" in k else k["key"].encode()
        keys[(p["name"], raw)] = k
        assert ("key_hex" in k) == k.get("escaped", False), k
one = {raw: k["key"] for (name, raw), k in keys.items() if name == "one"}
assert one[b"a\\x0a"] == "a\\\\x0a" and one[b"a\nb"] == "a\\x0ab", one
assert one["x\u009b31my".encode()] == "x\\xc2\\x9b31my", one
assert one["doc\u202efdp.exe".encode()] == "doc\\xe2\\x80\\xaefdp.exe", one
assert ("rtl\u202eexe", b"k") in keys and ("csi\u009b2J", b"k") in keys, keys
' && ok "top --json: key escaped, key_hex exact, names exact" || fail "top --json: $OUT"

# ---- stats and policies: one row per policy, names escaped ----
for cmd in stats policies; do
    ctl -s "$ADMIN" "$cmd"
    expect_eq "$cmd: exit 0" 0 "$RC"
    no_raw_controls "$cmd" "$OUT"
    expect_match "$cmd: the newline policy on one row" '^evil\\x0aname\\x202026-01-01T00:00:00\.000Z\\x20policy=api\\x20key=forged\\x20retry_after_ms=1 +' "$OUT"
    expect_match "$cmd: the bidi policy" '^rtl\\xe2\\x80\\xaeexe +' "$OUT"
    expect_no_match "$cmd: no row starts with the forged text" '^name|^2026' "$OUT"
    ctl -s "$ADMIN" --json "$cmd"
    [ -z "$(printf '%s' "$OUT" | LC_ALL=C tr -d '\n\040-\176')" ] && ok "$cmd --json is ASCII" ||
        fail "$cmd --json holds non-ASCII bytes"
done

# ---- the daemon's log: a refused reload names the policy, on one line ----
write_config ', "mode": "bogus"'
sed -i 's/"csi\\u009b2J"/"csi\\u009b2J\\nrlimitd: info: forged \\u202e"/' "$DIR/rlimitd.json"
ctl -s "$ADMIN" reload
expect_eq "reload of a bad config: exit 2" 2 "$RC"
no_raw_controls "the reload error" "$ERR"
wait_log "reload refused"
expect_no_match "no forged daemon log line" '^rlimitd: info: forged' "$(cat "$DAEMON_LOG")"
expect_match "the name is escaped in the daemon log" 'csi\\xc2\\x9b2J\\x0arlimitd: info: forged \\xe2\\x80\\xae' "$(cat "$DAEMON_LOG")"
no_raw_controls "the daemon log" "$(cat "$DAEMON_LOG")"

stop_daemon
finish
