/*
 * test_redis_cache.c: the Redis store's over-limit cache, alone: it denies only what
 * Redis denied, only until the retry time, only for the same item and limits and a
 * cost at least the cached one, and forgets what RESET, ADJUST or a reload changes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "redis_cache.h"

static rl_limits limits;
static rl_redis_cache *cache;

static void setup(void) {
    memset(&limits, 0, sizeof(limits));
    limits.rate_count = 1;
    limits.rates[0] = (rl_rate){RL_ALGO_FIXED_WINDOW, 10, 60000000, 0};
    cache = rl_redis_cache_new(64);
    ck_assert_ptr_nonnull(cache);
}

static void teardown(void) {
    rl_redis_cache_free(cache);
}

static rl_store_item item(const char *ns, const char *key, int64_t cost) {
    return (rl_store_item){&limits, ns, strlen(ns), key, strlen(key), cost, 0, 0};
}

static rl_redis_item copy_of(const rl_store_item *it) {
    rl_redis_item c;
    memset(&c, 0, sizeof(c));
    c.limits = *it->limits;
    c.cost = it->cost;
    c.ns = it->ns;
    c.ns_len = it->ns_len;
    c.key = it->key;
    c.key_len = it->key_len;
    return c;
}

static rl_verdict denial(int64_t retry_us, int64_t reset_us) {
    return (rl_verdict){.allowed = false,
                        .limit = 10,
                        .remaining = 0,
                        .reset_after_us = reset_us,
                        .retry_after_us = retry_us,
                        .window_us = 60000000};
}

// Remembers a denial of it sent at time sent, with a fresh stamp.
static void remember(const rl_store_item *it, int64_t sent, const rl_verdict *v) {
    uint64_t stamp = rl_redis_cache_stamp(cache, it);
    rl_redis_item c = copy_of(it);
    rl_redis_cache_insert(cache, &c, stamp, sent, 5000000 + sent, v);
}

START_TEST(denies_until_the_retry_time_counting_down) {
    rl_store_item it = item("api", "k", 2);
    rl_verdict v = denial(3000, 9000), out;
    int64_t store_now;
    remember(&it, 1000, &v);
    ck_assert(rl_redis_cache_lookup(cache, &it, 1500, &out, &store_now));
    ck_assert(!out.allowed);
    ck_assert_int_eq(out.retry_after_us, 2500);
    ck_assert_int_eq(out.reset_after_us, 8500);
    ck_assert_int_eq(store_now, 5001500);
    ck_assert_uint_eq(out.limit, 10);
    ck_assert(rl_redis_cache_lookup(cache, &it, 3999, &out, &store_now));
    ck_assert_int_eq(out.retry_after_us, 1);
    ck_assert(!rl_redis_cache_lookup(cache, &it, 4000, &out, &store_now)); /* retry time */
    ck_assert_uint_eq(rl_redis_cache_figures(cache).hits, 2);
}
END_TEST

START_TEST(only_the_same_item_limits_and_a_cost_as_large) {
    rl_store_item it = item("api", "k", 2);
    rl_verdict v = denial(3000, 3000), out;
    int64_t store_now;
    remember(&it, 0, &v);
    rl_store_item other_key = item("api", "j", 2), other_ns = item("apj", "k", 2);
    rl_store_item smaller = item("api", "k", 1), larger = item("api", "k", 5);
    ck_assert(!rl_redis_cache_lookup(cache, &other_key, 10, &out, &store_now));
    ck_assert(!rl_redis_cache_lookup(cache, &other_ns, 10, &out, &store_now));
    ck_assert(!rl_redis_cache_lookup(cache, &smaller, 10, &out, &store_now));
    ck_assert(rl_redis_cache_lookup(cache, &larger, 10, &out, &store_now));
    limits.rates[0].limit = 11; /* a reload changed the limit */
    ck_assert(!rl_redis_cache_lookup(cache, &it, 10, &out, &store_now));
}
END_TEST

START_TEST(allowed_and_long_names_are_not_cached) {
    rl_store_item it = item("api", "k", 1);
    rl_verdict allowed = denial(0, 1000), no_retry = denial(0, 1000), out;
    int64_t store_now;
    allowed.allowed = true;
    remember(&it, 0, &allowed);
    remember(&it, 0, &no_retry);
    ck_assert(!rl_redis_cache_lookup(cache, &it, 1, &out, &store_now));
    static char key[RL_REDIS_CACHE_NAME_MAX];
    memset(key, 'k', sizeof(key) - 1);
    rl_store_item big = {&limits, "api", 3, key, sizeof(key) - 1, 1, 0, 0};
    rl_verdict v = denial(1000, 1000);
    remember(&big, 0, &v);
    ck_assert(!rl_redis_cache_lookup(cache, &big, 1, &out, &store_now));
    ck_assert_uint_eq(rl_redis_cache_figures(cache).inserts, 0);
}
END_TEST

START_TEST(drop_and_stale_stamps) {
    rl_store_item it = item("api", "k", 1);
    rl_verdict v = denial(1000, 1000), out;
    int64_t store_now;
    remember(&it, 0, &v);
    rl_redis_cache_drop(cache, &it); /* RESET or ADJUST */
    ck_assert(!rl_redis_cache_lookup(cache, &it, 1, &out, &store_now));
    uint64_t stamp = rl_redis_cache_stamp(cache, &it); /* a CHECK goes out... */
    rl_redis_cache_drop(cache, &it);                   /* ...a RESET follows it... */
    rl_redis_item c = copy_of(&it);
    rl_redis_cache_insert(cache, &c, stamp, 0, 0, &v); /* ...the CHECK's denial is stale */
    ck_assert(!rl_redis_cache_lookup(cache, &it, 1, &out, &store_now));
    ck_assert_uint_eq(rl_redis_cache_figures(cache).stale, 1);
    stamp = rl_redis_cache_stamp(cache, &it);
    rl_redis_cache_forget_ns(cache, "other", 5); /* any forget makes in-flight stamps stale */
    rl_redis_cache_insert(cache, &c, stamp, 0, 0, &v);
    ck_assert_uint_eq(rl_redis_cache_figures(cache).stale, 2);
}
END_TEST

START_TEST(forget_ns_drops_only_that_namespace) {
    rl_store_item a = item("api", "k", 1), b = item("web", "k", 1);
    rl_verdict v = denial(1000, 1000), out;
    int64_t store_now;
    remember(&a, 0, &v);
    remember(&b, 0, &v);
    rl_redis_cache_forget_ns(cache, "api", 3);
    ck_assert(!rl_redis_cache_lookup(cache, &a, 1, &out, &store_now));
    ck_assert(rl_redis_cache_lookup(cache, &b, 1, &out, &store_now));
}
END_TEST

START_TEST(a_full_table_overwrites) {
    char keys[200][16];
    rl_verdict v = denial(1000, 1000), out;
    int64_t store_now;
    for (int i = 0; i < 200; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        rl_store_item it = item("api", keys[i], 1);
        remember(&it, 0, &v);
    }
    int hits = 0;
    for (int i = 0; i < 200; i++) {
        rl_store_item it = item("api", keys[i], 1);
        hits += rl_redis_cache_lookup(cache, &it, 1, &out, &store_now);
    }
    ck_assert_int_le(hits, 64);
    ck_assert_int_gt(hits, 0);
    ck_assert_uint_eq(rl_redis_cache_figures(cache).slots, 64);
    rl_alloc_fail_after(0);
    ck_assert_ptr_null(rl_redis_cache_new(8));
    rl_alloc_fail_after(1);
    ck_assert_ptr_null(rl_redis_cache_new(8));
    rl_alloc_fail_after(-1);
}
END_TEST

static Suite *cache_suite(void) {
    Suite *s = suite_create("redis_cache");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, denies_until_the_retry_time_counting_down);
    tcase_add_test(tc, only_the_same_item_limits_and_a_cost_as_large);
    tcase_add_test(tc, allowed_and_long_names_are_not_cached);
    tcase_add_test(tc, drop_and_stale_stamps);
    tcase_add_test(tc, forget_ns_drops_only_that_namespace);
    tcase_add_test(tc, a_full_table_overwrites);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(cache_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
