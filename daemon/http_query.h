/*
 * http_query.h: parse and check the parameters of GET /check and /auth.
 */
#ifndef RL_HTTP_QUERY_H
#define RL_HTTP_QUERY_H

#include <stddef.h>
#include <stdint.h>

enum { RL_PARAM_POLICY, RL_PARAM_KEY, RL_PARAM_COST, RL_PARAM_COUNT };

/* The parameters of a decision, percent-decoded. */
typedef struct rl_http_params {
    const char *value[RL_PARAM_COUNT]; /* policy, key, cost (NULL: not given) */
    size_t len[RL_PARAM_COUNT];        /* their lengths */
} rl_http_params;

// Splits query (NUL-terminated, decoded in place: values point into it) into p, whose
// values must start NULL. Returns NULL, or an error text naming the parameter (in why,
// whylen bytes, or a constant).
const char *rl_http_parse_query(char *query, rl_http_params *p, char *why, size_t whylen);

// Checks that policy and key are present and fit the wire, and parses cost (default 1,
// 1..2^32-1) into *cost. Returns NULL, or an error text naming the parameter.
const char *rl_http_params_valid(const rl_http_params *p, int64_t *cost, char *why, size_t whylen);

#endif
