/*
 * replay_decide.c: deciding a request the daemon's way (see replay.h): the config's
 * exempt and block lists, then the memory store's CHECK on the virtual clock. Shadow
 * mode: the daemon admits a would-be denial; the report counts it as denied and the
 * --decisions line says "allowed": true, "shadow": true.
 */
#include <inttypes.h>
#include <string.h>

#include "alloc.h"
#include "replay_internal.h"
#include "store_memory.h"

#define SWEEP_EVERY 1024   /* decisions between two sweeps of a store */
#define SWEEP_BUCKETS 1024 /* buckets looked at per sweep: one per decision */

/* What one run decided for a request. */
typedef struct outcome {
    int allowed;        /* the verdict of the policy's limits */
    int shadow;         /* the policy is in shadow mode (the daemon admits anyway) */
    uint64_t remaining; /* units left */
    int64_t retry_us;   /* denied: until the same cost would pass */
} outcome;

/* The store's answer, copied out of its callback. */
typedef struct answer {
    rl_status status;   /* ALLOWED, DENIED or an error */
    rl_verdict verdict; /* the item's verdict */
    const char *errstr; /* an error's detail */
} answer;

int replay_runs_open(replay *rp) {
    for (size_t r = 0; r < rp->run_count; r++) {
        replay_run *run = &rp->runs[r];
        char err[512];
        run->path = rp->opts.config[r];
        run->config = rl_config_load_flags(run->path, RL_CONFIG_NO_LISTEN, err, sizeof(err));
        if (!run->config) {
            snprintf(rp->err, sizeof(rp->err), "%s", err);
            return -1;
        }
        uint64_t max_keys = run->config->store.max_keys ? run->config->store.max_keys : 1000000;
        run->store = rl_store_memory_new_clocked(max_keys, &run->now_us);
        run->stats = rl_calloc(run->config->policy_count + 1, sizeof(*run->stats));
        if (!run->store || !run->stats) {
            snprintf(rp->err, sizeof(rp->err), "out of memory");
            return -1;
        }
    }
    return 0;
}

void replay_runs_close(replay *rp) {
    for (size_t r = 0; r < 2; r++) {
        replay_run *run = &rp->runs[r];
        if (run->store)
            run->store->ops->free(run->store);
        for (size_t i = 0; run->stats && i < run->config->policy_count; i++)
            rl_replay_stats_free(run->stats[i]);
        rl_free(run->stats);
        rl_config_free(run->config);
        memset(run, 0, sizeof(*run));
    }
}

int replay_resolve(replay *rp, const char *name, size_t len, int idx[2], const char **reason) {
    for (size_t r = 0; r < rp->run_count; r++) {
        const rl_config *c = rp->runs[r].config;
        const rl_policy *p = rl_config_policy(c, name, len);
        if (!p)
            return *reason = r ? "no such policy in the --compare config"
                               : "no such policy in the config",
                   -1;
        if (p->limits.rates[0].algorithm == RL_ALGO_CONCURRENCY)
            return *reason = "a concurrency policy (a log has no release times)", -1;
        idx[r] = (int)(p - c->policies);
    }
    return 0;
}

static void on_answer(void *arg, const rl_store_answer *ans) {
    answer *a = arg;
    a->status = ans->status;
    a->errstr = ans->errstr;
    if (ans->count > 0)
        a->verdict = ans->verdicts[0];
}

// Decides e in run, as the engine would. Returns 0, or -1 with rp->err.
static int decide_one(replay *rp, replay_run *run, const rl_policy *p, const replay_entry *e,
                      outcome *out) {
    const rl_limits *limits = rl_policy_limits(p, e->buf, e->key_len);
    memset(out, 0, sizeof(*out));
    out->shadow = p->mode == RL_MODE_SHADOW;
    if (rl_keyset_has(&p->exempt, e->buf, e->key_len)) {
        out->allowed = 1;
        out->remaining = rl_rate_capacity(&limits->rates[0]) - (uint64_t)e->cost;
        return 0;
    }
    if (rl_keyset_has(&p->block, e->buf, e->key_len)) {
        out->shadow = 0;
        out->retry_us = rl_rate_window_us(&limits->rates[0]);
        return 0;
    }
    rl_store_item item;
    memset(&item, 0, sizeof(item));
    item.limits = limits;
    item.ns = p->name;
    item.ns_len = p->name_len;
    item.key = e->buf;
    item.key_len = e->key_len;
    item.cost = e->cost;
    answer a = {0};
    run->now_us = e->ts_us;
    if (run->store->ops->submit(run->store, RL_STORE_CHECK, &item, 1, on_answer, &a) != RL_OK ||
        (a.status != RL_ST_ALLOWED && a.status != RL_ST_DENIED)) {
        snprintf(rp->err, sizeof(rp->err),
                 "line %" PRIu64
                 ": the store of %s refused the request (%s): raise store.max_keys?",
                 e->line, run->path, a.errstr ? a.errstr : "status");
        return -1;
    }
    out->allowed = a.verdict.allowed;
    out->remaining = a.verdict.remaining;
    out->retry_us = a.verdict.allowed ? 0 : a.verdict.retry_after_us;
    if (++run->decided % SWEEP_EVERY == 0)
        rl_store_memory_sweep(run->store, SWEEP_BUCKETS);
    return 0;
}

// Writes e's decision in run a as one JSON line (--decisions), the daemon's answer. The
// policy name (from the config: any UTF-8) and the key are JSON-escaped by jansson.
static void write_decision(replay *rp, const rl_policy *p, const replay_entry *e,
                           const outcome *o) {
    int admitted = o->allowed || o->shadow;
    uint64_t remaining = o->remaining > UINT32_MAX ? UINT32_MAX : o->remaining;
    json_t *line = json_object();
    if (!line)
        return;
    json_object_set_new(line, "line", json_integer((json_int_t)e->line));
    json_object_set_new(line, "ts_us", json_integer(e->ts_us));
    json_object_set_new(line, "policy", json_string(p->name));
    if (rl_replay_key_json(line, e->buf, e->key_len) != 0)
        json_object_set_new(line, "key", json_null());
    json_object_set_new(line, "allowed", json_boolean(admitted));
    json_object_set_new(line, "remaining", json_integer((json_int_t)remaining));
    json_object_set_new(line, "retry_after_ms",
                        json_integer(admitted ? 0 : (o->retry_us + 999) / 1000));
    if (o->shadow && !o->allowed)
        json_object_set_new(line, "shadow", json_true());
    char *text = json_dumps(line, JSON_PRESERVE_ORDER);
    if (text)
        fprintf(rp->decisions, "%s\n", text);
    free(text);
    json_decref(line);
}

/* ---- keys whose outcome changes (--compare) ---- */

static int change_find(const replay *rp, int policy, const replay_entry *e, uint64_t h) {
    size_t kept = e->key_len < RL_REPLAY_KEY_KEPT ? e->key_len : RL_REPLAY_KEY_KEPT;
    for (size_t i = 0; i < rp->change_count; i++) {
        const replay_change *c = &rp->changes[i];
        if (c->hash == h && c->policy == policy && c->key_len == e->key_len &&
            memcmp(c->key, e->buf, kept) == 0)
            return (int)i;
    }
    return -1;
}

// A slot for a key newly decided differently (Space-Saving on such lines).
static replay_change *change_take(replay *rp) {
    if (rp->change_count < REPLAY_CHANGES)
        return &rp->changes[rp->change_count++];
    size_t min = 0;
    for (size_t i = 1; i < REPLAY_CHANGES; i++)
        if (rp->changes[i].differ < rp->changes[min].differ)
            min = i;
    return &rp->changes[min];
}

// Counts e's outcomes under both configs; a key decided differently is followed from
// then on, its denials before taken from the followed denied keys of each run.
static void count_change(replay *rp, const replay_entry *e, uint64_t h, const outcome o[2]) {
    int i = change_find(rp, e->policy[0], e, h);
    int differ = o[0].allowed != o[1].allowed;
    if (i < 0 && !differ)
        return;
    if (i >= 0) {
        replay_change *c = &rp->changes[i];
        c->differ += differ;
        c->denied[0] += !o[0].allowed;
        c->denied[1] += !o[1].allowed;
        return;
    }
    replay_change *c = change_take(rp);
    uint64_t inherited = c->differ;
    memset(c, 0, sizeof(*c));
    c->policy = e->policy[0];
    c->kept = e->key_len < RL_REPLAY_KEY_KEPT ? e->key_len : RL_REPLAY_KEY_KEPT;
    memcpy(c->key, e->buf, c->kept);
    c->key_len = e->key_len;
    c->hash = h;
    c->differ = inherited + 1;
    for (int r = 0; r < 2; r++) {
        const rl_replay_key *k =
            rl_replay_stats_key(rp->runs[r].stats[e->policy[r]], e->buf, e->key_len, h);
        c->denied[r] = k ? k->denied : 0;
    }
}

/* ---- deciding ---- */

int replay_decide(replay *rp, const replay_entry *e) {
    outcome o[2];
    uint64_t h = rl_replay_hash(e->buf, e->key_len);
    if (rp->first_us == INT64_MIN)
        rp->first_us = e->ts_us;
    rp->last_us = e->ts_us;
    rl_replay_axis_see(&rp->axis, e->ts_us / 1000000);
    for (size_t r = 0; r < rp->run_count; r++) {
        replay_run *run = &rp->runs[r];
        const rl_policy *p = &run->config->policies[e->policy[r]];
        if (decide_one(rp, run, p, e, &o[r]) != 0)
            return -1;
        if (!run->stats[e->policy[r]] &&
            !(run->stats[e->policy[r]] = rl_replay_stats_new(&rp->axis)))
            return snprintf(rp->err, sizeof(rp->err), "out of memory"), -1;
        if (rl_replay_stats_add(run->stats[e->policy[r]], e->ts_us, e->buf, e->key_len, h,
                                o[r].allowed, o[r].retry_us) != 0)
            return snprintf(rp->err, sizeof(rp->err), "out of memory"), -1;
        if (r == 0 && rp->decisions)
            write_decision(rp, p, e, &o[0]);
    }
    if (rp->run_count == 2)
        count_change(rp, e, h, o);
    return 0;
}
