/*
 * e2e_leases.c: concurrency leases (issue 14) on the real daemon with the embedded
 * store, through raw frames: ACQUIRE/RELEASE/RENEW/LEASES, expiry on the daemon's
 * clock, release on disconnect (and DETACH), exempt/block/shadow, POLICY_KIND,
 * permissions, STATS counters.
 */
#include <check.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../support/daemon.h"
#include "rlproto.h"

static const char *const CONFIG =
    "{\"listen\": [\"unix:@DIR@/rlimitd.sock\","
    "  {\"address\": \"unix:@DIR@/public.sock\", \"admin\": false},"
    "  {\"address\": \"unix:@DIR@/checkonly.sock\", \"ops\": [\"check\"]}],"
    " \"policies\": {"
    "  \"up\": {\"algorithm\": \"concurrency\", \"limit\": 2, \"lease\": \"1h\"},"
    "  \"short\": {\"algorithm\": \"concurrency\", \"limit\": 1, \"lease\": \"200ms\"},"
    "  \"renewed\": {\"algorithm\": \"concurrency\", \"limit\": 1, \"lease\": \"2s\"},"
    "  \"counted\": {\"algorithm\": \"concurrency\", \"limit\": 1, \"lease\": \"1h\"},"
    "  \"sh\": {\"algorithm\": \"concurrency\", \"limit\": 1, \"lease\": \"1h\","
    "          \"mode\": \"shadow\"},"
    "  \"lists\": {\"algorithm\": \"concurrency\", \"limit\": 1, \"lease\": \"1h\","
    "             \"exempt\": [\"friend\"], \"block\": [\"foe\"]},"
    "  \"rate\": {\"algorithm\": \"fixed_window\", \"limit\": 5, \"period\": \"1h\"}"
    " }}";

#define HOUR_MS 3600000u

static rlt_daemon daemon_;
static uint8_t buf[1 << 16];
static uint32_t next_id = 1;

static void setup(void) {
    ck_assert_int_eq(rlt_daemon_start(&daemon_, CONFIG), 0);
}

static void teardown(void) {
    ck_assert_int_eq(rlt_daemon_stop(&daemon_), 0);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Connects to the daemon's socket named name (in its directory).
static int connect_to(const char *name) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", daemon_.dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static rl_response roundtrip(int fd, const rl_request *req) {
    uint8_t frame[1024];
    size_t n = rl_request_encode(req, frame, sizeof(frame));
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(write(fd, frame, n), (ssize_t)n);
    size_t have = 0;
    rl_response resp;
    for (;;) {
        int rc = rl_response_decode(buf, have, &resp);
        if (rc == RL_OK)
            break;
        ck_assert_int_ne(rc, RL_ERR);
        struct pollfd p = {fd, POLLIN, 0};
        ck_assert_int_eq(poll(&p, 1, 10000), 1);
        ssize_t got = read(fd, buf + have, sizeof(buf) - have);
        ck_assert_int_gt(got, 0);
        have += (size_t)got;
    }
    ck_assert_uint_eq(resp.id, req->id);
    return resp;
}

// Sends one item request (opcode, flags, lease) and returns the answer.
static rl_response call(int fd, uint8_t opcode, uint16_t flags, const char *policy, const char *key,
                        uint32_t cost, uint64_t lease) {
    rl_request req = {.id = next_id++, .opcode = opcode, .flags = flags, .item_count = 1};
    req.lease = lease;
    req.items[0] = (rl_item){cost, policy, key, (uint16_t)strlen(key), (uint8_t)strlen(policy)};
    return roundtrip(fd, &req);
}

static rl_response acquire(int fd, const char *policy, const char *key, uint32_t slots) {
    return call(fd, RL_OP_ACQUIRE, 0, policy, key, slots, 0);
}

static rl_response release(int fd, const char *policy, const char *key, uint64_t lease) {
    return call(fd, RL_OP_RELEASE, 0, policy, key, 0, lease);
}

// Returns the JSON text of an admin answer (STATS, LEASES), parsed.
static json_t *admin_json(int fd, uint8_t opcode, const char *policy, const char *key) {
    rl_response r = call(fd, opcode, 0, policy, key, 0, 0);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    json_error_t jerr;
    json_t *o = json_loadb(r.text, r.text_len, 0, &jerr);
    ck_assert_msg(o != NULL, "bad JSON: %s", jerr.text);
    return o;
}

// Returns counter name of policy in STATS.
static long long stat_of(int fd, const char *policy, const char *name) {
    json_t *o = admin_json(fd, RL_OP_STATS, "", "");
    json_t *list = json_object_get(o, "policies"), *p;
    size_t i;
    long long v = -1;
    json_array_foreach(list, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), policy) == 0) {
            json_t *f = json_object_get(p, name);
            ck_assert_msg(json_is_integer(f), "STATS %s has no %s", policy, name);
            v = json_integer_value(f);
        }
    }
    json_decref(o);
    return v;
}

// Acquires on fd until allowed, for at most limit_ms. Returns the time it took (ms).
static int64_t acquire_when_free(int fd, const char *policy, const char *key, int64_t limit_ms,
                                 rl_response *out) {
    int64_t start = now_ms();
    for (;;) {
        *out = acquire(fd, policy, key, 1);
        if (out->result.status == RL_ST_ALLOWED)
            return now_ms() - start;
        ck_assert_int_eq(out->result.status, RL_ST_DENIED);
        ck_assert_msg(now_ms() - start < limit_ms, "no slot freed within %lld ms",
                      (long long)limit_ms);
        usleep(5000);
    }
}

START_TEST(limit_two_denies_the_third) {
    int fd = connect_to("rlimitd.sock");
    rl_response a = acquire(fd, "up", "k", 1), b = acquire(fd, "up", "k", 1);
    ck_assert_int_eq(a.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(b.result.status, RL_ST_ALLOWED);
    ck_assert(a.lease != 0 && b.lease != 0 && a.lease != b.lease);
    ck_assert_uint_eq(a.result.limit, 2);
    ck_assert_uint_eq(a.result.remaining, 1);
    ck_assert_uint_eq(b.result.remaining, 0);
    ck_assert_uint_eq(a.result.window_ms, HOUR_MS);
    ck_assert_uint_eq(a.result.reset_after_ms, HOUR_MS);
    rl_response c = acquire(fd, "up", "k", 1);
    ck_assert_int_eq(c.result.status, RL_ST_DENIED);
    ck_assert_uint_eq(c.lease, 0);
    ck_assert_uint_eq(c.result.remaining, 0);
    ck_assert_uint_gt(c.result.retry_after_ms, 0);
    ck_assert_uint_le(c.result.retry_after_ms, HOUR_MS); /* at most the lease */
    ck_assert_int_eq(acquire(fd, "up", "other", 2).result.status, RL_ST_ALLOWED); /* per key */
    ck_assert_int_eq(acquire(fd, "up", "k3", 3).result.status, RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(acquire(fd, "up", "k3", 0).result.status, RL_ST_COST_INVALID);
    ck_assert_int_eq(call(fd, RL_OP_RELEASE, 0, "up", "k", 1, a.lease).result.status,
                     RL_ST_COST_INVALID);
    close(fd);
}
END_TEST

START_TEST(release_frees_once_and_unknown_changes_nothing) {
    int fd = connect_to("rlimitd.sock");
    rl_response a = acquire(fd, "up", "r", 1), b = acquire(fd, "up", "r", 1);
    rl_response r = release(fd, "up", "r", a.lease);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    ck_assert_uint_eq(r.lease, a.lease);
    ck_assert_uint_eq(r.result.remaining, 1);
    /* b's expiry: an hour after its ACQUIRE, less the time since (a slow valgrind run
       spends ms between the two answers) */
    ck_assert_uint_le(r.result.reset_after_ms, HOUR_MS);
    ck_assert_uint_gt(r.result.reset_after_ms, HOUR_MS - 10000);
    rl_response c = acquire(fd, "up", "r", 1);
    ck_assert_int_eq(c.result.status, RL_ST_ALLOWED); /* the slot came back */
    uint64_t gone[] = {a.lease, a.lease, 12345};      /* twice, then never issued */
    for (size_t i = 0; i < 3; i++) {
        r = release(fd, "up", "r", gone[i]);
        ck_assert_int_eq(r.result.status, RL_ST_LEASE_UNKNOWN);
        ck_assert_uint_eq(r.lease, gone[i]);
        ck_assert_uint_eq(r.result.remaining, 0); /* b and c still hold both slots */
        ck_assert_int_eq(call(fd, RL_OP_RENEW, 0, "up", "r", 0, gone[i]).result.status,
                         RL_ST_LEASE_UNKNOWN);
    }
    ck_assert_int_eq(acquire(fd, "up", "r", 1).result.status, RL_ST_DENIED);
    ck_assert_int_eq(release(fd, "up", "r", b.lease).result.status, RL_ST_OK);
    ck_assert_int_eq(release(fd, "up", "r", c.lease).result.status, RL_ST_OK);
    ck_assert_int_eq(release(fd, "up", "nothing-here", 99).result.status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_eq(acquire(fd, "up", "r", 2).result.status, RL_ST_ALLOWED);
    close(fd);
}
END_TEST

START_TEST(expiry_reclaims_a_slot_after_the_lease) {
    int fd = connect_to("rlimitd.sock");
    int64_t t0 = now_ms();
    rl_response a = acquire(fd, "short", "e", 1);
    ck_assert_int_eq(a.result.status, RL_ST_ALLOWED);
    rl_response d = acquire(fd, "short", "e", 1);
    ck_assert_int_eq(d.result.status, RL_ST_DENIED);
    ck_assert_uint_le(d.result.retry_after_ms, 200);
    rl_response b;
    acquire_when_free(fd, "short", "e", 5000, &b);
    ck_assert_int_ge(now_ms() - t0, 195); /* not before the lease ran out */
    ck_assert_int_eq(release(fd, "short", "e", a.lease).result.status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_ge(stat_of(fd, "short", "expired"), 1);
    close(fd);
}
END_TEST

START_TEST(renew_outlives_the_original_expiry) {
    int fd = connect_to("rlimitd.sock");
    int64_t t0 = now_ms();
    rl_response a = acquire(fd, "renewed", "x", 1); /* lease 2 s: expires at t0 + 2 s */
    ck_assert_int_eq(a.result.status, RL_ST_ALLOWED);
    usleep(1000 * 1000);
    rl_response r = call(fd, RL_OP_RENEW, 0, "renewed", "x", 0, a.lease);
    int64_t renewed = now_ms();
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    ck_assert_uint_eq(r.lease, a.lease);
    ck_assert_uint_eq(r.result.reset_after_ms, 2000);
    ck_assert_int_lt(renewed - t0, 2000);
    while (now_ms() - t0 < 2300) /* past the original expiry */
        usleep(20000);
    ck_assert_int_lt(now_ms() - renewed, 2000); /* the renewed one has not run out */
    ck_assert_int_eq(acquire(fd, "renewed", "x", 1).result.status, RL_ST_DENIED);
    ck_assert_int_eq(release(fd, "renewed", "x", a.lease).result.status, RL_ST_OK);
    close(fd);
}
END_TEST

START_TEST(disconnect_releases_unless_detached) {
    int holder = connect_to("public.sock"), other = connect_to("rlimitd.sock");
    rl_response kept = call(holder, RL_OP_ACQUIRE, RL_REQ_DETACH, "up", "d", 1, 0);
    ck_assert_int_eq(kept.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(acquire(holder, "up", "d", 1).result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(acquire(other, "up", "d", 1).result.status, RL_ST_DENIED);
    close(holder);
    rl_response got;
    int64_t took = acquire_when_free(other, "up", "d", 2000, &got);
    ck_assert_int_lt(took, 2000); /* at once, not after the 1 h lease */
    ck_assert_int_eq(acquire(other, "up", "d", 1).result.status, RL_ST_DENIED); /* DETACH */
    ck_assert_int_eq(stat_of(other, "up", "released_on_disconnect"), 1);
    ck_assert_int_eq(release(other, "up", "d", kept.lease).result.status, RL_ST_OK);
    /* a lease released on its connection is not released again on close */
    int again = connect_to("public.sock");
    rl_response a = acquire(again, "up", "d2", 1);
    ck_assert_int_eq(release(again, "up", "d2", a.lease).result.status, RL_ST_OK);
    close(again);
    ck_assert_int_eq(acquire(other, "up", "d2", 2).result.status, RL_ST_ALLOWED);
    close(other);
}
END_TEST

START_TEST(exempt_block_and_shadow) {
    int fd = connect_to("rlimitd.sock");
    for (int i = 0; i < 3; i++) {
        rl_response r = acquire(fd, "lists", "friend", 1);
        ck_assert_int_eq(r.result.status, RL_ST_ALLOWED);
        ck_assert_uint_eq(r.result.flags & RL_FLAG_EXEMPT, RL_FLAG_EXEMPT);
        ck_assert_uint_eq(r.lease, 0); /* nothing held */
    }
    rl_response r = release(fd, "lists", "friend", 0);
    ck_assert_int_eq(r.result.status, RL_ST_OK); /* lease 0: a no-op */
    ck_assert_int_eq(call(fd, RL_OP_RENEW, 0, "lists", "friend", 0, 0).result.status, RL_ST_OK);
    r = acquire(fd, "lists", "foe", 1);
    ck_assert_int_eq(r.result.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.result.flags & RL_FLAG_BLOCKED, RL_FLAG_BLOCKED);
    ck_assert_uint_eq(r.lease, 0);
    rl_response first = acquire(fd, "sh", "s", 1);
    ck_assert_int_eq(first.result.status, RL_ST_ALLOWED);
    ck_assert_uint_ne(first.lease, 0);
    ck_assert_uint_eq(first.result.flags & RL_FLAG_SHADOW, 0);
    r = acquire(fd, "sh", "s", 1); /* would be denied */
    ck_assert_int_eq(r.result.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.result.flags & RL_FLAG_SHADOW, RL_FLAG_SHADOW);
    ck_assert_uint_eq(r.lease, 0);
    ck_assert_uint_eq(r.result.retry_after_ms, 0);
    ck_assert_int_eq(stat_of(fd, "sh", "held"), 1);
    close(fd);
}
END_TEST

START_TEST(policy_kind_both_ways) {
    int fd = connect_to("rlimitd.sock");
    ck_assert_int_eq(call(fd, RL_OP_CHECK, 0, "up", "k", 1, 0).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(call(fd, RL_OP_PEEK, 0, "up", "k", 1, 0).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(call(fd, RL_OP_ADJUST, 0, "up", "k", 1, 0).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(acquire(fd, "rate", "k", 1).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(release(fd, "rate", "k", 5).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(call(fd, RL_OP_RENEW, 0, "rate", "k", 0, 5).result.status, RL_ST_POLICY_KIND);
    ck_assert_int_eq(call(fd, RL_OP_LEASES, 0, "rate", "", 0, 0).result.status, RL_ST_POLICY_KIND);
    rl_request multi = {.id = next_id++, .opcode = RL_OP_MULTI_CHECK, .item_count = 2};
    multi.items[0] = (rl_item){1, "rate", "k", 1, 4};
    multi.items[1] = (rl_item){1, "up", "k", 1, 2};
    ck_assert_int_eq(roundtrip(fd, &multi).result.status, RL_ST_POLICY_KIND);
    /* the connection stays open, and nothing was taken */
    ck_assert_int_eq(call(fd, RL_OP_CHECK, 0, "rate", "k", 5, 0).result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(acquire(fd, "up", "k", 2).result.status, RL_ST_ALLOWED);
    /* RESET (admin) ends every lease of a concurrency key */
    ck_assert_int_eq(call(fd, RL_OP_RESET, 0, "up", "k", 0, 0).result.status, RL_ST_OK);
    ck_assert_int_eq(acquire(fd, "up", "k", 2).result.status, RL_ST_ALLOWED);
    close(fd);
}
END_TEST

START_TEST(permissions) {
    int check_only = connect_to("checkonly.sock"), pub = connect_to("public.sock");
    ck_assert_int_eq(acquire(check_only, "up", "p", 1).result.status, RL_ST_NOT_PERMITTED);
    ck_assert_int_eq(release(check_only, "up", "p", 1).result.status, RL_ST_NOT_PERMITTED);
    ck_assert_int_eq(call(check_only, RL_OP_RENEW, 0, "up", "p", 0, 1).result.status,
                     RL_ST_NOT_PERMITTED);
    rl_response a = acquire(pub, "up", "p", 1); /* "lease" is a non-admin default */
    ck_assert_int_eq(a.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(call(pub, RL_OP_LEASES, 0, "up", "", 0, 0).result.status,
                     RL_ST_NOT_PERMITTED); /* "leases" is admin only by default */
    ck_assert_int_eq(release(pub, "up", "p", a.lease).result.status, RL_ST_OK);
    close(check_only);
    close(pub);
}
END_TEST

START_TEST(stats_count_every_lease_event) {
    int fd = connect_to("rlimitd.sock"), other = connect_to("public.sock");
    rl_response a = acquire(fd, "counted", "c", 1);
    ck_assert_int_eq(acquire(fd, "counted", "c", 1).result.status, RL_ST_DENIED);
    ck_assert_int_eq(stat_of(fd, "counted", "held"), 1);
    ck_assert_int_eq(release(fd, "counted", "c", a.lease).result.status, RL_ST_OK);
    ck_assert_int_eq(release(fd, "counted", "c", a.lease).result.status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_eq(acquire(other, "counted", "c", 1).result.status, RL_ST_ALLOWED);
    close(other);
    int64_t start = now_ms();
    while (stat_of(fd, "counted", "released_on_disconnect") != 1) {
        ck_assert_msg(now_ms() - start < 2000, "the close was not seen within 2 s");
        usleep(5000);
    }
    ck_assert_int_eq(acquire(fd, "counted", "c", 1).result.status, RL_ST_ALLOWED);
    const char *names[] = {"held",          "acquired", "denied",
                           "released",      "expired",  "released_on_disconnect",
                           "lease_unknown", "allowed",  "errors"};
    long long want[] = {1, 3, 1, 1, 0, 1, 1, 3, 0};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(stat_of(fd, "counted", names[i]) == want[i], "%s: %lld, expected %lld",
                      names[i], stat_of(fd, "counted", names[i]), want[i]);
    close(fd);
}
END_TEST

START_TEST(leases_lists_the_held_leases) {
    int fd = connect_to("rlimitd.sock");
    rl_response a = acquire(fd, "up", "la", 2), b = acquire(fd, "up", "l\001b", 1);
    json_t *o = admin_json(fd, RL_OP_LEASES, "up", "");
    ck_assert_str_eq(json_string_value(json_object_get(o, "policy")), "up");
    ck_assert(json_is_false(json_object_get(o, "truncated")));
    json_t *list = json_object_get(o, "leases"), *l;
    ck_assert_uint_eq(json_array_size(list), 2);
    size_t i;
    int seen = 0;
    json_array_foreach(list, i, l) {
        char id[24];
        const char *key = json_string_value(json_object_get(l, "key"));
        int is_a = strcmp(key, "la") == 0;
        snprintf(id, sizeof(id), "%llu", (unsigned long long)(is_a ? a.lease : b.lease));
        ck_assert_str_eq(json_string_value(json_object_get(l, "lease")), id);
        ck_assert_int_eq(json_integer_value(json_object_get(l, "slots")), is_a ? 2 : 1);
        ck_assert_int_gt(json_integer_value(json_object_get(l, "expires_in_ms")), HOUR_MS - 60000);
        if (!is_a) {
            ck_assert_str_eq(key, "l\\x01b");
            ck_assert_str_eq(json_string_value(json_object_get(l, "key_hex")), "6c0162");
        }
        seen |= is_a ? 1 : 2;
    }
    ck_assert_int_eq(seen, 3);
    json_decref(o);
    o = admin_json(fd, RL_OP_LEASES, "up", "la");
    ck_assert_uint_eq(json_array_size(json_object_get(o, "leases")), 1);
    json_decref(o);
    ck_assert_int_eq(call(fd, RL_OP_LEASES, 0, "nope", "", 0, 0).result.status,
                     RL_ST_UNKNOWN_POLICY);
    close(fd);
}
END_TEST

static Suite *leases_suite(void) {
    Suite *s = suite_create("e2e_leases");
    TCase *tc = tcase_create("leases");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, limit_two_denies_the_third);
    tcase_add_test(tc, release_frees_once_and_unknown_changes_nothing);
    tcase_add_test(tc, expiry_reclaims_a_slot_after_the_lease);
    tcase_add_test(tc, renew_outlives_the_original_expiry);
    tcase_add_test(tc, disconnect_releases_unless_detached);
    tcase_add_test(tc, exempt_block_and_shadow);
    tcase_add_test(tc, policy_kind_both_ways);
    tcase_add_test(tc, permissions);
    tcase_add_test(tc, stats_count_every_lease_event);
    tcase_add_test(tc, leases_lists_the_held_leases);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(leases_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
