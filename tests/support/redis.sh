# tests/support/redis.sh: a private redis-server for shell tests. Source it:
#
#   . tests/support/redis.sh
#   redis_start [server args...]  start one on a free 127.0.0.1 port and a Unix socket in a
#                                 new temporary directory; sets REDIS_PORT, REDIS_DIR,
#                                 REDIS_SOCK, REDIS_URL; installs an EXIT trap that stops it
#                                 (a test with its own EXIT trap calls redis_cleanup in it)
#   redis_stop [-9]               stop it (SIGTERM, or SIGKILL with -9); port and dir kept
#   redis_restart                 start it again on the same port and directory
#   rcli ARGS...                  redis-cli against it
#   redis_cleanup                 stop it and remove its directory
#
# Nothing assumes a Redis already running. tests/support/redis.c does the same for C.

REDIS_PID=
REDIS_PORT=
REDIS_DIR=
REDIS_SOCK=
REDIS_URL=
REDIS_ARGS=

# A random free port below the kernel's ephemeral range: no connection of a test running
# beside this one takes it as its own port while redis_stop ... redis_restart.
_redis_free_port() {
    "${PYTHON:-python3}" -c 'import random, socket
for _ in range(200):
    port = random.randrange(10000, 32768)
    try:
        socket.socket().bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break'
}

_redis_spawn() {
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --unixsocket "$REDIS_SOCK" \
        --dir "$REDIS_DIR" --save '' --appendonly no --logfile "$REDIS_DIR/redis.log" \
        --enable-debug-command yes "${REDIS_ARGS[@]}" &
    REDIS_PID=$!
    local i
    for i in $(seq 1 500); do
        if ! kill -0 "$REDIS_PID" 2>/dev/null; then
            REDIS_PID=
            return 1
        fi
        if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q -e PONG -e NOAUTH; then
            return 0
        fi
        sleep 0.01
    done
    return 1
}

redis_cleanup() {
    redis_stop -9
    if [ -n "$REDIS_DIR" ]; then
        rm -rf "$REDIS_DIR"
        REDIS_DIR=
    fi
}

redis_start() {
    REDIS_ARGS=("$@")
    REDIS_DIR=$(mktemp -d /tmp/rlt-redis-XXXXXX) || return 1
    REDIS_SOCK=$REDIS_DIR/redis.sock
    # Only when the test has no EXIT trap of its own (one that calls redis_cleanup):
    # replacing it would leave the test's daemons and temporary directory behind.
    [ -n "$(trap -p EXIT)" ] || trap redis_cleanup EXIT
    local attempt
    for attempt in 1 2 3 4 5; do
        REDIS_PORT=$(_redis_free_port) || return 1
        REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
        if _redis_spawn; then
            return 0
        fi
    done
    echo "redis.sh: redis-server did not start" >&2
    cat "$REDIS_DIR/redis.log" >&2 2>/dev/null
    return 1
}

redis_stop() {
    if [ -n "$REDIS_PID" ]; then
        if [ "$1" = "-9" ]; then
            kill -9 "$REDIS_PID" 2>/dev/null
        else
            kill "$REDIS_PID" 2>/dev/null
        fi
        wait "$REDIS_PID" 2>/dev/null
        REDIS_PID=
    fi
    return 0
}

redis_restart() {
    _redis_spawn
}

rcli() {
    redis-cli -p "$REDIS_PORT" "$@"
}
