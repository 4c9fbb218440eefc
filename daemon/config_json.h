/*
 * config_json.h: the helpers every part of the config parser reads JSON with
 * (config.c, config_listener.c, config_policy.c, config_store.c): field lists, paths
 * for messages, integers in a range, strings, durations. Each reports a failure as
 * "source: path: message" in the context's buffer and returns -1. They know nothing
 * of any section of the config.
 */
#ifndef RL_CONFIG_JSON_H
#define RL_CONFIG_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Where messages go while parsing. */
typedef struct rl_conf_ctx {
    const char *source; /* the file name, for messages */
    char *err;          /* the message buffer */
    size_t errlen;      /* its size */
} rl_conf_ctx;

// Writes "source: path: message" to ctx->err. Returns -1 (for `return rl_conf_fail(...)`).
int rl_conf_fail(rl_conf_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Fails unless obj is an object whose fields are all in allowed (NULL-terminated).
int rl_conf_fields(rl_conf_ctx *ctx, json_t *obj, const char *path, const char *const *allowed);

// Writes "parent.child" (or "child" at the root) to out.
void rl_conf_path(char *out, size_t len, const char *parent, const char *child);

// Reads an integer in min..max into *out, or fails naming path.
int rl_conf_uint(rl_conf_ctx *ctx, json_t *v, const char *path, uint64_t min, uint64_t max,
                 uint64_t *out);

// Copies a string into *out (owned by the caller), or fails naming path.
int rl_conf_string(rl_conf_ctx *ctx, json_t *v, const char *path, char **out);

// Reads a duration (string with unit, or integer ms) in 1..max_ms into *out_ms.
int rl_conf_duration(rl_conf_ctx *ctx, json_t *v, const char *path, int64_t max_ms,
                     int64_t *out_ms);

#endif
