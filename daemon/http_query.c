/*
 * http_query.c: the HTTP endpoint's query parser: policy, key and cost from
 * "policy=P&key=K&cost=N" (percent-decoded in place). Pure: no I/O, no allocation.
 */
#include "http_query.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rlproto.h"

static const char *const param_names[RL_PARAM_COUNT] = {"policy", "key", "cost"};

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

// Percent-decodes s (n bytes) in place ('+' is a space). Returns the decoded length,
// or -1 on a bad escape.
static long decode(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            s[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            s[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return (long)o;
}

// Takes one name=value pair of the query (in place). Returns NULL, or an error text.
static const char *take_pair(char *pair, size_t n, rl_http_params *p, char *why, size_t whylen) {
    char *eq = memchr(pair, '=', n);
    size_t name_len = eq ? (size_t)(eq - pair) : n;
    char *value = eq ? eq + 1 : pair + n;
    long vlen = decode(value, n - name_len - (eq ? 1 : 0));
    for (int i = 0; i < RL_PARAM_COUNT; i++) {
        if (strlen(param_names[i]) != name_len || memcmp(pair, param_names[i], name_len) != 0)
            continue;
        if (vlen < 0)
            snprintf(why, whylen, "%s: bad percent-encoding", param_names[i]);
        else if (p->value[i])
            snprintf(why, whylen, "%s: given twice", param_names[i]);
        else
            return p->value[i] = value, p->len[i] = (size_t)vlen, NULL;
        return why;
    }
    snprintf(why, whylen, "unknown parameter \"%.*s\" (expected policy, key, cost)",
             (int)(name_len > 64 ? 64 : name_len), pair);
    return why;
}

// Splits query (in place) into params. Returns NULL, or an error text.
const char *rl_http_parse_query(char *query, rl_http_params *p, char *why, size_t whylen) {
    for (char *at = query; at && *at;) {
        char *amp = strchr(at, '&');
        size_t n = amp ? (size_t)(amp - at) : strlen(at);
        if (n > 0 && take_pair(at, n, p, why, whylen))
            return why;
        at = amp ? amp + 1 : NULL;
    }
    return NULL;
}

// Checks the parameters' presence and sizes; parses cost. Returns NULL or an error.
const char *rl_http_params_valid(const rl_http_params *p, int64_t *cost, char *why, size_t whylen) {
    if (!p->value[RL_PARAM_POLICY] || p->len[RL_PARAM_POLICY] == 0)
        return "policy: missing (give ?policy= or the X-RateLimit-Policy header)";
    if (p->len[RL_PARAM_POLICY] > RL_MAX_POLICY_LEN)
        return "policy: longer than 255 bytes";
    if (!p->value[RL_PARAM_KEY] || p->len[RL_PARAM_KEY] == 0)
        return "key: missing (give ?key= or the X-RateLimit-Key header)";
    if (p->len[RL_PARAM_KEY] > RL_MAX_KEY_LEN)
        return "key: longer than the daemon's limits.max_key";
    *cost = 1;
    if (!p->value[RL_PARAM_COST])
        return NULL;
    const char *c = p->value[RL_PARAM_COST];
    int64_t v = 0;
    size_t i = 0;
    for (; i < p->len[RL_PARAM_COST] && c[i] >= '0' && c[i] <= '9' && v <= UINT32_MAX; i++)
        v = v * 10 + (c[i] - '0');
    if (i == 0 || i != p->len[RL_PARAM_COST] || v < 1 || v > UINT32_MAX) {
        snprintf(why, whylen, "cost: must be a whole number from 1 to 4294967295");
        return why;
    }
    *cost = v;
    return NULL;
}
