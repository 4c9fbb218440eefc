/*
 * replay_report.c: the replay's report as text (per policy a block; with --compare the
 * two configs side by side and the keys whose outcome changes) and as the JSON object
 * of README "Replay" (which --html renders).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "escape.h"
#include "replay_internal.h"

#define SHOWN_MAX 600 /* bytes of an escaped key shown in the text report */

json_t *replay_json_string(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    char *copy = rl_malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
    j = json_stringn(copy, len);
    rl_free(copy);
    return j;
}

/* ---- JSON ---- */

// The "policies" of run r: every policy that decided a request, by name.
static json_t *policies_json(replay *rp, size_t r) {
    replay_run *run = &rp->runs[r];
    json_t *list = json_array();
    for (size_t i = 0; list && i < run->config->policy_count; i++) {
        const rl_policy *p = &run->config->policies[i];
        if (run->stats[i])
            json_array_append_new(
                list, rl_replay_stats_json(run->stats[i], p->name,
                                           rl_algorithm_name(p->limits.rates[0].algorithm)));
    }
    return list;
}

static uint64_t gap(const replay_change *c) {
    return c->denied[0] > c->denied[1] ? c->denied[0] - c->denied[1] : c->denied[1] - c->denied[0];
}

static int by_gap(const void *a, const void *b) {
    const replay_change *x = a, *y = b;
    if (gap(x) != gap(y))
        return gap(x) < gap(y) ? 1 : -1;
    if (x->policy != y->policy)
        return x->policy - y->policy;
    size_t n = x->kept < y->kept ? x->kept : y->kept;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->kept > y->kept) - (x->kept < y->kept);
}

// Sorts the followed changes (most changed first) and returns how many to list.
static size_t changes_sorted(replay *rp) {
    size_t n = 0;
    for (size_t i = 0; i < rp->change_count; i++)
        if (gap(&rp->changes[i]) > 0)
            rp->changes[n++] = rp->changes[i];
    rp->change_count = n;
    qsort(rp->changes, n, sizeof(replay_change), by_gap);
    return n < REPLAY_CHANGES_LISTED ? n : REPLAY_CHANGES_LISTED;
}

static json_t *changes_json(replay *rp) {
    json_t *list = json_array();
    size_t n = changes_sorted(rp);
    for (size_t i = 0; list && i < n; i++) {
        const replay_change *c = &rp->changes[i];
        json_t *o = json_pack("{s:s}", "policy", rp->runs[0].config->policies[c->policy].name);
        if (!o || rl_replay_key_json(o, c->key, c->kept) != 0 ||
            json_object_set_new(
                o, "denied",
                json_pack("[I,I]", (json_int_t)c->denied[0], (json_int_t)c->denied[1])) != 0 ||
            json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *examples_json(const replay *rp) {
    json_t *list = json_array();
    for (size_t i = 0; list && i < rp->malformed && i < REPLAY_EXAMPLES; i++)
        json_array_append_new(
            list,
            json_pack("{s:o,s:I,s:s}", "file",
                      replay_json_string(rp->examples[i].file, strlen(rp->examples[i].file)),
                      "line", (json_int_t)rp->examples[i].line, "reason", rp->examples[i].reason));
    return list;
}

json_t *replay_report_json(replay *rp) {
    json_t *configs = json_array(), *runs = json_array();
    for (size_t r = 0; configs && runs && r < rp->run_count; r++) {
        json_array_append_new(configs,
                              replay_json_string(rp->runs[r].path, strlen(rp->runs[r].path)));
        json_array_append_new(
            runs, json_pack("{s:o,s:o}", "config",
                            replay_json_string(rp->runs[r].path, strlen(rp->runs[r].path)),
                            "policies", policies_json(rp, r)));
    }
    int any = rp->first_us != INT64_MIN;
    json_t *j = json_pack(
        "{s:o,s:I,s:I,s:I,s:o,s:I,s:I,s:{s:I,s:I},s:I,s:o}", "configs", configs, "lines",
        (json_int_t)rp->lines, "requests", (json_int_t)rp->requests, "malformed",
        (json_int_t)rp->malformed, "malformed_examples", examples_json(rp), "unmatched",
        (json_int_t)rp->unmatched, "exempt", (json_int_t)rp->exempt, "span", "first_us",
        (json_int_t)(any ? rp->first_us : 0), "last_us", (json_int_t)(any ? rp->last_us : 0),
        "step_s", (json_int_t)(rp->axis.step_s ? rp->axis.step_s : 1), "runs", runs);
    if (j && rp->run_count == 2)
        json_object_set_new(j, "changes", changes_json(rp));
    return j;
}

/* ---- text (rendered from the JSON object, so both say the same) ---- */

static long long num(const json_t *o, const char *field) {
    return (long long)json_integer_value(json_object_get(o, field));
}

static const char *utc(long long us, char *buf, size_t len) {
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// A report entry's key, escaped for a terminal (README: rlimitctl, the escaping rule):
// its "key" as it is when the report escaped it already ("escaped": true).
static const char *shown(const json_t *entry, char *buf, size_t len) {
    const json_t *key = json_object_get(entry, "key");
    if (json_is_true(json_object_get(entry, "escaped")))
        snprintf(buf, len, "%s", json_string_value(key));
    else
        rl_escape(json_string_value(key), json_string_length(key), RL_ESCAPE_UTF8, buf, len);
    return buf;
}

static const json_t *find_policy(const json_t *run, const char *name) {
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(run, "policies"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    }
    return NULL;
}

// One row of figures: the label, then each config's value.
static void row(FILE *out, const char *label, const json_t *const pol[2], size_t n,
                const char *field) {
    fprintf(out, "  %-16s", label);
    for (size_t r = 0; r < n; r++) {
        char cell[64];
        if (!pol[r])
            snprintf(cell, sizeof(cell), "-");
        else if (strcmp(field, "denied") == 0)
            snprintf(cell, sizeof(cell), "%lld (%.2f%%)", num(pol[r], "denied"),
                     json_real_value(json_object_get(pol[r], "denied_pct")));
        else if (strcmp(field, "peak") == 0) {
            char when[32];
            const json_t *pk = json_object_get(pol[r], "peak");
            snprintf(cell, sizeof(cell), "%lld/s at %s", num(pk, "per_s"),
                     utc(num(pk, "at_us"), when, sizeof(when)));
        } else
            snprintf(cell, sizeof(cell), "%lld%s", num(pol[r], field),
                     !strncmp(field, "keys", 4) &&
                             !json_is_true(json_object_get(pol[r], "keys_exact"))
                         ? " (estimated)"
                         : "");
        fprintf(out, n == 1 ? "%s" : "  %-34s", cell);
    }
    fputc('\n', out);
}

static void top_keys(FILE *out, const json_t *pol, const char *config, size_t runs) {
    size_t i;
    json_t *k;
    const json_t *list = json_object_get(pol, "top_denied");
    if (json_array_size(list) == 0)
        return;
    fprintf(out, "  top denied keys%s%s%s\n", runs > 1 ? " under " : "", runs > 1 ? config : "",
            runs > 1 ? "" : "");
    fprintf(out, "    %-40s %10s %10s %15s %16s\n", "key", "denied", "requests", "longest streak",
            "max retry-after");
    json_array_foreach(list, i, k) {
        char buf[SHOWN_MAX];
        fprintf(out, "    %-40s %10lld %10lld %15lld %13lld ms\n", shown(k, buf, sizeof(buf)),
                num(k, "denied"), num(k, "requests"), num(k, "longest_streak"),
                num(k, "max_retry_after_ms"));
    }
}

static void policy_block(FILE *out, const json_t *runs, const char *name, const char *algorithm) {
    size_t n = json_array_size(runs);
    const json_t *pol[2] = {NULL, NULL};
    for (size_t r = 0; r < n; r++)
        pol[r] = find_policy(json_array_get(runs, r), name);
    fprintf(out, "\npolicy %s (%s)\n", name, algorithm);
    if (n > 1) {
        fprintf(out, "  %-16s", "");
        for (size_t r = 0; r < n; r++)
            fprintf(out, "  %-34s",
                    json_string_value(json_object_get(json_array_get(runs, r), "config")));
        fputc('\n', out);
    }
    static const char *const labels[][2] = {{"requests", "requests"},       {"allowed", "allowed"},
                                            {"would deny", "denied"},       {"keys", "keys"},
                                            {"keys denied", "keys_denied"}, {"peak", "peak"}};
    for (size_t i = 0; i < sizeof(labels) / sizeof(*labels); i++)
        row(out, labels[i][0], pol, n, labels[i][1]);
    for (size_t r = 0; r < n; r++)
        if (pol[r])
            top_keys(out, pol[r],
                     json_string_value(json_object_get(json_array_get(runs, r), "config")), n);
}

static void header(FILE *out, const json_t *j) {
    char a[32], b[32];
    const json_t *span = json_object_get(j, "span");
    fprintf(out,
            "replayed %lld lines: %lld requests, %lld malformed, %lld unmatched, %lld exempt\n",
            num(j, "lines"), num(j, "requests"), num(j, "malformed"), num(j, "unmatched"),
            num(j, "exempt"));
    if (num(span, "last_us"))
        fprintf(out, "from %s to %s\n", utc(num(span, "first_us"), a, sizeof(a)),
                utc(num(span, "last_us"), b, sizeof(b)));
}

static void changes_text(FILE *out, const json_t *j) {
    size_t i;
    json_t *c;
    const json_t *configs = json_object_get(j, "configs");
    fprintf(out, "\nkeys whose outcome changes (denials under %s -> %s)\n",
            json_string_value(json_array_get(configs, 0)),
            json_string_value(json_array_get(configs, 1)));
    if (json_array_size(json_object_get(j, "changes")) == 0)
        fprintf(out, "  none\n");
    json_array_foreach(json_object_get(j, "changes"), i, c) {
        const json_t *d = json_object_get(c, "denied");
        char buf[SHOWN_MAX];
        fprintf(out, "  %-12s %-40s %10lld -> %lld\n",
                json_string_value(json_object_get(c, "policy")), shown(c, buf, sizeof(buf)),
                (long long)json_integer_value(json_array_get(d, 0)),
                (long long)json_integer_value(json_array_get(d, 1)));
    }
}

void replay_report_text(replay *rp, FILE *out) {
    json_t *j = replay_report_json(rp);
    size_t i;
    json_t *p;
    if (!j) {
        fputs("rlimitctl replay: out of memory\n", stderr);
        return;
    }
    for (i = 0; i < rp->malformed && i < REPLAY_EXAMPLES; i++)
        fprintf(stderr, "rlimitctl replay: %s:%" PRIu64 ": malformed: %s\n", rp->examples[i].file,
                rp->examples[i].line, rp->examples[i].reason);
    if (rp->malformed > REPLAY_EXAMPLES)
        fprintf(stderr, "rlimitctl replay: %" PRIu64 " malformed lines in all\n", rp->malformed);
    header(out, j);
    const json_t *runs = json_object_get(j, "runs");
    json_array_foreach(json_object_get(json_array_get(runs, 0), "policies"), i, p) {
        policy_block(out, runs, json_string_value(json_object_get(p, "name")),
                     json_string_value(json_object_get(p, "algorithm")));
    }
    if (rp->run_count == 2)
        changes_text(out, j);
    json_decref(j);
}
