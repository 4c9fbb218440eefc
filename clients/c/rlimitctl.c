/*
 * rlimitctl: the operators' command line for rlimitd.
 *
 *   rlimitctl [-s ADDR] [-t TIMEOUT_MS] [--json] COMMAND [ARGS]
 *
 * Decisions (check, peek, adjust) exit 0 when allowed, 1 when denied; every other
 * command exits 0 on success; any error exits 2 with a message on stderr.
 */
#include "rlimit.h"

#include <errno.h>
#include <inttypes.h>
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
    "  ping                         check that the daemon answers\n"
    "  policies                     the loaded policies (JSON)\n"
    "  stats                        the daemon's counters (JSON)\n"
    "  top [POLICY] [-k N]          the N most denied keys (default 10; JSON)\n"
    "  reload                       reload the configuration\n"
    "\n"
    "options:\n"
    "  -s ADDR        unix:PATH or tcp:HOST:PORT (default: $RLIMITD_ADDRESS, else\n"
    "                 " DEFAULT_ADDRESS ")\n"
    "  -t TIMEOUT_MS  connect and answer timeout (default 2000)\n"
    "  --json         print the answer as JSON, on one line\n"
    "  -h, --help     print this help\n"
    "\n"
    "exit status: 0 allowed or done, 1 denied, 2 error\n";

/* What the command line asks for. */
typedef struct options {
    const char *address; /* -s, else $RLIMITD_ADDRESS, else the default */
    int timeout_ms;      /* -t */
    int json;            /* --json */
    int64_t n;           /* -n COST or DELTA */
    int has_n;           /* -n was given */
    uint32_t top_keys;   /* -k N */
    const char *args[4]; /* positional arguments: the command and its operands */
    int arg_count;       /* positional arguments given */
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

static void print_result_json(const rl_result *r) {
    printf("{\"allowed\":%s,\"limit\":%" PRIu32 ",\"remaining\":%" PRIu32
           ",\"reset_after_ms\":%" PRIu32 ",\"retry_after_ms\":%" PRIu32 ",\"window_ms\":%" PRIu32
           ",\"status\":\"%s\",\"flags\":[",
           r->status == RL_ST_ALLOWED ? "true" : "false", r->limit, r->remaining, r->reset_after_ms,
           r->retry_after_ms, r->window_ms, rl_status_name(r->status));
    print_flags(r->flags, ",", "\"");
    printf("]}\n");
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

static void print_indent(int depth) {
    putchar('\n');
    for (int i = 0; i < depth; i++)
        fputs("  ", stdout);
}

/* Prints JSON text indented, one member per line; strings are copied untouched. */
static void print_pretty_json(const char *text) {
    int depth = 0, in_string = 0, escaped = 0;
    for (const char *p = text; *p; p++) {
        char ch = *p;
        if (in_string) {
            putchar(ch);
            in_string = escaped || ch != '"';
            escaped = !escaped && ch == '\\';
        } else if (ch == '{' || ch == '[') {
            putchar(ch);
            if (p[1] == (ch == '{' ? '}' : ']'))
                putchar(*++p);
            else
                print_indent(++depth);
        } else if (ch == '}' || ch == ']') {
            print_indent(--depth);
            putchar(ch);
        } else if (ch == ',') {
            putchar(ch);
            print_indent(depth);
        } else if (ch == ':') {
            fputs(": ", stdout);
        } else if (ch != ' ' && ch != '\n' && ch != '\t' && ch != '\r') {
            in_string = ch == '"';
            putchar(ch);
        }
    }
    putchar('\n');
}

/* Explains an error status; returns EXIT_ERROR. */
static int status_error(const rl_result *r, const char *policy, int64_t cost) {
    const char *name = rl_status_name(r->status);
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
    default:
        fprintf(stderr, "rlimitctl: %s\n", name);
    }
    return EXIT_ERROR;
}

static int client_error(rl_client *c, int rc) {
    const char *detail = rl_client_error(c);
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

static int run_admin(rl_client *c, const options *o, int opcode, const char *command) {
    const char *policy = NULL;
    char *text = NULL;
    rl_result r;
    if (opcode == RL_OP_TOP && o->arg_count == 2)
        policy = o->args[1];
    else if (o->arg_count != 1)
        return usage_error("%s: too many arguments", command);
    int rc = rl_client_admin(c, opcode, policy, o->top_keys, &text, &r);
    if (rc != RLC_OK)
        return client_error(c, rc);
    int status = EXIT_ALLOWED;
    if (r.status != RL_ST_OK) {
        status = status_error(&r, policy ? policy : "", 0);
        if (*text)
            fprintf(stderr, "%s\n", text);
    } else if (o->json) {
        printf("%s\n", text);
    } else {
        print_pretty_json(text);
    }
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
    return 0;
}

static int is_item_command(const char *command) {
    return strcmp(command, "check") == 0 || strcmp(command, "peek") == 0 ||
           strcmp(command, "adjust") == 0 || strcmp(command, "reset") == 0;
}

static int run(const options *o) {
    const char *command = o->args[0];
    int opcode = admin_opcode(command);
    if (!opcode && !is_item_command(command) && strcmp(command, "ping") != 0)
        return usage_error("unknown command %s", command);
    char err[512];
    rl_client *c = rl_client_connect(o->address, o->timeout_ms, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "rlimitctl: %s\n", err);
        return EXIT_ERROR;
    }
    int status;
    if (opcode)
        status = run_admin(c, o, opcode, command);
    else if (strcmp(command, "ping") == 0)
        status = run_ping(c, o);
    else
        status = run_item(c, o, command);
    rl_client_close(c);
    return status;
}

int main(int argc, char **argv) {
    options o = {.timeout_ms = DEFAULT_TIMEOUT_MS, .top_keys = DEFAULT_TOP_KEYS};
    o.address = getenv("RLIMITD_ADDRESS");
    if (!o.address || !*o.address)
        o.address = DEFAULT_ADDRESS;
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
