#!/bin/bash
# test_nginx.sh: Debian's real nginx with conf/nginx/rlimitd.conf (ports substituted)
# in front of a tiny upstream (nginx itself answering 200), against a real rlimitd
# with an HTTP listener: 200 while under the limit, then 429 with Retry-After, 200
# again for another key; a client cannot pick its own key.
# shellcheck source=tests/e2e/ops_common.sh disable=SC2034
. "$(dirname "$0")/ops_common.sh"
watchdog 120

NGINX=${NGINX:-/usr/sbin/nginx}
if [ ! -x "$NGINX" ]; then
    echo "test_nginx: skipped: no $NGINX (apt-get install nginx-light)"
    exit 0
fi

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "http:127.0.0.1:0"],
 "policies": {"api": {"algorithm": "fixed_window", "limit": 3, "period": "1h"}}}
JSON
start_daemon "$DIR/rlimitd.json"
DAEMON_HTTP=$(http_port)
FRONT=$(free_port)
APP=$(free_port)

mkdir -p "$DIR/nginx"
sed -e "s/server 127.0.0.1:7380;/server 127.0.0.1:$DAEMON_HTTP;/" \
    -e "s/server 127.0.0.1:8000;/server 127.0.0.1:$APP;/" \
    -e "s/listen 8080;/listen 127.0.0.1:$FRONT;/" \
    "$ROOT/conf/nginx/rlimitd.conf" >"$DIR/nginx/rlimitd.conf"
cat >"$DIR/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log $DIR/nginx/access.log;
    client_body_temp_path $DIR/nginx/body;
    proxy_temp_path $DIR/nginx/proxy;
    fastcgi_temp_path $DIR/nginx/fastcgi;
    uwsgi_temp_path $DIR/nginx/uwsgi;
    scgi_temp_path $DIR/nginx/scgi;
    include $DIR/nginx/rlimitd.conf;
    server {
        listen 127.0.0.1:$APP;
        location / { default_type text/plain; return 200 "app\n"; }
    }
}
CONF
NGINX_ARGS=(-p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log")
if "$NGINX" -t "${NGINX_ARGS[@]}" 2>"$DIR/nginx/t.out"; then
    ok "nginx -t accepts the example"
else
    fail "nginx -t: $(cat "$DIR/nginx/t.out")"
    finish
fi
"$NGINX" "${NGINX_ARGS[@]}" 2>>"$DIR/nginx/error.log" &
EXTRA_PIDS="$EXTRA_PIDS $!"
for i in $(seq 200); do
    "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $FRONT), 1)" 2>/dev/null && break
    sleep 0.05
done

header() { printf '%s\n' "$1" | sed -n "s/^$2: //p" | head -1; }
body() { printf '%s\n' "$1" | sed '1,/^$/d'; }

for i in 1 2 3; do
    R=$(http "$FRONT" /)
    expect_eq "request $i through nginx: 200" "status 200" "$(echo "$R" | head -1)"
    expect_eq "request $i: the application answered" "app" "$(body "$R")"
    expect_eq "request $i: X-RateLimit-Remaining from rlimitd" "$((3 - i))" "$(header "$R" x-ratelimit-remaining)"
done
expect_eq "X-RateLimit-Limit from rlimitd" 3 "$(header "$R" x-ratelimit-limit)"
R=$(http "$FRONT" /)
expect_eq "over the limit: 429" "status 429" "$(echo "$R" | head -1)"
expect_match "429: Retry-After in seconds" '^[1-9][0-9]*$' "$(header "$R" retry-after)"
expect_eq "429: X-RateLimit-Remaining" 0 "$(header "$R" x-ratelimit-remaining)"
expect_eq "429: body" "rate limited" "$(body "$R")"
R=$(http "$FRONT" / "X-RateLimit-Key: someone-else")
expect_eq "a client's own X-RateLimit-Key is ignored" "status 429" "$(echo "$R" | head -1)"
R=$(http "$FRONT" "/?policy=other" "X-RateLimit-Cost: 1")
expect_eq "a client cannot pick the policy" "status 429" "$(echo "$R" | head -1)"
R=$(http "$FRONT" / "X-Api-Key: alice")
expect_eq "another key (an API key): 200" "status 200" "$(echo "$R" | head -1)"
expect_eq "another key: its own count" 2 "$(header "$R" x-ratelimit-remaining)"
ctl -s "unix:$DIR/admin.sock" --json top api
expect_match "rlimitd saw the client address as the key" '"key":"127.0.0.1","denied":3' "$OUT"

stop_daemon
R=$(http "$FRONT" /)
expect_eq "rlimitd down: auth_request fails closed (500)" "status 500" "$(echo "$R" | head -1)"
finish
