/*
 * http_headers.h: the rate-limit headers of a decision, as proto/HEADERS.md says.
 *
 * Pure: a result and a policy name in, header names and values out; no evhttp, no
 * allocation. http.c adds them to its answers; tests/unit/test_http_headers.c checks
 * them against proto/vectors/headers.json.
 */
#ifndef RL_HTTP_HEADERS_H
#define RL_HTTP_HEADERS_H

#include <stddef.h>

#include "rlproto.h"

/* The policy name as written (3 characters a byte at most, and the quotes). */
#define RL_HTTP_POLICY_SF_MAX (3 * RL_MAX_POLICY_LEN + 2)
#define RL_HTTP_HEADERS_MAX 6 /* Retry-After and the five limit headers */
/* The longest value: RateLimit-Policy's name, ";q=" and ";w=" and two 10-digit numbers. */
#define RL_HTTP_HEADER_VALUE_MAX (RL_HTTP_POLICY_SF_MAX + 27)

/* The headers of one decision, in the order they are sent. */
typedef struct rl_http_headers {
    size_t count;                                                  /* headers filled in */
    const char *name[RL_HTTP_HEADERS_MAX];                         /* their names (constants) */
    char value[RL_HTTP_HEADERS_MAX][RL_HTTP_HEADER_VALUE_MAX + 1]; /* their values */
} rl_http_headers;

// Writes policy (len bytes, at most RL_MAX_POLICY_LEN) into out as a structured-field
// string: quoted, `"` and `\` escaped by a backslash, `%` and every byte outside
// 0x20-0x7E as %xx (lower-case hex). out has room for RL_HTTP_POLICY_SF_MAX + 1 bytes;
// a longer policy is cut at RL_MAX_POLICY_LEN bytes. Returns the length written
// (without the terminating NUL).
size_t rl_http_policy_sf(char out[RL_HTTP_POLICY_SF_MAX + 1], const char *policy, size_t len);

// Fills h with the headers of result r for policy (len bytes): Retry-After when denied,
// the five limit headers unless r's flags say EXEMPT, BLOCKED or FALLBACK; none at all
// for a status other than ALLOWED and DENIED.
void rl_http_headers_of(rl_http_headers *h, const char *policy, size_t len, const rl_result *r);

#endif
