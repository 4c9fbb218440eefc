# tests/support/sentinel.sh: a private Redis master, its replica and 3 sentinels for shell tests.
# Source it:
#
#   . tests/support/sentinel.sh
#   sentinel_start         start a master and a replica (replicaof) on free 127.0.0.1 ports and
#                          3 sentinels (redis-server --sentinel) monitoring them as "mymaster" (quorum 2,
#                          down-after-milliseconds 1000, failover-timeout 3000, parallel-syncs 1),
#                          all in a new temporary directory; waits until the replica is in sync
#                          and every sentinel knows the replica and the 2 other sentinels; sets
#                          SENTINEL_MASTER_PORT, SENTINEL_REPLICA_PORT, SENTINEL_PORTS (array),
#                          SENTINEL_NODES_JSON ('["127.0.0.1:P", ...]'), SENTINEL_DIR; installs
#                          an EXIT trap that stops them (a test with its own EXIT trap calls
#                          sentinel_cleanup in it; the trap of redis.sh or cluster.sh gets
#                          sentinel_cleanup added)
#                          Environment: SENTINEL_PASSWORD: the sentinels' requirepass (they use
#                          it between themselves too); SENTINEL_MASTER_PASSWORD: requirepass and
#                          masterauth of the master and the replica (the sentinels get auth-pass).
#   sentinel_cli PORT ARGS...    redis-cli against a sentinel (with SENTINEL_PASSWORD)
#   sentinel_redis_cli PORT ARGS...  redis-cli against the master or the replica
#   sentinel_kill_master   SIGKILL the master
#   sentinel_wait_switch [TIMEOUT_S=20]
#                          wait until every live sentinel answers SENTINEL get-master-addr-by-name
#                          mymaster with the replica's port and the replica says it is master
#   sentinel_cleanup       stop everything and remove the directory
#
# Every wait is bounded; a function that times out prints why on stderr and returns 1.

# shellcheck source=tests/support/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/servers.sh"

SENTINEL_MASTER_PORT=
SENTINEL_REPLICA_PORT=
declare -ga SENTINEL_PORTS=()
SENTINEL_NODES_JSON=
SENTINEL_DIR=
declare -gA _SENTINEL_PIDS=()

# Prints COUNT distinct free ports in [10000, 32768), below the kernel's ephemeral range.
_sentinel_free_ports() {
    _support_free_ports "$1"
}

# _sentinel_poll TIMEOUT_S WHAT CMD ARGS...: _support_poll (servers.sh).
_sentinel_poll() {
    _support_poll sentinel.sh "$@"
}

# redis-cli with PASSWORD (through the environment, not argv) when it is not empty.
_sentinel_redis_cli_auth() {
    local password=$1
    shift
    if [ -n "$password" ]; then
        REDISCLI_AUTH=$password redis-cli "$@"
    else
        redis-cli "$@"
    fi
}

sentinel_cli() {
    local port=$1
    shift
    _sentinel_redis_cli_auth "$SENTINEL_PASSWORD" -p "$port" "$@"
}

sentinel_redis_cli() {
    local port=$1
    shift
    _sentinel_redis_cli_auth "$SENTINEL_MASTER_PASSWORD" -p "$port" "$@"
}

_sentinel_spawn_redis() {
    local port=$1 name=$2
    shift 2
    local auth=()
    if [ -n "$SENTINEL_MASTER_PASSWORD" ]; then
        auth=(--requirepass "$SENTINEL_MASTER_PASSWORD" --masterauth "$SENTINEL_MASTER_PASSWORD")
    fi
    mkdir -p "$SENTINEL_DIR/$name"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$SENTINEL_DIR/$name" --save '' \
        --appendonly no --repl-diskless-sync-delay 0 --logfile "$SENTINEL_DIR/$name/redis.log" \
        "${auth[@]}" "$@" &
    _SENTINEL_PIDS[$port]=$!
}

_sentinel_write_conf() {
    local port=$1 conf=$SENTINEL_DIR/sentinel-$1.conf
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "dir $SENTINEL_DIR"
        echo "logfile $SENTINEL_DIR/sentinel-$port.log"
        echo "sentinel monitor mymaster 127.0.0.1 $SENTINEL_MASTER_PORT 2"
        echo "sentinel down-after-milliseconds mymaster 1000"
        echo "sentinel failover-timeout mymaster 3000"
        echo "sentinel parallel-syncs mymaster 1"
        [ -z "$SENTINEL_MASTER_PASSWORD" ] ||
            echo "sentinel auth-pass mymaster $SENTINEL_MASTER_PASSWORD"
        [ -z "$SENTINEL_PASSWORD" ] || echo "requirepass $SENTINEL_PASSWORD"
    } >"$conf"
    echo "$conf"
}

# Status 0 when every port given answers PING, 2 when one of the processes exited.
_sentinel_pinged() {
    local port
    for port in "$@"; do
        if ! kill -0 "${_SENTINEL_PIDS[$port]}" 2>/dev/null; then
            echo "sentinel.sh: the process on port $port exited" >&2
            return 2
        fi
        redis-cli -p "$port" ping 2>/dev/null | grep -q -e PONG -e NOAUTH || return 1
    done
}

_sentinel_stop_all() {
    local port
    for port in "${!_SENTINEL_PIDS[@]}"; do
        kill -9 "${_SENTINEL_PIDS[$port]}" 2>/dev/null
        wait "${_SENTINEL_PIDS[$port]}" 2>/dev/null
    done
    _SENTINEL_PIDS=()
}

sentinel_cleanup() {
    _sentinel_stop_all
    if [ -n "$SENTINEL_DIR" ]; then
        rm -rf "$SENTINEL_DIR"
        SENTINEL_DIR=
    fi
    return 0
}

# True when the replica's link to the master is up.
_sentinel_replica_synced() {
    sentinel_redis_cli "$SENTINEL_REPLICA_PORT" info replication 2>/dev/null |
        grep -q '^master_link_status:up'
}

# Starts the 5 processes on fresh ports; status 0 when all answer PING. The sentinels start
# once the replica is in sync: a sentinel lists the replicas from the master's INFO, which it
# asks for when it connects and then every 10 s.
_sentinel_launch() {
    local ports port
    ports=$(_sentinel_free_ports 5)
    [ -n "$ports" ] || return 1
    read -r SENTINEL_MASTER_PORT SENTINEL_REPLICA_PORT ports <<<"$ports"
    read -r -a SENTINEL_PORTS <<<"$ports"
    _sentinel_spawn_redis "$SENTINEL_MASTER_PORT" master
    _sentinel_spawn_redis "$SENTINEL_REPLICA_PORT" replica \
        --replicaof 127.0.0.1 "$SENTINEL_MASTER_PORT"
    _sentinel_poll 10 "the servers to answer PING" _sentinel_pinged \
        "$SENTINEL_MASTER_PORT" "$SENTINEL_REPLICA_PORT" || return 1
    _sentinel_poll 10 "the replica to sync" _sentinel_replica_synced || return 1
    for port in "${SENTINEL_PORTS[@]}"; do
        # redis-server in sentinel mode: the same binary, no redis-sentinel package needed.
        redis-server "$(_sentinel_write_conf "$port")" --sentinel &
        _SENTINEL_PIDS[$port]=$!
    done
    _sentinel_poll 10 "the sentinels to answer PING" _sentinel_pinged "${SENTINEL_PORTS[@]}"
}

# True when every sentinel knows the replica and the other sentinels.
_sentinel_ready() {
    local port
    for port in "${SENTINEL_PORTS[@]}"; do
        sentinel_cli "$port" sentinel replicas mymaster 2>/dev/null |
            grep -qx "127.0.0.1:$SENTINEL_REPLICA_PORT" || return 1
        [ "$(sentinel_cli "$port" sentinel sentinels mymaster 2>/dev/null | grep -c '^runid$')" \
            -eq $((${#SENTINEL_PORTS[@]} - 1)) ] || return 1
    done
}

# Installs an EXIT trap running sentinel_cleanup, only when the test has no EXIT trap of its own (one
# that calls sentinel_cleanup); the trap of another support library (redis.sh, cluster.sh,
# sentinel.sh) is kept and sentinel_cleanup added to it.
_sentinel_install_trap() {
    case $(trap -p EXIT) in
    "") trap sentinel_cleanup EXIT ;;
    "trap -- '"*_cleanup"' EXIT")
        local current
        current=$(trap -p EXIT | sed "s/^trap -- '\\(.*\\)' EXIT$/\\1/")
        # shellcheck disable=SC2064 # the current trap, expanded now on purpose
        case $current in
        *sentinel_cleanup*) ;;
        *[!a-z_\ \;]*) ;;
        *) trap "$current; sentinel_cleanup" EXIT ;;
        esac
        ;;
    esac
}

sentinel_start() {
    local attempt port json=""
    SENTINEL_DIR=$(mktemp -d /tmp/rlt-sentinel-XXXXXX) || return 1
    _sentinel_install_trap
    for attempt in 1 2 3 4 5; do
        : "attempt $attempt"
        _sentinel_launch && break
        _sentinel_stop_all
        SENTINEL_MASTER_PORT=
    done
    if [ -z "$SENTINEL_MASTER_PORT" ]; then
        echo "sentinel.sh: the servers did not start" >&2
        return 1
    fi
    _sentinel_poll 20 "the sentinels to know the replica and each other" _sentinel_ready ||
        return 1
    for port in "${SENTINEL_PORTS[@]}"; do
        json+="${json:+, }\"127.0.0.1:$port\""
    done
    # shellcheck disable=SC2034 # read by the test that sources this file
    SENTINEL_NODES_JSON="[$json]"
}

sentinel_kill_master() {
    kill -9 "${_SENTINEL_PIDS[$SENTINEL_MASTER_PORT]}" 2>/dev/null
    wait "${_SENTINEL_PIDS[$SENTINEL_MASTER_PORT]}" 2>/dev/null
    unset "_SENTINEL_PIDS[$SENTINEL_MASTER_PORT]"
}

# True when every live sentinel names the replica as the master and the replica says so too.
_sentinel_switched() {
    local port
    for port in "${SENTINEL_PORTS[@]}"; do
        kill -0 "${_SENTINEL_PIDS[$port]}" 2>/dev/null || continue
        [ "$(sentinel_cli "$port" sentinel get-master-addr-by-name mymaster 2>/dev/null | tail -1)" \
            = "$SENTINEL_REPLICA_PORT" ] || return 1
    done
    sentinel_redis_cli "$SENTINEL_REPLICA_PORT" role 2>/dev/null | head -1 | grep -q master
}

sentinel_wait_switch() {
    _sentinel_poll "${1:-20}" "the sentinels to switch to $SENTINEL_REPLICA_PORT" _sentinel_switched
}
