/*
 * http_conns.c: the HTTP endpoint's connections (see http_conns.h).
 */
#include "http_conns.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"

#define ACCEPT_PAUSE_MS 100

typedef struct conn {
    rl_http_conns *owner;            /* the module's state */
    struct bufferevent *bev;         /* its bufferevent (held by us until adopted) */
    struct evhttp_connection *evcon; /* evhttp's connection, once adopted */
    struct conn *next_fresh;         /* on the list awaiting adoption */
    struct event *deadline_ev;       /* the header deadline */
    int fd;                          /* its socket: the index in by_fd */
    int closing;                     /* counted in owner->closing */
} conn;

typedef struct watch {
    struct watch *next;                /* next watched listener */
    rl_http_conns *owner;              /* the module's state */
    struct evhttp_bound_socket *bound; /* evhttp's listener */
    struct event *pause_ev;            /* re-enables accepting */
} watch;

struct rl_http_conns {
    rl_http_conns *next_instance; /* every instance (accept errors find theirs) */
    struct event_base *base;      /* the loop */
    struct evhttp *evh;           /* the server */
    conn *fresh;                  /* accepted, not adopted yet */
    struct event *adopt_ev;       /* active while fresh is not empty */
    conn **by_fd;                 /* adopted connections by socket */
    size_t by_fd_cap;             /* entries in by_fd */
    size_t open;                  /* connections counted (fresh and adopted) */
    size_t closing;               /* see rl_http_conns_closing */
    uint64_t refused;             /* refused at the cap */
    uint32_t max_connections;     /* limits.max_http_connections */
    int header_timeout_ms;        /* limits.http_header_timeout */
    int64_t last_warning;         /* second (monotonic) of the last warning */
    watch *watches;               /* watched listeners */
};

static rl_http_conns *instances; /* (evconnlistener's error callback gets only the evhttp) */

static const char refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 37\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                              "limits.max_http_connections reached\r\n";

static void warn_rarely(rl_http_conns *hc, const char *what) {
    int64_t now = rl_clock_mono_us() / 1000000;
    if (now != hc->last_warning)
        rl_log_warn("http: %s", what);
    hc->last_warning = now;
}

/* ---- closing ---- */

static void conn_free(conn *c) {
    rl_http_conns *hc = c->owner;
    if (c->fd >= 0 && (size_t)c->fd < hc->by_fd_cap && hc->by_fd[c->fd] == c)
        hc->by_fd[c->fd] = NULL;
    if (c->closing)
        hc->closing--;
    if (c->deadline_ev)
        event_free(c->deadline_ev);
    hc->open--;
    rl_free(c);
}

static void on_closed(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    conn_free(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    (void)fd;
    (void)what;
    rl_log_debug("http: closing a connection whose request headers took over %d ms",
                 c->owner->header_timeout_ms);
    evhttp_connection_free(c->evcon); /* (on_closed frees c) */
}

static void arm_deadline(conn *c) {
    int ms = c->owner->header_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->deadline_ev, &tv);
}

// Input arrived: the first byte of a request starts its deadline.
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    conn *c = arg;
    (void)buf;
    if (info->n_added > 0 && !evtimer_pending(c->deadline_ev, NULL))
        arm_deadline(c);
}

/* ---- accepting ---- */

static struct bufferevent *on_accepted(struct event_base *base, void *arg) {
    rl_http_conns *hc = arg;
    conn *c = rl_calloc(1, sizeof(*c));
    struct bufferevent *bev = c ? bufferevent_socket_new(base, -1, 0) : NULL;
    if (!bev) {
        rl_free(c);
        warn_rarely(hc, "out of memory for a connection: it is not counted");
        return NULL; /* (evhttp makes its own bufferevent) */
    }
    *c = (conn){.owner = hc, .bev = bev, .fd = -1, .next_fresh = hc->fresh};
    bufferevent_incref(bev); /* (alive until adopted, whatever evhttp does meanwhile) */
    if (!hc->fresh)
        event_active(hc->adopt_ev, EV_TIMEOUT, 0);
    hc->fresh = c;
    hc->open++;
    return bev;
}

static int index_fd(rl_http_conns *hc, conn *c) {
    if ((size_t)c->fd >= hc->by_fd_cap) {
        size_t cap = hc->by_fd_cap ? hc->by_fd_cap : 64;
        while (cap <= (size_t)c->fd)
            cap *= 2;
        conn **by_fd = rl_realloc(hc->by_fd, cap * sizeof(*by_fd));
        if (!by_fd)
            return -1;
        memset(by_fd + hc->by_fd_cap, 0, (cap - hc->by_fd_cap) * sizeof(*by_fd));
        hc->by_fd = by_fd;
        hc->by_fd_cap = cap;
    }
    hc->by_fd[c->fd] = c;
    return 0;
}

static void refuse(rl_http_conns *hc, conn *c) {
    if (send(c->fd, refusal, sizeof(refusal) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        rl_log_debug("http: could not tell a refused connection why: %s", strerror(errno));
    hc->refused++;
    warn_rarely(hc, "limits.max_http_connections reached: refusing new connections");
    evhttp_connection_free(c->evcon); /* (on_closed frees c) */
}

// Takes a connection evhttp has set up: its evhttp_connection is the argument of its
// bufferevent's callbacks.
static void adopt(rl_http_conns *hc, conn *c) {
    bufferevent_data_cb readcb;
    void *evcon;
    bufferevent_getcb(c->bev, &readcb, NULL, NULL, &evcon);
    c->fd = readcb ? (int)bufferevent_getfd(c->bev) : -1;
    bufferevent_decref(c->bev);
    if (c->fd < 0) { /* evhttp gave up on it already */
        conn_free(c);
        return;
    }
    c->evcon = evcon;
    evhttp_connection_set_closecb(c->evcon, on_closed, c);
    c->deadline_ev = evtimer_new(hc->base, on_deadline, c);
    if (!c->deadline_ev || index_fd(hc, c) != 0 ||
        !evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c)) {
        warn_rarely(hc, "out of memory for a connection: closing it");
        evhttp_connection_free(c->evcon);
    } else if (hc->open > hc->max_connections) {
        refuse(hc, c);
    } else {
        arm_deadline(c);
    }
}

static void on_adopt(evutil_socket_t fd, short what, void *arg) {
    rl_http_conns *hc = arg;
    conn *list = hc->fresh;
    (void)fd;
    (void)what;
    hc->fresh = NULL;
    while (list) {
        conn *c = list;
        list = c->next_fresh;
        adopt(hc, c);
    }
}

/* ---- accept errors ---- */

static void on_pause_over(evutil_socket_t fd, short what, void *arg) {
    watch *w = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(evhttp_bound_socket_get_listener(w->bound));
}

static void on_accept_error(struct evconnlistener *lev, void *arg) {
    int err = errno;
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
    for (rl_http_conns *hc = instances; hc; hc = hc->next_instance) {
        for (watch *w = hc->watches; hc->evh == arg && w; w = w->next) {
            if (evhttp_bound_socket_get_listener(w->bound) != lev)
                continue;
            rl_log_warn("http: accept: %s; pausing for %d ms", strerror(err), ACCEPT_PAUSE_MS);
            evconnlistener_disable(lev);
            evtimer_add(w->pause_ev, &pause);
            return;
        }
    }
}

int rl_http_conns_watch(rl_http_conns *hc, struct evhttp_bound_socket *bound) {
    watch *w = rl_calloc(1, sizeof(*w));
    if (w)
        w->pause_ev = evtimer_new(hc->base, on_pause_over, w);
    if (!w || !w->pause_ev) {
        rl_free(w);
        return -1;
    }
    w->owner = hc;
    w->bound = bound;
    w->next = hc->watches;
    hc->watches = w;
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), on_accept_error);
    return 0;
}

void rl_http_conns_unwatch(rl_http_conns *hc, struct evhttp_bound_socket *bound) {
    for (watch **wp = &hc->watches; *wp; wp = &(*wp)->next) {
        watch *w = *wp;
        if (w->bound != bound)
            continue;
        *wp = w->next;
        event_free(w->pause_ev);
        rl_free(w);
        return;
    }
}

/* ---- requests ---- */

static conn *conn_of(rl_http_conns *hc, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev ? (int)bufferevent_getfd(bev) : -1;
    conn *c = fd >= 0 && (size_t)fd < hc->by_fd_cap ? hc->by_fd[fd] : NULL;
    return c && c->evcon == evcon ? c : NULL;
}

void rl_http_conns_request(rl_http_conns *hc, struct evhttp_request *req) {
    conn *c = conn_of(hc, req);
    if (c)
        evtimer_del(c->deadline_ev);
}

void rl_http_conns_close_after(rl_http_conns *hc, struct evhttp_request *req) {
    conn *c = conn_of(hc, req);
    if (!c || c->closing)
        return;
    c->closing = 1;
    hc->closing++;
}

size_t rl_http_conns_closing(const rl_http_conns *hc) {
    return hc->closing;
}

size_t rl_http_conns_open(const rl_http_conns *hc, uint64_t *refused) {
    *refused = hc->refused;
    return hc->open;
}

void rl_http_conns_limits(rl_http_conns *hc, uint32_t max_connections, int header_timeout_ms) {
    hc->max_connections = max_connections;
    hc->header_timeout_ms = header_timeout_ms;
}

/* ---- lifetime ---- */

rl_http_conns *rl_http_conns_new(struct event_base *base, struct evhttp *evh) {
    rl_http_conns *hc = rl_calloc(1, sizeof(*hc));
    if (hc)
        hc->adopt_ev = event_new(base, -1, 0, on_adopt, hc);
    if (!hc || !hc->adopt_ev) {
        rl_free(hc);
        return NULL;
    }
    hc->base = base;
    hc->evh = evh;
    hc->max_connections = 1024;
    hc->header_timeout_ms = 10000;
    hc->next_instance = instances;
    instances = hc;
    evhttp_set_bevcb(evh, on_accepted, hc);
    return hc;
}

void rl_http_conns_free(rl_http_conns *hc) {
    if (!hc)
        return;
    for (rl_http_conns **p = &instances; *p; p = &(*p)->next_instance) {
        if (*p == hc) {
            *p = hc->next_instance;
            break;
        }
    }
    while (hc->watches)
        rl_http_conns_unwatch(hc, hc->watches->bound);
    on_adopt(-1, 0, hc); /* (connections evhttp_free closed already: their structs go) */
    for (size_t fd = 0; fd < hc->by_fd_cap; fd++)
        if (hc->by_fd[fd])
            conn_free(hc->by_fd[fd]);
    rl_free(hc->by_fd);
    event_free(hc->adopt_ev);
    rl_free(hc);
}
