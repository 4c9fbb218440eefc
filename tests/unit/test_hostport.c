/*
 * test_hostport.c: the one HOST:PORT parser (proto/hostport.h) on its edge cases, and
 * its two users that take a tcp: address as text: the config's listeners and Redis URL
 * (through rl_config_parse) and the C client (through rl_client_connect).
 */
#include "rlimit.c" /* the client, as test_client.c includes it (before check.h) */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hostport.h"

#define ZERO RL_HOSTPORT_PORT_ZERO
#define OPTIONAL RL_HOSTPORT_PORT_OPTIONAL

static rl_hostport_status parse(const char *text, unsigned flags, rl_hostport *hp) {
    return rl_hostport_parse(text, strlen(text), flags, hp);
}

// Asserts text parses under flags to host and port (has_port as given).
static void accepts(const char *text, unsigned flags, const char *host, unsigned port,
                    int has_port) {
    rl_hostport hp;
    rl_hostport_status status = parse(text, flags, &hp);
    ck_assert_msg(status == RL_HOSTPORT_OK, "\"%s\" refused: %s", text,
                  rl_hostport_error(status, flags));
    ck_assert_uint_eq(hp.host_len, strlen(host));
    ck_assert_msg(memcmp(hp.host, host, hp.host_len) == 0, "\"%s\": host \"%.*s\"", text,
                  (int)hp.host_len, hp.host);
    ck_assert_uint_eq(hp.port, port);
    ck_assert_int_eq(hp.has_port, has_port);
}

START_TEST(test_good) {
    accepts("127.0.0.1:7379", 0, "127.0.0.1", 7379, 1);
    accepts("[::1]:7379", 0, "::1", 7379, 1);
    accepts("[fe80::1%eth0]:80", 0, "fe80::1%eth0", 80, 1);
    accepts("localhost:65535", 0, "localhost", 65535, 1);
    accepts("h:1", 0, "h", 1, 1);
    accepts("h:00080", 0, "h", 80, 1);
    accepts("h:0", ZERO, "h", 0, 1);
    accepts("[::]:0", ZERO, "::", 0, 1);
    accepts("redis.local", OPTIONAL, "redis.local", 0, 0);
    accepts("[::1]", OPTIONAL, "::1", 0, 0);
    accepts("[::1]:6380", OPTIONAL, "::1", 6380, 1);
    rl_hostport hp; /* the length bounds the text: what follows is not read */
    ck_assert_int_eq(rl_hostport_parse("h:80/0", 4, 0, &hp), RL_HOSTPORT_OK);
    ck_assert_uint_eq(hp.port, 80);
}
END_TEST

START_TEST(test_bad) {
    static const struct {
        const char *text;
        unsigned flags;
        rl_hostport_status status;
    } cases[] = {
        {"", 0, RL_HOSTPORT_EMPTY_HOST},
        {"", OPTIONAL, RL_HOSTPORT_EMPTY_HOST},
        {":80", 0, RL_HOSTPORT_EMPTY_HOST},
        {"[]:80", 0, RL_HOSTPORT_EMPTY_HOST},
        {"host", 0, RL_HOSTPORT_NO_PORT},
        {"[::1]", 0, RL_HOSTPORT_NO_PORT},
        {"host:", 0, RL_HOSTPORT_NO_PORT},
        {"host:", OPTIONAL, RL_HOSTPORT_NO_PORT},
        {"[::1]:", 0, RL_HOSTPORT_NO_PORT},
        {"host:0", 0, RL_HOSTPORT_BAD_PORT},
        {"host:0", OPTIONAL, RL_HOSTPORT_BAD_PORT},
        {"host:65536", ZERO, RL_HOSTPORT_BAD_PORT},
        {"host:99999999999999999999", ZERO, RL_HOSTPORT_BAD_PORT},
        {"host:-1", 0, RL_HOSTPORT_BAD_PORT},
        {"host:+80", 0, RL_HOSTPORT_BAD_PORT},
        {"host: 80", 0, RL_HOSTPORT_BAD_PORT},
        {"host:80 ", 0, RL_HOSTPORT_BAD_PORT},
        {"host:80x", 0, RL_HOSTPORT_BAD_PORT},
        {"host:0x50", 0, RL_HOSTPORT_BAD_PORT},
        {"host:http", 0, RL_HOSTPORT_BAD_PORT},
        {"[::1]:80]", 0, RL_HOSTPORT_BAD_PORT},
        {"[::1:80", 0, RL_HOSTPORT_UNTERMINATED},
        {"[::1", OPTIONAL, RL_HOSTPORT_UNTERMINATED},
        {"[::1]x:80", 0, RL_HOSTPORT_AFTER_BRACKET},
        {"[::1]80", 0, RL_HOSTPORT_AFTER_BRACKET},
        {"[::1] ", OPTIONAL, RL_HOSTPORT_AFTER_BRACKET},
        {"::1:80", 0, RL_HOSTPORT_BARE_IPV6},
        {"::1", OPTIONAL, RL_HOSTPORT_BARE_IPV6},
        {"a:b:80", 0, RL_HOSTPORT_BARE_IPV6},
        {"ho st:80", 0, RL_HOSTPORT_BAD_HOST},
        {"host\n:80", 0, RL_HOSTPORT_BAD_HOST},
        {"a]:80", 0, RL_HOSTPORT_BAD_HOST},
        {"[a[b]:80", 0, RL_HOSTPORT_BAD_HOST},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rl_hostport hp;
        rl_hostport_status status = parse(cases[i].text, cases[i].flags, &hp);
        ck_assert_msg(status == cases[i].status, "\"%s\": %d (%s), want %d", cases[i].text,
                      (int)status, rl_hostport_error(status, cases[i].flags), (int)cases[i].status);
        ck_assert_ptr_nonnull(rl_hostport_error(status, cases[i].flags));
    }
    rl_hostport hp; /* a NUL inside the given length is a control byte, not an end */
    ck_assert_int_eq(rl_hostport_parse("h\0x:80", 6, 0, &hp), RL_HOSTPORT_BAD_HOST);
}
END_TEST

// Returns the error of parsing a config listening on address (NULL if accepted).
static const char *listener_error(const char *address, char *err, size_t len) {
    char json[512];
    snprintf(json, sizeof(json),
             "{\"listen\":[\"%s\"],\"policies\":{\"p\":{\"algorithm\":\"gcra\",\"limit\":1,"
             "\"period\":\"1s\"}}}",
             address);
    rl_config *c = rl_config_parse(json, "test", err, len);
    rl_config_free(c);
    return c ? NULL : err;
}

// Returns the error of parsing a config with the Redis URL url (NULL if accepted).
static const char *redis_error(const char *url, char *err, size_t len) {
    char json[512];
    snprintf(json, sizeof(json),
             "{\"listen\":[\"unix:/tmp/x.sock\"],\"store\":{\"type\":\"redis\",\"url\":\"%s\"},"
             "\"policies\":{\"p\":{\"algorithm\":\"gcra\",\"limit\":1,\"period\":\"1s\"}}}",
             url);
    rl_config *c = rl_config_parse(json, "test", err, len);
    rl_config_free(c);
    return c ? NULL : err;
}

/* The daemon's listeners and Redis URL, and the client, all say the same. */
START_TEST(test_users_agree) {
    char err[512];
    ck_assert_ptr_null(listener_error("tcp:[::1]:7379", err, sizeof(err)));
    ck_assert_ptr_null(listener_error("tcp:127.0.0.1:0", err, sizeof(err)));
    const char *e = listener_error("tcp:::1:7379", err, sizeof(err));
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(strstr(e, "listen[0]: \"::1:7379\": an IPv6 host is written in brackets"), "%s",
                  e);
    e = listener_error("http:127.0.0.1:7380x", err, sizeof(err));
    ck_assert_msg(e && strstr(e, "the port must be 0..65535"), "%s", e ? e : "accepted");
    e = listener_error("tcp::7379", err, sizeof(err));
    ck_assert_msg(e && strstr(e, "the host is empty"), "%s", e ? e : "accepted");

    ck_assert_ptr_null(redis_error("redis://[::1]", err, sizeof(err)));
    ck_assert_ptr_null(redis_error("redis://u:p@[::1]:6380/2", err, sizeof(err)));
    e = redis_error("redis://host:0", err, sizeof(err));
    ck_assert_msg(e && strstr(e, "the port must be 1..65535"), "%s", e ? e : "accepted");
    e = redis_error("redis://::1:6379", err, sizeof(err));
    ck_assert_msg(e && strstr(e, "brackets"), "%s", e ? e : "accepted");
    e = redis_error("redis://[::1]x", err, sizeof(err));
    ck_assert_msg(e && strstr(e, "[IPv6] may be followed only by :PORT"), "%s", e ? e : "accepted");

    ck_assert_ptr_null(rl_client_connect("tcp:::1:7379", 200, err, sizeof(err)));
    ck_assert_msg(strstr(err, "brackets"), "%s", err);
    ck_assert_ptr_null(rl_client_connect("tcp:localhost:http", 200, err, sizeof(err)));
    ck_assert_msg(strstr(err, "the port must be 1..65535"), "%s", err);
    ck_assert_ptr_null(rl_client_connect("tcp:127.0.0.1:0", 200, err, sizeof(err)));
    ck_assert_msg(strstr(err, "the port must be 1..65535"), "%s", err);
    ck_assert_ptr_null(rl_client_connect("tcp:[::1]", 200, err, sizeof(err)));
    ck_assert_msg(strstr(err, "the port is missing"), "%s", err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hostport");
    TCase *tc = tcase_create("hostport");
    tcase_add_test(tc, test_good);
    tcase_add_test(tc, test_bad);
    tcase_add_test(tc, test_users_agree);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
