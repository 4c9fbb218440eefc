/*
 * engine_admin.c: the opcode table, the admin opcodes (POLICIES, STATS, TOP, RELOAD),
 * the decision counters, and config reload.
 *
 * Every answered item passes rl_engine_count. A denial of a CHECK or MULTI_CHECK
 * (not PEEK or ADJUST, which deny nothing) also goes to its policy's heavy-hitters
 * summary (topk.c, listed by TOP) and to the denial log (denylog.c) if configured.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "denylog.h"
#include "engine_internal.h"
#include "escape.h"
#include "log.h"
#include "topk.h"

#define TOP_DEFAULT_KEYS 10
#define TOP_MAX_KEYS (2 * RL_TOPK_SLOTS)
#define DENYLOG_TICK_MS 1000

/* engine_admin.c's state, behind rl_engine.admin. */
typedef struct admin_state {
    rl_topk **tops;                   /* per policy in force; NULL until its first denial */
    size_t top_count;                 /* entries in tops: that config's policy count */
    rl_denylog *denylog;              /* the denial log, or NULL */
    struct event *tick;               /* reports the denial log's dropped lines each second */
    size_t (*connections)(void *arg); /* counts the server's connections, or NULL */
    void *connections_arg;            /* its argument */
} admin_state;

/* ---- heavy hitters and the denial log ---- */

// Returns the summary of policy (from the config p was decided under), creating it;
// NULL if the policy is gone or changed since, or memory is short.
static rl_topk *top_of(rl_engine *e, const pending *p, const rl_policy *policy) {
    admin_state *a = e->admin;
    const rl_config *c = e->conf->config;
    const rl_policy *now = policy;
    if (p->conf != e->conf) {
        now = rl_config_policy(c, policy->name, policy->name_len);
        if (!now || now->fingerprint != policy->fingerprint)
            return NULL;
    }
    size_t i = (size_t)(now - c->policies);
    if (!a->tops || i >= a->top_count)
        return NULL;
    if (!a->tops[i])
        a->tops[i] = rl_topk_new(RL_TOPK_WINDOW_MS);
    return a->tops[i];
}

// Feeds a denial to the top keys and the denial log.
static void note_denial(pending *p, const slot *s, const rl_result *r) {
    admin_state *a = p->engine->admin;
    if (!a || (p->opcode != RL_OP_CHECK && p->opcode != RL_OP_MULTI_CHECK))
        return;
    rl_topk *top = top_of(p->engine, p, s->policy);
    if (top)
        rl_topk_add(top, s->key, s->key_len, rl_clock_mono_us() / 1000);
    if (a->denylog)
        rl_denylog_write(a->denylog, rl_clock_real_us(), s->policy->name, s->policy->name_len, s->key,
                         s->key_len, r->retry_after_ms);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    admin_state *a = arg;
    (void)fd;
    (void)what;
    if (a->denylog)
        rl_denylog_tick(a->denylog, rl_clock_real_us());
}

// Opens the denial log of config (keeping the current one if it is the same, reopened
// for log rotation) and starts the tick that reports dropped lines.
static void open_denylog(rl_engine *e, const rl_config *config) {
    admin_state *a = e->admin;
    char err[512];
    if (a->denylog && rl_denylog_same(a->denylog, &config->denial_log)) {
        if (rl_denylog_reopen(a->denylog, err, sizeof(err)) != 0)
            rl_log_warn("%s", err);
        return;
    }
    rl_denylog_close(a->denylog);
    a->denylog = rl_denylog_open(&config->denial_log, err, sizeof(err));
    if (!a->denylog && err[0])
        rl_log_warn("%s; denials are not logged", err);
    if (a->denylog && !a->tick) {
        struct timeval every = {DENYLOG_TICK_MS / 1000, DENYLOG_TICK_MS % 1000 * 1000};
        a->tick = event_new(e->base, -1, EV_PERSIST, on_tick, a);
        if (!a->tick || event_add(a->tick, &every) != 0)
            rl_log_warn("denial log: no timer; dropped lines are reported with the next line");
    }
}

// Gives the summaries of next's policies that keep their name and limits over from the
// config in force; the others start empty.
static void carry_tops(rl_engine *e, const rl_config *next) {
    admin_state *a = e->admin;
    const rl_config *old = e->conf->config;
    rl_topk **tops = rl_calloc(next->policy_count ? next->policy_count : 1, sizeof(*tops));
    for (size_t i = 0; tops && a->tops && i < next->policy_count; i++) {
        const rl_policy *np = &next->policies[i];
        const rl_policy *op = rl_config_policy(old, np->name, np->name_len);
        if (op && op->fingerprint == np->fingerprint) {
            tops[i] = a->tops[op - old->policies];
            a->tops[op - old->policies] = NULL;
        }
    }
    for (size_t i = 0; a->tops && i < a->top_count; i++)
        rl_topk_free(a->tops[i]);
    rl_free(a->tops);
    a->tops = tops;
    a->top_count = tops ? next->policy_count : 0;
}

/* ---- counting ---- */

void rl_engine_count(pending *p, const slot *s, const rl_result *r) {
    policy_stats *st = rl_engine_stats_of(p, s->policy);
    if (r->flags & RL_FLAG_FALLBACK)
        st->fallbacks++;
    if (r->flags & RL_FLAG_EXEMPT)
        st->exempt++;
    else if (r->flags & RL_FLAG_BLOCKED)
        st->blocked++;
    if (r->flags & RL_FLAG_SHADOW)
        st->shadow_denied++;
    else if (r->status == RL_ST_ALLOWED)
        st->allowed++;
    else
        st->denied++;
    if (r->flags & RL_FLAG_SHADOW)
        rl_log_debug("shadow: policy %s would deny a key", s->policy->name);
    else if (r->status == RL_ST_DENIED)
        note_denial(p, s, r);
}

void rl_engine_count_error(pending *p) {
    for (size_t i = 0; i < p->item_count; i++)
        if (p->slots[i].policy)
            rl_engine_stats_of(p, p->slots[i].policy)->errors++;
}

void rl_engine_store_error(struct rl_engine *e, const rl_store_answer *ans) {
    if (!e->store_down)
        rl_log_warn("store %s failed (%s): answering with each policy's on_store_error "
                    "until it is back",
                    e->store->ops->name, ans->errstr ? ans->errstr : rl_status_name(ans->status));
    e->store_down = 1;
}

void rl_engine_local_error(struct rl_engine *e, const rl_store_answer *ans) {
    int64_t now = rl_clock_real_us();
    e->local_errors++;
    if (now - e->last_local_error_log < 1000000)
        return;
    rl_log_warn("embedded store: %s (%llu such answers since the last line)",
                ans->errstr ? ans->errstr : rl_status_name(ans->status),
                (unsigned long long)e->local_errors);
    e->local_errors = 0;
    e->last_local_error_log = now;
}

void rl_engine_started(struct rl_engine *e) {
    e->started_us = rl_clock_real_us();
    admin_state *a = rl_calloc(1, sizeof(*a));
    if (!a) {
        rl_log_warn("out of memory: no top keys, no denial log");
        return;
    }
    e->admin = a;
    a->top_count = e->conf->config->policy_count;
    a->tops = rl_calloc(a->top_count ? a->top_count : 1, sizeof(*a->tops));
    if (!a->tops)
        a->top_count = 0;
    open_denylog(e, e->conf->config);
}

void rl_engine_admin_free(struct rl_engine *e) {
    admin_state *a = e->admin;
    if (!a)
        return;
    for (size_t i = 0; i < a->top_count; i++)
        rl_topk_free(a->tops[i]);
    rl_free(a->tops);
    rl_denylog_close(a->denylog);
    if (a->tick)
        event_free(a->tick);
    rl_free(a);
    e->admin = NULL;
}

void rl_engine_set_connections(rl_engine *e, size_t (*count)(void *arg), void *arg) {
    admin_state *a = e->admin;
    if (!a)
        return;
    a->connections = count;
    a->connections_arg = arg;
}

void rl_engine_reload_refused(rl_engine *e) {
    admin_state *a = e->admin;
    char err[512];
    e->reload_failures++;
    if (a && a->denylog && rl_denylog_reopen(a->denylog, err, sizeof(err)) != 0)
        rl_log_warn("%s", err);
}

/* ---- admin answers ---- */

static json_t *limits_json(const rl_limits *limits) {
    json_t *rates = json_array();
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        json_t *o =
            json_pack("{s:s, s:I, s:I}", "algorithm", rl_algorithm_name(rate->algorithm), "limit",
                      (json_int_t)rate->limit, "period_ms", (json_int_t)(rate->period_us / 1000));
        if (rate->algorithm == RL_ALGO_TOKEN_BUCKET || rate->algorithm == RL_ALGO_GCRA)
            json_object_set_new(o, "burst", json_integer((json_int_t)rate->burst));
        json_array_append_new(rates, o);
    }
    return rates;
}

static const char *mode_name(const rl_policy *p) {
    return p->mode == RL_MODE_SHADOW ? "shadow" : "enforce";
}

static const char *on_error_name(const rl_policy *p) {
    static const char *const names[] = {"local", "allow", "deny"};
    return names[p->on_store_error];
}

static json_t *policy_json(const rl_policy *p) {
    json_t *o = json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:I}", "name", p->name, "rates",
                          limits_json(&p->limits), "mode", mode_name(p), "on_store_error",
                          on_error_name(p), "overrides", (json_int_t)p->override_count, "exempt",
                          (json_int_t)p->exempt.count, "block", (json_int_t)p->block.count);
    const rl_rate *first = &p->limits.rates[0];
    json_object_set_new(o, "algorithm", json_string(rl_algorithm_name(first->algorithm)));
    json_object_set_new(o, "limit", json_integer((json_int_t)first->limit));
    json_object_set_new(o, "period_ms", json_integer((json_int_t)(first->period_us / 1000)));
    if (first->algorithm == RL_ALGO_TOKEN_BUCKET || first->algorithm == RL_ALGO_GCRA)
        json_object_set_new(o, "burst", json_integer((json_int_t)first->burst));
    return o;
}

// Answers p with the JSON value (consumed), or INTERNAL if it cannot be written.
static void finish_json(pending *p, json_t *value) {
    /* ASCII only: a name's bidi or control characters travel as \u escapes, which no
       terminal acts on when the JSON is printed as it is (rlimitctl --json) */
    p->text = value ? json_dumps(value, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(value);
    if (!p->text)
        p->error = RL_ST_INTERNAL;
    rl_engine_finish(p);
}

static void run_policies(pending *p, const rl_request *req) {
    (void)req;
    const rl_config *c = p->conf->config;
    json_t *list = json_array();
    for (size_t i = 0; i < c->policy_count; i++)
        json_array_append_new(list, policy_json(&c->policies[i]));
    finish_json(p, json_pack("{s:o}", "policies", list));
}

static json_t *policy_stats_json(const rl_policy *policy, const policy_stats *s) {
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", policy->name,
                     "allowed", (json_int_t)s->allowed, "denied", (json_int_t)s->denied,
                     "shadow_denied", (json_int_t)s->shadow_denied, "exempt", (json_int_t)s->exempt,
                     "blocked", (json_int_t)s->blocked, "errors", (json_int_t)s->errors,
                     "store_errors", (json_int_t)s->store_errors, "fallbacks",
                     (json_int_t)s->fallbacks);
}

static json_t *store_json(rl_store *store) {
    char buf[4096];
    int n = store->ops->stats_json(store, buf, sizeof(buf));
    json_t *v = n > 0 && (size_t)n < sizeof(buf) ? json_loads(buf, 0, NULL) : NULL;
    return v ? v : json_null();
}

// Adds the connections and the denial log's figures to a STATS answer.
static void admin_extras(rl_engine *e, json_t *o) {
    admin_state *a = e->admin;
    if (!a)
        return;
    if (a->connections)
        json_object_set_new(o, "connections",
                            json_integer((json_int_t)a->connections(a->connections_arg)));
    if (a->denylog) {
        rl_denylog_stats d = rl_denylog_get_stats(a->denylog);
        json_object_set_new(o, "denial_log",
                            json_pack("{s:I, s:I, s:I}", "lines", (json_int_t)d.lines, "suppressed",
                                      (json_int_t)d.suppressed, "errors", (json_int_t)d.errors));
    }
}

static void run_stats(pending *p, const rl_request *req) {
    (void)req;
    rl_engine *e = p->engine;
    const rl_config *c = p->conf->config;
    json_t *policies = json_array();
    for (size_t i = 0; i < c->policy_count; i++)
        json_array_append_new(policies, policy_stats_json(&c->policies[i], &p->conf->stats[i]));
    json_t *o = json_pack(
        "{s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "policies", policies, "store", store_json(e->store),
        "uptime_s", (json_int_t)((rl_clock_real_us() - e->started_us) / 1000000), "in_flight",
        (json_int_t)e->in_flight - 1, "refused", (json_int_t)e->refused, "reloads",
        (json_int_t)e->reloads, "reload_failures", (json_int_t)e->reload_failures);
    if (e->store != e->local)
        json_object_set_new(o, "local_store", store_json(e->local));
    json_object_set_new(o, "refused_peers", json_integer((json_int_t)e->refused_peers));
    json_object_set_new(o, "auth_failures", json_integer((json_int_t)e->auth_failures));
    admin_extras(e, o);
    finish_json(p, o);
}

static void run_reload(pending *p, const rl_request *req) {
    (void)req;
    rl_engine *e = p->engine;
    char err[1024] = "this daemon has no config file to reload from";
    if (!e->reload || e->reload(e->reload_arg, err, sizeof(err)) != RL_OK) {
        p->error = RL_ST_RELOAD_FAILED;
        finish_json(p, json_pack("{s:b, s:s}", "reloaded", 0, "error", err));
        return;
    }
    /* the reload swapped the engine's config; answer with the new one's figures */
    finish_json(p, json_pack("{s:b, s:I}", "reloaded", 1, "policies",
                             (json_int_t)e->conf->config->policy_count));
}

// A key as TOP shows it: as it is if escaping leaves it so (escape.h), else escaped
// (UTF-8 kept) with "escaped": true and its exact bytes in hex, so that no key shows
// as another does.
static json_t *top_key_json(const rl_topk_key *k) {
    json_t *o;
    if (rl_key_is_text(k->key, k->kept)) {
        o = json_pack("{s:s%}", "key", k->key, k->kept);
    } else {
        char shown[RL_TOPK_KEY_MAX * 4 + 1], hex[RL_TOPK_KEY_MAX * 2 + 1];
        rl_escape(k->key, k->kept, RL_ESCAPE_UTF8, shown, sizeof(shown));
        rl_hex_key(k->key, k->kept, hex, sizeof(hex));
        o = json_pack("{s:s, s:s, s:b}", "key", shown, "key_hex", hex, "escaped", 1);
    }
    if (!o)
        return NULL;
    json_object_set_new(o, "denied", json_integer((json_int_t)k->denied));
    json_object_set_new(o, "error", json_integer((json_int_t)k->error));
    if (k->key_len > k->kept) {
        json_object_set_new(o, "truncated", json_true());
        json_object_set_new(o, "key_len", json_integer((json_int_t)k->key_len));
    }
    return o;
}

// Appends {"name":..,"keys":[..]} for policy index i to list, unless it has no keys
// and skip_empty is set.
static void top_policy_json(rl_engine *e, const rl_policy *policy, size_t i, size_t n,
                            int skip_empty, json_t *list) {
    admin_state *a = e->admin;
    rl_topk_key keys[TOP_MAX_KEYS];
    rl_topk *top = a && i < a->top_count ? a->tops[i] : NULL;
    size_t count = top ? rl_topk_list(top, rl_clock_mono_us() / 1000, keys, n) : 0;
    if (count == 0 && skip_empty)
        return;
    json_t *arr = json_array();
    for (size_t k = 0; k < count; k++)
        json_array_append_new(arr, top_key_json(&keys[k]));
    json_array_append_new(list, json_pack("{s:s, s:o}", "name", policy->name, "keys", arr));
}

// TOP: item policy (empty: every policy with denials), cost = how many keys.
static void run_top(pending *p, const rl_request *req) {
    rl_engine *e = p->engine;
    const rl_config *c = e->conf->config;
    const rl_item *it = &req->items[0];
    size_t n = it->cost <= 0 ? TOP_DEFAULT_KEYS
                             : (it->cost > TOP_MAX_KEYS ? TOP_MAX_KEYS : (size_t)it->cost);
    const rl_policy *only = it->policy_len ? rl_config_policy(c, it->policy, it->policy_len) : NULL;
    if (it->policy_len && !only) {
        p->error = RL_ST_UNKNOWN_POLICY;
        rl_engine_finish(p);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < c->policy_count; i++)
        if (!only || only == &c->policies[i])
            top_policy_json(e, &c->policies[i], i, n, !only, list);
    finish_json(p, json_pack("{s:o, s:I}", "policies", list, "window_s",
                             (json_int_t)(RL_TOPK_WINDOW_MS / 1000)));
}

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

/* ---- the opcode table ---- */

static const rl_opcode_handler handlers[] = {
    [RL_OP_PING] = {run_ping, 0},
    [RL_OP_CHECK] = {rl_engine_decide, RL_PERM_CHECK},
    [RL_OP_PEEK] = {rl_engine_decide, RL_PERM_PEEK},
    [RL_OP_ADJUST] = {rl_engine_decide, RL_PERM_CHARGE}, /* or REFUND: rl_engine_needs */
    [RL_OP_RESET] = {rl_engine_decide, RL_PERM_RESET},
    [RL_OP_MULTI_CHECK] = {rl_engine_decide, RL_PERM_MULTI_CHECK},
    [RL_OP_AUTH] = {run_auth, 0},
    [RL_OP_POLICIES] = {run_policies, RL_PERM_POLICIES},
    [RL_OP_STATS] = {run_stats, RL_PERM_STATS},
    [RL_OP_TOP] = {run_top, RL_PERM_TOP},
    [RL_OP_RELOAD] = {run_reload, RL_PERM_RELOAD},
};

const rl_opcode_handler *rl_engine_handler(uint8_t opcode) {
    if (opcode >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[opcode].run)
        return NULL;
    return &handlers[opcode];
}

uint32_t rl_engine_needs(const rl_opcode_handler *h, const rl_request *req) {
    if (h == &handlers[RL_OP_ADJUST] && req->item_count == 1 && req->items[0].cost < 0)
        return RL_PERM_REFUND;
    return h->needs;
}

void rl_engine_note_refused_peer(rl_engine *e) {
    e->refused_peers++;
}

void rl_engine_note_auth_failure(rl_engine *e) {
    e->auth_failures++;
}

/* ---- reload ---- */

static int same_string(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_store(const rl_store_conf *a, const rl_store_conf *b) {
    return a->type == b->type && a->max_keys == b->max_keys && same_string(a->url, b->url) &&
           same_string(a->username, b->username) && same_string(a->password, b->password) &&
           same_string(a->key_prefix, b->key_prefix) && a->pool == b->pool &&
           a->connect_timeout_ms == b->connect_timeout_ms &&
           a->command_timeout_ms == b->command_timeout_ms && a->batch_max == b->batch_max;
}

// Carries the counters of policies that keep their name over to the new config, and
// forgets the state of policies removed or with changed limits.
static void carry_over(rl_engine *e, conf_ref *old, conf_ref *next) {
    const rl_config *oc = old->config;
    for (size_t i = 0; i < oc->policy_count; i++) {
        const rl_policy *op = &oc->policies[i];
        const rl_policy *np = rl_config_policy(next->config, op->name, op->name_len);
        if (np)
            *rl_engine_policy_stats(next, np) = old->stats[i];
        if (np && np->fingerprint == op->fingerprint)
            continue;
        /* Only this instance's own state: Redis state is shared with the other instances,
           which may still run the old config during a rolling reload; a changed policy's
           Redis keys carry on (a key written by another algorithm counts as empty) or
           expire by their TTL. */
        e->local->ops->forget_ns(e->local, op->name, op->name_len);
    }
}

// Returns RL_OK if the denial log config names can be written (or is unchanged).
static int denylog_check(const rl_engine *e, const rl_config *config, char *err, size_t errlen) {
    const admin_state *a = e->admin;
    if (!config->denial_log.path || config->denial_log.syslog ||
        (a && a->denylog && rl_denylog_same(a->denylog, &config->denial_log)))
        return RL_OK; /* syslog cannot be probed without disturbing the one in use */
    char why[512];
    rl_denylog *probe = rl_denylog_open(&config->denial_log, why, sizeof(why));
    rl_denylog_close(probe);
    if (probe || !why[0])
        return RL_OK;
    snprintf(err, errlen, "%s: %s", config->source, why);
    return RL_ERR;
}

int rl_engine_reload_check(const rl_engine *e, const rl_config *config, char *err, size_t errlen) {
    if (!same_store(&e->conf->config->store, &config->store)) {
        snprintf(err, errlen, "%s: the store section cannot change on reload; restart instead",
                 config->source);
        return RL_ERR;
    }
    return denylog_check(e, config, err, errlen);
}

int rl_engine_reload(rl_engine *e, rl_config *config, char *err, size_t errlen) {
    if (rl_engine_reload_check(e, config, err, errlen) != RL_OK) {
        e->reload_failures++;
        return RL_ERR;
    }
    conf_ref *next = rl_conf_ref_new(config);
    if (!next) {
        snprintf(err, errlen, "out of memory");
        return RL_ERR;
    }
    carry_over(e, e->conf, next);
    if (e->admin) {
        carry_tops(e, config);
        open_denylog(e, config);
    }
    rl_conf_ref_put(e->conf);
    e->conf = next;
    e->reloads++;
    rl_log_set_level(config->log_level);
    rl_log_info("reloaded %s: %zu policies", config->source, config->policy_count);
    return RL_OK;
}
