#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for FUZZ_SECONDS,
# after replaying every kept regression input. Seeds come from proto/vectors and
# conf/. A crash fails the run; its input is left in tests/fuzz/regressions/<target>/
# to be kept as a regression test once fixed.
#
#   run.sh               build, then run every target
#   run.sh build         build every target (in FUZZ_BUILD, default build-fuzz)
#   run.sh run TARGET    run one built target (frame, config, http)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_BUILD:-build-fuzz}
targets="frame config http"

flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Iproto -Idaemon"
libs="$(pkg-config --cflags --libs jansson)"
daemon_src="daemon/config.c daemon/config_json.c daemon/config_listener.c daemon/config_policy.c daemon/config_store.c daemon/alloc.c daemon/algo.c daemon/hash.c daemon/clock.c daemon/log.c daemon/escape.c proto/hostport.c"

build_one() { # target sources...
    local target=$1
    shift
    clang $flags "$@" $libs -o "$out/$target"
}

build_all() {
    mkdir -p "$out"
    build_one fuzz_frame tests/fuzz/fuzz_frame.c proto/rlproto.c
    build_one fuzz_config tests/fuzz/fuzz_config.c $daemon_src
    build_one fuzz_http tests/fuzz/fuzz_http.c daemon/http_query.c
    echo "fuzz: built $targets in $out"
}

# Writes the seeds of target $1 into directory $2: every vector's bytes (frame), every
# example config (config), two queries (http).
seeds() {
    mkdir -p "$2"
    case $1 in
    frame)
        /usr/bin/python3 - "$2" <<'PY'
import json, sys
vectors = json.load(open("proto/vectors/vectors.json"))["vectors"]
for i, v in enumerate(vectors):
    open(f"{sys.argv[1]}/v{i}", "wb").write(bytes.fromhex(v["hex"]))
PY
        ;;
    config) find conf -name '*.json' -exec cp {} "$2/" \; ;;
    http)
        printf 'policy=api&key=alice&cost=1' >"$2/seed1"
        printf 'key=%%41%%42&policy=login' >"$2/seed2"
        ;;
    *)
        echo "fuzz: no target $1 (targets: $targets)" >&2
        exit 2
        ;;
    esac
}

run_one() { # name (frame, config, http)
    local name=$1 target=fuzz_$1 work
    work=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    seeds "$name" "$work/seeds"
    mkdir -p "tests/fuzz/regressions/$name"
    if compgen -G "tests/fuzz/regressions/$name/*" >/dev/null; then
        echo "== $target: replaying regressions"
        "$out/$target" -runs=0 tests/fuzz/regressions/$name/* 2>&1 | tail -1
    fi
    echo "== $target: fuzzing for ${seconds}s"
    "$out/$target" -max_total_time="$seconds" -max_len=20000 -timeout=10 \
        -artifact_prefix="tests/fuzz/regressions/$name/" "$work/seeds" 2>&1 | tail -3
    echo "fuzz $name: no crash found"
}

case ${1:-all} in
build) build_all ;;
run) run_one "${2:?run.sh run TARGET}" ;;
all)
    build_all
    for name in $targets; do run_one "$name"; done
    echo "fuzz: no crash found"
    ;;
*)
    echo "usage: run.sh [build | run TARGET]" >&2
    exit 2
    ;;
esac
