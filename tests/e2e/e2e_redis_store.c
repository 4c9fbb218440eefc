/*
 * e2e_redis_store.c: the Redis store against a real redis-server, driven directly on
 * an event_base. Decisions: every algorithm gives, figure for figure, the answers of
 * the pure algorithms (algo.c) for the same sequence on the same clock (the store's
 * test clock sends the decision time to the script); MULTI batches give the answers of
 * the embedded store. Also: batching, the over-limit cache, keys, TTLs, forgetting a
 * namespace, foreign data in Redis.
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "algo_lease.h"
#include "redis_harness.h"
#include "store_memory.h"

static harness h;

static void setup(void) {
    h_start(&h, NULL);
}

static void teardown(void) {
    h_stop(&h);
}

/* ---- a reference: one key's state under algo.c ---- */

typedef struct ref_key {
    rl_cell cells[RL_MAX_RATES]; /* every rate that is not a log */
    rl_log logs[RL_MAX_RATES];   /* sliding logs */
} ref_key;

static int is_log(const rl_limits *l, size_t r) {
    return l->rates[r].algorithm == RL_ALGO_SLIDING_LOG;
}

static void ref_clear(ref_key *k) {
    for (size_t r = 0; r < RL_MAX_RATES; r++)
        rl_log_free(&k->logs[r]);
    memset(k, 0, sizeof(*k));
}

static rl_status ref_decide(ref_key *k, const rl_limits *l, int commit, int64_t cost, int64_t now,
                            rl_verdict *out) {
    rl_cell next[RL_MAX_RATES];
    int all = 1;
    for (size_t r = 0; r < l->rate_count; r++) {
        rl_verdict v;
        if (is_log(l, r))
            rl_log_decide(&l->rates[r], &k->logs[r], now, (uint64_t)cost, &v);
        else
            rl_cell_decide(&l->rates[r], &k->cells[r], now, (uint64_t)cost, &next[r], &v);
        rl_verdict_merge(out, &v);
        all &= v.allowed;
    }
    for (size_t r = 0; commit && all && r < l->rate_count; r++) {
        if (!is_log(l, r))
            k->cells[r] = next[r];
        else if (rl_log_reserve(&l->rates[r], &k->logs[r]) == 0)
            rl_log_commit(&l->rates[r], &k->logs[r], now, (uint64_t)cost);
    }
    return all ? RL_ST_ALLOWED : RL_ST_DENIED;
}

static rl_status ref_adjust(ref_key *k, const rl_limits *l, int64_t cost, int64_t now,
                            rl_verdict *out) {
    bool capped = false;
    for (size_t r = 0; r < l->rate_count; r++) {
        rl_verdict v;
        if (is_log(l, r)) {
            if (cost > 0)
                ck_assert_int_eq(rl_log_reserve(&l->rates[r], &k->logs[r]), 0);
            rl_log_adjust(&l->rates[r], &k->logs[r], now, cost, &v);
        } else {
            rl_cell next;
            rl_cell_adjust(&l->rates[r], &k->cells[r], now, cost, &next, &v);
            k->cells[r] = next;
        }
        capped |= v.capped;
        rl_verdict_merge(out, &v);
    }
    out->capped = capped; /* any rate's (the stores' RL_FLAG_CAPPED) */
    return out->allowed ? RL_ST_ALLOWED : RL_ST_DENIED;
}

static rl_status ref_apply(ref_key *k, const rl_limits *l, rl_store_op op, int64_t cost,
                           int64_t now, rl_verdict *out) {
    memset(out, 0, sizeof(*out));
    if (op == RL_STORE_ADJUST)
        return ref_adjust(k, l, cost, now, out);
    if (op == RL_STORE_RESET) { /* the verdict of a fresh state: ADJUST by 0 */
        ref_clear(k);
        ref_adjust(k, l, 0, now, out);
        return RL_ST_OK;
    }
    return ref_decide(k, l, op == RL_STORE_CHECK, cost, now, out);
}

static void assert_same(const rl_store_answer *got, rl_status status, const rl_verdict *want,
                        size_t n, const char *what) {
    ck_assert_msg(got->status == status, "%s: status %d, want %d (%s)", what, got->status, status,
                  got->errstr ? got->errstr : "");
    ck_assert_uint_eq(got->count, n);
    for (size_t i = 0; i < n; i++) {
        const rl_verdict *g = &got->verdicts[i], *w = &want[i];
        ck_assert_msg(
            g->allowed == w->allowed && g->capped == w->capped && g->limit == w->limit &&
                g->remaining == w->remaining && g->reset_after_us == w->reset_after_us &&
                g->retry_after_us == w->retry_after_us && g->window_us == w->window_us,
            "%s item %zu: got allowed %d limit %llu remaining %llu reset %lld retry "
            "%lld window %lld; want %d %llu %llu %lld %lld %lld",
            what, i, g->allowed, (unsigned long long)g->limit, (unsigned long long)g->remaining,
            (long long)g->reset_after_us, (long long)g->retry_after_us, (long long)g->window_us,
            w->allowed, (unsigned long long)w->limit, (unsigned long long)w->remaining,
            (long long)w->reset_after_us, (long long)w->retry_after_us, (long long)w->window_us);
    }
}

/* ---- random sequences ---- */

static uint64_t rng_state;

static uint64_t rnd(uint64_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n ? rng_state % n : 0;
}

// Moves the test clock by a random step sized to period: often by no more than the real
// time elapsed, often a little, sometimes past a window or far. The clock never runs
// slower than real time, so Redis's TTLs (real time) never expire a key early.
static void advance(int64_t *clock, int64_t offset, int64_t period) {
    uint64_t p = (uint64_t)period, pick = rnd(100);
    int64_t step = pick < 25   ? 0
                   : pick < 60 ? (int64_t)rnd(p / 20 + 1)
                   : pick < 90 ? (int64_t)rnd(p + p / 2)
                               : (int64_t)rnd(5 * p);
    /* Redis counts TTLs down in real time: the test clock must never advance less than
       real time does, or a slow run (ASan, a busy machine) sees keys expire early. So
       even a zero step moves it by the real time elapsed since the last step. */
    static int64_t lead = -1; /* test clock minus real time after the last step */
    int64_t wall = h_wall_us();
    if (lead < offset)
        lead = offset;
    *clock += step;
    if (*clock < wall + lead)
        *clock = wall + lead;
    lead = *clock - wall;
}

static uint64_t min_capacity(const rl_limits *l) {
    uint64_t cap = UINT64_MAX;
    for (size_t r = 0; r < l->rate_count; r++)
        cap = rl_rate_capacity(&l->rates[r]) < cap ? rl_rate_capacity(&l->rates[r]) : cap;
    return cap;
}

static int64_t min_period(const rl_limits *l) {
    int64_t p = INT64_MAX;
    for (size_t r = 0; r < l->rate_count; r++)
        p = l->rates[r].period_us < p ? l->rates[r].period_us : p;
    return p;
}

/* One random operation of a sequence. */
typedef struct step_op {
    rl_store_op op; /* what */
    int key;        /* which of the two keys */
    int64_t cost;   /* units */
} step_op;

static step_op random_op(const rl_limits *l, int64_t adjust_max) {
    uint64_t cap = min_capacity(l), pick = rnd(100);
    step_op s = {RL_STORE_CHECK, (int)rnd(2), 1};
    if (pick < 60)
        s.cost = rnd(3) ? 1 : 1 + (int64_t)rnd(cap);
    else if (pick < 62)
        s.cost = (int64_t)cap + 1; /* over capacity: the engine never sends it; same answer */
    else if (pick < 75)
        s.op = RL_STORE_PEEK, s.cost = 1 + (int64_t)rnd(cap);
    else if (pick < 96)
        s.op = RL_STORE_ADJUST, s.cost = (int64_t)rnd(2 * (uint64_t)adjust_max + 1) - adjust_max;
    else
        s.op = RL_STORE_RESET, s.cost = 0;
    if (s.op == RL_STORE_ADJUST && s.cost == 0)
        s.cost = 1;
    return s;
}

// Runs steps random steps on two keys of policy "seq" through the store and through
// algo.c, 1 to 4 operations at each instant (sent in one script call), comparing every
// answer.
// Returns 1 if a state of k becomes empty in (now, now + window]: Redis, which counts its
// TTLs down in real time, may have dropped it already while the reference still holds it.
static int ref_expires_within(const ref_key *k, const rl_limits *l, int64_t now, int64_t window) {
    for (size_t r = 0; r < l->rate_count; r++) {
        int64_t at = is_log(l, r)
                         ? (k->logs[r].len ? rl_log_expires_at(&l->rates[r], &k->logs[r]) : 0)
                         : rl_cell_expires_at(&l->rates[r], &k->cells[r]);
        if (at > now && at <= now + window)
            return 1;
    }
    return 0;
}

// How much more real time than test-clock time may have passed for a key written in an
// earlier step, with done_wall the real time once this step's answers are in and
// prior_lead an upper bound of (test clock - real time) at the earlier steps (advance
// never lets that lead shrink).
static int64_t real_ahead(int64_t clock, int64_t done_wall, int64_t prior_lead) {
    return done_wall - clock + prior_lead;
}

static void run_sequence(const rl_limits *l, uint64_t seed, int steps, int64_t adjust_max) {
    int64_t offset = 2000000, clock = h_wall_us() + offset;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    ref_key keys[2] = {0};
    redisContext *c = rlt_redis_connect(&h.redis, NULL); /* the reference starts empty */
    freeReplyObject(redisCommand(c, "FLUSHALL"));
    redisFree(c);
    const char *names[2] = {"alice", "bob\xff\x00x"};
    rng_state = seed;
    int64_t prior_lead = INT64_MAX / 4; /* none yet */
    int resynced = 0;
    for (int step = 0; step < steps; step++) {
        int64_t before = h_wall_us();
        advance(&clock, offset, min_period(l));
        int64_t lead = clock - before; /* >= advance's own lead */
        outcome outs[4];
        step_op ops[4];
        size_t n = 1 + rnd(4);
        for (size_t i = 0; i < n; i++) {
            ops[i] = random_op(l, adjust_max);
            rl_store_item it = {l,           "seq", 3, names[ops[i].key], ops[i].key ? 6 : 5,
                                ops[i].cost, 0,     0};
            h_submit(store, ops[i].op, &it, 1, &outs[i]);
        }
        h_wait(&h, outs, n);
        /* A slow step (a loaded machine) can let a key's real TTL run out in Redis a few ms
           before its end on the test clock. When a reference state ends within that
           margin, this step cannot be judged: both sides start over from empty (counted,
           and bounded below, so the test cannot pass by skipping). */
        int64_t ahead = real_ahead(clock, h_wall_us(), prior_lead);
        prior_lead = lead;
        if (step > 0 && ahead > 0 &&
            (ref_expires_within(&keys[0], l, clock, ahead) ||
             ref_expires_within(&keys[1], l, clock, ahead))) {
            redisContext *rc = rlt_redis_connect(&h.redis, NULL);
            freeReplyObject(redisCommand(rc, "FLUSHALL"));
            redisFree(rc);
            ref_clear(&keys[0]);
            ref_clear(&keys[1]);
            resynced++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            rl_verdict want;
            rl_status st = ref_apply(&keys[ops[i].key], l, ops[i].op, ops[i].cost, clock, &want);
            char what[160];
            snprintf(what, sizeof(what), "seed %llu step %d op %zu (op %d key %d cost %lld)",
                     (unsigned long long)seed, step, i, ops[i].op, ops[i].key,
                     (long long)ops[i].cost);
            ck_assert_int_eq(outs[i].calls, 1);
            ck_assert_int_eq(outs[i].ans.now_us, clock);
            assert_same(&outs[i].ans, st, &want, 1, what);
        }
    }
    ref_clear(&keys[0]);
    ref_clear(&keys[1]);
    ck_assert_msg(resynced <= steps / 10, "%d of %d steps could not be judged (machine too slow)",
                  resynced, steps);
    ck_assert_int_eq(h_stat(store, "errors.reply"), 0);
    store->ops->free(store);
}

static rl_limits one_rate(rl_algorithm algorithm, uint64_t limit, int64_t period_us,
                          uint64_t burst) {
    return h_limits1(algorithm, limit, period_us, burst);
}

START_TEST(fixed_window_matches_algo) {
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 5, 1000000, 0);
    run_sequence(&l, 11, 400, 3);
}
END_TEST

START_TEST(sliding_log_matches_algo) {
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 5, 1000000, 0);
    run_sequence(&l, 12, 400, 3);
}
END_TEST

START_TEST(sliding_counter_matches_algo) {
    rl_limits l = one_rate(RL_ALGO_SLIDING_COUNTER, 5, 1000000, 0);
    run_sequence(&l, 13, 400, 3);
}
END_TEST

START_TEST(token_bucket_matches_algo) {
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 5, 1000000, 5);
    run_sequence(&l, 14, 400, 3);
}
END_TEST

START_TEST(gcra_matches_algo) {
    rl_limits l = one_rate(RL_ALGO_GCRA, 5, 1000000, 2);
    run_sequence(&l, 15, 400, 3);
}
END_TEST

START_TEST(several_rates_match_algo) {
    rl_limits l = {.rate_count = 4};
    l.rates[0] = (rl_rate){RL_ALGO_FIXED_WINDOW, 3, 500000, 0};
    l.rates[1] = (rl_rate){RL_ALGO_SLIDING_COUNTER, 10, 5000000, 0};
    l.rates[2] = (rl_rate){RL_ALGO_SLIDING_LOG, 4, 2000000, 0};
    l.rates[3] = (rl_rate){RL_ALGO_GCRA, 20, 10000000, 3};
    run_sequence(&l, 16, 400, 4);
}
END_TEST

/* Intermediate products past 2^53 (the counter's weighting of a day-long window with
 * millions of units, a 46-day window with billions), and the gcra's 10-day interval.
 * (Figures themselves stay below 2^53 us, 285 years: the script's exact domain.) */
START_TEST(large_figures_match_algo) {
    rl_limits l = {.rate_count = 3};
    l.rates[0] = (rl_rate){RL_ALGO_SLIDING_COUNTER, 1000000, 86400000000LL, 0};
    l.rates[1] = (rl_rate){RL_ALGO_FIXED_WINDOW, 4000000, 86400000000LL, 0};
    l.rates[2] = (rl_rate){RL_ALGO_SLIDING_LOG, 3000000, 86400000000LL, 0};
    run_sequence(&l, 17, 250, 900000);
    rl_limits g = one_rate(RL_ALGO_GCRA, 10, 864000000000LL, 10);
    run_sequence(&g, 18, 250, 20);
    rl_limits c = one_rate(RL_ALGO_SLIDING_COUNTER, 4000000000ULL, 4000000000000LL, 0);
    run_sequence(&c, 19, 250, 2000000000);
}
END_TEST

/* Charges as large as the capacity: usage saturates at 2 x capacity (CAPPED), logs merge
 * their two oldest entries past limit entries; the same answers as algo.c. */
START_TEST(capped_charges_match_algo) {
    rl_limits l = {.rate_count = 3};
    l.rates[0] = (rl_rate){RL_ALGO_SLIDING_LOG, 5, 1000000, 0};
    l.rates[1] = (rl_rate){RL_ALGO_FIXED_WINDOW, 6, 2000000, 0};
    l.rates[2] = (rl_rate){RL_ALGO_SLIDING_COUNTER, 7, 1000000, 0};
    run_sequence(&l, 31, 300, 5);
    rl_limits one = one_rate(RL_ALGO_SLIDING_LOG, 1, 1000000, 0);
    run_sequence(&one, 32, 200, 1);
    rl_limits b = one_rate(RL_ALGO_TOKEN_BUCKET, 5, 1000000, 4);
    run_sequence(&b, 33, 200, 4);
    rl_limits g = one_rate(RL_ALGO_GCRA, 5, 1000000, 3);
    run_sequence(&g, 34, 200, 3);
}
END_TEST

/* ---- concurrency leases against algo_lease.c ---- */

/* One key's leases under algo_lease.c, and the ids handed out on it. */
typedef struct ref_leases {
    rl_lease_set set;    /* the reference */
    uint64_t ids[64];    /* ids acquired on the key (held, released or expired) */
    size_t id_count;     /* ids written (the array is a ring) */
    uint64_t next_small; /* the next small id: 1, 2, ... (ids sharing leading digits) */
} ref_leases;

// Returns a new id: small ones (1, 2, ..., 10, 11, ...: one's digits begin another's)
// or past 2^53 (Lua numbers would lose them).
static uint64_t fresh_id(ref_leases *k) {
    if (rnd(3) == 0)
        return ++k->next_small;
    rnd(0);
    return rng_state | (1ULL << 63);
}

// Returns an id to RELEASE or RENEW: mostly one acquired on the key, else a fresh one.
static uint64_t some_id(ref_leases *k) {
    size_t n = k->id_count < 64 ? k->id_count : 64;
    if (n == 0 || rnd(5) == 0)
        return fresh_id(k);
    return k->ids[rnd(n)];
}

/* What a lease operation reports besides its verdict. */
typedef struct lease_counts {
    uint32_t expired;       /* leases found expired */
    uint64_t expired_slots; /* their slots */
    uint32_t ended;         /* RESET: leases still held that it ended */
} lease_counts;

static rl_status ref_lease(ref_leases *k, const rl_rate *rate, rl_store_op op, uint64_t id,
                           uint64_t slots, int64_t now, rl_verdict *out, lease_counts *counts) {
    uint32_t *expired = &counts->expired;
    uint64_t *expired_slots = &counts->expired_slots;
    counts->ended = 0;
    *expired_slots = 0;
    *expired = rl_lease_trim(&k->set, now, expired_slots);
    memset(out, 0, sizeof(*out));
    if (op == RL_STORE_ACQUIRE) {
        ck_assert_int_eq(rl_lease_reserve(rate, &k->set), 0);
        k->ids[k->id_count++ % 64] = id;
        return rl_lease_acquire(rate, &k->set, now, id, slots, out) ? RL_ST_ALLOWED : RL_ST_DENIED;
    }
    if (op == RL_STORE_RELEASE)
        return rl_lease_release(rate, &k->set, now, id, out) ? RL_ST_ALLOWED : RL_ST_LEASE_UNKNOWN;
    if (op == RL_STORE_RENEW)
        return rl_lease_renew(rate, &k->set, now, id, out) ? RL_ST_ALLOWED : RL_ST_LEASE_UNKNOWN;
    counts->ended = k->set.len; /* RESET: every lease still held ends; no expiry counted */
    rl_lease_free(&k->set);
    rl_lease_figures(rate, &k->set, now, out);
    *expired = 0;
    *expired_slots = 0;
    return RL_ST_OK;
}

static step_op random_lease_op(ref_leases *k, uint64_t limit) {
    uint64_t pick = rnd(100);
    step_op s = {RL_STORE_ACQUIRE, 0, rnd(3) ? 1 : 1 + (int64_t)rnd(limit)};
    if (pick < 2)
        s.cost = (int64_t)limit + 1; /* the engine never sends it; the same answer */
    else if (pick >= 50 && pick < 75)
        s.op = RL_STORE_RELEASE, s.cost = 0;
    else if (pick >= 75 && pick < 97)
        s.op = RL_STORE_RENEW, s.cost = 0;
    else if (pick >= 97)
        s.op = RL_STORE_RESET, s.cost = 0;
    (void)k;
    return s;
}

// Runs steps random lease operations on two keys of policy "conc" (limit slots, the
// given lease) through the store and through algo_lease.c, 1 to 4 at each instant in
// one script call, with a token bucket CHECK beside them now and then (so the call
// takes the general form with rate items in it), comparing every answer: status,
// figures, and the leases (and slots) each call found expired.
static void run_lease_sequence(uint64_t limit, int64_t lease_us, uint64_t seed, int steps) {
    int64_t offset = 2000000, clock = h_wall_us() + offset;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_CONCURRENCY, limit, lease_us, 0);
    /* 1000 per hour: the bucket's key lives 3.6 s per unit used, on Redis's real clock,
       while the script decides on the injected one (at 1000 per second its key, written
       with its exact 1-2 ms TTL, expired between steps on a loaded machine) */
    rl_limits tb = one_rate(RL_ALGO_TOKEN_BUCKET, 1000, 3600000000LL, 1000);
    ref_leases keys[2];
    ref_key bucket = {0};
    memset(keys, 0, sizeof(keys));
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    freeReplyObject(redisCommand(c, "FLUSHALL"));
    redisFree(c);
    const char *names[2] = {"alice", "bob\xff\x00x"};
    rng_state = seed;
    int64_t prior_lead = INT64_MAX / 4; /* none yet */
    int resynced = 0;
    for (int step = 0; step < steps; step++) {
        int64_t before = h_wall_us();
        advance(&clock, offset, lease_us);
        int64_t lead = clock - before;
        outcome outs[5];
        step_op ops[4];
        uint64_t ids[4];
        size_t n = 1 + rnd(4);
        for (size_t i = 0; i < n; i++) {
            ops[i] = random_lease_op(&keys[0], limit);
            ops[i].key = (int)rnd(2);
            ids[i] = ops[i].op == RL_STORE_ACQUIRE ? fresh_id(&keys[ops[i].key])
                     : ops[i].op == RL_STORE_RESET ? 0
                                                   : some_id(&keys[ops[i].key]);
            rl_store_item it = {&l,          "conc", 4, names[ops[i].key], ops[i].key ? 6 : 5,
                                ops[i].cost, ids[i], 0};
            h_submit(store, ops[i].op, &it, 1, &outs[i]);
        }
        int with_check = rnd(4) == 0;
        rl_store_item check = h_item(&tb, "tb", "k", 1);
        if (with_check)
            h_submit(store, RL_STORE_CHECK, &check, 1, &outs[n]);
        h_wait(&h, outs, n + (size_t)with_check);
        /* as in run_sequence: a set whose last lease ends within the margin by which real
           time may have run ahead (its key's TTL is real) cannot be judged this step */
        int64_t ahead = real_ahead(clock, h_wall_us(), prior_lead);
        prior_lead = lead;
        int64_t end0 = rl_lease_expires_at(&keys[0].set), end1 = rl_lease_expires_at(&keys[1].set);
        if (step > 0 && ahead > 0 &&
            ((end0 > clock && end0 <= clock + ahead) || (end1 > clock && end1 <= clock + ahead))) {
            redisContext *rc = rlt_redis_connect(&h.redis, NULL);
            freeReplyObject(redisCommand(rc, "FLUSHALL"));
            redisFree(rc);
            for (int k = 0; k < 2; k++) {
                rl_lease_free(&keys[k].set);
                memset(&keys[k].set, 0, sizeof(keys[k].set));
            }
            ref_clear(&bucket);
            resynced++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            rl_verdict want;
            lease_counts want_counts;
            rl_status st = ref_lease(&keys[ops[i].key], &l.rates[0], ops[i].op, ids[i],
                                     (uint64_t)ops[i].cost, clock, &want, &want_counts);
            char what[200];
            snprintf(what, sizeof(what),
                     "seed %llu step %d op %zu (op %d key %d slots %lld id %llu)",
                     (unsigned long long)seed, step, i, ops[i].op, ops[i].key,
                     (long long)ops[i].cost, (unsigned long long)ids[i]);
            ck_assert_int_eq(outs[i].calls, 1);
            ck_assert_int_eq(outs[i].ans.now_us, clock);
            assert_same(&outs[i].ans, st, &want, 1, what);
            ck_assert_msg(outs[i].ans.leases_expired == want_counts.expired &&
                              outs[i].ans.slots_expired == want_counts.expired_slots &&
                              outs[i].ans.leases_ended == want_counts.ended,
                          "%s: expired %u leases of %llu slots, ended %u; want %u of %llu, %u",
                          what, outs[i].ans.leases_expired,
                          (unsigned long long)outs[i].ans.slots_expired, outs[i].ans.leases_ended,
                          want_counts.expired, (unsigned long long)want_counts.expired_slots,
                          want_counts.ended);
        }
        if (with_check) {
            rl_verdict want;
            rl_status st = ref_apply(&bucket, &tb, RL_STORE_CHECK, 1, clock, &want);
            assert_same(&outs[n].ans, st, &want, 1, "the check beside the leases");
        }
    }
    rl_lease_free(&keys[0].set);
    rl_lease_free(&keys[1].set);
    ck_assert_msg(resynced <= steps / 10, "%d of %d steps could not be judged (machine too slow)",
                  resynced, steps);
    ck_assert_int_eq(h_stat(store, "errors.reply"), 0);
    ck_assert_int_eq(h_stat(store, "errors.item"), 0);
    store->ops->free(store);
}

START_TEST(leases_match_algo_lease) {
    run_lease_sequence(5, 1000000, 41, 500);
    run_lease_sequence(1, 500000, 42, 200);
    run_lease_sequence(40, 3000000, 43, 300);
}
END_TEST

/* ---- MULTI batches against the embedded store ---- */

START_TEST(multi_matches_memory_store) {
    int64_t clock = h_wall_us() + 2000000, offset = 2000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_store *memory = rl_store_memory_new_clocked(1000, &clock);
    rl_limits a = {.rate_count = 2}, b = one_rate(RL_ALGO_GCRA, 10, 1000000, 3);
    a.rates[0] = (rl_rate){RL_ALGO_FIXED_WINDOW, 4, 1000000, 0};
    a.rates[1] = (rl_rate){RL_ALGO_SLIDING_LOG, 6, 2000000, 0};
    const char *keys[3] = {"k0", "k1", "k2"};
    rng_state = 21;
    for (int step = 0; step < 300; step++) {
        advance(&clock, offset, 1000000);
        size_t n = 1 + rnd(4);
        rl_store_item items[4];
        for (size_t i = 0; i < n; i++) {
            int policy = (int)rnd(2);
            items[i] =
                h_item(policy ? &b : &a, policy ? "b" : "a", keys[rnd(3)], 1 + (int64_t)rnd(2));
        }
        uint64_t pick = rnd(100);
        rl_store_op op = pick < 80 ? RL_STORE_CHECK : pick < 95 ? RL_STORE_PEEK : RL_STORE_RESET;
        if (op == RL_STORE_RESET)
            n = 1, items[0].cost = 0;
        outcome got, want;
        h_submit(store, op, items, n, &got);
        h_submit(memory, op, items, n, &want);
        h_wait(&h, &got, 1);
        char what[64];
        snprintf(what, sizeof(what), "step %d (op %d, %zu items)", step, op, n);
        assert_same(&got.ans, want.ans.status, want.ans.verdicts, n, what);
    }
    memory->ops->free(memory);
    store->ops->free(store);
}
END_TEST

START_TEST(multi_is_all_or_nothing) {
    rl_limits five = one_rate(RL_ALGO_SLIDING_LOG, 5, 3600000000LL, 0);
    rl_limits one = one_rate(RL_ALGO_SLIDING_LOG, 1, 3600000000LL, 0);
    rl_store *store = h_store(&h, NULL);
    rl_store_item first = h_item(&one, "one", "x", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &first, 1).status, RL_ST_ALLOWED);
    rl_store_item both[2] = {h_item(&five, "five", "x", 2), h_item(&one, "one", "x", 1)};
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, both, 2);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert(ans.verdicts[0].allowed);
    ck_assert(!ans.verdicts[1].allowed);
    rl_store_item five_x = h_item(&five, "five", "x", 1);
    ans = h_do(&h, store, RL_STORE_PEEK, &five_x, 1);
    ck_assert_int_eq(ans.verdicts[0].remaining, 4); /* nothing was consumed: 5 - the peek */
    rl_store_item pair[2] = {h_item(&five, "five", "x", 2), h_item(&five, "five", "y", 3)};
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, pair, 2).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_PEEK, &five_x, 1).verdicts[0].remaining, 2);
    store->ops->free(store);
}
END_TEST

START_TEST(reset_and_adjust) {
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 3, 3600000000LL, 0);
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = h_item(&l, "p", "k", 3);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    it.cost = 1;
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_DENIED);
    it.cost = -2;
    rl_store_answer ans = h_do(&h, store, RL_STORE_ADJUST, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 2);
    it.cost = 5; /* over the limit: ADJUST charges anyway */
    ans = h_do(&h, store, RL_STORE_ADJUST, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 0);
    it.cost = 0;
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RESET, &it, 1).status, RL_ST_OK);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    redisReply *r = redisCommand(c, "EXISTS rl:{p:k}:0");
    ck_assert_int_eq(r->integer, 0); /* RESET deletes the key */
    freeReplyObject(r);
    redisFree(c);
    it.cost = 3;
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    store->ops->free(store);
}
END_TEST

/* ---- batching ---- */

START_TEST(submits_of_one_iteration_share_a_call) {
    rl_limits l = one_rate(RL_ALGO_GCRA, 1000, 1000000, 1000);
    h.conf.batch_max = 64;
    rl_store *store = h_store(&h, NULL);
    outcome outs[200];
    char keys[200][16];
    for (int i = 0; i < 200; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i % 50);
        rl_store_item it = h_item(&l, "p", keys[i], 1);
        h_submit(store, RL_STORE_CHECK, &it, 1, &outs[i]);
    }
    h_wait(&h, outs, 200);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(outs[i].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_stat(store, "calls"), 4); /* 200 items, 64 a call */
    ck_assert_int_eq(h_stat(store, "requests"), 200);
    store->ops->free(store);
}
END_TEST

/* ---- the over-limit cache ---- */

START_TEST(cache_denies_locally_until_the_retry_time) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 2, 10000000, 0);
    rl_store_item it = h_item(&l, "p", "hot", 1);
    clock = clock - clock % 10000000 + 10000000; /* the start of a window */
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_eq(ans.flags, 0);
    ck_assert_int_eq(ans.verdicts[0].retry_after_us, 10000000);
    long long calls = h_stat(store, "calls");
    clock += 4000000;
    outcome o;
    h_submit(store, RL_STORE_CHECK, &it, 1, &o);
    ck_assert(o.sync); /* answered before submit returned: no Redis */
    ck_assert_int_eq(o.ans.status, RL_ST_DENIED);
    ck_assert_int_eq(o.ans.flags, RL_FLAG_CACHED);
    ck_assert_int_eq(o.ans.verdicts[0].retry_after_us, 6000000);
    ck_assert_int_eq(o.ans.now_us, ans.now_us + 4000000);
    ck_assert_int_eq(h_stat(store, "calls"), calls);
    ck_assert_int_eq(h_stat(store, "cache.hits"), 1);
    rl_store_item two = it; /* a larger cost is denied too; a smaller one asks Redis */
    two.cost = 2;
    h_submit(store, RL_STORE_CHECK, &two, 1, &o);
    ck_assert(o.sync);
    ans = h_do(&h, store, RL_STORE_PEEK, &it, 1); /* PEEK asks Redis */
    ck_assert_int_eq(ans.flags, 0);
    ck_assert_int_eq(h_stat(store, "calls"), calls + 1);
    clock += 6000000; /* the retry time: Redis again, and allowed */
    ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    store->ops->free(store);
}
END_TEST

START_TEST(reset_and_adjust_drop_the_cached_denial) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 1, 60000000, 0);
    rl_store_item it = h_item(&l, "p", "k", 1), zero = h_item(&l, "p", "k", 0);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_DENIED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).flags, RL_FLAG_CACHED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RESET, &zero, 1).status, RL_ST_OK);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).flags, 0);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).flags, RL_FLAG_CACHED);
    rl_store_item back = h_item(&l, "p", "k", -1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_ADJUST, &back, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    /* a reset submitted while a denial is in flight: the denial is not cached */
    outcome denied, reset;
    h_submit(store, RL_STORE_CHECK, &it, 1, &denied);
    h_submit(store, RL_STORE_RESET, &zero, 1, &reset);
    h_wait(&h, &denied, 1);
    h_wait(&h, &reset, 1);
    ck_assert_int_eq(denied.ans.status, RL_ST_DENIED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_stat(store, "cache.stale"), 1);
    store->ops->free(store);
}
END_TEST

/* ---- keys ---- */

START_TEST(keys_carry_a_hash_tag_and_a_ttl) {
    rl_limits l = {.rate_count = 2};
    l.rates[0] = (rl_rate){RL_ALGO_FIXED_WINDOW, 10, 2000000, 0};
    l.rates[1] = (rl_rate){RL_ALGO_SLIDING_LOG, 10, 3000000, 0};
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = {&l, "a:b{", 4, "k\0}", 3, 1, 0, 0}; /* separators in the names */
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    const char name0[] = "rl:{a%3Ab%7B:k\0}}:0", name1[] = "rl:{a%3Ab%7B:k\0}}:1";
    /* A TTL ends at an absolute millisecond, rounded up from the script's microsecond
       TIME: PTTL, counted from Redis's current millisecond, may read 1 ms more. */
    redisReply *r = redisCommand(c, "PTTL %b", name0, sizeof(name0) - 1);
    ck_assert_msg(r->integer > 0 && r->integer <= 2001, "fixed window ttl %lld", r->integer);
    freeReplyObject(r);
    r = redisCommand(c, "PTTL %b", name1, sizeof(name1) - 1);
    ck_assert_msg(r->integer > 2900 && r->integer <= 3001, "log ttl %lld", r->integer);
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

// The shift of a key's 5 s expiry grid, as the script computes it: from the four bytes
// before "}:<rate>", so that keys written together do not expire together.
static int64_t grid_phase(const char *key) {
    const unsigned char *b = (const unsigned char *)key + strlen(key) - 7;
    return ((((int64_t)b[0] * 31 + b[1]) * 31 + b[2]) * 31 + b[3]) * 3090169 % 5000000;
}

// A single bucket CHECK (the script's fast path) writes "<tat>. " with a TTL to the end
// of tat's cell of its key's 5 s grid, and a later batch of the same call on that key
// sees what it consumed.
START_TEST(bucket_key_holds_its_tat_and_ttl) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 10, 1000000, 10); /* T = 100 ms */
    rl_store_item it = h_item(&l, "p", "k", 1);
    outcome outs[3];
    h_submit(store, RL_STORE_CHECK, &it, 1, &outs[0]);
    h_submit(store, RL_STORE_CHECK, &it, 1, &outs[1]);
    it.cost = 9; /* one too many after the first two */
    h_submit(store, RL_STORE_CHECK, &it, 1, &outs[2]);
    h_wait(&h, outs, 3);
    ck_assert_int_eq(outs[0].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(outs[1].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(outs[1].ans.verdicts[0].remaining, 8);
    ck_assert_int_eq(outs[2].ans.status, RL_ST_DENIED);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    redisReply *r = redisCommand(c, "GET rl:{p:k}:0");
    char want[32];
    snprintf(want, sizeof(want), "%lld. ", (long long)(clock + 200000)); /* "<tat>. ": the script */
    ck_assert_str_eq(r->str, want);
    freeReplyObject(r);
    /* the TTL reaches the end of tat's cell of the key's grid */
    int64_t tat = clock + 200000, ph = grid_phase("rl:{p:k}:0");
    int64_t grid_end = tat - (tat + ph) % 5000000 + 5000000;
    ck_assert_int_ne(ph, 0);
    r = redisCommand(c, "PTTL rl:{p:k}:0");
    long long want_ms = (long long)((grid_end - clock + 999) / 1000);
    ck_assert_msg(r->integer >= want_ms - 50 && r->integer <= want_ms, "bucket ttl %lld, want %lld",
                  r->integer, want_ms);
    freeReplyObject(r);
    /* another key written at the same instant expires at its own grid's point */
    rl_store_item other = h_item(&l, "p", "j", 1);
    h_submit(store, RL_STORE_CHECK, &other, 1, &outs[0]);
    h_wait(&h, outs, 1);
    int64_t other_end =
        clock + 100000 - (clock + 100000 + grid_phase("rl:{p:j}:0")) % 5000000 + 5000000;
    long long other_ms = (long long)((other_end - clock + 999) / 1000);
    r = redisCommand(c, "PTTL rl:{p:j}:0");
    ck_assert_msg(r->integer >= other_ms - 50 && r->integer <= other_ms,
                  "other ttl %lld, want %lld", r->integer, other_ms);
    ck_assert_msg(llabs(other_ms - want_ms) > 100, "both keys expire together (%lld ms)", want_ms);
    freeReplyObject(r);
    /* a value marked "<tat>." (rlimitd before the shifted grid) has a TTL on another grid:
       it is not kept, even though it ends before the new tat */
    freeReplyObject(redisCommand(c, "SET rl:{p:o}:0 %lld. PX 50", (long long)(clock + 300000)));
    rl_store_item old = h_item(&l, "p", "o", 1);
    h_submit(store, RL_STORE_CHECK, &old, 1, &outs[0]);
    h_wait(&h, outs, 1);
    ck_assert_int_eq(outs[0].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(outs[0].ans.verdicts[0].remaining, 6); /* tat 3 T ahead, +1: 4 of 10 used */
    int64_t old_tat = clock + 400000;
    int64_t old_end = old_tat - (old_tat + grid_phase("rl:{p:o}:0")) % 5000000 + 5000000;
    long long old_ms = (long long)((old_end - clock + 999) / 1000);
    r = redisCommand(c, "PTTL rl:{p:o}:0");
    ck_assert_msg(r->integer >= old_ms - 50 && r->integer <= old_ms,
                  "old-format key ttl %lld, want %lld", r->integer, old_ms);
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

START_TEST(a_key_too_long_is_refused) {
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 10, 1000000, 0);
    rl_store *store = h_store(&h, NULL);
    static char big[5000];
    memset(big, 'x', sizeof(big));
    rl_store_item it = {&l, "p", 1, big, sizeof(big), 1, 0, 0};
    outcome o;
    h_submit(store, RL_STORE_CHECK, &it, 1, &o);
    ck_assert(o.sync);
    ck_assert_int_eq(o.ans.status, RL_ST_KEY_TOO_LONG);
    ck_assert_ptr_nonnull(o.ans.errstr);
    ck_assert_int_eq(h_stat(store, "errors.key_too_long"), 1);
    it.key_len = 4000; /* fits */
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    store->ops->free(store);
}
END_TEST

// Script calls bigger than the socket takes while Redis is busy (2 KB keys, 600 items:
// ~1.2 MB): their writes come short, the rest goes out once Redis reads again, and
// every item is decided by Redis exactly once.
START_TEST(calls_larger_than_the_socket_buffer) {
    enum { ITEMS = 600, KEY_LEN = 2000 };
    h.conf.command_timeout_ms = 5000;
    h.conf.host = NULL; /* a Unix socket: its send buffer (~200 KB) bounds what is in flight */
    h.conf.unix_path = h.redis.sock;
    /* 10 per hour: a key charged once lives 6 minutes, so DBSIZE below counts every key
       (with 10 per second they expired after ~100 ms, during the sleep on a slow run) */
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 10, 3600000000LL, 10);
    rl_store *store = h_store(&h, NULL);
    ck_assert_int_eq(
        h_do(&h, store, RL_STORE_CHECK, &(rl_store_item){&l, "p", 1, "warm", 4, 1, 0, 0}, 1).status,
        RL_ST_ALLOWED);
    static char keys[ITEMS][KEY_LEN];
    static rl_store_item items[ITEMS];
    static outcome outs[ITEMS];
    for (int i = 0; i < ITEMS; i++) {
        memset(keys[i], 'k', KEY_LEN);
        snprintf(keys[i], 16, "%05d", i);
        keys[i][5] = 'k';
        items[i] = (rl_store_item){&l, "p", 1, keys[i], KEY_LEN, 1, 0, 0};
    }
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    int done = 0;
    ck_assert_int_eq(redisAppendCommand(c, "DEBUG SLEEP 0.3"), REDIS_OK);
    while (!done)
        ck_assert_int_eq(redisBufferWrite(c, &done), REDIS_OK);
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL); /* Redis is asleep now */
    for (int i = 0; i < ITEMS; i++)
        h_submit(store, RL_STORE_CHECK, &items[i], 1, &outs[i]);
    h_wait(&h, outs, ITEMS);
    for (int i = 0; i < ITEMS; i++) {
        ck_assert_int_eq(outs[i].calls, 1);
        ck_assert_int_eq(outs[i].ans.status, RL_ST_ALLOWED);
        ck_assert_int_eq(outs[i].ans.verdicts[0].remaining, 9);
    }
    redisReply *r = NULL;
    ck_assert_int_eq(redisGetReply(c, (void **)&r), REDIS_OK); /* the DEBUG SLEEP's OK */
    freeReplyObject(r);
    r = redisCommand(c, "DBSIZE");
    ck_assert_int_eq(r->integer, ITEMS + 1);
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

// A lease set in Redis: rl:{<policy>:<key>}:0, a sorted set of "<id>:<slots>" scored by
// expiry on the store's clock, with the TTL of the last lease; a lease counts up to
// (not at) its expiry; RESET ends every lease; a key holding a string counts as empty.
static long long redis_int(redisContext *c, const char *fmt, const char *key) {
    redisReply *r = redisCommand(c, fmt, key);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

// Asserts that the lease set key holds one member, member, and returns its score.
static long long only_lease(redisContext *c, const char *key, const char *member) {
    redisReply *r = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, member);
    long long score = strtoll(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    return score;
}

// ACQUIREs x and y in one script call (two ACQUIREs: the lease fast path's probe finds
// their sets absent), both allowed.
static void acquire_together(rl_store *store, const rl_store_item *x, const rl_store_item *y) {
    outcome o[2];
    h_submit(store, RL_STORE_ACQUIRE, x, 1, &o[0]);
    h_submit(store, RL_STORE_ACQUIRE, y, 1, &o[1]);
    h_wait(&h, o, 2);
    ck_assert_int_eq(o[0].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(o[1].ans.status, RL_ST_ALLOWED);
}

START_TEST(lease_sets_in_redis) {
    int64_t t0 = h_wall_us() + 2000000, clock = t0;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_CONCURRENCY, 3, 1000000, 0);
    rl_store_item a = h_item(&l, "up", "k", 2);
    a.lease = 18446744073709551557ULL; /* past 2^53: kept exactly */
    ck_assert_int_eq(h_do(&h, store, RL_STORE_ACQUIRE, &a, 1).status, RL_ST_ALLOWED);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    ck_assert_int_eq(only_lease(c, "rl:{up:k}:0", "18446744073709551557:2"), t0 + 1000000);
    redisReply *r = redisCommand(c, "PTTL rl:{up:k}:0");
    ck_assert_msg(r->integer > 900 && r->integer <= 1000, "lease set ttl %lld", r->integer);
    freeReplyObject(r);
    clock = t0 + 999999; /* held one microsecond before its expiry */
    rl_store_item b = h_item(&l, "up", "k", 2);
    b.lease = 7;
    rl_store_answer ans = h_do(&h, store, RL_STORE_ACQUIRE, &b, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_eq(ans.verdicts[0].retry_after_us, 1);
    ck_assert_uint_eq(ans.leases_expired, 0);
    clock = t0 + 1000000; /* at its expiry: gone, counted once */
    ans = h_do(&h, store, RL_STORE_ACQUIRE, &b, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.leases_expired, 1);
    ck_assert_uint_eq(ans.slots_expired, 2);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &a, 1).status, RL_ST_LEASE_UNKNOWN);
    ans = h_do(&h, store, RL_STORE_RESET, &b, 1);
    ck_assert_int_eq(ans.status, RL_ST_OK);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 3);
    ck_assert_uint_eq(ans.leases_ended, 1); /* b's, still held */
    ck_assert_int_eq(ans.verdicts[0].reset_after_us, 0);
    r = redisCommand(c, "EXISTS rl:{up:k}:0");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RENEW, &b, 1).status, RL_ST_LEASE_UNKNOWN);
    freeReplyObject(redisCommand(c, "SET rl:{up:s}:0 junk"));
    rl_store_item s = h_item(&l, "up", "s", 3);
    s.lease = 9;
    ans = h_do(&h, store, RL_STORE_ACQUIRE, &s, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 0);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &s, 1).status, RL_ST_ALLOWED);
    r = redisCommand(c, "EXISTS rl:{up:s}:0"); /* the last lease released: no key */
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

// The RELEASE hint: a lease this store acquired on an absent set (two ACQUIREs of one
// call take that path) is released with ZPOPMIN first; a set that holds another lease by
// then gets it back as it was (member, score, a TTL reaching its end) and the RELEASE is
// decided as usual; a hinted lease that expired is not released; a hint is used once.
START_TEST(hinted_releases_leave_other_leases_as_they_were) {
    int64_t t0 = h_wall_us() + 2000000, clock = t0;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_CONCURRENCY, 5, 1000000, 0);
    rl_store_item a = h_item(&l, "up", "k", 1), x = h_item(&l, "up", "j", 1);
    a.lease = 101;
    x.lease = 102;
    acquire_together(store, &a, &x);
    clock = t0 + 100000;
    rl_store_item b = h_item(&l, "up", "k", 2); /* a second holder on a's set */
    b.lease = 103;
    rl_store_answer ans = h_do(&h, store, RL_STORE_ACQUIRE, &b, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 2);
    clock = t0 + 200000;
    ans = h_do(&h, store, RL_STORE_RELEASE, &a, 1); /* hinted; the set holds b too */
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 3);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    ck_assert_int_eq(only_lease(c, "rl:{up:k}:0", "103:2"), t0 + 1100000);
    /* the pop emptied the set: put back with an ACQUIRE's TTL, a lease (1 s) from now,
       later than b's end (0.9 s from now) */
    long long ttl = redis_int(c, "PTTL %s", "rl:{up:k}:0");
    ck_assert_msg(ttl > 900 && ttl <= 1001, "set ttl %lld", ttl);
    ans = h_do(&h, store, RL_STORE_RELEASE, &x, 1); /* hinted, alone: the set goes */
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 5);
    ck_assert_int_eq(ans.verdicts[0].reset_after_us, 0);
    ck_assert_int_eq(redis_int(c, "EXISTS %s", "rl:{up:j}:0"), 0);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &a, 1).status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &b, 1).status, RL_ST_ALLOWED);
    /* a hinted lease that expired: not released, counted as expired, its set gone */
    rl_store_item y = h_item(&l, "up", "m", 1), z = h_item(&l, "up", "n", 1);
    y.lease = 104;
    z.lease = 105;
    acquire_together(store, &y, &z);
    clock += 1000000;
    ans = h_do(&h, store, RL_STORE_RELEASE, &y, 1);
    ck_assert_int_eq(ans.status, RL_ST_LEASE_UNKNOWN);
    ck_assert_uint_eq(ans.leases_expired, 1);
    ck_assert_uint_eq(ans.slots_expired, 1);
    ck_assert_int_eq(redis_int(c, "EXISTS %s", "rl:{up:m}:0"), 0);
    store->ops->free(store);
    /* on Redis's clock (absolute TTLs): the put-back set keeps b, its TTL past b's end */
    store = h_store(&h, NULL);
    a.key = "rk", x.key = "rj", b.key = "rk";
    a.key_len = x.key_len = b.key_len = 2;
    a.lease = 201, x.lease = 202, b.lease = 203;
    acquire_together(store, &a, &x);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_ACQUIRE, &b, 1).status, RL_ST_ALLOWED);
    ans = h_do(&h, store, RL_STORE_RELEASE, &a, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 3);
    long long b_end = only_lease(c, "rl:{up:rk}:0", "203:2");
    long long at_ms = redis_int(c, "PEXPIRETIME %s", "rl:{up:rk}:0");
    ck_assert_msg(at_ms * 1000 >= b_end, "set expires at %lld ms, b at %lld us", at_ms, b_end);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &b, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_RELEASE, &x, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(
        redis_int(c, "EXISTS %s", "rl:{up:rk}:0") + redis_int(c, "EXISTS %s", "rl:{up:rj}:0"), 0);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

START_TEST(foreign_values_count_as_empty) {
    rl_limits cell = one_rate(RL_ALGO_GCRA, 10, 1000000, 2);
    rl_limits log = one_rate(RL_ALGO_SLIDING_LOG, 2, 1000000, 0);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    freeReplyObject(redisCommand(c, "SET rl:{p:garbage}:0 nonsense"));
    freeReplyObject(redisCommand(c, "ZADD rl:{p:zset}:0 1 a"));
    freeReplyObject(redisCommand(c, "SET rl:{q:string}:0 x"));
    freeReplyObject(redisCommand(c, "ZADD rl:{q:bad}:0 1 notanentry"));
    rl_store *store = h_store(&h, NULL);
    const char *cells[2] = {"garbage", "zset"}, *logs[2] = {"string", "bad"};
    for (int i = 0; i < 2; i++) {
        rl_store_item a = h_item(&cell, "p", cells[i], 2), b = h_item(&log, "q", logs[i], 2);
        rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &a, 1);
        ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
        ck_assert_int_eq(ans.verdicts[0].remaining, 0);
        ans = h_do(&h, store, RL_STORE_CHECK, &b, 1);
        ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
        ck_assert_int_eq(ans.verdicts[0].remaining, 0);
        ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &b, 1).status, RL_ST_DENIED);
    }
    redisFree(c);
    store->ops->free(store);
}
END_TEST

/* A log of 9000 entries given back at once: more members than one Lua unpack takes. */
START_TEST(big_logs_are_written_in_chunks) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    /* the first call reads the whole 9,000-entry set once (it has no companion yet):
       ~30 ms quiet, more than the harness's 500 ms on a loaded machine under ASan */
    h.conf.command_timeout_ms = 5000;
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 20000, 3600000000LL, 0);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    for (int64_t i = 0; i < 9000; i++) {
        int64_t at = clock - 9000 + i;
        freeReplyObject(
            redisCommand(c, "ZADD rl:{p:big}:0 %lld %lld:1", (long long)at, (long long)at));
    }
    /* made after the 9,000 ZADDs: the store's connections are set up by its event loop,
       which these blocking calls would stall past its connect timeout on a slow run
       ("redis is down") */
    rl_store *store = h_store(&h, &opt);
    rl_store_item it = h_item(&l, "p", "big", 1);
    rl_store_answer ans = h_do(&h, store, RL_STORE_PEEK, &it, 1);
    ck_assert_msg(ans.status == RL_ST_ALLOWED, "status %d: %s", ans.status,
                  ans.errstr ? ans.errstr : "");
    ck_assert_uint_eq(ans.verdicts[0].remaining, 20000 - 9000 - 1);
    it.cost = -9500;
    ans = h_do(&h, store, RL_STORE_ADJUST, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(ans.verdicts[0].remaining, 20000);
    redisReply *r = redisCommand(c, "EXISTS rl:{p:big}:0");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

START_TEST(forget_ns_deletes_the_policys_keys) {
    /* a sliding log: its TTL runs from now, not to the end of an aligned window (a
       fixed window's keys made just before a minute boundary expire within the test) */
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 10, 60000000, 0);
    rl_store *store = h_store(&h, NULL);
    char key[16];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        rl_store_item a = h_item(&l, "gone*", key, 1), b = h_item(&l, "kept", key, 1);
        h_do(&h, store, RL_STORE_CHECK, &a, 1);
        if (i < 3)
            h_do(&h, store, RL_STORE_CHECK, &b, 1);
    }
    store->ops->forget_ns(store, "gone*", 5);
    h_run_for(&h, 300);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    redisReply *r = redisCommand(c, "DBSIZE");
    ck_assert_int_eq(r->integer, 6); /* the 3 logs of "kept", each with its companion */
    freeReplyObject(r);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

START_TEST(unix_socket_and_stats) {
    h.conf.host = NULL;
    h.conf.unix_path = h.redis.sock;
    rl_store *store = h_store(&h, NULL);
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 10, 1000000, 10);
    rl_store_item it = h_item(&l, "p", "u", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    json_t *stats = h_stats(store);
    ck_assert_str_eq(json_string_value(json_object_get(stats, "state")), "up");
    ck_assert_str_eq(json_string_value(json_object_get(stats, "type")), "redis");
    ck_assert(json_integer_value(json_object_get(json_object_get(stats, "latency_us"), "p99")) > 0);
    json_decref(stats);
    store->ops->free(store);
}
END_TEST

/* ---- abuse: charges, log sizes, logs of older versions ---- */

// Issue 11: 100,000 ADJUST +1 on a login key (5 per 15 min) made its sorted set 10,000
// members and every call on it 9-11 ms of Redis time. Now the set holds at most limit
// entries and the usage stays at 2 x limit.
START_TEST(a_login_log_stays_within_its_limit) {
    enum { ADJUSTS = 100000, WAVE = 2000 };
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 5, 900000000LL, 0);
    h.conf.command_timeout_ms = 5000;
    rl_store_redis_options opt = {.no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_store_item it = h_item(&l, "login", "victim", 1);
    static outcome outs[WAVE];
    int capped = 0;
    for (int done = 0; done < ADJUSTS; done += WAVE) {
        for (int i = 0; i < WAVE; i++)
            h_submit(store, RL_STORE_ADJUST, &it, 1, &outs[i]);
        h_wait(&h, outs, WAVE);
        for (int i = 0; i < WAVE; i++) {
            ck_assert(outs[i].ans.status == RL_ST_ALLOWED || outs[i].ans.status == RL_ST_DENIED);
            capped += (outs[i].ans.flags & RL_FLAG_CAPPED) != 0;
        }
    }
    ck_assert_int_ge(capped, ADJUSTS - 10); /* all but the first 10 units were held back */
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    ck_assert_int_le(redis_int(c, "ZCARD %s", "rl:{login:victim}:0"), 5);
    /* (+1: the TTL's end rounded up to Redis's millisecond, see keys_carry_...) */
    ck_assert_int_le(redis_int(c, "PTTL %s", "rl:{login:victim}:0"), 900001);
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 0);
    it.cost = -5; /* a refund of 5 leaves the 5 units over the limit */
    ck_assert_int_eq(h_do(&h, store, RL_STORE_ADJUST, &it, 1).status, RL_ST_DENIED);
    it.cost = -100; /* never below empty */
    ans = h_do(&h, store, RL_STORE_ADJUST, &it, 1);
    ck_assert_int_eq(ans.verdicts[0].remaining, 5);
    ck_assert_int_eq(redis_int(c, "EXISTS %s", "rl:{login:victim}:0"), 0);
    ck_assert_int_eq(redis_int(c, "EXISTS %s", "rl:{login:victim}:0#"), 0);
    ck_assert_int_eq(h_stat(store, "errors.item"), 0);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

// ADJUST +capacity repeated: the usage stops at 2 x capacity (CAPPED from the third
// on), reset_after and the key's TTL stay within 2 windows, for every algorithm.
START_TEST(charges_are_capped_at_two_windows) {
    const rl_algorithm algos[5] = {RL_ALGO_TOKEN_BUCKET, RL_ALGO_GCRA, RL_ALGO_FIXED_WINDOW,
                                   RL_ALGO_SLIDING_COUNTER, RL_ALGO_SLIDING_LOG};
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    for (int a = 0; a < 5; a++) {
        rl_limits l = one_rate(algos[a], 5, 60000000, 5);
        int64_t window = rl_rate_window_us(&l.rates[0]);
        char ns[8], key[32];
        snprintf(ns, sizeof(ns), "a%d", a);
        rl_store_item it = h_item(&l, ns, "k", 5);
        for (int i = 0; i < 6; i++) {
            rl_store_answer ans = h_do(&h, store, RL_STORE_ADJUST, &it, 1);
            ck_assert_int_eq(ans.status, RL_ST_DENIED);
            ck_assert_msg(((ans.flags & RL_FLAG_CAPPED) != 0) == (i >= 2),
                          "algorithm %d adjust %d: flags %d", a, i, ans.flags);
            ck_assert_int_le(ans.verdicts[0].reset_after_us, 2 * window);
        }
        snprintf(key, sizeof(key), "rl:{%s:k}:0", ns);
        long long ttl = redis_int(c, "PTTL %s", key);
        ck_assert_msg(ttl > 0 && ttl <= 2 * window / 1000, "algorithm %d ttl %lld", a, ttl);
        it.cost = 1; /* a CHECK is denied until the usage is back within the limit */
        ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_DENIED);
    }
    /* a bucket pushed 40 years ahead by an older rlimitd counts as 2 windows ahead */
    rl_limits b = one_rate(RL_ALGO_TOKEN_BUCKET, 5, 60000000, 5);
    freeReplyObject(
        redisCommand(c, "SET rl:{old:k}:0 %lld", (long long)(clock + 1262304000000000LL)));
    rl_store_item old = h_item(&b, "old", "k", 1);
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &old, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_le(ans.verdicts[0].reset_after_us, 2 * rl_rate_window_us(&b.rates[0]));
    ck_assert_int_le(ans.verdicts[0].retry_after_us, 2 * rl_rate_window_us(&b.rates[0]));
    redisFree(c);
    store->ops->free(store);
}
END_TEST

// A sorted set written by an rlimitd before the companion (no companion, more entries
// than limit), or changed by one after (the companion is stale), is counted whole: the
// new code never admits more than the set holds.
START_TEST(logs_of_an_older_rlimitd_are_counted_whole) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits l = one_rate(RL_ALGO_SLIDING_LOG, 50, 3600000000LL, 0);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    for (int64_t i = 0; i < 200; i++) { /* 200 units, 1 per ms, ending 200 ms ago */
        long long at = (long long)(clock - 400000 + i * 1000);
        freeReplyObject(redisCommand(c, "ZADD rl:{p:old}:0 %lld %lld:1", at, at));
    }
    rl_store_item it = h_item(&l, "p", "old", 1);
    rl_store_answer ans = h_do(&h, store, RL_STORE_PEEK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 0);
    /* all 200 units count until 151 have left: the 151 oldest merged into one at the
       instant of the newest of them, so the wait is until that instant leaves the hour */
    ck_assert_int_eq(ans.verdicts[0].retry_after_us, 3600000000LL - 400000 + 150 * 1000);
    ck_assert_int_eq(redis_int(c, "ZCARD %s", "rl:{p:old}:0"), 50);
    /* an older rlimitd appends after the companion was written: still counted */
    it.cost = -200;
    ck_assert_int_eq(h_do(&h, store, RL_STORE_ADJUST, &it, 1).verdicts[0].remaining, 50);
    it.cost = 49;
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    clock += 1000;
    freeReplyObject(
        redisCommand(c, "ZADD rl:{p:old}:0 %lld %lld:1", (long long)clock, (long long)clock));
    it.cost = 1;
    ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_DENIED); /* 49 + the old rlimitd's 1 = 50 */
    redisFree(c);
    store->ops->free(store);
}
END_TEST

static Suite *store_suite(void) {
    Suite *s = suite_create("redis_store");
    TCase *decide = tcase_create("decisions");
    tcase_add_checked_fixture(decide, setup, teardown);
    tcase_set_timeout(decide, 60);
    tcase_add_test(decide, fixed_window_matches_algo);
    tcase_add_test(decide, sliding_log_matches_algo);
    tcase_add_test(decide, sliding_counter_matches_algo);
    tcase_add_test(decide, token_bucket_matches_algo);
    tcase_add_test(decide, gcra_matches_algo);
    tcase_add_test(decide, several_rates_match_algo);
    tcase_add_test(decide, large_figures_match_algo);
    tcase_add_test(decide, multi_matches_memory_store);
    tcase_add_test(decide, multi_is_all_or_nothing);
    tcase_add_test(decide, reset_and_adjust);
    tcase_add_test(decide, capped_charges_match_algo);
    tcase_add_test(decide, a_login_log_stays_within_its_limit);
    tcase_add_test(decide, charges_are_capped_at_two_windows);
    tcase_add_test(decide, logs_of_an_older_rlimitd_are_counted_whole);
    tcase_add_test(decide, leases_match_algo_lease);
    suite_add_tcase(s, decide);
    TCase *store = tcase_create("store");
    tcase_add_checked_fixture(store, setup, teardown);
    tcase_set_timeout(store, 30);
    tcase_add_test(store, submits_of_one_iteration_share_a_call);
    tcase_add_test(store, cache_denies_locally_until_the_retry_time);
    tcase_add_test(store, reset_and_adjust_drop_the_cached_denial);
    tcase_add_test(store, keys_carry_a_hash_tag_and_a_ttl);
    tcase_add_test(store, bucket_key_holds_its_tat_and_ttl);
    tcase_add_test(store, a_key_too_long_is_refused);
    tcase_add_test(store, calls_larger_than_the_socket_buffer);
    tcase_add_test(store, foreign_values_count_as_empty);
    tcase_add_test(store, lease_sets_in_redis);
    tcase_add_test(store, hinted_releases_leave_other_leases_as_they_were);
    tcase_add_test(store, big_logs_are_written_in_chunks);
    tcase_add_test(store, forget_ns_deletes_the_policys_keys);
    tcase_add_test(store, unix_socket_and_stats);
    suite_add_tcase(s, store);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
