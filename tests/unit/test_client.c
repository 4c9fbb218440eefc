/*
 * test_client.c: librlimit (clients/c/rlimit.c) against a fake daemon.
 *
 * The fake daemon is a thread serving a temporary Unix socket (or a loopback TCP
 * port) with one scripted behaviour per test: well-formed answers, answers in reverse
 * order, an answer cut mid-frame, a closed connection, a slow server, garbage. It
 * decodes and encodes with the real codec, so what is tested here is the client:
 * sockets, buffering, id matching, timeouts, errors and reconnection.
 */
/* The unit-test rule links libdaemon.a only, not librlimit.a: compile the client in. */
#include "rlimit.c"

#include <arpa/inet.h>
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

/* ---- the fake daemon ---- */

typedef void (*handler_fn)(int fd, int conn_index);

/* One fake daemon: a listening socket and a thread serving `connections` in turn. */
typedef struct fake_server {
    char dir[64];       /* temporary directory of the socket */
    char address[160];  /* address for rl_client_connect */
    int listen_fd;      /* listening socket */
    handler_fn handler; /* what each connection gets */
    int connections;    /* connections to serve before the thread ends */
    pthread_t thread;   /* the serving thread */
} fake_server;

static int reverse_batch = 1; /* h_reverse: how many requests to read before answering */

static void *serve(void *arg) {
    fake_server *s = arg;
    for (int i = 0; i < s->connections; i++) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        s->handler(fd, i);
        close(fd);
    }
    return NULL;
}

static void start_thread(fake_server *s, handler_fn handler, int connections) {
    s->handler = handler;
    s->connections = connections;
    ck_assert_int_eq(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void start_unix(fake_server *s, handler_fn handler, int connections) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(s->dir, "/tmp/rlclient-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", s->dir);
    snprintf(s->address, sizeof(s->address), "unix:%s", sun.sun_path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(s->listen_fd, 0);
    ck_assert_int_eq(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(s->listen_fd, 16), 0);
    start_thread(s, handler, connections);
}

/* Listens on an ephemeral loopback port of family (AF_INET, AF_INET6). 0 if unsupported. */
static int start_tcp(fake_server *s, int family, const char *host, handler_fn handler) {
    struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    s->dir[0] = '\0';
    s->listen_fd = socket(family, SOCK_STREAM, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&ss, len) < 0) {
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        return 0;
    }
    ck_assert_int_eq(listen(s->listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(s->listen_fd, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                       : ((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(s->address, sizeof(s->address), "tcp:%s:%d", host, port);
    start_thread(s, handler, 1);
    return 1;
}

static void stop_server(fake_server *s) {
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    if (s->dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/sock", s->dir);
        unlink(path);
        rmdir(s->dir);
    }
}

static int read_full(int fd, uint8_t *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void write_full(int fd, const uint8_t *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads one request frame into buf (cap bytes) and decodes it. Returns 0, -1 at EOF. */
static int read_request(int fd, uint8_t *buf, size_t cap, rl_request *req) {
    rl_header hdr;
    rl_status status;
    if (read_full(fd, buf, RL_HEADER_LEN) < 0)
        return -1;
    ck_assert_int_eq(rl_header_read(buf, RL_HEADER_LEN, (uint32_t)cap, &hdr, &status), RL_OK);
    ck_assert_int_eq(read_full(fd, buf + RL_HEADER_LEN, hdr.length + 4 - RL_HEADER_LEN), 0);
    ck_assert_int_eq(rl_request_decode(buf, hdr.length + 4, req, &status), RL_OK);
    return 0;
}

/* The fake decision for one item: the policy name picks the answer. */
static rl_result decide(const rl_item *it) {
    rl_result r = {.status = RL_ST_ALLOWED, .limit = 100, .window_ms = 60000};
    r.remaining = (uint32_t)(it->cost < 0 ? -it->cost : it->cost); /* cost echoed back */
    r.reset_after_ms = it->key_len;                                /* key length echoed */
    if (it->policy_len == 4 && memcmp(it->policy, "deny", 4) == 0) {
        r.status = RL_ST_DENIED;
        r.retry_after_ms = 1200;
        r.flags = RL_FLAG_CACHED;
    } else if (it->policy_len == 7 && memcmp(it->policy, "unknown", 7) == 0) {
        r = (rl_result){.status = RL_ST_UNKNOWN_POLICY};
    } else if (it->policy_len == 9 && memcmp(it->policy, "malformed", 9) == 0) {
        r = (rl_result){.status = RL_ST_MALFORMED};
    }
    return r;
}

#define FAKE_LEASE 0xFEDCBA9876543210ULL /* above 2^63: all 64 bits must survive */

static int policy_is(const rl_item *it, const char *name) {
    return it->policy_len == strlen(name) && memcmp(it->policy, name, it->policy_len) == 0;
}

/* The fake lease answer: ACQUIRE allowed gets FAKE_LEASE plus the request flags (so
   DETACH shows), RELEASE and RENEW echo the lease named, or LEASE_UNKNOWN for policy
   "gone"; LEASES echoes policy and key as text. */
static void lease_answer(const rl_request *req, rl_response *resp, char *text, size_t cap) {
    const rl_item *it = &req->items[0];
    if (req->opcode == RL_OP_LEASES) {
        int n = snprintf(text, cap, "{\"policy\":\"%.*s\",\"key\":\"%.*s\",\"cost\":%d}",
                         it->policy_len, it->policy, it->key_len, it->key, (int)it->cost);
        resp->text = text;
        resp->text_len = (uint32_t)n;
        return;
    }
    resp->result = decide(it);
    if (req->opcode == RL_OP_ACQUIRE)
        resp->lease = resp->result.status == RL_ST_ALLOWED ? FAKE_LEASE + req->flags : 0;
    else if (policy_is(it, "gone"))
        resp->result = (rl_result){.status = RL_ST_LEASE_UNKNOWN};
    if (req->opcode != RL_OP_ACQUIRE)
        resp->lease = req->lease;
}

/* Encodes the fake daemon's answer to req into out. Returns its size. */
static size_t answer(const rl_request *req, uint8_t *out, size_t cap) {
    static char text[512];
    rl_response resp = {.id = req->id, .opcode = req->opcode};
    if ((req->opcode >= RL_OP_ACQUIRE && req->opcode <= RL_OP_RENEW) ||
        req->opcode == RL_OP_LEASES) {
        lease_answer(req, &resp, text, sizeof(text));
    } else if (req->opcode == RL_OP_MULTI_CHECK) {
        resp.item_count = req->item_count;
        for (int i = 0; i < req->item_count; i++)
            resp.items[i] = decide(&req->items[i]);
        resp.result = resp.items[req->item_count - 1];
    } else if (req->opcode >= RL_OP_POLICIES) {
        int n = snprintf(text, sizeof(text), "{\"opcode\":%d,\"policy\":\"%.*s\",\"n\":%d}",
                         req->opcode, req->item_count ? req->items[0].policy_len : 0,
                         req->item_count ? req->items[0].policy : "",
                         req->item_count ? (int)req->items[0].cost : -1);
        resp.text = text;
        resp.text_len = (uint32_t)n;
    } else if (req->item_count) {
        resp.result = decide(&req->items[0]);
    }
    size_t n = rl_response_encode(&resp, out, cap);
    ck_assert_uint_gt(n, 0);
    return n;
}

/* Answers every request at once, in order. */
static void h_echo(int fd, int conn_index) {
    uint8_t in[70000], out[1024];
    rl_request req;
    (void)conn_index;
    while (read_request(fd, in, sizeof(in), &req) == 0)
        write_full(fd, out, answer(&req, out, sizeof(out)));
}

/* Reads reverse_batch requests, then answers them last first. */
static void h_reverse(int fd, int conn_index) {
    static uint8_t in[512], out[4096][64];
    static size_t lens[4096];
    rl_request req;
    (void)conn_index;
    for (;;) {
        for (int i = 0; i < reverse_batch; i++) {
            if (read_request(fd, in, sizeof(in), &req) < 0)
                return;
            lens[i] = answer(&req, out[i], sizeof(out[i]));
        }
        for (int i = reverse_batch - 1; i >= 0; i--)
            write_full(fd, out[i], lens[i]);
    }
}

/* Answers in order, one byte per write: the client must put frames together. */
static void h_trickle(int fd, int conn_index) {
    uint8_t in[512], out[1024];
    rl_request req;
    (void)conn_index;
    while (read_request(fd, in, sizeof(in), &req) == 0) {
        size_t n = answer(&req, out, sizeof(out));
        for (size_t i = 0; i < n; i++) {
            write_full(fd, out + i, 1);
            usleep(100);
        }
    }
}

/* Answers half a frame, then closes. */
static void h_cut(int fd, int conn_index) {
    uint8_t in[512], out[1024];
    rl_request req;
    (void)conn_index;
    if (read_request(fd, in, sizeof(in), &req) == 0)
        write_full(fd, out, answer(&req, out, sizeof(out)) / 2);
}

/* First connection: reads a request and closes without answering; then echoes. */
static void h_close_then_echo(int fd, int conn_index) {
    uint8_t in[512];
    rl_request req;
    if (conn_index > 0)
        h_echo(fd, conn_index);
    else
        (void)read_request(fd, in, sizeof(in), &req);
}

/* First connection: closed at once, before any request; then echoes. */
static void h_idle_close_then_echo(int fd, int conn_index) {
    if (conn_index > 0)
        h_echo(fd, conn_index);
}

/* Reads a request, answers nothing for 600 ms, then closes. */
static void h_slow(int fd, int conn_index) {
    uint8_t in[512];
    rl_request req;
    (void)conn_index;
    if (read_request(fd, in, sizeof(in), &req) == 0)
        usleep(600 * 1000);
}

/* Answers with protocol version 2. */
static void h_bad_version(int fd, int conn_index) {
    uint8_t in[512], out[1024];
    rl_request req;
    (void)conn_index;
    if (read_request(fd, in, sizeof(in), &req) == 0) {
        size_t n = answer(&req, out, sizeof(out));
        out[4] = 2;
        write_full(fd, out, n);
        (void)read(fd, in, 1); /* until the client hangs up */
    }
}

/* Answers with a request id nobody asked for. */
static void h_wrong_id(int fd, int conn_index) {
    uint8_t in[512], out[1024];
    rl_request req;
    (void)conn_index;
    if (read_request(fd, in, sizeof(in), &req) == 0) {
        req.id += 1000;
        write_full(fd, out, answer(&req, out, sizeof(out)));
        (void)read(fd, in, 1);
    }
}

/* Reads the start of the first request, then closes while the client still writes. */
static void h_close_mid_request(int fd, int conn_index) {
    uint8_t in[100];
    (void)conn_index;
    (void)read_full(fd, in, sizeof(in));
}

static rl_client *connect_ok(const char *address, int timeout_ms) {
    char err[256] = "";
    rl_client *c = rl_client_connect(address, timeout_ms, err, sizeof(err));
    ck_assert_msg(c != NULL, "connect %s: %s", address, err);
    return c;
}

/* ---- tests ---- */

START_TEST(test_check_peek_adjust_reset) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 3, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.limit, 100);
    ck_assert_uint_eq(r.remaining, 3);
    ck_assert_uint_eq(r.reset_after_ms, 5);
    ck_assert_uint_eq(r.window_ms, 60000);
    ck_assert_int_eq(rl_client_peek(c, "api", "ab", 1, &r), RLC_OK);
    ck_assert_uint_eq(r.reset_after_ms, 2);
    ck_assert_int_eq(rl_client_adjust(c, "api", "user1", -7, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 7);
    ck_assert_int_eq(rl_client_reset(c, "api", "user1", &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_int_eq(rl_client_ping(c, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_OK);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_status_errors_are_ok) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "deny", "user1", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.retry_after_ms, 1200);
    ck_assert_uint_eq(r.flags, RL_FLAG_CACHED);
    ck_assert_int_eq(rl_client_check(c, "unknown", "user1", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_UNKNOWN_POLICY);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_OK); /* still usable */
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_closing_status_reconnects) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_echo, 2);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "malformed", "k", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_MALFORMED);
    ck_assert_int_eq(rl_client_fd(c), -1); /* the daemon closes after such a status */
    ck_assert_int_eq(rl_client_check(c, "api", "k", 2, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 2);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_multi_check) {
    fake_server s;
    rl_response resp;
    rl_item items[3] = {
        {.cost = 1, .policy = "api", .policy_len = 3, .key = "a", .key_len = 1},
        {.cost = 2, .policy = "deny", .policy_len = 4, .key = "\0\xff", .key_len = 2},
        {.cost = 3, .policy = "api", .policy_len = 3, .key = "ccc", .key_len = 3},
    };
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_multi_check(c, items, 3, &resp), RLC_OK);
    ck_assert_int_eq(resp.item_count, 3);
    ck_assert_int_eq(resp.items[1].status, RL_ST_DENIED);
    ck_assert_uint_eq(resp.items[1].reset_after_ms, 2); /* a binary key of 2 bytes */
    ck_assert_uint_eq(resp.items[2].remaining, 3);
    ck_assert_int_eq(rl_client_multi_check(c, items, 0, &resp), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_multi_check(c, items, 17, &resp), RLC_ERR_ARG);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_admin_text) {
    fake_server s;
    rl_result r;
    char *text = NULL;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_admin(c, RL_OP_POLICIES, NULL, 0, &text, &r), RLC_OK);
    ck_assert_str_eq(text, "{\"opcode\":32,\"policy\":\"\",\"n\":-1}");
    free(text);
    ck_assert_int_eq(rl_client_admin(c, RL_OP_TOP, "api", 7, &text, &r), RLC_OK);
    ck_assert_str_eq(text, "{\"opcode\":34,\"policy\":\"api\",\"n\":7}");
    free(text);
    ck_assert_int_eq(rl_client_admin(c, RL_OP_TOP, NULL, 5, &text, NULL), RLC_OK);
    ck_assert_str_eq(text, "{\"opcode\":34,\"policy\":\"\",\"n\":5}");
    free(text);
    ck_assert_int_eq(rl_client_admin(c, RL_OP_CHECK, NULL, 0, &text, &r), RLC_ERR_ARG);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_lease_calls) {
    fake_server s;
    rl_result r;
    uint64_t lease = 7;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_acquire(c, "uploads", "user1", 3, 0, &r, &lease), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.remaining, 3); /* the slots went as the item's cost */
    ck_assert(lease == FAKE_LEASE);    /* no DETACH flag */
    ck_assert_int_eq(rl_client_acquire(c, "uploads", "user1", 1, 1, &r, &lease), RLC_OK);
    ck_assert(lease == FAKE_LEASE + RL_REQ_DETACH);
    ck_assert_int_eq(rl_client_acquire(c, "deny", "user1", 1, 1, &r, &lease), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.retry_after_ms, 1200);
    ck_assert(lease == 0);
    ck_assert_int_eq(rl_client_release(c, "uploads", "user1", UINT64_MAX, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_OK);
    ck_assert_uint_eq(r.remaining, 0); /* cost 0 on the wire */
    ck_assert_int_eq(rl_client_release(c, "gone", "user1", 42, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_eq(rl_client_renew(c, "uploads", "ab", FAKE_LEASE, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_OK);
    ck_assert_uint_eq(r.reset_after_ms, 2); /* the key went along */
    ck_assert_int_eq(rl_client_renew(c, "gone", "ab", 1, &r), RLC_OK);
    ck_assert_int_eq(r.status, RL_ST_LEASE_UNKNOWN);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

/* RELEASE with the longest key the wire allows: the lease field is counted in the frame. */
START_TEST(test_release_longest_key) {
    fake_server s;
    rl_result r;
    static char key[RL_MAX_KEY_LEN + 1];
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    memset(key, 'k', RL_MAX_KEY_LEN);
    ck_assert_int_eq(rl_client_release(c, "uploads", key, 9, &r), RLC_OK);
    ck_assert_uint_eq(r.reset_after_ms, RL_MAX_KEY_LEN);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_leases_text) {
    fake_server s;
    rl_result r;
    char *text = NULL;
    uint64_t lease;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_leases(c, "uploads", "user1", &text, &r), RLC_OK);
    ck_assert_str_eq(text, "{\"policy\":\"uploads\",\"key\":\"user1\",\"cost\":0}");
    free(text);
    ck_assert_int_eq(rl_client_leases(c, "uploads", NULL, &text, NULL), RLC_OK);
    ck_assert_str_eq(text, "{\"policy\":\"uploads\",\"key\":\"\",\"cost\":0}");
    free(text);
    ck_assert_int_eq(rl_client_leases(c, "uploads", "k", NULL, &r), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_acquire(c, "uploads", "k", 1, 0, &r, NULL), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_acquire(c, "uploads", "k", 1, 0, NULL, &lease), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_release(c, "uploads", NULL, 1, &r), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_renew(c, "uploads", "k", 1, NULL), RLC_ERR_ARG);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

static void fill_checks(rl_request *reqs, size_t n, char keys[][16]) {
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(keys[i], 16, "key-%zu", i);
        reqs[i] = (rl_request){.opcode = RL_OP_CHECK, .item_count = 1};
        reqs[i].items[0] = (rl_item){.cost = i + 1,
                                     .policy = "api",
                                     .policy_len = 3,
                                     .key = keys[i],
                                     .key_len = (uint16_t)len};
    }
}

START_TEST(test_batch_out_of_order) {
    enum { N = 64 };
    static rl_request reqs[N];
    static rl_response out[N];
    static char keys[N][16];
    fake_server s;
    reverse_batch = N;
    fill_checks(reqs, N, keys);
    start_unix(&s, h_reverse, 1);
    rl_client *c = connect_ok(s.address, 2000);
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(rl_client_batch(c, reqs, N, out), RLC_OK);
        for (size_t i = 0; i < N; i++)
            ck_assert_uint_eq(out[i].result.remaining, i + 1); /* matched by id */
    }
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_big_pipelined_batch) {
    enum { N = 20000 };
    static rl_request reqs[N];
    static rl_response out[N];
    static char keys[N][16];
    fake_server s;
    fill_checks(reqs, N, keys);
    reqs[N / 2].opcode = RL_OP_STATS; /* an admin answer in the middle keeps its text */
    reqs[N / 2].item_count = 0;
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 30000); /* generous: valgrind is slow */
    ck_assert_int_eq(rl_client_batch(c, reqs, N, out), RLC_OK);
    for (size_t i = 0; i < N; i++)
        if (i != N / 2)
            ck_assert_uint_eq(out[i].result.remaining, i + 1);
    ck_assert_str_eq(out[N / 2].text, "{\"opcode\":33,\"policy\":\"\",\"n\":-1}");
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_trickled_answers) {
    fake_server s;
    rl_result r;
    char *text;
    start_unix(&s, h_trickle, 1);
    rl_client *c = connect_ok(s.address, 5000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 4, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 4);
    ck_assert_int_eq(rl_client_admin(c, RL_OP_STATS, NULL, 0, &text, &r), RLC_OK);
    ck_assert_str_eq(text, "{\"opcode\":33,\"policy\":\"\",\"n\":-1}");
    free(text);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_answer_cut_mid_frame) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_cut, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_CLOSED);
    ck_assert_int_eq(rl_client_fd(c), -1);
    stop_server(&s); /* nobody listens now */
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_CONNECT);
    ck_assert_ptr_nonnull(strstr(rl_client_error(c), "cannot connect"));
    rl_client_close(c);
}
END_TEST

START_TEST(test_closed_then_reconnects) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_close_then_echo, 2);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_CLOSED);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 9, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 9);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_idle_close_reconnects_first) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_idle_close_then_echo, 2);
    rl_client *c = connect_ok(s.address, 2000);
    /* Waits until the daemon has closed the idle connection: the client's socket reads EOF. */
    struct pollfd pfd = {.fd = rl_client_fd(c), .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    char byte;
    ck_assert_int_eq(recv(pfd.fd, &byte, 1, MSG_PEEK), 0);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 8, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 8);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_timeout) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_slow, 1);
    rl_client *c = connect_ok(s.address, 2000);
    rl_client_set_timeout(c, 150);
    int64_t start = now_ms();
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_TIMEOUT);
    int64_t took = now_ms() - start;
    ck_assert_msg(took >= 145 && took < 500, "timed out after %lld ms", (long long)took);
    ck_assert_str_eq(rl_client_errstr(RLC_ERR_TIMEOUT), "timed out");
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_protocol_errors) {
    fake_server s;
    rl_result r;
    start_unix(&s, h_bad_version, 1);
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_PROTOCOL);
    rl_client_close(c);
    stop_server(&s);
    start_unix(&s, h_wrong_id, 1);
    c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 1, &r), RLC_ERR_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(rl_client_error(c), "unexpected answer"));
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_no_sigpipe) {
    enum { N = 20000 };
    static rl_request reqs[N];
    static rl_response out[N];
    static char keys[N][16];
    fake_server s;
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
    fill_checks(reqs, N, keys);
    start_unix(&s, h_close_mid_request, 1);
    rl_client *c = connect_ok(s.address, 2000);
    int rc = rl_client_batch(c, reqs, N, out);
    ck_assert_msg(rc == RLC_ERR_CLOSED, "batch gave %d (%s)", rc, rl_client_error(c));
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_bad_arguments) {
    fake_server s;
    rl_result r;
    char key[70000];
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    ck_assert_int_eq(rl_client_check(c, "api", key, 1, &r), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_check(c, NULL, "k", 1, &r), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_check(c, "api", "k", 1, NULL), RLC_ERR_ARG);
    memset(key, 'p', 256);
    key[256] = '\0';
    ck_assert_int_eq(rl_client_check(c, key, "k", 1, &r), RLC_ERR_ARG);
    key[255] = '\0'; /* 255 bytes: the longest policy name */
    ck_assert_int_eq(rl_client_check(c, key, "k", 1, &r), RLC_OK);
    ck_assert_int_eq(rl_client_check(c, "api", "k", 1, &r), RLC_OK); /* still connected */
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_connect_errors) {
    char err[256];
    ck_assert_ptr_null(rl_client_connect("unix:/nonexistent/rlimitd.sock", 500, err, 256));
    ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
    ck_assert_ptr_null(rl_client_connect("http:127.0.0.1:80", 500, err, sizeof(err)));
    ck_assert_msg(strstr(err, "expected unix:PATH or tcp:HOST:PORT") != NULL, "%s", err);
    ck_assert_ptr_null(rl_client_connect("tcp:127.0.0.1", 500, err, sizeof(err)));
    ck_assert_ptr_null(rl_client_connect("tcp:[::1:80", 500, err, sizeof(err)));
    ck_assert_ptr_null(rl_client_connect("tcp::80", 500, err, sizeof(err)));
    ck_assert_ptr_null(rl_client_connect(NULL, 500, NULL, 0));
    /* a loopback port nobody listens on: refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    char address[64];
    snprintf(address, sizeof(address), "tcp:127.0.0.1:%d", ntohs(sin.sin_port));
    ck_assert_ptr_null(rl_client_connect(address, 500, err, sizeof(err)));
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);
    close(fd);
}
END_TEST

static void check_tcp(int family, const char *host) {
    fake_server s;
    rl_result r;
    if (!start_tcp(&s, family, host, h_echo))
        return; /* no such loopback here (IPv6 disabled) */
    rl_client *c = connect_ok(s.address, 2000);
    ck_assert_int_eq(rl_client_check(c, "api", "user1", 6, &r), RLC_OK);
    ck_assert_uint_eq(r.remaining, 6);
    rl_client_close(c);
    stop_server(&s);
}

START_TEST(test_tcp) {
    check_tcp(AF_INET, "127.0.0.1");
    check_tcp(AF_INET, "localhost"); /* a name: every address it has is tried */
    check_tcp(AF_INET6, "[::1]");
}
END_TEST

START_TEST(test_non_blocking_api) {
    fake_server s;
    uint8_t frame[64];
    rl_request req = {.opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = (rl_item){.cost = 5, .policy = "api", .policy_len = 3, .key = "k", .key_len = 1};
    size_t len = rl_request_encode(&req, frame, sizeof(frame));
    start_unix(&s, h_echo, 1);
    rl_client *c = connect_ok(s.address, 2000);
    for (uint32_t id = 100; id < 110; id++)
        ck_assert_int_eq(rl_client_queue_frame(c, frame, len, id), RLC_OK);
    uint32_t queued_id = 0;
    ck_assert_int_eq(rl_client_queue(c, &req, &queued_id), RLC_OK);
    ck_assert_uint_eq(rl_client_unsent(c), 11 * len);
    ck_assert_int_eq(rl_client_queue_frame(c, frame, 4, 1), RLC_ERR_ARG);
    ck_assert_int_eq(rl_client_flush(c), RLC_OK);
    ck_assert_uint_eq(rl_client_unsent(c), 0);
    uint32_t want = 100;
    rl_response resp;
    while (want <= 110) {
        struct pollfd pfd = {.fd = rl_client_fd(c), .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
        ck_assert_int_ge(rl_client_receive(c), RLC_OK);
        while (rl_client_next(c, &resp) == RLC_OK) {
            ck_assert_uint_eq(resp.id, want == 110 ? queued_id : want);
            ck_assert_uint_eq(resp.result.remaining, 5);
            want++;
        }
    }
    ck_assert_int_eq(rl_client_next(c, &resp), RLC_AGAIN);
    ck_assert_int_eq(rl_client_receive(c), RLC_AGAIN);
    rl_client_close(c);
    stop_server(&s);
}
END_TEST

START_TEST(test_errstr) {
    int codes[] = {RLC_OK,         RLC_AGAIN,  RLC_ERR_ARG,      RLC_ERR_CONNECT, RLC_ERR_TIMEOUT,
                   RLC_ERR_CLOSED, RLC_ERR_IO, RLC_ERR_PROTOCOL, RLC_ERR_NOMEM};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        ck_assert_str_ne(rl_client_errstr(codes[i]), "unknown error");
    ck_assert_str_eq(rl_client_errstr(42), "unknown error");
    ck_assert_str_eq(rl_client_error(NULL), "");
}
END_TEST

static Suite *client_suite(void) {
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("fake daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_check_peek_adjust_reset);
    tcase_add_test(tc, test_status_errors_are_ok);
    tcase_add_test(tc, test_closing_status_reconnects);
    tcase_add_test(tc, test_multi_check);
    tcase_add_test(tc, test_admin_text);
    tcase_add_test(tc, test_lease_calls);
    tcase_add_test(tc, test_release_longest_key);
    tcase_add_test(tc, test_leases_text);
    tcase_add_test(tc, test_batch_out_of_order);
    tcase_add_test(tc, test_big_pipelined_batch);
    tcase_add_test(tc, test_trickled_answers);
    tcase_add_test(tc, test_answer_cut_mid_frame);
    tcase_add_test(tc, test_closed_then_reconnects);
    tcase_add_test(tc, test_idle_close_reconnects_first);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_protocol_errors);
    tcase_add_test(tc, test_no_sigpipe);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_connect_errors);
    tcase_add_test(tc, test_tcp);
    tcase_add_test(tc, test_non_blocking_api);
    tcase_add_test(tc, test_errstr);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(client_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
