/*
 * test_algo_lease.c: concurrency leases (daemon/algo_lease.c) against their stated
 * semantics, with an injected clock: hand-computed figures, then a randomized run
 * checked against a naive model (held never above the limit, every figure exact).
 */
#include "algo_lease.h"
#include "alloc.h"

#include <check.h>
#include <stdlib.h>

#define SEC 1000000LL
#define T0 (1700000000LL * SEC)

static rl_rate lease_rate(uint64_t limit, int64_t lease_us) {
    return (rl_rate){.algorithm = RL_ALGO_CONCURRENCY, .limit = limit, .period_us = lease_us};
}

// Trims, reserves and acquires, as a store does.
static bool take(const rl_rate *r, rl_lease_set *set, int64_t now, uint64_t id, uint64_t slots,
                 rl_verdict *v) {
    rl_lease_trim(set, now, NULL);
    ck_assert_int_eq(rl_lease_reserve(r, set), 0);
    return rl_lease_acquire(r, set, now, id, slots, v);
}

START_TEST(test_limit_two_denies_the_third) {
    rl_rate r = lease_rate(2, 30 * SEC);
    rl_lease_set set = {0};
    rl_verdict v;
    ck_assert(take(&r, &set, T0, 1, 1, &v));
    ck_assert_uint_eq(v.remaining, 1);
    ck_assert_int_eq(v.reset_after_us, 30 * SEC);
    ck_assert_int_eq(v.window_us, 30 * SEC);
    ck_assert_uint_eq(v.limit, 2);
    ck_assert(take(&r, &set, T0 + 5 * SEC, 2, 1, &v));
    ck_assert_uint_eq(v.remaining, 0);
    ck_assert(!take(&r, &set, T0 + 10 * SEC, 3, 1, &v));
    ck_assert_uint_eq(v.remaining, 0);
    ck_assert_int_eq(v.retry_after_us, 20 * SEC); /* the first lease expires at T0 + 30 s */
    ck_assert_int_eq(v.reset_after_us, 25 * SEC); /* the last at T0 + 35 s */
    ck_assert_uint_eq(set.len, 2);
    ck_assert_uint_eq(set.held, 2);
    rl_lease_free(&set);
}
END_TEST

START_TEST(test_release_frees_once) {
    rl_rate r = lease_rate(2, 30 * SEC);
    rl_lease_set set = {0};
    rl_verdict v;
    ck_assert(take(&r, &set, T0, 7, 1, &v));
    ck_assert(take(&r, &set, T0 + SEC, 8, 1, &v));
    ck_assert(rl_lease_release(&r, &set, T0 + 2 * SEC, 7, &v));
    ck_assert_uint_eq(v.remaining, 1);
    ck_assert_int_eq(v.reset_after_us, 29 * SEC);                /* lease 8 expires at T0 + 31 s */
    ck_assert(!rl_lease_release(&r, &set, T0 + 2 * SEC, 7, &v)); /* twice */
    ck_assert(!v.allowed);
    ck_assert_uint_eq(v.remaining, 1);
    ck_assert(!rl_lease_release(&r, &set, T0 + 2 * SEC, 99, &v)); /* unknown */
    ck_assert_uint_eq(set.held, 1);
    ck_assert(rl_lease_release(&r, &set, T0 + 3 * SEC, 8, &v));
    ck_assert_uint_eq(v.remaining, 2);
    ck_assert_int_eq(v.reset_after_us, 0);
    rl_lease_free(&set);
}
END_TEST

START_TEST(test_expiry_and_renew) {
    rl_rate r = lease_rate(1, 200000);
    rl_lease_set set = {0};
    rl_verdict v;
    uint64_t slots = 0;
    ck_assert(take(&r, &set, T0, 1, 1, &v));
    ck_assert(rl_lease_renew(&r, &set, T0 + 150000, 1, &v)); /* now expires at T0 + 350 ms */
    ck_assert_int_eq(v.reset_after_us, 200000);
    ck_assert_uint_eq(rl_lease_trim(&set, T0 + 200000, &slots), 0); /* outlives the original */
    ck_assert(!take(&r, &set, T0 + 349999, 2, 1, &v));
    ck_assert_int_eq(v.retry_after_us, 1);
    ck_assert_uint_eq(rl_lease_trim(&set, T0 + 350000, &slots), 1); /* expires at 350 ms */
    ck_assert_uint_eq(slots, 1);
    ck_assert(!rl_lease_renew(&r, &set, T0 + 350000, 1, &v)); /* after expiry: unknown */
    ck_assert(!rl_lease_release(&r, &set, T0 + 350000, 1, &v));
    ck_assert(take(&r, &set, T0 + 350000, 3, 1, &v));
    ck_assert_uint_eq(rl_lease_expires_at(&set), T0 + 550000);
    rl_lease_free(&set);
}
END_TEST

START_TEST(test_several_slots_wait_for_enough_expiries) {
    rl_rate r = lease_rate(5, 10 * SEC);
    rl_lease_set set = {0};
    rl_verdict v;
    ck_assert(take(&r, &set, T0, 1, 1, &v));           /* expires T0 + 10 */
    ck_assert(take(&r, &set, T0 + SEC, 2, 1, &v));     /* T0 + 11 */
    ck_assert(take(&r, &set, T0 + 2 * SEC, 3, 3, &v)); /* T0 + 12, full */
    ck_assert(!take(&r, &set, T0 + 3 * SEC, 4, 2, &v));
    ck_assert_int_eq(v.retry_after_us, 8 * SEC); /* both 1-slot leases gone at T0 + 11 */
    ck_assert(!take(&r, &set, T0 + 3 * SEC, 5, 3, &v));
    ck_assert_int_eq(v.retry_after_us, 9 * SEC); /* 2 slots free at T0 + 11, 5 at + 12 */
    ck_assert(!take(&r, &set, T0 + 3 * SEC, 6, 5, &v));
    ck_assert_int_eq(v.retry_after_us, 9 * SEC);
    ck_assert(!take(&r, &set, T0 + 3 * SEC, 7, 6, &v)); /* more than the limit */
    ck_assert_int_eq(v.retry_after_us, 10 * SEC);
    ck_assert(!take(&r, &set, T0 + 11 * SEC, 8, 3, &v)); /* two expired: 2 free */
    ck_assert(take(&r, &set, T0 + 11 * SEC, 9, 2, &v));
    ck_assert_uint_eq(v.remaining, 0);
    rl_lease_free(&set);
}
END_TEST

START_TEST(test_never_more_than_limit_entries) {
    rl_rate r = lease_rate(3, SEC);
    rl_lease_set set = {0};
    rl_verdict v;
    for (uint64_t id = 1; id <= 10; id++)
        take(&r, &set, T0, id, 1, &v);
    ck_assert_uint_eq(set.len, 3);
    ck_assert_uint_le(set.cap, 3);
    rl_lease_free(&set);
    ck_assert_ptr_null(set.leases);
}
END_TEST

START_TEST(test_reserve_failure_changes_nothing) {
    rl_rate r = lease_rate(100, SEC);
    rl_lease_set set = {0};
    rl_alloc_fail_after(0);
    int rc = rl_lease_reserve(&r, &set);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_eq(set.cap, 0);
    rl_verdict v;
    ck_assert(!rl_lease_acquire(&r, &set, T0, 1, 1, &v)); /* no room: never written */
    ck_assert_uint_eq(set.held, 0);
}
END_TEST

/* A naive model: every lease with its expiry, held recomputed from scratch. */
typedef struct model_lease {
    uint64_t id, slots;
    int64_t until;
    bool live;
} model_lease;

static uint64_t model_held(const model_lease *m, size_t n, int64_t now) {
    uint64_t held = 0;
    for (size_t i = 0; i < n; i++)
        held += m[i].live && m[i].until > now ? m[i].slots : 0;
    return held;
}

START_TEST(test_random_against_model) {
    enum { OPS = 4000 };
    static model_lease model[OPS];
    rl_rate r = lease_rate(7, 50000);
    rl_lease_set set = {0};
    srand(1234);
    int64_t now = T0;
    size_t n = 0;
    for (int op = 0; op < OPS; op++) {
        now += rand() % 8000;
        rl_lease_trim(&set, now, NULL);
        ck_assert_uint_eq(set.held, model_held(model, n, now));
        rl_verdict v;
        int what = rand() % 3;
        if (what == 0 || n == 0) {
            uint64_t slots = 1 + (uint64_t)(rand() % 3);
            bool fits = model_held(model, n, now) + slots <= 7;
            ck_assert_int_eq(rl_lease_reserve(&r, &set), 0);
            ck_assert_int_eq(rl_lease_acquire(&r, &set, now, n + 1, slots, &v), fits);
            model[n] = (model_lease){n + 1, slots, now + 50000, fits};
            n++;
        } else {
            model_lease *m = &model[rand() % n];
            bool live = m->live && m->until > now;
            bool got = what == 1 ? rl_lease_release(&r, &set, now, m->id, &v)
                                 : rl_lease_renew(&r, &set, now, m->id, &v);
            ck_assert_int_eq(got, live);
            if (live && what == 1)
                m->live = false;
            if (live && what == 2)
                m->until = now + 50000;
        }
        ck_assert_uint_le(set.held, 7);
        ck_assert_uint_le(set.len, 7);
        ck_assert_uint_eq(v.remaining, 7 - model_held(model, n, now));
    }
    rl_lease_free(&set);
}
END_TEST

static Suite *lease_suite(void) {
    Suite *suite = suite_create("algo_lease");
    TCase *tc = tcase_create("leases");
    tcase_add_test(tc, test_limit_two_denies_the_third);
    tcase_add_test(tc, test_release_frees_once);
    tcase_add_test(tc, test_expiry_and_renew);
    tcase_add_test(tc, test_several_slots_wait_for_enough_expiries);
    tcase_add_test(tc, test_never_more_than_limit_entries);
    tcase_add_test(tc, test_reserve_failure_changes_nothing);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(suite, tc);
    return suite;
}

int main(void) {
    SRunner *runner = srunner_create(lease_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
