/*
 * listen.c: listening sockets (Unix and TCP), with stale socket file handling.
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

#define BACKLOG 1024

static int fail(char *err, size_t errlen, const char *what, const char *address) {
    snprintf(err, errlen, "%s %s: %s", what, address, strerror(errno));
    return -1;
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Returns 1 if a live process accepts connections on the socket file at sun.
static int socket_is_live(const struct sockaddr_un *sun) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(fd);
    return live;
}

static int open_unix(const rl_listener_conf *l, char *err, size_t errlen) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(l->path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "listen %s: the path is longer than %zu bytes", l->address,
                 sizeof(sun.sun_path) - 1);
        return -1;
    }
    strcpy(sun.sun_path, l->path);
    if (socket_is_live(&sun)) {
        snprintf(err, errlen, "listen %s: another process is serving this socket", l->address);
        return -1;
    }
    unlink(l->path); /* a stale file from a daemon that died */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", l->address);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(l->path, (mode_t)l->mode) ||
        listen(fd, BACKLOG) != 0 || set_nonblocking(fd) != 0) {
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
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
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

int rl_listen_open(const rl_listener_conf *l, char *err, size_t errlen) {
    if (l->kind == RL_LISTEN_UNIX)
        return open_unix(l, err, errlen);
    return open_tcp(l, err, errlen);
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
