/*
 * test_topk.c: the heavy-hitters summary behind TOP: exact counts while it has room,
 * the Space-Saving guarantees when it has not (a heavy key is always listed; its
 * count is bracketed by denied - error and denied), the two windows, long and
 * binary keys, and allocation failure.
 */
#include "topk.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define WINDOW 1000

static void add(rl_topk *t, const char *key, int times, int64_t now) {
    for (int i = 0; i < times; i++)
        rl_topk_add(t, key, strlen(key), now);
}

static const rl_topk_key *find_key(const rl_topk_key *keys, size_t n, const char *key, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (keys[i].key_len == len && memcmp(keys[i].key, key, keys[i].kept) == 0)
            return &keys[i];
    return NULL;
}

START_TEST(test_exact_while_room) {
    rl_topk *t = rl_topk_new(WINDOW);
    rl_topk_key keys[2 * RL_TOPK_SLOTS];
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(rl_topk_list(t, 0, keys, 10), 0);
    add(t, "b", 3, 0);
    add(t, "a", 5, 1);
    add(t, "c", 3, 2);
    size_t n = rl_topk_list(t, 3, keys, 10);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(keys[0].denied, 5);
    ck_assert_int_eq(memcmp(keys[0].key, "a", 1), 0);
    ck_assert_int_eq(memcmp(keys[1].key, "b", 1), 0); /* ties: by key bytes */
    ck_assert_int_eq(memcmp(keys[2].key, "c", 1), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(keys[i].error, 0);
    ck_assert_uint_eq(rl_topk_list(t, 3, keys, 2), 2);
    rl_topk_free(t);
}
END_TEST

START_TEST(test_heavy_key_always_listed) {
    rl_topk *t = rl_topk_new(1000000);
    rl_topk_key keys[2 * RL_TOPK_SLOTS];
    char key[32];
    /* 10000 denials: "hot" 1000 times, "warm" 400 times, 8600 keys once each */
    for (int i = 0; i < 10000; i++) {
        if (i % 10 == 0)
            snprintf(key, sizeof(key), "hot");
        else if (i % 25 == 1)
            snprintf(key, sizeof(key), "warm");
        else
            snprintf(key, sizeof(key), "cold-%d", i);
        rl_topk_add(t, key, strlen(key), i);
    }
    size_t n = rl_topk_list(t, 10000, keys, 2 * RL_TOPK_SLOTS);
    ck_assert_uint_le(n, RL_TOPK_SLOTS);
    const rl_topk_key *hot = find_key(keys, n, "hot", 3), *warm = find_key(keys, n, "warm", 4);
    ck_assert_ptr_nonnull(hot);
    ck_assert_ptr_nonnull(warm);
    ck_assert_ptr_eq(hot, &keys[0]);
    ck_assert_uint_ge(hot->denied, 1000);
    ck_assert_uint_le(hot->denied - hot->error, 1000);
    ck_assert_uint_ge(warm->denied, 400);
    ck_assert_uint_le(warm->denied - warm->error, 400);
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_ge(keys[i - 1].denied, keys[i].denied);
    rl_topk_free(t);
}
END_TEST

START_TEST(test_bounds_hold_for_every_key) {
    rl_topk *t = rl_topk_new(1000000);
    rl_topk_key keys[2 * RL_TOPK_SLOTS];
    uint64_t truth[200] = {0};
    char key[16];
    unsigned seed = 7;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245 + 12345;
        unsigned k = (seed >> 16) % 200;
        k = k < 100 ? k % 10 : k; /* keys 0..9 are hot */
        truth[k]++;
        snprintf(key, sizeof(key), "k%u", k);
        rl_topk_add(t, key, strlen(key), 0);
    }
    size_t n = rl_topk_list(t, 0, keys, 2 * RL_TOPK_SLOTS);
    for (size_t i = 0; i < n; i++) {
        char name[16] = {0};
        memcpy(name, keys[i].key, keys[i].kept < 15 ? keys[i].kept : 15);
        unsigned k = (unsigned)atoi(name + 1);
        ck_assert_uint_ge(keys[i].denied, truth[k]);
        ck_assert_uint_le(keys[i].denied - keys[i].error, truth[k]);
    }
    for (unsigned k = 0; k < 10; k++) {
        snprintf(key, sizeof(key), "k%u", k);
        ck_assert_msg(find_key(keys, n, key, strlen(key)), "hot key %u missing", k);
    }
    rl_topk_free(t);
}
END_TEST

START_TEST(test_two_windows) {
    rl_topk *t = rl_topk_new(WINDOW);
    rl_topk_key keys[2 * RL_TOPK_SLOTS];
    add(t, "old", 4, 100);
    add(t, "both", 2, 200);
    add(t, "both", 3, WINDOW + 100); /* the next window */
    add(t, "new", 1, WINDOW + 150);
    size_t n = rl_topk_list(t, WINDOW + 200, keys, 10);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(find_key(keys, n, "both", 4)->denied, 5);
    ck_assert_uint_eq(find_key(keys, n, "old", 3)->denied, 4);
    ck_assert_uint_eq(find_key(keys, n, "new", 3)->denied, 1);
    n = rl_topk_list(t, 2 * WINDOW + 100, keys, 10); /* the first window is forgotten */
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(find_key(keys, n, "both", 4)->denied, 3);
    ck_assert_ptr_null(find_key(keys, n, "old", 3));
    ck_assert_uint_eq(rl_topk_list(t, 10 * WINDOW, keys, 10), 0);
    add(t, "later", 1, 10 * WINDOW + 1);
    ck_assert_uint_eq(rl_topk_list(t, 10 * WINDOW + 2, keys, 10), 1);
    rl_topk_free(t);
}
END_TEST

START_TEST(test_long_and_binary_keys) {
    rl_topk *t = rl_topk_new(WINDOW);
    rl_topk_key keys[2 * RL_TOPK_SLOTS];
    char a[300], b[300];
    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[250] = 'y'; /* differs only past what is kept */
    rl_topk_add(t, a, sizeof(a), 0);
    rl_topk_add(t, a, sizeof(a), 0);
    rl_topk_add(t, b, sizeof(b), 0);
    rl_topk_add(t, "n\0l", 3, 0);
    rl_topk_add(t, "n\0m", 3, 0);
    size_t n = rl_topk_list(t, 0, keys, 10);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(keys[0].denied, 2);
    ck_assert_uint_eq(keys[0].kept, RL_TOPK_KEY_MAX);
    ck_assert_uint_eq(keys[0].key_len, sizeof(a));
    ck_assert_ptr_nonnull(find_key(keys, n, "n\0l", 3));
    ck_assert_ptr_nonnull(find_key(keys, n, "n\0m", 3));
    rl_topk_free(t);
}
END_TEST

START_TEST(test_allocation_failure) {
    rl_alloc_fail_after(0);
    rl_topk *t = rl_topk_new(WINDOW);
    rl_alloc_fail_after(-1);
    ck_assert_ptr_null(t);
    rl_topk_free(NULL);
}
END_TEST

static Suite *topk_suite(void) {
    Suite *s = suite_create("topk");
    TCase *tc = tcase_create("topk");
    tcase_add_test(tc, test_exact_while_room);
    tcase_add_test(tc, test_heavy_key_always_listed);
    tcase_add_test(tc, test_bounds_hold_for_every_key);
    tcase_add_test(tc, test_two_windows);
    tcase_add_test(tc, test_long_and_binary_keys);
    tcase_add_test(tc, test_allocation_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(topk_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
