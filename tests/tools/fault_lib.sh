# shellcheck shell=bash disable=SC2034
# (SC2034: DPID, SOCK, RSS_STRICT are set here for the scripts that source this file)
# tests/tools/fault_lib.sh: shared helpers of the fault and accuracy tests. Source it:
#
#   . tests/tools/fault_lib.sh
#   fault_init                     temp dir $WORK, an EXIT trap that stops everything started
#   daemon_start NAME CONFIG       start rlimitd (behind $RLIMITD_WRAPPER) on CONFIG, "@DIR@"
#                                  replaced by $WORK/NAME; sets DPID[NAME] (its pid) and
#                                  SOCK[NAME] (its address, unix:$WORK/NAME/rlimitd.sock)
#   daemon_reconfig NAME CONFIG    replace NAME's config file atomically (for SIGHUP)
#   daemon_stop NAME [--signalled] SIGTERM (unless sent already), wait, require exit status 0
#                                  (valgrind/ASan clean)
#   rlload ARGS...                 tests/tools/rlload.py
#   mark FILE NAME                 append "NAME EPOCH" to a marks file (phases of a load)
#   check_failed MSG               record a failure; the test goes on, fault_finish exits 1
#   fault_finish                   prints the verdict and exits
#   RSS_STRICT                     1 when RSS bounds mean something (no ASan, no valgrind)
#
# Environment (as `make e2e` sets it): BUILD (default build), RLIMITD_WRAPPER (e.g. a
# valgrind prefix; tests scale down where they must, saying so), PYTHON (/usr/bin/python3).

BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
RLIMITD_WRAPPER=${RLIMITD_WRAPPER:-}
FAULT_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAULT_FAILURES=()
declare -A DPID=() SOCK=()

fault_cleanup() {
    local name pid job
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
    if [ -n "${WORK:-}" ] && [ -z "${FAULT_KEEP:-}" ]; then
        rm -rf "$WORK"
    elif [ -n "${WORK:-}" ]; then
        echo "kept $WORK" >&2
    fi
}

fault_init() {
    WORK=$(mktemp -d /tmp/rlimitd-fault-XXXXXX)
    trap fault_cleanup EXIT
    trap 'exit 130' INT TERM
    if [ ! -x "$BUILD/rlimitd" ]; then
        echo "fault: $BUILD/rlimitd is not built" >&2
        exit 1
    fi
    RSS_STRICT=1
    if [ -n "$RLIMITD_WRAPPER" ] || ldd "$BUILD/rlimitd" 2>/dev/null | grep -q libasan; then
        RSS_STRICT=0
        echo "RSS figures are printed but not bounded: ASan's quarantine and valgrind keep" \
            "freed memory (the plain build's run asserts the bounds)"
    fi
}

rlload() {
    "$PYTHON" "$FAULT_TOOLS/rlload.py" "$@"
}

mark() {
    echo "$2 $(date +%s.%N)" >>"$1"
}

check_failed() {
    echo "FAIL: $*" >&2
    FAULT_FAILURES+=("$*")
}

# Writes CONFIG with @DIR@ replaced to FILE.
_write_config() {
    local dir=$1 text=$2 file=$3
    printf '%s\n' "${text//@DIR@/$dir}" >"$file.tmp" && mv "$file.tmp" "$file"
}

daemon_start() {
    local name=$1 config=$2 dir=$WORK/$1 i
    mkdir -p "$dir"
    _write_config "$dir" "$config" "$dir/rlimitd.json"
    # shellcheck disable=SC2086
    $RLIMITD_WRAPPER "$BUILD/rlimitd" -f -c "$dir/rlimitd.json" 2>"$dir/daemon.log" &
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
    echo "fault: rlimitd $name did not come up; its log:" >&2
    cat "$dir/daemon.log" >&2
    exit 1
}

daemon_reconfig() {
    _write_config "$WORK/$1" "$2" "$WORK/$1/rlimitd.json"
}

daemon_log() {
    echo "$WORK/$1/daemon.log"
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
        check_failed "rlimitd $name did not stop within 60 s of SIGTERM"
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" != 0 ]; then
        check_failed "rlimitd $name exited with status $rc (valgrind/sanitizer errors?); log:"
        tail -80 "$(daemon_log "$name")" >&2
    fi
    return 0
}

fault_finish() {
    local name=$1
    if [ ${#FAULT_FAILURES[@]} -gt 0 ]; then
        echo "$name: ${#FAULT_FAILURES[@]} failure(s):" >&2
        printf '  - %s\n' "${FAULT_FAILURES[@]}" >&2
        exit 1
    fi
    echo "$name: ok"
    exit 0
}

# Starts a private redis-server (tests/support/redis.sh) and keeps this file's EXIT trap,
# which stops it along with the daemons.
fault_redis_start() {
    # shellcheck source=/dev/null
    . "$FAULT_TOOLS/../support/redis.sh"
    redis_start || exit 1
    trap fault_cleanup EXIT
}
