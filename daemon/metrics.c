/*
 * metrics.c: STATS JSON to Prometheus text.
 */
#include "metrics.h"

#include <jansson.h>
#include <stdarg.h>
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

static json_int_t int_of(json_t *o, const char *field) {
    return json_integer_value(json_object_get(o, field));
}

// One line per policy of field, as name{policy="..."[,result="..."]}.
static void per_policy(text *t, json_t *policies, const char *name, const char *field,
                       const char *result) {
    size_t i;
    json_t *p;
    json_array_foreach(policies, i, p) {
        put(t, "%s{policy=\"", name);
        put_label(t, json_string_value(json_object_get(p, "name")));
        if (result)
            put(t, "\",result=\"%s", result);
        put(t, "\"} %lld\n", (long long)int_of(p, field));
    }
}

static void decisions(text *t, json_t *policies) {
    static const char *const results[][2] = {{"allowed", "allowed"},
                                             {"denied", "denied"},
                                             {"shadow_denied", "shadow_denied"},
                                             {"errors", "error"}};
    family(t, "rlimitd_decisions_total", "counter", "Items answered, by policy and result.");
    for (size_t r = 0; r < 4; r++)
        per_policy(t, policies, "rlimitd_decisions_total", results[r][0], results[r][1]);
    static const char *const others[][3] = {
        {"rlimitd_exempt_total", "exempt", "Items allowed because the key is exempt."},
        {"rlimitd_blocked_total", "blocked", "Items denied because the key is blocked."},
        {"rlimitd_store_errors_total", "store_errors", "Items the store failed to decide."},
        {"rlimitd_fallbacks_total", "fallbacks", "Items answered by on_store_error."}};
    for (size_t i = 0; i < 4; i++) {
        family(t, others[i][0], "counter", others[i][2]);
        per_policy(t, policies, others[i][0], others[i][1], NULL);
    }
}

static void scalar(text *t, json_t *o, const char *field, const char *name, const char *type,
                   const char *help) {
    json_t *v = json_object_get(o, field);
    if (!json_is_integer(v))
        return;
    family(t, name, type, help);
    put(t, "%s %lld\n", name, (long long)json_integer_value(v));
}

// Seconds from a JSON number of microseconds.
static double seconds(json_t *us) {
    return json_is_number(us) ? json_number_value(us) / 1e6 : 0;
}

// The store's latency, if it measures one ("latency_us": {count, p50, p99, max, and
// optionally sum and buckets: [[LE_US, CUMULATIVE], ...]}): a histogram when it gives
// buckets, else a summary of its p50 and p99; the maximum as a gauge.
static void latency(text *t, json_t *store) {
    json_t *lat = json_object_get(store, "latency_us");
    json_t *buckets = json_object_get(lat, "buckets"), *sum = json_object_get(lat, "sum");
    const char *name = "rlimitd_store_latency_seconds";
    if (!json_is_object(lat))
        return;
    family(t, name, buckets ? "histogram" : "summary", "Store round trips, submit to answer.");
    size_t i;
    json_t *b;
    json_array_foreach(buckets, i, b) {
        put(t, "%s_bucket{le=\"%g\"} %lld\n", name, seconds(json_array_get(b, 0)),
            (long long)json_integer_value(json_array_get(b, 1)));
    }
    if (buckets)
        put(t, "%s_bucket{le=\"+Inf\"} %lld\n", name, (long long)int_of(lat, "count"));
    else
        put(t, "%s{quantile=\"0.5\"} %g\n%s{quantile=\"0.99\"} %g\n", name,
            seconds(json_object_get(lat, "p50")), name, seconds(json_object_get(lat, "p99")));
    if (sum)
        put(t, "%s_sum %g\n", name, seconds(sum));
    put(t, "%s_count %lld\n", name, (long long)int_of(lat, "count"));
    if (json_object_get(lat, "max")) {
        family(t, "rlimitd_store_latency_max_seconds", "gauge", "The longest store round trip.");
        put(t, "rlimitd_store_latency_max_seconds %g\n", seconds(json_object_get(lat, "max")));
    }
}

static void render(text *t, json_t *root) {
    json_t *store = json_object_get(root, "store");
    json_t *denials = json_object_get(root, "denial_log");
    decisions(t, json_object_get(root, "policies"));
    scalar(t, root, "connections", "rlimitd_connections", "gauge",
           "Open connections of the binary protocol.");
    scalar(t, root, "in_flight", "rlimitd_in_flight", "gauge", "Requests being decided.");
    scalar(t, root, "uptime_s", "rlimitd_uptime_seconds", "gauge", "Seconds since the start.");
    scalar(t, root, "refused", "rlimitd_refused_total", "counter",
           "Frames refused before decoding (busy, too large...).");
    scalar(t, root, "reloads", "rlimitd_reloads_total", "counter", "Config reloads applied.");
    scalar(t, root, "reload_failures", "rlimitd_reload_failures_total", "counter",
           "Config reloads refused.");
    scalar(t, store, "keys", "rlimitd_store_keys", "gauge", "Keys held by the store.");
    scalar(t, denials, "lines", "rlimitd_denial_log_lines_total", "counter",
           "Denial log lines written.");
    scalar(t, denials, "suppressed", "rlimitd_denial_log_suppressed_total", "counter",
           "Denial log lines dropped by its own limit.");
    latency(t, store);
}

char *rl_metrics_render(const char *stats_json, size_t len, size_t *out_len) {
    json_t *root = json_loadb(stats_json, len, 0, NULL);
    text t = {NULL, 0, 0, 0};
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    render(&t, root);
    json_decref(root);
    if (t.failed || !t.buf) {
        rl_free(t.buf);
        return NULL;
    }
    *out_len = t.len;
    return t.buf;
}
