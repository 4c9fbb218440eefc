/*
 * algo_lease.c: concurrency leases (see algo_lease.h for the exact semantics).
 */
#include "algo_lease.h"

#include <string.h>

#include "alloc.h"

#define MIN_CAP 4u /* the first reserve makes room for this many leases (or limit) */

uint32_t rl_lease_trim(rl_lease_set *set, int64_t now_us, uint64_t *slots) {
    uint32_t dropped = 0;
    for (uint32_t i = 0; i < set->len;) {
        if (set->leases[i].expires_at_us > now_us) {
            i++;
            continue;
        }
        if (slots)
            *slots += set->leases[i].slots;
        set->held -= set->leases[i].slots;
        set->leases[i] = set->leases[--set->len];
        dropped++;
    }
    return dropped;
}

int rl_lease_reserve(const rl_rate *rate, rl_lease_set *set) {
    if (set->len < set->cap || set->len >= rate->limit)
        return 0;
    uint64_t cap = set->cap ? (uint64_t)set->cap * 2 : MIN_CAP;
    cap = cap > rate->limit ? rate->limit : cap;
    rl_lease *grown = rl_realloc(set->leases, (size_t)cap * sizeof(rl_lease));
    if (!grown)
        return -1;
    set->leases = grown;
    set->cap = (uint32_t)cap;
    return 0;
}

static int64_t latest(const rl_lease_set *set) {
    int64_t at = 0;
    for (uint32_t i = 0; i < set->len; i++)
        at = set->leases[i].expires_at_us > at ? set->leases[i].expires_at_us : at;
    return at;
}

static int64_t earliest(const rl_lease_set *set) {
    int64_t at = INT64_MAX;
    for (uint32_t i = 0; i < set->len; i++)
        at = set->leases[i].expires_at_us < at ? set->leases[i].expires_at_us : at;
    return at;
}

/* Returns the slots of the leases that have expired at t. */
static uint64_t freed_at(const rl_lease_set *set, int64_t t) {
    uint64_t slots = 0;
    for (uint32_t i = 0; i < set->len; i++)
        if (set->leases[i].expires_at_us <= t)
            slots += set->leases[i].slots;
    return slots;
}

// Returns the earliest instant at which leases holding at least need slots have
// expired (need <= held): a binary search over time, O(len) a step, at most 64 steps.
static int64_t time_to_free(const rl_lease_set *set, uint64_t need) {
    int64_t lo = earliest(set), hi = latest(set);
    if (need <= 1 || freed_at(set, lo) >= need)
        return lo;
    while (hi - lo > 1) { /* freed_at(lo) < need <= freed_at(hi) */
        int64_t mid = lo + (hi - lo) / 2;
        if (freed_at(set, mid) >= need)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

void rl_lease_figures(const rl_rate *rate, const rl_lease_set *set, int64_t now_us,
                      rl_verdict *out) {
    int64_t last = latest(set);
    *out = (rl_verdict){
        .allowed = set->held < rate->limit,
        .limit = rate->limit,
        .remaining = set->held < rate->limit ? rate->limit - set->held : 0,
        .reset_after_us = set->len ? last - now_us : 0,
        .window_us = rate->period_us,
    };
}

bool rl_lease_acquire(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                      uint64_t slots, rl_verdict *out) {
    bool fits = slots <= rate->limit && set->held <= rate->limit - slots && set->len < set->cap;
    if (!fits) {
        rl_lease_figures(rate, set, now_us, out);
        out->allowed = false;
        uint64_t need = set->held + slots - rate->limit; /* >= 1 when it does not fit */
        out->retry_after_us = slots > rate->limit || need > set->held || set->len == 0
                                  ? rate->period_us
                                  : time_to_free(set, need) - now_us;
        return false;
    }
    set->leases[set->len++] = (rl_lease){id, slots, now_us + rate->period_us};
    set->held += slots;
    rl_lease_figures(rate, set, now_us, out);
    out->allowed = true;
    out->reset_after_us = rate->period_us;
    return true;
}

static rl_lease *find(rl_lease_set *set, uint64_t id) {
    for (uint32_t i = 0; i < set->len; i++)
        if (set->leases[i].id == id)
            return &set->leases[i];
    return NULL;
}

bool rl_lease_release(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                      rl_verdict *out) {
    rl_lease *l = find(set, id);
    if (l) {
        set->held -= l->slots;
        *l = set->leases[--set->len];
    }
    rl_lease_figures(rate, set, now_us, out);
    out->allowed = l != NULL;
    return l != NULL;
}

bool rl_lease_renew(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                    rl_verdict *out) {
    rl_lease *l = find(set, id);
    if (l)
        l->expires_at_us = now_us + rate->period_us;
    rl_lease_figures(rate, set, now_us, out);
    out->allowed = l != NULL;
    if (l)
        out->reset_after_us = rate->period_us;
    return l != NULL;
}

int64_t rl_lease_expires_at(const rl_lease_set *set) {
    return latest(set);
}

void rl_lease_free(rl_lease_set *set) {
    rl_free(set->leases);
    memset(set, 0, sizeof(*set));
}
