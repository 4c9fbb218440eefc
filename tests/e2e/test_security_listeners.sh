#!/bin/bash
# test_security_listeners.sh: listeners say who may do what (issue 11, point 2).
# A non-admin TCP listener refuses refunds, TOP and RESET by default and keeps the
# connection; "ops" restricts exactly; peer_uids/peer_gids refuse other users at
# accept; a token listener serves only PING and AUTH before the token, closes after a
# wrong one, and HTTP wants the bearer token; rlimitctl --token-file; a non-loopback
# TCP listener without a token is a config error unless "insecure"; a token file others
# can read is refused; a reload applies new ops at once and closes the connections of
# a listener whose token changed.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

chmod 0755 "$DIR" # the peer tests connect as another user
TCP=$(free_port)
OPS=$(free_port)
SECRET=$(free_port)
HTTP=$(free_port)
printf 'correct-horse-battery-staple\n' >"$DIR/token"
chmod 0600 "$DIR/token"
printf 'wrong-horse-battery-staple-0\n' >"$DIR/wrong"
chmod 0600 "$DIR/wrong"

write_config() { # $1: the ops of the "ops" listener, $2: its token file
    cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "tcp:127.0.0.1:$TCP",
            {"address": "tcp:127.0.0.1:$OPS", "ops": $1},
            {"address": "tcp:127.0.0.1:$SECRET", "token_file": "$2"},
            {"address": "http:127.0.0.1:$HTTP", "token_file": "$DIR/token"},
            {"address": "unix:$DIR/root.sock", "admin": false, "mode": "0666", "peer_uids": [0]},
            {"address": "unix:$DIR/nogroup.sock", "admin": false, "mode": "0666",
             "peer_gids": [65534]}],
 "policies": {"five": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}}}
JSON
}

# raw ADDRESS STEP...: sends each step as one frame on one connection and prints the
# status of each answer, then "open" or "closed" (the daemon closed the connection).
# Steps: ping, check:KEY, peek:KEY, adjust:KEY:COST, reset:KEY, top, stats, auth:TOKEN.
raw() {
    "$PYTHON" - "$@" <<'PY'
import socket, struct, sys
address, steps = sys.argv[1], sys.argv[2:]
OPS = {"ping": 1, "check": 2, "peek": 3, "adjust": 4, "reset": 5, "auth": 7, "stats": 0x21, "top": 0x22}
if address.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(address[5:])
else:
    host, port = address[4:].rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
s.settimeout(10)
def item(cost, policy, key):
    return struct.pack(">iBH", cost, len(policy), len(key)) + policy + key
def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
out = []
for i, step in enumerate(steps):
    name, *args = step.split(":")
    if name in ("ping", "stats"):
        body = b""
    elif name == "top":
        body = item(10, b"", b"")
    elif name == "auth":
        body = item(0, b"", args[0].encode())
    elif name == "adjust":
        body = item(int(args[1]), b"five", args[0].encode())
    else:
        body = item(0 if name == "reset" else 1, b"five", args[0].encode())
    try:
        s.sendall(struct.pack(">IBBHI", 8 + len(body), 1, OPS[name], 0, i) + body)
        head = read_exact(4)
    except (BrokenPipeError, ConnectionResetError):
        head = None
    if head is None:
        out.append("closed")
        break
    frame = read_exact(struct.unpack(">I", head)[0])
    out.append(str(frame[8]))
else:
    try:
        s.settimeout(0.5)
        out.append("closed" if s.recv(1) == b"" else "open")
    except socket.timeout:
        out.append("open")
    except ConnectionResetError:
        out.append("closed")
print(" ".join(out))
PY
}

# ---- config checks (--check-config) ----
check_config() { # $1: the listener JSON; sets OUT and RC
    printf '{"listen": [%s], "policies": {"p": {"algorithm": "fixed_window", "limit": 1, "period": "1s"}}}' \
        "$1" >"$DIR/check.json"
    OUT=$("$RLIMITD" --check-config -c "$DIR/check.json" 2>&1)
    RC=$?
}
check_config '"tcp:0.0.0.0:7379"'
expect_eq "non-loopback TCP without a token: exit 1" 1 "$RC"
expect_match "... naming the listener and the way out" 'listen\[0\]: "tcp:0.0.0.0:7379" is reachable from other hosts.*token_file.*insecure' "$OUT"
check_config '{"address": "http:[::]:7380"}'
expect_eq "non-loopback HTTP without a token: exit 1" 1 "$RC"
check_config '{"address": "tcp:0.0.0.0:7379", "insecure": true}'
expect_eq "non-loopback TCP with insecure: true is accepted" 0 "$RC"
check_config "{\"address\": \"tcp:0.0.0.0:7379\", \"token_file\": \"$DIR/token\"}"
expect_eq "non-loopback TCP with a token file is accepted" 0 "$RC"
cp "$DIR/token" "$DIR/shared-token" && chmod 0644 "$DIR/shared-token"
check_config "{\"address\": \"tcp:0.0.0.0:7379\", \"token_file\": \"$DIR/shared-token\"}"
expect_eq "a token file of mode 0644: exit 1" 1 "$RC"
expect_match "... naming the field, the file and its mode" "listen\[0\]\.token_file: \"$DIR/shared-token\" has mode 0644" "$OUT"
check_config '{"address": "unix:/tmp/x.sock", "ops": ["check", "refnud"]}'
expect_match "an unknown operation names its field" 'listen\[0\]\.ops\[1\]: must be one of' "$OUT"

# ---- the sidecar example publishes nothing unauthenticated (point 10) ----
"$PYTHON" - "$ROOT/conf/sidecar" "$DIR" <<'PY' >"$DIR/sidecar.out" 2>&1
import ipaddress, json, os, sys
src, out = sys.argv[1], sys.argv[2]
pod = open(os.path.join(src, "pod.yaml")).read().split("rlimitd.json: |\n")[1].split("---")[0]
open(os.path.join(out, "pod.json"), "w").write("\n".join(l[4:] for l in pod.splitlines()))
def loopback(host):
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
for name in ("rlimitd.json", "pod.json"):
    path = os.path.join(src if name == "rlimitd.json" else out, name)
    for l in json.load(open(path))["listen"]:
        l = l if isinstance(l, dict) else {"address": l}
        kind, rest = l["address"].split(":", 1)
        if kind == "unix" or loopback(rest.rsplit(":", 1)[0]) or "token_file" in l:
            continue
        if kind == "http" and l.get("ops") == ["stats"]:
            continue  # /metrics and /healthz only
        print("%s: %s is reachable unauthenticated" % (name, l["address"]))
compose = open(os.path.join(src, "docker-compose.yml")).read()
for line in compose.splitlines():
    if line.strip().startswith('- "') and ":" in line and "127.0.0.1:" not in line and "8000" not in line:
        print("docker-compose.yml publishes %s beyond loopback" % line.strip())
PY
expect_eq "the sidecar configs expose no decision listener without a token" "" "$(cat "$DIR/sidecar.out")"
OUT=$("$RLIMITD" --check-config -c "$ROOT/conf/sidecar/rlimitd.json" 2>&1)
expect_eq "conf/sidecar/rlimitd.json passes --check-config" 0 "$?"
OUT=$("$RLIMITD" --check-config -c "$DIR/pod.json" 2>&1)
expect_eq "conf/sidecar/pod.yaml's config passes --check-config" 0 "$?"
for f in "$ROOT"/conf/rlimitd.json "$ROOT"/conf/systemd/rlimitd.json; do
    OUT=$("$RLIMITD" --check-config -c "$f" 2>&1)
    expect_eq "${f#"$ROOT"/} passes --check-config" 0 "$?"
done

write_config '["peek", "refund"]' "$DIR/token"
start_daemon "$DIR/rlimitd.json"

# ---- the default non-admin TCP listener ----
expect_eq "default TCP listener: refund, TOP, RESET refused (NOT_PERMITTED), the connection goes on" \
    "0 0 26 26 26 0 0 open" "$(raw "tcp:127.0.0.1:$TCP" check:a adjust:a:2 adjust:a:-2 top reset:a check:a stats)"
ctl -s "unix:$DIR/admin.sock" --json peek five a
expect_match "... nothing was given back: 4 used" '"remaining":0' "$OUT"
ctl -s "unix:$DIR/admin.sock" --json check five b
expect_match "the admin socket still serves everything" '"allowed":true' "$OUT"
expect_eq "the admin socket may refund, TOP and RESET" "0 0 0 0 open" \
    "$(raw "unix:$DIR/admin.sock" adjust:b:-1 top reset:b ping)"

# ---- "ops" restricts exactly ----
expect_eq "ops [peek, refund]: only PEEK and refunds" "26 0 0 26 26 26 26 0 open" \
    "$(raw "tcp:127.0.0.1:$OPS" check:c peek:c adjust:c:-1 adjust:c:1 stats top reset:c ping)"

# ---- unix peers ----
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
expect_eq "peer_uids [0]: root is served" "0 open" "$(raw "unix:$DIR/root.sock" check:d)"
expect_eq "peer_uids [0]: uid 65534 is closed at accept" "closed" "$(as_nobody "$PYTHON" - <<PY
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("$DIR/root.sock")
s.settimeout(5)
try:
    print("closed" if s.recv(1) == b"" else "open")
except ConnectionResetError:
    print("closed")
PY
)"
wait_log "refused a connection of uid 65534"
ctl -s "unix:$DIR/admin.sock" stats --json
expect_match "STATS counts the refused peer" '"refused_peers":1' "$OUT"
as_nobody "$RLIMITCTL" -t 5000 -s "unix:$DIR/root.sock" check five e >/dev/null 2>&1
expect_eq "... and rlimitctl as uid 65534 fails (exit 2)" 2 "$?"
as_nobody "$RLIMITCTL" -t 5000 -s "unix:$DIR/nogroup.sock" check five e >"$DIR/nobody.out" 2>&1
expect_eq "peer_gids [65534]: gid 65534 is served" 0 "$?"
expect_eq "peer_gids [65534]: root (gid 0) is refused" "closed" "$(raw "unix:$DIR/nogroup.sock" ping)"
ctl -s "unix:$DIR/admin.sock" stats --json
# (python 1, root 1, rlimitctl 1 or 2: it reconnects once when the daemon's close arrives
# before it sends, which depends on timing)
expect_match "STATS counts every refused peer" '"refused_peers":[34][,}]' "$OUT"

# ---- a token listener ----
expect_eq "token listener: PING served, CHECK before AUTH is AUTH_REQUIRED, connection open" \
    "0 32 32 open" "$(raw "tcp:127.0.0.1:$SECRET" ping check:f stats)"
expect_eq "a wrong token: AUTH_FAILED, then the connection is closed" "32 33 closed" \
    "$(raw "tcp:127.0.0.1:$SECRET" check:f auth:correct-horse-battery-stapl check:f)"
expect_eq "the right token: served" "0 0 0 open" \
    "$(raw "tcp:127.0.0.1:$SECRET" auth:correct-horse-battery-staple check:f stats)"
expect_eq "AUTH on a listener without a token: OK" "0 0 open" "$(raw "tcp:127.0.0.1:$TCP" auth:anything check:g)"
ctl -s "tcp:127.0.0.1:$SECRET" check five h
expect_eq "rlimitctl without the token: exit 2" 2 "$RC"
expect_match "... saying AUTH_REQUIRED" 'AUTH_REQUIRED' "$OUT$ERR"
ctl -s "tcp:127.0.0.1:$SECRET" --token-file "$DIR/token" --json check five h
expect_eq "rlimitctl --token-file: allowed (exit 0)" 0 "$RC"
OUT=$(RLIMITD_TOKEN_FILE="$DIR/token" "$RLIMITCTL" -s "tcp:127.0.0.1:$SECRET" check five h 2>&1)
expect_eq "rlimitctl with RLIMITD_TOKEN_FILE: exit 0" 0 "$?"
ctl -s "tcp:127.0.0.1:$SECRET" --token-file "$DIR/wrong" check five h
expect_eq "rlimitctl with a wrong token: exit 2" 2 "$RC"
expect_match "... authentication failed: AUTH_FAILED" 'authentication failed: AUTH_FAILED' "$ERR"

# ---- HTTP with a token ----
OUT=$(http "$HTTP" "/check?policy=five&key=i")
expect_match "HTTP /check without a bearer token: 401" '^status 401$' "$OUT"
expect_match "... with WWW-Authenticate: Bearer" '^www-authenticate: Bearer$' "$OUT"
OUT=$(http "$HTTP" "/check?policy=five&key=i" "Authorization: Bearer wrong-horse-battery-staple-0")
expect_match "HTTP /check with a wrong token: 401" '^status 401$' "$OUT"
OUT=$(http "$HTTP" "/check?policy=five&key=i" "Authorization: Bearer correct-horse-battery-staple")
expect_match "HTTP /check with the token: 200" '^status 200$' "$OUT"
# two requests with a wrong token on one kept-alive connection: one 401, then closed (one
# guess per connection, as AUTH_FAILED on the binary listeners)
OUT=$(HTTP_PIPELINE=2 http "$HTTP" "/check?policy=five&key=i" \
    "Authorization: Bearer wrong-horse-battery-staple-1")
expect_match "HTTP: two pipelined requests with a wrong token: one answer" '^responses 1$' "$OUT"
expect_match "... 401" '^status 401$' "$OUT"
expect_match "... with Connection: close" '^connection: close$' "$OUT"
OUT=$(http "$HTTP" "/metrics")
expect_match "HTTP /metrics without the token: 401" '^status 401$' "$OUT"
OUT=$(http "$HTTP" "/healthz")
expect_match "HTTP /healthz needs no token" '^status 200$' "$OUT"
ctl -s "unix:$DIR/admin.sock" stats --json
expect_match "STATS counts the failed authentications (2 AUTH, 4 HTTP)" '"auth_failures":6' "$OUT"

# ---- reload: new ops apply at once; a changed token closes the connections ----
"$PYTHON" - "$OPS" "$SECRET" "$DIR" >"$DIR/held.out" 2>&1 <<'PY' &
import os, socket, struct, sys, time
ops = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
secret = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
def call(s, opcode, body, i):
    try:
        s.sendall(struct.pack(">IBBHI", 8 + len(body), 1, opcode, 0, i) + body)
        data = s.recv(64)
    except (BrokenPipeError, ConnectionResetError):
        data = b""
    return str(data[12]) if data else "closed"
check = struct.pack(">iBH", 1, 4, 1) + b"fivej"
token = b"correct-horse-battery-staple"
before = [call(ops, 2, check, 1), call(secret, 7, struct.pack(">iBH", 0, 0, len(token)) + token, 2)]
open(os.path.join(sys.argv[3], "held.ready"), "w").close()
while not os.path.exists(os.path.join(sys.argv[3], "go")):
    time.sleep(0.05)
secret.settimeout(10)
print(" ".join(before + [call(ops, 2, check, 3), call(secret, 2, check, 4)]))
PY
HELD=$!
for i in $(seq 200); do [ -e "$DIR/held.ready" ] && break; sleep 0.05; done
printf 'another-token-of-enough-bytes\n' >"$DIR/token2"
chmod 0600 "$DIR/token2"
write_config '["check"]' "$DIR/token2"
ctl -s "unix:$DIR/admin.sock" reload
expect_eq "reload with new ops and a new token: exit 0" 0 "$RC"
touch "$DIR/go"
wait "$HELD"
expect_eq "held connections: ops apply at once (26 -> 0), the old token's connection is closed" \
    "26 0 0 closed" "$(cat "$DIR/held.out")"
expect_eq "the new token is served after the reload" "0 0 open" \
    "$(raw "tcp:127.0.0.1:$SECRET" auth:another-token-of-enough-bytes check:k)"
chmod 0644 "$DIR/token2"
ctl -s "unix:$DIR/admin.sock" reload
expect_eq "a reload with a token file others can read is refused (exit 2)" 2 "$RC"
expect_match "... naming the file" "token2\" has mode 0644" "$OUT$ERR"

stop_daemon
finish
