/*
 * engine_admin.c: the opcode table, the admin opcodes (POLICIES, STATS, RELOAD),
 * the decision counters, and config reload.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "engine_internal.h"
#include "log.h"

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- counting ---- */

void rl_engine_count(pending *p, const slot *s, const rl_result *r) {
    policy_stats *st = rl_engine_policy_stats(p->conf, s->policy);
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
}

void rl_engine_count_error(pending *p) {
    for (size_t i = 0; i < p->item_count; i++)
        if (p->slots[i].policy)
            rl_engine_policy_stats(p->conf, p->slots[i].policy)->errors++;
}

void rl_engine_store_error(struct rl_engine *e, const rl_store_answer *ans) {
    if (!e->store_down)
        rl_log_warn("store %s failed (%s): answering with each policy's on_store_error "
                    "until it is back",
                    e->store->ops->name, ans->errstr ? ans->errstr : rl_status_name(ans->status));
    e->store_down = 1;
}

void rl_engine_started(struct rl_engine *e) {
    e->started_us = wall_us();
}

void rl_engine_admin_free(struct rl_engine *e) {
    (void)e;
}

/* ---- admin answers ---- */

static json_t *limits_json(const rl_limits *limits) {
    json_t *rates = json_array();
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        json_t *o = json_pack("{s:s, s:I, s:I}", "algorithm", rl_algorithm_name(rate->algorithm),
                              "limit", (json_int_t)rate->limit, "period_ms",
                              (json_int_t)(rate->period_us / 1000));
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
    p->text = value ? json_dumps(value, JSON_COMPACT) : NULL;
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
                     "shadow_denied", (json_int_t)s->shadow_denied, "exempt",
                     (json_int_t)s->exempt, "blocked", (json_int_t)s->blocked, "errors",
                     (json_int_t)s->errors, "store_errors", (json_int_t)s->store_errors,
                     "fallbacks", (json_int_t)s->fallbacks);
}

static json_t *store_json(rl_store *store) {
    char buf[4096];
    int n = store->ops->stats_json(store, buf, sizeof(buf));
    json_t *v = n > 0 && (size_t)n < sizeof(buf) ? json_loads(buf, 0, NULL) : NULL;
    return v ? v : json_null();
}

static void run_stats(pending *p, const rl_request *req) {
    (void)req;
    rl_engine *e = p->engine;
    const rl_config *c = p->conf->config;
    json_t *policies = json_array();
    for (size_t i = 0; i < c->policy_count; i++)
        json_array_append_new(policies, policy_stats_json(&c->policies[i], &p->conf->stats[i]));
    json_t *o = json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "policies", policies, "store",
                          store_json(e->store), "uptime_s",
                          (json_int_t)((wall_us() - e->started_us) / 1000000), "in_flight",
                          (json_int_t)e->in_flight - 1, "refused", (json_int_t)e->refused,
                          "reloads", (json_int_t)e->reloads, "reload_failures",
                          (json_int_t)e->reload_failures);
    if (e->store != e->local)
        json_object_set_new(o, "local_store", store_json(e->local));
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

static void run_ping(pending *p, const rl_request *req) {
    (void)req;
    rl_engine_finish(p);
}

/* ---- the opcode table ---- */

static const rl_opcode_handler handlers[] = {
    [RL_OP_PING] = {run_ping, 0},
    [RL_OP_CHECK] = {rl_engine_decide, 0},
    [RL_OP_PEEK] = {rl_engine_decide, 0},
    [RL_OP_ADJUST] = {rl_engine_decide, 0},
    [RL_OP_RESET] = {rl_engine_decide, 1},
    [RL_OP_MULTI_CHECK] = {rl_engine_decide, 0},
    [RL_OP_POLICIES] = {run_policies, 0},
    [RL_OP_STATS] = {run_stats, 0},
    [RL_OP_RELOAD] = {run_reload, 1},
};

const rl_opcode_handler *rl_engine_handler(uint8_t opcode) {
    if (opcode >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[opcode].run)
        return NULL;
    return &handlers[opcode];
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
        e->local->ops->forget_ns(e->local, op->name, op->name_len);
        if (e->store != e->local)
            e->store->ops->forget_ns(e->store, op->name, op->name_len);
    }
}

int rl_engine_reload_check(const rl_engine *e, const rl_config *config, char *err,
                           size_t errlen) {
    if (same_store(&e->conf->config->store, &config->store))
        return RL_OK;
    snprintf(err, errlen, "%s: the store section cannot change on reload; restart instead",
             config->source);
    return RL_ERR;
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
    rl_conf_ref_put(e->conf);
    e->conf = next;
    e->reloads++;
    rl_log_set_level(config->log_level);
    rl_log_info("reloaded %s: %zu policies", config->source, config->policy_count);
    return RL_OK;
}
