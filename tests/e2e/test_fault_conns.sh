#!/usr/bin/env bash
# Fault test: 10,000 concurrent connections.
#
# The fd limit is raised with `ulimit -n` (for the daemon and the client), the daemon's
# max_connections set above 10,000. Twice: 10,000 connections are opened and held, each
# sends one CHECK and must get exactly one ALLOWED answer, a further connection still
# gets its PING answered, then all are closed and the daemon must still answer. RSS is
# measured before, with every connection open, and after; the second round must not
# leave RSS higher than the first (nothing kept per connection once it is gone).
#
# Valgrind copes with 10,000 connections (about 10 s), so the count is the same under
# RLIMITD_WRAPPER; it is scaled down (printed) only if the hard fd limit is below it.
# RSS bounds are asserted on the plain build only (RSS_STRICT).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/harness.sh
. tests/e2e/harness.sh

CONNECTIONS=10000
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt $((CONNECTIONS + 200)) ]; then
    CONNECTIONS=$((HARD - 200))
    echo "the hard fd limit is $HARD: scaled down to $CONNECTIONS connections"
fi
ulimit -n $((CONNECTIONS + 200)) || ulimit -n "$HARD"
echo "fd limit $(ulimit -n), $CONNECTIONS connections"

CONFIG='{"listen": ["unix:@DIR@/rlimitd.sock"],
 "limits": {"max_connections": 12000},
 "policies": {"big": {"algorithm": "fixed_window", "limit": 1000000000, "period": "1h"}}}'
daemon_start d "$CONFIG"

rlload flood --address "${SOCK[d]}" --pid "${DPID[d]}" --policy big --connections "$CONNECTIONS" \
    --rounds 2 --max-growth-kb $((RSS_STRICT ? 16384 : 1 << 30)) >"$WORK/flood.json" ||
    check_failed "$CONNECTIONS concurrent connections"
if ! "$PYTHON" - "$WORK/flood.json" "$RSS_STRICT" <<'PY'; then
import json, sys
d = json.load(open(sys.argv[1]))
for i, r in enumerate(d["rounds"]):
    print(f"round {i + 1}: {d['connections']} connections opened in {r['connect_seconds']} s, "
          f"answers {r['status']}, closed by the daemon {r['closed_by_daemon']}; "
          f"RSS before {r['rss_before_kb']} kB, all open {r['rss_peak_kb']} kB, "
          f"after closing {r['rss_after_kb']} kB")
per_conn = 16  # kB a connection may cost while open (about 8.5 measured)
for i, r in enumerate(d["rounds"] if sys.argv[2] == "1" else []):
    rise = r["rss_peak_kb"] - r["rss_before_kb"]
    if rise > per_conn * d["connections"]:
        d["failures"].append(f"round {i + 1}: RSS rose by {rise} kB with every connection open,"
                             f" more than {per_conn} kB a connection")
    if r["rss_after_kb"] > max(x["rss_peak_kb"] for x in d["rounds"]) + 1024:
        d["failures"].append(f"round {i + 1}: RSS after closing is above the peak (+1 MiB)")
for f in d["failures"]:
    print("FAIL:", f)
if d["failures"]:
    sys.exit(1)
PY
    check_failed "$CONNECTIONS connections: answers or RSS bounds (see above)"
fi

rlload ping "${SOCK[d]}" >/dev/null || check_failed "the daemon does not answer PING at the end"
daemon_stop d
fault_finish test_fault_conns
