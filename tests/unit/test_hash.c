/*
 * test_hash.c: the keyed hash of names: SipHash-2-4 against the reference vectors of
 * the SipHash paper (key 00..0f, messages 00..len-1), the table hash (SipHash-1-3)
 * the same fed whole or in pieces, and keys that make bucket orders differ: between
 * two keys, and between two processes (each draws its own at start). The embedded
 * store's lookup trusts a hash its prefetch left behind only when it finds that name.
 */
#include "hash.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_memory.h"

#define PROBE_ENV "RL_TEST_HASH_PROBE" /* set: main prints a probe hash and exits */

/* SipHash-2-4 of bytes 00..len-1 under key 00..0f, for len 0..63 (the reference's
   vectors_sip64, read as little-endian words). */
static const uint64_t vectors[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
    0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
    0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
    0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL, 0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL,
    0xbed65cf21aa2ee98ULL, 0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL, 0x2f2e6163076bcfadULL,
    0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL, 0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL,
    0x7127512f72f27cceULL, 0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL, 0x9abfd8766a33735cULL,
    0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL, 0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL,
    0xf935451de4f21df2ULL, 0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL, 0xa192d576b245165aULL,
    0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL, 0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL,
    0xb78dbfaf3a8d83bdULL, 0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL, 0x958a324ceb064572ULL,
};

static void counting(uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)i;
}

START_TEST(test_reference_vectors) {
    uint8_t key[16], message[64 + 1];
    counting(key, sizeof(key));
    for (size_t len = 0; len < 64; len++) {
        counting(message + 1, len); /* unaligned on purpose */
        ck_assert_msg(rl_siphash24(key, message + 1, len) == vectors[len], "length %zu", len);
    }
}
END_TEST

START_TEST(test_pieces_hash_as_whole) {
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len < 40; len++) {
        uint64_t whole = rl_hash(data, len);
        for (size_t cut = 0; cut <= len; cut++) {
            for (size_t cut2 = cut; cut2 <= len; cut2++) {
                rl_hasher h;
                rl_hash_begin(&h);
                rl_hash_feed(&h, data, cut);
                rl_hash_feed(&h, data + cut, cut2 - cut);
                rl_hash_feed(&h, data + cut2, len - cut2);
                ck_assert_msg(rl_hash_end(&h) == whole, "len %zu cut %zu %zu", len, cut, cut2);
            }
        }
    }
}
END_TEST

/* rl_hash_name is rl_hash of (ns_len | key_len << 16 as 8 bytes, ns padded with zeros
   to whole words, key), for names of every length up to a few words and past. */
START_TEST(test_name_layout) {
    char ns[40], key[300];
    uint8_t whole[8 + sizeof(ns) + 8 + sizeof(key)];
    memset(ns, 'p', sizeof(ns));
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (char)(i * 7 + 1);
    for (size_t ns_len = 0; ns_len <= 20; ns_len++) {
        for (size_t key_len = 0; key_len <= 40; key_len += 1 + (key_len > 20) * 9) {
            size_t padded = (ns_len + 7) / 8 * 8;
            memset(whole, 0, sizeof(whole));
            whole[0] = (uint8_t)ns_len;
            whole[2] = (uint8_t)key_len;
            memcpy(whole + 8, ns, ns_len);
            memcpy(whole + 8 + padded, key, key_len);
            ck_assert_msg(rl_hash_name(ns, ns_len, key, key_len) ==
                              rl_hash(whole, 8 + padded + key_len),
                          "ns %zu, key %zu bytes", ns_len, key_len);
        }
    }
    /* where the policy name ends is part of the input */
    ck_assert(rl_hash_name("ab", 2, "c", 1) != rl_hash_name("a", 1, "bc", 2));
    ck_assert(rl_hash_name("a", 1, "", 0) != rl_hash_name("a\0", 2, "", 0));
}
END_TEST

/* Of 4,096 names, how many land in the same one of 1,024 buckets under two keys. */
static size_t same_buckets(const uint8_t key_a[16], const uint8_t key_b[16]) {
    static uint16_t first[4096];
    char name[16];
    size_t same = 0;
    for (int pass = 0; pass < 2; pass++) {
        rl_hash_set_key(pass ? key_b : key_a);
        for (size_t i = 0; i < 4096; i++) {
            int n = snprintf(name, sizeof(name), "10.0.%zu.%zu", i / 256, i % 256);
            uint16_t bucket = (uint16_t)(rl_hash_name("api", 3, name, (size_t)n) & 1023);
            if (pass == 0)
                first[i] = bucket;
            else
                same += first[i] == bucket;
        }
    }
    return same;
}

START_TEST(test_keys_change_bucket_order) {
    uint8_t a[16], b[16];
    counting(a, sizeof(a));
    counting(b, sizeof(b));
    b[15] ^= 1;
    ck_assert_uint_eq(same_buckets(a, a), 4096);
    size_t same = same_buckets(a, b);
    ck_assert_msg(same < 40, "%zu of 4096 names kept their bucket (about 4 expected)", same);
}
END_TEST

/* Runs this binary as a probe and returns the hash it printed. */
static uint64_t probe_other_process(void) {
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "%s=1 /proc/%d/exe", PROBE_ENV, (int)getpid());
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    unsigned long long h = 0;
    ck_assert_int_eq(fscanf(f, "%llx", &h), 1);
    ck_assert_int_eq(pclose(f), 0);
    return h;
}

static uint64_t probe_hash(void) {
    return rl_hash_name("api", 3, "10.0.0.1", 8);
}

START_TEST(test_processes_draw_their_own_key) {
    uint64_t one = probe_other_process(), two = probe_other_process();
    ck_assert_msg(one != two, "two processes hash a name the same: the key is not random");
    ck_assert(one != probe_hash() && two != probe_hash());
}
END_TEST

static void on_done(void *arg, const rl_store_answer *ans) {
    *(rl_status *)arg = ans->status;
}

// CHECKs one unit of the name (ns "p", key at key) under a limit of 1 a minute.
static rl_status check_once(rl_store *store, const char *key) {
    static const rl_limits limits = {.rate_count = 1,
                                     .rates = {{RL_ALGO_FIXED_WINDOW, 1, 60000000, 1}}};
    rl_store_item it = {&limits, "p", 1, key, strlen(key), 1, 0, 0};
    rl_status status = RL_ST_INTERNAL;
    ck_assert_int_eq(store->ops->submit(store, RL_STORE_CHECK, &it, 1, on_done, &status), RL_OK);
    return status;
}

/* The hash prefetch computes is found again by the key's address; a buffer that holds
 * another key by the time it is decided must still reach that key's own entry. */
START_TEST(test_prefetched_hash_is_only_a_hint) {
    int64_t clock = 1000000;
    rl_store *store = rl_store_memory_new_clocked(100, &clock);
    char buf[] = "user-a";
    ck_assert_int_eq(check_once(store, "user-a"), RL_ST_ALLOWED);
    store->ops->prefetch(store, "p", 1, buf, strlen(buf), 0);
    store->ops->prefetch(store, "p", 1, buf, strlen(buf), 1);
    memcpy(buf, "user-b", 6); /* same address, same length, another key */
    ck_assert_int_eq(check_once(store, buf), RL_ST_ALLOWED);
    char other[] = "user-b"; /* no hint for this address: the hash is computed */
    ck_assert_int_eq(check_once(store, other), RL_ST_DENIED);
    ck_assert_int_eq(check_once(store, "user-a"), RL_ST_DENIED);
    ck_assert_uint_eq(rl_store_memory_longest_chain(store) <= 2, 1);
    store->ops->free(store);
}
END_TEST

/* A prefetched name is decided against its own entry (the hint taken). */
START_TEST(test_prefetched_hash_finds_the_entry) {
    int64_t clock = 1000000;
    rl_store *store = rl_store_memory_new_clocked(100, &clock);
    char buf[] = "user-a";
    ck_assert_int_eq(check_once(store, "user-a"), RL_ST_ALLOWED);
    store->ops->prefetch(store, "p", 1, buf, strlen(buf), 0);
    store->ops->prefetch(store, "p", 1, buf, strlen(buf), 1);
    ck_assert_int_eq(check_once(store, buf), RL_ST_DENIED);
    store->ops->free(store);
}
END_TEST

static Suite *hash_suite(void) {
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("hash");
    tcase_add_test(tc, test_processes_draw_their_own_key); /* before any rl_hash_set_key */
    tcase_add_test(tc, test_reference_vectors);
    tcase_add_test(tc, test_pieces_hash_as_whole);
    tcase_add_test(tc, test_name_layout);
    tcase_add_test(tc, test_keys_change_bucket_order);
    tcase_add_test(tc, test_prefetched_hash_is_only_a_hint);
    tcase_add_test(tc, test_prefetched_hash_finds_the_entry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    if (getenv(PROBE_ENV)) {
        printf("%llx\n", (unsigned long long)probe_hash());
        return 0;
    }
    SRunner *runner = srunner_create(hash_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
