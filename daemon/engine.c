/*
 * engine.c: from a decoded request to a response.
 *
 *   request -> validate items (policy, key, cost) -> exempt / block lists
 *           -> store batch (memory: answered at once; redis: answered later)
 *           -> store error? on_store_error: allow | deny | local (embedded store)
 *           -> shadow mode: would-be denials allowed, the rest still consumed
 *           -> results (most restrictive rate), stats -> reply
 *
 * A request in flight is a `pending`, taken from a free list so that the decision
 * path does not allocate. It holds a reference on the config it was decided under,
 * so a reload never frees policies an answer still needs. A store may answer before
 * its submit returns (the memory store always does): the request is then answered at
 * once, but its pending is released only after the submit has returned (the
 * `submitting` guard), so nothing reads a pending another request has taken since.
 *
 * The opcode table below sends the decision opcodes here, the admin ones to
 * engine_admin.c; what every answer feeds (counters, TOP, denial log) is engine_stats.c.
 */
#include "engine.h"
#include "engine_internal.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "store_memory.h"
#include "store_redis.h"

#define SWEEP_INTERVAL_MS 50
#define SWEEP_BUCKETS 4096
#define FALLBACK_DENY_RETRY_US 1000000 /* retry hint of the `deny` fallback */

static void on_store_done(void *arg, const rl_store_answer *ans);

/* ---- config references ---- */

conf_ref *rl_conf_ref_new(rl_config *config) {
    conf_ref *ref = rl_calloc(1, sizeof(*ref));
    if (!ref)
        return NULL;
    ref->counters =
        rl_calloc(config->policy_count ? config->policy_count : 1, sizeof(*ref->counters));
    if (!ref->counters) {
        rl_free(ref);
        return NULL;
    }
    ref->config = config;
    ref->refs = 1;
    return ref;
}

void rl_conf_ref_put(conf_ref *ref) {
    if (ref && --ref->refs == 0) {
        rl_config_free(ref->config);
        rl_free(ref->counters);
        rl_free(ref);
    }
}

/* ---- pending requests ---- */

static pending *pending_get(rl_engine *e, rl_engine_reply *reply, void *arg) {
    pending *p = e->free_list;
    if (p)
        e->free_list = p->next_free;
    else if (!(p = rl_malloc(sizeof(*p))))
        return NULL;
    p->engine = e;
    p->conf = e->conf;
    p->conf->refs++;
    p->reply = reply;
    p->arg = arg;
    p->keys = NULL;
    p->text = NULL;
    p->submitting = 0;
    p->answered = 0;
    p->pass = 0;
    p->fallback = 0;
    e->in_flight++;
    return p;
}

void rl_engine_pending_put(pending *p) {
    rl_engine *e = p->engine;
    rl_conf_ref_put(p->conf);
    rl_free(p->keys);
    rl_free(p->text);
    e->in_flight--;
    p->next_free = e->free_list;
    e->free_list = p;
}

static void pending_put(pending *p) {
    rl_engine_pending_put(p);
}

/* ---- results ---- */

static uint32_t ms_ceil(int64_t us) {
    if (us <= 0)
        return 0;
    uint64_t ms = ((uint64_t)us + 999) / 1000;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static uint32_t u32(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

// Fills a wire result from a verdict (times rounded up to whole ms).
static void result_from_verdict(rl_result *r, const rl_verdict *v, rl_status status) {
    r->status = (uint8_t)status;
    r->limit = u32(v->limit);
    r->remaining = u32(v->remaining);
    r->reset_after_ms = ms_ceil(v->reset_after_us);
    r->retry_after_ms = v->allowed ? 0 : ms_ceil(v->retry_after_us);
    r->window_ms = ms_ceil(v->window_us);
}

// A verdict with the nominal figures of limits, for answers that never reach a store
// (exempt, block, the allow/deny fallbacks): the full quota less what this request takes
// (nothing for ADJUST, which decides nothing).
static void nominal_verdict(const rl_limits *limits, int allowed, uint8_t opcode, int64_t cost,
                            rl_verdict *v) {
    uint64_t used = opcode == RL_OP_ADJUST || cost < 0 ? 0 : (uint64_t)cost;
    memset(v, 0, sizeof(*v));
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        rl_verdict one = {0};
        one.allowed = allowed;
        one.limit = rl_rate_capacity(rate);
        one.remaining = allowed && used < one.limit ? one.limit - used : 0;
        one.window_us = rl_rate_window_us(rate);
        one.retry_after_us = allowed ? 0 : FALLBACK_DENY_RETRY_US;
        rl_verdict_merge(v, &one);
    }
}

/* ---- validation ---- */

// A cost (signed for ADJUST: a charge or a refund) is at most the smallest capacity of
// the key's rates, so that no single request can move a key by more than that.
static rl_status check_cost(rl_opcode op, const rl_item *it, const rl_limits *limits) {
    if (op == RL_OP_RESET || op == RL_OP_RELEASE || op == RL_OP_RENEW)
        return it->cost == 0 ? RL_ST_OK : RL_ST_COST_INVALID;
    if (it->cost == 0)
        return RL_ST_COST_INVALID;
    uint64_t magnitude = it->cost < 0 ? (uint64_t)0 - (uint64_t)it->cost : (uint64_t)it->cost;
    for (size_t r = 0; r < limits->rate_count; r++)
        if (magnitude > rl_rate_capacity(&limits->rates[r]))
            return RL_ST_COST_TOO_LARGE;
    return RL_ST_OK;
}

// Resolves and checks item i of the request into p. Returns its status.
static rl_status resolve_item(pending *p, rl_opcode op, const rl_item *it, size_t i) {
    const rl_config *c = p->conf->config;
    slot *s = &p->slots[i];
    s->policy = rl_config_policy(c, it->policy, it->policy_len);
    s->cost = it->cost;
    s->flags = 0;
    if (!s->policy)
        return RL_ST_UNKNOWN_POLICY;
    if (it->key_len == 0)
        return RL_ST_KEY_EMPTY;
    if (it->key_len > c->max_key)
        return RL_ST_KEY_TOO_LONG;
    /* RESET serves both kinds; the lease ops only concurrency policies, the others only
       rate policies */
    if (op != RL_OP_RESET && rl_engine_is_concurrency(s->policy) != rl_engine_is_lease_op(op))
        return RL_ST_POLICY_KIND;
    s->limits = rl_policy_limits(s->policy, it->key, it->key_len);
    rl_status st = check_cost(op, it, s->limits);
    if (st != RL_ST_OK)
        return st;
    int listed = op != RL_OP_RESET && op != RL_OP_RELEASE && op != RL_OP_RENEW;
    if (listed && rl_keyset_has(&s->policy->exempt, it->key, it->key_len))
        s->flags = RL_FLAG_EXEMPT;
    else if (listed && rl_keyset_has(&s->policy->block, it->key, it->key_len))
        s->flags = RL_FLAG_BLOCKED;
    return RL_ST_OK;
}

// Validates every item; on the first error, answers the whole request with it.
static int resolve_items(pending *p, const rl_request *req) {
    rl_status first = RL_ST_OK;
    p->item_count = req->item_count;
    for (size_t i = 0; i < req->item_count; i++) {
        rl_status st = resolve_item(p, req->opcode, &req->items[i], i);
        p->slots[i].status = st;
        if (st != RL_ST_OK && first == RL_ST_OK)
            first = st;
    }
    if (first == RL_ST_OK)
        return 0;
    p->error = first;
    rl_engine_finish(p);
    return -1;
}

/* ---- submitting ---- */

static rl_store_op store_op(uint8_t opcode) {
    switch (opcode) {
    case RL_OP_PEEK:
        return RL_STORE_PEEK;
    case RL_OP_ADJUST:
        return RL_STORE_ADJUST;
    case RL_OP_RESET:
        return RL_STORE_RESET;
    case RL_OP_ACQUIRE:
        return RL_STORE_ACQUIRE;
    case RL_OP_RELEASE:
        return RL_STORE_RELEASE;
    case RL_OP_RENEW:
        return RL_STORE_RENEW;
    default:
        return RL_STORE_CHECK;
    }
}

// Builds the store batch from the slots that need the store (not exempt, blocked, or
// already decided in an earlier pass) and submits it to store. Returns 1 if the answer
// is still to come, 0 if the request was answered already (p is then released, or will
// be when the outermost submit on the stack returns: p must not be used).
static int submit(pending *p, rl_store *store) {
    rl_store_item batch[RL_MAX_ITEMS];
    size_t n = 0;
    for (size_t i = 0; i < p->item_count; i++) {
        slot *s = &p->slots[i];
        if (s->flags & (RL_FLAG_EXEMPT | RL_FLAG_BLOCKED | RL_FLAG_SHADOW))
            continue;
        s->batch_index = (uint8_t)n;
        batch[n++] = (rl_store_item){
            s->limits, s->policy->name, s->policy->name_len, s->key, s->key_len, s->cost, p->lease,
            0};
    }
    if (n == 0) {
        rl_engine_finish(p);
        return 0;
    }
    p->store = store;
    p->submitting++;
    int rc = store->ops->submit(store, p->opcode_store, batch, n, on_store_done, p);
    p->submitting--;
    if (rc != RL_OK && !p->answered) {
        p->error = RL_ST_INTERNAL; /* done will not be called */
        rl_engine_finish(p);
    }
    if (!p->answered)
        return 1;
    if (p->submitting == 0)
        pending_put(p); /* answered during the submit: released now that it returned */
    return 0;
}

// The store did not answer at once: keep copies of the keys for a later pass.
static int keep_keys(pending *p) {
    size_t total = 0;
    for (size_t i = 0; i < p->item_count; i++)
        total += p->slots[i].key_len;
    p->keys = rl_malloc(total ? total : 1);
    if (!p->keys)
        return -1;
    char *at = p->keys;
    for (size_t i = 0; i < p->item_count; i++) {
        memcpy(at, p->slots[i].key, p->slots[i].key_len);
        p->slots[i].key = at;
        at += p->slots[i].key_len;
    }
    return 0;
}

static void start(pending *p, const rl_request *req) {
    if (resolve_items(p, req) != 0)
        return;
    int blocked = 0;
    for (size_t i = 0; i < p->item_count; i++) {
        p->slots[i].key = req->items[i].key;
        p->slots[i].key_len = req->items[i].key_len;
        blocked |= (p->slots[i].flags & RL_FLAG_BLOCKED) && p->opcode != RL_OP_ADJUST;
    }
    /* A blocked key denies the whole request: the other items are only peeked, so that
       each still reports whether it alone would pass. */
    if (blocked)
        p->opcode_store = RL_STORE_PEEK;
    if (p->opcode == RL_OP_ACQUIRE)
        p->lease = rl_engine_new_lease_id(p->engine);
    else if (p->lease == 0 && rl_engine_is_lease_op(p->opcode)) {
        /* RELEASE/RENEW of lease 0 (what an exempt or shadow ACQUIRE answers): a no-op */
        nominal_verdict(p->slots[0].limits, 1, p->opcode, 0, &p->slots[0].verdict);
        rl_engine_finish(p);
        return;
    }
    if (blocked && p->opcode == RL_OP_ACQUIRE) {
        rl_engine_finish(p); /* denied as blocked: no store, nothing held */
        return;
    }
    if (submit(p, p->engine->store) && keep_keys(p) != 0)
        p->keys_lost = 1; /* no later pass: the local fallback answers INTERNAL instead */
}

/* ---- store answers ---- */

static int is_store_error(rl_status st) {
    return st == RL_ST_STORE_UNAVAILABLE || st == RL_ST_INTERNAL;
}

// The strictest on_store_error among the request's policies: deny, then local, then allow.
static rl_on_error fallback_mode(const pending *p) {
    rl_on_error mode = RL_ON_ERROR_ALLOW;
    for (size_t i = 0; i < p->item_count; i++) {
        rl_on_error m = p->slots[i].policy->on_store_error;
        if (m == RL_ON_ERROR_DENY || (m == RL_ON_ERROR_LOCAL && mode == RL_ON_ERROR_ALLOW))
            mode = m;
    }
    return mode;
}

static void fall_back(pending *p, const rl_store_answer *ans) {
    rl_engine *e = p->engine;
    rl_on_error mode = fallback_mode(p);
    p->fallback = 1;
    rl_engine_count_store_error(p, ans);
    if (mode == RL_ON_ERROR_LOCAL && p->keys_lost) {
        p->error = RL_ST_INTERNAL; /* out of memory for the keys: no local decision */
        rl_engine_finish(p);
        return;
    }
    if (mode == RL_ON_ERROR_LOCAL) {
        (void)submit(p, e->local); /* the embedded store answers at once */
        return;
    }
    if (p->opcode == RL_OP_RESET || p->opcode == RL_OP_ADJUST || p->opcode == RL_OP_RELEASE ||
        p->opcode == RL_OP_RENEW) {
        p->error = RL_ST_STORE_UNAVAILABLE; /* nothing was reset, charged, released or
                                               renewed: say so */
        rl_engine_finish(p);
        return;
    }
    for (size_t i = 0; i < p->item_count; i++)
        nominal_verdict(p->slots[i].limits, mode != RL_ON_ERROR_DENY, p->opcode, p->slots[i].cost,
                        &p->slots[i].verdict);
    rl_engine_finish(p);
}

// After a denial: if every denying item is in shadow mode, mark those SHADOW and
// decide the rest again, so that enforced items are still consumed. Returns 1 if a
// second pass was started.
static int shadow_pass(pending *p, const rl_store_answer *ans) {
    int shadow = 0, enforced_denial = 0, others = 0;
    for (size_t i = 0; i < p->item_count; i++) {
        slot *s = &p->slots[i];
        if (s->flags & (RL_FLAG_EXEMPT | RL_FLAG_SHADOW))
            continue;
        int denied = !ans->verdicts[s->batch_index].allowed;
        if (denied && s->policy->mode == RL_MODE_SHADOW)
            shadow = 1;
        else if (denied)
            enforced_denial = 1;
        else
            others = 1;
    }
    if (!shadow || enforced_denial || p->opcode != RL_OP_MULTI_CHECK || !others || p->keys_lost)
        return 0;
    for (size_t i = 0; i < p->item_count; i++) {
        slot *s = &p->slots[i];
        if (!(s->flags & RL_FLAG_EXEMPT) && !ans->verdicts[s->batch_index].allowed) {
            s->flags |= RL_FLAG_SHADOW;
            s->verdict = ans->verdicts[s->batch_index];
        }
    }
    p->pass++;
    (void)submit(p, p->store); /* keys were kept: a later answer is fine */
    return 1;
}

static void on_store_done(void *arg, const rl_store_answer *ans) {
    pending *p = arg;
    rl_engine *e = p->engine;
    if (e->store_down && p->store == e->store && !is_store_error(ans->status)) {
        e->store_down = 0;
        rl_log_info("store %s is back", e->store->ops->name);
    }
    if (is_store_error(ans->status) && p->store != p->engine->local) {
        fall_back(p, ans);
        return;
    }
    rl_engine_count_store_leases(p, ans);
    p->lease_status = ans->status;
    p->acquired = p->opcode == RL_OP_ACQUIRE && ans->status == RL_ST_ALLOWED;
    if (ans->status != RL_ST_ALLOWED && ans->status != RL_ST_DENIED &&
        !(ans->status == RL_ST_LEASE_UNKNOWN && rl_engine_is_lease_op(p->opcode))) {
        p->error = ans->status; /* STORE_FULL, or INTERNAL from the embedded store */
        rl_engine_local_error(e, ans);
        rl_engine_finish(p);
        return;
    }
    if (ans->status == RL_ST_DENIED && p->pass == 0 && shadow_pass(p, ans))
        return;
    for (size_t i = 0; i < p->item_count; i++) {
        slot *s = &p->slots[i];
        if (!(s->flags & (RL_FLAG_EXEMPT | RL_FLAG_BLOCKED | RL_FLAG_SHADOW))) {
            s->verdict = ans->verdicts[s->batch_index];
            s->flags |= ans->flags;
        }
    }
    rl_engine_finish(p);
}

/* ---- building the response ---- */

// Fills slot i's result from its verdict, flags and mode; counts it.
static void slot_result(pending *p, size_t i, rl_result *r) {
    slot *s = &p->slots[i];
    uint16_t flags = s->flags | (p->fallback ? RL_FLAG_FALLBACK : 0);
    if (s->flags & (RL_FLAG_EXEMPT | RL_FLAG_BLOCKED))
        nominal_verdict(s->limits, !(s->flags & RL_FLAG_BLOCKED), p->opcode, s->cost, &s->verdict);
    if (s->flags & RL_FLAG_BLOCKED)
        s->verdict.retry_after_us = rl_rate_window_us(&s->limits->rates[0]);
    int allowed = s->verdict.allowed, ends = p->opcode == RL_OP_RELEASE || p->opcode == RL_OP_RENEW;
    if (!allowed && !ends && s->policy->mode == RL_MODE_SHADOW && !(s->flags & RL_FLAG_BLOCKED)) {
        flags |= RL_FLAG_SHADOW;
        allowed = 1;
    }
    rl_status st = allowed ? RL_ST_ALLOWED : RL_ST_DENIED;
    if (ends && p->lease_status == RL_ST_LEASE_UNKNOWN)
        st = RL_ST_LEASE_UNKNOWN; /* figures are the key's; retry 0 */
    result_from_verdict(r, &s->verdict, st);
    if (ends)
        r->retry_after_ms = 0;
    if (flags & RL_FLAG_SHADOW)
        r->retry_after_ms = 0;
    r->flags = flags;
    rl_engine_count(p, s, r);
}

static void merge_results(rl_response *resp) {
    rl_result *all = &resp->result;
    *all = resp->items[0];
    for (size_t i = 1; i < resp->item_count; i++) {
        const rl_result *r = &resp->items[i];
        int worse = r->status != all->status
                        ? r->status == RL_ST_DENIED
                        : (r->status == RL_ST_DENIED ? r->retry_after_ms > all->retry_after_ms
                                                     : r->remaining < all->remaining);
        uint16_t flags = all->flags | r->flags;
        if (worse)
            *all = *r;
        all->flags = flags;
    }
}

static void error_response(pending *p, rl_response *resp) {
    memset(&resp->result, 0, sizeof(resp->result));
    resp->result.status = (uint8_t)p->error;
    for (size_t i = 0; i < resp->item_count; i++) {
        memset(&resp->items[i], 0, sizeof(rl_result));
        resp->items[i].status =
            (uint8_t)(p->slots[i].status != RL_ST_OK ? p->slots[i].status : RL_ST_DENIED);
    }
    rl_engine_count_error(p);
}

void rl_engine_finish(pending *p) {
    rl_response resp;
    resp.id = p->id;
    resp.opcode = p->opcode;
    resp.item_count = p->opcode == RL_OP_MULTI_CHECK ? p->item_count : 0;
    resp.text = p->text;
    resp.text_len = p->text ? (uint32_t)strlen(p->text) : 0;
    /* ACQUIRE: the lease held, if any; RELEASE/RENEW: the id named */
    resp.lease = p->opcode == RL_OP_ACQUIRE ? (p->acquired ? p->lease : 0) : p->lease;
    if (p->error != RL_ST_OK) {
        error_response(p, &resp);
    } else if (p->item_count > 0) {
        rl_result tmp[RL_MAX_ITEMS];
        rl_result *out = p->opcode == RL_OP_MULTI_CHECK ? resp.items : tmp;
        for (size_t i = 0; i < p->item_count; i++)
            slot_result(p, i, &out[i]);
        if (p->opcode == RL_OP_MULTI_CHECK)
            merge_results(&resp);
        else
            resp.result = out[0];
        if (p->opcode == RL_OP_RESET)
            resp.result.status = RL_ST_OK;
    } else {
        memset(&resp.result, 0, sizeof(resp.result));
    }
    p->reply(p->arg, &resp);
    if (p->submitting)
        p->answered = 1; /* a store answered inside its submit: submit releases p */
    else
        pending_put(p);
}

/* ---- the opcode table ---- */

static void run_ping(pending *p, const rl_request *req) {
    (void)req;
    rl_engine_finish(p);
}

// AUTH: the server compared the token (RL_PERM_AUTHENTICATED set if it matched, or if
// the listener has none); a wrong one answers AUTH_FAILED, after which the server closes
// the connection.
static void run_auth(pending *p, const rl_request *req) {
    (void)req;
    if (!(p->perms & RL_PERM_AUTHENTICATED)) {
        p->error = RL_ST_AUTH_FAILED;
        p->engine->auth_failures++;
    }
    rl_engine_finish(p);
}

/* One opcode's handler. */
typedef struct opcode_handler {
    void (*run)(pending *p, const rl_request *req); /* must end in rl_engine_finish, once */
    uint32_t needs; /* the operation bit it needs (RL_PERM_*); 0: always served (PING,
                       AUTH); ADJUST's depends on its cost (see needs_of) */
} opcode_handler;

static const opcode_handler handlers[] = {
    [RL_OP_PING] = {run_ping, 0},
    [RL_OP_CHECK] = {start, RL_PERM_CHECK},
    [RL_OP_PEEK] = {start, RL_PERM_PEEK},
    [RL_OP_ADJUST] = {start, RL_PERM_CHARGE}, /* or REFUND: needs_of */
    [RL_OP_RESET] = {start, RL_PERM_RESET},
    [RL_OP_MULTI_CHECK] = {start, RL_PERM_MULTI_CHECK},
    [RL_OP_AUTH] = {run_auth, 0},
    [RL_OP_POLICIES] = {rl_engine_run_policies, RL_PERM_POLICIES},
    [RL_OP_STATS] = {rl_engine_run_stats, RL_PERM_STATS},
    [RL_OP_TOP] = {rl_engine_run_top, RL_PERM_TOP},
    [RL_OP_RELOAD] = {rl_engine_run_reload, RL_PERM_RELOAD},
    [RL_OP_ACQUIRE] = {start, RL_PERM_LEASE},
    [RL_OP_RELEASE] = {start, RL_PERM_LEASE},
    [RL_OP_RENEW] = {start, RL_PERM_LEASE},
    [RL_OP_LEASES] = {rl_engine_run_leases, RL_PERM_LEASES},
};

// Returns the handler of opcode, or NULL if it is not defined.
static const opcode_handler *handler_of(uint8_t opcode) {
    if (opcode >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[opcode].run)
        return NULL;
    return &handlers[opcode];
}

// Returns the permission req needs (RL_PERM_*, 0 for none): its handler's, or for
// ADJUST "refund" when its cost is negative and "charge" otherwise.
static uint32_t needs_of(const opcode_handler *h, const rl_request *req) {
    if (h == &handlers[RL_OP_ADJUST] && req->item_count == 1 && req->items[0].cost < 0)
        return RL_PERM_REFUND;
    return h->needs;
}

// Returns the status refusing req to a connection holding perms, or OK if it may run.
static rl_status permission(const opcode_handler *h, const rl_request *req, uint32_t perms) {
    uint32_t needs = needs_of(h, req);
    if (needs == 0)
        return RL_ST_OK; /* PING, AUTH */
    if (!(perms & RL_PERM_AUTHENTICATED))
        return RL_ST_AUTH_REQUIRED;
    return (perms & needs) ? RL_ST_OK : RL_ST_NOT_PERMITTED;
}

/* ---- entry points ---- */

void rl_engine_handle(rl_engine *e, const rl_request *req, uint32_t perms, rl_engine_reply *reply,
                      void *arg) {
    rl_engine_handle_as(e, req, perms, reply, arg, 0);
}

void rl_engine_handle_as(rl_engine *e, const rl_request *req, uint32_t perms,
                         rl_engine_reply *reply, void *arg, int on_close) {
    pending *p = pending_get(e, reply, arg);
    if (!p) {
        rl_engine_refuse(e, req->opcode, req->id, RL_ST_INTERNAL, reply, arg);
        return;
    }
    p->id = req->id;
    p->opcode = req->opcode;
    p->opcode_store = store_op(req->opcode);
    p->item_count = 0;
    p->error = RL_ST_OK;
    p->keys_lost = 0;
    p->perms = perms;
    p->acquired = 0;
    p->on_close = (uint8_t)on_close;
    p->lease_status = RL_ST_OK;
    p->lease = req->opcode == RL_OP_RELEASE || req->opcode == RL_OP_RENEW ? req->lease : 0;
    const opcode_handler *h = handler_of(req->opcode);
    rl_status refused = h ? permission(h, req, perms) : RL_ST_UNKNOWN_OPCODE;
    if (refused != RL_ST_OK) {
        p->error = refused;
        rl_engine_finish(p);
    } else {
        h->run(p, req);
    }
}

void rl_engine_prefetch(rl_engine *e, const rl_request *req, int stage) {
    rl_store *store = e->store;
    if (!store->ops->prefetch || req->opcode == RL_OP_PING)
        return;
    for (size_t i = 0; i < req->item_count; i++) {
        const rl_item *it = &req->items[i];
        store->ops->prefetch(store, it->policy, it->policy_len, it->key, it->key_len, stage);
    }
}

void rl_engine_refuse(rl_engine *e, uint8_t opcode, uint32_t id, rl_status status,
                      rl_engine_reply *reply, void *arg) {
    rl_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = id;
    resp.opcode = opcode;
    resp.result.status = (uint8_t)status;
    e->refused++;
    reply(arg, &resp);
}

/* ---- construction ---- */

static void sweep_cb(evutil_socket_t fd, short what, void *arg) {
    rl_engine *e = arg;
    (void)fd;
    (void)what;
    rl_store_memory_sweep(e->local, SWEEP_BUCKETS);
}

// Starts the timer that sweeps the embedded store. Returns RL_OK, or RL_ERR with the
// reason in err.
static int start_sweep(rl_engine *e, char *err, size_t errlen) {
    struct timeval every = {0, SWEEP_INTERVAL_MS * 1000};
    e->sweep = event_new(e->base, -1, EV_PERSIST, sweep_cb, e);
    if (e->sweep && event_add(e->sweep, &every) == 0)
        return RL_OK;
    snprintf(err, errlen, "cannot create the timer that sweeps expired keys (out of memory?)");
    return RL_ERR;
}

// The engine around an allocated e and its stores: store is the configured store, or
// NULL if it could not be made (err holds why). On failure frees e (and store) but not
// config.
static rl_engine *engine_finish_new(rl_engine *e, rl_store *store, char *err, size_t errlen) {
    e->store = store;
    if (!e->local)
        snprintf(err, errlen, "out of memory");
    if (!e->local || !e->store || start_sweep(e, err, errlen) != RL_OK) {
        e->conf->config = NULL; /* the caller keeps the config on failure */
        rl_engine_free(e);
        return NULL;
    }
    if (rl_engine_lease_start(e) != RL_OK) {
        snprintf(err, errlen, "cannot draw a random key for lease ids");
        e->conf->config = NULL;
        rl_engine_free(e);
        return NULL;
    }
    e->started_us = rl_clock_real_us();
    rl_engine_stats_start(e);
    return e;
}

// Allocates an engine with its config reference and embedded store (NULL if memory is
// short: err says so).
static rl_engine *engine_alloc(struct event_base *base, rl_config *config, char *err,
                               size_t errlen) {
    rl_engine *e = rl_calloc(1, sizeof(*e));
    if (!e || !(e->conf = rl_conf_ref_new(config))) {
        snprintf(err, errlen, "out of memory");
        rl_free(e);
        return NULL;
    }
    e->base = base;
    e->local = rl_store_memory_new(config->store.max_keys);
    return e;
}

rl_engine *rl_engine_new(struct event_base *base, rl_config *config, char *err, size_t errlen) {
    rl_engine *e = engine_alloc(base, config, err, errlen);
    if (!e)
        return NULL;
    rl_store *store = NULL;
    if (e->local && config->store.type == RL_STORE_MEMORY)
        store = e->local;
    else if (e->local)
        store = rl_store_redis_new(base, &config->store, err, errlen);
    return engine_finish_new(e, store, err, errlen);
}

rl_engine *rl_engine_new_with_store(struct event_base *base, rl_config *config, rl_store *store,
                                    char *err, size_t errlen) {
    rl_engine *e = engine_alloc(base, config, err, errlen);
    if (!e) {
        store->ops->free(store);
        return NULL;
    }
    return engine_finish_new(e, store, err, errlen);
}

const rl_config *rl_engine_config(const rl_engine *e) {
    return e->conf->config;
}

void rl_engine_free(rl_engine *e) {
    if (!e)
        return;
    if (e->store && e->store != e->local)
        e->store->ops->free(e->store);
    if (e->local)
        e->local->ops->free(e->local);
    if (e->sweep)
        event_free(e->sweep);
    while (e->free_list) {
        pending *p = e->free_list;
        e->free_list = p->next_free;
        rl_free(p);
    }
    rl_engine_stats_stop(e);
    rl_conf_ref_put(e->conf);
    rl_free(e);
}
