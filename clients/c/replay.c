/*
 * replay.c: `rlimitctl replay` (see replay.h): the command line, reading the LOGFILEs
 * line by line, routing each request to a policy, and the reorder window that hands
 * requests to replay_decide.c in time order.
 *
 *   LOGFILE -> rl_replay_input (zlib) -> rl_replay_parse -> key, policy, cost checked
 *     -> reorder window (sorted by time; whole seconds spread) -> replay_decide
 *     -> replay_report (text, JSON) and rl_replay_html
 */
#include "replay.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "replay_internal.h"

#define EXIT_DONE 0
#define EXIT_FAIL 2
#define DEFAULT_WINDOW_US 2000000

static const char usage_text[] =
    "usage: rlimitctl replay -c CONFIG [--format combined|jsonl|csv] [--policy P | --rules "
    "RULES.json]\n"
    "         [--key addr|field:NAME] [--compare CONFIG2] [--json] [--html REPORT.html]\n"
    "         [--decisions FILE] [--strict] [--reorder-window 2s] LOGFILE...\n"
    "  decides every request of the logs with CONFIG's policies, offline (README: Replay);\n"
    "  LOGFILE - is standard input; gzip files are read as they are\n";

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...) {
    va_list ap;
    fputs("rlimitctl replay: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return EXIT_FAIL;
}

/* ---- the command line ---- */

static int parse_format(const char *s, rl_replay_format *f) {
    static const char *const names[] = {"combined", "jsonl", "csv"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return *f = (rl_replay_format)i, 0;
    return -1;
}

static int parse_key(const char *s, replay_opts *o) {
    if (strcmp(s, "addr") == 0)
        return o->key = KEY_ADDR, 0;
    if (strncmp(s, "field:", 6) == 0 && s[6])
        return o->key = KEY_FIELD, o->key_field = s + 6, 0;
    if (strncmp(s, "header:", 7) == 0)
        return usage("--key %s: no supported log format carries request headers (log the "
                     "header as a jsonl member or CSV column and use --key field:NAME)",
                     s);
    return usage("--key %s: addr or field:NAME expected", s);
}

static int parse_window(const char *s, int64_t *us) {
    int64_t ms;
    if (strcmp(s, "0") == 0)
        return *us = 0, 0;
    if (rl_duration_parse(s, &ms) != 0 || ms > 3600000)
        return usage("--reorder-window %s: a duration of at most 1h expected (\"2s\", \"500ms\")",
                     s);
    *us = ms * 1000;
    return 0;
}

// Reads the option at argv[*i] (with its value). Returns 0, or an exit status.
static int parse_option(int argc, char **argv, int *i, replay_opts *o, int *key_given) {
    const char *a = argv[*i];
    static const char *const with_value[] = {"-c",      "--format",    "--policy",
                                             "--rules", "--key",       "--compare",
                                             "--html",  "--decisions", "--reorder-window"};
    int valued = 0;
    for (size_t k = 0; k < sizeof(with_value) / sizeof(*with_value); k++)
        valued |= strcmp(a, with_value[k]) == 0;
    if (valued && *i + 1 >= argc)
        return usage("option %s needs a value", a);
    const char *v = valued ? argv[++*i] : NULL;
    if (!strcmp(a, "--json"))
        o->json = 1;
    else if (!strcmp(a, "--strict"))
        o->strict = 1;
    else if (!valued)
        return usage("unknown option %s", a);
    else if (!strcmp(a, "-c"))
        o->config[0] = v;
    else if (!strcmp(a, "--compare"))
        o->config[1] = v;
    else if (!strcmp(a, "--format"))
        return parse_format(v, &o->format) ? usage("--format %s: combined, jsonl or csv", v) : 0;
    else if (!strcmp(a, "--policy"))
        o->policy = v;
    else if (!strcmp(a, "--rules"))
        o->rules = v;
    else if (!strcmp(a, "--key"))
        return *key_given = 1, parse_key(v, o);
    else if (!strcmp(a, "--html"))
        o->html = v;
    else if (!strcmp(a, "--decisions"))
        o->decisions = v;
    else
        return parse_window(v, &o->reorder_us);
    return 0;
}

// Checks what the options say together. Returns 0 or an exit status.
static int check_options(replay_opts *o, int key_given) {
    if (!o->config[0])
        return usage("-c CONFIG is required");
    if (o->file_count == 0)
        return usage("no LOGFILE");
    if (o->policy && o->rules)
        return usage("--policy and --rules exclude each other");
    if (!key_given && o->format != RL_REPLAY_COMBINED) {
        o->key = KEY_FIELD;
        o->key_field = "key";
    }
    if (o->format == RL_REPLAY_COMBINED && o->key != KEY_ADDR)
        return usage("--key field:NAME needs --format jsonl or csv (a combined log's key is addr)");
    if (o->format != RL_REPLAY_COMBINED && o->key == KEY_ADDR)
        return usage("--key addr needs --format combined (use --key field:NAME)");
    if (o->format == RL_REPLAY_COMBINED && !o->policy && !o->rules)
        return usage("a combined log needs --policy or --rules");
    return 0;
}

static int parse_args(int argc, char **argv, replay_opts *o) {
    int key_given = 0, rc;
    o->reorder_us = DEFAULT_WINDOW_US;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return fputs(usage_text, stdout), -1;
        if (a[0] == '-' && a[1] != '\0') {
            if ((rc = parse_option(argc, argv, &i, o, &key_given)) != 0)
                return rc;
            continue;
        }
        if (o->file_count == REPLAY_MAX_FILES)
            return usage("more than %d LOGFILEs", REPLAY_MAX_FILES);
        o->files[o->file_count++] = a;
    }
    return check_options(o, key_given);
}

/* ---- malformed lines ---- */

static int fail(replay *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(replay *rp, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp->err, sizeof(rp->err), fmt, ap);
    va_end(ap);
    return -1;
}

// Counts a malformed line. Returns 0, or -1 under --strict.
static int malformed(replay *rp, const char *file, uint64_t line, const char *reason) {
    if (rp->opts.strict)
        return fail(rp, "%s:%" PRIu64 ": %s (--strict)", file, line, reason);
    if (rp->malformed < REPLAY_EXAMPLES) {
        replay_example *ex = &rp->examples[rp->malformed];
        snprintf(ex->file, sizeof(ex->file), "%s", file);
        ex->line = line;
        snprintf(ex->reason, sizeof(ex->reason), "%s", reason);
    }
    rp->malformed++;
    return 0;
}

/* ---- the reorder window ---- */

static replay_entry *ring_at(replay *rp, size_t i) {
    return &rp->ring[(rp->ring_head + i) & (rp->ring_cap - 1)];
}

// Makes room for one more entry. Returns 0 or -1.
static int ring_grow(replay *rp) {
    if (rp->ring_len < rp->ring_cap)
        return 0;
    size_t cap = rp->ring_cap ? rp->ring_cap * 2 : 1024;
    replay_entry *ring = rl_calloc(cap, sizeof(*ring));
    if (!ring)
        return fail(rp, "out of memory");
    for (size_t i = 0; i < rp->ring_cap; i++)
        ring[i] = *ring_at(rp, i);
    rl_free(rp->ring);
    rp->ring = ring;
    rp->ring_cap = cap;
    rp->ring_head = 0;
    return 0;
}

// Spreads requests logged at the same whole second evenly over it, in log order:
// request i of n at second + i/n.
static void spread(replay *rp, replay_entry *e) {
    int64_t sec = e->ts_us / 1000000;
    if (rp->group_i >= rp->group_n || rp->group_s != sec) {
        rp->group_s = sec;
        rp->group_i = 0;
        rp->group_n = 0;
        for (size_t i = 0; i < rp->ring_len; i++) {
            const replay_entry *o = ring_at(rp, i);
            if (o->ts_us != e->ts_us || !o->whole_second)
                break;
            rp->group_n++;
        }
    }
    e->ts_us += (int64_t)(rp->group_i++ * 1000000 / rp->group_n);
}

// Decides the entries older than the window behind the newest (all with flush).
static int ring_drain(replay *rp, int flush) {
    while (rp->ring_len > 0) {
        replay_entry *e = ring_at(rp, 0);
        if (!flush && e->ts_us >= rp->newest_us - rp->opts.reorder_us)
            return 0;
        if (e->whole_second)
            spread(rp, e);
        if (replay_decide(rp, e) != 0)
            return -1;
        rp->ring_head = (rp->ring_head + 1) & (rp->ring_cap - 1);
        rp->ring_len--;
    }
    return 0;
}

// Puts a request into the window in time order (log order among equal times).
static int ring_put(replay *rp, const rl_replay_rec *rec, const char *key, size_t key_len,
                    const char *prefix, size_t prefix_len, const int policy[2], uint64_t line) {
    if (ring_grow(rp) != 0)
        return -1;
    replay_entry *e = ring_at(rp, rp->ring_len++);
    size_t need = prefix_len + key_len;
    if (need > e->cap) {
        char *buf = rl_realloc(e->buf, need);
        if (!buf)
            return fail(rp, "out of memory");
        e->buf = buf;
        e->cap = need;
    }
    memcpy(e->buf, prefix, prefix_len);
    memcpy(e->buf + prefix_len, key, key_len);
    e->key_len = need;
    e->ts_us = rec->ts_us;
    e->whole_second = rec->whole_second;
    e->cost = rec->cost;
    e->line = line;
    e->policy[0] = policy[0];
    e->policy[1] = policy[1];
    int64_t ts = e->ts_us; /* e's slot takes other entries as it moves back */
    for (size_t i = rp->ring_len - 1; i > 0 && ring_at(rp, i - 1)->ts_us > ts; i--) {
        replay_entry tmp = *ring_at(rp, i - 1);
        *ring_at(rp, i - 1) = *ring_at(rp, i);
        *ring_at(rp, i) = tmp;
    }
    return 0;
}

/* ---- one line ---- */

// The policy of a request: its own, --policy's, or the rules'. Returns 1 with idx set,
// 0 if it is not decided (exempt, unmatched: counted), -1 with *reason.
static int route(replay *rp, const rl_replay_rec *rec, int idx[2], const char **reason) {
    const char *name = rec->policy ? rec->policy : rp->opts.policy;
    size_t len = rec->policy ? rec->policy_len : name ? strlen(name) : 0;
    if (!name && rp->rules) {
        if (rec->path_len == 0)
            return *reason = "no path (--rules routes by path)", -1;
        rl_replay_route r = rl_replay_rules_route(rp->rules, rec->path, rec->path_len, &name);
        if (r != RL_ROUTE_POLICY) {
            rp->exempt += r == RL_ROUTE_EXEMPT;
            rp->unmatched += r == RL_ROUTE_UNMATCHED;
            return 0;
        }
        len = strlen(name);
    }
    if (!name)
        return rp->unmatched++, 0;
    if (!(name == rp->cached_name ||
          (rp->cached_name && len == rp->cached_len && memcmp(name, rp->cached_name, len) == 0))) {
        if (replay_resolve(rp, name, len, rp->cached_policy, reason) != 0)
            return rp->cached_name = NULL, -1;
        rp->cached_name = rec->policy ? NULL : name; /* a line's own name dies with the line */
        rp->cached_len = len;
    }
    idx[0] = rp->cached_policy[0];
    idx[1] = rp->cached_policy[1];
    return 1;
}

// Checks what the daemon would refuse before deciding: the key's length, the cost.
static const char *refused(replay *rp, const int idx[2], const char *key, size_t len,
                           int64_t cost) {
    for (size_t r = 0; r < rp->run_count; r++) {
        const rl_config *c = rp->runs[r].config;
        if (len == 0)
            return "empty key";
        if (len > c->max_key)
            return "key longer than the config's limits.max_key";
        const rl_limits *l = rl_policy_limits(&c->policies[idx[r]], key, len);
        for (size_t i = 0; i < l->rate_count; i++)
            if ((uint64_t)cost > rl_rate_capacity(&l->rates[i]))
                return "cost larger than the policy's capacity (the daemon answers "
                       "COST_TOO_LARGE)";
    }
    return NULL;
}

static int one_line(replay *rp, const char *file, uint64_t file_line, const char *line,
                    size_t len) {
    rl_replay_rec rec;
    const char *reason = NULL;
    int idx[2] = {0, 0};
    int rc = rl_replay_parse(rp->parser, line, len, &rec, &reason);
    if (rc == -2)
        return fail(rp, "%s:%" PRIu64 ": %s", file, file_line, reason);
    if (rc <= 0)
        return rc == 0 ? 0 : malformed(rp, file, file_line, reason);
    rp->requests++;
    int addr = rp->opts.key == KEY_ADDR;
    if ((rc = route(rp, &rec, idx, &reason)) <= 0)
        return rc == 0 ? 0 : malformed(rp, file, file_line, reason);
    size_t prefix = addr ? 3 : 0;
    /* the key decided: "ip:" + the address with --key addr (as ring_put stores it), so
       that overrides are looked up under the same bytes as the decision uses */
    static char keyed[3 + RL_MAX_KEY_LEN];
    const char *key = rec.key;
    if (addr && rec.key_len <= RL_MAX_KEY_LEN) {
        memcpy(keyed, "ip:", 3);
        memcpy(keyed + 3, rec.key, rec.key_len);
        key = keyed;
    }
    if (rec.key_len == 0 || (reason = refused(rp, idx, key, rec.key_len + prefix, rec.cost)))
        return malformed(rp, file, file_line, reason ? reason : "empty key");
    if (rp->newest_us != INT64_MIN && rec.ts_us < rp->newest_us - rp->opts.reorder_us)
        return fail(rp,
                    "%s:%" PRIu64 ": %.3f s older than a line before it, beyond the reorder "
                    "window of %.3f s (sort the log, or widen --reorder-window)",
                    file, file_line, (double)(rp->newest_us - rec.ts_us) / 1e6,
                    (double)rp->opts.reorder_us / 1e6);
    if (rec.ts_us > rp->newest_us)
        rp->newest_us = rec.ts_us;
    if (ring_put(rp, &rec, rec.key, rec.key_len, "ip:", prefix, idx, rp->lines) != 0)
        return -1;
    return ring_drain(rp, 0);
}

static int one_file(replay *rp, const char *file) {
    char err[512];
    const char *line;
    size_t len;
    uint64_t file_line = 0;
    rl_replay_input *in = rl_replay_input_open(file, err, sizeof(err));
    if (!in)
        return fail(rp, "%s", err);
    rl_replay_parser_reset(rp->parser);
    int rc;
    while ((rc = rl_replay_input_line(in, &line, &len, err, sizeof(err))) > 0) {
        rp->lines++;
        file_line++;
        if (rc == 2 && malformed(rp, file, file_line, "line longer than 1 MiB") != 0)
            break;
        if (rc == 1 && one_line(rp, file, file_line, line, len) != 0)
            break;
    }
    rl_replay_input_close(in);
    if (rc < 0)
        return fail(rp, "%s", err);
    return rc == 0 ? 0 : -1;
}

/* ---- the command ---- */

// Checks that every policy --policy or the rules name exists in every config.
static int check_policies(replay *rp) {
    int idx[2];
    const char *reason, *name;
    if (rp->opts.policy &&
        replay_resolve(rp, rp->opts.policy, strlen(rp->opts.policy), idx, &reason) != 0)
        return fail(rp, "--policy %s: %s", rp->opts.policy, reason);
    for (size_t i = 0; rp->rules && (name = rl_replay_rules_policy(rp->rules, i)); i++)
        if (replay_resolve(rp, name, strlen(name), idx, &reason) != 0)
            return fail(rp, "%s: policy %s: %s", rp->opts.rules, name, reason);
    return 0;
}

static int open_all(replay *rp) {
    char err[1024];
    rp->run_count = rp->opts.config[1] ? 2 : 1;
    rp->newest_us = INT64_MIN;
    rp->first_us = INT64_MIN;
    if (replay_runs_open(rp) != 0)
        return -1;
    if (rp->opts.rules && !(rp->rules = rl_replay_rules_load(rp->opts.rules, err, sizeof(err))))
        return fail(rp, "%s", err);
    if (check_policies(rp) != 0)
        return -1;
    rp->parser =
        rl_replay_parser_new(rp->opts.format, rp->opts.key_field ? rp->opts.key_field : "");
    if (!rp->parser)
        return fail(rp, "out of memory");
    if (rp->opts.decisions && !(rp->decisions = fopen(rp->opts.decisions, "we")))
        return fail(rp, "%s: cannot write the decisions", rp->opts.decisions);
    if (rp->decisions)
        setvbuf(rp->decisions, NULL, _IOFBF, 1 << 16);
    return 0;
}

static void close_all(replay *rp) {
    replay_runs_close(rp);
    rl_replay_rules_free(rp->rules);
    rl_replay_parser_free(rp->parser);
    for (size_t i = 0; i < rp->ring_cap; i++)
        rl_free(rp->ring[i].buf);
    rl_free(rp->ring);
    if (rp->decisions)
        fclose(rp->decisions);
}

static int write_html(replay *rp, const json_t *report) {
    FILE *f = fopen(rp->opts.html, "we");
    if (!f)
        return fail(rp, "%s: cannot write the report", rp->opts.html);
    int rc = rl_replay_html(f, report);
    if (fclose(f) != 0 || rc != 0)
        return fail(rp, "%s: the HTML report could not be written", rp->opts.html);
    return 0;
}

static int report(replay *rp) {
    if (!rp->opts.json && !rp->opts.html) {
        replay_report_text(rp, stdout);
        return 0;
    }
    json_t *j = replay_report_json(rp);
    if (!j)
        return fail(rp, "out of memory");
    int rc = rp->opts.html ? write_html(rp, j) : 0;
    if (rp->opts.json) {
        /* reals (denied_pct, two decimals) as their shortest form, not 17 digits */
        json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
    } else if (rc == 0) {
        replay_report_text(rp, stdout);
    }
    json_decref(j);
    return rc;
}

static int run(replay *rp) {
    if (open_all(rp) != 0)
        return -1;
    for (size_t i = 0; i < rp->opts.file_count; i++)
        if (one_file(rp, rp->opts.files[i]) != 0)
            return -1;
    if (ring_drain(rp, 1) != 0)
        return -1;
    if (rp->decisions && fflush(rp->decisions) != 0)
        return fail(rp, "%s: write error", rp->opts.decisions);
    return report(rp);
}

int rl_replay_main(int argc, char **argv) {
    replay *rp = rl_calloc(1, sizeof(*rp));
    if (!rp)
        return fputs("rlimitctl replay: out of memory\n", stderr), EXIT_FAIL;
    int rc = parse_args(argc, argv, &rp->opts);
    if (rc == 0 && run(rp) != 0) {
        fprintf(stderr, "rlimitctl replay: %s\n", rp->err);
        rc = EXIT_FAIL;
    }
    close_all(rp);
    rl_free(rp);
    fflush(stdout);
    return rc < 0 ? EXIT_DONE : rc;
}
