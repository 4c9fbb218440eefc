/*
 * test_denylog.c: the denial log (line format, its own rate limit and the summary of
 * dropped lines, reopening, config comparison) and the key escaping it relies on.
 */
#include "denylog.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "escape.h"
#include "rlproto.h"

#define SECOND 1000000LL

static char dir[64];
static char path[128];

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/test_denylog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/denials.log", dir);
}

static void teardown(void) {
    char moved[160];
    unlink(path);
    snprintf(moved, sizeof(moved), "%s.1", path);
    unlink(moved);
    rmdir(dir);
}

// Reads the file at p into a static buffer.
static const char *slurp(const char *p) {
    static char buf[65536];
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static rl_denylog *open_log(int lines_per_s) {
    char err[256];
    rl_denial_log_conf conf = {path, 0, lines_per_s};
    rl_denylog *log = rl_denylog_open(&conf, err, sizeof(err));
    ck_assert_msg(log != NULL, "%s", err);
    return log;
}

START_TEST(test_nothing_configured) {
    char err[64] = "x";
    rl_denial_log_conf conf = {NULL, 0, 100};
    ck_assert_ptr_null(rl_denylog_open(&conf, err, sizeof(err)));
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(rl_denylog_same(NULL, &conf), 1);
    rl_denylog_close(NULL);
}
END_TEST

START_TEST(test_unwritable_path) {
    char err[256];
    rl_denial_log_conf conf = {"/nonexistent-dir/denials.log", 0, 100};
    ck_assert_ptr_null(rl_denylog_open(&conf, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "denial_log.path: cannot open /nonexistent-dir"));
}
END_TEST

START_TEST(test_line_format) {
    rl_denylog *log = open_log(100);
    rl_denylog_write(log, 5000, "api", 3, "10.0.0.7", 8, 1200);
    rl_denylog_write(log, 86400 * SECOND + 123456, "login", 5, "a b\\\0\xff", 6, 7);
    rl_denylog_close(log);
    ck_assert_str_eq(slurp(path),
                     "1970-01-01T00:00:00.005Z policy=api key=10.0.0.7 retry_after_ms=1200\n"
                     "1970-01-02T00:00:00.123Z policy=login key=a\\x20b\\\\\\x00\\xff "
                     "retry_after_ms=7\n");
}
END_TEST

START_TEST(test_limit_and_summary) {
    rl_denylog *log = open_log(3);
    for (int i = 0; i < 10; i++)
        rl_denylog_write(log, 10 * SECOND + i, "p", 1, "k", 1, 1);
    rl_denylog_tick(log, 10 * SECOND + 999999); /* same second: nothing yet */
    rl_denylog_stats st = rl_denylog_get_stats(log);
    ck_assert_uint_eq(st.lines, 3);
    ck_assert_uint_eq(st.suppressed, 7);
    rl_denylog_tick(log, 11 * SECOND + 20000);
    rl_denylog_tick(log, 12 * SECOND); /* nothing dropped in second 11: no summary */
    rl_denylog_write(log, 12 * SECOND + 1, "p", 1, "k", 1, 1);
    rl_denylog_close(log);
    const char *text = slurp(path);
    const char *line = "1970-01-01T00:00:11.020Z suppressed 7 denial lines\n";
    const char *summary = strstr(text, line);
    ck_assert_ptr_nonnull(summary);
    ck_assert_ptr_null(strstr(summary + strlen(line), "suppressed")); /* once */
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "policy=p key=k retry_after_ms=1\n")); p++)
        lines++;
    ck_assert_int_eq(lines, 4);
}
END_TEST

START_TEST(test_summary_on_close) {
    rl_denylog *log = open_log(1);
    rl_denylog_write(log, 0, "p", 1, "k", 1, 1);
    rl_denylog_write(log, 1, "p", 1, "k", 1, 1);
    rl_denylog_close(log);
    ck_assert_ptr_nonnull(strstr(slurp(path), " suppressed 1 denial lines\n"));
}
END_TEST

START_TEST(test_long_key_cut) {
    static char key[RL_MAX_KEY_LEN];
    memset(key, 'z', sizeof(key));
    rl_denylog *log = open_log(10);
    rl_denylog_write(log, 0, "p", 1, key, sizeof(key), 9);
    rl_denylog_close(log);
    const char *text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "zzz... key_len=65535 retry_after_ms=9\n"));
    ck_assert_uint_lt(strlen(text), 2200);
}
END_TEST

/* A key of escapes cut short is cut after a whole escape, and a key that merely ends
   in "..." does not pass for a cut one. */
START_TEST(test_cut_key_keeps_whole_escapes) {
    static char key[2000];
    memset(key, '\n', sizeof(key));
    rl_denylog *log = open_log(10);
    rl_denylog_write(log, 0, "p", 1, key, sizeof(key), 9);
    rl_denylog_write(log, 0, "p", 1, "zzz...", 6, 9);
    rl_denylog_close(log);
    const char *text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "\\x0a... key_len=2000 retry_after_ms=9\n"));
    ck_assert_ptr_nonnull(strstr(text, " key=zzz... retry_after_ms=9\n"));
}
END_TEST

/* The finding: a policy name holding a newline wrote a second, forged denial line. A
   name can no more forge a field (a space) or pass for another (a backslash). */
START_TEST(test_policy_name_escaped) {
    const char name[] = "api key=victim retry_after_ms=1\n1970-01-01T00:00:00.000Z policy=\\x";
    rl_denylog *log = open_log(10);
    rl_denylog_write(log, 0, name, sizeof(name) - 1, "k", 1, 5);
    rl_denylog_close(log);
    ck_assert_str_eq(slurp(path), "1970-01-01T00:00:00.000Z policy=api\\x20key=victim\\x20"
                                  "retry_after_ms=1\\x0a1970-01-01T00:00:00.000Z\\x20"
                                  "policy=\\\\x key=k retry_after_ms=5\n");
}
END_TEST

START_TEST(test_reopen) {
    char moved[160];
    rl_denylog *log = open_log(10);
    rl_denylog_write(log, 0, "p", 1, "before", 6, 1);
    snprintf(moved, sizeof(moved), "%s.1", path);
    ck_assert_int_eq(rename(path, moved), 0);
    rl_denylog_write(log, 1, "p", 1, "moved", 5, 1); /* still the old file */
    char err[256];
    ck_assert_int_eq(rl_denylog_reopen(log, err, sizeof(err)), 0);
    rl_denylog_write(log, 2, "p", 1, "after", 5, 1);
    rl_denylog_close(log);
    ck_assert_ptr_nonnull(strstr(slurp(moved), "key=moved "));
    const char *now = slurp(path);
    ck_assert_ptr_nonnull(strstr(now, "key=after "));
    ck_assert_ptr_null(strstr(now, "key=before "));
}
END_TEST

START_TEST(test_same) {
    rl_denylog *log = open_log(10);
    rl_denial_log_conf same = {path, 0, 10}, other_rate = {path, 0, 11};
    rl_denial_log_conf other_path = {"/tmp/x.log", 0, 10}, sys = {NULL, 1, 10}, none = {0};
    ck_assert_int_eq(rl_denylog_same(log, &same), 1);
    ck_assert_int_eq(rl_denylog_same(log, &other_rate), 0);
    ck_assert_int_eq(rl_denylog_same(log, &other_path), 0);
    ck_assert_int_eq(rl_denylog_same(log, &sys), 0);
    ck_assert_int_eq(rl_denylog_same(log, &none), 0);
    rl_denylog_close(log);
}
END_TEST

START_TEST(test_allocation_failure) {
    char err[256];
    rl_denial_log_conf conf = {path, 0, 10};
    rl_alloc_fail_after(0);
    rl_denylog *log = rl_denylog_open(&conf, err, sizeof(err));
    rl_alloc_fail_after(-1);
    ck_assert_ptr_null(log);
    ck_assert_ptr_nonnull(strstr(err, "out of memory"));
}
END_TEST

START_TEST(test_escape) {
    char out[64];
    ck_assert_uint_eq(rl_escape_key("plain-key_1", 11, out, sizeof(out)), 11);
    ck_assert_str_eq(out, "plain-key_1");
    ck_assert_uint_eq(rl_escape_key("a b\n\\\x7f", 6, out, sizeof(out)), 16);
    ck_assert_str_eq(out, "a\\x20b\\x0a\\\\\\x7f");
    ck_assert_uint_eq(rl_escape_key("\x01\x02", 2, out, 5), 8); /* snprintf semantics */
    ck_assert_str_eq(out, "\\x01");
    rl_hex_key("\x00\xab"
               "c",
               3, out, sizeof(out));
    ck_assert_str_eq(out, "00ab63");
    rl_hex_key("abc", 3, out, 5);
    ck_assert_str_eq(out, "6162");
}
END_TEST

START_TEST(test_key_is_text) {
    ck_assert_int_eq(rl_key_is_text("user-42", 7), 1);
    ck_assert_int_eq(rl_key_is_text("h\xc3\xa9llo", 6), 1);
    ck_assert_int_eq(rl_key_is_text("\xf0\x9f\x98\x80", 4), 1);
    ck_assert_int_eq(rl_key_is_text("tab\there", 8), 0);
    ck_assert_int_eq(rl_key_is_text("del\x7f", 4), 0);
    ck_assert_int_eq(rl_key_is_text("nul\0", 4), 0);
    ck_assert_int_eq(rl_key_is_text("\xc0\xaf", 2), 0);         /* overlong */
    ck_assert_int_eq(rl_key_is_text("\xed\xa0\x80", 3), 0);     /* surrogate */
    ck_assert_int_eq(rl_key_is_text("\xf4\x90\x80\x80", 4), 0); /* past U+10FFFF */
    ck_assert_int_eq(rl_key_is_text("\xc3", 1), 0);             /* cut short */
    ck_assert_int_eq(rl_key_is_text("\xff", 1), 0);
}
END_TEST

static Suite *denylog_suite(void) {
    Suite *s = suite_create("denylog");
    TCase *tc = tcase_create("denylog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_nothing_configured);
    tcase_add_test(tc, test_unwritable_path);
    tcase_add_test(tc, test_line_format);
    tcase_add_test(tc, test_limit_and_summary);
    tcase_add_test(tc, test_summary_on_close);
    tcase_add_test(tc, test_long_key_cut);
    tcase_add_test(tc, test_cut_key_keeps_whole_escapes);
    tcase_add_test(tc, test_policy_name_escaped);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_same);
    tcase_add_test(tc, test_allocation_failure);
    tcase_add_test(tc, test_escape);
    tcase_add_test(tc, test_key_is_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(denylog_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
