#!/usr/bin/env bash
# Security test (issue 11, points 7, 8, 9, 13): connections and the socket path.
#
#   lingering close   20,000 pipelined CHECKs, then a frame over max_frame: all 20,001
#                     answers arrive (the last FRAME_TOO_LARGE), then EOF, not a reset
#   large answers     40,000 policies, max_output at its default: rlimitctl stats and
#                     policies answer (an answer is never dropped for its own size)
#   socket path       a regular file, a symlink, another user's live socket at the path:
#                     the daemon refuses to start, naming the path; a stale socket is
#                     replaced; at exit a file put in place of the socket is left alone
#   HTTP listener     connections over limits.max_http_connections are refused; with the
#                     descriptor limit reached the daemon does not spin and still answers
#                     a binary PING; a client sending its headers slowly is closed after
#                     limits.http_header_timeout
#                     (tests/tools/rlhttpconns.py)
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh
CTL=$BUILD/rlimitctl
TOOLS=tests/tools

# ---- point 7: a lingering close ----
daemon_start linger '{"listen": ["unix:@DIR@/rlimitd.sock"],
 "policies": {"big": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"}}}'
"$PYTHON" - "${SOCK[linger]}" <<'PY' || check_failed "lingering close: answers lost"
import socket, sys, threading
sys.path.insert(0, "tests/tools")
import rlwire
sock = rlwire.connect(sys.argv[1], timeout=60)
data = b"".join(rlwire.item_frame(i, b"big", b"k%d" % (i % 100)) for i in range(20000))
data += rlwire.item_frame(20000, b"big", b"x" * 20000)  # over max_frame (16384)
sent = []
def send():
    try:
        sock.sendall(data)
        sent.append(True)
    except OSError as e:
        sent.append(e)
threading.Thread(target=send, daemon=True).start()
buf, answers, end = bytearray(), [], "EOF"
while True:
    try:
        chunk = sock.recv(65536)
    except OSError as e:
        end = type(e).__name__
        break
    if not chunk:
        break
    buf += chunk
    answers += rlwire.parse_frames(buf)
allowed = sum(a.status == rlwire.ALLOWED for a in answers[:20000])
last = answers[-1].status_name if answers else None
print(f"{len(answers)} answers ({allowed} ALLOWED, last {last}), then {end}")
ok = len(answers) == 20001 and allowed == 20000 and last == "FRAME_TOO_LARGE" and end == "EOF"
sys.exit(0 if ok else 1)
PY
rlload ping "${SOCK[linger]}" >/dev/null || check_failed "no PING answer after the lingering close"
daemon_stop linger

# ---- point 13: answers larger than max_output ----
"$PYTHON" - "$WORK/many.json" <<'PY'
import json, sys
policies = {f"p{i:05d}": {"algorithm": "fixed_window", "limit": 10, "period": "1m"}
            for i in range(40000)}
config = {"listen": ["unix:@DIR@/rlimitd.sock"], "policies": policies}
json.dump(config, open(sys.argv[1], "w"))
PY
daemon_start many "$(cat "$WORK/many.json")"
if "$CTL" -s "${SOCK[many]}" -t $((WAIT_S * 3000)) --json policies >"$WORK/policies.json"; then
    n=$("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["policies"]))' \
        "$WORK/policies.json" 2>&1)
    echo "rlimitctl policies: $(wc -c <"$WORK/policies.json") bytes, $n policies"
    [ "$n" = 40000 ] || check_failed "rlimitctl policies listed $n policies, not 40000"
else
    check_failed "rlimitctl policies failed with 40,000 policies (max_output at its default)"
fi
if "$CTL" -s "${SOCK[many]}" -t $((WAIT_S * 3000)) --json stats >"$WORK/stats.json"; then
    echo "rlimitctl stats: $(wc -c <"$WORK/stats.json") bytes"
else
    check_failed "rlimitctl stats failed with 40,000 policies (max_output at its default)"
fi
rlload ping "${SOCK[many]}" >/dev/null || check_failed "no PING answer after the large answers"
daemon_stop many

# ---- point 9: the socket path ----
# Starts rlimitd on a config listening at PATH (as the user given by $AS, if set) and
# requires it to refuse to start, saying PATTERN. Prints the daemon's message.
expect_refusal() {
    local what=$1 path=$2 pattern=$3 dir=$WORK/refuse rc
    mkdir -p "$dir"
    printf '{"listen": ["unix:%s"], "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}\n' \
        "$path" >"$dir/rlimitd.json"
    chmod 644 "$dir/rlimitd.json"
    # shellcheck disable=SC2086
    timeout 5 ${AS:-} $RLIMITD_WRAPPER "$BUILD/rlimitd" -f -c "$dir/rlimitd.json" 2>"$dir/log"
    rc=$?
    echo "$what: exit status $rc: $(grep -i "$path" "$dir/log" | head -1)"
    if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
        check_failed "$what: the daemon started (status $rc) instead of refusing"
    elif ! grep -q -- "$pattern" "$dir/log"; then
        check_failed "$what: the message does not say '$pattern'; log: $(cat "$dir/log")"
    fi
}

P=$WORK/path
mkdir -p "$P"
echo "precious" >"$P/file.sock"
expect_refusal "a regular file at the path" "$P/file.sock" "$P/file.sock is a regular file"
[ "$(cat "$P/file.sock" 2>/dev/null)" = precious ] || check_failed "the regular file was changed"

echo "target" >"$P/target"
ln -s "$P/target" "$P/link.sock"
expect_refusal "a symlink at the path" "$P/link.sock" "$P/link.sock is a symbolic link"
[ -L "$P/link.sock" ] && [ "$(cat "$P/target")" = target ] ||
    check_failed "the symlink or its target was changed"

# A stale socket (bound, then its process went away without removing it) is replaced.
mkdir -p "$WORK/stale"
"$PYTHON" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' \
    "$WORK/stale/rlimitd.sock"
[ -S "$WORK/stale/rlimitd.sock" ] || check_failed "the test could not make a stale socket"
daemon_start stale '{"listen": ["unix:@DIR@/rlimitd.sock"],
 "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}'
rlload ping "${SOCK[stale]}" >/dev/null || check_failed "no PING answer on a replaced stale socket"
# At exit, a file put in place of the socket is left alone; the daemon's own is removed.
mv "$WORK/stale/rlimitd.sock" "$WORK/stale/moved.sock"
echo "not the daemon's" >"$WORK/stale/rlimitd.sock"
daemon_stop stale
[ "$(cat "$WORK/stale/rlimitd.sock" 2>/dev/null)" = "not the daemon's" ] ||
    check_failed "at exit the daemon removed a file put in place of its socket"
[ -S "$WORK/stale/moved.sock" ] || check_failed "the moved socket vanished"
daemon_start own '{"listen": ["unix:@DIR@/rlimitd.sock"],
 "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}'
daemon_stop own
[ -e "$WORK/own/rlimitd.sock" ] && check_failed "at exit the daemon left its own socket file"

# Another user's live socket: connect() fails with EACCES for the daemon's user. Needs
# root to run the two processes as two other users (nobody serves, daemon starts rlimitd).
if [ "$(id -u)" = 0 ]; then
    chmod 755 "$WORK"
    mkdir -p "$WORK/other" && chown nobody "$WORK/other" && chmod 0777 "$WORK/other"
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$PYTHON" -c '
import os, socket, sys, time
os.umask(0o077)
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
open(sys.argv[1] + ".up", "w").close()
time.sleep(60)' "$WORK/other/live.sock" &
    OTHER=$!
    for _ in $(seq 1 500); do [ -e "$WORK/other/live.sock.up" ] && break; sleep 0.02; done
    AS="setpriv --reuid=daemon --regid=daemon --clear-groups" expect_refusal \
        "another user's live socket" "$WORK/other/live.sock" "Permission denied"
    [ -S "$WORK/other/live.sock" ] || check_failed "another user's live socket was removed"
    kill "$OTHER" 2>/dev/null
    wait "$OTHER" 2>/dev/null
else
    echo "another user's live socket: skipped (needs root to run as nobody and daemon)"
fi

# ---- point 8: the HTTP listener ----
http_port() { # the port NAME's HTTP listener was bound to (port 0 in the config)
    sed -n 's/.*listening on http:127.0.0.1:\([0-9]*\).*/\1/p' "$(daemon_log "$1")" | head -1
}
HTTPCONNS="$PYTHON $TOOLS/rlhttpconns.py"
daemon_start http '{"listen": ["unix:@DIR@/rlimitd.sock", "http:127.0.0.1:0"],
 "limits": {"max_http_connections": 4, "http_header_timeout": "2s"},
 "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}'
$HTTPCONNS cap "127.0.0.1:$(http_port http)" 4 ||
    check_failed "HTTP connections over limits.max_http_connections were not refused with 503 (or the count leaked)"
$HTTPCONNS slow "127.0.0.1:$(http_port http)" 4 ||
    check_failed "an HTTP client sending its headers slowly was not closed by http_header_timeout (2 s)"
daemon_stop http

# Descriptors run out (the daemon's limit is 64): no spinning, binary clients still served.
(ulimit -n 64 && daemon_start exhaust '{"listen": ["unix:@DIR@/rlimitd.sock", "http:127.0.0.1:0"],
 "limits": {"max_http_connections": 1000, "http_header_timeout": "30s"},
 "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}' &&
    echo "${DPID[exhaust]}" >"$WORK/exhaust.pid" && wait "${DPID[exhaust]}") &
for _ in $(seq 1 500); do [ -s "$WORK/exhaust.pid" ] && break; sleep 0.02; done
EPID=$(cat "$WORK/exhaust.pid")
$HTTPCONNS exhaust "127.0.0.1:$(http_port exhaust)" "unix:$WORK/exhaust/rlimitd.sock" "$EPID" ||
    check_failed "with descriptors exhausted by idle HTTP connections the daemon spun or left PING unanswered"
kill -TERM "$EPID" 2>/dev/null
wait

fault_finish test_security_conns
