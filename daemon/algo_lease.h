/*
 * algo_lease.h: concurrency leases, as pure functions of (leases, now, slots).
 *
 * A concurrency rate (RL_ALGO_CONCURRENCY) lets a key hold at most `limit` slots at
 * once. Each ACQUIRE that fits takes `slots` (1..limit) as one lease with an id chosen
 * by the caller and an expiry of now + lease (the rate's period_us); a lease ends on
 * RELEASE, or at its expiry (a lease counts at the instants t < expires_at). RENEW moves
 * a held lease's expiry to now + lease. A key's leases are a small array of
 * {id, slots, expires_at}: every lease holds at least one slot, so there are never more
 * than `limit` of them.
 *
 * No I/O, no clock, no allocation except through rl_lease_reserve. Every function but
 * rl_lease_trim expects a set already trimmed at now_us (the caller trims first, so it
 * can count what expired). Verdict figures, all relative to now:
 *   limit = the slots; remaining = limit - held (0 if held is above the limit, as after a
 *   reload that lowered it); window = the lease;
 *   ACQUIRE allowed, RENEW: reset_after = the lease (until this lease expires);
 *   ACQUIRE denied: retry_after = until enough held leases have expired for the slots
 *   to fit (for 1 slot: until the earliest expiry; an upper bound, since a RELEASE frees
 *   a slot sooner), reset_after = until the last held lease expires;
 *   RELEASE, and RELEASE/RENEW of a lease not held: reset_after = until the last
 *   remaining lease expires (0 if none).
 */
#ifndef RL_ALGO_LEASE_H
#define RL_ALGO_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "algo.h"

/* One held lease. */
typedef struct rl_lease {
    uint64_t id;           /* its id (never 0) */
    uint64_t slots;        /* slots it holds, >= 1 */
    int64_t expires_at_us; /* it counts until this instant (exclusive) */
} rl_lease;

/* A key's leases, in no particular order. A zeroed set holds nothing. */
typedef struct rl_lease_set {
    rl_lease *leases; /* storage for cap leases (owned; see rl_lease_free) */
    uint32_t len;     /* leases held */
    uint32_t cap;     /* room in leases */
    uint64_t held;    /* sum of the slots of the leases held */
} rl_lease_set;

// Drops the leases that have expired at now_us. Returns how many; adds the slots they
// held to *slots (if slots is not NULL).
uint32_t rl_lease_trim(rl_lease_set *set, int64_t now_us, uint64_t *slots);

// Makes room for one more lease of rate (up to rate->limit leases). Returns 0, or -1 if
// memory could not be had (the set is unchanged). Grows through the project's allocator.
int rl_lease_reserve(const rl_rate *rate, rl_lease_set *set);

// Takes slots (1..limit) as lease id at now_us if they fit (held + slots <= limit); the
// caller called rl_lease_reserve. Writes the verdict to *out; returns out->allowed.
bool rl_lease_acquire(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                      uint64_t slots, rl_verdict *out);

// Ends lease id. Returns true if it was held (out->allowed too), false if not (nothing
// changes). Writes the figures after the release to *out.
bool rl_lease_release(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                      rl_verdict *out);

// Moves lease id's expiry to now_us + the lease. Returns true if it was held, false if
// not (nothing changes). Writes the figures to *out.
bool rl_lease_renew(const rl_rate *rate, rl_lease_set *set, int64_t now_us, uint64_t id,
                    rl_verdict *out);

// Writes the figures of the set as it is (no lease taken) to *out, allowed set if one
// more slot would fit.
void rl_lease_figures(const rl_rate *rate, const rl_lease_set *set, int64_t now_us,
                      rl_verdict *out);

// Returns the instant after which the set holds nothing (its latest expiry), or 0 if
// it is empty.
int64_t rl_lease_expires_at(const rl_lease_set *set);

// Frees the set's storage and zeroes it.
void rl_lease_free(rl_lease_set *set);

#endif
