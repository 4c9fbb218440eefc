/*
 * test_ctl_json.c: rlimitctl's JSON reader (clients/c/rlimitctl_json.h) on the shapes
 * the daemon sends, on escapes, and on broken or hostile input (every prefix of a
 * document, random bytes, deep nesting): it must refuse, never read out of bounds.
 */
#include "rlimitctl_json.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_admin_answer) {
    jv *root = jv_parse(" {\"policies\":[{\"name\":\"api\",\"keys\":[{\"key\":\"a\\\\x00b\","
                        "\"denied\":12,\"error\":0,\"escaped\":true}]}],\"window_s\":60,"
                        "\"none\":null,\"neg\":-1.5e1} ");
    ck_assert_ptr_nonnull(root);
    const jv *policies = jv_get(root, "policies");
    ck_assert_uint_eq(jv_len(policies), 1);
    const jv *key = &jv_get(&policies->items[0], "keys")->items[0];
    ck_assert_str_eq(jv_str(jv_get(key, "key"), ""), "a\\x00b");
    ck_assert(jv_num(jv_get(key, "denied"), 0) == 12);
    ck_assert(jv_num(jv_get(key, "escaped"), 0) == 1);
    ck_assert(jv_num(jv_get(root, "neg"), 0) == -15);
    ck_assert_int_eq(jv_get(root, "none")->type, JV_NULL);
    ck_assert_ptr_null(jv_get(root, "absent"));
    ck_assert_ptr_null(jv_get(policies, "name")); /* not an object */
    ck_assert_str_eq(jv_str(NULL, "fallback"), "fallback");
    jv_free(root);
}
END_TEST

START_TEST(test_escapes) {
    jv *v = jv_parse("\"q\\\"b\\\\s\\/n\\nt\\tu\\u00e9\\ud83d\\ude00\\u0000z\"");
    ck_assert_ptr_nonnull(v);
    const char want[] = "q\"b\\s/n\nt\tu\xc3\xa9\xf0\x9f\x98\x80\0z";
    ck_assert_uint_eq(v->len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(v->string, want, v->len), 0);
    jv_free(v);
}
END_TEST

START_TEST(test_refusals) {
    static const char *const bad[] = {
        "",          "{",         "[1,]",        "{\"a\" 1}",    "{\"a\":}", "\"abc",
        "\"\\x41\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"", "tru",      "nul",
        "[1 2]",     "{} x",      "-",           "\"a\nb\"",     "{1:2}",    "[\"\\"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(jv_parse(bad[i]) == NULL, "accepted %s", bad[i]);
    char deep[200] = {0};
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    ck_assert_ptr_null(jv_parse(deep));
    memset(deep, 0, sizeof(deep));
    memset(deep, '[', 20);
    memset(deep + 20, ']', 20);
    jv *ok = jv_parse(deep);
    ck_assert_ptr_nonnull(ok);
    jv_free(ok);
}
END_TEST

START_TEST(test_prefixes_and_noise) {
    const char *doc = "{\"a\":[1,2,{\"b\":\"\\u00e9x\"}],\"c\":true,\"d\":{\"e\":null}}";
    size_t n = strlen(doc);
    for (size_t len = 0; len < n; len++) {
        char *prefix = malloc(len + 1); /* exact size: ASan sees any overread */
        memcpy(prefix, doc, len);
        prefix[len] = '\0';
        ck_assert_msg(jv_parse(prefix) == NULL, "accepted a prefix of %zu bytes", len);
        free(prefix);
    }
    unsigned seed = 1;
    for (int round = 0; round < 2000; round++) {
        char buf[64];
        size_t len = (size_t)(round % 63);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            buf[i] = "{}[]\",:\\u0123456789abcdeftrnl -."[(seed >> 16) % 33];
        }
        buf[len] = '\0';
        char *copy = strdup(buf);
        jv_free(jv_parse(copy));
        free(copy);
    }
}
END_TEST

static Suite *json_suite(void) {
    Suite *s = suite_create("ctl_json");
    TCase *tc = tcase_create("ctl_json");
    tcase_add_test(tc, test_admin_answer);
    tcase_add_test(tc, test_escapes);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_prefixes_and_noise);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(json_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
