# shellcheck shell=bash disable=SC2034
# ops_common.sh: helpers for the operations tests (test_ops_*.sh, test_nginx.sh),
# sourced, never run. Each test gets its own directory from mktemp -d, and a trap that
# stops what it started and removes the directory.
#
# Environment (as `make e2e` sets it): BUILD (default build), RLIMITD_WRAPPER (a
# prefix such as valgrind, or empty), PYTHON (default /usr/bin/python3).

set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
RLIMITD_WRAPPER=${RLIMITD_WRAPPER:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RLIMITD="$ROOT/$BUILD/rlimitd"
RLIMITCTL="$ROOT/$BUILD/rlimitctl"
# Seconds to wait for a daemon to come up or to answer: generous under valgrind.
if [ -n "$RLIMITD_WRAPPER" ]; then WAIT_S=90; else WAIT_S=10; fi

TEST_NAME=$(basename "$0" .sh)
DIR=$(mktemp -d "/tmp/rlimitd-$TEST_NAME-XXXXXX")
DAEMON_PID=
EXTRA_PIDS=
FAILURES=0

cleanup() {
    local pid
    for pid in $EXTRA_PIDS $DAEMON_PID; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $EXTRA_PIDS $DAEMON_PID; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# watchdog SECONDS: bounds the whole test (six times longer under a wrapper); a test
# still running then is stopped and fails.
watchdog() {
    local limit=$1
    [ -n "$RLIMITD_WRAPPER" ] && limit=$((limit * 6))
    (
        trap 'kill $sleeper 2>/dev/null; exit 0' TERM
        sleep "$limit" &
        sleeper=$!
        wait $sleeper
        echo "FAIL $TEST_NAME: timed out after ${limit}s" >&2
        kill -TERM $$
    ) &
    EXTRA_PIDS="$EXTRA_PIDS $!"
}

fail() {
    echo "FAIL $TEST_NAME: $*" >&2
    FAILURES=$((FAILURES + 1))
}

ok() {
    echo "ok   $TEST_NAME: $*"
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

# expect_match WHAT REGEX TEXT: TEXT (multi-line) has a line matching the ERE.
expect_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then ok "$1"; else
        fail "$1: no line matches /$2/ in:"; printf '%s\n' "$3" | sed 's/^/    | /' >&2; fi
}

expect_no_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        fail "$1: a line matches /$2/ in:"; printf '%s\n' "$3" | sed 's/^/    | /' >&2
    else ok "$1"; fi
}

# ctl ARGS...: runs rlimitctl; sets OUT, ERR, RC.
ctl() {
    OUT=$("$RLIMITCTL" -t $((WAIT_S * 1000)) "$@" 2>"$DIR/ctl.err")
    RC=$?
    ERR=$(cat "$DIR/ctl.err")
}

# start_daemon CONFIG [LOG]: starts rlimitd on CONFIG (in the foreground, under the
# wrapper) and waits until it logged "ready:". Sets DAEMON_PID and DAEMON_LOG.
start_daemon() {
    DAEMON_LOG=${2:-$DIR/daemon.log}
    $RLIMITD_WRAPPER "$RLIMITD" -f -c "$1" 2>"$DAEMON_LOG" &
    DAEMON_PID=$!
    local i
    for i in $(seq $((WAIT_S * 20))); do
        grep -q "ready:" "$DAEMON_LOG" 2>/dev/null && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL $TEST_NAME: rlimitd did not come up; its log:" >&2
    cat "$DAEMON_LOG" >&2
    exit 1
}

# stop_daemon: SIGTERM, wait, and check the exit status (valgrind's error code too).
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID"
    local rc=$?
    DAEMON_PID=
    if [ "$rc" -ne 0 ]; then
        fail "rlimitd exited with $rc; its log:"
        cat "$DAEMON_LOG" >&2
    else
        ok "rlimitd stopped cleanly"
    fi
}

# wait_log TEXT [COUNT]: waits until the daemon's log has COUNT (default 1) lines with TEXT.
wait_log() {
    local i need=${2:-1}
    for i in $(seq $((WAIT_S * 20))); do
        [ "$(grep -c -- "$1" "$DAEMON_LOG")" -ge "$need" ] && return 0
        sleep 0.05
    done
    fail "the daemon never logged \"$1\""
    return 1
}

# http_port: the port of the daemon's most recently opened HTTP listener.
http_port() {
    grep -o 'listening on http:127.0.0.1:[0-9]*' "$DAEMON_LOG" | tail -1 | sed 's/.*://'
}

# free_port: a TCP port nothing listens on right now.
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http PORT TARGET [HEADER: VALUE]...: one raw HTTP/1.1 request (target sent as is);
# prints "status CODE", the headers (names lowercased), a blank line and the body.
http() {
    "$PYTHON" - "$@" <<'PY'
import socket, sys
port, target, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
method = "GET"
if " " in target:
    method, target = target.split(" ", 1)
req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, target)
req += "".join(h + "\r\n" for h in headers) + "\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.sendall(req.encode("latin-1"))
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        break
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
if not lines[0]:
    print("status none")
    sys.exit(0)
print("status " + lines[0].split(" ")[1])
for line in lines[1:]:
    name, _, value = line.partition(":")
    print(name.lower() + ": " + value.strip())
print()
sys.stdout.write(body.decode("utf-8", "replace"))
PY
}

# flood SOCKET POLICY KEY COUNT: pipelines COUNT binary CHECKs of KEY on one connection
# and prints how many were allowed and denied ("ALLOWED DENIED").
flood() {
    "$PYTHON" - "$@" <<'PY'
import socket, struct, sys
path, policy, key, count = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), int(sys.argv[4])
body = struct.pack(">IBH", 1, len(policy), len(key)) + policy + key
frames = b"".join(struct.pack(">IBBHI", 8 + len(body), 1, 2, 0, i) + body for i in range(count))
s = socket.socket(socket.AF_UNIX)
s.settimeout(120)
s.connect(path)
s.sendall(frames)
want, data, got = count * 36, b"", {0: 0, 1: 0}
while len(data) < want:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for i in range(0, len(data) - 35, 36):
    status = data[i + 12]
    got[status] = got.get(status, 0) + 1
print(got.get(0, 0), got.get(1, 0))
PY
}

# finish: the test's verdict as its exit status.
finish() {
    if [ "$FAILURES" -ne 0 ]; then
        echo "$TEST_NAME: $FAILURES failure(s)" >&2
        exit 1
    fi
    echo "$TEST_NAME: all passed"
    exit 0
}
