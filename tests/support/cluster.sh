# tests/support/cluster.sh: a private Redis Cluster for shell tests. Source it:
#
#   . tests/support/cluster.sh
#   cluster_start [masters=3] [replicas=1]
#                          start masters*(1+replicas) cluster nodes on free 127.0.0.1 ports in a
#                          new temporary directory (node timeout 1000 ms, no persistence), create
#                          the cluster, wait until every node says cluster_state:ok, agrees on the
#                          slot map and every replica's link to its master is up; sets
#                          CLUSTER_PORTS (array, all nodes), CLUSTER_MASTER_PORTS (array),
#                          CLUSTER_URLS_JSON ('["redis://127.0.0.1:P", ...]', the masters),
#                          CLUSTER_DIR; installs an EXIT trap that stops them (a test with its own
#                          EXIT trap calls cluster_cleanup in it; the trap of redis.sh or
#                          sentinel.sh gets cluster_cleanup added)
#   cluster_cli PORT ARGS...           redis-cli against one node
#   cluster_keyslot KEY                the key's slot (CLUSTER KEYSLOT)
#   cluster_owner_port SLOT            the port of the master serving the slot
#   cluster_move_slot SLOT TO_PORT     move a slot and its keys by hand (SETSLOT IMPORTING and
#                                      MIGRATING, MIGRATE in batches, SETSLOT NODE on every master)
#   cluster_move_slot_slowly SLOT TO_PORT [PAUSE_S=0.2] [BATCH=10]
#                                      the same, with a pause between key batches, so that load
#                                      runs while the slot is half moved
#   cluster_kill_master PORT           SIGKILL a master (its replica takes over)
#   cluster_wait_promoted OLD_PORT [TIMEOUT_S=15]
#                                      wait until a replica of that master is master and every
#                                      live node says cluster_state:ok; prints its port
#   cluster_failover REPLICA_PORT [TIMEOUT_S=15]
#                                      CLUSTER FAILOVER on a replica, wait until it is master
#                                      and every live node says cluster_state:ok
#   cluster_cleanup                    stop every node and remove the directory
#
# Every wait is bounded; a function that times out prints why on stderr and returns 1.
# A node's cluster bus listens on its port + 10000: both are picked free and below the kernel's
# ephemeral range, so no connection of a test running beside this one takes them.

# shellcheck source=tests/support/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/servers.sh"

declare -ga CLUSTER_PORTS=()
declare -ga CLUSTER_MASTER_PORTS=()
declare -gA CLUSTER_PIDS=()
CLUSTER_URLS_JSON=
CLUSTER_DIR=

# Prints COUNT distinct ports P, each with P and P + 10000 free, P in [10000, 22768).
_cluster_free_ports() {
    _support_free_ports "$1" 10000
}

cluster_cli() {
    local port=$1
    shift
    redis-cli -p "$port" "$@"
}

# _cluster_poll TIMEOUT_S WHAT CMD ARGS...: _support_poll (servers.sh).
_cluster_poll() {
    _support_poll cluster.sh "$@"
}

_cluster_spawn() {
    local port=$1
    mkdir -p "$CLUSTER_DIR/$port"
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-config-file "$CLUSTER_DIR/$port/nodes.conf" --cluster-node-timeout 1000 \
        --cluster-allow-replica-migration no --dir "$CLUSTER_DIR/$port" --save '' \
        --appendonly no --repl-diskless-sync-delay 0 --logfile "$CLUSTER_DIR/$port/redis.log" \
        --enable-debug-command yes &
    CLUSTER_PIDS[$port]=$!
}

_cluster_pinged() {
    local port
    for port in "$@"; do
        if ! kill -0 "${CLUSTER_PIDS[$port]}" 2>/dev/null; then
            echo "cluster.sh: redis-server on port $port exited" >&2
            return 2
        fi
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG || return 1
    done
}

# The live nodes (their process still runs).
_cluster_live_ports() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        if [ -n "${CLUSTER_PIDS[$port]:-}" ] && kill -0 "${CLUSTER_PIDS[$port]}" 2>/dev/null; then
            echo "$port"
        fi
    done
}

# True when every live node says cluster_state:ok and they all print the same slot map.
_cluster_all_ok() {
    local port maps=""
    for port in $(_cluster_live_ports); do
        redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
        maps+="$(redis-cli -p "$port" cluster shards 2>/dev/null | _cluster_slot_map)"$'\n'
    done
    [ "$(printf '%s' "$maps" | sort -u | wc -l)" -eq 1 ]
}

# Reads CLUSTER SHARDS (redis-cli's plain output) and prints one line: the slot ranges with
# the port of their online master, sorted.
_cluster_slot_map() {
    awk '
        $0 == "slots" { mode = "slots"; n = 0; next }
        $0 == "nodes" { mode = "nodes"; next }
        mode == "slots" && $0 ~ /^[0-9]+$/ { r[n++] = $0; next }
        mode == "nodes" && prev == "port" { port = $0 }
        mode == "nodes" && prev == "role" { role = $0 }
        mode == "nodes" && prev == "health" {
            if (role == "master" && $0 == "online")
                for (i = 0; i + 1 < n; i += 2) out = out " " r[i] "-" r[i + 1] "@" port
        }
        { prev = $0 }
        END { print out }' | tr ' ' '\n' | sort | tr '\n' ' '
}

# True when every replica's link to its master is up.
_cluster_replicas_synced() {
    local port
    for port in $(_cluster_live_ports); do
        if redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q slave; then
            redis-cli -p "$port" info replication 2>/dev/null |
                grep -q '^master_link_status:up' || return 1
        fi
    done
}

_cluster_stop_all() {
    local port
    for port in "${!CLUSTER_PIDS[@]}"; do
        kill -9 "${CLUSTER_PIDS[$port]}" 2>/dev/null
        wait "${CLUSTER_PIDS[$port]}" 2>/dev/null
    done
    CLUSTER_PIDS=()
}

cluster_cleanup() {
    _cluster_stop_all
    if [ -n "$CLUSTER_DIR" ]; then
        rm -rf "$CLUSTER_DIR"
        CLUSTER_DIR=
    fi
    return 0
}

_cluster_launch() {
    local total=$1 attempt ports port
    for attempt in 1 2 3 4 5; do
        : "attempt $attempt"
        ports=$(_cluster_free_ports "$total")
        [ -n "$ports" ] || continue
        read -r -a CLUSTER_PORTS <<<"$ports"
        for port in "${CLUSTER_PORTS[@]}"; do
            _cluster_spawn "$port"
        done
        if _cluster_poll 10 "nodes to answer PING" _cluster_pinged "${CLUSTER_PORTS[@]}"; then
            return 0
        fi
        _cluster_stop_all
    done
    echo "cluster.sh: redis-server did not start" >&2
    return 1
}

# Installs an EXIT trap running cluster_cleanup, only when the test has no EXIT trap of its own (one
# that calls cluster_cleanup); the trap of another support library (redis.sh, cluster.sh,
# sentinel.sh) is kept and cluster_cleanup added to it.
_cluster_install_trap() {
    case $(trap -p EXIT) in
    "") trap cluster_cleanup EXIT ;;
    "trap -- '"*_cleanup"' EXIT")
        local current
        current=$(trap -p EXIT | sed "s/^trap -- '\\(.*\\)' EXIT$/\\1/")
        # shellcheck disable=SC2064 # the current trap, expanded now on purpose
        case $current in
        *cluster_cleanup*) ;;
        *[!a-z_\ \;]*) ;;
        *) trap "$current; cluster_cleanup" EXIT ;;
        esac
        ;;
    esac
}

cluster_start() {
    local masters=${1:-3} replicas=${2:-1} port hosts=()
    CLUSTER_DIR=$(mktemp -d /tmp/rlt-cluster-XXXXXX) || return 1
    _cluster_install_trap
    _cluster_launch $((masters * (1 + replicas))) || return 1
    for port in "${CLUSTER_PORTS[@]}"; do
        hosts+=("127.0.0.1:$port")
    done
    if ! redis-cli --cluster create "${hosts[@]}" --cluster-replicas "$replicas" \
        --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1; then
        echo "cluster.sh: redis-cli --cluster create failed:" >&2
        cat "$CLUSTER_DIR/create.log" >&2
        return 1
    fi
    _cluster_poll 20 "cluster_state:ok and one slot map on every node" _cluster_all_ok || return 1
    _cluster_poll 20 "replicas to sync" _cluster_replicas_synced || return 1
    if ! redis-cli --cluster check "127.0.0.1:${CLUSTER_PORTS[0]}" >"$CLUSTER_DIR/check.log" 2>&1; then
        echo "cluster.sh: redis-cli --cluster check failed:" >&2
        cat "$CLUSTER_DIR/check.log" >&2
        return 1
    fi
    _cluster_set_masters
}

# Sets CLUSTER_MASTER_PORTS and CLUSTER_URLS_JSON from the live nodes' roles.
_cluster_set_masters() {
    local port json=""
    CLUSTER_MASTER_PORTS=()
    for port in $(_cluster_live_ports); do
        if redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q master; then
            CLUSTER_MASTER_PORTS+=("$port")
            json+="${json:+, }\"redis://127.0.0.1:$port\""
        fi
    done
    # shellcheck disable=SC2034 # read by the test that sources this file
    CLUSTER_URLS_JSON="[$json]"
}

# The first live node's port (to ask about the whole cluster).
_cluster_any_port() {
    _cluster_live_ports | head -1
}

cluster_keyslot() {
    redis-cli -p "$(_cluster_any_port)" cluster keyslot "$1"
}

# Prints the port of the master that serves SLOT (per CLUSTER NODES of a live node), or
# nothing when no master serves it.
cluster_owner_port() {
    redis-cli -p "$(_cluster_any_port)" cluster nodes | awk -v slot="$1" '
        $3 ~ /master/ && $3 !~ /fail/ {
            for (i = 9; i <= NF; i++) {
                if ($i ~ /^\[/)
                    continue
                n = split($i, r, "-")
                if (n == 1)
                    r[2] = r[1]
                if (slot + 0 >= r[1] + 0 && slot + 0 <= r[2] + 0) {
                    sub(/@.*/, "", $2)
                    sub(/.*:/, "", $2)
                    print $2
                    exit
                }
            }
        }'
}

_cluster_node_id() {
    redis-cli -p "$1" cluster myid
}

# MIGRATE the slot's keys from FROM to TO, BATCH keys a call, PAUSE_S between calls.
_cluster_migrate_keys() {
    local slot=$1 from=$2 to=$3 pause=$4 batch=$5 keys reply
    while :; do
        mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" "$batch")
        [ "${#keys[@]}" -gt 0 ] && [ -n "${keys[0]}" ] || return 0
        reply=$(redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}")
        case $reply in
        OK | NOKEY) ;;
        *)
            echo "cluster.sh: MIGRATE of slot $slot to $to: $reply" >&2
            return 1
            ;;
        esac
        [ "$pause" = 0 ] || sleep "$pause"
    done
}

# Assigns SLOT to the node TO on TO, then FROM, then every other master (the order Redis's
# documentation gives), and waits until every node agrees.
_cluster_assign_slot() {
    local slot=$1 from=$2 to=$3 id port
    id=$(_cluster_node_id "$to")
    for port in "$to" "$from" $(_cluster_live_masters); do
        redis-cli -p "$port" cluster setslot "$slot" node "$id" | grep -q OK || {
            echo "cluster.sh: CLUSTER SETSLOT $slot NODE on $port failed" >&2
            return 1
        }
    done
    _cluster_poll 10 "every node to see slot $slot on $to" _cluster_all_ok
}

_cluster_live_masters() {
    local port
    for port in $(_cluster_live_ports); do
        redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q master && echo "$port"
    done
}

_cluster_move() {
    local slot=$1 to=$2 pause=$3 batch=$4 from
    from=$(cluster_owner_port "$slot")
    if [ -z "$from" ]; then
        echo "cluster.sh: no master serves slot $slot" >&2
        return 1
    fi
    [ "$from" != "$to" ] || return 0
    if ! redis-cli -p "$to" cluster setslot "$slot" importing "$(_cluster_node_id "$from")" |
        grep -q OK || ! redis-cli -p "$from" cluster setslot "$slot" migrating \
        "$(_cluster_node_id "$to")" | grep -q OK; then
        echo "cluster.sh: CLUSTER SETSLOT $slot IMPORTING/MIGRATING failed" >&2
        return 1
    fi
    _cluster_migrate_keys "$slot" "$from" "$to" "$pause" "$batch" &&
        _cluster_assign_slot "$slot" "$from" "$to"
}

cluster_move_slot() {
    _cluster_move "$1" "$2" 0 1000
}

cluster_move_slot_slowly() {
    _cluster_move "$1" "$2" "${3:-0.2}" "${4:-10}"
}

# The ports of the live replicas of the master on PORT.
_cluster_replicas_of() {
    local port
    for port in $(_cluster_live_ports); do
        redis-cli -p "$port" role 2>/dev/null | head -3 | tr '\n' ' ' |
            grep -q "^slave 127.0.0.1 $1 " && echo "$port"
    done
}

declare -gA _CLUSTER_REPLICAS_OF=()

cluster_kill_master() {
    local port=$1
    _CLUSTER_REPLICAS_OF[$port]=$(_cluster_replicas_of "$port" | tr '\n' ' ')
    kill -9 "${CLUSTER_PIDS[$port]}" 2>/dev/null
    wait "${CLUSTER_PIDS[$port]}" 2>/dev/null
    unset "CLUSTER_PIDS[$port]"
}

# True when one of the ports given is a master, and prints it.
_cluster_one_is_master() {
    local port
    for port in "$@"; do
        if redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q master; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

_cluster_promoted() {
    _cluster_one_is_master "$@" >/dev/null && _cluster_all_ok
}

cluster_wait_promoted() {
    local old=$1 timeout=${2:-15} replicas
    read -r -a replicas <<<"${_CLUSTER_REPLICAS_OF[$old]:-}"
    if [ "${#replicas[@]}" -eq 0 ]; then
        echo "cluster.sh: master $old had no replica (was it killed with cluster_kill_master?)" >&2
        return 1
    fi
    _cluster_poll "$timeout" "a replica of $old to take over" _cluster_promoted "${replicas[@]}" ||
        return 1
    _cluster_set_masters
    _cluster_one_is_master "${replicas[@]}"
}

cluster_failover() {
    local replica=$1 timeout=${2:-15}
    if ! redis-cli -p "$replica" cluster failover | grep -q OK; then
        echo "cluster.sh: CLUSTER FAILOVER on $replica refused" >&2
        return 1
    fi
    _cluster_poll "$timeout" "$replica to take over" _cluster_promoted "$replica" || return 1
    _cluster_set_masters
}
