/*
 * test_store_memory.c: the embedded store, driven through its rl_store_ops with a
 * clock the test controls.
 *
 * The store must give exactly the verdicts algo.c gives for the same history: a
 * reference model applies the algorithms directly (deciding every rate, consuming all
 * only if all allow) and every answer of the store is compared with it, field by
 * field, over long randomized runs of CHECK, PEEK, ADJUST, RESET and MULTI batches,
 * with time jumping past expiry now and then. The rest checks what the store adds:
 * batches are all-or-nothing (also with the same key twice), expired keys are
 * evicted, max_keys holds, allocation failure answers INTERNAL and consumes nothing.
 */
#include "alloc.h"
#include "store_memory.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000LL               /* microseconds in a millisecond */
#define SEC 1000000LL           /* microseconds in a second */
#define DAY (86400LL * SEC)     /* microseconds in a day */
#define T0 (1700000000LL * SEC) /* an epoch instant aligned to the second */

/* Like ck_assert_msg, for hot loops (Check's macros are slow even when they hold). */
#define require(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static int64_t now_us; /* the store's clock */

/* ---- helpers ---- */

static rl_rate rate(rl_algorithm algorithm, uint64_t limit, int64_t period_us, uint64_t burst) {
    return (rl_rate){
        .algorithm = algorithm, .limit = limit, .period_us = period_us, .burst = burst};
}

static rl_limits one_rate(rl_algorithm algorithm, uint64_t limit, int64_t period_us,
                          uint64_t burst) {
    rl_limits l = {.rate_count = 1};
    l.rates[0] = rate(algorithm, limit, period_us, burst);
    return l;
}

static rl_limits two_rates(rl_rate a, rl_rate b) {
    rl_limits l = {.rate_count = 2};
    l.rates[0] = a;
    l.rates[1] = b;
    return l;
}

static rl_store_item item(const rl_limits *limits, const char *ns, const char *key, int64_t cost) {
    return (rl_store_item){limits, ns, strlen(ns), key, strlen(key), cost, 0, 0};
}

typedef struct answer_box {
    int calls;           /* done() calls */
    rl_store_answer ans; /* the last answer */
} answer_box;

static void on_done(void *arg, const rl_store_answer *ans) {
    answer_box *box = arg;
    box->calls++;
    box->ans = *ans;
}

/* Submits a batch and returns its answer; done must be called once, before submit returns. */
static rl_store_answer submit(rl_store *store, rl_store_op op, const rl_store_item *items,
                              size_t n) {
    answer_box box = {0};
    require(store->ops->submit(store, op, items, n, on_done, &box) == RL_OK, "submit refused");
    require(box.calls == 1, "done called %d times", box.calls);
    require(box.ans.count == n, "answer for %zu items of %zu", box.ans.count, n);
    require(box.ans.now_us == now_us, "the answer's clock is not the store's");
    return box.ans;
}

static rl_store_answer one(rl_store *store, rl_store_op op, const rl_limits *limits, const char *ns,
                           const char *key, int64_t cost) {
    rl_store_item it = item(limits, ns, key, cost);
    return submit(store, op, &it, 1);
}

static rl_verdict check(rl_store *store, const rl_limits *limits, const char *key, int64_t cost) {
    rl_store_answer a = one(store, RL_STORE_CHECK, limits, "ns", key, cost);
    require(a.status == RL_ST_ALLOWED || a.status == RL_ST_DENIED, "status %d", a.status);
    require((a.status == RL_ST_ALLOWED) == a.verdicts[0].allowed, "status and verdict disagree");
    return a.verdicts[0];
}

static rl_verdict peek(rl_store *store, const rl_limits *limits, const char *key, int64_t cost) {
    rl_store_answer a = one(store, RL_STORE_PEEK, limits, "ns", key, cost);
    require(a.status == RL_ST_ALLOWED || a.status == RL_ST_DENIED, "status %d", a.status);
    return a.verdicts[0];
}

static rl_store *new_store(uint64_t max_keys) {
    rl_store *s = rl_store_memory_new_clocked(max_keys, &now_us);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->ops->name, "memory");
    return s;
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n ? rng_state % n : 0;
}

/* ---- the reference: algo.c applied directly ---- */

typedef struct model {
    rl_cell cells[RL_MAX_RATES]; /* cell state per rate */
    rl_log logs[RL_MAX_RATES];   /* log state per rate */
} model;

static int is_log(const rl_limits *l, size_t r) {
    return l->rates[r].algorithm == RL_ALGO_SLIDING_LOG;
}

static void model_clear(model *m) {
    for (size_t r = 0; r < RL_MAX_RATES; r++)
        rl_log_free(&m->logs[r]);
    memset(m, 0, sizeof(*m));
}

/* Decides cost on every rate; next receives the cells after consuming. */
static bool model_decide(const rl_limits *l, model *m, uint64_t cost, rl_cell *next,
                         rl_verdict *out) {
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < l->rate_count; r++) {
        rl_verdict v;
        if (is_log(l, r))
            rl_log_decide(&l->rates[r], &m->logs[r], now_us, cost, &v);
        else
            rl_cell_decide(&l->rates[r], &m->cells[r], now_us, cost, &next[r], &v);
        rl_verdict_merge(out, &v);
    }
    return out->allowed;
}

static void model_commit(const rl_limits *l, model *m, uint64_t cost, const rl_cell *next) {
    for (size_t r = 0; r < l->rate_count; r++) {
        if (is_log(l, r)) {
            require(rl_log_reserve(&l->rates[r], &m->logs[r]) == 0, "model out of memory");
            rl_log_commit(&l->rates[r], &m->logs[r], now_us, cost);
        } else {
            m->cells[r] = next[r];
        }
    }
}

static void model_adjust(const rl_limits *l, model *m, int64_t delta, rl_verdict *out) {
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < l->rate_count; r++) {
        rl_verdict v;
        if (is_log(l, r)) {
            if (delta > 0)
                require(rl_log_reserve(&l->rates[r], &m->logs[r]) == 0, "model out of memory");
            rl_log_adjust(&l->rates[r], &m->logs[r], now_us, delta, &v);
        } else {
            rl_cell next;
            rl_cell_adjust(&l->rates[r], &m->cells[r], now_us, delta, &next, &v);
            m->cells[r] = next;
        }
        rl_verdict_merge(out, &v);
    }
}

static void same_verdict(const rl_verdict *got, const rl_verdict *want, const char *what,
                         long step) {
    require(got->allowed == want->allowed && got->limit == want->limit &&
                got->remaining == want->remaining && got->reset_after_us == want->reset_after_us &&
                got->retry_after_us == want->retry_after_us && got->window_us == want->window_us,
            "%s at step %ld (t=+%lld us): store {%d limit %llu remaining %llu reset %lld retry "
            "%lld window %lld}, algo.c {%d limit %llu remaining %llu reset %lld retry %lld "
            "window %lld}",
            what, step, (long long)(now_us - T0), got->allowed, (unsigned long long)got->limit,
            (unsigned long long)got->remaining, (long long)got->reset_after_us,
            (long long)got->retry_after_us, (long long)got->window_us, want->allowed,
            (unsigned long long)want->limit, (unsigned long long)want->remaining,
            (long long)want->reset_after_us, (long long)want->retry_after_us,
            (long long)want->window_us);
}

static uint64_t capacity(const rl_limits *l) {
    uint64_t cap = UINT64_MAX;
    for (size_t r = 0; r < l->rate_count; r++)
        if (rl_rate_capacity(&l->rates[r]) < cap)
            cap = rl_rate_capacity(&l->rates[r]);
    return cap;
}

static int64_t longest_period(const rl_limits *l) {
    int64_t p = 0;
    for (size_t r = 0; r < l->rate_count; r++)
        if (rl_rate_window_us(&l->rates[r]) > p)
            p = rl_rate_window_us(&l->rates[r]);
    return p;
}

#define KEYS 5

/* A batch of distinct keys: decided on the model one by one, consumed only if all allow. */
static void random_batch(rl_store *store, const rl_limits *l, model *models, const char **keys,
                         long step) {
    size_t n = 2 + rnd(KEYS - 1), first = rnd(KEYS);
    rl_store_item items[KEYS];
    rl_cell next[KEYS][RL_MAX_RATES];
    rl_verdict want[KEYS];
    bool all = true;
    uint64_t cost[KEYS];
    for (size_t i = 0; i < n; i++) {
        size_t k = (first + i) % KEYS;
        cost[i] = 1 + rnd(capacity(l));
        items[i] = item(l, "ns", keys[k], (int64_t)cost[i]);
        all &= model_decide(l, &models[k], cost[i], next[i], &want[i]);
    }
    rl_store_answer a = submit(store, RL_STORE_CHECK, items, n);
    require(a.status == (all ? RL_ST_ALLOWED : RL_ST_DENIED), "batch status %d at step %ld",
            a.status, step);
    for (size_t i = 0; i < n; i++) {
        same_verdict(&a.verdicts[i], &want[i], "batch item", step);
        if (all)
            model_commit(l, &models[(first + i) % KEYS], cost[i], next[i]);
    }
}

/* One random operation on one key, compared with the model. */
static void random_op(rl_store *store, const rl_limits *l, model *m, const char *key, long step) {
    uint64_t cap = capacity(l), kind = rnd(100);
    rl_verdict want;
    rl_cell next[RL_MAX_RATES];
    if (kind < 60) {
        uint64_t cost = 1 + rnd(cap);
        bool allowed = model_decide(l, m, cost, next, &want);
        rl_verdict got = check(store, l, key, (int64_t)cost);
        same_verdict(&got, &want, "CHECK", step);
        if (allowed)
            model_commit(l, m, cost, next);
    } else if (kind < 75) {
        uint64_t cost = 1 + rnd(cap);
        model_decide(l, m, cost, next, &want);
        rl_verdict got = peek(store, l, key, (int64_t)cost);
        same_verdict(&got, &want, "PEEK", step);
    } else if (kind < 95) {
        int64_t delta = (int64_t)rnd(2 * cap + 1) - (int64_t)cap;
        delta = delta ? delta : 1;
        model_adjust(l, m, delta, &want);
        rl_store_answer a = one(store, RL_STORE_ADJUST, l, "ns", key, delta);
        require(a.status == (want.allowed ? RL_ST_ALLOWED : RL_ST_DENIED), "ADJUST status %d",
                a.status);
        same_verdict(&a.verdicts[0], &want, "ADJUST", step);
    } else {
        model_clear(m);
        model_adjust(l, m, 0, &want); /* the figures of a key never seen */
        rl_store_answer a = one(store, RL_STORE_RESET, l, "ns", key, 0);
        require(a.status == RL_ST_OK, "RESET status %d", a.status);
        same_verdict(&a.verdicts[0], &want, "RESET", step);
    }
}

static void random_run(const rl_limits *l, uint64_t seed, long steps) {
    static const char *keys[KEYS] = {"alice", "bob", "carol", "k", "k2"};
    model models[KEYS];
    memset(models, 0, sizeof(models));
    rl_store *store = new_store(1000);
    rng_state = seed;
    now_us = T0 + (int64_t)rnd(SEC);
    int64_t longest = longest_period(l);
    for (long step = 0; step < steps; step++) {
        uint64_t jump = rnd(100);
        if (jump < 3)
            now_us += longest + (int64_t)rnd((uint64_t)longest); /* everything expires */
        else if (jump < 60)
            now_us += (int64_t)rnd((uint64_t)longest / 8 + 1);
        if (rnd(50) == 0)
            rl_store_memory_sweep(store, 1 + rnd(2048));
        if (rnd(10) == 0) {
            random_batch(store, l, models, keys, step);
        } else {
            size_t k = rnd(KEYS);
            random_op(store, l, &models[k], keys[k], step);
        }
        require(rl_store_memory_count(store) <= KEYS, "%zu keys", rl_store_memory_count(store));
    }
    for (size_t k = 0; k < KEYS; k++)
        model_clear(&models[k]);
    store->ops->free(store);
}

/* ---- the store gives algo.c's verdicts ---- */

START_TEST(test_fixed_window_matches_algo) {
    rl_limits a = one_rate(RL_ALGO_FIXED_WINDOW, 5, SEC, 0);
    rl_limits b = one_rate(RL_ALGO_FIXED_WINDOW, 1, 250 * MS, 0);
    random_run(&a, 11, 6000);
    random_run(&b, 12, 6000);
}
END_TEST

START_TEST(test_sliding_log_matches_algo) {
    rl_limits a = one_rate(RL_ALGO_SLIDING_LOG, 5, SEC, 0);
    rl_limits b = one_rate(RL_ALGO_SLIDING_LOG, 3, 7 * MS, 0);
    rl_limits c = one_rate(RL_ALGO_SLIDING_LOG, 40, SEC, 0); /* the ring grows and wraps */
    random_run(&a, 21, 6000);
    random_run(&b, 22, 6000);
    random_run(&c, 23, 6000);
}
END_TEST

START_TEST(test_sliding_counter_matches_algo) {
    rl_limits a = one_rate(RL_ALGO_SLIDING_COUNTER, 5, SEC, 0);
    rl_limits b = one_rate(RL_ALGO_SLIDING_COUNTER, 7, 300 * MS, 0);
    random_run(&a, 31, 6000);
    random_run(&b, 32, 6000);
}
END_TEST

START_TEST(test_token_bucket_matches_algo) {
    rl_limits a = one_rate(RL_ALGO_TOKEN_BUCKET, 10, SEC, 4);
    rl_limits b = one_rate(RL_ALGO_TOKEN_BUCKET, 3, SEC, 3);
    random_run(&a, 41, 6000);
    random_run(&b, 42, 6000);
}
END_TEST

START_TEST(test_gcra_matches_algo) {
    rl_limits a = one_rate(RL_ALGO_GCRA, 10, SEC, 3);
    rl_limits b = one_rate(RL_ALGO_GCRA, 1, 100 * MS, 1);
    random_run(&a, 51, 6000);
    random_run(&b, 52, 6000);
}
END_TEST

START_TEST(test_multi_rate_matches_algo) {
    rl_limits a = {.rate_count = 3};
    a.rates[0] = rate(RL_ALGO_FIXED_WINDOW, 4, 100 * MS, 0);
    a.rates[1] = rate(RL_ALGO_SLIDING_LOG, 10, SEC, 0);
    a.rates[2] = rate(RL_ALGO_TOKEN_BUCKET, 20, SEC, 6);
    rl_limits b = {.rate_count = 3};
    b.rates[0] = rate(RL_ALGO_SLIDING_COUNTER, 3, 50 * MS, 0);
    b.rates[1] = rate(RL_ALGO_GCRA, 5, SEC, 2);
    b.rates[2] = rate(RL_ALGO_SLIDING_LOG, 6, 500 * MS, 0);
    random_run(&a, 61, 6000);
    random_run(&b, 62, 6000);
}
END_TEST

/* ---- several rates ---- */

/* 10 per second and 15 per day: 10 in second 1, 5 in second 2, the 16th is denied by
 * the daily rate, whose retry (the end of the day) is reported. */
START_TEST(test_multi_rate_daily_limit) {
    rl_store *store = new_store(100);
    rl_limits l =
        two_rates(rate(RL_ALGO_FIXED_WINDOW, 10, SEC, 0), rate(RL_ALGO_FIXED_WINDOW, 15, DAY, 0));
    now_us = T0;
    int64_t day_end = T0 - T0 % DAY + DAY;
    for (int i = 0; i < 10; i++) {
        rl_verdict v = check(store, &l, "k", 1);
        ck_assert(v.allowed);
        ck_assert_uint_eq(v.remaining, 9 - i); /* the per-second rate has the fewest */
        ck_assert_uint_eq(v.limit, 10);
        ck_assert_int_eq(v.window_us, SEC);
    }
    rl_verdict v = check(store, &l, "k", 1);
    ck_assert(!v.allowed);
    ck_assert_int_eq(v.retry_after_us, SEC); /* the per-second window ends */
    ck_assert_uint_eq(v.limit, 10);
    now_us = T0 + SEC + 123;
    for (int i = 0; i < 5; i++) {
        v = check(store, &l, "k", 1);
        ck_assert(v.allowed);
        ck_assert_uint_eq(v.remaining, 4 - i); /* now the daily rate has the fewest */
        ck_assert_uint_eq(v.limit, 15);
        ck_assert_int_eq(v.window_us, DAY);
    }
    v = check(store, &l, "k", 1);
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.limit, 15);
    ck_assert_uint_eq(v.remaining, 0);
    ck_assert_int_eq(v.window_us, DAY);
    ck_assert_int_eq(v.retry_after_us, day_end - now_us);
    /* both rates deny: the longer wait wins */
    now_us = T0 + 2 * SEC;
    for (int i = 0; i < 5; i++)
        ck_assert(check(store, &l, "other", 2).allowed);
    now_us = T0 + 3 * SEC;
    for (int i = 0; i < 5; i++)
        ck_assert(check(store, &l, "other", 1).allowed);
    v = check(store, &l, "other", 6); /* 5 + 6 > 10 a second, 15 + 6 > 15 a day */
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.limit, 15);
    ck_assert_int_eq(v.retry_after_us, day_end - now_us);
    store->ops->free(store);
}
END_TEST

/* A denial by one rate consumes nothing from the others. */
START_TEST(test_multi_rate_denial_consumes_nothing) {
    rl_store *store = new_store(100);
    rl_limits l = two_rates(rate(RL_ALGO_FIXED_WINDOW, 2, SEC, 0),
                            rate(RL_ALGO_SLIDING_LOG, 3, 3600 * SEC, 0));
    now_us = T0;
    ck_assert(check(store, &l, "k", 1).allowed);
    ck_assert(check(store, &l, "k", 1).allowed);
    for (int i = 0; i < 5; i++)
        ck_assert(!check(store, &l, "k", 1).allowed); /* the per-second rate denies */
    now_us = T0 + SEC;
    rl_verdict v = check(store, &l, "k", 1); /* the hourly log still has room for one */
    ck_assert(v.allowed);
    ck_assert_uint_eq(v.remaining, 0);
    ck_assert_uint_eq(v.limit, 3);
    v = check(store, &l, "k", 1);
    ck_assert(!v.allowed);
    ck_assert_int_eq(v.retry_after_us, 3600 * SEC - SEC); /* the first entry leaves */
    store->ops->free(store);
}
END_TEST

/* ---- batches ---- */

START_TEST(test_batch_all_or_nothing) {
    rl_store *store = new_store(100);
    rl_limits five = one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0);
    rl_limits one_log = one_rate(RL_ALGO_SLIDING_LOG, 1, 3600 * SEC, 0);
    now_us = T0;
    rl_store_item it = item(&one_log, "b", "full", 1);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    rl_store_item batch[3] = {item(&five, "a", "x", 2), item(&one_log, "b", "free", 1),
                              item(&one_log, "b", "full", 1)};
    rl_store_answer a = submit(store, RL_STORE_CHECK, batch, 3);
    ck_assert_int_eq(a.status, RL_ST_DENIED);
    ck_assert(a.verdicts[0].allowed);
    ck_assert_uint_eq(a.verdicts[0].remaining, 3); /* what it would have left */
    ck_assert(a.verdicts[1].allowed);
    ck_assert(!a.verdicts[2].allowed);
    /* nothing was consumed */
    it = item(&five, "a", "x", 5);
    ck_assert_int_eq(submit(store, RL_STORE_PEEK, &it, 1).status, RL_ST_ALLOWED);
    it = item(&one_log, "b", "free", 1);
    ck_assert_int_eq(submit(store, RL_STORE_PEEK, &it, 1).status, RL_ST_ALLOWED);
    /* without the full key, all pass and all are consumed */
    a = submit(store, RL_STORE_CHECK, batch, 2);
    ck_assert_int_eq(a.status, RL_ST_ALLOWED);
    it = item(&five, "a", "x", 4);
    ck_assert_int_eq(submit(store, RL_STORE_PEEK, &it, 1).status, RL_ST_DENIED);
    it = item(&five, "a", "x", 3);
    ck_assert_int_eq(submit(store, RL_STORE_PEEK, &it, 1).status, RL_ST_ALLOWED);
    it = item(&one_log, "b", "free", 1);
    ck_assert_int_eq(submit(store, RL_STORE_PEEK, &it, 1).status, RL_ST_DENIED);
    store->ops->free(store);
}
END_TEST

/* The same key twice in a batch counts both costs: limit 5, 3 + 3 is denied and nothing
 * is consumed; 2 + 2 passes and leaves 1. For every algorithm. */
START_TEST(test_batch_same_key_twice) {
    const rl_limits cases[] = {
        one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_SLIDING_COUNTER, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_TOKEN_BUCKET, 5, 3600 * SEC, 5),
        one_rate(RL_ALGO_GCRA, 5, 3600 * SEC, 5),
        two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
                  rate(RL_ALGO_FIXED_WINDOW, 50, 3600 * SEC, 0)),
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rl_store *store = new_store(100);
        const rl_limits *l = &cases[c];
        now_us = T0;
        rl_store_item twice[2] = {item(l, "ns", "k", 3), item(l, "ns", "k", 3)};
        rl_store_answer a = submit(store, RL_STORE_CHECK, twice, 2);
        ck_assert_msg(a.status == RL_ST_DENIED, "case %zu: 3 + 3 of 5 admitted", c);
        ck_assert_msg(!a.verdicts[1].allowed, "case %zu", c);
        ck_assert_msg(peek(store, l, "k", 5).allowed, "case %zu: the denial consumed", c);
        twice[0].cost = twice[1].cost = 2;
        a = submit(store, RL_STORE_CHECK, twice, 2);
        ck_assert_msg(a.status == RL_ST_ALLOWED, "case %zu: 2 + 2 of 5 denied", c);
        ck_assert_msg(a.verdicts[1].remaining == 1, "case %zu: remaining %llu", c,
                      (unsigned long long)a.verdicts[1].remaining);
        ck_assert_msg(peek(store, l, "k", 1).allowed, "case %zu", c);
        ck_assert_msg(!peek(store, l, "k", 2).allowed, "case %zu: only 2 consumed", c);
        rl_store_item thrice[3] = {item(l, "ns", "j", 2), item(l, "ns", "j", 2),
                                   item(l, "ns", "j", 2)};
        ck_assert_int_eq(submit(store, RL_STORE_CHECK, thrice, 3).status, RL_ST_DENIED);
        ck_assert_msg(peek(store, l, "j", 5).allowed, "case %zu", c);
        store->ops->free(store);
    }
}
END_TEST

/* ---- expiry and eviction ---- */

START_TEST(test_expiry_frees_state) {
    const rl_limits cases[] = {
        one_rate(RL_ALGO_FIXED_WINDOW, 5, SEC, 0),
        one_rate(RL_ALGO_SLIDING_LOG, 5, SEC, 0),
        one_rate(RL_ALGO_SLIDING_COUNTER, 5, SEC, 0),
        one_rate(RL_ALGO_TOKEN_BUCKET, 5, SEC, 5),
        one_rate(RL_ALGO_GCRA, 5, SEC, 2),
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rl_store *store = new_store(100);
        const rl_limits *l = &cases[c];
        now_us = T0 + 300 * MS;
        rl_verdict v = check(store, l, "k", 2);
        ck_assert(v.allowed);
        ck_assert_uint_eq(rl_store_memory_count(store), 1);
        int64_t gone = now_us + v.reset_after_us; /* usage back to zero: nothing to keep */
        now_us = gone - 1;
        ck_assert_uint_eq(rl_store_memory_sweep(store, SIZE_MAX), 0);
        ck_assert_msg(rl_store_memory_count(store) == 1, "case %zu: evicted early", c);
        now_us = gone;
        ck_assert_msg(rl_store_memory_sweep(store, SIZE_MAX) == 1, "case %zu: not evicted", c);
        ck_assert_uint_eq(rl_store_memory_count(store), 0);
        /* a key seen again starts afresh */
        v = check(store, l, "k", 1);
        ck_assert_uint_eq(v.remaining, capacity(l) - 1);
        ck_assert_uint_eq(rl_store_memory_count(store), 1);
        store->ops->free(store);
    }
    /* several rates: the key lives as long as its longest-lived state */
    rl_store *store = new_store(100);
    rl_limits l =
        two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 2 * SEC, 0), rate(RL_ALGO_GCRA, 5, SEC, 2));
    now_us = T0;
    ck_assert(check(store, &l, "k", 2).allowed);
    now_us = T0 + 2 * SEC - 1;
    ck_assert_uint_eq(rl_store_memory_sweep(store, SIZE_MAX), 0);
    now_us = T0 + 2 * SEC;
    ck_assert_uint_eq(rl_store_memory_sweep(store, SIZE_MAX), 1);
    store->ops->free(store);
}
END_TEST

/* Denied or peeked keys hold nothing; a sweep frees them at once. */
START_TEST(test_denied_keys_hold_nothing) {
    rl_store *store = new_store(100);
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 1, SEC, 0);
    rl_limits two = one_rate(RL_ALGO_FIXED_WINDOW, 1, SEC, 0);
    now_us = T0;
    rl_store_item batch[2] = {item(&l, "ns", "a", 1), item(&two, "ns", "b", 1)};
    ck_assert(check(store, &l, "b", 1).allowed);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, batch, 2).status, RL_ST_DENIED);
    peek(store, &l, "c", 1);
    rl_store_memory_sweep(store, SIZE_MAX);
    ck_assert_uint_eq(rl_store_memory_count(store), 1); /* only b */
    store->ops->free(store);
}
END_TEST

START_TEST(test_sweep_is_incremental) {
    rl_store *store = new_store(100000);
    rl_limits l = one_rate(RL_ALGO_GCRA, 1, SEC, 1);
    now_us = T0;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        check(store, &l, key, 1);
    }
    ck_assert_uint_eq(rl_store_memory_count(store), 5000);
    now_us += 2 * SEC;
    size_t freed = 0;
    for (int round = 0; round < 100000 && rl_store_memory_count(store) > 0; round++) {
        size_t n = rl_store_memory_sweep(store, 16);
        ck_assert_uint_le(n, 16 * 8); /* 16 buckets, short chains */
        freed += n;
    }
    ck_assert_uint_eq(freed, 5000);
    ck_assert_uint_eq(rl_store_memory_count(store), 0);
    store->ops->free(store);
}
END_TEST

/* ---- max_keys ---- */

START_TEST(test_max_keys) {
    rl_store *store = new_store(3);
    rl_limits hour = one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0);
    now_us = T0;
    ck_assert(check(store, &hour, "k1", 1).allowed);
    ck_assert(check(store, &hour, "k2", 1).allowed);
    ck_assert(check(store, &hour, "k3", 1).allowed);
    rl_store_answer a = one(store, RL_STORE_CHECK, &hour, "ns", "k4", 1);
    ck_assert_int_eq(a.status, RL_ST_STORE_FULL);
    ck_assert_ptr_nonnull(a.errstr);
    ck_assert_int_eq(one(store, RL_STORE_ADJUST, &hour, "ns", "k4", 1).status, RL_ST_STORE_FULL);
    /* what needs no new key still works */
    ck_assert_uint_eq(check(store, &hour, "k1", 1).remaining, 3);
    ck_assert(peek(store, &hour, "k4", 1).allowed);
    ck_assert_int_eq(one(store, RL_STORE_ADJUST, &hour, "ns", "k4", -1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(one(store, RL_STORE_RESET, &hour, "ns", "k4", 0).status, RL_ST_OK);
    ck_assert_uint_eq(rl_store_memory_count(store), 3);
    /* a batch with an existing key and a new one: full, and nothing consumed */
    rl_store_item batch[2] = {item(&hour, "ns", "k1", 1), item(&hour, "ns", "k5", 1)};
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, batch, 2).status, RL_ST_STORE_FULL);
    ck_assert_uint_eq(peek(store, &hour, "k1", 1).remaining, 2);
    /* a reset key makes room */
    ck_assert_int_eq(one(store, RL_STORE_RESET, &hour, "ns", "k3", 0).status, RL_ST_OK);
    ck_assert(check(store, &hour, "k4", 1).allowed);
    /* once keys expire, new ones are accepted again */
    now_us = T0 + 2 * 3600 * SEC;
    ck_assert(check(store, &hour, "k6", 1).allowed);
    ck_assert(check(store, &hour, "k7", 1).allowed);
    ck_assert(check(store, &hour, "k8", 1).allowed);
    ck_assert_int_eq(one(store, RL_STORE_CHECK, &hour, "ns", "k9", 1).status, RL_ST_STORE_FULL);
    ck_assert_uint_eq(rl_store_memory_count(store), 3);
    store->ops->free(store);
}
END_TEST

/* STORE_FULL means no expired key could be evicted: keys that expired shortly after a
 * refusal make room for new ones at once. */
START_TEST(test_max_keys_short_periods) {
    rl_store *store = new_store(3);
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 1, 10 * MS, 1);
    now_us = T0;
    for (int round = 0; round < 20; round++) {
        char key[32];
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "r%d-%d", round, i);
            ck_assert_msg(check(store, &l, key, 1).allowed, "round %d key %d", round, i);
        }
        snprintf(key, sizeof(key), "r%d-extra", round);
        ck_assert_int_eq(one(store, RL_STORE_CHECK, &l, "ns", key, 1).status, RL_ST_STORE_FULL);
        now_us += 20 * MS; /* all three expired */
    }
    store->ops->free(store);
}
END_TEST

/* Room made while a batch is being looked up must not free a key of the same batch. */
START_TEST(test_max_keys_within_a_batch) {
    rl_limits hour = one_rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0);
    rl_limits ms10 = one_rate(RL_ALGO_SLIDING_LOG, 5, 10 * MS, 0);
    /* two new keys, room for one */
    rl_store *store = new_store(2);
    now_us = T0;
    ck_assert(check(store, &hour, "live", 1).allowed);
    now_us = T0 + SEC;
    rl_store_item batch[2] = {item(&hour, "ns", "new1", 1), item(&hour, "ns", "new2", 1)};
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, batch, 2).status, RL_ST_STORE_FULL);
    ck_assert_uint_le(rl_store_memory_count(store), 2);
    ck_assert(!peek(store, &hour, "live", 5).allowed); /* 1 used */
    ck_assert(peek(store, &hour, "live", 4).allowed);
    store->ops->free(store);
    /* an expired key of the batch, and a new one */
    store = new_store(2);
    now_us = T0;
    ck_assert(check(store, &ms10, "old", 1).allowed);
    ck_assert(check(store, &hour, "live", 1).allowed);
    now_us = T0 + SEC;
    rl_store_item mixed[2] = {item(&ms10, "ns", "old", 1), item(&hour, "ns", "new", 1)};
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, mixed, 2).status, RL_ST_STORE_FULL);
    ck_assert_uint_le(rl_store_memory_count(store), 2);
    ck_assert(check(store, &ms10, "old", 5).allowed);
    store->ops->free(store);
}
END_TEST

/* Many distinct short-lived keys: the periodic sweep keeps the table bounded. */
START_TEST(test_million_keys_stay_bounded) {
    const long total = getenv("RL_TEST_QUICK") ? 100000 : 1000000;
    const uint64_t max_keys = 20000;
    rl_store *store = new_store(max_keys);
    rl_limits l = one_rate(RL_ALGO_TOKEN_BUCKET, 1, 10 * MS, 1); /* each key lives 10 ms */
    now_us = T0;
    size_t most = 0;
    long refused = 0;
    char key[32];
    for (long i = 0; i < total; i++) {
        now_us += 1; /* about 10000 live keys at any time */
        snprintf(key, sizeof(key), "client-%ld", i);
        rl_store_item it = item(&l, "ns", key, 1);
        rl_store_answer a = submit(store, RL_STORE_CHECK, &it, 1);
        refused += a.status == RL_ST_STORE_FULL;
        require(a.status == RL_ST_ALLOWED || a.status == RL_ST_STORE_FULL, "status %d", a.status);
        size_t n = rl_store_memory_count(store);
        most = n > most ? n : most;
        require(n <= max_keys, "%zu keys held", n);
        if (i % 1000 == 0)
            rl_store_memory_sweep(store, 4096); /* the engine's timer */
    }
    ck_assert_int_eq(refused, 0);
    ck_assert_uint_le(most, max_keys);
    now_us += SEC;
    rl_store_memory_sweep(store, SIZE_MAX);
    ck_assert_uint_eq(rl_store_memory_count(store), 0);
    store->ops->free(store);
}
END_TEST

/* ---- namespaces ---- */

START_TEST(test_forget_ns) {
    rl_store *store = new_store(100);
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 1, 3600 * SEC, 0);
    now_us = T0;
    const char *ns[] = {"a", "ab", "b", "a"};
    const char *keys[] = {"bc", "c", "x", "y"};
    for (int i = 0; i < 4; i++) {
        rl_store_item it = item(&l, ns[i], keys[i], 1);
        ck_assert_msg(submit(store, RL_STORE_CHECK, &it, 1).status == RL_ST_ALLOWED,
                      "%s/%s shares state with another key", ns[i], keys[i]);
    }
    ck_assert_uint_eq(rl_store_memory_count(store), 4);
    store->ops->forget_ns(store, "a", 1);
    ck_assert_uint_eq(rl_store_memory_count(store), 2);
    for (int i = 0; i < 4; i++) {
        rl_store_item it = item(&l, ns[i], keys[i], 1);
        rl_status want = strcmp(ns[i], "a") == 0 ? RL_ST_ALLOWED : RL_ST_DENIED;
        ck_assert_msg(submit(store, RL_STORE_PEEK, &it, 1).status == want, "%s/%s", ns[i], keys[i]);
    }
    store->ops->forget_ns(store, "zz", 2);
    ck_assert_uint_eq(rl_store_memory_count(store), 2);
    store->ops->forget_ns(store, "ab", 2);
    store->ops->forget_ns(store, "b", 1);
    ck_assert_uint_eq(rl_store_memory_count(store), 0);
    store->ops->free(store);
}
END_TEST

/* Keys are bytes with a length; the namespace and the key do not run into each other. */
START_TEST(test_binary_keys) {
    rl_store *store = new_store(100);
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 1, 3600 * SEC, 0);
    now_us = T0;
    rl_store_item a = {&l, "p", 1, "a\0b", 3, 1, 0, 0}, b = {&l, "p", 1, "a\0c", 3, 1, 0, 0};
    rl_store_item c = {&l, "p", 1, "a", 1, 1, 0, 0}, d = {&l, "p\xff", 2, "a", 1, 1, 0, 0};
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &a, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &b, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &c, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &d, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &a, 1).status, RL_ST_DENIED);
    char long_key[RL_MAX_KEY_LEN];
    memset(long_key, 'x', sizeof(long_key));
    char ns[RL_MAX_POLICY_LEN];
    memset(ns, 'n', sizeof(ns));
    rl_store_item big = {&l, ns, sizeof(ns), long_key, sizeof(long_key), 1, 0, 0};
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &big, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &big, 1).status, RL_ST_DENIED);
    big.key_len--;
    ck_assert_int_eq(submit(store, RL_STORE_CHECK, &big, 1).status, RL_ST_ALLOWED);
    store->ops->free(store);
}
END_TEST

/* ---- keys chosen to collide ---- */

#define FNV_PRIME 1099511628211ull
#define COLLIDING_KEYS 10000
#define COLLIDING_BITS 14 /* the table of 10,000 keys has 16,384 buckets */

/* The store's hash before it was keyed: FNV-1a of ns, 0xff, key, then h ^ h >> 29. */
static uint64_t fnv_state(uint64_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    return h;
}

/* Writes COLLIDING_KEYS keys of 8 printable bytes to keys (9 bytes each) whose old hash
   under ns "p" is 0 in its low COLLIDING_BITS bits: all in one bucket of the old table.
   Brute force over the last two bytes, each candidate one multiplication. */
static void colliding_keys(char (*keys)[9]) {
    const uint64_t mask = (1u << COLLIDING_BITS) - 1;
    uint64_t base = fnv_state(14695981039346656037ull, "p\xff", 2);
    size_t found = 0;
    char key[9];
    for (unsigned prefix = 0; found < COLLIDING_KEYS; prefix++) {
        snprintf(key, sizeof(key), "k%05x", prefix);
        uint64_t h6 = fnv_state(base, key, 6);
        for (int a = 0x21; a < 0x7f && found < COLLIDING_KEYS; a++) {
            uint64_t h7 = (h6 ^ (uint64_t)a) * FNV_PRIME;
            for (int b = 0x21; b < 0x7f && found < COLLIDING_KEYS; b++) {
                uint64_t h = (h7 ^ (uint64_t)b) * FNV_PRIME;
                if (((h ^ (h >> 29)) & mask) == 0) {
                    memcpy(keys[found], key, 6);
                    keys[found][6] = (char)a, keys[found][7] = (char)b, keys[found][8] = '\0';
                    found++;
                }
            }
        }
    }
}

/* 10,000 keys that all shared one bucket under the old FNV-1a hash (found in well
   under a second) spread over the table under the keyed hash: no chain grows long,
   so a client cannot make every lookup walk thousands of entries. */
START_TEST(test_fnv_collisions_spread) {
    static char keys[COLLIDING_KEYS][9];
    colliding_keys(keys);
    uint64_t old = fnv_state(fnv_state(14695981039346656037ull, "p\xff", 2), keys[1], 8);
    ck_assert_uint_eq((old ^ (old >> 29)) & ((1u << COLLIDING_BITS) - 1), 0);
    rl_store *store = new_store(2 * COLLIDING_KEYS);
    rl_limits l = one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0);
    now_us = T0;
    for (size_t i = 0; i < COLLIDING_KEYS; i++) {
        rl_store_item it = {&l, "p", 1, keys[i], 8, 1, 0, 0};
        require(submit(store, RL_STORE_CHECK, &it, 1).status == RL_ST_ALLOWED, "key %zu", i);
    }
    ck_assert_uint_eq(rl_store_memory_count(store), COLLIDING_KEYS);
    size_t longest = rl_store_memory_longest_chain(store);
    ck_assert_msg(longest <= 16, "a chain of %zu keys (about 7 expected at random)", longest);
    store->ops->free(store);
}
END_TEST

/* ---- RESET, ADJUST ---- */

START_TEST(test_reset_and_adjust_figures) {
    rl_store *store = new_store(100);
    rl_limits l = two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
                            rate(RL_ALGO_FIXED_WINDOW, 7, 3600 * SEC, 0));
    now_us = T0;
    ck_assert(check(store, &l, "k", 3).allowed);
    rl_store_answer a = one(store, RL_STORE_RESET, &l, "ns", "k", 0);
    ck_assert_int_eq(a.status, RL_ST_OK);
    /* after a reset the key has its full quota */
    ck_assert(a.verdicts[0].allowed);
    ck_assert_uint_eq(a.verdicts[0].remaining, 5);
    ck_assert_int_eq(a.verdicts[0].reset_after_us, 0);
    ck_assert_uint_eq(rl_store_memory_count(store), 0);
    ck_assert_uint_eq(check(store, &l, "k", 5).remaining, 0);
    /* giving back to a key never seen: still its full quota */
    a = one(store, RL_STORE_ADJUST, &l, "ns", "new", -2);
    ck_assert_int_eq(a.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(a.verdicts[0].remaining, 5);
    ck_assert_int_eq(a.verdicts[0].reset_after_us, 0);
    ck_assert_uint_eq(rl_store_memory_count(store), 1);
    /* charging past the limit */
    a = one(store, RL_STORE_ADJUST, &l, "ns", "new", 9);
    ck_assert_int_eq(a.status, RL_ST_DENIED);
    ck_assert_uint_eq(a.verdicts[0].remaining, 0);
    ck_assert_int_gt(a.verdicts[0].retry_after_us, 0);
    a = one(store, RL_STORE_ADJUST, &l, "ns", "new", -5);
    ck_assert_int_eq(a.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(a.verdicts[0].remaining, 1);
    store->ops->free(store);
}
END_TEST

/* ---- a key whose limits changed shape ---- */

START_TEST(test_changed_limits_reset_the_key) {
    const rl_limits shapes[] = {
        one_rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_SLIDING_COUNTER, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_TOKEN_BUCKET, 5, 3600 * SEC, 5),
        one_rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
        two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
                  rate(RL_ALGO_SLIDING_LOG, 9, 3600 * SEC, 0)),
        two_rates(rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0),
                  rate(RL_ALGO_SLIDING_LOG, 9, 3600 * SEC, 0)),
        two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
                  rate(RL_ALGO_FIXED_WINDOW, 9, 3600 * SEC, 0)),
        one_rate(RL_ALGO_FIXED_WINDOW, 5, 3600 * SEC, 0),
        one_rate(RL_ALGO_GCRA, 5, 3600 * SEC, 5),
    };
    rl_store *store = new_store(100);
    now_us = T0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (int i = 0; i < 3; i++) {
            rl_verdict v = check(store, &shapes[s], "k", 1);
            ck_assert_msg(v.allowed && v.remaining == (uint64_t)(4 - i),
                          "shape %zu, check %d: remaining %llu, not a fresh key", s, i,
                          (unsigned long long)v.remaining);
        }
        ck_assert_uint_eq(rl_store_memory_count(store), 1);
        now_us += SEC;
    }
    store->ops->free(store);
}
END_TEST

/* ---- stats ---- */

START_TEST(test_stats_figures) {
    rl_store *store = new_store(2);
    rl_limits l = one_rate(RL_ALGO_GCRA, 1, SEC, 1);
    now_us = T0;
    check(store, &l, "a", 1);
    check(store, &l, "b", 1);
    one(store, RL_STORE_CHECK, &l, "ns", "c", 1); /* refused */
    now_us += 2 * SEC;
    rl_store_memory_sweep(store, SIZE_MAX);
    check(store, &l, "d", 1);
    rl_store_figures f = {0};
    store->ops->stats(store, &f);
    ck_assert(!f.failed);
    json_t *doc = rl_store_figures_json(&f);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")), "memory");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "keys")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "max_keys")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "evictions")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "full_refusals")), 1);
    ck_assert(json_is_integer(json_object_get(doc, "buckets")));
    ck_assert_int_eq(json_object_size(doc), 6);
    json_decref(doc);
    rl_store_figures_free(&f);
    /* out of memory: the figures say they are incomplete, and render to nothing */
    rl_alloc_fail_after(0);
    store->ops->stats(store, &f);
    rl_alloc_fail_after(-1);
    ck_assert(f.failed);
    ck_assert_ptr_null(rl_store_figures_json(&f));
    rl_store_figures_free(&f);
    store->ops->free(store);
}
END_TEST

/* ---- allocation failure ---- */

START_TEST(test_new_store_allocation_failure) {
    for (long n = 0; n < 10; n++) {
        rl_alloc_fail_after(n);
        rl_store *s = rl_store_memory_new_clocked(10, &now_us);
        rl_alloc_fail_after(-1);
        if (s)
            s->ops->free(s);
    }
    rl_store *s = rl_store_memory_new(10);
    ck_assert_ptr_nonnull(s);
    s->ops->free(s);
}
END_TEST

/* The n-th allocation of a batch fails, for every n: the answer is INTERNAL and nothing
 * is consumed, or the batch passes whole. */
START_TEST(test_batch_allocation_failure) {
    rl_limits l = two_rates(rate(RL_ALGO_SLIDING_LOG, 6, 3600 * SEC, 0),
                            rate(RL_ALGO_SLIDING_LOG, 6, 60 * SEC, 0));
    rl_limits cell = one_rate(RL_ALGO_FIXED_WINDOW, 3, 3600 * SEC, 0);
    const char *keys[] = {"a", "b", "c", "d"};
    long n;
    for (n = 0; n < 100; n++) {
        rl_store *store = new_store(100);
        now_us = T0;
        /* "c" and "d" have full rings (4 entries): the batch must grow them */
        for (int i = 0; i < 4; i++) {
            ck_assert(check(store, &l, "c", 1).allowed);
            ck_assert(check(store, &l, "d", 1).allowed);
            now_us += SEC;
        }
        rl_store_item batch[5] = {item(&l, "ns", "a", 1), item(&cell, "ns2", "x", 1),
                                  item(&l, "ns", "b", 1), item(&l, "ns", "c", 1),
                                  item(&l, "ns", "d", 1)};
        size_t before = rl_store_memory_count(store);
        rl_alloc_fail_after(n);
        answer_box box = {0};
        int rc = store->ops->submit(store, RL_STORE_CHECK, batch, 5, on_done, &box);
        rl_alloc_fail_after(-1);
        ck_assert_int_eq(rc, RL_OK);
        ck_assert_int_eq(box.calls, 1);
        rl_status st = box.ans.status;
        ck_assert_msg(st == RL_ST_ALLOWED || st == RL_ST_INTERNAL, "n=%ld: status %d", n, st);
        /* a/b: 6 left if nothing was consumed; c/d: 2 left */
        uint64_t used = st == RL_ST_ALLOWED;
        for (size_t k = 0; k < 4; k++) {
            uint64_t left = (k < 2 ? 6 : 2) - used;
            ck_assert_msg(peek(store, &l, keys[k], (int64_t)left + 1).allowed == false,
                          "n=%ld: key %s has more than %llu left", n, keys[k],
                          (unsigned long long)left);
            if (left > 0)
                ck_assert_msg(peek(store, &l, keys[k], (int64_t)left).allowed,
                              "n=%ld status %d: key %s was consumed", n, st, keys[k]);
        }
        rl_store_item x = item(&cell, "ns2", "x", (int64_t)(3 - used));
        ck_assert_msg(submit(store, RL_STORE_PEEK, &x, 1).status == RL_ST_ALLOWED, "n=%ld", n);
        ck_assert_uint_le(rl_store_memory_count(store), before + 3);
        store->ops->free(store);
        if (st == RL_ST_ALLOWED)
            break;
    }
    ck_assert_msg(n > 0 && n < 100, "passed after %ld allocations", n);
}
END_TEST

START_TEST(test_adjust_allocation_failure) {
    rl_limits l = two_rates(rate(RL_ALGO_SLIDING_LOG, 5, 3600 * SEC, 0),
                            rate(RL_ALGO_SLIDING_LOG, 5, 60 * SEC, 0));
    long n;
    for (n = 0; n < 100; n++) {
        rl_store *store = new_store(100);
        now_us = T0;
        for (int i = 0; i < 4; i++) { /* full rings of 4 */
            ck_assert(check(store, &l, "k", 1).allowed);
            now_us += SEC;
        }
        rl_alloc_fail_after(n);
        answer_box box = {0};
        rl_store_item it = item(&l, "ns", "k", 1);
        store->ops->submit(store, RL_STORE_ADJUST, &it, 1, on_done, &box);
        rl_store_item fresh = item(&l, "ns", "new", 2);
        answer_box box2 = {0};
        store->ops->submit(store, RL_STORE_ADJUST, &fresh, 1, on_done, &box2);
        rl_alloc_fail_after(-1);
        ck_assert_int_eq(box.calls, 1);
        ck_assert_int_eq(box2.calls, 1);
        rl_status st = box.ans.status;
        ck_assert_msg(st == RL_ST_ALLOWED || st == RL_ST_DENIED || st == RL_ST_INTERNAL,
                      "status %d", st);
        if (st == RL_ST_INTERNAL) {
            ck_assert_msg(peek(store, &l, "k", 1).allowed, "n=%ld: half adjusted", n);
            ck_assert_uint_eq(peek(store, &l, "k", 1).remaining, 0);
        } else {
            ck_assert(!peek(store, &l, "k", 1).allowed);
        }
        if (box2.ans.status == RL_ST_INTERNAL)
            ck_assert_msg(peek(store, &l, "new", 5).allowed, "n=%ld: half adjusted", n);
        else
            ck_assert_msg(peek(store, &l, "new", 3).allowed && !peek(store, &l, "new", 4).allowed,
                          "n=%ld", n);
        store->ops->free(store);
        if (st != RL_ST_INTERNAL && box2.ans.status != RL_ST_INTERNAL)
            break;
    }
    ck_assert_msg(n > 0 && n < 100, "passed after %ld allocations", n);
}
END_TEST

/* Random runs with allocations failing now and then: never a crash, a leak or a wrong
 * answer; an INTERNAL answer consumed nothing (the model is not advanced). */
START_TEST(test_random_allocation_failures) {
    rl_limits l = {.rate_count = 3};
    l.rates[0] = rate(RL_ALGO_SLIDING_LOG, 30, SEC, 0);
    l.rates[1] = rate(RL_ALGO_FIXED_WINDOW, 40, SEC, 0);
    l.rates[2] = rate(RL_ALGO_SLIDING_LOG, 50, 2 * SEC, 0);
    static const char *keys[KEYS] = {"a", "b", "c", "d", "e"};
    model models[KEYS];
    memset(models, 0, sizeof(models));
    rl_store *store = new_store(1000);
    rng_state = 99;
    now_us = T0;
    long internal = 0;
    for (long step = 0; step < 4000; step++) {
        now_us += (int64_t)rnd(20 * MS);
        size_t k = rnd(KEYS);
        uint64_t cost = 1 + rnd(3);
        rl_cell next[RL_MAX_RATES];
        rl_verdict want;
        bool allowed = model_decide(&l, &models[k], cost, next, &want);
        rl_store_item it = item(&l, "ns", keys[k], (int64_t)cost);
        answer_box box = {0};
        rl_alloc_fail_after(rnd(4) == 0 ? 0 : -1);
        store->ops->submit(store, RL_STORE_CHECK, &it, 1, on_done, &box);
        rl_alloc_fail_after(-1);
        require(box.calls == 1, "done called %d times", box.calls);
        if (box.ans.status == RL_ST_INTERNAL) {
            internal++;
            continue;
        }
        same_verdict(&box.ans.verdicts[0], &want, "CHECK", step);
        if (allowed)
            model_commit(&l, &models[k], cost, next);
    }
    ck_assert_int_gt(internal, 0);
    for (size_t k = 0; k < KEYS; k++)
        model_clear(&models[k]);
    store->ops->free(store);
}
END_TEST

static Suite *store_suite(void) {
    Suite *s = suite_create("store_memory");
    TCase *tc = tcase_create("store_memory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixed_window_matches_algo);
    tcase_add_test(tc, test_sliding_log_matches_algo);
    tcase_add_test(tc, test_sliding_counter_matches_algo);
    tcase_add_test(tc, test_token_bucket_matches_algo);
    tcase_add_test(tc, test_gcra_matches_algo);
    tcase_add_test(tc, test_multi_rate_matches_algo);
    tcase_add_test(tc, test_multi_rate_daily_limit);
    tcase_add_test(tc, test_multi_rate_denial_consumes_nothing);
    tcase_add_test(tc, test_batch_all_or_nothing);
    tcase_add_test(tc, test_batch_same_key_twice);
    tcase_add_test(tc, test_expiry_frees_state);
    tcase_add_test(tc, test_denied_keys_hold_nothing);
    tcase_add_test(tc, test_sweep_is_incremental);
    tcase_add_test(tc, test_max_keys);
    tcase_add_test(tc, test_max_keys_short_periods);
    tcase_add_test(tc, test_max_keys_within_a_batch);
    tcase_add_test(tc, test_million_keys_stay_bounded);
    tcase_add_test(tc, test_forget_ns);
    tcase_add_test(tc, test_binary_keys);
    tcase_add_test(tc, test_reset_and_adjust_figures);
    tcase_add_test(tc, test_changed_limits_reset_the_key);
    tcase_add_test(tc, test_stats_figures);
    tcase_add_test(tc, test_new_store_allocation_failure);
    tcase_add_test(tc, test_batch_allocation_failure);
    tcase_add_test(tc, test_adjust_allocation_failure);
    tcase_add_test(tc, test_random_allocation_failures);
    tcase_add_test(tc, test_fnv_collisions_spread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(store_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
