/*
 * config_internal.h: helpers shared by the config parser's files (config.c,
 * config_policy.c, config_store.c). Not part of the config interface.
 */
#ifndef RL_CONFIG_INTERNAL_H
#define RL_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

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

// Parses the "store" object (NULL: the memory store with defaults) into *store.
int rl_conf_store(rl_conf_ctx *ctx, json_t *v, rl_store_conf *store);

// Parses the "policies" object into c->policies, sorted by name.
int rl_conf_policies(rl_conf_ctx *ctx, json_t *v, rl_config *c);

// Frees what one policy owns.
void rl_conf_policy_free(rl_policy *policy);

// Sets a listener's operations, peers and token from its JSON object obj (NULL for
// the string form) at path, once its address and admin are parsed; fails on a
// tcp:/http: listener on a non-loopback host with no token that is not "insecure".
int rl_conf_listener_trust(rl_conf_ctx *ctx, json_t *obj, const char *path, rl_listener_conf *l);

// Frees what rl_conf_listener_trust gave l (the token wiped first).
void rl_conf_listener_trust_free(rl_listener_conf *l);

#endif
