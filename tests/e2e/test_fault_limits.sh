#!/usr/bin/env bash
# Limits that protect the daemon, each reached and answered with its error, never a crash
# (max_connections, a frame far over max_frame and a never-reading client are in
# e2e_daemon.c; max_pending needs answers that wait, so it is in test_fault_redis.sh):
#
#   - max_keys of the embedded store: past it a new key gets STORE_FULL, keys already in
#     the store are still served; once keys expire (and are swept) new keys fit again;
#     STATS counts the refusals;
#   - max_frame at its exact edge: a frame whose length is max_frame is read, one byte
#     more is FRAME_TOO_LARGE and the connection is closed; other clients are served.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh

CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "store": {"type": "memory", "max_keys": 100},
 "limits": {"max_frame": 1024, "max_key": 2000},
 "policies": {
  "short": {"algorithm": "sliding_window_log", "limit": 5, "period": "1s"},
  "long": {"algorithm": "fixed_window", "limit": 5, "period": "1h"}}}'
daemon_start d "$CONFIG"

# (Short-lived: a sliding log's key lives 1 s after its request. A fixed window's would
# expire at the next whole second, which a slow run, under valgrind, could straddle.)
echo "-- max_keys 100: 101 short-lived keys"
rlload checks --address "${SOCK[d]}" --policy short --keys 101 --key-prefix s \
    --expect ALLOWED=100 --expect STORE_FULL=1 || check_failed "max_keys: the 101st key"
echo "-- once they expired: 150 long-lived keys"
sleep 2.5
rlload checks --address "${SOCK[d]}" --policy long --keys 150 --key-prefix l \
    --expect ALLOWED=100 --expect STORE_FULL=50 || check_failed "max_keys after expiry"

"$PYTHON" - "${SOCK[d]}" <<'PY' || check_failed "max_keys: state after STORE_FULL"
import sys
sys.path.insert(0, "tests/tools")
import rlwire as w
failures = []
with w.Client(sys.argv[1]) as c:
    kept = c.check("long", "l0")       # a key in the store is still served
    if (kept.status_name, kept.remaining) != ("ALLOWED", 3):
        failures.append(f"a key already stored: {kept}")
    new = c.check("short", "fresh")    # the store is full of live keys
    if new.status_name != "STORE_FULL":
        failures.append(f"a new key in a full store: {new.status_name}")
    local = c.admin(w.STATS)["store"]
print(f"store: {local}")
if local.get("keys") != 100 or local.get("full_refusals") != 52:
    failures.append(f"STATS store: keys {local.get('keys')} (100), full_refusals "
                    f"{local.get('full_refusals')} (52)")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY

echo "-- max_frame 1024 at its edge"
"$PYTHON" - "${SOCK[d]}" <<'PY' || check_failed "max_frame edge"
import socket, sys
sys.path.insert(0, "tests/tools")
import rlwire as w
address = sys.argv[1]
failures = []

def frame_of_length(length: int) -> bytes:  # a CHECK whose length field is `length`
    key = b"k" * (length - 8 - 7 - len(b"long"))
    return w.item_frame(5, b"long", key)

def send(frame: bytes):
    s = w.connect(address)
    s.sendall(frame)
    buf, answers = bytearray(), []
    s.settimeout(10)
    while not answers:
        data = s.recv(4096)
        if not data:
            break
        buf += data
        answers = w.parse_frames(buf)
    closed = False
    if answers:
        s.settimeout(1)  # an open connection stays silent: 1 s tells
        try:
            closed = s.recv(4096) == b""
        except socket.timeout:
            closed = False
        except ConnectionError:
            closed = True
    s.close()
    return (answers[0] if answers else None), closed

edge, closed = send(frame_of_length(1024))
print(f"length 1024: {edge.status_name if edge else None}, closed={closed}")
if not edge or edge.status_name != "STORE_FULL" or closed:  # read and decided (store is full)
    failures.append("a frame of exactly max_frame was not served")
over, closed = send(frame_of_length(1025))
print(f"length 1025: {over.status_name if over else None}, closed={closed}")
if not over or over.status_name != "FRAME_TOO_LARGE" or over.request_id != 5 or not closed:
    failures.append("a frame one byte over max_frame was not refused and closed")
with w.Client(address) as c:
    if c.ping().status_name != "ALLOWED":
        failures.append("PING after")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY

rlload ping "${SOCK[d]}" >/dev/null || check_failed "the daemon does not answer PING at the end"
daemon_stop d
fault_finish test_fault_limits
