#!/bin/bash
# test_ops_install.sh: `make install` with DESTDIR and PREFIX: the tree it builds
# (binaries, header and library, the unit with ExecStart under PREFIX, the config, the
# Python package, docs and examples), and that what it installed works: a program
# built against the installed header and library, the Python package imported from
# there, the installed daemon reading the installed config. A second install keeps an
# edited config.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 300

D="$DIR/root"
P=/opt/rlimitd
# -o all: install what the test run was built with (e.g. a sanitizer build), never
# rebuild it here with other flags.
install_tree() {
    make -C "$ROOT" --no-print-directory -o all install BUILD="$BUILD" PREFIX="$P" \
        DESTDIR="$D" >"$DIR/install.out" 2>&1
}
if install_tree; then ok "make install DESTDIR=... PREFIX=$P"; else
    fail "make install: $(tail -20 "$DIR/install.out")"
    finish
fi

for f in bin/rlimitd bin/rlimitctl bin/rlimit-bench; do
    [ -x "$D$P/$f" ] && ok "$P/$f is installed, executable" || fail "no executable $P/$f"
done
for f in include/rlimit.h include/rlproto.h lib/librlimit.a \
    lib/python3/dist-packages/rlimit/__init__.py lib/python3/dist-packages/rlimit/client.py \
    lib/python3/dist-packages/rlimit/fastapi.py lib/python3/dist-packages/rlimit/py.typed \
    share/doc/rlimitd/README.md share/doc/rlimitd/PROTOCOL.md \
    share/doc/rlimitd/examples/rlimitd.json share/doc/rlimitd/examples/systemd/rlimitd.json \
    share/doc/rlimitd/examples/nginx/rlimitd.conf \
    share/doc/rlimitd/examples/sidecar/docker-compose.yml share/doc/rlimitd/examples/sidecar/pod.yaml \
    lib/systemd/system/rlimitd.service; do
    [ -f "$D$P/$f" ] && ok "$P/$f is installed" || fail "no $P/$f"
done
[ -z "$(find "$D" -name '__pycache__' -o -name '*.o')" ] && ok "no build litter installed" ||
    fail "litter: $(find "$D" -name '__pycache__' -o -name '*.o')"
expect_eq "the unit's config" "$(cat "$ROOT/conf/systemd/rlimitd.json")" "$(cat "$D/etc/rlimitd/rlimitd.json")"
UNIT=$(cat "$D$P/lib/systemd/system/rlimitd.service")
expect_match "ExecStart under PREFIX" "^ExecStart=$P/bin/rlimitd -f -c /etc/rlimitd/rlimitd.json$" "$UNIT"
expect_match "ExecStartPre under PREFIX" "^ExecStartPre=$P/bin/rlimitd --check-config" "$UNIT"
expect_match "Documentation under PREFIX" "^Documentation=file://$P/share/doc/rlimitd/README.md$" "$UNIT"
expect_no_match "no /usr/local left in the unit" '/usr/local' "$UNIT"
"$D$P/bin/rlimitd" --check-config -c "$D/etc/rlimitd/rlimitd.json" >/dev/null &&
    ok "the installed daemon accepts the installed config" || fail "installed config refused"

cat >"$DIR/prog.c" <<'C'
#include <rlimit.h>
#include <stdio.h>
int main(void) {
    char err[256];
    rl_client *c = rl_client_connect("unix:/nonexistent/rlimitd.sock", 100, err, sizeof(err));
    printf("%s %s\n", c ? "connected" : "refused", rl_status_name(RL_ST_DENIED));
    return 0;
}
C
SANITIZE=
nm "$D$P/lib/librlimit.a" 2>/dev/null | grep -q __asan_init && SANITIZE=-fsanitize=address,undefined
if cc $SANITIZE -I"$D$P/include" "$DIR/prog.c" "$D$P/lib/librlimit.a" -o "$DIR/prog" 2>"$DIR/cc.out"; then
    expect_eq "a program built on the installed header and library runs" "refused DENIED" "$("$DIR/prog")"
else
    fail "building against the installed header: $(cat "$DIR/cc.out")"
fi
OUTPUT=$(cd "$DIR" && PYTHONPATH="$D$P/lib/python3/dist-packages" "$PYTHON" -c \
    'import rlimit, rlimit.fastapi; print(rlimit.__file__)' 2>&1)
expect_eq "the installed Python package imports" "$D$P/lib/python3/dist-packages/rlimit/__init__.py" "$OUTPUT"

echo '{"edited": true}' >"$D/etc/rlimitd/rlimitd.json"
install_tree || fail "second make install"
expect_eq "a second install keeps an edited config" '{"edited": true}' "$(cat "$D/etc/rlimitd/rlimitd.json")"
finish
