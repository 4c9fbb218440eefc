/*
 * config_internal.h: the config parser's sections, each in its own file
 * (config_store.c, config_policy.c, config_listener.c), as config.c calls them. Not part
 * of the config interface. The JSON helpers they share are config_json.h.
 */
#ifndef RL_CONFIG_INTERNAL_H
#define RL_CONFIG_INTERNAL_H

#include <jansson.h>

#include "config.h"
#include "config_json.h"

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
