/*
 * store_redis.c: the Redis store: queueing, batching into script calls, timeouts,
 * the over-limit cache, and stats (see store_redis.h for the data flow).
 *
 * Ownership: a request (one submit's copy) is on the unanswered list until done is
 * called, and belongs to the queue until it is sent, then to its call until the call's
 * reply (or its connection's loss) comes back; only then is it freed. So a request
 * answered early (timeout) stays valid for a late reply, which skips it.
 */
#include "store_redis.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "redis_batch.h"
#include "redis_cache.h"
#include "redis_forget.h"
#include "redis_leases.h"
#include "redis_pool.h"
#include "redis_script.h"

#define LATENCY_BUCKETS 104    /* 4 per power of two up to 2^26 us */
#define CALLS_PER_CONNECTION 2 /* script calls in flight per connection at most */

/* Store errors by kind: each counts the submits answered with it. */
typedef struct error_counts {
    uint64_t down;         /* answered at once: Redis was down */
    uint64_t timeout;      /* no reply within command_timeout_ms */
    uint64_t disconnected; /* the connection was lost with the call in flight */
    uint64_t redis;        /* Redis answered the call with an error */
    uint64_t item;         /* a command failed inside the script: that request only */
    uint64_t reply;        /* the reply was not what the script returns */
    uint64_t key_too_long; /* a Redis key over RL_REDIS_MAX_KEY */
    uint64_t internal;     /* out of memory */
} error_counts;

typedef struct redis_store {
    rl_store base;                     /* the interface */
    rl_redis_pool *pool;               /* the connections */
    rl_redis_cache *cache;             /* over-limit cache, or NULL */
    const int64_t *clock;              /* tests: the decision time; NULL: Redis's TIME */
    char *prefix;                      /* key prefix (owned) */
    size_t prefix_len;                 /* its bytes */
    int64_t timeout_us;                /* command_timeout_ms */
    size_t batch_max;                  /* items per script call at most */
    rl_redis_request *oldest, *newest; /* unanswered requests, in submit order */
    rl_redis_request *queue_head;      /* requests not sent yet, oldest first */
    rl_redis_request *queue_tail;      /* the newest of them */
    struct event *flush;               /* sends the queue at the end of the loop iteration */
    struct event *expiry;              /* answers the oldest request at its deadline */
    int flush_scheduled;               /* flush is active */
    int closing;                       /* free has begun: submit refuses */
    rl_redis_cmdbuf buf;               /* the command being built (reused) */
    uint64_t requests;                 /* submits */
    uint64_t items;                    /* items submitted */
    uint64_t calls;                    /* script calls sent */
    uint64_t call_items;               /* items sent in script calls */
    uint64_t noscript;                 /* calls resent as EVAL after NOSCRIPT */
    uint64_t forgets;                  /* namespaces forgotten */
    error_counts errors;               /* see above */
    uint64_t latency[LATENCY_BUCKETS]; /* submit-to-answer times of answers from Redis */
    uint64_t latency_count;            /* answers counted in latency */
    int64_t latency_max;               /* the longest, us */
    int64_t log_second;                /* the second of the last rate-limited log line */
    uint64_t log_suppressed;           /* rate-limited lines not written */
} redis_store;

/* One script call in flight. */
typedef struct call {
    rl_redis_cmd cmd;         /* first: the pool hands it back */
    redis_store *store;       /* its store */
    int retried;              /* resent as EVAL after NOSCRIPT */
    int64_t sent_clock;       /* cache clock when first sent */
    int64_t now_override;     /* the decision time sent (tests), or 0 */
    size_t count;             /* requests */
    rl_redis_request *reqs[]; /* the requests, in submit order */
} call;

static void schedule_flush(redis_store *s);

/* ---- clocks, logs, latency ---- */

static int64_t cache_clock(const redis_store *s) {
    return s->clock ? *s->clock : rl_clock_mono_us();
}

// Logs a warning, at most one line a second; the others are counted and reported.
__attribute__((format(printf, 2, 3))) static void log_limited(redis_store *s, const char *fmt,
                                                              ...) {
    int64_t second = rl_clock_mono_us() / 1000000;
    if (second == s->log_second) {
        s->log_suppressed++;
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (s->log_suppressed)
        rl_log_warn("redis store: %s (and %llu more errors in the last second)", line,
                    (unsigned long long)s->log_suppressed);
    else
        rl_log_warn("redis store: %s", line);
    s->log_second = second;
    s->log_suppressed = 0;
}

static size_t latency_bucket(int64_t us) {
    if (us < 4)
        return us < 0 ? 0 : (size_t)us;
    int e = 63 - __builtin_clzll((unsigned long long)us);
    size_t i = 4 + (size_t)(e - 2) * 4 + (size_t)((us >> (e - 2)) & 3);
    return i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS - 1;
}

// Returns the upper bound (us) of latency bucket i.
static int64_t bucket_top(size_t i) {
    if (i < 4)
        return (int64_t)i;
    int e = (int)(i - 4) / 4 + 2;
    return ((int64_t)(5 + (i - 4) % 4) << (e - 2)) - 1;
}

static int64_t latency_percentile(const redis_store *s, double p) {
    uint64_t want = (uint64_t)(p * (double)s->latency_count + 0.999999), seen = 0;
    for (size_t i = 0; i < LATENCY_BUCKETS && s->latency_count; i++) {
        seen += s->latency[i];
        if (seen >= want)
            return bucket_top(i) < s->latency_max ? bucket_top(i) : s->latency_max;
    }
    return 0;
}

/* ---- answering ---- */

static void unlink_unanswered(redis_store *s, rl_redis_request *req) {
    if (req->prev)
        req->prev->next = req->next;
    else
        s->oldest = req->next;
    if (req->next)
        req->next->prev = req->prev;
    else
        s->newest = req->prev;
    req->prev = req->next = NULL;
}

static void answer(redis_store *s, rl_redis_request *req, const rl_store_answer *ans) {
    int64_t took = rl_clock_mono_us() - req->submitted_us;
    unlink_unanswered(s, req);
    req->answered = 1;
    s->latency[latency_bucket(took)]++;
    s->latency_count++;
    s->latency_max = took > s->latency_max ? took : s->latency_max;
    req->done(req->arg, ans);
}

static void error_answer(rl_store_answer *ans, rl_status status, size_t n, const char *errstr) {
    memset(ans, 0, sizeof(*ans));
    ans->status = status;
    ans->now_us = rl_clock_real_us();
    ans->count = n;
    ans->errstr = errstr;
}

static void answer_error(redis_store *s, rl_redis_request *req, rl_status status,
                         const char *errstr) {
    rl_store_answer ans;
    error_answer(&ans, status, req->count, errstr);
    answer(s, req, &ans);
}

// Answers a submit that never became a request (before submit returns).
static void answer_now(rl_status status, size_t n, const char *errstr, rl_store_done *done,
                       void *arg) {
    rl_store_answer ans;
    error_answer(&ans, status, n, errstr);
    done(arg, &ans);
}

// Answers every unanswered request of the call with status; counts them in *counter.
static void fail_call(call *c, rl_status status, const char *errstr, uint64_t *counter) {
    for (size_t i = 0; i < c->count; i++) {
        if (!c->reqs[i]->answered) {
            (*counter)++;
            answer_error(c->store, c->reqs[i], status, errstr);
        }
    }
}

static void call_free(call *c) {
    for (size_t i = 0; i < c->count; i++)
        rl_free(c->reqs[i]);
    rl_free(c);
}

/* ---- the over-limit cache ---- */

// Answers a single-item CHECK the cache denies, or drops what RESET and ADJUST change.
// Returns 1 if the submit was answered.
static int cache_first(redis_store *s, rl_store_op op, const rl_store_item *items, size_t n,
                       rl_store_done *done, void *arg) {
    if (!s->cache)
        return 0;
    if (op == RL_STORE_RESET || op == RL_STORE_ADJUST) {
        for (size_t i = 0; i < n; i++)
            rl_redis_cache_drop(s->cache, &items[i]);
        return 0;
    }
    rl_store_answer ans;
    memset(&ans, 0, sizeof(ans));
    if (op != RL_STORE_CHECK || n != 1 ||
        !rl_redis_cache_lookup(s->cache, &items[0], cache_clock(s), &ans.verdicts[0], &ans.now_us))
        return 0;
    ans.status = RL_ST_DENIED;
    ans.count = 1;
    ans.flags = RL_FLAG_CACHED;
    done(arg, &ans);
    return 1;
}

/* ---- replies ---- */

static void on_answer(void *arg, rl_redis_request *req, rl_store_answer *ans) {
    call *c = arg;
    redis_store *s = c->store;
    if (req->answered)
        return; /* answered at its deadline already */
    if (ans->status == RL_ST_INTERNAL) {
        s->errors.item++;
        log_limited(s,
                    "a request failed inside the script (the others of its call were "
                    "answered): %s",
                    ans->errstr ? ans->errstr : "?");
    }
    if (s->cache && req->op == RL_STORE_CHECK && req->count == 1 && ans->status == RL_ST_DENIED)
        rl_redis_cache_insert(s->cache, &req->items[0], req->cache_stamp, c->sent_clock,
                              ans->now_us, &ans->verdicts[0]);
    answer(s, req, ans);
}

static int all_answered(const call *c) {
    for (size_t i = 0; i < c->count; i++)
        if (!c->reqs[i]->answered)
            return 0;
    return 1;
}

// Resends the call as EVAL (which loads the script) after NOSCRIPT, unless nobody waits
// for it any more. Returns RL_OK if sent.
static int resend_as_eval(call *c) {
    redis_store *s = c->store;
    if (all_answered(c))
        return RL_ERR;
    c->retried = 1;
    s->noscript++;
    if (rl_redis_call_encode(&s->buf, c->reqs, c->count, NULL, c->now_override) != RL_OK)
        return RL_ERR;
    return rl_redis_pool_send(s->pool, c->cmd.conn, &c->cmd, s->buf.data, s->buf.len);
}

static void on_call_reply(rl_redis_cmd *cmd, redisReply *reply) {
    call *c = (call *)cmd;
    redis_store *s = c->store;
    const char *why = NULL;
    if (!reply) {
        fail_call(c, RL_ST_STORE_UNAVAILABLE, "the connection to redis was lost",
                  &s->errors.disconnected);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (!c->retried && strncmp(reply->str, "NOSCRIPT", 8) == 0 && resend_as_eval(c) == RL_OK)
            return; /* the call lives on */
        log_limited(s, "the script call failed: %s", reply->str);
        fail_call(c, RL_ST_STORE_UNAVAILABLE, reply->str, &s->errors.redis);
    } else if (rl_redis_call_decode(reply, c->reqs, c->count, on_answer, c, &why) != RL_OK) {
        log_limited(s, "%s (reply type %d)", why, reply->type);
        fail_call(c, RL_ST_INTERNAL, why, &s->errors.reply);
    }
    call_free(c);
    if (s->queue_head && !s->closing)
        schedule_flush(s); /* a slot is free: what queued meanwhile goes in one call */
}

/* ---- sending ---- */

// Counts the queued requests (from the head) that make one call: whole requests of at
// most batch_max items together, at least one.
static size_t next_call_size(const redis_store *s) {
    size_t count = 0, items = 0;
    for (const rl_redis_request *r = s->queue_head; r; r = r->queue_next) {
        if (r->answered)
            continue;
        if (count > 0 && items + r->count > s->batch_max)
            break;
        count++;
        items += r->count;
    }
    return count;
}

// Moves the next count unanswered requests of the queue into c (freeing answered ones).
static void take_from_queue(redis_store *s, call *c, size_t count) {
    while (c && c->count < count) {
        rl_redis_request *r = s->queue_head;
        s->queue_head = r->queue_next;
        r->queue_next = NULL;
        if (r->answered)
            rl_free(r);
        else
            c->reqs[c->count++] = r;
    }
    while (s->queue_head && s->queue_head->answered) {
        rl_redis_request *r = s->queue_head;
        s->queue_head = r->queue_next;
        rl_free(r);
    }
    if (!s->queue_head)
        s->queue_tail = NULL;
}

static void send_call(redis_store *s, call *c) {
    size_t items = 0;
    for (size_t i = 0; i < c->count; i++)
        items += c->reqs[i]->count;
    c->sent_clock = cache_clock(s);
    c->now_override = s->clock ? *s->clock : 0;
    s->calls++;
    s->call_items += items;
    if (rl_redis_call_encode(&s->buf, c->reqs, c->count, rl_redis_pool_sha(s->pool),
                             c->now_override) != RL_OK) {
        fail_call(c, RL_ST_INTERNAL, "out of memory", &s->errors.internal);
        call_free(c);
    } else if (rl_redis_pool_send(s->pool, NULL, &c->cmd, s->buf.data, s->buf.len) != RL_OK) {
        fail_call(c, RL_ST_STORE_UNAVAILABLE, "no connection to redis took the call",
                  &s->errors.disconnected);
        call_free(c);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
    redis_store *s = arg;
    (void)fd;
    (void)what;
    s->flush_scheduled = 0;
    while (s->queue_head && rl_redis_pool_least_in_flight(s->pool) < CALLS_PER_CONNECTION) {
        size_t count = next_call_size(s);
        if (!count) {
            take_from_queue(s, NULL, 0); /* only answered requests were left */
            return;
        }
        call *c = rl_calloc(1, sizeof(call) + count * sizeof(rl_redis_request *));
        if (!c) {
            log_limited(s, "out of memory; %zu requests wait for their deadline", count);
            return;
        }
        c->cmd.fn = on_call_reply;
        c->store = s;
        take_from_queue(s, c, count);
        send_call(s, c);
    }
}

static void schedule_flush(redis_store *s) {
    if (!s->flush_scheduled) {
        s->flush_scheduled = 1;
        event_active(s->flush, EV_TIMEOUT, 0);
    }
}

/* ---- deadlines ---- */

static void arm_expiry(redis_store *s) {
    if (!s->oldest)
        return;
    int64_t wait = s->oldest->submitted_us + s->timeout_us - rl_clock_mono_us();
    wait = wait > 0 ? wait : 0;
    struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
    event_add(s->expiry, &tv);
}

static void on_expiry(evutil_socket_t fd, short what, void *arg) {
    redis_store *s = arg;
    int64_t now = rl_clock_mono_us();
    (void)fd;
    (void)what;
    while (s->oldest && s->oldest->submitted_us + s->timeout_us <= now) {
        s->errors.timeout++;
        answer_error(s, s->oldest, RL_ST_STORE_UNAVAILABLE,
                     "no reply from redis within command_timeout_ms");
    }
    arm_expiry(s);
}

static void enqueue(redis_store *s, rl_redis_request *req) {
    req->prev = s->newest;
    if (s->newest)
        s->newest->next = req;
    else
        s->oldest = req;
    s->newest = req;
    if (s->queue_tail)
        s->queue_tail->queue_next = req;
    else
        s->queue_head = req;
    s->queue_tail = req;
    schedule_flush(s);
    if (!event_pending(s->expiry, EV_TIMEOUT, NULL))
        arm_expiry(s);
}

/* ---- pool events ---- */

static void on_pool_ready(void *arg) {
    redis_store *s = arg;
    if (s->queue_head)
        schedule_flush(s);
}

// The pool went down: what waits to be sent is answered now.
static void on_pool_down(void *arg) {
    redis_store *s = arg;
    while (s->queue_head) {
        rl_redis_request *r = s->queue_head;
        s->queue_head = r->queue_next;
        if (!r->answered) {
            s->errors.down++;
            answer_error(s, r, RL_ST_STORE_UNAVAILABLE, "redis is down");
        }
        rl_free(r);
    }
    s->queue_tail = NULL;
}

/* ---- the interface ---- */

static int redis_submit(rl_store *store, rl_store_op op, const rl_store_item *items, size_t n,
                        rl_store_done *done, void *arg) {
    redis_store *s = (redis_store *)store;
    rl_status status;
    if (s->closing || n == 0 || n > RL_MAX_ITEMS)
        return RL_ERR;
    s->requests++;
    s->items += n;
    if (cache_first(s, op, items, n, done, arg))
        return RL_OK;
    if (!rl_redis_pool_up(s->pool)) {
        s->errors.down++;
        answer_now(RL_ST_STORE_UNAVAILABLE, n, "redis is down", done, arg);
        return RL_OK;
    }
    rl_redis_request *req = rl_redis_request_new(op, items, n, s->prefix, s->prefix_len, &status);
    if (!req) {
        int too_long = status == RL_ST_KEY_TOO_LONG;
        (*(too_long ? &s->errors.key_too_long : &s->errors.internal))++;
        answer_now(status, n, too_long ? "the redis key would exceed 4096 bytes" : "out of memory",
                   done, arg);
        return RL_OK;
    }
    req->done = done;
    req->arg = arg;
    req->submitted_us = rl_clock_mono_us();
    if (s->cache && op == RL_STORE_CHECK && n == 1)
        req->cache_stamp = rl_redis_cache_stamp(s->cache, &items[0]);
    enqueue(s, req);
    return RL_OK;
}

// A reply to a listing's command came back: script calls that waited for room on the
// connections are sent.
static void on_listing_reply(void *arg) {
    redis_store *s = arg;
    if (s->queue_head && !s->closing)
        schedule_flush(s);
}

// Lists the leases held (redis_leases.h): plain commands on the pool, not the script.
static int redis_leases(rl_store *store, const char *ns, size_t ns_len, const char *key,
                        size_t key_len, size_t max, rl_store_leases_done *done, void *arg) {
    redis_store *s = (redis_store *)store;
    if (s->closing)
        return RL_ERR;
    if (!rl_redis_pool_up(s->pool)) {
        s->errors.down++;
        rl_store_lease_list out = {.status = RL_ST_STORE_UNAVAILABLE, .errstr = "redis is down"};
        done(arg, &out);
        return RL_OK;
    }
    rl_redis_leases_query q = {s->prefix,     s->prefix_len,    ns, ns_len, key, key_len, max,
                               s->timeout_us, on_listing_reply, s};
    return rl_redis_leases_start(s->pool, event_get_base(s->flush), &q, done, arg);
}

static void redis_forget_ns(rl_store *store, const char *ns, size_t ns_len) {
    redis_store *s = (redis_store *)store;
    s->forgets++;
    if (s->cache)
        rl_redis_cache_forget_ns(s->cache, ns, ns_len);
    if (rl_redis_forget_start(s->pool, s->prefix, s->prefix_len, ns, ns_len) != RL_OK)
        rl_log_warn("redis store: cannot forget the keys of %.*s now; they expire by their TTL",
                    (int)ns_len, ns);
}

// The traffic and the pool's figures (connections and their handshakes).
static void pool_stats(const redis_store *s, rl_store_figures *out) {
    rl_redis_pool_stats p = rl_redis_pool_figures(s->pool);
    rl_figures_add(out, NULL, "connections", RL_FIGURE_GAUGE, (uint64_t)p.connections);
    rl_figures_add(out, NULL, "ready", RL_FIGURE_GAUGE, (uint64_t)p.ready);
    rl_figures_add(out, NULL, "requests", RL_FIGURE_COUNTER, s->requests);
    rl_figures_add(out, NULL, "items", RL_FIGURE_COUNTER, s->items);
    rl_figures_add(out, NULL, "calls", RL_FIGURE_COUNTER, s->calls);
    rl_figures_ratio(out, NULL, "items_per_call",
                     s->calls ? (double)s->call_items / (double)s->calls : 0.0);
    rl_figures_add(out, NULL, "in_flight", RL_FIGURE_GAUGE, p.in_flight);
    rl_figures_add(out, NULL, "noscript_retries", RL_FIGURE_COUNTER, s->noscript);
    rl_figures_add(out, NULL, "connects", RL_FIGURE_COUNTER, p.connects);
    rl_figures_add(out, NULL, "reconnects", RL_FIGURE_COUNTER, p.reconnects);
    rl_figures_add(out, NULL, "connection_failures", RL_FIGURE_COUNTER, p.failures);
    rl_figures_add(out, NULL, "dead_connections", RL_FIGURE_COUNTER, p.dead);
}

// The failures by kind, and the over-limit cache's figures.
static void error_and_cache_stats(const redis_store *s, rl_store_figures *out) {
    static const char *const names[] = {"down", "timeout", "disconnected", "redis",
                                        "item", "reply",   "key_too_long", "internal"};
    const error_counts *e = &s->errors;
    const uint64_t counts[] = {e->down, e->timeout, e->disconnected, e->redis,
                               e->item, e->reply,   e->key_too_long, e->internal};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        rl_figures_add(out, "errors", names[i], RL_FIGURE_COUNTER, counts[i]);
    rl_redis_cache_stats c = {0};
    if (s->cache)
        c = rl_redis_cache_figures(s->cache);
    rl_figures_add(out, "cache", "enabled", RL_FIGURE_FLAG, s->cache != NULL);
    rl_figures_add(out, "cache", "hits", RL_FIGURE_COUNTER, c.hits);
    rl_figures_add(out, "cache", "inserts", RL_FIGURE_COUNTER, c.inserts);
    rl_figures_add(out, "cache", "stale", RL_FIGURE_COUNTER, c.stale);
    rl_figures_add(out, "cache", "slots", RL_FIGURE_GAUGE, c.slots);
}

static void redis_stats(rl_store *store, rl_store_figures *out) {
    redis_store *s = (redis_store *)store;
    out->type = "redis";
    rl_figures_word(out, NULL, "state", rl_redis_pool_up(s->pool) ? "up" : "down");
    pool_stats(s, out);
    rl_figures_add(out, NULL, "forgets", RL_FIGURE_COUNTER, s->forgets);
    error_and_cache_stats(s, out);
    out->latency = (rl_latency_figures){.present = 1,
                                        .count = s->latency_count,
                                        .p50_us = latency_percentile(s, 0.50),
                                        .p99_us = latency_percentile(s, 0.99),
                                        .max_us = s->latency_max};
}

static void redis_free(rl_store *store) {
    redis_store *s = (redis_store *)store;
    if (!s)
        return;
    s->closing = 1;
    while (s->oldest)
        answer_error(s, s->oldest, RL_ST_STORE_UNAVAILABLE, "the store is stopping");
    while (s->queue_head) {
        rl_redis_request *r = s->queue_head;
        s->queue_head = r->queue_next;
        rl_free(r);
    }
    rl_redis_pool_free(s->pool); /* calls in flight come back with NULL and are freed */
    if (s->flush)
        event_free(s->flush);
    if (s->expiry)
        event_free(s->expiry);
    rl_redis_cache_free(s->cache);
    rl_free(s->buf.data);
    rl_free(s->prefix);
    rl_free(s);
}

static const rl_store_ops redis_ops = {
    .name = "redis",
    .submit = redis_submit,
    .leases = redis_leases,
    .forget_ns = redis_forget_ns,
    .stats = redis_stats,
    .free = redis_free,
};

/* ---- construction ---- */

static int check_conf(const rl_store_conf *conf, char *err, size_t errlen) {
    const char *prefix = conf->key_prefix ? conf->key_prefix : RL_REDIS_DEFAULT_KEY_PREFIX;
    if (!conf->host && !conf->unix_path) {
        snprintf(err, errlen, "store: the redis store needs a host or a unix socket path");
        return RL_ERR;
    }
    if (strpbrk(prefix, "{}")) {
        snprintf(err, errlen, "store.key_prefix: \"%s\" must not hold { or } (hash tags)", prefix);
        return RL_ERR;
    }
    return RL_OK;
}

static int setup(redis_store *s, struct event_base *base, const rl_store_conf *conf,
                 const rl_store_redis_options *options) {
    const char *prefix = conf->key_prefix ? conf->key_prefix : RL_REDIS_DEFAULT_KEY_PREFIX;
    int timeout_ms = conf->command_timeout_ms > 0 ? conf->command_timeout_ms
                                                  : RL_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    s->base.ops = &redis_ops;
    s->clock = options->clock;
    s->prefix_len = strlen(prefix);
    s->prefix = rl_strndup(prefix, s->prefix_len);
    s->timeout_us = (int64_t)timeout_ms * 1000;
    s->batch_max = conf->batch_max > 0 ? (size_t)conf->batch_max : RL_REDIS_DEFAULT_BATCH_MAX;
    s->flush = event_new(base, -1, 0, on_flush, s);
    s->expiry = event_new(base, -1, 0, on_expiry, s);
    if (!options->no_cache)
        s->cache = rl_redis_cache_new(RL_REDIS_CACHE_SLOTS);
    return s->prefix && s->flush && s->expiry && (s->cache || options->no_cache) ? RL_OK : RL_ERR;
}

rl_store *rl_store_redis_new_with(struct event_base *base, const rl_store_conf *conf,
                                  const rl_store_redis_options *options, char *err, size_t errlen) {
    static const rl_store_redis_options defaults = {0};
    char sha[41];
    options = options ? options : &defaults;
    if (check_conf(conf, err, errlen) != RL_OK)
        return NULL;
    int rc = rl_redis_pool_check(conf, rl_redis_script, rl_redis_script_len, sha, err, errlen);
    if (rc == RL_ERR)
        return NULL;
    if (rc == RL_AGAIN)
        rl_log_warn("redis store: %s; starting down (STORE_UNAVAILABLE) and reconnecting", err);
    redis_store *s = rl_calloc(1, sizeof(*s));
    int timeout_ms = conf->command_timeout_ms > 0 ? conf->command_timeout_ms
                                                  : RL_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    int64_t dead_ms = options->dead_after_ms > 0
                          ? options->dead_after_ms
                          : (timeout_ms * 20 > 2000 ? timeout_ms * 20 : 2000);
    rl_redis_pool_events events = {on_pool_ready, on_pool_down, s};
    if (!s || setup(s, base, conf, options) != RL_OK ||
        !(s->pool = rl_redis_pool_new(base, conf, rl_redis_script, rl_redis_script_len, rc == RL_OK,
                                      dead_ms, events))) {
        snprintf(err, errlen, "redis store: out of memory");
        redis_free(s ? &s->base : NULL);
        return NULL;
    }
    return &s->base;
}

rl_store *rl_store_redis_new(struct event_base *base, const rl_store_conf *conf, char *err,
                             size_t errlen) {
    return rl_store_redis_new_with(base, conf, NULL, err, errlen);
}
