/*
 * listen.h: open listening sockets for unix: and tcp: addresses.
 */
#ifndef RL_LISTEN_H
#define RL_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* The socket file a Unix listener created (to remove it, and only it, at close). */
typedef struct rl_listen_file {
    dev_t dev; /* st_dev of the file bind() created */
    ino_t ino; /* st_ino of it */
} rl_listen_file;

// Opens a non-blocking listening socket for l (unix: or tcp:). At a Unix listener's
// path, only a socket nobody answers on (connect() is refused: a dead daemon's) is
// replaced; anything else there (a regular file, a symlink, a directory, a socket that
// answers or cannot be probed, e.g. another user's) is an error naming the path and what
// is there. The socket file is created with l->mode and, if file is not NULL, its
// identity is stored in *file. Returns the fd, or -1 with the reason in err.
int rl_listen_open(const rl_listener_conf *l, rl_listen_file *file, char *err, size_t errlen);

// Removes the socket file at path if it is still the one file names; anything put in
// its place since is left alone (and logged).
void rl_listen_remove(const char *path, const rl_listen_file *file);

// Writes the address fd is bound to as "unix:PATH" or "tcp:HOST:PORT" into buf.
// Returns 0, or -1 if it cannot be read.
int rl_listen_address(int fd, char *buf, size_t len);

#endif
