#!/usr/bin/env bash
# tests/bench/run.sh: `make bench`. rlimitd against the peers a user would otherwise choose,
# all measured in ONE run on this machine, side by side: every target is a ratio of two
# figures of the same run, taken with the same load shape and the same placement
# (issue 12; absolute latency targets are retired: here a system call costs 1.4-2.3 us and
# the tail of an unpipelined run follows the virtual machine, so latencies are shown as
# information, except the one p99 ratio below).
#
# Everything it needs it starts itself in a temporary directory and stops on exit (also on
# Ctrl-C): a redis-server on a free port and a Unix socket, rlimitd with the memory store,
# rlimitd with the Redis store, and (through clients/python/bench/bench_python.py) uvicorn.
# It never uses a service that was already running.
#
# Targets (printed at the end in one table, each "met" / "not met"):
#   1. memory store vs redis-server running INCR on random keys (the limit of a single-
#      threaded event loop here), both on a Unix socket, loaded from core 1 while the
#      server has core 0 (rlimit-bench / redis-benchmark -t incr), closed loop:
#        64 connections x 1 in flight:  throughput >= 1.0x redis-server's,
#                                       p99 <= 1.0x redis-server's p99
#        2 connections x 256 in flight: throughput >= 1.0x redis-server's
#      BENCH_ROUNDS alternated rounds per side (ABBA), medians. Shown beside them: each
#      server's CPU use and decisions per second of its own CPU (when a server does not
#      keep its core busy, its load generator set the pace).
#   2. Redis store (pipelined, 4 x 256) vs rate-limiter-flexible (ioredis, 64 in flight) on
#      the same redis-server: >= 3.0x (also against ioredis auto-pipelining).
#   3. FastAPI middleware overhead, overhead = 1 - req/s with / req/s without a middleware,
#      the example app with no middleware, rlimit's RateLimitMiddleware, an in-process
#      middleware on `limits` (slowapi's engine, MemoryStorage, fixed window) and one
#      calling Redis per request (redis.asyncio INCR + EXPIRE), all running at once and
#      loaded by wrk in alternated short loads (clients/python/bench/peer_apps.py):
#        asyncio + h11:      rlimit's overhead <= 1.0x the `limits` one's
#        uvloop + httptools: the same ratio, reported (not a target)
#        both stacks:        rlimit's overhead <= 0.5x the Redis middleware's
#   4. AsyncClient (64 concurrent) vs `limits` with Redis (moving window, 8 threads): >= 5.0x.
#   5. Leases (issue 14): ACQUIRE+RELEASE pairs per second, rlimitd's memory store (2 x 256)
#      and Redis store (4 x 256), pipelined (rlimit-bench --op acquire: each pair an ACQUIRE
#      then the RELEASE of its lease), against the same work done without rlimitd: the
#      sorted-set lease script (tests/bench/lease.lua: ZREMRANGEBYSCORE, ZCARD, ZADD with the
#      expiry as score, PEXPIRE) and one ZREM to release, per pair, from ioredis (defaults
#      and auto-pipelining, 64 pairs in flight; tests/bench/node/lease_bench.js) and redis-py
#      asyncio (64 concurrent tasks, and 4 tasks x pipelines of 256; tests/bench/lease_redispy.py),
#      on the same redis-server with the Redis store's placement, alternated rounds, medians:
#      each store >= 3.0x the best of these peers.
#   6. Replay (issue 15): `rlimitctl replay` of a synthetic combined access log
#      (tests/bench/gen_log.py: BENCH_REPLAY_LINES lines, 10,000 client addresses, a token
#      bucket per address) on one core, against GoAccess turning the same log into a JSON
#      report on the same core (`goaccess LOG --log-format=COMBINED --no-progress -o
#      report.json`), alternated rounds (ABBA), medians of lines per second of wall time:
#      >= 1.0x GoAccess's; absolute: >= 1,000,000 combined lines/s and >= 300,000 JSON
#      lines/s (BENCH_REPLAY_JSONL_LINES); memory: the maximum RSS (GNU time) of a replay of
#      BENCH_REPLAY_RSS_LINES lines read from a pipe is at most 1.1x that of 1/10 of them
#      (the same keys: the state is bounded by the keys, not the log's length).
#   7. Redis Cluster (issue 13): a private 3-master cluster (tests/support/cluster.sh, no
#      replicas, masters on core 0), rlimitd with "store": {"type": "redis", "cluster":
#      [the masters]} (core 1), the Redis store's load shape (4 x 256 pipelined, BENCH_KEYS
#      keys over all slots), against rate-limiter-flexible's RateLimiterRedis on ioredis's
#      Cluster client (64 in flight, defaults and auto-pipelining) on the same cluster, and
#      the same rlimit-bench load on the single redis-server; alternated rounds, medians;
#      per round and node: script calls, CPU (INFO cpu) and the decisions it decided
#      (tests/bench/cluster_rounds.py):
#        cluster store >= 3.0x rate-limiter-flexible (each ioredis variant)
#        single-Redis items per call / the cluster's lowest per master, same load: <= 2.0x
#      Reported: the same with 3x the connections (as many in flight per master as the
#      single redis-server has), Redis CPU per decision (busiest master / single redis-server;
#      rate-limiter-flexible's / rlimitd's) and the projection to N masters, one core each:
#      N / (the busiest master's CPU seconds per decision).
#
# Information (no target): the memory store with a denying policy and in an open loop at
# 100,000/s, the Redis store in open loops at 50,000/s, the one-EVALSHA-per-decision
# ceiling (redis-benchmark), the blocking Client. A piece that is missing is reported as
# "skipped: <why>" (and so is every ratio that needs it) and the rest still runs; all
# figures go to BENCH_JSON.
#
# Settings (environment):
#   BENCH_SECONDS=5        seconds per measurement (per side of a pair, over its rounds)
#   BENCH_ROUNDS=3         alternated rounds per side of a pair (each BENCH_SECONDS/ROUNDS, >= 1 s)
#   BENCH_ONLY=memory,python,redis,peers,leases,replay,cluster   the sections to run (comma-separated); a ratio
#                          whose figure was in a section not run says "was not measured"
#   BENCH_JSON=build/bench.json
#   BENCH_PIN=1            pin processes to cores (0: let the scheduler place them)
#   BENCH_NO_NPM=1         never run npm install for the node peers (tests: they are
#                          skipped if tests/bench/node/node_modules lacks them)
#   BENCH_KEYS=100000      distinct keys in every measurement
#   BUILD=build  PYTHON=/usr/bin/python3
#   BENCH_REPLAY_LINES=2000000 BENCH_REPLAY_JSONL_LINES=1000000 BENCH_REPLAY_RSS_LINES=10000000
#                          (6) log lines of the replay runs (the short RSS run: a tenth)
#   BENCH_MEM_CONNS=2 BENCH_MEM_DEPTH=256         (1) pipelined pair: connections x in flight
#   BENCH_UNPIPE_CONNS=64                         (1) unpipelined pair: connections (x 1)
#   BENCH_REDIS_CONNS=4 BENCH_REDIS_DEPTH=256     (2) Redis store: connections x in flight
#   BENCH_OPEN_CONNS=64                           open loops: connections, one request each
#   BENCH_REDIS_OPEN_CONNS=8 BENCH_REDIS_OPEN_DEPTH=16  Redis store open loop with pipelining
#   BENCH_LEASE_PEER_INFLIGHT=64                  (5) pairs in flight of the ioredis and the
#                                                 concurrent redis-py peers (the pipelined
#                                                 redis-py peer: BENCH_REDIS_CONNS x DEPTH)
#   BENCH_NICE=-10         run everything at this nice level (root only; unset: unchanged).
#                          On a machine shared with other work it gives every process here
#                          the same larger share of the CPU, so figures suffer less from the
#                          others; it takes that share from them for the run's duration.
#
# Placement on this 2-core machine (BENCH_PIN=1), printed with every figure: the servers
# on core 0 (rlimitd with the memory store, redis-server), the load generators on core 1
# (rlimit-bench, node, the Python load, redis-benchmark), so that a server never fights
# its own load for a core and the figures are steadier. With the Redis store, rlimitd is a
# client of redis-server as the peers are, so for the closed-loop run it sits on core 1
# with rlimit-bench, the way node or Python do, and stays there for the pipelined open
# loop (rlimit-bench --sleep leaves it the core); for the unpipelined open loop it moves
# to core 0, because rlimit-bench polls between sends there and holds all of core 1. The
# FastAPI runs are not pinned: bench_python.py starts uvicorn and wrk, and pinning them
# together would measure wrk against uvicorn for one core; the daemon stays on core 0.
# A 1 s spin on each core at the start, before each section and at the end tells how much
# of the machine was ours (other work on the machine makes every figure lower and noisier).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BENCH_DIR=$ROOT/tests/bench
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
SECS=${BENCH_SECONDS:-5}
BENCH_JSON=${BENCH_JSON:-$BUILD/bench.json}
PIN=${BENCH_PIN:-1}
KEYS=${BENCH_KEYS:-100000}
MEM_CONNS=${BENCH_MEM_CONNS:-2}
MEM_DEPTH=${BENCH_MEM_DEPTH:-256}
REDIS_CONNS=${BENCH_REDIS_CONNS:-4}
REDIS_DEPTH=${BENCH_REDIS_DEPTH:-256}
OPEN_CONNS=${BENCH_OPEN_CONNS:-64}
UNPIPE_CONNS=${BENCH_UNPIPE_CONNS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
ONLY=${BENCH_ONLY:-memory,python,redis,peers,leases,replay,cluster}
REDIS_OPEN_CONNS=${BENCH_REDIS_OPEN_CONNS:-8}
REDIS_OPEN_DEPTH=${BENCH_REDIS_OPEN_DEPTH:-16}
LEASE_PEER_INFLIGHT=${BENCH_LEASE_PEER_INFLIGHT:-64}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: BENCH_ROUNDS must be a whole number >= 1, not '$ROUNDS'" >&2
    exit 2
fi
if ! [[ $LEASE_PEER_INFLIGHT =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: BENCH_LEASE_PEER_INFLIGHT must be a whole number >= 1, not '$LEASE_PEER_INFLIGHT'" >&2
    exit 2
fi
for part in ${ONLY//,/ }; do
    case $part in
    memory | python | redis | peers | leases | replay | cluster) ;;
    *)
        echo "run.sh: BENCH_ONLY: unknown section '$part' (memory, python, redis, peers, leases, replay, cluster)" >&2
        exit 2
        ;;
    esac
done
# Each round of a side-by-side pair: BENCH_SECONDS / BENCH_ROUNDS, at least 1 s.
ROUND_SECS=$("$PYTHON" -c "print(round(max(1.0, $SECS / $ROUNDS), 2))")
RLIMITD=$BUILD/rlimitd
RLIMITCTL=$BUILD/rlimitctl
RBENCH=$BUILD/rlimit-bench
BENCH_PY=${BENCH_PY:-clients/python/bench/bench_python.py}
NODE_DIR=$BENCH_DIR/node
CORE_SERVER=0
CORE_LOAD=1
MEASURE_TIMEOUT=$((SECS * 3 + 30))

TMP=$(mktemp -d /tmp/rlimit-bench.XXXXXX)
RESULTS=$TMP/results.jsonl
PIDS=()  # every background process we started, in order

cleanup() {
    local rc=$? i pid
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        # A negative id is a process group (setsid), for what spawns children (uvicorn).
        kill -TERM -- "$pid" 2>/dev/null
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]#-}
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "${PIDS[i]}" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # The Redis Cluster of the cluster section (tests/support/cluster.sh), if it was started.
    declare -F cluster_cleanup >/dev/null && cluster_cleanup
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*"; }
only() {  # only SECTION: true when BENCH_ONLY selects SECTION
    case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac
}
section() {  # a heading, and how much of each core is ours right now
    CPU_NOW=$(cpu_available)
    printf '\n== %s  (CPU available: %s)\n' "$*" "$CPU_NOW"
}
CPU_NOW=""

pin() {  # pin CORE CMD...: run CMD on CORE when pinning is on
    local core=$1
    shift
    if [ "$PIN" = 1 ]; then taskset -c "$core" "$@"; else "$@"; fi
}
pinned() {  # $(pinned CORE) CMD...: the taskset prefix, for a command started with & (whose
    # $! must be the process itself, not a subshell around a function)
    if [ "$PIN" = 1 ]; then printf 'taskset -c %s' "$1"; fi
}
where() {  # where "rlimitd:0 rlimit-bench:1": the placement string for a record
    if [ "$PIN" = 1 ]; then printf '%s' "$1"; else printf 'unpinned'; fi
}

# measure NAME DESC WHERE CMDLINE -- [pin CORE] COMMAND...: runs COMMAND (on CORE, bounded
# in time) with its output in $TMP/NAME.out and .err, then records its JSON lines (none at
# all: "skipped: <its stderr>").
measure() {
    local name=$1 desc=$2 place=$3 cmdline=$4
    shift 5
    if [ "$1" = pin ]; then  # measure ... -- pin CORE COMMAND...
        local core=$2
        shift 2
        [ "$PIN" = 1 ] && set -- taskset -c "$core" "$@"
    fi
    timeout -k 5 "$MEASURE_TIMEOUT" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    local rc=$?
    local why="exit status $rc: $(tail -c 300 "$TMP/$name.err" | tr '\n' ' ')"
    "$PYTHON" "$BENCH_DIR/results.py" record "$RESULTS" --name "$name" --desc "$desc" --where "$place" \
        --cmd "$cmdline" --source "${SOURCE:-}" --empty-reason "$why" --cpu "$CPU_NOW" <"$TMP/$name.out"
    if [ "$rc" != 0 ] && [ -s "$TMP/$name.out" ]; then
        "$PYTHON" "$BENCH_DIR/results.py" annotate "$RESULTS" "$name" "exit_status=$rc"
        say "    (exit status $rc)"
    fi
    grep -v '^$' "$TMP/$name.err" | head -5 | sed 's/^/    | /'
    return 0
}
skip() {  # skip NAME DESC REASON
    "$PYTHON" "$BENCH_DIR/results.py" skip "$RESULTS" --name "$1" --desc "$2" --reason "$3"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- preflight -------------------------------------------------------------------

if [ -n "${BENCH_NICE:-}" ]; then
    if renice -n "$BENCH_NICE" -p $$ >/dev/null 2>&1; then
        say "running at nice $BENCH_NICE (BENCH_NICE): every process started here inherits it"
    else
        say "BENCH_NICE=$BENCH_NICE: renice refused (not root?); running at the usual priority"
        BENCH_NICE=""
    fi
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "rlimitd benchmarks: $(nproc) cores, ${SECS}s per measurement, $KEYS keys, load average at start: $LOAD_START"
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    say "note: the machine is not idle (1-minute load $LOAD_START): other work shares these 2 cores and the figures will be lower and noisier"
fi
if [ "$PIN" = 1 ] && ! command -v taskset >/dev/null; then
    say "taskset not found: not pinning"
    PIN=0
fi
if [ "$PIN" = 1 ]; then
    say "placement: rlimitd (memory store) and redis-server on core $CORE_SERVER; rlimit-bench, node, python load and redis-benchmark on core $CORE_LOAD; rlimitd (redis store) on core $CORE_LOAD, on core $CORE_SERVER for the unpipelined open loop; FastAPI runs (uvicorn + wrk) unpinned"
else
    say "placement: unpinned (BENCH_PIN=0), the scheduler places every process"
fi

# How much of each core a process gets right now: a 1 s spin on each core at once,
# CPU time obtained / wall time. Other work on the machine shows as less than 100 %.
cpu_available() {
    local core pids=()
    for core in 0 1; do
        taskset -c "$core" "$PYTHON" -c '
import time
w0, c0 = time.monotonic(), time.process_time()
while time.monotonic() - w0 < 1.0:
    pass
print(round(100 * (time.process_time() - c0) / (time.monotonic() - w0)))' >"$TMP/cpu$core" 2>/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    printf 'core0=%s%% core1=%s%%' "$(cat "$TMP/cpu0" 2>/dev/null || echo ?)" "$(cat "$TMP/cpu1" 2>/dev/null || echo ?)"
}
CPU_START=$(cpu_available)
say "CPU a spinning process gets now (100% = the core is ours): $CPU_START"

have_daemon=1
for bin in "$RLIMITD" "$RLIMITCTL" "$RBENCH"; do
    [ -x "$bin" ] || { have_daemon=0; say "missing: $bin (run make all)"; }
done

# ---- redis-server ------------------------------------------------------------------

REDIS_PORT=""
REDIS_URL=""
REDIS_PID=""
REDIS_SOCK=$TMP/redis/redis.sock
start_redis() {
    command -v redis-server >/dev/null || { say "redis-server not installed"; return 1; }
    REDIS_PORT=$(free_port)
    mkdir -p "$TMP/redis"
    # A Unix socket too: redis-benchmark and the FastAPI Redis middleware use it, as the
    # clients of rlimitd use its Unix socket.
    $(pinned "$CORE_SERVER") redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
        --dir "$TMP/redis" --logfile "$TMP/redis/redis.log" &
    PIDS+=($!)
    REDIS_PID=$!
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && { REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"; return 0; }
        sleep 0.1
    done
    say "redis-server did not answer on port $REDIS_PORT:"
    tail -5 "$TMP/redis/redis.log" 2>/dev/null
    return 1
}
redis_fresh() {  # an empty store and zeroed command statistics before each measurement
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
}
redis_cpu() {  # CPU seconds redis-server has used (user + system)
    redis-cli -p "$REDIS_PORT" INFO cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.3f", s }'
}
redis_ok=0
if start_redis; then
    redis_ok=1
    say "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$REDIS_PORT"
fi

# ---- rlimitd -----------------------------------------------------------------------

POLICIES='"bench": {"algorithm": "token_bucket", "limit": 1000000000, "period": "1s"},
    "bench_deny": {"algorithm": "token_bucket", "limit": 5, "period": "1s"}'
LIMITS='"limits": {"max_connections": 16384, "max_pending": 65536, "idle_timeout": "5m"}'

write_config() {  # write_config FILE SOCKET STORE_JSON
    cat >"$1" <<EOF
{
  "listen": ["unix:$2"],
  "store": $3,
  $LIMITS,
  "log_level": "warn",
  "policies": {
    $POLICIES
  }
}
EOF
}

# Leases (section 5) need a concurrency policy: never denying (limit 10000 slots per key,
# far above the pairs in flight), lease 30 s. A daemon that does not know concurrency
# policies yet refuses the whole config, so the policy joins the daemons' config only
# when --check-config accepts it; otherwise the rlimitd side of section 5 is skipped.
LEASE_POLICY=bench_lease
LEASE_LIMIT=10000
LEASE_MS=30000
LEASE_WHY="not selected (BENCH_ONLY=$ONLY)"
if only leases && [ "$have_daemon" != 1 ]; then
    LEASE_WHY="rlimitd not built (make all)"
elif only leases; then
    LEASE_WHY=""
    policies_before=$POLICIES
    POLICIES="$POLICIES,
    \"$LEASE_POLICY\": {\"algorithm\": \"concurrency\", \"limit\": $LEASE_LIMIT, \"lease\": \"30s\"}"
    write_config "$TMP/lease-probe.json" "$TMP/lease-probe.sock" '{"type": "memory", "max_keys": 1000000}'
    if ! probe=$("$RLIMITD" --check-config -c "$TMP/lease-probe.json" 2>&1); then
        POLICIES=$policies_before
        LEASE_WHY="rlimitd does not accept a concurrency policy yet (--check-config: $(printf '%s' "$probe" |
            sed "s|$TMP/lease-probe.json: ||" | tr '\n' ' ' | cut -c1-160))"
    fi
fi

start_daemon() {  # start_daemon NAME CORE CONFIG SOCKET: starts rlimitd, waits for PING
    local name=$1 core=$2 conf=$3 sock=$4 out
    if ! out=$("$RLIMITD" --check-config -c "$conf" 2>&1); then
        DAEMON_ERROR="config refused: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-200)"
        return 1
    fi
    $(pinned "$core") "$RLIMITD" -f -c "$conf" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    DAEMON_PID=$!
    local answer=""
    # Ready when a CHECK is answered without the fallback flag (with the Redis store: once
    # it has reached redis-server, not while it answers from its on_store_error fallback).
    for _ in $(seq 100); do
        answer=$("$RLIMITCTL" -s "unix:$sock" check bench ready --json 2>&1)
        case $answer in
        *'"allowed":true'*) case $answer in *fallback*) ;; *) return 0 ;; esac ;;
        esac
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    DAEMON_ERROR="rlimitd did not answer a CHECK (without fallback) within 10 s: ${answer:0:200}; log: $(tail -3 "$TMP/$name.log" | tr '\n' ' ' | cut -c1-200)"
    return 1
}
repin() {  # repin PID CORE: move a running process to CORE (when pinning)
    [ "$PIN" = 1 ] && taskset -p -c "$2" "$1" >/dev/null
    return 0
}

MEM_SOCK=$TMP/mem.sock
MEM_ADDR=unix:$MEM_SOCK
mem_ok=0
DAEMON_ERROR="not built (make all)"
if [ "$have_daemon" = 1 ]; then
    write_config "$TMP/mem.json" "$MEM_SOCK" '{"type": "memory", "max_keys": 1000000}'
    if start_daemon mem "$CORE_SERVER" "$TMP/mem.json" "$MEM_SOCK"; then
        mem_ok=1
        MEM_PID=$DAEMON_PID
    fi
fi
MEM_WHY=$DAEMON_ERROR

rbench() {  # rbench NAME DESC WHERE CORE ARGS...: one rlimit-bench run, recorded
    local name=$1 desc=$2 place=$3 core=$4
    shift 4
    measure "$name" "$desc" "$place" "rlimit-bench $* -t $SECS --json" -- \
        pin "$core" "$RBENCH" "$@" -t "$SECS" --json
}

# ---- a: memory store against redis-server INCR, side by side -------------------------

# proc_cpu PID: the CPU seconds (user + system, all threads) PID has used.
proc_cpu() {
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null
}
CLK_TCK=$(getconf CLK_TCK)

# pair_round FILE SERVER_PID FORMAT REQUESTS COMMAND...: one round of a pair: runs COMMAND
# (on the load core, bounded in time) and appends its figures, with the server's and the
# load generator's CPU use meanwhile, to FILE.
pair_round() {
    local file=$1 pid=$2 format=$3 requests=$4 c0 c1 t0 t1
    shift 4
    c0=$(proc_cpu "$pid")
    t0=$(date +%s.%N)
    # In a subshell whose `times` then gives the load generator's CPU time (its children's).
    # shellcheck disable=SC2046
    (timeout -k 5 "$MEASURE_TIMEOUT" $(pinned "$CORE_LOAD") "$@" >"$file.out" 2>>"$file.err"
        times >"$file.times")  # (not piped: a pipeline's `times` runs in a child of its own)
    t1=$(date +%s.%N)
    c1=$(proc_cpu "$pid")
    "$PYTHON" "$BENCH_DIR/results.py" round "$file" --format "$format" --requests "$requests" \
        --server-cpu "$c0 $c1" --wall "$t0 $t1" --load-times "$(tail -1 "$file.times")" <"$file.out" 2>>"$file.err"
}

# incr_round FILE CONNS DEPTH REQUESTS: redis-benchmark INCR on random keys, Unix socket.
incr_round() {
    pair_round "$1" "$REDIS_PID" redis-benchmark "$4" redis-benchmark -s "$REDIS_SOCK" \
        -c "$2" -P "$3" -n "$4" -r "$KEYS" -t incr --csv
}
# mem_round FILE CONNS DEPTH SECONDS: rlimit-bench, closed loop, never-denying policy.
mem_round() {
    pair_round "$1" "$MEM_PID" rlimit-bench 0 "$RBENCH" -s "$MEM_ADDR" -p bench \
        -c "$2" -d "$3" -k "$KEYS" -t "$4" --json
}
# last_rate FILE: the decisions/s of FILE's last round, or nothing.
last_rate() {
    tail -1 "$1" 2>/dev/null | "$PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.read())["decisions_per_s"])' 2>/dev/null
}

# versus_incr SHAPE CONNS DEPTH TEXT: rlimitd (memory store) and redis-server running INCR,
# each loaded with CONNS connections x DEPTH in flight, closed loop, from core 1 while the
# server has core 0: BENCH_ROUNDS alternated rounds (ABBA: redis-server, rlimitd, rlimitd,
# redis-server, ...) of BENCH_SECONDS / BENCH_ROUNDS each (at least 1 s) after one unrecorded
# warm-up of each; each side's figure is the median of its rounds. redis-benchmark runs a
# number of requests, not a time: it is sized from its previous round's rate.
versus_incr() {
    local shape=$1 conns=$2 depth=$3 text=$4 r rate n side order
    local mine=$TMP/pair-rlimitd-$shape peer=$TMP/pair-redis-$shape
    local desc="$conns conns x $depth in flight, closed loop, Unix socket, $KEYS keys"
    mem_round "$mine.warm" "$conns" "$depth" 1 || true
    incr_round "$peer.warm" "$conns" "$depth" $((depth > 1 ? 500000 : 50000)) || true
    rate=$(last_rate "$peer.warm")
    for ((r = 1; r <= ROUNDS; r++)); do
        n=$("$PYTHON" -c "print(max(1000, int(${rate:-100000} * $ROUND_SECS)))")
        order="mine peer"
        [ $((r % 2)) = 1 ] && order="peer mine"
        for side in $order; do
            if [ "$side" = peer ]; then
                incr_round "$peer" "$conns" "$depth" "$n" && rate=$(last_rate "$peer")
            else
                mem_round "$mine" "$conns" "$depth" "$ROUND_SECS"
            fi
        done
    done
    measure "rlimitd_memory_$shape" "rlimitd, memory store, never-denying token bucket, $desc ($text)" \
        "$(where "rlimitd:$CORE_SERVER rlimit-bench:$CORE_LOAD")" \
        "rlimit-bench -s unix:SOCK -p bench -c $conns -d $depth -k $KEYS -t $ROUND_SECS --json, $ROUNDS rounds" \
        -- "$PYTHON" "$BENCH_DIR/results.py" combine "$mine"
    grep -v '^$' "$mine.err" 2>/dev/null | head -3 | sed 's/^/    | /'
    measure "redis_incr_$shape" "redis-server INCR key:<random>, $desc ($text)" \
        "$(where "redis-server:$CORE_SERVER redis-benchmark:$CORE_LOAD")" \
        "redis-benchmark -s SOCK -c $conns -P $depth -n N -r $KEYS -t incr --csv, $ROUNDS rounds" \
        -- "$PYTHON" "$BENCH_DIR/results.py" combine "$peer"
    grep -v '^$' "$peer.err" 2>/dev/null | head -3 | sed 's/^/    | /'
}

MEM_PAIR_NAMES="rlimitd_memory_closed_64x1 redis_incr_closed_64x1 rlimitd_memory_pipelined_2x256 redis_incr_pipelined_2x256"
if only memory; then
    section "rlimitd (memory store) against redis-server INCR, side by side"
    if [ "$mem_ok" != 1 ]; then
        for n in $MEM_PAIR_NAMES; do skip "$n" "memory store vs redis-server" "rlimitd (memory store): $MEM_WHY"; done
    elif [ "$redis_ok" != 1 ] || ! command -v redis-benchmark >/dev/null; then
        for n in $MEM_PAIR_NAMES; do
            skip "$n" "memory store vs redis-server" "redis-server or redis-benchmark is missing or did not start"
        done
    else
        redis_fresh
        versus_incr closed_64x1 "$UNPIPE_CONNS" 1 "no pipelining"
        versus_incr pipelined_2x256 "$MEM_CONNS" "$MEM_DEPTH" "pipelined"
    fi

    section "rlimitd, memory store: more shapes (information)"
    if [ "$mem_ok" = 1 ]; then
        rbench rlimitd_memory_pipelined_denying \
            "memory store, Unix socket, pipelined ($MEM_CONNS conns x $MEM_DEPTH in flight), token bucket 5/s per key (denies most)" \
            "$(where "rlimitd:$CORE_SERVER rlimit-bench:$CORE_LOAD")" "$CORE_LOAD" \
            -s "$MEM_ADDR" -p bench_deny -c "$MEM_CONNS" -d "$MEM_DEPTH" -k "$KEYS"
        rbench rlimitd_memory_open_loop_100k \
            "memory store, Unix socket, no pipelining ($OPEN_CONNS conns x 1), open loop at 100,000/s" \
            "$(where "rlimitd:$CORE_SERVER rlimit-bench:$CORE_LOAD")" "$CORE_LOAD" \
            -s "$MEM_ADDR" -p bench -c "$OPEN_CONNS" -d 1 -k "$KEYS" -r 100000
    else
        for n in rlimitd_memory_pipelined_denying rlimitd_memory_open_loop_100k; do
            skip "$n" "memory store" "rlimitd (memory store): $MEM_WHY"
        done
    fi
fi

# ---- e: Python -----------------------------------------------------------------------

# py_bench PARTS CORE|- DESC WHERE "NAMES" [ARGS...]: runs bench_python.py --parts PARTS
# (on CORE, or unpinned for -) and records its lines; if it printed none, each of NAMES
# (the lines it should have printed) is recorded as skipped with its stderr.
py_bench() {
    local parts=$1 core=$2 desc=$3 place=$4 names=$5
    shift 5
    local cmd="bench_python.py -t $SECS --parts $parts $*" pid
    # In a session (process group) of its own, so that cleanup also stops the uvicorn it
    # starts if we are interrupted.
    if [ "$core" = - ] || [ "$PIN" != 1 ]; then
        setsid timeout -k 5 $((SECS * 12 + 90)) "$PYTHON" "$BENCH_PY" -t "$SECS" --parts "$parts" "$@" \
            >"$TMP/py-$parts.out" 2>"$TMP/py-$parts.err" &
    else
        setsid timeout -k 5 $((SECS * 12 + 90)) taskset -c "$core" "$PYTHON" "$BENCH_PY" -t "$SECS" \
            --parts "$parts" "$@" >"$TMP/py-$parts.out" 2>"$TMP/py-$parts.err" &
    fi
    pid=$!
    PIDS+=(-"$pid")
    wait "$pid"
    if grep -q '^{' "$TMP/py-$parts.out"; then
        SOURCE=bench_python.py measure "python_$parts" "$desc" "$place" "$cmd" -- cat "$TMP/py-$parts.out"
    else
        local n why
        why="bench_python.py --parts $parts printed no figures: $(tail -c 300 "$TMP/py-$parts.err" | tr '\n' ' ')"
        for n in $names; do skip "$n" "$desc" "$why"; done
    fi
    grep -v '^$' "$TMP/py-$parts.err" | head -5 | sed 's/^/    | /'
}
# The Python lines the targets read, recorded as skipped when no Python run can happen.
PY_TARGET_NAMES="python_asyncclient python_middleware_overhead python_middleware_overhead_standard
    python_limits_middleware_overhead python_limits_middleware_overhead_standard
    python_redis_middleware_overhead python_redis_middleware_overhead_standard"
# The FastAPI app under four middlewares (none, rlimitd's, `limits` in process, a Redis
# call per request), alternated loads; the Redis one on redis-server's Unix socket.
APP_DESC="examples/app.py under uvicorn (1 worker), wrk 64 connections: no middleware, RateLimitMiddleware, an in-process \`limits\` middleware, a per-request Redis middleware"
APP_ARGS=(--address "$MEM_ADDR" --policy bench)
[ "$redis_ok" = 1 ] && APP_ARGS+=(--redis-socket "$REDIS_SOCK")
app_names() {  # app_names SUFFIX: the lines of one app part
    local n
    for n in fastapi_without_middleware fastapi_with_middleware middleware_overhead fastapi_with_limits_middleware \
        limits_middleware_overhead fastapi_with_redis_middleware redis_middleware_overhead; do
        printf 'python_%s%s ' "$n" "$1"
    done
}
if only python; then
    section "Python client and FastAPI middleware (bench_python.py)"
    if [ ! -f "$BENCH_PY" ]; then
        for n in $PY_TARGET_NAMES; do
            skip "$n" "Python" "$BENCH_PY is not there"
        done
    elif [ "$mem_ok" != 1 ]; then
        for n in $PY_TARGET_NAMES; do
            skip "$n" "Python" "no daemon: $MEM_WHY"
        done
    else
        py_bench asyncclient "$CORE_LOAD" "AsyncClient.check, 64 calls in flight on one connection, memory store" \
            "$(where "rlimitd:$CORE_SERVER python:$CORE_LOAD")" python_asyncclient --address "$MEM_ADDR" --policy bench
        py_bench client "$CORE_LOAD" "blocking Client.check, one call at a time, memory store" \
            "$(where "rlimitd:$CORE_SERVER python:$CORE_LOAD")" python_client_sync --address "$MEM_ADDR" --policy bench
        py_bench app - "$APP_DESC; asyncio, h11" \
            "$(where "rlimitd:$CORE_SERVER redis-server:$CORE_SERVER uvicorn+wrk:unpinned")" "$(app_names "")" "${APP_ARGS[@]}"
        py_bench app_standard - "$APP_DESC; uvicorn[standard]'s stack (uvloop, httptools)" \
            "$(where "rlimitd:$CORE_SERVER redis-server:$CORE_SERVER uvicorn+wrk:unpinned")" "$(app_names _standard)" \
            "${APP_ARGS[@]}"
    fi
fi

# ---- c: Redis store ------------------------------------------------------------------

only redis && section "rlimitd, Redis store (redis-server on this machine)"
RSTORE_SOCK=$TMP/redis-store.sock
REDIS_ADDR=unix:$RSTORE_SOCK
rstore_ok=0
RSTORE_WHY="redis-server did not start"
if ! only redis && ! only leases && ! only cluster; then  # (the cluster section's single-Redis side)
    RSTORE_WHY="not selected (BENCH_ONLY=$ONLY)"
elif [ "$redis_ok" = 1 ] && [ "$have_daemon" = 1 ]; then
    write_config "$TMP/redis-store.json" "$RSTORE_SOCK" "{\"type\": \"redis\", \"url\": \"$REDIS_URL\"}"
    if start_daemon redis-store "$CORE_LOAD" "$TMP/redis-store.json" "$RSTORE_SOCK"; then
        rstore_ok=1
        RSTORE_PID=$DAEMON_PID
    else
        RSTORE_WHY="rlimitd with the Redis store: $DAEMON_ERROR"
    fi
elif [ "$have_daemon" != 1 ]; then
    RSTORE_WHY="rlimitd not built (make all)"
fi

# on_redis NAME COMMAND...: runs COMMAND (a measurement that records NAME) on a fresh
# redis-server (FLUSHALL, statistics reset), then adds what redis-server did meanwhile:
# CPU used (% of one core), script calls and time in scripts per second. So a daemon that
# answered from a fallback instead of Redis cannot pass for a fast Redis store, and one can
# see which side was the bottleneck.
on_redis() {
    local name=$1 c0 c1 t0 t1
    shift
    redis_fresh
    c0=$(redis_cpu)
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    c1=$(redis_cpu)
    local stats
    stats=$(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v t0="$t0" -v t1="$t1" \
        -v c0="$c0" -v c1="$c1" '
        /^cmdstat_(evalsha|eval|evalsha_ro|eval_ro|fcall):/ { calls += $3; usec += $5 }
        END { w = t1 - t0; if (w <= 0) w = 1
              printf "redis_cpu_pct=%.0f redis_script_calls_per_s=%.0f redis_script_usec_per_s=%.0f",
                     100 * (c1 - c0) / w, calls / w, usec / w }')
    local keys
    keys=$(redis-cli -p "$REDIS_PORT" DBSIZE)
    # shellcheck disable=SC2086
    "$PYTHON" "$BENCH_DIR/results.py" annotate "$RESULTS" "$name" $stats "redis_keys_after=$keys"
    say "    redis-server meanwhile: ${stats//redis_/}"
    return 0
}

if only redis && [ "$rstore_ok" = 1 ]; then
    on_redis rlimitd_redis_pipelined rbench rlimitd_redis_pipelined \
        "Redis store, Unix socket, pipelined ($REDIS_CONNS conns x $REDIS_DEPTH in flight), never-denying token bucket" \
        "$(where "redis-server:$CORE_SERVER rlimitd:$CORE_LOAD rlimit-bench:$CORE_LOAD")" "$CORE_LOAD" \
        -s "$REDIS_ADDR" -p bench -c "$REDIS_CONNS" -d "$REDIS_DEPTH" -k "$KEYS"
    # Open loop at 50,000/s as a service's clients make it: a few connections, each
    # pipelining what its concurrent requests ask (as AsyncClient does), every request
    # sent at its due time and timed from it. rlimit-bench sleeps between sends
    # (--sleep) and shares core 1 with rlimitd, as a sidecar shares its host with the
    # service; redis-server keeps core 0, as a Redis host of its own would.
    on_redis rlimitd_redis_open_loop_50k rbench rlimitd_redis_open_loop_50k \
        "Redis store, Unix socket, open loop at 50,000/s from $REDIS_OPEN_CONNS conns (each pipelining up to $REDIS_OPEN_DEPTH)" \
        "$(where "redis-server:$CORE_SERVER rlimitd:$CORE_LOAD rlimit-bench:$CORE_LOAD")" "$CORE_LOAD" \
        -s "$REDIS_ADDR" -p bench -c "$REDIS_OPEN_CONNS" -d "$REDIS_OPEN_DEPTH" -k "$KEYS" -r 50000 --sleep
    # The same rate without pipelining (one request per connection at a time): not a
    # target, shown for what it costs. rlimit-bench polls between sends here and holds
    # its core, so rlimitd moves to redis-server's core, as with the memory store.
    repin "$RSTORE_PID" "$CORE_SERVER"
    on_redis rlimitd_redis_open_loop_50k_unpipelined rbench rlimitd_redis_open_loop_50k_unpipelined \
        "Redis store, Unix socket, no pipelining ($OPEN_CONNS conns x 1), open loop at 50,000/s" \
        "$(where "redis-server:$CORE_SERVER rlimitd:$CORE_SERVER rlimit-bench:$CORE_LOAD")" "$CORE_LOAD" \
        -s "$REDIS_ADDR" -p bench -c "$OPEN_CONNS" -d 1 -k "$KEYS" -r 50000
    if grep -qiE 'error|fallback|unavailable|refused' "$TMP/redis-store.log"; then
        say "    rlimitd (redis store) logged:"
        grep -iE 'error|fallback|unavailable|refused' "$TMP/redis-store.log" | head -5 | sed 's/^/    | /'
    fi
elif only redis; then
    for n in rlimitd_redis_pipelined rlimitd_redis_open_loop_50k rlimitd_redis_open_loop_50k_unpipelined; do
        skip "$n" "Redis store" "$RSTORE_WHY"
    done
fi

# ---- d: peers on the same redis-server ---------------------------------------------------

only peers && section "peers on the same redis-server"
node_ready() {
    [ -d "$NODE_DIR/node_modules/rate-limiter-flexible" ] && [ -d "$NODE_DIR/node_modules/ioredis" ]
}
NODE_WHY=""
if ! only peers && ! only leases && ! only cluster; then  # (sections 5 and 7 use node too)
    NODE_WHY="not selected (BENCH_ONLY=$ONLY)"
elif ! command -v node >/dev/null; then
    NODE_WHY="node is not installed"
elif ! node_ready; then
    if [ -n "${BENCH_NO_NPM:-}" ]; then  # tests: never install (another test may read node_modules)
        NODE_WHY="the node peers are not installed (BENCH_NO_NPM)"
    elif ! command -v npm >/dev/null; then
        NODE_WHY="npm is not installed"
    else
        say "installing rate-limiter-flexible and ioredis into tests/bench/node (npm)"
        if ! timeout 180 npm install --no-audit --no-fund --prefix "$NODE_DIR" >"$TMP/npm.log" 2>&1 || ! node_ready; then
            NODE_WHY="npm install failed: $(tail -3 "$TMP/npm.log" | tr '\n' ' ' | cut -c1-200)"
        fi
    fi
fi

rlf() {  # rlf NAME DESC [ARGS...]
    local name=$1 desc=$2
    shift 2
    measure "$name" "$desc" "$(where "redis-server:$CORE_SERVER node:$CORE_LOAD")" \
        "node tests/bench/node/rlf_bench.js --seconds $SECS --inflight 64 --keys $KEYS $*" -- \
        pin "$CORE_LOAD" node "$NODE_DIR/rlf_bench.js" --port "$REDIS_PORT" \
        --seconds "$SECS" --inflight 64 --keys "$KEYS" --name "$name" "$@"
}
if ! only peers; then
    : # not selected
elif [ "$redis_ok" != 1 ]; then
    skip rate_limiter_flexible "rate-limiter-flexible" "redis-server did not start"
elif [ -n "$NODE_WHY" ]; then
    skip rate_limiter_flexible "rate-limiter-flexible" "$NODE_WHY"
else
    on_redis rate_limiter_flexible rlf rate_limiter_flexible "rate-limiter-flexible RateLimiterRedis.consume(), ioredis (defaults), 64 in flight"
    on_redis rate_limiter_flexible_autopipeline rlf rate_limiter_flexible_autopipeline \
        "rate-limiter-flexible RateLimiterRedis.consume(), ioredis with enableAutoPipelining, 64 in flight" \
        --autopipeline
fi

# limits: bench_python.py's part if it has one, else tests/bench/limits_bench.py.
if ! only peers; then
    : # not selected
elif [ "$redis_ok" != 1 ]; then
    skip python_limits_moving_window_redis "limits" "redis-server did not start"
else
    if [ -f "$BENCH_PY" ] && grep -q '"limits"' "$BENCH_PY"; then
        on_redis python_limits_moving_window_redis py_bench limits "$CORE_LOAD" \
            "limits MovingWindowRateLimiter.hit() on RedisStorage, 8 threads" \
            "$(where "redis-server:$CORE_SERVER python:$CORE_LOAD")" python_limits_moving_window_redis \
            --redis "$REDIS_URL"
    fi
    # bench_python.py missing, or without figures for it: our own script.
    if ! grep '"python_limits_moving_window_redis"' "$RESULTS" 2>/dev/null | grep -qv '"skipped"'; then
        on_redis python_limits_moving_window_redis measure python_limits_moving_window_redis \
            "limits MovingWindowRateLimiter.hit() on RedisStorage, 8 threads ($KEYS keys)" \
            "$(where "redis-server:$CORE_SERVER python:$CORE_LOAD")" \
            "tests/bench/limits_bench.py --threads 8 --keys $KEYS" -- \
            pin "$CORE_LOAD" "$PYTHON" "$BENCH_DIR/limits_bench.py" --redis "$REDIS_URL" \
            --seconds "$SECS" --threads 8 --keys "$KEYS" --name python_limits_moving_window_redis
    fi
fi

# The ceiling: one pipelined EVALSHA of a small GCRA script per decision, redis-benchmark
# (C, 16 connections x 64 pipelined), so the client side costs next to nothing.
EVALSHA_NAME=redis_evalsha_gcra_ceiling
EVALSHA_DESC="one EVALSHA of tests/bench/gcra.lua per decision, redis-benchmark -c 16 -P 64 (1024 in flight)"
evalsha_sha=""
evalsha() {  # evalsha N: one redis-benchmark run of N calls; prints its CSV line
    pin "$CORE_LOAD" timeout -k 5 "$MEASURE_TIMEOUT" redis-benchmark -p "$REDIS_PORT" -c 16 -P 64 -n "$1" \
        -r "$KEYS" --csv EVALSHA "$evalsha_sha" 1 "gcra:{__rand_int__}" 1 1000000000 2>/dev/null | tail -1
}
evalsha_run() {  # evalsha_run N: the measured run, recorded
    evalsha "$1" | "$PYTHON" -c '
import csv, json, sys
row = next(csv.reader(sys.stdin))
ms = lambda i: None if len(row) <= i else round(float(row[i]) * 1000)
print(json.dumps({"decisions_per_s": round(float(row[1])), "p50_us": ms(4), "p99_us": ms(6),
                  "requests": int(sys.argv[1]),
                  "note": "redis-benchmark latency with 1024 calls in flight, not comparable to the others"}))
' "$1" >"$TMP/evalsha.json"
    measure "$EVALSHA_NAME" "$EVALSHA_DESC" "$(where "redis-server:$CORE_SERVER redis-benchmark:$CORE_LOAD")" \
        "redis-benchmark -c 16 -P 64 -n $1 -r $KEYS EVALSHA <sha of gcra.lua> 1 gcra:{__rand_int__} 1 1000000000" \
        -- cat "$TMP/evalsha.json"
}
if ! only peers; then
    : # not selected
elif [ "$redis_ok" != 1 ]; then
    skip "$EVALSHA_NAME" "$EVALSHA_DESC" "redis-server did not start"
elif ! command -v redis-benchmark >/dev/null; then
    skip "$EVALSHA_NAME" "$EVALSHA_DESC" "redis-benchmark is not installed"
elif ! evalsha_sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat "$BENCH_DIR/gcra.lua")" 2>&1) ||
    [ ${#evalsha_sha} != 40 ]; then
    skip "$EVALSHA_NAME" "$EVALSHA_DESC" "SCRIPT LOAD failed: $evalsha_sha"
else
    # A short run to learn the rate, then one of about BENCH_SECONDS (scripts survive FLUSHALL).
    rps=$(evalsha 100000 | awk -F'","' '{ print int($2) }')
    if [ -z "$rps" ] || ! [ "$rps" -gt 0 ] 2>/dev/null; then
        skip "$EVALSHA_NAME" "$EVALSHA_DESC" "redis-benchmark printed no rate"
    else
        on_redis "$EVALSHA_NAME" evalsha_run $((rps * SECS))
    fi
fi

# ---- f: leases (issue 14): ACQUIRE+RELEASE pairs against the sorted-set lease script ------

# Section 5: rlimitd's ACQUIRE+RELEASE pairs (rlimit-bench --op acquire) on the memory
# store and on the Redis store, and the same work done without rlimitd on the same
# redis-server: tests/bench/lease.lua per ACQUIRE and one ZREM per RELEASE, from ioredis
# and from redis-py. Every side is measured in BENCH_ROUNDS alternated rounds (the order
# reversed every other round) after one unrecorded 1 s warm-up round each; medians count.
# Placement as for the Redis store runs: redis-server on core 0, rlimitd (Redis store) and
# every load generator on core 1; rlimitd (memory store) on core 0 as in section 1.
# Each Redis side starts on a flushed redis-server and notes what redis-server ran in the
# round (redis_script_calls: script calls; redis_commands: every command, those inside
# scripts included) and the keys left after it (a peer releases all it took: 0 keys). A
# round of rlimitd's Redis store in which redis-server ran no script makes its ratio
# "not met" (its answers came from a fallback, not from Redis).
LEASE_RLIMITD="rlimitd_memory_leases rlimitd_redis_leases"
LEASE_PEERS="ioredis_lease_script ioredis_lease_script_autopipeline redispy_lease_script redispy_lease_script_pipelined"
lease_desc() {  # lease_desc SIDE: what SIDE measures
    local pair="ACQUIRE+RELEASE pairs, $KEYS keys, never denying (limit $LEASE_LIMIT, lease ${LEASE_MS}ms)"
    local script="per pair one tests/bench/lease.lua (EVALSHA) then one ZREM"
    case $1 in
    rlimitd_memory_leases) printf '%s' "rlimitd, memory store, rlimit-bench --op acquire, $MEM_CONNS conns x $MEM_DEPTH in flight, $pair" ;;
    rlimitd_redis_leases) printf '%s' "rlimitd, Redis store, rlimit-bench --op acquire, $REDIS_CONNS conns x $REDIS_DEPTH in flight, $pair" ;;
    ioredis_lease_script) printf '%s' "ioredis (defaults), one connection, $LEASE_PEER_INFLIGHT pairs in flight, $script, $pair" ;;
    ioredis_lease_script_autopipeline) printf '%s' "ioredis with enableAutoPipelining, one connection, $LEASE_PEER_INFLIGHT pairs in flight, $script, $pair" ;;
    redispy_lease_script) printf '%s' "redis-py asyncio, $LEASE_PEER_INFLIGHT concurrent tasks (a connection each), $script, $pair" ;;
    redispy_lease_script_pipelined) printf '%s' "redis-py asyncio, $REDIS_CONNS tasks x pipelines of $REDIS_DEPTH ACQUIREs then their ZREMs, $pair" ;;
    esac
}
lease_where() {  # lease_where SIDE: its placement
    case $1 in
    rlimitd_memory_leases) where "rlimitd:$CORE_SERVER rlimit-bench:$CORE_LOAD" ;;
    rlimitd_redis_leases) where "redis-server:$CORE_SERVER rlimitd:$CORE_LOAD rlimit-bench:$CORE_LOAD" ;;
    ioredis_*) where "redis-server:$CORE_SERVER node:$CORE_LOAD" ;;
    redispy_*) where "redis-server:$CORE_SERVER python:$CORE_LOAD" ;;
    esac
}
lease_command() {  # lease_command SIDE SECONDS: its load generator's command line
    local secs=$2
    local peer=(--seconds "$secs" --warmup 0.3 --keys "$KEYS" --limit "$LEASE_LIMIT" --lease-ms "$LEASE_MS" --name "$1")
    case $1 in
    rlimitd_memory_leases) LEASE_CMD=("$RBENCH" -s "$MEM_ADDR" -p "$LEASE_POLICY" --op acquire -c "$MEM_CONNS" \
        -d "$MEM_DEPTH" -k "$KEYS" -t "$secs" --json) ;;
    rlimitd_redis_leases) LEASE_CMD=("$RBENCH" -s "$REDIS_ADDR" -p "$LEASE_POLICY" --op acquire -c "$REDIS_CONNS" \
        -d "$REDIS_DEPTH" -k "$KEYS" -t "$secs" --json) ;;
    ioredis_lease_script) LEASE_CMD=(node "$NODE_DIR/lease_bench.js" --port "$REDIS_PORT" \
        --inflight "$LEASE_PEER_INFLIGHT" "${peer[@]}") ;;
    ioredis_lease_script_autopipeline) LEASE_CMD=(node "$NODE_DIR/lease_bench.js" --port "$REDIS_PORT" \
        --inflight "$LEASE_PEER_INFLIGHT" --autopipeline "${peer[@]}") ;;
    redispy_lease_script) LEASE_CMD=("$PYTHON" "$BENCH_DIR/lease_redispy.py" --redis "$REDIS_URL" --mode concurrent \
        --inflight "$LEASE_PEER_INFLIGHT" "${peer[@]}") ;;
    redispy_lease_script_pipelined) LEASE_CMD=("$PYTHON" "$BENCH_DIR/lease_redispy.py" --redis "$REDIS_URL" \
        --mode pipelined --inflight "$REDIS_CONNS" --batch "$REDIS_DEPTH" "${peer[@]}") ;;
    esac
}
lease_counters() {  # lease_counters ADDRESS: "acquired released released_on_disconnect held"
    timeout 10 "$RLIMITCTL" -s "$1" stats --json 2>/dev/null |
        "$PYTHON" "$BENCH_DIR/results.py" lease-counters "$LEASE_POLICY"
}
# lease_round SIDE FILE SECONDS: one round of SIDE, appended to FILE (with, for a Redis
# side, what redis-server ran meanwhile); false when it printed no figures.
# For rlimitd, the round also notes what the daemon's STATS counted for the lease policy
# meanwhile (daemon_acquired, daemon_released, daemon_released_on_disconnect: a pair
# reported allowed must have had its RELEASE counted, else the ratio is "not met") and
# the leases it still held after it (released on disconnect may still be under way); for
# the Redis store also the daemon's own CPU use (daemon_cpu_pct).
lease_round() {
    local side=$1 file=$2 pid=$REDIS_PID sock="" before="" after=""
    lease_command "$side" "$3"
    [ "$side" = rlimitd_memory_leases ] && pid=$MEM_PID sock=$MEM_ADDR
    [ "$side" = rlimitd_redis_leases ] && sock=$REDIS_ADDR
    [ "$pid" = "$REDIS_PID" ] && redis_fresh
    [ -n "$sock" ] && before=$(lease_counters "$sock")
    local d0 d1 w0 w1
    d0=$(proc_cpu "${RSTORE_PID:-0}")
    w0=$(date +%s.%N)
    pair_round "$file" "$pid" rlimit-bench 0 "${LEASE_CMD[@]}" || return 1
    w1=$(date +%s.%N)
    d1=$(proc_cpu "${RSTORE_PID:-0}")
    [ -n "$sock" ] && after=$(lease_counters "$sock")
    # The Redis store's daemon is a client of redis-server: its own CPU use (% of a core)
    # says whether it, rather than redis-server, set the pace.
    if [ "$side" = rlimitd_redis_leases ] && [ -n "$d0" ] && [ -n "$d1" ]; then
        "$PYTHON" "$BENCH_DIR/results.py" note-round "$file" \
            "daemon_cpu_pct=$(awk -v a="$d0" -v b="$d1" -v s="$w0" -v e="$w1" 'BEGIN { printf "%d", 100 * (b - a) / (e - s) }')"
    fi
    if [ -n "$before" ] && [ -n "$after" ]; then
        # shellcheck disable=SC2086
        set -- $before $after
        "$PYTHON" "$BENCH_DIR/results.py" note-round "$file" "daemon_acquired=$(($5 - $1))" \
            "daemon_released=$(($6 - $2))" "daemon_released_on_disconnect=$(($7 - $3))" "daemon_held_after=$8"
    fi
    [ "$pid" = "$REDIS_PID" ] || return 0
    local stats
    stats=$(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_(info|flushall|config|dbsize|ping|script)/ { next }
        /^cmdstat_(evalsha|eval|evalsha_ro|eval_ro|fcall):/ { scripts += $3 }
        /^cmdstat_/ { all += $3 }
        END { printf "redis_script_calls=%d redis_commands=%d", scripts, all }')
    # shellcheck disable=SC2086
    "$PYTHON" "$BENCH_DIR/results.py" note-round "$file" $stats "redis_keys_after=$(redis-cli -p "$REDIS_PORT" DBSIZE)"
}

if only leases; then
    section "leases: ACQUIRE+RELEASE pairs, rlimitd against the sorted-set lease script (same redis-server)"
    LEASE_SIDES=()
    rbench_acquire=$("$RBENCH" -s "unix:$TMP/no-such.sock" -p "$LEASE_POLICY" --op acquire -t 1 --json 2>&1)
    for side in $LEASE_RLIMITD; do
        why=""
        if [ -n "$LEASE_WHY" ]; then
            why=$LEASE_WHY
        elif printf '%s' "$rbench_acquire" | grep -q -- '--op'; then
            why="rlimit-bench has no --op acquire yet: $(printf '%s' "$rbench_acquire" | head -1)"
        elif [ "$side" = rlimitd_memory_leases ] && [ "$mem_ok" != 1 ]; then
            why="rlimitd (memory store): $MEM_WHY"
        elif [ "$side" = rlimitd_redis_leases ] && [ "$rstore_ok" != 1 ]; then
            why=$RSTORE_WHY
        else
            # A daemon that does not know ACQUIRE answers every one with an error: a 1 s
            # probe with no pair allowed is a skip (with what it got), never a figure.
            # rlimitctl's answer to one ACQUIRE then says why.
            lease_command "$side" 1
            probe=$(timeout -k 5 30 "${LEASE_CMD[@]}" 2>&1 | grep '^{' | tail -1)
            if ! printf '%s' "$probe" | grep -q '"allowed":[1-9]'; then
                sock=$MEM_ADDR
                [ "$side" = rlimitd_redis_leases ] && sock=$REDIS_ADDR
                why="the daemon admitted no ACQUIRE in a 1 s probe ($(printf '%s' "${probe:-no figures}" |
                    grep -oE '"(allowed|denied|errors)":[0-9]+' | tr -d '"' | paste -sd ' ')); rlimitctl acquire: $(
                    timeout 10 "$RLIMITCTL" -s "$sock" acquire "$LEASE_POLICY" probe 2>&1 | head -1 | cut -c1-160)"
            fi
        fi
        if [ -n "$why" ]; then skip "$side" "$(lease_desc "$side")" "$why"; else LEASE_SIDES+=("$side"); fi
    done
    py_redis_why=""
    "$PYTHON" -c 'import redis.asyncio' 2>/dev/null || py_redis_why="redis-py (redis.asyncio) is not installed for $PYTHON"
    for side in $LEASE_PEERS; do
        why=""
        if [ "$redis_ok" != 1 ]; then
            why="redis-server did not start"
        elif [[ $side == ioredis_* ]] && [ -n "$NODE_WHY" ]; then
            why=$NODE_WHY
        elif [[ $side == redispy_* ]] && [ -n "$py_redis_why" ]; then
            why=$py_redis_why
        fi
        if [ -n "$why" ]; then skip "$side" "$(lease_desc "$side")" "$why"; else LEASE_SIDES+=("$side"); fi
    done
    # The Redis store's daemon moved to core 0 for section 2's unpipelined open loop.
    [ "$rstore_ok" = 1 ] && repin "$RSTORE_PID" "$CORE_LOAD"
    for side in "${LEASE_SIDES[@]}"; do
        lease_round "$side" "$TMP/lease-$side.warm" 1 || true
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        order=("${LEASE_SIDES[@]}")
        if [ $((r % 2)) = 0 ]; then  # every other round in reverse order
            order=()
            for ((i = ${#LEASE_SIDES[@]} - 1; i >= 0; i--)); do order+=("${LEASE_SIDES[i]}"); done
        fi
        for side in "${order[@]}"; do
            lease_round "$side" "$TMP/lease-$side" "$ROUND_SECS" || true
        done
    done
    for side in "${LEASE_SIDES[@]}"; do
        lease_command "$side" "$ROUND_SECS"
        measure "$side" "$(lease_desc "$side")" "$(lease_where "$side")" \
            "${LEASE_CMD[*]#"$ROOT"/}, $ROUNDS rounds" -- "$PYTHON" "$BENCH_DIR/results.py" combine "$TMP/lease-$side"
        grep -v '^$' "$TMP/lease-$side.err" 2>/dev/null | head -3 | sed 's/^/    | /'
    done
fi

# ---- h: Redis Cluster (issue 13): the cluster store against rate-limiter-flexible ---------
# A private 3-master Redis Cluster (tests/support/cluster.sh, no replicas: the bench does not
# fail anything over), its masters moved to the server core as redis-server is; rlimitd with
# `"store": {"type": "redis", "cluster": [the masters]}` on the load core as the Redis
# store's daemon is. Sides, alternated rounds (forward, then reverse order), medians:
#   rlimitd_cluster            rlimit-bench, the Redis store's load shape (REDIS_CONNS x DEPTH)
#   rate_limiter_flexible_cluster[_autopipeline]
#                              rlf_bench.js --cluster: RateLimiterRedis on ioredis's Cluster
#                              client, 64 in flight (defaults; auto-pipelining)
#   rlimitd_redis_single       the same rlimit-bench load on the single redis-server (the
#                              Redis store's daemon), for items per call and CPU per decision
#   rlimitd_cluster_3x         rlimitd_cluster with 3 times the connections: each master then
#                              has as many items in flight as the single redis-server has
# Before each round every node is emptied and its statistics zeroed; after it,
# cluster_rounds.py notes each node's script calls, CPU (INFO cpu) and the decisions it
# decided (the daemon's per-node figures when STATS has them, else the node's share of the
# keys), so each side has items per call and Redis CPU per decision, per node.
CLUSTER_ROUNDS_PY=$BENCH_DIR/cluster_rounds.py
CLUSTER_SIDES_ALL="rlimitd_cluster rlimitd_cluster_3x rate_limiter_flexible_cluster rate_limiter_flexible_cluster_autopipeline rlimitd_redis_single"
CSTORE_SOCK=$TMP/cluster-store.sock
CSTORE_ADDR=unix:$CSTORE_SOCK
CLUSTER_SEEDS=""

cluster_desc() {  # cluster_desc SIDE
    case $1 in
    rlimitd_cluster) printf 'rlimitd, Redis store on a 3-master Redis Cluster, pipelined (%s conns x %s in flight), never-denying token bucket, %s keys' \
        "$REDIS_CONNS" "$REDIS_DEPTH" "$KEYS" ;;
    rlimitd_cluster_3x) printf 'rlimitd, Redis store on the same cluster, %s conns x %s in flight (3 times rlimitd_cluster: as many per master as rlimitd_redis_single has), %s keys' \
        "$((REDIS_CONNS * 3))" "$REDIS_DEPTH" "$KEYS" ;;
    rate_limiter_flexible_cluster) printf 'rate-limiter-flexible RateLimiterRedis.consume() on ioredis Cluster (defaults), 64 in flight, the same cluster, %s keys' "$KEYS" ;;
    rate_limiter_flexible_cluster_autopipeline) printf 'rate-limiter-flexible RateLimiterRedis.consume() on ioredis Cluster with enableAutoPipelining, 64 in flight, the same cluster, %s keys' "$KEYS" ;;
    rlimitd_redis_single) printf 'rlimitd, Redis store on the single redis-server, the same load as rlimitd_cluster (%s conns x %s in flight, %s keys)' \
        "$REDIS_CONNS" "$REDIS_DEPTH" "$KEYS" ;;
    esac
}
cluster_where() {  # cluster_where SIDE
    case $1 in
    rlimitd_cluster*) where "3 masters:$CORE_SERVER rlimitd:$CORE_LOAD rlimit-bench:$CORE_LOAD" ;;
    rlimitd_redis_single) where "redis-server:$CORE_SERVER rlimitd:$CORE_LOAD rlimit-bench:$CORE_LOAD" ;;
    *) where "3 masters:$CORE_SERVER node:$CORE_LOAD" ;;
    esac
}
cluster_command() {  # cluster_command SIDE SECONDS: sets CLUSTER_CMD
    case $1 in
    rlimitd_cluster) CLUSTER_CMD=("$RBENCH" -s "$CSTORE_ADDR" -p bench -c "$REDIS_CONNS" -d "$REDIS_DEPTH" -k "$KEYS" -t "$2" --json) ;;
    rlimitd_cluster_3x) CLUSTER_CMD=("$RBENCH" -s "$CSTORE_ADDR" -p bench -c "$((REDIS_CONNS * 3))" -d "$REDIS_DEPTH" -k "$KEYS" -t "$2" --json) ;;
    rlimitd_redis_single) CLUSTER_CMD=("$RBENCH" -s "$REDIS_ADDR" -p bench -c "$REDIS_CONNS" -d "$REDIS_DEPTH" -k "$KEYS" -t "$2" --json) ;;
    rate_limiter_flexible_cluster*)
        # --warmup 0: the unrecorded warm-up round warms up; every call of a round counts,
        # so that the nodes' CPU is divided by all the decisions it served.
        CLUSTER_CMD=(node "$NODE_DIR/rlf_bench.js" --cluster "$CLUSTER_SEEDS" --seconds "$2" --warmup 0
            --inflight 64 --keys "$KEYS" --name "$1")
        [ "$1" = rate_limiter_flexible_cluster_autopipeline ] && CLUSTER_CMD+=(--autopipeline)
        ;;
    esac
}
# cluster_round SIDE FILE SECONDS: one round of SIDE, its figures and each node's appended to FILE.
cluster_round() {
    local side=$1 file=$2 secs=$3 pid=0 sock="" tag=tag:bench ports=("${CLUSTER_MASTER_PORTS[@]}")
    case $side in
    rlimitd_cluster*) pid=$CSTORE_PID sock=$CSTORE_ADDR ;;
    rlimitd_redis_single) pid=$RSTORE_PID sock=$REDIS_ADDR ports=("$REDIS_PORT") ;;
    *) tag=key:rlfbench ;;
    esac
    "$PYTHON" "$CLUSTER_ROUNDS_PY" fresh "${ports[@]}" 2>>"$file.err" || return 1
    local stats=()
    if [ -n "$sock" ]; then
        "$RLIMITCTL" -s "$sock" stats --json >"$file.stats0" 2>>"$file.err"
        stats=(--stats "$file.stats0")
    fi
    "$PYTHON" "$CLUSTER_ROUNDS_PY" snapshot "${ports[@]}" "${stats[@]}" >"$file.before" 2>>"$file.err" || return 1
    cluster_command "$side" "$secs"
    pair_round "$file" "$pid" rlimit-bench 0 "${CLUSTER_CMD[@]}" || return 1
    if [ -n "$sock" ]; then
        "$RLIMITCTL" -s "$sock" stats --json >"$file.stats1" 2>>"$file.err"
        stats=(--stats "$file.stats1")
    fi
    "$PYTHON" "$CLUSTER_ROUNDS_PY" snapshot "${ports[@]}" "${stats[@]}" >"$file.after" 2>>"$file.err" &&
        "$PYTHON" "$CLUSTER_ROUNDS_PY" note "$file" --before "$file.before" --after "$file.after" \
            --keys "$KEYS" --tag "$tag" 2>>"$file.err"
}
cluster_why() {  # why the cluster section cannot run, or nothing
    [ "$have_daemon" = 1 ] || { echo "rlimitd not built (make all)"; return; }
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        echo "redis-server or redis-cli is not installed"
        return
    fi
    [ -f "$ROOT/tests/support/cluster.sh" ] || { echo "tests/support/cluster.sh is not there"; return; }
}

if only cluster; then
    section "Redis Cluster (3 masters): rlimitd's cluster store against rate-limiter-flexible on ioredis's Cluster client"
    CLUSTER_WHY=$(cluster_why)
    CLUSTER_SIDES=()
    if [ -z "$CLUSTER_WHY" ]; then
        # shellcheck source=tests/support/cluster.sh
        . "$ROOT/tests/support/cluster.sh"
        if ! cluster_start 3 0 2>"$TMP/cluster-start.err"; then
            CLUSTER_WHY="cluster_start 3 0 failed: $(tail -3 "$TMP/cluster-start.err" | tr '\n' ' ' | cut -c1-200)"
        fi
    fi
    if [ -z "$CLUSTER_WHY" ]; then
        for port in "${CLUSTER_MASTER_PORTS[@]}"; do repin "${CLUSTER_PIDS[$port]}" "$CORE_SERVER"; done
        CLUSTER_SEEDS=$(printf '127.0.0.1:%s,' "${CLUSTER_MASTER_PORTS[@]}")
        CLUSTER_SEEDS=${CLUSTER_SEEDS%,}
        say "  Redis Cluster: masters on ports ${CLUSTER_MASTER_PORTS[*]} (no replicas), $CLUSTER_DIR"
        write_config "$TMP/cluster-store.json" "$CSTORE_SOCK" "{\"type\": \"redis\", \"cluster\": $CLUSTER_URLS_JSON}"
        if start_daemon cluster-store "$CORE_LOAD" "$TMP/cluster-store.json" "$CSTORE_SOCK"; then
            CSTORE_PID=$DAEMON_PID
        else
            CLUSTER_WHY="rlimitd with the cluster store: $DAEMON_ERROR"
        fi
    fi
    for side in $CLUSTER_SIDES_ALL; do
        why=$CLUSTER_WHY
        if [ -z "$why" ] && [[ $side == rate_limiter_flexible_* ]]; then
            why=$NODE_WHY
        elif [ -z "$why" ] && [ "$side" = rlimitd_redis_single ] && [ "$rstore_ok" != 1 ]; then
            why=$RSTORE_WHY
        fi
        if [ -n "$why" ]; then skip "$side" "$(cluster_desc "$side")" "$why"; else CLUSTER_SIDES+=("$side"); fi
    done
    # The Redis store's daemon may have moved to core 0 in section 2's unpipelined open loop.
    [ "$rstore_ok" = 1 ] && repin "$RSTORE_PID" "$CORE_LOAD"
    for side in "${CLUSTER_SIDES[@]}"; do
        cluster_round "$side" "$TMP/cluster-$side.warm" 1 || true
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        order=("${CLUSTER_SIDES[@]}")
        if [ $((r % 2)) = 0 ]; then  # every other round in reverse order
            order=()
            for ((i = ${#CLUSTER_SIDES[@]} - 1; i >= 0; i--)); do order+=("${CLUSTER_SIDES[i]}"); done
        fi
        for side in "${order[@]}"; do
            cluster_round "$side" "$TMP/cluster-$side" "$ROUND_SECS" || true
        done
    done
    for side in "${CLUSTER_SIDES[@]}"; do
        cluster_command "$side" "$ROUND_SECS"
        measure "$side" "$(cluster_desc "$side")" "$(cluster_where "$side")" \
            "${CLUSTER_CMD[*]#"$ROOT"/}, $ROUNDS rounds" -- "$PYTHON" "$CLUSTER_ROUNDS_PY" combine "$TMP/cluster-$side"
        grep -v '^$' "$TMP/cluster-$side.err" 2>/dev/null | head -3 | sed 's/^/    | /'
    done
    # shellcheck disable=SC2086 # the sides, one word each
    "$PYTHON" "$CLUSTER_ROUNDS_PY" report "$RESULTS" $CLUSTER_SIDES_ALL
    if [ -n "${CSTORE_PID:-}" ]; then
        say "    rlimitd (cluster store) STATS store at the end: $("$RLIMITCTL" -s "$CSTORE_ADDR" stats --json 2>&1 |
            "$PYTHON" -c 'import json, sys; s = json.load(sys.stdin)["store"]; print(json.dumps({k: s.get(k) for k in ("state", "mode", "items", "calls", "items_per_call", "errors", "cluster")}, separators=(",", ":")))' 2>&1 | cut -c1-600)"
        if grep -qiE 'error|fallback|unavailable|refused' "$TMP/cluster-store.log"; then
            say "    rlimitd (cluster store) logged:"
            grep -iE 'error|fallback|unavailable|refused' "$TMP/cluster-store.log" | head -5 | sed 's/^/    | /'
        fi
    fi
    # The daemon first (it is a client of the nodes), then the nodes: the rest of the run
    # gets its cores back.
    if [ -n "${CSTORE_PID:-}" ]; then
        kill -TERM "$CSTORE_PID" 2>/dev/null
        wait "$CSTORE_PID" 2>/dev/null
    fi
    declare -F cluster_cleanup >/dev/null && cluster_cleanup
fi

# ---- g: replay (issue 15): access logs offline, against GoAccess ------------------------
# Every run under GNU time (wall, CPU, maximum RSS) on the load core, its output to a file
# (a run that wrote nothing failed), the logs read once before (page cache) so that both
# sides read from memory.
REPLAY_LINES=${BENCH_REPLAY_LINES:-2000000}
REPLAY_JSONL_LINES=${BENCH_REPLAY_JSONL_LINES:-1000000}
REPLAY_RSS_LINES=${BENCH_REPLAY_RSS_LINES:-10000000}
REPLAY_DIR=$TMP/replay
REPLAY_GEN=$BENCH_DIR/gen_log.py
REPLAY_ROUNDS_PY=$BENCH_DIR/replay_rounds.py
REPLAY_NAMES="replay_combined goaccess_combined replay_jsonl replay_rss_small replay_rss_large"
REPLAY_TIMEOUT=$((REPLAY_LINES / 10000 + 120))
# One token bucket per client address: 100 a minute, bursts of 20.
# (The config loader wants a listener; replay opens none.)
REPLAY_CONF='{"listen": ["unix:/nonexistent/rlimitd-replay.sock"], "store": {"type": "memory", "max_keys": 1000000},
 "policies": {"api": {"algorithm": "token_bucket", "limit": 100, "period": "1m", "burst": 20}}}'

# replay_run ROUNDS_FILE LINES OUTPUT CMD...: one timed run of CMD on the load core (stdin
# from /dev/null, stdout to ROUNDS_FILE.out), recorded as a round that failed unless it
# exited 0 and left OUTPUT non-empty.
replay_run() {
    local rounds=$1 lines=$2 output=$3
    shift 3
    rm -f "$output"
    # shellcheck disable=SC2046
    timeout -k 5 "$REPLAY_TIMEOUT" /usr/bin/time -f '%e %U %S %M %x' -o "$rounds.time" \
        $(pinned "$CORE_LOAD") "$@" </dev/null >"$rounds.out" 2>>"$rounds.err"
    "$PYTHON" "$REPLAY_ROUNDS_PY" round "$rounds" --lines "$lines" --time "$rounds.time" --output "$output"
}
goaccess_round() {
    replay_run "$REPLAY_DIR/rounds-goaccess" "$REPLAY_LINES" "$REPLAY_DIR/goaccess-report.json" \
        goaccess "$REPLAY_DIR/access.log" --log-format=COMBINED --no-progress --no-global-config \
        -o "$REPLAY_DIR/goaccess-report.json"
}
# The replay's report is its standard output (ROUNDS_FILE.out); GoAccess writes its own file.
replay_combined_round() {
    replay_run "$REPLAY_DIR/rounds-replay" "$REPLAY_LINES" "$REPLAY_DIR/rounds-replay.out" \
        "$RLIMITCTL" replay -c "$REPLAY_DIR/conf.json" --format combined --policy api --json \
        "$REPLAY_DIR/access.log"
}
replay_jsonl_round() {
    replay_run "$REPLAY_DIR/rounds-jsonl" "$REPLAY_JSONL_LINES" "$REPLAY_DIR/rounds-jsonl.out" \
        "$RLIMITCTL" replay -c "$REPLAY_DIR/conf.json" --format jsonl --policy api --json \
        "$REPLAY_DIR/access.jsonl"
}
# replay_rss NAME LINES: the generator (on the server core) piped into a replay of standard
# input (on the load core); the replay's maximum RSS.
replay_rss() {
    local name=$1 lines=$2 rounds=$REPLAY_DIR/rounds-$1
    # shellcheck disable=SC2046
    $(pinned "$CORE_SERVER") "$PYTHON" "$REPLAY_GEN" --format combined --lines "$lines" 2>>"$rounds.err" |
        timeout -k 5 $((lines / 10000 + 120)) /usr/bin/time -f '%e %U %S %M %x' -o "$rounds.time" \
            $(pinned "$CORE_LOAD") "$RLIMITCTL" replay -c "$REPLAY_DIR/conf.json" --format combined \
            --policy api --json - >"$rounds.out" 2>>"$rounds.err"
    "$PYTHON" "$REPLAY_ROUNDS_PY" round "$rounds" --lines "$lines" --time "$rounds.time" --output "$rounds.out"
    measure "$name" "rlimitctl replay of $lines combined lines from a pipe (gen_log.py, 10,000 addresses): maximum RSS" \
        "$(where "gen_log.py:$CORE_SERVER rlimitctl:$CORE_LOAD")" \
        "gen_log.py --format combined --lines $lines | /usr/bin/time rlimitctl replay -c CONF --format combined --policy api --json -" \
        -- "$PYTHON" "$REPLAY_ROUNDS_PY" combine "$rounds"
}
replay_why() {  # why the replay section cannot run, or nothing
    [ -x "$RLIMITCTL" ] || { echo "rlimitctl is not built (make all)"; return; }
    [ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is not installed (make deps)"; return; }
    printf '{"ts": 1733300000.5, "key": "k", "path": "/"}\n' >"$REPLAY_DIR/probe.jsonl"
    printf '%s\n' "$REPLAY_CONF" >"$REPLAY_DIR/conf.json"
    if ! "$RLIMITCTL" replay -c "$REPLAY_DIR/conf.json" --format jsonl --policy api --json \
        "$REPLAY_DIR/probe.jsonl" >"$REPLAY_DIR/probe.out" 2>&1; then
        echo "rlimitctl replay does not work yet: $(head -c 200 "$REPLAY_DIR/probe.out" | tr '\n' ' ')"
    fi
}

if only replay; then
    section "rlimitctl replay against GoAccess (one core each, the same log)"
    mkdir -p "$REPLAY_DIR"
    REPLAY_WHY=$(replay_why)
    if [ -n "$REPLAY_WHY" ]; then
        for n in $REPLAY_NAMES; do skip "$n" "replay" "$REPLAY_WHY"; done
    else
        say "  generating $REPLAY_LINES combined lines and $REPLAY_JSONL_LINES JSON lines (gen_log.py)"
        "$PYTHON" "$REPLAY_GEN" --format combined --lines "$REPLAY_LINES" -o "$REPLAY_DIR/access.log"
        "$PYTHON" "$REPLAY_GEN" --format jsonl --lines "$REPLAY_JSONL_LINES" -o "$REPLAY_DIR/access.jsonl"
        cat "$REPLAY_DIR/access.log" "$REPLAY_DIR/access.jsonl" >/dev/null
        if ! command -v goaccess >/dev/null; then
            skip goaccess_combined "GoAccess" "goaccess is not installed (make deps)"
        fi
        for ((r = 1; r <= ROUNDS; r++)); do  # ABBA: goaccess first in odd rounds
            replay_order="replay goaccess"
            [ $((r % 2)) = 1 ] && replay_order="goaccess replay"
            for side in $replay_order; do
                if [ "$side" = replay ]; then
                    replay_combined_round
                elif command -v goaccess >/dev/null; then
                    goaccess_round
                fi
            done
        done
        measure replay_combined "rlimitctl replay --format combined --policy api --json, $REPLAY_LINES lines, 10,000 addresses" \
            "$(where "rlimitctl:$CORE_LOAD")" \
            "rlimitctl replay -c CONF --format combined --policy api --json access.log, $ROUNDS rounds" \
            -- "$PYTHON" "$REPLAY_ROUNDS_PY" combine "$REPLAY_DIR/rounds-replay"
        if command -v goaccess >/dev/null; then
            SOURCE="goaccess $(goaccess --version 2>/dev/null | head -1 | tr -d '\n')" \
                measure goaccess_combined "GoAccess to a JSON report, the same $REPLAY_LINES lines" \
                "$(where "goaccess:$CORE_LOAD")" \
                "goaccess access.log --log-format=COMBINED --no-progress --no-global-config -o report.json, $ROUNDS rounds" \
                -- "$PYTHON" "$REPLAY_ROUNDS_PY" combine "$REPLAY_DIR/rounds-goaccess"
        fi
        for ((r = 1; r <= ROUNDS; r++)); do replay_jsonl_round; done
        measure replay_jsonl "rlimitctl replay --format jsonl --policy api --json, $REPLAY_JSONL_LINES lines" \
            "$(where "rlimitctl:$CORE_LOAD")" \
            "rlimitctl replay -c CONF --format jsonl --policy api --json access.jsonl, $ROUNDS rounds" \
            -- "$PYTHON" "$REPLAY_ROUNDS_PY" combine "$REPLAY_DIR/rounds-jsonl"
        rm -f "$REPLAY_DIR/access.log" "$REPLAY_DIR/access.jsonl"
        replay_rss replay_rss_small $((REPLAY_RSS_LINES / 10))
        replay_rss replay_rss_large "$REPLAY_RSS_LINES"
    fi
fi

# ---- summary -----------------------------------------------------------------------

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_END=$(cpu_available)
say
say "load average at start: $LOAD_START, at end: $LOAD_END; CPU available at start: $CPU_START, at end: $CPU_END"
mkdir -p "$(dirname "$BENCH_JSON")"
META=$("$PYTHON" - "$SECS" "$PIN" "$KEYS" "$LOAD_START" "$LOAD_END" "$CPU_START" "$CPU_END" "${BENCH_NICE:-}" <<'EOF'
import json, os, platform, subprocess, sys
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None
def node_pkg(name):
    try:
        with open(f"tests/bench/node/node_modules/{name}/package.json") as f:
            return json.load(f)["version"]
    except Exception:
        return None
secs, pin, keys, l0, l1, cpu0, cpu1, nice = sys.argv[1:9]
try:
    import limits
    limits_version = limits.__version__
except Exception:
    limits_version = None
try:
    import redis
    redis_py_version = redis.__version__
except Exception:
    redis_py_version = None
model = None
try:
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
except Exception:
    pass
print(json.dumps({
    "machine": {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
                "load_average_start": l0, "load_average_end": l1,
                "cpu_available_start": cpu0, "cpu_available_end": cpu1},
    "settings": {"seconds_per_measurement": float(secs), "pinned": pin == "1", "keys": int(keys),
                 "nice": int(nice) if nice else None,
                 "placement": ("rlimitd (memory store) and redis-server on core 0; rlimit-bench, node, "
                               "python load and redis-benchmark on core 1; rlimitd (redis store) on "
                               "core 1 (core 0 for the unpipelined open loop); FastAPI runs "
                               "unpinned; each figure's 'where' says") if pin == "1" else "unpinned"},
    "commit": out("git", "rev-parse", "--short", "HEAD"),
    "dirty": bool(out("git", "status", "--porcelain", "--untracked-files=no")),
    "versions": {"redis": (out("redis-server", "--version") or "").split("v=")[-1].split()[0] or None,
                 "node": out("node", "--version"), "python": platform.python_version(),
                 "limits": limits_version, "redis-py": redis_py_version, "rate-limiter-flexible": node_pkg("rate-limiter-flexible"),
                 "ioredis": node_pkg("ioredis")},
}))
EOF
)
"$PYTHON" "$BENCH_DIR/results.py" summary "$RESULTS" --out "$BENCH_JSON" --meta "$META"
