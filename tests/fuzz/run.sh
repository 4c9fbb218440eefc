#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for FUZZ_SECONDS,
# after replaying every kept regression input. Seeds come from proto/vectors and
# conf/. A crash fails the run; its input is left in tests/fuzz/regressions/<target>/
# to be kept as a regression test once fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=build-fuzz
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Iproto -Idaemon"
libs="$(pkg-config --cflags --libs jansson)"
daemon_src="daemon/config.c daemon/config_json.c daemon/config_listener.c daemon/config_policy.c daemon/config_store.c daemon/alloc.c daemon/algo.c"

build() { # target sources...
    local target=$1; shift
    clang $flags "$@" $libs -o "$out/$target"
}
build fuzz_frame tests/fuzz/fuzz_frame.c proto/rlproto.c
build fuzz_config tests/fuzz/fuzz_config.c $daemon_src
if [ -f tests/fuzz/fuzz_http.c ]; then
    build fuzz_http tests/fuzz/fuzz_http.c daemon/http_query.c
fi

# Seeds: every vector's bytes, every example config.
mkdir -p "$work/frame" "$work/config" "$work/http"
/usr/bin/python3 - "$work/frame" <<'PY'
import json, sys
vectors = json.load(open("proto/vectors/vectors.json"))["vectors"]
for i, v in enumerate(vectors):
    open(f"{sys.argv[1]}/v{i}", "wb").write(bytes.fromhex(v["hex"]))
PY
find conf -name '*.json' -exec cp {} "$work/config/" \;
printf 'policy=api&key=alice&cost=1' > "$work/http/seed1"
printf 'key=%%41%%42&policy=login' > "$work/http/seed2"

for target in fuzz_frame fuzz_config fuzz_http; do
    [ -x "$out/$target" ] || continue
    name=${target#fuzz_}
    mkdir -p "tests/fuzz/regressions/$name"
    if compgen -G "tests/fuzz/regressions/$name/*" >/dev/null; then
        echo "== $target: replaying regressions"
        "$out/$target" -runs=0 tests/fuzz/regressions/$name/* 2>&1 | tail -1
    fi
    echo "== $target: fuzzing for ${seconds}s"
    "$out/$target" -max_total_time="$seconds" -max_len=20000 -timeout=10 \
        -artifact_prefix="tests/fuzz/regressions/$name/" "$work/$name" 2>&1 | tail -3
done
echo "fuzz: no crash found"
