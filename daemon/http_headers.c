/*
 * http_headers.c: the rate-limit headers of a decision (proto/HEADERS.md).
 *
 *   rl_result + policy --> Retry-After (denied) --> counted? --> X-RateLimit-Limit,
 *   -Remaining, -Reset, RateLimit-Policy, RateLimit (the name as an sf-string)
 */
#include "http_headers.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

/* Flags whose figures are not the key's counted usage: no limit headers. */
#define UNCOUNTED (RL_FLAG_EXEMPT | RL_FLAG_BLOCKED | RL_FLAG_FALLBACK)

static uint32_t seconds_up(uint32_t ms) {
    return ms / 1000 + (ms % 1000 != 0);
}

size_t rl_http_policy_sf(char out[RL_HTTP_POLICY_SF_MAX + 1], const char *policy, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len && i < RL_MAX_POLICY_LEN; i++) {
        unsigned char c = (unsigned char)policy[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '%' || c < 0x20 || c > 0x7e) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

// Appends a header whose value is printed from fmt.
static void add(rl_http_headers *h, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add(rl_http_headers *h, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->value[h->count], sizeof(h->value[h->count]), fmt, ap);
    va_end(ap);
    h->name[h->count++] = name;
}

void rl_http_headers_of(rl_http_headers *h, const char *policy, size_t len, const rl_result *r) {
    char name[RL_HTTP_POLICY_SF_MAX + 1];
    uint32_t retry = seconds_up(r->retry_after_ms), reset = seconds_up(r->reset_after_ms);
    h->count = 0;
    if (r->status != RL_ST_ALLOWED && r->status != RL_ST_DENIED)
        return;
    if (r->status == RL_ST_DENIED)
        add(h, "Retry-After", "%" PRIu32, retry ? retry : 1);
    if (r->flags & UNCOUNTED)
        return;
    rl_http_policy_sf(name, policy, len);
    add(h, "X-RateLimit-Limit", "%" PRIu32, r->limit);
    add(h, "X-RateLimit-Remaining", "%" PRIu32, r->remaining);
    add(h, "X-RateLimit-Reset", "%" PRIu32, reset);
    add(h, "RateLimit-Policy", "%s;q=%" PRIu32 ";w=%" PRIu32, name, r->limit,
        seconds_up(r->window_ms));
    add(h, "RateLimit", "%s;r=%" PRIu32 ";t=%" PRIu32, name, r->remaining, reset);
}
