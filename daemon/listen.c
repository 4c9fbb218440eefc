/*
 * listen.c: listening sockets (Unix and TCP). At a Unix socket path, only a stale socket
 * (connect() refused) is ever replaced, and only the socket file this daemon created is
 * ever removed.
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define BACKLOG 1024

static int fail(char *err, size_t errlen, const char *what, const char *address) {
    snprintf(err, errlen, "%s %s: %s", what, address, strerror(errno));
    return -1;
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static const char *file_kind(mode_t mode) {
    return S_ISREG(mode)    ? "a regular file"
           : S_ISLNK(mode)  ? "a symbolic link"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
                            : "a device file";
}

// Probes the socket file at sun: returns 0 if connect() is refused (stale: nobody
// accepts on it), else -1 with the reason in err.
static int socket_is_stale(const rl_listener_conf *l, const struct sockaddr_un *sun, char *err,
                           size_t errlen) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", l->address);
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)), saved = errno;
    close(fd);
    if (rc == 0)
        snprintf(err, errlen, "listen %s: another process is serving this socket", l->address);
    else if (saved != ECONNREFUSED)
        snprintf(err, errlen,
                 "listen %s: %s is a socket that may be in use (connect: %s); refusing to "
                 "replace it",
                 l->address, l->path, strerror(saved));
    return rc == 0 || saved != ECONNREFUSED ? -1 : 0;
}

// Clears the way for a socket at l->path: nothing there, or a stale socket (removed).
// Returns 0, or -1 with the reason in err.
static int clear_path(const rl_listener_conf *l, const struct sockaddr_un *sun, char *err,
                      size_t errlen) {
    struct stat st;
    if (lstat(l->path, &st) != 0)
        return errno == ENOENT ? 0 : fail(err, errlen, "listen", l->address);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "listen %s: %s is %s, not a socket; refusing to replace it",
                 l->address, l->path, file_kind(st.st_mode));
        return -1;
    }
    if (socket_is_stale(l, sun, err, errlen) != 0)
        return -1;
    if (unlink(l->path) != 0 && errno != ENOENT)
        return fail(err, errlen, "listen (removing a stale socket)", l->address);
    rl_log_info("replaced the stale socket %s", l->path);
    return 0;
}

// Binds fd to sun with the file mode l->mode (set through the umask: no chmod() that
// could follow a symlink put at the path meanwhile), then records the file's identity.
static int bind_unix(int fd, const rl_listener_conf *l, const struct sockaddr_un *sun,
                     rl_listen_file *file) {
    struct stat st;
    mode_t old = umask((mode_t)(~l->mode & 0777));
    int rc = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
    umask(old);
    if (rc != 0 || lstat(l->path, &st) != 0)
        return -1;
    if (file)
        *file = (rl_listen_file){st.st_dev, st.st_ino};
    return 0;
}

static int open_unix(const rl_listener_conf *l, rl_listen_file *file, char *err, size_t errlen) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(l->path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "listen %s: the path is longer than %zu bytes", l->address,
                 sizeof(sun.sun_path) - 1);
        return -1;
    }
    strcpy(sun.sun_path, l->path);
    if (clear_path(l, &sun, err, errlen) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", l->address);
    if (bind_unix(fd, l, &sun, file) != 0 || listen(fd, BACKLOG) != 0 || set_nonblocking(fd) != 0) {
        fail(err, errlen, "listen", l->address);
        close(fd);
        return -1;
    }
    return fd;
}

static int bind_tcp(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int on = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0 ||
        set_nonblocking(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int open_tcp(const rl_listener_conf *l, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", l->port);
    int rc = getaddrinfo(*l->host ? l->host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s: %s", l->address, gai_strerror(rc));
        return -1;
    }
    int fd = bind_tcp(res);
    freeaddrinfo(res);
    return fd < 0 ? fail(err, errlen, "listen", l->address) : fd;
}

int rl_listen_open(const rl_listener_conf *l, rl_listen_file *file, char *err, size_t errlen) {
    if (l->kind == RL_LISTEN_UNIX)
        return open_unix(l, file, err, errlen);
    return open_tcp(l, err, errlen);
}

void rl_listen_remove(const char *path, const rl_listen_file *file) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISSOCK(st.st_mode) || st.st_dev != file->dev || st.st_ino != file->ino) {
        rl_log_warn("not removing %s: it is no longer the socket this daemon created", path);
        return;
    }
    if (unlink(path) != 0)
        rl_log_warn("could not remove %s: %s", path, strerror(errno));
}

int rl_listen_address(int fd, char *buf, size_t len) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_UNIX) {
        snprintf(buf, len, "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "tcp:%s:%u", host, ntohs(in->sin_port));
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "tcp:[%s]:%u", host, ntohs(in6->sin6_port));
    }
    return 0;
}
