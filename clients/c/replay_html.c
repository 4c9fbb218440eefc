/*
 * replay_html.c: the HTML report of `rlimitctl replay --html`, rendered from the object
 * `rlimitctl replay --json` prints (README "Replay").
 *
 * One self-contained page: inline CSS and SVG, no script, no font or URL from the
 * network. Every string taken from the report (configs, policy names, keys, reasons) is
 * shown through rl_escape (controls, bidi and invisible characters as \xHH, so that no key
 * looks like another) and then HTML-escaped (& < > " '), so that a key such as
 * <script>alert(1)</script> from a hostile log is text, never markup.
 *
 * Layout, with the hooks tests select on:
 *
 *   table.overview        td[data-field=lines|requests|malformed|unmatched|step_s]
 *   section.policy[data-policy=NAME]      every policy of every run, the first run's first
 *     table.summary       one column per run: td[data-field=F][data-run=R]
 *     svg.series          offered vs admitted per step (path.offered, path.admitted[data-run])
 *     svg.top-keys        a bar per top denied key and run (rect.bar[data-run])
 *     table.top-denied    the top keys' figures: tr[data-key] td[data-field][data-run]
 *   table.changes         (two runs) the keys whose denials change
 *
 * Attributes data-policy and data-key hold the shown (escaped) form of the name or key.
 * A key the report escaped already ("escaped": true, "key_hex") is shown as its "key".
 */
#include "replay.h"

#include "alloc.h"
#include "escape.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#define SHOWN 0x100   /* put_shown: the string is escaped already (a key with "escaped") */
#define KEY_CHARS 40  /* characters of a key shown in a chart (whole in its tooltip) */
#define MAX_RUNS 2    /* runs drawn: the config and the --compare config */
#define X_TICKS_MAX 8 /* at most this many labelled times on a time axis */
#define Y_TICKS_MAX 5 /* about this many labelled values on a value axis */

/* The drawing area of a chart (SVG user units). */
typedef struct frame {
    double left, right, top, bottom;
} frame;

/* One run's time series of a policy, checked. */
typedef struct series {
    int64_t start_us;       /* start of the first step */
    int64_t step_s;         /* seconds per point */
    const json_t *offered;  /* integers, len of them */
    const json_t *admitted; /* integers, len of them */
    size_t len;             /* points */
} series;

/* A policy's section being drawn: the policy as each run has it (NULL: not in that run). */
typedef struct section {
    const char *name;
    size_t name_len;
    const json_t *policy[MAX_RUNS];
    const char *config[MAX_RUNS]; /* each run's config path, or "" */
    size_t runs;
} section;

/* Writes s (len bytes) HTML-escaped: & < > " ' as references, every other byte as is. */
static void put_html(FILE *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            putc(s[i], out);
        }
    }
}

/* Returns how many bytes of s (len bytes of UTF-8) hold its first chars characters. */
static size_t utf8_prefix(const char *s, size_t len, size_t chars) {
    size_t i = 0;
    for (size_t n = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && n++ == chars)
            break;
    }
    return i;
}

/* Writes s (len bytes) as shown: rl_escape'd under flags (UTF-8 kept; with SHOWN as it
 * is), HTML-escaped, cut to max_chars characters and an ellipsis when longer (0: whole).
 * Returns 0, or -1 if out of memory. */
static int put_shown(FILE *out, const char *s, size_t len, int flags, size_t max_chars) {
    int shown_flag = flags & SHOWN;
    flags = (flags & ~SHOWN) | RL_ESCAPE_UTF8;
    size_t need = shown_flag ? len : rl_escape(s, len, flags, NULL, 0);
    char *shown = rl_malloc(need + 1);
    if (!shown)
        return -1;
    if (shown_flag)
        memcpy(shown, s, len);
    else
        rl_escape(s, len, flags, shown, need + 1);
    size_t keep = max_chars ? utf8_prefix(shown, need, max_chars) : need;
    if (keep < need)
        keep = utf8_prefix(shown, need, max_chars - 1);
    put_html(out, shown, keep);
    if (keep < need)
        fputs("\xe2\x80\xa6", out);
    rl_free(shown);
    return 0;
}

/* Returns the put_shown flags of a report entry's "key": SHOWN if the report escaped it. */
static int key_flags(const json_t *entry) {
    return json_is_true(json_object_get(entry, "escaped")) ? SHOWN : 0;
}

/* Writes the string value v as shown (see put_shown); a non-string as an em dash. */
static int put_string(FILE *out, const json_t *v, int flags, size_t max_chars) {
    if (!json_is_string(v)) {
        fputs("&#8212;", out);
        return 0;
    }
    return put_shown(out, json_string_value(v), json_string_length(v), flags, max_chars);
}

/* Writes a number as the report has it: an integer in digits, a real with two decimals,
 * anything else as an em dash. */
static void put_number(FILE *out, const json_t *v) {
    if (json_is_integer(v))
        fprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        fprintf(out, "%.2f", json_real_value(v));
    else
        fputs("&#8212;", out);
}

/* The forms a time is shown in (UTC). */
typedef enum time_form {
    TIME_FULL,       /* 2024-12-04 08:13:20 */
    TIME_DAY,        /* 12-04 */
    TIME_DAY_MINUTE, /* 12-04 08:13 */
    TIME_SECOND,     /* 08:13:20 */
    TIME_MINUTE,     /* 08:13 */
} time_form;

/* Writes tm in form to text (size bytes); returns strftime's result. */
static size_t format_time(char *text, size_t size, const struct tm *tm, time_form form) {
    switch (form) {
    case TIME_DAY:
        return strftime(text, size, "%m-%d", tm);
    case TIME_DAY_MINUTE:
        return strftime(text, size, "%m-%d %H:%M", tm);
    case TIME_SECOND:
        return strftime(text, size, "%H:%M:%S", tm);
    case TIME_MINUTE:
        return strftime(text, size, "%H:%M", tm);
    default:
        return strftime(text, size, "%Y-%m-%d %H:%M:%S", tm);
    }
}

/* Writes the UTC time at_us (microseconds since the epoch) in form. */
static void put_time(FILE *out, int64_t at_us, time_form form) {
    time_t t = (time_t)(at_us / 1000000 - (at_us % 1000000 < 0));
    struct tm tm;
    char text[64];
    if (!gmtime_r(&t, &tm) || !format_time(text, sizeof(text), &tm, form))
        snprintf(text, sizeof(text), "%" PRId64 " us", at_us);
    fputs(text, out);
}

/* Returns the integer at key in object (0 if absent or not an integer). */
static int64_t int_at(const json_t *object, const char *key) {
    return json_integer_value(json_object_get(object, key));
}

/* ---- page frame ---- */

static const char page_style[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;color:#202124;margin:24px auto;"
    "max-width:1040px;padding:0 16px;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px}"
    "h3{font-size:14px;margin:16px 0 6px;color:#5f6368}"
    "section.policy{border-top:2px solid #dadce0;padding-top:16px;margin-top:24px}"
    "table{border-collapse:collapse;font-size:13px;margin:4px 0 12px}"
    "th,td{border:1px solid #dadce0;padding:3px 8px;text-align:right}"
    "th{background:#f1f3f4;font-weight:600}th.row,td.key{text-align:left}"
    "td.key{font-family:'DejaVu Sans Mono',monospace;word-break:break-all;max-width:420px}"
    "svg{display:block;width:100%;height:auto;margin:4px 0 8px}"
    "svg text{font-family:'DejaVu Sans',Verdana,sans-serif;font-size:11px;fill:#3c4043}"
    "svg text.title{font-size:12px;font-weight:600}"
    "svg .grid{stroke:#e8eaed;stroke-width:1}svg .axis{stroke:#5f6368;stroke-width:1}"
    "path.offered{fill:none;stroke:#80868b;stroke-width:1.5}"
    "path.admitted{fill:none;stroke-width:1.5}path.denied-area{fill:#d93025;fill-opacity:.18}"
    ".run0{stroke:#1a73e8;fill:#1a73e8}.run1{stroke:#e8710a;fill:#e8710a}"
    "path.run1{stroke-dasharray:5 3}rect.bar{stroke:none}"
    "svg text.key{font-family:'DejaVu Sans Mono',monospace}"
    "p.note{color:#5f6368;font-size:13px}ul.malformed{font-size:13px}";

/* Writes the page's head, up to the body's first element. */
static void put_head(FILE *out) {
    fprintf(out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>rlimitd policy replay</title>\n<style>%s</style>\n</head>\n<body>\n",
            page_style);
}

/* Writes one overview row: a label and the number at key, tagged data-field=key. */
static void put_overview_row(FILE *out, const char *label, const json_t *report, const char *key) {
    fprintf(out, "<tr><th class=\"row\">%s</th><td data-field=\"%s\">", label, key);
    put_number(out, json_object_get(report, key));
    fputs("</td></tr>\n", out);
}

/* Writes the page's heading and the whole log's figures. Returns 0, or -1 (memory). */
static int put_overview(FILE *out, const json_t *report) {
    const json_t *configs = json_object_get(report, "configs"), *span;
    size_t i;
    const json_t *config;
    int rc = 0;
    fputs("<header>\n<h1>Policy replay</h1>\n<p class=\"note\">Config", out);
    fputs(json_array_size(configs) > 1 ? "s compared: " : ": ", out);
    json_array_foreach(configs, i, config) {
        fputs(i ? " <b>vs</b> <code>" : "<code>", out);
        rc |= put_string(out, config, RL_ESCAPE_KEEP_SPACE, 0);
        fputs("</code>", out);
    }
    fputs("</p>\n<table class=\"overview\">\n", out);
    put_overview_row(out, "log lines", report, "lines");
    put_overview_row(out, "requests", report, "requests");
    put_overview_row(out, "malformed lines", report, "malformed");
    put_overview_row(out, "unmatched (no policy)", report, "unmatched");
    if (json_object_get(report, "exempt"))
        put_overview_row(out, "exempt (not limited)", report, "exempt");
    put_overview_row(out, "seconds per point", report, "step_s");
    span = json_object_get(report, "span");
    if (json_is_object(span)) {
        fputs("<tr><th class=\"row\">span (UTC)</th><td data-field=\"span\">", out);
        put_time(out, int_at(span, "first_us"), TIME_FULL);
        fputs(" &#8211; ", out);
        put_time(out, int_at(span, "last_us"), TIME_FULL);
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
    return rc;
}

/* Writes the first malformed lines the report names, if any. Returns 0, or -1. */
static int put_malformed(FILE *out, const json_t *report) {
    const json_t *examples = json_object_get(report, "malformed_examples"), *example;
    size_t i;
    int rc = 0;
    if (!json_array_size(examples))
        return 0;
    fputs("<h3>First malformed lines</h3>\n<ul class=\"malformed\">\n", out);
    json_array_foreach(examples, i, example) {
        fputs("<li>line ", out);
        put_number(out, json_object_get(example, "line"));
        fputs(": ", out);
        rc |= put_string(out, json_object_get(example, "reason"), RL_ESCAPE_KEEP_SPACE, 0);
        fputs("</li>\n", out);
    }
    fputs("</ul>\n", out);
    return rc;
}

/* ---- axes ---- */

/* Returns a step of 1, 2 or 5 times a power of ten such that max / step <= ticks. */
static int64_t nice_step(int64_t max, int64_t ticks) {
    int64_t step = 1;
    for (;;) {
        static const int64_t factors[] = {1, 2, 5};
        for (size_t i = 0; i < 3; i++) {
            if (max <= step * factors[i] * ticks)
                return step * factors[i];
        }
        step *= 10;
    }
}

/* Returns a time step (seconds) from a round list such that span_s / step <= X_TICKS_MAX. */
static int64_t time_step(int64_t span_s) {
    static const int64_t steps[] = {1,     2,     5,     10,    15,     30,    60,
                                    120,   300,   600,   900,   1800,   3600,  7200,
                                    10800, 21600, 43200, 86400, 172800, 604800};
    size_t count = sizeof(steps) / sizeof(steps[0]);
    for (size_t i = 0; i < count; i++) {
        if (span_s <= steps[i] * X_TICKS_MAX)
            return steps[i];
    }
    return (span_s / X_TICKS_MAX / 86400 + 1) * 86400;
}

/* Maps v in [lo, hi] to [to_lo, to_hi]. */
static double scale(double v, double lo, double hi, double to_lo, double to_hi) {
    return hi > lo ? to_lo + (v - lo) * (to_hi - to_lo) / (hi - lo) : to_lo;
}

/* Writes the value axis of a chart: grid lines and labels from 0 to top in steps. */
static void put_y_axis(FILE *out, const frame *f, int64_t top, int64_t step, const char *title) {
    for (int64_t v = 0; v <= top; v += step) {
        double y = scale((double)v, 0, (double)top, f->bottom, f->top);
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                f->left, y, f->right, y);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%" PRId64 "</text>\n",
                f->left - 6, y + 4, v);
    }
    fprintf(out,
            "<text class=\"title\" transform=\"translate(14 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">%s</text>\n",
            (f->top + f->bottom) / 2, title);
}

/* Writes the time axis of a chart over [t0_s, t1_s]: ticks and UTC labels. */
static void put_x_axis(FILE *out, const frame *f, int64_t t0_s, int64_t t1_s) {
    int64_t step = time_step(t1_s - t0_s), first = (t0_s + step - 1) / step * step;
    fprintf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            f->left, f->bottom, f->right, f->bottom);
    for (int64_t t = first; t <= t1_s; t += step) {
        double x = scale((double)t, (double)t0_s, (double)t1_s, f->left, f->right);
        fprintf(out, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x,
                f->bottom, x, f->bottom + 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, f->bottom + 18);
        put_time(out, t * 1000000,
                 step >= 86400         ? TIME_DAY
                 : t1_s - t0_s > 86400 ? TIME_DAY_MINUTE
                 : step < 60           ? TIME_SECOND
                                       : TIME_MINUTE);
        fputs("</text>\n", out);
    }
    fprintf(out,
            "<text class=\"title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time (UTC), from ",
            (f->left + f->right) / 2, f->bottom + 36);
    put_time(out, t0_s * 1000000, TIME_FULL);
    fputs("</text>\n", out);
}

/* ---- time series ---- */

/* Reads policy's series into s. Returns 1 if it has one, 0 if not, -1 if it is malformed
 * (a step below 1 s, lengths that differ, a value that is not a count). */
static int read_series(const json_t *policy, series *s) {
    const json_t *object = json_object_get(policy, "series"), *v;
    size_t i;
    if (!object)
        return 0;
    s->start_us = int_at(object, "start_us");
    s->step_s = int_at(object, "step_s");
    s->offered = json_object_get(object, "offered");
    s->admitted = json_object_get(object, "admitted");
    s->len = json_array_size(s->offered);
    if (s->step_s < 1 || !json_is_array(s->offered) || !json_is_array(s->admitted) ||
        json_array_size(s->admitted) != s->len)
        return -1;
    for (i = 0; i < s->len; i++) {
        v = json_array_get(s->offered, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            !json_is_integer(json_array_get(s->admitted, i)) ||
            json_integer_value(json_array_get(s->admitted, i)) < 0)
            return -1;
    }
    return 1;
}

/* The chart's domain: times in seconds, counts from 0 to the largest. */
typedef struct domain {
    int64_t t0_s, t1_s, max;
} domain;

/* Widens d to hold s. */
static void domain_add(domain *d, const series *s, int first) {
    int64_t t0 = s->start_us / 1000000, t1 = t0 + (int64_t)(s->len ? s->len : 1) * s->step_s;
    if (first || t0 < d->t0_s)
        d->t0_s = t0;
    if (first || t1 > d->t1_s)
        d->t1_s = t1;
    for (size_t i = 0; i < s->len; i++) {
        int64_t o = json_integer_value(json_array_get(s->offered, i));
        int64_t a = json_integer_value(json_array_get(s->admitted, i));
        d->max = o > d->max ? o : d->max;
        d->max = a > d->max ? a : d->max;
    }
}

/* Writes the step line of values (s's offered or admitted) in the frame, as the path
 * data of an SVG path; backwards when reverse (to close an area). */
static void put_steps(FILE *out, const frame *f, const domain *d, int64_t top, const series *s,
                      const json_t *values, int reverse) {
    for (size_t k = 0; k < s->len; k++) {
        size_t i = reverse ? s->len - 1 - k : k;
        double t = (double)s->start_us / 1e6 + (double)(i * s->step_s);
        double x0 = scale(t, (double)d->t0_s, (double)d->t1_s, f->left, f->right);
        double x1 =
            scale(t + (double)s->step_s, (double)d->t0_s, (double)d->t1_s, f->left, f->right);
        double y = scale((double)json_integer_value(json_array_get(values, i)), 0, (double)top,
                         f->bottom, f->top);
        if (reverse)
            fprintf(out, "L%.1f %.1fH%.1f", x1, y, x0);
        else
            fprintf(out, "%s%.1f %.1fH%.1f", k ? "L" : "M", x0, y, x1);
    }
}

/* Writes one path of the series chart. */
static void put_path(FILE *out, const char *class_name, int run, const frame *f, const domain *d,
                     int64_t top, const series *s, const json_t *values) {
    fprintf(out, "<path class=\"%s run%d\" data-run=\"%d\" d=\"", class_name, run, run);
    put_steps(out, f, d, top, s, values, 0);
    fputs("\"/>\n", out);
}

/* Writes the legend of the series chart: a swatch and a label per drawn line. */
static int put_series_legend(FILE *out, const section *sec, const frame *f) {
    double x = f->left;
    int rc = 0;
    fprintf(out,
            "<g class=\"legend\"><rect x=\"%.1f\" y=\"8\" width=\"14\" height=\"3\" "
            "fill=\"#80868b\"/><text x=\"%.1f\" y=\"13\">offered</text>",
            x, x + 18);
    x += 80;
    if (sec->runs == 1)
        fprintf(out,
                "<rect x=\"%.1f\" y=\"5\" width=\"14\" height=\"9\" fill=\"#d93025\" "
                "fill-opacity=\".3\"/><text x=\"%.1f\" y=\"13\">would be denied</text>",
                x + 86, x + 104);
    for (size_t r = 0; r < sec->runs; r++, x += 330) {
        fprintf(out,
                "<rect class=\"run%zu\" x=\"%.1f\" y=\"8\" width=\"14\" height=\"3\"/>"
                "<text x=\"%.1f\" y=\"13\">admitted",
                r, x, x + 18);
        if (sec->runs > 1) {
            fputs(", ", out);
            rc |= put_shown(out, sec->config[r], strlen(sec->config[r]), RL_ESCAPE_KEEP_SPACE,
                            KEY_CHARS);
        }
        fputs("</text>", out);
    }
    fputs("</g>\n", out);
    return rc;
}

/* Writes the paths of every run: offered (once unless the runs differ), the denied area
 * (one run only) and admitted. */
static void put_series_paths(FILE *out, const frame *f, const domain *d, int64_t top,
                             const series *s, const int *has, size_t runs) {
    const series *base = NULL;
    for (size_t r = 0; r < runs; r++) {
        if (!has[r])
            continue;
        if (!base || s[r].start_us != base->start_us || !json_equal(s[r].offered, base->offered))
            put_path(out, "offered", (int)r, f, d, top, &s[r], s[r].offered);
        base = base ? base : &s[r];
    }
    if (runs == 1 && has[0] && s[0].len) {
        fputs("<path class=\"denied-area\" d=\"", out);
        put_steps(out, f, d, top, &s[0], s[0].offered, 0);
        put_steps(out, f, d, top, &s[0], s[0].admitted, 1);
        fputs("Z\"/>\n", out);
    }
    for (size_t r = 0; r < runs; r++) {
        if (has[r])
            put_path(out, "admitted", (int)r, f, d, top, &s[r], s[r].admitted);
    }
}

/* Writes the time-series chart of a section. Returns 0, or -1 (malformed series or
 * memory). */
static int put_series_chart(FILE *out, const section *sec) {
    series s[MAX_RUNS];
    int has[MAX_RUNS] = {0}, any = 0;
    domain d = {0, 0, 0};
    const frame f = {64, 928, 28, 252};
    for (size_t r = 0; r < sec->runs; r++) {
        has[r] = sec->policy[r] ? read_series(sec->policy[r], &s[r]) : 0;
        if (has[r] < 0)
            return -1;
        if (has[r])
            domain_add(&d, &s[r], !any++);
    }
    if (!any) {
        fputs("<p class=\"note\">No time series in the report.</p>\n", out);
        return 0;
    }
    int64_t step = nice_step(d.max, Y_TICKS_MAX), top = (d.max + step - 1) / step * step;
    int64_t step_s = s[has[0] ? 0 : 1].step_s;
    char title[64];
    snprintf(title, sizeof(title), "requests per %s",
             step_s == 1    ? "second"
             : step_s == 60 ? "minute"
                            : "step");
    fputs("<svg class=\"series\" viewBox=\"0 0 960 300\" role=\"img\">\n", out);
    fprintf(out, "<title>offered and admitted %s</title>\n", title);
    put_y_axis(out, &f, top ? top : 1, step, title);
    put_x_axis(out, &f, d.t0_s, d.t1_s);
    put_series_paths(out, &f, &d, top ? top : 1, s, has, sec->runs);
    int rc = put_series_legend(out, sec, &f);
    fputs("</svg>\n", out);
    return rc;
}

/* ---- top denied keys ---- */

/* Returns the entry of policy's top_denied whose key is key (len bytes), or NULL. */
static const json_t *top_entry(const json_t *policy, const char *key, size_t len) {
    const json_t *entry, *k;
    size_t i;
    json_array_foreach(json_object_get(policy, "top_denied"), i, entry) {
        k = json_object_get(entry, "key");
        if (json_string_length(k) == len && !memcmp(json_string_value(k), key, len))
            return entry;
    }
    return NULL;
}

/* Returns the keys of every run's top_denied, each once, the first run's first (a new
 * array; NULL if out of memory). */
static json_t *top_keys(const section *sec) {
    json_t *keys = json_array();
    const json_t *entry, *key;
    size_t i;
    for (size_t r = 0; keys && r < sec->runs; r++) {
        json_array_foreach(json_object_get(sec->policy[r], "top_denied"), i, entry) {
            key = json_object_get(entry, "key");
            int seen = 0;
            for (size_t q = 0; q < r && !seen; q++)
                seen = top_entry(sec->policy[q], json_string_value(key), json_string_length(key)) !=
                       NULL;
            if (json_is_string(key) && !seen && json_array_append(keys, (json_t *)key)) {
                json_decref(keys);
                return NULL;
            }
        }
    }
    return keys;
}

/* Returns the largest denied count among the entries of keys. */
static int64_t top_max(const section *sec, const json_t *keys) {
    int64_t max = 0;
    const json_t *key;
    size_t i;
    json_array_foreach(keys, i, key) {
        for (size_t r = 0; r < sec->runs; r++) {
            const json_t *e =
                top_entry(sec->policy[r], json_string_value(key), json_string_length(key));
            max = e && int_at(e, "denied") > max ? int_at(e, "denied") : max;
        }
    }
    return max;
}

/* Writes one bar: run r's denied count for the key at row y. */
static void put_bar(FILE *out, const section *sec, size_t r, const json_t *key, double y,
                    double height, int64_t max) {
    const json_t *e = top_entry(sec->policy[r], json_string_value(key), json_string_length(key));
    if (!e) {
        fprintf(out, "<text x=\"306\" y=\"%.1f\">not in this run&#39;s top keys</text>",
                y + height - 3);
        return;
    }
    double width = scale((double)int_at(e, "denied"), 0, (double)(max ? max : 1), 0, 560);
    fprintf(out,
            "<rect class=\"bar run%zu\" data-run=\"%zu\" x=\"300\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/><text x=\"%.1f\" y=\"%.1f\">%" PRId64 "</text>",
            r, r, y, width < 1 ? 1 : width, height, 306 + width, y + height - 3,
            int_at(e, "denied"));
}

/* Writes the row of one key: its label (cut, whole in the tooltip) and a bar per run. */
static int put_key_row(FILE *out, const section *sec, const json_t *key, double y, int64_t max) {
    double bar = sec->runs > 1 ? 14 : 18;
    const char *k = json_string_value(key);
    size_t len = json_string_length(key);
    const json_t *entry = NULL;
    for (size_t r = 0; r < sec->runs && !entry; r++)
        entry = top_entry(sec->policy[r], k, len);
    int rc = 0, flags = key_flags(entry);
    fputs("<g class=\"key\" data-key=\"", out);
    rc |= put_shown(out, k, len, flags, 0);
    fputs("\"><title>", out);
    rc |= put_shown(out, k, len, flags, 0);
    fprintf(out, "</title><text class=\"key\" x=\"292\" y=\"%.1f\" text-anchor=\"end\">",
            y + bar * (double)sec->runs / 2 + 4);
    rc |= put_shown(out, k, len, flags, KEY_CHARS);
    fputs("</text>", out);
    for (size_t r = 0; r < sec->runs; r++)
        put_bar(out, sec, r, key, y + (double)r * bar, bar - 2, max);
    fputs("</g>\n", out);
    return rc;
}

/* Writes the bar chart of the top denied keys of a section. Returns 0, or -1 (memory). */
static int put_top_chart(FILE *out, const section *sec) {
    json_t *keys = top_keys(sec);
    const json_t *key;
    size_t i, rows = json_array_size(keys);
    double row_h = sec->runs > 1 ? 34 : 24;
    int rc = keys ? 0 : -1;
    fprintf(out,
            "<svg class=\"top-keys\" viewBox=\"0 0 960 %.0f\" role=\"img\">\n"
            "<title>top denied keys</title>\n"
            "<text class=\"title\" x=\"300\" y=\"16\">requests denied per key</text>\n",
            28 + row_h * (double)(rows ? rows : 1) + 8);
    if (!rows)
        fputs("<text x=\"300\" y=\"44\">No key was denied.</text>\n", out);
    int64_t max = top_max(sec, keys);
    json_array_foreach(keys, i, key) {
        rc |= put_key_row(out, sec, key, 28 + row_h * (double)i, max);
    }
    fputs("</svg>\n", out);
    json_decref(keys);
    return rc;
}

/* ---- tables ---- */

/* A figure of the summary table: a field of the policy (or of its object `in`). */
typedef struct field {
    const char *name;  /* data-field */
    const char *label; /* row heading */
    const char *in;    /* the object holding it, or NULL: the policy itself */
    const char *key;   /* its key there */
} field;

static const field summary_fields[] = {
    {"algorithm", "algorithm", NULL, "algorithm"},
    {"requests", "requests", NULL, "requests"},
    {"allowed", "allowed", NULL, "allowed"},
    {"denied", "would be denied", NULL, "denied"},
    {"denied_pct", "would be denied (%)", NULL, "denied_pct"},
    {"keys", "distinct keys", NULL, "keys"},
    {"keys_denied", "keys ever denied", NULL, "keys_denied"},
    {"peak_per_s", "peak rate (requests in one second)", "peak", "per_s"},
    {"peak_at", "peak at (UTC)", "peak", "at_us"},
};

/* Writes one summary cell: field f of run r's policy (NULL: not in that run). */
static int put_summary_cell(FILE *out, const field *f, size_t r, const json_t *policy) {
    const json_t *holder = f->in ? json_object_get(policy, f->in) : policy;
    const json_t *v = json_object_get(holder, f->key);
    fprintf(out, "<td data-field=\"%s\" data-run=\"%zu\"", f->name, r);
    if (!strcmp(f->name, "peak_at") && json_is_integer(v)) {
        fprintf(out, " data-value=\"%" JSON_INTEGER_FORMAT "\">", json_integer_value(v));
        put_time(out, json_integer_value(v), TIME_FULL);
    } else {
        fputs(">", out);
        if (json_is_string(v) && put_string(out, v, 0, 0))
            return -1;
        if (!json_is_string(v))
            put_number(out, v);
    }
    fputs("</td>", out);
    return 0;
}

/* Writes a note under the summary when a run's figures are estimates: distinct keys past
 * the replay's exact count (keys_exact false), top keys past its top-K (top_denied_exact
 * false). */
static void put_estimates(FILE *out, const section *sec) {
    for (size_t r = 0; r < sec->runs; r++) {
        const json_t *policy = sec->policy[r];
        int keys = json_is_false(json_object_get(policy, "keys_exact"));
        int top = json_is_false(json_object_get(policy, "top_denied_exact"));
        if (!keys && !top)
            continue;
        fprintf(out, "<p class=\"note estimate\" data-run=\"%zu\">", r);
        if (sec->runs > 1)
            fprintf(out, "Run %zu: ", r + 1);
        fprintf(out, "%s%s%s are estimates (too many keys to count each).</p>\n",
                keys ? "distinct keys and keys ever denied" : "", keys && top ? " and " : "",
                top ? "the top denied keys&#39; figures" : "");
    }
}

/* Writes the summary table of a section: a row per figure, a column per run. */
static int put_summary(FILE *out, const section *sec) {
    int rc = 0;
    fputs("<table class=\"summary\">\n<tr><th class=\"row\">policy ", out);
    rc |= put_shown(out, sec->name, sec->name_len, 0, 0);
    fputs("</th>", out);
    for (size_t r = 0; r < sec->runs; r++) {
        fputs("<th>", out);
        rc |= put_shown(out, sec->config[r], strlen(sec->config[r]), RL_ESCAPE_KEEP_SPACE, 0);
        fputs("</th>", out);
    }
    fputs("</tr>\n", out);
    for (size_t i = 0; i < sizeof(summary_fields) / sizeof(summary_fields[0]); i++) {
        fprintf(out, "<tr><th class=\"row\">%s</th>", summary_fields[i].label);
        for (size_t r = 0; r < sec->runs; r++)
            rc |= put_summary_cell(out, &summary_fields[i], r, sec->policy[r]);
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);
    put_estimates(out, sec);
    return rc;
}

static const char *const top_fields[] = {"denied", "requests", "longest_streak",
                                         "max_retry_after_ms"};

/* Writes run r's table of its top denied keys, if it has any. */
static int put_top_table(FILE *out, const section *sec, size_t r) {
    const json_t *entries = json_object_get(sec->policy[r], "top_denied"), *entry;
    size_t i;
    int rc = 0;
    if (!json_array_size(entries))
        return 0;
    fputs("<table class=\"top-denied\">\n<tr><th class=\"row\">key", out);
    if (sec->runs > 1) {
        fputs(" (", out);
        rc |= put_shown(out, sec->config[r], strlen(sec->config[r]), RL_ESCAPE_KEEP_SPACE, 0);
        fputs(")", out);
    }
    fputs("</th><th>denied</th><th>requests</th><th>longest denial streak</th>"
          "<th>largest retry-after (ms)</th></tr>\n",
          out);
    json_array_foreach(entries, i, entry) {
        const json_t *key = json_object_get(entry, "key");
        fputs("<tr data-key=\"", out);
        rc |= put_string(out, key, key_flags(entry), 0);
        fputs("\"><td class=\"key\">", out);
        rc |= put_string(out, key, key_flags(entry), 0);
        fputs("</td>", out);
        for (size_t j = 0; j < sizeof(top_fields) / sizeof(top_fields[0]); j++) {
            fprintf(out, "<td data-field=\"%s\" data-run=\"%zu\">", top_fields[j], r);
            put_number(out, json_object_get(entry, top_fields[j]));
            fputs("</td>", out);
        }
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);
    return rc;
}

/* Writes the section of one policy. Returns 0, or -1 (malformed series or memory). */
static int put_section(FILE *out, const section *sec) {
    int rc = 0;
    fputs("<section class=\"policy\" data-policy=\"", out);
    rc |= put_shown(out, sec->name, sec->name_len, 0, 0);
    fputs("\">\n<h2>Policy ", out);
    rc |= put_shown(out, sec->name, sec->name_len, 0, 0);
    fputs("</h2>\n", out);
    rc |= put_summary(out, sec);
    fputs("<h3>Offered and admitted requests</h3>\n", out);
    if (put_series_chart(out, sec))
        return -1;
    fputs("<h3>Top denied keys</h3>\n", out);
    rc |= put_top_chart(out, sec);
    for (size_t r = 0; r < sec->runs; r++)
        rc |= sec->policy[r] ? put_top_table(out, sec, r) : 0;
    fputs("</section>\n", out);
    return rc;
}

/* Writes the keys whose denials change between the two runs (--compare). */
static int put_changes(FILE *out, const json_t *report) {
    const json_t *changes = json_object_get(report, "changes"), *change;
    size_t i;
    int rc = 0;
    if (!json_is_array(changes))
        return 0;
    fputs("<section class=\"changes\">\n<h2>Keys whose outcome changes</h2>\n", out);
    if (!json_array_size(changes))
        fputs("<p class=\"note\">No key&#39;s denials change.</p>\n", out);
    else
        fputs("<table class=\"changes\">\n<tr><th class=\"row\">policy</th><th class=\"row\">"
              "key</th><th>denied (first)</th><th>denied (second)</th></tr>\n",
              out);
    json_array_foreach(changes, i, change) {
        const json_t *denied = json_object_get(change, "denied");
        fputs("<tr><td class=\"key\">", out);
        rc |= put_string(out, json_object_get(change, "policy"), 0, 0);
        fputs("</td><td class=\"key\">", out);
        rc |= put_string(out, json_object_get(change, "key"), key_flags(change), 0);
        fputs("</td><td data-field=\"denied\" data-run=\"0\">", out);
        put_number(out, json_array_get(denied, 0));
        fputs("</td><td data-field=\"denied\" data-run=\"1\">", out);
        put_number(out, json_array_get(denied, 1));
        fputs("</td></tr>\n", out);
    }
    fputs(json_array_size(changes) ? "</table>\n</section>\n" : "</section>\n", out);
    return rc;
}

/* ---- runs and policies ---- */

/* Returns an object mapping each policy name of run (the first of a repeated name) to its
 * position in the run's policies (a new object; NULL if out of memory). */
static json_t *index_policies(const json_t *run) {
    json_t *index = json_object();
    const json_t *policy, *name;
    size_t i;
    json_array_foreach(json_object_get(run, "policies"), i, policy) {
        name = json_object_get(policy, "name");
        if (!index || json_object_getn(index, json_string_value(name), json_string_length(name)))
            continue;
        if (json_object_setn_new(index, json_string_value(name), json_string_length(name),
                                 json_integer((json_int_t)i))) {
            json_decref(index);
            index = NULL;
        }
    }
    return index;
}

/* Returns 1 if every run is an object with a policies array whose policies are objects
 * with a string name, and there are 1..MAX_RUNS runs; else 0. */
static int runs_valid(const json_t *runs) {
    const json_t *run, *policy;
    size_t i, j;
    if (!json_array_size(runs) || json_array_size(runs) > MAX_RUNS)
        return 0;
    json_array_foreach(runs, i, run) {
        if (!json_is_array(json_object_get(run, "policies")))
            return 0;
        json_array_foreach(json_object_get(run, "policies"), j, policy) {
            if (!json_is_string(json_object_get(policy, "name")))
                return 0;
        }
    }
    return 1;
}

/* Writes the section of run r's policy unless an earlier run has it (it was written);
 * index holds each run's index_policies. */
static int put_policy(FILE *out, const json_t *runs, json_t *const *index, size_t r,
                      const json_t *policy) {
    const json_t *name = json_object_get(policy, "name");
    section sec = {json_string_value(name), json_string_length(name), {NULL}, {""}, 0};
    sec.runs = json_array_size(runs);
    for (size_t q = 0; q < sec.runs; q++) {
        const json_t *run = json_array_get(runs, q);
        const json_t *at = json_object_getn(index[q], sec.name, sec.name_len);
        sec.policy[q] =
            at ? json_array_get(json_object_get(run, "policies"), (size_t)json_integer_value(at))
               : NULL;
        if (q < r && sec.policy[q])
            return 0;
        sec.config[q] = json_string_value(json_object_get(run, "config"));
        sec.config[q] = sec.config[q] ? sec.config[q] : "";
    }
    return put_section(out, &sec);
}

/* Writes the section of every policy of every run, each once. */
static int put_policies(FILE *out, const json_t *runs) {
    json_t *index[MAX_RUNS] = {NULL};
    const json_t *run, *policy;
    size_t r, i;
    int rc = 0;
    json_array_foreach(runs, r, run) {
        index[r] = index_policies(run);
        rc |= index[r] ? 0 : -1;
    }
    json_array_foreach(runs, r, run) {
        json_array_foreach(json_object_get(run, "policies"), i, policy) {
            rc |= rc ? 0 : put_policy(out, runs, index, r, policy);
        }
    }
    for (r = 0; r < MAX_RUNS; r++)
        json_decref(index[r]);
    return rc;
}

int rl_replay_html(FILE *out, const json_t *report) {
    const json_t *runs = json_object_get(report, "runs");
    int rc = 0;
    if (!json_is_object(report) || !runs_valid(runs))
        return -1;
    put_head(out);
    rc |= put_overview(out, report);
    rc |= put_malformed(out, report);
    fputs("</header>\n<main>\n", out);
    rc |= put_policies(out, runs);
    if (json_array_size(runs) > 1)
        rc |= put_changes(out, report);
    fputs("</main>\n<footer><p class=\"note\">Made by <code>rlimitctl replay --html</code>: "
          "every request of the log decided offline with the daemon&#39;s own "
          "algorithms.</p></footer>\n</body>\n</html>\n",
          out);
    return rc || fflush(out) || ferror(out) ? -1 : 0;
}
