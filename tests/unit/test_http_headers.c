/*
 * test_http_headers.c: the HTTP endpoint's rate-limit headers (http_headers.h) against
 * proto/vectors/headers.json, line for line, the cases the file must hold (exempt,
 * blocked, shadow, fallback, escaped names), and the policy name's escaping: printable
 * ASCII only, at most 767 characters, and decoded back to the very bytes of the name.
 * The vectors file is $RL_HEADER_VECTORS, else proto/vectors/headers.json (tests run
 * from the repository root).
 */
#include "http_headers.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *vectors_doc; /* the whole headers.json */

static const struct {
    const char *name; /* a flag's name in the vectors */
    uint16_t bit;     /* its RL_FLAG_* */
} flag_names[] = {{"FALLBACK", RL_FLAG_FALLBACK}, {"SHADOW", RL_FLAG_SHADOW},
                  {"CACHED", RL_FLAG_CACHED},     {"EXEMPT", RL_FLAG_EXEMPT},
                  {"BLOCKED", RL_FLAG_BLOCKED},   {"CAPPED", RL_FLAG_CAPPED}};

static uint8_t status_of(const char *name) {
    for (int s = 0; s < 256; s++)
        if (strcmp(rl_status_name(s), name) == 0)
            return (uint8_t)s;
    ck_abort_msg("unknown status %s", name);
    return 0;
}

static uint16_t flags_of(json_t *names) {
    uint16_t flags = 0;
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) {
        size_t f = 0;
        while (f < sizeof(flag_names) / sizeof(flag_names[0]) &&
               strcmp(flag_names[f].name, json_string_value(name)) != 0)
            f++;
        ck_assert_msg(f < sizeof(flag_names) / sizeof(flag_names[0]), "unknown flag");
        flags |= flag_names[f].bit;
    }
    return flags;
}

static uint32_t u32_field(json_t *result, const char *field) {
    json_t *v = json_object_get(result, field);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", field);
    return (uint32_t)json_integer_value(v);
}

static rl_result result_of(json_t *result) {
    rl_result r = {0};
    r.status = status_of(json_string_value(json_object_get(result, "status")));
    r.flags = flags_of(json_object_get(result, "flags"));
    r.limit = u32_field(result, "limit");
    r.remaining = u32_field(result, "remaining");
    r.reset_after_ms = u32_field(result, "reset_after_ms");
    r.retry_after_ms = u32_field(result, "retry_after_ms");
    r.window_ms = u32_field(result, "window_ms");
    return r;
}

// Checks one vector: the same lines, in the same order.
static void run_vector(json_t *vec) {
    const char *name = json_string_value(json_object_get(vec, "name"));
    json_t *policy = json_object_get(vec, "policy"), *want = json_object_get(vec, "headers");
    rl_result r = result_of(json_object_get(vec, "result"));
    rl_http_headers h;
    rl_http_headers_of(&h, json_string_value(policy), json_string_length(policy), &r);
    ck_assert_msg(h.count == json_array_size(want), "%s: %zu headers, want %zu", name, h.count,
                  json_array_size(want));
    for (size_t i = 0; i < h.count; i++) {
        char line[RL_HTTP_HEADER_VALUE_MAX + 64];
        snprintf(line, sizeof(line), "%s: %s", h.name[i], h.value[i]);
        const char *expected = json_string_value(json_array_get(want, i));
        ck_assert_msg(strcmp(line, expected) == 0, "%s, line %zu:\n got  %s\n want %s", name, i,
                      line, expected);
    }
}

START_TEST(test_vectors_file) {
    json_t *vecs = json_object_get(vectors_doc, "vectors"), *vec;
    size_t i;
    ck_assert_int_eq(json_integer_value(json_object_get(vectors_doc, "version")), 1);
    ck_assert_uint_ge(json_array_size(vecs), 20);
    json_array_foreach(vecs, i, vec) run_vector(vec);
}
END_TEST

// Returns the vector named name (the test fails if there is none).
static json_t *vector_named(const char *name) {
    json_t *vec;
    size_t i;
    json_array_foreach(json_object_get(vectors_doc, "vectors"), i, vec) {
        if (strcmp(json_string_value(json_object_get(vec, "name")), name) == 0)
            return vec;
    }
    ck_abort_msg("headers.json has no vector %s", name);
    return NULL;
}

START_TEST(test_vectors_cover_the_contract) {
    static const char *const needed[] = {"allowed",
                                         "denied",
                                         "denied_retry_zero",
                                         "exempt",
                                         "blocked",
                                         "shadow_denied",
                                         "fallback_allow",
                                         "fallback_deny",
                                         "policy_percent",
                                         "policy_non_ascii",
                                         "policy_controls",
                                         "policy_header_injection",
                                         "policy_quote_backslash",
                                         "error_status"};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
        (void)vector_named(needed[i]);
    ck_assert_uint_eq(json_array_size(json_object_get(vector_named("exempt"), "headers")), 0);
}
END_TEST

static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Reads a written name back (sf-string, then %xx); returns its length, or -1.
static long decode_sf(const char *s, char *out) {
    size_t n = strlen(s), o = 0;
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return -1;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\') && i + 2 < n) {
            out[o++] = s[++i];
        } else if (s[i] == '%' && i + 3 < n && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            out[o++] = (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
            i += 2;
        } else if (s[i] == '"' || s[i] == '\\' || s[i] == '%') {
            return -1;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

static void require_printable(const char *s) {
    for (const char *p = s; *p; p++)
        ck_assert_msg(*p >= 0x20 && *p <= 0x7e, "byte 0x%02x written raw", (unsigned char)*p);
}

START_TEST(test_every_byte_round_trips) {
    char out[RL_HTTP_POLICY_SF_MAX + 1], back[RL_MAX_POLICY_LEN];
    for (int c = 0; c < 256; c++) {
        char name[3] = {'a', (char)c, 'z'};
        size_t n = rl_http_policy_sf(out, name, sizeof(name));
        ck_assert_uint_eq(n, strlen(out));
        require_printable(out);
        ck_assert_int_eq(decode_sf(out, back), 3);
        ck_assert_msg(memcmp(back, name, 3) == 0, "byte 0x%02x does not come back", c);
    }
}
END_TEST

START_TEST(test_random_names_round_trip) {
    char name[RL_MAX_POLICY_LEN], out[RL_HTTP_POLICY_SF_MAX + 1], back[RL_MAX_POLICY_LEN];
    srand(12);
    for (int round = 0; round < 2000; round++) {
        size_t len = 1 + (size_t)rand() % RL_MAX_POLICY_LEN;
        for (size_t i = 0; i < len; i++)
            name[i] = (char)(rand() % 4 ? "ab\"\\%"[rand() % 5] : rand() % 256);
        rl_http_policy_sf(out, name, len);
        require_printable(out);
        ck_assert_int_eq(decode_sf(out, back), (long)len);
        ck_assert(memcmp(back, name, len) == 0);
    }
}
END_TEST

START_TEST(test_longest_name_fits) {
    char name[RL_MAX_POLICY_LEN + 10], out[RL_HTTP_POLICY_SF_MAX + 1];
    memset(name, 0xff, sizeof(name));
    ck_assert_uint_eq(rl_http_policy_sf(out, name, RL_MAX_POLICY_LEN), RL_HTTP_POLICY_SF_MAX);
    ck_assert_uint_eq(rl_http_policy_sf(out, name, sizeof(name)), RL_HTTP_POLICY_SF_MAX);
    rl_result r = {.status = RL_ST_DENIED,
                   .limit = UINT32_MAX,
                   .remaining = UINT32_MAX,
                   .reset_after_ms = UINT32_MAX,
                   .retry_after_ms = UINT32_MAX,
                   .window_ms = UINT32_MAX};
    rl_http_headers h;
    rl_http_headers_of(&h, name, RL_MAX_POLICY_LEN, &r);
    ck_assert_uint_eq(h.count, RL_HTTP_HEADERS_MAX);
    ck_assert_str_eq(h.name[4], "RateLimit-Policy");
    ck_assert_uint_eq(strlen(h.value[4]),
                      RL_HTTP_POLICY_SF_MAX + strlen(";q=4294967295;w=4294968"));
}
END_TEST

static Suite *headers_suite(void) {
    Suite *s = suite_create("http_headers");
    TCase *tc = tcase_create("http_headers");
    tcase_add_test(tc, test_vectors_file);
    tcase_add_test(tc, test_vectors_cover_the_contract);
    tcase_add_test(tc, test_every_byte_round_trips);
    tcase_add_test(tc, test_random_names_round_trip);
    tcase_add_test(tc, test_longest_name_fits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const char *path = getenv("RL_HEADER_VECTORS");
    json_error_t error;
    vectors_doc = json_load_file(path ? path : "proto/vectors/headers.json", 0, &error);
    if (!vectors_doc) {
        fprintf(stderr, "test_http_headers: cannot load vectors (%s line %d): %s\n", error.source,
                error.line, error.text);
        return EXIT_FAILURE;
    }
    SRunner *runner = srunner_create(headers_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    json_decref(vectors_doc);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
