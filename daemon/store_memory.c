/*
 * store_memory.c: the embedded store, a chained hash table of key states.
 *
 * One entry per (policy, key) holds the state of each of the key's rates: a cell,
 * or a sliding log. An entry whose every state has expired equals a key never seen:
 * it is reset when touched and freed by the sweep. Decisions are synchronous; done()
 * is called before submit returns.
 *
 * A concurrency key's entry holds its leases (algo_lease.h) in place of a cell. Its
 * expired leases are trimmed (and reported in the answer) by the next lease op on the
 * key; an entry whose every lease has expired is not reset on lookup like other state,
 * so that the op can count them, and the sweep reports the ones it evicts
 * (rl_store_memory_on_expired).
 */
#include "store_memory.h"

#include <stdio.h>
#include <string.h>

#include "algo_lease.h"
#include "alloc.h"
#include "clock.h"
#include "hash.h"

#define INITIAL_BUCKETS 1024u
#define FULL_SWEEP_INTERVAL_US 100000 /* a full sweep when at max_keys, at most this often */
#define FULL_SWEEP_BUCKETS_PER_US 10  /* ...or as often as a table this small allows */
#define SHAPE_BITS 3                  /* bits of an algorithm in entry.shape */
#define HASH_MEMO_SLOTS 64            /* hashes prefetch leaves for the lookup (a power of 2) */

/* The state of one rate of one key. */
typedef union rate_state {
    rl_cell cell;        /* every algorithm but the sliding log */
    rl_log log;          /* sliding_window_log */
    rl_lease_set leases; /* concurrency */
} rate_state;

/* One (policy, key) and its rates' states; the name bytes follow the states. */
typedef struct entry {
    struct entry *next;  /* next in the bucket's chain */
    uint64_t hash;       /* hash of ns and key */
    int64_t expires_at;  /* after this the entry holds no information */
    uint16_t key_len;    /* bytes of key */
    uint8_t ns_len;      /* bytes of namespace */
    uint8_t rate_count;  /* states that follow */
    uint32_t shape : 24; /* SHAPE_BITS per rate: its algorithm, so a changed one resets it */
    uint32_t pinned : 1; /* held by the batch being decided: no sweep may free it */
    rate_state rates[];  /* one per rate, then ns bytes, then key bytes */
} entry;

/* A name's hash computed by prefetch, found again by the key's address: only a hint,
 * which the lookup trusts only once an entry of that hash holds the very same name. */
typedef struct hash_memo {
    uintptr_t key;    /* the key bytes' address when prefetched (compared, never read) */
    uint16_t key_len; /* bytes of key */
    uint8_t ns_len;   /* bytes of namespace */
    uint64_t hash;    /* hash_name of the name then */
} hash_memo;

typedef struct memory_store {
    rl_store base;                       /* the interface */
    entry **buckets;                     /* chains */
    size_t bucket_count;                 /* a power of two */
    size_t count;                        /* entries held */
    uint64_t max_keys;                   /* entries at most */
    size_t sweep_cursor;                 /* next bucket the incremental sweep looks at */
    int64_t last_full_sweep;             /* when the store was last swept whole */
    const int64_t *clock;                /* test clock, or NULL for the system's */
    uint64_t evictions;                  /* expired entries freed */
    uint64_t full_refusals;              /* new keys refused at max_keys */
    hash_memo memo[HASH_MEMO_SLOTS];     /* hashes of names prefetched, by key address */
    rl_store_memory_expired *on_expired; /* told of leases a sweep evicts, or NULL */
    void *on_expired_arg;                /* its argument */
} memory_store;

static int64_t now_us(const memory_store *m) {
    return m->clock ? *m->clock : rl_clock_real_us();
}

/* Keyed (hash.h): clients cannot choose keys that share a bucket. */
static uint64_t hash_name(const char *ns, size_t ns_len, const char *key, size_t key_len) {
    return rl_hash_name(ns, ns_len, key, key_len);
}

static hash_memo *memo_slot(memory_store *m, const char *key) {
    uint64_t mix = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ull;
    return &m->memo[mix >> 58 & (HASH_MEMO_SLOTS - 1)];
}

// Returns the hash of (ns, key), from the memo if prefetch left it there (*from_memo
// set), else computed and left in the memo.
static uint64_t memo_hash(memory_store *m, const char *ns, size_t ns_len, const char *key,
                          size_t key_len, int *from_memo) {
    hash_memo *memo = memo_slot(m, key);
    *from_memo = memo->key == (uintptr_t)key && memo->key_len == key_len && memo->ns_len == ns_len;
    if (*from_memo)
        return memo->hash;
    *memo = (hash_memo){(uintptr_t)key, (uint16_t)key_len, (uint8_t)ns_len,
                        hash_name(ns, ns_len, key, key_len)};
    return memo->hash;
}

static const char *entry_name(const entry *e) {
    return (const char *)&e->rates[e->rate_count];
}

static int entry_is(const entry *e, uint64_t h, const rl_store_item *it) {
    return e->hash == h && e->ns_len == it->ns_len && e->key_len == it->key_len &&
           memcmp(entry_name(e), it->ns, it->ns_len) == 0 &&
           memcmp(entry_name(e) + it->ns_len, it->key, it->key_len) == 0;
}

static int is_log(const rl_limits *limits, size_t r) {
    return limits->rates[r].algorithm == RL_ALGO_SLIDING_LOG;
}

/* Returns the algorithms of limits' rates, SHAPE_BITS each. */
static uint32_t shape_of(const rl_limits *limits) {
    uint32_t shape = 0;
    for (size_t r = 0; r < limits->rate_count; r++)
        shape |= (uint32_t)limits->rates[r].algorithm << (SHAPE_BITS * r);
    return shape;
}

static unsigned entry_algorithm(const entry *e, size_t r) {
    return (e->shape >> (SHAPE_BITS * r)) & ((1u << SHAPE_BITS) - 1);
}

static int entry_is_log(const entry *e, size_t r) {
    return entry_algorithm(e, r) == RL_ALGO_SLIDING_LOG;
}

/* A concurrency key's entry: one rate, its leases. */
static int entry_is_lease(const entry *e) {
    return e->rate_count == 1 && entry_algorithm(e, 0) == RL_ALGO_CONCURRENCY;
}

static void entry_clear(entry *e) {
    for (size_t r = 0; r < e->rate_count; r++) {
        if (entry_is_log(e, r))
            rl_log_free(&e->rates[r].log);
        else if (entry_algorithm(e, r) == RL_ALGO_CONCURRENCY)
            rl_lease_free(&e->rates[r].leases);
        memset(&e->rates[r], 0, sizeof(rate_state));
    }
    e->expires_at = 0;
}

static void entry_free(entry *e) {
    entry_clear(e);
    rl_free(e);
}

static entry **find_slot(memory_store *m, uint64_t h, const rl_store_item *it) {
    entry **slot = &m->buckets[h & (m->bucket_count - 1)];
    while (*slot && !entry_is(*slot, h, it))
        slot = &(*slot)->next;
    return slot;
}

static void grow(memory_store *m) {
    size_t n = m->bucket_count * 2;
    entry **b = rl_calloc(n, sizeof(entry *));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < m->bucket_count; i++) {
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    rl_free(m->buckets);
    m->buckets = b;
    m->bucket_count = n;
    m->sweep_cursor = 0;
}

static size_t sweep_bucket(memory_store *m, size_t i, int64_t now) {
    size_t freed = 0;
    for (entry **slot = &m->buckets[i]; *slot;) {
        entry *e = *slot;
        if (e->expires_at <= now && !e->pinned) {
            *slot = e->next;
            if (entry_is_lease(e) && e->rates[0].leases.len && m->on_expired)
                m->on_expired(m->on_expired_arg, entry_name(e), e->ns_len, e->rates[0].leases.len);
            entry_free(e);
            freed++;
        } else {
            slot = &e->next;
        }
    }
    m->count -= freed;
    m->evictions += freed;
    return freed;
}

size_t rl_store_memory_sweep(rl_store *store, size_t budget) {
    memory_store *m = (memory_store *)store;
    int64_t now = now_us(m);
    size_t freed = 0;
    for (size_t i = 0; i < budget && i < m->bucket_count; i++) {
        freed += sweep_bucket(m, m->sweep_cursor, now);
        m->sweep_cursor = (m->sweep_cursor + 1) & (m->bucket_count - 1);
    }
    return freed;
}

void rl_store_memory_on_expired(rl_store *store, rl_store_memory_expired *fn, void *arg) {
    memory_store *m = (memory_store *)store;
    m->on_expired = fn;
    m->on_expired_arg = arg;
}

size_t rl_store_memory_count(const rl_store *store) {
    return ((const memory_store *)store)->count;
}

// Makes room for one more key: frees expired entries if at max_keys. Returns 0 if
// there is room. A full sweep costs O(buckets), so it runs at most once per
// FULL_SWEEP_INTERVAL_US, or more often for a smaller table (a tenth of a microsecond
// per bucket): a store full of live keys refuses new ones cheaply, and one whose keys
// have expired takes new ones again soon.
static int make_room(memory_store *m, int64_t now) {
    if (m->count < m->max_keys)
        return 0;
    int64_t interval = (int64_t)(m->bucket_count / FULL_SWEEP_BUCKETS_PER_US);
    if (interval > FULL_SWEEP_INTERVAL_US)
        interval = FULL_SWEEP_INTERVAL_US;
    if (now - m->last_full_sweep >= interval) {
        m->last_full_sweep = now;
        for (size_t i = 0; i < m->bucket_count; i++)
            sweep_bucket(m, i, now);
    }
    if (m->count < m->max_keys)
        return 0;
    m->full_refusals++;
    return -1;
}

static rl_status insert(memory_store *m, uint64_t h, const rl_store_item *it, int64_t now,
                        entry **out) {
    if (make_room(m, now) != 0)
        return RL_ST_STORE_FULL;
    uint8_t rates = it->limits->rate_count;
    entry *e = rl_calloc(1, sizeof(entry) + rates * sizeof(rate_state) + it->ns_len + it->key_len);
    if (!e)
        return RL_ST_INTERNAL;
    e->hash = h;
    e->ns_len = (uint8_t)it->ns_len;
    e->key_len = (uint16_t)it->key_len;
    e->rate_count = rates;
    e->shape = shape_of(it->limits) & 0xffffff;
    memcpy((char *)entry_name(e), it->ns, it->ns_len);
    memcpy((char *)entry_name(e) + it->ns_len, it->key, it->key_len);
    entry **head = &m->buckets[h & (m->bucket_count - 1)];
    e->next = *head;
    *head = e;
    m->count++;
    if (m->count > m->bucket_count)
        grow(m);
    *out = e;
    return RL_ST_OK;
}

// Returns the slot of the item's entry (or where it would go), its name's hash in *h. A
// hash from the memo is used only if an entry of that hash holds the item's name (so
// it is that name's hash); otherwise the hash is computed.
static entry **find_named(memory_store *m, const rl_store_item *it, uint64_t *h) {
    int from_memo;
    *h = memo_hash(m, it->ns, it->ns_len, it->key, it->key_len, &from_memo);
    entry **slot = find_slot(m, *h, it);
    if (*slot || !from_memo)
        return slot;
    *h = hash_name(it->ns, it->ns_len, it->key, it->key_len);
    memo_slot(m, it->key)->hash = *h;
    return find_slot(m, *h, it);
}

// Finds the item's entry; creates it if create is set. An entry whose rates no longer
// match the item's limits (their number or algorithms) is dropped: the policy changed
// under it, and its state means something else now. *out is NULL when the key has no
// state and create is 0.
static rl_status lookup(memory_store *m, const rl_store_item *it, int64_t now, int create,
                        entry **out) {
    uint64_t h;
    entry **slot = find_named(m, it, &h);
    entry *e = *slot;
    *out = NULL;
    if (e && (e->rate_count != it->limits->rate_count || e->shape != shape_of(it->limits))) {
        if (e->pinned)
            return RL_ST_INTERNAL; /* one batch, one key, two shapes: a caller bug */
        *slot = e->next;
        entry_free(e);
        m->count--;
        e = NULL;
    }
    if (e && e->expires_at <= now && !entry_is_lease(e))
        entry_clear(e); /* a lease op trims (and counts) expired leases itself */
    if (e || !create) {
        *out = e;
        return RL_ST_OK;
    }
    return insert(m, h, it, now, out);
}

/* ---- deciding ---- */

/* Per item: its entry, and the cost of the same entry's earlier items in the batch. */
typedef struct item_plan {
    entry *entry;               /* the key's state, or NULL (PEEK of an unknown key) */
    int64_t prior;              /* units earlier items of the batch take from the same entry */
    int last;                   /* 1 if no later item of the batch has the same entry */
    rl_cell next[RL_MAX_RATES]; /* cells after consuming prior + cost */
} item_plan;

static void decide_rate(const rl_rate *rate, rate_state *state, int64_t now, uint64_t cost,
                        rl_cell *next, rl_verdict *v) {
    static const rl_cell zero;
    if (rate->algorithm == RL_ALGO_SLIDING_LOG) {
        rl_log empty = {0};
        rl_log_decide(rate, state ? &state->log : &empty, now, cost, v);
    } else {
        rl_cell_decide(rate, state ? &state->cell : &zero, now, cost, next, v);
    }
}

static int decide_item(const rl_store_item *it, item_plan *plan, int64_t now, rl_verdict *out) {
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < it->limits->rate_count; r++) {
        rl_verdict v;
        rate_state *state = plan->entry ? &plan->entry->rates[r] : NULL;
        decide_rate(&it->limits->rates[r], state, now, (uint64_t)(plan->prior + it->cost),
                    &plan->next[r], &v);
        rl_verdict_merge(out, &v);
    }
    return out->allowed;
}

static int64_t entry_expiry(const entry *e, const rl_limits *limits) {
    int64_t at = 0;
    for (size_t r = 0; r < limits->rate_count; r++) {
        const rl_rate *rate = &limits->rates[r];
        int64_t x = is_log(limits, r) ? rl_log_expires_at(rate, &e->rates[r].log)
                                      : rl_cell_expires_at(rate, &e->rates[r].cell);
        at = x > at ? x : at;
    }
    return at;
}

// Makes room in every log the batch appends to, so that committing cannot fail
// half-way. Returns 0, or -1 if memory could not be had (nothing is consumed then).
static int reserve_logs(const rl_store_item *items, size_t n, item_plan *plans) {
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < items[i].limits->rate_count; r++)
            if (is_log(items[i].limits, r) &&
                rl_log_reserve(&items[i].limits->rates[r], &plans[i].entry->rates[r].log) != 0)
                return -1;
    return 0;
}

// Consumes the item's cost (its logs have room: reserve_logs).
static void commit_item(const rl_store_item *it, item_plan *plan, int64_t now) {
    entry *e = plan->entry;
    for (size_t r = 0; r < it->limits->rate_count; r++) {
        if (is_log(it->limits, r))
            rl_log_commit(&it->limits->rates[r], &e->rates[r].log, now, (uint64_t)it->cost);
        else if (plan->last)
            e->rates[r].cell = plan->next[r];
    }
    e->expires_at = entry_expiry(e, it->limits);
}

static void plan_batch(const rl_store_item *items, size_t n, item_plan *plans) {
    for (size_t i = 0; i < n; i++) {
        plans[i].prior = 0;
        plans[i].last = 1;
        for (size_t j = 0; j < i; j++) {
            if (plans[j].entry && plans[j].entry == plans[i].entry) {
                plans[i].prior += items[j].cost;
                plans[j].last = 0;
            }
        }
    }
}

// Decides the looked-up batch and, for CHECK, consumes it if every item allows.
static rl_status decide_looked_up(rl_store_op op, const rl_store_item *items, size_t n, int64_t now,
                                  item_plan *plans, rl_store_answer *ans) {
    plan_batch(items, n, plans);
    int all = 1;
    for (size_t i = 0; i < n; i++)
        all &= decide_item(&items[i], &plans[i], now, &ans->verdicts[i]);
    if (op != RL_STORE_CHECK || !all)
        return all ? RL_ST_ALLOWED : RL_ST_DENIED;
    if (reserve_logs(items, n, plans) != 0)
        return RL_ST_INTERNAL;
    for (size_t i = 0; i < n; i++)
        commit_item(&items[i], &plans[i], now);
    return RL_ST_ALLOWED;
}

// Looks up every item (pinning their entries, so that room made for a later item
// never frees an earlier one's), then decides.
static rl_status decide_batch(memory_store *m, rl_store_op op, const rl_store_item *items, size_t n,
                              int64_t now, rl_store_answer *ans) {
    item_plan plans[RL_MAX_ITEMS];
    rl_status st = RL_ST_OK;
    size_t looked;
    for (looked = 0; looked < n && st == RL_ST_OK; looked++) {
        st = lookup(m, &items[looked], now, op == RL_STORE_CHECK, &plans[looked].entry);
        if (plans[looked].entry)
            plans[looked].entry->pinned = 1;
    }
    if (st == RL_ST_OK)
        st = decide_looked_up(op, items, n, now, plans, ans);
    for (size_t i = 0; i < looked; i++)
        if (plans[i].entry)
            plans[i].entry->pinned = 0;
    return st;
}

// The verdict of a key never seen (after a RESET, or giving back to a key with no
// state), as ADJUST reports it: the state's own figures, and whether a cost of 1 passes.
static void fresh_verdict(const rl_limits *limits, int64_t now, rl_verdict *out) {
    static const rl_cell zero;
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < limits->rate_count; r++) {
        rl_verdict v;
        if (limits->rates[r].algorithm == RL_ALGO_CONCURRENCY) {
            rl_lease_set none = {0};
            rl_lease_figures(&limits->rates[r], &none, now, &v);
        } else if (is_log(limits, r)) {
            rl_log empty = {0};
            rl_log_adjust(&limits->rates[r], &empty, now, 0, &v);
        } else {
            rl_cell next;
            rl_cell_adjust(&limits->rates[r], &zero, now, 0, &next, &v);
        }
        rl_verdict_merge(out, &v);
    }
}

// Adds the item's cost to every rate of e (its logs have room); out gets the merged
// verdict, capped if any rate's charge met its ceiling.
static void adjust_rates(const rl_store_item *it, entry *e, int64_t now, rl_verdict *out) {
    bool capped = false;
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < it->limits->rate_count; r++) {
        const rl_rate *rate = &it->limits->rates[r];
        rl_verdict v;
        if (is_log(it->limits, r)) {
            rl_log_adjust(rate, &e->rates[r].log, now, it->cost, &v);
        } else {
            rl_cell next;
            rl_cell_adjust(rate, &e->rates[r].cell, now, it->cost, &next, &v);
            e->rates[r].cell = next;
        }
        capped |= v.capped;
        rl_verdict_merge(out, &v);
    }
    out->capped = capped;
    e->expires_at = entry_expiry(e, it->limits);
}

static rl_status adjust_item(memory_store *m, const rl_store_item *it, int64_t now,
                             rl_verdict *out) {
    entry *e;
    rl_status st = lookup(m, it, now, it->cost > 0, &e);
    if (st != RL_ST_OK)
        return st;
    if (!e) { /* giving back to a key with no state */
        fresh_verdict(it->limits, now, out);
        return out->allowed ? RL_ST_ALLOWED : RL_ST_DENIED;
    }
    for (size_t r = 0; r < it->limits->rate_count; r++)
        if (it->cost > 0 && is_log(it->limits, r) &&
            rl_log_reserve(&it->limits->rates[r], &e->rates[r].log) != 0)
            return RL_ST_INTERNAL; /* before any rate changed */
    adjust_rates(it, e, now, out);
    return out->allowed ? RL_ST_ALLOWED : RL_ST_DENIED;
}

static rl_status reset_item(memory_store *m, const rl_store_item *it, int64_t now,
                            rl_store_answer *ans) {
    rl_verdict *out = &ans->verdicts[0];
    uint64_t h = hash_name(it->ns, it->ns_len, it->key, it->key_len);
    entry **slot = find_slot(m, h, it);
    if (*slot) {
        entry *e = *slot;
        if (entry_is_lease(e)) /* every lease of the key ends: those still held counted */
            ans->leases_ended =
                e->rates[0].leases.len - rl_lease_trim(&e->rates[0].leases, now, NULL);
        *slot = e->next;
        entry_free(e);
        m->count--;
    }
    fresh_verdict(it->limits, now, out);
    return RL_ST_OK;
}

// Decides a lease op (ACQUIRE, RELEASE, RENEW) of one concurrency item: trims the
// key's expired leases first (reported in ans), then acquires, releases or renews.
static rl_status lease_item(memory_store *m, rl_store_op op, const rl_store_item *it, int64_t now,
                            rl_store_answer *ans) {
    const rl_rate *rate = &it->limits->rates[0];
    rl_verdict *out = &ans->verdicts[0];
    entry *e;
    if (it->limits->rate_count != 1 || rate->algorithm != RL_ALGO_CONCURRENCY)
        return RL_ST_INTERNAL; /* the engine sends only concurrency items: a caller bug */
    rl_status st = lookup(m, it, now, op == RL_STORE_ACQUIRE, &e);
    if (st != RL_ST_OK)
        return st;
    if (!e) { /* RELEASE/RENEW of a key holding nothing */
        rl_lease_set none = {0};
        rl_lease_figures(rate, &none, now, out);
        out->allowed = false;
        return RL_ST_LEASE_UNKNOWN;
    }
    rl_lease_set *set = &e->rates[0].leases;
    ans->leases_expired = rl_lease_trim(set, now, &ans->slots_expired);
    if (op == RL_STORE_ACQUIRE) {
        if (rl_lease_reserve(rate, set) != 0)
            return RL_ST_INTERNAL;
        st = rl_lease_acquire(rate, set, now, it->lease, (uint64_t)it->cost, out) ? RL_ST_ALLOWED
                                                                                  : RL_ST_DENIED;
    } else if (op == RL_STORE_RELEASE) {
        st = rl_lease_release(rate, set, now, it->lease, out) ? RL_ST_OK : RL_ST_LEASE_UNKNOWN;
    } else {
        st = rl_lease_renew(rate, set, now, it->lease, out) ? RL_ST_OK : RL_ST_LEASE_UNKNOWN;
    }
    e->expires_at = rl_lease_expires_at(set);
    return st;
}

// Lists the leases of e held at now into list (up to max in all); counts the rest in
// *more.
static void list_entry(const entry *e, int64_t now, rl_store_lease *list, size_t max, size_t *count,
                       int *more) {
    const rl_lease_set *set = &e->rates[0].leases;
    for (uint32_t i = 0; i < set->len; i++) {
        const rl_lease *l = &set->leases[i];
        if (l->expires_at_us <= now)
            continue;
        if (*count == max) {
            *more = 1;
            return;
        }
        list[(*count)++] = (rl_store_lease){entry_name(e) + e->ns_len, e->key_len, l->id, l->slots,
                                            l->expires_at_us - now};
    }
}

static int entry_in_ns(const entry *e, const char *ns, size_t ns_len) {
    return entry_is_lease(e) && e->ns_len == ns_len && memcmp(entry_name(e), ns, ns_len) == 0;
}

static int memory_leases(rl_store *store, const char *ns, size_t ns_len, const char *key,
                         size_t key_len, size_t max, rl_store_leases_done *done, void *arg) {
    memory_store *m = (memory_store *)store;
    int64_t now = now_us(m);
    rl_store_lease_list out = {.status = RL_ST_OK};
    rl_store_lease *list = rl_calloc(max ? max : 1, sizeof(*list));
    if (!list)
        return RL_ERR;
    if (key_len) {
        rl_store_item it = {NULL, ns, ns_len, key, key_len, 0, 0, 0};
        entry *e = *find_slot(m, hash_name(ns, ns_len, key, key_len), &it);
        if (e && entry_in_ns(e, ns, ns_len))
            list_entry(e, now, list, max, &out.count, &out.truncated);
    } else {
        for (size_t i = 0; i < m->bucket_count; i++)
            for (const entry *e = m->buckets[i]; e; e = e->next)
                if (entry_in_ns(e, ns, ns_len))
                    list_entry(e, now, list, max, &out.count, &out.truncated);
    }
    out.leases = list;
    done(arg, &out);
    rl_free(list);
    return RL_OK;
}

static int memory_submit(rl_store *store, rl_store_op op, const rl_store_item *items, size_t n,
                         rl_store_done *done, void *arg) {
    memory_store *m = (memory_store *)store;
    rl_store_answer ans;
    ans.now_us = now_us(m);
    ans.count = n;
    ans.flags = 0;
    ans.errstr = NULL;
    ans.leases_expired = 0;
    ans.slots_expired = 0;
    ans.leases_ended = 0;
    if (op == RL_STORE_ACQUIRE || op == RL_STORE_RELEASE || op == RL_STORE_RENEW) {
        ans.status = lease_item(m, op, &items[0], ans.now_us, &ans);
    } else if (op == RL_STORE_ADJUST) {
        ans.status = adjust_item(m, &items[0], ans.now_us, &ans.verdicts[0]);
        if ((ans.status == RL_ST_ALLOWED || ans.status == RL_ST_DENIED) && ans.verdicts[0].capped)
            ans.flags = RL_FLAG_CAPPED;
    } else if (op == RL_STORE_RESET) {
        ans.status = reset_item(m, &items[0], ans.now_us, &ans);
    } else if (op == RL_STORE_REFUND) {
        ans.status = RL_ST_INTERNAL; /* only the Redis Cluster store splits requests */
        ans.errstr = "REFUND is not an operation of the embedded store";
    } else
        ans.status = decide_batch(m, op, items, n, ans.now_us, &ans);
    if (ans.status == RL_ST_STORE_FULL)
        ans.errstr = "the embedded store holds max_keys live keys";
    done(arg, &ans);
    return RL_OK;
}

static void memory_forget_ns(rl_store *store, const char *ns, size_t ns_len) {
    memory_store *m = (memory_store *)store;
    for (size_t i = 0; i < m->bucket_count; i++) {
        for (entry **slot = &m->buckets[i]; *slot;) {
            entry *e = *slot;
            if (e->ns_len == ns_len && memcmp(entry_name(e), ns, ns_len) == 0) {
                *slot = e->next;
                entry_free(e);
                m->count--;
            } else {
                slot = &e->next;
            }
        }
    }
}

static void memory_stats(rl_store *store, rl_store_figures *out) {
    memory_store *m = (memory_store *)store;
    out->type = "memory";
    rl_figures_add(out, NULL, "keys", RL_FIGURE_GAUGE, m->count);
    rl_figures_add(out, NULL, "max_keys", RL_FIGURE_GAUGE, m->max_keys);
    rl_figures_add(out, NULL, "buckets", RL_FIGURE_GAUGE, m->bucket_count);
    rl_figures_add(out, NULL, "evictions", RL_FIGURE_COUNTER, m->evictions);
    rl_figures_add(out, NULL, "full_refusals", RL_FIGURE_COUNTER, m->full_refusals);
}

static void memory_free(rl_store *store) {
    memory_store *m = (memory_store *)store;
    if (!m)
        return;
    for (size_t i = 0; i < m->bucket_count; i++) {
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    rl_free(m->buckets);
    rl_free(m);
}

static void memory_prefetch(rl_store *store, const char *ns, size_t ns_len, const char *key,
                            size_t key_len, int stage) {
    memory_store *m = (memory_store *)store;
    int from_memo;
    uint64_t h = memo_hash(m, ns, ns_len, key, key_len, &from_memo);
    entry **bucket = &m->buckets[h & (m->bucket_count - 1)];
    if (stage == 0)
        __builtin_prefetch(bucket);
    else if (*bucket)
        __builtin_prefetch(*bucket);
}

static const rl_store_ops memory_ops = {
    .name = "memory",
    .submit = memory_submit,
    .prefetch = memory_prefetch,
    .leases = memory_leases,
    .forget_ns = memory_forget_ns,
    .stats = memory_stats,
    .free = memory_free,
};

rl_store *rl_store_memory_new_clocked(uint64_t max_keys, const int64_t *clock) {
    memory_store *m = rl_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->base.ops = &memory_ops;
    m->bucket_count = INITIAL_BUCKETS;
    m->buckets = rl_calloc(m->bucket_count, sizeof(entry *));
    m->max_keys = max_keys;
    m->clock = clock;
    if (!m->buckets) {
        rl_free(m);
        return NULL;
    }
    return &m->base;
}

rl_store *rl_store_memory_new(uint64_t max_keys) {
    return rl_store_memory_new_clocked(max_keys, NULL);
}

size_t rl_store_memory_longest_chain(const rl_store *store) {
    const memory_store *m = (const memory_store *)store;
    size_t longest = 0;
    for (size_t i = 0; i < m->bucket_count; i++) {
        size_t n = 0;
        for (const entry *e = m->buckets[i]; e; e = e->next)
            n++;
        longest = n > longest ? n : longest;
    }
    return longest;
}
