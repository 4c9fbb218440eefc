/*
 * test_metrics.c: STATS JSON to Prometheus text: families, labels and their escaping,
 * figures a store does not give left out, the store's latency as a summary or (with
 * buckets) a histogram, bad input.
 */
#include "metrics.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static const char *const STATS =
    "{\"policies\":[{\"name\":\"api\",\"allowed\":7,\"denied\":3,\"shadow_denied\":1,"
    "\"exempt\":2,\"blocked\":1,\"errors\":4,\"store_errors\":5,\"fallbacks\":6},"
    "{\"name\":\"we\\\"ird\\\\na\\nme\",\"allowed\":0,\"denied\":0,\"shadow_denied\":0,"
    "\"exempt\":0,\"blocked\":0,\"errors\":0,\"store_errors\":0,\"fallbacks\":0}],"
    "\"store\":{\"type\":\"memory\",\"keys\":12},\"uptime_s\":99,\"in_flight\":0,"
    "\"refused\":2,\"reloads\":1,\"reload_failures\":0,\"connections\":3,"
    "\"denial_log\":{\"lines\":10,\"suppressed\":90,\"errors\":0}}";

static char *render(const char *json) {
    size_t len = 0;
    char *text = rl_metrics_render(json, strlen(json), &len);
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
    char *text = render(STATS);
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
    assert_line(text, "rlimitd_store_keys 12");
    assert_line(text, "rlimitd_denial_log_suppressed_total 90");
    assert_line(text,
                "rlimitd_decisions_total{policy=\"we\\\"ird\\\\na\\nme\",result=\"allowed\"} 0");
    ck_assert_ptr_null(strstr(text, "latency"));
    rl_free(text);
}
END_TEST

START_TEST(test_absent_figures_are_left_out) {
    char *text = render("{\"policies\":[],\"store\":{\"type\":\"redis\"}}");
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strstr(text, "rlimitd_connections"));
    ck_assert_ptr_null(strstr(text, "rlimitd_store_keys"));
    ck_assert_ptr_null(strstr(text, "denial_log"));
    rl_free(text);
}
END_TEST

START_TEST(test_latency_summary) {
    char *text = render("{\"policies\":[],\"store\":{\"type\":\"redis\",\"latency_us\":"
                        "{\"count\":42,\"p50\":150,\"p99\":2300,\"max\":9000}}}");
    ck_assert_ptr_nonnull(text);
    assert_line(text, "# TYPE rlimitd_store_latency_seconds summary");
    assert_line(text, "rlimitd_store_latency_seconds{quantile=\"0.5\"} 0.00015");
    assert_line(text, "rlimitd_store_latency_seconds{quantile=\"0.99\"} 0.0023");
    assert_line(text, "rlimitd_store_latency_seconds_count 42");
    assert_line(text, "rlimitd_store_latency_max_seconds 0.009");
    ck_assert_ptr_null(strstr(text, "_bucket"));
    rl_free(text);
}
END_TEST

START_TEST(test_latency_histogram) {
    char *text = render("{\"policies\":[],\"store\":{\"latency_us\":{\"count\":3,"
                        "\"sum\":5000740,\"buckets\":[[50,1],[1000,2],[1000000,2]]}}}");
    ck_assert_ptr_nonnull(text);
    assert_line(text, "# TYPE rlimitd_store_latency_seconds histogram");
    assert_line(text, "rlimitd_store_latency_seconds_bucket{le=\"5e-05\"} 1");
    assert_line(text, "rlimitd_store_latency_seconds_bucket{le=\"0.001\"} 2");
    assert_line(text, "rlimitd_store_latency_seconds_bucket{le=\"1\"} 2");
    assert_line(text, "rlimitd_store_latency_seconds_bucket{le=\"+Inf\"} 3");
    assert_line(text, "rlimitd_store_latency_seconds_sum 5.00074");
    assert_line(text, "rlimitd_store_latency_seconds_count 3");
    ck_assert_ptr_null(strstr(text, "quantile"));
    rl_free(text);
}
END_TEST

START_TEST(test_bad_input) {
    size_t len;
    ck_assert_ptr_null(rl_metrics_render("{", 1, &len));
    ck_assert_ptr_null(rl_metrics_render("[1]", 3, &len));
    rl_alloc_fail_after(0);
    char *text = rl_metrics_render(STATS, strlen(STATS), &len);
    rl_alloc_fail_after(-1);
    ck_assert_ptr_null(text);
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_families);
    tcase_add_test(tc, test_absent_figures_are_left_out);
    tcase_add_test(tc, test_latency_summary);
    tcase_add_test(tc, test_latency_histogram);
    tcase_add_test(tc, test_bad_input);
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
