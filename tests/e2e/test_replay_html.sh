#!/bin/bash
# test_replay_html.sh: the report of `rlimitctl replay --html` in a real browser (issue 15
# point 5). A synthetic access log (tests/tools/gen_access_log.py: 2.5 hours, so one point a
# minute; a scraper among ordinary clients) with hostile client addresses appended (markup,
# quotes: keys come from logs) is replayed against conf/rlimitd.json under
# conf/replay-demo-rules.json, once with --json and once with --html, and headless Chromium
# (Debian's chromium, make deps) renders the page: its DOM must hold, for every policy, the
# series and top-keys charts and the summary figures of the --json output
# (tests/tools/check_replay_dom.py), nothing active or external, and the hostile keys as
# text. The same with --compare (a config with api's limit doubled: both runs on the same
# axes). A screenshot of each page is kept: $BUILD/replay-report.png and
# $BUILD/replay-compare.png. Self-test: the checker fails on a DOM with one figure changed
# and on one with a script element.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 300

CHROMIUM=${CHROMIUM:-chromium}
CHECK="$TOOLS_DIR/check_replay_dom.py"
CONFIG=$ROOT/conf/rlimitd.json
RULES=$ROOT/conf/replay-demo-rules.json
if ! command -v "$CHROMIUM" >/dev/null; then
    fail "$CHROMIUM is not installed (make deps installs Debian's chromium)"
    finish
fi

# browser ARGS... URL: headless Chromium with nothing from the network and its own profile.
browser() {
    local profile
    profile=$(mktemp -d "$DIR/chromium-XXXXXX")
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" "$@" 2>>"$DIR/chromium.err"
}

# render NAME: dumps the DOM of $DIR/NAME.html to $DIR/NAME.dom and screenshots it to
# $BUILD_DIR/replay-NAME.png.
render() {
    browser --dump-dom "file://$DIR/$1.html" >"$DIR/$1.dom"
    expect_eq "$1: chromium dumped the DOM" 0 "$?"
    rm -f "$BUILD_DIR/replay-$1.png"
    browser --screenshot="$BUILD_DIR/replay-$1.png" --window-size=1200,2000 \
        "file://$DIR/$1.html" >/dev/null
    expect_eq "$1: PNG screenshot" "PNG" "$(head -c 4 "$BUILD_DIR/replay-$1.png" 2>/dev/null | tail -c 3)"
    local size
    size=$(stat -c %s "$BUILD_DIR/replay-$1.png" 2>/dev/null || echo 0)
    if [ "$size" -gt 20000 ]; then ok "$1: screenshot $BUILD/replay-$1.png, $size bytes"; else
        fail "$1: screenshot of $size bytes (a blank page?)"
    fi
}

# check NAME: the DOM of NAME against its --json report.
check() {
    if OUT=$("$PYTHON" "$CHECK" "$DIR/$1.json" "$DIR/$1.dom" 2>&1); then
        ok "$1: $OUT"
    else
        fail "$1: the rendered page does not match the --json report:"
        printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
    fi
}

# replay NAME ARGS...: the same replay with --json (NAME.json) and with --html (NAME.html).
replay() {
    local name=$1
    shift
    "$RLIMITCTL" replay -c "$CONFIG" --rules "$RULES" "$@" --json "$DIR/access.log" \
        >"$DIR/$name.json" 2>"$DIR/$name.err"
    expect_eq "$name: replay --json exit status" 0 "$?"
    "$RLIMITCTL" replay -c "$CONFIG" --rules "$RULES" "$@" --html "$DIR/$name.html" \
        "$DIR/access.log" >/dev/null 2>>"$DIR/$name.err"
    expect_eq "$name: replay --html exit status" 0 "$?"
    [ -s "$DIR/$name.err" ] && sed 's/^/    | /' "$DIR/$name.err" >&2
}

# ---- the log: ordinary traffic, a scraper, and hostile addresses at the end ----
"$PYTHON" "$TOOLS_DIR/gen_access_log.py" --hours 2.5 --rate 2 --clients 300 \
    -o "$DIR/access.log" 2>/dev/null
last=$(tail -1 "$DIR/access.log" | sed 's/^[^[]*\[\([^]]*\)\].*/\1/')
for i in $(seq 150); do
    printf '%s - - [%s] "GET /api/items/%d HTTP/1.1" 200 10 "-" "x"\n' \
        '<script>alert(1)</script>' "$last" "$i"
    printf '%s - - [%s] "GET /api/items/%d HTTP/1.1" 200 10 "-" "x"\n' \
        "\"q'&amp;<b>" "$last" "$i"
    printf '%s - - [%s] "GET /api/items/%d HTTP/1.1" 200 10 "-" "x"\n' \
        $'\xff\xfe\\' "$last" "$i"
done >>"$DIR/access.log"
ok "log: $(wc -l <"$DIR/access.log") lines over 2.5 hours"

# ---- one config ----
replay report
figures=$("$PYTHON" -c '
import json, sys
r = json.load(open(sys.argv[1]))
api = [p for p in r["runs"][0]["policies"] if p["name"] == "api"][0]
keys = [e["key"] for e in api["top_denied"]]
odd = [e for e in api["top_denied"] if e.get("key_hex") == "69703afffe5c"]
print(r["step_s"], "ip:<script>alert(1)</script>" in keys, "ip:\"q'"'"'&amp;<b>" in keys,
      [(e["key"], e["escaped"]) for e in odd])
' "$DIR/report.json" 2>&1)
expect_eq "report: a point a minute; the hostile keys among api's top denied (bytes ff fe \\ escaped as TOP does, exact in key_hex)" \
    "60 True True [('ip:\\\\xff\\\\xfe\\\\\\\\', True)]" "$figures"
render report
check report
expect_eq "report: no <script> or <b> element made of a key" "0" \
    "$(grep -c '<script\|<b>' "$DIR/report.dom")"
expect_eq "report: the key of bytes ff fe \\ shown escaped once, as --json's key (chart and table)" \
    "2 0" "$(grep -o 'data-key="ip:\\xff\\xfe\\\\"' "$DIR/report.dom" | wc -l) $(grep -c 'ip:\\\\xff' "$DIR/report.dom")"

# ---- two configs on the same axes ----
sed 's/"limit": 100, "period": "1m"/"limit": 200, "period": "1m"/' "$CONFIG" >"$DIR/doubled.json"
replay compare --compare "$DIR/doubled.json"
expect_eq "compare: two runs" 2 "$("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"]))' "$DIR/compare.json")"
render compare
check compare
api_paths=$("$PYTHON" - "$DIR/compare.dom" <<'PY'
import re, sys
dom = open(sys.argv[1]).read()
api = dom[dom.index('data-policy="api"'):]
chart = api[:api.index("</svg>")]
print(len(re.findall(r'<path class="admitted run0"', chart)), len(re.findall(r'<path class="admitted run1"', chart)))
PY
)
expect_eq "compare: api's chart has both runs' admitted paths" "1 1" "$api_paths"

# ---- self-test: the checker can fail ----
sed 's/\(data-field="requests" data-run="0">\)\([0-9]*\)/\19\2/' "$DIR/report.dom" >"$DIR/tampered.dom"
cp "$DIR/report.json" "$DIR/tampered.json"
if "$PYTHON" "$CHECK" "$DIR/tampered.json" "$DIR/tampered.dom" >/dev/null 2>&1; then
    fail "self-test: a changed figure went unnoticed"
else ok "self-test: a changed figure fails the check"; fi
sed 's|</main>|<script>alert(1)</script></main>|' "$DIR/report.dom" >"$DIR/tampered.dom"
if "$PYTHON" "$CHECK" "$DIR/tampered.json" "$DIR/tampered.dom" >/dev/null 2>&1; then
    fail "self-test: a script element went unnoticed"
else ok "self-test: a script element fails the check"; fi

finish
