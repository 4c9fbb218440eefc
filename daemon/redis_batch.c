/*
 * redis_batch.c: copies of submits, and the script call that carries many of them
 * (see redis_batch.h and, for the call's layout, redis_script.lua).
 */
#include "redis_batch.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "alloc.h"
#include "redis_script.h"

#define SET_DEDUP_SCAN 32 /* distinct limit sets searched for a match, newest first */

/* ---- requests ---- */

static int is_escaped(unsigned char c) {
    return c == ':' || c == '{' || c == '}' || c == '%';
}

static size_t escaped_len(const char *s, size_t len) {
    size_t out = len;
    for (size_t i = 0; i < len; i++)
        out += is_escaped((unsigned char)s[i]) ? 2 : 0;
    return out;
}

static char *write_escaped(char *at, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_escaped(c)) {
            *at++ = (char)c;
            continue;
        }
        *at++ = '%';
        *at++ = hex[c >> 4];
        *at++ = hex[c & 15];
    }
    return at;
}

size_t rl_redis_ns_escape(const char *ns, size_t len, char *out) {
    return out ? (size_t)(write_escaped(out, ns, len) - out) : escaped_len(ns, len);
}

size_t rl_redis_glob_escape(const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int special = s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == ']' || s[i] == '\\';
        if (special && out)
            out[n] = '\\';
        n += (size_t)special;
        if (out)
            out[n] = s[i];
        n++;
    }
    return n;
}

// Returns the length of "<prefix>{<escaped ns>:<key>}:" for the item.
static size_t rkey_len(const rl_store_item *it, size_t prefix_len) {
    return prefix_len + 1 + escaped_len(it->ns, it->ns_len) + 1 + it->key_len + 2;
}

// Copies the item's names into the block at *at and points the copy at them.
static void copy_names(rl_redis_item *copy, const rl_store_item *it, const char *prefix,
                       size_t prefix_len, char **at) {
    char *p = *at;
    memcpy(p, it->ns, it->ns_len);
    copy->ns = p;
    p += it->ns_len;
    memcpy(p, it->key, it->key_len);
    copy->key = p;
    p += it->key_len;
    copy->rkey = p;
    memcpy(p, prefix, prefix_len);
    p += prefix_len;
    *p++ = '{';
    p = write_escaped(p, it->ns, it->ns_len);
    *p++ = ':';
    memcpy(p, it->key, it->key_len);
    p += it->key_len;
    memcpy(p, "}:", 2);
    p += 2;
    copy->rkey_len = (size_t)(p - copy->rkey);
    *at = p;
}

static int is_log(const rl_rate *rate) {
    return rate->algorithm == RL_ALGO_SLIDING_LOG;
}

// Returns 1 if one of the rates is a sliding log (whose companion key is the longest).
static int has_log(const rl_limits *limits) {
    for (size_t r = 0; r < limits->rate_count; r++)
        if (is_log(&limits->rates[r]))
            return 1;
    return 0;
}

rl_redis_request *rl_redis_request_new(rl_store_op op, const rl_store_item *items, size_t n,
                                       const char *prefix, size_t prefix_len, rl_status *status) {
    size_t bytes = sizeof(rl_redis_request) + n * sizeof(rl_redis_item);
    for (size_t i = 0; i < n; i++) {
        size_t rlen = rkey_len(&items[i], prefix_len);
        /* + the rate index digit, and a log's companion mark */
        if (rlen + 1 + (size_t)has_log(items[i].limits) > RL_REDIS_MAX_KEY) {
            *status = RL_ST_KEY_TOO_LONG;
            return NULL;
        }
        bytes += items[i].ns_len + items[i].key_len + rlen;
    }
    rl_redis_request *req = rl_malloc(bytes);
    if (!req) {
        *status = RL_ST_INTERNAL;
        return NULL;
    }
    memset(req, 0, sizeof(*req));
    req->op = op;
    req->count = (uint8_t)n;
    char *at = (char *)&req->items[n];
    for (size_t i = 0; i < n; i++) {
        req->items[i].limits = *items[i].limits;
        req->items[i].cost = items[i].cost;
        req->items[i].lease = items[i].lease;
        req->items[i].at_us = items[i].at_us;
        req->items[i].ns_len = items[i].ns_len;
        req->items[i].key_len = items[i].key_len;
        copy_names(&req->items[i], &items[i], prefix, prefix_len, &at);
    }
    return req;
}

/* ---- writing commands ---- */

static int reserve(rl_redis_cmdbuf *buf, size_t more) {
    if (buf->len + more <= buf->cap)
        return RL_OK;
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < buf->len + more)
        cap *= 2;
    char *data = rl_realloc(buf->data, cap);
    if (!data)
        return RL_ERR;
    buf->data = data;
    buf->cap = cap;
    return RL_OK;
}

// Writes u in decimal at out, after a '-' if negative is set; returns the bytes
// written (at most 21).
static size_t format_u64(char *out, uint64_t u, int negative) {
    char tmp[24];
    size_t n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (negative)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

// Writes value in decimal at out; returns the bytes written (at most 20).
static size_t format_i64(char *out, int64_t value) {
    uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    return format_u64(out, u, value < 0);
}

// Appends "<mark><n>\r\n" (an array or bulk header).
static void put_header(rl_redis_cmdbuf *buf, char mark, int64_t n) {
    buf->data[buf->len++] = mark;
    buf->len += format_i64(buf->data + buf->len, n);
    memcpy(buf->data + buf->len, "\r\n", 2);
    buf->len += 2;
}

// Appends one bulk string of a then b (b may be empty). Room was reserved.
static void put_bulk2(rl_redis_cmdbuf *buf, const char *a, size_t alen, const char *b,
                      size_t blen) {
    put_header(buf, '$', (int64_t)(alen + blen));
    memcpy(buf->data + buf->len, a, alen);
    memcpy(buf->data + buf->len + alen, b, blen);
    buf->len += alen + blen;
    memcpy(buf->data + buf->len, "\r\n", 2);
    buf->len += 2;
}

static int put_bulk(rl_redis_cmdbuf *buf, const char *s, size_t len) {
    if (reserve(buf, len + 32) != RL_OK)
        return RL_ERR;
    put_bulk2(buf, s, len, "", 0);
    return RL_OK;
}

static int put_digits(rl_redis_cmdbuf *buf, const char *digits, size_t len) {
    if (reserve(buf, len + 32) != RL_OK)
        return RL_ERR;
    put_bulk2(buf, digits, len, "", 0);
    return RL_OK;
}

static int put_int(rl_redis_cmdbuf *buf, int64_t value) {
    char digits[24];
    return put_digits(buf, digits, format_i64(digits, value));
}

// Appends a REFUND's extra argument: "<at_us>", or "<at_us>:<tat after>" for a bucket
// whose tat after the decision is known (redis_script.lua's refund_batch).
static int put_refund(rl_redis_cmdbuf *buf, const rl_redis_item *it) {
    char digits[48];
    size_t len = format_i64(digits, it->at_us);
    if (it->lease) {
        digits[len++] = ':';
        len += format_u64(digits + len, it->lease, 0);
    }
    return put_digits(buf, digits, len);
}

// Appends a lease id in unsigned decimal (the script keeps it as a string).
static int put_lease(rl_redis_cmdbuf *buf, uint64_t lease) {
    char digits[24];
    return put_digits(buf, digits, format_u64(digits, lease, 0));
}

// Appends a lease form batch's lease: its set member "<id>:<cost>" for an ACQUIRE, the
// members' prefix "<id>:" for RELEASE and RENEW (redis_script.lua).
static int put_lease_member(rl_redis_cmdbuf *buf, const rl_redis_request *req) {
    char digits[48];
    size_t len = format_u64(digits, req->items[0].lease, 0);
    digits[len++] = ':';
    if (req->op == RL_STORE_ACQUIRE)
        len += format_i64(digits + len, req->items[0].cost);
    return put_digits(buf, digits, len);
}

// Returns 1 for the concurrency operations: single-item batches whose item carries a
// lease id (RL_REDIS_LEASE_ARGS) and is answered with RL_REDIS_LEASE_FIELDS integers.
static int is_lease_op(rl_store_op op) {
    return op == RL_STORE_ACQUIRE || op == RL_STORE_RELEASE || op == RL_STORE_RENEW;
}

// Returns the arguments after each item's ITEM_ARGS: a lease id (lease ops) or the time
// of the decision given back (REFUND), RL_REDIS_LEASE_ARGS either way; none otherwise.
static size_t extra_args(rl_store_op op) {
    return is_lease_op(op) || op == RL_STORE_REFUND ? RL_REDIS_LEASE_ARGS : 0;
}

/* ---- limit sets: the distinct limits of a call, each sent once ---- */

static int limits_equal(const rl_limits *a, const rl_limits *b) {
    if (a->rate_count != b->rate_count)
        return 0;
    for (size_t r = 0; r < a->rate_count; r++) {
        const rl_rate *x = &a->rates[r], *y = &b->rates[r];
        if (x->algorithm != y->algorithm || x->limit != y->limit || x->period_us != y->period_us ||
            x->burst != y->burst)
            return 0;
    }
    return 1;
}

/* The forms of a call (redis_script.lua): general, compact, lease. */
enum { FORM_GENERAL, FORM_COMPACT, FORM_LEASES };

// Returns 1 if request r is one item of one rate whose algorithm is a or b.
static int one_rate_of(const rl_redis_request *r, rl_algorithm a, rl_algorithm b) {
    return r->count == 1 && r->items[0].limits.rate_count == 1 &&
           (r->items[0].limits.rates[0].algorithm == a ||
            r->items[0].limits.rates[0].algorithm == b);
}

// Returns the form of the call for reqs[0..count): compact if every request is a CHECK
// of one item with one token bucket or gcra rate, lease if every one is a lease op of
// one item with one concurrency rate, general otherwise.
static int call_form_of(rl_redis_request *const *reqs, size_t count) {
    int compact = 1, leases = 1;
    for (size_t q = 0; q < count && (compact || leases); q++) {
        const rl_redis_request *r = reqs[q];
        compact &= r->op == RL_STORE_CHECK && one_rate_of(r, RL_ALGO_TOKEN_BUCKET, RL_ALGO_GCRA);
        leases &= is_lease_op(r->op) && one_rate_of(r, RL_ALGO_CONCURRENCY, RL_ALGO_CONCURRENCY);
    }
    return count == 0 ? FORM_GENERAL : compact ? FORM_COMPACT : leases ? FORM_LEASES : FORM_GENERAL;
}

/* The call's items in order, with their limit set. */
typedef struct call_plan {
    const rl_limits **sets; /* distinct limit sets */
    size_t set_count;       /* entries in sets */
    uint32_t *set_of;       /* per item (all requests' items in order): its set, 0-based */
    size_t key_count;       /* KEYS: one per rate per item */
    size_t arg_count;       /* ARGV entries */
    int form;               /* call_form_of */
} call_plan;

static uint32_t find_set(call_plan *plan, const rl_limits *limits) {
    size_t lowest = plan->set_count > SET_DEDUP_SCAN ? plan->set_count - SET_DEDUP_SCAN : 0;
    for (size_t s = plan->set_count; s > lowest; s--)
        if (limits_equal(plan->sets[s - 1], limits))
            return (uint32_t)(s - 1);
    plan->sets[plan->set_count] = limits;
    plan->arg_count += 1 + RL_REDIS_RATE_ARGS * (size_t)limits->rate_count;
    return (uint32_t)plan->set_count++;
}

// Returns the Redis keys of an item: one per rate, two for a sliding log.
static size_t item_keys(const rl_limits *limits) {
    size_t keys = limits->rate_count;
    for (size_t r = 0; r < limits->rate_count; r++)
        keys += (size_t)is_log(&limits->rates[r]);
    return keys;
}

// A lease form batch's code: op, limit set and cost in one integer (cost 0 for RELEASE
// and RENEW; a cost above the limit is denied alike whatever it is: sent as limit + 1,
// it keeps the code exact, below 2^53).
static int64_t lease_code(const call_plan *plan, rl_redis_request *const *reqs, size_t q) {
    int64_t cost = reqs[q]->op == RL_STORE_ACQUIRE ? reqs[q]->items[0].cost : 0;
    int64_t over = (int64_t)reqs[q]->items[0].limits.rates[0].limit + 1;
    cost = cost > over ? over : cost;
    int64_t set = (int64_t)plan->set_of[q] + (int64_t)plan->set_count * cost;
    int64_t op = reqs[q]->op == RL_STORE_RELEASE && reqs[q]->alone ? RL_REDIS_OP_RELEASE_ALONE
                                                                   : (int64_t)reqs[q]->op;
    return op + RL_REDIS_LEASE_OPS * set;
}

// The length of the run of lease form batches with the same code from batch q on.
static size_t lease_run(const call_plan *plan, rl_redis_request *const *reqs, size_t count,
                        size_t q) {
    int64_t code = lease_code(plan, reqs, q);
    size_t n = 1;
    while (q + n < count && lease_code(plan, reqs, q + n) == code)
        n++;
    return n;
}

static int plan_call(call_plan *plan, rl_redis_request *const *reqs, size_t count) {
    size_t items = 0;
    for (size_t q = 0; q < count; q++)
        items += reqs[q]->count;
    memset(plan, 0, sizeof(*plan));
    plan->sets = rl_malloc(items * sizeof(*plan->sets));
    plan->set_of = rl_malloc(items * sizeof(*plan->set_of));
    if (!plan->sets || !plan->set_of)
        return RL_ERR;
    plan->arg_count = 3; /* now, set count, batch count */
    plan->form = call_form_of(reqs, count);
    size_t i = 0;
    for (size_t q = 0; q < count; q++) {
        size_t per_item = RL_REDIS_ITEM_ARGS + extra_args(reqs[q]->op);
        if (plan->form == FORM_LEASES)
            per_item = 1; /* its lease; its run's code is counted below */
        plan->arg_count += (plan->form == FORM_GENERAL ? RL_REDIS_BATCH_ARGS : 0) +
                           per_item * (size_t)reqs[q]->count;
        for (size_t k = 0; k < reqs[q]->count; k++) {
            plan->set_of[i++] = find_set(plan, &reqs[q]->items[k].limits);
            plan->key_count += item_keys(&reqs[q]->items[k].limits);
        }
    }
    if (plan->form == FORM_LEASES)
        for (size_t q = 0; q < count; q += lease_run(plan, reqs, count, q))
            plan->arg_count++;
    return RL_OK;
}

static void plan_free(call_plan *plan) {
    rl_free(plan->sets);
    rl_free(plan->set_of);
}

static int put_keys(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count) {
    for (size_t q = 0; q < count; q++) {
        for (size_t k = 0; k < reqs[q]->count; k++) {
            const rl_redis_item *it = &reqs[q]->items[k];
            if (reserve(buf, item_keys(&it->limits) * (it->rkey_len + 32)) != RL_OK)
                return RL_ERR;
            for (uint8_t r = 0; r < it->limits.rate_count; r++) {
                char suffix[2] = {(char)('0' + r), RL_REDIS_COMPANION_MARK};
                put_bulk2(buf, it->rkey, it->rkey_len, suffix, 1);
                if (is_log(&it->limits.rates[r]))
                    put_bulk2(buf, it->rkey, it->rkey_len, suffix, 2);
            }
        }
    }
    return RL_OK;
}

static int put_sets(rl_redis_cmdbuf *buf, const call_plan *plan) {
    int rc = put_int(buf, (int64_t)plan->set_count);
    for (size_t s = 0; s < plan->set_count && rc == RL_OK; s++) {
        const rl_limits *l = plan->sets[s];
        rc = put_int(buf, l->rate_count);
        for (size_t r = 0; r < l->rate_count && rc == RL_OK; r++) {
            const rl_rate *rate = &l->rates[r];
            rc |= put_int(buf, (int64_t)rate->algorithm);
            rc |= put_int(buf, (int64_t)rate->limit);
            rc |= put_int(buf, rate->period_us);
            rc |= put_int(buf, (int64_t)rate->burst);
        }
    }
    return rc == RL_OK ? RL_OK : RL_ERR;
}

// Writes a lease form call's batches: the mark and the count, then runs of batches with
// the same code: the code, with RL_REDIS_LEASE_RUN and the run's length if more than
// one, then each batch's lease (put_lease_member).
static int put_lease_batches(rl_redis_cmdbuf *buf, const call_plan *plan,
                             rl_redis_request *const *reqs, size_t count) {
    char head[48];
    int len = snprintf(head, sizeof(head), "%s%zu", RL_REDIS_LEASE_MARK, count);
    int rc = put_bulk(buf, head, (size_t)len);
    for (size_t q = 0, n; q < count && rc == RL_OK; q += n) {
        n = lease_run(plan, reqs, count, q);
        len = snprintf(head, sizeof(head), "%lld", (long long)lease_code(plan, reqs, q));
        if (n > 1)
            len += snprintf(head + len, sizeof(head) - (size_t)len, "%s%zu", RL_REDIS_LEASE_RUN, n);
        rc = put_bulk(buf, head, (size_t)len);
        for (size_t j = q; j < q + n && rc == RL_OK; j++)
            rc = put_lease_member(buf, reqs[j]);
    }
    return rc == RL_OK ? RL_OK : RL_ERR;
}

static int put_batches(rl_redis_cmdbuf *buf, const call_plan *plan, rl_redis_request *const *reqs,
                       size_t count) {
    if (plan->form == FORM_LEASES)
        return put_lease_batches(buf, plan, reqs, count);
    int compact = plan->form == FORM_COMPACT;
    int rc = put_int(buf, compact ? -(int64_t)count : (int64_t)count);
    size_t i = 0;
    for (size_t q = 0; q < count && rc == RL_OK; q++) {
        if (!compact)
            rc = put_int(buf, (int64_t)reqs[q]->op) | put_int(buf, reqs[q]->count);
        for (size_t k = 0; k < reqs[q]->count && rc == RL_OK; k++) {
            rc |= put_int(buf, (int64_t)plan->set_of[i++] + 1);
            rc |= put_int(buf, reqs[q]->items[k].cost);
            if (is_lease_op(reqs[q]->op))
                rc |= put_lease(buf, reqs[q]->items[k].lease);
            else if (reqs[q]->op == RL_STORE_REFUND)
                rc |= put_refund(buf, &reqs[q]->items[k]);
        }
    }
    return rc == RL_OK ? RL_OK : RL_ERR;
}

// Returns the Redis keys of request req (all its items' rates).
static size_t request_keys(const rl_redis_request *req) {
    size_t keys = 0;
    for (size_t k = 0; k < req->count; k++)
        keys += item_keys(&req->items[k].limits);
    return keys;
}

// Counts the runs of requests with the same slot (a cluster node call's key runs).
static size_t count_runs(rl_redis_request *const *reqs, size_t count) {
    size_t runs = count > 0;
    for (size_t q = 1; q < count; q++)
        runs += reqs[q]->slot != reqs[q - 1]->slot;
    return runs;
}

// Writes a cluster node call's head of ARGV: the mark, the run count and each run's
// key count (redis_script.lua).
static int put_runs(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                    size_t runs) {
    int rc = put_bulk(buf, RL_REDIS_CLUSTER_MARK, 1) | put_int(buf, (int64_t)runs);
    size_t keys = 0;
    for (size_t q = 0; q < count && rc == RL_OK; q++) {
        keys += request_keys(reqs[q]);
        if (q + 1 == count || reqs[q + 1]->slot != reqs[q]->slot) {
            rc = put_int(buf, (int64_t)keys);
            keys = 0;
        }
    }
    return rc == RL_OK ? RL_OK : RL_ERR;
}

/* How a call is written: which script, and where its keys go. */
typedef struct call_form {
    const char *sha;    /* EVALSHA with it, or EVAL with the script if NULL */
    int64_t now_us;     /* the decision time (0: Redis's TIME) */
    const char *script; /* the script's source for EVAL */
    size_t script_len;  /* its bytes */
    int keys_in_argv;   /* a cluster node call: no KEYS, the keys in ARGV by slot runs */
} call_form;

static int encode(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                  const call_form *form) {
    call_plan plan;
    buf->len = 0;
    int rc = plan_call(&plan, reqs, count);
    /* a compact node call reads no slot apart: G = -(its keys), no run lengths */
    int runless = form->keys_in_argv && plan.form == FORM_COMPACT;
    size_t runs = form->keys_in_argv && !runless ? count_runs(reqs, count) : 0;
    size_t head = form->keys_in_argv ? 2 + runs : 0; /* mark, G, the run lengths */
    if (rc == RL_OK)
        rc = reserve(buf, 64);
    if (rc == RL_OK) {
        put_header(buf, '*', (int64_t)(3 + head + plan.key_count + plan.arg_count));
        if (form->sha)
            rc = put_bulk(buf, "EVALSHA", 7) | put_bulk(buf, form->sha, 40);
        else
            rc = put_bulk(buf, "EVAL", 4) | put_bulk(buf, form->script, form->script_len);
        rc |= put_int(buf, form->keys_in_argv ? 0 : (int64_t)plan.key_count);
        if (runless)
            rc |= put_bulk(buf, RL_REDIS_CLUSTER_MARK, 1) | put_int(buf, -(int64_t)plan.key_count);
        else if (form->keys_in_argv)
            rc |= put_runs(buf, reqs, count, runs);
    }
    if (rc == RL_OK)
        rc = put_keys(buf, reqs, count) | put_int(buf, form->now_us) | put_sets(buf, &plan) |
             put_batches(buf, &plan, reqs, count);
    plan_free(&plan);
    return rc == RL_OK ? RL_OK : RL_ERR;
}

int rl_redis_call_encode(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                         const char *sha, int64_t now_us) {
    call_form form = {sha, now_us, rl_redis_script, rl_redis_script_len, 0};
    return encode(buf, reqs, count, &form);
}

int rl_redis_call_encode_cluster(rl_redis_cmdbuf *buf, rl_redis_request *const *reqs, size_t count,
                                 const char *sha, int64_t now_us, int declared) {
    call_form form = {sha, now_us, rl_redis_cluster_script, rl_redis_cluster_script_len, !declared};
    return encode(buf, reqs, count, &form);
}

/* ---- reading replies ---- */

// Returns the reply integers of item k of req in the general form.
static size_t item_fields(const rl_redis_request *req, size_t k) {
    if (is_lease_op(req->op))
        return RL_REDIS_LEASE_FIELDS;
    return RL_REDIS_VERDICT_FIELDS * (size_t)req->items[k].limits.rate_count;
}

static size_t expected_elements(rl_redis_request *const *reqs, size_t count, int form) {
    if (form == FORM_COMPACT)
        return 1 + RL_REDIS_COMPACT_FIELDS * count;
    size_t n = 1;
    for (size_t q = 0; q < count; q++) {
        n += 1;
        for (size_t k = 0; k < reqs[q]->count; k++)
            n += item_fields(reqs[q], k);
    }
    return n;
}

// Returns 1 if the verdict fields at e look like the script's: allowed 0 or 1 (plus
// RL_REDIS_CAPPED), remaining not negative, no retry time when allowed.
static int verdict_sane(redisReply *const *e) {
    return e[0]->integer >= 0 && e[0]->integer <= (1 | RL_REDIS_CAPPED) && e[1]->integer >= 0 &&
           ((e[0]->integer & 1) == 0 || e[3]->integer == 0);
}

// Returns 1 if element e is an integer, or (where the script may put a failed batch's
// error) a string.
static int element_ok(const redisReply *e, int may_fail) {
    return e->type == REDIS_REPLY_INTEGER || (may_fail && e->type == REDIS_REPLY_STRING);
}

// Returns 1 if every element of the reply is an integer, but for the error text a failed
// batch has in place of its status (general form) or its first field (compact and
// lease forms).
static int elements_ok(const redisReply *reply, rl_redis_request *const *reqs, size_t count,
                       int form) {
    if (!element_ok(reply->element[0], 0))
        return 0;
    size_t at = 1;
    for (size_t q = 0; q < count; q++) {
        size_t fields = form == FORM_COMPACT ? RL_REDIS_COMPACT_FIELDS : 1;
        for (size_t k = 0; k < reqs[q]->count && form == FORM_GENERAL; k++)
            fields += item_fields(reqs[q], k);
        for (size_t i = 0; i < fields; i++)
            if (!element_ok(reply->element[at + i], i == 0))
                return 0;
        at += fields;
    }
    return 1;
}

static int failed(const redisReply *e) {
    return e->type == REDIS_REPLY_STRING;
}

// Returns 1 if a lease item's fields at e look like the script's: outcome 0, 1 or
// RL_REDIS_LEASE_UNKNOWN, no figure negative, a retry time only when denied.
static int lease_sane(redisReply *const *e) {
    for (size_t i = 1; i < RL_REDIS_LEASE_FIELDS; i++)
        if (e[i]->integer < 0)
            return 0;
    return (e[0]->integer == 0 || e[0]->integer == 1 || e[0]->integer == RL_REDIS_LEASE_UNKNOWN) &&
           (e[0]->integer == 0 || e[3]->integer == 0);
}

// Returns 1 if the general-form fields of every item of req, from at on, are sane.
static int request_sane(const redisReply *reply, size_t at, const rl_redis_request *req) {
    if (is_lease_op(req->op))
        return lease_sane(&reply->element[at]);
    for (size_t k = 0; k < req->count; k++) {
        for (size_t r = 0; r < req->items[k].limits.rate_count; r++) {
            if (!verdict_sane(&reply->element[at]))
                return 0;
            at += RL_REDIS_VERDICT_FIELDS;
        }
    }
    return 1;
}

// Whether a lease form batch's first field is a short answer (RL_REDIS_LEASE_SHORT):
// allowed, in that field alone.
static bool lease_short(long long first) {
    long long low = first % RL_REDIS_LEASE_SCALE;
    return low == RL_REDIS_LEASE_SHORT || low == RL_REDIS_LEASE_SHORT + 1;
}

// Returns the elements of a lease form batch at reply->element[at] (a failed batch's
// text, or a short answer: 1; else 2, plus the retry time if denied, plus the leases
// expired and their slots if any), or 0 if they are not all there and sane (integers,
// none negative, an outcome the script gives).
static size_t lease_form_fields(const redisReply *reply, size_t at) {
    if (at >= reply->elements)
        return 0;
    const redisReply *first = reply->element[at];
    if (failed(first))
        return 1;
    if (first->type != REDIS_REPLY_INTEGER || first->integer < 0)
        return 0;
    if (lease_short(first->integer))
        return 1;
    long long outcome = first->integer % RL_REDIS_LEASE_SCALE / 2;
    if (outcome != 0 && outcome != 1 && outcome != RL_REDIS_LEASE_UNKNOWN)
        return 0;
    size_t fields = 2 + (outcome == 0) + 2 * (size_t)(first->integer & 1);
    if (at + fields > reply->elements)
        return 0;
    for (size_t i = 1; i < fields; i++)
        if (reply->element[at + i]->type != REDIS_REPLY_INTEGER ||
            reply->element[at + i]->integer < 0)
            return 0;
    return fields;
}

static int reply_check(const redisReply *reply, rl_redis_request *const *reqs, size_t count,
                       int form, const char **errstr) {
    if (reply->type != REDIS_REPLY_ARRAY) {
        *errstr = "unexpected reply type from the script";
        return RL_ERR;
    }
    if (form == FORM_LEASES) {
        size_t at = 1, fields = 1;
        for (size_t q = 0; q < count && fields; q++, at += fields)
            fields = lease_form_fields(reply, at);
        if (reply->elements == 0 || !element_ok(reply->element[0], 0) || !fields ||
            at != reply->elements) {
            *errstr = "the script's reply is not a lease form reply";
            return RL_ERR;
        }
        return RL_OK;
    }
    if (reply->elements != expected_elements(reqs, count, form)) {
        *errstr = "the script's reply has the wrong number of elements";
        return RL_ERR;
    }
    if (!elements_ok(reply, reqs, count, form)) {
        *errstr = "the script's reply holds a non-integer";
        return RL_ERR;
    }
    if (form == FORM_COMPACT) {
        for (size_t at = 1; at < reply->elements; at += RL_REDIS_COMPACT_FIELDS) {
            redisReply *const *e = &reply->element[at];
            if (failed(e[0]))
                continue;
            if (e[0]->integer < 0 ||
                (e[0]->integer % RL_REDIS_REMAINING_SCALE && e[2]->integer != 0)) {
                *errstr = "the script's reply holds an impossible verdict";
                return RL_ERR;
            }
        }
        return RL_OK;
    }
    size_t at = 1;
    for (size_t q = 0; q < count; q++) {
        const redisReply *st = reply->element[at++];
        int refused = failed(st) || st->integer != 0; /* its verdicts are not read */
        if (!refused && !request_sane(reply, at, reqs[q])) {
            *errstr = "the script's reply holds an impossible verdict";
            return RL_ERR;
        }
        for (size_t k = 0; k < reqs[q]->count; k++)
            at += item_fields(reqs[q], k);
    }
    return RL_OK;
}

// Reads one rate's verdict; limit and window are the rate's own. Returns 1 if an
// ADJUST's charge was capped.
static int read_verdict(redisReply *const *e, const rl_rate *rate, rl_verdict *v) {
    v->allowed = (e[0]->integer & 1) != 0;
    v->limit = rl_rate_capacity(rate);
    v->remaining = (uint64_t)e[1]->integer;
    v->reset_after_us = e[2]->integer;
    v->retry_after_us = e[3]->integer;
    v->window_us = rl_rate_window_us(rate);
    v->capped = (e[0]->integer & RL_REDIS_CAPPED) != 0;
    return v->capped;
}

// Reads a lease item's fields at e (a batch the script decided); fills answer.
static void read_lease(redisReply *const *e, const rl_redis_request *req, rl_store_answer *answer) {
    const rl_rate *rate = &req->items[0].limits.rates[0];
    answer->verdicts[0] = (rl_verdict){.allowed = e[0]->integer == 1,
                                       .limit = rl_rate_capacity(rate),
                                       .remaining = (uint64_t)e[1]->integer,
                                       .reset_after_us = e[2]->integer,
                                       .retry_after_us = e[3]->integer,
                                       .window_us = rl_rate_window_us(rate)};
    answer->leases_expired = (uint32_t)e[4]->integer;
    answer->slots_expired = (uint64_t)e[5]->integer;
    answer->status = e[0]->integer == 1   ? RL_ST_ALLOWED
                     : e[0]->integer == 0 ? RL_ST_DENIED
                                          : RL_ST_LEASE_UNKNOWN;
}

// Reads one request's part of the reply from *at on; fills answer.
static void read_request(const redisReply *reply, size_t *at, const rl_redis_request *req,
                         rl_store_answer *answer) {
    const redisReply *status = reply->element[(*at)++];
    int all = 1, capped = 0;
    answer->count = req->count;
    if (is_lease_op(req->op)) {
        memset(&answer->verdicts[0], 0, sizeof(answer->verdicts[0]));
        if (failed(status) || status->integer != 0) {
            answer->status = RL_ST_INTERNAL;
            answer->errstr = failed(status) ? status->str : "the script refused the batch";
        } else {
            read_lease(&reply->element[*at], req, answer);
        }
        *at += RL_REDIS_LEASE_FIELDS;
        return;
    }
    for (size_t k = 0; k < req->count; k++) {
        rl_verdict *acc = &answer->verdicts[k];
        int item_capped = 0;
        memset(acc, 0, sizeof(*acc));
        for (size_t r = 0; r < req->items[k].limits.rate_count; r++) {
            rl_verdict v;
            const rl_rate *rate = &req->items[k].limits.rates[r];
            item_capped |= read_verdict(&reply->element[*at], rate, &v);
            *at += RL_REDIS_VERDICT_FIELDS;
            if (req->op == RL_STORE_RESET && rate->algorithm == RL_ALGO_CONCURRENCY) {
                /* its reset_after (0 after a RESET) carries the leases the RESET ended */
                answer->leases_ended += (uint32_t)v.reset_after_us;
                v.reset_after_us = 0;
            }
            rl_verdict_merge(acc, &v);
        }
        acc->capped = item_capped; /* any rate's, as the embedded store says */
        capped |= item_capped;
        all &= acc->allowed;
    }
    if (failed(status)) {
        answer->status = RL_ST_INTERNAL;
        answer->errstr = status->str; /* a command failed inside the script */
    } else if (status->integer != 0) {
        answer->status = RL_ST_INTERNAL;
        answer->errstr = "the script refused the batch";
    } else if (req->op == RL_STORE_RESET) {
        answer->status = RL_ST_OK;
    } else {
        answer->status = all ? RL_ST_ALLOWED : RL_ST_DENIED;
    }
    if (capped && answer->status != RL_ST_INTERNAL)
        answer->flags |= RL_FLAG_CAPPED;
}

// Reads a compact reply's verdict of req (one item, one rate) at e.
static void read_compact(redisReply *const *e, const rl_redis_request *req,
                         rl_store_answer *answer) {
    const rl_rate *rate = &req->items[0].limits.rates[0];
    rl_verdict *v = &answer->verdicts[0];
    answer->count = 1;
    if (failed(e[0])) {
        memset(v, 0, sizeof(*v));
        answer->status = RL_ST_INTERNAL;
        answer->errstr = e[0]->str; /* its write failed inside the script */
        return;
    }
    v->allowed = e[0]->integer % RL_REDIS_REMAINING_SCALE != 0;
    v->capped = false; /* a CHECK */
    v->limit = rl_rate_capacity(rate);
    v->remaining = (uint64_t)(e[0]->integer / RL_REDIS_REMAINING_SCALE);
    v->reset_after_us = e[1]->integer;
    v->retry_after_us = e[2]->integer;
    v->window_us = rl_rate_window_us(rate);
    answer->status = v->allowed ? RL_ST_ALLOWED : RL_ST_DENIED;
}

// Reads a lease form reply's fields of req at e (lease_form_fields checked them); an
// ACQUIRE answered on an absent set gets req->alone.
static void read_lease_form(redisReply *const *e, rl_redis_request *req, rl_store_answer *answer) {
    answer->count = 1;
    if (failed(e[0])) {
        answer->status = RL_ST_INTERNAL;
        answer->errstr = e[0]->str; /* a command failed inside the script, or REDIRECT */
        return;
    }
    long long first = e[0]->integer, low = first % RL_REDIS_LEASE_SCALE;
    const rl_rate *rate = &req->items[0].limits.rates[0];
    bool brief = lease_short(first); /* allowed; reset_after the lease or 0, nothing follows */
    long long outcome = brief ? 1 : low / 2;
    if (brief)
        req->alone = low == RL_REDIS_LEASE_SHORT && req->op == RL_STORE_ACQUIRE;
    int64_t reset = !brief                        ? e[1]->integer
                    : low == RL_REDIS_LEASE_SHORT ? rl_rate_window_us(rate)
                                                  : 0;
    answer->verdicts[0] = (rl_verdict){.allowed = outcome == 1,
                                       .limit = rl_rate_capacity(rate),
                                       .remaining = (uint64_t)(first / RL_REDIS_LEASE_SCALE),
                                       .reset_after_us = reset,
                                       .retry_after_us = outcome == 0 ? e[2]->integer : 0,
                                       .window_us = rl_rate_window_us(rate)};
    if (!brief && (first & 1)) {
        size_t at = outcome == 0 ? 3 : 2;
        answer->leases_expired = (uint32_t)e[at]->integer;
        answer->slots_expired = (uint64_t)e[at + 1]->integer;
    }
    answer->status = outcome == 1   ? RL_ST_ALLOWED
                     : outcome == 0 ? RL_ST_DENIED
                                    : RL_ST_LEASE_UNKNOWN;
}

int rl_redis_call_decode(const redisReply *reply, rl_redis_request *const *reqs, size_t count,
                         rl_redis_answer_fn *fn, void *arg, const char **errstr) {
    int form = call_form_of(reqs, count); /* as rl_redis_call_encode chose */
    if (reply_check(reply, reqs, count, form, errstr) != RL_OK)
        return RL_ERR;
    size_t at = 1;
    for (size_t q = 0; q < count; q++) {
        rl_store_answer answer;
        memset(&answer, 0, sizeof(answer)); /* every field a reader does not set is 0 */
        answer.now_us = reply->element[0]->integer;
        if (form == FORM_LEASES) {
            read_lease_form(&reply->element[at], reqs[q], &answer);
            at += lease_form_fields(reply, at);
        } else if (form == FORM_COMPACT) {
            read_compact(&reply->element[at], reqs[q], &answer);
            at += RL_REDIS_COMPACT_FIELDS;
        } else {
            read_request(reply, &at, reqs[q], &answer);
        }
        fn(arg, reqs[q], &answer);
    }
    return RL_OK;
}
