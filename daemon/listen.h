/*
 * listen.h: open listening sockets for unix: and tcp: addresses.
 */
#ifndef RL_LISTEN_H
#define RL_LISTEN_H

#include <stddef.h>

#include "config.h"

// Opens a non-blocking listening socket for l (unix: or tcp:). A Unix socket file left
// by a dead daemon is replaced; one a live daemon answers on is an error. The Unix
// socket file gets l->mode. Returns the fd, or -1 with the reason in err.
int rl_listen_open(const rl_listener_conf *l, char *err, size_t errlen);

// Writes the address fd is bound to as "unix:PATH" or "tcp:HOST:PORT" into buf.
// Returns 0, or -1 if it cannot be read.
int rl_listen_address(int fd, char *buf, size_t len);

#endif
