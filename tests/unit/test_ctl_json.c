/*
 * test_ctl_json.c: rlimitctl's rendering of the daemon's admin answers, read with
 * jansson: byte for byte the tables rlimitctl printed with its own JSON reader before
 * (the expected texts were printed by that version on the same answers: numbers,
 * booleans, null, escapes, a NUL in a name, nested store groups, latency, multi-rate
 * policies, TOP keys from key_hex or key, cut keys), and broken or hostile answers
 * (every prefix of a document, random bytes, deep nesting): refused, never a crash.
 */
#include "rlimit.c" /* the client, as test_client.c includes it (before check.h) */
#define main rlimitctl_main
int rlimitctl_main(int argc, char **argv);
#include "rlimitctl.c"
#undef main

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    int opcode;       /* RL_OP_* */
    const char *json; /* the daemon's answer */
} cases[] = {
    {RL_OP_STATS,
     "{\"uptime_s\":93784,\"connections\":3,\"in_flight\":0,\"refused\":1,\"reloads\":2,"
     "\"reload_failures\":1,\"store\":{\"type\":\"redis\",\"keys\":12,\"ratio\":0.5,\"up\":true,"
     "\"down\":false,\"none\":null,\"name\":\"a b\\u0001\",\"latency_us\":{\"p50\":120,"
     "\"p99\":2500,\"max\":9000,\"count\":77},\"errors\":{\"timeout\":2,\"io\":0},"
     "\"cache\":{\"hits\":5,\"inserts\":6,\"rate\":0.125}},\"local_store\":{\"type\":\"memory\","
     "\"keys\":0,\"max_keys\":1000},\"denial_log\":{\"lines\":10,\"suppressed\":2,\"errors\":0},"
     "\"policies\":[{\"name\":\"api\",\"allowed\":10,\"denied\":2,\"shadow_denied\":0,"
     "\"exempt\":1,\"blocked\":0,\"errors\":0,\"store_errors\":0,\"fallbacks\":0},"
     "{\"name\":\"l\\u00e9\\u202egin\\u0000x\",\"allowed\":1}]}"},
    {RL_OP_STATS, "{\"uptime_s\":5}"},
    {RL_OP_STATS, "[1,2]"},
    {RL_OP_POLICIES,
     "{\"policies\":[{\"name\":\"api\",\"algorithm\":\"token_bucket\",\"limit\":100,"
     "\"period_ms\":60000,\"burst\":20,\"mode\":\"enforce\",\"on_store_error\":\"local\","
     "\"overrides\":1,\"exempt\":0,\"block\":2},{\"name\":\"search\",\"algorithm\":"
     "\"fixed_window\",\"mode\":\"shadow\",\"on_store_error\":\"allow\",\"overrides\":0,"
     "\"exempt\":0,\"block\":0,\"rates\":[{\"algorithm\":\"fixed_window\",\"limit\":10,"
     "\"period_ms\":1000},{\"algorithm\":\"fixed_window\",\"limit\":5000,"
     "\"period_ms\":86400000}]},{\"name\":\"odd\",\"algorithm\":\"gcra\",\"limit\":1,"
     "\"period_ms\":1500,\"burst\":true}]}"},
    {RL_OP_TOP,
     "{\"window_s\":60,\"policies\":[{\"name\":\"login\",\"keys\":[{\"key\":\"ip:1.2.3.4\","
     "\"key_hex\":\"69703a312e322e332e34\",\"denied\":12,\"error\":0},{\"key\":\"a\\\\x0ab\","
     "\"key_hex\":\"610a62\",\"denied\":3,\"error\":1,\"truncated\":true,\"key_len\":300},"
     "{\"key\":\"fallback\\u0000k\",\"denied\":1,\"error\":0},{\"key_hex\":\"zz\","
     "\"denied\":1}]}]}"},
    {RL_OP_TOP, "{\"window_s\":30,\"policies\":[]}"},
    {RL_OP_RELOAD, "{\"policies\":4}"},
};

/* What rlimitctl printed for each of cases (its exit status was 0 for all). */
static const char *const expected[] = {
    /* case 0 */
    "uptime 1d02h03m04s, connections 3, in flight 0, refused 1, reloads 2 (1 refused)\n"
    "store redis: keys 12, ratio 0.50, up yes, down no, none 0, name a\\x20b\\x01\n"
    "  latency: p50 0.120 ms, p99 2.500 ms, max 9.000 ms (77 answers)\n"
    "  errors: timeout 2, io 0\n"
    "  cache: hits 5, inserts 6, rate 0.12\n"
    "local store memory: keys 0, max_keys 1000\n"
    "denial log: 10 lines, 2 suppressed, 0 write errors\n"
    "\n"
    "POLICY                  ALLOWED  DENIED  SHADOW_DENIED  EXEMPT  BLOCKED  ERRORS  STORE_ERRORS "
    " FALLBACKS\n"
    "api                          10       2              0       1        0       0             0 "
    "         0\n"
    "l\xc3"
    "\xa9"
    "\\xe2\\x80\\xaegin\\x00x        1       -              -       -        -       -             "
    "-          -\n"
    "",
    /* case 1 */
    "uptime 5s, connections -, in flight 0, refused 0, reloads 0 (0 refused)\n"
    "\n"
    "POLICY  ALLOWED  DENIED  SHADOW_DENIED  EXEMPT  BLOCKED  ERRORS  STORE_ERRORS  FALLBACKS\n"
    "",
    /* case 2 */
    "uptime 0s, connections -, in flight 0, refused 0, reloads 0 (0 refused)\n"
    "\n"
    "POLICY  ALLOWED  DENIED  SHADOW_DENIED  EXEMPT  BLOCKED  ERRORS  STORE_ERRORS  FALLBACKS\n"
    "",
    /* case 3 */
    "POLICY  ALGORITHM     LIMIT  PERIOD  BURST  MODE     ON_ERROR  OVERRIDES  EXEMPT  BLOCK\n"
    "api     token_bucket    100  1m         20  enforce  local             1       0      2\n"
    "search  fixed_window     10  1s          -  shadow   allow             0       0      0\n"
    "        fixed_window   5000  1d          -\n"
    "odd     gcra              1  1500ms      1  ?        ?                 -       -      -\n"
    "",
    /* case 4 */
    "POLICY  KEY                    DENIED  ERROR\n"
    "login   ip:1.2.3.4                 12      0\n"
    "login   a\\x0ab... (300 bytes)       3      1\n"
    "login   fallback\\x00k               1      0\n"
    "login   ?                           1      -\n"
    "",
    /* case 5 */
    "no denied keys in the last 30 to 60 seconds\n"
    "",
    /* case 6 */
    "reloaded: 4 policies\n"
    "",
};

// Renders text as rlimitctl prints the answer to opcode; returns print_admin's exit
// status, the bytes printed in out (malloc'd, NUL-terminated).
static int render(int opcode, const char *text, char **out) {
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 1);
    int rc = print_admin(opcode, text);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long len = ftell(tmp);
    *out = calloc(1, (size_t)len + 1);
    rewind(tmp);
    if (fread(*out, 1, (size_t)len, tmp) != (size_t)len)
        len = 0;
    fclose(tmp);
    return rc;
}

START_TEST(test_tables_unchanged) {
    ck_assert_uint_eq(sizeof(cases) / sizeof(cases[0]), sizeof(expected) / sizeof(expected[0]));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        ck_assert_int_eq(render(cases[i].opcode, cases[i].json, &out), EXIT_ALLOWED);
        ck_assert_msg(strcmp(out, expected[i]) == 0, "case %zu printed:\n%s\nexpected:\n%s", i, out,
                      expected[i]);
        free(out);
    }
}
END_TEST

// A store on a Redis Cluster: its mode, the cluster's counters (redirects, refreshes)
// on their line, and a table of its nodes (a hostile node name escaped, a node without
// figures shown as dashes); a store on Sentinels: the master and the failovers seen.
START_TEST(test_cluster_and_sentinel_stores) {
    static const char *const answers[][2] = {
        {"{\"uptime_s\":5,\"store\":{\"type\":\"redis\",\"state\":\"degraded\","
         "\"mode\":\"cluster\",\"calls\":9,\"cluster\":{\"masters\":2,\"moved\":3,"
         "\"ask\":1,\"tryagain\":0,\"refreshes\":4},\"nodes\":[{\"node\":\"127.0.0.1:7000\","
         "\"role\":\"master\",\"slots\":8192,\"state\":\"up\",\"calls\":6,"
         "\"items_per_call\":12.5,\"errors\":0,\"latency_us\":{\"mean\":250,\"max\":1500}},"
         "{\"node\":\"10.0.0.12:7001\",\"role\":\"replica\",\"slots\":0,\"state\":\"down\","
         "\"calls\":3,\"items_per_call\":1.0,\"errors\":2,\"latency_us\":{\"mean\":90,"
         "\"max\":120}},{\"node\":\"a b\\u001b[0m:1\"},7]},\"policies\":[]}",
         "uptime 5s, connections -, in flight 0, refused 0, reloads 0 (0 refused)\n"
         "store redis: state degraded, mode cluster, calls 9\n"
         "  cluster: masters 2, moved 3, ask 1, tryagain 0, refreshes 4\n"
         "  NODE             ROLE     SLOTS  STATE  CALLS  ITEMS/CALL  MEAN_MS  MAX_MS  ERRORS\n"
         "  127.0.0.1:7000   master    8192  up         6       12.50    0.250   1.500       0\n"
         "  10.0.0.12:7001   replica      0  down       3        1.00    0.090   0.120       2\n"
         "  a\\x20b\\x1b[0m:1  -            -  -          -           -        -       -       -\n"
         "  ?                -            -  -          -           -        -       -       -\n"
         "\n"
         "POLICY  ALLOWED  DENIED  SHADOW_DENIED  EXEMPT  BLOCKED  ERRORS  STORE_ERRORS  "
         "FALLBACKS\n"},
        {"{\"uptime_s\":5,\"store\":{\"type\":\"redis\",\"state\":\"up\",\"mode\":"
         "\"sentinel\",\"sentinel\":{\"master\":\"127.0.0.1:6380\",\"master_name\":"
         "\"mymaster\",\"switches\":1,\"resolutions\":2,\"errors\":0,\"sentinels\":3,"
         "\"sentinels_reachable\":2}},\"policies\":[]}",
         "uptime 5s, connections -, in flight 0, refused 0, reloads 0 (0 refused)\n"
         "store redis: state up, mode sentinel\n"
         "  sentinel: master 127.0.0.1:6380, master_name mymaster, switches 1, resolutions 2, "
         "errors 0, sentinels 3, sentinels_reachable 2\n"
         "\n"
         "POLICY  ALLOWED  DENIED  SHADOW_DENIED  EXEMPT  BLOCKED  ERRORS  STORE_ERRORS  "
         "FALLBACKS\n"},
    };
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        char *out;
        ck_assert_int_eq(render(RL_OP_STATS, answers[i][0], &out), EXIT_ALLOWED);
        ck_assert_msg(strcmp(out, answers[i][1]) == 0, "answer %zu printed:\n%s\nexpected:\n%s", i,
                      out, answers[i][1]);
        free(out);
    }
}
END_TEST

// Renders text for every admin opcode with stderr silenced; returns how many of them
// called it an error (not JSON).
static int render_all(const char *text) {
    static const int opcodes[] = {RL_OP_POLICIES, RL_OP_STATS, RL_OP_TOP, RL_OP_RELOAD};
    int errors = 0, saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    for (size_t i = 0; i < sizeof(opcodes) / sizeof(opcodes[0]); i++) {
        char *out;
        errors += render(opcodes[i], text, &out) == EXIT_ERROR;
        free(out);
    }
    dup2(saved, 2);
    close(saved);
    close(null);
    return errors;
}

START_TEST(test_refusals) {
    static const char *const bad[] = {
        "",          "{",         "[1,]",        "{\"a\" 1}",    "{\"a\":}", "\"abc",
        "\"\\x41\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"", "tru",      "nul",
        "[1 2]",     "{} x",      "-",           "\"a\nb\"",     "{1:2}",    "[\"\\"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(render_all(bad[i]) == 4, "accepted %s", bad[i]);
    char deep[8192] = {0}; /* deeper than jansson's limit: refused, not a stack overflow */
    memset(deep, '[', 4000);
    memset(deep + 4000, ']', 4000);
    ck_assert_int_eq(render_all(deep), 4);
}
END_TEST

START_TEST(test_prefixes_and_noise) {
    const char *doc = cases[0].json;
    size_t n = strlen(doc);
    for (size_t len = 0; len < n; len++) {
        char *prefix = malloc(len + 1); /* exact size: ASan sees any overread */
        memcpy(prefix, doc, len);
        prefix[len] = '\0';
        ck_assert_msg(render_all(prefix) == 4, "accepted a prefix of %zu bytes", len);
        free(prefix);
    }
    unsigned seed = 1;
    for (int round = 0; round < 500; round++) {
        char buf[64];
        size_t len = (size_t)(round % 63);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            buf[i] = "{}[]\",:\\u0123456789abcdeftrnl -."[(seed >> 16) % 33];
        }
        buf[len] = '\0';
        char *copy = strdup(buf);
        render_all(copy);
        free(copy);
    }
}
END_TEST

static Suite *json_suite(void) {
    Suite *s = suite_create("ctl_json");
    TCase *tc = tcase_create("ctl_json");
    tcase_add_test(tc, test_tables_unchanged);
    tcase_add_test(tc, test_cluster_and_sentinel_stores);
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
