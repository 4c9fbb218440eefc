/*
 * config_policy.c: the "policies" section: algorithms, rates, overrides, key sets,
 * and the lookups the engine does on every request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"
#include "config_json.h"
#include "hash.h"
#include "rlproto.h"

#define MAX_PERIOD_MS 4294967295LL  /* periods and windows travel as u32 milliseconds */
#define MIN_LEASE_MS 100LL          /* a concurrency policy's lease: 100ms.. */
#define MAX_LEASE_MS 86400000LL     /* ..1d */
#define DEFAULT_LEASE_MS 30000LL    /* "30s" */
#define MAX_CONCURRENCY_LIMIT 10000 /* slots per key at most */

static const char *const algorithm_names[] = {
    [RL_ALGO_FIXED_WINDOW] = "fixed_window",
    [RL_ALGO_SLIDING_LOG] = "sliding_window_log",
    [RL_ALGO_SLIDING_COUNTER] = "sliding_window_counter",
    [RL_ALGO_TOKEN_BUCKET] = "token_bucket",
    [RL_ALGO_GCRA] = "gcra",
    [RL_ALGO_CONCURRENCY] = "concurrency",
};

const char *rl_algorithm_name(rl_algorithm algorithm) {
    return algorithm_names[algorithm];
}

/* A rate as written, before defaults: fields may be missing. */
typedef struct raw_rate {
    int algorithm;     /* rl_algorithm, or -1 if not given */
    uint64_t limit;    /* 0 if not given */
    int64_t period_ms; /* 0 if not given */
    uint64_t burst;    /* 0 if not given */
    int64_t lease_ms;  /* concurrency: the lease; 0 if not given */
} raw_rate;

static int parse_algorithm(rl_conf_ctx *ctx, json_t *v, const char *path, int *out) {
    for (int i = 0; i <= RL_ALGO_CONCURRENCY; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), algorithm_names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return rl_conf_fail(ctx, path,
                        "must be one of fixed_window, sliding_window_log, "
                        "sliding_window_counter, token_bucket, gcra, concurrency");
}

// Reads a concurrency policy's lease: a duration of MIN_LEASE_MS..MAX_LEASE_MS.
static int parse_lease(rl_conf_ctx *ctx, json_t *v, const char *path, int64_t *ms) {
    if (rl_conf_duration(ctx, v, path, MAX_LEASE_MS, ms) != 0)
        return -1;
    if (*ms < MIN_LEASE_MS)
        return rl_conf_fail(ctx, path, "a lease is at least 100ms (at most 1d)");
    return 0;
}

// Reads algorithm, limit, period, burst and lease where present into *raw.
static int parse_raw(rl_conf_ctx *ctx, json_t *obj, const char *path, raw_rate *raw) {
    char sub[512];
    json_t *f;
    if ((f = json_object_get(obj, "algorithm")) &&
        (rl_conf_path(sub, sizeof(sub), path, "algorithm"),
         parse_algorithm(ctx, f, sub, &raw->algorithm) != 0))
        return -1;
    if ((f = json_object_get(obj, "limit")) &&
        (rl_conf_path(sub, sizeof(sub), path, "limit"),
         rl_conf_uint(ctx, f, sub, 1, UINT32_MAX, &raw->limit) != 0))
        return -1;
    if ((f = json_object_get(obj, "period")) &&
        (rl_conf_path(sub, sizeof(sub), path, "period"),
         rl_conf_duration(ctx, f, sub, MAX_PERIOD_MS, &raw->period_ms) != 0))
        return -1;
    if ((f = json_object_get(obj, "burst")) &&
        (rl_conf_path(sub, sizeof(sub), path, "burst"),
         rl_conf_uint(ctx, f, sub, 1, UINT32_MAX, &raw->burst) != 0))
        return -1;
    if ((f = json_object_get(obj, "lease")) && (rl_conf_path(sub, sizeof(sub), path, "lease"),
                                                parse_lease(ctx, f, sub, &raw->lease_ms) != 0))
        return -1;
    return 0;
}

static int is_bucket(int algorithm) {
    return algorithm == RL_ALGO_TOKEN_BUCKET || algorithm == RL_ALGO_GCRA;
}

// Fails unless every figure the rate can report fits the wire's u32 milliseconds: the
// window (burst x period/limit for buckets) and, for the sliding counter, waits of up
// to two periods.
static int check_wire_figures(rl_conf_ctx *ctx, const rl_rate *rate, const char *path) {
    int64_t window_us = rl_rate_window_us(rate);
    int64_t window_ms = window_us / 1000 + (window_us % 1000 != 0);
    if (window_ms > MAX_PERIOD_MS)
        return rl_conf_fail(ctx, path,
                            "burst x period/limit is longer than %lld ms, which the "
                            "protocol's window field cannot carry",
                            MAX_PERIOD_MS);
    if (rate->algorithm == RL_ALGO_SLIDING_COUNTER && 2 * window_ms > MAX_PERIOD_MS)
        return rl_conf_fail(ctx, path,
                            "a sliding_window_counter reports waits of up to two periods, so "
                            "its period is at most %lld ms",
                            MAX_PERIOD_MS / 2);
    return 0;
}

// Fails if a sliding_window_log rate's limit is above RL_SLIDING_LOG_MAX_LIMIT: a log
// keeps up to `limit` entries per key, and a denied request may walk all of them.
static int check_log_limit(rl_conf_ctx *ctx, const rl_rate *rate, const char *path) {
    char sub[512];
    if (rate->algorithm != RL_ALGO_SLIDING_LOG || rate->limit <= RL_SLIDING_LOG_MAX_LIMIT)
        return 0;
    rl_conf_path(sub, sizeof(sub), path, "limit");
    return rl_conf_fail(ctx, sub,
                        "%llu is above the sliding_window_log maximum %d; use "
                        "sliding_window_counter for large limits",
                        (unsigned long long)rate->limit, RL_SLIDING_LOG_MAX_LIMIT);
}

// Turns a concurrency rate into a rate: limit 1..MAX_CONCURRENCY_LIMIT slots,
// period_us = the lease (default DEFAULT_LEASE_MS).
static int resolve_concurrency(rl_conf_ctx *ctx, const raw_rate *raw, const char *path,
                               rl_rate *rate) {
    char sub[512];
    rl_conf_path(sub, sizeof(sub), path, "limit");
    if (!raw->limit)
        return rl_conf_fail(ctx, sub, "is required");
    if (raw->limit > MAX_CONCURRENCY_LIMIT)
        return rl_conf_fail(ctx, sub, "%llu is above the concurrency maximum %d slots",
                            (unsigned long long)raw->limit, MAX_CONCURRENCY_LIMIT);
    *rate = (rl_rate){.algorithm = RL_ALGO_CONCURRENCY, .limit = raw->limit};
    rate->period_us = (raw->lease_ms ? raw->lease_ms : DEFAULT_LEASE_MS) * 1000;
    return 0;
}

// Turns a complete raw rate into a rate, applying defaults and checking that its
// figures fit the wire.
static int resolve_rate(rl_conf_ctx *ctx, const raw_rate *raw, const char *path, rl_rate *rate) {
    char sub[512];
    if (raw->algorithm < 0)
        return rl_conf_fail(ctx, path, "\"algorithm\" is required");
    if (raw->algorithm == RL_ALGO_CONCURRENCY)
        return resolve_concurrency(ctx, raw, path, rate);
    if (!raw->limit || !raw->period_ms) {
        rl_conf_path(sub, sizeof(sub), path, raw->limit ? "period" : "limit");
        return rl_conf_fail(ctx, sub, "is required");
    }
    rate->algorithm = (rl_algorithm)raw->algorithm;
    rate->limit = raw->limit;
    rate->period_us = raw->period_ms * 1000;
    if (raw->burst && !is_bucket(raw->algorithm))
        return rl_conf_fail(ctx, path, "\"burst\" applies only to token_bucket and gcra");
    rate->burst = raw->burst ? raw->burst : rate->algorithm == RL_ALGO_GCRA ? 1 : raw->limit;
    if (check_log_limit(ctx, rate, path) != 0)
        return -1;
    return check_wire_figures(ctx, rate, path);
}

static int parse_rates(rl_conf_ctx *ctx, json_t *v, const char *path, int algorithm,
                       rl_limits *limits) {
    static const char *const fields[] = {"algorithm", "limit", "period", "burst", NULL};
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > RL_MAX_RATES)
        return rl_conf_fail(ctx, path, "must be an array of 1..%d rates", RL_MAX_RATES);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        char sub[512];
        raw_rate raw = {algorithm, 0, 0, 0, 0};
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if (rl_conf_fields(ctx, item, sub, fields) != 0 || parse_raw(ctx, item, sub, &raw) != 0)
            return -1;
        if (raw.algorithm == RL_ALGO_CONCURRENCY)
            return rl_conf_fail(ctx, sub,
                                "concurrency is a policy of its own, never one of \"rates\"");
        if (resolve_rate(ctx, &raw, sub, &limits->rates[i]) != 0)
            return -1;
    }
    limits->rate_count = (uint8_t)json_array_size(v);
    return 0;
}

// Fails if obj gives a field that does not fit its algorithm: period, burst or rates
// with concurrency (which takes limit and lease), lease with a rate algorithm, or an
// override that turns a rate policy into a concurrency one or back (base_algorithm:
// the policy's, -1 for the policy itself).
static int check_kind_fields(rl_conf_ctx *ctx, json_t *obj, const char *path, int algorithm,
                             int base_algorithm) {
    static const char *const not_concurrency[] = {"period", "burst", "rates", NULL};
    char sub[512];
    int concurrency = algorithm == RL_ALGO_CONCURRENCY;
    if (base_algorithm >= 0 && (base_algorithm == RL_ALGO_CONCURRENCY) != concurrency) {
        rl_conf_path(sub, sizeof(sub), path, "algorithm");
        return rl_conf_fail(ctx, sub,
                            "an override cannot turn a rate policy into a concurrency "
                            "policy or back");
    }
    for (int i = 0; concurrency && not_concurrency[i]; i++) {
        if (!json_object_get(obj, not_concurrency[i]))
            continue;
        rl_conf_path(sub, sizeof(sub), path, not_concurrency[i]);
        return rl_conf_fail(ctx, sub, "does not apply to concurrency (it takes limit and lease)");
    }
    if (!concurrency && algorithm >= 0 && json_object_get(obj, "lease")) {
        rl_conf_path(sub, sizeof(sub), path, "lease");
        return rl_conf_fail(ctx, sub, "applies only to concurrency");
    }
    return 0;
}

// Parses the limits of a policy or an override: either "rates", or limit/period/burst
// on top of base (the policy's raw rate for an override: what the override leaves
// out, it inherits; a burst it does not write is dropped if its algorithm has none).
// For a policy, *raw_out receives the raw rate its overrides inherit.
static int parse_limits(rl_conf_ctx *ctx, json_t *obj, const char *path, const raw_rate *base,
                        rl_limits *limits, raw_rate *raw_out) {
    raw_rate raw = *base;
    char sub[512];
    json_t *rates = json_object_get(obj, "rates");
    int single = json_object_get(obj, "limit") || json_object_get(obj, "period") ||
                 json_object_get(obj, "burst") || json_object_get(obj, "lease");
    if (parse_raw(ctx, obj, path, &raw) != 0 ||
        check_kind_fields(ctx, obj, path, raw.algorithm, base->algorithm) != 0)
        return -1;
    if (!json_object_get(obj, "burst") && !is_bucket(raw.algorithm))
        raw.burst = 0;
    if (raw_out)
        *raw_out = raw;
    if (rates) {
        if (single)
            return rl_conf_fail(ctx, path, "give either \"rates\" or limit/period/burst, not both");
        rl_conf_path(sub, sizeof(sub), path, "rates");
        return parse_rates(ctx, rates, sub, raw.algorithm, limits);
    }
    limits->rate_count = 1;
    return resolve_rate(ctx, &raw, path, &limits->rates[0]);
}

static int keycmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int sort_keys(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return keycmp(x, strlen(x), y, strlen(y));
}

static int parse_keyset(rl_conf_ctx *ctx, json_t *v, const char *path, rl_keyset *set) {
    if (!v)
        return 0;
    if (!json_is_array(v))
        return rl_conf_fail(ctx, path, "must be an array of keys");
    size_t n = json_array_size(v), i;
    json_t *item;
    set->keys = rl_calloc(n ? n : 1, sizeof(char *));
    set->lens = rl_calloc(n ? n : 1, sizeof(size_t));
    if (!set->keys || !set->lens)
        return rl_conf_fail(ctx, path, "out of memory");
    json_array_foreach(v, i, item) {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if (rl_conf_string(ctx, item, sub, &set->keys[i]) != 0)
            return -1;
        set->count = i + 1;
    }
    qsort(set->keys, n, sizeof(char *), sort_keys);
    for (i = 0; i < n; i++)
        set->lens[i] = strlen(set->keys[i]);
    return 0;
}

/* Reads entry i's name of a sorted array, for find_sorted. */
typedef const char *name_at_fn(const void *array, size_t i, size_t *len);

// Binary search of a sorted array of count named entries. Returns the index of the entry
// named key (len bytes), or -1.
static long find_sorted(const void *array, size_t count, name_at_fn *name_at, const char *key,
                        size_t len) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2, mid_len;
        const char *name = name_at(array, mid, &mid_len);
        int c = keycmp(name, mid_len, key, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static const char *keyset_name(const void *array, size_t i, size_t *len) {
    const rl_keyset *set = array;
    *len = set->lens[i];
    return set->keys[i];
}

static const char *override_name(const void *array, size_t i, size_t *len) {
    const rl_override *o = (const rl_override *)array + i;
    *len = o->key_len;
    return o->key;
}

static const char *policy_name(const void *array, size_t i, size_t *len) {
    const rl_policy *p = (const rl_policy *)array + i;
    *len = p->name_len;
    return p->name;
}

int rl_keyset_has(const rl_keyset *set, const char *key, size_t len) {
    return find_sorted(set, set->count, keyset_name, key, len) >= 0;
}

static int sort_overrides(const void *a, const void *b) {
    const rl_override *x = a, *y = b;
    return keycmp(x->key, x->key_len, y->key, y->key_len);
}

// Parses the overrides of p. base is the policy's raw rate; multi is set if the policy
// gives "rates", whose overrides must give "rates" too.
static int parse_overrides(rl_conf_ctx *ctx, json_t *v, const char *path, const raw_rate *base,
                           int multi, rl_policy *p) {
    static const char *const fields[] = {"algorithm", "limit", "period", "burst",
                                         "rates",     "lease", NULL};
    if (!v)
        return 0;
    if (!json_is_object(v))
        return rl_conf_fail(ctx, path, "must be an object of key: {limits}");
    p->overrides = rl_calloc(json_object_size(v) + 1, sizeof(rl_override));
    if (!p->overrides)
        return rl_conf_fail(ctx, path, "out of memory");
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item) {
        char sub[512];
        rl_override *o = &p->overrides[p->override_count];
        rl_conf_path(sub, sizeof(sub), path, key);
        o->key_len = strlen(key);
        o->key = rl_strndup(key, o->key_len);
        if (!o->key)
            return rl_conf_fail(ctx, sub, "out of memory");
        p->override_count++;
        if (rl_conf_fields(ctx, item, sub, fields) != 0)
            return -1;
        if (multi && !json_object_get(item, "rates"))
            return rl_conf_fail(ctx, sub, "the policy gives \"rates\", so must its overrides");
        if (parse_limits(ctx, item, sub, base, &o->limits, NULL) != 0)
            return -1;
    }
    qsort(p->overrides, p->override_count, sizeof(rl_override), sort_overrides);
    return 0;
}

static int parse_choice(rl_conf_ctx *ctx, json_t *v, const char *path, const char *const *names,
                        int *out) {
    if (!v)
        return 0;
    for (int i = 0; names[i]; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return rl_conf_fail(ctx, path, "must be \"%s\" or \"%s\"%s%s%s", names[0], names[1],
                        names[2] ? " or \"" : "", names[2] ? names[2] : "", names[2] ? "\"" : "");
}

// Returns the hash of the policy's limits and overrides (hash.h, under the process key:
// fingerprints are compared only within one process, the old config's with the new's).
static uint64_t fingerprint(const rl_policy *p) {
    rl_hasher h;
    rl_hash_begin(&h);
    rl_hash_feed(&h, &p->limits, sizeof(p->limits));
    for (size_t i = 0; i < p->override_count; i++) {
        rl_hash_feed(&h, p->overrides[i].key, p->overrides[i].key_len + 1);
        rl_hash_feed(&h, &p->overrides[i].limits, sizeof(p->overrides[i].limits));
    }
    return rl_hash_end(&h);
}

static int parse_policy(rl_conf_ctx *ctx, const char *name, json_t *v, rl_policy *p) {
    static const char *const fields[] = {"algorithm", "limit", "period",         "burst",
                                         "rates",     "mode",  "on_store_error", "overrides",
                                         "exempt",    "block", "lease",          NULL};
    static const char *const modes[] = {"enforce", "shadow", NULL};
    static const char *const on_error[] = {"local", "allow", "deny", NULL};
    char path[512], sub[512];
    raw_rate raw = {-1, 0, 0, 0, 0};
    snprintf(path, sizeof(path), "policies.%s", name);
    p->name_len = strlen(name);
    p->name = rl_strndup(name, p->name_len);
    if (!p->name)
        return rl_conf_fail(ctx, path, "out of memory");
    if (p->name_len == 0 || p->name_len > RL_MAX_POLICY_LEN)
        return rl_conf_fail(ctx, path, "a policy name has 1..%d bytes", RL_MAX_POLICY_LEN);
    int mode = 0, on_err = 0;
    if (rl_conf_fields(ctx, v, path, fields) != 0 ||
        parse_limits(ctx, v, path, &raw, &p->limits, &raw) != 0)
        return -1;
    if ((rl_conf_path(sub, sizeof(sub), path, "mode"),
         parse_choice(ctx, json_object_get(v, "mode"), sub, modes, &mode)) ||
        (rl_conf_path(sub, sizeof(sub), path, "on_store_error"),
         parse_choice(ctx, json_object_get(v, "on_store_error"), sub, on_error, &on_err)))
        return -1;
    p->mode = (rl_mode)mode;
    p->on_store_error = (rl_on_error)on_err;
    if ((rl_conf_path(sub, sizeof(sub), path, "exempt"),
         parse_keyset(ctx, json_object_get(v, "exempt"), sub, &p->exempt)) ||
        (rl_conf_path(sub, sizeof(sub), path, "block"),
         parse_keyset(ctx, json_object_get(v, "block"), sub, &p->block)))
        return -1;
    rl_conf_path(sub, sizeof(sub), path, "overrides");
    if (parse_overrides(ctx, json_object_get(v, "overrides"), sub, &raw,
                        json_object_get(v, "rates") != NULL, p) != 0)
        return -1;
    p->fingerprint = fingerprint(p);
    return 0;
}

static int sort_policies(const void *a, const void *b) {
    const rl_policy *x = a, *y = b;
    return keycmp(x->name, x->name_len, y->name, y->name_len);
}

int rl_conf_policies(rl_conf_ctx *ctx, json_t *v, rl_config *c) {
    if (!json_is_object(v) || json_object_size(v) == 0)
        return rl_conf_fail(ctx, "policies", "must be an object with at least one policy");
    c->policies = rl_calloc(json_object_size(v), sizeof(rl_policy));
    if (!c->policies)
        return rl_conf_fail(ctx, "policies", "out of memory");
    const char *name;
    json_t *item;
    json_object_foreach(v, name, item) {
        if (parse_policy(ctx, name, item, &c->policies[c->policy_count++]) != 0)
            return -1;
    }
    qsort(c->policies, c->policy_count, sizeof(rl_policy), sort_policies);
    return 0;
}

const rl_policy *rl_config_policy(const rl_config *c, const char *name, size_t len) {
    long i = find_sorted(c->policies, c->policy_count, policy_name, name, len);
    return i < 0 ? NULL : &c->policies[i];
}

const rl_limits *rl_policy_limits(const rl_policy *p, const char *key, size_t len) {
    long i = find_sorted(p->overrides, p->override_count, override_name, key, len);
    return i < 0 ? &p->limits : &p->overrides[i].limits;
}

static void free_keyset(rl_keyset *set) {
    for (size_t i = 0; i < set->count; i++)
        rl_free(set->keys[i]);
    rl_free(set->keys);
    rl_free(set->lens);
}

void rl_conf_policy_free(rl_policy *p) {
    for (size_t i = 0; i < p->override_count; i++)
        rl_free(p->overrides[i].key);
    rl_free(p->overrides);
    free_keyset(&p->exempt);
    free_keyset(&p->block);
    rl_free(p->name);
}
