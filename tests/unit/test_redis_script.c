/*
 * test_redis_script.c: the Redis script as the daemon sends it (daemon/redis_script.lua,
 * shrunk at build time) agrees with the C side on every number they share: each line
 * that defines one in the script is rebuilt here from the C headers and must appear in
 * the script verbatim. A number changed on one side only fails here.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo.h"
#include "redis_script.h"
#include "store.h"

#define LINE_MAX_BYTES 256 /* room for one expected line */

// Fails unless the script holds line (whole, between two newlines).
static void assert_line(const char *line) {
    char want[LINE_MAX_BYTES + 2];
    ck_assert_int_lt(snprintf(want, sizeof(want), "\n%s\n", line), (int)sizeof(want));
    ck_assert_msg(strstr(rl_redis_script, want) != NULL, "the script lacks the line: %s", line);
}

START_TEST(algorithm_numbers_match_rl_algorithm) {
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof(line),
             "local ALGO_FIXED_WINDOW,ALGO_SLIDING_LOG,ALGO_SLIDING_COUNTER=%d,%d,%d",
             RL_ALGO_FIXED_WINDOW, RL_ALGO_SLIDING_LOG, RL_ALGO_SLIDING_COUNTER);
    assert_line(line);
    snprintf(line, sizeof(line), "local ALGO_TOKEN_BUCKET,ALGO_GCRA,ALGO_CONCURRENCY=%d,%d,%d",
             RL_ALGO_TOKEN_BUCKET, RL_ALGO_GCRA, RL_ALGO_CONCURRENCY);
    assert_line(line);
}
END_TEST

START_TEST(operation_numbers_match_rl_store_op) {
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof(line), "local OP_CHECK,OP_PEEK,OP_ADJUST,OP_RESET=%d,%d,%d,%d",
             RL_STORE_CHECK, RL_STORE_PEEK, RL_STORE_ADJUST, RL_STORE_RESET);
    assert_line(line);
    snprintf(line, sizeof(line), "local OP_ACQUIRE,OP_RELEASE,OP_RENEW=%d,%d,%d", RL_STORE_ACQUIRE,
             RL_STORE_RELEASE, RL_STORE_RENEW);
    assert_line(line);
    snprintf(line, sizeof(line), "local OP_REFUND=%d", RL_STORE_REFUND);
    assert_line(line);
    snprintf(line, sizeof(line), "local OP_RELEASE_ALONE=%d", RL_REDIS_OP_RELEASE_ALONE);
    assert_line(line);
    /* the hinted RELEASE is an op of its own in a lease form code */
    ck_assert_int_gt(RL_REDIS_OP_RELEASE_ALONE, RL_STORE_RENEW);
    ck_assert_int_lt(RL_REDIS_OP_RELEASE_ALONE, RL_REDIS_LEASE_OPS);
    /* the script tells a lease batch by op >= OP_ACQUIRE */
    ck_assert_int_gt(RL_STORE_ACQUIRE, RL_STORE_RESET);
    ck_assert_int_gt(RL_STORE_RELEASE, RL_STORE_ACQUIRE);
    ck_assert_int_gt(RL_STORE_RENEW, RL_STORE_ACQUIRE);
}
END_TEST

START_TEST(argument_and_reply_layout_match_redis_script_h) {
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof(line), "local RATE_ARGS,BATCH_ARGS,ITEM_ARGS=%d,%d,%d",
             RL_REDIS_RATE_ARGS, RL_REDIS_BATCH_ARGS, RL_REDIS_ITEM_ARGS);
    assert_line(line);
    snprintf(line, sizeof(line),
             "local VERDICT_FIELDS,COMPACT_FIELDS,CAPPED,REMAINING_SCALE=%d,%d,%d,%d",
             RL_REDIS_VERDICT_FIELDS, RL_REDIS_COMPACT_FIELDS, RL_REDIS_CAPPED,
             RL_REDIS_REMAINING_SCALE);
    assert_line(line);
    snprintf(
        line, sizeof(line), "local LEASE_ARGS,LEASE_FIELDS,LEASE_UNKNOWN,MAX_LEASES=%d,%d,%d,%d",
        RL_REDIS_LEASE_ARGS, RL_REDIS_LEASE_FIELDS, RL_REDIS_LEASE_UNKNOWN, RL_REDIS_MAX_LEASES);
    assert_line(line);
    snprintf(line, sizeof(line), "local CLUSTER_MARK,REDIRECT='%s','%s'", RL_REDIS_CLUSTER_MARK,
             RL_REDIS_REDIRECT);
    assert_line(line);
    snprintf(line, sizeof(line), "local LEASE_MARK,LEASE_OPS,LEASE_RUN,LEASE_SCALE='%s',%d,'%s',%d",
             RL_REDIS_LEASE_MARK, RL_REDIS_LEASE_OPS, RL_REDIS_LEASE_RUN, RL_REDIS_LEASE_SCALE);
    assert_line(line);
    snprintf(line, sizeof(line), "local LEASE_SHORT=%d", RL_REDIS_LEASE_SHORT);
    assert_line(line);
    /* a short answer's low part is no outcome x 2 + flag, and fits below the scale */
    ck_assert_int_gt(RL_REDIS_LEASE_SHORT, RL_REDIS_LEASE_UNKNOWN * 2 + 1);
    ck_assert_int_lt(RL_REDIS_LEASE_SHORT + 1, RL_REDIS_LEASE_SCALE);
    /* a lease form batch's op and limit set share one integer */
    ck_assert_int_gt(RL_REDIS_LEASE_OPS, RL_STORE_RENEW);
    /* a lease's outcome is neither allowed (1) nor denied (0) */
    ck_assert_int_gt(RL_REDIS_LEASE_UNKNOWN, 1);
    /* the flag bit is not the allowed bit, and a compact verdict keeps allowed apart */
    ck_assert_int_eq(RL_REDIS_CAPPED & 1, 0);
    ck_assert_int_ge(RL_REDIS_REMAINING_SCALE, 2);
}
END_TEST

// What is sent is what the comment at the limit in redis_script.c says: no comments,
// within 64 KB.
START_TEST(the_script_is_sent_without_comments) {
    ck_assert_uint_eq(strlen(rl_redis_script), rl_redis_script_len);
    ck_assert_uint_le(rl_redis_script_len, 65536);
    ck_assert_ptr_null(strstr(rl_redis_script, "--"));
    ck_assert_ptr_null(strstr(rl_redis_script, "\n "));
    ck_assert_ptr_nonnull(strstr(rl_redis_script, "\nreturn out\n"));
    /* the cluster variant is the same script behind its shebang line */
    ck_assert_uint_eq(rl_redis_cluster_script_len,
                      strlen(RL_REDIS_CLUSTER_SHEBANG) + rl_redis_script_len);
    ck_assert_str_eq(rl_redis_cluster_script + strlen(RL_REDIS_CLUSTER_SHEBANG), rl_redis_script);
}
END_TEST

static Suite *script_suite(void) {
    Suite *s = suite_create("redis_script");
    TCase *tc = tcase_create("script");
    tcase_add_test(tc, algorithm_numbers_match_rl_algorithm);
    tcase_add_test(tc, operation_numbers_match_rl_store_op);
    tcase_add_test(tc, argument_and_reply_layout_match_redis_script_h);
    tcase_add_test(tc, the_script_is_sent_without_comments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(script_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
