/*
 * redis_harness.h: drives a Redis store directly on an event_base, for the Redis
 * store's end-to-end tests (e2e_redis_*.c). Each test starts its own redis-server
 * (tests/support/redis.h) and stops it.
 */
#ifndef RLT_REDIS_HARNESS_H
#define RLT_REDIS_HARNESS_H

#include <check.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../support/redis.h"
#include "store_redis.h"

/* One running test: a server, a loop, a store config. */
typedef struct harness {
    rlt_redis redis;         /* the server */
    struct event_base *base; /* the loop the stores run on */
    rl_store_conf conf;      /* points at the server by TCP */
    char host[16];           /* "127.0.0.1" */
    char prefix[8];          /* "rl:" */
} harness;

/* What a submit got. */
typedef struct outcome {
    int calls;            /* done calls (must end at 1) */
    int sync;             /* done was called before submit returned */
    rl_store_answer ans;  /* the answer */
    int64_t took_us;      /* submit to answer */
    int64_t submitted_us; /* monotonic, at submit */
} outcome;

static inline int64_t h_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t h_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void h_start(harness *h, const char *server_args) {
    memset(h, 0, sizeof(*h));
    ck_assert_msg(rlt_redis_start(&h->redis, server_args) == 0, "redis-server did not start");
    h->base = event_base_new();
    ck_assert_ptr_nonnull(h->base);
    strcpy(h->host, "127.0.0.1");
    strcpy(h->prefix, "rl:");
    h->conf.type = RL_STORE_REDIS;
    h->conf.host = h->host;
    h->conf.port = (uint16_t)h->redis.port;
    h->conf.connect_timeout_ms = 1000;
    h->conf.command_timeout_ms = 500;
    h->conf.key_prefix = h->prefix;
    h->conf.pool = 2;
    h->conf.batch_max = 256;
}

static inline void h_stop(harness *h) {
    if (h->base)
        event_base_free(h->base);
    rlt_redis_cleanup(&h->redis);
}

static inline rl_store *h_store(harness *h, const rl_store_redis_options *options) {
    char err[512] = "";
    rl_store *store = rl_store_redis_new_with(h->base, &h->conf, options, err, sizeof(err));
    ck_assert_msg(store != NULL, "rl_store_redis_new: %s", err);
    return store;
}

static inline void h_on_done(void *arg, const rl_store_answer *ans) {
    outcome *o = arg;
    o->calls++;
    o->ans = *ans;
    o->took_us = h_mono_us() - o->submitted_us;
}

// Submits without running the loop.
static inline void h_submit(rl_store *store, rl_store_op op, const rl_store_item *items, size_t n,
                            outcome *o) {
    memset(o, 0, sizeof(*o));
    o->submitted_us = h_mono_us();
    ck_assert_int_eq(store->ops->submit(store, op, items, n, h_on_done, o), RL_OK);
    o->sync = o->calls > 0;
}

// Runs the loop until every outcome of outs[0..n) is answered (10 s at most).
static inline void h_wait(harness *h, outcome *outs, size_t n) {
    int64_t deadline = h_mono_us() + 10000000;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += outs[i].calls == 0;
        if (left == 0)
            return;
        ck_assert_msg(h_mono_us() < deadline, "%zu answers never came", left);
        event_base_loop(h->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

// Runs the loop for ms milliseconds.
static inline void h_run_for(harness *h, int ms) {
    int64_t until = h_mono_us() + (int64_t)ms * 1000;
    while (h_mono_us() < until) {
        event_base_loop(h->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

// Submits one batch and waits for its answer.
static inline rl_store_answer h_do(harness *h, rl_store *store, rl_store_op op,
                                   const rl_store_item *items, size_t n) {
    outcome o;
    h_submit(store, op, items, n, &o);
    h_wait(h, &o, 1);
    ck_assert_int_eq(o.calls, 1);
    return o.ans;
}

static inline rl_store_item h_item(const rl_limits *limits, const char *ns, const char *key,
                                   int64_t cost) {
    return (rl_store_item){limits, ns, strlen(ns), key, strlen(key), cost, 0, 0};
}

static inline rl_limits h_limits1(rl_algorithm algorithm, uint64_t limit, int64_t period_us,
                                  uint64_t burst) {
    rl_limits l;
    memset(&l, 0, sizeof(l));
    l.rate_count = 1;
    l.rates[0] = (rl_rate){algorithm, limit, period_us, burst};
    return l;
}

// Returns the store's stats as JSON (json_decref it).
static inline json_t *h_stats(rl_store *store) {
    rl_store_figures figures = {0};
    store->ops->stats(store, &figures);
    json_t *root = rl_store_figures_json(&figures);
    rl_store_figures_free(&figures);
    ck_assert_msg(root != NULL, "the store's figures do not render");
    return root;
}

// Returns an integer from the stats at a dotted path ("errors.timeout").
static inline long long h_stat(rl_store *store, const char *path) {
    json_t *root = h_stats(store), *v = root;
    char copy[128];
    snprintf(copy, sizeof(copy), "%s", path);
    for (char *save = NULL, *part = strtok_r(copy, ".", &save); part && v;
         part = strtok_r(NULL, ".", &save))
        v = json_object_get(v, part);
    ck_assert_msg(v && json_is_integer(v), "no integer stat %s", path);
    long long value = json_integer_value(v);
    json_decref(root);
    return value;
}

static inline int h_state_up(rl_store *store) {
    json_t *root = h_stats(store);
    int up = strcmp(json_string_value(json_object_get(root, "state")), "up") == 0;
    json_decref(root);
    return up;
}

#endif
