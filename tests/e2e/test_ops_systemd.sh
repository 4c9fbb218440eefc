#!/bin/bash
# test_ops_systemd.sh: rlimitd.service passes `systemd-analyze verify` (with ExecStart
# pointing at the binary just built), keeps the properties the unit promises, and the
# daemon speaks the sd_notify protocol Type=notify relies on: READY=1 once listening,
# RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 90

# ---- the unit ----
UNIT="$ROOT/rlimitd.service"
for property in 'Type=notify' 'ExecStart=/usr/local/bin/rlimitd -f -c /etc/rlimitd/rlimitd.json' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'DynamicUser=yes' 'User=rlimitd' \
    'RuntimeDirectory=rlimitd' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'CapabilityBoundingSet=' \
    'WantedBy=multi-user.target'; do
    grep -qxF -- "$property" "$UNIT" && ok "unit has $property" || fail "unit lacks $property"
done
"$RLIMITD" --check-config -c "$ROOT/conf/systemd/rlimitd.json" >/dev/null &&
    ok "the unit's config (conf/systemd/rlimitd.json) is valid" || fail "conf/systemd/rlimitd.json"

if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s|/usr/local/bin/|$ROOT/$BUILD/|g" "$UNIT" >"$DIR/rlimitd.service"
    if systemd-analyze verify "$DIR/rlimitd.service" >"$DIR/verify.out" 2>&1; then
        ok "systemd-analyze verify passes"
    else
        fail "systemd-analyze verify: $(cat "$DIR/verify.out")"
    fi
    expect_no_match "systemd-analyze verify: no warnings about the unit" 'rlimitd\.service' \
        "$(cat "$DIR/verify.out")"
else # make deps installs systemd: a missing systemd-analyze is a failure
    fail "systemd-analyze is not installed (make deps installs systemd)"
fi

# ---- sd_notify ----
"$PYTHON" - "$DIR/notify.sock" "$DIR/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "w", buffering=1) as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg + "\n")
        if "STOPPING=1" in msg:
            break
PY
LISTENER=$!
EXTRA_PIDS="$EXTRA_PIDS $LISTENER"
for i in $(seq 100); do [ -S "$DIR/notify.sock" ] && break; sleep 0.05; done
cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/rlimitd.sock"],
 "policies": {"api": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}}}
JSON
export NOTIFY_SOCKET="$DIR/notify.sock"
start_daemon "$DIR/rlimitd.json"
unset NOTIFY_SOCKET
for i in $(seq $((WAIT_S * 20))); do grep -q READY=1 "$DIR/notify.out" && break; sleep 0.05; done
expect_eq "READY=1 once listening" "READY=1" "$(head -1 "$DIR/notify.out")"
[ -S "$DIR/rlimitd.sock" ] && ok "the socket exists when READY=1 is sent" || fail "no socket"
kill -HUP "$DAEMON_PID"
wait_log "reloaded"
for i in $(seq $((WAIT_S * 20))); do [ "$(wc -l <"$DIR/notify.out")" -ge 3 ] && break; sleep 0.05; done
expect_eq "SIGHUP: RELOADING=1 then READY=1" "RELOADING=1 READY=1" "$(sed -n 2,3p "$DIR/notify.out" | tr '\n' ' ' | sed 's/ $//')"
stop_daemon
wait "$LISTENER"
expect_eq "SIGTERM: STOPPING=1" "STOPPING=1" "$(tail -1 "$DIR/notify.out")"
finish
