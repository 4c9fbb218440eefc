/*
 * redis_cache.c: the over-limit cache, a direct-mapped table of recent denials
 * (see redis_cache.h).
 */
#include "redis_cache.h"

#include <string.h>

#include "alloc.h"
#include "hash.h"

/* One remembered denial. */
typedef struct cache_entry {
    uint64_t hash;                      /* of the policy and key */
    uint64_t limits_fp;                 /* fingerprint of the limits it was decided under */
    int64_t until;                      /* denied until this cache time */
    int64_t base;                       /* the cache time the verdict's figures count from */
    int64_t store_now;                  /* Redis's clock at the decision */
    int64_t cost;                       /* the cost Redis denied */
    rl_verdict verdict;                 /* Redis's verdict */
    uint32_t epoch;                     /* bumped whenever the slot's entry is dropped */
    uint8_t used;                       /* the slot holds a denial */
    uint8_t ns_len;                     /* bytes of the policy name in name */
    uint16_t key_len;                   /* bytes of the key in name, after the policy */
    char name[RL_REDIS_CACHE_NAME_MAX]; /* policy then key bytes */
} cache_entry;

struct rl_redis_cache {
    cache_entry *slots;  /* the table */
    size_t mask;         /* slots - 1 (a power of two) */
    uint32_t generation; /* bumped by forget_ns: every in-flight stamp goes stale */
    uint64_t hits;       /* CHECKs denied from the cache */
    uint64_t inserts;    /* denials remembered */
    uint64_t stale;      /* denials dropped: the item changed while in flight */
};

/* Keyed (hash.h): clients cannot choose keys that evict each other's slots. */
static uint64_t name_hash(const char *ns, size_t ns_len, const char *key, size_t key_len) {
    return rl_hash_name(ns, ns_len, key, key_len);
}

/* Under the process key too (hash.h): compared only with this process's own entries. */
static uint64_t limits_fingerprint(const rl_limits *limits) {
    rl_hasher h;
    rl_hash_begin(&h);
    rl_hash_feed(&h, &limits->rate_count, 1);
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        int64_t fields[4] = {(int64_t)rate->algorithm, (int64_t)rate->limit, rate->period_us,
                             (int64_t)rate->burst};
        rl_hash_feed(&h, fields, sizeof(fields));
    }
    return rl_hash_end(&h);
}

rl_redis_cache *rl_redis_cache_new(size_t slots) {
    size_t n = 1;
    while (n < slots)
        n *= 2;
    rl_redis_cache *cache = rl_calloc(1, sizeof(*cache));
    if (!cache)
        return NULL;
    cache->slots = rl_calloc(n, sizeof(cache_entry));
    if (!cache->slots) {
        rl_free(cache);
        return NULL;
    }
    cache->mask = n - 1;
    return cache;
}

void rl_redis_cache_free(rl_redis_cache *cache) {
    if (!cache)
        return;
    rl_free(cache->slots);
    rl_free(cache);
}

static uint64_t stamp_of(const rl_redis_cache *cache, const cache_entry *e) {
    return (uint64_t)cache->generation << 32 | e->epoch;
}

static cache_entry *slot_for(const rl_redis_cache *cache, uint64_t hash) {
    return &cache->slots[hash & cache->mask];
}

uint64_t rl_redis_cache_stamp(const rl_redis_cache *cache, const rl_store_item *item) {
    uint64_t h = name_hash(item->ns, item->ns_len, item->key, item->key_len);
    return stamp_of(cache, slot_for(cache, h));
}

// Returns 1 if the slot holds a denial of this very item (names and limits).
static int entry_is(const cache_entry *e, uint64_t hash, const char *ns, size_t ns_len,
                    const char *key, size_t key_len, const rl_limits *limits) {
    return e->used && e->hash == hash && e->ns_len == ns_len && e->key_len == key_len &&
           memcmp(e->name, ns, ns_len) == 0 && memcmp(e->name + ns_len, key, key_len) == 0 &&
           e->limits_fp == limits_fingerprint(limits);
}

int rl_redis_cache_lookup(rl_redis_cache *cache, const rl_store_item *item, int64_t now,
                          rl_verdict *out, int64_t *store_now) {
    uint64_t h = name_hash(item->ns, item->ns_len, item->key, item->key_len);
    cache_entry *e = slot_for(cache, h);
    if (!e->used || e->until <= now || item->cost < e->cost ||
        !entry_is(e, h, item->ns, item->ns_len, item->key, item->key_len, item->limits))
        return 0;
    int64_t elapsed = now - e->base;
    *out = e->verdict;
    out->retry_after_us = e->until - now;
    out->reset_after_us = e->verdict.reset_after_us - elapsed;
    if (out->reset_after_us < out->retry_after_us)
        out->reset_after_us = out->retry_after_us;
    *store_now = e->store_now + elapsed;
    cache->hits++;
    return 1;
}

void rl_redis_cache_insert(rl_redis_cache *cache, const rl_redis_item *item, uint64_t stamp,
                           int64_t sent, int64_t store_now, const rl_verdict *v) {
    if (v->allowed || v->retry_after_us <= 0 ||
        item->ns_len + item->key_len > RL_REDIS_CACHE_NAME_MAX)
        return;
    uint64_t h = name_hash(item->ns, item->ns_len, item->key, item->key_len);
    cache_entry *e = slot_for(cache, h);
    if (stamp != stamp_of(cache, e)) {
        cache->stale++;
        return;
    }
    e->used = 1;
    e->hash = h;
    e->limits_fp = limits_fingerprint(&item->limits);
    e->until = sent + v->retry_after_us;
    e->base = sent;
    e->store_now = store_now;
    e->cost = item->cost;
    e->verdict = *v;
    e->ns_len = (uint8_t)item->ns_len;
    e->key_len = (uint16_t)item->key_len;
    memcpy(e->name, item->ns, item->ns_len);
    memcpy(e->name + item->ns_len, item->key, item->key_len);
    cache->inserts++;
}

void rl_redis_cache_drop(rl_redis_cache *cache, const rl_store_item *item) {
    uint64_t h = name_hash(item->ns, item->ns_len, item->key, item->key_len);
    cache_entry *e = slot_for(cache, h);
    if (entry_is(e, h, item->ns, item->ns_len, item->key, item->key_len, item->limits))
        e->used = 0;
    e->epoch++;
}

void rl_redis_cache_forget_ns(rl_redis_cache *cache, const char *ns, size_t ns_len) {
    for (size_t i = 0; i <= cache->mask; i++) {
        cache_entry *e = &cache->slots[i];
        if (e->used && e->ns_len == ns_len && memcmp(e->name, ns, ns_len) == 0)
            e->used = 0;
    }
    cache->generation++;
}

rl_redis_cache_stats rl_redis_cache_figures(const rl_redis_cache *cache) {
    return (rl_redis_cache_stats){.hits = cache->hits,
                                  .inserts = cache->inserts,
                                  .stale = cache->stale,
                                  .slots = cache->mask + 1};
}
