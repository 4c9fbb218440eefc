/*
 * redis_pool.c: the Redis store's connections (see redis_pool.h for the state
 * diagram and the contracts).
 *
 * It uses only hiredis's public async API; redis_io.c drives the contexts on the event
 * loop. What it relies on holds in hiredis 0.14 and 1.x: a context is freed by hiredis
 * itself after a failed connect (onConnect(ERR)) or an I/O error (onDisconnect);
 * redisAsyncFree runs every pending callback with a NULL reply, then onDisconnect if it
 * was connected, and is deferred until the callback returns when called from inside
 * one. A callback tells a stale context from the live one by comparing it with
 * conn->ac, which is cleared before any context is let go. Timeouts are the pool's own
 * (the connect timer and the dead-connection watch), not redisAsyncSetTimeout (1.x only).
 */
#include "redis_pool.h"

#include <stdarg.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "redis_io.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum conn_state {
    CONN_IDLE,       /* no connection: waiting out the backoff before connecting */
    CONN_CONNECTING, /* connect and handshake in flight */
    CONN_READY,      /* handshake done: takes commands */
} conn_state;

struct rl_redis_conn {
    rl_redis_pool *pool;       /* its pool */
    redisAsyncContext *ac;     /* the live hiredis context, or NULL */
    conn_state state;          /* see the diagram in redis_pool.h */
    int handshake_left;        /* handshake replies still awaited */
    int backoff_ms;            /* the next wait before connecting again */
    struct event *timer;       /* the connect timeout, or the wait before reconnecting */
    rl_redis_cmd *head, *tail; /* commands in flight, oldest first */
    size_t in_flight;          /* commands in flight */
    int was_ready;             /* it has been READY before: the next READY is a reconnect */
    redisAsyncContext *old_ac; /* let go by a retarget, closed by the pool's retarget event */
};

struct rl_redis_pool {
    struct event_base *base;   /* the loop everything runs on */
    char *host;                /* TCP host, or NULL (owned) */
    char *unix_path;           /* Unix socket path, or NULL (owned) */
    char *username;            /* ACL user, or NULL (owned) */
    char *password;            /* password, or NULL (owned) */
    int port;                  /* TCP port */
    int db;                    /* database number */
    int connect_timeout_ms;    /* connect and handshake deadline */
    int check_role;            /* Sentinel mode: the handshake asks ROLE, a non-master is refused */
    struct event *retarget_ev; /* closes the contexts a retarget let go */
    const char *script;        /* the script's source (static) */
    size_t script_len;         /* its bytes */
    char sha[41];              /* its SHA1, "" until a connection has loaded it */
    rl_redis_conn *conns;      /* the connections */
    int count;                 /* how many */
    int ready;                 /* READY connections */
    int up;                    /* the pool is up (see redis_pool.h) */
    int starting;              /* no connection has been READY yet */
    int64_t dead_after_us;     /* a command unanswered this long kills its connection */
    struct event *watch;       /* looks for dead connections while commands are out */
    rl_redis_pool_events events; /* the owner's hooks */
    uint64_t connects;           /* handshakes completed */
    uint64_t reconnects;         /* handshakes completed after a lost connection */
    uint64_t failures;           /* connections or attempts that failed */
    uint64_t dead;               /* connections dropped for not answering */
    uint32_t jitter;             /* xorshift state for the backoff's jitter */
    char refusal[256];           /* the last handshake refusal logged */
};

static struct timeval ms_to_tv(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void describe(const rl_store_conf *conf, char *out, size_t len) {
    if (conf->unix_path)
        snprintf(out, len, "unix:%s", conf->unix_path);
    else
        snprintf(out, len, "%s:%d", conf->host ? conf->host : "?", (int)conf->port);
}

/* ---- the startup check (synchronous) ---- */

// Returns 1 if a Redis error reply means "try again later" rather than "refused".
static int is_transient(const char *msg) {
    static const char *const transient[] = {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(msg, transient[i], strlen(transient[i])) == 0)
            return 1;
    return 0;
}

// Runs one command; returns RL_OK with *out (free it), RL_AGAIN (I/O trouble or a
// transient error) or RL_ERR (an error reply), with the reason in err.
static int sync_command(redisContext *c, const char *what, redisReply **out, char *err,
                        size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    *out = NULL;
    if (!reply) {
        snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no reply");
        return RL_AGAIN;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s refused: %s", what, reply->str);
        int rc = is_transient(reply->str) ? RL_AGAIN : RL_ERR;
        freeReplyObject(reply);
        return rc;
    }
    *out = reply;
    return RL_OK;
}

// Authenticates, or without credentials PINGs: a Redis that wants a password then answers
// NOAUTH here, before the script (a bulk string over 16 KB) meets its limit for clients
// not yet authenticated (a protocol error that would hide the cause).
static int sync_auth(redisContext *c, const rl_store_conf *conf, char *err, size_t errlen) {
    redisReply *reply;
    int rc;
    const char *pass = conf->password ? conf->password : "";
    if (conf->username)
        rc = sync_command(c, "AUTH", &reply, err, errlen, "AUTH %s %s", conf->username, pass);
    else if (conf->password)
        rc = sync_command(c, "AUTH", &reply, err, errlen, "AUTH %s", pass);
    else
        rc = sync_command(c, "PING", &reply, err, errlen, "PING");
    freeReplyObject(reply);
    return rc;
}

// Returns 1 if a ROLE reply says master; else 0 with the role (or "malformed") in why.
static int role_is_master(const redisReply *reply, char *why, size_t whylen) {
    const redisReply *role =
        reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 ? reply->element[0] : NULL;
    if (!role || (role->type != REDIS_REPLY_STRING && role->type != REDIS_REPLY_STATUS)) {
        snprintf(why, whylen, "ROLE: malformed reply");
        return 0;
    }
    if (role->len == 6 && memcmp(role->str, "master", 6) == 0)
        return 1;
    snprintf(why, whylen, "not a master (ROLE %.*s)", role->len > 32 ? 32 : (int)role->len,
             role->str);
    return 0;
}

// Sentinel mode: the server must be a master (else RL_AGAIN: the Sentinels may not have
// promoted it yet, or the store must ask them again).
static int sync_role(redisContext *c, char *err, size_t errlen) {
    redisReply *reply;
    int rc = sync_command(c, "ROLE", &reply, err, errlen, "ROLE");
    if (rc == RL_OK && !role_is_master(reply, err, errlen))
        rc = RL_AGAIN;
    freeReplyObject(reply);
    return rc;
}

static int sync_setup(redisContext *c, const rl_store_conf *conf, const char *script, size_t len,
                      char *sha, char *err, size_t errlen) {
    redisReply *reply = NULL;
    int rc = sync_auth(c, conf, err, errlen);
    if (rc == RL_OK && conf->db != 0) {
        rc = sync_command(c, "SELECT", &reply, err, errlen, "SELECT %d", conf->db);
        freeReplyObject(reply);
    }
    if (rc == RL_OK && conf->mode == RL_REDIS_SENTINEL)
        rc = sync_role(c, err, errlen);
    if (rc == RL_OK)
        rc = sync_command(c, "SCRIPT LOAD", &reply, err, errlen, "SCRIPT LOAD %b", script, len);
    if (rc != RL_OK)
        return rc;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        snprintf(err, errlen, "SCRIPT LOAD: unexpected reply");
        rc = RL_ERR;
    } else {
        memcpy(sha, reply->str, 40);
        sha[40] = '\0';
    }
    freeReplyObject(reply);
    return rc;
}

int rl_redis_pool_check(const rl_store_conf *conf, const char *script, size_t len, char *sha,
                        char *err, size_t errlen) {
    return rl_redis_pool_check_then(conf, script, len, sha, NULL, NULL, err, errlen);
}

int rl_redis_pool_check_then(const rl_store_conf *conf, const char *script, size_t len, char *sha,
                             rl_redis_sync_fn *then, void *arg, char *err, size_t errlen) {
    char where[300], why[512];
    struct timeval tv = ms_to_tv(conf->connect_timeout_ms);
    redisContext *c = conf->unix_path ? redisConnectUnixWithTimeout(conf->unix_path, tv)
                                      : redisConnectWithTimeout(conf->host, conf->port, tv);
    describe(conf, where, sizeof(where));
    if (!c) {
        snprintf(err, errlen, "redis at %s: out of memory", where);
        return RL_ERR;
    }
    int rc = RL_AGAIN;
    if (c->err) {
        snprintf(why, sizeof(why), "cannot connect: %s", c->errstr);
    } else {
        redisSetTimeout(c, tv);
        rc = sync_setup(c, conf, script, len, sha, why, sizeof(why));
        if (rc == RL_OK && then)
            rc = then(c, arg, why, sizeof(why));
    }
    if (rc != RL_OK)
        snprintf(err, errlen, "redis at %s: %s", where, why);
    redisFree(c);
    return rc;
}

/* ---- connection states ---- */

static void conn_connect(rl_redis_conn *conn);

static void pool_went_down(rl_redis_pool *pool, const char *why) {
    for (int i = 0; i < pool->count; i++)
        if (pool->starting && pool->conns[i].state == CONN_CONNECTING)
            return; /* the first connections are still being made */
    pool->up = 0;
    rl_log_warn("redis store: down (%s); answering STORE_UNAVAILABLE, reconnecting", why);
    pool->events.down(pool->events.arg);
}

static int next_backoff(rl_redis_conn *conn) {
    rl_redis_pool *pool = conn->pool;
    pool->jitter ^= pool->jitter << 13;
    pool->jitter ^= pool->jitter >> 17;
    pool->jitter ^= pool->jitter << 5;
    int wait = conn->backoff_ms * (75 + (int)(pool->jitter % 51)) / 100;
    conn->backoff_ms =
        conn->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : conn->backoff_ms * 2;
    return wait;
}

// The connection is gone (conn->ac already let go): wait, then connect again.
static void conn_failed(rl_redis_conn *conn, const char *why) {
    rl_redis_pool *pool = conn->pool;
    int was_ready = conn->state == CONN_READY;
    conn->state = CONN_IDLE;
    pool->failures++;
    if (was_ready)
        pool->ready--;
    struct timeval tv = ms_to_tv(next_backoff(conn));
    event_add(conn->timer, &tv);
    rl_log_debug("redis store: connection %d: %s", (int)(conn - pool->conns), why);
    if (pool->up && pool->ready == 0)
        pool_went_down(pool, why);
}

// Lets go of the live context (its callbacks run with NULL, now or when the current
// callback returns) and schedules a reconnect.
static void conn_drop(rl_redis_conn *conn, const char *why) {
    redisAsyncContext *ac = conn->ac;
    conn->ac = NULL;
    conn_failed(conn, why);
    if (ac)
        redisAsyncFree(ac);
}

static void conn_ready(rl_redis_conn *conn) {
    rl_redis_pool *pool = conn->pool;
    event_del(conn->timer);
    conn->state = CONN_READY;
    conn->backoff_ms = BACKOFF_MIN_MS;
    pool->ready++;
    pool->connects++;
    pool->reconnects += conn->was_ready ? 1 : 0;
    conn->was_ready = 1;
    pool->starting = 0;
    if (!pool->up) {
        pool->up = 1;
        rl_log_info("redis store: up (connected)");
    }
    pool->events.ready(pool->events.arg);
}

/* ---- hiredis callbacks ---- */

static void on_handshake(redisAsyncContext *ac, void *r, void *privdata) {
    rl_redis_conn *conn = privdata;
    redisReply *reply = r;
    char why[256];
    if (conn->ac != ac || !reply)
        return; /* a context being let go; the disconnect is handled elsewhere */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "handshake refused: %s", reply->str);
        if (strcmp(why, conn->pool->refusal) != 0) /* once per reason, not per attempt */
            rl_log_warn("redis store: %s", why);
        snprintf(conn->pool->refusal, sizeof(conn->pool->refusal), "%s", why);
        conn_drop(conn, why);
        return;
    }
    if (--conn->handshake_left > 0)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        conn_drop(conn, "SCRIPT LOAD: unexpected reply");
        return;
    }
    memcpy(conn->pool->sha, reply->str, 40);
    conn->pool->sha[40] = '\0';
    conn->pool->refusal[0] = '\0';
    conn_ready(conn);
}

// Sentinel mode: a server that is not a master is refused, and the owner told.
static void on_role(redisAsyncContext *ac, void *r, void *privdata) {
    rl_redis_conn *conn = privdata;
    rl_redis_pool *pool = conn->pool;
    redisReply *reply = r;
    char why[256];
    if (conn->ac != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        on_handshake(ac, r, privdata);
        return;
    }
    if (role_is_master(reply, why, sizeof(why))) {
        conn->handshake_left--;
        return;
    }
    if (strcmp(why, pool->refusal) != 0)
        rl_log_warn("redis store: %s:%d refused: %s", pool->host, pool->port, why);
    snprintf(pool->refusal, sizeof(pool->refusal), "%s", why);
    conn_drop(conn, why);
    if (pool->events.wrong_role)
        pool->events.wrong_role(pool->events.arg);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    rl_redis_conn *conn = ac->data;
    if (status != REDIS_OK && ac == conn->old_ac)
        conn->old_ac = NULL; /* hiredis frees it when this returns */
    if (status == REDIS_OK || conn->ac != ac)
        return;
    conn->ac = NULL; /* hiredis frees it when this returns */
    conn_failed(conn, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    rl_redis_conn *conn = ac->data;
    (void)status;
    if (ac == conn->old_ac)
        conn->old_ac = NULL; /* lost before the retarget event closed it: hiredis frees it */
    if (conn->ac != ac)
        return; /* we let it go ourselves */
    conn->ac = NULL;
    conn_failed(conn, ac->errstr[0] ? ac->errstr : "connection closed");
}

// Pops cmd off its connection's in-flight list and hands it the reply.
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    rl_redis_cmd *cmd = privdata;
    rl_redis_conn *conn = cmd->conn;
    rl_redis_cmd **link = &conn->head, *prev = NULL;
    (void)ac;
    while (*link && *link != cmd) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link) {
        *link = cmd->next;
        if (conn->tail == cmd)
            conn->tail = prev;
        conn->in_flight--;
    }
    cmd->next = NULL;
    cmd->fn(cmd, reply);
}

/* ---- connecting ---- */

static int send_handshake(rl_redis_conn *conn) {
    rl_redis_pool *pool = conn->pool;
    redisAsyncContext *ac = conn->ac;
    const char *pass = pool->password ? pool->password : "";
    int rc = REDIS_OK;
    conn->handshake_left = 2;
    if (pool->username)
        rc |= redisAsyncCommand(ac, on_handshake, conn, "AUTH %s %s", pool->username, pass);
    else if (pool->password)
        rc |= redisAsyncCommand(ac, on_handshake, conn, "AUTH %s", pass);
    else /* NOAUTH names the fault before the script's size does (see sync_auth) */
        rc |= redisAsyncCommand(ac, on_handshake, conn, "PING");
    if (pool->db != 0) {
        conn->handshake_left++;
        rc |= redisAsyncCommand(ac, on_handshake, conn, "SELECT %d", pool->db);
    }
    if (pool->check_role) {
        conn->handshake_left++;
        rc |= redisAsyncCommand(ac, on_role, conn, "ROLE");
    }
    rc |=
        redisAsyncCommand(ac, on_handshake, conn, "SCRIPT LOAD %b", pool->script, pool->script_len);
    return rc == REDIS_OK ? RL_OK : RL_ERR;
}

static void conn_connect(rl_redis_conn *conn) {
    rl_redis_pool *pool = conn->pool;
    if (!pool->host && !pool->unix_path)
        return; /* no address yet: rl_redis_pool_retarget gives one */
    redisAsyncContext *ac = pool->unix_path ? redisAsyncConnectUnix(pool->unix_path)
                                            : redisAsyncConnect(pool->host, pool->port);
    conn->state = CONN_CONNECTING;
    if (!ac || ac->err) {
        char why[256];
        snprintf(why, sizeof(why), "connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_failed(conn, why);
        return;
    }
    ac->data = conn;
    conn->ac = ac;
    if (rl_redis_io_attach(ac, pool->base) != RL_OK ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK ||
        send_handshake(conn) != RL_OK) {
        conn_drop(conn, "cannot set up the connection");
        return;
    }
    struct timeval tv = ms_to_tv(pool->connect_timeout_ms);
    event_add(conn->timer, &tv);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg) {
    rl_redis_conn *conn = arg;
    (void)fd;
    (void)what;
    if (conn->state == CONN_CONNECTING)
        conn_drop(conn, "connect timed out");
    else if (conn->state == CONN_IDLE)
        conn_connect(conn);
}

/* ---- dead connections ---- */

static void arm_watch(rl_redis_pool *pool) {
    int64_t every_us = pool->dead_after_us / 4 > 10000 ? pool->dead_after_us / 4 : 10000;
    struct timeval tv = {(time_t)(every_us / 1000000), (suseconds_t)(every_us % 1000000)};
    if (!event_pending(pool->watch, EV_TIMEOUT, NULL))
        event_add(pool->watch, &tv);
}

static void on_watch(evutil_socket_t fd, short what, void *arg) {
    rl_redis_pool *pool = arg;
    int64_t now = rl_clock_mono_us();
    size_t out = 0;
    (void)fd;
    (void)what;
    for (int i = 0; i < pool->count; i++) {
        rl_redis_conn *conn = &pool->conns[i];
        if (conn->state == CONN_READY && conn->head &&
            now - conn->head->sent_us > pool->dead_after_us) {
            pool->dead++;
            rl_log_warn("redis store: connection %d: no reply for %lld ms, reconnecting", i,
                        (long long)((now - conn->head->sent_us) / 1000));
            conn_drop(conn, "no reply in time");
        }
        out += pool->conns[i].in_flight;
    }
    if (out > 0)
        arm_watch(pool);
}

/* ---- the pool ---- */

static int copy_conf(rl_redis_pool *pool, const rl_store_conf *conf) {
    const char *from[4] = {conf->host, conf->unix_path, conf->username, conf->password};
    char **to[4] = {&pool->host, &pool->unix_path, &pool->username, &pool->password};
    for (int i = 0; i < 4; i++)
        if (from[i] && !(*to[i] = rl_strndup(from[i], strlen(from[i]))))
            return RL_ERR;
    pool->port = conf->port;
    pool->db = conf->db;
    pool->check_role = conf->mode == RL_REDIS_SENTINEL;
    pool->connect_timeout_ms = conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms
                                                            : RL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    return RL_OK;
}

static int make_conns(rl_redis_pool *pool, int count) {
    pool->conns = rl_calloc((size_t)count, sizeof(rl_redis_conn));
    if (!pool->conns)
        return RL_ERR;
    pool->count = count;
    for (int i = 0; i < count; i++) {
        rl_redis_conn *conn = &pool->conns[i];
        conn->pool = pool;
        conn->backoff_ms = BACKOFF_MIN_MS;
        conn->timer = event_new(pool->base, -1, 0, on_conn_timer, conn);
        if (!conn->timer)
            return RL_ERR;
    }
    return RL_OK;
}

/* ---- retargeting ---- */

// Closes the contexts a retarget let go (their callbacks run with NULL now) and connects
// every idle connection to the new address.
static void on_retarget(evutil_socket_t fd, short what, void *arg) {
    rl_redis_pool *pool = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < pool->count; i++) {
        redisAsyncContext *old = pool->conns[i].old_ac;
        pool->conns[i].old_ac = NULL;
        if (old)
            redisAsyncFree(old);
    }
    if (pool->up && pool->ready == 0) {
        pool->starting = 0;
        pool_went_down(pool, "the master moved");
    }
    for (int i = 0; i < pool->count; i++) {
        rl_redis_conn *conn = &pool->conns[i];
        if (conn->state == CONN_IDLE && !conn->ac) {
            event_del(conn->timer);
            conn->backoff_ms = BACKOFF_MIN_MS;
            conn_connect(conn);
        }
    }
}

// Takes conn off its context at once (no more commands); the retarget event closes it.
static void conn_let_go(rl_redis_conn *conn) {
    rl_redis_pool *pool = conn->pool;
    if (conn->state == CONN_READY)
        pool->ready--;
    event_del(conn->timer);
    conn->state = CONN_IDLE;
    if (conn->ac && !conn->old_ac)
        conn->old_ac = conn->ac;
    else if (conn->ac) /* a second retarget before the event: one waits already */
        redisAsyncFree(conn->ac);
    conn->ac = NULL;
}

int rl_redis_pool_retarget(rl_redis_pool *pool, const char *host, uint16_t port) {
    char *copy = rl_strndup(host, strlen(host));
    if (!copy)
        return RL_ERR;
    rl_free(pool->host);
    rl_free(pool->unix_path);
    pool->host = copy;
    pool->unix_path = NULL;
    pool->port = port;
    for (int i = 0; i < pool->count; i++)
        conn_let_go(&pool->conns[i]);
    event_active(pool->retarget_ev, EV_TIMEOUT, 0);
    return RL_OK;
}

rl_redis_pool *rl_redis_pool_new(struct event_base *base, const rl_store_conf *conf,
                                 const char *script, size_t script_len, int up,
                                 int64_t dead_after_ms, rl_redis_pool_events events) {
    rl_redis_pool *pool = rl_calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->base = base;
    pool->script = script;
    pool->script_len = script_len;
    pool->up = up;
    pool->starting = 1;
    pool->dead_after_us = dead_after_ms * 1000;
    pool->events = events;
    pool->jitter = (uint32_t)rl_clock_mono_us() | 1u;
    pool->watch = event_new(base, -1, 0, on_watch, pool);
    pool->retarget_ev = event_new(base, -1, 0, on_retarget, pool);
    if (!pool->watch || !pool->retarget_ev || copy_conf(pool, conf) != RL_OK ||
        make_conns(pool, conf->pool > 0 ? conf->pool : RL_REDIS_DEFAULT_POOL) != RL_OK) {
        rl_redis_pool_free(pool);
        return NULL;
    }
    for (int i = 0; i < pool->count; i++)
        conn_connect(&pool->conns[i]);
    return pool;
}

int rl_redis_pool_up(const rl_redis_pool *pool) {
    return pool->up;
}

int rl_redis_pool_ready(const rl_redis_pool *pool) {
    return pool->ready;
}

const char *rl_redis_pool_sha(const rl_redis_pool *pool) {
    return pool->sha[0] ? pool->sha : NULL;
}

static rl_redis_conn *least_loaded(rl_redis_pool *pool) {
    rl_redis_conn *best = NULL;
    for (int i = 0; i < pool->count; i++) {
        rl_redis_conn *conn = &pool->conns[i];
        if (conn->state == CONN_READY && conn->ac && (!best || conn->in_flight < best->in_flight))
            best = conn;
    }
    return best;
}

size_t rl_redis_pool_least_in_flight(const rl_redis_pool *pool) {
    size_t least = SIZE_MAX;
    for (int i = 0; i < pool->count; i++)
        if (pool->conns[i].state == CONN_READY && pool->conns[i].in_flight < least)
            least = pool->conns[i].in_flight;
    return least;
}

int rl_redis_pool_send(rl_redis_pool *pool, rl_redis_conn *conn, rl_redis_cmd *cmd, const char *buf,
                       size_t len) {
    if (!conn || conn->state != CONN_READY || !conn->ac)
        conn = least_loaded(pool);
    if (!conn || redisAsyncFormattedCommand(conn->ac, on_reply, cmd, buf, len) != REDIS_OK)
        return RL_ERR;
    cmd->conn = conn;
    cmd->next = NULL;
    cmd->sent_us = rl_clock_mono_us();
    if (conn->tail)
        conn->tail->next = cmd;
    else
        conn->head = cmd;
    conn->tail = cmd;
    conn->in_flight++;
    arm_watch(pool);
    return RL_OK;
}

rl_redis_pool_stats rl_redis_pool_figures(const rl_redis_pool *pool) {
    rl_redis_pool_stats s = {.connections = pool->count,
                             .ready = pool->ready,
                             .connects = pool->connects,
                             .reconnects = pool->reconnects,
                             .failures = pool->failures,
                             .dead = pool->dead};
    for (int i = 0; i < pool->count; i++)
        s.in_flight += pool->conns[i].in_flight;
    return s;
}

void rl_redis_pool_free(rl_redis_pool *pool) {
    if (!pool)
        return;
    for (int i = 0; pool->conns && i < pool->count; i++) {
        rl_redis_conn *conn = &pool->conns[i];
        redisAsyncContext *ac = conn->ac;
        conn->ac = NULL;
        conn->state = CONN_IDLE;
        if (ac)
            redisAsyncFree(ac); /* in-flight callbacks run with NULL */
        ac = conn->old_ac;
        conn->old_ac = NULL;
        if (ac)
            redisAsyncFree(ac);
        if (conn->timer)
            event_free(conn->timer);
    }
    if (pool->watch)
        event_free(pool->watch);
    if (pool->retarget_ev)
        event_free(pool->retarget_ev);
    rl_free(pool->conns);
    rl_free(pool->host);
    rl_free(pool->unix_path);
    rl_free(pool->username);
    rl_free(pool->password);
    rl_free(pool);
}
