/*
 * engine_stats.c: what every answer feeds, and the stats snapshot.
 *
 *   answered item --> rl_engine_count --> the policy's counters (conf_ref.counters)
 *                                     \-> a denial of CHECK or MULTI_CHECK (not PEEK or
 *                                         ADJUST, which deny nothing): the policy's
 *                                         heavy hitters (topk.c, listed by TOP) and the
 *                                         denial log (denylog.c) if configured
 *   counters + store figures --> rl_engine_stats --> rl_stats (STATS, /metrics)
 *
 * Counters and summaries belong to the config in force; a reload carries those of the
 * policies that keep their name over (rl_engine_stats_reload).
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "engine_internal.h"
#include "log.h"

#define DENYLOG_TICK_MS 1000
#define LOCAL_ERROR_LOG_US 1000000 /* embedded store errors: one log line a second */

/* ---- counters ---- */

static rl_policy_counters *counters_in(conf_ref *ref, const rl_policy *policy) {
    return &ref->counters[policy - ref->config->policies];
}

// Returns the counters an answer of p for policy goes to: those of the config in force
// (p may have been decided under a config a reload has replaced since).
static rl_policy_counters *counters_of(pending *p, const rl_policy *policy) {
    conf_ref *now = p->engine->conf;
    if (p->conf == now)
        return counters_in(now, policy);
    /* A reload happened while p was in flight: the old counters were carried over
       already, so count in the new config's policy of the same name, if it has one. */
    const rl_policy *same = rl_config_policy(now->config, policy->name, policy->name_len);
    return counters_in(same ? now : p->conf, same ? same : policy);
}

/* ---- heavy hitters and the denial log ---- */

// Returns the summary of policy (from the config p was decided under), creating it;
// NULL if the policy is gone or changed since, or memory is short.
static rl_topk *top_of(rl_engine *e, const pending *p, const rl_policy *policy) {
    const rl_config *c = e->conf->config;
    const rl_policy *now = policy;
    if (p->conf != e->conf) {
        now = rl_config_policy(c, policy->name, policy->name_len);
        if (!now || now->fingerprint != policy->fingerprint)
            return NULL;
    }
    size_t i = (size_t)(now - c->policies);
    if (i >= e->top_count)
        return NULL;
    if (!e->tops[i])
        e->tops[i] = rl_topk_new(RL_TOPK_WINDOW_MS);
    return e->tops[i];
}

// Feeds a denial to the top keys and the denial log.
static void note_denial(pending *p, const slot *s, const rl_result *r) {
    rl_engine *e = p->engine;
    if (p->opcode != RL_OP_CHECK && p->opcode != RL_OP_MULTI_CHECK)
        return;
    rl_topk *top = top_of(e, p, s->policy);
    if (top)
        rl_topk_add(top, s->key, s->key_len, rl_clock_mono_us() / 1000);
    if (e->denylog)
        rl_denylog_write(e->denylog, rl_clock_real_us(), s->policy->name, s->policy->name_len,
                         s->key, s->key_len, r->retry_after_ms);
}

static void on_denylog_tick(evutil_socket_t fd, short what, void *arg) {
    rl_engine *e = arg;
    (void)fd;
    (void)what;
    if (e->denylog)
        rl_denylog_tick(e->denylog, rl_clock_real_us());
}

// Opens the denial log of config (keeping the current one if it is the same, reopened
// for log rotation) and starts the tick that reports dropped lines.
static void open_denylog(rl_engine *e, const rl_config *config) {
    char err[512];
    if (e->denylog && rl_denylog_same(e->denylog, &config->denial_log)) {
        if (rl_denylog_reopen(e->denylog, err, sizeof(err)) != 0)
            rl_log_warn("%s", err);
        return;
    }
    rl_denylog_close(e->denylog);
    err[0] = '\0';
    e->denylog = rl_denylog_open(&config->denial_log, err, sizeof(err));
    if (!e->denylog && err[0])
        rl_log_warn("%s; denials are not logged", err);
    if (e->denylog && !e->denylog_tick) {
        struct timeval every = {DENYLOG_TICK_MS / 1000, DENYLOG_TICK_MS % 1000 * 1000};
        e->denylog_tick = event_new(e->base, -1, EV_PERSIST, on_denylog_tick, e);
        if (!e->denylog_tick || event_add(e->denylog_tick, &every) != 0)
            rl_log_warn("denial log: no timer; dropped lines are reported with the next line");
    }
}

// Returns zeroed summaries for n policies, or NULL (logged: TOP lists nothing).
static rl_topk **tops_new(size_t n) {
    rl_topk **tops = rl_calloc(n ? n : 1, sizeof(*tops));
    if (!tops)
        rl_log_warn("out of memory: TOP lists no keys until the next reload");
    return tops;
}

static void tops_free(rl_engine *e) {
    for (size_t i = 0; i < e->top_count; i++)
        rl_topk_free(e->tops[i]);
    rl_free(e->tops);
    e->tops = NULL;
    e->top_count = 0;
}

// Gives the summaries of next's policies that keep their name and limits over from the
// config in force; the others start empty.
static void carry_tops(rl_engine *e, const rl_config *next) {
    const rl_config *old = e->conf->config;
    rl_topk **tops = tops_new(next->policy_count);
    for (size_t i = 0; tops && e->top_count && i < next->policy_count; i++) {
        const rl_policy *np = &next->policies[i];
        const rl_policy *op = rl_config_policy(old, np->name, np->name_len);
        if (op && op->fingerprint == np->fingerprint) {
            tops[i] = e->tops[op - old->policies];
            e->tops[op - old->policies] = NULL;
        }
    }
    tops_free(e);
    e->tops = tops;
    e->top_count = tops ? next->policy_count : 0;
}

// Carries the counters of policies that keep their name over to next.
static void carry_counters(conf_ref *old, conf_ref *next) {
    const rl_config *oc = old->config;
    for (size_t i = 0; i < oc->policy_count; i++) {
        const rl_policy *op = &oc->policies[i];
        const rl_policy *np = rl_config_policy(next->config, op->name, op->name_len);
        if (np)
            *counters_in(next, np) = old->counters[i];
    }
}

void rl_engine_stats_start(rl_engine *e) {
    e->top_count = e->conf->config->policy_count;
    e->tops = tops_new(e->top_count);
    if (!e->tops)
        e->top_count = 0;
    open_denylog(e, e->conf->config);
}

void rl_engine_stats_stop(rl_engine *e) {
    tops_free(e);
    rl_denylog_close(e->denylog);
    e->denylog = NULL;
    if (e->denylog_tick)
        event_free(e->denylog_tick);
    e->denylog_tick = NULL;
}

void rl_engine_stats_reload(rl_engine *e, conf_ref *next) {
    carry_counters(e->conf, next);
    carry_tops(e, next->config);
    open_denylog(e, next->config);
}

size_t rl_engine_top_keys(rl_engine *e, size_t i, rl_topk_key *keys, size_t n) {
    if (i >= e->top_count || !e->tops[i])
        return 0;
    return rl_topk_list(e->tops[i], rl_clock_mono_us() / 1000, keys, n);
}

/* ---- counting ---- */

static void held_less(rl_policy_counters *c, uint64_t n) {
    c->held = c->held > n ? c->held - n : 0;
}

// RELEASE and RENEW: released (or released_on_disconnect) or lease_unknown.
static void count_lease_end(pending *p, rl_policy_counters *c, const rl_result *r) {
    if (r->status == RL_ST_LEASE_UNKNOWN) {
        c->lease_unknown++;
    } else if (p->opcode == RL_OP_RELEASE && p->lease != 0) {
        if (p->on_close)
            c->released_on_disconnect++;
        else
            c->released++;
        held_less(c, 1);
    }
}

void rl_engine_count_store_leases(pending *p, const rl_store_answer *ans) {
    if (!ans->leases_expired && !ans->leases_ended)
        return;
    rl_policy_counters *c = counters_of(p, p->slots[0].policy);
    c->expired += ans->leases_expired;
    held_less(c, (uint64_t)ans->leases_expired + ans->leases_ended);
}

void rl_engine_count_swept_leases(rl_engine *e, const char *ns, size_t ns_len, uint32_t leases) {
    const rl_policy *policy = rl_config_policy(e->conf->config, ns, ns_len);
    if (!policy || !rl_engine_is_concurrency(policy))
        return;
    rl_policy_counters *c = counters_in(e->conf, policy);
    c->expired += leases;
    held_less(c, leases);
}

void rl_engine_count(pending *p, const slot *s, const rl_result *r) {
    rl_policy_counters *c = counters_of(p, s->policy);
    if (p->opcode == RL_OP_RELEASE || p->opcode == RL_OP_RENEW) {
        count_lease_end(p, c, r);
        return;
    }
    if (p->acquired) {
        c->acquired++;
        c->held++;
    }
    if (r->flags & RL_FLAG_FALLBACK)
        c->fallbacks++;
    if (r->flags & RL_FLAG_EXEMPT)
        c->exempt++;
    else if (r->flags & RL_FLAG_BLOCKED)
        c->blocked++;
    if (r->flags & RL_FLAG_SHADOW)
        c->shadow_denied++;
    else if (r->status == RL_ST_ALLOWED)
        c->allowed++;
    else
        c->denied++;
    if (r->flags & RL_FLAG_SHADOW)
        rl_log_debug("shadow: policy %s would deny a key", s->policy->name);
    else if (r->status == RL_ST_DENIED)
        note_denial(p, s, r);
}

void rl_engine_count_error(pending *p) {
    for (size_t i = 0; i < p->item_count; i++)
        if (p->slots[i].policy)
            counters_of(p, p->slots[i].policy)->errors++;
}

void rl_engine_count_store_error(pending *p, const rl_store_answer *ans) {
    rl_engine *e = p->engine;
    for (size_t i = 0; i < p->item_count; i++)
        counters_of(p, p->slots[i].policy)->store_errors++;
    if (!e->store_down)
        rl_log_warn("store %s failed (%s): answering with each policy's on_store_error "
                    "until it is back",
                    e->store->ops->name, ans->errstr ? ans->errstr : rl_status_name(ans->status));
    e->store_down = 1;
}

void rl_engine_local_error(rl_engine *e, const rl_store_answer *ans) {
    int64_t now = rl_clock_mono_us();
    e->local_errors++;
    if (e->last_local_error_log && now - e->last_local_error_log < LOCAL_ERROR_LOG_US)
        return;
    rl_log_warn("embedded store: %s (%llu such answers since the last line)",
                ans->errstr ? ans->errstr : rl_status_name(ans->status),
                (unsigned long long)e->local_errors);
    e->local_errors = 0;
    e->last_local_error_log = now;
}

void rl_engine_note_refused_peer(rl_engine *e) {
    e->refused_peers++;
}

void rl_engine_note_auth_failure(rl_engine *e) {
    e->auth_failures++;
}

void rl_engine_set_connections(rl_engine *e, size_t (*count)(void *arg), void *arg) {
    e->connections = count;
    e->connections_arg = arg;
}

/* ---- the snapshot ---- */

// The policies' lines of the snapshot, from the config in force. Returns RL_OK or RL_ERR.
static int policies_snapshot(const rl_engine *e, rl_stats *out) {
    const rl_config *c = e->conf->config;
    out->policies = rl_calloc(c->policy_count ? c->policy_count : 1, sizeof(*out->policies));
    if (!out->policies)
        return RL_ERR;
    out->policy_count = c->policy_count;
    for (size_t i = 0; i < c->policy_count; i++)
        out->policies[i] = (rl_policy_figures){c->policies[i].name, e->conf->counters[i],
                                               rl_engine_is_concurrency(&c->policies[i])};
    return RL_OK;
}

static void engine_snapshot(const rl_engine *e, rl_stats *out) {
    int64_t up_us = rl_clock_real_us() - e->started_us;
    out->uptime_s = up_us > 0 ? (uint64_t)up_us / 1000000 : 0;
    out->in_flight = e->in_flight;
    out->refused = e->refused;
    out->reloads = e->reloads;
    out->reload_failures = e->reload_failures;
    out->refused_peers = e->refused_peers;
    out->auth_failures = e->auth_failures;
    out->has_connections = e->connections != NULL;
    out->connections = e->connections ? e->connections(e->connections_arg) : 0;
    out->has_denial_log = e->denylog != NULL;
    if (e->denylog) {
        rl_denylog_stats d = rl_denylog_get_stats(e->denylog);
        out->denial_lines = d.lines;
        out->denial_suppressed = d.suppressed;
        out->denial_errors = d.errors;
    }
}

int rl_engine_stats(rl_engine *e, rl_stats *out) {
    memset(out, 0, sizeof(*out));
    engine_snapshot(e, out);
    e->store->ops->stats(e->store, &out->store);
    out->has_local = e->store != e->local;
    if (out->has_local)
        e->local->ops->stats(e->local, &out->local);
    if (policies_snapshot(e, out) != RL_OK || out->store.failed || out->local.failed)
        return RL_ERR;
    return RL_OK;
}
