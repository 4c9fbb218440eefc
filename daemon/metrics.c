/*
 * metrics.c: a stats snapshot (stats.h) as Prometheus text.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

/* A growing text buffer; failed is set once memory ran out. */
typedef struct text {
    char *buf;  /* the text (owned) */
    size_t len; /* bytes in it */
    size_t cap; /* its size */
    int failed; /* an allocation failed: the text is incomplete */
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...) {
    va_list ap;
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
        } else if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        } else {
            size_t cap = (t->cap + (size_t)n + 1) * 2;
            char *grown = rl_realloc(t->buf, cap);
            if (!grown)
                t->failed = 1;
            else
                t->buf = grown, t->cap = cap;
        }
    }
}

// Writes a label value: backslash, quote and newline escaped.
static void put_label(text *t, const char *value) {
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            put(t, "\\%c", *p);
        else if (*p == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *p);
    }
}

static void family(text *t, const char *name, const char *type, const char *help) {
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

// One line per policy of a counter, as name{policy="..."[,result="..."]}.
static void per_policy(text *t, const rl_stats *s, const char *name, size_t offset,
                       const char *result) {
    for (size_t i = 0; i < s->policy_count; i++) {
        uint64_t value;
        memcpy(&value, (const char *)&s->policies[i].counters + offset, sizeof(value));
        put(t, "%s{policy=\"", name);
        put_label(t, s->policies[i].name);
        if (result)
            put(t, "\",result=\"%s", result);
        put(t, "\"} %" PRIu64 "\n", value);
    }
}

#define COUNTER(field) offsetof(rl_policy_counters, field)

static void decisions(text *t, const rl_stats *s) {
    static const struct {
        size_t offset;
        const char *result;
    } results[] = {{COUNTER(allowed), "allowed"},
                   {COUNTER(denied), "denied"},
                   {COUNTER(shadow_denied), "shadow_denied"},
                   {COUNTER(errors), "error"}};
    family(t, "rlimitd_decisions_total", "counter", "Items answered, by policy and result.");
    for (size_t r = 0; r < sizeof(results) / sizeof(results[0]); r++)
        per_policy(t, s, "rlimitd_decisions_total", results[r].offset, results[r].result);
    static const struct {
        const char *name;
        size_t offset;
        const char *help;
    } others[] = {
        {"rlimitd_exempt_total", COUNTER(exempt), "Items allowed because the key is exempt."},
        {"rlimitd_blocked_total", COUNTER(blocked), "Items denied because the key is blocked."},
        {"rlimitd_store_errors_total", COUNTER(store_errors), "Items the store failed to decide."},
        {"rlimitd_fallbacks_total", COUNTER(fallbacks), "Items answered by on_store_error."}};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        family(t, others[i].name, "counter", others[i].help);
        per_policy(t, s, others[i].name, others[i].offset, NULL);
    }
}

// One line per concurrency policy of a lease counter, as name{policy="..."[,event="..."]}.
static void per_lease_policy(text *t, const rl_stats *s, const char *name, size_t offset,
                             const char *event) {
    for (size_t i = 0; i < s->policy_count; i++) {
        uint64_t value;
        if (!s->policies[i].concurrency)
            continue;
        memcpy(&value, (const char *)&s->policies[i].counters + offset, sizeof(value));
        put(t, "%s{policy=\"", name);
        put_label(t, s->policies[i].name);
        if (event)
            put(t, "\",event=\"%s", event);
        put(t, "\"} %" PRIu64 "\n", value);
    }
}

// The lease counters of concurrency policies (none: nothing is written).
static void leases(text *t, const rl_stats *s) {
    static const struct {
        size_t offset;
        const char *event;
    } events[] = {{COUNTER(acquired), "acquired"},
                  {COUNTER(released), "released"},
                  {COUNTER(expired), "expired"},
                  {COUNTER(released_on_disconnect), "released_on_disconnect"},
                  {COUNTER(lease_unknown), "lease_unknown"}};
    size_t n = 0;
    for (size_t i = 0; i < s->policy_count; i++)
        n += s->policies[i].concurrency != 0;
    if (n == 0)
        return;
    family(t, "rlimitd_leases_held", "gauge",
           "Leases held now, by concurrency policy (as this instance saw them).");
    per_lease_policy(t, s, "rlimitd_leases_held", COUNTER(held), NULL);
    family(t, "rlimitd_lease_events_total", "counter",
           "Leases acquired, released, expired, released on disconnect, and RELEASE/RENEW of "
           "unknown leases, by concurrency policy.");
    for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++)
        per_lease_policy(t, s, "rlimitd_lease_events_total", events[e].offset, events[e].event);
}

static void scalar(text *t, const char *name, const char *type, const char *help, uint64_t v) {
    family(t, name, type, help);
    put(t, "%s %" PRIu64 "\n", name, v);
}

static const char *const figure_types[] = {"counter", "gauge", "gauge", "gauge", "gauge"};

// Writes f's Prometheus name: PREFIX[node_][GROUP_]NAME, with _total for a counter.
static void figure_name(char *name, size_t len, const char *prefix, const rl_figure *f) {
    snprintf(name, len, "%s%s%s%s%s%s", prefix, f->node ? "node_" : "", f->group ? f->group : "",
             f->group ? "_" : "", f->name, f->kind == RL_FIGURE_COUNTER ? "_total" : "");
}

// Writes f's sample, labelled with its node if it has one: NAME[{node="..."}] VALUE, or
// for a word NAME{[node="...",]NAME="word"} 1.
static void figure_sample(text *t, const char *name, const rl_figure *f) {
    put(t, "%s", name);
    if (f->node) {
        put(t, "{node=\"");
        put_label(t, f->node);
        put(t, "\"%s", f->kind == RL_FIGURE_WORD ? "," : "}");
    }
    if (f->kind == RL_FIGURE_WORD) {
        put(t, "%s%s=\"", f->node ? "" : "{", f->name);
        put_label(t, f->word);
        put(t, "\"} 1\n");
    } else if (f->kind == RL_FIGURE_RATIO)
        put(t, " %.17g\n", f->ratio);
    else
        put(t, " %" PRIu64 "\n", f->value);
}

// A store figure as PREFIX[GROUP_]NAME, with _total for a counter.
static void store_figure(text *t, const char *prefix, const rl_figure *f) {
    char name[160];
    figure_name(name, sizeof(name), prefix, f);
    family(t, name, figure_types[f->kind], "A store figure (STATS store, same name).");
    figure_sample(t, name, f);
}

// Returns whether a and b are the same figure (of two nodes, or of one).
static int same_figure(const rl_figure *a, const rl_figure *b) {
    return a->kind == b->kind && strcmp(a->name, b->name) == 0 &&
           (a->group == b->group || (a->group && b->group && strcmp(a->group, b->group) == 0));
}

// The family of the node figure f->list[first]: one sample per node that has it (the
// figures from first on), each marked in done. Prometheus wants a family's samples
// together, and a store adds its figures node by node.
static void node_family(text *t, const char *prefix, const rl_store_figures *f, size_t first,
                        char *done) {
    char name[160];
    figure_name(name, sizeof(name), prefix, &f->list[first]);
    family(t, name, figure_types[f->list[first].kind],
           "A figure of each store node (STATS store nodes, same name).");
    for (size_t i = first; i < f->count; i++) {
        if (!f->list[i].node || done[i] || !same_figure(&f->list[first], &f->list[i]))
            continue;
        figure_sample(t, name, &f->list[i]);
        done[i] = 1;
    }
}

// The store's latency, if it measures one: a summary of its p50 and p99 and the count,
// and the maximum as a gauge.
static void latency(text *t, const char *prefix, const rl_latency_figures *l) {
    char name[96];
    if (!l->present)
        return;
    snprintf(name, sizeof(name), "%slatency_seconds", prefix);
    family(t, name, "summary", "Store round trips, submit to answer.");
    put(t, "%s{quantile=\"0.5\"} %g\n%s{quantile=\"0.99\"} %g\n", name, (double)l->p50_us / 1e6,
        name, (double)l->p99_us / 1e6);
    put(t, "%s_count %" PRIu64 "\n", name, l->count);
    snprintf(name, sizeof(name), "%slatency_max_seconds", prefix);
    family(t, name, "gauge", "The longest store round trip.");
    put(t, "%s %g\n", name, (double)l->max_us / 1e6);
}

// The store's figures in their order, a node figure's family where its first sample
// was, then its latency.
static void store(text *t, const char *prefix, const rl_store_figures *f) {
    char *done = f->count ? rl_calloc(f->count, 1) : NULL;
    if (f->count && !done) {
        t->failed = 1;
        return;
    }
    for (size_t i = 0; i < f->count; i++) {
        if (!f->list[i].node)
            store_figure(t, prefix, &f->list[i]);
        else if (!done[i])
            node_family(t, prefix, f, i, done);
    }
    rl_free(done);
    latency(t, prefix, &f->latency);
}

static void engine_figures(text *t, const rl_stats *s) {
    if (s->has_connections)
        scalar(t, "rlimitd_connections", "gauge", "Open connections of the binary protocol.",
               s->connections);
    scalar(t, "rlimitd_in_flight", "gauge", "Requests being decided.", s->in_flight);
    scalar(t, "rlimitd_uptime_seconds", "gauge", "Seconds since the start.", s->uptime_s);
    scalar(t, "rlimitd_refused_total", "counter",
           "Frames refused before decoding (busy, too large...).", s->refused);
    scalar(t, "rlimitd_reloads_total", "counter", "Config reloads applied.", s->reloads);
    scalar(t, "rlimitd_reload_failures_total", "counter", "Config reloads refused.",
           s->reload_failures);
    scalar(t, "rlimitd_refused_peers_total", "counter",
           "Connections refused for their peer's uid or gid.", s->refused_peers);
    scalar(t, "rlimitd_auth_failures_total", "counter", "Wrong tokens (AUTH, HTTP bearer).",
           s->auth_failures);
    if (!s->has_denial_log)
        return;
    scalar(t, "rlimitd_denial_log_lines_total", "counter", "Denial log lines written.",
           s->denial_lines);
    scalar(t, "rlimitd_denial_log_suppressed_total", "counter",
           "Denial log lines dropped by its own limit.", s->denial_suppressed);
    scalar(t, "rlimitd_denial_log_errors_total", "counter",
           "Denial log lines that could not be written.", s->denial_errors);
}

char *rl_metrics_render(const rl_stats *s, size_t *out_len) {
    text t = {NULL, 0, 0, 0};
    decisions(&t, s);
    leases(&t, s);
    engine_figures(&t, s);
    store(&t, "rlimitd_store_", &s->store);
    if (s->has_local)
        store(&t, "rlimitd_local_store_", &s->local);
    if (t.failed || !t.buf) {
        rl_free(t.buf);
        return NULL;
    }
    *out_len = t.len;
    return t.buf;
}
