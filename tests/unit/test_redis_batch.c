/*
 * test_redis_batch.c: the Redis store's requests, script calls and replies, without a
 * network: commands are parsed back with hiredis's reader, replies are built with it.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "redis_batch.h"
#include "redis_script.h"

static rl_limits limits1(rl_algorithm algorithm, uint64_t limit, int64_t period, uint64_t burst) {
    rl_limits l;
    memset(&l, 0, sizeof(l));
    l.rate_count = 1;
    l.rates[0] = (rl_rate){algorithm, limit, period, burst};
    return l;
}

static rl_store_item item(const rl_limits *l, const char *ns, const char *key, int64_t cost) {
    return (rl_store_item){l, ns, strlen(ns), key, strlen(key), cost, 0, 0};
}

// Parses wire-format bytes (one command or reply) with hiredis's reader.
static redisReply *parse(const char *data, size_t len) {
    redisReader *reader = redisReaderCreate();
    void *reply = NULL;
    redisReaderFeed(reader, data, len);
    ck_assert_int_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    void *more = NULL;
    ck_assert_int_eq(redisReaderGetReply(reader, &more), REDIS_OK);
    ck_assert_ptr_null(more); /* exactly one */
    redisReaderFree(reader);
    return reply;
}

static void assert_arg(const redisReply *cmd, size_t i, const char *want, size_t len) {
    ck_assert_uint_lt(i, cmd->elements);
    ck_assert_int_eq(cmd->element[i]->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(cmd->element[i]->len, len);
    ck_assert(memcmp(cmd->element[i]->str, want, len) == 0);
}

static void assert_args(const redisReply *cmd, size_t from, const char *const *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        assert_arg(cmd, from + i, want[i], strlen(want[i]));
}

START_TEST(requests_copy_and_escape_names) {
    rl_limits l = limits1(RL_ALGO_GCRA, 10, 1000000, 2);
    rl_store_item it = {&l, "a:b{%}", 6, "k\0:}", 4, 3, 0, 0};
    rl_status st;
    rl_redis_request *req = rl_redis_request_new(RL_STORE_CHECK, &it, 1, "rl:", 3, &st);
    ck_assert_ptr_nonnull(req);
    const char want[] = "rl:{a%3Ab%7B%25%7D:k\0:}}:";
    ck_assert_uint_eq(req->items[0].rkey_len, sizeof(want) - 1);
    ck_assert(memcmp(req->items[0].rkey, want, sizeof(want) - 1) == 0);
    ck_assert(memcmp(req->items[0].key, "k\0:}", 4) == 0);
    ck_assert_uint_eq(req->items[0].ns_len, 6);
    ck_assert_int_eq(req->items[0].cost, 3);
    ck_assert_int_eq(req->items[0].limits.rates[0].burst, 2);
    ck_assert_uint_eq(rl_redis_ns_escape("plain", 5, NULL), 5);
    rl_free(req);
}
END_TEST

START_TEST(keys_over_the_bound_are_refused) {
    rl_limits l = limits1(RL_ALGO_FIXED_WINDOW, 10, 1000000, 0);
    static char key[RL_REDIS_MAX_KEY];
    memset(key, 'k', sizeof(key));
    /* "rl:" "{" "p" ":" key "}:" digit */
    size_t fits = RL_REDIS_MAX_KEY - (3 + 1 + 1 + 1 + 2 + 1);
    rl_store_item it = {&l, "p", 1, key, fits, 1, 0, 0};
    rl_status st = RL_ST_OK;
    rl_redis_request *req = rl_redis_request_new(RL_STORE_CHECK, &it, 1, "rl:", 3, &st);
    ck_assert_ptr_nonnull(req);
    rl_free(req);
    it.key_len = fits + 1;
    ck_assert_ptr_null(rl_redis_request_new(RL_STORE_CHECK, &it, 1, "rl:", 3, &st));
    ck_assert_int_eq(st, RL_ST_KEY_TOO_LONG);
    it.key_len = 1;
    rl_alloc_fail_after(0);
    ck_assert_ptr_null(rl_redis_request_new(RL_STORE_CHECK, &it, 1, "rl:", 3, &st));
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(st, RL_ST_INTERNAL);
}
END_TEST

START_TEST(a_call_carries_every_batch_with_shared_limit_sets) {
    rl_limits a = limits1(RL_ALGO_FIXED_WINDOW, 5, 1000000, 0), same = a;
    rl_limits two = {.rate_count = 2};
    two.rates[0] = (rl_rate){RL_ALGO_SLIDING_LOG, 3, 2000000, 0};
    two.rates[1] = (rl_rate){RL_ALGO_GCRA, 7, 60000000, 4};
    rl_store_item first[2] = {item(&a, "p", "x", 1), item(&two, "q", "y", 2)};
    rl_store_item second = item(&same, "p", "z", -4);
    rl_status st;
    rl_redis_request *reqs[2] = {rl_redis_request_new(RL_STORE_CHECK, first, 2, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_ADJUST, &second, 1, "rl:", 3, &st)};
    rl_redis_cmdbuf buf = {0};
    const char sha[] = "0123456789abcdef0123456789abcdef01234567";
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 2, sha, 1234), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    /* a sliding log has a second key, its companion: the same name and a mark */
    const char *const head[] = {"EVALSHA",    sha,           "5",          "rl:{p:x}:0",
                                "rl:{q:y}:0", "rl:{q:y}:0#", "rl:{q:y}:1", "rl:{p:z}:0"};
    assert_args(cmd, 0, head, 8);
    const char *const argv[] = {"1234",                                  /* now */
                                "2",                                     /* limit sets */
                                "1",    "0",        "5", "1000000", "0", /* set 1 */
                                "2",    "1",        "3", "2000000", "0", "4",
                                "7",    "60000000", "4", "2",                 /* batches */
                                "0",    "2",        "1", "1",       "2", "2", /* CHECK x, y */
                                "2",    "1",        "1", "-4"};               /* ADJUST z */
    assert_args(cmd, 8, argv, sizeof(argv) / sizeof(argv[0]));
    ck_assert_uint_eq(cmd->elements, 8 + sizeof(argv) / sizeof(argv[0]));
    freeReplyObject(cmd);
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 1, NULL, 0), RL_OK);
    cmd = parse(buf.data, buf.len);
    assert_arg(cmd, 0, "EVAL", 4);
    assert_arg(cmd, 1, rl_redis_script, rl_redis_script_len);
    assert_arg(cmd, 2, "4", 1);
    freeReplyObject(cmd);
    rl_alloc_fail_after(0);
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 2, sha, 0), RL_ERR);
    rl_alloc_fail_after(-1);
    rl_free(buf.data);
    rl_free(reqs[0]);
    rl_free(reqs[1]);
}
END_TEST

// A call of single-item CHECKs of one bucket or gcra rate each takes the compact form:
// -B, then per batch its limit set and cost only.
START_TEST(single_bucket_checks_take_the_compact_form) {
    rl_limits g = limits1(RL_ALGO_GCRA, 10, 1000000, 2),
              b = limits1(RL_ALGO_TOKEN_BUCKET, 5, 1000000, 5);
    rl_store_item x = item(&g, "p", "x", 1), y = item(&b, "q", "y", 3);
    rl_status st;
    rl_redis_request *reqs[2] = {rl_redis_request_new(RL_STORE_CHECK, &x, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_CHECK, &y, 1, "rl:", 3, &st)};
    rl_redis_cmdbuf buf = {0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 2, NULL, 0), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    const char *const argv[] = {"2",  "rl:{p:x}:0", "rl:{q:y}:0", "0", "2", "1", "4",
                                "10", "1000000",    "2",          "1", "3", "5", "1000000",
                                "5",  "-2",         "1",          "1", "2", "3"};
    assert_args(cmd, 2, argv, sizeof(argv) / sizeof(argv[0]));
    ck_assert_uint_eq(cmd->elements, 2 + sizeof(argv) / sizeof(argv[0]));
    freeReplyObject(cmd);
    /* a PEEK among them: the general form */
    reqs[1]->op = RL_STORE_PEEK;
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 2, NULL, 0), RL_OK);
    cmd = parse(buf.data, buf.len);
    const char *const general[] = {"2", "0", "1", "1", "1", "1", "1", "2", "3"};
    assert_args(cmd, 17, general, sizeof(general) / sizeof(general[0]));
    freeReplyObject(cmd);
    rl_free(buf.data);
    rl_free(reqs[0]);
    rl_free(reqs[1]);
}
END_TEST

/* ---- replies ---- */

typedef struct answers {
    rl_store_answer got[8]; /* in order */
    int count;              /* how many came */
} answers;

static void collect(void *arg, rl_redis_request *req, rl_store_answer *answer) {
    answers *a = arg;
    (void)req;
    a->got[a->count++] = *answer;
}

static int decode(const char *text, rl_redis_request **reqs, size_t n, answers *a,
                  const char **why) {
    redisReply *reply = parse(text, strlen(text));
    memset(a, 0, sizeof(*a));
    *why = NULL;
    int rc = rl_redis_call_decode(reply, reqs, n, collect, a, why);
    freeReplyObject(reply);
    return rc;
}

START_TEST(replies_become_merged_answers) {
    rl_limits two = {.rate_count = 2}, one = limits1(RL_ALGO_FIXED_WINDOW, 5, 1000000, 0);
    two.rates[0] = (rl_rate){RL_ALGO_SLIDING_LOG, 3, 2000000, 0};
    two.rates[1] = (rl_rate){RL_ALGO_GCRA, 7, 60000000, 4};
    rl_store_item a = item(&two, "q", "y", 1), b = item(&one, "p", "x", 0);
    rl_status st;
    rl_redis_request *reqs[2] = {rl_redis_request_new(RL_STORE_CHECK, &a, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_RESET, &b, 1, "rl:", 3, &st)};
    answers got;
    const char *why;
    /* now; batch 1: status, log verdict (allowed, 1 left), gcra (allowed, 3 left);
     * batch 2: status, fixed window verdict */
    ck_assert_int_eq(decode("*15\r\n:777\r\n"
                            ":0\r\n:1\r\n:1\r\n:2000000\r\n:0\r\n"
                            ":1\r\n:3\r\n:8571429\r\n:0\r\n"
                            ":0\r\n:1\r\n:5\r\n:0\r\n:0\r\n",
                            reqs, 2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 2);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_int_eq(got.got[0].now_us, 777);
    ck_assert_uint_eq(got.got[0].count, 1);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 1); /* the fewest remaining */
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 3);     /* the log's own */
    ck_assert_int_eq(got.got[0].verdicts[0].window_us, 2000000);
    ck_assert_int_eq(got.got[1].status, RL_ST_OK);
    ck_assert_uint_eq(got.got[1].verdicts[0].limit, 5);
    /* a denial: the denying rate with the longest retry; gcra's window is B * T */
    ck_assert_int_eq(decode("*15\r\n:1\r\n"
                            ":0\r\n:0\r\n:0\r\n:2000000\r\n:500\r\n"
                            ":0\r\n:0\r\n:8571429\r\n:900\r\n"
                            ":0\r\n:1\r\n:5\r\n:0\r\n:0\r\n",
                            reqs, 2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.got[0].status, RL_ST_DENIED);
    ck_assert_int_eq(got.got[0].verdicts[0].retry_after_us, 900);
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 4);
    ck_assert_int_eq(got.got[0].verdicts[0].window_us, 4 * 8571429);
    /* a batch the script refused */
    ck_assert_int_eq(decode("*15\r\n:1\r\n"
                            ":1\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
                            ":0\r\n:0\r\n:0\r\n:0\r\n"
                            ":0\r\n:1\r\n:5\r\n:0\r\n:0\r\n",
                            reqs, 2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.got[0].status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(got.got[0].errstr);
    ck_assert_int_eq(got.got[1].status, RL_ST_OK);
    rl_free(reqs[0]);
    rl_free(reqs[1]);
}
END_TEST

START_TEST(compact_replies_become_answers) {
    rl_limits g = limits1(RL_ALGO_GCRA, 10, 1000000, 2);
    rl_store_item x = item(&g, "p", "x", 1), y = item(&g, "p", "y", 1);
    rl_status st;
    rl_redis_request *reqs[2] = {rl_redis_request_new(RL_STORE_CHECK, &x, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_CHECK, &y, 1, "rl:", 3, &st)};
    answers got;
    const char *why;
    /* now; x: 1 left, allowed (1 * 2 + 1); y: none left, denied, retry 70 ms */
    ck_assert_int_eq(decode("*7\r\n:777\r\n:3\r\n:100000\r\n:0\r\n:0\r\n:200000\r\n:70000\r\n",
                            reqs, 2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 2);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_int_eq(got.got[0].now_us, 777);
    ck_assert_uint_eq(got.got[0].count, 1);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 1);
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 2); /* gcra: its burst */
    ck_assert_int_eq(got.got[0].verdicts[0].reset_after_us, 100000);
    ck_assert_int_eq(got.got[1].status, RL_ST_DENIED);
    ck_assert_uint_eq(got.got[1].verdicts[0].remaining, 0);
    ck_assert_int_eq(got.got[1].verdicts[0].retry_after_us, 70000);
    static const char *const bad[] = {
        "*8\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", /* too long */
        "*5\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n",                   /* too short */
        "*7\r\n:1\r\n:-2\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n",      /* remaining < 0 */
        "*7\r\n:1\r\n:3\r\n:0\r\n:5\r\n:0\r\n:0\r\n:0\r\n",       /* allowed, retry */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(decode(bad[i], reqs, 2, &got, &why) == RL_ERR, "reply %zu accepted", i);
        ck_assert_int_eq(got.count, 0);
    }
    rl_free(reqs[0]);
    rl_free(reqs[1]);
}
END_TEST

START_TEST(unexpected_replies_are_refused_whole) {
    rl_limits one = limits1(RL_ALGO_FIXED_WINDOW, 5, 1000000, 0);
    rl_store_item a = item(&one, "p", "x", 1);
    rl_status st;
    rl_redis_request *req = rl_redis_request_new(RL_STORE_CHECK, &a, 1, "rl:", 3, &st);
    static const char *const bad[] = {
        "+OK\r\n",
        ":1\r\n",
        "$3\r\nabc\r\n",
        "$-1\r\n",
        "*0\r\n",
        "*7\r\n:1\r\n:0\r\n:1\r\n:4\r\n:0\r\n:0\r\n:1\r\n", /* too long */
        "*6\r\n:1\r\n:0\r\n:1\r\n$1\r\n4\r\n:0\r\n:0\r\n",  /* a string */
        "*6\r\n:1\r\n:0\r\n:4\r\n:4\r\n:0\r\n:0\r\n",       /* allowed 4 */
        "*6\r\n:1\r\n:0\r\n$1\r\n1\r\n:4\r\n:0\r\n:0\r\n",  /* a string verdict */
        "*6\r\n$1\r\n1\r\n:0\r\n:1\r\n:4\r\n:0\r\n:0\r\n",  /* a string now */
        "*6\r\n:1\r\n:0\r\n:1\r\n:-1\r\n:0\r\n:0\r\n",      /* remaining < 0 */
        "*6\r\n:1\r\n:0\r\n:1\r\n:4\r\n:0\r\n:7\r\n",       /* allowed, retry */
        "*6\r\n:1\r\n*1\r\n:0\r\n:1\r\n:4\r\n:0\r\n:0\r\n", /* nested */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        answers got;
        const char *why;
        ck_assert_msg(decode(bad[i], &req, 1, &got, &why) == RL_ERR, "reply %zu accepted", i);
        ck_assert_int_eq(got.count, 0);
        ck_assert_ptr_nonnull(why);
    }
    rl_free(req);
}
END_TEST

// A batch whose command failed inside the script has the error's text as its status
// (general form) or first field (compact form): that request alone is INTERNAL with
// the text; the others are read as usual. A capped charge sets RL_FLAG_CAPPED.
START_TEST(a_failed_batch_is_answered_alone) {
    rl_limits one = limits1(RL_ALGO_FIXED_WINDOW, 5, 1000000, 0);
    rl_store_item a = item(&one, "p", "x", 1), b = item(&one, "p", "y", 9);
    rl_status st;
    rl_redis_request *reqs[2] = {rl_redis_request_new(RL_STORE_CHECK, &a, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_ADJUST, &b, 1, "rl:", 3, &st)};
    answers got;
    const char *why;
    ck_assert_int_eq(decode("*11\r\n:777\r\n"
                            "$3\r\nOOM\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
                            ":0\r\n:2\r\n:0\r\n:1000000\r\n:1000000\r\n",
                            reqs, 2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 2);
    ck_assert_int_eq(got.got[0].status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(got.got[0].errstr);
    ck_assert_int_eq(got.got[1].status, RL_ST_DENIED);
    ck_assert_int_eq(got.got[1].flags, RL_FLAG_CAPPED);
    ck_assert_int_eq(got.got[1].verdicts[0].retry_after_us, 1000000);
    rl_free(reqs[0]);
    rl_free(reqs[1]);
    rl_limits g = limits1(RL_ALGO_GCRA, 10, 1000000, 2);
    rl_store_item x = item(&g, "p", "x", 1), y = item(&g, "p", "y", 1);
    reqs[0] = rl_redis_request_new(RL_STORE_CHECK, &x, 1, "rl:", 3, &st);
    reqs[1] = rl_redis_request_new(RL_STORE_CHECK, &y, 1, "rl:", 3, &st);
    ck_assert_int_eq(decode("*7\r\n:777\r\n:3\r\n:100000\r\n:0\r\n$3\r\nOOM\r\n:0\r\n:0\r\n", reqs,
                            2, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_int_eq(got.got[0].flags, 0);
    ck_assert_int_eq(got.got[1].status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(got.got[1].errstr);
    ck_assert_int_eq(decode("*7\r\n:777\r\n:3\r\n:100000\r\n:0\r\n:0\r\n$3\r\nOOM\r\n:0\r\n", reqs,
                            2, &got, &why),
                     RL_ERR); /* a string elsewhere */
    rl_free(reqs[0]);
    rl_free(reqs[1]);
}
END_TEST

// A lease item goes in the general form with its id after its limit set and cost (in
// unsigned decimal, all 64 bits), a CHECK beside it too; its reply is LEASE_FIELDS
// integers: outcome, remaining, reset, retry, leases expired, their slots.
START_TEST(lease_items_carry_their_id_and_read_lease_fields) {
    rl_limits c = limits1(RL_ALGO_CONCURRENCY, 5, 30000000, 0),
              g = limits1(RL_ALGO_GCRA, 10, 1000000, 2);
    rl_store_item a = item(&c, "up", "k", 2), r = item(&c, "up", "k", 0), x = item(&g, "p", "x", 1);
    a.lease = UINT64_MAX;
    r.lease = 12;
    rl_status st;
    rl_redis_request *reqs[3] = {rl_redis_request_new(RL_STORE_ACQUIRE, &a, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_CHECK, &x, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_RELEASE, &r, 1, "rl:", 3, &st)};
    ck_assert_uint_eq(reqs[0]->items[0].lease, UINT64_MAX);
    rl_redis_cmdbuf buf = {0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 3, NULL, 0), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    const char *const args[] = {"3", /* keys */
                                "rl:{up:k}:0",
                                "rl:{p:x}:0",
                                "rl:{up:k}:0",
                                "0", /* now */
                                "2", /* limit sets */
                                "1",
                                "5",
                                "5",
                                "30000000",
                                "0", /* concurrency: 5 slots, 30 s */
                                "1",
                                "4",
                                "10",
                                "1000000",
                                "2", /* gcra */
                                "3", /* batches */
                                "4",
                                "1",
                                "1",
                                "2",
                                "18446744073709551615", /* ACQUIRE: set 1, 2 slots, id */
                                "0",
                                "1",
                                "2",
                                "1", /* CHECK */
                                "5",
                                "1",
                                "1",
                                "0",
                                "12"}; /* RELEASE: set 1, cost 0, id */
    assert_args(cmd, 2, args, sizeof(args) / sizeof(args[0]));
    ck_assert_uint_eq(cmd->elements, 2 + sizeof(args) / sizeof(args[0]));
    freeReplyObject(cmd);
    rl_free(buf.data);
    answers got;
    const char *why;
    /* ACQUIRE allowed (3 left, 2 leases of 3 slots expired); CHECK; RELEASE unknown */
    ck_assert_int_eq(decode("*20\r\n:777\r\n"
                            ":0\r\n:1\r\n:3\r\n:30000000\r\n:0\r\n:2\r\n:3\r\n"
                            ":0\r\n:1\r\n:1\r\n:100000\r\n:0\r\n"
                            ":0\r\n:2\r\n:3\r\n:29000000\r\n:0\r\n:0\r\n:0\r\n",
                            reqs, 3, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 3);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 5);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 3);
    ck_assert_int_eq(got.got[0].verdicts[0].window_us, 30000000);
    ck_assert_int_eq(got.got[0].verdicts[0].reset_after_us, 30000000);
    ck_assert_uint_eq(got.got[0].leases_expired, 2);
    ck_assert_uint_eq(got.got[0].slots_expired, 3);
    ck_assert_int_eq(got.got[1].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[1].leases_expired, 0);
    ck_assert_int_eq(got.got[2].status, RL_ST_LEASE_UNKNOWN);
    ck_assert(!got.got[2].verdicts[0].allowed);
    ck_assert_int_eq(got.got[2].verdicts[0].reset_after_us, 29000000);
    /* a denial with its retry; a lease batch that failed inside the script */
    ck_assert_int_eq(decode("*20\r\n:777\r\n"
                            ":0\r\n:0\r\n:0\r\n:900\r\n:400\r\n:0\r\n:0\r\n"
                            ":0\r\n:1\r\n:1\r\n:100000\r\n:0\r\n"
                            "$3\r\nOOM\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
                            reqs, 3, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.got[0].status, RL_ST_DENIED);
    ck_assert_int_eq(got.got[0].verdicts[0].retry_after_us, 400);
    ck_assert_int_eq(got.got[2].status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(got.got[2].errstr); /* the text, in the reply (freed by now) */
    static const char *const bad[] = {
        /* outcome 3 */
        "*20\r\n:7\r\n:0\r\n:3\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
        ":0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
        /* allowed with a retry */
        "*20\r\n:7\r\n:0\r\n:1\r\n:3\r\n:0\r\n:5\r\n:0\r\n:0\r\n"
        ":0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
        /* expired slots < 0 */
        "*20\r\n:7\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:-1\r\n"
        ":0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
        /* four fields a lease (a verdict's count) */
        "*16\r\n:7\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n"
        ":0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(decode(bad[i], reqs, 3, &got, &why) == RL_ERR, "reply %zu accepted", i);
        ck_assert_int_eq(got.count, 0);
    }
    for (size_t i = 0; i < 3; i++)
        rl_free(reqs[i]);
}
END_TEST

// A call of lease ops only takes the lease form: the batch count after RL_REDIS_LEASE_MARK,
// per batch its code (op + RL_REDIS_LEASE_OPS x (its limit set, 0-based, + sets x cost;
// cost 0 but for ACQUIRE)) and lease (ACQUIRE: its member "<id>:<cost>", else "<id>:");
// its reply per batch: remaining x RL_REDIS_LEASE_SCALE + outcome x 2 + (1 if leases
// expired), reset_after, then retry_after if denied, then the leases expired and their
// slots if any; or a short answer alone (remaining x RL_REDIS_LEASE_SCALE +
// RL_REDIS_LEASE_SHORT: allowed, reset_after the lease; + 1: reset_after 0); a failed
// batch is its text alone.
START_TEST(lease_only_calls_take_the_lease_form) {
    rl_limits c = limits1(RL_ALGO_CONCURRENCY, 5, 30000000, 0),
              d = limits1(RL_ALGO_CONCURRENCY, 2, 1000000, 0);
    rl_store_item a = item(&c, "up", "k", 2), r = item(&c, "up", "k", 0),
                  n = item(&d, "dl", "j", 0);
    a.lease = UINT64_MAX;
    r.lease = 12;
    n.lease = 7;
    rl_status st;
    rl_redis_request *reqs[3] = {rl_redis_request_new(RL_STORE_ACQUIRE, &a, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_RENEW, &n, 1, "rl:", 3, &st),
                                 rl_redis_request_new(RL_STORE_RELEASE, &r, 1, "rl:", 3, &st)};
    rl_redis_cmdbuf buf = {0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 3, NULL, 0), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    /* keys; now; 2 limit sets; the lease form, 3 batches: ACQUIRE 4 + 8 x (set 0 + 2 sets
       x 2 slots), RENEW 6 + 8 x set 1, RELEASE 5 + 8 x set 0 */
    const char *const args[] = {"3",
                                "rl:{up:k}:0",
                                "rl:{dl:j}:0",
                                "rl:{up:k}:0",
                                "0",
                                "2",
                                "1",
                                "5",
                                "5",
                                "30000000",
                                "0",
                                "1",
                                "5",
                                "2",
                                "1000000",
                                "0",
                                "L3",
                                "36",
                                "18446744073709551615:2",
                                "14",
                                "7:",
                                "5",
                                "12:"};
    assert_args(cmd, 2, args, sizeof(args) / sizeof(args[0]));
    ck_assert_uint_eq(cmd->elements, 2 + sizeof(args) / sizeof(args[0]));
    freeReplyObject(cmd);
    rl_free(buf.data);
    answers got;
    const char *why;
    /* allowed, 3 left, 2 leases (3 slots) expired; redirected; not held, 3 left */
    ck_assert_int_eq(decode("*8\r\n:777\r\n"
                            ":51\r\n:30000000\r\n:2\r\n:3\r\n"
                            "$12\r\nREDIRECT x y\r\n"
                            ":52\r\n:29000000\r\n",
                            reqs, 3, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 3);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 5);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 3);
    ck_assert_int_eq(got.got[0].verdicts[0].reset_after_us, 30000000);
    ck_assert_int_eq(got.got[0].verdicts[0].retry_after_us, 0);
    ck_assert_uint_eq(got.got[0].leases_expired, 2);
    ck_assert_uint_eq(got.got[0].slots_expired, 3);
    ck_assert_int_eq(got.got[1].status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(got.got[1].errstr); /* (points into the freed reply) */
    ck_assert_int_eq(got.got[2].status, RL_ST_LEASE_UNKNOWN);
    ck_assert_uint_eq(got.got[2].verdicts[0].remaining, 3);
    ck_assert_int_eq(got.got[2].verdicts[0].reset_after_us, 29000000);
    ck_assert_uint_eq(got.got[2].leases_expired, 0);
    /* denied (retry 7 ms), none expired; renewed, 1 left; released, 5 left */
    ck_assert_int_eq(decode("*8\r\n:777\r\n:0\r\n:5000\r\n:7000\r\n"
                            ":18\r\n:1000000\r\n:82\r\n:0\r\n",
                            reqs, 3, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.got[0].status, RL_ST_DENIED);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 0);
    ck_assert_int_eq(got.got[0].verdicts[0].reset_after_us, 5000);
    ck_assert_int_eq(got.got[0].verdicts[0].retry_after_us, 7000);
    ck_assert_int_eq(got.got[1].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[1].verdicts[0].remaining, 1);
    ck_assert_uint_eq(got.got[1].verdicts[0].limit, 2);
    ck_assert_int_eq(got.got[2].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[2].verdicts[0].remaining, 5);
    /* short answers: allowed, 3 left, reset_after the lease (its limit set's); allowed,
       1 left, reset_after 0; released, 5 left, reset_after 0 */
    ck_assert_int_eq(decode("*4\r\n:777\r\n:54\r\n:23\r\n:87\r\n", reqs, 3, &got, &why), RL_OK);
    ck_assert_int_eq(got.count, 3);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 3);
    ck_assert_uint_eq(got.got[0].verdicts[0].limit, 5);
    ck_assert_int_eq(got.got[0].verdicts[0].reset_after_us, 30000000);
    ck_assert_int_eq(got.got[0].verdicts[0].window_us, 30000000);
    ck_assert_uint_eq(got.got[0].leases_expired, 0);
    ck_assert_int_eq(got.got[1].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[1].verdicts[0].remaining, 1);
    ck_assert_uint_eq(got.got[1].verdicts[0].limit, 2);
    ck_assert_int_eq(got.got[1].verdicts[0].reset_after_us, 0);
    ck_assert_int_eq(got.got[2].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[2].verdicts[0].remaining, 5);
    ck_assert_int_eq(got.got[2].verdicts[0].reset_after_us, 0);
    ck_assert_int_eq(got.got[2].verdicts[0].retry_after_us, 0);
    static const char *const bad[] = {
        /* the general form's layout (a status per batch) */
        "*22\r\n:7\r\n:0\r\n:1\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
        ":0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:2\r\n:3\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
        /* a low part the script never gives (9: outcome 4) */
        "*7\r\n:7\r\n:25\r\n:0\r\n:18\r\n:0\r\n:18\r\n:0\r\n",
        /* a negative figure */
        "*7\r\n:7\r\n:18\r\n:-1\r\n:18\r\n:0\r\n:18\r\n:0\r\n",
        /* a string past the first field */
        "*7\r\n:7\r\n:18\r\n$3\r\nOOM\r\n:18\r\n:0\r\n:18\r\n:0\r\n",
        /* the expired leases announced, not there */
        "*7\r\n:7\r\n:18\r\n:0\r\n:18\r\n:0\r\n:19\r\n:0\r\n",
        /* one element too many */
        "*8\r\n:7\r\n:18\r\n:0\r\n:18\r\n:0\r\n:18\r\n:0\r\n:0\r\n",
        /* a short answer followed by a figure (one element too many) */
        "*5\r\n:7\r\n:54\r\n:0\r\n:23\r\n:87\r\n",
        /* not an array; an empty one */
        ":7\r\n",
        "*0\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(decode(bad[i], reqs, 3, &got, &why) == RL_ERR, "reply %zu accepted", i);
        ck_assert_int_eq(got.count, 0);
    }
    for (size_t i = 0; i < 3; i++)
        rl_free(reqs[i]);
    /* a cost above the limit (denied whatever it is) goes in the code as limit + 1, so
       the code stays exact in Lua's doubles; its member keeps the cost asked */
    rl_store_item big = item(&c, "up", "k", INT64_MAX / 4);
    big.lease = 9;
    reqs[0] = rl_redis_request_new(RL_STORE_ACQUIRE, &big, 1, "rl:", 3, &st);
    buf = (rl_redis_cmdbuf){0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 1, NULL, 0), RL_OK);
    cmd = parse(buf.data, buf.len);
    ck_assert_str_eq(cmd->element[cmd->elements - 2]->str, "52"); /* 4 + 8 x (0 + 1 x 6) */
    ck_assert_str_eq(cmd->element[cmd->elements - 1]->str, "9:2305843009213693951");
    freeReplyObject(cmd);
    rl_free(buf.data);
    rl_free(reqs[0]);
}
END_TEST

// Consecutive lease form batches with the same code go as one run: the code, "*" and
// the run's length (RL_REDIS_LEASE_RUN), then each batch's lease; the answers stay one
// per request, in order.
START_TEST(lease_batches_with_one_code_go_as_runs) {
    rl_limits c = limits1(RL_ALGO_CONCURRENCY, 5, 30000000, 0);
    rl_store_item it[5] = {item(&c, "up", "a", 0), item(&c, "up", "b", 0), item(&c, "up", "c", 0),
                           item(&c, "up", "d", 1), item(&c, "up", "e", 0)};
    rl_store_op ops[5] = {RL_STORE_RELEASE, RL_STORE_RELEASE, RL_STORE_RELEASE, RL_STORE_ACQUIRE,
                          RL_STORE_RELEASE};
    rl_status st;
    rl_redis_request *reqs[5];
    for (size_t i = 0; i < 5; i++) {
        it[i].lease = 10 + i;
        reqs[i] = rl_redis_request_new(ops[i], &it[i], 1, "rl:", 3, &st);
    }
    rl_redis_cmdbuf buf = {0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 5, NULL, 0), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    /* keys; now; 1 limit set; the lease form: RELEASE (5 + 8 x set 0) x 3, ACQUIRE
       (4 + 8 x (0 + 1 x 1 slot)), RELEASE */
    const char *const args[] = {
        "5",  "rl:{up:a}:0", "rl:{up:b}:0", "rl:{up:c}:0", "rl:{up:d}:0", "rl:{up:e}:0",
        "0",  "1",           "1",           "5",           "5",           "30000000",
        "0",  "L5",          "5*3",         "10:",         "11:",         "12:",
        "12", "13:1",        "5",           "14:"};
    assert_args(cmd, 2, args, sizeof(args) / sizeof(args[0]));
    ck_assert_uint_eq(cmd->elements, 2 + sizeof(args) / sizeof(args[0]));
    freeReplyObject(cmd);
    rl_free(buf.data);
    answers got;
    const char *why;
    /* released (5 left); not held; released (4 left, 1 expired lease of 2 slots);
       acquired (short: 3 left); released (short) */
    ck_assert_int_eq(decode("*9\r\n:777\r\n:87\r\n:84\r\n:0\r\n:67\r\n:0\r\n:1\r\n:2\r\n"
                            ":54\r\n",
                            reqs, 5, &got, &why),
                     RL_ERR); /* one answer short */
    ck_assert_int_eq(decode("*10\r\n:777\r\n:87\r\n:84\r\n:0\r\n:67\r\n:0\r\n:1\r\n:2\r\n"
                            ":54\r\n:87\r\n",
                            reqs, 5, &got, &why),
                     RL_OK);
    ck_assert_int_eq(got.count, 5);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 5);
    ck_assert_int_eq(got.got[1].status, RL_ST_LEASE_UNKNOWN);
    ck_assert_int_eq(got.got[2].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[2].verdicts[0].remaining, 4);
    ck_assert_uint_eq(got.got[2].leases_expired, 1);
    ck_assert_uint_eq(got.got[2].slots_expired, 2);
    ck_assert_int_eq(got.got[3].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[3].verdicts[0].remaining, 3);
    ck_assert_int_eq(got.got[3].verdicts[0].reset_after_us, 30000000);
    ck_assert_int_eq(got.got[4].status, RL_ST_ALLOWED);
    ck_assert_int_eq(got.got[4].verdicts[0].reset_after_us, 0);
    for (size_t i = 0; i < 5; i++)
        rl_free(reqs[i]);
}
END_TEST

// A RELEASE the store hints (req->alone: its lease was acquired on an absent set) goes as
// op RL_REDIS_OP_RELEASE_ALONE; an ACQUIRE answered short with reset_after its lease (on
// an absent set) gets req->alone from the decode, one answered otherwise does not.
START_TEST(release_hints_go_as_their_own_op) {
    rl_limits c = limits1(RL_ALGO_CONCURRENCY, 5, 30000000, 0);
    rl_store_item it[4] = {item(&c, "up", "a", 1), item(&c, "up", "b", 1), item(&c, "up", "c", 0),
                           item(&c, "up", "d", 0)};
    rl_store_op ops[4] = {RL_STORE_ACQUIRE, RL_STORE_ACQUIRE, RL_STORE_RELEASE, RL_STORE_RELEASE};
    rl_status st;
    rl_redis_request *reqs[4];
    for (size_t i = 0; i < 4; i++) {
        it[i].lease = 1 + i;
        reqs[i] = rl_redis_request_new(ops[i], &it[i], 1, "rl:", 3, &st);
    }
    reqs[2]->alone = 1;
    rl_redis_cmdbuf buf = {0};
    ck_assert_int_eq(rl_redis_call_encode(&buf, reqs, 4, NULL, 0), RL_OK);
    redisReply *cmd = parse(buf.data, buf.len);
    /* ACQUIRE x 2 (4 + 8 x (0 + 1 x 1)); the hinted RELEASE 7 + 8 x 0; a RELEASE 5 */
    const char *const tail[] = {"L4", "12*2", "1:1", "2:1", "7", "3:", "5", "4:"};
    size_t nt = sizeof(tail) / sizeof(tail[0]);
    ck_assert_uint_ge(cmd->elements, nt);
    for (size_t i = 0; i < nt; i++)
        ck_assert_str_eq(cmd->element[cmd->elements - nt + i]->str, tail[i]);
    freeReplyObject(cmd);
    rl_free(buf.data);
    answers got;
    const char *why;
    /* acquired short (4 left, reset the lease); acquired in the long form (3 left);
       released short; not held */
    ck_assert_int_eq(
        decode("*7\r\n:777\r\n:70\r\n:50\r\n:1000\r\n:87\r\n:84\r\n:0\r\n", reqs, 4, &got, &why),
        RL_OK);
    ck_assert_int_eq(got.count, 4);
    ck_assert_int_eq(got.got[0].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[0].verdicts[0].remaining, 4);
    ck_assert_uint_eq(reqs[0]->alone, 1);
    ck_assert_int_eq(got.got[1].status, RL_ST_ALLOWED);
    ck_assert_uint_eq(got.got[1].verdicts[0].remaining, 3);
    ck_assert_int_eq(got.got[1].verdicts[0].reset_after_us, 1000);
    ck_assert_uint_eq(reqs[1]->alone, 0);
    ck_assert_int_eq(got.got[2].status, RL_ST_ALLOWED);
    ck_assert_int_eq(got.got[3].status, RL_ST_LEASE_UNKNOWN);
    for (size_t i = 0; i < 4; i++)
        rl_free(reqs[i]);
}
END_TEST

static Suite *batch_suite(void) {
    Suite *s = suite_create("redis_batch");
    TCase *tc = tcase_create("batch");
    tcase_add_test(tc, requests_copy_and_escape_names);
    tcase_add_test(tc, keys_over_the_bound_are_refused);
    tcase_add_test(tc, a_call_carries_every_batch_with_shared_limit_sets);
    tcase_add_test(tc, replies_become_merged_answers);
    tcase_add_test(tc, unexpected_replies_are_refused_whole);
    tcase_add_test(tc, single_bucket_checks_take_the_compact_form);
    tcase_add_test(tc, compact_replies_become_answers);
    tcase_add_test(tc, lease_only_calls_take_the_lease_form);
    tcase_add_test(tc, lease_batches_with_one_code_go_as_runs);
    tcase_add_test(tc, release_hints_go_as_their_own_op);
    tcase_add_test(tc, a_failed_batch_is_answered_alone);
    tcase_add_test(tc, lease_items_carry_their_id_and_read_lease_fields);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(batch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
