/*
 * e2e_redis_faults.c: the Redis store when Redis misbehaves: scripts flushed, the
 * server killed and restarted, frozen, slow past command_timeout_ms, refusing AUTH,
 * unreachable at startup, answering nonsense; and concurrent submitters on one hot key
 * through two stores (two daemons) that must never over-admit.
 */
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_harness.h"

static harness h;

static void setup(void) {
    h_start(&h, NULL);
}

static void teardown(void) {
    h_stop(&h);
}

static rl_limits hour_log(uint64_t limit) {
    return h_limits1(RL_ALGO_SLIDING_LOG, limit, 3600000000LL, 0);
}

// Checks every 50 ms until a CHECK is allowed (the store is back); fails after 8 s.
static void wait_until_allowed(rl_store *store, const rl_store_item *it) {
    int64_t deadline = h_mono_us() + 8000000;
    for (;;) {
        if (h_do(&h, store, RL_STORE_CHECK, it, 1).status == RL_ST_ALLOWED)
            return;
        ck_assert_msg(h_mono_us() < deadline, "the store did not come back");
        h_run_for(&h, 50);
    }
}

START_TEST(script_flush_is_transparent) {
    rl_limits l = hour_log(100);
    h.conf.batch_max = 1; /* ten calls when the scripts are gone */
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = h_item(&l, "p", "k", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    outcome outs[10];
    for (int i = 0; i < 10; i++)
        h_submit(store, RL_STORE_CHECK, &it, 1, &outs[i]);
    h_wait(&h, outs, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(outs[i].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_PEEK, &it, 1).verdicts[0].remaining, 88);
    long long retries = h_stat(store, "noscript_retries"); /* the calls in flight then */
    ck_assert_int_ge(retries, 1);
    ck_assert_int_le(retries, 10);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_stat(store, "noscript_retries"), retries); /* loaded again */
    ck_assert_int_eq(h_stat(store, "errors.redis"), 0);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

START_TEST(redis_killed_then_restarted) {
    rl_limits l = hour_log(100);
    h.conf.command_timeout_ms = 300;
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = h_item(&l, "p", "k", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    rlt_redis_stop(&h.redis, 1);
    outcome o;
    h_submit(store, RL_STORE_CHECK, &it, 1, &o);
    h_wait(&h, &o, 1);
    ck_assert_int_eq(o.ans.status, RL_ST_STORE_UNAVAILABLE);
    ck_assert_msg(o.took_us < 300000 + 100000, "answered after %lld us", (long long)o.took_us);
    h_run_for(&h, 50);
    ck_assert(!h_state_up(store));
    h_submit(store, RL_STORE_CHECK, &it, 1, &o); /* down: answered at once */
    ck_assert(o.sync);
    ck_assert_int_eq(o.ans.status, RL_ST_STORE_UNAVAILABLE);
    ck_assert_int_eq(rlt_redis_restart(&h.redis), 0); /* empty, without the script */
    wait_until_allowed(store, &it);
    ck_assert(h_state_up(store));
    ck_assert_int_ge(h_stat(store, "reconnects"), 1);
    ck_assert_int_ge(h_stat(store, "errors.down"), 1);
    store->ops->free(store);
}
END_TEST

START_TEST(slow_redis_is_answered_within_the_timeout) {
    rl_limits l = hour_log(100);
    h.conf.command_timeout_ms = 100;
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = h_item(&l, "p", "k", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    int fd = rlt_redis_fire(&h.redis, "DEBUG SLEEP 0.6\r\n");
    ck_assert_int_ge(fd, 0);
    h_run_for(&h, 30);
    outcome o;
    h_submit(store, RL_STORE_CHECK, &it, 1, &o);
    h_wait(&h, &o, 1);
    ck_assert_int_eq(o.ans.status, RL_ST_STORE_UNAVAILABLE);
    ck_assert_msg(o.took_us >= 100000 && o.took_us < 250000, "answered after %lld us",
                  (long long)o.took_us);
    ck_assert_int_eq(h_stat(store, "errors.timeout"), 1);
    h_run_for(&h, 800); /* the late reply comes and is ignored */
    ck_assert_int_eq(o.calls, 1);
    ck_assert(h_state_up(store));
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 97); /* the late one was consumed in Redis */
    close(fd);
    store->ops->free(store);
}
END_TEST

START_TEST(frozen_redis_connections_are_dropped_and_remade) {
    rl_limits l = hour_log(100);
    h.conf.command_timeout_ms = 100;
    h.conf.connect_timeout_ms = 200;
    h.conf.batch_max = 1; /* one call on each connection */
    rl_store_redis_options opt = {.dead_after_ms = 400};
    rl_store *store = h_store(&h, &opt);
    rl_store_item it = h_item(&l, "p", "k", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    kill(h.redis.pid, SIGSTOP);
    outcome o[2];
    h_submit(store, RL_STORE_CHECK, &it, 1, &o[0]);
    h_submit(store, RL_STORE_CHECK, &it, 1, &o[1]);
    h_wait(&h, o, 2);
    ck_assert_int_eq(o[0].ans.status, RL_ST_STORE_UNAVAILABLE);
    ck_assert_int_eq(o[1].ans.status, RL_ST_STORE_UNAVAILABLE);
    ck_assert_msg(o[1].took_us < 250000, "answered after %lld us", (long long)o[1].took_us);
    h_run_for(&h, 700);
    ck_assert_int_eq(h_stat(store, "dead_connections"), 2);
    ck_assert(!h_state_up(store));
    kill(h.redis.pid, SIGCONT);
    wait_until_allowed(store, &it);
    store->ops->free(store);
}
END_TEST

START_TEST(free_answers_what_is_in_flight) {
    rl_limits l = hour_log(100);
    rl_store *store = h_store(&h, NULL);
    rl_store_item it = h_item(&l, "p", "k", 1);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
    int fd = rlt_redis_fire(&h.redis, "DEBUG SLEEP 0.3\r\n");
    h_run_for(&h, 20);
    outcome sent[3], queued[2];
    for (int i = 0; i < 3; i++)
        h_submit(store, RL_STORE_CHECK, &it, 1, &sent[i]);
    h_run_for(&h, 20); /* sent, no reply: Redis sleeps */
    for (int i = 0; i < 2; i++)
        h_submit(store, RL_STORE_CHECK, &it, 1, &queued[i]);
    store->ops->free(store);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sent[i].calls, 1);
        ck_assert_int_eq(sent[i].ans.status, RL_ST_STORE_UNAVAILABLE);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(queued[i].calls, 1);
        ck_assert_int_eq(queued[i].ans.status, RL_ST_STORE_UNAVAILABLE);
    }
    close(fd);
}
END_TEST

START_TEST(wrong_credentials_fail_startup) {
    char err[512];
    redisContext *c = rlt_redis_connect(&h.redis, "secret");
    freeReplyObject(redisCommand(c, "ACL SETUSER alice on >pw ~* &* +@all"));
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass secret"));
    redisFree(c);
    char wrong[] = "wrong", right[] = "secret", alice[] = "alice", pw[] = "pw";
    h.conf.password = wrong;
    ck_assert_ptr_null(rl_store_redis_new(h.base, &h.conf, err, sizeof(err)));
    ck_assert_msg(strstr(err, "WRONGPASS") && strstr(err, "AUTH"), "message: %s", err);
    h.conf.password = NULL;
    ck_assert_ptr_null(rl_store_redis_new(h.base, &h.conf, err, sizeof(err)));
    ck_assert_msg(strstr(err, "NOAUTH"), "message: %s", err);
    h.conf.username = alice;
    h.conf.password = wrong;
    ck_assert_ptr_null(rl_store_redis_new(h.base, &h.conf, err, sizeof(err)));
    ck_assert_msg(strstr(err, "WRONGPASS"), "message: %s", err);
    h.conf.password = pw;
    h.conf.db = 99;
    ck_assert_ptr_null(rl_store_redis_new(h.base, &h.conf, err, sizeof(err)));
    ck_assert_msg(strstr(err, "SELECT"), "message: %s", err);
    rl_limits l = hour_log(10);
    rl_store_item it = h_item(&l, "p", "k", 1);
    const char *users[2] = {"alice", NULL};
    char *passwords[2] = {pw, right};
    for (int i = 0; i < 2; i++) {
        h.conf.db = 3;
        h.conf.username = users[i] ? alice : NULL;
        h.conf.password = passwords[i];
        rl_store *store = h_store(&h, NULL);
        ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &it, 1).status, RL_ST_ALLOWED);
        store->ops->free(store);
    }
    c = rlt_redis_connect(&h.redis, "secret");
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "ZCARD rl:{p:k}:0");
    ck_assert_int_ge(r->integer, 1); /* in db 3 (two entries, or one if at one instant) */
    freeReplyObject(r);
    redisFree(c);
}
END_TEST

START_TEST(unreachable_at_startup_starts_down) {
    rl_limits l = hour_log(10);
    rl_store_item it = h_item(&l, "p", "k", 1);
    rlt_redis_stop(&h.redis, 1);
    rl_store *store = h_store(&h, NULL); /* refused: not an error */
    ck_assert(!h_state_up(store));
    outcome o;
    h_submit(store, RL_STORE_CHECK, &it, 1, &o);
    ck_assert(o.sync);
    ck_assert_int_eq(o.ans.status, RL_ST_STORE_UNAVAILABLE);
    h_run_for(&h, 150);
    ck_assert_int_eq(rlt_redis_restart(&h.redis), 0);
    wait_until_allowed(store, &it);
    store->ops->free(store);
}
END_TEST

/* ---- concurrency ---- */

/* A client keeping up to 4 CHECKs in flight until it has made all of its requests. */
typedef struct submitter {
    rl_store *store;                     /* the daemon it talks to */
    const rl_store_item *item;           /* the hot key */
    int left, in_flight;                 /* requests not made yet, and waiting */
    int allowed, denied, cached, failed; /* answers */
} submitter;

static void submitter_done(void *arg, const rl_store_answer *ans) {
    submitter *s = arg;
    s->in_flight--;
    s->allowed += ans->status == RL_ST_ALLOWED;
    s->denied += ans->status == RL_ST_DENIED;
    s->cached += (ans->flags & RL_FLAG_CACHED) != 0;
    s->failed += ans->status != RL_ST_ALLOWED && ans->status != RL_ST_DENIED;
}

// Eight submitters, four on each of two stores (two daemons), make 50 CHECKs each on
// one key that admits 20: exactly 20 pass. With the over-limit cache (cache) or without
// (every CHECK reaches Redis, in many pipelined calls).
static void hammer(const rl_limits *l, const char *key, int cache) {
    h.conf.pool = 4;
    h.conf.batch_max = 8;
    rl_store_redis_options opt = {.no_cache = !cache};
    rl_store *stores[2] = {h_store(&h, &opt), h_store(&h, &opt)};
    rl_store_item it = h_item(l, "hot", key, 1);
    submitter subs[8];
    for (int i = 0; i < 8; i++)
        subs[i] = (submitter){.store = stores[i % 2], .item = &it, .left = 50};
    int64_t deadline = h_mono_us() + 20000000;
    for (int busy = 1; busy;) {
        busy = 0;
        for (int i = 0; i < 8; i++) {
            submitter *s = &subs[i];
            while (s->left > 0 && s->in_flight < 4) {
                s->left--;
                s->in_flight++;
                ck_assert_int_eq(
                    s->store->ops->submit(s->store, RL_STORE_CHECK, s->item, 1, submitter_done, s),
                    RL_OK);
            }
            busy |= s->left > 0 || s->in_flight > 0;
        }
        event_base_loop(h.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ck_assert(h_mono_us() < deadline);
    }
    int allowed = 0, denied = 0, cached = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(subs[i].failed, 0);
        allowed += subs[i].allowed, denied += subs[i].denied, cached += subs[i].cached;
    }
    ck_assert_int_eq(allowed, 20);
    ck_assert_int_eq(denied, 380);
    ck_assert(cache ? cached > 0 : cached == 0);
    for (int i = 0; i < 2; i++) {
        if (!cache)
            ck_assert_int_ge(h_stat(stores[i], "calls"), 200 / 8);
        stores[i]->ops->free(stores[i]);
    }
}

START_TEST(hot_key_never_over_admits) {
    rl_limits log = hour_log(20);
    rl_limits gcra = h_limits1(RL_ALGO_GCRA, 20, 86400000000LL, 20);
    rl_limits counter = h_limits1(RL_ALGO_SLIDING_COUNTER, 20, 86400000000LL * 40, 0);
    for (int cache = 0; cache < 2; cache++) {
        hammer(&log, cache ? "log" : "log-nocache", cache);
        hammer(&gcra, cache ? "gcra" : "gcra-nocache", cache);
        hammer(&counter, cache ? "counter" : "counter-nocache", cache);
    }
}
END_TEST

/* ---- a fake Redis that answers the script with nonsense ---- */

static const char *const NONSENSE[] = {
    "+OK\r\n",
    ":7\r\n",
    "$-1\r\n",
    "*2\r\n:1\r\n:2\r\n",
    "*6\r\n:1\r\n:0\r\n$1\r\nx\r\n:1\r\n:1\r\n:1\r\n",
    "*6\r\n:1\r\n:0\r\n:9\r\n:0\r\n:0\r\n:0\r\n", /* allowed = 9 */
    "-ERR something broke\r\n",
};
#define NONSENSE_COUNT (sizeof(NONSENSE) / sizeof(NONSENSE[0]))

// Answers one parsed command: the handshake properly, every EVALSHA with the next
// nonsense reply.
static void fake_answer(int fd, const redisReply *cmd, size_t *next) {
    const char *name = cmd->element[0]->str, *out = "+OK\r\n";
    if (strcasecmp(name, "SCRIPT") == 0)
        out = "$40\r\n0123456789012345678901234567890123456789\r\n";
    else if (strcasecmp(name, "EVALSHA") == 0 || strcasecmp(name, "EVAL") == 0)
        out = NONSENSE[(*next)++ % NONSENSE_COUNT];
    if (write(fd, out, strlen(out)) < 0)
        _exit(1);
}

static void fake_serve(struct pollfd *p, redisReader *reader, size_t *next) {
    char buf[65536];
    int fd = p->fd;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        close(fd);
        p->fd = -1; /* poll skips it from now on */
        return;
    }
    redisReaderFeed(reader, buf, (size_t)n);
    void *reply;
    while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply) {
        fake_answer(fd, reply, next);
        freeReplyObject(reply);
    }
}

// Runs the fake server on listener until killed (in a child process).
static void fake_redis(int listener) {
    struct pollfd fds[16] = {{.fd = listener, .events = POLLIN}};
    redisReader *readers[16] = {0};
    size_t count = 1, next = 0;
    for (;;) {
        if (poll(fds, count, -1) < 0)
            _exit(1);
        for (size_t i = 1; i < count; i++)
            if (fds[i].revents)
                fake_serve(&fds[i], readers[i], &next);
        if ((fds[0].revents & POLLIN) && count < 16) {
            fds[count] = (struct pollfd){.fd = accept(listener, NULL, NULL), .events = POLLIN};
            readers[count++] = redisReaderCreate();
        }
    }
}

START_TEST(nonsense_replies_are_errors_not_crashes) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(bind(listener, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    ck_assert(listen(listener, 16) == 0);
    getsockname(listener, (struct sockaddr *)&addr, &len);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fake_redis(listener);
    }
    close(listener);
    h.conf.port = ntohs(addr.sin_port);
    rl_store *store = h_store(&h, NULL);
    rl_limits l = hour_log(10);
    rl_store_item it = h_item(&l, "p", "k", 1);
    for (size_t i = 0; i < 2 * NONSENSE_COUNT; i++) {
        rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &it, 1);
        ck_assert_msg(ans.status == RL_ST_INTERNAL || ans.status == RL_ST_STORE_UNAVAILABLE,
                      "nonsense %zu gave status %d", i % NONSENSE_COUNT, ans.status);
        ck_assert_ptr_nonnull(ans.errstr);
    }
    ck_assert_int_eq(h_stat(store, "errors.reply"), 2 * (NONSENSE_COUNT - 1));
    ck_assert_int_eq(h_stat(store, "errors.redis"), 2);
    ck_assert(h_state_up(store));
    store->ops->free(store);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
END_TEST

// Issue 11 point 4: one request whose Redis command fails inside the script (here a
// write refused because Redis is out of memory) is answered INTERNAL on its own; the
// other requests of the same script call get their exact answers (the old script failed
// the whole call: every request STORE_UNAVAILABLE, which the engine answers FALLBACK).
START_TEST(a_failing_request_is_answered_alone) {
    int64_t clock = h_wall_us() + 1000000;
    rl_store_redis_options opt = {.clock = &clock, .no_cache = 1};
    rl_store *store = h_store(&h, &opt);
    rl_limits fixed = h_limits1(RL_ALGO_FIXED_WINDOW, 5, 3600000000LL, 0), log = hour_log(5);
    rl_limits bucket = h_limits1(RL_ALGO_TOKEN_BUCKET, 5, 3600000000LL, 5);
    rl_store_item full = h_item(&fixed, "f", "full", 5), logged = h_item(&log, "l", "a", 1);
    rl_store_item bucket_full = h_item(&bucket, "b", "full", 5);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &full, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &logged, 1).status, RL_ST_ALLOWED);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &bucket_full, 1).status, RL_ST_ALLOWED);
    redisContext *c = rlt_redis_connect(&h.redis, NULL);
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 1")); /* every write: OOM */
    full.cost = 1;
    rl_store_item fresh = h_item(&fixed, "f", "new", 1);
    outcome outs[4];
    h_submit(store, RL_STORE_PEEK, &logged, 1, &outs[0]);
    h_submit(store, RL_STORE_CHECK, &full, 1, &outs[1]);
    h_submit(store, RL_STORE_CHECK, &fresh, 1, &outs[2]);
    h_submit(store, RL_STORE_PEEK, &fresh, 1, &outs[3]);
    h_wait(&h, outs, 4);
    ck_assert_int_eq(h_stat(store, "calls"), 4); /* the four in one call */
    ck_assert_int_eq(outs[0].ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(outs[0].ans.verdicts[0].remaining, 3);
    ck_assert_int_eq(outs[1].ans.status, RL_ST_DENIED);
    ck_assert_int_eq(outs[1].ans.verdicts[0].remaining, 0);
    ck_assert_int_eq(outs[1].ans.verdicts[0].retry_after_us, 3600000000LL - clock % 3600000000LL);
    ck_assert_int_eq(outs[2].ans.status, RL_ST_INTERNAL);
    ck_assert_ptr_nonnull(outs[2].ans.errstr);           /* Redis's OOM error (valid during done) */
    ck_assert_int_eq(outs[3].ans.status, RL_ST_ALLOWED); /* nothing of the failed one stayed */
    ck_assert_int_eq(outs[3].ans.verdicts[0].remaining, 4);
    /* the compact form (single bucket CHECKs): the same, item by item */
    bucket_full.cost = 1;
    rl_store_item bucket_new = h_item(&bucket, "b", "new", 1);
    h_submit(store, RL_STORE_CHECK, &bucket_full, 1, &outs[0]);
    h_submit(store, RL_STORE_CHECK, &bucket_new, 1, &outs[1]);
    h_wait(&h, outs, 2);
    ck_assert_int_eq(outs[0].ans.status, RL_ST_DENIED);
    ck_assert_int_eq(outs[0].ans.verdicts[0].retry_after_us, 720000000LL);
    ck_assert_int_eq(outs[1].ans.status, RL_ST_INTERNAL);
    ck_assert_int_eq(h_stat(store, "errors.item"), 2);
    ck_assert_int_eq(h_stat(store, "errors.redis"), 0);
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 0"));
    rl_store_answer ans = h_do(&h, store, RL_STORE_CHECK, &fresh, 1);
    ck_assert_int_eq(ans.status, RL_ST_ALLOWED);
    ck_assert_int_eq(ans.verdicts[0].remaining, 4);
    ck_assert_int_eq(h_do(&h, store, RL_STORE_CHECK, &bucket_new, 1).verdicts[0].remaining, 4);
    redisFree(c);
    store->ops->free(store);
}
END_TEST

static Suite *faults_suite(void) {
    Suite *s = suite_create("redis_faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, script_flush_is_transparent);
    tcase_add_test(tc, redis_killed_then_restarted);
    tcase_add_test(tc, slow_redis_is_answered_within_the_timeout);
    tcase_add_test(tc, frozen_redis_connections_are_dropped_and_remade);
    tcase_add_test(tc, free_answers_what_is_in_flight);
    tcase_add_test(tc, wrong_credentials_fail_startup);
    tcase_add_test(tc, unreachable_at_startup_starts_down);
    tcase_add_test(tc, hot_key_never_over_admits);
    tcase_add_test(tc, nonsense_replies_are_errors_not_crashes);
    tcase_add_test(tc, a_failing_request_is_answered_alone);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
