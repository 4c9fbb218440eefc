/*
 * hostport.c: HOST:PORT and [V6]:PORT (see hostport.h).
 */
#include "hostport.h"

#include <string.h>

// Reads the port in [from, to): digits only, at most 65535, 0 only if allowed.
static rl_hostport_status parse_port(const char *from, const char *to, unsigned flags,
                                     uint16_t *port) {
    unsigned long n = 0;
    if (from == to)
        return RL_HOSTPORT_NO_PORT;
    for (const char *p = from; p < to; p++) {
        if (*p < '0' || *p > '9')
            return RL_HOSTPORT_BAD_PORT;
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > 65535)
            return RL_HOSTPORT_BAD_PORT;
    }
    if (n == 0 && !(flags & RL_HOSTPORT_PORT_ZERO))
        return RL_HOSTPORT_BAD_PORT;
    *port = (uint16_t)n;
    return RL_HOSTPORT_OK;
}

// Splits [V6] or [V6]:PORT: *colon is set to the port's colon, or NULL.
static rl_hostport_status split_bracketed(const char *text, const char *end, rl_hostport *out,
                                          const char **colon) {
    const char *close = memchr(text, ']', (size_t)(end - text));
    if (!close)
        return RL_HOSTPORT_UNTERMINATED;
    if (close + 1 < end && close[1] != ':')
        return RL_HOSTPORT_AFTER_BRACKET;
    out->host = text + 1;
    out->host_len = (size_t)(close - out->host);
    *colon = close + 1 < end ? close + 1 : NULL;
    return RL_HOSTPORT_OK;
}

// Splits HOST or HOST:PORT at the last colon; a host keeping a colon is a bare IPv6.
static rl_hostport_status split_plain(const char *text, const char *end, rl_hostport *out,
                                      const char **colon) {
    const char *last = NULL;
    for (const char *p = text; p < end; p++)
        last = *p == ':' ? p : last;
    out->host = text;
    out->host_len = (size_t)((last ? last : end) - text);
    *colon = last;
    if (memchr(text, ':', out->host_len))
        return RL_HOSTPORT_BARE_IPV6;
    return RL_HOSTPORT_OK;
}

// Returns 1 if the host's bytes are all printable, not space, not a bracket.
static int host_is_clean(const char *host, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c == 0x7f || c == '[' || c == ']')
            return 0;
    }
    return 1;
}

rl_hostport_status rl_hostport_parse(const char *text, size_t len, unsigned flags,
                                     rl_hostport *out) {
    const char *end = text + len, *colon;
    rl_hostport_status status = len > 0 && text[0] == '[' ? split_bracketed(text, end, out, &colon)
                                                          : split_plain(text, end, out, &colon);
    if (status != RL_HOSTPORT_OK)
        return status;
    if (out->host_len == 0)
        return RL_HOSTPORT_EMPTY_HOST;
    if (!host_is_clean(out->host, out->host_len))
        return RL_HOSTPORT_BAD_HOST;
    out->port = 0;
    out->has_port = colon != NULL;
    if (!colon)
        return flags & RL_HOSTPORT_PORT_OPTIONAL ? RL_HOSTPORT_OK : RL_HOSTPORT_NO_PORT;
    return parse_port(colon + 1, end, flags, &out->port);
}

const char *rl_hostport_error(rl_hostport_status status, unsigned flags) {
    switch (status) {
    case RL_HOSTPORT_OK:
        return "no error";
    case RL_HOSTPORT_EMPTY_HOST:
        return "the host is empty";
    case RL_HOSTPORT_NO_PORT:
        return "HOST:PORT expected: the port is missing";
    case RL_HOSTPORT_BAD_PORT:
        return flags & RL_HOSTPORT_PORT_ZERO ? "the port must be 0..65535 (digits only)"
                                             : "the port must be 1..65535 (digits only)";
    case RL_HOSTPORT_UNTERMINATED:
        return "unterminated [IPv6] host";
    case RL_HOSTPORT_AFTER_BRACKET:
        return "[IPv6] may be followed only by :PORT";
    case RL_HOSTPORT_BARE_IPV6:
        return "an IPv6 host is written in brackets: [ADDR]:PORT";
    case RL_HOSTPORT_BAD_HOST:
        return "the host holds a space, a control character or a bracket";
    }
    return "bad HOST:PORT";
}
