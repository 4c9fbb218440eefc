#!/bin/bash
# test_nginx.sh: Debian's real nginx with conf/nginx/rlimitd.conf (ports substituted)
# in front of a tiny upstream (nginx itself answering 200), against a real rlimitd
# with an HTTP listener: 200 while under the limit, then 429 with Retry-After, 200
# again for an issued API key; a client cannot pick its own key, policy or cost, and
# the documented fail-open variant lets requests through only while rlimitd is down.
# shellcheck source=tests/e2e/harness.sh disable=SC2034
. "$(dirname "$0")/harness.sh"
watchdog 120

NGINX=${NGINX:-/usr/sbin/nginx}
if [ ! -x "$NGINX" ]; then # make deps installs it: a missing nginx is a failure
    fail "no $NGINX (make deps installs nginx)"
    finish
fi

cat >"$DIR/rlimitd.json" <<JSON
{"listen": ["unix:$DIR/admin.sock", "http:127.0.0.1:0"],
 "policies": {"api": {"algorithm": "fixed_window", "limit": 3, "period": "1h"}}}
JSON
start_daemon "$DIR/rlimitd.json"
DAEMON_HTTP=$(http_port)
FRONT=$(free_port)
APP=$(free_port)

# start_nginx NAME FRONT_PORT APP_PORT [SED_ARGS...]: an nginx of its own (prefix
# $DIR/NAME) serving conf/nginx/rlimitd.conf on FRONT_PORT (with the issued API keys of
# $DIR/api-keys.map included) and a tiny application on APP_PORT; SED_ARGS edit the
# example further.
start_nginx() {
    local name=$1 front=$2 app=$3 i
    shift 3
    mkdir -p "$DIR/$name"
    sed -e "s/server 127.0.0.1:7380;/server 127.0.0.1:$DAEMON_HTTP;/" \
        -e "s/server 127.0.0.1:8000;/server 127.0.0.1:$app;/" \
        -e "s/listen 8080;/listen 127.0.0.1:$front;/" \
        -e "s|# include /etc/nginx/rlimitd-api-keys.map;|include $DIR/api-keys.map;|" \
        "$@" "$ROOT/conf/nginx/rlimitd.conf" >"$DIR/$name/rlimitd.conf"
    cat >"$DIR/$name/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $DIR/$name/nginx.pid;
error_log $DIR/$name/error.log info;
events { worker_connections 64; }
http {
    access_log $DIR/$name/access.log;
    client_body_temp_path $DIR/$name/body;
    proxy_temp_path $DIR/$name/proxy;
    fastcgi_temp_path $DIR/$name/fastcgi;
    uwsgi_temp_path $DIR/$name/uwsgi;
    scgi_temp_path $DIR/$name/scgi;
    include $DIR/$name/rlimitd.conf;
    server {
        listen 127.0.0.1:$app;
        location / { default_type text/plain; return 200 "app\n"; }
    }
}
CONF
    local args=(-p "$DIR/$name" -c "$DIR/$name/nginx.conf" -e "$DIR/$name/error.log")
    if "$NGINX" -t "${args[@]}" 2>"$DIR/$name/t.out"; then
        ok "nginx -t accepts the example ($name)"
    else
        fail "nginx -t ($name): $(cat "$DIR/$name/t.out")"
        finish
    fi
    "$NGINX" "${args[@]}" 2>>"$DIR/$name/error.log" &
    EXTRA_PIDS="$EXTRA_PIDS $!"
    for i in $(seq 200); do
        "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $front), 1)" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "nginx ($name) did not come up"
}

# One issued API key (the map's value is what is counted).
echo '"issued-key-1" "apikey:issued-key-1";' >"$DIR/api-keys.map"
FRONT=$(free_port)
start_nginx nginx "$FRONT" "$(free_port)"
# The same example with its documented fail-open line enabled.
OPEN=$(free_port)
start_nginx open "$OPEN" "$(free_port)" -e 's/^\( *\)# \(error_page [0-9 ]* = @rlimitd_[a-z]*;\)$/\1\2/'

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
R=$(http "$FRONT" / "X-Api-Key: issued-key-1")
expect_eq "an issued API key: 200" "status 200" "$(echo "$R" | head -1)"
expect_eq "an issued API key: its own count" 2 "$(header "$R" x-ratelimit-remaining)"
R=$(http "$FRONT" / "X-Api-Key: ISSUED-KEY-1")
expect_eq "the key in another case: the same count" 1 "$(header "$R" x-ratelimit-remaining)"

# A client cannot choose its key (issue 11, point 6): every key nginx does not know
# counts as the client's address, which is over its limit.
rotated=""
for i in 1 2 3 4 5 6 7 8; do
    rotated="$rotated $(http "$FRONT" / "X-Api-Key: invented-$i-$RANDOM" | sed -n '1s/^status //p')"
done
expect_eq "8 invented API keys past the limit: all 429" " 429 429 429 429 429 429 429 429" "$rotated"
for forged in alice 127.0.0.1 ip:127.0.0.1 apikey:issued-key-1 "issued-key-1 x"; do
    R=$(http "$FRONT" / "X-Api-Key: $forged")
    expect_eq "X-Api-Key: $forged counts as the address: 429" "status 429" "$(echo "$R" | head -1)"
done
LONG=$(printf 'k%.0s' $(seq 600))
R=$(http "$FRONT" / "X-Api-Key: $LONG")
expect_eq "a 600-byte API key counts as the address: 429" "status 429" "$(echo "$R" | head -1)"
ctl -s "unix:$DIR/admin.sock" --json top api
expect_match "rlimitd saw the client address as the key" '"key":"ip:127.0.0.1","denied":' "$OUT"
expect_no_match "rlimitd never saw an invented key" 'invented|alice|kkkk' "$OUT"

# With the fail-open line enabled: nothing a client sends fails open.
through=0
for i in $(seq 25); do
    code=$(http "$OPEN" / "X-Api-Key: $LONG" | sed -n '1s/^status //p')
    [ "$code" = 200 ] && through=$((through + 1))
done
expect_eq "fail-open example: 25 requests with a 600-byte key past the limit, none through" 0 "$through"
R=$(http "$OPEN" / "X-Api-Key: $(printf 'ip:%s' 127.0.0.1)")
expect_eq "fail-open example: a forged key is still limited" "status 429" "$(echo "$R" | head -1)"

stop_daemon
R=$(http "$FRONT" /)
expect_eq "rlimitd down: auth_request fails closed (500)" "status 500" "$(echo "$R" | head -1)"
R=$(http "$OPEN" /)
expect_eq "rlimitd down, fail-open example: the application answers" "status 200" "$(echo "$R" | head -1)"
expect_eq "rlimitd down, fail-open example: no limit headers" "" "$(header "$R" x-ratelimit-limit)"
finish
