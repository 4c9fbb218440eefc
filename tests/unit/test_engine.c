/*
 * test_engine.c: the engine on a real event_base with the embedded store, fed
 * hand-built rl_request structs; a reply callback records each rl_response.
 *
 * No sockets: the engine knows none. Every request must be answered exactly once
 * (checked by every helper), with the id and opcode it came with. Policies use
 * periods of an hour or more where counts must be exact, so that real time passing
 * during the test does not refill them.
 */
#include "alloc.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "rlproto.h"
#include "store.h"

#include <check.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000u

static const char *const base_config =
    "{'listen': ['unix:/tmp/rl-engine-test.sock'],"
    " 'limits': {'max_key': 16},"
    " 'policies': {"
    "  'log5': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h',"
    "           'exempt': ['vip', 'vip2'], 'block': ['bad']},"
    "  'tb': {'algorithm': 'token_bucket', 'limit': 100, 'period': '1h', 'burst': 20},"
    "  'tb5': {'algorithm': 'token_bucket', 'limit': 5, 'period': '1h'},"
    "  'gcra': {'algorithm': 'gcra', 'limit': 10, 'period': '1h', 'burst': 2},"
    "  'fixed': {'algorithm': 'fixed_window', 'limit': 5, 'period': '1d'},"
    "  'multi': {'algorithm': 'fixed_window',"
    "            'rates': [{'limit': 10, 'period': '1s'}, {'limit': 5000, 'period': '1d'}]},"
    "  'shadow': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h',"
    "             'mode': 'shadow'},"
    "  'shadow2': {'algorithm': 'sliding_window_log', 'limit': 2, 'period': '1h',"
    "              'mode': 'shadow'},"
    "  'blockm': {'rates': [{'algorithm': 'sliding_window_log', 'limit': 3, 'period': '1m'},"
    "                       {'algorithm': 'token_bucket', 'limit': 10, 'period': '1h',"
    "                        'burst': 4}], 'block': ['bad']},"
    "  'over': {'algorithm': 'sliding_window_log', 'limit': 2, 'period': '1h',"
    "           'overrides': {'partner': {'limit': 4}}},"
    "  'short': {'algorithm': 'token_bucket', 'limit': 1, 'period': '10ms'}"
    " }}";

static struct event_base *base; /* the loop of the current test */
static rl_engine *engine;       /* the engine of the current test */
static uint32_t next_id = 1;    /* request ids */

/* ---- helpers ---- */

/* Parses a config written with single quotes; NULL with err filled if refused. */
static rl_config *parse_config(const char *single_quoted, char *err, size_t errlen) {
    char *json = strdup(single_quoted);
    for (char *p = json; *p; p++)
        if (*p == '\'')
            *p = '"';
    rl_config *c = rl_config_parse(json, "test.json", err, errlen);
    free(json);
    return c;
}

static rl_engine *start_engine(const char *single_quoted) {
    char err[1024];
    rl_config *c = parse_config(single_quoted, err, sizeof(err));
    ck_assert_msg(c, "config refused: %s", err);
    rl_engine *e = rl_engine_new(base, c, err, sizeof(err));
    ck_assert_msg(e, "rl_engine_new: %s", err);
    return e;
}

static void setup(void) {
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    engine = start_engine(base_config);
}

static void teardown(void) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    rl_engine_free(engine);
    engine = NULL;
    event_base_free(base);
    base = NULL;
}

typedef struct reply_box {
    int calls;          /* reply() calls */
    rl_response resp;   /* the last response */
    char text[1 << 16]; /* a copy of its text, NUL-terminated */
} reply_box;

static reply_box box;

static void on_reply(void *arg, const rl_response *resp) {
    reply_box *b = arg;
    b->calls++;
    b->resp = *resp;
    b->text[0] = '\0';
    if (resp->text) {
        ck_assert_uint_lt(resp->text_len, sizeof(b->text));
        memcpy(b->text, resp->text, resp->text_len);
        b->text[resp->text_len] = '\0';
        b->resp.text = b->text;
    }
}

/* The permissions of an authenticated connection: on an admin listener, or (admin 0) on
   one that allows every operation but RESET and RELOAD. */
#define PUBLIC_PERMS ((RL_PERM_ALL & ~(RL_PERM_RESET | RL_PERM_RELOAD)) | RL_PERM_AUTHENTICATED)

static uint32_t perms_of(int admin) {
    return admin ? RL_PERM_ALL | RL_PERM_AUTHENTICATED : PUBLIC_PERMS;
}

/* Sends req to the engine with perms; asserts one reply, with req's id and opcode. */
static rl_response send_with(rl_request *req, uint32_t perms) {
    req->id = next_id++;
    box.calls = 0;
    rl_engine_handle(engine, req, perms, on_reply, &box);
    ck_assert_msg(box.calls == 1, "opcode 0x%02x: %d replies", req->opcode, box.calls);
    ck_assert_uint_eq(box.resp.id, req->id);
    ck_assert_uint_eq(box.resp.opcode, req->opcode);
    return box.resp;
}

/* Sends req to the engine; asserts one reply, with req's id and opcode. */
static rl_response send_request(rl_request *req, int admin) {
    req->id = next_id++;
    box.calls = 0;
    rl_engine_handle(engine, req, perms_of(admin), on_reply, &box);
    ck_assert_msg(box.calls == 1, "opcode 0x%02x: %d replies", req->opcode, box.calls);
    ck_assert_uint_eq(box.resp.id, req->id);
    ck_assert_uint_eq(box.resp.opcode, req->opcode);
    return box.resp;
}

static rl_item item(const char *policy, const char *key, int64_t cost) {
    return (rl_item){.cost = cost,
                     .policy = policy,
                     .key = key,
                     .key_len = (uint16_t)strlen(key),
                     .policy_len = (uint8_t)strlen(policy)};
}

static rl_response op_admin(uint8_t opcode, const char *policy, const char *key, int64_t cost,
                            int admin) {
    rl_request req = {.opcode = opcode, .item_count = 1};
    req.items[0] = item(policy, key, cost);
    rl_response r = send_request(&req, admin);
    ck_assert_uint_eq(r.item_count, 0);
    return r;
}

static rl_result op(uint8_t opcode, const char *policy, const char *key, int64_t cost) {
    return op_admin(opcode, policy, key, cost, 0).result;
}

static rl_result check(const char *policy, const char *key, int64_t cost) {
    return op(RL_OP_CHECK, policy, key, cost);
}

static rl_result peek(const char *policy, const char *key, int64_t cost) {
    return op(RL_OP_PEEK, policy, key, cost);
}

static rl_response multi(size_t n, const rl_item *items) {
    rl_request req = {.opcode = RL_OP_MULTI_CHECK, .item_count = (uint8_t)n};
    memcpy(req.items, items, n * sizeof(rl_item));
    rl_response r = send_request(&req, 0);
    ck_assert_uint_eq(r.item_count, n);
    return r;
}

static rl_response no_items(uint8_t opcode, int admin) {
    rl_request req = {.opcode = opcode};
    return send_request(&req, admin);
}

/* An error result: the status, and every figure 0. */
static void assert_error(rl_result r, rl_status status) {
    ck_assert_msg(r.status == status, "status %s, expected %s", rl_status_name(r.status),
                  rl_status_name(status));
    ck_assert_uint_eq(r.flags, 0);
    ck_assert_uint_eq(r.limit, 0);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_uint_eq(r.reset_after_ms, 0);
    ck_assert_uint_eq(r.retry_after_ms, 0);
    ck_assert_uint_eq(r.window_ms, 0);
}

static void assert_allowed(rl_result r, uint32_t limit, uint32_t remaining) {
    ck_assert_msg(r.status == RL_ST_ALLOWED, "status %s", rl_status_name(r.status));
    ck_assert_uint_eq(r.limit, limit);
    ck_assert_uint_eq(r.remaining, remaining);
    ck_assert_uint_eq(r.retry_after_ms, 0);
}

static json_t *stats_of(const char *policy_name) {
    rl_response r = no_items(RL_OP_STATS, 0);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    json_error_t jerr;
    json_t *doc = json_loads(box.text, 0, &jerr);
    ck_assert_msg(doc, "STATS is not JSON: %s", jerr.text);
    if (!policy_name)
        return doc;
    json_t *list = json_object_get(doc, "policies"), *p;
    size_t i;
    json_array_foreach(list, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), policy_name) == 0) {
            json_incref(p);
            json_decref(doc);
            return p;
        }
    }
    ck_abort_msg("STATS has no policy %s", policy_name);
    return NULL;
}

static long long counter(json_t *obj, const char *name) {
    json_t *v = json_object_get(obj, name);
    ck_assert_msg(json_is_integer(v), "no counter %s", name);
    return json_integer_value(v);
}

/* ---- basics ---- */

START_TEST(test_ping) {
    for (int admin = 0; admin < 2; admin++) {
        rl_response r = no_items(RL_OP_PING, admin);
        assert_error(r.result, RL_ST_OK);
        ck_assert_uint_eq(r.item_count, 0);
        ck_assert_uint_eq(r.text_len, 0);
    }
}
END_TEST

START_TEST(test_check_exact_counts) {
    for (uint32_t i = 0; i < 5; i++) {
        rl_result r = check("log5", "u", 1);
        assert_allowed(r, 5, 4 - i);
        ck_assert_uint_eq(r.flags, 0);
        ck_assert_uint_eq(r.window_ms, HOUR_MS);
        ck_assert_uint_le(r.reset_after_ms, HOUR_MS);
        ck_assert_uint_gt(r.reset_after_ms, HOUR_MS - 5000);
    }
    for (int i = 0; i < 3; i++) {
        rl_result r = check("log5", "u", 1);
        ck_assert_int_eq(r.status, RL_ST_DENIED);
        ck_assert_uint_eq(r.remaining, 0);
        ck_assert_uint_eq(r.limit, 5);
        ck_assert_uint_le(r.retry_after_ms, HOUR_MS);
        ck_assert_uint_gt(r.retry_after_ms, HOUR_MS - 5000);
    }
    /* another key is untouched */
    assert_allowed(check("log5", "v", 2), 5, 3);
    /* token bucket: capacity is the burst, the window is the time to refill it */
    rl_result r = check("tb", "u", 1);
    assert_allowed(r, 20, 19);
    ck_assert_uint_eq(r.reset_after_ms, 36000);
    ck_assert_uint_eq(r.window_ms, 20 * 36000);
    for (uint32_t i = 0; i < 4; i++)
        assert_allowed(check("tb5", "u", 1), 5, 4 - i);
    r = check("tb5", "u", 1);
    assert_allowed(r, 5, 0);
    r = check("tb5", "u", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_le(r.retry_after_ms, 720000);
    ck_assert_uint_gt(r.retry_after_ms, 715000);
    /* gcra: burst 2, one every 6 minutes */
    assert_allowed(check("gcra", "u", 1), 2, 1);
    assert_allowed(check("gcra", "u", 1), 2, 0);
    r = check("gcra", "u", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_le(r.retry_after_ms, 360000);
    ck_assert_uint_gt(r.retry_after_ms, 355000);
    ck_assert_uint_eq(r.window_ms, 720000);
    /* a key with an override is held to it */
    assert_allowed(check("over", "partner", 3), 4, 1);
    assert_allowed(check("over", "partner2", 2), 2, 0);
    /* PEEK consumes nothing */
    for (int i = 0; i < 10; i++)
        assert_allowed(peek("log5", "p", 2), 5, 3);
}
END_TEST

START_TEST(test_validation_errors) {
    assert_error(check("nope", "u", 1), RL_ST_UNKNOWN_POLICY);
    assert_error(check("log", "u", 1), RL_ST_UNKNOWN_POLICY);
    assert_error(check("log5x", "u", 1), RL_ST_UNKNOWN_POLICY);
    assert_error(check("nope", "", 0), RL_ST_UNKNOWN_POLICY);
    assert_error(check("log5", "", 1), RL_ST_KEY_EMPTY);
    assert_error(peek("log5", "", 1), RL_ST_KEY_EMPTY);
    assert_error(check("log5", "0123456789abcdefg", 1), RL_ST_KEY_TOO_LONG);
    assert_allowed(check("log5", "0123456789abcdef", 1), 5, 4);
    assert_error(check("log5", "u", 0), RL_ST_COST_INVALID);
    assert_error(peek("log5", "u", 0), RL_ST_COST_INVALID);
    assert_error(op(RL_OP_ADJUST, "log5", "u", 0), RL_ST_COST_INVALID);
    assert_error(op_admin(RL_OP_RESET, "log5", "u", 1, 1).result, RL_ST_COST_INVALID);
    assert_error(op_admin(RL_OP_RESET, "log5", "u", -1, 1).result, RL_ST_COST_INVALID);
    assert_error(check("fixed", "u", 6), RL_ST_COST_TOO_LARGE);
    assert_error(peek("fixed", "u", 6), RL_ST_COST_TOO_LARGE);
    assert_error(check("tb", "u", 21), RL_ST_COST_TOO_LARGE); /* burst 20 */
    assert_error(check("gcra", "u", 3), RL_ST_COST_TOO_LARGE);
    assert_error(check("multi", "u", 11), RL_ST_COST_TOO_LARGE);
    assert_error(check("over", "u", 3), RL_ST_COST_TOO_LARGE);
    assert_error(check("log5", "u", 4294967295LL), RL_ST_COST_TOO_LARGE);
    /* nothing was consumed by the refusals */
    assert_allowed(check("fixed", "u", 5), 5, 0);
    assert_allowed(check("tb", "u", 20), 20, 0);
    assert_allowed(check("gcra", "u", 2), 2, 0);
    assert_allowed(check("multi", "u", 10), 10, 0);
    assert_allowed(check("over", "partner", 4), 4, 0);
    assert_allowed(check("log5", "u", 5), 5, 0);
}
END_TEST

START_TEST(test_unknown_opcodes) {
    static const uint8_t undefined[] = {0x00, 0x08, 0x0f, 0x13, 0x1f, 0x25, 0x3f, 0x40, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof(undefined); i++) {
        for (int admin = 0; admin < 2; admin++) {
            rl_request req = {.opcode = undefined[i], .item_count = 1};
            req.items[0] = item("log5", "u", 1);
            rl_response r = send_request(&req, admin);
            assert_error(r.result, RL_ST_UNKNOWN_OPCODE);
            ck_assert_uint_eq(r.item_count, 0);
            ck_assert_uint_eq(r.text_len, 0);
        }
    }
    assert_allowed(check("log5", "u", 5), 5, 0); /* nothing consumed */
}
END_TEST

/* TOP is defined by PROTOCOL.md (0x22): it must not be answered as an unknown opcode. */
START_TEST(test_top_is_defined) {
    check("log5", "bad", 1);
    rl_request req = {.opcode = RL_OP_TOP, .item_count = 1};
    req.items[0] = (rl_item){.cost = 10, .policy = "", .key = ""};
    rl_response r = send_request(&req, 0);
    ck_assert_msg(r.result.status != RL_ST_UNKNOWN_OPCODE, "TOP answered UNKNOWN_OPCODE");
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    json_t *doc = json_loads(box.text, 0, NULL);
    ck_assert_msg(doc, "TOP text is not JSON: %s", box.text);
    json_decref(doc);
}
END_TEST

/* ---- exempt and block lists ---- */

START_TEST(test_exempt_keys) {
    for (int i = 0; i < 20; i++) {
        rl_result r = check("log5", "vip", 1);
        assert_allowed(r, 5, 4);
        ck_assert_uint_eq(r.flags, RL_FLAG_EXEMPT);
        ck_assert_uint_eq(r.window_ms, HOUR_MS);
    }
    rl_result r = check("log5", "vip2", 5);
    assert_allowed(r, 5, 0);
    ck_assert_uint_eq(r.flags, RL_FLAG_EXEMPT);
    r = peek("log5", "vip", 2);
    ck_assert_uint_eq(r.flags, RL_FLAG_EXEMPT);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    /* only exact keys */
    ck_assert_uint_eq(check("log5", "vi", 1).flags, 0);
    ck_assert_uint_eq(check("log5", "vip2x", 1).flags, 0);
    ck_assert_uint_eq(check("tb", "vip", 1).flags, 0); /* another policy's list */
    /* not counted: the store holds nothing for them */
    json_t *doc = stats_of(NULL);
    ck_assert_int_eq(counter(json_object_get(doc, "store"), "keys"), 3);
    json_decref(doc);
    /* an exempt key's costs are still validated */
    assert_error(check("log5", "vip", 6), RL_ST_COST_TOO_LARGE);
    assert_error(check("log5", "vip", 0), RL_ST_COST_INVALID);
}
END_TEST

START_TEST(test_exempt_adjust_figures_stay_in_range) {
    rl_result r = op(RL_OP_ADJUST, "log5", "vip", -3);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.flags, RL_FLAG_EXEMPT);
    ck_assert_msg(r.remaining <= r.limit, "remaining %u above the limit %u", r.remaining, r.limit);
    r = op(RL_OP_ADJUST, "log5", "vip", 5);
    ck_assert_msg(r.remaining <= r.limit, "remaining %u above the limit %u", r.remaining, r.limit);
}
END_TEST

START_TEST(test_blocked_keys) {
    for (int i = 0; i < 3; i++) {
        rl_result r = check("log5", "bad", 1);
        ck_assert_int_eq(r.status, RL_ST_DENIED);
        ck_assert_uint_eq(r.flags, RL_FLAG_BLOCKED);
        ck_assert_uint_eq(r.limit, 5);
        ck_assert_uint_eq(r.remaining, 0);
        ck_assert_uint_eq(r.window_ms, HOUR_MS);
        ck_assert_uint_eq(r.retry_after_ms, r.window_ms);
    }
    rl_result r = peek("log5", "bad", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, RL_FLAG_BLOCKED);
    /* several rates: retry_after is the reported window */
    r = check("blockm", "bad", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, RL_FLAG_BLOCKED);
    ck_assert_uint_eq(r.retry_after_ms, r.window_ms);
    ck_assert_uint_gt(r.window_ms, 0);
    ck_assert_uint_eq(check("log5", "badx", 1).flags, 0);
    ck_assert_uint_eq(check("tb", "bad", 1).flags, 0);
}
END_TEST

/* A blocked key in a MULTI_CHECK denies the whole request: nothing is consumed, and the
 * other items' results describe their own policies. */
START_TEST(test_blocked_key_in_multi_check) {
    check("tb", "warm", 1); /* leaves a token_bucket verdict (limit 20) in a pending */
    rl_item items[2] = {item("log5", "fine", 1), item("log5", "bad", 1)};
    rl_response r = multi(2, items);
    ck_assert_int_eq(r.result.status, RL_ST_DENIED);
    ck_assert(r.result.flags & RL_FLAG_BLOCKED);
    ck_assert_int_eq(r.items[1].status, RL_ST_DENIED);
    ck_assert_uint_eq(r.items[1].flags, RL_FLAG_BLOCKED);
    ck_assert_msg(r.items[0].limit == 5 && r.items[0].window_ms == HOUR_MS,
                  "item 0 reports limit %u window %u: not its policy's", r.items[0].limit,
                  r.items[0].window_ms);
    ck_assert_uint_eq(r.items[0].flags & RL_FLAG_BLOCKED, 0);
    assert_allowed(peek("log5", "fine", 5), 5, 0); /* nothing consumed */
}
END_TEST

/* ---- shadow mode ---- */

START_TEST(test_shadow_mode) {
    rl_result r = check("shadow", "s", 4);
    assert_allowed(r, 5, 1);
    ck_assert_uint_eq(r.flags, 0);
    r = check("shadow", "s", 3); /* would be denied */
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.flags, RL_FLAG_SHADOW);
    ck_assert_uint_eq(r.retry_after_ms, 0);
    ck_assert_uint_eq(r.limit, 5);
    r = check("shadow", "s", 1); /* the 3 were not consumed: 1 fits */
    assert_allowed(r, 5, 0);
    ck_assert_uint_eq(r.flags, 0);
    r = check("shadow", "s", 1);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.flags, RL_FLAG_SHADOW);
    r = peek("shadow", "s", 1);
    ck_assert_int_eq(r.status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.flags, RL_FLAG_SHADOW);
    json_t *st = stats_of("shadow");
    ck_assert_int_eq(counter(st, "allowed"), 2);
    ck_assert_int_eq(counter(st, "shadow_denied"), 3);
    ck_assert_int_eq(counter(st, "denied"), 0);
    json_decref(st);
}
END_TEST

/* An enforced item that allows is consumed even when a shadow item of the same
 * MULTI_CHECK would deny; the answer is allowed. */
START_TEST(test_shadow_in_multi_check) {
    check("shadow2", "s", 2); /* full */
    rl_item items[3] = {item("fixed", "m1", 1), item("shadow2", "s", 1), item("log5", "m1", 2)};
    rl_response r = multi(3, items);
    ck_assert_int_eq(r.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.items[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.items[0].flags, 0);
    ck_assert_uint_eq(r.items[0].remaining, 4);
    ck_assert_int_eq(r.items[1].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.items[1].flags, RL_FLAG_SHADOW);
    ck_assert_uint_eq(r.items[1].retry_after_ms, 0);
    ck_assert_int_eq(r.items[2].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(r.items[2].remaining, 3);
    ck_assert_uint_eq(r.result.retry_after_ms, 0);
    /* the enforced items were consumed */
    assert_allowed(peek("fixed", "m1", 1), 5, 3);
    assert_allowed(peek("log5", "m1", 1), 5, 2);
    /* an enforced denial still denies, consuming nothing */
    check("fixed", "full", 5);
    rl_item mixed[3] = {item("fixed", "full", 1), item("shadow2", "s", 1), item("log5", "m2", 1)};
    r = multi(3, mixed);
    ck_assert_int_eq(r.result.status, RL_ST_DENIED);
    ck_assert_int_eq(r.items[0].status, RL_ST_DENIED);
    assert_allowed(peek("log5", "m2", 5), 5, 0);
}
END_TEST

/* ---- RESET, ADJUST ---- */

START_TEST(test_reset) {
    check("log5", "r", 5);
    rl_response r = op_admin(RL_OP_RESET, "log5", "r", 0, 0);
    assert_error(r.result, RL_ST_NOT_PERMITTED);
    ck_assert_int_eq(peek("log5", "r", 1).status, RL_ST_DENIED); /* still full */
    r = op_admin(RL_OP_RESET, "log5", "r", 0, 1);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    ck_assert_uint_eq(r.result.retry_after_ms, 0);
    assert_allowed(check("log5", "r", 5), 5, 0);
    ck_assert_int_eq(op_admin(RL_OP_RESET, "log5", "never-seen", 0, 1).result.status, RL_ST_OK);
    ck_assert_int_eq(op_admin(RL_OP_RESET, "log5", "vip", 0, 1).result.status, RL_ST_OK);
    ck_assert_int_eq(op_admin(RL_OP_RESET, "log5", "bad", 0, 1).result.status, RL_ST_OK);
    assert_error(op_admin(RL_OP_RESET, "nope", "r", 0, 1).result, RL_ST_UNKNOWN_POLICY);
    assert_error(op_admin(RL_OP_RESET, "log5", "", 0, 1).result, RL_ST_KEY_EMPTY);
    /* every rate of the policy */
    check("blockm", "r", 3);
    ck_assert_int_eq(op_admin(RL_OP_RESET, "blockm", "r", 0, 1).result.status, RL_ST_OK);
    ck_assert_int_eq(check("blockm", "r", 3).status, RL_ST_ALLOWED);
}
END_TEST

START_TEST(test_adjust) {
    assert_allowed(check("log5", "a", 1), 5, 4);
    rl_result r = op(RL_OP_ADJUST, "log5", "a", 3);
    assert_allowed(r, 5, 1);
    r = op(RL_OP_ADJUST, "log5", "a", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_uint_gt(r.retry_after_ms, 0);
    r = op(RL_OP_ADJUST, "log5", "a", 5); /* past the limit: allowed for ADJUST, to 2 x 5 */
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, 0);
    r = op(RL_OP_ADJUST, "log5", "a", 1); /* above 2 x the limit: held there */
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, RL_FLAG_CAPPED);
    r = op(RL_OP_ADJUST, "log5", "a", -5);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.remaining, 0);
    r = op(RL_OP_ADJUST, "log5", "a", -3);
    assert_allowed(r, 5, 3);
    r = op(RL_OP_ADJUST, "log5", "a", -5); /* never below zero usage */
    assert_allowed(r, 5, 5);
    assert_allowed(check("log5", "a", 5), 5, 0);
    r = op(RL_OP_ADJUST, "log5", "never-seen", -2);
    assert_allowed(r, 5, 5);
    ck_assert_uint_eq(r.reset_after_ms, 0);
    r = op(RL_OP_ADJUST, "tb5", "a", 5);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_le(r.reset_after_ms, 2 * HOUR_MS);
    assert_error(op(RL_OP_ADJUST, "nope", "a", 1), RL_ST_UNKNOWN_POLICY);
}
END_TEST

// ADJUST's cost is bounded like CHECK's: |cost| at most the smallest capacity of the
// key's rates (a refund too: a refund of everything is a RESET, which is admin-only).
START_TEST(test_adjust_cost_is_bounded_by_the_capacity) {
    static const struct {
        const char *policy, *key;
        int64_t capacity;
    } cases[] = {{"log5", "k", 5},   {"tb", "k", 20},  {"gcra", "k", 2},      {"fixed", "k", 5},
                 {"multi", "k", 10}, {"over", "k", 2}, {"over", "partner", 4}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *policy = cases[i].policy, *key = cases[i].key;
        int64_t c = cases[i].capacity;
        assert_error(op_admin(RL_OP_ADJUST, policy, key, c + 1, 1).result, RL_ST_COST_TOO_LARGE);
        assert_error(op_admin(RL_OP_ADJUST, policy, key, -(c + 1), 1).result, RL_ST_COST_TOO_LARGE);
        assert_error(op_admin(RL_OP_ADJUST, policy, key, INT32_MAX, 1).result,
                     RL_ST_COST_TOO_LARGE);
        assert_error(op_admin(RL_OP_ADJUST, policy, key, INT32_MIN, 1).result,
                     RL_ST_COST_TOO_LARGE);
        ck_assert_int_eq(op_admin(RL_OP_ADJUST, policy, key, c, 1).result.status, RL_ST_DENIED);
        rl_result r = op_admin(RL_OP_ADJUST, policy, key, -c, 1).result;
        ck_assert_msg(r.status != RL_ST_COST_TOO_LARGE, "%s: -%lld refused", policy, (long long)c);
    }
    /* A denied key stays denied: INT32_MIN is refused, not a reset. */
    for (int i = 0; i < 5; i++)
        check("log5", "locked", 1);
    assert_error(op_admin(RL_OP_ADJUST, "log5", "locked", INT32_MIN, 1).result,
                 RL_ST_COST_TOO_LARGE);
    ck_assert_int_eq(check("log5", "locked", 1).status, RL_ST_DENIED);
    /* An exempt key's ADJUST cost is validated too. */
    assert_error(op(RL_OP_ADJUST, "log5", "vip", 6), RL_ST_COST_TOO_LARGE);
}
END_TEST

/* ---- MULTI_CHECK ---- */

START_TEST(test_multi_check_figures) {
    rl_item both[2] = {item("log5", "x", 1), item("tb5", "x", 4)};
    rl_response r = multi(2, both);
    ck_assert_int_eq(r.result.status, RL_ST_ALLOWED);
    assert_allowed(r.items[0], 5, 4);
    assert_allowed(r.items[1], 5, 1);
    /* allowed: the item with the fewest remaining */
    ck_assert_uint_eq(r.result.remaining, 1);
    ck_assert_uint_eq(r.result.reset_after_ms, r.items[1].reset_after_ms);
    ck_assert_uint_eq(r.result.window_ms, r.items[1].window_ms);

    /* denied: the denying item with the longest retry */
    check("gcra", "y", 2);
    check("log5", "y", 5);
    rl_item denied[3] = {item("gcra", "y", 1), item("tb", "y", 1), item("log5", "y", 1)};
    r = multi(3, denied);
    ck_assert_int_eq(r.result.status, RL_ST_DENIED);
    ck_assert_int_eq(r.items[0].status, RL_ST_DENIED);
    ck_assert_int_eq(r.items[1].status, RL_ST_ALLOWED);
    ck_assert_int_eq(r.items[2].status, RL_ST_DENIED);
    ck_assert_uint_gt(r.items[2].retry_after_ms, r.items[0].retry_after_ms);
    ck_assert_uint_eq(r.result.retry_after_ms, r.items[2].retry_after_ms);
    ck_assert_uint_eq(r.result.limit, 5);
    ck_assert_uint_eq(r.result.window_ms, HOUR_MS);
    /* all or nothing: the allowed item was not consumed */
    assert_allowed(peek("tb", "y", 20), 20, 0);

    /* 16 items */
    rl_item many[RL_MAX_ITEMS];
    char keys[RL_MAX_ITEMS][8];
    for (int i = 0; i < RL_MAX_ITEMS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        many[i] = item("log5", keys[i], 1 + i % 5);
    }
    r = multi(RL_MAX_ITEMS, many);
    ck_assert_int_eq(r.result.status, RL_ST_ALLOWED);
    for (int i = 0; i < RL_MAX_ITEMS; i++)
        assert_allowed(r.items[i], 5, 4 - i % 5);
    ck_assert_uint_eq(r.result.remaining, 0);

    /* the same key twice: 3 + 3 of 5 is denied, and nothing is consumed */
    rl_item twice[2] = {item("log5", "z", 3), item("log5", "z", 3)};
    r = multi(2, twice);
    ck_assert_int_eq(r.result.status, RL_ST_DENIED);
    assert_allowed(peek("log5", "z", 5), 5, 0);
}
END_TEST

START_TEST(test_multi_check_errors) {
    rl_item one_bad[3] = {item("log5", "e", 1), item("nope", "e", 1), item("log5", "", 1)};
    rl_response r = multi(3, one_bad);
    assert_error(r.result, RL_ST_UNKNOWN_POLICY); /* the first error */
    ck_assert_int_eq(r.items[1].status, RL_ST_UNKNOWN_POLICY);
    ck_assert_int_eq(r.items[2].status, RL_ST_KEY_EMPTY);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(r.items[i].limit, 0);
        ck_assert_uint_eq(r.items[i].remaining, 0);
        ck_assert_uint_eq(r.items[i].retry_after_ms, 0);
    }
    rl_item costs[2] = {item("log5", "e", 0), item("fixed", "e", 6)};
    r = multi(2, costs);
    assert_error(r.result, RL_ST_COST_INVALID);
    ck_assert_int_eq(r.items[1].status, RL_ST_COST_TOO_LARGE);
    assert_allowed(peek("log5", "e", 5), 5, 0); /* nothing consumed */
}
END_TEST

/* ---- admin text ---- */

START_TEST(test_policies_json) {
    rl_response r = no_items(RL_OP_POLICIES, 0);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    ck_assert_uint_eq(r.text_len, strlen(box.text));
    json_error_t jerr;
    json_t *doc = json_loads(box.text, 0, &jerr);
    ck_assert_msg(doc, "POLICIES is not JSON: %s", jerr.text);
    json_t *list = json_object_get(doc, "policies");
    ck_assert(json_is_array(list));
    ck_assert_uint_eq(json_array_size(list), rl_engine_config(engine)->policy_count);
    ck_assert_uint_eq(json_array_size(list), 11);
    size_t i;
    json_t *p;
    int seen = 0;
    json_array_foreach(list, i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        ck_assert_ptr_nonnull(name);
        if (strcmp(name, "log5") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(p, "algorithm")),
                             "sliding_window_log");
            ck_assert_int_eq(json_integer_value(json_object_get(p, "limit")), 5);
            ck_assert_int_eq(json_integer_value(json_object_get(p, "period_ms")), HOUR_MS);
            ck_assert_int_eq(json_integer_value(json_object_get(p, "exempt")), 2);
            ck_assert_int_eq(json_integer_value(json_object_get(p, "block")), 1);
            seen++;
        } else if (strcmp(name, "tb") == 0) {
            ck_assert_int_eq(json_integer_value(json_object_get(p, "burst")), 20);
            seen++;
        } else if (strcmp(name, "multi") == 0) {
            ck_assert_uint_eq(json_array_size(json_object_get(p, "rates")), 2);
            seen++;
        } else if (strcmp(name, "shadow") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(p, "mode")), "shadow");
            seen++;
        } else if (strcmp(name, "over") == 0) {
            ck_assert_int_eq(json_integer_value(json_object_get(p, "overrides")), 1);
            seen++;
        }
    }
    ck_assert_int_eq(seen, 5);
    json_decref(doc);
}
END_TEST

START_TEST(test_stats_counts) {
    for (int i = 0; i < 5; i++)
        check("log5", "a", 1);
    check("log5", "a", 1); /* denied */
    check("log5", "a", 1); /* denied */
    for (int i = 0; i < 3; i++)
        check("log5", "vip", 1); /* exempt */
    check("log5", "bad", 1);     /* blocked */
    check("log5", "a", 9);       /* COST_TOO_LARGE */
    check("shadow", "a", 5);
    check("shadow", "a", 1); /* shadow-denied */
    rl_engine_refuse(engine, RL_OP_CHECK, 9, RL_ST_BUSY, on_reply, &box);
    json_t *doc = stats_of(NULL);
    ck_assert_int_eq(counter(doc, "refused"), 1);
    ck_assert_int_eq(counter(doc, "in_flight"), 0);
    ck_assert_int_eq(counter(doc, "reloads"), 0);
    ck_assert(json_is_object(json_object_get(doc, "store")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "store"), "type")),
                     "memory");
    ck_assert_int_eq(counter(json_object_get(doc, "store"), "keys"), 2);
    json_decref(doc);
    json_t *st = stats_of("log5");
    ck_assert_int_eq(counter(st, "allowed"), 5 + 3); /* exempt answers are ALLOWED */
    ck_assert_int_eq(counter(st, "denied"), 2 + 1);  /* blocked answers are DENIED */
    ck_assert_int_eq(counter(st, "exempt"), 3);
    ck_assert_int_eq(counter(st, "blocked"), 1);
    ck_assert_int_eq(counter(st, "errors"), 1);
    ck_assert_int_eq(counter(st, "shadow_denied"), 0);
    ck_assert_int_eq(counter(st, "store_errors"), 0);
    ck_assert_int_eq(counter(st, "fallbacks"), 0);
    json_decref(st);
    st = stats_of("shadow");
    ck_assert_int_eq(counter(st, "allowed"), 1);
    ck_assert_int_eq(counter(st, "shadow_denied"), 1);
    json_decref(st);
    st = stats_of("tb");
    ck_assert_int_eq(counter(st, "allowed") + counter(st, "denied") + counter(st, "errors"), 0);
    json_decref(st);
}
END_TEST

START_TEST(test_refuse) {
    box.calls = 0;
    rl_engine_refuse(engine, RL_OP_MULTI_CHECK, 77, RL_ST_FRAME_TOO_LARGE, on_reply, &box);
    ck_assert_int_eq(box.calls, 1);
    ck_assert_uint_eq(box.resp.id, 77);
    ck_assert_uint_eq(box.resp.opcode, RL_OP_MULTI_CHECK);
    assert_error(box.resp.result, RL_ST_FRAME_TOO_LARGE);
}
END_TEST

/* ---- reload ---- */

static const char *const reload_v1 =
    "{'listen': ['unix:/tmp/rl-engine-test.sock'], 'policies': {"
    " 'a': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'},"
    " 'b': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'},"
    " 'c': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'},"
    " 'f': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'}}}";
static const char *const reload_v2 =
    "{'listen': ['unix:/tmp/rl-engine-test.sock'], 'policies': {"
    " 'a': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'},"
    " 'b': {'algorithm': 'sliding_window_log', 'limit': 6, 'period': '1h'},"
    " 'e': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h'},"
    " 'f': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '1h', 'mode': 'shadow',"
    "       'exempt': ['x']}}}";

static const char *reload_source; /* what test_reloader reads */

static int test_reloader(void *arg, char *err, size_t errlen) {
    rl_engine *e = arg;
    rl_config *c = parse_config(reload_source, err, errlen);
    if (!c)
        return RL_ERR;
    if (rl_engine_reload(e, c, err, errlen) != RL_OK) {
        rl_config_free(c);
        return RL_ERR;
    }
    return RL_OK;
}

static void reload_to(const char *single_quoted) {
    char err[1024];
    rl_config *c = parse_config(single_quoted, err, sizeof(err));
    ck_assert_msg(c, "%s", err);
    ck_assert_msg(rl_engine_reload(engine, c, err, sizeof(err)) == RL_OK, "%s", err);
    ck_assert_ptr_eq(rl_engine_config(engine), c);
}

START_TEST(test_reload_keeps_unchanged_counters) {
    rl_engine_free(engine);
    engine = start_engine(reload_v1);
    const char *names[] = {"a", "b", "c", "f"};
    for (int i = 0; i < 4; i++)
        assert_allowed(check(names[i], "k", 3), 5, 2);
    reload_to(reload_v2);
    assert_allowed(check("a", "k", 1), 5, 1); /* unchanged: kept */
    assert_allowed(check("b", "k", 1), 6, 5); /* changed: forgotten */
    assert_error(check("c", "k", 1), RL_ST_UNKNOWN_POLICY);
    assert_allowed(check("e", "k", 1), 5, 4);
    assert_allowed(check("f", "k", 1), 5, 1); /* only mode and lists changed */
    ck_assert_uint_eq(check("f", "x", 1).flags, RL_FLAG_EXEMPT);
    json_t *st = stats_of("a");
    ck_assert_int_eq(counter(st, "allowed"), 2);
    json_decref(st);
    json_t *doc = stats_of(NULL);
    ck_assert_int_eq(counter(doc, "reloads"), 1);
    json_decref(doc);
    /* a removed policy that comes back starts afresh */
    reload_to(reload_v1);
    assert_allowed(check("c", "k", 1), 5, 4);
    assert_allowed(check("a", "k", 1), 5, 0);
}
END_TEST

START_TEST(test_reload_refuses_a_changed_store) {
    char err[1024];
    rl_config *c = parse_config(
        "{'listen': ['unix:/tmp/rl-engine-test.sock'], 'store': {'type': 'memory', 'max_keys': 5},"
        " 'policies': {'x': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}",
        err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    const rl_config *before = rl_engine_config(engine);
    err[0] = '\0';
    ck_assert_int_eq(rl_engine_reload_check(engine, c, err, sizeof(err)), RL_ERR);
    ck_assert_int_eq(rl_engine_reload(engine, c, err, sizeof(err)), RL_ERR);
    ck_assert_msg(strstr(err, "store"), "%s", err);
    ck_assert_ptr_eq(rl_engine_config(engine), before);
    rl_config_free(c); /* left to the caller */
    assert_allowed(check("log5", "k", 1), 5, 4);
    json_t *doc = stats_of(NULL);
    ck_assert_int_eq(counter(doc, "reload_failures"), 1);
    ck_assert_int_eq(counter(doc, "reloads"), 0);
    json_decref(doc);
}
END_TEST

START_TEST(test_reload_opcode) {
    assert_error(no_items(RL_OP_RELOAD, 0).result, RL_ST_NOT_PERMITTED);
    rl_response r = no_items(RL_OP_RELOAD, 1); /* no reloader set */
    ck_assert_int_eq(r.result.status, RL_ST_RELOAD_FAILED);
    json_t *doc = json_loads(box.text, 0, NULL);
    ck_assert_msg(doc, "RELOAD text is not JSON: %s", box.text);
    ck_assert(json_is_false(json_object_get(doc, "reloaded")));
    ck_assert(json_is_string(json_object_get(doc, "error")));
    json_decref(doc);

    rl_engine_set_reloader(engine, test_reloader, engine);
    reload_source = "{'listen': [";
    r = no_items(RL_OP_RELOAD, 1);
    ck_assert_int_eq(r.result.status, RL_ST_RELOAD_FAILED);
    doc = json_loads(box.text, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert_msg(strstr(json_string_value(json_object_get(doc, "error")), "test.json"), "%s",
                  box.text);
    json_decref(doc);
    assert_allowed(check("log5", "k", 1), 5, 4); /* the old config stays */

    reload_source = reload_v1;
    r = no_items(RL_OP_RELOAD, 1);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    doc = json_loads(box.text, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_is_true(json_object_get(doc, "reloaded")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "policies")), 4);
    json_decref(doc);
    assert_error(check("log5", "k", 1), RL_ST_UNKNOWN_POLICY);
    assert_allowed(check("a", "k", 1), 5, 4);
}
END_TEST

/* ---- the sweep timer ---- */

static void stop_loop(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

START_TEST(test_sweep_timer_evicts_expired_keys) {
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        check("short", key, 1);
    }
    json_t *doc = stats_of(NULL);
    ck_assert_int_eq(counter(json_object_get(doc, "store"), "keys"), 100);
    json_decref(doc);
    struct timeval wait = {0, 200000};
    struct event *stop = evtimer_new(base, stop_loop, base);
    evtimer_add(stop, &wait);
    event_base_dispatch(base);
    event_free(stop);
    doc = stats_of(NULL);
    ck_assert_int_eq(counter(json_object_get(doc, "store"), "keys"), 0);
    json_decref(doc);
}
END_TEST

/* ---- allocation failure ---- */

START_TEST(test_allocation_failure_answers_internal) {
    rl_engine_free(engine);
    engine = start_engine(base_config); /* no pending on the free list yet */
    rl_request req = {.opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = item("log5", "k", 1);
    rl_alloc_fail_after(0);
    box.calls = 0;
    rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply, &box);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(box.calls, 1);
    assert_error(box.resp.result, RL_ST_INTERNAL);
    assert_allowed(check("log5", "k", 1), 5, 4);
    /* with a pending to reuse, a new key's state cannot be had */
    req.items[0] = item("log5", "new", 1);
    rl_alloc_fail_after(0);
    box.calls = 0;
    rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply, &box);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(box.calls, 1);
    assert_error(box.resp.result, RL_ST_INTERNAL);
    assert_allowed(peek("log5", "new", 5), 5, 0);
    /* a MULTI_CHECK failing at every allocation in turn: INTERNAL consumes nothing */
    for (long n = 0; n < 40; n++) {
        char k1[16], k2[16];
        snprintf(k1, sizeof(k1), "m%ld", n);
        snprintf(k2, sizeof(k2), "b%ld", n);
        rl_request mreq = {.opcode = RL_OP_MULTI_CHECK, .item_count = 3};
        mreq.items[0] = item("log5", k1, 1);
        mreq.items[1] = item("blockm", k2, 1);
        mreq.items[2] = item("tb", k1, 1);
        rl_alloc_fail_after(n);
        box.calls = 0;
        rl_engine_handle(engine, &mreq, PUBLIC_PERMS, on_reply, &box);
        rl_alloc_fail_after(-1);
        ck_assert_int_eq(box.calls, 1);
        rl_status st = box.resp.result.status;
        ck_assert_msg(st == RL_ST_ALLOWED || st == RL_ST_INTERNAL, "n=%ld: %s", n,
                      rl_status_name(st));
        uint32_t used = st == RL_ST_ALLOWED;
        assert_allowed(peek("log5", k1, 5 - used), 5, 0);
        assert_allowed(peek("blockm", k2, 3 - used), 3, 0);
    }
}
END_TEST

START_TEST(test_engine_new_allocation_failure) {
    long n;
    for (n = 0; n < 1000; n++) {
        char err[1024];
        rl_config *c = parse_config(base_config, err, sizeof(err));
        ck_assert_ptr_nonnull(c);
        err[0] = '\0';
        rl_alloc_fail_after(n);
        rl_engine *e = rl_engine_new(base, c, err, sizeof(err));
        rl_alloc_fail_after(-1);
        if (e) {
            rl_engine_free(e);
            break;
        }
        ck_assert_msg(err[0] != '\0', "n=%ld: no reason given", n);
        rl_config_free(c); /* the caller keeps the config on failure */
    }
    ck_assert_int_lt(n, 1000);
}
END_TEST

/* A store that cannot be had is a clean failure; the config stays with the caller. */
START_TEST(test_engine_new_store_refused) {
    char err[1024];
    rl_config *c = parse_config(
        "{'listen': ['unix:/tmp/rl-engine-test.sock'],"
        " 'store': {'type': 'redis', 'url': 'unix:/nonexistent/rlimitd-test/redis.sock',"
        "           'key_prefix': 'rl:'},"
        " 'policies': {'x': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}",
        err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    /* The parser refuses such a prefix (so does --check-config); a config built some other
     * way still meets the store's own check. */
    rl_free(c->store.key_prefix);
    c->store.key_prefix = rl_strndup("{rl}:", 5);
    ck_assert_ptr_nonnull(c->store.key_prefix);
    err[0] = '\0';
    rl_engine *e = rl_engine_new(base, c, err, sizeof(err));
    ck_assert_ptr_null(e);
    ck_assert_msg(err[0] != '\0', "no reason given");
    rl_config_free(c);
}
END_TEST

/* ---- on_store_error, with a Redis that is down (a socket path that does not exist) ---- */

static const char *const down_config =
    "{'listen': ['unix:/tmp/rl-engine-test.sock'],"
    " 'store': {'type': 'redis', 'url': 'unix:/nonexistent/rlimitd-test/redis.sock',"
    "           'connect_timeout_ms': 100},"
    " 'policies': {"
    "  'loc': {'algorithm': 'sliding_window_log', 'limit': 3, 'period': '1h'},"
    "  'open': {'algorithm': 'sliding_window_log', 'limit': 3, 'period': '1h',"
    "           'on_store_error': 'allow', 'exempt': ['vip']},"
    "  'closed': {'algorithm': 'sliding_window_log', 'limit': 3, 'period': '1h',"
    "             'on_store_error': 'deny'}}}";

START_TEST(test_fallback_local) {
    rl_engine_free(engine);
    engine = start_engine(down_config);
    for (uint32_t i = 0; i < 3; i++) {
        rl_result r = check("loc", "k", 1);
        assert_allowed(r, 3, 2 - i);
        ck_assert_uint_eq(r.flags, RL_FLAG_FALLBACK);
    }
    rl_result r = check("loc", "k", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, RL_FLAG_FALLBACK);
    ck_assert_uint_gt(r.retry_after_ms, HOUR_MS - 5000);
    json_t *doc = stats_of(NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "store"), "type")),
                     "redis");
    ck_assert_int_eq(counter(json_object_get(doc, "local_store"), "keys"), 1);
    json_decref(doc);
    json_t *st = stats_of("loc");
    ck_assert_int_eq(counter(st, "store_errors"), 4);
    ck_assert_int_eq(counter(st, "fallbacks"), 4);
    ck_assert_int_eq(counter(st, "allowed"), 3);
    ck_assert_int_eq(counter(st, "denied"), 1);
    json_decref(st);
}
END_TEST

START_TEST(test_fallback_allow_and_deny) {
    rl_engine_free(engine);
    engine = start_engine(down_config);
    for (int i = 0; i < 10; i++) {
        rl_result r = check("open", "k", 2);
        assert_allowed(r, 3, 1);
        ck_assert_uint_eq(r.flags, RL_FLAG_FALLBACK);
    }
    rl_result r = check("closed", "k", 1);
    ck_assert_int_eq(r.status, RL_ST_DENIED);
    ck_assert_uint_eq(r.flags, RL_FLAG_FALLBACK);
    ck_assert_uint_eq(r.limit, 3);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_uint_gt(r.retry_after_ms, 0);
    /* exempt keys need no store */
    r = check("open", "vip", 1);
    ck_assert_uint_eq(r.flags, RL_FLAG_EXEMPT);
    /* the strictest mode of the items decides a MULTI_CHECK: deny, then local, then allow */
    rl_item open_closed[2] = {item("open", "m", 1), item("closed", "m", 1)};
    rl_response m = multi(2, open_closed);
    ck_assert_int_eq(m.result.status, RL_ST_DENIED);
    ck_assert_int_eq(m.items[0].status, RL_ST_DENIED);
    ck_assert(m.result.flags & RL_FLAG_FALLBACK);
    rl_item open_loc[2] = {item("open", "m", 3), item("loc", "m", 3)};
    m = multi(2, open_loc);
    ck_assert_int_eq(m.result.status, RL_ST_ALLOWED);
    m = multi(2, open_loc); /* decided by the embedded store: now full */
    ck_assert_int_eq(m.result.status, RL_ST_DENIED);
    ck_assert_int_eq(m.items[0].status, RL_ST_DENIED);
    json_t *st = stats_of("closed");
    ck_assert_int_eq(counter(st, "store_errors"), 2);
    ck_assert_int_eq(counter(st, "fallbacks"), 2);
    ck_assert_int_eq(counter(st, "denied"), 2);
    json_decref(st);
    /* giving back under the allow fallback still reports figures in range */
    r = op(RL_OP_ADJUST, "open", "k", -2);
    ck_assert_msg(r.remaining <= r.limit, "remaining %u above the limit %u", r.remaining, r.limit);
}
END_TEST

/* A RESET that reached no store at all must not claim success. */
START_TEST(test_reset_during_an_outage) {
    rl_engine_free(engine);
    engine = start_engine(down_config);
    rl_response r = op_admin(RL_OP_RESET, "closed", "k", 0, 1);
    ck_assert_msg(r.result.status == RL_ST_STORE_UNAVAILABLE,
                  "RESET with on_store_error deny answered %s: nothing was reset",
                  rl_status_name(r.result.status));
    r = op_admin(RL_OP_RESET, "open", "k", 0, 1);
    ck_assert_msg(r.result.status == RL_ST_STORE_UNAVAILABLE,
                  "RESET with on_store_error allow answered %s: nothing was reset",
                  rl_status_name(r.result.status));
}
END_TEST

/* Allocation failing in the local fallback: one answer, INTERNAL or a decision. */
START_TEST(test_fallback_allocation_failure) {
    rl_engine_free(engine);
    engine = start_engine(down_config);
    for (long n = 0; n < 30; n++) {
        char key[16];
        snprintf(key, sizeof(key), "k%ld", n);
        rl_request req = {.opcode = RL_OP_MULTI_CHECK, .item_count = 2};
        req.items[0] = item("loc", key, 1);
        req.items[1] = item("open", key, 1);
        rl_alloc_fail_after(n);
        box.calls = 0;
        rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply, &box);
        rl_alloc_fail_after(-1);
        ck_assert_int_eq(box.calls, 1);
        rl_status st = box.resp.result.status;
        ck_assert_msg(st == RL_ST_ALLOWED || st == RL_ST_INTERNAL, "n=%ld: %s", n,
                      rl_status_name(st));
        assert_allowed(peek("loc", key, 3 - (st == RL_ST_ALLOWED)), 3, 0);
    }
}
END_TEST

/* ---- TOP ---- */

START_TEST(test_top_lists_denied_keys) {
    for (int i = 0; i < 7; i++)
        check("log5", "hot", 1); /* 2 denials */
    check("log5", "bad", 1);     /* blocked: a denial */
    peek("log5", "hot", 1);      /* PEEK denies nothing */
    rl_request req = {.opcode = RL_OP_TOP, .item_count = 1};
    req.items[0] = (rl_item){.cost = 10, .policy = "log5", .policy_len = 4, .key = ""};
    rl_response r = send_request(&req, 0);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    json_t *doc = json_loads(box.text, 0, NULL);
    ck_assert_msg(doc, "TOP text is not JSON: %s", box.text);
    json_t *policies = json_object_get(doc, "policies");
    ck_assert_uint_eq(json_array_size(policies), 1);
    json_t *keys = json_object_get(json_array_get(policies, 0), "keys");
    ck_assert_uint_eq(json_array_size(keys), 2);
    json_t *first = json_array_get(keys, 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "key")), "hot");
    ck_assert_int_eq(json_integer_value(json_object_get(first, "denied")), 2);
    json_decref(doc);
    req.items[0] = (rl_item){.cost = 10, .policy = "nope", .policy_len = 4, .key = ""};
    r = send_request(&req, 0);
    ck_assert_int_eq(r.result.status, RL_ST_UNKNOWN_POLICY);
}
END_TEST

/* ---- permissions ---- */

static rl_response with_perms(uint8_t opcode, const char *key, int64_t cost, uint32_t perms) {
    rl_request req = {.opcode = opcode, .item_count = 1};
    req.items[0] = item("tb", key, cost);
    return send_with(&req, perms);
}

START_TEST(test_each_opcode_needs_its_operation) {
    uint32_t authed = RL_PERM_AUTHENTICATED;
    uint32_t def = RL_PERM_DEFAULT_BINARY | authed;
    /* the default of a non-admin listener: no refund, no reset, no top, no reload */
    ck_assert_int_eq(with_perms(RL_OP_CHECK, "p", 1, def).result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(with_perms(RL_OP_ADJUST, "p", 3, def).result.status, RL_ST_ALLOWED);
    assert_error(with_perms(RL_OP_ADJUST, "p", -3, def).result, RL_ST_NOT_PERMITTED);
    assert_error(with_perms(RL_OP_RESET, "p", 0, def).result, RL_ST_NOT_PERMITTED);
    assert_error(with_perms(RL_OP_TOP, "", 0, def).result, RL_ST_NOT_PERMITTED);
    rl_request reload = {.opcode = RL_OP_RELOAD};
    assert_error(send_with(&reload, def).result, RL_ST_NOT_PERMITTED);
    /* one operation alone allows exactly its opcode */
    assert_allowed(with_perms(RL_OP_ADJUST, "p", -1, RL_PERM_REFUND | authed).result, 20, 17);
    assert_error(with_perms(RL_OP_ADJUST, "p", 1, RL_PERM_REFUND | authed).result,
                 RL_ST_NOT_PERMITTED);
    assert_error(with_perms(RL_OP_CHECK, "p", 1, RL_PERM_REFUND | authed).result,
                 RL_ST_NOT_PERMITTED);
    /* nothing counted for a refused request */
    assert_allowed(with_perms(RL_OP_PEEK, "p", 1, def).result, 20, 16); /* (after the peek) */
}
END_TEST

START_TEST(test_unauthenticated_gets_ping_and_auth_only) {
    uint32_t perms = RL_PERM_ALL; /* without RL_PERM_AUTHENTICATED */
    rl_request ping = {.opcode = RL_OP_PING};
    assert_error(send_with(&ping, perms).result, RL_ST_OK);
    assert_error(with_perms(RL_OP_CHECK, "u", 1, perms).result, RL_ST_AUTH_REQUIRED);
    rl_request stats = {.opcode = RL_OP_STATS};
    rl_response r = send_with(&stats, perms);
    ck_assert_int_eq(r.result.status, RL_ST_AUTH_REQUIRED);
    /* AUTH: the server says whether the token matched */
    assert_error(with_perms(RL_OP_AUTH, "token", 0, perms).result, RL_ST_AUTH_FAILED);
    assert_error(with_perms(RL_OP_AUTH, "token", 0, perms | RL_PERM_AUTHENTICATED).result,
                 RL_ST_OK);
    r = send_with(&stats, perms | RL_PERM_AUTHENTICATED);
    ck_assert_int_eq(r.result.status, RL_ST_OK);
    json_t *doc = json_loads(box.text, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(counter(doc, "auth_failures"), 1);
    ck_assert_int_eq(counter(doc, "refused_peers"), 0);
    json_decref(doc);
    ck_assert_int_eq(peek("tb", "u", 1).remaining, 19); /* the refused CHECK took nothing */
}
END_TEST

/* ---- a store that answers inside submit (a fake) ---- */

/* A store under the test's control: it answers inside submit (sync) or holds the batch
   for fake_answer; after answering inside submit it may run after_answer, as a store
   that answers other waiting batches before returning would; its stats report `figures`
   figures. */
typedef struct fake_store {
    rl_store base;              /* the common head */
    int sync;                   /* answer inside submit */
    void (*after_answer)(void); /* run inside submit after a sync answer, or NULL */
    rl_store_done *held_done;   /* a batch held for fake_answer */
    void *held_arg;             /* its argument */
    size_t held_n;              /* its items */
    size_t figures;             /* figures stats reports */
} fake_store;

static fake_store *fake;           /* the store of the current fake test */
static char figure_names[400][64]; /* names of the many figures */

static void fake_answer(rl_store_done *done, void *arg, size_t n, rl_status status) {
    rl_store_answer ans = {.status = status, .count = n};
    for (size_t i = 0; i < n; i++)
        ans.verdicts[i] = (rl_verdict){.allowed = status == RL_ST_ALLOWED,
                                       .limit = 5,
                                       .remaining = 4,
                                       .window_us = 3600000000};
    done(arg, &ans);
}

static int fake_submit(rl_store *store, rl_store_op op, const rl_store_item *items, size_t n,
                       rl_store_done *done, void *arg) {
    fake_store *f = (fake_store *)store;
    (void)op;
    (void)items;
    if (!f->sync) {
        f->held_done = done, f->held_arg = arg, f->held_n = n;
        return RL_OK;
    }
    fake_answer(done, arg, n, RL_ST_ALLOWED);
    if (f->after_answer)
        f->after_answer();
    return RL_OK;
}

static void fake_forget_ns(rl_store *store, const char *ns, size_t ns_len) {
    (void)store, (void)ns, (void)ns_len;
}

static void fake_stats(rl_store *store, rl_store_figures *out) {
    fake_store *f = (fake_store *)store;
    out->type = "fake";
    for (size_t i = 0; i < f->figures; i++)
        rl_figures_add(out, i % 2 ? "group" : NULL, figure_names[i], RL_FIGURE_COUNTER, i);
}

static void fake_free(rl_store *store) {
    free(store);
}

static const rl_store_ops fake_ops = {.name = "fake",
                                      .submit = fake_submit,
                                      .forget_ns = fake_forget_ns,
                                      .stats = fake_stats,
                                      .free = fake_free};

static const char *const fake_config =
    "{'listen': ['unix:/tmp/rl-engine-test.sock'],"
    " 'policies': {'loc': {'algorithm': 'fixed_window', 'limit': 5, 'period': '1h'}}}";

// Replaces the engine of the test by one deciding with a new fake store.
static void start_fake(void) {
    char err[1024];
    rl_engine_free(engine);
    fake = calloc(1, sizeof(*fake));
    ck_assert_ptr_nonnull(fake);
    fake->base.ops = &fake_ops;
    rl_config *c = parse_config(fake_config, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    engine = rl_engine_new_with_store(base, c, &fake->base, err, sizeof(err));
    ck_assert_msg(engine, "%s", err);
}

static reply_box second; /* the answer to the request sent from inside a submit */

// Sends a CHECK while the fake is inside the submit of another (which it has answered
// already); the fake holds it; the next allocation then fails.
static void send_second_request(void) {
    rl_request req = {.id = 77, .opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = item("loc", "second", 1);
    fake->sync = 0;
    fake->after_answer = NULL;
    rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply, &second);
    rl_alloc_fail_after(0);
}

/* A store answering before its submit returns: the request is answered at once and its
   pending is not touched afterwards, even when the store goes on (inside the same
   submit) with work that starts another request. The old engine read the first
   request's pending after it was released and, finding it reused by the second, treated
   the second as its own: it re-copied its keys (leaking the first copy) and, with that
   allocation failing, lost them, so the second's local fallback answered INTERNAL. */
START_TEST(test_store_answering_inside_submit) {
    start_fake();
    fake->sync = 1;
    fake->after_answer = send_second_request;
    memset(&second, 0, sizeof(second));
    rl_request req = {.id = 76, .opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = item("loc", "first", 1);
    box.calls = 0;
    rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply, &box);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(box.calls, 1);
    ck_assert_uint_eq(box.resp.id, 76);
    ck_assert_int_eq(box.resp.result.status, RL_ST_ALLOWED);
    ck_assert_int_eq(second.calls, 0); /* held by the fake */
    ck_assert_ptr_nonnull(fake->held_done);
    /* Redis fails the second: its policy falls back to the embedded store (on_store_error
       local), which needs the keys the engine kept for it. */
    fake_answer(fake->held_done, fake->held_arg, fake->held_n, RL_ST_STORE_UNAVAILABLE);
    ck_assert_int_eq(second.calls, 1);
    ck_assert_uint_eq(second.resp.id, 77);
    ck_assert_msg(second.resp.result.status == RL_ST_ALLOWED, "second: %s",
                  rl_status_name(second.resp.result.status));
    ck_assert(second.resp.result.flags & RL_FLAG_FALLBACK);
    ck_assert_int_eq(second.resp.result.remaining, 4);
}
END_TEST

/* The memory store always answers inside submit: requests sent from a reply callback
   (a pipelining server does) are answered in order, each exactly once. */
static int chained; /* requests still to send from the reply callback */

static void on_reply_chain(void *arg, const rl_response *resp) {
    on_reply(arg, resp);
    if (chained-- > 0) {
        rl_request req = {.id = 100 + (uint32_t)chained, .opcode = RL_OP_CHECK, .item_count = 1};
        req.items[0] = item("log5", "chain", 1);
        rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply_chain, arg);
    }
}

START_TEST(test_requests_sent_from_a_reply) {
    rl_request req = {.id = 99, .opcode = RL_OP_CHECK, .item_count = 1};
    req.items[0] = item("log5", "chain", 1);
    chained = 6;
    box.calls = 0;
    rl_engine_handle(engine, &req, PUBLIC_PERMS, on_reply_chain, &box);
    ck_assert_int_eq(box.calls, 7);
    ck_assert_uint_eq(box.resp.id, 100);                    /* the last one */
    ck_assert_int_eq(box.resp.result.status, RL_ST_DENIED); /* 5 allowed, then denied */
    json_t *doc = stats_of("log5");
    ck_assert_int_eq(counter(doc, "allowed"), 5);
    ck_assert_int_eq(counter(doc, "denied"), 2);
    json_decref(doc);
    doc = stats_of(NULL);
    ck_assert_int_eq(counter(doc, "in_flight"), 0);
    json_decref(doc);
}
END_TEST

/* A store with many figures: STATS carries every one (store figures over 4 KB used to
   become "store": null). */
START_TEST(test_store_with_many_figures) {
    start_fake();
    fake->figures = 400;
    for (size_t i = 0; i < fake->figures; i++)
        snprintf(figure_names[i], sizeof(figure_names[i]), "a_rather_long_figure_name_%04zu", i);
    json_t *doc = stats_of(NULL);
    json_t *store = json_object_get(doc, "store");
    ck_assert_msg(json_is_object(store), "store is not an object");
    ck_assert_str_eq(json_string_value(json_object_get(store, "type")), "fake");
    ck_assert_int_eq(json_object_size(store), 1 + 200 + 1); /* type, 200 plain, the group */
    ck_assert_int_eq(json_object_size(json_object_get(store, "group")), 200);
    ck_assert_int_eq(counter(store, "a_rather_long_figure_name_0398"), 398);
    ck_assert_int_eq(counter(json_object_get(store, "group"), "a_rather_long_figure_name_0399"),
                     399);
    json_decref(doc);
}
END_TEST

/* ---- rl_engine_new without a sweep timer ---- */

static int fail_event_allocations; /* libevent's allocations fail while set */

static void *event_malloc(size_t n) {
    return fail_event_allocations ? NULL : malloc(n);
}

static void *event_realloc(void *p, size_t n) {
    return fail_event_allocations ? NULL : realloc(p, n);
}

/* When the sweep timer cannot be made, rl_engine_new says why (the old one returned NULL
   with err untouched, and main.c logged an uninitialised buffer). */
START_TEST(test_engine_new_without_a_timer) {
    char err[1024];
    rl_config *c = parse_config(base_config, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    event_set_mem_functions(event_malloc, event_realloc, free);
    err[0] = '\0';
    fail_event_allocations = 1;
    rl_engine *e = rl_engine_new(base, c, err, sizeof(err));
    fail_event_allocations = 0;
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(err, "timer"), "err: \"%s\"", err);
    rl_config_free(c); /* the caller keeps the config on failure */
}
END_TEST

static Suite *engine_suite(void) {
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ping);
    tcase_add_test(tc, test_each_opcode_needs_its_operation);
    tcase_add_test(tc, test_unauthenticated_gets_ping_and_auth_only);
    tcase_add_test(tc, test_check_exact_counts);
    tcase_add_test(tc, test_validation_errors);
    tcase_add_test(tc, test_unknown_opcodes);
    tcase_add_test(tc, test_top_is_defined);
    tcase_add_test(tc, test_exempt_keys);
    tcase_add_test(tc, test_exempt_adjust_figures_stay_in_range);
    tcase_add_test(tc, test_blocked_keys);
    tcase_add_test(tc, test_blocked_key_in_multi_check);
    tcase_add_test(tc, test_shadow_mode);
    tcase_add_test(tc, test_shadow_in_multi_check);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_adjust);
    tcase_add_test(tc, test_adjust_cost_is_bounded_by_the_capacity);
    tcase_add_test(tc, test_multi_check_figures);
    tcase_add_test(tc, test_multi_check_errors);
    tcase_add_test(tc, test_policies_json);
    tcase_add_test(tc, test_stats_counts);
    tcase_add_test(tc, test_refuse);
    tcase_add_test(tc, test_reload_keeps_unchanged_counters);
    tcase_add_test(tc, test_reload_refuses_a_changed_store);
    tcase_add_test(tc, test_reload_opcode);
    tcase_add_test(tc, test_sweep_timer_evicts_expired_keys);
    tcase_add_test(tc, test_allocation_failure_answers_internal);
    tcase_add_test(tc, test_engine_new_allocation_failure);
    tcase_add_test(tc, test_engine_new_store_refused);
    tcase_add_test(tc, test_fallback_local);
    tcase_add_test(tc, test_fallback_allow_and_deny);
    tcase_add_test(tc, test_reset_during_an_outage);
    tcase_add_test(tc, test_fallback_allocation_failure);
    tcase_add_test(tc, test_top_lists_denied_keys);
    tcase_add_test(tc, test_store_answering_inside_submit);
    tcase_add_test(tc, test_requests_sent_from_a_reply);
    tcase_add_test(tc, test_store_with_many_figures);
    tcase_add_test(tc, test_engine_new_without_a_timer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    rl_log_set_level(RL_LOG_ERROR);
    SRunner *runner = srunner_create(engine_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
