/*
 * test_escape.c: the one rule by which names and keys are shown (escape.h): backslash
 * escaped, so no key prints as another; controls, C1, bidi and invisible characters,
 * spaces and invalid UTF-8 escaped; whole escapes only when the output is short; and
 * decoding gives the bytes back, over random inputs.
 */
#include "escape.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_UTF8 RL_ESCAPE_UTF8

/* Like ck_assert_msg, for hot loops (Check's macros are slow even when they hold). */
#define require(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static const char *esc(const char *s, size_t len, int flags) {
    static char out[1024];
    size_t need = rl_escape(s, len, flags, out, sizeof(out));
    require(need == strlen(out), "need %zu, wrote %zu", need, strlen(out));
    return out;
}

/* Reads `\\` and `\xHH` back; returns the byte count, or -1 on anything else after `\`. */
static long unescape(const char *s, char *out) {
    long n = 0;
    for (; *s; s++) {
        if (*s != '\\') {
            out[n++] = *s;
        } else if (s[1] == '\\') {
            out[n++] = '\\', s++;
        } else if (s[1] == 'x' && s[2] && s[3]) {
            unsigned b;
            if (sscanf(s + 2, "%2x", &b) != 1)
                return -1;
            out[n++] = (char)b, s += 3;
        } else {
            return -1;
        }
    }
    return n;
}

START_TEST(test_backslash_makes_it_injective) {
    /* the finding: a key spelling \x0a printed as a key holding a newline did */
    const char literal[] = "a\\x0a", binary[] = "a\n";
    char shown_literal[64];
    snprintf(shown_literal, sizeof(shown_literal), "%s", esc(literal, 5, KEEP_UTF8));
    ck_assert_str_eq(shown_literal, "a\\\\x0a");
    ck_assert_str_eq(esc(binary, 2, KEEP_UTF8), "a\\x0a");
    ck_assert_str_eq(esc(literal, 5, 0), "a\\\\x0a");
    ck_assert_str_eq(esc("\\", 1, 0), "\\\\");
}
END_TEST

START_TEST(test_controls_and_spaces) {
    ck_assert_str_eq(esc("a b\tc\r\n\x1b[2J\x7f", 12, KEEP_UTF8),
                     "a\\x20b\\x09c\\x0d\\x0a\\x1b[2J\\x7f");
    ck_assert_str_eq(esc("a b", 3, KEEP_UTF8 | RL_ESCAPE_KEEP_SPACE), "a b");
    ck_assert_str_eq(esc("nul\0x", 5, 0), "nul\\x00x");
    ck_assert_str_eq(esc("plain-key_1:/.@", 15, 0), "plain-key_1:/.@");
}
END_TEST

/* The finding: rlimitctl top printed U+009B (CSI) and U+202E raw. */
START_TEST(test_c1_and_bidi) {
    ck_assert_str_eq(esc("x\xc2\x9b"
                         "31m",
                         6, KEEP_UTF8),
                     "x\\xc2\\x9b31m");
    ck_assert_str_eq(esc("\xc2\x80\xc2\x9f", 4, KEEP_UTF8), "\\xc2\\x80\\xc2\\x9f");
    ck_assert_str_eq(esc("evil\xe2\x80\xaetxt.exe", 14, KEEP_UTF8), "evil\\xe2\\x80\\xaetxt.exe");
    static const char *const bidi[] = {
        "\xd8\x9c",     "\xe2\x80\x8e", "\xe2\x80\x8f",     "\xe2\x80\xaa", "\xe2\x80\xab",
        "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x81\xa6",     "\xe2\x81\xa7", "\xe2\x81\xa8",
        "\xe2\x81\xa9", /* U+061C, U+200E/F, U+202A-E, U+2066-9 */
        "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\x8b",     "\xef\xbb\xbf", "\xc2\xa0",
        "\xc2\xad",     "\xe3\x80\x80", "\xf3\xa0\x80\x81", /* separators, invisibles, tags */
    };
    for (size_t i = 0; i < sizeof(bidi) / sizeof(bidi[0]); i++) {
        const char *out = esc(bidi[i], strlen(bidi[i]), KEEP_UTF8);
        ck_assert_msg(strncmp(out, "\\x", 2) == 0 && strlen(out) == 4 * strlen(bidi[i]),
                      "character %zu shown as %s", i, out);
    }
}
END_TEST

START_TEST(test_utf8_kept_or_not) {
    ck_assert_str_eq(esc("h\xc3\xa9llo \xe4\xb8\xad", 10, KEEP_UTF8),
                     "h\xc3\xa9llo\\x20\xe4\xb8\xad");
    ck_assert_str_eq(esc("h\xc3\xa9", 3, 0), "h\\xc3\\xa9");
    ck_assert_str_eq(esc("\xf0\x9f\x98\x80", 4, KEEP_UTF8), "\xf0\x9f\x98\x80");
    /* invalid: overlong, surrogate, past U+10FFFF, cut short, stray continuation */
    ck_assert_str_eq(esc("\xc0\xaf", 2, KEEP_UTF8), "\\xc0\\xaf");
    ck_assert_str_eq(esc("\xed\xa0\x80", 3, KEEP_UTF8), "\\xed\\xa0\\x80");
    ck_assert_str_eq(esc("\xf4\x90\x80\x80", 4, KEEP_UTF8), "\\xf4\\x90\\x80\\x80");
    ck_assert_str_eq(esc("a\xc3", 2, KEEP_UTF8), "a\\xc3");
    ck_assert_str_eq(esc("\x80"
                         "a",
                         2, KEEP_UTF8),
                     "\\x80a");
}
END_TEST

START_TEST(test_short_output_keeps_whole_escapes) {
    char out[8];
    ck_assert_uint_eq(rl_escape("ab\n\n", 4, 0, out, sizeof(out)), 10);
    ck_assert_str_eq(out, "ab\\x0a"); /* not "ab\x0a\x" */
    ck_assert_uint_eq(rl_escape("abcdef\xc3\xa9", 8, KEEP_UTF8, out, sizeof(out)), 8);
    ck_assert_str_eq(out, "abcdef"); /* not half a character */
    ck_assert_uint_eq(rl_escape("x", 1, 0, out, 0), 1);
}
END_TEST

START_TEST(test_key_is_text) {
    ck_assert_int_eq(rl_key_is_text("user-42", 7), 1);
    ck_assert_int_eq(rl_key_is_text("h\xc3\xa9llo", 6), 1);
    ck_assert_int_eq(rl_key_is_text("a\\x0a", 5), 0); /* shown as a\\x0a */
    ck_assert_int_eq(rl_key_is_text("a b", 3), 0);
    ck_assert_int_eq(rl_key_is_text("\xe2\x80\xae", 3), 0);
    ck_assert_int_eq(rl_key_is_text("\xc2\x9b", 2), 0);
}
END_TEST

/* Every output decodes to its input and is free of what it must not hold. */
START_TEST(test_random_round_trip) {
    static const char alphabet[] = "\\x0a \n\t\x1b\x7f\x80\x9b\xc2\xe2\xae\x80\xc3\xa9zA";
    char in[24], back[1024];
    unsigned seed = 12345;
    for (int round = 0; round < 50000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(in));
        for (size_t i = 0; i < len; i++)
            in[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        int flags = round & 1 ? KEEP_UTF8 : 0;
        const char *out = esc(in, len, flags);
        long n = unescape(out, back);
        require(n == (long)len && memcmp(in, back, len) == 0, "round %d: %s", round, out);
        for (const unsigned char *p = (const unsigned char *)out; *p; p++)
            require(*p > 0x20 && *p != 0x7f && (flags || *p < 0x80), "round %d", round);
        require(!strstr(out, "\xe2\x80\xae") && !strstr(out, "\xc2\x9b"), "round %d", round);
    }
}
END_TEST

static Suite *escape_suite(void) {
    Suite *s = suite_create("escape");
    TCase *tc = tcase_create("escape");
    tcase_add_test(tc, test_backslash_makes_it_injective);
    tcase_add_test(tc, test_controls_and_spaces);
    tcase_add_test(tc, test_c1_and_bidi);
    tcase_add_test(tc, test_utf8_kept_or_not);
    tcase_add_test(tc, test_short_output_keeps_whole_escapes);
    tcase_add_test(tc, test_key_is_text);
    tcase_add_test(tc, test_random_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(escape_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
