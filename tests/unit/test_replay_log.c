/*
 * test_replay_log.c: the access-log parsers of rlimitctl replay (clients/c/replay_log.h)
 * and the rules file (replay_rules.h): combined with and without $msec, JSON lines with
 * RFC 3339 and epoch times, CSV with RFC 4180 quoting, malformed lines with their
 * reasons, and reading plain, gzip and overlong lines.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "replay_log.h"
#include "replay_rules.h"

#define T0 1733300000LL /* 2024-12-04T08:13:20Z */

static rl_replay_rec rec;
static const char *reason;

static int parse(rl_replay_parser *p, const char *line) {
    reason = NULL;
    return rl_replay_parse(p, line, strlen(line), &rec, &reason);
}

static void expect_field(const char *got, size_t len, const char *want) {
    ck_assert_msg(got && len == strlen(want) && memcmp(got, want, len) == 0,
                  "got \"%.*s\", want \"%s\"", (int)len, got ? got : "", want);
}

START_TEST(test_combined) {
    rl_replay_parser *p = rl_replay_parser_new(RL_REPLAY_COMBINED, "");
    ck_assert_int_eq(parse(p, "203.0.113.7 - bob [04/Dec/2024:09:13:20 +0100] \"GET "
                              "/api/items?id=4 HTTP/1.1\" 200 512 \"-\" \"curl/8 (x)\""),
                     1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000);
    ck_assert_int_eq(rec.whole_second, 1);
    expect_field(rec.key, rec.key_len, "203.0.113.7");
    expect_field(rec.path, rec.path_len, "/api/items");
    ck_assert_int_eq(rec.cost, 1);
    ck_assert_ptr_null(rec.policy);
    /* $msec at the end wins; with $request_time after it too. */
    ck_assert_int_eq(parse(p, "::1 - - [04/Dec/2024:08:13:20 +0000] \"POST /a HTTP/2.0\" 429 0 "
                              "\"-\" \"ua\" 1733300000.250"),
                     1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000 + 250000);
    ck_assert_int_eq(rec.whole_second, 0);
    ck_assert_int_eq(parse(p, "::1 - - [04/Dec/2024:08:13:20 +0000] \"GET http://h.example/x/y "
                              "HTTP/1.1\" 200 0 \"-\" \"ua\" 1733300001.999 0.004"),
                     1);
    ck_assert_int_eq(rec.ts_us, (T0 + 1) * 1000000 + 999000);
    expect_field(rec.path, rec.path_len, "/x/y");
    /* An escaped quote inside the request (Apache) does not end it. */
    ck_assert_int_eq(parse(p, "1.2.3.4 - - [04/Dec/2024:08:13:20 +0000] \"GET /q\\\"x HTTP/1.1\" "
                              "200 1 \"-\" \"-\""),
                     1);
    expect_field(rec.path, rec.path_len, "/q\\\"x");
    /* A backslash escaped as two just before the closing quote: the quote does end it. */
    ck_assert_int_eq(parse(p, "1.2.3.4 - - [04/Dec/2024:08:13:20 +0000] \"GET /b\\\\\" "
                              "200 1 \"-\" \"ua\\\\\""),
                     1);
    expect_field(rec.path, rec.path_len, "/b\\\\");
    rl_replay_parser_free(p);
}
END_TEST

START_TEST(test_combined_malformed) {
    static const char *const bad[][2] = {
        {"garbage", "not a combined log line"},
        {"1.2.3.4 - - [04/Foo/2024:08:13:20 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
         "bad [time]"},
        {"1.2.3.4 - - [04/Dec/2024:25:13:20 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
         "bad [time]"},
        {"1.2.3.4 - - [04/Dec/2024:08:13:20 +0000] \"GET / HTTP/1.1", "unterminated"},
        {"1.2.3.4 - - [04/Dec/2024:08:13:20 +0000] \"-\" 400 0 \"-\" \"-\"", "no path"},
        {"1.2.3.4 - - [04/Dec/2024:08:13:20 +0000] \"GET / HTTP/1.1\" abc", "no status"},
    };
    rl_replay_parser *p = rl_replay_parser_new(RL_REPLAY_COMBINED, "");
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_msg(parse(p, bad[i][0]) == -1, "accepted: %s", bad[i][0]);
        ck_assert_msg(strstr(reason, bad[i][1]), "%s: reason %s", bad[i][0], reason);
    }
    rl_replay_parser_free(p);
}
END_TEST

START_TEST(test_jsonl) {
    rl_replay_parser *p = rl_replay_parser_new(RL_REPLAY_JSONL, "key");
    ck_assert_int_eq(parse(p, "{\"ts\": \"2024-12-04T08:13:20.5Z\", \"key\": \"user:1\", "
                              "\"path\": \"/a\", \"cost\": 3, \"policy\": \"api\", "
                              "\"extra\": {\"n\": [1, {\"x\": null}], \"s\": \"}\"}}"),
                     1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000 + 500000);
    ck_assert_int_eq(rec.whole_second, 0);
    expect_field(rec.key, rec.key_len, "user:1");
    expect_field(rec.path, rec.path_len, "/a");
    expect_field(rec.policy, rec.policy_len, "api");
    ck_assert_int_eq(rec.cost, 3);
    /* Offsets, epoch numbers with a fraction, escapes decoded, a numeric key. */
    ck_assert_int_eq(parse(p, "{\"ts\":\"2024-12-04T09:13:20+01:00\",\"key\":\"a\\\"b\\u00e9\","
                              "\"path\":\"/x\"}"),
                     1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000);
    expect_field(rec.key, rec.key_len, "a\"b\xc3\xa9");
    ck_assert_int_eq(parse(p, "{\"ts\": 1733300000.123456, \"key\": 42, \"policy\": null}"), 1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000 + 123456);
    expect_field(rec.key, rec.key_len, "42");
    ck_assert_ptr_null(rec.policy);
    ck_assert_int_eq(rec.cost, 1);
    ck_assert_int_eq(parse(p, "   "), 0);
    rl_replay_parser_free(p);
    /* --key field:user reads another member. */
    p = rl_replay_parser_new(RL_REPLAY_JSONL, "user");
    ck_assert_int_eq(parse(p, "{\"ts\": 1733300000, \"key\": \"no\", \"user\": \"yes\"}"), 1);
    expect_field(rec.key, rec.key_len, "yes");
    rl_replay_parser_free(p);
}
END_TEST

START_TEST(test_jsonl_malformed) {
    static const char *const bad[][2] = {
        {"[1]", "not a JSON object"},
        {"{\"ts\": 1733300000, \"key\": \"k\"", "not a JSON object"},
        {"{\"ts\": 1733300000, \"key\": \"k\"} x", "bytes after"},
        {"{\"key\": \"k\"}", "no ts"},
        {"{\"ts\": 1733300000}", "no key"},
        {"{\"ts\": \"yesterday\", \"key\": \"k\"}", "bad ts"},
        {"{\"ts\": \"2024-13-04T08:13:20Z\", \"key\": \"k\"}", "bad ts"},
        {"{\"ts\": -5, \"key\": \"k\"}", "bad ts"},
        {"{\"ts\": 1733300000, \"key\": \"k\", \"cost\": 0}", "bad cost"},
        {"{\"ts\": 1733300000, \"key\": \"k\", \"cost\": 1.5}", "bad cost"},
        {"{\"ts\": 1733300000, \"key\": \"k\", \"policy\": 3}", "policy is not a string"},
        {"{\"ts\": 1733300000, \"key\": [\"k\"]}", "key is not"},
        {"{\"ts\": 1733300000, \"key\": \"\\ud800\"}", "key is not"},
    };
    rl_replay_parser *p = rl_replay_parser_new(RL_REPLAY_JSONL, "key");
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_msg(parse(p, bad[i][0]) == -1, "accepted: %s", bad[i][0]);
        ck_assert_msg(strstr(reason, bad[i][1]), "%s: reason %s", bad[i][0], reason);
    }
    /* Deep nesting in an ignored member is refused, not a crash. */
    char deep[400] = "{\"ts\": 1, \"key\": \"k\", \"x\": ";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    ck_assert_int_eq(parse(p, deep), -1);
    rl_replay_parser_free(p);
}
END_TEST

START_TEST(test_csv) {
    rl_replay_parser *p = rl_replay_parser_new(RL_REPLAY_CSV, "key");
    ck_assert_int_eq(parse(p, "ts,ignored,key,path,cost,policy"), 0);
    ck_assert_int_eq(parse(p, "2024-12-04T08:13:20Z,\"x,y\",\"a \"\"quoted\"\", key\",/p,2,api"),
                     1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000);
    expect_field(rec.key, rec.key_len, "a \"quoted\", key");
    expect_field(rec.path, rec.path_len, "/p");
    expect_field(rec.policy, rec.policy_len, "api");
    ck_assert_int_eq(rec.cost, 2);
    ck_assert_int_eq(parse(p, "1733300000.5,,k,,,"), 1);
    ck_assert_int_eq(rec.ts_us, T0 * 1000000 + 500000);
    ck_assert_int_eq(rec.cost, 1);
    ck_assert_ptr_null(rec.policy);
    ck_assert_int_eq(parse(p, "1733300000,a,k,/p,1"), -1);
    ck_assert_ptr_nonnull(strstr(reason, "fewer fields"));
    ck_assert_int_eq(parse(p, "1733300000,a,k,/p,1,api,more"), -1);
    ck_assert_ptr_nonnull(strstr(reason, "more fields"));
    ck_assert_int_eq(parse(p, "1733300000,\"open,k,/p,1,api"), -1);
    ck_assert_ptr_nonnull(strstr(reason, "quoting"));
    ck_assert_int_eq(parse(p, "1733300000,\"a\"b,k,/p,1,api"), -1);
    ck_assert_int_eq(parse(p, "soon,a,k,/p,1,api"), -1);
    ck_assert_ptr_nonnull(strstr(reason, "bad ts"));
    ck_assert_int_eq(parse(p, "1733300000,a,k,/p,-1,api"), -1);
    ck_assert_ptr_nonnull(strstr(reason, "bad cost"));
    /* A new file: a new header; one without a key column cannot be read. */
    rl_replay_parser_reset(p);
    ck_assert_int_eq(parse(p, "ts,path"), -2);
    ck_assert_ptr_nonnull(strstr(reason, "no key column"));
    rl_replay_parser_free(p);
}
END_TEST

START_TEST(test_times) {
    int64_t us;
    ck_assert_int_eq(rl_replay_parse_time("1970-01-01T00:00:00Z", 20, &us), 0);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(rl_replay_parse_time("2000-02-29T23:59:59.999999-00:30", 32, &us), 0);
    ck_assert_int_eq(us, (951868799LL + 1800) * 1000000 + 999999);
    ck_assert_int_eq(rl_replay_parse_time("2024-12-04 08:13:20z", 20, &us), 0);
    ck_assert_int_eq(us, T0 * 1000000);
    ck_assert_int_eq(rl_replay_parse_time("2024-12-04T08:13:20", 19, &us), -1);
    ck_assert_int_eq(rl_replay_parse_time("2024-12-04T08:13:20.Z", 21, &us), -1);
    ck_assert_int_eq(rl_replay_parse_time("2024-12-04T08:13:20+1:00", 24, &us), -1);
    ck_assert_int_eq(rl_replay_parse_time("1733300000.", 11, &us), -1);
}
END_TEST

// Writes data to a temporary file (gzip-compressed if gz). Returns its path (static).
static const char *temp_file(const char *data, size_t len, int gz) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_replay_log.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    if (gz) {
        gzFile g = gzdopen(fd, "wb");
        ck_assert_int_eq(gzwrite(g, data, (unsigned)len), (int)len);
        gzclose(g);
    } else {
        ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
        close(fd);
    }
    return path;
}

START_TEST(test_input) {
    for (int gz = 0; gz < 2; gz++) {
        static const char data[] = "one\r\ntwo\n\nthree";
        const char *path = temp_file(data, sizeof(data) - 1, gz);
        char err[256];
        const char *line;
        size_t len;
        rl_replay_input *in = rl_replay_input_open(path, err, sizeof(err));
        ck_assert_ptr_nonnull(in);
        static const char *const want[] = {"one", "two", "", "three"};
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(rl_replay_input_line(in, &line, &len, err, sizeof(err)), 1);
            expect_field(len ? line : "", len, want[i]);
        }
        ck_assert_int_eq(rl_replay_input_line(in, &line, &len, err, sizeof(err)), 0);
        rl_replay_input_close(in);
        unlink(path);
    }
    char err[256];
    ck_assert_ptr_null(rl_replay_input_open("/nonexistent/log", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/log"));
}
END_TEST

START_TEST(test_overlong_line) {
    size_t big = RL_REPLAY_LINE_MAX * 2 + 100;
    char *data = malloc(big + 8);
    memset(data, 'x', big);
    memcpy(data + big, "\nnext\n", 6);
    const char *path = temp_file(data, big + 6, 0);
    char err[256];
    const char *line;
    size_t len;
    rl_replay_input *in = rl_replay_input_open(path, err, sizeof(err));
    ck_assert_int_eq(rl_replay_input_line(in, &line, &len, err, sizeof(err)), 2);
    ck_assert_uint_eq(len, RL_REPLAY_LINE_MAX);
    ck_assert_int_eq(rl_replay_input_line(in, &line, &len, err, sizeof(err)), 1);
    expect_field(line, len, "next");
    ck_assert_int_eq(rl_replay_input_line(in, &line, &len, err, sizeof(err)), 0);
    rl_replay_input_close(in);
    unlink(path);
    free(data);
}
END_TEST

START_TEST(test_rules) {
    char err[256];
    const char *policy;
    rl_replay_rules *r =
        rl_replay_rules_parse("{\"rules\": [{\"path\": \"/api/\", \"policy\": \"api\"},"
                              " {\"path\": \"/upload\", \"policy\": \"upload\"},"
                              " {\"path\": \"/api/free\", \"policy\": null},"
                              " {\"route\": \"/users/{id}/export\", \"policy\": \"export\"},"
                              " {\"route\": \"/files/{rest:path}\", \"policy\": \"files\"}],"
                              " \"default\": \"other\", \"exempt\": [\"/health\"]}",
                              "rules.json", err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
#define ROUTE(path) rl_replay_rules_route(r, path, strlen(path), &policy)
    ck_assert_int_eq(ROUTE("/api/x"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "api");
    ck_assert_int_eq(ROUTE("/upload/big"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "upload");
    ck_assert_int_eq(ROUTE("/uploads"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "other");
    ck_assert_int_eq(ROUTE("/api/free/x"), RL_ROUTE_EXEMPT); /* the longest prefix wins */
    ck_assert_int_eq(ROUTE("/health"), RL_ROUTE_EXEMPT);
    ck_assert_int_eq(ROUTE("/users/7/export"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "export");
    ck_assert_int_eq(ROUTE("/users/7/8/export"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "other");
    ck_assert_int_eq(ROUTE("/files/a/b"), RL_ROUTE_POLICY);
    ck_assert_str_eq(policy, "files");
    ck_assert_str_eq(rl_replay_rules_policy(r, 0), "export");
    rl_replay_rules_free(r);
    r = rl_replay_rules_parse("{\"rules\": [{\"path\": \"/a\", \"policy\": \"a\"}]}", "r", err,
                              sizeof(err));
    ck_assert_int_eq(ROUTE("/b"), RL_ROUTE_UNMATCHED);
    ck_assert_int_eq(ROUTE("/healthz"), RL_ROUTE_EXEMPT); /* the middleware's default */
    rl_replay_rules_free(r);
    static const char *const bad[][2] = {
        {"{\"rules\": [{\"path\": \"a\", \"policy\": \"x\"}]}", "rules[0]"},
        {"{\"rules\": [{\"path\": \"/{x}\", \"policy\": \"x\"}]}", "belongs in a \"route\""},
        {"{\"rules\": [{\"route\": \"/x\", \"policy\": \"x\"}]}", "parameter"},
        {"{\"rules\": [], \"bogus\": 1}", "bogus: unknown field"},
        {"{\"default\": 3}", "default"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_ptr_null(rl_replay_rules_parse(bad[i][0], "r", err, sizeof(err)));
        ck_assert_msg(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
#undef ROUTE
}
END_TEST

int main(void) {
    Suite *s = suite_create("replay_log");
    TCase *tc = tcase_create("replay_log");
    tcase_add_test(tc, test_combined);
    tcase_add_test(tc, test_combined_malformed);
    tcase_add_test(tc, test_jsonl);
    tcase_add_test(tc, test_jsonl_malformed);
    tcase_add_test(tc, test_csv);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_input);
    tcase_add_test(tc, test_overlong_line);
    tcase_add_test(tc, test_rules);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
