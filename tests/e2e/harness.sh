# shellcheck shell=bash disable=SC2034
# tests/e2e/harness.sh: the one harness of the shell tests (tests/e2e/test_*.sh), sourced,
# never run. Sourcing it gives the test its own directory ($DIR, also named $WORK) from
# mktemp -d and an EXIT trap that stops everything the test started (daemons, helpers,
# load clients, its redis-server) and removes the directory (kept with KEEP=1).
#
# Daemons, one per test:
#   start_daemon CONFIG [LOG]      rlimitd on the file CONFIG, waits for "ready:"; sets
#                                  DAEMON_PID, DAEMON_LOG
#   stop_daemon                    SIGTERM, wait, require exit status 0
#   wait_log TEXT [COUNT]          waits until DAEMON_LOG has COUNT lines with TEXT
# Daemons, several by name:
#   daemon_start NAME CONFIG       CONFIG is text, "@DIR@" replaced by $DIR/NAME; sets
#                                  DPID[NAME] and SOCK[NAME] (unix:$DIR/NAME/rlimitd.sock)
#   daemon_reconfig NAME CONFIG    replaces NAME's config file atomically (for SIGHUP)
#   daemon_log NAME                the path of NAME's log
#   daemon_stop NAME [--signalled] SIGTERM (unless sent already), wait, require status 0
# Verdicts:
#   ok MSG, fail MSG (check_failed MSG is the same), expect_eq, expect_match,
#   expect_no_match; finish (fault_finish is the same): the verdict as the exit status
# Tools:
#   ctl ARGS (sets OUT ERR RC), http PORT TARGET [HEADER]..., http_port, flood, rlload ARGS,
#   mark FILE NAME, free_port, watchdog SECONDS, wait_for SECONDS COMMAND...,
#   start_redis [ARGS] (a private redis-server, tests/support/redis.sh, stopped at exit)
#   WAIT_S    seconds to wait for a daemon (10, or 90 under a wrapper)
#   RSS_STRICT 1 when RSS bounds mean something (no ASan, no valgrind)
#
# Environment (as `make e2e` sets it): BUILD (default build), RLIMITD_WRAPPER (a prefix
# such as valgrind, or empty), PYTHON (default /usr/bin/python3).

set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
RLIMITD_WRAPPER=${RLIMITD_WRAPPER:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case $BUILD in
/*) BUILD_DIR=$BUILD ;;
*) BUILD_DIR=$ROOT/$BUILD ;;
esac
RLIMITD="$BUILD_DIR/rlimitd"
RLIMITCTL="$BUILD_DIR/rlimitctl"
TOOLS_DIR="$ROOT/tests/tools"
# Seconds to wait for a daemon to come up or to answer: generous under valgrind.
if [ -n "$RLIMITD_WRAPPER" ]; then WAIT_S=90; else WAIT_S=10; fi

TEST_NAME=$(basename "$0" .sh)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rlimitd-$TEST_NAME-XXXXXX")
WORK=$DIR
DAEMON_PID=
DAEMON_ENV=()
EXTRA_PIDS=
FAILURES=()
declare -A DPID=() SOCK=()

if [ ! -x "$RLIMITD" ]; then
    echo "FAIL $TEST_NAME: $RLIMITD is not built" >&2
    rm -rf "$DIR"
    exit 1
fi
RSS_STRICT=1
if [ -n "$RLIMITD_WRAPPER" ] || ldd "$RLIMITD" 2>/dev/null | grep -q libasan; then
    RSS_STRICT=0
fi

cleanup() {
    local pid name job port
    for pid in $EXTRA_PIDS $DAEMON_PID; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $EXTRA_PIDS $DAEMON_PID; do
        wait "$pid" 2>/dev/null
    done
    for job in $(jobs -p); do # load clients still running (the test stopped early)
        pkill -TERM -P "$job" 2>/dev/null
        kill -TERM "$job" 2>/dev/null
    done
    for name in "${!DPID[@]}"; do
        pid=${DPID[$name]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    if declare -F redis_cleanup >/dev/null; then
        redis_cleanup
    fi
    if [ -f "$DIR/.ports" ]; then
        for port in $(cat "$DIR/.ports"); do
            rmdir "$PORTS_DIR/$port" 2>/dev/null
        done
    fi
    if [ -n "${KEEP:-}" ]; then
        echo "kept $DIR" >&2
    else
        rm -rf "$DIR"
    fi
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
    FAILURES+=("$*")
}

check_failed() {
    fail "$@"
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
        fail "$1: no line matches /$2/ in:"
        printf '%s\n' "$3" | sed 's/^/    | /' >&2
    fi
}

expect_no_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        fail "$1: a line matches /$2/ in:"
        printf '%s\n' "$3" | sed 's/^/    | /' >&2
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
    env "${DAEMON_ENV[@]}" $RLIMITD_WRAPPER "$RLIMITD" -f -c "$1" 2>"$DAEMON_LOG" &
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

# fake_clock: the daemons started after it see CLOCK_REALTIME ahead of the real clock by
# what clock_forward added up (tests/tools/fakeclock.c, preloaded; built by make).
fake_clock() {
    local lib=$BUILD_DIR/tests/fakeclock.so
    if [ ! -f "$lib" ]; then
        fail "no $lib (make e2e builds it)"
        finish
    fi
    echo 0 >"$DIR/clock.offset"
    DAEMON_ENV=(LD_PRELOAD="$lib" RLT_CLOCK_OFFSET_FILE="$DIR/clock.offset"
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
}

# clock_forward MICROSECONDS: moves the fake clock on (atomically: the daemon reads it).
clock_forward() {
    echo $(($(cat "$DIR/clock.offset") + $1)) >"$DIR/clock.offset.tmp"
    mv "$DIR/clock.offset.tmp" "$DIR/clock.offset"
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

# wait_for SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds (status 0) or
# SECONDS pass (status 1).
wait_for() {
    local limit=$1 i
    shift
    for i in $(seq $((limit * 50))); do
        "$@" && return 0
        sleep 0.02
    done
    return 1
}

# Writes CONFIG with @DIR@ replaced to FILE.
_write_config() {
    local dir=$1 text=$2 file=$3
    printf '%s\n' "${text//@DIR@/$dir}" >"$file.tmp" && mv "$file.tmp" "$file"
}

# daemon_start NAME CONFIG: see the top of this file.
daemon_start() {
    local name=$1 config=$2 dir=$DIR/$1 i
    mkdir -p "$dir"
    _write_config "$dir" "$config" "$dir/rlimitd.json"
    # shellcheck disable=SC2086
    $RLIMITD_WRAPPER "$RLIMITD" -f -c "$dir/rlimitd.json" 2>"$dir/daemon.log" &
    local pid=$!
    DPID[$name]=$pid
    SOCK[$name]=unix:$dir/rlimitd.sock
    for i in $(seq 1 3000); do
        if grep -q "ready:" "$dir/daemon.log" 2>/dev/null && [ -S "$dir/rlimitd.sock" ]; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.02
    done
    echo "FAIL $TEST_NAME: rlimitd $name did not come up; its log:" >&2
    cat "$dir/daemon.log" >&2
    exit 1
}

daemon_reconfig() {
    _write_config "$DIR/$1" "$2" "$DIR/$1/rlimitd.json"
}

daemon_log() {
    echo "$DIR/$1/daemon.log"
}

daemon_stop() { # NAME [--signalled: SIGTERM was sent already, only wait]
    local name=$1 pid rc=0
    pid=${DPID[$name]}
    if [ "${2:-}" != --signalled ]; then
        kill -TERM "$pid" 2>/dev/null
    fi
    for _ in $(seq 1 3000); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        fail "rlimitd $name did not stop within 60 s of SIGTERM"
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" != 0 ]; then
        fail "rlimitd $name exited with status $rc (valgrind/sanitizer errors?); log:"
        tail -80 "$(daemon_log "$name")" >&2
    fi
    return 0
}

rlload() {
    "$PYTHON" "$TOOLS_DIR/rlload.py" "$@"
}

mark() {
    echo "$2 $(date +%s.%N)" >>"$1"
}

# start_redis [ARGS...]: a private redis-server (tests/support/redis.sh: REDIS_PORT,
# REDIS_SOCK, REDIS_URL, rcli, redis_stop, redis_restart); this file's EXIT trap stops it.
start_redis() {
    # shellcheck source=tests/support/redis.sh
    . "$ROOT/tests/support/redis.sh"
    _redis_free_port() { # redis.sh's port: reserved, as free_port's (see below)
        free_port
    }
    redis_start "$@" || {
        echo "FAIL $TEST_NAME: redis-server did not start" >&2
        exit 1
    }
    trap cleanup EXIT
}

# Ports handed out by free_port are reserved (a directory per port under PORTS_DIR,
# removed at exit) and taken below the kernel's ephemeral range, so that tests running
# side by side never get the same port, and no connection's ephemeral port takes the
# port of a server the test stopped and will start again.
PORTS_DIR=${TMPDIR:-/tmp}/rlimitd-test-ports
PORT_LOW=10000
PORT_HIGH=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)

# free_port: a TCP port nothing listens on, reserved for this test.
free_port() {
    local port i
    mkdir -p "$PORTS_DIR"
    find "$PORTS_DIR" -mindepth 1 -maxdepth 1 -mmin +120 -exec rmdir {} + 2>/dev/null
    for i in $(seq 200); do
        port=$((PORT_LOW + (RANDOM * 32768 + RANDOM) % (PORT_HIGH - PORT_LOW)))
        mkdir "$PORTS_DIR/$port" 2>/dev/null || continue
        if "$PYTHON" -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
            echo "$port" >>"$DIR/.ports" # released by cleanup (free_port runs in $(...))
            echo "$port"
            return 0
        fi
        rmdir "$PORTS_DIR/$port"
    done
    echo "FAIL $TEST_NAME: no free port" >&2
    return 1
}

# http_port: the port of the daemon's most recently opened HTTP listener.
http_port() {
    grep -o 'listening on http:127.0.0.1:[0-9]*' "$DAEMON_LOG" | tail -1 | sed 's/.*://'
}

# http PORT TARGET [HEADER: VALUE]...: one raw HTTP/1.1 request (target sent as is);
# prints "status CODE", the headers (names lowercased), a blank line and the body. With
# HTTP_PIPELINE=N: the request N times on one kept-alive connection, read until the
# server closes it (or 10 s pass), and first a line "responses K" (the answers that came).
http() {
    "$PYTHON" - "$@" <<'PY'
import os, socket, sys
port, target, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
method = "GET"
if " " in target:
    method, target = target.split(" ", 1)
pipeline = int(os.environ.get("HTTP_PIPELINE", "0"))
req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s" % (
    method, target, "" if pipeline else "Connection: close\r\n")
req += "".join(h + "\r\n" for h in headers) + "\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=60 if not pipeline else 10)
s.sendall(req.encode("latin-1") * max(pipeline, 1))
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        break
    if not chunk:
        break
    data += chunk
if pipeline:
    print("responses %d" % data.count(b"HTTP/1.1 "))
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
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo "$TEST_NAME: ${#FAILURES[@]} failure(s):" >&2
        printf '  - %s\n' "${FAILURES[@]}" >&2
        exit 1
    fi
    echo "$TEST_NAME: all passed"
    exit 0
}
fault_finish() {
    finish
}
