/*
 * rlimit.c: the C client of rlimitd (see rlimit.h).
 *
 *   caller -> rl_client_queue* -> send queue --flush--> socket
 *   socket --receive--> receive buffer -> rl_client_next -> caller
 *
 * The socket is always non-blocking; blocking calls are the same steps driven by
 * poll() against a deadline. Frames are encoded and decoded by the pure codec
 * (proto/rlproto.h); this file only moves bytes and matches request ids.
 */
#include "rlimit.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

#define READ_CHUNK 65536                 /* bytes asked of each read() at least */
#define MAX_RESPONSE (64u * 1024 * 1024) /* a larger response frame is a protocol error */

/* A byte buffer: data[start, start + len) holds what is not consumed yet. */
typedef struct byte_buf {
    uint8_t *data; /* storage */
    size_t start;  /* first unconsumed byte */
    size_t len;    /* unconsumed bytes */
    size_t cap;    /* bytes of storage */
} byte_buf;

struct rl_client {
    int fd;                 /* the socket (non-blocking), -1 once closed */
    char *address;          /* as given to rl_client_connect, for reconnecting */
    int connect_timeout_ms; /* bound of each (re)connection; <= 0: none */
    int timeout_ms;         /* bound of each blocking call; <= 0: none */
    uint32_t next_id;       /* request id of the next queued request */
    byte_buf out;           /* encoded frames not written yet */
    byte_buf in;            /* bytes read, not decoded yet */
    char **texts;           /* admin texts handed out by the last blocking call */
    size_t text_count;      /* texts used */
    size_t text_cap;        /* texts allocated */
    char error[256];        /* detail of the last error */
    char *token;            /* sent by AUTH on every new connection, or NULL */
    size_t token_len;       /* bytes of token */
};

/* ---- byte buffers ---- */

/* Makes room for n more bytes after the unconsumed ones. */
static int buf_reserve(byte_buf *b, size_t n) {
    if (b->cap - b->start - b->len >= n)
        return RLC_OK;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        if (b->cap - b->len >= n)
            return RLC_OK;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        return RLC_ERR_NOMEM;
    b->data = data;
    b->cap = cap;
    return RLC_OK;
}

static uint8_t *buf_tail(byte_buf *b) {
    return b->data + b->start + b->len;
}

static void buf_consume(byte_buf *b, size_t n) {
    b->start += n;
    b->len -= n;
    if (b->len == 0)
        b->start = 0;
}

static void buf_clear(byte_buf *b) {
    b->start = 0;
    b->len = 0;
}

/* ---- errors and time ---- */

static void format_error(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void format_error(char *err, size_t errlen, const char *fmt, va_list ap) {
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
}

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_error(err, errlen, fmt, ap);
    va_end(ap);
}

static void close_socket(rl_client *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_clear(&c->in);
    buf_clear(&c->out);
}

/* Records the detail of an error and returns code; errors of the connection close it. */
static int fail(rl_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(rl_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_error(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    if (code != RLC_ERR_ARG && code != RLC_ERR_NOMEM)
        close_socket(c);
    return code;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline timeout_ms from now, or -1 for none. */
static int64_t deadline_after(int timeout_ms) {
    return timeout_ms > 0 ? now_ms() + timeout_ms : -1;
}

/* Waits for events on fd until deadline. Returns the revents, 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, int64_t deadline) {
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left < 0)
            left = 0;
        int n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return pfd.revents;
        if (n == 0 && deadline >= 0 && now_ms() >= deadline)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- connecting ---- */

static int set_socket_options(int fd, int is_tcp) {
    int one = 1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
    if (is_tcp)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

/* Connects a new non-blocking socket to sa before deadline. Returns the fd or -1. */
static int connect_addr(const struct sockaddr *sa, socklen_t salen, int64_t deadline, char *err,
                        size_t errlen) {
    int fd = socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0 || set_socket_options(fd, sa->sa_family != AF_UNIX) < 0) {
        set_error(err, errlen, "socket: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (connect(fd, sa, salen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR) { /* EAGAIN: a Unix backlog is full */
        set_error(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    int ready = wait_fd(fd, POLLOUT, deadline);
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (ready > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && !so_error)
        return fd;
    set_error(err, errlen, "%s",
              ready == 0 ? "connection timed out" : strerror(so_error ? so_error : errno));
    close(fd);
    return -1;
}

static int connect_unix(const char *path, int64_t deadline, char *err, size_t errlen) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) == 0 || strlen(path) >= sizeof(sun.sun_path)) {
        set_error(err, errlen, "bad socket path");
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    return connect_addr((struct sockaddr *)&sun, sizeof(sun), deadline, err, errlen);
}

/* Splits "HOST:PORT" or "[V6]:PORT" (hostport.h) into host and port (copies). Returns
 * 0, or -1 with a message in err. */
static int split_host_port(const char *spec, char *host, size_t hostlen, char *port, size_t portlen,
                           char *err, size_t errlen) {
    rl_hostport hp;
    rl_hostport_status status = rl_hostport_parse(spec, strlen(spec), 0, &hp);
    if (status != RL_HOSTPORT_OK) {
        set_error(err, errlen, "expected tcp:HOST:PORT: %s", rl_hostport_error(status, 0));
        return -1;
    }
    if (hp.host_len >= hostlen) {
        set_error(err, errlen, "expected tcp:HOST:PORT: the host is too long");
        return -1;
    }
    memcpy(host, hp.host, hp.host_len);
    host[hp.host_len] = '\0';
    snprintf(port, portlen, "%u", (unsigned)hp.port);
    return 0;
}

static int connect_tcp(const char *spec, int64_t deadline, char *err, size_t errlen) {
    char host[256], port[8];
    if (split_host_port(spec, host, sizeof(host), port, sizeof(port), err, errlen) < 0)
        return -1;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        set_error(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next)
        fd = connect_addr(ai->ai_addr, ai->ai_addrlen, deadline, err, errlen);
    freeaddrinfo(list);
    return fd;
}

/* Opens a connection to address. Returns the fd, or -1 with a message in err. */
static int open_address(const char *address, int timeout_ms, char *err, size_t errlen) {
    int64_t deadline = deadline_after(timeout_ms);
    char detail[200] = "";
    int fd;
    if (strncmp(address, "unix:", 5) == 0)
        fd = connect_unix(address + 5, deadline, detail, sizeof(detail));
    else if (strncmp(address, "tcp:", 4) == 0)
        fd = connect_tcp(address + 4, deadline, detail, sizeof(detail));
    else {
        fd = -1;
        snprintf(detail, sizeof(detail), "expected unix:PATH or tcp:HOST:PORT");
    }
    if (fd < 0)
        set_error(err, errlen, "cannot connect to %s: %s", address, detail);
    return fd;
}

rl_client *rl_client_connect(const char *address, int timeout_ms, char *err, size_t errlen) {
    if (!address) {
        set_error(err, errlen, "no address");
        return NULL;
    }
    int fd = open_address(address, timeout_ms, err, errlen);
    if (fd < 0)
        return NULL;
    rl_client *c = calloc(1, sizeof(*c));
    char *copy = strdup(address);
    if (!c || !copy) {
        set_error(err, errlen, "out of memory");
        free(c);
        free(copy);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->address = copy;
    c->connect_timeout_ms = timeout_ms;
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    return c;
}

static void free_texts(rl_client *c) {
    for (size_t i = 0; i < c->text_count; i++)
        free(c->texts[i]);
    c->text_count = 0;
}

void rl_client_close(rl_client *c) {
    if (!c)
        return;
    close_socket(c);
    free_texts(c);
    free(c->texts);
    free(c->in.data);
    free(c->out.data);
    free(c->address);
    if (c->token)
        explicit_bzero(c->token, c->token_len);
    free(c->token);
    free(c);
}

void rl_client_set_timeout(rl_client *c, int timeout_ms) {
    c->timeout_ms = timeout_ms;
}

const char *rl_client_errstr(int code) {
    switch (code) {
    case RLC_OK:
        return "ok";
    case RLC_AGAIN:
        return "would block";
    case RLC_ERR_ARG:
        return "invalid argument";
    case RLC_ERR_CONNECT:
        return "cannot connect";
    case RLC_ERR_TIMEOUT:
        return "timed out";
    case RLC_ERR_CLOSED:
        return "connection closed by the daemon";
    case RLC_ERR_IO:
        return "socket error";
    case RLC_ERR_PROTOCOL:
        return "protocol error";
    case RLC_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

const char *rl_client_error(const rl_client *c) {
    return c ? c->error : "";
}

int rl_client_fd(const rl_client *c) {
    return c->fd;
}

/* ---- non-blocking API ---- */

int rl_client_queue(rl_client *c, const rl_request *req, uint32_t *id) {
    rl_request numbered = *req;
    numbered.id = c->next_id;
    size_t need = RL_HEADER_LEN + 2 + RL_LEASE_LEN; /* a multi's count, or a lease */
    for (size_t i = 0; i < req->item_count && i < RL_MAX_ITEMS; i++)
        need += RL_ITEM_FIXED_LEN + req->items[i].policy_len + req->items[i].key_len;
    if (buf_reserve(&c->out, need) != RLC_OK)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    size_t n = rl_request_encode(&numbered, buf_tail(&c->out), need);
    if (n == 0)
        return fail(c, RLC_ERR_ARG, "request does not fit the wire format");
    c->out.len += n;
    if (id)
        *id = c->next_id;
    c->next_id++;
    return RLC_OK;
}

int rl_client_queue_frame(rl_client *c, const uint8_t *frame, size_t len, uint32_t id) {
    if (len < RL_HEADER_LEN)
        return fail(c, RLC_ERR_ARG, "frame shorter than a header");
    if (buf_reserve(&c->out, len) != RLC_OK)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    uint8_t *p = buf_tail(&c->out);
    memcpy(p, frame, len);
    p[8] = (uint8_t)(id >> 24);
    p[9] = (uint8_t)(id >> 16);
    p[10] = (uint8_t)(id >> 8);
    p[11] = (uint8_t)id;
    c->out.len += len;
    return RLC_OK;
}

int rl_client_flush(rl_client *c) {
    if (c->fd < 0)
        return fail(c, RLC_ERR_CLOSED, "not connected");
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.start, c->out.len, SEND_FLAGS);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return RLC_AGAIN;
        } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return fail(c, RLC_ERR_CLOSED, "write: %s", strerror(errno));
        } else {
            return fail(c, RLC_ERR_IO, "write: %s", n < 0 ? strerror(errno) : "wrote nothing");
        }
    }
    return RLC_OK;
}

size_t rl_client_unsent(const rl_client *c) {
    return c->out.len;
}

/* How many bytes the frame at the front of the receive buffer needs (at least a header). */
static size_t pending_frame_len(const byte_buf *b) {
    if (b->len < 4)
        return RL_HEADER_LEN;
    const uint8_t *p = b->data + b->start;
    size_t len = 4 + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
    return len < RL_HEADER_LEN ? RL_HEADER_LEN : len;
}

int rl_client_receive(rl_client *c) {
    if (c->fd < 0)
        return fail(c, RLC_ERR_CLOSED, "not connected");
    size_t want = pending_frame_len(&c->in);
    if (want > MAX_RESPONSE)
        return fail(c, RLC_ERR_PROTOCOL, "response frame of %zu bytes", want);
    size_t room = want > c->in.len + READ_CHUNK ? want - c->in.len : READ_CHUNK;
    if (buf_reserve(&c->in, room) != RLC_OK)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    for (;;) {
        size_t space = c->in.cap - c->in.start - c->in.len;
        ssize_t n = recv(c->fd, buf_tail(&c->in), space, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            return RLC_OK;
        }
        if (n == 0)
            return fail(c, RLC_ERR_CLOSED, "connection closed by the daemon");
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return RLC_AGAIN;
        if (errno != EINTR)
            return fail(c, errno == ECONNRESET ? RLC_ERR_CLOSED : RLC_ERR_IO, "read: %s",
                        strerror(errno));
    }
}

int rl_client_next(rl_client *c, rl_response *out) {
    if (c->in.len < RL_HEADER_LEN)
        return RLC_AGAIN;
    const uint8_t *p = c->in.data + c->in.start;
    size_t frame_len = pending_frame_len(&c->in);
    if (frame_len > MAX_RESPONSE)
        return fail(c, RLC_ERR_PROTOCOL, "response frame of %zu bytes", frame_len);
    if (frame_len > c->in.len)
        return RLC_AGAIN;
    int rc = rl_response_decode(p, frame_len, out);
    if (rc != RL_OK)
        return fail(c, RLC_ERR_PROTOCOL, "malformed response (version %u, opcode 0x%02x)", p[4],
                    p[5]);
    buf_consume(&c->in, frame_len);
    return RLC_OK;
}

/* ---- blocking calls ---- */

/* Closes a connection the daemon ended (or wrote to unasked) while it was idle. */
static void drop_if_stale(rl_client *c) {
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (c->fd >= 0 && c->in.len == 0 && poll(&pfd, 1, 0) > 0)
        close_socket(c);
}

static int send_auth(rl_client *c, rl_result *out);

static int ensure_connected(rl_client *c) {
    drop_if_stale(c);
    if (c->fd >= 0)
        return RLC_OK;
    c->fd = open_address(c->address, c->connect_timeout_ms, c->error, sizeof(c->error));
    if (c->fd < 0)
        return RLC_ERR_CONNECT;
    rl_result r;
    int rc = c->token ? send_auth(c, &r) : RLC_OK;
    if (rc == RLC_OK && c->token && r.status != RL_ST_OK)
        return fail(c, RLC_ERR_CONNECT, "authentication refused: %s", rl_status_name(r.status));
    return rc;
}

/* Keeps a NUL-terminated copy of an admin text until the next call; repoints resp. */
static int keep_text(rl_client *c, rl_response *resp) {
    if (c->text_count == c->text_cap) {
        size_t cap = c->text_cap ? 2 * c->text_cap : 4;
        char **texts = realloc(c->texts, cap * sizeof(*texts));
        if (!texts)
            return RLC_ERR_NOMEM;
        c->texts = texts;
        c->text_cap = cap;
    }
    char *copy = malloc((size_t)resp->text_len + 1);
    if (!copy)
        return RLC_ERR_NOMEM;
    if (resp->text_len)
        memcpy(copy, resp->text, resp->text_len);
    copy[resp->text_len] = '\0';
    c->texts[c->text_count++] = copy;
    resp->text = copy;
    return RLC_OK;
}

/* The state of one blocking call: which answers are in. */
typedef struct call {
    const rl_request *reqs; /* the requests */
    rl_response *out;       /* their answers; opcode 0 marks one not in yet */
    size_t n;               /* requests */
    size_t done;            /* answers in */
    uint32_t first_id;      /* id of reqs[0]; reqs[i] has first_id + i */
    int closes;             /* an answer's status closes the connection */
} call;

/* Files every complete buffered response under its request. */
static int take_answers(rl_client *c, call *k) {
    rl_response resp;
    int rc = RLC_AGAIN;
    while (k->done < k->n && (rc = rl_client_next(c, &resp)) == RLC_OK) {
        size_t i = (size_t)(uint32_t)(resp.id - k->first_id);
        if (i >= k->n || k->out[i].opcode != 0 || resp.opcode != k->reqs[i].opcode)
            return fail(c, RLC_ERR_PROTOCOL, "unexpected answer (id %u, opcode 0x%02x)", resp.id,
                        resp.opcode);
        if (resp.text && keep_text(c, &resp) != RLC_OK)
            return fail(c, RLC_ERR_NOMEM, "out of memory");
        k->out[i] = resp;
        k->closes |= rl_status_closes(resp.result.status);
        k->done++;
    }
    return k->done == k->n ? RLC_OK : (rc == RLC_AGAIN ? RLC_AGAIN : rc);
}

/* Sends and receives until every answer is in or the deadline passes. */
static int run_call(rl_client *c, call *k, int64_t deadline) {
    for (;;) {
        int rc = rl_client_flush(c);
        if (rc < 0)
            return rc;
        rc = take_answers(c, k);
        if (rc != RLC_AGAIN)
            return rc;
        short events = (short)(POLLIN | (c->out.len ? POLLOUT : 0));
        int ready = wait_fd(c->fd, events, deadline);
        if (ready == 0)
            return fail(c, RLC_ERR_TIMEOUT, "no answer within %d ms", c->timeout_ms);
        if (ready < 0)
            return fail(c, RLC_ERR_IO, "poll: %s", strerror(errno));
        if (ready & (POLLIN | POLLHUP | POLLERR)) {
            rc = rl_client_receive(c);
            if (rc < 0)
                return rc;
        }
    }
}

int rl_client_batch(rl_client *c, const rl_request *reqs, size_t n, rl_response *out) {
    if (!c || (n && (!reqs || !out)))
        return RLC_ERR_ARG;
    free_texts(c);
    c->error[0] = '\0';
    int rc = ensure_connected(c);
    if (rc != RLC_OK || n == 0)
        return rc;
    call k = {reqs, out, n, 0, c->next_id, 0};
    size_t queued = c->out.len;
    for (size_t i = 0; i < n; i++) {
        out[i].opcode = 0;
        rc = rl_client_queue(c, &reqs[i], NULL);
        if (rc != RLC_OK) {
            c->out.len = queued; /* send none of them */
            c->next_id = k.first_id;
            return rc;
        }
    }
    rc = run_call(c, &k, deadline_after(c->timeout_ms));
    if (rc == RLC_OK && k.closes)
        close_socket(c);
    return rc;
}

/* One request of one item, with its request flags and lease (RELEASE, RENEW); strings
   are NUL-terminated. */
static int call_lease_item(rl_client *c, const rl_request *head, const char *policy,
                           const char *key, int64_t cost, rl_response *resp) {
    if (!policy || !key || strlen(policy) > RL_MAX_POLICY_LEN || strlen(key) > RL_MAX_KEY_LEN)
        return c ? fail(c, RLC_ERR_ARG, "policy or key missing or too long") : RLC_ERR_ARG;
    rl_request req = *head;
    req.item_count = 1;
    req.items[0] = (rl_item){.cost = cost,
                             .policy = policy,
                             .policy_len = (uint8_t)strlen(policy),
                             .key = key,
                             .key_len = (uint16_t)strlen(key)};
    return rl_client_batch(c, &req, 1, resp);
}

/* One request of one item, no flags; strings are NUL-terminated. */
static int call_item(rl_client *c, uint8_t opcode, const char *policy, const char *key,
                     int64_t cost, rl_response *resp) {
    rl_request head = {.opcode = opcode};
    return call_lease_item(c, &head, policy, key, cost, resp);
}

static int call_result(rl_client *c, uint8_t opcode, const char *policy, const char *key,
                       int64_t cost, rl_result *out) {
    rl_response resp;
    if (!out)
        return RLC_ERR_ARG;
    int rc = call_item(c, opcode, policy, key, cost, &resp);
    if (rc == RLC_OK)
        *out = resp.result;
    return rc;
}

int rl_client_check(rl_client *c, const char *policy, const char *key, uint32_t cost,
                    rl_result *out) {
    return call_result(c, RL_OP_CHECK, policy, key, cost, out);
}

int rl_client_peek(rl_client *c, const char *policy, const char *key, uint32_t cost,
                   rl_result *out) {
    return call_result(c, RL_OP_PEEK, policy, key, cost, out);
}

int rl_client_adjust(rl_client *c, const char *policy, const char *key, int32_t delta,
                     rl_result *out) {
    return call_result(c, RL_OP_ADJUST, policy, key, delta, out);
}

int rl_client_reset(rl_client *c, const char *policy, const char *key, rl_result *out) {
    return call_result(c, RL_OP_RESET, policy, key, 0, out);
}

int rl_client_ping(rl_client *c, rl_result *out) {
    rl_request req = {.opcode = RL_OP_PING};
    rl_response resp;
    if (!out)
        return RLC_ERR_ARG;
    int rc = rl_client_batch(c, &req, 1, &resp);
    if (rc == RLC_OK)
        *out = resp.result;
    return rc;
}

int rl_client_multi_check(rl_client *c, const rl_item *items, size_t n, rl_response *out) {
    if (!items || n == 0 || n > RL_MAX_ITEMS)
        return c ? fail(c, RLC_ERR_ARG, "MULTI_CHECK takes 1 to 16 items") : RLC_ERR_ARG;
    rl_request req = {.opcode = RL_OP_MULTI_CHECK, .item_count = (uint8_t)n};
    memcpy(req.items, items, n * sizeof(*items));
    return rl_client_batch(c, &req, 1, out);
}

/* ACQUIRE, RELEASE or RENEW: fills *out and *lease_out (either may be NULL) on RLC_OK. */
static int call_lease(rl_client *c, const rl_request *head, const char *policy, const char *key,
                      int64_t cost, rl_result *out, uint64_t *lease_out) {
    rl_response resp;
    int rc = call_lease_item(c, head, policy, key, cost, &resp);
    if (rc != RLC_OK)
        return rc;
    if (out)
        *out = resp.result;
    if (lease_out)
        *lease_out = resp.lease;
    return RLC_OK;
}

int rl_client_acquire(rl_client *c, const char *policy, const char *key, uint32_t slots, int detach,
                      rl_result *out, uint64_t *lease) {
    rl_request head = {.opcode = RL_OP_ACQUIRE, .flags = detach ? RL_REQ_DETACH : 0};
    if (!out || !lease)
        return c ? fail(c, RLC_ERR_ARG, "result or lease missing") : RLC_ERR_ARG;
    *lease = 0;
    return call_lease(c, &head, policy, key, slots, out, lease);
}

int rl_client_release(rl_client *c, const char *policy, const char *key, uint64_t lease,
                      rl_result *out) {
    rl_request head = {.opcode = RL_OP_RELEASE, .lease = lease};
    if (!out)
        return c ? fail(c, RLC_ERR_ARG, "result missing") : RLC_ERR_ARG;
    return call_lease(c, &head, policy, key, 0, out, NULL);
}

int rl_client_renew(rl_client *c, const char *policy, const char *key, uint64_t lease,
                    rl_result *out) {
    rl_request head = {.opcode = RL_OP_RENEW, .lease = lease};
    if (!out)
        return c ? fail(c, RLC_ERR_ARG, "result missing") : RLC_ERR_ARG;
    return call_lease(c, &head, policy, key, 0, out, NULL);
}

int rl_client_leases(rl_client *c, const char *policy, const char *key, char **text_out,
                     rl_result *out) {
    rl_response resp;
    if (!c || !text_out)
        return RLC_ERR_ARG;
    *text_out = NULL;
    int rc = call_item(c, RL_OP_LEASES, policy, key ? key : "", 0, &resp);
    if (rc != RLC_OK)
        return rc;
    *text_out = strdup(resp.text ? resp.text : "");
    if (!*text_out)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    if (out)
        *out = resp.result;
    return RLC_OK;
}

static int is_admin(int opcode) {
    return opcode == RL_OP_POLICIES || opcode == RL_OP_STATS || opcode == RL_OP_TOP ||
           opcode == RL_OP_RELOAD;
}

int rl_client_admin(rl_client *c, int opcode, const char *policy, uint32_t n, char **text_out,
                    rl_result *out) {
    rl_response resp;
    if (!c || !text_out || !is_admin(opcode))
        return RLC_ERR_ARG;
    *text_out = NULL;
    int rc = opcode == RL_OP_TOP
                 ? call_item(c, RL_OP_TOP, policy ? policy : "", "", (int64_t)n, &resp)
                 : rl_client_batch(c, &(rl_request){.opcode = (uint8_t)opcode}, 1, &resp);
    if (rc != RLC_OK)
        return rc;
    *text_out = strdup(resp.text ? resp.text : "");
    if (!*text_out)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    if (out)
        *out = resp.result;
    return RLC_OK;
}

/* Sends AUTH with the client's token on the open connection and waits for its answer. */
static int send_auth(rl_client *c, rl_result *out) {
    rl_request req = {.opcode = RL_OP_AUTH, .item_count = 1};
    rl_response resp;
    req.items[0] = (rl_item){.key = c->token, .key_len = (uint16_t)c->token_len};
    call k = {&req, &resp, 1, 0, c->next_id, 0};
    resp.opcode = 0;
    int rc = rl_client_queue(c, &req, NULL);
    if (rc == RLC_OK)
        rc = run_call(c, &k, deadline_after(c->timeout_ms));
    if (rc == RLC_OK && k.closes)
        close_socket(c);
    if (rc == RLC_OK)
        *out = resp.result;
    return rc;
}

int rl_client_auth(rl_client *c, const char *token, size_t len, rl_result *out) {
    if (!c || !token || !out || len == 0 || len > RL_MAX_TOKEN_LEN)
        return c ? fail(c, RLC_ERR_ARG, "a token has 1..%d bytes", RL_MAX_TOKEN_LEN) : RLC_ERR_ARG;
    char *copy = malloc(len);
    if (!copy)
        return fail(c, RLC_ERR_NOMEM, "out of memory");
    memcpy(copy, token, len);
    if (c->token)
        explicit_bzero(c->token, c->token_len);
    free(c->token);
    c->token = copy;
    c->token_len = len;
    free_texts(c);
    c->error[0] = '\0';
    drop_if_stale(c);
    if (c->fd < 0)
        c->fd = open_address(c->address, c->connect_timeout_ms, c->error, sizeof(c->error));
    return c->fd < 0 ? RLC_ERR_CONNECT : send_auth(c, out);
}

char *rl_client_read_token(const char *path, size_t *len, char *err, size_t errlen) {
    char buf[RL_MAX_TOKEN_LEN + 3];
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n' && --n > 0 && buf[n - 1] == '\r')
        n--;
    char *token = n > 0 && n <= RL_MAX_TOKEN_LEN ? malloc(n + 1) : NULL;
    if (token) {
        memcpy(token, buf, n);
        token[n] = '\0';
        *len = n;
    } else {
        set_error(err, errlen, "%s: %s", path,
                  n == 0 || n > RL_MAX_TOKEN_LEN ? "a token has 1..1024 bytes" : "out of memory");
    }
    explicit_bzero(buf, sizeof(buf));
    return token;
}
