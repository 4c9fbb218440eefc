/*
 * replay_stats.c: one policy's figures in a replay (see replay_stats.h).
 */
#include "replay_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "escape.h"

#define TOP_BUCKETS 512   /* hash chains of the followed keys (a power of 2) */
#define TOP_LISTED 10     /* keys listed in the report */
#define HLL_BITS 14       /* registers of the distinct-key estimate: 2^14 */
#define SET_INITIAL 1024  /* slots of a distinct-key set at first */
#define STEP_1S_SPAN 3600 /* a log spanning at most this many seconds: 1 s points */

/* Distinct keys: exact (a set of hashes) until RL_REPLAY_KEYS_EXACT, then HyperLogLog. */
typedef struct distinct {
    uint64_t *set; /* open addressing, 0 = empty, or NULL once estimating */
    size_t cap;    /* slots of set (a power of 2) */
    size_t count;  /* hashes in set */
    uint8_t *hll;  /* 2^HLL_BITS registers once estimating, else NULL */
} distinct;

/* A series of one policy: requests offered and admitted per point of its step. */
typedef struct series {
    uint64_t *offered;  /* per point */
    uint64_t *admitted; /* per point */
    size_t len;         /* points in use */
    size_t cap;         /* points allocated */
    int64_t step_s;     /* the step the points are counted in (follows the axis) */
} series;

struct rl_replay_stats {
    rl_replay_axis *axis;               /* the shared time axis */
    uint64_t requests, allowed, denied; /* exact totals */
    distinct keys, keys_denied;         /* distinct keys, distinct denied keys */
    rl_replay_key top[RL_REPLAY_TOPK];  /* followed denied keys */
    size_t top_used;                    /* slots of top in use */
    int top_buckets[TOP_BUCKETS];       /* chains into top, -1 ends */
    int evicted;                        /* a followed key was ever replaced */
    int64_t cur_s;                      /* the second being counted for the peak */
    uint64_t cur_n;                     /* requests in it */
    uint64_t peak_n;                    /* the most requests of any second */
    int64_t peak_s;                     /* that second */
    series series;                      /* offered and admitted over time */
};

uint64_t rl_replay_hash(const char *key, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

rl_replay_stats *rl_replay_stats_new(rl_replay_axis *axis) {
    rl_replay_stats *s = rl_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->axis = axis;
    s->cur_s = INT64_MIN;
    for (size_t i = 0; i < TOP_BUCKETS; i++)
        s->top_buckets[i] = -1;
    return s;
}

void rl_replay_stats_free(rl_replay_stats *s) {
    if (!s)
        return;
    rl_free(s->keys.set);
    rl_free(s->keys.hll);
    rl_free(s->keys_denied.set);
    rl_free(s->keys_denied.hll);
    rl_free(s->series.offered);
    rl_free(s->series.admitted);
    rl_free(s);
}

uint64_t rl_replay_stats_requests(const rl_replay_stats *s) {
    return s->requests;
}

/* ---- distinct keys ---- */

static void hll_add(uint8_t *hll, uint64_t h) {
    size_t reg = h >> (64 - HLL_BITS);
    uint64_t rest = h << HLL_BITS | (1ull << (HLL_BITS - 1));
    uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
    if (rank > hll[reg])
        hll[reg] = rank;
}

static double hll_estimate(const uint8_t *hll) {
    double m = (double)(1 << HLL_BITS), sum = 0;
    size_t zeros = 0;
    for (size_t i = 0; i < (1u << HLL_BITS); i++) {
        sum += ldexp(1.0, -hll[i]);
        zeros += hll[i] == 0;
    }
    double e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros)
        e = m * log(m / (double)zeros);
    return e;
}

static void set_put(uint64_t *set, size_t cap, uint64_t h, size_t *count) {
    size_t i = h & (cap - 1);
    while (set[i] && set[i] != h)
        i = (i + 1) & (cap - 1);
    if (!set[i]) {
        set[i] = h;
        (*count)++;
    }
}

// Doubles the set, or turns it into the estimate past RL_REPLAY_KEYS_EXACT. 0 or -1.
static int distinct_grow(distinct *d) {
    size_t cap = d->cap ? d->cap * 2 : SET_INITIAL;
    if (d->count >= RL_REPLAY_KEYS_EXACT) {
        d->hll = rl_calloc(1u << HLL_BITS, 1);
        if (!d->hll)
            return -1;
        for (size_t i = 0; i < d->cap; i++)
            if (d->set[i])
                hll_add(d->hll, d->set[i]);
        rl_free(d->set);
        d->set = NULL;
        return 0;
    }
    uint64_t *set = rl_calloc(cap, sizeof(uint64_t));
    if (!set)
        return -1;
    size_t count = 0;
    for (size_t i = 0; i < d->cap; i++)
        if (d->set[i])
            set_put(set, cap, d->set[i], &count);
    rl_free(d->set);
    d->set = set;
    d->cap = cap;
    return 0;
}

static int distinct_add(distinct *d, uint64_t h) {
    if (!d->hll && d->count * 2 >= d->cap && distinct_grow(d) != 0)
        return -1;
    if (d->hll)
        hll_add(d->hll, h);
    else
        set_put(d->set, d->cap, h, &d->count);
    return 0;
}

static uint64_t distinct_count(const distinct *d) {
    return d->hll ? (uint64_t)llround(hll_estimate(d->hll)) : d->count;
}

/* ---- followed denied keys ---- */

static int top_find(const rl_replay_stats *s, const char *key, size_t len, uint64_t h) {
    size_t kept = len < RL_REPLAY_KEY_KEPT ? len : RL_REPLAY_KEY_KEPT;
    for (int i = s->top_buckets[h & (TOP_BUCKETS - 1)]; i >= 0; i = s->top[i].next) {
        const rl_replay_key *k = &s->top[i];
        if (k->hash == h && k->key_len == len && memcmp(k->key, key, kept) == 0)
            return i;
    }
    return -1;
}

const rl_replay_key *rl_replay_stats_key(const rl_replay_stats *s, const char *key, size_t len,
                                         uint64_t hash) {
    int i = top_find(s, key, len, hash);
    return i < 0 ? NULL : &s->top[i];
}

static void top_unlink(rl_replay_stats *s, int slot) {
    int *link = &s->top_buckets[s->top[slot].hash & (TOP_BUCKETS - 1)];
    while (*link != slot)
        link = &s->top[*link].next;
    *link = s->top[slot].next;
}

// A slot for a newly denied key: a free one, or the least denied one's (Space-Saving:
// the new key inherits its count as a possible overcount). Returns the slot.
static int top_take(rl_replay_stats *s, uint64_t *inherited) {
    *inherited = 0;
    if (s->top_used < RL_REPLAY_TOPK)
        return (int)s->top_used++;
    int min = 0;
    for (int i = 1; i < RL_REPLAY_TOPK; i++)
        if (s->top[i].denied < s->top[min].denied)
            min = i;
    *inherited = s->top[min].denied;
    s->evicted = 1;
    top_unlink(s, min);
    return min;
}

static void top_add(rl_replay_stats *s, const char *key, size_t len, uint64_t h, int allowed,
                    int64_t retry_us) {
    int i = top_find(s, key, len, h);
    if (i < 0 && allowed)
        return;
    if (i < 0) {
        uint64_t inherited;
        i = top_take(s, &inherited);
        rl_replay_key *k = &s->top[i];
        memset(k, 0, sizeof(*k));
        k->kept = len < RL_REPLAY_KEY_KEPT ? len : RL_REPLAY_KEY_KEPT;
        memcpy(k->key, key, k->kept);
        k->key_len = len;
        k->hash = h;
        k->denied = k->requests = inherited;
        k->next = s->top_buckets[h & (TOP_BUCKETS - 1)];
        s->top_buckets[h & (TOP_BUCKETS - 1)] = i;
    }
    rl_replay_key *k = &s->top[i];
    k->requests++;
    if (allowed) {
        k->streak = 0;
        return;
    }
    k->denied++;
    if (++k->streak > k->longest_streak)
        k->longest_streak = k->streak;
    if (retry_us > k->max_retry_us)
        k->max_retry_us = retry_us;
}

/* ---- time ---- */

void rl_replay_axis_see(rl_replay_axis *axis, int64_t sec) {
    if (axis->step_s == 0) {
        axis->start_s = axis->last_s = sec;
        axis->step_s = 1;
    }
    if (sec > axis->last_s)
        axis->last_s = sec;
    int64_t span = axis->last_s - axis->start_s;
    if (axis->step_s == 1 && span > STEP_1S_SPAN)
        axis->step_s = 60;
    while (axis->step_s >= 60 && span / axis->step_s + 1 > RL_REPLAY_SERIES_MAX)
        axis->step_s *= 2;
}

// Regroups the series' points into the axis's (larger) step.
static void series_follow(series *sr, int64_t step_s) {
    size_t factor = (size_t)(step_s / sr->step_s), n = 0;
    for (size_t i = 0; i < sr->len; i++) {
        if (i % factor == 0) {
            sr->offered[n] = sr->admitted[n] = 0;
            n++;
        }
        sr->offered[n - 1] += sr->offered[i];
        sr->admitted[n - 1] += sr->admitted[i];
    }
    sr->len = n;
    sr->step_s = step_s;
}

// Makes point i exist. Returns 0 or -1.
static int series_reach(series *sr, size_t i) {
    if (i > ((size_t)1 << 32))
        return -1; /* the axis never goes back: an index this large is a broken invariant */
    if (i >= sr->cap) {
        size_t cap = sr->cap ? sr->cap : 64;
        while (cap <= i)
            cap *= 2;
        uint64_t *o = rl_realloc(sr->offered, cap * sizeof(uint64_t));
        if (o)
            sr->offered = o;
        uint64_t *a = o ? rl_realloc(sr->admitted, cap * sizeof(uint64_t)) : NULL;
        if (!a)
            return -1;
        sr->admitted = a;
        sr->cap = cap;
    }
    for (; sr->len <= i; sr->len++)
        sr->offered[sr->len] = sr->admitted[sr->len] = 0;
    return 0;
}

static int series_add(rl_replay_stats *s, int64_t sec, int allowed) {
    series *sr = &s->series;
    if (sr->step_s == 0)
        sr->step_s = s->axis->step_s;
    if (sr->step_s != s->axis->step_s)
        series_follow(sr, s->axis->step_s);
    size_t i = (size_t)((sec - s->axis->start_s) / sr->step_s);
    if (series_reach(sr, i) != 0)
        return -1;
    sr->offered[i]++;
    sr->admitted[i] += allowed != 0;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int rl_replay_stats_add(rl_replay_stats *s, int64_t ts_us, const char *key, size_t len,
                        uint64_t hash, int allowed, int64_t retry_after_us) {
    int64_t sec = floor_div(ts_us, 1000000);
    s->requests++;
    s->allowed += allowed != 0;
    s->denied += allowed == 0;
    if (sec != s->cur_s) {
        s->cur_s = sec;
        s->cur_n = 0;
    }
    if (++s->cur_n > s->peak_n) {
        s->peak_n = s->cur_n;
        s->peak_s = sec;
    }
    top_add(s, key, len, hash, allowed, retry_after_us);
    if (distinct_add(&s->keys, hash) != 0 || (!allowed && distinct_add(&s->keys_denied, hash)))
        return -1;
    return series_add(s, sec, allowed);
}

/* ---- the report ---- */

static int by_denials(const void *a, const void *b) {
    const rl_replay_key *x = a, *y = b;
    if (x->denied != y->denied)
        return x->denied < y->denied ? 1 : -1;
    size_t n = x->kept < y->kept ? x->kept : y->kept;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->kept > y->kept) - (x->kept < y->kept);
}

int rl_replay_key_json(json_t *o, const char *key, size_t len) {
    if (rl_key_is_text(key, len))
        return json_object_set_new(o, "key", json_stringn(key, len));
    size_t need = rl_escape(key, len, RL_ESCAPE_UTF8, NULL, 0);
    char *shown = rl_malloc(need + 1), *hex = rl_malloc(2 * len + 1);
    int rc = -1;
    if (shown && hex) {
        rl_escape(key, len, RL_ESCAPE_UTF8, shown, need + 1);
        rl_hex_key(key, len, hex, 2 * len + 1);
        rc = json_object_set_new(o, "key", json_stringn(shown, need)) |
             json_object_set_new(o, "escaped", json_true()) |
             json_object_set_new(o, "key_hex", json_stringn(hex, 2 * len));
    }
    rl_free(shown);
    rl_free(hex);
    return rc;
}

// One top_denied entry: the key (rl_replay_key_json) and its figures, or NULL (memory).
static json_t *top_key_json(const rl_replay_key *k) {
    json_t *o = json_object();
    if (!o || rl_replay_key_json(o, k->key, k->kept) != 0 ||
        json_object_set_new(o, "denied", json_integer((json_int_t)k->denied)) != 0 ||
        json_object_set_new(o, "requests", json_integer((json_int_t)k->requests)) != 0 ||
        json_object_set_new(o, "longest_streak", json_integer((json_int_t)k->longest_streak)) ||
        json_object_set_new(o, "max_retry_after_ms",
                            json_integer((json_int_t)((k->max_retry_us + 999) / 1000))) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *top_json(const rl_replay_stats *s) {
    rl_replay_key sorted[RL_REPLAY_TOPK];
    memcpy(sorted, s->top, s->top_used * sizeof(rl_replay_key));
    qsort(sorted, s->top_used, sizeof(rl_replay_key), by_denials);
    json_t *list = json_array();
    for (size_t i = 0; list && i < s->top_used && i < TOP_LISTED; i++) {
        if (json_array_append_new(list, top_key_json(&sorted[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *series_json(rl_replay_stats *s) {
    series *sr = &s->series;
    rl_replay_axis *axis = s->axis;
    if (sr->step_s && sr->step_s != axis->step_s)
        series_follow(sr, axis->step_s);
    size_t points = axis->step_s ? (size_t)((axis->last_s - axis->start_s) / axis->step_s) + 1 : 0;
    json_t *offered = json_array(), *admitted = json_array();
    for (size_t i = 0; offered && admitted && i < points; i++) {
        json_array_append_new(offered, json_integer(i < sr->len ? (json_int_t)sr->offered[i] : 0));
        json_array_append_new(admitted,
                              json_integer(i < sr->len ? (json_int_t)sr->admitted[i] : 0));
    }
    return json_pack("{s:I,s:I,s:o,s:o}", "start_us", (json_int_t)axis->start_s * 1000000, "step_s",
                     (json_int_t)(axis->step_s ? axis->step_s : 1), "offered", offered, "admitted",
                     admitted);
}

json_t *rl_replay_stats_json(rl_replay_stats *s, const char *name, const char *algorithm) {
    double pct = s->requests ? 100.0 * (double)s->denied / (double)s->requests : 0.0;
    json_t *o =
        json_pack("{s:s,s:s,s:I,s:I,s:I,s:f,s:I,s:I,s:b,s:b,s:o,s:{s:I,s:I},s:o}", "name", name,
                  "algorithm", algorithm, "requests", (json_int_t)s->requests, "allowed",
                  (json_int_t)s->allowed, "denied", (json_int_t)s->denied, "denied_pct",
                  round(pct * 100) / 100, "keys", (json_int_t)distinct_count(&s->keys),
                  "keys_denied", (json_int_t)distinct_count(&s->keys_denied), "keys_exact",
                  !s->keys.hll && !s->keys_denied.hll, "top_denied_exact", !s->evicted,
                  "top_denied", top_json(s), "peak", "per_s", (json_int_t)s->peak_n, "at_us",
                  (json_int_t)(s->peak_n ? s->peak_s * 1000000 : 0), "series", series_json(s));
    return o;
}
