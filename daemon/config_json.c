/*
 * config_json.c: the config parser's JSON helpers (see config_json.h) and the duration
 * syntax (rl_duration_parse, config.h).
 */
#include "config_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"

int rl_conf_fail(rl_conf_ctx *ctx, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ctx->err, ctx->errlen, "%s: %s%s%s", ctx->source, path, *path ? ": " : "", msg);
    return -1;
}

int rl_conf_fields(rl_conf_ctx *ctx, json_t *obj, const char *path, const char *const *allowed) {
    if (!json_is_object(obj))
        return rl_conf_fail(ctx, path, "must be an object");
    const char *name;
    json_t *value;
    json_object_foreach(obj, name, value) {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], name) != 0)
            i++;
        if (!allowed[i])
            return rl_conf_fail(ctx, path, "unknown field \"%s\"", name);
    }
    return 0;
}

void rl_conf_path(char *out, size_t len, const char *parent, const char *child) {
    snprintf(out, len, "%s%s%s", parent, *parent ? "." : "", child);
}

int rl_conf_uint(rl_conf_ctx *ctx, json_t *v, const char *path, uint64_t min, uint64_t max,
                 uint64_t *out) {
    if (!json_is_integer(v))
        return rl_conf_fail(ctx, path, "must be an integer");
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
        return rl_conf_fail(ctx, path, "%lld is out of range %llu..%llu", (long long)n,
                            (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)n;
    return 0;
}

int rl_conf_string(rl_conf_ctx *ctx, json_t *v, const char *path, char **out) {
    if (!json_is_string(v))
        return rl_conf_fail(ctx, path, "must be a string");
    *out = rl_strndup(json_string_value(v), json_string_length(v));
    if (!*out)
        return rl_conf_fail(ctx, path, "out of memory");
    return 0;
}

int rl_duration_parse(const char *text, int64_t *ms) {
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char *end;
    if (*text < '0' || *text > '9')
        return -1;
    unsigned long long n = strtoull(text, &end, 10);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > (unsigned long long)INT64_MAX / (unsigned long long)units[i].ms)
                return -1;
            *ms = (int64_t)n * units[i].ms;
            return 0;
        }
    }
    return -1;
}

#define DURATION_FORMS "\"500ms\", \"1s\", \"10m\", \"1h\", \"1d\" or an integer of milliseconds"

int rl_conf_duration(rl_conf_ctx *ctx, json_t *v, const char *path, int64_t max_ms,
                     int64_t *out_ms) {
    int64_t ms;
    if (json_is_integer(v)) {
        ms = json_integer_value(v);
    } else if (!json_is_string(v)) {
        return rl_conf_fail(ctx, path, "must be a duration: " DURATION_FORMS);
    } else if (rl_duration_parse(json_string_value(v), &ms) != 0) {
        return rl_conf_fail(ctx, path, "\"%s\" is not a duration: " DURATION_FORMS,
                            json_string_value(v));
    }
    if (ms < 1 || ms > max_ms)
        return rl_conf_fail(ctx, path, "%lld ms is out of range 1..%lld ms", (long long)ms,
                            (long long)max_ms);
    *out_ms = ms;
    return 0;
}
