/*
 * rlimitctl: the operators' command line for rlimitd.
 *
 *   rlimitctl [-s ADDR] [-t TIMEOUT_MS] [--json] COMMAND [ARGS]
 *
 * Decisions (check, peek, adjust, acquire) exit 0 when allowed, 1 when denied; every other
 * command exits 0 on success; any error exits 2 with a message on stderr.
 */
#include "escape.h"
#include "rlimit.h"
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ADDRESS "unix:/run/rlimitd/rlimitd.sock"
#define DEFAULT_TIMEOUT_MS 2000
#define DEFAULT_TOP_KEYS 10

enum { EXIT_ALLOWED = 0, EXIT_DENIED = 1, EXIT_ERROR = 2 };

static const char usage_text[] =
    "usage: rlimitctl [-s ADDR] [-t TIMEOUT_MS] [--json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  check POLICY KEY [-n COST]   decide and consume COST units (default 1)\n"
    "  peek POLICY KEY [-n COST]    what check would answer, consuming nothing\n"
    "  adjust POLICY KEY -n DELTA   add DELTA units to KEY's usage (negative gives back)\n"
    "  reset POLICY KEY             forget KEY's state in POLICY\n"
    "  acquire POLICY KEY [-n SLOTS]  take SLOTS slots (default 1) of a concurrency\n"
    "                               policy; prints the lease id. The lease outlives\n"
    "                               this command: it ends on release or expiry\n"
    "  release POLICY KEY LEASE     give a lease back\n"
    "  renew POLICY KEY LEASE       extend a lease by its policy's lease duration\n"
    "  leases POLICY [KEY]          the leases held, per key (admin listener only)\n"
    "  ping                         check that the daemon answers\n"
    "  policies                     the loaded policies, with their rates\n"
    "  stats                        the daemon's counters, per policy and overall\n"
    "  top [POLICY] [-k N]          the N keys denied most in the last 1-2 minutes\n"
    "                               (default 10), per policy\n"
    "  reload                       reload the configuration (admin listener only)\n"
    "  replay -c CONFIG [OPTIONS] LOGFILE...  decide an access log's requests offline\n"
    "                               with CONFIG's policies (rlimitctl replay --help)\n"
    "\n"
    "options:\n"
    "  -s ADDR        unix:PATH or tcp:HOST:PORT (default: $RLIMITD_ADDRESS, else\n"
    "                 " DEFAULT_ADDRESS ")\n"
    "  -t TIMEOUT_MS  connect and answer timeout (default 2000)\n"
    "  --token-file FILE  authenticate with the token in FILE (a listener with a\n"
    "                 token_file; default: $RLIMITD_TOKEN_FILE if set)\n"
    "  --json         print the answer as JSON, on one line (admin commands: the\n"
    "                 daemon's JSON as it is)\n"
    "  -h, --help     print this help\n"
    "\n"
    "exit status: 0 allowed or done, 1 denied, 2 error (release or renew of a lease\n"
    "             not held: LEASE_UNKNOWN, 2)\n";

/* What the command line asks for. */
typedef struct options {
    const char *address;    /* -s, else $RLIMITD_ADDRESS, else the default */
    const char *token_file; /* --token-file, else $RLIMITD_TOKEN_FILE, or NULL */
    int timeout_ms;         /* -t */
    int json;               /* --json */
    int64_t n;              /* -n COST or DELTA */
    int has_n;              /* -n was given */
    uint32_t top_keys;      /* -k N */
    const char *args[4];    /* positional arguments: the command and its operands */
    int arg_count;          /* positional arguments given */
} options;

/* Prints "rlimitctl: MESSAGE" and the usage on stderr; returns EXIT_ERROR. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rlimitctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n%s", usage_text);
    va_end(ap);
    return EXIT_ERROR;
}

/* Parses a decimal integer within [min, max]. Returns 0, or -1 if it is not one. */
static int parse_int(const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Takes the value of option argv[*i]. Returns it, or NULL if argv ends. */
static const char *option_value(int argc, char **argv, int *i) {
    return *i + 1 < argc ? argv[++*i] : NULL;
}

/* Parses one option at argv[*i]. Returns -1 to go on, else an exit status. */
static int parse_option(int argc, char **argv, int *i, options *o) {
    const char *arg = argv[*i], *value;
    int64_t v;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_ALLOWED;
    }
    if (strcmp(arg, "--json") == 0) {
        o->json = 1;
        return -1;
    }
    if (strcmp(arg, "--token-file") == 0) {
        if (!(o->token_file = option_value(argc, argv, i)))
            return usage_error("option %s needs a value", arg);
        return -1;
    }
    if (strcmp(arg, "-s") && strcmp(arg, "-t") && strcmp(arg, "-n") && strcmp(arg, "-k"))
        return usage_error("unknown option %s", arg);
    if (!(value = option_value(argc, argv, i)))
        return usage_error("option %s needs a value", arg);
    if (arg[1] == 's') {
        o->address = value;
    } else if (arg[1] == 't' && parse_int(value, 1, INT32_MAX, &v) == 0) {
        o->timeout_ms = (int)v;
    } else if (arg[1] == 'n' && parse_int(value, INT32_MIN, UINT32_MAX, &v) == 0) {
        o->n = v;
        o->has_n = 1;
    } else if (arg[1] == 'k' && parse_int(value, 1, UINT32_MAX, &v) == 0) {
        o->top_keys = (uint32_t)v;
    } else {
        return usage_error("bad number %s", value);
    }
    return -1;
}

/* Fills o from argv. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o) {
    int only_operands = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_operands && strcmp(arg, "--") == 0) {
            only_operands = 1;
        } else if (!only_operands && arg[0] == '-' && arg[1] != '\0') {
            int rc = parse_option(argc, argv, &i, o);
            if (rc >= 0)
                return rc;
        } else if (o->arg_count == 4) {
            return usage_error("too many arguments (%s)", arg);
        } else {
            o->args[o->arg_count++] = arg;
        }
    }
    if (o->arg_count == 0)
        return usage_error("no command");
    return -1;
}

/* ---- output ---- */

#define SHOWN_MAX 2048 /* an escaped name: 4 bytes per byte of a 255-byte policy name, and more */

/* Writes s (len bytes) as people may see it (escape.h: `\\`, `\xHH` for controls,
   spaces, bidi and invisible characters and invalid UTF-8) to buf; returns buf. Every
   name, key and text of the daemon goes through it before it reaches the terminal. */
static const char *shown(const char *s, size_t len, char *buf, size_t buflen) {
    rl_escape(s, len, RL_ESCAPE_UTF8, buf, buflen);
    return buf;
}

/* Like shown, for a JSON string (else fallback as it is). */
static const char *shown_jv(const json_t *v, const char *fallback, char *buf, size_t buflen) {
    if (!json_is_string(v))
        return fallback;
    return shown(json_string_value(v), json_string_length(v), buf, buflen);
}

/* Like shown, for text (messages: spaces kept). */
static const char *shown_text(const char *s, char *buf, size_t buflen) {
    rl_escape(s, strlen(s), RL_ESCAPE_UTF8 | RL_ESCAPE_KEEP_SPACE, buf, buflen);
    return buf;
}

static const struct {
    uint16_t bit;     /* RL_FLAG_* */
    const char *name; /* as printed */
} flag_names[] = {
    {RL_FLAG_SHADOW, "shadow"},   {RL_FLAG_FALLBACK, "fallback"}, {RL_FLAG_EXEMPT, "exempt"},
    {RL_FLAG_BLOCKED, "blocked"}, {RL_FLAG_CACHED, "cached"},
};

#define FLAG_COUNT (sizeof(flag_names) / sizeof(flag_names[0]))

/* Prints the set flags, separated by sep, each between quote characters. */
static void print_flags(uint16_t flags, const char *sep, const char *quote) {
    const char *before = "";
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (flags & flag_names[i].bit) {
            printf("%s%s%s%s", before, quote, flag_names[i].name, quote);
            before = sep;
        }
    }
}

/* Prints r as JSON; with lease (not NULL), a "lease" field: the id as a decimal string. */
static void print_lease_json(const rl_result *r, const uint64_t *lease) {
    printf("{\"allowed\":%s,\"limit\":%" PRIu32 ",\"remaining\":%" PRIu32
           ",\"reset_after_ms\":%" PRIu32 ",\"retry_after_ms\":%" PRIu32 ",\"window_ms\":%" PRIu32
           ",\"status\":\"%s\",\"flags\":[",
           r->status == RL_ST_ALLOWED ? "true" : "false", r->limit, r->remaining, r->reset_after_ms,
           r->retry_after_ms, r->window_ms, rl_status_name(r->status));
    print_flags(r->flags, ",", "\"");
    if (lease)
        printf("],\"lease\":\"%" PRIu64 "\"}\n", *lease);
    else
        printf("]}\n");
}

static void print_result_json(const rl_result *r) {
    print_lease_json(r, NULL);
}

static void print_decision(const rl_result *r) {
    printf("%s  limit=%" PRIu32 " remaining=%" PRIu32 " reset_after=%" PRIu32 "ms",
           r->status == RL_ST_ALLOWED ? "allowed" : "denied", r->limit, r->remaining,
           r->reset_after_ms);
    if (r->status == RL_ST_DENIED)
        printf(" retry_after=%" PRIu32 "ms", r->retry_after_ms);
    printf(" window=%" PRIu32 "ms", r->window_ms);
    if (r->flags) {
        printf("  flags=");
        print_flags(r->flags, ",", "");
    }
    printf("\n");
}

/* Explains an error status; returns EXIT_ERROR. */
static int status_error(const rl_result *r, const char *policy_arg, int64_t cost) {
    const char *name = rl_status_name(r->status);
    char policy[SHOWN_MAX];
    shown(policy_arg, strlen(policy_arg), policy, sizeof(policy));
    switch (r->status) {
    case RL_ST_UNKNOWN_POLICY:
        fprintf(stderr, "rlimitctl: %s: no policy \"%s\"\n", name, policy);
        break;
    case RL_ST_COST_INVALID:
    case RL_ST_COST_TOO_LARGE:
        fprintf(stderr, "rlimitctl: %s: cost %" PRId64 " refused by policy \"%s\"\n", name, cost,
                policy);
        break;
    case RL_ST_NOT_PERMITTED:
        fprintf(stderr, "rlimitctl: %s: only on an admin listener\n", name);
        break;
    case RL_ST_UNKNOWN_OPCODE:
        fprintf(stderr, "rlimitctl: %s: this daemon does not serve the command\n", name);
        break;
    case RL_ST_KEY_TOO_LONG:
    case RL_ST_KEY_EMPTY:
        fprintf(stderr, "rlimitctl: %s: key refused\n", name);
        break;
    case RL_ST_LEASE_UNKNOWN:
        fprintf(stderr, "rlimitctl: %s: the lease is not held (unknown, expired or released)\n",
                name);
        break;
    case RL_ST_POLICY_KIND:
        fprintf(stderr,
                "rlimitctl: %s: policy \"%s\" is not of this command's kind (acquire, release, "
                "renew and leases take a concurrency policy; check, peek, adjust a rate policy)\n",
                name, policy);
        break;
    default:
        fprintf(stderr, "rlimitctl: %s\n", name);
    }
    return EXIT_ERROR;
}

static int client_error(rl_client *c, int rc) {
    char detail[SHOWN_MAX];
    shown_text(rl_client_error(c), detail, sizeof(detail));
    fprintf(stderr, "rlimitctl: %s%s%s\n", rl_client_errstr(rc), *detail ? ": " : "", detail);
    return EXIT_ERROR;
}

/* ---- commands ---- */

/* check, peek, adjust, reset: args are POLICY KEY. */
static int run_item(rl_client *c, const options *o, const char *command) {
    const char *policy = o->args[1], *key = o->args[2];
    rl_result r;
    int rc;
    if (o->arg_count != 3)
        return usage_error("%s takes POLICY KEY", command);
    int64_t cost = o->has_n ? o->n : 1;
    if (strcmp(command, "adjust") == 0) {
        if (!o->has_n || o->n < INT32_MIN || o->n > INT32_MAX)
            return usage_error("%s needs -n DELTA (a 32-bit signed number)", command);
        rc = rl_client_adjust(c, policy, key, (int32_t)cost, &r);
    } else if (strcmp(command, "reset") == 0) {
        cost = 0;
        rc = rl_client_reset(c, policy, key, &r);
    } else if (cost < 0) {
        return usage_error("%s takes a cost of 0 or more", command);
    } else if (strcmp(command, "check") == 0) {
        rc = rl_client_check(c, policy, key, (uint32_t)cost, &r);
    } else {
        rc = rl_client_peek(c, policy, key, (uint32_t)cost, &r);
    }
    if (rc != RLC_OK)
        return client_error(c, rc);
    if (o->json)
        print_result_json(&r);
    if (r.status != RL_ST_ALLOWED && r.status != RL_ST_DENIED)
        return status_error(&r, policy, cost);
    if (!o->json && strcmp(command, "reset") == 0)
        printf("ok\n");
    else if (!o->json)
        print_decision(&r);
    return r.status == RL_ST_ALLOWED ? EXIT_ALLOWED : EXIT_DENIED;
}

/* Parses a lease id: unsigned decimal, 0..2^64-1, digits only. Returns 0, or -1. */
static int parse_lease(const char *text, uint64_t *out) {
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* acquire POLICY KEY [-n SLOTS], always with DETACH: this process ends at once, and its
   lease must stay held until a release (or its expiry). */
static int run_acquire(rl_client *c, const options *o) {
    const char *policy = o->args[1], *key = o->args[2];
    int64_t slots = o->has_n ? o->n : 1;
    rl_result r;
    uint64_t lease;
    if (o->arg_count != 3)
        return usage_error("acquire takes POLICY KEY");
    if (slots < 0)
        return usage_error("acquire takes a number of slots of 0 or more");
    int rc = rl_client_acquire(c, policy, key, (uint32_t)slots, 1, &r, &lease);
    if (rc != RLC_OK)
        return client_error(c, rc);
    if (o->json)
        print_lease_json(&r, &lease);
    if (r.status != RL_ST_ALLOWED && r.status != RL_ST_DENIED)
        return status_error(&r, policy, slots);
    if (!o->json && r.status == RL_ST_ALLOWED)
        printf("%" PRIu64 "\n", lease);
    else if (!o->json)
        print_decision(&r);
    if (!o->json && r.status == RL_ST_ALLOWED && lease == 0)
        fprintf(stderr, "rlimitctl: allowed without holding a slot (%s): lease 0\n",
                (r.flags & RL_FLAG_SHADOW) ? "shadow mode" : "exempt key");
    return r.status == RL_ST_ALLOWED ? EXIT_ALLOWED : EXIT_DENIED;
}

/* release or renew POLICY KEY LEASE. */
static int run_lease(rl_client *c, const options *o, const char *command) {
    const char *policy = o->args[1], *key = o->args[2];
    uint64_t lease;
    rl_result r;
    if (o->arg_count != 4)
        return usage_error("%s takes POLICY KEY LEASE", command);
    if (parse_lease(o->args[3], &lease) != 0)
        return usage_error("bad lease id %s (an unsigned decimal number)", o->args[3]);
    int rc = strcmp(command, "release") == 0 ? rl_client_release(c, policy, key, lease, &r)
                                             : rl_client_renew(c, policy, key, lease, &r);
    if (rc != RLC_OK)
        return client_error(c, rc);
    if (o->json)
        print_lease_json(&r, &lease);
    if (r.status != RL_ST_OK)
        return status_error(&r, policy, 0);
    if (!o->json)
        printf("%s  limit=%" PRIu32 " remaining=%" PRIu32 " reset_after=%" PRIu32 "ms\n",
               strcmp(command, "release") == 0 ? "released" : "renewed", r.limit, r.remaining,
               r.reset_after_ms);
    return EXIT_ALLOWED;
}

static int run_ping(rl_client *c, const options *o) {
    rl_result r;
    if (o->arg_count != 1)
        return usage_error("%s takes no arguments", "ping");
    int rc = rl_client_ping(c, &r);
    if (rc != RLC_OK)
        return client_error(c, rc);
    if (o->json)
        print_result_json(&r);
    if (r.status != RL_ST_OK)
        return status_error(&r, "", 0);
    if (!o->json)
        printf("ok\n");
    return EXIT_ALLOWED;
}

/* ---- admin answers as tables ---- */

#define TABLE_MAX_COLUMNS 10

/* Rows of cells, printed with aligned columns. */
typedef struct table {
    size_t columns;      /* cells per row */
    const char *numeric; /* per column: 'r' right-aligned, else left */
    char **cells;        /* rows * columns copies (owned) */
    size_t rows;         /* rows added */
} table;

/* Adds a row of t->columns cells (copied). */
static void table_add(table *t, const char *const *row) {
    char **cells = realloc(t->cells, (t->rows + 1) * t->columns * sizeof(*cells));
    if (!cells)
        return;
    t->cells = cells;
    for (size_t i = 0; i < t->columns; i++)
        cells[t->rows * t->columns + i] = strdup(row[i] ? row[i] : "");
    t->rows++;
}

static void table_free(table *t) {
    for (size_t i = 0; i < t->rows * t->columns; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->rows = 0;
}

/* Returns the columns s takes on a terminal: its UTF-8 characters. */
static size_t display_width(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Prints the rows with columns as wide as their widest cell (no trailing blanks),
   then frees them. */
static void table_print(table *t) {
    size_t width[TABLE_MAX_COLUMNS] = {0};
    for (size_t i = 0; i < t->rows * t->columns; i++) {
        size_t n = t->cells[i] ? display_width(t->cells[i]) : 0;
        if (n > width[i % t->columns])
            width[i % t->columns] = n;
    }
    for (size_t row = 0; row < t->rows; row++) {
        size_t blanks = 0; /* owed before the next text */
        for (size_t col = 0; col < t->columns; col++) {
            const char *cell = t->cells[row * t->columns + col];
            size_t pad = width[col] - (cell ? display_width(cell) : 0);
            if (t->numeric[col] == 'r')
                blanks += pad;
            if (cell && *cell) {
                printf("%*s%s", (int)blanks, "", cell);
                blanks = 0;
            }
            if (t->numeric[col] != 'r')
                blanks += pad;
            blanks += 2;
        }
        printf("\n");
    }
    table_free(t);
}

/* ---- the daemon's JSON answers (read with jansson) ---- */

// Returns the number v holds (true 1, false 0), or fallback.
static double jv_num(const json_t *v, double fallback) {
    if (json_is_boolean(v))
        return json_is_true(v);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

// Returns the string v holds, or fallback.
static const char *jv_str(const json_t *v, const char *fallback) {
    return json_is_string(v) ? json_string_value(v) : fallback;
}

// Parses the daemon's answer: any JSON value, strings that may hold NULs. Returns the
// tree (json_decref it), or NULL if text is not JSON.
static json_t *jv_parse(const char *text) {
    json_error_t error;
    return json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
}

/* Writes a number of v, or "-" when it is absent. */
static const char *number_cell(const json_t *v, char *buf, size_t len) {
    if (!json_is_number(v) && !json_is_boolean(v))
        return "-";
    snprintf(buf, len, "%.0f", jv_num(v, 0));
    return buf;
}

/* Writes ms as the config writes periods: "1d", "15m", "1s", "1500ms". */
static const char *period_cell(double period_ms, char *buf, size_t len) {
    static const struct {
        uint64_t ms;      /* unit length */
        const char *name; /* its suffix */
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    uint64_t ms = period_ms > 0 ? (uint64_t)period_ms : 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].name);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRIu64 "ms", ms);
    return buf;
}

static void print_policies(const json_t *root) {
    static const char *const head[] = {"POLICY", "ALGORITHM", "LIMIT",     "PERIOD", "BURST",
                                       "MODE",   "ON_ERROR",  "OVERRIDES", "EXEMPT", "BLOCK"};
    table t = {10, "llrlrllrrr", NULL, 0};
    const json_t *policies = json_object_get(root, "policies");
    table_add(&t, head);
    for (size_t i = 0; i < json_array_size(policies); i++) {
        const json_t *p = json_array_get(policies, i), *rates = json_object_get(p, "rates");
        for (size_t r = 0; r < json_array_size(rates) || r == 0; r++) {
            const json_t *rate = r < json_array_size(rates) ? json_array_get(rates, r) : p;
            char limit[32], period[32], burst[32], over[32], exempt[32], block[32];
            char name[SHOWN_MAX];
            const char *row[] = {
                r ? "" : shown_jv(json_object_get(p, "name"), "?", name, sizeof(name)),
                jv_str(json_object_get(rate, "algorithm"), "?"),
                number_cell(json_object_get(rate, "limit"), limit, sizeof(limit)),
                period_cell(jv_num(json_object_get(rate, "period_ms"), 0), period, sizeof(period)),
                number_cell(json_object_get(rate, "burst"), burst, sizeof(burst)),
                r ? "" : jv_str(json_object_get(p, "mode"), "?"),
                r ? "" : jv_str(json_object_get(p, "on_store_error"), "?"),
                r ? "" : number_cell(json_object_get(p, "overrides"), over, sizeof(over)),
                r ? "" : number_cell(json_object_get(p, "exempt"), exempt, sizeof(exempt)),
                r ? "" : number_cell(json_object_get(p, "block"), block, sizeof(block))};
            table_add(&t, row);
        }
    }
    table_print(&t);
}

/* Prints a scalar as print_members shows it: a string escaped, a boolean yes or no, an
   integral number as an integer, another with two decimals (null as 0). */
static void print_scalar(const json_t *m) {
    char buf[SHOWN_MAX];
    double number = jv_num(m, 0);
    if (json_is_string(m))
        printf("%s", shown_jv(m, "", buf, sizeof(buf)));
    else if (json_is_boolean(m))
        printf("%s", json_is_true(m) ? "yes" : "no");
    else if (number == (double)(long long)number)
        printf("%lld", (long long)number);
    else
        printf("%.2f", number);
}

/* Prints the scalar members of object v as " name value" separated by commas. */
static void print_members(const json_t *v) {
    const char *sep = "", *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m) {
        if (strcmp(key, "type") == 0 || json_is_object(m) || json_is_array(m))
            continue;
        char buf[SHOWN_MAX];
        printf("%s %s ", sep, shown_text(key, buf, sizeof(buf)));
        print_scalar(m);
        sep = ",";
    }
}

/* Writes a fraction v with two decimals, or "-" when it is absent. */
static const char *ratio_cell(const json_t *v, char *buf, size_t len) {
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, "%.2f", jv_num(v, 0));
    return buf;
}

/* Writes microseconds v as milliseconds with three decimals, or "-" when absent. */
static const char *ms_cell(const json_t *v, char *buf, size_t len) {
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, "%.3f", jv_num(v, 0) / 1000);
    return buf;
}

/* Prints a store's servers (a Redis Cluster's nodes: "nodes") as a table under the
   store: address, role, slots, state, script calls, items per call, the calls' mean
   and longest round trips, failed calls. */
static void print_nodes(const json_t *nodes) {
    static const char *const head[] = {"",      "NODE",       "ROLE",    "SLOTS",  "STATE",
                                       "CALLS", "ITEMS/CALL", "MEAN_MS", "MAX_MS", "ERRORS"};
    table t = {10, "lllrlrrrrr", NULL, 0};
    if (json_array_size(nodes) == 0)
        return;
    table_add(&t, head);
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        const json_t *n = json_array_get(nodes, i), *lat = json_object_get(n, "latency_us");
        char addr[SHOWN_MAX], role[SHOWN_MAX], state[SHOWN_MAX], c[6][32];
        const char *row[] = {"",
                             shown_jv(json_object_get(n, "node"), "?", addr, sizeof(addr)),
                             shown_jv(json_object_get(n, "role"), "-", role, sizeof(role)),
                             number_cell(json_object_get(n, "slots"), c[0], sizeof(c[0])),
                             shown_jv(json_object_get(n, "state"), "-", state, sizeof(state)),
                             number_cell(json_object_get(n, "calls"), c[1], sizeof(c[1])),
                             ratio_cell(json_object_get(n, "items_per_call"), c[2], sizeof(c[2])),
                             ms_cell(json_object_get(lat, "mean"), c[3], sizeof(c[3])),
                             ms_cell(json_object_get(lat, "max"), c[4], sizeof(c[4])),
                             number_cell(json_object_get(n, "errors"), c[5], sizeof(c[5]))};
        table_add(&t, row);
    }
    table_print(&t);
}

/* Prints a store's figures: "label TYPE: name value, ...", its latency (the Redis
   store's "latency_us"), a line per group of figures (errors, cache, cluster,
   sentinel...) and its nodes' table. */
static void print_store(const char *label, const json_t *store) {
    const json_t *latency = json_object_get(store, "latency_us");
    const char *key;
    json_t *group;
    char buf[SHOWN_MAX];
    if (!json_is_object(store))
        return;
    printf("%s %s:", label, shown_jv(json_object_get(store, "type"), "?", buf, sizeof(buf)));
    print_members(store);
    printf("\n");
    if (latency)
        printf("  latency: p50 %.3f ms, p99 %.3f ms, max %.3f ms (%.0f answers)\n",
               jv_num(json_object_get(latency, "p50"), 0) / 1000,
               jv_num(json_object_get(latency, "p99"), 0) / 1000,
               jv_num(json_object_get(latency, "max"), 0) / 1000,
               jv_num(json_object_get(latency, "count"), 0));
    json_object_foreach((json_t *)store, key, group) {
        if (!json_is_object(group) || group == latency)
            continue;
        printf("  %s:", shown_text(key, buf, sizeof(buf)));
        print_members(group);
        printf("\n");
    }
    print_nodes(json_object_get(store, "nodes"));
}

/* Prints seconds as "uptime 2d03h04m05s" (leading zero units left out). */
static void print_uptime(double seconds) {
    static const long units[] = {86400, 3600, 60, 1};
    static const char names[] = "dhms";
    long s = seconds > 0 ? (long)seconds : 0;
    int started = 0;
    printf("uptime ");
    for (size_t i = 0; i < 4; i++) {
        long v = s / units[i];
        s %= units[i];
        if (v || started || i == 3) {
            printf(started ? "%02ld%c" : "%ld%c", v, names[i]);
            started = 1;
        }
    }
}

static void print_stats(const json_t *root) {
    static const char *const head[] = {"POLICY",        "ALLOWED",      "DENIED",
                                       "SHADOW_DENIED", "EXEMPT",       "BLOCKED",
                                       "ERRORS",        "STORE_ERRORS", "FALLBACKS"};
    static const char *const fields[] = {"allowed", "denied", "shadow_denied", "exempt",
                                         "blocked", "errors", "store_errors",  "fallbacks"};
    const json_t *denials = json_object_get(root, "denial_log");
    const json_t *policies = json_object_get(root, "policies");
    char conns[32];
    print_uptime(jv_num(json_object_get(root, "uptime_s"), 0));
    printf(", connections %s, in flight %.0f, refused %.0f, reloads %.0f (%.0f refused)\n",
           number_cell(json_object_get(root, "connections"), conns, sizeof(conns)),
           jv_num(json_object_get(root, "in_flight"), 0),
           jv_num(json_object_get(root, "refused"), 0), jv_num(json_object_get(root, "reloads"), 0),
           jv_num(json_object_get(root, "reload_failures"), 0));
    print_store("store", json_object_get(root, "store"));
    print_store("local store", json_object_get(root, "local_store"));
    if (denials)
        printf("denial log: %.0f lines, %.0f suppressed, %.0f write errors\n",
               jv_num(json_object_get(denials, "lines"), 0),
               jv_num(json_object_get(denials, "suppressed"), 0),
               jv_num(json_object_get(denials, "errors"), 0));
    printf("\n");
    table t = {9, "lrrrrrrrr", NULL, 0};
    table_add(&t, head);
    for (size_t i = 0; i < json_array_size(policies); i++) {
        const json_t *p = json_array_get(policies, i);
        char cells[8][32], name[SHOWN_MAX];
        const char *row[9] = {shown_jv(json_object_get(p, "name"), "?", name, sizeof(name))};
        for (size_t f = 0; f < 8; f++)
            row[f + 1] = number_cell(json_object_get(p, fields[f]), cells[f], sizeof(cells[f]));
        table_add(&t, row);
    }
    table_print(&t);
}

/* Returns the exact bytes of a TOP key in buf (from key_hex, else key) and their count
   in *len. */
static const char *top_key_bytes(const json_t *key, char *buf, size_t buflen, size_t *len) {
    const json_t *hex = json_object_get(key, "key_hex"), *text = json_object_get(key, "key");
    size_t n = 0, digits = json_string_length(hex);
    unsigned byte;
    if (json_is_string(hex) && digits % 2 == 0) {
        const char *h = json_string_value(hex);
        for (; n < digits / 2 && n < buflen && sscanf(h + 2 * n, "%2x", &byte) == 1; n++)
            buf[n] = (char)byte;
        if (n == digits / 2) {
            *len = n;
            return buf;
        }
    }
    *len = json_is_string(text) ? json_string_length(text) : 1;
    return json_is_string(text) ? json_string_value(text) : "?";
}

/* Writes a TOP key as people see it: its bytes escaped (shown), then, if the daemon
   kept only its first bytes, "... (N bytes)" (after a space, which no escaped key
   holds, so no key can pass for a cut one). */
static const char *top_key_cell(const json_t *key, char *buf, size_t buflen) {
    char bytes[1024];
    size_t len;
    const char *k = top_key_bytes(key, bytes, sizeof(bytes), &len);
    shown(k, len, buf, buflen);
    if (json_object_get(key, "truncated"))
        snprintf(buf + strlen(buf), buflen - strlen(buf), "... (%.0f bytes)",
                 jv_num(json_object_get(key, "key_len"), 0));
    return buf;
}

static void print_top(const json_t *root) {
    static const char *const head[] = {"POLICY", "KEY", "DENIED", "ERROR"};
    const json_t *policies = json_object_get(root, "policies");
    double window = jv_num(json_object_get(root, "window_s"), 60);
    table t = {4, "llrr", NULL, 0};
    table_add(&t, head);
    for (size_t i = 0; i < json_array_size(policies); i++) {
        const json_t *p = json_array_get(policies, i), *keys = json_object_get(p, "keys");
        for (size_t k = 0; k < json_array_size(keys); k++) {
            const json_t *key = json_array_get(keys, k);
            char cell[SHOWN_MAX], name[SHOWN_MAX], denied[32], error[32];
            const char *row[] = {
                shown_jv(json_object_get(p, "name"), "?", name, sizeof(name)),
                top_key_cell(key, cell, sizeof(cell)),
                number_cell(json_object_get(key, "denied"), denied, sizeof(denied)),
                number_cell(json_object_get(key, "error"), error, sizeof(error))};
            table_add(&t, row);
        }
    }
    if (t.rows > 1) {
        table_print(&t);
        return;
    }
    table_free(&t);
    printf("no denied keys in the last %.0f to %.0f seconds\n", window, 2 * window);
}

static void print_leases(const json_t *root) {
    static const char *const head[] = {"KEY", "LEASE", "SLOTS", "EXPIRES_IN"};
    const json_t *leases = json_object_get(root, "leases");
    table t = {4, "llrr", NULL, 0};
    table_add(&t, head);
    for (size_t i = 0; i < json_array_size(leases); i++) {
        const json_t *l = json_array_get(leases, i);
        char cell[SHOWN_MAX], id[64], slots[32], expires[32];
        const char *row[] = {
            top_key_cell(l, cell, sizeof(cell)),
            shown_jv(json_object_get(l, "lease"), "?", id, sizeof(id)),
            number_cell(json_object_get(l, "slots"), slots, sizeof(slots)),
            period_cell(jv_num(json_object_get(l, "expires_in_ms"), 0), expires, sizeof(expires))};
        table_add(&t, row);
    }
    size_t listed = t.rows - 1;
    if (listed)
        table_print(&t);
    else
        table_free(&t);
    if (!listed && !json_is_true(json_object_get(root, "truncated")))
        printf("no leases held\n");
    if (json_is_true(json_object_get(root, "truncated")))
        printf("(truncated: more leases are held than the daemon lists)\n");
}

/* Prints an admin answer for people. Returns an exit status. */
static int print_admin(int opcode, const char *text) {
    json_t *root = jv_parse(text);
    char buf[SHOWN_MAX];
    if (!root) {
        fprintf(stderr, "rlimitctl: the daemon's answer is not JSON: %s\n",
                shown_text(text, buf, sizeof(buf)));
        return EXIT_ERROR;
    }
    if (opcode == RL_OP_POLICIES)
        print_policies(root);
    else if (opcode == RL_OP_STATS)
        print_stats(root);
    else if (opcode == RL_OP_TOP)
        print_top(root);
    else if (opcode == RL_OP_LEASES)
        print_leases(root);
    else
        printf("reloaded: %.0f policies\n", jv_num(json_object_get(root, "policies"), 0));
    json_decref(root);
    return EXIT_ALLOWED;
}

/* Explains an admin command's error status (with the daemon's reason, if it gave one). */
static int admin_failed(const options *o, const rl_result *r, const char *policy,
                        const char *text) {
    json_t *root = *text ? jv_parse(text) : NULL;
    char buf[SHOWN_MAX];
    const json_t *error = json_object_get(root, "error");
    const char *why =
        json_is_string(error) ? shown_text(json_string_value(error), buf, sizeof(buf)) : NULL;
    if (o->json && *text)
        printf("%s\n", text);
    if (why)
        fprintf(stderr, "rlimitctl: %s: %s\n", rl_status_name(r->status), why);
    else
        status_error(r, policy, 0);
    json_decref(root);
    return EXIT_ERROR;
}

static int run_admin(rl_client *c, const options *o, int opcode, const char *command) {
    const char *policy = NULL;
    char *text = NULL;
    rl_result r;
    int rc;
    if (opcode == RL_OP_LEASES && (o->arg_count < 2 || o->arg_count > 3))
        return usage_error("leases takes POLICY [KEY]");
    if (opcode == RL_OP_TOP && o->arg_count == 2)
        policy = o->args[1];
    else if (opcode != RL_OP_LEASES && o->arg_count != 1)
        return usage_error("%s: too many arguments", command);
    if (opcode == RL_OP_LEASES) {
        policy = o->args[1];
        rc = rl_client_leases(c, policy, o->arg_count == 3 ? o->args[2] : "", &text, &r);
    } else {
        rc = rl_client_admin(c, opcode, policy, o->top_keys, &text, &r);
    }
    if (rc != RLC_OK)
        return client_error(c, rc);
    int status = EXIT_ALLOWED;
    if (r.status != RL_ST_OK)
        status = admin_failed(o, &r, policy ? policy : "", text);
    else if (o->json)
        printf("%s\n", text);
    else
        status = print_admin(opcode, text);
    free(text);
    return status;
}

static int admin_opcode(const char *command) {
    if (strcmp(command, "policies") == 0)
        return RL_OP_POLICIES;
    if (strcmp(command, "stats") == 0)
        return RL_OP_STATS;
    if (strcmp(command, "top") == 0)
        return RL_OP_TOP;
    if (strcmp(command, "reload") == 0)
        return RL_OP_RELOAD;
    if (strcmp(command, "leases") == 0)
        return RL_OP_LEASES;
    return 0;
}

static int is_item_command(const char *command) {
    return strcmp(command, "check") == 0 || strcmp(command, "peek") == 0 ||
           strcmp(command, "adjust") == 0 || strcmp(command, "reset") == 0;
}

static int is_lease_command(const char *command) {
    return strcmp(command, "acquire") == 0 || strcmp(command, "release") == 0 ||
           strcmp(command, "renew") == 0;
}

// Sends the token of o->token_file, if any. Returns 0, or -1 after saying why not.
static int authenticate(rl_client *c, const options *o) {
    char err[512];
    size_t len;
    rl_result r;
    if (!o->token_file)
        return 0;
    char *token = rl_client_read_token(o->token_file, &len, err, sizeof(err));
    if (!token) {
        fprintf(stderr, "rlimitctl: token file %s\n", err);
        return -1;
    }
    int rc = rl_client_auth(c, token, len, &r);
    explicit_bzero(token, len);
    free(token);
    if (rc == RLC_OK && r.status == RL_ST_OK)
        return 0;
    fprintf(stderr, "rlimitctl: authentication failed: %s\n",
            rc != RLC_OK ? rl_client_errstr(rc) : rl_status_name(r.status));
    return -1;
}

static int run(const options *o) {
    const char *command = o->args[0];
    int opcode = admin_opcode(command);
    if (!opcode && !is_item_command(command) && !is_lease_command(command) &&
        strcmp(command, "ping") != 0)
        return usage_error("unknown command %s", command);
    char err[512];
    rl_client *c = rl_client_connect(o->address, o->timeout_ms, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "rlimitctl: %s\n", err);
        return EXIT_ERROR;
    }
    int status;
    if (authenticate(c, o) != 0)
        status = EXIT_ERROR;
    else if (opcode)
        status = run_admin(c, o, opcode, command);
    else if (strcmp(command, "ping") == 0)
        status = run_ping(c, o);
    else if (strcmp(command, "acquire") == 0)
        status = run_acquire(c, o);
    else if (is_lease_command(command))
        status = run_lease(c, o, command);
    else
        status = run_item(c, o, command);
    rl_client_close(c);
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "replay") == 0)
        return rl_replay_main(argc - 1, argv + 1); /* offline: no daemon, no socket */
    options o = {.timeout_ms = DEFAULT_TIMEOUT_MS, .top_keys = DEFAULT_TOP_KEYS};
    o.address = getenv("RLIMITD_ADDRESS");
    if (!o.address || !*o.address)
        o.address = DEFAULT_ADDRESS;
    o.token_file = getenv("RLIMITD_TOKEN_FILE");
    if (o.token_file && !*o.token_file)
        o.token_file = NULL;
    int status = parse_args(argc, argv, &o);
    if (status >= 0)
        return status;
    status = run(&o);
    if (fflush(stdout) != 0 && status != EXIT_ERROR) {
        fprintf(stderr, "rlimitctl: write: %s\n", strerror(errno));
        status = EXIT_ERROR;
    }
    return status;
}
