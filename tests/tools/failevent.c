/*
 * failevent.c: an LD_PRELOAD library for the e2e tests that makes libevent's event_new
 * fail where the daemon must survive it, as out of memory would. RLT_FAIL_EVENT says
 * which calls return NULL:
 *   "signal"  every signal event (evsignal_new)
 *   "timer"   the first persistent timer (fd -1, EV_PERSIST): the engine's sweep timer
 * Other calls, and every call without RLT_FAIL_EVENT, go to the real event_new.
 * Built by e2e_daemon.c (cc -shared -fPIC) into its temporary directory.
 */
#include <dlfcn.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

typedef struct event *(*event_new_fn)(struct event_base *, evutil_socket_t, short,
                                      event_callback_fn, void *);

static int timer_failed; /* "timer": the first one has failed already */

// Returns 1 if this call must fail.
static int must_fail(evutil_socket_t fd, short what) {
    const char *mode = getenv("RLT_FAIL_EVENT");
    if (!mode)
        return 0;
    if (strcmp(mode, "signal") == 0)
        return (what & EV_SIGNAL) != 0;
    if (strcmp(mode, "timer") == 0 && fd == -1 && what == EV_PERSIST && !timer_failed)
        return timer_failed = 1;
    return 0;
}

struct event *event_new(struct event_base *base, evutil_socket_t fd, short what,
                        event_callback_fn cb, void *arg) {
    static event_new_fn real;
    if (must_fail(fd, what))
        return NULL;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "event_new");
    return real(base, fd, what, cb, arg);
}
