/*
 * test_config.c: rl_config_parse and the lookups on what it builds.
 *
 * Configs are written with single quotes for readability and turned into JSON before
 * parsing. Every refused config must name the offending field's path in its message
 * (asserted with strstr), every accepted one must carry exactly the values written or
 * the documented defaults. The allocation-failure loop makes the n-th allocation fail
 * for every n until the parse succeeds: run under valgrind to see that nothing leaks.
 * Tests run from the repository root (conf/rlimitd.json).
 */
#include "alloc.h"
#include "config.h"
#include "hash.h"
#include "rlproto.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS 1000LL /* microseconds in a millisecond */
#define LISTEN "'listen':['unix:/tmp/rl-test.sock']"
#define P_OK "'p':{'algorithm':'fixed_window','limit':1,'period':'1s'}"

static char err[1024]; /* the last parse's message */

/* ---- helpers ---- */

/* Parses a config written with single quotes. */
static rl_config *parse(const char *single_quoted) {
    char *json = strdup(single_quoted);
    for (char *p = json; *p; p++)
        if (*p == '\'')
            *p = '"';
    err[0] = '\0';
    rl_config *c = rl_config_parse(json, "test.json", err, sizeof(err));
    free(json);
    if (!c)
        ck_assert_msg(err[0] != '\0', "a refused config must come with a message");
    return c;
}

/* Parses {LISTEN, 'policies': {policies}}. */
static rl_config *parse_policies(const char *policies) {
    char buf[16384];
    snprintf(buf, sizeof(buf), "{" LISTEN ",'policies':{%s}}", policies);
    return parse(buf);
}

/* Parses {'listen': [listen], 'policies': {P_OK}}. */
static rl_config *parse_listen(const char *listen) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "{'listen':[%s],'policies':{" P_OK "}}", listen);
    return parse(buf);
}

/* Parses {LISTEN, 'store': {store}, 'policies': {P_OK}}. */
static rl_config *parse_store(const char *store) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "{" LISTEN ",'store':{%s},'policies':{" P_OK "}}", store);
    return parse(buf);
}

/* Parses {LISTEN, 'store': {'type':'redis','url': url}, 'policies': {P_OK}}. */
static rl_config *parse_redis_url(const char *url) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "'type':'redis','url':'%s'", url);
    return parse_store(buf);
}

/* Asserts that the config was refused with a message containing each needle. */
#define REFUSED(config, ...)                                                                       \
    do {                                                                                           \
        rl_config *refused_ = (config);                                                            \
        const char *needles_[] = {__VA_ARGS__, NULL};                                              \
        ck_assert_msg(!refused_, "accepted; expected an error naming \"%s\"", needles_[0]);        \
        for (size_t n_ = 0; needles_[n_]; n_++)                                                    \
            ck_assert_msg(strstr(err, needles_[n_]), "message \"%s\" lacks \"%s\"", err,           \
                          needles_[n_]);                                                           \
    } while (0)

/* Asserts that the config was accepted. */
#define ACCEPTED(config)                                                                           \
    ({                                                                                             \
        rl_config *accepted_ = (config);                                                           \
        ck_assert_msg(accepted_, "refused: %s", err);                                              \
        accepted_;                                                                                 \
    })

static const rl_policy *policy(const rl_config *c, const char *name) {
    const rl_policy *p = rl_config_policy(c, name, strlen(name));
    ck_assert_msg(p, "no policy %s", name);
    return p;
}

static void assert_rate(const rl_rate *r, rl_algorithm algorithm, uint64_t limit, int64_t period_ms,
                        uint64_t burst) {
    ck_assert_int_eq(r->algorithm, algorithm);
    ck_assert_uint_eq(r->limit, limit);
    ck_assert_int_eq(r->period_us, period_ms * MS);
    if (algorithm == RL_ALGO_TOKEN_BUCKET || algorithm == RL_ALGO_GCRA)
        ck_assert_uint_eq(r->burst, burst);
}

static const rl_limits *override_limits(const rl_policy *p, const char *key) {
    const rl_limits *l = rl_policy_limits(p, key, strlen(key));
    ck_assert_msg(l != &p->limits, "no override for %s", key);
    return l;
}

/* ---- whole files ---- */

START_TEST(test_example_file_loads) {
    rl_config *c = rl_config_load("conf/rlimitd.json", err, sizeof(err));
    ck_assert_msg(c, "conf/rlimitd.json: %s", err);
    ck_assert_uint_eq(c->listener_count, 2);
    ck_assert_int_eq(c->listeners[0].kind, RL_LISTEN_UNIX);
    ck_assert_str_eq(c->listeners[0].path, "/tmp/rlimitd.sock");
    ck_assert_int_eq(c->listeners[0].admin, 1);
    ck_assert_int_eq(c->listeners[1].kind, RL_LISTEN_TCP);
    ck_assert_str_eq(c->listeners[1].host, "127.0.0.1");
    ck_assert_uint_eq(c->listeners[1].port, 7379);
    ck_assert_int_eq(c->listeners[1].admin, 0);
    ck_assert_int_eq(c->store.type, RL_STORE_MEMORY);
    ck_assert_uint_eq(c->store.max_keys, 1000000);
    ck_assert_uint_eq(c->max_frame, 16384);
    ck_assert_uint_eq(c->max_key, 512);
    ck_assert_int_eq(c->idle_timeout_ms, 300000);
    ck_assert_int_eq(c->log_level, 2);
    ck_assert_uint_eq(c->policy_count, 5);
    for (size_t i = 1; i < c->policy_count; i++)
        ck_assert_msg(strcmp(c->policies[i - 1].name, c->policies[i].name) < 0, "not sorted");

    const rl_policy *api = policy(c, "api");
    ck_assert_uint_eq(api->limits.rate_count, 1);
    assert_rate(&api->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 100, 60000, 20);
    ck_assert_int_eq(api->mode, RL_MODE_ENFORCE);
    ck_assert_int_eq(api->on_store_error, RL_ON_ERROR_LOCAL);

    const rl_policy *login = policy(c, "login");
    assert_rate(&login->limits.rates[0], RL_ALGO_SLIDING_LOG, 5, 900000, 0);
    ck_assert_uint_eq(login->override_count, 1);
    const rl_limits *partner = override_limits(login, "apikey:partner-42");
    ck_assert_uint_eq(partner->rate_count, 1);
    assert_rate(&partner->rates[0], RL_ALGO_SLIDING_LOG, 50, 900000, 0);
    ck_assert(rl_policy_limits(login, "partner-42", 10) ==
              &login->limits); /* keys name their kind */
    ck_assert(rl_keyset_has(&login->exempt, "ip:10.0.0.1", 11));
    ck_assert(!rl_keyset_has(&login->exempt, "10.0.0.1", 8));
    ck_assert(!rl_keyset_has(&login->exempt, "ip:10.0.0.2", 11));
    ck_assert_uint_eq(login->block.count, 0);

    const rl_policy *upload = policy(c, "upload");
    assert_rate(&upload->limits.rates[0], RL_ALGO_GCRA, 10, 3600000, 2);
    ck_assert_int_eq(upload->mode, RL_MODE_SHADOW);

    const rl_policy *search = policy(c, "search");
    ck_assert_uint_eq(search->limits.rate_count, 2);
    assert_rate(&search->limits.rates[0], RL_ALGO_FIXED_WINDOW, 10, 1000, 0);
    assert_rate(&search->limits.rates[1], RL_ALGO_FIXED_WINDOW, 5000, 86400000, 0);

    const rl_policy *bench = policy(c, "bench");
    assert_rate(&bench->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 1000000000, 1000, 1000000000);
    rl_config_free(c);
}
END_TEST

START_TEST(test_design_example_loads) {
    rl_config *c = ACCEPTED(parse(
        "{'listen': ['unix:/run/rlimitd/rlimitd.sock', 'tcp:127.0.0.1:7379',"
        "   {'address': 'unix:/run/rlimitd/admin.sock', 'admin': true},"
        "   {'address': 'http:127.0.0.1:7380'}],"
        " 'store': {'type': 'memory', 'max_keys': 1000000},"
        " 'policies': {"
        "  'api':   {'algorithm': 'token_bucket', 'limit': 100, 'period': '1m', 'burst': 20},"
        "  'login': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '15m',"
        "            'overrides': {'partner-42': {'limit': 50}}, 'exempt': ['10.0.0.1']},"
        "  'upload':{'algorithm': 'gcra', 'limit': 10, 'period': '1h', 'burst': 2,"
        "            'mode': 'shadow', 'on_store_error': 'local'},"
        "  'search':{'algorithm': 'fixed_window',"
        "            'rates': [{'limit': 10, 'period': '1s'}, {'limit': 5000, 'period': '1d'}]}"
        " }}"));
    ck_assert_uint_eq(c->listener_count, 4);
    ck_assert_int_eq(c->listeners[2].kind, RL_LISTEN_UNIX);
    ck_assert_int_eq(c->listeners[2].admin, 1);
    ck_assert_int_eq(c->listeners[3].kind, RL_LISTEN_HTTP);
    ck_assert_int_eq(c->listeners[3].admin, 0);
    ck_assert_uint_eq(c->listeners[3].port, 7380);
    ck_assert_uint_eq(c->policy_count, 4);
    rl_config_free(c);
}
END_TEST

START_TEST(test_every_documented_field) {
    rl_config *c = ACCEPTED(parse(
        "{'listen': ['unix:/tmp/a.sock', {'address': 'tcp:0.0.0.0:7000', 'admin': true,"
        "                                 'insecure': true},"
        "            {'address': 'unix:/tmp/b.sock', 'admin': false, 'mode': '0600',"
        "             'peer_uids': [0, 1000], 'peer_gids': [5]},"
        "            {'address': 'http:127.0.0.1:7380', 'ops': ['stats']}],"
        " 'store': {'type': 'redis', 'url': 'redis://10.1.2.3:6390/3', 'max_keys': 5000,"
        "   'username': 'u', 'password': 'pw', 'connect_timeout_ms': 300,"
        "   'command_timeout_ms': 40, 'key_prefix': 'app:', 'pool': 4, 'batch_max': 64},"
        " 'limits': {'max_frame': 4096, 'max_key': 100, 'max_connections': 10,"
        "   'max_pending': 20, 'max_output': 65536, 'idle_timeout': '30s'},"
        " 'denial_log': {'path': '/tmp/denials.log', 'syslog': false, 'lines_per_s': 7},"
        " 'log_level': 'debug',"
        " 'policies': {'x': {'algorithm': 'gcra', 'limit': 3, 'period': 999, 'burst': 4,"
        "   'mode': 'enforce', 'on_store_error': 'deny',"
        "   'overrides': {'k': {'algorithm': 'token_bucket', 'limit': 9, 'period': '2s',"
        "                       'burst': 3}},"
        "   'exempt': ['e1'], 'block': ['b1', 'b2']},"
        "  'y': {'rates': [{'algorithm': 'sliding_window_counter', 'limit': 2, 'period': '1m'},"
        "                  {'algorithm': 'token_bucket', 'limit': 6, 'period': '1h', 'burst': 2}],"
        "        'on_store_error': 'allow', 'mode': 'shadow'}}}"));
    ck_assert_uint_eq(c->listener_count, 4);
    ck_assert_int_eq(c->listeners[0].mode, 0660);
    ck_assert_int_eq(c->listeners[1].insecure, 1);
    ck_assert_uint_eq(c->listeners[2].peer_uid_count, 2);
    ck_assert_uint_eq(c->listeners[2].peer_uids[1], 1000);
    ck_assert_uint_eq(c->listeners[2].peer_gid_count, 1);
    ck_assert_uint_eq(c->listeners[2].peer_gids[0], 5);
    ck_assert_uint_eq(c->listeners[3].perms, RL_PERM_STATS);
    ck_assert_int_eq(c->listeners[1].kind, RL_LISTEN_TCP);
    ck_assert_str_eq(c->listeners[1].host, "0.0.0.0");
    ck_assert_int_eq(c->listeners[1].admin, 1);
    ck_assert_int_eq(c->listeners[2].admin, 0);
    ck_assert_int_eq(c->listeners[2].mode, 0600);

    const rl_store_conf *s = &c->store;
    ck_assert_int_eq(s->type, RL_STORE_REDIS);
    ck_assert_str_eq(s->url, "redis://10.1.2.3:6390/3");
    ck_assert_str_eq(s->host, "10.1.2.3");
    ck_assert_uint_eq(s->port, 6390);
    ck_assert_int_eq(s->db, 3);
    ck_assert_uint_eq(s->max_keys, 5000);
    ck_assert_str_eq(s->username, "u");
    ck_assert_str_eq(s->password, "pw");
    ck_assert_int_eq(s->connect_timeout_ms, 300);
    ck_assert_int_eq(s->command_timeout_ms, 40);
    ck_assert_str_eq(s->key_prefix, "app:");
    ck_assert_int_eq(s->pool, 4);
    ck_assert_int_eq(s->batch_max, 64);

    ck_assert_uint_eq(c->max_frame, 4096);
    ck_assert_uint_eq(c->max_key, 100);
    ck_assert_uint_eq(c->max_connections, 10);
    ck_assert_uint_eq(c->max_pending, 20);
    ck_assert_uint_eq(c->max_output, 65536);
    ck_assert_int_eq(c->idle_timeout_ms, 30000);
    ck_assert_str_eq(c->denial_log.path, "/tmp/denials.log");
    ck_assert_int_eq(c->denial_log.syslog, 0);
    ck_assert_int_eq(c->denial_log.lines_per_s, 7);
    ck_assert_int_eq(c->log_level, 3);

    const rl_policy *x = policy(c, "x");
    assert_rate(&x->limits.rates[0], RL_ALGO_GCRA, 3, 999, 4);
    ck_assert_int_eq(x->on_store_error, RL_ON_ERROR_DENY);
    ck_assert_int_eq(x->mode, RL_MODE_ENFORCE);
    assert_rate(&override_limits(x, "k")->rates[0], RL_ALGO_TOKEN_BUCKET, 9, 2000, 3);
    ck_assert(rl_keyset_has(&x->exempt, "e1", 2));
    ck_assert(rl_keyset_has(&x->block, "b1", 2));
    ck_assert(rl_keyset_has(&x->block, "b2", 2));
    ck_assert(!rl_keyset_has(&x->exempt, "b1", 2));

    const rl_policy *y = policy(c, "y");
    ck_assert_uint_eq(y->limits.rate_count, 2);
    assert_rate(&y->limits.rates[0], RL_ALGO_SLIDING_COUNTER, 2, 60000, 0);
    assert_rate(&y->limits.rates[1], RL_ALGO_TOKEN_BUCKET, 6, 3600000, 2);
    ck_assert_int_eq(y->on_store_error, RL_ON_ERROR_ALLOW);
    ck_assert_int_eq(y->mode, RL_MODE_SHADOW);
    rl_config_free(c);
}
END_TEST

START_TEST(test_defaults) {
    rl_config *c = ACCEPTED(parse("{" LISTEN ",'policies':{" P_OK "}}"));
    ck_assert_int_eq(c->store.type, RL_STORE_MEMORY);
    ck_assert_uint_eq(c->store.max_keys, 1000000);
    ck_assert_uint_eq(c->max_frame, RL_DEFAULT_MAX_FRAME);
    ck_assert_uint_eq(c->max_key, RL_DEFAULT_MAX_KEY);
    ck_assert_int_eq(c->log_level, 2);
    ck_assert_ptr_null(c->denial_log.path);
    const rl_policy *p = policy(c, "p");
    ck_assert_int_eq(p->mode, RL_MODE_ENFORCE);
    ck_assert_int_eq(p->on_store_error, RL_ON_ERROR_LOCAL);
    ck_assert_uint_eq(p->override_count, 0);
    ck_assert_uint_eq(p->exempt.count, 0);
    ck_assert(!rl_keyset_has(&p->exempt, "x", 1));
    ck_assert(!rl_keyset_has(&p->block, "x", 1));
    rl_config_free(c);

    c = ACCEPTED(parse_store("'type':'redis','url':'redis://h'"));
    ck_assert_str_eq(c->store.key_prefix, "rl:");
    ck_assert_int_eq(c->store.pool, 2);
    ck_assert_int_eq(c->store.batch_max, 256);
    ck_assert_int_eq(c->store.connect_timeout_ms, 1000);
    ck_assert_int_eq(c->store.command_timeout_ms, 250);
    ck_assert_ptr_null(c->store.username);
    ck_assert_ptr_null(c->store.password);
    rl_config_free(c);
}
END_TEST

START_TEST(test_json_syntax_errors_name_the_source) {
    REFUSED(parse("{'listen': ["), "test.json:1:");
    REFUSED(parse("[]"), "test.json", "must be an object");
    REFUSED(parse("{" LISTEN ", " LISTEN ",'policies':{" P_OK "}}"), "test.json", "duplicate");
    ck_assert_ptr_null(rl_config_load("/nonexistent/rlimitd.json", err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/rlimitd.json"), "%s", err);
}
END_TEST

/* ---- durations ---- */

START_TEST(test_duration_parse) {
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {{"500ms", 500},   {"1s", 1000}, {"10m", 600000}, {"1h", 3600000},
                {"1d", 86400000}, {"0ms", 0},   {"15m", 900000}, {"007s", 7000}};
    static const char *const bad[] = {"5x",
                                      "",
                                      "-1s",
                                      "s",
                                      "1",
                                      "1.5s",
                                      " 1s",
                                      "1s ",
                                      "1S",
                                      "1 s",
                                      "+1s",
                                      "ms",
                                      "1sec",
                                      "99999999999999999999d",
                                      "9223372036854775808ms",
                                      "106751991167301d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = -1;
        ck_assert_msg(rl_duration_parse(good[i].text, &ms) == 0, "\"%s\" refused", good[i].text);
        ck_assert_msg(ms == good[i].ms, "\"%s\" = %lld", good[i].text, (long long)ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = -1;
        ck_assert_msg(rl_duration_parse(bad[i], &ms) != 0, "\"%s\" accepted as %lld", bad[i],
                      (long long)ms);
    }
}
END_TEST

START_TEST(test_durations_in_config) {
    static const struct {
        const char *json;
        int64_t ms;
    } good[] = {
        {"'500ms'", 500},   {"'1s'", 1000}, {"'10m'", 600000}, {"'1h'", 3600000},
        {"'1d'", 86400000}, {"1", 1},       {"250", 250},      {"4294967295", 4294967295LL}};
    static const char *const bad[] = {
        "'5x'", "''",   "'-1s'",    "0",          "-5",         "'0s'", "1.5",
        "true", "null", "'49711d'", "4294967296", "'1193047h'", "[1]",  "'9999999999999999999ms'"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "'api':{'algorithm':'fixed_window','limit':1,'period':%s}",
                 good[i].json);
        rl_config *c = ACCEPTED(parse_policies(buf));
        ck_assert_int_eq(policy(c, "api")->limits.rates[0].period_us, good[i].ms * MS);
        rl_config_free(c);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "'api':{'algorithm':'fixed_window','limit':1,'period':%s}",
                 bad[i]);
        REFUSED(parse_policies(buf), "policies.api.period");
    }
    REFUSED(parse("{" LISTEN ",'limits':{'idle_timeout':'5x'},'policies':{" P_OK "}}"),
            "limits.idle_timeout");
    REFUSED(parse("{" LISTEN ",'limits':{'idle_timeout':0},'policies':{" P_OK "}}"),
            "limits.idle_timeout");
    rl_config *c =
        ACCEPTED(parse("{" LISTEN ",'limits':{'idle_timeout':1500},'policies':{" P_OK "}}"));
    ck_assert_int_eq(c->idle_timeout_ms, 1500);
    rl_config_free(c);
}
END_TEST

/* ---- errors name the field ---- */

START_TEST(test_errors_name_the_path) {
    REFUSED(parse_policies("'api':{'algorithm':'token_bucket','limit':10,'period':'5x'}"),
            "policies.api.period", "5x");
    REFUSED(parse_policies("'api':{'algorithm':'token_bucket','limit':0,'period':'1s'}"),
            "policies.api.limit");
    REFUSED(parse_policies("'api':{'algorithm':'token_bucket','limit':4294967296,'period':'1s'}"),
            "policies.api.limit");
    REFUSED(parse_policies("'api':{'algorithm':'token_bucket','limit':'10','period':'1s'}"),
            "policies.api.limit");
    REFUSED(parse_policies("'api':{'algorithm':'token_bucket','limit':1,'period':'1s','burst':0}"),
            "policies.api.burst");
    REFUSED(parse_policies("'api':{'algorithm':'leaky','limit':1,'period':'1s'}"),
            "policies.api.algorithm");
    REFUSED(parse_policies("'api':{'algorithm':5,'limit':1,'period':'1s'}"),
            "policies.api.algorithm");
    REFUSED(parse_policies("'api':{'limit':1,'period':'1s'}"), "policies.api", "algorithm");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','period':'1s'}"), "policies.api", "limit");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3}"), "policies.api", "period");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s','mode':'dry'}"),
            "policies.api.mode");
    REFUSED(parse_policies(
                "'api':{'algorithm':'gcra','limit':3,'period':'1s','on_store_error':'fail'}"),
            "policies.api.on_store_error");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s','exempt':'a'}"),
            "policies.api.exempt");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s','exempt':['a',1]}"),
            "policies.api.exempt[1]");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s','block':[null]}"),
            "policies.api.block[0]");
    REFUSED(parse_policies("'api':[]"), "policies.api");
    REFUSED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':5,'period':'15m',"
                           "'overrides':{'partner-42':{'limit':0}}}"),
            "policies.login.overrides.partner-42.limit");
    REFUSED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':5,'period':'15m',"
                           "'overrides':{'partner-42':{'period':'1y'}}}"),
            "policies.login.overrides.partner-42.period");
    REFUSED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':5,'period':'15m',"
                           "'overrides':['partner-42']}"),
            "policies.login.overrides");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                           "{'limit':0,'period':'1s'}]}"),
            "policies.s.rates[1].limit");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                           "{'limit':3,'period':'2x'}]}"),
            "policies.s.rates[1].period");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[]}"), "policies.s.rates");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':{'limit':1}}"),
            "policies.s.rates");
    REFUSED(parse_listen("'unix:/a', 'tcp:nohost'"), "listen[1]");
    REFUSED(parse_listen("'unix:/a', {'address': 'tcp:1.2.3.4'}"), "listen[1].address");
    REFUSED(parse_redis_url("http://x"), "store.url");
    REFUSED(parse("{" LISTEN ",'limits':{'max_key':0},'policies':{" P_OK "}}"), "limits.max_key");
    REFUSED(parse("{" LISTEN ",'limits':{'max_key':65536},'policies':{" P_OK "}}"),
            "limits.max_key");
    REFUSED(parse("{" LISTEN ",'limits':{'max_frame':63},'policies':{" P_OK "}}"),
            "limits.max_frame");
    REFUSED(parse("{" LISTEN ",'limits':{'max_pending':0},'policies':{" P_OK "}}"),
            "limits.max_pending");
    REFUSED(parse("{" LISTEN ",'limits':{'max_connections':-1},'policies':{" P_OK "}}"),
            "limits.max_connections");
    REFUSED(parse("{" LISTEN ",'limits':{'max_output':100},'policies':{" P_OK "}}"),
            "limits.max_output");
    REFUSED(parse("{" LISTEN ",'limits':[],'policies':{" P_OK "}}"), "limits");
    REFUSED(parse("{" LISTEN ",'log_level':'verbose','policies':{" P_OK "}}"), "log_level");
    REFUSED(parse("{" LISTEN ",'denial_log':{'syslog':1},'policies':{" P_OK "}}"),
            "denial_log.syslog");
    REFUSED(parse("{" LISTEN ",'denial_log':{'lines_per_s':0},'policies':{" P_OK "}}"),
            "denial_log.lines_per_s");
    REFUSED(parse("{" LISTEN ",'denial_log':{'path':7},'policies':{" P_OK "}}"), "denial_log.path");
    REFUSED(parse_store("'type':'disk'"), "store.type");
    REFUSED(parse_store("'max_keys':5"), "store.type");
    REFUSED(parse_store("'type':'memory','max_keys':0"), "store.max_keys");
    REFUSED(parse_store("'type':'memory','max_keys':4294967297"), "store.max_keys");
    REFUSED(parse_store("'type':'redis'"), "store.url");
    REFUSED(parse_store("'type':'redis','url':5"), "store.url");
    REFUSED(parse_store("'type':'redis','url':'redis://h','pool':0"), "store.pool");
    REFUSED(parse_store("'type':'redis','url':'redis://h','pool':65"), "store.pool");
    REFUSED(parse_store("'type':'redis','url':'redis://h','batch_max':0"), "store.batch_max");
    REFUSED(parse_store("'type':'redis','url':'redis://h','connect_timeout_ms':0"),
            "store.connect_timeout_ms");
    REFUSED(parse_store("'type':'redis','url':'redis://h','command_timeout_ms':'1s'"),
            "store.command_timeout_ms");
    REFUSED(parse_store("'type':'redis','url':'redis://h','key_prefix':"
                        "'01234567890123456789012345678901234567890123456789012345678901234'"),
            "store.key_prefix");
    REFUSED(parse("{" LISTEN ",'store':[],'policies':{" P_OK "}}"), "store");
    REFUSED(parse("{" LISTEN "}"), "policies");
    REFUSED(parse("{" LISTEN ",'policies':{}}"), "policies");
    REFUSED(parse("{'policies':{" P_OK "}}"), "listen");
    REFUSED(parse("{'listen':[],'policies':{" P_OK "}}"), "listen");
    REFUSED(parse("{'listen':'unix:/a','policies':{" P_OK "}}"), "listen");
}
END_TEST

/* A string field of the wrong type must be refused cleanly (no double free of the
 * default or of what the URL gave), whatever came before it. */
START_TEST(test_redis_string_fields_of_the_wrong_type) {
    REFUSED(parse_store("'type':'redis','url':'redis://h','key_prefix':5"), "store.key_prefix");
    REFUSED(parse_store("'type':'redis','url':'redis://u:p@h','username':5"), "store.username");
    REFUSED(parse_store("'type':'redis','url':'redis://u:p@h','password':[]"), "store.password");
    REFUSED(parse_store("'type':'redis','url':'redis://h','username':null"), "store.username");
    rl_config *c =
        ACCEPTED(parse_store("'type':'redis','url':'redis://u:p@h','username':'v','password':'q'"));
    ck_assert_str_eq(c->store.username, "v");
    ck_assert_str_eq(c->store.password, "q");
    rl_config_free(c);
}
END_TEST

START_TEST(test_unknown_fields_at_every_level) {
    REFUSED(parse("{" LISTEN ",'polices':{},'policies':{" P_OK "}}"), "unknown field", "polices");
    REFUSED(parse_listen("{'address':'unix:/a','adress':'x'}"), "listen[0]", "adress");
    REFUSED(parse_store("'type':'memory','maxkeys':3"), "store", "maxkeys");
    REFUSED(parse_store("'type':'memory','url':'redis://h'"), "store", "url");
    REFUSED(parse_store("'type':'redis','url':'redis://h','db':2"), "store", "\"db\"");
    REFUSED(parse("{" LISTEN ",'limits':{'max_frames':100},'policies':{" P_OK "}}"), "limits",
            "max_frames");
    REFUSED(parse("{" LISTEN ",'denial_log':{'file':'x'},'policies':{" P_OK "}}"), "denial_log",
            "file");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limt':3,'limit':3,'period':'1s'}"),
            "policies.api", "limt");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s',"
                           "'overrides':{'k':{'limits':3}}}"),
            "policies.api.overrides.k", "limits");
    REFUSED(parse_policies("'api':{'algorithm':'gcra','limit':3,'period':'1s',"
                           "'overrides':{'k':{'mode':'shadow'}}}"),
            "policies.api.overrides.k", "mode");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                           "{'limit':3,'period':'1m','burst_size':2}]}"),
            "policies.s.rates[1]", "burst_size");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s',"
                           "'mode':'shadow'}]}"),
            "policies.s.rates[0]", "mode");
}
END_TEST

/* ---- policies ---- */

START_TEST(test_burst_only_on_buckets) {
    REFUSED(parse_policies("'api':{'algorithm':'fixed_window','limit':3,'period':'1s','burst':2}"),
            "policies.api", "burst");
    REFUSED(parse_policies(
                "'api':{'algorithm':'sliding_window_log','limit':3,'period':'1s','burst':2}"),
            "policies.api", "burst");
    REFUSED(parse_policies(
                "'api':{'algorithm':'sliding_window_counter','limit':3,'period':'1s','burst':2}"),
            "policies.api", "burst");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                           "{'limit':3,'period':'1m','burst':2}]}"),
            "policies.s.rates[1]", "burst");
    rl_config *c = ACCEPTED(
        parse_policies("'a':{'algorithm':'token_bucket','limit':3,'period':'1s','burst':7},"
                       "'b':{'algorithm':'gcra','limit':3,'period':'1s','burst':7},"
                       "'s':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                       "     {'algorithm':'gcra','limit':3,'period':'1m','burst':2}]}"));
    assert_rate(&policy(c, "a")->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 3, 1000, 7);
    assert_rate(&policy(c, "b")->limits.rates[0], RL_ALGO_GCRA, 3, 1000, 7);
    assert_rate(&policy(c, "s")->limits.rates[1], RL_ALGO_GCRA, 3, 60000, 2);
    rl_config_free(c);
}
END_TEST

START_TEST(test_rates_or_limit_not_both) {
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','limit':5,"
                           "'rates':[{'limit':1,'period':'1s'}]}"),
            "policies.s", "rates");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','period':'1s',"
                           "'rates':[{'limit':1,'period':'1s'}]}"),
            "policies.s", "rates");
    REFUSED(parse_policies("'s':{'algorithm':'token_bucket','burst':3,"
                           "'rates':[{'limit':1,'period':'1s'}]}"),
            "policies.s", "rates");
    /* in an override too, even when the value equals the policy's */
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','limit':5,'period':'1s',"
                           "'overrides':{'k':{'limit':5,'rates':[{'limit':1,'period':'1s'}]}}}"),
            "policies.s.overrides.k", "rates");
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window','limit':5,'period':'1s',"
                           "'overrides':{'k':{'limit':6,'rates':[{'limit':1,'period':'1s'}]}}}"),
            "policies.s.overrides.k", "rates");
    REFUSED(parse_policies("'s':{'rates':[{'limit':1,'period':'1s'}]}"), "policies.s.rates[0]",
            "algorithm");
}
END_TEST

START_TEST(test_rate_count_bounds) {
    char buf[4096] = "'s':{'algorithm':'fixed_window','rates':[";
    for (int i = 1; i <= RL_MAX_RATES + 1; i++) {
        char rate[64];
        snprintf(rate, sizeof(rate), "%s{'limit':%d,'period':'%ds'}", i > 1 ? "," : "", i, i);
        strcat(buf, rate);
        if (i == RL_MAX_RATES) {
            char ok[4096];
            snprintf(ok, sizeof(ok), "%s]}", buf);
            rl_config *c = ACCEPTED(parse_policies(ok));
            const rl_limits *l = &policy(c, "s")->limits;
            ck_assert_uint_eq(l->rate_count, RL_MAX_RATES);
            for (int r = 0; r < RL_MAX_RATES; r++)
                assert_rate(&l->rates[r], RL_ALGO_FIXED_WINDOW, (uint64_t)r + 1, 1000LL * (r + 1),
                            0);
            rl_config_free(c);
        }
    }
    strcat(buf, "]}");
    REFUSED(parse_policies(buf), "policies.s.rates");
}
END_TEST

START_TEST(test_default_bursts) {
    rl_config *c = ACCEPTED(
        parse_policies("'tb':{'algorithm':'token_bucket','limit':100,'period':'1m'},"
                       "'g':{'algorithm':'gcra','limit':10,'period':'1h'},"
                       "'m':{'rates':[{'algorithm':'token_bucket','limit':7,'period':'1s'},"
                       "              {'algorithm':'gcra','limit':9,'period':'1m'}]}"));
    assert_rate(&policy(c, "tb")->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 100, 60000, 100);
    assert_rate(&policy(c, "g")->limits.rates[0], RL_ALGO_GCRA, 10, 3600000, 1);
    assert_rate(&policy(c, "m")->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 7, 1000, 7);
    assert_rate(&policy(c, "m")->limits.rates[1], RL_ALGO_GCRA, 9, 60000, 1);
    ck_assert_uint_eq(rl_rate_capacity(&policy(c, "g")->limits.rates[0]), 1);
    rl_config_free(c);
}
END_TEST

START_TEST(test_overrides_inherit) {
    rl_config *c = ACCEPTED(parse_policies(
        "'api':{'algorithm':'token_bucket','limit':100,'period':'1m','burst':20,"
        "       'overrides':{'a':{'limit':50}, 'b':{'period':'1h'}, 'c':{'burst':5},"
        "                    'd':{'algorithm':'gcra'}, 'e':{'algorithm':'fixed_window'}}},"
        "'tb':{'algorithm':'token_bucket','limit':100,'period':'1m',"
        "      'overrides':{'a':{'limit':50}, 'b':{'limit':30,'burst':60}}},"
        "'g':{'algorithm':'gcra','limit':10,'period':'1h','overrides':{'a':{'limit':20}}},"
        "'log':{'algorithm':'sliding_window_log','limit':5,'period':'15m',"
        "       'overrides':{'a':{'period':'1h'}, 'b':{'limit':50}}}"));
    const rl_policy *api = policy(c, "api");
    assert_rate(&api->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 100, 60000, 20);
    /* an explicit policy burst is kept */
    assert_rate(&override_limits(api, "a")->rates[0], RL_ALGO_TOKEN_BUCKET, 50, 60000, 20);
    assert_rate(&override_limits(api, "b")->rates[0], RL_ALGO_TOKEN_BUCKET, 100, 3600000, 20);
    assert_rate(&override_limits(api, "c")->rates[0], RL_ALGO_TOKEN_BUCKET, 100, 60000, 5);
    assert_rate(&override_limits(api, "d")->rates[0], RL_ALGO_GCRA, 100, 60000, 20);
    /* a burst the override did not write does not follow it to an algorithm without one */
    assert_rate(&override_limits(api, "e")->rates[0], RL_ALGO_FIXED_WINDOW, 100, 60000, 0);
    ck_assert_uint_eq(rl_rate_capacity(&override_limits(api, "e")->rates[0]), 100);

    const rl_policy *tb = policy(c, "tb");
    /* the default burst follows the overridden limit */
    assert_rate(&override_limits(tb, "a")->rates[0], RL_ALGO_TOKEN_BUCKET, 50, 60000, 50);
    assert_rate(&override_limits(tb, "b")->rates[0], RL_ALGO_TOKEN_BUCKET, 30, 60000, 60);
    assert_rate(&tb->limits.rates[0], RL_ALGO_TOKEN_BUCKET, 100, 60000, 100);

    const rl_policy *g = policy(c, "g");
    assert_rate(&override_limits(g, "a")->rates[0], RL_ALGO_GCRA, 20, 3600000, 1);

    const rl_policy *log = policy(c, "log");
    assert_rate(&override_limits(log, "a")->rates[0], RL_ALGO_SLIDING_LOG, 5, 3600000, 0);
    assert_rate(&override_limits(log, "b")->rates[0], RL_ALGO_SLIDING_LOG, 50, 900000, 0);
    rl_config_free(c);
}
END_TEST

START_TEST(test_overrides_of_multi_rate_policies) {
    rl_config *c = ACCEPTED(parse_policies(
        "'s':{'algorithm':'fixed_window',"
        "     'rates':[{'limit':10,'period':'1s'},{'limit':5000,'period':'1d'}],"
        "     'overrides':{'big':{'rates':[{'limit':100,'period':'1s'}]},"
        "                  'mixed':{'rates':[{'algorithm':'gcra','limit':1,'period':'1s'},"
        "                                    {'limit':9,'period':'1m'}]}}}"));
    const rl_policy *s = policy(c, "s");
    const rl_limits *big = override_limits(s, "big");
    ck_assert_uint_eq(big->rate_count, 1);
    /* the policy's algorithm carries over to the override's rates */
    assert_rate(&big->rates[0], RL_ALGO_FIXED_WINDOW, 100, 1000, 0);
    const rl_limits *mixed = override_limits(s, "mixed");
    ck_assert_uint_eq(mixed->rate_count, 2);
    assert_rate(&mixed->rates[0], RL_ALGO_GCRA, 1, 1000, 1);
    assert_rate(&mixed->rates[1], RL_ALGO_FIXED_WINDOW, 9, 60000, 0);
    rl_config_free(c);
    /* an override of a multi-rate policy must give rates: a lone limit is incomplete */
    REFUSED(parse_policies("'s':{'algorithm':'fixed_window',"
                           "'rates':[{'limit':10,'period':'1s'},{'limit':5000,'period':'1d'}],"
                           "'overrides':{'k':{'limit':3}}}"),
            "policies.s.overrides.k");
}
END_TEST

START_TEST(test_policy_limits_lookup) {
    rl_config *c = ACCEPTED(parse_policies(
        "'p':{'algorithm':'fixed_window','limit':5,'period':'1s',"
        "     'overrides':{'partner-42':{'limit':50},'partner-4':{'limit':40},"
        "                  'partner-420':{'limit':420},'a':{'limit':1},'z':{'limit':26}}}"));
    const rl_policy *p = policy(c, "p");
    ck_assert_uint_eq(p->override_count, 5);
    static const struct {
        const char *key;
        uint64_t limit;
    } cases[] = {{"partner-42", 50}, {"partner-4", 40},   {"partner-420", 420},
                 {"a", 1},           {"z", 26},           {"partner-", 5},
                 {"partner-43", 5},  {"partner-4200", 5}, {"b", 5},
                 {"A", 5},           {"zz", 5},           {"", 5}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rl_limits *l = rl_policy_limits(p, cases[i].key, strlen(cases[i].key));
        ck_assert_msg(l->rates[0].limit == cases[i].limit, "key \"%s\": limit %llu", cases[i].key,
                      (unsigned long long)l->rates[0].limit);
    }
    /* the key is bytes with a length, not a C string */
    ck_assert_uint_eq(rl_policy_limits(p, "partner-42xyz", 10)->rates[0].limit, 50);
    ck_assert_uint_eq(rl_policy_limits(p, "partner-42xyz", 9)->rates[0].limit, 40);
    rl_config_free(c);
}
END_TEST

START_TEST(test_config_policy_lookup) {
    rl_config *c = ACCEPTED(parse_policies("'api':{'algorithm':'gcra','limit':1,'period':'1s'},"
                                           "'ap':{'algorithm':'gcra','limit':2,'period':'1s'},"
                                           "'apix':{'algorithm':'gcra','limit':3,'period':'1s'},"
                                           "'b':{'algorithm':'gcra','limit':4,'period':'1s'},"
                                           "'Z':{'algorithm':'gcra','limit':5,'period':'1s'}"));
    static const struct {
        const char *name;
        uint64_t limit;
    } cases[] = {{"api", 1}, {"ap", 2}, {"apix", 3}, {"b", 4}, {"Z", 5}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rl_policy *p = rl_config_policy(c, cases[i].name, strlen(cases[i].name));
        ck_assert_msg(p, "no policy %s", cases[i].name);
        ck_assert_str_eq(p->name, cases[i].name);
        ck_assert_uint_eq(p->name_len, strlen(cases[i].name));
        ck_assert_uint_eq(p->limits.rates[0].limit, cases[i].limit);
    }
    static const char *const absent[] = {"a", "apx", "apixx", "z", "B", "", "bb"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        ck_assert_msg(!rl_config_policy(c, absent[i], strlen(absent[i])), "found %s", absent[i]);
    ck_assert_str_eq(rl_config_policy(c, "apixyz", 3)->name, "api");
    ck_assert_str_eq(rl_config_policy(c, "apixyz", 4)->name, "apix");
    rl_config_free(c);
}
END_TEST

START_TEST(test_policy_names) {
    char name[300], buf[1024];
    memset(name, 'n', 255);
    name[255] = '\0';
    snprintf(buf, sizeof(buf), "'%s':{'algorithm':'gcra','limit':1,'period':'1s'}", name);
    rl_config *c = ACCEPTED(parse_policies(buf));
    ck_assert_ptr_nonnull(rl_config_policy(c, name, 255));
    rl_config_free(c);
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(buf, sizeof(buf), "'%s':{'algorithm':'gcra','limit':1,'period':'1s'}", name);
    REFUSED(parse_policies(buf), "policies.nnn", "1..255");
    REFUSED(parse_policies("'':{'algorithm':'gcra','limit':1,'period':'1s'}"), "policies.",
            "1..255");
}
END_TEST

START_TEST(test_keysets) {
    rl_config *c =
        ACCEPTED(parse_policies("'p':{'algorithm':'gcra','limit':1,'period':'1s',"
                                "     'exempt':['ab','a','abc','b','10.0.0.1','10.0.0.10','a b'],"
                                "     'block':['evil','ev','evil2']}"));
    const rl_policy *p = policy(c, "p");
    static const char *const in[] = {"a", "ab", "abc", "b", "10.0.0.1", "10.0.0.10", "a b"};
    static const char *const out[] = {"",  "aa",      "abd",        "abcd",     "ac",
                                      "c", "10.0.0.", "10.0.0.100", "10.0.0.2", "A",
                                      "x", "ev",      "evil"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        ck_assert_msg(rl_keyset_has(&p->exempt, in[i], strlen(in[i])), "%s not exempt", in[i]);
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        ck_assert_msg(!rl_keyset_has(&p->exempt, out[i], strlen(out[i])), "%s exempt", out[i]);
    ck_assert(rl_keyset_has(&p->block, "evil", 4));
    ck_assert(rl_keyset_has(&p->block, "ev", 2));
    ck_assert(rl_keyset_has(&p->block, "evil2", 5));
    ck_assert(!rl_keyset_has(&p->block, "evil22", 6));
    ck_assert(!rl_keyset_has(&p->block, "evi", 3));
    ck_assert(!rl_keyset_has(&p->block, "e", 1));
    ck_assert(rl_keyset_has(&p->exempt, "abcdef", 2)); /* "ab" by length */
    rl_config_free(c);
}
END_TEST

/* A large set in scrambled order: every member found, every near miss not. */
START_TEST(test_large_keyset) {
    char *buf = malloc(65536), *at = buf;
    at += sprintf(at, "'p':{'algorithm':'gcra','limit':1,'period':'1s','block':[");
    for (int i = 0; i < 500; i++)
        at += sprintf(at, "%s'k%d'", i ? "," : "", (i * 7919) % 1000);
    sprintf(at, "]}");
    rl_config *c = ACCEPTED(parse_policies(buf));
    free(buf);
    const rl_keyset *set = &policy(c, "p")->block;
    ck_assert_uint_eq(set->count, 500);
    int found = 0;
    for (int k = 0; k < 1000; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        found += rl_keyset_has(set, key, strlen(key));
    }
    /* 7919 is prime to 1000, so the 500 indices map to 500 distinct keys */
    ck_assert_int_eq(found, 500);
    rl_config_free(c);
}
END_TEST

START_TEST(test_fingerprints) {
    const char *base = "'a':{'algorithm':'gcra','limit':1,'period':'1s','overrides':{'k':"
                       "{'limit':2}}},'b':{'algorithm':'fixed_window','limit':3,'period':'1m'}";
    rl_config *c1 = ACCEPTED(parse_policies(base));
    rl_config *c2 = ACCEPTED(parse_policies(base));
    rl_config *c3 = ACCEPTED(parse_policies(
        "'a':{'algorithm':'gcra','limit':1,'period':'1s','overrides':{'k':{'limit':3}}},"
        "'b':{'algorithm':'fixed_window','limit':3,'period':'1m','mode':'shadow',"
        "     'exempt':['x'],'on_store_error':'deny'}"));
    rl_config *c4 = ACCEPTED(parse_policies(
        "'a':{'algorithm':'gcra','limit':1,'period':'1s','overrides':{'k':{'limit':2}}},"
        "'b':{'algorithm':'sliding_window_counter','limit':3,'period':'1m'}"));
    ck_assert_uint_eq(policy(c1, "a")->fingerprint, policy(c2, "a")->fingerprint);
    ck_assert_uint_eq(policy(c1, "b")->fingerprint, policy(c2, "b")->fingerprint);
    /* limits of an override changed */
    ck_assert_uint_ne(policy(c1, "a")->fingerprint, policy(c3, "a")->fingerprint);
    /* mode, lists, on_store_error do not touch the counters */
    ck_assert_uint_eq(policy(c1, "b")->fingerprint, policy(c3, "b")->fingerprint);
    ck_assert_uint_ne(policy(c1, "b")->fingerprint, policy(c4, "b")->fingerprint);
    rl_config_free(c1);
    rl_config_free(c2);
    rl_config_free(c3);
    rl_config_free(c4);
}
END_TEST

/* Fingerprints are the process's keyed hash (hash.h), not a hash anyone can aim at. */
START_TEST(test_fingerprint_is_keyed) {
    const char *text = "'a':{'algorithm':'gcra','limit':1,'period':'1s','overrides':{'k':"
                       "{'limit':2}}}";
    uint8_t key_a[RL_HASH_KEY_BYTES] = {1}, key_b[RL_HASH_KEY_BYTES] = {2};
    uint64_t fp[3];
    for (int i = 0; i < 3; i++) {
        rl_hash_set_key(i == 1 ? key_b : key_a);
        rl_config *c = ACCEPTED(parse_policies(text));
        fp[i] = policy(c, "a")->fingerprint;
        rl_config_free(c);
    }
    ck_assert_uint_ne(fp[0], fp[1]);
    ck_assert_uint_eq(fp[0], fp[2]);
}
END_TEST

/* ---- windows that must fit the wire's u32 milliseconds ---- */

START_TEST(test_windows_fit_u32_ms) {
    /* window = burst * ceil(period / limit) */
    rl_config *c = ACCEPTED(
        parse_policies("'a':{'algorithm':'token_bucket','limit':1,'period':4294967295},"
                       "'b':{'algorithm':'gcra','limit':1,'period':1000,'burst':4294967},"
                       "'c':{'algorithm':'fixed_window','limit':4294967295,'period':4294967295},"
                       "'d':{'algorithm':'sliding_window_log','limit':1,'period':4294967295},"
                       "'e':{'algorithm':'sliding_window_counter','limit':1,'period':2147483647}"));
    for (size_t i = 0; i < c->policy_count; i++) {
        const rl_rate *r = &c->policies[i].limits.rates[0];
        int64_t window_ms = (rl_rate_window_us(r) + 999) / 1000;
        ck_assert_msg(window_ms <= UINT32_MAX, "%s: window %lld ms", c->policies[i].name,
                      (long long)window_ms);
    }
    rl_config_free(c);
    REFUSED(parse_policies("'a':{'algorithm':'gcra','limit':1,'period':1000,'burst':4294968}"),
            "policies.a", "window");
    REFUSED(parse_policies("'a':{'algorithm':'gcra','limit':1,'period':'1d','burst':100000}"),
            "policies.a");
    REFUSED(parse_policies("'a':{'algorithm':'token_bucket','limit':1,'period':4294967296}"),
            "policies.a.period");
    /* ceil(4294967295000 / 7) * 7 us = 4294967295003 us: 4294967296 ms, one too many */
    REFUSED(parse_policies("'a':{'algorithm':'token_bucket','limit':7,'period':4294967295}"),
            "policies.a");
    /* a sliding counter reports reset_after up to two periods */
    REFUSED(
        parse_policies("'e':{'algorithm':'sliding_window_counter','limit':1,'period':2147483648}"),
        "policies.e");
    REFUSED(parse_policies("'s':{'algorithm':'gcra','rates':[{'limit':1,'period':'1s'},"
                           "{'limit':1,'period':'1s','burst':4294968}]}"),
            "policies.s.rates[1]");
}
END_TEST

/* A sliding log keeps up to `limit` entries per key; above RL_SLIDING_LOG_MAX_LIMIT the
 * config says to use the counter, for a policy's rate, each of its rates, an override. */
START_TEST(test_sliding_log_limit_has_a_maximum) {
    rl_config *c = ACCEPTED(
        parse_policies("'a':{'algorithm':'sliding_window_log','limit':10000,'period':'1h'},"
                       "'b':{'algorithm':'sliding_window_counter','limit':20000,'period':'1h'}"));
    ck_assert_uint_eq(c->policies[0].limits.rates[0].limit, RL_SLIDING_LOG_MAX_LIMIT);
    rl_config_free(c);
    REFUSED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':20000,"
                           "'period':'15m'}"),
            "policies.login.limit: 20000 is above the sliding_window_log maximum 10000; use "
            "sliding_window_counter for large limits");
    REFUSED(parse_policies("'m':{'algorithm':'fixed_window','rates':[{'limit':5,'period':'1s'},"
                           "{'algorithm':'sliding_window_log','limit':10001,'period':'1h'}]}"),
            "policies.m.rates[1].limit: 10001 is above", "sliding_window_counter");
    REFUSED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':5,'period':'15m',"
                           "'overrides':{'partner':{'limit':50000}}}"),
            "policies.login.overrides.partner.limit: 50000 is above", "sliding_window_counter");
    REFUSED(parse_policies("'m':{'algorithm':'sliding_window_log','rates':[{'limit':5,"
                           "'period':'1s'}],'overrides':{'x':{'rates':[{'limit':10001,"
                           "'period':'1h'}]}}}"),
            "policies.m.overrides.x.rates[0].limit", "sliding_window_counter");
    /* An override switching to another algorithm may go above it. */
    c = ACCEPTED(parse_policies("'login':{'algorithm':'sliding_window_log','limit':5,"
                                "'period':'15m','overrides':{'big':{'algorithm':"
                                "'sliding_window_counter','limit':50000}}}"));
    rl_config_free(c);
}
END_TEST

/* Concurrency policies (issue 14): limit 1..10000 slots, lease 100ms..1d (default 30s),
 * no period/burst/rates, overrides of limit and lease, errors naming the field. */
START_TEST(test_concurrency_policies) {
    rl_config *c = ACCEPTED(
        parse_policies("'up':{'algorithm':'concurrency','limit':2,'lease':'200ms','mode':'shadow',"
                       "  'on_store_error':'deny','exempt':['e'],'block':['b'],"
                       "  'overrides':{'big':{'limit':10000},'slow':{'lease':'1d'}}},"
                       "'dflt':{'algorithm':'concurrency','limit':1}"));
    const rl_policy *up = policy(c, "up");
    ck_assert_int_eq(up->limits.rate_count, 1);
    assert_rate(&up->limits.rates[0], RL_ALGO_CONCURRENCY, 2, 200, 0);
    ck_assert_uint_eq(rl_rate_capacity(&up->limits.rates[0]), 2);
    ck_assert_int_eq(rl_rate_window_us(&up->limits.rates[0]), 200 * MS);
    assert_rate(&override_limits(up, "big")->rates[0], RL_ALGO_CONCURRENCY, 10000, 200, 0);
    assert_rate(&override_limits(up, "slow")->rates[0], RL_ALGO_CONCURRENCY, 2, 86400000, 0);
    assert_rate(&policy(c, "dflt")->limits.rates[0], RL_ALGO_CONCURRENCY, 1, 30000, 0);
    ck_assert_str_eq(rl_algorithm_name(RL_ALGO_CONCURRENCY), "concurrency");
    rl_config_free(c);
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':10001}"),
            "policies.u.limit: 10001 is above the concurrency maximum 10000");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':0}"), "policies.u.limit");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','lease':'1s'}"),
            "policies.u.limit: is required");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,'lease':'99ms'}"),
            "policies.u.lease", "at least 100ms");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,'lease':'2d'}"),
            "policies.u.lease");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,'lease':'soon'}"),
            "policies.u.lease");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,'period':'1s'}"),
            "policies.u.period: does not apply to concurrency");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,'burst':2}"),
            "policies.u.burst: does not apply to concurrency");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','rates':[{'limit':1,'period':'1s'}]}"),
            "policies.u.rates: does not apply to concurrency");
    REFUSED(parse_policies("'u':{'algorithm':'fixed_window','rates':[{'limit':1,'period':'1s'},"
                           "{'algorithm':'concurrency','limit':2}]}"),
            "policies.u.rates[1]", "concurrency is a policy of its own");
    REFUSED(parse_policies("'u':{'algorithm':'fixed_window','limit':1,'period':'1s',"
                           "'lease':'1s'}"),
            "policies.u.lease: applies only to concurrency");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,"
                           "'overrides':{'k':{'period':'1s'}}}"),
            "policies.u.overrides.k.period: does not apply to concurrency");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,"
                           "'overrides':{'k':{'algorithm':'gcra','limit':1,'period':'1s'}}}"),
            "policies.u.overrides.k.algorithm", "cannot turn");
    REFUSED(parse_policies("'u':{'algorithm':'fixed_window','limit':1,'period':'1s',"
                           "'overrides':{'k':{'algorithm':'concurrency','limit':3}}}"),
            "policies.u.overrides.k.algorithm", "cannot turn");
    REFUSED(parse_policies("'u':{'algorithm':'concurrency','limit':1,"
                           "'overrides':{'k':{'limit':20000}}}"),
            "policies.u.overrides.k.limit: 20000 is above");
    REFUSED(
        parse_policies("'u':{'algorithm':'concurrency','limit':1,'overrides':{'k':{'lease':5}}}"),
        "policies.u.overrides.k.lease", "at least 100ms");
}
END_TEST

/* The Redis store refuses a key_prefix with hash-tag braces; the parser (and so
 * rlimitd --check-config) says so first. */
START_TEST(test_key_prefix_without_hash_tags) {
    REFUSED(parse_store("'type':'redis','url':'redis://h','key_prefix':'app{1}:'"),
            "store.key_prefix", "must not hold { or }");
    REFUSED(parse_store("'type':'redis','url':'redis://h','key_prefix':'}'"), "store.key_prefix");
    rl_config *c = ACCEPTED(parse_store("'type':'redis','url':'redis://h','key_prefix':'a:b-c_'"));
    ck_assert_str_eq(c->store.key_prefix, "a:b-c_");
    rl_config_free(c);
}
END_TEST

/* ---- redis ---- */

START_TEST(test_redis_urls) {
    rl_config *c = ACCEPTED(parse_redis_url("redis://host"));
    ck_assert_str_eq(c->store.host, "host");
    ck_assert_uint_eq(c->store.port, 6379);
    ck_assert_int_eq(c->store.db, 0);
    ck_assert_ptr_null(c->store.username);
    ck_assert_ptr_null(c->store.password);
    ck_assert_ptr_null(c->store.unix_path);
    ck_assert_str_eq(c->store.url, "redis://host");
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://host:6380/2"));
    ck_assert_str_eq(c->store.host, "host");
    ck_assert_uint_eq(c->store.port, 6380);
    ck_assert_int_eq(c->store.db, 2);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://:pass@host"));
    ck_assert_ptr_null(c->store.username);
    ck_assert_str_eq(c->store.password, "pass");
    ck_assert_str_eq(c->store.host, "host");
    ck_assert_uint_eq(c->store.port, 6379);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://:p@ss@host:7"));
    ck_assert_str_eq(c->store.password, "p@ss");
    ck_assert_str_eq(c->store.host, "host");
    ck_assert_uint_eq(c->store.port, 7);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://user:pass@host:1/0"));
    ck_assert_str_eq(c->store.username, "user");
    ck_assert_str_eq(c->store.password, "pass");
    ck_assert_str_eq(c->store.host, "host");
    ck_assert_uint_eq(c->store.port, 1);
    ck_assert_int_eq(c->store.db, 0);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://[::1]:6379"));
    ck_assert_str_eq(c->store.host, "::1");
    ck_assert_uint_eq(c->store.port, 6379);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://[fe80::1]/15"));
    ck_assert_str_eq(c->store.host, "fe80::1");
    ck_assert_uint_eq(c->store.port, 6379);
    ck_assert_int_eq(c->store.db, 15);
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("unix:/path"));
    ck_assert_ptr_null(c->store.host);
    ck_assert_str_eq(c->store.unix_path, "/path");
    rl_config_free(c);

    c = ACCEPTED(parse_redis_url("redis://10.0.0.5:65535/"));
    ck_assert_str_eq(c->store.host, "10.0.0.5");
    ck_assert_uint_eq(c->store.port, 65535);
    ck_assert_int_eq(c->store.db, 0);
    rl_config_free(c);

    static const char *const bad[] = {"http://x",
                                      "redis://",
                                      "redis://host:0",
                                      "redis://host:99999",
                                      "redis://host/16",
                                      "redis://host/-1",
                                      "redis://host:",
                                      "redis://host:x",
                                      "redis://host/x",
                                      "redis://[::1",
                                      "redis://[::1]x",
                                      "redis://[]:6379",
                                      "unix:",
                                      "unix:relative",
                                      "redis:/host",
                                      "redis://:pw@",
                                      "redis://host:63 79",
                                      "redis://host:+6379",
                                      "redis://host/ 1",
                                      "redis://::1",
                                      "redis://[::1]:",
                                      ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = parse_redis_url(bad[i]);
        ck_assert_msg(!c, "\"%s\" accepted", bad[i]);
        ck_assert_msg(strstr(err, "store.url"), "\"%s\": message \"%s\"", bad[i], err);
    }
}
END_TEST

/* ---- listeners ---- */

START_TEST(test_listener_addresses) {
    rl_config *c = ACCEPTED(parse_listen(
        "'unix:/tmp/a.sock', 'tcp:127.0.0.1:0', 'tcp:[::1]:7379', 'http:127.0.0.1:7380',"
        "{'address':'tcp:127.0.0.1:1','admin':true}, {'address':'unix:/tmp/b','admin':false},"
        "{'address':'unix:/tmp/c','mode':'0600'}, 'tcp:localhost:65535'"));
    const rl_listener_conf *l = c->listeners;
    ck_assert_uint_eq(c->listener_count, 8);
    ck_assert_int_eq(l[0].kind, RL_LISTEN_UNIX);
    ck_assert_str_eq(l[0].path, "/tmp/a.sock");
    ck_assert_str_eq(l[0].address, "unix:/tmp/a.sock");
    ck_assert_int_eq(l[0].admin, 1); /* unix: admin by default */
    ck_assert_int_eq(l[0].mode, 0660);
    ck_assert_int_eq(l[1].kind, RL_LISTEN_TCP);
    ck_assert_str_eq(l[1].host, "127.0.0.1");
    ck_assert_uint_eq(l[1].port, 0);
    ck_assert_int_eq(l[1].admin, 0); /* tcp: not by default */
    ck_assert_int_eq(l[2].kind, RL_LISTEN_TCP);
    ck_assert_str_eq(l[2].host, "::1");
    ck_assert_uint_eq(l[2].port, 7379);
    ck_assert_int_eq(l[3].kind, RL_LISTEN_HTTP);
    ck_assert_str_eq(l[3].host, "127.0.0.1");
    ck_assert_uint_eq(l[3].port, 7380);
    ck_assert_int_eq(l[3].admin, 0);
    ck_assert_int_eq(l[4].kind, RL_LISTEN_TCP);
    ck_assert_int_eq(l[4].admin, 1);
    ck_assert_int_eq(l[5].admin, 0);
    ck_assert_int_eq(l[6].mode, 0600);
    ck_assert_int_eq(l[6].admin, 1);
    ck_assert_str_eq(l[7].host, "localhost");
    ck_assert_uint_eq(l[7].port, 65535);
    rl_config_free(c);

    static const char *const bad[] = {"'unix:'",
                                      "'tcp:'",
                                      "'tcp:host'",
                                      "'tcp:host:'",
                                      "'tcp:host:65536'",
                                      "'tcp:host:-1'",
                                      "'tcp::80'",
                                      "'tcp:[::1]'",
                                      "'tcp:[::1:80'",
                                      "'udp:1.2.3.4:5'",
                                      "'http:127.0.0.1:x'",
                                      "'tcp:host: 80'",
                                      "'tcp:host:+80'",
                                      "'1.2.3.4:5'",
                                      "5",
                                      "null",
                                      "{'admin':true}",
                                      "{'address':5}",
                                      "{'address':'tcp:h:1','admin':'yes'}",
                                      "{'address':'unix:/a','mode':'999'}",
                                      "{'address':'unix:/a','mode':'-1'}",
                                      "{'address':'unix:/a','mode':'rw'}",
                                      "{'address':'unix:/a','mode':432}",
                                      "{'address':'unix:/a','mode':'0660x'}",
                                      "{'address':'http:1.2.3.4:1','admin':true}",
                                      "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = parse_listen(bad[i]);
        ck_assert_msg(!c, "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, "listen[0]"), "%s: message \"%s\"", bad[i], err);
    }
    char many[2048] = "";
    for (int i = 0; i <= RL_MAX_LISTENERS; i++) {
        char one[64];
        snprintf(one, sizeof(one), "%s'tcp:127.0.0.1:%d'", i ? "," : "", 7000 + i);
        strcat(many, one);
    }
    REFUSED(parse_listen(many), "listen", "at most");
}
END_TEST

/* ---- who may use a listener ---- */

START_TEST(test_listener_default_operations) {
    rl_config *c = ACCEPTED(parse_listen("'unix:/tmp/a', {'address':'unix:/tmp/b','admin':false},"
                                         "'tcp:127.0.0.1:1', 'http:127.0.0.1:2',"
                                         "{'address':'tcp:[::1]:3','admin':true}"));
    const rl_listener_conf *l = c->listeners;
    ck_assert_uint_eq(l[0].perms, RL_PERM_ALL);
    ck_assert_uint_eq(l[1].perms, RL_PERM_DEFAULT_BINARY);
    ck_assert_uint_eq(l[2].perms, RL_PERM_DEFAULT_BINARY);
    ck_assert_uint_eq(l[3].perms, RL_PERM_CHECK | RL_PERM_STATS);
    ck_assert_uint_eq(l[4].perms, RL_PERM_ALL);
    /* the non-admin default: no refund, reset, top or reload */
    ck_assert_uint_eq(RL_PERM_DEFAULT_BINARY &
                          (RL_PERM_REFUND | RL_PERM_RESET | RL_PERM_TOP | RL_PERM_RELOAD),
                      0);
    ck_assert_ptr_null(l[0].token);
    ck_assert_ptr_null(l[0].peer_uids);
    rl_config_free(c);
}
END_TEST

START_TEST(test_listener_ops) {
    rl_config *c = ACCEPTED(parse_listen(
        "{'address':'tcp:127.0.0.1:1','ops':['check','refund','ping']},"
        "{'address':'unix:/tmp/a','ops':['peek']},"
        "{'address':'unix:/tmp/b','admin':false,'ops':['reset','reload']},"
        "{'address':'tcp:127.0.0.1:2','ops':['check','peek','multi_check','charge','refund',"
        "  'reset','policies','stats','top','reload','lease','leases']},"
        "{'address':'http:127.0.0.1:3','ops':['stats']}, {'address':'unix:/tmp/c','ops':[]}"));
    const rl_listener_conf *l = c->listeners;
    ck_assert_uint_eq(l[0].perms, RL_PERM_CHECK | RL_PERM_REFUND);
    ck_assert_int_eq(l[0].admin, 0);
    ck_assert_uint_eq(l[1].perms, RL_PERM_PEEK); /* replaces the unix admin default */
    ck_assert_int_eq(l[1].admin, 0);
    ck_assert_uint_eq(l[2].perms, RL_PERM_RESET | RL_PERM_RELOAD);
    ck_assert_uint_eq(l[3].perms, RL_PERM_ALL);
    ck_assert_int_eq(l[3].admin, 1);
    ck_assert_uint_eq(l[4].perms, RL_PERM_STATS);
    ck_assert_uint_eq(l[5].perms, 0); /* PING and AUTH only */
    rl_config_free(c);
    ck_assert_str_eq(rl_perm_name(RL_PERM_REFUND), "refund");
    ck_assert_ptr_null(rl_perm_name(RL_PERM_AUTHENTICATED));

    REFUSED(parse_listen("{'address':'unix:/a','ops':['check','bogus']}"), "listen[0].ops[1]",
            "\"refund\"");
    REFUSED(parse_listen("{'address':'unix:/a','ops':'check'}"), "listen[0].ops");
    REFUSED(parse_listen("{'address':'unix:/a','ops':[5]}"), "listen[0].ops[0]");
    REFUSED(parse_listen("'unix:/a', {'address':'http:127.0.0.1:1','ops':['check','top']}"),
            "listen[1].ops[1]", "HTTP");
    REFUSED(parse_listen("{'address':'unix:/a','admin':true,'ops':['check']}"), "listen[0].ops");
}
END_TEST

START_TEST(test_listener_peers) {
    rl_config *c =
        ACCEPTED(parse_listen("{'address':'unix:/tmp/a','peer_uids':[0,4294967294]},"
                              "{'address':'unix:/tmp/b','peer_gids':[100]}, 'unix:/tmp/c'"));
    const rl_listener_conf *l = c->listeners;
    ck_assert_int_eq(rl_listener_peer_allowed(&l[0], 0, 7), 1);
    ck_assert_int_eq(rl_listener_peer_allowed(&l[0], 4294967294u, 7), 1);
    ck_assert_int_eq(rl_listener_peer_allowed(&l[0], 1000, 0), 0); /* gid 0 not listed */
    ck_assert_int_eq(rl_listener_peer_allowed(&l[1], 1000, 100), 1);
    ck_assert_int_eq(rl_listener_peer_allowed(&l[1], 100, 1000), 0);
    ck_assert_int_eq(rl_listener_peer_allowed(&l[2], 12345, 12345), 1); /* no lists: anyone */
    rl_listener_conf *copy = rl_listener_trust_dup(&l[0]);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(rl_listener_trust_same(copy, &l[0]), 1);
    ck_assert_int_eq(rl_listener_trust_same(copy, &l[1]), 0);
    rl_listener_trust_release(copy);
    rl_config_free(c);

    REFUSED(parse_listen("{'address':'tcp:127.0.0.1:1','peer_uids':[0]}"), "listen[0].peer_uids",
            "unix");
    REFUSED(parse_listen("{'address':'http:127.0.0.1:1','peer_gids':[0]}"), "listen[0].peer_gids");
    REFUSED(parse_listen("{'address':'unix:/a','peer_uids':[]}"), "listen[0].peer_uids");
    REFUSED(parse_listen("{'address':'unix:/a','peer_uids':0}"), "listen[0].peer_uids");
    REFUSED(parse_listen("{'address':'unix:/a','peer_gids':[1,'root']}"), "listen[0].peer_gids[1]");
    REFUSED(parse_listen("{'address':'unix:/a','peer_uids':[-1]}"), "listen[0].peer_uids[0]");
    REFUSED(parse_listen("{'address':'unix:/a','peer_uids':[4294967295]}"),
            "listen[0].peer_uids[0]");
}
END_TEST

static char token_dir[64];

/* Writes content to token_dir/name with mode; returns the path (static buffer). */
static const char *token_file(const char *name, const char *content, int mode) {
    static char path[128];
    if (!token_dir[0]) {
        snprintf(token_dir, sizeof(token_dir), "/tmp/rl-test-token-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(token_dir));
    }
    snprintf(path, sizeof(path), "%s/%s", token_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
    return path;
}

/* Parses a listener with the token file at path. */
static rl_config *parse_token_listener(const char *address, const char *path) {
    char listen[512];
    snprintf(listen, sizeof(listen), "{'address':'%s','token_file':'%s'}", address, path);
    return parse_listen(listen);
}

START_TEST(test_listener_token_file) {
    rl_config *c = ACCEPTED(
        parse_token_listener("tcp:0.0.0.0:1", token_file("good", "0123456789abcdef0123\n", 0600)));
    ck_assert_uint_eq(c->listeners[0].token_len, 20);
    ck_assert_int_eq(memcmp(c->listeners[0].token, "0123456789abcdef0123", 20), 0);
    ck_assert_uint_eq(c->listeners[0].perms, RL_PERM_DEFAULT_BINARY);
    rl_config_free(c);
    c = ACCEPTED(
        parse_token_listener("http:[::]:1", token_file("crlf", "abcdefghijklmnop\r\n", 0400)));
    ck_assert_uint_eq(c->listeners[0].token_len, 16);
    rl_config_free(c);

    REFUSED(parse_token_listener("tcp:0.0.0.0:1", token_file("shared", "0123456789abcdef\n", 0644)),
            "listen[0].token_file", "/shared", "mode 0644");
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", token_file("group", "0123456789abcdef", 0640)),
            "listen[0].token_file", "mode 0640");
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", token_file("short", "0123456789abcde\n", 0600)),
            "listen[0].token_file", "/short", "16..1024");
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", token_file("empty", "\n", 0600)),
            "listen[0].token_file", "empty");
    char big[1100];
    memset(big, 'x', 1025);
    big[1025] = '\0';
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", token_file("long", big, 0600)),
            "listen[0].token_file", "too long");
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", "/nonexistent/rl-token"), "listen[0].token_file",
            "/nonexistent/rl-token", "No such file");
    REFUSED(parse_token_listener("tcp:0.0.0.0:1", "/tmp"), "listen[0].token_file",
            "not a regular file");
    REFUSED(parse_token_listener("unix:/tmp/a", token_file("unix", "0123456789abcdef\n", 0600)),
            "listen[0].token_file", "unix");
    REFUSED(parse_listen("{'address':'tcp:0.0.0.0:1','token_file':5}"), "listen[0].token_file");
    static const char *const names[] = {"good",  "crlf",  "shared", "group",
                                        "short", "empty", "long",   "unix"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", token_dir, names[i]);
        ck_assert_int_eq(unlink(path), 0);
    }
    ck_assert_int_eq(rmdir(token_dir), 0);
}
END_TEST

START_TEST(test_non_loopback_needs_a_token) {
    static const char *const exposed[] = {"'tcp:0.0.0.0:1'",
                                          "'http:0.0.0.0:1'",
                                          "'tcp:[::]:1'",
                                          "'tcp:10.0.0.1:1'",
                                          "'tcp:example.com:1'",
                                          "{'address':'tcp:0.0.0.0:1'}",
                                          "{'address':'tcp:0.0.0.0:1','insecure':false}",
                                          "{'address':'tcp:192.168.1.1:1','admin':true}"};
    for (size_t i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++)
        REFUSED(parse_listen(exposed[i]), "listen[0]", "token_file", "insecure");
    rl_config *c = ACCEPTED(parse_listen(
        "{'address':'tcp:0.0.0.0:1','insecure':true}, {'address':'http:[::]:2','insecure':true},"
        "'tcp:127.0.0.1:3', 'tcp:127.255.0.9:4', 'tcp:[::1]:5', 'tcp:localhost:6',"
        "'http:[::ffff:127.0.0.1]:7'"));
    ck_assert_int_eq(c->listeners[0].insecure, 1);
    ck_assert_int_eq(c->listeners[2].insecure, 0);
    rl_config_free(c);
    REFUSED(parse_listen("{'address':'tcp:0.0.0.0:1','insecure':'yes'}"), "listen[0].insecure");
    REFUSED(parse_listen("{'address':'unix:/a','insecure':true}"), "listen[0].insecure");
}
END_TEST

START_TEST(test_token_compare) {
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "0123456789abcdef", 16), 1);
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "0123456789abcdeX", 16), 0);
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "0123456789abcde", 15), 0);
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "0123456789abcdef0", 17), 0);
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "", 0), 0);
    /* a NUL byte in the given token is compared like any other */
    ck_assert_int_eq(rl_token_equal("0123456789abcdef", 16, "0123456789abcde\0", 16), 0);
}
END_TEST

START_TEST(test_admin_on_http_is_refused) {
    REFUSED(parse_listen("'unix:/a', {'address':'http:127.0.0.1:7380','admin':true}"), "listen[1]",
            "HTTP");
    rl_config *c = ACCEPTED(parse_listen("{'address':'http:127.0.0.1:7380','admin':false}"));
    ck_assert_int_eq(c->listeners[0].admin, 0);
    rl_config_free(c);
}
END_TEST

/* ---- allocation failure ---- */

/* Makes the n-th allocation fail for n = 0, 1, ... until the parse succeeds: every
 * failure is a clean refusal saying so, never a crash or a leak (valgrind, ASan). */
static void parse_under_allocation_failure(const char *single_quoted) {
    long n;
    for (n = 0; n < 100000; n++) {
        rl_alloc_fail_after(n);
        rl_config *c = parse(single_quoted);
        rl_alloc_fail_after(-1);
        if (c) {
            rl_config_free(c);
            break;
        }
        ck_assert_msg(strstr(err, "out of memory"), "allocation %ld failed: \"%s\"", n, err);
    }
    ck_assert_msg(n > 3 && n < 100000, "succeeded after %ld allocations", n);
}

START_TEST(test_allocation_failure_memory_config) {
    parse_under_allocation_failure(
        "{'listen': ['unix:/tmp/a.sock', {'address': 'tcp:127.0.0.1:7000', 'admin': true},"
        "            'tcp:[::1]:7001', 'http:127.0.0.1:7002'],"
        " 'store': {'type': 'memory', 'max_keys': 10},"
        " 'denial_log': {'path': '/tmp/d.log'},"
        " 'policies': {"
        "  'api': {'algorithm': 'token_bucket', 'limit': 100, 'period': '1m', 'burst': 20,"
        "          'overrides': {'a': {'limit': 5}, 'b': {'limit': 6}, 'c': {'burst': 2}},"
        "          'exempt': ['x', 'y', 'z'], 'block': ['q', 'r']},"
        "  'login': {'algorithm': 'sliding_window_log', 'limit': 5, 'period': '15m',"
        "            'overrides': {'partner-42': {'limit': 50}}, 'exempt': ['10.0.0.1']},"
        "  'search': {'algorithm': 'fixed_window',"
        "             'rates': [{'limit': 10, 'period': '1s'}, {'limit': 5000, 'period': '1d'}],"
        "             'overrides': {'k': {'rates': [{'limit': 1, 'period': '1s'}]}}}}}");
}
END_TEST

START_TEST(test_allocation_failure_redis_config) {
    parse_under_allocation_failure(
        "{'listen': ['unix:/tmp/a.sock'],"
        " 'store': {'type': 'redis', 'url': 'redis://u:p@[::1]:6380/3', 'username': 'v',"
        "           'password': 'q', 'key_prefix': 'x:'},"
        " 'policies': {'p': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}");
    parse_under_allocation_failure(
        "{'listen': ['unix:/tmp/a.sock'], 'store': {'type': 'redis', 'url': 'unix:/r.sock'},"
        " 'policies': {'p': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}");
}
END_TEST

/* ---- redis cluster and sentinel ---- */

#define SENTINEL_NODES "'nodes':['127.0.0.1:26379']"

/* url, cluster and sentinel: exactly one; two are refused naming both, none names all. */
START_TEST(test_redis_shapes_are_exclusive) {
    REFUSED(parse_store("'type':'redis','url':'redis://h','cluster':['redis://h']"),
            "store: ", "\"url\" and \"cluster\" are mutually exclusive");
    REFUSED(parse_store("'type':'redis','url':'redis://h',"
                        "'sentinel':{'master':'m'," SENTINEL_NODES "}"),
            "store: ", "\"url\" and \"sentinel\" are mutually exclusive");
    REFUSED(parse_store("'type':'redis','cluster':['redis://h'],"
                        "'sentinel':{'master':'m'," SENTINEL_NODES "}"),
            "store: ", "\"cluster\" and \"sentinel\" are mutually exclusive");
    REFUSED(parse_store("'type':'redis','url':'redis://h','cluster':['redis://h'],"
                        "'sentinel':{'master':'m'," SENTINEL_NODES "}"),
            "\"url\" and \"cluster\" are mutually exclusive");
    REFUSED(parse_store("'type':'redis','key_prefix':'k:'"),
            "store.url: is required for the redis store (or \"cluster\", or \"sentinel\")");
    REFUSED(parse_store("'type':'memory','cluster':['redis://h']"), "store", "\"cluster\"");
    REFUSED(parse_store("'type':'memory','sentinel':{}"), "store", "\"sentinel\"");
    rl_config *c = ACCEPTED(parse_redis_url("redis://u:p@h:7/1"));
    ck_assert_int_eq(c->store.mode, RL_REDIS_SINGLE);
    ck_assert_ptr_null(c->store.seeds);
    ck_assert_uint_eq(c->store.seed_count, 0);
    ck_assert_ptr_null(c->store.sentinels);
    ck_assert_ptr_null(c->store.sentinel_master);
    rl_config_free(c);
}
END_TEST

START_TEST(test_redis_cluster) {
    rl_config *c = ACCEPTED(parse_store(
        "'type':'redis','key_prefix':'app:','pool':3,"
        "'cluster':['redis://127.0.0.1:7000','redis://:pw@127.0.0.1:7001','redis://[::1]/0',"
        "'redis://node-4.example:7003/']"));
    const rl_store_conf *s = &c->store;
    ck_assert_int_eq(s->type, RL_STORE_REDIS);
    ck_assert_int_eq(s->mode, RL_REDIS_CLUSTER);
    ck_assert_uint_eq(s->seed_count, 4);
    ck_assert_str_eq(s->seeds[0].host, "127.0.0.1");
    ck_assert_uint_eq(s->seeds[0].port, 7000);
    ck_assert_str_eq(s->seeds[1].host, "127.0.0.1");
    ck_assert_uint_eq(s->seeds[1].port, 7001);
    ck_assert_str_eq(s->seeds[2].host, "::1");
    ck_assert_uint_eq(s->seeds[2].port, 6379);
    ck_assert_str_eq(s->seeds[3].host, "node-4.example");
    ck_assert_uint_eq(s->seeds[3].port, 7003);
    /* The first seed's address, a copy, for code that wants one address. */
    ck_assert_str_eq(s->host, "127.0.0.1");
    ck_assert_ptr_ne(s->host, s->seeds[0].host);
    ck_assert_uint_eq(s->port, 7000);
    ck_assert_ptr_null(s->url);
    ck_assert_ptr_null(s->unix_path);
    ck_assert_int_eq(s->db, 0);
    ck_assert_ptr_null(s->username);
    ck_assert_str_eq(s->password, "pw"); /* one seed gave it: every node gets it */
    ck_assert_str_eq(s->key_prefix, "app:");
    ck_assert_int_eq(s->pool, 3);
    ck_assert_ptr_null(s->sentinels);
    ck_assert_ptr_null(s->sentinel_master);
    rl_config_free(c);

    /* Seeds that agree; store.username/password override them, as they do a url's. */
    c = ACCEPTED(parse_store("'type':'redis','cluster':['redis://u:p@a:1','redis://u:p@b:2']"));
    ck_assert_str_eq(c->store.username, "u");
    ck_assert_str_eq(c->store.password, "p");
    rl_config_free(c);
    c = ACCEPTED(parse_store("'type':'redis','username':'v','password':'q',"
                             "'cluster':['redis://u:p@a:1','redis://b:2']"));
    ck_assert_str_eq(c->store.username, "v");
    ck_assert_str_eq(c->store.password, "q");
    rl_config_free(c);
    c = ACCEPTED(parse_store("'type':'redis','password':'q','cluster':['redis://a']"));
    ck_assert_ptr_null(c->store.username);
    ck_assert_str_eq(c->store.password, "q");
    ck_assert_uint_eq(c->store.seed_count, 1);
    rl_config_free(c);
}
END_TEST

/* Builds 'type':'redis','cluster':[n seeds] in buf. */
static const char *cluster_of(char *buf, size_t len, int n) {
    int used = snprintf(buf, len, "'type':'redis','cluster':[");
    for (int i = 0; i < n; i++)
        used += snprintf(buf + used, len - (size_t)used, "%s'redis://h:%d'", i ? "," : "", i + 1);
    snprintf(buf + used, len - (size_t)used, "]");
    return buf;
}

// A config error about a Redis URL never shows its password (errors are logged).
START_TEST(test_redis_url_errors_hide_credentials) {
    REFUSED(parse_store("'type':'redis','url':'redis://u:hunter2@h:0'"), "store.url", "***@h:0");
    ck_assert_ptr_null(strstr(err, "hunter2"));
    REFUSED(parse_store("'type':'redis','cluster':['redis://a','redis://:s3cr@t@[::1x']"),
            "store.cluster[1]", "***@");
    ck_assert_ptr_null(strstr(err, "s3cr"));
    REFUSED(parse_store("'type':'redis','cluster':['redis://:pw9@a','unix:/x']"),
            "store.cluster[1]", "over TCP");
    REFUSED(parse_store("'type':'redis','url':'redis://:pw7@h:99999/3'"), "store.url", "***@");
    ck_assert_ptr_null(strstr(err, "pw7"));
}
END_TEST

START_TEST(test_redis_cluster_refusals) {
    char buf[4096];
    rl_config *c = ACCEPTED(parse_store(cluster_of(buf, sizeof(buf), 64)));
    ck_assert_uint_eq(c->store.seed_count, 64);
    ck_assert_uint_eq(c->store.seeds[63].port, 64);
    rl_config_free(c);
    REFUSED(parse_store(cluster_of(buf, sizeof(buf), 65)), "store.cluster", "1..64");
    REFUSED(parse_store("'type':'redis','cluster':[]"), "store.cluster", "1..64");
    REFUSED(parse_store("'type':'redis','cluster':'redis://h'"), "store.cluster", "array");
    REFUSED(parse_store("'type':'redis','cluster':['redis://a',7]"), "store.cluster[1]",
            "must be a string");
    REFUSED(parse_store("'type':'redis','cluster':['redis://a','redis://b','unix:/r.sock']"),
            "store.cluster[2]", "over TCP");
    REFUSED(parse_store("'type':'redis','cluster':['redis://a','redis://b:7/2']"),
            "store.cluster[1]", "Redis Cluster has only database 0");
    REFUSED(parse_store("'type':'redis','cluster':['redis://a:0']"), "store.cluster[0]",
            "1..65535");
    REFUSED(parse_store("'type':'redis','cluster':['http://a']"), "store.cluster[0]",
            "must be redis://");
    REFUSED(parse_store("'type':'redis','cluster':['redis://a','redis://::1']"),
            "store.cluster[1]");
    REFUSED(parse_store("'type':'redis','cluster':['redis://:x@a','redis://:y@b']"),
            "store.cluster[1]", "its password differs from an earlier seed's");
    REFUSED(parse_store("'type':'redis','cluster':['redis://u:x@a','redis://w:x@b']"),
            "store.cluster[1]", "its user differs");
    /* The message never shows a password. */
    ck_assert_ptr_null(strstr(err, ":x@"));
    REFUSED(parse_store("'type':'redis','cluster':['redis://:s3cret@a','redis://:other@b']"),
            "store.cluster[1]");
    ck_assert_ptr_null(strstr(err, "s3cret"));
    ck_assert_ptr_null(strstr(err, "other"));
}
END_TEST

START_TEST(test_redis_sentinel) {
    rl_config *c = ACCEPTED(
        parse_store("'type':'redis','username':'mu','password':'mp','command_timeout_ms':100,"
                    "'sentinel':{'master':'mymaster','nodes':['127.0.0.1:26379','[::1]:26380','s3',"
                    "'[fe80::2]'],'username':'u','password':'p'}"));
    const rl_store_conf *s = &c->store;
    ck_assert_int_eq(s->mode, RL_REDIS_SENTINEL);
    ck_assert_str_eq(s->sentinel_master, "mymaster");
    ck_assert_uint_eq(s->sentinel_count, 4);
    ck_assert_str_eq(s->sentinels[0].host, "127.0.0.1");
    ck_assert_uint_eq(s->sentinels[0].port, 26379);
    ck_assert_str_eq(s->sentinels[1].host, "::1");
    ck_assert_uint_eq(s->sentinels[1].port, 26380);
    ck_assert_str_eq(s->sentinels[2].host, "s3");
    ck_assert_uint_eq(s->sentinels[2].port, 26379); /* Sentinel's default port */
    ck_assert_str_eq(s->sentinels[3].host, "fe80::2");
    ck_assert_uint_eq(s->sentinels[3].port, 26379);
    ck_assert_str_eq(s->sentinel_username, "u");
    ck_assert_str_eq(s->sentinel_password, "p");
    ck_assert_str_eq(s->username, "mu"); /* the master's */
    ck_assert_str_eq(s->password, "mp");
    ck_assert_ptr_null(s->host); /* until the store resolves the master */
    ck_assert_uint_eq(s->port, 0);
    ck_assert_ptr_null(s->url);
    ck_assert_ptr_null(s->unix_path);
    ck_assert_ptr_null(s->seeds);
    ck_assert_int_eq(s->command_timeout_ms, 100);
    rl_config_free(c);

    c = ACCEPTED(parse_store("'type':'redis','sentinel':{'master':'m'," SENTINEL_NODES "}"));
    ck_assert_ptr_null(c->store.sentinel_username);
    ck_assert_ptr_null(c->store.sentinel_password);
    ck_assert_ptr_null(c->store.username);
    ck_assert_ptr_null(c->store.password);
    ck_assert_uint_eq(c->store.sentinel_count, 1);
    rl_config_free(c);
}
END_TEST

/* Builds a sentinel store with nodes Sentinels and a master name of name_len bytes. */
static const char *sentinel_of(char *buf, size_t len, int nodes, int name_len) {
    char name[300];
    memset(name, 'm', (size_t)name_len);
    name[name_len] = '\0';
    int used = snprintf(buf, len, "'type':'redis','sentinel':{'master':'%s','nodes':[", name);
    for (int i = 0; i < nodes; i++)
        used += snprintf(buf + used, len - (size_t)used, "%s'h:%d'", i ? "," : "", i + 1);
    snprintf(buf + used, len - (size_t)used, "]}");
    return buf;
}

START_TEST(test_redis_sentinel_refusals) {
    char buf[4096];
    rl_config *c = ACCEPTED(parse_store(sentinel_of(buf, sizeof(buf), 16, 255)));
    ck_assert_uint_eq(c->store.sentinel_count, 16);
    ck_assert_uint_eq(strlen(c->store.sentinel_master), 255);
    rl_config_free(c);
    REFUSED(parse_store(sentinel_of(buf, sizeof(buf), 17, 1)), "store.sentinel.nodes", "1..16");
    REFUSED(parse_store(sentinel_of(buf, sizeof(buf), 0, 1)), "store.sentinel.nodes", "1..16");
    REFUSED(parse_store(sentinel_of(buf, sizeof(buf), 1, 256)), "store.sentinel.master",
            "1..255 bytes");
    REFUSED(parse_store(sentinel_of(buf, sizeof(buf), 1, 0)), "store.sentinel.master",
            "1..255 bytes");
    REFUSED(parse_store("'type':'redis','sentinel':{" SENTINEL_NODES "}"), "store.sentinel.master",
            "is required");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':5," SENTINEL_NODES "}"),
            "store.sentinel.master", "must be a string");
    static const char *const bad_names[] = {"my master", "m\\tx", "m\\n", "m\\u007f", " m"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        snprintf(buf, sizeof(buf), "'type':'redis','sentinel':{'master':'%s'," SENTINEL_NODES "}",
                 bad_names[i]);
        REFUSED(parse_store(buf), "store.sentinel.master", "a space or a control byte");
    }
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m'}"), "store.sentinel.nodes");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':'h:1'}"),
            "store.sentinel.nodes");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['h:1',2]}"),
            "store.sentinel.nodes[1]", "must be a string");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['h:1','::1']}"),
            "store.sentinel.nodes[1]", "\"::1\"");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['h:0']}"),
            "store.sentinel.nodes[0]", "1..65535");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['redis://h:1']}"),
            "store.sentinel.nodes[0]");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['h:1 ']}"),
            "store.sentinel.nodes[0]");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m'," SENTINEL_NODES ",'db':1}"),
            "store.sentinel", "unknown field \"db\"");
    REFUSED(parse_store("'type':'redis','sentinel':['m']"), "store.sentinel", "must be an object");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m'," SENTINEL_NODES ",'username':1}"),
            "store.sentinel.username", "must be a string");
    REFUSED(
        parse_store("'type':'redis','sentinel':{'master':'m'," SENTINEL_NODES ",'password':null}"),
        "store.sentinel.password", "must be a string");
}
END_TEST

/* Every allocation of the two new shapes can fail cleanly (and the successes free all:
   ASan, valgrind). */
START_TEST(test_allocation_failure_cluster_and_sentinel) {
    parse_under_allocation_failure(
        "{'listen': ['unix:/tmp/a.sock'],"
        " 'store': {'type': 'redis', 'cluster': ['redis://u:p@127.0.0.1:7000',"
        "           'redis://u:p@[::1]:7001', 'redis://h:7002'], 'username': 'v'},"
        " 'policies': {'p': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}");
    parse_under_allocation_failure(
        "{'listen': ['unix:/tmp/a.sock'],"
        " 'store': {'type': 'redis', 'password': 'q', 'sentinel': {'master': 'mymaster',"
        "           'nodes': ['127.0.0.1:26379', '[::1]:26380', 's'], 'username': 'u',"
        "           'password': 'p'}},"
        " 'policies': {'p': {'algorithm': 'gcra', 'limit': 1, 'period': '1s'}}}");
}
END_TEST

/* Refusals after the seeds or the Sentinels were built free them (ASan, valgrind). */
START_TEST(test_redis_shapes_refused_late_free_everything) {
    REFUSED(parse_store("'type':'redis','cluster':['redis://:p@a:1','redis://b:2'],"
                        "'key_prefix':'{x}'"),
            "store.key_prefix");
    REFUSED(parse_store("'type':'redis','cluster':['redis://:p@a:1','redis://b:2','redis://c/3']"),
            "store.cluster[2]");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['a','b'],"
                        "'username':'u','password':7}"),
            "store.sentinel.password");
    REFUSED(parse_store("'type':'redis','sentinel':{'master':'m','nodes':['a','b','c:x']}"),
            "store.sentinel.nodes[2]");
    REFUSED(parse("{" LISTEN ",'store':{'type':'redis','sentinel':{'master':'m','nodes':['a'],"
                  "'username':'u','password':'p'}},'policies':{'p':{'algorithm':'x'}}}"),
            "policies.p.algorithm");
}
END_TEST

/* Errors after partial work free what was built (valgrind, ASan). */
START_TEST(test_errors_late_in_the_file_free_everything) {
    REFUSED(parse("{'listen': ['unix:/a', 'tcp:127.0.0.1:5'],"
                  " 'store': {'type': 'redis', 'url': 'redis://u:p@h:1/2', 'key_prefix': 'k'},"
                  " 'denial_log': {'path': '/x'},"
                  " 'policies': {'a': {'algorithm': 'gcra', 'limit': 1, 'period': '1s',"
                  "   'overrides': {'o': {'limit': 3}}, 'exempt': ['e'], 'block': ['b']},"
                  "  'b': {'algorithm': 'gcra', 'limit': 1, 'period': '1s',"
                  "   'overrides': {'o': {'limit': 3}, 'p': {'limit': 0}}}}}"),
            "policies.b.overrides.p.limit");
    REFUSED(parse("{'listen': ['unix:/a', 'tcp:127.0.0.1:5', 'tcp:x'],'policies':{" P_OK "}}"),
            "listen[2]");
    REFUSED(parse("{'listen': [{'address':'unix:/a','peer_uids':[1],'peer_gids':[2]},"
                  " {'address':'unix:/b','peer_uids':[1,'x']}],'policies':{" P_OK "}}"),
            "listen[1].peer_uids[1]");
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_example_file_loads);
    tcase_add_test(tc, test_design_example_loads);
    tcase_add_test(tc, test_every_documented_field);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_json_syntax_errors_name_the_source);
    tcase_add_test(tc, test_duration_parse);
    tcase_add_test(tc, test_durations_in_config);
    tcase_add_test(tc, test_errors_name_the_path);
    tcase_add_test(tc, test_redis_string_fields_of_the_wrong_type);
    tcase_add_test(tc, test_unknown_fields_at_every_level);
    tcase_add_test(tc, test_burst_only_on_buckets);
    tcase_add_test(tc, test_rates_or_limit_not_both);
    tcase_add_test(tc, test_rate_count_bounds);
    tcase_add_test(tc, test_default_bursts);
    tcase_add_test(tc, test_overrides_inherit);
    tcase_add_test(tc, test_overrides_of_multi_rate_policies);
    tcase_add_test(tc, test_policy_limits_lookup);
    tcase_add_test(tc, test_config_policy_lookup);
    tcase_add_test(tc, test_policy_names);
    tcase_add_test(tc, test_keysets);
    tcase_add_test(tc, test_large_keyset);
    tcase_add_test(tc, test_fingerprints);
    tcase_add_test(tc, test_fingerprint_is_keyed);
    tcase_add_test(tc, test_windows_fit_u32_ms);
    tcase_add_test(tc, test_sliding_log_limit_has_a_maximum);
    tcase_add_test(tc, test_key_prefix_without_hash_tags);
    tcase_add_test(tc, test_redis_urls);
    tcase_add_test(tc, test_listener_addresses);
    tcase_add_test(tc, test_admin_on_http_is_refused);
    tcase_add_test(tc, test_listener_default_operations);
    tcase_add_test(tc, test_listener_ops);
    tcase_add_test(tc, test_listener_peers);
    tcase_add_test(tc, test_listener_token_file);
    tcase_add_test(tc, test_non_loopback_needs_a_token);
    tcase_add_test(tc, test_token_compare);
    tcase_add_test(tc, test_allocation_failure_memory_config);
    tcase_add_test(tc, test_allocation_failure_redis_config);
    tcase_add_test(tc, test_errors_late_in_the_file_free_everything);
    tcase_add_test(tc, test_redis_shapes_are_exclusive);
    tcase_add_test(tc, test_redis_cluster);
    tcase_add_test(tc, test_redis_cluster_refusals);
    tcase_add_test(tc, test_redis_url_errors_hide_credentials);
    tcase_add_test(tc, test_redis_sentinel);
    tcase_add_test(tc, test_redis_sentinel_refusals);
    tcase_add_test(tc, test_allocation_failure_cluster_and_sentinel);
    tcase_add_test(tc, test_redis_shapes_refused_late_free_everything);
    tcase_add_test(tc, test_concurrency_policies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(config_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
