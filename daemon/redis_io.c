/*
 * redis_io.c: the daemon's libevent adapter for hiredis async contexts (see redis_io.h).
 *
 * Lifetime: hiredis calls the cleanup hook once when it lets go of the context, which
 * may happen inside one of this file's handlers (an I/O error in a read or write, a
 * reply callback that freed the context, a timeout). Cleanup then only removes the
 * events and marks the hooks freed; the handler frees them when hiredis returns. No
 * event is ever freed from inside its own callback, and none runs after cleanup.
 */
#include "redis_io.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "rlproto.h"

/* hiredis 1.0 added the scheduleTimer hook and redisAsyncHandleTimeout. */
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
#define RL_HIREDIS_TIMER 1
#else
#define RL_HIREDIS_TIMER 0
#endif

typedef struct io_hooks {
    redisAsyncContext *ac; /* the context driven */
    struct event *read;    /* persistent: the socket is readable */
    struct event *write;   /* one-shot: the socket is writable (connect, short write) */
    struct event *flush;   /* activated by hand: write what hiredis holds, end of iteration */
    struct event *timer;   /* hiredis 1.x's scheduleTimer, or NULL */
    int reading;           /* the read event is armed */
    int writing;           /* inside redisAsyncHandleWrite called from here */
    int entered;           /* inside one of the handlers below */
    int freed;             /* hiredis let go of the context during a handler */
} io_hooks;

static void io_destroy(io_hooks *h) {
    struct event *events[4] = {h->read, h->write, h->flush, h->timer};
    for (int i = 0; i < 4; i++)
        if (events[i])
            event_free(events[i]);
    rl_free(h);
}

// Ends a handler: frees the hooks if hiredis let go of the context meanwhile.
static void io_leave(io_hooks *h) {
    h->entered = 0;
    if (h->freed)
        io_destroy(h);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    io_hooks *h = arg;
    (void)fd;
    (void)what;
    h->entered = 1;
    redisAsyncHandleRead(h->ac); /* may let go of the context (cleanup) */
    io_leave(h);
}

// Shared by the write event and the flush: a write that does not finish arms the write
// event (io_add_write sees h->writing), one that finishes leaves it unarmed.
static void on_writable(evutil_socket_t fd, short what, void *arg) {
    io_hooks *h = arg;
    (void)fd;
    (void)what;
    h->entered = 1;
    h->writing = 1;
    redisAsyncHandleWrite(h->ac); /* may let go of the context (cleanup) */
    h->writing = 0;
    io_leave(h);
}

static void io_add_read(void *data) {
    io_hooks *h = data;
    if (!h->reading && event_add(h->read, NULL) == 0)
        h->reading = 1;
}

static void io_del_read(void *data) {
    io_hooks *h = data;
    event_del(h->read);
    h->reading = 0;
}

static void io_add_write(void *data) {
    io_hooks *h = data;
    if (h->writing || !(h->ac->c.flags & REDIS_CONNECTED))
        event_add(h->write, NULL); /* a short write, or a connect in progress */
    else if (!event_pending(h->write, EV_WRITE, NULL))
        event_active(h->flush, EV_WRITE, 0); /* once per iteration, however many commands */
}

static void io_del_write(void *data) {
    io_hooks *h = data;
    event_del(h->write); /* no system call unless it was armed */
}

static void io_cleanup(void *data) {
    io_hooks *h = data;
    event_del(h->read);
    event_del(h->write);
    event_del(h->flush); /* a flush scheduled for this iteration does not run */
    if (h->timer)
        event_del(h->timer);
    h->ac->ev.addRead = h->ac->ev.delRead = NULL;
    h->ac->ev.addWrite = h->ac->ev.delWrite = NULL;
    h->ac->ev.data = NULL;
#if RL_HIREDIS_TIMER
    h->ac->ev.scheduleTimer = NULL;
#endif
    if (h->entered)
        h->freed = 1; /* the handler frees h once hiredis returns to it */
    else
        io_destroy(h);
}

#if RL_HIREDIS_TIMER
static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    io_hooks *h = arg;
    (void)fd;
    (void)what;
    h->entered = 1;
    redisAsyncHandleTimeout(h->ac); /* may let go of the context (cleanup) */
    io_leave(h);
}

static void io_schedule_timer(void *data, struct timeval tv) {
    io_hooks *h = data;
    evtimer_add(h->timer, &tv); /* a pending timer is moved to the new deadline */
}
#endif

// Makes the hooks' events; returns NULL if memory or events could not be had.
static io_hooks *io_new(redisAsyncContext *ac, struct event_base *base) {
    io_hooks *h = rl_calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->ac = ac;
    h->read = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_readable, h);
    h->write = event_new(base, ac->c.fd, EV_WRITE, on_writable, h);
    h->flush = event_new(base, -1, 0, on_writable, h);
#if RL_HIREDIS_TIMER
    h->timer = evtimer_new(base, on_timeout, h);
    int timer_ok = h->timer != NULL;
#else
    int timer_ok = 1;
#endif
    if (h->read && h->write && h->flush && timer_ok)
        return h;
    io_destroy(h);
    return NULL;
}

int rl_redis_io_attach(redisAsyncContext *ac, struct event_base *base) {
    if (ac->ev.data)
        return RL_ERR; /* something is attached already */
    io_hooks *h = io_new(ac, base);
    if (!h || event_add(h->read, NULL) != 0) {
        if (h)
            io_destroy(h);
        return RL_ERR;
    }
    h->reading = 1;
    ac->ev.data = h;
    ac->ev.addRead = io_add_read;
    ac->ev.delRead = io_del_read;
    ac->ev.addWrite = io_add_write;
    ac->ev.delWrite = io_del_write;
    ac->ev.cleanup = io_cleanup;
#if RL_HIREDIS_TIMER
    ac->ev.scheduleTimer = io_schedule_timer;
#endif
    return RL_OK;
}
