/*
 * hostport.h: the one parser of HOST:PORT, shared by the daemon (listener addresses,
 * Redis URLs) and the C client (tcp: addresses). Pure: it reads the text and points
 * into it; no allocation, no name resolution.
 *
 *   HOST:PORT      a name or IPv4 address, then a decimal port
 *   [V6]:PORT      an IPv6 address in brackets (bare, its colons would be ambiguous)
 *   HOST, [V6]     no port: only where the caller allows one to be left out
 *
 * A host holds no space, control byte (NUL included), DEL or bracket (but a bracketed
 * one). The port is decimal digits only (no sign, no space), 1..65535, or 0 too where the
 * caller allows it (a listener on port 0 takes one the system picks). Nothing may
 * follow the port.
 */
#ifndef RL_HOSTPORT_H
#define RL_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#define RL_HOSTPORT_PORT_OPTIONAL 1u /* HOST or [V6] alone is fine (has_port 0) */
#define RL_HOSTPORT_PORT_ZERO 2u     /* port 0 is fine */

/* What is wrong with a HOST:PORT (rl_hostport_error gives a sentence). */
typedef enum rl_hostport_status {
    RL_HOSTPORT_OK,
    RL_HOSTPORT_EMPTY_HOST,    /* nothing before the port, or [] */
    RL_HOSTPORT_NO_PORT,       /* no :PORT where one is required, or an empty one */
    RL_HOSTPORT_BAD_PORT,      /* not digits only, or out of range, or junk after it */
    RL_HOSTPORT_UNTERMINATED,  /* [ without ] */
    RL_HOSTPORT_AFTER_BRACKET, /* ] followed by something other than :PORT */
    RL_HOSTPORT_BARE_IPV6,     /* a host with a colon, not in brackets */
    RL_HOSTPORT_BAD_HOST,      /* a host holding a space, a control byte or [ ] */
} rl_hostport_status;

/* A parsed HOST:PORT; host points into the parsed text. */
typedef struct rl_hostport {
    const char *host; /* the host's first byte (inside the brackets for [V6]) */
    size_t host_len;  /* bytes of host, at least 1 */
    uint16_t port;    /* the port, or 0 if none was given */
    int has_port;     /* 1 if the text gave a port */
} rl_hostport;

// Parses text (len bytes, no NUL needed) as HOST:PORT or [V6]:PORT under flags
// (RL_HOSTPORT_*). Returns RL_HOSTPORT_OK with *out filled, or the first fault found
// (*out then undefined).
rl_hostport_status rl_hostport_parse(const char *text, size_t len, unsigned flags,
                                     rl_hostport *out);

// Returns a sentence for status (static), such as "the port must be 1..65535"; flags
// are the ones the text was parsed under, for the range it names.
const char *rl_hostport_error(rl_hostport_status status, unsigned flags);

#endif
