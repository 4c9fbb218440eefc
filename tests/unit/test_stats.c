/*
 * test_stats.c: a store's figures to the STATS JSON: figures and groups as before, and
 * figures of the store's servers (Redis Cluster nodes) as one object per node in the
 * "nodes" array, in the order the nodes first appear, with their own groups; out of
 * memory while adding or rendering gives no half answer.
 */
#include "stats.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

// Returns f rendered to compact JSON text with sorted keys (free it).
static char *dump(const rl_store_figures *f) {
    json_t *o = rl_store_figures_json(f);
    ck_assert_ptr_nonnull(o);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    ck_assert_ptr_nonnull(text);
    return text;
}

// Adds the figures of one cluster node as redis_cluster.c does.
static void add_node(rl_store_figures *f, const char *node, const char *role, uint64_t slots,
                     uint64_t calls, double per_call, uint64_t mean, uint64_t max) {
    rl_figures_node_word(f, node, NULL, "role", role);
    rl_figures_node(f, node, NULL, "slots", RL_FIGURE_GAUGE, slots);
    rl_figures_node_word(f, node, NULL, "state", "up");
    rl_figures_node(f, node, NULL, "calls", RL_FIGURE_COUNTER, calls);
    rl_figures_node_ratio(f, node, NULL, "items_per_call", per_call);
    rl_figures_node(f, node, NULL, "errors", RL_FIGURE_COUNTER, 0);
    rl_figures_node(f, node, "latency_us", "mean", RL_FIGURE_GAUGE, mean);
    rl_figures_node(f, node, "latency_us", "max", RL_FIGURE_GAUGE, max);
}

START_TEST(test_without_nodes_unchanged) {
    rl_store_figures f = {.type = "redis"};
    rl_figures_word(&f, NULL, "state", "up");
    rl_figures_add(&f, NULL, "calls", RL_FIGURE_COUNTER, 4);
    rl_figures_ratio(&f, NULL, "items_per_call", 2.5);
    rl_figures_add(&f, "cache", "enabled", RL_FIGURE_FLAG, 1);
    rl_figures_add(&f, "errors", "timeout", RL_FIGURE_COUNTER, 3);
    f.latency = (rl_latency_figures){1, 10, 100, 200, 300};
    char *text = dump(&f);
    ck_assert_str_eq(text, "{\"cache\":{\"enabled\":true},\"calls\":4,\"errors\":{\"timeout\":3},"
                           "\"items_per_call\":2.5,\"latency_us\":{\"count\":10,\"max\":300,"
                           "\"p50\":100,\"p99\":200},\"state\":\"up\",\"type\":\"redis\"}");
    free(text);
    rl_store_figures_free(&f);
}
END_TEST

START_TEST(test_nodes_in_order) {
    rl_store_figures f = {.type = "redis"};
    rl_figures_word(&f, NULL, "mode", "cluster");
    add_node(&f, "127.0.0.1:7001", "master", 5462, 12, 3.5, 140, 900);
    add_node(&f, "127.0.0.1:7000", "master", 5461, 7, 1, 90, 300);
    add_node(&f, "127.0.0.1:7003", "replica", 0, 0, 0, 0, 0);
    rl_figures_add(&f, "cluster", "moved", RL_FIGURE_COUNTER, 2);
    char *text = dump(&f);
    ck_assert_str_eq(
        text, "{\"cluster\":{\"moved\":2},\"mode\":\"cluster\",\"nodes\":["
              "{\"calls\":12,\"errors\":0,\"items_per_call\":3.5,\"latency_us\":{\"max\":900,"
              "\"mean\":140},\"node\":\"127.0.0.1:7001\",\"role\":\"master\",\"slots\":5462,"
              "\"state\":\"up\"},"
              "{\"calls\":7,\"errors\":0,\"items_per_call\":1.0,\"latency_us\":{\"max\":300,"
              "\"mean\":90},\"node\":\"127.0.0.1:7000\",\"role\":\"master\",\"slots\":5461,"
              "\"state\":\"up\"},"
              "{\"calls\":0,\"errors\":0,\"items_per_call\":0.0,\"latency_us\":{\"max\":0,"
              "\"mean\":0},\"node\":\"127.0.0.1:7003\",\"role\":\"replica\",\"slots\":0,"
              "\"state\":\"up\"}],\"type\":\"redis\"}");
    free(text);
    rl_store_figures_free(&f);
}
END_TEST

// A node's figures need not be added together: a later figure of a node already seen
// joins its object (matched by the name's text, not its address), and the node keeps
// its place.
START_TEST(test_node_figures_interleaved) {
    rl_store_figures f = {.type = "redis"};
    char again[] = "10.0.0.1:6379";
    rl_figures_node(&f, "10.0.0.1:6379", NULL, "calls", RL_FIGURE_COUNTER, 1);
    rl_figures_node(&f, "10.0.0.2:6379", NULL, "calls", RL_FIGURE_COUNTER, 2);
    rl_figures_node_word(&f, again, NULL, "state", "down");
    char *text = dump(&f);
    ck_assert_str_eq(text, "{\"nodes\":[{\"calls\":1,\"node\":\"10.0.0.1:6379\",\"state\":"
                           "\"down\"},{\"calls\":2,\"node\":\"10.0.0.2:6379\"}],"
                           "\"type\":\"redis\"}");
    free(text);
    rl_store_figures_free(&f);
}
END_TEST

// A node name is data (a host a cluster reported): it comes out as a JSON string,
// escaped, whatever it holds.
START_TEST(test_node_name_escaped) {
    rl_store_figures f = {.type = "redis"};
    rl_figures_node(&f, "we\"ird\\host:1", NULL, "slots", RL_FIGURE_GAUGE, 1);
    char *text = dump(&f);
    ck_assert_str_eq(text, "{\"nodes\":[{\"node\":\"we\\\"ird\\\\host:1\",\"slots\":1}],"
                           "\"type\":\"redis\"}");
    free(text);
    rl_store_figures_free(&f);
}
END_TEST

// Out of memory while adding: the list is marked incomplete and renders to nothing;
// while rendering: nothing either (never half an object).
START_TEST(test_out_of_memory) {
    rl_store_figures f = {.type = "redis"};
    rl_alloc_fail_after(0);
    rl_figures_node(&f, "a:1", NULL, "calls", RL_FIGURE_COUNTER, 1);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(f.failed, 1);
    ck_assert_uint_eq(f.count, 0);
    ck_assert_ptr_null(rl_store_figures_json(&f));
    rl_store_figures_free(&f);
    f = (rl_store_figures){.type = "redis"};
    add_node(&f, "a:1", "master", 1, 2, 2, 3, 4);
    add_node(&f, "b:2", "master", 1, 2, 2, 3, 4);
    char *whole = dump(&f);
    int failures = 0;
    json_set_alloc_funcs(rl_malloc, rl_free);
    for (long n = 0; n < 64; n++) {
        rl_alloc_fail_after(n);
        json_t *o = rl_store_figures_json(&f);
        rl_alloc_fail_after(-1);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        failures += !o;
        if (o)
            ck_assert_str_eq(text, whole);
        rl_free(text);
        json_decref(o);
    }
    json_set_alloc_funcs(malloc, free);
    ck_assert_int_gt(failures, 8);
    free(whole);
    rl_store_figures_free(&f);
}
END_TEST

static Suite *stats_suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_without_nodes_unchanged);
    tcase_add_test(tc, test_nodes_in_order);
    tcase_add_test(tc, test_node_figures_interleaved);
    tcase_add_test(tc, test_node_name_escaped);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(stats_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
