#!/bin/bash
# test_ops_denylog.sh: the denial log: one escaped line per denial, at most
# lines_per_s lines a second with a "suppressed N denial lines" summary, every
# denial accounted for; reopened by SIGHUP (log rotation) even when the new config is
# bad; a reload to a path that cannot be written is refused, and so is a start-up.
# The daemon runs on a fake wall clock (fake_clock): where the test needs the next
# second, it moves the clock on instead of sleeping.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

write_config() { # DENIAL_LOG_PATH
    cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock"],
 "denial_log": {"path": "$1", "lines_per_s": 5},
 "policies": {"one": {"algorithm": "fixed_window", "limit": 1, "period": "1h"}}}
JSON
}
LOG="$DIR/denials.log"
write_config "$LOG"
fake_clock
start_daemon "$DIR/rlimitd.json"
ADMIN="unix:$DIR/admin.sock"

# ---- a flood: 1 allowed, 599 denied, within a second or two ----
LINE_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z policy=one key=flood\\x20key retry_after_ms=[0-9]+$'
SUMMARY_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z suppressed [0-9]+ denial lines$'
flood_accounted() { # every denial of the flood is a line or in a summary
    [ $(($(grep -Ec "$LINE_RE" "$LOG") + $(grep -E "$SUMMARY_RE" "$LOG" |
        awk '{s += $3} END {print s + 0}'))) -eq 599 ]
}
expect_eq "flood: answers" "1 599" "$(flood "$DIR/admin.sock" one "flood key" 600)"
clock_forward 1000000            # the next second: its tick (every second) reports
wait_for "$WAIT_S" flood_accounted # what was dropped
LINES=$(grep -Ec "$LINE_RE" "$LOG")
SUPPRESSED=$(grep -E "$SUMMARY_RE" "$LOG" | awk '{s += $3} END {print s + 0}')
SECONDS_SPANNED=$(grep -E "$LINE_RE" "$LOG" | cut -c1-19 | sort -u | wc -l)
expect_eq "every line is a denial line or a summary" "$(wc -l <"$LOG")" \
    "$((LINES + $(grep -Ec "$SUMMARY_RE" "$LOG")))"
expect_eq "lines + suppressed = denials" 599 "$((LINES + SUPPRESSED))"
[ "$LINES" -ge 5 ] && [ "$LINES" -le $((5 * SECONDS_SPANNED)) ] &&
    ok "at most 5 lines a second ($LINES lines in $SECONDS_SPANNED s)" ||
    fail "$LINES lines in $SECONDS_SPANNED seconds with lines_per_s 5"
expect_match "a summary line" "$SUMMARY_RE" "$(cat "$LOG")"
for second in $(grep -E "$LINE_RE" "$LOG" | cut -c1-19 | sort -u); do
    n=$(grep -E "$LINE_RE" "$LOG" | grep -c "^$second")
    [ "$n" -le 5 ] || fail "$n lines in second $second"
done
ctl -s "$ADMIN" --json stats
echo "$OUT" | "$PYTHON" -c "
import json, sys
d = json.load(sys.stdin)['denial_log']
assert d == {'lines': $LINES, 'suppressed': $SUPPRESSED, 'errors': 0}, d
" && ok "stats report the denial log's figures" || fail "stats denial_log: $OUT"

# ---- escaping: a key with control and non-ASCII bytes stays one printable line ----
clock_forward 1100000 # a second with no denial line yet
ctl -s "$ADMIN" check one "$(printf 'e\x1b[31mvil\nline\xc3\xa9')"
ctl -s "$ADMIN" check one "$(printf 'e\x1b[31mvil\nline\xc3\xa9')"
expect_eq "the odd key is denied" 1 "$RC"
expect_match "the odd key is escaped" 'policy=one key=e\\x1b\[31mvil\\x0aline\\xc3\\xa9 retry_after_ms=[0-9]+$' "$(tail -1 "$LOG")"
[ -z "$(LC_ALL=C tr -d '\n\040-\176' <"$LOG")" ] && ok "the log is printable ASCII" ||
    fail "non-printable bytes in the denial log"

# ---- rotation: SIGHUP reopens the file ----
mv "$LOG" "$LOG.1"
kill -HUP "$DAEMON_PID"
wait_log "reloaded"
clock_forward 1100000 # a second with no denial line yet
ctl -s "$ADMIN" check one rotated
ctl -s "$ADMIN" check one rotated
expect_match "after SIGHUP, lines go to the new file" 'key=rotated ' "$(cat "$LOG" 2>/dev/null)"
expect_no_match "and not to the rotated one" 'key=rotated ' "$(cat "$LOG.1")"
mv "$LOG" "$LOG.2"
echo '{"broken":' >"$DIR/rlimitd.json"
kill -HUP "$DAEMON_PID"
wait_log "reload refused"
clock_forward 1100000 # a second with no denial line yet
ctl -s "$ADMIN" check one again
ctl -s "$ADMIN" check one again
expect_match "a refused reload still reopens the file" 'key=again ' "$(cat "$LOG" 2>/dev/null)"

# ---- a path that cannot be opened is a refused reload ----
write_config "$DIR/no/such/dir/denials.log"
ctl -s "$ADMIN" reload
expect_eq "unwritable denial log: exit 2" 2 "$RC"
expect_match "unwritable denial log: reason" 'RELOAD_FAILED: .*denial_log.path: cannot open' "$ERR"
clock_forward 1100000 # a second with no denial line yet
ctl -s "$ADMIN" check one still
ctl -s "$ADMIN" check one still
expect_match "the old denial log stays in use" 'key=still ' "$(cat "$LOG")"
write_config "$DIR/other.log"
ctl -s "$ADMIN" reload
expect_eq "a new path: exit 0" 0 "$RC"
ctl -s "$ADMIN" check one moved
ctl -s "$ADMIN" check one moved
expect_match "lines go to the new path" 'key=moved ' "$(cat "$DIR/other.log")"

stop_daemon

# ---- and the daemon does not start with one ----
write_config "$DIR/no/such/dir/denials.log"
$RLIMITD_WRAPPER "$RLIMITD" -f -c "$DIR/rlimitd.json" 2>"$DIR/refused.log"
expect_eq "an unwritable denial log at start-up: exit 1" 1 "$?"
expect_match "... with the reason" 'error: .*denial_log.path: cannot open .*/no/such/dir/denials.log' \
    "$(cat "$DIR/refused.log")"
finish
