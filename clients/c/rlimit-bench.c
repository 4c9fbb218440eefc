/*
 * rlimit-bench: load generator for rlimitd.
 *
 *   rlimit-bench -s ADDR -p POLICY [-c CONNECTIONS] [-d IN_FLIGHT] [-k KEYS] [-t SECONDS]
 *                [-r RATE] [--op check|peek|acquire] [--token-file FILE] [--json]
 *
 * One thread, one epoll loop over every connection. Each connection keeps up to d
 * requests in flight (pipelined). Closed loop (default): an answer lets the next
 * request go. Open loop (-r): requests are due at a fixed total rate, and latency is
 * measured from when a request was due, not when it could be sent, so that a slow
 * daemon is not excused by the bench waiting for it (coordinated omission).
 *
 * Frames are encoded once per key and copied with a fresh request id; writes are
 * batched per loop turn and reads take whatever the socket holds. Latencies go into
 * a log-linear histogram of microseconds (relative error under 1/64).
 *
 * --op acquire measures concurrency leases: a request is an ACQUIRE and, when it is
 * allowed with a lease, a RELEASE of that lease on the same slot; the pair counts as
 * one decision (decisions_per_s is pairs per second) and its latency runs from the
 * ACQUIRE's send to the RELEASE's answer.
 */
#include "rlimit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ADDRESS "unix:/run/rlimitd/rlimitd.sock"
#define CONNECT_TIMEOUT_MS 5000
#define MAX_CONNECTIONS 4096
#define MAX_IN_FLIGHT 65536
#define MAX_WAIT_NS 100000000 /* epoll sleeps at most this long (checks the end) */
/* Open loop: poll instead of sleeping when the next send is this close (a sleep and its
 * wake-up cost more, and wake up to 50 us late). */
#define SPIN_NS 50000

static const char usage_text[] =
    "usage: rlimit-bench -s ADDR -p POLICY [-c CONNECTIONS] [-d IN_FLIGHT] [-k KEYS]\n"
    "                    [-t SECONDS] [-r RATE [--sleep]] [--op check|peek|acquire]\n"
    "                    [--json]\n"
    "\n"
    "  -s ADDR         unix:PATH or tcp:HOST:PORT (default: $RLIMITD_ADDRESS, else\n"
    "                  " DEFAULT_ADDRESS ")\n"
    "  -p POLICY       the policy every request names\n"
    "  -c CONNECTIONS  connections (default 4)\n"
    "  -d IN_FLIGHT    requests in flight per connection, pipelined (default 16)\n"
    "  -k KEYS         distinct keys key-0 .. key-(KEYS-1), chosen uniformly (default 1000)\n"
    "  -t SECONDS      duration (default 10)\n"
    "  -r RATE         open loop at RATE requests/s in total (default: closed loop)\n"
    "  --sleep         open loop: always sleep until the next send, never poll (leaves\n"
    "                  the core to a process sharing it; a send may go out up to the\n"
    "                  kernel's timer slack, ~50 us, late, which counts in its latency)\n"
    "  --op OP         check (default), peek, or acquire: each request is an ACQUIRE of a\n"
    "                  concurrency policy and, when allowed, a RELEASE of its lease; the\n"
    "                  pair counts once: decisions/s (decisions_per_s) is then pairs/s,\n"
    "                  and latency runs from the ACQUIRE's send to the RELEASE's answer\n"
    "  --token-file FILE  authenticate each connection with the token in FILE\n"
    "  --json          print one JSON object\n";

/* ---- histogram: log-linear buckets of microseconds ---- */

#define SUB_BITS 6                               /* 64 linear steps per power of two */
#define SUB_COUNT (1u << SUB_BITS)               /* steps per power of two */
#define BUCKETS (2 * SUB_COUNT + 40 * SUB_COUNT) /* values below 2^47 us */

typedef struct histogram {
    uint64_t counts[BUCKETS]; /* samples per bucket */
    uint64_t total;           /* samples */
    uint64_t max;             /* largest sample */
} histogram;

static unsigned bucket_of(uint64_t us) {
    if (us < 2 * SUB_COUNT)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - SUB_BITS;
    unsigned index =
        2 * SUB_COUNT + (msb - SUB_BITS - 1) * SUB_COUNT + (unsigned)((us >> shift) - SUB_COUNT);
    return index < BUCKETS ? index : BUCKETS - 1;
}

/* The largest value that falls in bucket index. */
static uint64_t bucket_top(unsigned index) {
    if (index < 2 * SUB_COUNT)
        return index;
    unsigned magnitude = (index - 2 * SUB_COUNT) / SUB_COUNT; /* msb - SUB_BITS - 1 */
    unsigned shift = magnitude + 1;
    uint64_t top = SUB_COUNT + (index - 2 * SUB_COUNT) % SUB_COUNT;
    return ((top + 1) << shift) - 1;
}

static void histogram_add(histogram *h, uint64_t us) {
    h->counts[bucket_of(us)]++;
    h->total++;
    if (us > h->max)
        h->max = us;
}

/* The value below which a fraction q of the samples fall (bucket upper bound). */
static uint64_t histogram_quantile(const histogram *h, double q) {
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    uint64_t seen = 0;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return bucket_top(i) < h->max ? bucket_top(i) : h->max;
    }
    return h->max;
}

/* ---- configuration ---- */

typedef struct options {
    const char *address;  /* -s */
    const char *policy;   /* -p */
    uint32_t connections; /* -c */
    uint32_t in_flight;   /* -d */
    uint32_t keys;        /* -k */
    double seconds;       /* -t */
    double rate;          /* -r, 0 for a closed loop */
    uint8_t opcode;       /* --op: RL_OP_CHECK, RL_OP_PEEK or RL_OP_ACQUIRE */
    int json;             /* --json */
    int sleep;            /* --sleep */
    char *token;          /* --token-file: the token read from it, or NULL (owned) */
    size_t token_len;     /* bytes of token */
} options;

static int usage_error(const char *message, const char *what) {
    fprintf(stderr, "rlimit-bench: %s%s\n%s", message, what, usage_text);
    return 2;
}

static int parse_number(const char *text, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static const struct {
    uint8_t opcode;   /* RL_OP_* */
    const char *name; /* as --op names it */
} ops[] = {{RL_OP_CHECK, "check"}, {RL_OP_PEEK, "peek"}, {RL_OP_ACQUIRE, "acquire"}};

/* The opcode --op name asks for, 0 if none. */
static uint8_t op_code(const char *name) {
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].name, name) == 0)
            return ops[i].opcode;
    return 0;
}

static const char *op_name(uint8_t opcode) {
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].opcode == opcode)
            return ops[i].name;
    return "?";
}

/* Applies option arg with value. Returns 0, or -1 if the value is bad. */
static int set_option(options *o, const char *arg, const char *value) {
    double v;
    char err[512];
    if (strcmp(arg, "--token-file") == 0) {
        free(o->token);
        o->token = rl_client_read_token(value, &o->token_len, err, sizeof(err));
        if (!o->token)
            fprintf(stderr, "rlimit-bench: %s\n", err);
        return o->token ? 0 : -1;
    }
    if (strcmp(arg, "-s") == 0)
        o->address = value;
    else if (strcmp(arg, "-p") == 0)
        o->policy = value;
    else if (strcmp(arg, "--op") == 0 && op_code(value))
        o->opcode = op_code(value);
    else if (strcmp(arg, "--op") == 0 || parse_number(value, 0, 1e12, &v) < 0)
        return -1;
    else if (strcmp(arg, "-c") == 0 && v >= 1 && v <= MAX_CONNECTIONS && v == (uint32_t)v)
        o->connections = (uint32_t)v;
    else if (strcmp(arg, "-d") == 0 && v >= 1 && v <= MAX_IN_FLIGHT && v == (uint32_t)v)
        o->in_flight = (uint32_t)v;
    else if (strcmp(arg, "-k") == 0 && v >= 1 && v <= 100000000 && v == (uint32_t)v)
        o->keys = (uint32_t)v;
    else if (strcmp(arg, "-t") == 0 && v > 0)
        o->seconds = v;
    else if (strcmp(arg, "-r") == 0 && v > 0)
        o->rate = v;
    else
        return -1;
    return 0;
}

/* Fills o from argv. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o) {
    static const char *const with_value[] = {"-s", "-p", "-c",   "-d",          "-k",
                                             "-t", "-r", "--op", "--token-file"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int known = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(arg, "--json") == 0 || strcmp(arg, "--sleep") == 0) {
            *(arg[2] == 'j' ? &o->json : &o->sleep) = 1;
            continue;
        }
        for (size_t j = 0; j < sizeof(with_value) / sizeof(with_value[0]); j++)
            known |= strcmp(arg, with_value[j]) == 0;
        if (!known)
            return usage_error("unknown argument ", arg);
        if (i + 1 >= argc)
            return usage_error("missing value for ", arg);
        if (set_option(o, arg, argv[++i]) < 0)
            return usage_error("bad value for ", arg);
    }
    if (!o->policy || !*o->policy || strlen(o->policy) > RL_MAX_POLICY_LEN)
        return usage_error("-p POLICY is required (1 to 255 bytes)", "");
    return -1;
}

/* ---- pre-encoded frames ---- */

typedef struct frames {
    uint8_t *bytes; /* keys frames of stride bytes each */
    uint8_t *lens;  /* each frame's size */
    size_t stride;  /* bytes per frame slot */
} frames;

static int encode_frames(const options *o, frames *f) {
    f->stride = RL_HEADER_LEN + RL_ITEM_FIXED_LEN + strlen(o->policy) + 16;
    f->bytes = malloc((size_t)o->keys * f->stride);
    f->lens = malloc(o->keys);
    if (!f->bytes || !f->lens)
        return -1;
    for (uint32_t k = 0; k < o->keys; k++) {
        char key[16];
        rl_request req = {.opcode = o->opcode, .item_count = 1};
        int len = snprintf(key, sizeof(key), "key-%" PRIu32, k);
        req.items[0] = (rl_item){.cost = 1,
                                 .policy = o->policy,
                                 .policy_len = (uint8_t)strlen(o->policy),
                                 .key = key,
                                 .key_len = (uint16_t)len};
        size_t n = rl_request_encode(&req, f->bytes + k * f->stride, f->stride);
        if (n == 0)
            return -1;
        f->lens[k] = (uint8_t)n;
    }
    return 0;
}

/* ---- connections ---- */

/* One connection and its requests in flight. */
typedef struct conn {
    rl_client *client;    /* the connection; NULL once it failed */
    uint64_t *sent_ns;    /* per slot: when the request was sent (or due) */
    uint32_t *slot_id;    /* per slot: the request id in flight, 0 when free */
    uint32_t *slot_key;   /* per slot: the key index of its request */
    uint32_t *free_slots; /* stack of free slots */
    uint32_t free_count;  /* slots on the stack */
    uint32_t next_seq;    /* sequence part of the next request id */
    uint64_t next_due_ns; /* open loop: when the next request is due */
    int want_out;         /* epoll also watches EPOLLOUT */
} conn;

/* Counters and latencies of the whole run. */
typedef struct stats {
    uint64_t allowed;      /* answers ALLOWED */
    uint64_t denied;       /* answers DENIED */
    uint64_t errors;       /* answers with any other status, unexpected answers */
    uint64_t failed_conns; /* connections lost */
    histogram latency;     /* microseconds from send (or due time) to answer */
} stats;

/* The state of one run. */
typedef struct bench {
    options opt;          /* what was asked */
    frames frames;        /* a request frame per key */
    conn *conns;          /* the connections */
    unsigned slot_bits;   /* request id = seq << slot_bits | slot */
    uint64_t interval_ns; /* open loop: between two requests of one connection */
    uint64_t rng;         /* xorshift state for choosing keys */
    int epoll_fd;         /* the loop */
    uint32_t live;        /* connections still working */
    stats stats;          /* the results */
} bench;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t next_key(bench *b) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (uint32_t)(((b->rng >> 32) * (uint64_t)b->opt.keys) >> 32);
}

static int conn_open(bench *b, conn *c, uint32_t index) {
    char err[512];
    uint32_t d = b->opt.in_flight;
    c->client = rl_client_connect(b->opt.address, CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (!c->client) {
        fprintf(stderr, "rlimit-bench: %s\n", err);
        return -1;
    }
    rl_result auth;
    int rc =
        b->opt.token ? rl_client_auth(c->client, b->opt.token, b->opt.token_len, &auth) : RLC_OK;
    if (rc != RLC_OK || (b->opt.token && auth.status != RL_ST_OK)) {
        fprintf(stderr, "rlimit-bench: authentication failed: %s\n",
                rc != RLC_OK ? rl_client_errstr(rc) : rl_status_name(auth.status));
        return -1;
    }
    c->sent_ns = calloc(d, sizeof(*c->sent_ns));
    c->slot_id = calloc(d, sizeof(*c->slot_id));
    c->slot_key = calloc(d, sizeof(*c->slot_key));
    c->free_slots = malloc(d * sizeof(*c->free_slots));
    if (!c->sent_ns || !c->slot_id || !c->slot_key || !c->free_slots)
        return -1;
    for (uint32_t i = 0; i < d; i++)
        c->free_slots[i] = d - 1 - i;
    c->free_count = d;
    c->next_seq = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = index};
    return epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, rl_client_fd(c->client), &ev);
}

static void conn_fail(bench *b, conn *c, int rc) {
    fprintf(stderr, "rlimit-bench: connection lost: %s: %s\n", rl_client_errstr(rc),
            rl_client_error(c->client));
    epoll_ctl(b->epoll_fd, EPOLL_CTL_DEL, rl_client_fd(c->client), NULL);
    rl_client_close(c->client);
    c->client = NULL;
    b->stats.failed_conns++;
    b->live--;
}

/* Gives slot a fresh request id and returns it. */
static uint32_t slot_new_id(const bench *b, conn *c, uint32_t slot) {
    uint32_t id = (c->next_seq++ << b->slot_bits) | slot;
    if (id == 0) /* 0 marks a free slot; skip it on wrap-around */
        id = (c->next_seq++ << b->slot_bits) | slot;
    c->slot_id[slot] = id;
    return id;
}

/* --op acquire: queues the RELEASE of lease on slot, which stays busy until its answer. */
static int conn_release(bench *b, conn *c, uint32_t slot, uint64_t lease) {
    uint8_t frame[RL_HEADER_LEN + RL_LEASE_LEN + RL_ITEM_FIXED_LEN + RL_MAX_POLICY_LEN + 16];
    char key[16];
    int len = snprintf(key, sizeof(key), "key-%" PRIu32, c->slot_key[slot]);
    rl_request req = {.opcode = RL_OP_RELEASE, .lease = lease, .item_count = 1};
    req.items[0] = (rl_item){.policy = b->opt.policy,
                             .policy_len = (uint8_t)strlen(b->opt.policy),
                             .key = key,
                             .key_len = (uint16_t)len};
    size_t n = rl_request_encode(&req, frame, sizeof(frame));
    return rl_client_queue_frame(c->client, frame, n, slot_new_id(b, c, slot));
}

/* Queues one request on a free slot, stamped with at_ns. */
static int conn_send(bench *b, conn *c, uint64_t at_ns) {
    uint32_t slot = c->free_slots[--c->free_count];
    uint32_t id = slot_new_id(b, c, slot);
    uint32_t key = next_key(b);
    c->slot_key[slot] = key;
    c->sent_ns[slot] = at_ns;
    return rl_client_queue_frame(c->client, b->frames.bytes + key * b->frames.stride,
                                 b->frames.lens[key], id);
}

/* Queues what may go now: every free slot (closed loop) or what is due (open loop). */
static int conn_fill(bench *b, conn *c, uint64_t now) {
    int rc = RLC_OK;
    if (b->opt.rate == 0) {
        while (c->free_count > 0 && rc == RLC_OK)
            rc = conn_send(b, c, now);
        return rc;
    }
    while (c->free_count > 0 && c->next_due_ns <= now && rc == RLC_OK) {
        rc = conn_send(b, c, c->next_due_ns);
        c->next_due_ns += b->interval_ns;
    }
    return rc;
}

/* Writes what is queued; watches EPOLLOUT only while bytes remain. */
static int conn_flush(bench *b, conn *c, uint32_t index) {
    int rc = rl_client_flush(c->client);
    if (rc < 0)
        return rc;
    int want_out = rc == RLC_AGAIN;
    if (want_out != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.u32 = index};
        epoll_ctl(b->epoll_fd, EPOLL_CTL_MOD, rl_client_fd(c->client), &ev);
        c->want_out = want_out;
    }
    return RLC_OK;
}

/* Records one answer and frees its slot; an allowed ACQUIRE's slot goes on with the
   RELEASE of its lease instead. Returns an rlc_code (of queueing the RELEASE). */
static int conn_answer(bench *b, conn *c, const rl_response *resp, uint64_t now) {
    uint32_t slot = resp->id & ((1u << b->slot_bits) - 1);
    if (slot >= b->opt.in_flight || c->slot_id[slot] != resp->id) {
        b->stats.errors++; /* an answer to nothing we asked */
        return RLC_OK;
    }
    if (resp->opcode == RL_OP_ACQUIRE && resp->result.status == RL_ST_ALLOWED && resp->lease)
        return conn_release(b, c, slot, resp->lease);
    c->slot_id[slot] = 0;
    c->free_slots[c->free_count++] = slot;
    uint64_t sent = c->sent_ns[slot];
    histogram_add(&b->stats.latency, now > sent ? (now - sent) / 1000 : 0);
    if (resp->result.status == RL_ST_ALLOWED)
        b->stats.allowed++;
    else if (resp->result.status == RL_ST_DENIED)
        b->stats.denied++;
    else
        b->stats.errors++;
    return RLC_OK;
}

/* Reads and records every answer the socket holds. */
static int conn_read(bench *b, conn *c) {
    rl_response resp;
    int rc;
    while ((rc = rl_client_receive(c->client)) == RLC_OK) {
        uint64_t now = now_ns();
        while ((rc = rl_client_next(c->client, &resp)) == RLC_OK)
            if ((rc = conn_answer(b, c, &resp, now)) != RLC_OK)
                return rc;
        if (rc != RLC_AGAIN)
            return rc;
    }
    return rc == RLC_AGAIN ? RLC_OK : rc;
}

/* ---- the loop ---- */

/* How long epoll may sleep: until the next due request (open loop: epoll_pwait2 sleeps
 * to the nanosecond, so a slow open loop leaves its core to others; a fast one polls),
 * at most MAX_WAIT_NS. */
static struct timespec wait_for(const bench *b, uint64_t now, uint64_t end) {
    uint64_t next = end;
    for (uint32_t i = 0; b->opt.rate > 0 && i < b->opt.connections; i++) {
        const conn *c = &b->conns[i];
        if (c->client && c->free_count > 0 && c->next_due_ns < next)
            next = c->next_due_ns;
    }
    uint64_t left = next > now ? next - now : 0;
    if (b->opt.rate > 0 && left < SPIN_NS && !b->opt.sleep)
        left = 0;
    if (left > MAX_WAIT_NS)
        left = MAX_WAIT_NS;
    return (struct timespec){.tv_sec = (time_t)(left / 1000000000),
                             .tv_nsec = (long)(left % 1000000000)};
}

/* Handles one readiness event of connection index. */
static void handle_event(bench *b, uint32_t index, uint32_t events) {
    conn *c = &b->conns[index];
    int rc = RLC_OK;
    if (!c->client)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        rc = conn_read(b, c);
    if (rc == RLC_OK)
        rc = conn_fill(b, c, now_ns());
    if (rc == RLC_OK)
        rc = conn_flush(b, c, index);
    if (rc < 0)
        conn_fail(b, c, rc);
}

/* Open loop: sends what fell due while no answer came. */
static void send_due(bench *b, uint64_t now) {
    for (uint32_t i = 0; i < b->opt.connections; i++) {
        conn *c = &b->conns[i];
        if (!c->client || c->free_count == 0 || c->next_due_ns > now)
            continue;
        int rc = conn_fill(b, c, now);
        if (rc == RLC_OK)
            rc = conn_flush(b, c, i);
        if (rc < 0)
            conn_fail(b, c, rc);
    }
}

static void run_loop(bench *b, uint64_t start, uint64_t end) {
    struct epoll_event events[256];
    for (uint32_t i = 0; i < b->opt.connections; i++) {
        b->conns[i].next_due_ns = start + i * (b->interval_ns / b->opt.connections);
        handle_event(b, i, 0);
    }
    for (uint64_t now = start; now < end && b->live > 0; now = now_ns()) {
        struct timespec wait = wait_for(b, now, end);
        int n = epoll_pwait2(b->epoll_fd, events, 256, &wait, NULL);
        for (int i = 0; i < n; i++)
            handle_event(b, events[i].data.u32, events[i].events);
        if (b->opt.rate > 0)
            send_due(b, now_ns());
    }
}

/* ---- report ---- */

static void report(const bench *b, double seconds) {
    const stats *s = &b->stats;
    double per_s = (double)(s->allowed + s->denied + s->errors) / seconds;
    uint64_t p50 = histogram_quantile(&s->latency, 0.50);
    uint64_t p99 = histogram_quantile(&s->latency, 0.99);
    uint64_t p999 = histogram_quantile(&s->latency, 0.999);
    if (b->opt.json) {
        printf("{\"decisions_per_s\":%.0f,\"allowed\":%" PRIu64 ",\"denied\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
               ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64 ",\"connections\":%" PRIu32
               ",\"in_flight\":%" PRIu32 ",\"keys\":%" PRIu32 ",\"seconds\":%.3f"
               ",\"target_rate\":%.0f,\"op\":\"%s\",\"failed_connections\":%" PRIu64 "}\n",
               per_s, s->allowed, s->denied, s->errors, p50, p99, p999, s->latency.max,
               b->opt.connections, b->opt.in_flight, b->opt.keys, seconds, b->opt.rate,
               op_name(b->opt.opcode), s->failed_conns);
        return;
    }
    printf("%s policy=%s op=%s connections=%" PRIu32 " in_flight=%" PRIu32 " keys=%" PRIu32 " %s\n",
           b->opt.address, b->opt.policy, op_name(b->opt.opcode), b->opt.connections,
           b->opt.in_flight, b->opt.keys, b->opt.rate > 0 ? "open loop" : "closed loop");
    if (b->opt.rate > 0)
        printf("target:      %.0f/s\n", b->opt.rate);
    printf("decisions/s: %.0f  (%.2f s)%s\n", per_s, seconds,
           b->opt.opcode == RL_OP_ACQUIRE ? "  (ACQUIRE+RELEASE pairs/s)" : "");
    printf("allowed: %" PRIu64 "  denied: %" PRIu64 "  errors: %" PRIu64 "\n", s->allowed,
           s->denied, s->errors);
    printf("latency us:  p50=%" PRIu64 " p99=%" PRIu64 " p999=%" PRIu64 " max=%" PRIu64 "\n", p50,
           p99, p999, s->latency.max);
    if (s->failed_conns)
        printf("connections lost: %" PRIu64 "\n", s->failed_conns);
}

static int setup(bench *b) {
    uint32_t d = b->opt.in_flight;
    while ((1u << b->slot_bits) < d)
        b->slot_bits++;
    if (b->opt.rate > 0)
        b->interval_ns = (uint64_t)(1e9 * b->opt.connections / b->opt.rate);
    if (b->opt.rate > 0 && b->interval_ns == 0)
        b->interval_ns = 1;
    b->rng = 0x9E3779B97F4A7C15ull;
    if (encode_frames(&b->opt, &b->frames) < 0) {
        fprintf(stderr, "rlimit-bench: cannot encode the requests\n");
        return -1;
    }
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    b->conns = calloc(b->opt.connections, sizeof(*b->conns));
    if (b->epoll_fd < 0 || !b->conns)
        return -1;
    for (uint32_t i = 0; i < b->opt.connections; i++) {
        if (conn_open(b, &b->conns[i], i) < 0)
            return -1;
        b->live++;
    }
    return 0;
}

static void teardown(bench *b) {
    for (uint32_t i = 0; b->conns && i < b->opt.connections; i++) {
        rl_client_close(b->conns[i].client);
        free(b->conns[i].sent_ns);
        free(b->conns[i].slot_id);
        free(b->conns[i].slot_key);
        free(b->conns[i].free_slots);
    }
    free(b->conns);
    free(b->opt.token);
    free(b->frames.bytes);
    free(b->frames.lens);
    if (b->epoll_fd >= 0)
        close(b->epoll_fd);
}

int main(int argc, char **argv) {
    static bench b; /* the histogram is large: not on the stack */
    b.opt = (options){
        .connections = 4, .in_flight = 16, .keys = 1000, .seconds = 10, .opcode = RL_OP_CHECK};
    b.epoll_fd = -1;
    b.opt.address = getenv("RLIMITD_ADDRESS");
    if (!b.opt.address || !*b.opt.address)
        b.opt.address = DEFAULT_ADDRESS;
    int status = parse_args(argc, argv, &b.opt);
    if (status >= 0)
        return status;
    if (setup(&b) < 0) {
        teardown(&b);
        return 2;
    }
    uint64_t start = now_ns();
    run_loop(&b, start, start + (uint64_t)(b.opt.seconds * 1e9));
    double seconds = (double)(now_ns() - start) / 1e9;
    report(&b, seconds);
    status = b.live == 0 ? 2 : 0;
    teardown(&b);
    return status;
}
