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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "redis_forget.h"
#include "redis_leases.h"
#include "redis_script.h"
#include "redis_sentinel.h"
#include "store_redis_int.h"

#define CALLS_PER_CONNECTION 2 /* script calls in flight per connection at most */

typedef rl_redis_call call;

static void schedule_flush(redis_store *s);

/* ---- clocks, logs, latency ---- */

static int64_t cache_clock(const redis_store *s) {
    return s->clock ? *s->clock : rl_clock_mono_us();
}

void rl_redis_log_limited(redis_store *s, const char *fmt, ...) {
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
    return i < RL_REDIS_LATENCY_BUCKETS ? i : RL_REDIS_LATENCY_BUCKETS - 1;
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
    for (size_t i = 0; i < RL_REDIS_LATENCY_BUCKETS && s->latency_count; i++) {
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

void rl_redis_answer_error(redis_store *s, rl_redis_request *req, rl_status status,
                           const char *errstr) {
    rl_store_answer ans;
    if (req->answered)
        return;
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
        if (c->reqs[i] && !c->reqs[i]->answered) {
            (*counter)++;
            rl_redis_answer_error(c->store, c->reqs[i], status, errstr);
        }
    }
}

// Frees the call and the requests it still holds (a request taken elsewhere is NULL).
// A call whose ASKING is still out (its own send failed after it) lives on, emptied,
// until the ASKING's callback, which the pool still holds.
static void call_free(call *c) {
    for (size_t i = 0; i < c->count; i++)
        rl_free(c->reqs[i]);
    c->count = 0;
    if (c->asking_out)
        c->orphan = 1;
    else
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

// Returns 1 (unwritten) or 2 (maybe written in part) if a cluster node call's answer
// says the request's slot was not served whole here, 0 otherwise.
static int redirect_kind(const redis_store *s, const rl_store_answer *ans) {
    if (!s->cluster || ans->status != RL_ST_INTERNAL || !ans->errstr)
        return 0;
    if (strncmp(ans->errstr, RL_REDIS_REDIRECT, strlen(RL_REDIS_REDIRECT)) == 0)
        return 1;
    return strstr(ans->errstr, "non local key") || strstr(ans->errstr, "TRYAGAIN") ? 2 : 0;
}

// Returns 1 if req gives units back (a REFUND, or an ADJUST by a negative cost): such a
// request that failed after a write is not sent again (it could give back twice).
static int gives_back(const rl_redis_request *req) {
    for (size_t i = 0; req->op == RL_STORE_ADJUST && i < req->count; i++)
        if (req->items[i].cost < 0)
            return 1;
    return req->op == RL_STORE_REFUND;
}

// The RELEASE hint: the ids of leases this store acquired on an absent set (their set is
// likely still that lease alone when they are released, which the script then tries with
// one ZPOPMIN instead of a read and a DEL; see redis_script.lua). Only the cost depends on
// it: a wrong hint costs the script three or four more commands (the pop, the members
// put back, a TTL check and perhaps a TTL) before the usual read, a lost one nothing; a
// client can only make its own RELEASEs dearer so. Ids are
// SipHash outputs, so their low bits spread them.
static void alone_put(redis_store *s, uint64_t id) {
    if (!s->alone && !(s->alone = rl_calloc(RL_REDIS_ALONE_SLOTS, sizeof(*s->alone))))
        return; /* no hint */
    s->alone[id & (RL_REDIS_ALONE_SLOTS - 1)] = id;
}

// Returns 1 (and forgets it) if lease id is remembered by alone_put.
static int alone_take(redis_store *s, uint64_t id) {
    uint64_t *at = s->alone ? &s->alone[id & (RL_REDIS_ALONE_SLOTS - 1)] : NULL;
    if (!at || *at != id || id == 0)
        return 0;
    *at = 0;
    return 1;
}

static void on_answer(void *arg, rl_redis_request *req, rl_store_answer *ans) {
    call *c = arg;
    redis_store *s = c->store;
    if (req->answered)
        return; /* answered at its deadline already */
    int kind = redirect_kind(s, ans);
    if (kind == 2 && gives_back(req))
        kind = 0; /* answered INTERNAL: what it wrote stays */
    if ((req->resend = (uint8_t)kind) != 0)
        return; /* sent again alone (on_call_reply) */
    if (ans->status == RL_ST_INTERNAL) {
        s->errors.item++;
        rl_redis_log_limited(s,
                             "a request failed inside the script (the others of its call were "
                             "answered): %s",
                             ans->errstr ? ans->errstr : "?");
    }
    if (req->op == RL_STORE_ACQUIRE && req->alone && ans->status == RL_ST_ALLOWED)
        alone_put(s, req->items[0].lease);
    if (s->cache && req->op == RL_STORE_CHECK && req->count == 1 && ans->status == RL_ST_DENIED &&
        !req->uncached)
        rl_redis_cache_insert(s->cache, &req->items[0], req->cache_stamp, c->sent_clock,
                              ans->now_us, &ans->verdicts[0]);
    answer(s, req, ans);
}

static int all_answered(const call *c) {
    for (size_t i = 0; i < c->count; i++)
        if (c->reqs[i] && !c->reqs[i]->answered)
            return 0;
    return 1;
}

// Writes the call's command to s->buf: EVALSHA with sha, or EVAL if sha is NULL.
static int encode_call(redis_store *s, call *c, const char *sha) {
    if (!s->cluster)
        return rl_redis_call_encode(&s->buf, c->reqs, c->count, sha, c->now_override);
    return rl_redis_call_encode_cluster(&s->buf, c->reqs, c->count, sha, c->now_override,
                                        c->route != RL_ROUTE_NODE);
}

static void on_asking_reply(rl_redis_cmd *cmd, redisReply *reply) {
    call *c = (call *)((char *)cmd - offsetof(call, asking));
    (void)reply; /* the call's own reply tells what happened */
    c->asking_out = 0;
    if (c->orphan)
        rl_free(c);
}

// Sends s->buf for the call on its node (after ASKING on the same connection for an ASK
// redirect; on conn if not NULL). Returns RL_OK or RL_ERR.
static int send_buf(redis_store *s, call *c, rl_redis_conn *conn) {
    rl_redis_pool *pool = c->node->pool;
    if (c->route == RL_ROUTE_ASKING) {
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        c->asking.fn = on_asking_reply;
        if (rl_redis_pool_send(pool, conn, &c->asking, asking, sizeof(asking) - 1) != RL_OK)
            return RL_ERR;
        c->asking_out = 1;
        conn = c->asking.conn;
    }
    return rl_redis_pool_send(pool, conn, &c->cmd, s->buf.data, s->buf.len);
}

// Resends the call as EVAL (which loads the script) after NOSCRIPT, unless nobody waits
// for it any more. Returns RL_OK if sent.
static int resend_as_eval(call *c) {
    redis_store *s = c->store;
    if (all_answered(c))
        return RL_ERR;
    c->retried = 1;
    s->noscript++;
    if (encode_call(s, c, NULL) != RL_OK ||
        send_buf(s, c, c->route == RL_ROUTE_ASKING ? NULL : c->cmd.conn) != RL_OK)
        return RL_ERR;
    c->node->calls_out++;
    return RL_OK;
}

// Hands the call's requests that its node did not serve to the cluster's redirects.
static void take_redirects(call *c, const char *error) {
    for (size_t i = 0; i < c->count; i++) {
        rl_redis_request *req = c->reqs[i];
        if (!req || req->answered)
            continue;
        if (!error && !req->resend)
            continue;
        int taken = error ? rl_redis_cluster_redirect(c->store, c, req, error)
                          : rl_redis_cluster_resend(c->store, req, req->resend == 2);
        if (!error && !taken)
            rl_redis_answer_error(c->store, req, RL_ST_STORE_UNAVAILABLE,
                                  "the key's slot kept moving (redirects exhausted)");
        req->resend = 0;
        if (taken)
            c->reqs[i] = NULL;
    }
}

static void note_latency(call *c) {
    rl_redis_node *node = c->node;
    int64_t took = rl_clock_mono_us() - c->sent_us;
    node->latency_sum_us += (uint64_t)took;
    node->latency_calls++;
    node->latency_max_us = took > node->latency_max_us ? took : node->latency_max_us;
}

// Returns 1 for the errors of a server that is no longer (or not yet) a usable master.
static int role_error(const char *msg) {
    return strncmp(msg, "READONLY", 8) == 0 || strncmp(msg, "LOADING", 7) == 0 ||
           strncmp(msg, "MASTERDOWN", 10) == 0;
}

static void on_call_reply(rl_redis_cmd *cmd, redisReply *reply) {
    call *c = (call *)cmd;
    redis_store *s = c->store;
    const char *why = NULL;
    c->node->calls_out--;
    if (!reply) {
        c->node->call_errors++;
        fail_call(c, RL_ST_STORE_UNAVAILABLE, "the connection to redis was lost",
                  &s->errors.disconnected);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        note_latency(c);
        if (!c->retried && strncmp(reply->str, "NOSCRIPT", 8) == 0 && resend_as_eval(c) == RL_OK)
            return; /* the call lives on */
        if (s->cluster)
            take_redirects(c, reply->str);
        if (s->sentinel && role_error(reply->str))
            rl_redis_sentinel_refresh(s->sentinel); /* the call is answered, never replayed */
        if (!all_answered(c)) {
            c->node->call_errors++;
            rl_redis_log_limited(s, "the script call to %s failed: %s", c->node->addr, reply->str);
        }
        fail_call(c, RL_ST_STORE_UNAVAILABLE, reply->str, &s->errors.redis);
    } else {
        note_latency(c);
        if (rl_redis_call_decode(reply, c->reqs, c->count, on_answer, c, &why) != RL_OK) {
            rl_redis_log_limited(s, "%s (reply type %d)", why, reply->type);
            fail_call(c, RL_ST_INTERNAL, why, &s->errors.reply);
        } else if (s->cluster) {
            take_redirects(c, NULL);
        }
    }
    call_free(c);
    if (!s->closing)
        schedule_flush(s); /* a slot is free: what queued meanwhile goes in one call */
}

/* ---- sending ---- */

// Counts the queued requests (from the head) that make one call: whole requests of at
// most batch_max items together, at least one; a request to be sent alone (a redirect)
// makes a call by itself.
static size_t next_call_size(const rl_redis_node *node, size_t batch_max) {
    size_t count = 0, items = 0;
    for (const rl_redis_request *r = node->queue_head; r; r = r->queue_next) {
        if (r->answered)
            continue;
        if (r->route != RL_ROUTE_NODE)
            return count ? count : 1;
        if (count > 0 && items + r->count > batch_max)
            break;
        count++;
        items += r->count;
    }
    return count;
}

// Moves the next count unanswered requests of the node's queue into c (freeing
// answered ones).
static void take_from_queue(rl_redis_node *node, call *c, size_t count) {
    while (c && c->count < count) {
        rl_redis_request *r = node->queue_head;
        node->queue_head = r->queue_next;
        r->queue_next = NULL;
        if (r->answered)
            rl_free(r);
        else
            c->reqs[c->count++] = r;
    }
    while (node->queue_head && node->queue_head->answered) {
        rl_redis_request *r = node->queue_head;
        node->queue_head = r->queue_next;
        rl_free(r);
    }
    if (!node->queue_head)
        node->queue_tail = NULL;
}

static int by_slot(const void *a, const void *b) {
    const rl_redis_request *x = *(rl_redis_request *const *)a, *y = *(rl_redis_request *const *)b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq; /* submit order (qsort is not stable) */
}

// Orders a cluster node call's requests by slot (the script reads a slot's keys at once),
// keeping submit order within a slot (requests of a key are decided in submit order).
static void sort_by_slot(call *c) {
    for (size_t i = 1; i < c->count; i++) {
        if (c->reqs[i]->slot < c->reqs[i - 1]->slot) {
            qsort(c->reqs, c->count, sizeof(c->reqs[0]), by_slot);
            return;
        }
    }
}

static void send_call(redis_store *s, call *c) {
    size_t items = 0;
    for (size_t i = 0; i < c->count; i++)
        items += c->reqs[i]->count;
    c->route = c->reqs[0]->route;
    if (s->cluster && c->route == RL_ROUTE_NODE)
        sort_by_slot(c);
    c->sent_clock = cache_clock(s);
    c->now_override = s->clock ? *s->clock : 0;
    c->sent_us = rl_clock_mono_us();
    s->calls++;
    s->call_items += items;
    c->node->calls++;
    c->node->call_items += items;
    if (encode_call(s, c, rl_redis_pool_sha(c->node->pool)) != RL_OK) {
        fail_call(c, RL_ST_INTERNAL, "out of memory", &s->errors.internal);
        call_free(c);
    } else if (send_buf(s, c, NULL) == RL_OK) {
        c->node->calls_out++;
    } else {
        c->node->call_errors++;
        fail_call(c, RL_ST_STORE_UNAVAILABLE, "no connection to redis took the call",
                  &s->errors.disconnected);
        call_free(c);
    }
}

// Returns the script calls a node may have in flight: CALLS_PER_CONNECTION per
// connection on one Redis; on a cluster the same budget as one Redis's pool, shared by
// the masters (at least CALLS_PER_CONNECTION each), so that what waits meanwhile goes out
// in as few calls as on one Redis: batching survives the split (a master gets a third of
// the load of three, and would otherwise send calls a third as large).
static size_t node_call_cap(const redis_store *s) {
    size_t pool = s->conf.pool > 0 ? (size_t)s->conf.pool : RL_REDIS_DEFAULT_POOL;
    size_t masters = s->cluster ? s->masters : 0;
    size_t share = masters ? pool * CALLS_PER_CONNECTION / masters : pool * CALLS_PER_CONNECTION;
    return share > CALLS_PER_CONNECTION ? share : CALLS_PER_CONNECTION;
}

// Sends what the node's queue holds, as long as a connection has room (and, on a
// cluster, the node is within its share of calls in flight).
static void flush_node(redis_store *s, rl_redis_node *node) {
    if (!node->queue_head)
        return;
    size_t cap = node_call_cap(s);
    while (node->queue_head && node->calls_out < cap &&
           rl_redis_pool_least_in_flight(node->pool) < CALLS_PER_CONNECTION) {
        size_t count = next_call_size(node, s->batch_max);
        if (!count) {
            take_from_queue(node, NULL, 0); /* only answered requests were left */
            return;
        }
        call *c = rl_calloc(1, sizeof(call) + count * sizeof(rl_redis_request *));
        if (!c) {
            rl_redis_log_limited(s, "out of memory; %zu requests wait for their deadline", count);
            return;
        }
        c->cmd.fn = on_call_reply;
        c->store = s;
        c->node = node;
        take_from_queue(node, c, count);
        send_call(s, c);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
    redis_store *s = arg;
    (void)fd;
    (void)what;
    s->flush_scheduled = 0;
    for (size_t i = 0; i < s->node_count; i++)
        flush_node(s, s->nodes[i]);
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
        rl_redis_answer_error(s, s->oldest, RL_ST_STORE_UNAVAILABLE,
                              "no reply from redis within command_timeout_ms");
    }
    arm_expiry(s);
}

void rl_redis_node_enqueue(rl_redis_node *node, rl_redis_request *req) {
    req->queue_next = NULL;
    if (node->queue_tail)
        node->queue_tail->queue_next = req;
    else
        node->queue_head = req;
    node->queue_tail = req;
    schedule_flush(node->store);
}

// Puts req on the unanswered list (its deadline runs from submitted_us).
static void track(redis_store *s, rl_redis_request *req) {
    req->prev = s->newest;
    if (s->newest)
        s->newest->next = req;
    else
        s->oldest = req;
    s->newest = req;
    if (!event_pending(s->expiry, EV_TIMEOUT, NULL))
        arm_expiry(s);
}

void rl_redis_route(redis_store *s, rl_redis_request *req) {
    rl_redis_node *node = s->cluster ? rl_redis_cluster_owner(s, req->slot) : s->nodes[0];
    track(s, req);
    if (!node) {
        s->errors.unrouted++;
        rl_redis_answer_error(s, req, RL_ST_STORE_UNAVAILABLE,
                              "no redis cluster master is known for the key's slot");
        rl_free(req);
    } else if (!rl_redis_pool_up(node->pool)) {
        s->errors.down++;
        rl_redis_answer_error(s, req, RL_ST_STORE_UNAVAILABLE, "redis is down");
        rl_free(req);
    } else {
        rl_redis_node_enqueue(node, req);
    }
}

/* ---- pool events ---- */

static void on_pool_ready(void *arg) {
    rl_redis_node *node = arg;
    if (node->queue_head)
        schedule_flush(node->store);
    if (node->store->cluster)
        rl_redis_cluster_node_event(node->store, node);
}

// Sentinel mode: a server the pool reached is not the master (any more): ask again.
static void on_wrong_role(void *arg) {
    rl_redis_node *node = arg;
    if (node->store->sentinel)
        rl_redis_sentinel_refresh(node->store->sentinel);
}

// The node's pool went down: what waits to be sent there is answered now.
static void on_pool_down(void *arg) {
    rl_redis_node *node = arg;
    redis_store *s = node->store;
    while (node->queue_head) {
        rl_redis_request *r = node->queue_head;
        node->queue_head = r->queue_next;
        if (!r->answered) {
            s->errors.down++;
            rl_redis_answer_error(s, r, RL_ST_STORE_UNAVAILABLE, "redis is down");
        }
        rl_free(r);
    }
    node->queue_tail = NULL;
    if (s->cluster)
        rl_redis_cluster_node_event(s, node);
    if (s->sentinel)
        rl_redis_sentinel_refresh(s->sentinel);
}

// Sets the node's host, port and printed address ("host:port", "[v6]:port", "unix:PATH",
// or "none" before a Sentinel named the master).
static void set_address(rl_redis_node *node, const char *host, uint16_t port) {
    int v6 = host && strchr(host, ':') != NULL;
    snprintf(node->host, sizeof(node->host), "%s", host ? host : "");
    node->port = port;
    if (host)
        snprintf(node->addr, sizeof(node->addr), "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
                 (unsigned)port);
    else if (node->store->conf.unix_path)
        snprintf(node->addr, sizeof(node->addr), "unix:%s", node->store->conf.unix_path);
    else
        snprintf(node->addr, sizeof(node->addr), "none");
}

rl_redis_node *rl_redis_node_new(redis_store *s, const char *host, uint16_t port, int up) {
    rl_redis_node *node = rl_calloc(1, sizeof(*node));
    rl_redis_node **grown = rl_realloc(s->nodes, (s->node_count + 1) * sizeof(*grown));
    if (!node || !grown) {
        rl_free(node);
        if (grown)
            s->nodes = grown;
        return NULL;
    }
    s->nodes = grown;
    node->store = s;
    set_address(node, host, port);
    rl_store_conf conf = s->conf;
    conf.host = host ? node->host : NULL;
    conf.port = port;
    const char *script = s->cluster ? rl_redis_cluster_script : rl_redis_script;
    size_t len = s->cluster ? rl_redis_cluster_script_len : rl_redis_script_len;
    rl_redis_pool_events events = {
        .ready = on_pool_ready, .down = on_pool_down, .wrong_role = on_wrong_role, .arg = node};
    node->pool = rl_redis_pool_new(s->ev, &conf, script, len, up, s->dead_after_ms, events);
    if (!node->pool) {
        rl_free(node);
        return NULL;
    }
    s->nodes[s->node_count++] = node;
    return node;
}

/* ---- the interface ---- */

// Sets req->slot to its first item's slot and slots[i] to item i's (cluster). Returns 1
// if the items lie in more than one slot.
static int set_slot(rl_redis_request *req, uint16_t *slots) {
    int several = 0;
    for (size_t i = 0; i < req->count; i++) {
        slots[i] = rl_redis_slot(req->items[i].rkey, req->items[i].rkey_len);
        several |= slots[i] != slots[0];
    }
    req->slot = slots[0];
    return several;
}

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
    rl_redis_request *req = rl_redis_request_new(op, items, n, s->prefix, s->prefix_len, &status);
    if (req && op == RL_STORE_RELEASE && n == 1)
        req->alone = (uint8_t)alone_take(s, items[0].lease);
    if (!req) {
        int too_long = status == RL_ST_KEY_TOO_LONG;
        (*(too_long ? &s->errors.key_too_long : &s->errors.internal))++;
        answer_now(status, n, too_long ? "the redis key would exceed 4096 bytes" : "out of memory",
                   done, arg);
        return RL_OK;
    }
    uint16_t slots[RL_MAX_ITEMS];
    if (s->cluster && set_slot(req, slots)) {
        rl_free(req); /* one part per slot; each part is counted as a request */
        s->requests--;
        s->items -= n;
        return rl_redis_split_submit(s, op, items, n, slots, done, arg);
    }
    req->done = done;
    req->arg = arg;
    req->submitted_us = rl_clock_mono_us();
    req->seq = ++s->seq;
    req->uncached = (uint8_t)s->submitting_part;
    if (s->cache && op == RL_STORE_CHECK && n == 1)
        req->cache_stamp = rl_redis_cache_stamp(s->cache, &items[0]);
    rl_redis_route(s, req);
    return RL_OK;
}

// A reply to a listing's command came back: script calls that waited for room on the
// connections are sent.
static void on_listing_reply(void *arg) {
    redis_store *s = arg;
    if (!s->closing)
        schedule_flush(s);
}

// Returns the node that holds key's leases: the single Redis, or (cluster) the master of
// the key's slot; NULL if none is known or (cluster) no key was given.
static rl_redis_node *listing_node(redis_store *s, const char *ns, size_t ns_len, const char *key,
                                   size_t key_len, const char **why) {
    *why = "redis is down";
    if (!s->cluster)
        return s->nodes[0];
    *why = "on a redis cluster, LEASES lists one key's leases: give a KEY";
    if (key_len == 0)
        return NULL;
    rl_limits one = {.rate_count = 1};
    rl_store_item item = {&one, ns, ns_len, key, key_len, 0, 0, 0};
    rl_status status;
    rl_redis_request *req =
        rl_redis_request_new(RL_STORE_PEEK, &item, 1, s->prefix, s->prefix_len, &status);
    *why = "no redis cluster master is known for the key's slot";
    if (!req)
        return NULL;
    uint16_t slot = rl_redis_slot(req->items[0].rkey, req->items[0].rkey_len);
    rl_free(req);
    return rl_redis_cluster_owner(s, slot);
}

// Lists the leases held (redis_leases.h): plain commands on the pool, not the script.
static int redis_leases(rl_store *store, const char *ns, size_t ns_len, const char *key,
                        size_t key_len, size_t max, rl_store_leases_done *done, void *arg) {
    redis_store *s = (redis_store *)store;
    const char *why;
    if (s->closing)
        return RL_ERR;
    rl_redis_node *node = listing_node(s, ns, ns_len, key, key_len, &why);
    if (!node || !rl_redis_pool_up(node->pool)) {
        s->errors.down += node != NULL;
        rl_store_lease_list out = {.status = RL_ST_STORE_UNAVAILABLE, .errstr = why};
        done(arg, &out);
        return RL_OK;
    }
    rl_redis_leases_query q = {s->prefix,     s->prefix_len,    ns, ns_len, key, key_len, max,
                               s->timeout_us, on_listing_reply, s};
    return rl_redis_leases_start(node->pool, s->ev, &q, done, arg);
}

static void redis_forget_ns(rl_store *store, const char *ns, size_t ns_len) {
    redis_store *s = (redis_store *)store;
    s->forgets++;
    if (s->cache)
        rl_redis_cache_forget_ns(s->cache, ns, ns_len);
    for (size_t i = 0; i < s->node_count; i++) {
        rl_redis_node *node = s->nodes[i];
        if ((s->cluster && !node->master) ||
            rl_redis_forget_start(node->pool, s->prefix, s->prefix_len, ns, ns_len) == RL_OK)
            continue;
        rl_log_warn("redis store: cannot forget the keys of %.*s on %s now; they expire by "
                    "their TTL",
                    (int)ns_len, ns, node->addr);
    }
}

// The traffic and the pools' figures (connections and their handshakes), summed.
static void pool_stats(const redis_store *s, rl_store_figures *out) {
    rl_redis_pool_stats p = {0};
    for (size_t i = 0; i < s->node_count; i++) {
        rl_redis_pool_stats one = rl_redis_pool_figures(s->nodes[i]->pool);
        p.connections += one.connections;
        p.ready += one.ready;
        p.in_flight += one.in_flight;
        p.connects += one.connects;
        p.reconnects += one.reconnects;
        p.failures += one.failures;
        p.dead += one.dead;
    }
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
    static const char *const names[] = {"down",  "timeout",      "disconnected", "redis",   "item",
                                        "reply", "key_too_long", "internal",     "unrouted"};
    const rl_redis_errors *e = &s->errors;
    const uint64_t counts[] = {e->down,  e->timeout,      e->disconnected, e->redis,   e->item,
                               e->reply, e->key_too_long, e->internal,     e->unrouted};
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

// Returns the store's state word: up, down, or (cluster) degraded when some masters
// (or some slots' masters) are down.
static const char *state_word(const redis_store *s) {
    size_t up = 0, masters = 0;
    for (size_t i = 0; i < s->node_count; i++) {
        if (s->cluster && !s->nodes[i]->master)
            continue;
        masters++;
        up += (size_t)rl_redis_pool_up(s->nodes[i]->pool);
    }
    if (masters == 0 || up == 0)
        return "down";
    return up == masters ? "up" : "degraded";
}

static void redis_stats(rl_store *store, rl_store_figures *out) {
    redis_store *s = (redis_store *)store;
    out->type = "redis";
    rl_figures_word(out, NULL, "state", state_word(s));
    rl_figures_word(out, NULL, "mode",
                    s->cluster    ? "cluster"
                    : s->sentinel ? "sentinel"
                                  : "single");
    pool_stats(s, out);
    rl_figures_add(out, NULL, "forgets", RL_FIGURE_COUNTER, s->forgets);
    error_and_cache_stats(s, out);
    if (s->cluster)
        rl_redis_cluster_figures(s, out);
    if (s->sentinel)
        rl_redis_sentinel_figures(s->sentinel, out);
    out->latency = (rl_latency_figures){.present = 1,
                                        .count = s->latency_count,
                                        .p50_us = latency_percentile(s, 0.50),
                                        .p99_us = latency_percentile(s, 0.99),
                                        .max_us = s->latency_max};
}

static void free_queues(redis_store *s) {
    for (size_t i = 0; i < s->node_count; i++) {
        rl_redis_node *node = s->nodes[i];
        while (node->queue_head) {
            rl_redis_request *r = node->queue_head;
            node->queue_head = r->queue_next;
            rl_free(r);
        }
        node->queue_tail = NULL;
    }
}

static void redis_free(rl_store *store) {
    redis_store *s = (redis_store *)store;
    if (!s)
        return;
    s->closing = 1;
    while (s->oldest)
        rl_redis_answer_error(s, s->oldest, RL_ST_STORE_UNAVAILABLE, "the store is stopping");
    free_queues(s);
    rl_redis_cluster_stop(s);
    rl_redis_sentinel_free(s->sentinel);
    for (size_t i = 0; i < s->node_count; i++) {
        rl_redis_pool_free(s->nodes[i]->pool); /* calls in flight come back with NULL */
        rl_free(s->nodes[i]);
    }
    rl_free(s->nodes);
    rl_free(s->owner);
    if (s->flush)
        event_free(s->flush);
    if (s->expiry)
        event_free(s->expiry);
    rl_redis_cache_free(s->cache);
    rl_free(s->buf.data);
    rl_free(s->prefix);
    rl_free(s->username);
    rl_free(s->password);
    rl_free(s->alone);
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
    if (!conf->host && !conf->unix_path && conf->mode != RL_REDIS_SENTINEL) {
        snprintf(err, errlen, "store: the redis store needs a host or a unix socket path");
        return RL_ERR;
    }
    if (strpbrk(prefix, "{}")) {
        snprintf(err, errlen, "store.key_prefix: \"%s\" must not hold { or } (hash tags)", prefix);
        return RL_ERR;
    }
    return RL_OK;
}

// Copies what every node's pool needs: credentials (owned), timeouts, pool size, db.
static int copy_conf(redis_store *s, const rl_store_conf *conf) {
    s->conf = *conf;
    s->conf.url = s->conf.key_prefix = s->conf.sentinel_master = NULL;
    s->conf.seeds = s->conf.sentinels = NULL;
    s->conf.host = NULL;
    s->conf.unix_path = NULL; /* set per node */
    s->username = conf->username ? rl_strndup(conf->username, strlen(conf->username)) : NULL;
    s->password = conf->password ? rl_strndup(conf->password, strlen(conf->password)) : NULL;
    s->conf.username = s->username;
    s->conf.password = s->password;
    return (!conf->username || s->username) && (!conf->password || s->password) ? RL_OK : RL_ERR;
}

static int setup(redis_store *s, struct event_base *base, const rl_store_conf *conf,
                 const rl_store_redis_options *options) {
    const char *prefix = conf->key_prefix ? conf->key_prefix : RL_REDIS_DEFAULT_KEY_PREFIX;
    int timeout_ms = conf->command_timeout_ms > 0 ? conf->command_timeout_ms
                                                  : RL_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    s->base.ops = &redis_ops;
    s->ev = base;
    s->clock = options->clock;
    s->prefix_len = strlen(prefix);
    s->prefix = rl_strndup(prefix, s->prefix_len);
    s->timeout_us = (int64_t)timeout_ms * 1000;
    s->dead_after_ms = options->dead_after_ms > 0
                           ? options->dead_after_ms
                           : (timeout_ms * 20 > 2000 ? timeout_ms * 20 : 2000);
    s->batch_max = conf->batch_max > 0 ? (size_t)conf->batch_max : RL_REDIS_DEFAULT_BATCH_MAX;
    s->cluster = conf->mode == RL_REDIS_CLUSTER;
    s->flush = event_new(base, -1, 0, on_flush, s);
    s->expiry = event_new(base, -1, 0, on_expiry, s);
    if (!options->no_cache)
        s->cache = rl_redis_cache_new(RL_REDIS_CACHE_SLOTS);
    if (copy_conf(s, conf) != RL_OK)
        return RL_ERR;
    return s->prefix && s->flush && s->expiry && (s->cache || options->no_cache) ? RL_OK : RL_ERR;
}

// The single Redis of conf's url: checked synchronously, then one node.
static int start_single(redis_store *s, const rl_store_conf *conf, char *err, size_t errlen) {
    char sha[41];
    int rc = rl_redis_pool_check(conf, rl_redis_script, rl_redis_script_len, sha, err, errlen);
    if (rc == RL_ERR)
        return RL_ERR;
    if (rc == RL_AGAIN)
        rl_log_warn("redis store: %s; starting down (STORE_UNAVAILABLE) and reconnecting", err);
    s->conf.unix_path = conf->unix_path;
    rl_redis_node *node = rl_redis_node_new(s, conf->host, conf->port, rc == RL_OK);
    s->conf.unix_path = NULL;
    if (!node) {
        snprintf(err, errlen, "redis store: out of memory");
        return RL_ERR;
    }
    /* a unix socket path is kept by the pool; the node's address names it */
    return RL_OK;
}

// The master a Sentinel hands over (at startup or after a failover): the node's
// connections move there (calls in flight are answered by on_store_error, not replayed).
static void on_master(void *arg, const char *host, uint16_t port) {
    redis_store *s = arg;
    rl_redis_node *node = s->nodes[0];
    set_address(node, host, port);
    if (rl_redis_pool_retarget(node->pool, host, port) != RL_OK)
        rl_redis_log_limited(s, "cannot move to the new master %s", node->addr);
}

// The master the Sentinels name: resolved synchronously (or later, if none answers),
// then followed.
static int start_sentinel(redis_store *s, const rl_store_conf *conf, char *err, size_t errlen) {
    char host[RL_REDIS_HOST_MAX];
    uint16_t port = 0;
    int rc = rl_redis_sentinel_resolve(conf, host, sizeof(host), &port, err, errlen);
    if (rc == RL_ERR)
        return RL_ERR;
    if (rc == RL_AGAIN)
        rl_log_warn("redis store: %s; starting down (STORE_UNAVAILABLE) and asking the "
                    "Sentinels again",
                    err);
    rl_redis_node *node = rl_redis_node_new(s, rc == RL_OK ? host : NULL, port, rc == RL_OK);
    s->sentinel =
        node ? rl_redis_sentinel_new(s->ev, conf, rc == RL_OK ? host : NULL, port, on_master, s)
             : NULL;
    if (!s->sentinel) {
        snprintf(err, errlen, "redis store: out of memory");
        return RL_ERR;
    }
    return RL_OK;
}

rl_store *rl_store_redis_new_with(struct event_base *base, const rl_store_conf *conf,
                                  const rl_store_redis_options *options, char *err, size_t errlen) {
    static const rl_store_redis_options defaults = {0};
    options = options ? options : &defaults;
    if (check_conf(conf, err, errlen) != RL_OK)
        return NULL;
    redis_store *s = rl_calloc(1, sizeof(*s));
    if (!s || setup(s, base, conf, options) != RL_OK) {
        snprintf(err, errlen, "redis store: out of memory");
        redis_free(s ? &s->base : NULL);
        return NULL;
    }
    int rc = s->cluster                        ? rl_redis_cluster_start(s, conf, err, errlen)
             : conf->mode == RL_REDIS_SENTINEL ? start_sentinel(s, conf, err, errlen)
                                               : start_single(s, conf, err, errlen);
    if (rc == RL_ERR) {
        redis_free(&s->base);
        return NULL;
    }
    return &s->base;
}

rl_store *rl_store_redis_new(struct event_base *base, const rl_store_conf *conf, char *err,
                             size_t errlen) {
    return rl_store_redis_new_with(base, conf, NULL, err, errlen);
}
