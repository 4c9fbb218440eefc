# shellcheck shell=bash
# tests/support/servers.sh: what cluster.sh and sentinel.sh share (they source it).
#   _support_free_ports COUNT [PAIR]   prints COUNT distinct free 127.0.0.1 ports in
#                                      [10000, 32768), below the kernel's ephemeral range;
#                                      with PAIR (a cluster's bus offset, 10000) P + PAIR is
#                                      free too and below 32768; prints nothing if it
#                                      found too few
#   _support_poll WHO TIMEOUT_S WHAT CMD ARGS...
#                                      runs CMD every 20 ms until it succeeds (status 0) or
#                                      TIMEOUT_S (whole seconds) passes (then "WHO: timed
#                                      out ... waiting for WHAT" on stderr, status 1); a
#                                      status of 2 or more ends the wait at once (the
#                                      command knows it can no longer succeed)

_support_free_ports() {
    "${PYTHON:-python3}" - "$1" "${2:-0}" <<'PY'
import random, socket, sys
count, pair, found = int(sys.argv[1]), int(sys.argv[2]), []
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
taken = lambda p: p in found or (pair and (p + pair in found or p - pair in found))
for _ in range(2000):
    if len(found) == count:
        break
    port = random.randrange(10000, 32768 - pair)
    if not taken(port) and free(port) and (not pair or free(port + pair)):
        found.append(port)
print(" ".join(map(str, found)) if len(found) == count else "")
PY
}

_support_poll() {
    local who=$1 timeout=$2 what=$3
    shift 3
    local deadline=$((${EPOCHREALTIME/./} + timeout * 1000000)) rc
    while :; do
        "$@"
        rc=$?
        [ "$rc" -eq 0 ] && return 0
        [ "$rc" -ge 2 ] && return "$rc"
        if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
            echo "$who: timed out after ${timeout}s waiting for $what" >&2
            return 1
        fi
        sleep 0.02
    done
}
