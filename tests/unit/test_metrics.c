/*
 * test_metrics.c: a stats snapshot to Prometheus text (families, labels and their
 * escaping, figures a daemon does not have left out, every store figure named by one
 * rule, the store's latency as a summary, out of memory); and, on a real engine with
 * traffic, /metrics and the STATS JSON agreeing on every figure.
 */
#include "metrics.h"

#include <check.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "engine.h"

static rl_policy_figures two_policies[] = {
    {"api",
     {.allowed = 7,
      .denied = 3,
      .shadow_denied = 1,
      .exempt = 2,
      .blocked = 1,
      .errors = 4,
      .store_errors = 5,
      .fallbacks = 6},
     0},
    {"we\"ird\\na\nme", {0}, 0},
};

// A daemon's snapshot: two policies, a memory store of 12 keys, 3 connections, a
// denial log.
static rl_stats sample(void) {
    rl_stats s = {.policies = two_policies,
                  .policy_count = 2,
                  .uptime_s = 99,
                  .refused = 2,
                  .reloads = 1,
                  .refused_peers = 8,
                  .auth_failures = 9,
                  .has_connections = 1,
                  .connections = 3,
                  .has_denial_log = 1,
                  .denial_lines = 10,
                  .denial_suppressed = 90,
                  .denial_errors = 11};
    s.store.type = "memory";
    rl_figures_add(&s.store, NULL, "keys", RL_FIGURE_GAUGE, 12);
    return s;
}

static char *render(const rl_stats *s) {
    size_t len = 0;
    char *text = rl_metrics_render(s, &len);
    if (text)
        ck_assert_uint_eq(strlen(text), len);
    return text;
}

static void assert_line(const char *text, const char *line) {
    char needle[512];
    snprintf(needle, sizeof(needle), "\n%s\n", line);
    ck_assert_msg(strstr(text, needle) || strncmp(text, line, strlen(line)) == 0,
                  "no line \"%s\" in:\n%s", line, text);
}

START_TEST(test_families) {
    rl_stats s = sample();
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    assert_line(text, "# TYPE rlimitd_decisions_total counter");
    assert_line(text, "rlimitd_decisions_total{policy=\"api\",result=\"allowed\"} 7");
    assert_line(text, "rlimitd_decisions_total{policy=\"api\",result=\"denied\"} 3");
    assert_line(text, "rlimitd_decisions_total{policy=\"api\",result=\"shadow_denied\"} 1");
    assert_line(text, "rlimitd_decisions_total{policy=\"api\",result=\"error\"} 4");
    assert_line(text, "rlimitd_exempt_total{policy=\"api\"} 2");
    assert_line(text, "rlimitd_blocked_total{policy=\"api\"} 1");
    assert_line(text, "rlimitd_store_errors_total{policy=\"api\"} 5");
    assert_line(text, "rlimitd_fallbacks_total{policy=\"api\"} 6");
    assert_line(text, "# TYPE rlimitd_connections gauge");
    assert_line(text, "rlimitd_connections 3");
    assert_line(text, "rlimitd_uptime_seconds 99");
    assert_line(text, "rlimitd_refused_total 2");
    assert_line(text, "rlimitd_reloads_total 1");
    assert_line(text, "rlimitd_refused_peers_total 8");
    assert_line(text, "rlimitd_auth_failures_total 9");
    assert_line(text, "# TYPE rlimitd_store_keys gauge");
    assert_line(text, "rlimitd_store_keys 12");
    assert_line(text, "rlimitd_denial_log_lines_total 10");
    assert_line(text, "rlimitd_denial_log_suppressed_total 90");
    assert_line(text, "rlimitd_denial_log_errors_total 11");
    assert_line(text,
                "rlimitd_decisions_total{policy=\"we\\\"ird\\\\na\\nme\",result=\"allowed\"} 0");
    ck_assert_ptr_null(strstr(text, "latency"));
    ck_assert_ptr_null(strstr(text, "local_store"));
    rl_free(text);
    rl_store_figures_free(&s.store);
}
END_TEST

START_TEST(test_absent_figures_are_left_out) {
    rl_stats s = {0};
    s.store.type = "redis";
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strstr(text, "rlimitd_connections"));
    ck_assert_ptr_null(strstr(text, "rlimitd_store_keys"));
    ck_assert_ptr_null(strstr(text, "denial_log"));
    rl_free(text);
}
END_TEST

START_TEST(test_store_figures_by_one_rule) {
    rl_stats s = {0};
    s.store.type = "redis";
    rl_figures_word(&s.store, NULL, "state", "up");
    rl_figures_add(&s.store, NULL, "requests", RL_FIGURE_COUNTER, 5);
    rl_figures_add(&s.store, NULL, "ready", RL_FIGURE_GAUGE, 2);
    rl_figures_ratio(&s.store, NULL, "items_per_call", 1.5);
    rl_figures_add(&s.store, "errors", "timeout", RL_FIGURE_COUNTER, 7);
    rl_figures_add(&s.store, "cache", "enabled", RL_FIGURE_FLAG, 1);
    s.has_local = 1;
    s.local.type = "memory";
    rl_figures_add(&s.local, NULL, "keys", RL_FIGURE_GAUGE, 4);
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    assert_line(text, "rlimitd_store_state{state=\"up\"} 1");
    assert_line(text, "# TYPE rlimitd_store_requests_total counter");
    assert_line(text, "rlimitd_store_requests_total 5");
    assert_line(text, "rlimitd_store_ready 2");
    assert_line(text, "rlimitd_store_items_per_call 1.5");
    assert_line(text, "rlimitd_store_errors_timeout_total 7");
    assert_line(text, "rlimitd_store_cache_enabled 1");
    assert_line(text, "rlimitd_local_store_keys 4");
    rl_free(text);
    rl_store_figures_free(&s.store);
    rl_store_figures_free(&s.local);
}
END_TEST

START_TEST(test_latency_summary) {
    rl_stats s = {0};
    s.store.type = "redis";
    s.store.latency = (rl_latency_figures){1, 42, 150, 2300, 9000};
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    assert_line(text, "# TYPE rlimitd_store_latency_seconds summary");
    assert_line(text, "rlimitd_store_latency_seconds{quantile=\"0.5\"} 0.00015");
    assert_line(text, "rlimitd_store_latency_seconds{quantile=\"0.99\"} 0.0023");
    assert_line(text, "rlimitd_store_latency_seconds_count 42");
    assert_line(text, "rlimitd_store_latency_max_seconds 0.009");
    rl_free(text);
}
END_TEST

// Figures of a store's nodes: one family per figure (HELP and TYPE once, its samples
// together although the store adds them node by node), a node="..." label escaped like
// every label, words as a second label; the store's other figures as before, in place.
START_TEST(test_node_figures) {
    rl_stats s = {0};
    s.store.type = "redis";
    rl_figures_word(&s.store, NULL, "mode", "cluster");
    const char *nodes[] = {"127.0.0.1:7000", "we\"ird\\host:1"};
    for (size_t i = 0; i < 2; i++) {
        rl_figures_node_word(&s.store, nodes[i], NULL, "role", i ? "replica" : "master");
        rl_figures_node(&s.store, nodes[i], NULL, "slots", RL_FIGURE_GAUGE, i ? 0 : 5461);
        rl_figures_node(&s.store, nodes[i], NULL, "calls", RL_FIGURE_COUNTER, 12 + i);
        rl_figures_node_ratio(&s.store, nodes[i], NULL, "items_per_call", 2.5);
        rl_figures_node(&s.store, nodes[i], "latency_us", "mean", RL_FIGURE_GAUGE, 140);
    }
    rl_figures_add(&s.store, "cluster", "moved", RL_FIGURE_COUNTER, 3);
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    const char *want =
        "# HELP rlimitd_store_mode A store figure (STATS store, same name).\n"
        "# TYPE rlimitd_store_mode gauge\n"
        "rlimitd_store_mode{mode=\"cluster\"} 1\n"
        "# HELP rlimitd_store_node_role A figure of each store node (STATS store nodes, same "
        "name).\n"
        "# TYPE rlimitd_store_node_role gauge\n"
        "rlimitd_store_node_role{node=\"127.0.0.1:7000\",role=\"master\"} 1\n"
        "rlimitd_store_node_role{node=\"we\\\"ird\\\\host:1\",role=\"replica\"} 1\n"
        "# HELP rlimitd_store_node_slots A figure of each store node (STATS store nodes, same "
        "name).\n"
        "# TYPE rlimitd_store_node_slots gauge\n"
        "rlimitd_store_node_slots{node=\"127.0.0.1:7000\"} 5461\n"
        "rlimitd_store_node_slots{node=\"we\\\"ird\\\\host:1\"} 0\n"
        "# HELP rlimitd_store_node_calls_total A figure of each store node (STATS store nodes, "
        "same name).\n"
        "# TYPE rlimitd_store_node_calls_total counter\n"
        "rlimitd_store_node_calls_total{node=\"127.0.0.1:7000\"} 12\n"
        "rlimitd_store_node_calls_total{node=\"we\\\"ird\\\\host:1\"} 13\n"
        "# HELP rlimitd_store_node_items_per_call A figure of each store node (STATS store "
        "nodes, same name).\n"
        "# TYPE rlimitd_store_node_items_per_call gauge\n"
        "rlimitd_store_node_items_per_call{node=\"127.0.0.1:7000\"} 2.5\n"
        "rlimitd_store_node_items_per_call{node=\"we\\\"ird\\\\host:1\"} 2.5\n"
        "# HELP rlimitd_store_node_latency_us_mean A figure of each store node (STATS store "
        "nodes, same name).\n"
        "# TYPE rlimitd_store_node_latency_us_mean gauge\n"
        "rlimitd_store_node_latency_us_mean{node=\"127.0.0.1:7000\"} 140\n"
        "rlimitd_store_node_latency_us_mean{node=\"we\\\"ird\\\\host:1\"} 140\n"
        "# HELP rlimitd_store_cluster_moved_total A store figure (STATS store, same name).\n"
        "# TYPE rlimitd_store_cluster_moved_total counter\n"
        "rlimitd_store_cluster_moved_total 3\n";
    const char *at = strstr(text, "# HELP rlimitd_store_mode ");
    ck_assert_ptr_nonnull(at);
    ck_assert_str_eq(at, want);
    int failures = 0;
    for (long n = 0; n < 24; n++) { /* out of memory: no text, never a part of it */
        size_t len;
        rl_alloc_fail_after(n);
        char *part = rl_metrics_render(&s, &len);
        rl_alloc_fail_after(-1);
        failures += !part;
        if (part)
            ck_assert_str_eq(part, text);
        rl_free(part);
    }
    ck_assert_int_gt(failures, 0);
    rl_free(text);
    rl_store_figures_free(&s.store);
}
END_TEST

static double sample_of(const char *text, const char *name);

// STATS and /metrics agree on every number of every node (the JSON's node object
// against the samples labelled with its node).
START_TEST(test_node_figures_agree) {
    rl_stats s = {0};
    s.store.type = "redis";
    const char *nodes[] = {"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"};
    for (size_t i = 0; i < 3; i++) {
        rl_figures_node(&s.store, nodes[i], NULL, "calls", RL_FIGURE_COUNTER, 100 * i + 1);
        rl_figures_node_ratio(&s.store, nodes[i], NULL, "items_per_call", 1.25 * (double)i);
        rl_figures_node(&s.store, nodes[i], NULL, "errors", RL_FIGURE_COUNTER, i);
        rl_figures_node(&s.store, nodes[i], "latency_us", "max", RL_FIGURE_GAUGE, 7 * i);
    }
    json_t *o = rl_store_figures_json(&s.store);
    ck_assert_ptr_nonnull(o);
    char *text = render(&s);
    ck_assert_ptr_nonnull(text);
    size_t i;
    json_t *node;
    int n = 0;
    json_array_foreach(json_object_get(o, "nodes"), i, node) {
        const char *addr = json_string_value(json_object_get(node, "node")), *key;
        json_t *v;
        char name[256];
        json_object_foreach(node, key, v) {
            if (!json_is_number(v))
                continue;
            snprintf(name, sizeof(name), "rlimitd_store_node_%s%s{node=\"%s\"}", key,
                     json_is_integer(v) ? "_total" : "", addr);
            ck_assert_msg(sample_of(text, name) == json_number_value(v), "%s differs", name);
            n++;
        }
        snprintf(name, sizeof(name), "rlimitd_store_node_latency_us_max{node=\"%s\"}", addr);
        ck_assert(sample_of(text, name) ==
                  json_number_value(json_object_get(json_object_get(node, "latency_us"), "max")));
    }
    ck_assert_int_eq(n, 9);
    json_decref(o);
    rl_free(text);
    rl_store_figures_free(&s.store);
}
END_TEST

START_TEST(test_out_of_memory) {
    rl_stats s = sample();
    size_t len;
    rl_alloc_fail_after(0);
    char *text = rl_metrics_render(&s, &len);
    rl_alloc_fail_after(-1);
    ck_assert_ptr_null(text);
    rl_store_figures_free(&s.store);
}
END_TEST

/* ---- STATS and /metrics agree ---- */

static const char *const ENGINE_CONFIG =
    "{\"listen\": [\"unix:/tmp/rl-metrics-test.sock\"],"
    " \"policies\": {"
    "  \"api\": {\"algorithm\": \"fixed_window\", \"limit\": 2, \"period\": \"1h\","
    "           \"exempt\": [\"vip\"], \"block\": [\"bad\"]},"
    "  \"shadow\": {\"algorithm\": \"fixed_window\", \"limit\": 1, \"period\": \"1h\","
    "              \"mode\": \"shadow\"}}}";

static int replies;

static void on_reply(void *arg, const rl_response *resp) {
    char **text = arg;
    replies++;
    if (text && resp->text)
        *text = strndup(resp->text, resp->text_len);
}

static void handle(rl_engine *e, uint8_t opcode, const char *policy, const char *key, int64_t cost,
                   char **text) {
    rl_request req = {.id = 1, .opcode = opcode, .item_count = policy ? 1 : 0};
    if (policy)
        req.items[0] = (rl_item){cost, policy, key, (uint16_t)strlen(key), (uint8_t)strlen(policy)};
    rl_engine_handle(e, &req, RL_PERM_ALL | RL_PERM_AUTHENTICATED, on_reply, text);
}

// Returns the value of the sample line "name value" (name with its labels) in text.
static double sample_of(const char *text, const char *name) {
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *at = strstr(text, needle);
    ck_assert_msg(at, "/metrics has no %s", name);
    return strtod(at + strlen(needle), NULL);
}

// Checks the figure name (with _total if /metrics has it so) against a JSON number or
// boolean; returns 1.
static int agree_figure(const char *text, const char *name, json_t *v) {
    char total[200], full[200];
    snprintf(total, sizeof(total), "\n%s_total ", name);
    snprintf(full, sizeof(full), "%s%s", name, strstr(text, total) ? "_total" : "");
    double want = json_is_boolean(v) ? json_is_true(v) : json_number_value(v);
    ck_assert_msg(sample_of(text, full) == want, "%s differs from STATS", full);
    return 1;
}

// Every number of a store's JSON object has its metric, PREFIX[GROUP_]NAME[_total].
static int agree_store(const char *text, json_t *store, const char *prefix) {
    const char *key, *inner;
    json_t *v, *w;
    char name[160];
    int n = 0;
    json_object_foreach(store, key, v) {
        snprintf(name, sizeof(name), "%s%s", prefix, key);
        if (json_is_number(v) || json_is_boolean(v))
            n += agree_figure(text, name, v);
        if (!json_is_object(v) || strcmp(key, "latency_us") == 0)
            continue;
        json_object_foreach(v, inner, w) {
            snprintf(name, sizeof(name), "%s%s_%s", prefix, key, inner);
            n += agree_figure(text, name, w);
        }
    }
    return n;
}

// Checks every counter of the STATS JSON against /metrics; returns how many.
static int agree(const char *text, json_t *stats) {
    static const char *const per_policy[][3] = {
        {"allowed", "rlimitd_decisions_total", ",result=\"allowed\""},
        {"denied", "rlimitd_decisions_total", ",result=\"denied\""},
        {"shadow_denied", "rlimitd_decisions_total", ",result=\"shadow_denied\""},
        {"errors", "rlimitd_decisions_total", ",result=\"error\""},
        {"exempt", "rlimitd_exempt_total", ""},
        {"blocked", "rlimitd_blocked_total", ""},
        {"store_errors", "rlimitd_store_errors_total", ""},
        {"fallbacks", "rlimitd_fallbacks_total", ""}};
    static const char *const top[][2] = {{"in_flight", "rlimitd_in_flight"},
                                         {"refused", "rlimitd_refused_total"},
                                         {"reloads", "rlimitd_reloads_total"},
                                         {"reload_failures", "rlimitd_reload_failures_total"},
                                         {"refused_peers", "rlimitd_refused_peers_total"},
                                         {"auth_failures", "rlimitd_auth_failures_total"}};
    size_t i;
    json_t *p;
    int n = 0;
    json_array_foreach(json_object_get(stats, "policies"), i, p) {
        for (size_t f = 0; f < sizeof(per_policy) / sizeof(per_policy[0]); f++, n++) {
            char name[256];
            snprintf(name, sizeof(name), "%s{policy=\"%s\"%s}", per_policy[f][1],
                     json_string_value(json_object_get(p, "name")), per_policy[f][2]);
            ck_assert_msg(sample_of(text, name) ==
                              json_number_value(json_object_get(p, per_policy[f][0])),
                          "%s differs", name);
        }
    }
    for (size_t f = 0; f < sizeof(top) / sizeof(top[0]); f++, n++)
        ck_assert_msg(sample_of(text, top[f][1]) ==
                          json_number_value(json_object_get(stats, top[f][0])),
                      "%s differs", top[f][1]);
    return n + agree_store(text, json_object_get(stats, "store"), "rlimitd_store_");
}

START_TEST(test_stats_and_metrics_agree) {
    struct event_base *base = event_base_new();
    char err[512];
    rl_config *c = rl_config_parse(ENGINE_CONFIG, "test.json", err, sizeof(err));
    ck_assert_msg(c, "%s", err);
    rl_engine *e = rl_engine_new(base, c, err, sizeof(err));
    ck_assert_msg(e, "%s", err);
    for (int i = 0; i < 5; i++) {
        handle(e, RL_OP_CHECK, "api", "k", 1, NULL);    /* 2 allowed, 3 denied */
        handle(e, RL_OP_CHECK, "shadow", "s", 1, NULL); /* 1 allowed, 4 shadow denied */
    }
    handle(e, RL_OP_CHECK, "api", "vip", 1, NULL); /* exempt */
    handle(e, RL_OP_CHECK, "api", "bad", 1, NULL); /* blocked */
    handle(e, RL_OP_CHECK, "api", "k", 0, NULL);   /* an error */
    rl_engine_note_auth_failure(e);
    rl_engine_refuse(e, RL_OP_CHECK, 9, RL_ST_BUSY, on_reply, NULL);
    char *json_text = NULL;
    handle(e, RL_OP_STATS, NULL, NULL, 0, &json_text);
    ck_assert_ptr_nonnull(json_text);
    rl_stats s;
    ck_assert_int_eq(rl_engine_stats(e, &s), RL_OK);
    size_t len;
    char *text = rl_metrics_render(&s, &len);
    rl_stats_free(&s);
    ck_assert_ptr_nonnull(text);
    json_t *stats = json_loads(json_text, 0, NULL);
    ck_assert_ptr_nonnull(stats);
    ck_assert_int_ge(agree(text, stats), 2 * 8 + 6 + 5);
    ck_assert_int_eq(sample_of(text, "rlimitd_decisions_total{policy=\"api\",result=\"denied\"}"),
                     4);
    ck_assert_int_eq(sample_of(text, "rlimitd_refused_total"), 1);
    json_decref(stats);
    free(json_text);
    rl_free(text);
    rl_engine_free(e);
    event_base_free(base);
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_families);
    tcase_add_test(tc, test_absent_figures_are_left_out);
    tcase_add_test(tc, test_store_figures_by_one_rule);
    tcase_add_test(tc, test_latency_summary);
    tcase_add_test(tc, test_node_figures);
    tcase_add_test(tc, test_node_figures_agree);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_stats_and_metrics_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(metrics_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
