/*
 * e2e_daemon.c: the real daemon on a temporary Unix socket, driven through the C
 * client library and through raw sockets for frames no client would send.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/daemon.h"
#include "rlimit.h"
#include "rlproto.h"

static const char *const CONFIG =
    "{\"listen\": [\"unix:@DIR@/rlimitd.sock\", {\"address\": \"unix:@DIR@/public.sock\", "
    "\"admin\": false}],"
    " \"limits\": {\"max_key\": 64, \"max_pending\": 64, \"max_output\": 65536,"
    "              \"max_connections\": 40, \"idle_timeout\": \"2s\"},"
    " \"policies\": {"
    "  \"five\": {\"algorithm\": \"fixed_window\", \"limit\": 5, \"period\": \"1h\"},"
    "  \"log\": {\"algorithm\": \"sliding_window_log\", \"limit\": 3, \"period\": \"1h\"},"
    "  \"bucket\": {\"algorithm\": \"token_bucket\", \"limit\": 10, \"period\": \"1h\","
    "              \"burst\": 4},"
    "  \"cell\": {\"algorithm\": \"gcra\", \"limit\": 60, \"period\": \"1m\", \"burst\": 3},"
    "  \"counter\": {\"algorithm\": \"sliding_window_counter\", \"limit\": 4, \"period\": \"1h\"},"
    "  \"big\": {\"algorithm\": \"fixed_window\", \"limit\": 1000000, \"period\": \"1h\"},"
    "  \"thousand\": {\"algorithm\": \"fixed_window\", \"limit\": 700, \"period\": \"1h\"},"
    "  \"both\": {\"algorithm\": \"fixed_window\", \"rates\": [{\"limit\": 3, \"period\": "
    "\"1h\"}, {\"limit\": 2, \"period\": \"1d\"}]},"
    "  \"shadowed\": {\"algorithm\": \"fixed_window\", \"limit\": 1, \"period\": \"1h\","
    "                \"mode\": \"shadow\"},"
    "  \"lists\": {\"algorithm\": \"fixed_window\", \"limit\": 1, \"period\": \"1h\","
    "             \"exempt\": [\"friend\"], \"block\": [\"foe\"],"
    "             \"overrides\": {\"partner\": {\"limit\": 3}}}"
    " }}";

static rlt_daemon daemon_;
static rl_client *client;

static void setup(void) {
    ck_assert_int_eq(rlt_daemon_start(&daemon_, CONFIG), 0);
    char err[256];
    client = rl_client_connect(daemon_.sock, 5000, err, sizeof(err));
    ck_assert_msg(client != NULL, "connect: %s", err);
}

static void teardown(void) {
    rl_client_close(client);
    ck_assert_int_eq(rlt_daemon_stop(&daemon_), 0);
}

static rl_result check(const char *policy, const char *key, uint32_t cost) {
    rl_result r;
    ck_assert_int_eq(rl_client_check(client, policy, key, cost, &r), RLC_OK);
    return r;
}

static rl_result check_on(rl_client *c, const char *policy, const char *key, uint32_t cost) {
    rl_result r;
    ck_assert_int_eq(rl_client_check(c, policy, key, cost, &r), RLC_OK);
    return r;
}

static int raw_connect(const char *address) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", address + 5);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

// Reads one response frame from fd within 5 s. Returns 1, or 0 on EOF.
static int raw_read_response(int fd, rl_response *resp, uint8_t *buf, size_t cap) {
    size_t have = 0;
    for (;;) {
        int rc = rl_response_decode(buf, have, resp);
        if (rc == RL_OK)
            return 1;
        ck_assert_int_ne(rc, RL_ERR);
        struct pollfd p = {fd, POLLIN, 0};
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ssize_t n = read(fd, buf + have, cap - have);
        if (n == 0)
            return 0;
        ck_assert_int_gt(n, 0);
        have += (size_t)n;
    }
}

// Returns 1 if the daemon closed fd (EOF within 5 s).
static int raw_closed(int fd) {
    uint8_t b[64];
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1)
        return 0;
    return read(fd, b, sizeof(b)) == 0;
}

static size_t check_frame(uint8_t *out, size_t cap, uint32_t id, const char *policy,
                          const char *key, uint32_t cost) {
    rl_request req = {.id = id, .opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = (rl_item){cost, policy, key, (uint16_t)strlen(key), (uint8_t)strlen(policy)};
    return rl_request_encode(&req, out, cap);
}

START_TEST(fixed_window_admits_exactly_the_limit) {
    for (int i = 0; i < 5; i++) {
        rl_result r = check("five", "alice", 1);
        ck_assert_int_eq(r.status, RL_ST_ALLOWED);
        ck_assert_int_eq(r.limit, 5);
        ck_assert_int_eq(r.remaining, 4 - i);
        ck_assert_int_eq(r.window_ms, 3600000);
    }
    rl_result r = check("five", "alice", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_gt(r.retry_after_ms, 0);
    ck_assert_int_le(r.retry_after_ms, 3600000);
    ck_assert_int_eq(check("five", "bob", 1).status, RL_ST_ALLOWED); /* keys are separate */
}
END_TEST

START_TEST(peek_consumes_nothing_and_reset_clears) {
    rl_result r;
    ck_assert_int_eq(check("log", "k", 2).remaining, 1);
    ck_assert_int_eq(rl_client_peek(client, "log", "k", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_eq(rl_client_peek(client, "log", "k", 2, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_eq(check("log", "k", 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(check("log", "k", 1).status, RL_ST_DENIED);
    ck_assert_int_eq(rl_client_reset(client, "log", "k", &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_OK);
    ck_assert_int_eq(check("log", "k", 3).status, RL_ST_ALLOWED);
}
END_TEST

START_TEST(adjust_charges_and_gives_back) {
    rl_result r;
    ck_assert_int_eq(check("five", "adj", 1).remaining, 4);
    ck_assert_int_eq(rl_client_adjust(client, "five", "adj", 3, &r), RLC_OK);
    ck_assert_int_eq(r.remaining, 1);
    ck_assert_int_eq(rl_client_adjust(client, "five", "adj", 5, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_DENIED); /* over the limit after the fact */
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_eq(rl_client_adjust(client, "five", "adj", -5, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.remaining, 1);
    ck_assert_int_eq(rl_client_adjust(client, "five", "adj", -5, &r), RLC_OK);
    ck_assert_int_eq(r.remaining, 5); /* never below zero usage */
}
END_TEST

START_TEST(token_bucket_and_gcra_figures) {
    rl_result r = check("bucket", "b", 4);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.limit, 4);
    ck_assert_int_eq(r.remaining, 0);
    r = check("bucket", "b", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_ge(r.retry_after_ms, 350000); /* one token per 6 minutes, less the time */
                                                /* spent since (slow under valgrind) */
    ck_assert_int_le(r.retry_after_ms, 360000);
    r = check("cell", "c", 1); /* redis-cell: max_burst 2, 60/min */
    ck_assert_int_eq(r.limit, 3);
    ck_assert_int_eq(r.remaining, 2);
    ck_assert_int_eq(check("cell", "c", 2).remaining, 0);
    r = check("cell", "c", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_le(r.retry_after_ms, 1000);
    ck_assert_int_ge(r.retry_after_ms, 500);
}
END_TEST

START_TEST(sliding_counter_admits_the_limit) {
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(check("counter", "s", 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(check("counter", "s", 1).status, RL_ST_DENIED);
}
END_TEST

START_TEST(multi_rate_policy_consumes_all_or_nothing) {
    rl_result r = check("both", "m", 2);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.remaining, 0); /* the daily rate of 2 is the most restrictive */
    ck_assert_int_eq(r.limit, 2);
    r = check("both", "m", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_eq(r.window_ms, 86400000);
}
END_TEST

START_TEST(multi_check_is_all_or_nothing) {
    rl_item items[3] = {{1, "five", "mc", 2, 4}, {3, "log", "mc", 2, 3}, {1, "five", "mc2", 3, 4}};
    rl_response resp;
    ck_assert_int_eq(rl_client_multi_check(client, items, 3, &resp), RLC_OK);
    ck_assert_int_eq(resp.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(resp.item_count, 3);
    ck_assert_int_eq(resp.items[1].remaining, 0);
    ck_assert_int_eq(resp.result.remaining, 0);
    ck_assert_int_eq(rl_client_multi_check(client, items, 3, &resp), RLC_OK);
    ck_assert_int_eq(resp.result.status, RL_ST_DENIED); /* the log item is spent */
    ck_assert_int_eq(resp.items[0].status, RL_ST_ALLOWED);
    ck_assert_int_eq(resp.items[1].status, RL_ST_DENIED);
    /* nothing was consumed by the denied batch */
    ck_assert_int_eq(check("five", "mc", 1).remaining, 3);
    ck_assert_int_eq(check("five", "mc2", 1).remaining, 3);
}
END_TEST

START_TEST(errors_name_the_problem) {
    char longkey[100];
    memset(longkey, 'x', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_int_eq(check("nope", "k", 1).status, RL_ST_UNKNOWN_POLICY);
    ck_assert_int_eq(check("five", longkey, 1).status, RL_ST_KEY_TOO_LONG);
    ck_assert_int_eq(check("five", "", 1).status, RL_ST_KEY_EMPTY);
    ck_assert_int_eq(check("five", "k", 0).status, RL_ST_COST_INVALID);
    ck_assert_int_eq(check("five", "k", 6).status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(check("bucket", "k", 5).status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(check("five", "k", 1).status, RL_ST_ALLOWED); /* still serving */
}
END_TEST

START_TEST(exempt_block_override_shadow) {
    rl_result r = check("lists", "friend", 1);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.flags & RL_FLAG_EXEMPT, RL_FLAG_EXEMPT);
    ck_assert_int_eq(check("lists", "friend", 1).status, RL_ST_ALLOWED);
    r = check("lists", "foe", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_int_eq(r.flags & RL_FLAG_BLOCKED, RL_FLAG_BLOCKED);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(check("lists", "partner", 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(check("lists", "partner", 1).status, RL_ST_DENIED);
    ck_assert_int_eq(check("shadowed", "s", 1).flags, 0);
    r = check("shadowed", "s", 1);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.flags & RL_FLAG_SHADOW, RL_FLAG_SHADOW);
}
END_TEST

START_TEST(pipelines_a_thousand_requests) {
    static rl_request reqs[1000];
    static rl_response out[1000];
    for (int i = 0; i < 1000; i++) {
        reqs[i] = (rl_request){.id = 0, .opcode = RL_OP_CHECK, .item_count = 1};
        reqs[i].items[0] = (rl_item){1, "thousand", "pipe", 4, 8};
    }
    ck_assert_int_eq(rl_client_batch(client, reqs, 1000, out), RLC_OK);
    int allowed = 0, denied = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(out[i].opcode, RL_OP_CHECK);
        allowed += out[i].result.status == RL_ST_ALLOWED;
        denied += out[i].result.status == RL_ST_DENIED;
    }
    ck_assert_int_eq(allowed, 700);
    ck_assert_int_eq(denied, 300);
}
END_TEST

// A frame the daemon cannot read gets its status, then the connection is closed;
// everyone else is still served.
static void expect_refused(const uint8_t *frame, size_t len, int status, int closes) {
    uint8_t buf[256];
    rl_response resp;
    int fd = raw_connect(daemon_.sock);
    ck_assert_int_eq(write(fd, frame, len), (ssize_t)len);
    ck_assert_int_eq(raw_read_response(fd, &resp, buf, sizeof(buf)), 1);
    ck_assert_int_eq(resp.result.status, status);
    if (closes)
        ck_assert_int_eq(raw_closed(fd), 1);
    else
        ck_assert_int_eq(check("big", "after", 1).status, RL_ST_ALLOWED);
    close(fd);
    ck_assert_int_eq(check("big", "other", 1).status, RL_ST_ALLOWED);
}

START_TEST(bad_frames_get_an_error_and_a_close) {
    uint8_t f[64];
    size_t n = check_frame(f, sizeof(f), 7, "five", "k", 1);
    f[4] = 9; /* version */
    expect_refused(f, n, RL_ST_UNSUPPORTED_VERSION, 1);
    n = check_frame(f, sizeof(f), 7, "five", "k", 1);
    f[5] = 0x7f; /* opcode */
    expect_refused(f, n, RL_ST_UNKNOWN_OPCODE, 0);
    n = check_frame(f, sizeof(f), 7, "five", "k", 1);
    f[3] += 1; /* one byte left over */
    f[n] = 0;
    expect_refused(f, n + 1, RL_ST_MALFORMED, 1);
    uint8_t big[12] = {0, 1, 0, 0, 1, RL_OP_CHECK, 0, 0, 0, 0, 0, 1}; /* 64 KiB frame */
    expect_refused(big, sizeof(big), RL_ST_FRAME_TOO_LARGE, 1);
    uint8_t tiny[12] = {0, 0, 0, 2, 1, RL_OP_CHECK, 0, 0, 0, 0, 0, 1};
    expect_refused(tiny, sizeof(tiny), RL_ST_MALFORMED, 1);
}
END_TEST

START_TEST(a_client_that_disconnects_mid_frame_harms_nobody) {
    uint8_t f[64];
    size_t n = check_frame(f, sizeof(f), 1, "five", "k", 1);
    for (int i = 0; i < 20; i++) {
        int fd = raw_connect(daemon_.sock);
        ck_assert_int_eq(write(fd, f, n / 2), (ssize_t)(n / 2));
        close(fd);
    }
    ck_assert_int_eq(check("big", "mid", 1).status, RL_ST_ALLOWED);
}
END_TEST

START_TEST(reset_needs_an_admin_listener) {
    char err[256], path[400];
    snprintf(path, sizeof(path), "unix:%s/public.sock", daemon_.dir);
    rl_client *pub = rl_client_connect(path, 5000, err, sizeof(err));
    ck_assert_ptr_nonnull(pub);
    rl_result r;
    ck_assert_int_eq(rl_client_reset(pub, "five", "k", &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_NOT_PERMITTED);
    ck_assert_int_eq(rl_client_check(pub, "five", "k", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    rl_client_close(pub);
}
END_TEST

START_TEST(a_client_that_never_reads_is_dropped) {
    /* 64 KiB of unsent answers at most: send 1 MB of requests, read nothing */
    static uint8_t frames[1000000];
    size_t one = check_frame(frames, sizeof(frames), 1, "big", "flood", 1), n = 0;
    while (n + one <= sizeof(frames)) {
        memcpy(frames + n, frames, one);
        n += one;
    }
    int fd = raw_connect(daemon_.sock);
    int rcvbuf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    size_t sent = 0;
    for (int i = 0; i < 200 && sent < n; i++) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        ssize_t w = send(fd, frames + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    ck_assert_int_eq(check("big", "reader", 1).status, RL_ST_ALLOWED);
    for (int i = 0; i < 250 && !rlt_daemon_log_has(&daemon_, "does not read its answers"); i++)
        usleep(20000);
    ck_assert(rlt_daemon_log_has(&daemon_, "does not read its answers"));
    close(fd);
}
END_TEST

START_TEST(max_connections_refuses_with_busy) {
    int fds[40];
    for (int i = 0; i < 39; i++) /* with the client's, 40 */
        fds[i] = raw_connect(daemon_.sock);
    ck_assert_int_eq(check("big", "full", 1).status, RL_ST_ALLOWED);
    int extra = raw_connect(daemon_.sock);
    uint8_t buf[64];
    rl_response resp;
    ck_assert_int_eq(raw_read_response(extra, &resp, buf, sizeof(buf)), 1);
    ck_assert_int_eq(resp.result.status, RL_ST_BUSY);
    ck_assert_int_eq(raw_closed(extra), 1);
    close(extra);
    for (int i = 0; i < 39; i++)
        close(fds[i]);
    ck_assert_int_eq(check("big", "full", 1).status, RL_ST_ALLOWED);
}
END_TEST

START_TEST(idle_connections_are_closed) {
    int fd = raw_connect(daemon_.sock);
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 8000), 1); /* idle_timeout is 2 s */
    uint8_t b[8];
    ck_assert_int_eq(read(fd, b, sizeof(b)), 0);
    close(fd);
}
END_TEST

START_TEST(sighup_reloads_and_keeps_counters) {
    ck_assert_int_eq(check("five", "r", 3).remaining, 2);
    ck_assert_int_eq(check("log", "r", 1).remaining, 2);
    char cfg[8192];
    snprintf(cfg, sizeof(cfg), "%s", CONFIG);
    char *at = strstr(cfg, "\"limit\": 3, \"period\": \"1h\"}"); /* the log policy: 3 -> 2 */
    ck_assert_ptr_nonnull(at);
    at[9] = '2';
    ck_assert_int_eq(rlt_daemon_rewrite(&daemon_, cfg), 0);
    rlt_daemon_signal(&daemon_, SIGHUP);
    for (int i = 0; i < 250 && !rlt_daemon_log_has(&daemon_, "reloaded"); i++)
        usleep(20000);
    ck_assert(rlt_daemon_log_has(&daemon_, "reloaded"));
    ck_assert_int_eq(check("five", "r", 1).remaining, 1); /* unchanged policy: kept */
    rl_result r = check("log", "r", 1);                   /* changed policy: forgotten */
    ck_assert_int_eq(r.limit, 2);
    ck_assert_int_eq(r.remaining, 1);
    /* a broken config is refused and the old one stays */
    ck_assert_int_eq(rlt_daemon_rewrite(&daemon_, "{\"listen\": []}"), 0);
    rlt_daemon_signal(&daemon_, SIGHUP);
    for (int i = 0; i < 250 && !rlt_daemon_log_has(&daemon_, "reload refused"); i++)
        usleep(20000);
    ck_assert(rlt_daemon_log_has(&daemon_, "reload refused"));
    ck_assert_int_eq(check("five", "r", 1).remaining, 0);
}
END_TEST

START_TEST(sigterm_unlinks_the_socket) {
    char path[400];
    struct stat st;
    snprintf(path, sizeof(path), "%s/rlimitd.sock", daemon_.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    rlt_daemon_signal(&daemon_, SIGTERM);
    ck_assert_int_eq(rlt_daemon_wait(&daemon_, 30000), 0); /* a clean exit */
    ck_assert_int_ne(stat(path, &st), 0);
}
END_TEST

/* ---- ADJUST is bounded (issue 11, point 1) ---- */

static rl_result adjust(rl_client *c, const char *policy, const char *key, int32_t delta) {
    rl_result r;
    ck_assert_int_eq(rl_client_adjust(c, policy, key, delta, &r), RLC_OK);
    return r;
}

START_TEST(adjust_cannot_reset_or_lock_a_key) {
    for (int i = 0; i < 3; i++)
        check("log", "victim", 1);
    ck_assert_int_eq(check("log", "victim", 1).status, RL_ST_DENIED);
    /* Before: ALLOWED with remaining 3 (a RESET in all but name). */
    ck_assert_int_eq(adjust(client, "log", "victim", INT32_MIN).status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(adjust(client, "log", "victim", -4).status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(check("log", "victim", 1).status, RL_ST_DENIED);
    /* Before: reset_after_ms 4294967295 (40 years), on any listener. */
    char err[256];
    char public_sock[400];
    snprintf(public_sock, sizeof(public_sock), "unix:%s/public.sock", daemon_.dir);
    rl_client *pub = rl_client_connect(public_sock, 5000, err, sizeof(err));
    ck_assert_msg(pub != NULL, "connect: %s", err);
    ck_assert_int_eq(adjust(pub, "bucket", "b", INT32_MAX).status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(adjust(pub, "bucket", "b", 5).status, RL_ST_COST_TOO_LARGE); /* burst 4 */
    rl_result r = adjust(pub, "bucket", "b", 4);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, 0);
    adjust(pub, "bucket", "b", 4);
    r = adjust(pub, "bucket", "b", 4);
    ck_assert_uint_eq(r.flags, RL_FLAG_CAPPED);
    ck_assert_uint_le(r.reset_after_ms, 2 * r.window_ms);
    rl_client_close(pub);
}
END_TEST

#define BOUNDED_WINDOW_MS 300 /* the token bucket's window in the next test */

static const char *const BOUNDED_CONFIG =
    "{\"listen\": [\"unix:@DIR@/rlimitd.sock\"],"
    " \"store\": {\"type\": \"memory\", \"max_keys\": 1000},"
    " \"policies\": {"
    "  \"tb\": {\"algorithm\": \"token_bucket\", \"limit\": 10, \"period\": \"300ms\"},"
    "  \"other\": {\"algorithm\": \"fixed_window\", \"limit\": 5, \"period\": \"1h\"}"
    " }}";

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1,000 keys charged far past their capacity fill a store of max_keys 1000; they expire
 * within two windows, after which every new key of another policy is taken. Before, an
 * ADJUST +2147483647 made them live ~40 years and every new key got STORE_FULL. */
START_TEST(charged_keys_expire_within_two_windows) {
    rlt_daemon d;
    char err[256], key[32];
    ck_assert_int_eq(rlt_daemon_start(&d, BOUNDED_CONFIG), 0);
    rl_client *c = rl_client_connect(d.sock, 5000, err, sizeof(err));
    ck_assert_msg(c != NULL, "connect: %s", err);
    ck_assert_int_eq(adjust(c, "tb", "k0", INT32_MAX).status, RL_ST_COST_TOO_LARGE);
    int64_t first = monotonic_ms(); /* no key can expire before first + 2 windows */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        for (int n = 0; n < 3; n++) {
            rl_result r = adjust(c, "tb", key, 10);
            ck_assert_int_eq(r.status, RL_ST_DENIED);
            ck_assert_uint_le(r.reset_after_ms, 2 * BOUNDED_WINDOW_MS);
            ck_assert_uint_eq(r.flags, n == 2 ? RL_FLAG_CAPPED : 0);
        }
    }
    int64_t charged = monotonic_ms();
    rl_result full = check_on(c, "other", "new", 1);
    if (monotonic_ms() < first + 2 * BOUNDED_WINDOW_MS) /* else a slow run: some expired */
        ck_assert_int_eq(full.status, RL_ST_STORE_FULL);
    /* Wait out the two windows (bounded), then every key must be evictable. */
    while (monotonic_ms() < charged + 2 * BOUNDED_WINDOW_MS + 50)
        usleep(20000);
    for (int i = 0; i < 999; i++) { /* with "new", which a slow run may have taken */
        snprintf(key, sizeof(key), "new%d", i);
        ck_assert_int_eq(check_on(c, "other", key, 1).status, RL_ST_ALLOWED);
    }
    rl_client_close(c);
    ck_assert_int_eq(rlt_daemon_stop(&d), 0);
}
END_TEST

/* ---- --check-config runs the daemon's own checks (issue 11, points 3 and 14) ---- */

// Runs rlimitd --check-config on config; returns its exit status, its output in out.
static int check_config(const char *config, char *out, size_t len) {
    char path[] = "/tmp/rl-e2e-check-XXXXXX", cmd[600];
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, config, strlen(config)), (ssize_t)strlen(config));
    close(fd);
    const char *bin = getenv("RLIMITD_BIN") ? getenv("RLIMITD_BIN") : "build/rlimitd";
    snprintf(cmd, sizeof(cmd), "%s --check-config -c %s 2>&1", bin, path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(check_config_refuses_what_the_daemon_refuses) {
    char out[2048];
    ck_assert_int_ne(check_config("{\"listen\": [\"unix:/tmp/x.sock\"], \"store\": {\"type\": "
                                  "\"redis\", \"url\": \"redis://127.0.0.1:1\", "
                                  "\"key_prefix\": \"{app}:\"}, \"policies\": {\"p\": "
                                  "{\"algorithm\": \"fixed_window\", \"limit\": 1, "
                                  "\"period\": \"1s\"}}}",
                                  out, sizeof(out)),
                     0);
    ck_assert_msg(strstr(out, "store.key_prefix") && strstr(out, "must not hold { or }"),
                  "output: %s", out);
    ck_assert_int_ne(check_config("{\"listen\": [\"unix:/tmp/x.sock\"], \"policies\": "
                                  "{\"login\": {\"algorithm\": \"sliding_window_log\", "
                                  "\"limit\": 20000, \"period\": \"15m\"}}}",
                                  out, sizeof(out)),
                     0);
    ck_assert_msg(strstr(out, "policies.login.limit: 20000 is above the sliding_window_log "
                              "maximum 10000; use sliding_window_counter for large limits"),
                  "output: %s", out);
}
END_TEST

/* ---- faults of the daemon's own start (issue 12, point 6) ---- */

/* -v survives SIGHUP: the debug line of a shadow denial is still written after a reload
   (the old daemon set the config's log level on every reload, losing -v). */
START_TEST(verbose_survives_a_reload) {
    const char *bin = getenv("RLIMITD_BIN") ? getenv("RLIMITD_BIN") : "build/rlimitd";
    char verbose[1024], cfg[8192];
    snprintf(verbose, sizeof(verbose), "%s -v", bin);
    setenv("RLIMITD_BIN", verbose, 1); /* this test's process only (Check forks) */
    ck_assert_int_eq(rlt_daemon_start(&daemon_, CONFIG), 0);
    char err[256];
    client = rl_client_connect(daemon_.sock, 5000, err, sizeof(err));
    ck_assert_msg(client != NULL, "connect: %s", err);
    check("shadowed", "a", 1);
    check("shadowed", "a", 1); /* the line is written before the answer is sent */
    ck_assert(rlt_daemon_log_has(&daemon_, "shadow: policy shadowed would deny"));
    snprintf(cfg, sizeof(cfg), "%s", CONFIG);
    char *at = strstr(cfg, "\"shadowed\":");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "\"shadowe2\":", 11); /* the same policy under a new name */
    ck_assert_int_eq(rlt_daemon_rewrite(&daemon_, cfg), 0);
    rlt_daemon_signal(&daemon_, SIGHUP);
    for (int i = 0; i < 500 && !rlt_daemon_log_has(&daemon_, "reloaded"); i++)
        usleep(20000);
    ck_assert(rlt_daemon_log_has(&daemon_, "reloaded"));
    check("shadowe2", "a", 1);
    check("shadowe2", "a", 1);
    ck_assert_msg(rlt_daemon_log_has(&daemon_, "shadow: policy shadowe2 would deny"),
                  "no debug line after the reload: -v was lost");
    rl_client_close(client);
    client = NULL;
    ck_assert_int_eq(rlt_daemon_stop(&daemon_), 0);
}
END_TEST

// Runs the daemon on CONFIG with tests/tools/failevent.c preloaded and RLT_FAIL_EVENT
// set to mode; the daemon must give up at start. Returns its exit status (-1 if a
// signal killed it); log receives (len bytes) what it wrote.
static int run_with_failing_events(const char *mode, char *log, size_t len) {
    const char *bin = getenv("RLIMITD_BIN") ? getenv("RLIMITD_BIN") : "build/rlimitd";
    const char *wrapper = getenv("RLIMITD_WRAPPER") ? getenv("RLIMITD_WRAPPER") : "";
    const char *asan = getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "";
    rlt_daemon d;
    char cmd[4096];
    memset(&d, 0, sizeof(d));
    snprintf(d.dir, sizeof(d.dir), "/tmp/rlimitd-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d.dir));
    snprintf(d.config, sizeof(d.config), "%s/rlimitd.json", d.dir);
    snprintf(d.log, sizeof(d.log), "%s/daemon.log", d.dir);
    ck_assert_int_eq(rlt_daemon_rewrite(&d, CONFIG), 0);
    snprintf(cmd, sizeof(cmd),
             "cc -shared -fPIC -o '%s/failevent.so' tests/tools/failevent.c -ldl && "
             "LD_PRELOAD='%s/failevent.so' RLT_FAIL_EVENT=%s "
             "ASAN_OPTIONS='%s%sverify_asan_link_order=0' %s %s -f -c '%s' 2>'%s'",
             d.dir, d.dir, mode, asan, *asan ? ":" : "", wrapper, bin, d.config, d.log);
    int status = system(cmd);
    FILE *f = fopen(d.log, "r");
    size_t n = f ? fread(log, 1, len - 1, f) : 0;
    log[n] = '\0';
    if (f)
        fclose(f);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
    ck_assert_int_eq(system(cmd), 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* evsignal_new failing is a clean exit 1 with a reason (the old daemon passed its NULL
   to event_add and died of SIGSEGV). */
START_TEST(signals_that_cannot_be_watched) {
    char log[8192];
    int status = run_with_failing_events("signal", log, sizeof(log));
    ck_assert_msg(status == 1, "exit status %d; log:\n%s", status, log);
    ck_assert_msg(strstr(log, "cannot watch signal"), "log:\n%s", log);
}
END_TEST

/* No sweep timer: a clean exit 1 that says why (the old engine left err unwritten and
   main.c logged an uninitialised buffer). */
START_TEST(a_sweep_timer_that_cannot_be_made) {
    char log[8192];
    int status = run_with_failing_events("timer", log, sizeof(log));
    ck_assert_msg(status == 1, "exit status %d; log:\n%s", status, log);
    ck_assert_msg(strstr(log, "cannot create the timer that sweeps expired keys"), "log:\n%s", log);
}
END_TEST

static Suite *daemon_suite(void) {
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("end to end");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fixed_window_admits_exactly_the_limit);
    tcase_add_test(tc, peek_consumes_nothing_and_reset_clears);
    tcase_add_test(tc, adjust_charges_and_gives_back);
    tcase_add_test(tc, token_bucket_and_gcra_figures);
    tcase_add_test(tc, sliding_counter_admits_the_limit);
    tcase_add_test(tc, multi_rate_policy_consumes_all_or_nothing);
    tcase_add_test(tc, multi_check_is_all_or_nothing);
    tcase_add_test(tc, errors_name_the_problem);
    tcase_add_test(tc, exempt_block_override_shadow);
    tcase_add_test(tc, pipelines_a_thousand_requests);
    tcase_add_test(tc, bad_frames_get_an_error_and_a_close);
    tcase_add_test(tc, a_client_that_disconnects_mid_frame_harms_nobody);
    tcase_add_test(tc, reset_needs_an_admin_listener);
    tcase_add_test(tc, a_client_that_never_reads_is_dropped);
    tcase_add_test(tc, max_connections_refuses_with_busy);
    tcase_add_test(tc, idle_connections_are_closed);
    tcase_add_test(tc, sighup_reloads_and_keeps_counters);
    tcase_add_test(tc, sigterm_unlinks_the_socket);
    tcase_add_test(tc, adjust_cannot_reset_or_lock_a_key);
    suite_add_tcase(s, tc);
    TCase *alone = tcase_create("own daemon");
    tcase_set_timeout(alone, 120);
    tcase_add_test(alone, charged_keys_expire_within_two_windows);
    tcase_add_test(alone, check_config_refuses_what_the_daemon_refuses);
    tcase_add_test(alone, verbose_survives_a_reload);
    tcase_add_test(alone, signals_that_cannot_be_watched);
    tcase_add_test(alone, a_sweep_timer_that_cannot_be_made);
    suite_add_tcase(s, alone);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(daemon_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
