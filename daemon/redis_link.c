/*
 * redis_link.c: a RESP client connection for untrusted peers (see redis_link.h).
 *
 * A nonblocking socket with three events: a persistent read event (armed once the
 * connect completes), a write event armed while output waits (and during the connect,
 * whose completion shows as writability), and the deadline timer. Replies are parsed by
 * hiredis's reader with its default reply objects, except that an array may hold at
 * most MAX_ELEMENTS elements: hiredis 0.14 allocates an array's slots as soon as it reads
 * the header, and aborts the process when that allocation fails (a hostile "*2000000000").
 */
#include "redis_link.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "rlproto.h"

#define MAX_ELEMENTS 1024 /* elements of one array reply at most */
#define READ_CHUNK 16384  /* bytes read at a time */

struct rl_redis_link {
    struct event_base *base; /* the loop */
    int fd;                  /* the socket */
    struct event *rev;       /* readable (persistent, once connected) */
    struct event *wev;       /* writable: connect done, or output waiting */
    struct event *timer;     /* the deadline */
    redisReader *reader;     /* the parser */
    char *out;               /* formatted commands not yet written (owned) */
    size_t out_len;          /* bytes in out */
    int connected;           /* the TCP connect completed */
    int awaited;             /* replies still expected */
    int subscribed;          /* further replies are messages, not faults */
    int in_call;             /* fn is running: a free is deferred */
    int doomed;              /* free once fn returns */
    rl_redis_link_fn *fn;    /* the owner's callback */
    void *arg;               /* its argument */
};

static void *(*default_array)(const redisReadTask *task, int elements);
static redisReplyObjectFunctions bounded_functions;

static void *bounded_array(const redisReadTask *task, int elements) {
    if (elements > MAX_ELEMENTS)
        return NULL; /* the reader fails with "Out of memory": the link is dropped */
    return default_array(task, elements);
}

static void release(rl_redis_link *link) {
    if (link->rev)
        event_free(link->rev);
    if (link->wev)
        event_free(link->wev);
    if (link->timer)
        event_free(link->timer);
    if (link->fd >= 0)
        close(link->fd);
    if (link->reader)
        redisReaderFree(link->reader);
    rl_free(link->out);
    rl_free(link);
}

static void fail(rl_redis_link *link, const char *why) {
    link->in_call = 1;
    link->fn(link->arg, link, NULL, why);
    release(link);
}

// Hands reply to the owner and frees it. Returns 0 if the link was freed meanwhile.
static int deliver(rl_redis_link *link, redisReply *reply) {
    link->in_call = 1;
    link->fn(link->arg, link, reply, NULL);
    link->in_call = 0;
    freeReplyObject(reply);
    if (!link->doomed)
        return 1;
    release(link);
    return 0;
}

// Parses what the reader holds. Returns 0 if the link is gone.
static int parse(rl_redis_link *link) {
    for (;;) {
        void *reply = NULL;
        char why[160];
        if (redisReaderGetReply(link->reader, &reply) != REDIS_OK) {
            snprintf(why, sizeof(why), "protocol error: %s", link->reader->errstr);
            fail(link, why);
            return 0;
        }
        if (!reply)
            break;
        if (link->awaited > 0) {
            link->awaited--;
        } else if (!link->subscribed) {
            freeReplyObject(reply);
            fail(link, "protocol error: a reply to no command");
            return 0;
        }
        if (!deliver(link, reply))
            return 0;
    }
    if (link->reader->len - link->reader->pos > RL_REDIS_LINK_MAX_REPLY) {
        fail(link, "protocol error: a reply over 64 KB");
        return 0;
    }
    return 1;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    rl_redis_link *link = arg;
    char buf[READ_CHUNK], why[160];
    (void)what;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        snprintf(why, sizeof(why), "%s", n == 0 ? "connection closed" : strerror(errno));
        fail(link, why);
        return;
    }
    if (redisReaderFeed(link->reader, buf, (size_t)n) != REDIS_OK) {
        fail(link, "out of memory");
        return;
    }
    parse(link);
}

// Finishes the connect. Returns 0 if the link is gone.
static int finish_connect(rl_redis_link *link) {
    int error = 0;
    socklen_t len = sizeof(error);
    char why[160];
    if (getsockopt(link->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        error = errno;
    if (error != 0) {
        snprintf(why, sizeof(why), "cannot connect: %s", strerror(error));
        fail(link, why);
        return 0;
    }
    link->connected = 1;
    if (event_add(link->rev, NULL) != 0) {
        fail(link, "cannot watch the connection");
        return 0;
    }
    return 1;
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    rl_redis_link *link = arg;
    (void)what;
    if (!link->connected && !finish_connect(link))
        return;
    if (link->out_len == 0) {
        event_del(link->wev);
        return;
    }
    ssize_t n = send(fd, link->out, link->out_len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        char why[160];
        snprintf(why, sizeof(why), "write: %s", strerror(errno));
        fail(link, why);
        return;
    }
    memmove(link->out, link->out + n, link->out_len - (size_t)n);
    link->out_len -= (size_t)n;
    if (link->out_len == 0)
        event_del(link->wev);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    fail(arg, "timed out");
}

// Starts a nonblocking connect to the first address host:port resolves to. Returns the
// socket, or -1 with the reason in err.
static int start_connect(const char *host, uint16_t port, char *err, size_t errlen) {
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "cannot connect: %s", strerror(errno));
        close(fd);
        fd = -1;
    } else if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
    }
    freeaddrinfo(res);
    return fd;
}

static int make_reader(rl_redis_link *link) {
    link->reader = redisReaderCreate();
    if (!link->reader)
        return RL_ERR;
    if (!default_array) {
        bounded_functions = *link->reader->fn;
        default_array = bounded_functions.createArray;
        bounded_functions.createArray = bounded_array;
    }
    link->reader->fn = &bounded_functions;
    return RL_OK;
}

rl_redis_link *rl_redis_link_open(struct event_base *base, const char *host, uint16_t port,
                                  rl_redis_link_fn *fn, void *arg, char *err, size_t errlen) {
    rl_redis_link *link = rl_calloc(1, sizeof(*link));
    if (!link) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    link->base = base;
    link->fn = fn;
    link->arg = arg;
    link->fd = start_connect(host, port, err, errlen);
    if (link->fd < 0) {
        release(link);
        return NULL;
    }
    link->rev = event_new(base, link->fd, EV_READ | EV_PERSIST, on_read, link);
    link->wev = event_new(base, link->fd, EV_WRITE | EV_PERSIST, on_write, link);
    link->timer = event_new(base, -1, 0, on_timer, link);
    if (!link->rev || !link->wev || !link->timer || make_reader(link) != RL_OK ||
        event_add(link->wev, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        release(link);
        return NULL;
    }
    return link;
}

int rl_redis_link_send(rl_redis_link *link, int argc, const char **argv, const size_t *lens) {
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0 || !cmd)
        return RL_ERR;
    char *out = rl_realloc(link->out, link->out_len + (size_t)len);
    if (!out) {
        redisFreeCommand(cmd);
        return RL_ERR;
    }
    memcpy(out + link->out_len, cmd, (size_t)len);
    redisFreeCommand(cmd);
    link->out = out;
    link->out_len += (size_t)len;
    link->awaited++;
    event_add(link->wev, NULL);
    return RL_OK;
}

void rl_redis_link_subscribed(rl_redis_link *link) {
    link->subscribed = 1;
}

void rl_redis_link_deadline(rl_redis_link *link, int ms) {
    if (ms < 0) {
        event_del(link->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(link->timer, &tv);
}

int rl_redis_link_connected(const rl_redis_link *link) {
    return link->connected;
}

int rl_redis_link_awaited(const rl_redis_link *link) {
    return link->awaited;
}

void rl_redis_link_free(rl_redis_link *link) {
    if (!link)
        return;
    if (link->in_call)
        link->doomed = 1;
    else
        release(link);
}
