#!/bin/bash
# test_replay.sh: `rlimitctl replay` from the command line: each format (combined, jsonl,
# csv), standard input and gzip, --policy, --rules, --key, --compare, the --json fields,
# --decisions, --strict and malformed lines, out-of-order lines within and beyond the
# reorder window, exit statuses, the same log twice giving the same output, and the
# spreading of a combined log's whole seconds leaving fixed-window results unchanged.
# No daemon: replay decides with the daemon's code linked into rlimitctl.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 300

# rp ARGS: rlimitctl replay ARGS (under the wrapper: valgrind sees it too); sets OUT ERR RC.
rp() {
    OUT=$($RLIMITD_WRAPPER "$RLIMITCTL" replay "$@" 2>"$DIR/rp.err")
    RC=$?
    ERR=$(cat "$DIR/rp.err")
}
# field JSON EXPR: a Python expression over the report j, printed.
field() {
    "$PYTHON" -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}
pol() { # the policy NAME of run RUN (default 0) as a Python expression
    echo "[p for p in j['runs'][${2:-0}]['policies'] if p['name'] == '$1'][0]"
}

cat >"$DIR/a.json" <<JSON
{"listen": ["unix:$DIR/none.sock"], "policies": {
  "api":   {"algorithm": "fixed_window", "limit": 3, "period": "1s"},
  "login": {"algorithm": "sliding_window_log", "limit": 2, "period": "1m"},
  "tb":    {"algorithm": "token_bucket", "limit": 10, "period": "1s", "burst": 2},
  "big":   {"algorithm": "fixed_window", "limit": 5, "period": "1m"},
  "conc":  {"algorithm": "concurrency", "limit": 2}}}
JSON
sed 's/"limit": 3, "period": "1s"/"limit": 5, "period": "1s"/' "$DIR/a.json" >"$DIR/b.json"

# A combined log: 10.0.0.1 sends 5 requests in each of two seconds, 10.0.0.2 one.
"$PYTHON" - "$DIR" <<'PY'
import sys, time
d = sys.argv[1]
def clf(sec):
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec))
T0 = 1733300000
lines = []
for s in range(2):
    for i in range(5):
        lines.append(f'10.0.0.1 - - [{clf(T0 + s)}] "GET /api/x?i={i} HTTP/1.1" 200 5 "-" "ua b"')
lines.append(f'10.0.0.2 - - [{clf(T0 + 1)}] "GET /api/y HTTP/1.1" 200 5 "-" "ua"')
open(f"{d}/c.log", "w").write("\n".join(lines) + "\n")
PY

# ---- combined, --policy, text and --json ----
rp -c "$DIR/a.json" --policy api "$DIR/c.log"
expect_eq "combined text: exit 0" 0 "$RC"
expect_match "combined text: requests" 'requests +11' "$OUT"
expect_match "combined text: would deny" 'would deny +4 \(36\.36%\)' "$OUT"
expect_match "combined text: the denied key" 'ip:10\.0\.0\.1 +4 +7 +2 ' "$OUT"
rp -c "$DIR/a.json" --policy api --json "$DIR/c.log"
J=$OUT
expect_eq "json: exit 0" 0 "$RC"
P=$(pol api)
expect_eq "json: totals" "11 11 0 0" "$(field "$J" "j['lines'], j['requests'], j['malformed'], j['unmatched']" | tr -d '(),')"
expect_eq "json: policy figures" "fixed_window 11 7 4 36.36 2 1" \
    "$(field "$J" "' '.join(str($P[k]) for k in ['algorithm','requests','allowed','denied','denied_pct','keys','keys_denied'])")"
# requests: from the key's first denial on (3 allowed before it are not followed).
expect_eq "json: top denied key" "ip:10.0.0.1 4 7 2" \
    "$(field "$J" "' '.join(str($P['top_denied'][0][k]) for k in ['key','denied','requests','longest_streak'])")"
expect_eq "json: its retry-after is within the second" "True" \
    "$(field "$J" "0 < $P['top_denied'][0]['max_retry_after_ms'] <= 1000")"
expect_eq "json: peak" "6 1733300001000000" "$(field "$J" "$P['peak']['per_s'], $P['peak']['at_us']" | tr -d '(),')"
expect_eq "json: series" "1 [5, 6] [3, 4]" \
    "$(field "$J" "$P['series']['step_s'], $P['series']['offered'], $P['series']['admitted']" | sed 's/^(//; s/)$//; s/, \[/ [/g')"
expect_eq "json: span" "1733300000000000 1" "$(field "$J" "j['span']['first_us'], j['step_s']" | tr -d '(),')"

# ---- the same log from standard input, gzip-compressed, twice: identical output ----
gzip -c "$DIR/c.log" >"$DIR/c.log.gz"
cp "$DIR/c.log.gz" "$DIR/c-gzip-without-suffix"
for src in - "$DIR/c.log.gz" "$DIR/c-gzip-without-suffix"; do
    if [ "$src" = - ]; then
        OUT=$($RLIMITD_WRAPPER "$RLIMITCTL" replay -c "$DIR/a.json" --policy api --json - <"$DIR/c.log")
    else
        rp -c "$DIR/a.json" --policy api --json "$src"
    fi
    expect_eq "same report from $(basename -- "$src")" "$J" "$OUT"
done
rp -c "$DIR/a.json" --policy api --json "$DIR/c.log"
expect_eq "the same log twice: identical JSON" "$J" "$OUT"
rp -c "$DIR/a.json" --policy api "$DIR/c.log"
T1=$OUT
rp -c "$DIR/a.json" --policy api "$DIR/c.log"
expect_eq "the same log twice: identical text" "$T1" "$OUT"

# ---- --compare: side by side, the key whose outcome changes ----
rp -c "$DIR/a.json" --compare "$DIR/b.json" --policy api --json "$DIR/c.log"
expect_eq "compare: exit 0" 0 "$RC"
expect_eq "compare: denied under each" "4 0" "$(field "$OUT" "$(pol api 0)['denied'], $(pol api 1)['denied']" | tr -d '(),')"
expect_eq "compare: changes" "[{'policy': 'api', 'key': 'ip:10.0.0.1', 'denied': [4, 0]}]" "$(field "$OUT" "j['changes']")"
rp -c "$DIR/a.json" --compare "$DIR/b.json" --policy api "$DIR/c.log"
expect_match "compare text: both configs" "a\.json +.*b\.json" "$OUT"
expect_match "compare text: the change" 'api +ip:10\.0\.0\.1 +4 -> 0' "$OUT"

# ---- --decisions: one line per request, in decision order ----
rp -c "$DIR/a.json" --policy api --decisions "$DIR/d.jsonl" "$DIR/c.log"
expect_eq "decisions: one per request" 11 "$(wc -l <"$DIR/d.jsonl")"
expect_eq "decisions: the 4th" '{"line": 4, "ts_us": 1733300000600000, "policy": "api", "key": "ip:10.0.0.1", "allowed": false, "remaining": 0, "retry_after_ms": 400}' \
    "$(sed -n 4p "$DIR/d.jsonl")"
expect_eq "decisions: allowed count" 7 "$(grep -c '"allowed": true' "$DIR/d.jsonl")"

# ---- jsonl with --rules: prefixes, routes, exempt, unmatched ----
cat >"$DIR/rules.json" <<'JSON'
{"rules": [{"path": "/api/", "policy": "api"}, {"route": "/login/{user}", "policy": "login"}],
 "default": null, "exempt": ["/health"]}
JSON
cat >"$DIR/j.log" <<'LOG'
{"ts": "2024-12-04T08:13:20Z", "key": "u1", "path": "/login/u1"}
{"ts": "2024-12-04T08:13:30.5Z", "key": "u1", "path": "/login/u1"}
{"ts": 1733300040.25, "key": "u1", "path": "/login/u1"}
{"ts": 1733300041, "key": "u1", "path": "/health"}
{"ts": 1733300042, "key": "u1", "path": "/other"}
{"ts": 1733300043, "key": "u2", "path": "/api/x", "cost": 3}
{"ts": 1733300044, "key": "u2", "path": "/api/x", "policy": "big", "cost": 5}
LOG
rp -c "$DIR/a.json" --rules "$DIR/rules.json" --format jsonl --json "$DIR/j.log"
expect_eq "jsonl rules: exit 0" 0 "$RC"
expect_eq "jsonl rules: requests, unmatched, exempt" "7 1 1" "$(field "$OUT" "j['requests'], j['unmatched'], j['exempt']" | tr -d '(),')"
expect_eq "jsonl rules: login" "3 2 1" "$(field "$OUT" "$(pol login)['requests'], $(pol login)['allowed'], $(pol login)['denied']" | tr -d '(),')"
expect_eq "jsonl rules: the line's own policy wins" "1 1" "$(field "$OUT" "$(pol big)['requests'], $(pol big)['allowed']" | tr -d '(),')"
expect_eq "jsonl rules: cost 3 of 3" "1 1" "$(field "$OUT" "$(pol api)['requests'], $(pol api)['allowed']" | tr -d '(),')"

# ---- --key field:NAME, csv with quoting ----
printf '%s\n' '{"ts": 1733300000, "key": "same", "user": "a"}' '{"ts": 1733300000.01, "key": "same", "user": "b"}' \
    '{"ts": 1733300000.02, "key": "same", "user": "a"}' >"$DIR/k.log"
rp -c "$DIR/a.json" --policy tb --format jsonl --key field:user --json "$DIR/k.log"
expect_eq "--key field:user: two keys, none denied" "2 0" "$(field "$OUT" "$(pol tb)['keys'], $(pol tb)['denied']" | tr -d '(),')"
rp -c "$DIR/a.json" --policy tb --format jsonl --json "$DIR/k.log"
expect_eq "default key field: one key, burst 2 then denied" "1 1" "$(field "$OUT" "$(pol tb)['keys'], $(pol tb)['denied']" | tr -d '(),')"
printf '%s\r\n' 'policy,ts,key,note' 'api,1733300000,"k,1","a ""note"""' 'api,1733300000.5,"k,1",' \
    'api,1733300000.6,"k,1",x' 'api,1733300000.7,"k,1",x' >"$DIR/c.csv"
rp -c "$DIR/a.json" --format csv --json "$DIR/c.csv"
expect_eq "csv: exit 0" 0 "$RC"
expect_eq "csv: decided" "4|3|1|k,1" "$(field "$OUT" "'|'.join(str(x) for x in ($(pol api)['requests'], $(pol api)['allowed'], $(pol api)['denied'], $(pol api)['top_denied'][0]['key']))")"

# ---- a hostile key is escaped in the text report, exact in JSON ----
for i in 1 2 3 4; do printf '{"ts": 1733300000, "key": "evil\\u001b[31mred\\n", "path": "/"}\n'; done >"$DIR/evil.log"
rp -c "$DIR/a.json" --policy api --format jsonl "$DIR/evil.log"
expect_match "hostile key: escaped in text" 'evil\\x1b\[31mred\\x0a +1 ' "$OUT"
expect_no_match "hostile key: no escape byte in text" $'\x1b' "$OUT"
rp -c "$DIR/a.json" --policy api --format jsonl --json "$DIR/evil.log"
expect_eq "hostile key: escaped in JSON as TOP does, exact in key_hex" \
'evil\x1b[31mred\x0a True 6576696c1b5b33316d7265640a' \
    "$(field "$OUT" "' '.join(str($(pol api)['top_denied'][0][k]) for k in ['key', 'escaped', 'key_hex'])")"

# ---- keys that are not text: escaped as TOP does, exact bytes in key_hex, never '?' ----
# An address of bytes ff fe (not UTF-8) and a key holding a newline, four requests each in
# one second: policy api (3 a second) denies the 4th under a.json, b.json (5) none.
"$PYTHON" - "$DIR" <<'PY'
import sys, time
d = sys.argv[1]
t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(1733300000))
with open(f"{d}/bytes.log", "wb") as f:
    for i in range(4):
        f.write(b'\xff\xfe - - [' + t.encode() + b'] "GET /api/z HTTP/1.1" 200 5 "-" "ua"\n')
with open(f"{d}/newline.log", "w") as f:
    for i in range(4):
        f.write('{"ts": 1733300000.%d, "key": "a\\nb", "path": "/"}\n' % i)
PY
# key_entry KEY_HEX: the top_denied entries (run a's only: b denies nothing), changes and
# decision lines whose key_hex is KEY_HEX, with their fields.
key_entry() {
    "$PYTHON" -c '
import json, sys
j = json.loads(open(sys.argv[1]).read())
d = [json.loads(l) for l in open(sys.argv[2])]
top = [e for r in j["runs"] for p in r["policies"] for e in p["top_denied"] if e.get("key_hex") == sys.argv[3]]
ch = [c for c in j["changes"] if c.get("key_hex") == sys.argv[3]]
dec = [x for x in d if x.get("key_hex") == sys.argv[3]]
print(len(top), top[0]["key"] if top else None, top[0].get("escaped") if top else None,
      top[0]["denied"] if top else None, len(ch), ch[0]["key"] if ch else None,
      ch[0]["denied"] if ch else None, len(dec), sorted({x["key"] for x in dec}))
' "$DIR/rp.json" "$DIR/rp.decisions" "$1"
}
rp -c "$DIR/a.json" --compare "$DIR/b.json" --policy api --json --decisions "$DIR/rp.decisions" "$DIR/bytes.log"
printf '%s\n' "$OUT" >"$DIR/rp.json"
expect_eq "address ff fe: exit 0" 0 "$RC"
expect_eq "address ff fe: in top_denied, changes and every decision, escaped, exact in key_hex" \
    '1 ip:\xff\xfe True 1 1 ip:\xff\xfe [1, 0] 4 ['"'"'ip:\\xff\\xfe'"'"']' "$(key_entry 69703afffe)"
expect_no_match "address ff fe: no '?' in --json" '\?' "$OUT"
expect_no_match "address ff fe: no '?' in --decisions" '\?' "$(cat "$DIR/rp.decisions")"
rp -c "$DIR/a.json" --compare "$DIR/b.json" --policy api --format jsonl --json --decisions "$DIR/rp.decisions" "$DIR/newline.log"
printf '%s\n' "$OUT" >"$DIR/rp.json"
expect_eq "key with a newline: in top_denied, changes and every decision, escaped, exact in key_hex" \
    '1 a\x0ab True 1 1 a\x0ab [1, 0] 4 ['"'"'a\\x0ab'"'"']' "$(key_entry 610a62)"
rp -c "$DIR/a.json" --compare "$DIR/b.json" --policy api "$DIR/bytes.log"
expect_match "address ff fe: escaped in the text report" 'ip:\\xff\\xfe +1 ' "$OUT"
expect_no_match "address ff fe: not escaped twice in text" 'ip:\\\\xff' "$OUT"

# ---- --json prints reals rounded (not 36.359999999999999) ----
rp -c "$DIR/a.json" --policy api --json "$DIR/c.log"
expect_match "--json: denied_pct as two decimals" '"denied_pct":36\.36[,}]' "$OUT"

# ---- a config of policies only (no listen): replay needs no socket ----
cat >"$DIR/nolisten.json" <<'JSON'
{"store": {"type": "memory"}, "policies": {
  "api": {"algorithm": "fixed_window", "limit": 3, "period": "1s"}}}
JSON
rp -c "$DIR/nolisten.json" --policy api --json "$DIR/c.log"
expect_eq "config without listen: exit 0" 0 "$RC"
expect_eq "config without listen: decided as with one" "11 7 4" \
    "$(field "$OUT" "$(pol api)['requests'], $(pol api)['allowed'], $(pol api)['denied']" | tr -d '(),')"
sed 's/{"store"/{"listen": ["nonsense"], "store"/' "$DIR/nolisten.json" >"$DIR/badlisten.json"
rp -c "$DIR/badlisten.json" --policy api --json "$DIR/c.log"
expect_eq "a listen entry given is still checked: exit 2" 2 "$RC"
expect_match "a listen entry given is still checked: named" 'listen\[0\]' "$ERR"
sed 's/{"store"/{"listen": [], "store"/' "$DIR/nolisten.json" >"$DIR/emptylisten.json"
rp -c "$DIR/emptylisten.json" --policy api --json "$DIR/c.log"
expect_eq "an empty listen is refused as the daemon does: exit 2" 2 "$RC"
if $RLIMITD_WRAPPER "$RLIMITD" --check-config -c "$DIR/nolisten.json" >/dev/null 2>"$DIR/cc.err"; then
    fail "rlimitd --check-config accepts a config without listen"
else
    expect_match "rlimitd --check-config still needs listen" 'listen' "$(cat "$DIR/cc.err")"
fi

# ---- malformed lines: counted and shown, or fatal with --strict ----
{ head -3 "$DIR/c.log"; echo "not a log line"; tail -n +4 "$DIR/c.log"; } >"$DIR/bad.log"
rp -c "$DIR/a.json" --policy api --json "$DIR/bad.log"
expect_eq "malformed: exit 0" 0 "$RC"
expect_eq "malformed: counted, named" "1 4 11" "$(field "$OUT" "j['malformed'], j['malformed_examples'][0]['line'], j['requests']" | tr -d '(),')"
expect_eq "malformed: the rest decided as before" "4" "$(field "$OUT" "$(pol api)['denied']")"
rp -c "$DIR/a.json" --policy api "$DIR/bad.log"
expect_match "malformed text: on stderr with the line" "bad\.log:4: malformed: not a combined log line" "$ERR"
rp -c "$DIR/a.json" --policy api --strict "$DIR/bad.log"
expect_eq "--strict: exit 2" 2 "$RC"
expect_match "--strict: names the line" "bad\.log:4: not a combined log line" "$ERR"
expect_eq "--strict: no report" "" "$OUT"

# ---- out of order: sorted within the window, an error beyond it ----
"$PYTHON" - "$DIR" <<'PY'
import sys
d = sys.argv[1]
rows = [(1733300000 + i * 0.3, "k") for i in range(12)]
def write(name, order):
    with open(f"{d}/{name}", "w") as f:
        for i in order:
            f.write('{"ts": %.1f, "key": "%s", "path": "/api/"}\n' % rows[i])
write("sorted.log", range(12))
write("shuffled.log", [1, 0, 3, 2, 4, 6, 5, 7, 9, 8, 11, 10])
write("late.log", [5, 6, 7, 8, 9, 10, 11, 0])
PY
rp -c "$DIR/a.json" --policy api --format jsonl --json "$DIR/sorted.log"
SORTED=$(field "$OUT" "j['runs']")
rp -c "$DIR/a.json" --policy api --format jsonl --json "$DIR/shuffled.log"
expect_eq "out of order within the window: the sorted result" "$SORTED" "$(field "$OUT" "j['runs']")"
rp -c "$DIR/a.json" --policy api --format jsonl --json "$DIR/late.log"
expect_eq "beyond the window: exit 2" 2 "$RC"
expect_match "beyond the window: names the line" "late\.log:8: 3\.300 s older than a line before it, beyond the reorder window of 2\.000 s" "$ERR"
rp -c "$DIR/a.json" --policy api --format jsonl --reorder-window 5s --json "$DIR/late.log"
expect_eq "a wider window takes it: exit 0" 0 "$RC"
expect_eq "a wider window: 8 decided" 8 "$(field "$OUT" "$(pol api)['requests']")"

# ---- a combined log's whole seconds: spreading leaves fixed windows unchanged ----
# The same requests with nginx's $msec at .000 and at .999 of their second get the same
# decisions as the spread whole seconds, for fixed windows of 1 s and 1 min (allowed,
# denied, per key denials and streaks; a retry-after depends on the place in the second).
"$PYTHON" - "$DIR" <<'PY'
import random, sys, time
d = sys.argv[1]
random.seed(7)
T0 = 1733300000
lines = []
for s in range(120):
    for _ in range(random.randrange(0, 12)):
        lines.append((T0 + s, "10.0.0.%d" % random.randrange(4)))
for frac, name in ((None, "whole"), (".000", "early"), (".999", "late")):
    with open(f"{d}/{name}.log", "w") as f:
        for sec, addr in lines:
            t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec))
            tail = "" if frac is None else " %d%s 0.002" % (sec, frac)
            f.write(f'{addr} - - [{t}] "GET / HTTP/1.1" 200 1 "-" "ua"{tail}\n')
PY
for p in api big; do
    rp -c "$DIR/a.json" --policy $p --json "$DIR/whole.log"
    W=$(field "$OUT" "[(x['allowed'], x['denied'], [(k['key'], k['denied'], k['requests'], k['longest_streak']) for k in x['top_denied']]) for x in j['runs'][0]['policies']]")
    expect_match "spreading: $p denies some" "[1-9]" "$(field "$OUT" "$(pol $p)['denied']")"
    for v in early late; do
        rp -c "$DIR/a.json" --policy $p --json "$DIR/$v.log"
        expect_eq "spreading: $p the same as \$msec at $v" "$W" \
            "$(field "$OUT" "[(x['allowed'], x['denied'], [(k['key'], k['denied'], k['requests'], k['longest_streak']) for k in x['top_denied']]) for x in j['runs'][0]['policies']]")"
    done
done

# ---- errors: exit 2 with a reason ----
echo '{"policies": {"x": {"algorithm": "nope"}}}' >"$DIR/broken.json"
rp -c "$DIR/broken.json" --policy x "$DIR/c.log"
expect_eq "bad config: exit 2" 2 "$RC"
expect_match "bad config: the config's message" "broken\.json" "$ERR"
rp -c "$DIR/a.json" --policy api "$DIR/missing.log"
expect_eq "unreadable file: exit 2" 2 "$RC"
expect_match "unreadable file: named" "missing\.log: No such file" "$ERR"
rp -c "$DIR/a.json" --policy nosuch "$DIR/c.log"
expect_eq "unknown policy: exit 2" 2 "$RC"
expect_match "unknown policy: named" "--policy nosuch: no such policy" "$ERR"
rp -c "$DIR/a.json" --policy conc "$DIR/c.log"
expect_eq "concurrency policy: exit 2" 2 "$RC"
expect_match "concurrency policy: why" "concurrency policy" "$ERR"
echo '{"rules": [{"path": "/a", "policy": "nosuch"}]}' >"$DIR/badrules.json"
rp -c "$DIR/a.json" --rules "$DIR/badrules.json" "$DIR/c.log"
expect_eq "rules naming an unknown policy: exit 2" 2 "$RC"
for args in "" "--policy api $DIR/c.log" "-c $DIR/a.json" "-c $DIR/a.json --bogus $DIR/c.log" \
    "-c $DIR/a.json --policy api --rules $DIR/rules.json $DIR/c.log" \
    "-c $DIR/a.json --policy api --key header:X-User $DIR/c.log" \
    "-c $DIR/a.json --policy api --key field:user $DIR/c.log" \
    "-c $DIR/a.json --policy api --format xml $DIR/c.log" \
    "-c $DIR/a.json --policy api --reorder-window soon $DIR/c.log" "-c $DIR/a.json $DIR/c.log"; do
    # shellcheck disable=SC2086
    rp $args
    expect_eq "usage error '$args': exit 2" 2 "$RC"
    expect_eq "usage error '$args': stdout empty" "" "$OUT"
    expect_match "usage error '$args': usage" 'usage: rlimitctl replay' "$ERR"
done
rp --help
expect_eq "--help: exit 0" 0 "$RC"
expect_match "--help: usage on stdout" '^usage: rlimitctl replay' "$OUT"

finish
