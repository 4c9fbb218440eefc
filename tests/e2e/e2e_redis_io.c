/*
 * e2e_redis_io.c: the daemon's hiredis event adapter (daemon/redis_io.c) against a real
 * redis-server: commands written by one flush at the end of the loop iteration with no
 * write event armed (no epoll_ctl per command), the write event armed only after a
 * write that did not finish, and the context let go at the awkward moments (a flush
 * scheduled, inside the flush, inside a reply callback) without a leak or a stale event.
 * The number of events armed on the context's socket stands for epoll_ctl calls: an
 * event that is not armed never reaches epoll. With hiredis 1.x, hiredis's own command
 * timeout (redisAsyncSetTimeout, served by the scheduleTimer hook) is tested too.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/redis.h"
#include "alloc.h"
#include "redis_io.h"
#include "rlproto.h"

enum { MAX_REPLIES = 256 };

/* One test's server, loop and async context, and what the callbacks saw. */
typedef struct fixture {
    rlt_redis redis;             /* the server */
    struct event_base *base;     /* the loop */
    redisAsyncContext *ac;       /* the context under test, NULL once let go */
    int fd;                      /* its socket */
    int connected;               /* the connect callback said REDIS_OK */
    int disconnects;             /* disconnect callbacks */
    char disconnect_why[128];    /* ac->errstr at the disconnect */
    int replies;                 /* reply callbacks */
    int null_replies;            /* of which with a NULL reply (context let go) */
    long long ints[MAX_REPLIES]; /* integer replies, in order */
    int free_at_reply;           /* the reply callback numbered this frees the context */
} fixture;

static fixture f;

static void setup(void) {
    memset(&f, 0, sizeof(f));
    signal(SIGPIPE, SIG_IGN);
    ck_assert_int_eq(rlt_redis_start(&f.redis, NULL), 0);
    f.base = event_base_new();
    ck_assert_ptr_nonnull(f.base);
}

static void teardown(void) {
    if (f.ac)
        redisAsyncFree(f.ac);
    event_base_free(f.base);
    rlt_redis_cleanup(&f.redis);
}

static int count_armed(const struct event_base *base, const struct event *ev, void *arg) {
    int *count = arg;
    (void)base;
    if (event_get_fd(ev) == f.fd && event_pending(ev, EV_READ | EV_WRITE, NULL))
        (*count)++;
    return 0;
}

// Returns how many events wait on the context's socket: each is an epoll registration.
static int armed(void) {
    int count = 0;
    event_base_foreach_event(f.base, count_armed, &count);
    return count;
}

static int active(void) {
    return event_base_get_num_events(f.base, EVENT_BASE_COUNT_ACTIVE);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    (void)ac;
    f.connected = status == REDIS_OK;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    (void)status;
    f.disconnects++;
    snprintf(f.disconnect_why, sizeof(f.disconnect_why), "%s", ac->errstr ? ac->errstr : "");
    f.ac = NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
    redisReply *reply = r;
    (void)privdata;
    if (!reply) {
        f.null_replies++;
        return;
    }
    if (f.replies < MAX_REPLIES)
        f.ints[f.replies] = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    if (++f.replies == f.free_at_reply) {
        f.ac = NULL;
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    }
}

// Runs the loop until *counter reaches want; fails after 5 s.
static void run_until(const int *counter, int want) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (*counter < want) {
        event_base_loop(f.base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - start.tv_sec < 5, "waited 5 s for %d (at %d)", want, *counter);
    }
}

// Connects on the Unix socket, attached by redis_io, and waits for a PING's reply.
static void connect_attached(void) {
    f.ac = redisAsyncConnectUnix(f.redis.sock);
    ck_assert_ptr_nonnull(f.ac);
    ck_assert_int_eq(f.ac->err, 0);
    f.fd = f.ac->c.fd;
    ck_assert_int_eq(rl_redis_io_attach(f.ac, f.base), RL_OK);
    ck_assert_int_eq(redisAsyncSetConnectCallback(f.ac, on_connect), REDIS_OK);
    ck_assert_int_eq(redisAsyncSetDisconnectCallback(f.ac, on_disconnect), REDIS_OK);
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "PING"), REDIS_OK);
    run_until(&f.replies, 1);
    ck_assert_int_eq(f.connected, 1);
    ck_assert_int_eq(f.ints[0], -1); /* PONG */
    ck_assert_int_eq(armed(), 1);    /* the read event only */
}

START_TEST(commands_of_an_iteration_go_out_in_one_flush) {
    connect_attached();
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    ck_assert_int_eq(armed(), 1);  /* no write event armed */
    ck_assert_int_eq(active(), 1); /* one flush for the hundred */
    run_until(&f.replies, 101);
    for (int i = 1; i <= 100; i++)
        ck_assert_int_eq(f.ints[i], i);
    for (int i = 0; i < 100; i++) { /* one command per iteration: still no write event */
        ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
        ck_assert_int_eq(armed(), 1);
        run_until(&f.replies, 102 + i);
        ck_assert_int_eq(f.ints[101 + i], 101 + i);
    }
    ck_assert_int_eq(armed(), 1);
}
END_TEST

START_TEST(a_write_that_does_not_finish_arms_the_write_event) {
    enum { VALUES = 40, VALUE_LEN = 100000 };
    static char value[VALUE_LEN];
    memset(value, 'v', sizeof(value));
    connect_attached();
    int sleeper = rlt_redis_fire(&f.redis, "DEBUG SLEEP 0.3\r\n");
    ck_assert_int_ge(sleeper, 0);
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL); /* Redis is asleep: 4 MB cannot all go into the socket */
    for (int i = 0; i < VALUES; i++)
        ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "APPEND big:%d %b", i, value,
                                           (size_t)VALUE_LEN),
                         REDIS_OK);
    event_base_loop(f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* the flush */
    ck_assert_int_eq(armed(), 2);                           /* the write event waits */
    run_until(&f.replies, 1 + VALUES);
    for (int i = 1; i <= VALUES; i++)
        ck_assert_int_eq(f.ints[i], VALUE_LEN);
    ck_assert_int_eq(armed(), 1); /* disarmed once everything was written */
    close(sleeper);
}
END_TEST

START_TEST(freed_with_a_flush_scheduled) {
    connect_attached();
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    ck_assert_int_eq(active(), 1);
    redisAsyncContext *ac = f.ac;
    f.ac = NULL;
    redisAsyncFree(ac);
    ck_assert_int_eq(f.null_replies, 1);
    ck_assert_int_eq(f.disconnects, 1);
    ck_assert_int_eq(active(), 0); /* the flush will not run */
    ck_assert_int_eq(armed(), 0);  /* the read event is gone */
    event_base_loop(f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ck_assert_int_eq(f.replies, 1);
}
END_TEST

START_TEST(lost_inside_the_flush) {
    connect_attached();
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "CLIENT ID"), REDIS_OK);
    run_until(&f.replies, 2);
    redisContext *c = rlt_redis_connect(&f.redis, NULL);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CLIENT KILL ID %lld", f.ints[1]);
    ck_assert_int_eq(r->integer, 1); /* the socket is closed on Redis's side now */
    freeReplyObject(r);
    redisFree(c);
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    run_until(&f.disconnects, 1); /* the flush runs before the read sees the end */
    ck_assert_str_eq(f.disconnect_why, strerror(EPIPE));
    ck_assert_int_eq(f.null_replies, 1);
    ck_assert_int_eq(active(), 0);
    ck_assert_int_eq(armed(), 0);
}
END_TEST

START_TEST(freed_inside_a_reply_callback) {
    connect_attached();
    f.free_at_reply = 2;
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    run_until(&f.disconnects, 1);
    ck_assert_int_eq(f.replies, 2);
    ck_assert_int_eq(f.null_replies, 1); /* the second INCR */
    ck_assert_int_eq(armed(), 0);
    event_base_loop(f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}
END_TEST

START_TEST(attach_without_memory_leaves_the_context_alone) {
    f.ac = redisAsyncConnectUnix(f.redis.sock);
    ck_assert_ptr_nonnull(f.ac);
    f.fd = f.ac->c.fd;
    rl_alloc_fail_after(0);
    int rc = rl_redis_io_attach(f.ac, f.base);
    rl_alloc_fail_after(-1);
    ck_assert_int_eq(rc, RL_ERR);
    ck_assert_ptr_null(f.ac->ev.data);
    ck_assert_ptr_null(f.ac->ev.addWrite);
    ck_assert_int_eq(armed(), 0);
    ck_assert_int_eq(rl_redis_io_attach(f.ac, f.base), RL_OK);
    ck_assert_int_eq(armed(), 1);
    ck_assert_int_eq(rl_redis_io_attach(f.ac, f.base), RL_ERR); /* attached already */
}
END_TEST

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
START_TEST(hiredis_command_timeout_fires) {
    connect_attached();
    struct timeval tv = {0, 100000};
    redisAsyncSetTimeout(f.ac, tv);
    int sleeper = rlt_redis_fire(&f.redis, "DEBUG SLEEP 0.5\r\n");
    ck_assert_int_ge(sleeper, 0);
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL);
    ck_assert_int_eq(redisAsyncCommand(f.ac, on_reply, NULL, "INCR n"), REDIS_OK);
    run_until(&f.disconnects, 1);
    ck_assert_int_eq(f.null_replies, 1);
    ck_assert_str_eq(f.disconnect_why, "Timeout");
    close(sleeper);
}
END_TEST
#endif

static Suite *io_suite(void) {
    Suite *s = suite_create("redis_io");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, commands_of_an_iteration_go_out_in_one_flush);
    tcase_add_test(tc, a_write_that_does_not_finish_arms_the_write_event);
    tcase_add_test(tc, freed_with_a_flush_scheduled);
    tcase_add_test(tc, lost_inside_the_flush);
    tcase_add_test(tc, freed_inside_a_reply_callback);
    tcase_add_test(tc, attach_without_memory_leaves_the_context_alone);
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
    tcase_add_test(tc, hiredis_command_timeout_fires);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(io_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
