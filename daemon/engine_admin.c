/*
 * engine_admin.c: the admin opcodes (POLICIES, STATS, TOP, RELOAD) and config reload.
 *
 * Their answers are JSON texts (PROTOCOL.md). STATS renders the snapshot of
 * engine_stats.c (stats.h); TOP lists its heavy-hitter summaries. The opcode table that
 * sends them here is engine.c's.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"
#include "escape.h"
#include "log.h"

#define TOP_DEFAULT_KEYS 10
#define TOP_MAX_KEYS (2 * RL_TOPK_SLOTS)

/* ---- admin answers ---- */

static json_t *limits_json(const rl_limits *limits) {
    json_t *rates = json_array();
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        json_t *o = json_pack("{s:s, s:I, s:I}", "algorithm", rl_algorithm_name(rate->algorithm),
                              "limit", (json_int_t)rate->limit,
                              rate->algorithm == RL_ALGO_CONCURRENCY ? "lease_ms" : "period_ms",
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
    json_object_set_new(o, first->algorithm == RL_ALGO_CONCURRENCY ? "lease_ms" : "period_ms",
                        json_integer((json_int_t)(first->period_us / 1000)));
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

void rl_engine_run_policies(pending *p, const rl_request *req) {
    (void)req;
    const rl_config *c = p->conf->config;
    json_t *list = json_array();
    for (size_t i = 0; i < c->policy_count; i++)
        json_array_append_new(list, policy_json(&c->policies[i]));
    finish_json(p, json_pack("{s:o}", "policies", list));
}

void rl_engine_run_stats(pending *p, const rl_request *req) {
    (void)req;
    rl_stats stats;
    json_t *o = NULL;
    if (rl_engine_stats(p->engine, &stats) == RL_OK) {
        stats.in_flight--; /* not this request */
        o = rl_stats_json(&stats);
    }
    rl_stats_free(&stats);
    finish_json(p, o);
}

void rl_engine_run_reload(pending *p, const rl_request *req) {
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
    rl_topk_key keys[TOP_MAX_KEYS];
    size_t count = rl_engine_top_keys(e, i, keys, n);
    if (count == 0 && skip_empty)
        return;
    json_t *arr = json_array();
    for (size_t k = 0; k < count; k++)
        json_array_append_new(arr, top_key_json(&keys[k]));
    json_array_append_new(list, json_pack("{s:s, s:o}", "name", policy->name, "keys", arr));
}

// TOP: item policy (empty: every policy with denials), cost = how many keys.
void rl_engine_run_top(pending *p, const rl_request *req) {
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

// Forgets the embedded store's state of the policies removed or with changed limits.
static void forget_changed(rl_engine *e, const rl_config *next) {
    const rl_config *oc = e->conf->config;
    for (size_t i = 0; i < oc->policy_count; i++) {
        const rl_policy *op = &oc->policies[i];
        const rl_policy *np = rl_config_policy(next, op->name, op->name_len);
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
    if (!config->denial_log.path || config->denial_log.syslog ||
        (e->denylog && rl_denylog_same(e->denylog, &config->denial_log)))
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
    forget_changed(e, config);
    rl_engine_stats_reload(e, next);
    rl_conf_ref_put(e->conf);
    e->conf = next;
    e->reloads++;
    rl_log_info("reloaded %s: %zu policies", config->source, config->policy_count);
    return RL_OK;
}

void rl_engine_set_reloader(rl_engine *e, int (*reload)(void *, char *, size_t), void *arg) {
    e->reload = reload;
    e->reload_arg = arg;
}

void rl_engine_reload_refused(rl_engine *e) {
    char err[512];
    e->reload_failures++;
    if (e->denylog && rl_denylog_reopen(e->denylog, err, sizeof(err)) != 0)
        rl_log_warn("%s", err);
}
