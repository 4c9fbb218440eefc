/*
 * e2e_redis_sentinel.c: the Sentinel client (daemon/redis_sentinel.c) and the pool's
 * Sentinel mode (ROLE check, retarget) against real servers started here: a master and a
 * replica (both with a password), and three redis-sentinel processes (with their own
 * password) monitoring them with quorum 2. Also: Sentinel addresses that refuse or never
 * answer, hostile Sentinels (a fake server in a thread answering garbage), and a
 * kill -9 of the master followed to the promoted replica.
 */
#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/redis.h"
#include "clock.h"
#include "redis_pool.h"
#include "redis_sentinel.h"
#include "rlproto.h"

#define MASTER_PW "master-pw"
#define SENTINEL_PW "sentinel-pw"
#define NAME "mymaster"

/* The servers of one test case. */
typedef struct setup_t {
    rlt_redis master, replica; /* the data servers */
    pid_t sentinel_pid[3];     /* the Sentinels */
    int sentinel_port[3];      /* their ports */
    char dir[64];              /* the Sentinels' directory */
    rl_redis_addr addrs[3];    /* the Sentinels as a conf lists them */
    char host[16];             /* "127.0.0.1" */
} setup_t;

static setup_t g;

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static pid_t spawn_sentinel(int i) {
    char path[128], cmd[256];
    snprintf(path, sizeof(path), "%s/sentinel-%d.conf", g.dir, i);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel-%d.log\n"
            "requirepass " SENTINEL_PW "\nsentinel sentinel-pass " SENTINEL_PW "\n"
            "sentinel monitor " NAME " 127.0.0.1 %d 2\n"
            "sentinel auth-pass " NAME " " MASTER_PW "\n"
            "sentinel down-after-milliseconds " NAME " 1000\n"
            "sentinel failover-timeout " NAME " 3000\n",
            g.sentinel_port[i], g.dir, g.dir, i, g.master.port);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "exec redis-server '%s' --sentinel", path);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Returns the integer field name of SENTINEL MASTER mymaster on Sentinel i, or -1.
static long long sentinel_field(int i, const char *name) {
    long long value = -1;
    redisContext *c = redisConnect("127.0.0.1", g.sentinel_port[i]);
    redisReply *r = c && !c->err ? redisCommand(c, "AUTH %s", SENTINEL_PW) : NULL;
    if (r)
        freeReplyObject(r);
    r = c && !c->err ? redisCommand(c, "SENTINEL MASTER %s", NAME) : NULL;
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k + 1 < r->elements; k += 2)
        if (strcmp(r->element[k]->str, name) == 0)
            value = atoll(r->element[k + 1]->str);
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return value;
}

// Waits (20 s at most) until every Sentinel knows the replica and the two others.
static int wait_sentinels(void) {
    for (int round = 0; round < 200; round++) {
        int ready = 0;
        for (int i = 0; i < 3; i++)
            ready += sentinel_field(i, "num-slaves") == 1 &&
                     sentinel_field(i, "num-other-sentinels") == 2;
        if (ready == 3)
            return 0;
        pause_ms(100);
    }
    return -1;
}

static void start_servers(void) {
    char args[128];
    memset(&g, 0, sizeof(g));
    signal(SIGPIPE, SIG_IGN);
    snprintf(g.host, sizeof(g.host), "127.0.0.1");
    ck_assert_int_eq(
        rlt_redis_start(&g.master, "--requirepass " MASTER_PW " --masterauth " MASTER_PW), 0);
    snprintf(args, sizeof(args), "--requirepass %s --masterauth %s --replicaof 127.0.0.1 %d",
             MASTER_PW, MASTER_PW, g.master.port);
    ck_assert_int_eq(rlt_redis_start(&g.replica, args), 0);
    snprintf(g.dir, sizeof(g.dir), "/tmp/rlt-sentinel-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g.dir));
    for (int i = 0; i < 3; i++) {
        g.sentinel_port[i] = free_port();
        g.sentinel_pid[i] = spawn_sentinel(i);
        ck_assert_int_gt(g.sentinel_pid[i], 0);
        g.addrs[i] = (rl_redis_addr){g.host, (uint16_t)g.sentinel_port[i]};
    }
    ck_assert_int_eq(wait_sentinels(), 0);
}

static void stop_servers(void) {
    char cmd[128];
    for (int i = 0; i < 3; i++)
        if (g.sentinel_pid[i] > 0) {
            kill(g.sentinel_pid[i], SIGKILL);
            waitpid(g.sentinel_pid[i], NULL, 0);
        }
    rlt_redis_cleanup(&g.replica);
    rlt_redis_cleanup(&g.master);
    if (g.dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g.dir);
    }
}

static rl_store_conf sentinel_conf(rl_redis_addr *addrs, size_t count) {
    static char name[] = NAME, spw[] = SENTINEL_PW, mpw[] = MASTER_PW;
    rl_store_conf conf = {.type = RL_STORE_REDIS, .mode = RL_REDIS_SENTINEL};
    conf.sentinel_master = name;
    conf.sentinels = addrs;
    conf.sentinel_count = count;
    conf.sentinel_password = spw;
    conf.password = mpw;
    conf.connect_timeout_ms = 300;
    conf.pool = 2;
    return conf;
}

static int64_t now_ms(void) {
    return rl_clock_mono_us() / 1000;
}

/* ---- startup resolve ---- */

START_TEST(resolve_gives_the_master) {
    rl_store_conf conf = sentinel_conf(g.addrs, 3);
    char host[256], err[512] = "";
    uint16_t port = 0;
    ck_assert_msg(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)) ==
                      RL_OK,
                  "%s", err);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, g.master.port);
}
END_TEST

START_TEST(resolve_skips_a_refusing_and_a_silent_sentinel) {
    int hole = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(hole, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(hole, 8), 0); /* accepts in the kernel, never answers */
    ck_assert_int_eq(getsockname(hole, (struct sockaddr *)&addr, &len), 0);
    rl_redis_addr addrs[3] = {
        {g.host, (uint16_t)free_port()}, {g.host, ntohs(addr.sin_port)}, g.addrs[1]};
    rl_store_conf conf = sentinel_conf(addrs, 3);
    char host[256], err[512] = "";
    uint16_t port = 0;
    int64_t t0 = now_ms();
    ck_assert_msg(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)) ==
                      RL_OK,
                  "%s", err);
    int64_t took = now_ms() - t0;
    ck_assert_int_eq(port, g.master.port);
    ck_assert_msg(took >= 250 && took < 1500, "took %lld ms", (long long)took);
    /* Only the dead and the silent one: RL_AGAIN within two timeouts, naming the last. */
    conf.sentinel_count = 2;
    t0 = now_ms();
    ck_assert_int_eq(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)),
                     RL_AGAIN);
    took = now_ms() - t0;
    ck_assert_msg(took < 1000, "took %lld ms", (long long)took);
    ck_assert_msg(strstr(err, "timed out") != NULL, "%s", err);
    close(hole);
}
END_TEST

START_TEST(resolve_refused_by_a_wrong_sentinel_password) {
    static char wrong[] = "nope";
    rl_store_conf conf = sentinel_conf(g.addrs, 3);
    char host[256], err[512] = "";
    uint16_t port = 0;
    conf.sentinel_password = wrong;
    ck_assert_int_eq(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)),
                     RL_ERR);
    ck_assert_msg(strstr(err, "AUTH refused") != NULL, "%s", err);
    conf.sentinel_password = NULL; /* NOAUTH */
    ck_assert_int_eq(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)),
                     RL_ERR);
    ck_assert_msg(strstr(err, "NOAUTH") != NULL, "%s", err);
    conf = sentinel_conf(g.addrs, 3);
    conf.password = wrong; /* the master refuses */
    ck_assert_int_eq(rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err)),
                     RL_ERR);
    ck_assert_msg(strstr(err, "master " NAME) != NULL, "%s", err);
}
END_TEST

/* ---- hostile Sentinels ---- */

/* A fake Sentinel: answers every connection with one canned reply, then holds it open. */
typedef struct fake {
    int fd;             /* the listening socket */
    uint16_t port;      /* its port */
    const char *answer; /* what it writes */
    size_t len;         /* bytes of answer */
    pthread_t thread;   /* serves until fd is shut down */
} fake;

static void *fake_serve(void *arg) {
    fake *f = arg;
    int c;
    while ((c = accept(f->fd, NULL, NULL)) >= 0) {
        char buf[512];
        if (read(c, buf, sizeof(buf)) > 0 && write(c, f->answer, f->len) < 0)
            perror("fake write");
        pause_ms(200);
        close(c);
    }
    return NULL;
}

static void fake_start(fake *f, const char *answer, size_t len) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t alen = sizeof(addr);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(f->fd, 8), 0);
    ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&addr, &alen), 0);
    f->port = ntohs(addr.sin_port);
    f->answer = answer;
    f->len = len;
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(fake *f) {
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

START_TEST(hostile_sentinels_are_refused_without_harm) {
    static char big[100000];
    static const char *const answers[] = {
        "*2000000000\r\n",                                    /* an array no one can hold */
        "*2\r\n$3\r\nabc\r\n:1\r\n",                          /* a port of the wrong type */
        "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n",           /* a port out of range */
        "*2\r\n$9\r\n127.0.0.1\r\n$2\r\n-1\r\n",              /* a negative port */
        "*2\r\n$12\r\n1.2.3.4 ;rm \r\n$4\r\n6379\r\n",        /* not a host */
        "*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n", /* three elements */
        "hello\r\n",                                          /* not RESP */
        "+OK\r\n+OK\r\n+OK\r\n",                              /* replies to no command */
        big,                                                  /* a bulk that never ends */
    };
    snprintf(big, sizeof(big), "$90000000\r\n");
    memset(big + strlen(big), 'x', sizeof(big) - strlen(big) - 1);
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        fake f;
        fake_start(&f, answers[i], strlen(answers[i]));
        rl_redis_addr addrs[1] = {{g.host, f.port}};
        rl_store_conf conf = sentinel_conf(addrs, 1);
        conf.sentinel_password = NULL; /* the fake's first answer goes to the question */
        char host[256], err[512] = "";
        uint16_t port = 0;
        int64_t t0 = now_ms();
        int rc = rl_redis_sentinel_resolve(&conf, host, sizeof(host), &port, err, sizeof(err));
        ck_assert_msg(rc == RL_AGAIN, "answer %zu: rc %d (%s)", i, rc, err);
        ck_assert_msg(now_ms() - t0 < 1000, "answer %zu took too long", i);
        fake_stop(&f);
    }
}
END_TEST

static void on_master(void *arg, const char *host, uint16_t port);
static struct event_base *loop_base;
static void run_for(int ms);

typedef struct followed {
    int calls;      /* fn calls */
    char host[256]; /* the last address */
    uint16_t port;  /* its port */
    int64_t at_ms;  /* when fn was last called */
} followed;

static uint64_t figure(const rl_store_figures *figs, const char *name) {
    for (size_t i = 0; i < figs->count; i++)
        if (strcmp(figs->list[i].name, name) == 0)
            return figs->list[i].value;
    return UINT64_MAX;
}

// Runs a follower on the fake Sentinel answering answer for ms; returns its errors figure.
static uint64_t follow_fake(const char *answer, followed *f, int ms) {
    fake fk;
    fake_start(&fk, answer, strlen(answer));
    rl_redis_addr addrs[1] = {{g.host, fk.port}};
    rl_store_conf conf = sentinel_conf(addrs, 1);
    conf.sentinel_password = NULL;
    loop_base = event_base_new();
    rl_redis_sentinel *s = rl_redis_sentinel_new(loop_base, &conf, NULL, 0, on_master, f);
    ck_assert_ptr_nonnull(s);
    run_for(ms);
    rl_store_figures figs = {.type = "redis"};
    rl_redis_sentinel_figures(s, &figs);
    uint64_t errors = figure(&figs, "errors");
    rl_store_figures_free(&figs);
    rl_redis_sentinel_free(s);
    event_base_free(loop_base);
    fake_stop(&fk);
    return errors;
}

START_TEST(the_follower_survives_hostile_sentinels) {
    static const char *const answers[] = {
        "*1\r\n:1\r\n",       /* a pub/sub reply hiredis 0.14 would assert on */
        "*0\r\n*0\r\n*0\r\n", /* empty arrays, and more than asked */
        "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
        "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$21\r\nmymaster 1 2 ;x 99999\r\n",
        "*2000000000\r\n",
    };
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        followed f = {0};
        uint64_t errors = follow_fake(answers[i], &f, 700);
        ck_assert_msg(errors >= 1, "answer %zu: no error counted", i);
        ck_assert_int_eq(f.calls, 0);
    }
}
END_TEST

START_TEST(the_follower_takes_a_switch_message_for_its_master_only) {
    char answer[512];
    const char *other = "other 10.0.0.1 1 10.0.0.2 2";
    char mine[128];
    snprintf(mine, sizeof(mine), NAME " 10.0.0.1 1 127.0.0.1 %d", g.master.port);
    snprintf(answer, sizeof(answer),
             "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
             "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%zu\r\n%s\r\n"
             "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%zu\r\n%s\r\n",
             strlen(other), other, strlen(mine), mine);
    followed f = {0};
    follow_fake(answer, &f, 1000);
    ck_assert_int_eq(f.calls, 1); /* confirmed by ROLE on the real master */
    ck_assert_int_eq(f.port, g.master.port);
}
END_TEST

/* ---- the pool in Sentinel mode ---- */

typedef struct pool_seen {
    int ready, down, wrong_role; /* events */
    int replies, null_replies;   /* command callbacks */
} pool_seen;

static pool_seen seen;

static void on_ready(void *arg) {
    (void)arg;
    seen.ready++;
    event_base_loopbreak(loop_base);
}

static void on_down(void *arg) {
    (void)arg;
    seen.down++;
}

static void on_wrong_role(void *arg) {
    (void)arg;
    seen.wrong_role++;
    event_base_loopbreak(loop_base);
}

static void on_cmd(rl_redis_cmd *cmd, struct redisReply *reply) {
    (void)cmd;
    seen.replies++;
    seen.null_replies += reply == NULL;
}

// Runs the loop until something breaks it, at most ms.
static void run_for(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(loop_base, &tv);
    event_base_dispatch(loop_base);
}

START_TEST(pool_refuses_a_replica_and_retargets_to_the_master) {
    rl_store_conf conf = sentinel_conf(g.addrs, 3);
    static char script[] = "return 1";
    char sha[41], err[256];
    conf.host = g.host;
    conf.port = (uint16_t)g.replica.port;
    ck_assert_int_eq(rl_redis_pool_check(&conf, script, strlen(script), sha, err, sizeof(err)),
                     RL_AGAIN);
    ck_assert_msg(strstr(err, "not a master (ROLE slave)") != NULL, "%s", err);
    memset(&seen, 0, sizeof(seen));
    loop_base = event_base_new();
    rl_redis_pool_events events = {on_ready, on_down, NULL, on_wrong_role};
    rl_redis_pool *pool =
        rl_redis_pool_new(loop_base, &conf, script, strlen(script), 0, 5000, events);
    ck_assert_ptr_nonnull(pool);
    run_for(3000);
    ck_assert_int_eq(seen.wrong_role, 1);
    ck_assert_int_eq(rl_redis_pool_ready(pool), 0);
    ck_assert_int_eq(rl_redis_pool_retarget(pool, g.host, (uint16_t)g.master.port), RL_OK);
    run_for(3000);
    ck_assert_int_ge(seen.ready, 1);
    ck_assert_int_eq(rl_redis_pool_up(pool), 1);
    /* A command in flight when the pool moves is answered NULL, never resent. */
    rl_redis_cmd cmd = {.fn = on_cmd};
    const char *sleep_cmd = "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.3\r\n";
    ck_assert_int_eq(rl_redis_pool_send(pool, NULL, &cmd, sleep_cmd, strlen(sleep_cmd)), RL_OK);
    ck_assert_int_eq(rl_redis_pool_retarget(pool, g.host, (uint16_t)g.master.port), RL_OK);
    ck_assert_int_eq(rl_redis_pool_send(pool, NULL, &cmd, sleep_cmd, strlen(sleep_cmd)), RL_ERR);
    seen.ready = 0;
    run_for(3000);
    ck_assert_int_eq(seen.replies, 1);
    ck_assert_int_eq(seen.null_replies, 1);
    ck_assert_int_ge(seen.ready, 1);
    ck_assert_int_eq(seen.down, 1);
    rl_redis_pool_free(pool);
    event_base_free(loop_base);
}
END_TEST

/* ---- following a failover ---- */

static void on_master(void *arg, const char *host, uint16_t port) {
    followed *f = arg;
    f->calls++;
    snprintf(f->host, sizeof(f->host), "%s", host);
    f->port = port;
    f->at_ms = now_ms();
    event_base_loopbreak(loop_base);
}

START_TEST(follows_the_replica_after_the_master_is_killed) {
    rl_store_conf conf = sentinel_conf(g.addrs, 3);
    followed f = {0};
    loop_base = event_base_new();
    rl_redis_sentinel *s =
        rl_redis_sentinel_new(loop_base, &conf, g.host, (uint16_t)g.master.port, on_master, &f);
    ck_assert_ptr_nonnull(s);
    run_for(1500); /* subscribed, polled: the master is the one known, fn not called */
    ck_assert_int_eq(f.calls, 0);
    int64_t killed = now_ms();
    kill(g.master.pid, SIGKILL);
    for (int i = 0; i < 30 && f.calls == 0; i++)
        run_for(1000);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_int_eq(f.port, g.replica.port);
    fprintf(stderr, "sentinel: followed the promoted replica %lld ms after kill -9\n",
            (long long)(f.at_ms - killed));
    run_for(2500); /* more polls and messages: no second call */
    ck_assert_int_eq(f.calls, 1);
    rl_store_figures figs = {.type = "redis"};
    rl_redis_sentinel_figures(s, &figs);
    ck_assert_int_eq(figure(&figs, "switches"), 1);
    ck_assert_int_eq(figure(&figs, "sentinels"), 3);
    ck_assert_int_eq(figure(&figs, "sentinels_reachable"), 3);
    ck_assert_uint_ge(figure(&figs, "resolutions"), 2);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", g.replica.port);
    ck_assert_str_eq(figs.list[0].word, want); /* master */
    rl_store_figures_free(&figs);
    rl_redis_sentinel_free(s);
    event_base_free(loop_base);
}
END_TEST

static Suite *sentinel_suite(void) {
    Suite *s = suite_create("redis_sentinel");
    TCase *tc = tcase_create("steady");
    tcase_add_unchecked_fixture(tc, start_servers, stop_servers);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, resolve_gives_the_master);
    tcase_add_test(tc, resolve_skips_a_refusing_and_a_silent_sentinel);
    tcase_add_test(tc, resolve_refused_by_a_wrong_sentinel_password);
    tcase_add_test(tc, hostile_sentinels_are_refused_without_harm);
    tcase_add_test(tc, the_follower_survives_hostile_sentinels);
    tcase_add_test(tc, the_follower_takes_a_switch_message_for_its_master_only);
    tcase_add_test(tc, pool_refuses_a_replica_and_retargets_to_the_master);
    suite_add_tcase(s, tc);
    TCase *failover = tcase_create("failover");
    tcase_add_unchecked_fixture(failover, start_servers, stop_servers);
    tcase_set_timeout(failover, 90);
    tcase_add_test(failover, follows_the_replica_after_the_master_is_killed);
    suite_add_tcase(s, failover);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(sentinel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
