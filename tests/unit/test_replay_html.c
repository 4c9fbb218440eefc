/*
 * test_replay_html.c: the HTML report of `rlimitctl replay --html` (replay_html.c),
 * rendered from report objects shaped like `--json`'s: keys from a hostile log (markup,
 * quotes, controls, a bidi override, a NUL) are text, never markup; the page's main
 * elements are balanced; the summary, the top keys and the overview carry the report's
 * figures; the series chart has a step per point on the right axis; --compare draws both
 * runs on the same axes; a report it cannot draw is refused (-1), never half drawn silently.
 */
#include "replay_html.c" /* the renderer, with its static helpers */

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A report of one run: policy "api" (hostile keys among its top denied) and "login". */
static const char one_run[] =
    "{\"configs\":[\"conf/a&b.json\"],\"lines\":1210,\"requests\":1200,\"malformed\":3,"
    "\"malformed_examples\":[{\"line\":7,\"reason\":\"no <request> field\"}],"
    "\"unmatched\":7,\"span\":{\"first_us\":1733300000000000,\"last_us\":1733300179000000},"
    "\"step_s\":1,\"runs\":[{\"config\":\"conf/a&b.json\",\"policies\":["
    "{\"name\":\"api\",\"algorithm\":\"token_bucket\",\"requests\":1000,\"allowed\":875,"
    "\"denied\":125,\"denied_pct\":12.5,\"keys\":40,\"keys_denied\":3,"
    "\"top_denied\":["
    "{\"key\":\"<script>alert(1)</script>\",\"denied\":100,\"requests\":180,"
    "\"longest_streak\":60,\"max_retry_after_ms\":950},"
    "{\"key\":\"ip:\\\"quoted\\\" 'single'\",\"denied\":20,\"requests\":50,"
    "\"longest_streak\":9,\"max_retry_after_ms\":400},"
    "{\"key\":\"ip:a\\nb\\u202ec\\u0000d\",\"denied\":5,\"requests\":6,"
    "\"longest_streak\":5,\"max_retry_after_ms\":30}],"
    "\"peak\":{\"per_s\":90,\"at_us\":1733300042000000},"
    "\"series\":{\"start_us\":1733300000000000,\"step_s\":1,"
    "\"offered\":[10,90,30,0],\"admitted\":[10,40,30,0]}},"
    "{\"name\":\"login\",\"algorithm\":\"sliding_window_log\",\"requests\":200,"
    "\"allowed\":200,\"denied\":0,\"denied_pct\":0.0,\"keys\":20,\"keys_denied\":0,"
    "\"top_denied\":[],\"peak\":{\"per_s\":4,\"at_us\":1733300001000000},"
    "\"series\":{\"start_us\":1733300000000000,\"step_s\":1,\"offered\":[2,4],"
    "\"admitted\":[2,4]}}]}]}";

/* Two runs (--compare): "api" in both, "extra" in the second only. */
static const char two_runs[] =
    "{\"configs\":[\"a.json\",\"b.json\"],\"lines\":100,\"requests\":100,\"malformed\":0,"
    "\"malformed_examples\":[],\"unmatched\":0,\"exempt\":12,"
    "\"span\":{\"first_us\":1733300000000000,\"last_us\":1733307200000000},\"step_s\":60,"
    "\"runs\":[{\"config\":\"a.json\",\"policies\":[{\"name\":\"api\",\"algorithm\":\"gcra\","
    "\"requests\":100,\"allowed\":60,\"denied\":40,\"denied_pct\":40.0,\"keys\":2,"
    "\"keys_denied\":1,\"top_denied\":[{\"key\":\"ip:1\",\"denied\":40,\"requests\":90,"
    "\"longest_streak\":30,\"max_retry_after_ms\":1000}],"
    "\"peak\":{\"per_s\":5,\"at_us\":1733300060000000},"
    "\"series\":{\"start_us\":1733300000000000,\"step_s\":60,\"offered\":[50,50],"
    "\"admitted\":[30,30]}}]},"
    "{\"config\":\"b.json\",\"policies\":[{\"name\":\"api\",\"algorithm\":\"gcra\","
    "\"requests\":100,\"allowed\":90,\"denied\":10,\"denied_pct\":10.0,\"keys\":2,"
    "\"keys_denied\":2,\"keys_exact\":false,\"top_denied_exact\":false,\"top_denied\":[{\"key\":"
    "\"ip:2\",\"denied\":6,\"requests\":10,"
    "\"longest_streak\":3,\"max_retry_after_ms\":20},{\"key\":\"ip:1\",\"denied\":4,"
    "\"requests\":90,\"longest_streak\":2,\"max_retry_after_ms\":10}],"
    "\"peak\":{\"per_s\":5,\"at_us\":1733300060000000},"
    "\"series\":{\"start_us\":1733300000000000,\"step_s\":60,\"offered\":[50,50],"
    "\"admitted\":[45,45]}},{\"name\":\"extra\",\"algorithm\":\"fixed_window\","
    "\"requests\":0,\"allowed\":0,\"denied\":0,\"denied_pct\":0,\"keys\":0,\"keys_denied\":0,"
    "\"top_denied\":[],\"peak\":{\"per_s\":0,\"at_us\":0}}]}],"
    "\"changes\":[{\"policy\":\"api\",\"key\":\"ip:1\",\"denied\":[40,4]},"
    "{\"policy\":\"api\",\"key\":\"ip:2\",\"denied\":[0,6]}]}";

static json_t *load(const char *text) {
    json_error_t error;
    json_t *report = json_loads(text, JSON_ALLOW_NUL, &error);
    ck_assert_msg(report != NULL, "test report: %s at %d", error.text, error.position);
    return report;
}

/* Renders report; returns the page (malloc'd) and the renderer's status in *rc. */
static char *render(const json_t *report, int *rc) {
    char *page = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&page, &len);
    ck_assert_ptr_nonnull(out);
    *rc = rl_replay_html(out, report);
    fclose(out);
    ck_assert_uint_eq(strlen(page), len); /* no NUL byte written */
    return page;
}

static char *render_text(const char *text) {
    json_t *report = load(text);
    int rc;
    char *page = render(report, &rc);
    ck_assert_int_eq(rc, 0);
    json_decref(report);
    return page;
}

static int count(const char *page, const char *needle) {
    int n = 0;
    for (const char *p = page; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Returns the part of page from the first `from` to the following `to` (malloc'd). */
static char *slice(const char *page, const char *from, const char *to) {
    const char *a = strstr(page, from), *b = a ? strstr(a, to) : NULL;
    ck_assert_msg(a && b, "no %s ... %s in the page", from, to);
    return strndup(a, (size_t)(b - a) + strlen(to));
}

/* Returns what breaks the nesting of page's tags (every element opened is closed in
 * order, except void and self-closed ones; no '<' in text that is not a tag), or NULL. */
static const char *balance_error(const char *page) {
    static const char *const voids[] = {"meta", "br", "hr", "img", "link", "input"};
    static char error[128];
    char stack[256][16];
    int depth = 0;
    for (const char *p = strchr(page, '<'); p; p = strchr(p, '<')) {
        const char *end = strchr(p, '>');
        if (!end)
            return snprintf(error, sizeof(error), "an unclosed tag at %.40s", p), error;
        int closing = p[1] == '/', self = end[-1] == '/', is_void = 0;
        const char *name = p + 1 + closing;
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (p[1] == '!' && (p = end))
            continue;
        if (len == 0 || len >= 16)
            return snprintf(error, sizeof(error), "not a tag: %.40s", p), error;
        for (size_t i = 0; i < sizeof(voids) / sizeof(voids[0]); i++)
            is_void |= strlen(voids[i]) == len && !strncmp(voids[i], name, len);
        if (closing &&
            (depth == 0 || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], name, len)))
            return snprintf(error, sizeof(error), "</%.*s> closes <%s>", (int)len, name,
                            depth ? stack[depth - 1] : "nothing"),
                   error;
        if (closing)
            depth--;
        else if (!self && !is_void && depth < 256)
            snprintf(stack[depth++], 16, "%.*s", (int)len, name);
        p = end;
    }
    if (depth)
        return snprintf(error, sizeof(error), "<%s> never closed", stack[depth - 1]), error;
    return NULL;
}

static void assert_balanced(const char *page) {
    const char *error = balance_error(page);
    ck_assert_msg(error == NULL, "%s", error);
}

START_TEST(test_hostile_keys_are_text) {
    char *page = render_text(one_run);
    /* The only elements are the renderer's: no script, no handler, no markup from a key. */
    for (char *p = page; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    ck_assert_ptr_null(strstr(page, "<script"));
    ck_assert_ptr_null(strstr(page, "</script"));
    ck_assert_ptr_null(strstr(page, "<request"));
    ck_assert_ptr_null(strstr(page, "http:"));
    ck_assert_ptr_null(strstr(page, "https:"));
    ck_assert_ptr_null(strstr(page, "url("));
    ck_assert_ptr_null(strstr(page, "@import"));
    free(page);
    page = render_text(one_run);
    /* The hostile key shown escaped: its bar's data-key, tooltip and label, its table row's
     * data-key and cell. */
    ck_assert_int_eq(count(page, "&lt;script&gt;alert(1)&lt;/script&gt;"), 5);
    ck_assert_ptr_nonnull(strstr(page, "<tr data-key=\"&lt;script&gt;alert(1)&lt;/script&gt;\">"));
    /* Quotes cannot end an attribute; the space is shown as \x20 (rl_escape's rule). */
    ck_assert_ptr_nonnull(strstr(page, "data-key=\"ip:&quot;quoted&quot;\\x20&#39;single&#39;\""));
    /* A newline, a right-to-left override and a NUL are shown as escapes, not as themselves. */
    ck_assert_ptr_nonnull(strstr(page, "data-key=\"ip:a\\x0ab\\xe2\\x80\\xaec\\x00d\""));
    ck_assert_ptr_null(strstr(page, "\xe2\x80\xae"));
    ck_assert_ptr_null(strstr(page, "ip:a\nb"));
    /* A config path and a malformed line's reason, from outside too, are escaped. */
    ck_assert_ptr_nonnull(strstr(page, "<code>conf/a&amp;b.json</code>"));
    ck_assert_ptr_nonnull(strstr(page, "<li>line 7: no &lt;request&gt; field</li>"));
    free(page);
}
END_TEST

START_TEST(test_page_is_balanced) {
    char *page = render_text(one_run);
    assert_balanced(page);
    ck_assert_ptr_nonnull(strstr(page, "<!DOCTYPE html>"));
    ck_assert_int_eq(count(page, "<section class=\"policy\""), 2);
    ck_assert_int_eq(count(page, "<svg class=\"series\""), 2);
    ck_assert_int_eq(count(page, "<svg class=\"top-keys\""), 2);
    ck_assert_int_eq(count(page, "<table class=\"summary\">"), 2);
    free(page);
    page = render_text(two_runs);
    assert_balanced(page);
    free(page);
}
END_TEST

START_TEST(test_balance_check_catches_a_stray_tag) {
    /* The checker itself: what it passes and what it does not. */
    ck_assert_ptr_null(balance_error("<!DOCTYPE html><p>a<br><svg><path d=\"M1\"/></svg></p>"));
    ck_assert_str_eq(balance_error("<p><b>a</p>"), "</p> closes <b>");
    ck_assert_str_eq(balance_error("<p>a</p></p>"), "</p> closes <nothing>");
    ck_assert_str_eq(balance_error("<section><p>a</p>"), "<section> never closed");
    ck_assert_str_eq(balance_error("<p>1 < 2</p>"), "not a tag: < 2</p>");
    ck_assert_str_eq(balance_error("<p>a</p><"), "an unclosed tag at <");
}
END_TEST

START_TEST(test_summary_carries_the_figures) {
    char *page = render_text(one_run);
    char *api = slice(page, "<section class=\"policy\" data-policy=\"api\">", "</section>");
    static const char *const cells[] = {
        "<td data-field=\"algorithm\" data-run=\"0\">token_bucket</td>",
        "<td data-field=\"requests\" data-run=\"0\">1000</td>",
        "<td data-field=\"allowed\" data-run=\"0\">875</td>",
        "<td data-field=\"denied\" data-run=\"0\">125</td>",
        "<td data-field=\"denied_pct\" data-run=\"0\">12.50</td>",
        "<td data-field=\"keys\" data-run=\"0\">40</td>",
        "<td data-field=\"keys_denied\" data-run=\"0\">3</td>",
        "<td data-field=\"peak_per_s\" data-run=\"0\">90</td>",
        "<td data-field=\"peak_at\" data-run=\"0\" data-value=\"1733300042000000\">"
        "2024-12-04 08:14:02</td>",
        /* the top keys' figures */
        "<td data-field=\"denied\" data-run=\"0\">100</td><td data-field=\"requests\" "
        "data-run=\"0\">180</td><td data-field=\"longest_streak\" data-run=\"0\">60</td>"
        "<td data-field=\"max_retry_after_ms\" data-run=\"0\">950</td>",
    };
    for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++)
        ck_assert_msg(strstr(api, cells[i]), "api lacks %s", cells[i]);
    /* Bars: one per top key, the longest for the most denied. */
    ck_assert_int_eq(count(api, "<rect class=\"bar run0\""), 3);
    ck_assert_ptr_nonnull(strstr(api, "width=\"560.0\" height=\"16.0\"/><text x=\"866.0\" "
                                      "y=\"41.0\">100</text>"));
    char *login = slice(page, "data-policy=\"login\">", "</section>");
    ck_assert_ptr_nonnull(strstr(login, "<td data-field=\"denied_pct\" data-run=\"0\">0.00</td>"));
    ck_assert_ptr_nonnull(strstr(login, "No key was denied."));
    ck_assert_ptr_null(strstr(login, "class=\"top-denied\""));
    /* The overview. */
    ck_assert_ptr_nonnull(strstr(page, "<td data-field=\"lines\">1210</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td data-field=\"malformed\">3</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td data-field=\"unmatched\">7</td>"));
    ck_assert_ptr_null(strstr(page, "data-field=\"exempt\"")); /* not in this report */
    ck_assert_ptr_null(strstr(page, "estimate"));
    ck_assert_ptr_nonnull(
        strstr(page, "<td data-field=\"span\">2024-12-04 08:13:20 &#8211; 2024-12-04 08:16:19"));
    free(login);
    free(api);
    free(page);
}
END_TEST

START_TEST(test_series_has_a_step_per_point) {
    char *page = render_text(one_run);
    char *api = slice(page, "data-policy=\"api\">", "</section>");
    char *chart = slice(api, "<svg class=\"series\"", "</svg>");
    char *offered = slice(chart, "<path class=\"offered run0\"", "/>");
    char *admitted = slice(chart, "<path class=\"admitted run0\"", "/>");
    /* 4 points over 4 s on [64, 928]: 216 units each; values on 0..100 over [252, 28]. */
    ck_assert_str_eq(offered, "<path class=\"offered run0\" data-run=\"0\" d=\"M64.0 229.6H280.0"
                              "L280.0 50.4H496.0L496.0 184.8H712.0L712.0 252.0H928.0\"/>");
    ck_assert_ptr_nonnull(strstr(admitted, "L280.0 162.4H496.0"));
    ck_assert_int_eq(count(chart, "class=\"denied-area\""), 1);
    ck_assert_ptr_nonnull(strstr(chart, ">requests per second</text>"));
    /* Value ticks 0, 20, ..., 100; time ticks every second, labelled in UTC. */
    ck_assert_ptr_nonnull(strstr(chart, "text-anchor=\"end\">100</text>"));
    ck_assert_ptr_null(strstr(chart, "text-anchor=\"end\">120</text>"));
    ck_assert_ptr_nonnull(strstr(chart, ">08:13:20</text>"));
    ck_assert_ptr_nonnull(strstr(chart, ">08:13:24</text>"));
    free(admitted);
    free(offered);
    free(chart);
    free(api);
    free(page);
}
END_TEST

START_TEST(test_compare_draws_both_runs_on_one_axis) {
    char *page = render_text(two_runs);
    char *api = slice(page, "data-policy=\"api\">", "</section>");
    char *chart = slice(api, "<svg class=\"series\"", "</svg>");
    ck_assert_int_eq(count(chart, "<path class=\"offered"), 1); /* the same offered load */
    ck_assert_int_eq(count(chart, "<path class=\"admitted run0\""), 1);
    ck_assert_int_eq(count(chart, "<path class=\"admitted run1\""), 1);
    ck_assert_int_eq(count(chart, "denied-area"), 0);
    ck_assert_ptr_nonnull(strstr(chart, ">requests per minute</text>"));
    ck_assert_ptr_nonnull(strstr(chart, "admitted, a.json"));
    ck_assert_ptr_nonnull(strstr(chart, "admitted, b.json"));
    /* Both runs' figures side by side; a bar per key and run where the key is in the top. */
    ck_assert_ptr_nonnull(strstr(api, "<td data-field=\"denied\" data-run=\"0\">40</td>"
                                      "<td data-field=\"denied\" data-run=\"1\">10</td>"));
    char *bars = slice(api, "<svg class=\"top-keys\"", "</svg>");
    ck_assert_int_eq(count(bars, "<rect class=\"bar run0\""), 1);
    ck_assert_int_eq(count(bars, "<rect class=\"bar run1\""), 2);
    ck_assert_int_eq(count(bars, "not in this run&#39;s top keys"), 1);
    /* A policy of the second config only: its section, a dash for the first. */
    char *extra = slice(page, "data-policy=\"extra\">", "</section>");
    ck_assert_ptr_nonnull(strstr(extra, "<td data-field=\"requests\" data-run=\"0\">&#8212;</td>"
                                        "<td data-field=\"requests\" data-run=\"1\">0</td>"));
    ck_assert_ptr_nonnull(strstr(extra, "No time series in the report."));
    ck_assert_ptr_nonnull(strstr(page, "<td data-field=\"denied\" data-run=\"0\">40</td>"
                                       "<td data-field=\"denied\" data-run=\"1\">4</td></tr>"));
    ck_assert_int_eq(count(page, "<section class=\"policy\""), 2);
    /* The overview's exempt count; the second run's estimates said. */
    ck_assert_ptr_nonnull(strstr(page, "<td data-field=\"exempt\">12</td>"));
    ck_assert_ptr_nonnull(strstr(api, "<p class=\"note estimate\" data-run=\"1\">Run 2: distinct "
                                      "keys and keys ever denied and the top denied keys&#39; "
                                      "figures are estimates"));
    ck_assert_int_eq(count(page, "estimate\""), 1);
    free(extra);
    free(bars);
    free(chart);
    free(api);
    free(page);
}
END_TEST

/* Replaces the first `from` in text by `to`; returns the report it parses to. */
static json_t *load_changed(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    ck_assert_ptr_nonnull(at);
    char *changed = malloc(strlen(text) + strlen(to) + 1);
    snprintf(changed, strlen(text) + strlen(to) + 1, "%.*s%s%s", (int)(at - text), text, to,
             at + strlen(from));
    json_t *report = load(changed);
    free(changed);
    return report;
}

START_TEST(test_reports_it_cannot_draw_are_refused) {
    static const char *const breaks[][2] = {
        {"\"runs\":[", "\"nothing\":["},                           /* no runs */
        {"{\"name\":\"api\"", "{\"nom\":\"api\""},                 /* a policy without a name */
        {"\"admitted\":[10,40,30,0]", "\"admitted\":[10,40,30]"},  /* lengths differ */
        {"\"offered\":[10,90,30,0]", "\"offered\":[10,-90,30,0]"}, /* not a count */
        {"\"step_s\":1,\"offered\"", "\"step_s\":0,\"offered\""},  /* no step */
    };
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        json_t *report = load_changed(one_run, breaks[i][0], breaks[i][1]);
        int rc;
        free(render(report, &rc));
        ck_assert_msg(rc == -1, "report %zu drawn", i);
        json_decref(report);
    }
    json_t *array = json_array();
    int rc;
    free(render(array, &rc));
    ck_assert_int_eq(rc, -1);
    json_decref(array);
}
END_TEST

START_TEST(test_out_of_memory_is_an_error) {
    json_t *report = load(one_run);
    int rc;
    rl_alloc_fail_after(3);
    free(render(report, &rc));
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(rc, -1);
    json_decref(report);
}
END_TEST

START_TEST(test_axis_steps_are_round) {
    ck_assert_int_eq(nice_step(0, 5), 1);
    ck_assert_int_eq(nice_step(5, 5), 1);
    ck_assert_int_eq(nice_step(90, 5), 20);
    ck_assert_int_eq(nice_step(101, 5), 50);
    ck_assert_int_eq(nice_step(1000000, 5), 200000);
    ck_assert_int_eq(time_step(4), 1);
    ck_assert_int_eq(time_step(3600), 600);
    ck_assert_int_eq(time_step(86400), 10800);
    ck_assert_int_eq(time_step(30 * 86400), 604800);
    ck_assert_int_eq(time_step(400 * 86400) % 86400, 0);
}
END_TEST

START_TEST(test_long_keys_are_cut_in_charts_only) {
    char key[600];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    memcpy(key, "ip:\xc3\xa9", 5); /* a two-byte character near the start */
    json_t *report = load(one_run);
    json_t *entry = json_array_get(
        json_object_get(
            json_array_get(
                json_object_get(json_array_get(json_object_get(report, "runs"), 0), "policies"), 0),
            "top_denied"),
        0);
    json_object_set_new(entry, "key", json_string(key));
    int rc;
    char *page = render(report, &rc);
    ck_assert_int_eq(rc, 0);
    char cut[64];
    snprintf(cut, sizeof(cut), ">ip:\xc3\xa9%.35s\xe2\x80\xa6</text>", key + 5);
    ck_assert_msg(strstr(page, cut), "no label cut to 40 characters");
    ck_assert_int_eq(count(page, key + 5), 4); /* whole: tooltip, data-key twice, table */
    free(page);
    json_decref(report);
}
END_TEST

static Suite *replay_html_suite(void) {
    Suite *s = suite_create("replay_html");
    TCase *tc = tcase_create("html");
    tcase_add_test(tc, test_hostile_keys_are_text);
    tcase_add_test(tc, test_page_is_balanced);
    tcase_add_test(tc, test_balance_check_catches_a_stray_tag);
    tcase_add_test(tc, test_summary_carries_the_figures);
    tcase_add_test(tc, test_series_has_a_step_per_point);
    tcase_add_test(tc, test_compare_draws_both_runs_on_one_axis);
    tcase_add_test(tc, test_reports_it_cannot_draw_are_refused);
    tcase_add_test(tc, test_out_of_memory_is_an_error);
    tcase_add_test(tc, test_axis_steps_are_round);
    tcase_add_test(tc, test_long_keys_are_cut_in_charts_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(replay_html_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
