#!/bin/bash
# test_replay_exact.sh: `rlimitctl replay` decides every request as the daemon does (issue 15,
# "Exactness"). One trace of 104 requests over 3.6 s, six policies at once in one daemon
# (memory store): fixed_window (with an override), sliding_window_log,
# sliding_window_counter, token_bucket, gcra and a policy of two rates; costs 1..5. Every
# request is planned away from every decision boundary of its policy (tests/tools/
# replay_trace.py proves it on a model of daemon/algo.c for moves of up to 50 ms), sent to
# the live daemon at its time, and logged as JSON lines with the instant it was decided at
# (to its round trip). The replay of that log must give, line by line, the same allowed
# and remaining, and retry_after within 1 ms plus the round trip; two replays of the log
# must print byte-identical --json and --decisions. Self-test: the replay against a config
# whose every limit is one higher must differ from the daemon in every policy (so the
# comparison can fail).
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 180

TRACE=$TOOLS_DIR/replay_trace.py
ADDR=unix:$DIR/rlimitd.sock
"$PYTHON" "$TRACE" config --listen "$ADDR" >"$DIR/rlimitd.json"
"$PYTHON" "$TRACE" config --listen "$ADDR" --perturb >"$DIR/perturbed-config.json"

# ---- the live daemon ----
start_daemon "$DIR/rlimitd.json"
"$PYTHON" "$TRACE" run --address "$ADDR" --log "$DIR/trace.jsonl" --decisions "$DIR/live.jsonl" \
    --margin-ms 50 --attempts 5 >"$DIR/run.out" 2>&1
rc=$?
sed 's/^/    /' "$DIR/run.out"
stop_daemon
if [ "$rc" != 0 ]; then
    fail "the trace could not be sent in time or was refused (exit $rc)"
    finish
fi
expect_eq "the log has every request" 104 "$(wc -l <"$DIR/trace.jsonl")"

# replay CONFIG NAME: rlimitctl replay of the trace (under the daemon's wrapper, valgrind in
# make test's valgrind step); sets RC, writes $DIR/NAME.{json,decisions,err}.
replay() {
    # shellcheck disable=SC2086
    $RLIMITD_WRAPPER "$RLIMITCTL" replay -c "$1" --format jsonl --json --decisions "$DIR/$2.decisions" \
        "$DIR/trace.jsonl" >"$DIR/$2.json" 2>"$DIR/$2.err"
    RC=$?
}

# ---- the replay decides as the daemon did ----
replay "$DIR/rlimitd.json" first
expect_eq "replay: exit status" 0 "$RC"
[ "$RC" = 0 ] || sed 's/^/    | /' "$DIR/first.err" >&2
if OUT=$("$PYTHON" "$TRACE" compare "$DIR/live.jsonl" "$DIR/first.decisions" 2>&1); then
    ok "replay = daemon, decision by decision: $(printf '%s' "$OUT" | tail -1)"
else
    fail "the replay decided differently from the daemon:"
    printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
fi
totals=$("$PYTHON" -c '
import json, sys
r = json.load(open(sys.argv[1]))
live = [json.loads(l) for l in open(sys.argv[2])]
allowed = sum(p["allowed"] for run in r["runs"][:1] for p in run["policies"])
print(r["lines"], r["requests"], r["malformed"], allowed, sum(d["allowed"] for d in live))
' "$DIR/first.json" "$DIR/live.jsonl" 2>&1)
read -r lines requests malformed allowed live_allowed <<<"$totals"
expect_eq "--json: lines, requests, malformed" "104 104 0" "$lines $requests $malformed"
expect_eq "--json: allowed in total = the daemon's" "$live_allowed" "$allowed"

# ---- the same log twice: the same output, byte for byte ----
replay "$DIR/rlimitd.json" second
expect_eq "second replay: exit status" 0 "$RC"
if [ -s "$DIR/first.decisions" ] && cmp -s "$DIR/first.decisions" "$DIR/second.decisions"; then
    ok "two replays: --decisions byte-identical ($(wc -l <"$DIR/first.decisions") lines)"
else
    fail "two replays: --decisions empty or different: $(cmp "$DIR/first.decisions" "$DIR/second.decisions" 2>&1)"
fi
if [ -s "$DIR/first.json" ] && cmp -s "$DIR/first.json" "$DIR/second.json"; then
    ok "two replays: --json byte-identical"
else
    fail "two replays: --json empty or different: $(diff "$DIR/first.json" "$DIR/second.json" | head -5 | tr '\n' ' ')"
fi

# ---- self-test: a replay that decides differently is caught ----
replay "$DIR/perturbed-config.json" perturbed
expect_eq "replay of the perturbed config: exit status" 0 "$RC"
if OUT=$("$PYTHON" "$TRACE" compare "$DIR/live.jsonl" "$DIR/perturbed.decisions" --expect-mismatch-everywhere 2>&1); then
    ok "self-test: every limit + 1 differs from the daemon in every policy: $(printf '%s' "$OUT" | tail -1)"
else
    fail "self-test: the comparison did not catch a replay with other limits:"
    printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
fi
if "$PYTHON" "$TRACE" compare "$DIR/live.jsonl" "$DIR/perturbed.decisions" >/dev/null 2>&1; then
    fail "self-test: compare passed a replay with other limits"
else
    ok "self-test: compare fails on the perturbed replay"
fi
finish
