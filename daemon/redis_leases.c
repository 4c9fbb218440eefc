/*
 * redis_leases.c: the Redis store's LEASES listing (see redis_leases.h).
 *
 * A job sends one command at a time on its own rl_redis_cmd (TIME, then SCAN rounds),
 * and up to RANGES_IN_FLIGHT reads of lease sets pipelined, each on a range_cmd of its
 * own. The job is answered once (done) and freed when nothing of it is in flight.
 */
#include "redis_leases.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "redis_batch.h"

#define SCAN_COUNT "1000"
#define RANGES_IN_FLIGHT 32 /* lease set reads pipelined at once */
#define SET_TAIL "}:0"      /* the lease set is rate 0 of its policy */

typedef struct job job;

/* One lease set read in flight. */
typedef struct range_cmd {
    rl_redis_cmd cmd; /* first: the pool hands it back */
    job *job;         /* its listing */
    char *key;        /* the key's bytes (owned until the job keeps them) */
    size_t key_len;   /* its bytes */
} range_cmd;

struct job {
    rl_redis_cmd cmd;           /* first: TIME and SCAN */
    rl_redis_pool *pool;        /* where to send */
    rl_redis_conn *conn;        /* the connection used so far */
    struct event *deadline;     /* answers STORE_UNAVAILABLE when it fires */
    rl_store_leases_done *done; /* called once */
    void *arg;                  /* its argument */
    char *head;                 /* "<prefix>{<escaped ns>:" (owned) */
    size_t head_len;            /* its bytes */
    char *pattern;              /* SCAN's MATCH glob, or NULL with a key (owned) */
    size_t pattern_len;         /* its bytes */
    char cursor[32];            /* the next SCAN cursor ("" when the walk is over) */
    int64_t now_us;             /* Redis TIME */
    int64_t started_us;         /* monotonic clock at the start */
    int64_t timeout_us;         /* the deadline, from started_us */
    size_t scans;               /* SCAN rounds sent */
    char **todo;                /* keys found and not read yet (owned) */
    size_t *todo_len;           /* their bytes */
    size_t todo_count, todo_at; /* keys in todo, and the next one to read */
    size_t in_flight;           /* commands of the job not answered yet */
    rl_store_lease *list;       /* the leases found (max entries) */
    size_t count, max;          /* leases found, at most */
    char **kept;                /* keys that list points into (owned) */
    size_t kept_count;          /* entries in kept */
    int truncated;              /* more leases (or keys) than listed */
    int answered;               /* done was called */
    void (*replied)(void *);    /* told after each reply (the store sends what waits) */
    void *replied_arg;          /* its argument */
};

/* ---- building ---- */

// Builds head = "<prefix>{<escaped ns>:" into j. Returns RL_OK, or RL_ERR (memory).
static int make_head(job *j, const rl_redis_leases_query *q) {
    size_t esc = rl_redis_ns_escape(q->ns, q->ns_len, NULL);
    j->head_len = q->prefix_len + 1 + esc + 1;
    j->head = rl_malloc(j->head_len + 1);
    if (!j->head)
        return RL_ERR;
    memcpy(j->head, q->prefix, q->prefix_len);
    j->head[q->prefix_len] = '{';
    rl_redis_ns_escape(q->ns, q->ns_len, j->head + q->prefix_len + 1);
    memcpy(j->head + j->head_len - 1, ":", 2);
    return RL_OK;
}

// Builds the MATCH glob "<head, glob-escaped>*}:0". Returns RL_OK, or RL_ERR (memory).
static int make_pattern(job *j) {
    size_t n = rl_redis_glob_escape(j->head, j->head_len, NULL);
    j->pattern = rl_malloc(n + 1 + strlen(SET_TAIL) + 1);
    if (!j->pattern)
        return RL_ERR;
    rl_redis_glob_escape(j->head, j->head_len, j->pattern);
    memcpy(j->pattern + n, "*" SET_TAIL, strlen(SET_TAIL) + 2);
    j->pattern_len = n + 1 + strlen(SET_TAIL);
    return RL_OK;
}

/* ---- answering and freeing ---- */

static void job_free(job *j) {
    for (size_t i = j->todo_at; i < j->todo_count; i++)
        rl_free(j->todo[i]);
    for (size_t i = 0; i < j->kept_count; i++)
        rl_free(j->kept[i]);
    if (j->deadline)
        event_free(j->deadline);
    rl_free(j->todo);
    rl_free(j->todo_len);
    rl_free(j->kept);
    rl_free(j->list);
    rl_free(j->head);
    rl_free(j->pattern);
    rl_free(j);
}

// Answers the listing once: status OK with the leases found, or a store error.
static void answer(job *j, rl_status status, const char *errstr) {
    if (j->answered)
        return;
    j->answered = 1;
    event_del(j->deadline);
    rl_store_lease_list out = {.status = status, .errstr = errstr};
    if (status == RL_ST_OK) {
        out.leases = j->list;
        out.count = j->count;
        out.truncated = j->truncated;
    }
    j->done(j->arg, &out);
}

// Frees the job once it is answered and nothing of it is in flight, then tells the
// store a command of the pool came back (script calls may have waited behind it).
static void settle(job *j) {
    void (*replied)(void *) = j->replied;
    void *arg = j->replied_arg;
    if (j->answered && j->in_flight == 0)
        job_free(j);
    if (replied)
        replied(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    answer(arg, RL_ST_STORE_UNAVAILABLE, "no reply from redis within command_timeout_ms");
}

static void fail(job *j, const redisReply *reply, const char *shape) {
    if (!reply)
        answer(j, RL_ST_STORE_UNAVAILABLE, "the connection to redis was lost");
    else if (reply->type == REDIS_REPLY_ERROR)
        answer(j, RL_ST_STORE_UNAVAILABLE, reply->str);
    else
        answer(j, RL_ST_INTERNAL, shape);
}

/* ---- sending ---- */

// Sends a command given as argv on the job's connection (or any READY one).
static int send_argv(job *j, rl_redis_cmd *cmd, int argc, const char **argv, const size_t *lens) {
    char *wire;
    int len = redisFormatCommandArgv(&wire, argc, argv, lens);
    if (len < 0)
        return RL_ERR;
    int rc = rl_redis_pool_send(j->pool, j->conn, cmd, wire, (size_t)len);
    redisFreeCommand(wire);
    if (rc == RL_OK) {
        j->conn = cmd->conn;
        j->in_flight++;
    }
    return rc;
}

static void on_range(rl_redis_cmd *cmd, redisReply *reply);

// Reads the lease set of key (key_len bytes, owned: handed to the command or freed).
static int send_range(job *j, char *key, size_t key_len) {
    size_t set_len = j->head_len + key_len + strlen(SET_TAIL);
    char *set = rl_malloc(set_len);
    range_cmd *rc = rl_calloc(1, sizeof(*rc));
    char min[32], limit[32];
    int sent = RL_ERR;
    snprintf(min, sizeof(min), "(%lld", (long long)j->now_us);
    snprintf(limit, sizeof(limit), "%zu", j->max - j->count + 1);
    if (set && rc) {
        memcpy(set, j->head, j->head_len);
        memcpy(set + j->head_len, key, key_len);
        memcpy(set + j->head_len + key_len, SET_TAIL, strlen(SET_TAIL));
        const char *argv[8] = {"ZRANGEBYSCORE", set,     min, "+inf",
                               "WITHSCORES",    "LIMIT", "0", limit};
        size_t lens[8] = {13, set_len, strlen(min), 4, 10, 5, 1, strlen(limit)};
        *rc = (range_cmd){.cmd.fn = on_range, .job = j, .key = key, .key_len = key_len};
        sent = send_argv(j, &rc->cmd, 8, argv, lens);
    }
    rl_free(set);
    if (sent != RL_OK) {
        rl_free(rc);
        rl_free(key);
    }
    return sent;
}

static void on_scan(rl_redis_cmd *cmd, redisReply *reply);

static int send_scan(job *j) {
    const char *argv[6] = {"SCAN", j->cursor, "MATCH", j->pattern, "COUNT", SCAN_COUNT};
    size_t lens[6] = {4, strlen(j->cursor), 5, j->pattern_len, 5, strlen(SCAN_COUNT)};
    j->cmd.fn = on_scan;
    j->scans++;
    return send_argv(j, &j->cmd, 6, argv, lens);
}

// Goes on: reads queued keys (up to RANGES_IN_FLIGHT at once), then the next SCAN
// round, and answers when the walk is over and every read came back.
static void advance(job *j) {
    while (!j->answered && j->todo_at < j->todo_count && j->in_flight < RANGES_IN_FLIGHT &&
           j->count < j->max) {
        size_t i = j->todo_at++;
        if (send_range(j, j->todo[i], j->todo_len[i]) != RL_OK)
            answer(j, RL_ST_STORE_UNAVAILABLE, "no connection to redis took the command");
    }
    if (j->answered || j->in_flight > 0)
        return;
    if (j->count >= j->max && (j->todo_at < j->todo_count || j->cursor[0]))
        j->truncated = 1;
    int more = j->cursor[0] && j->count < j->max;
    if (more && (j->scans >= RL_REDIS_LEASES_SCANS ||
                 rl_clock_mono_us() - j->started_us > j->timeout_us / 2)) {
        j->truncated = 1; /* the walk's bounds stop it */
        more = 0;
    }
    if (!more)
        answer(j, RL_ST_OK, NULL);
    else if (send_scan(j) != RL_OK)
        answer(j, RL_ST_STORE_UNAVAILABLE, "no connection to redis took the command");
}

/* ---- replies ---- */

// Parses a member "<id>:<slots>" and its score into l. Returns 1 if well formed.
static int parse_member(const redisReply *m, const redisReply *score, int64_t now,
                        rl_store_lease *l) {
    char buf[64], *end;
    if (m->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING || m->len == 0 ||
        m->len >= sizeof(buf))
        return 0;
    memcpy(buf, m->str, m->len);
    buf[m->len] = '\0';
    errno = 0;
    l->id = strtoull(buf, &end, 10);
    if (*end != ':' || end == buf || errno)
        return 0;
    char *slots = end + 1;
    l->slots = strtoull(slots, &end, 10);
    double at = strtod(score->str, NULL);
    l->expires_in_us = (int64_t)at - now;
    return *end == '\0' && end != slots && !errno && l->id != 0 && l->expires_in_us > 0;
}

// Returns 1 if lease id is listed already (SCAN may return a key twice).
static int listed(const job *j, uint64_t id) {
    for (size_t i = 0; i < j->count; i++)
        if (j->list[i].id == id)
            return 1;
    return 0;
}

// Adds the leases of one set's reply to the list; keeps the key if any was added.
static void add_leases(job *j, range_cmd *rc, const redisReply *reply) {
    size_t added = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        rl_store_lease l = {.key = rc->key, .key_len = rc->key_len};
        if (!parse_member(reply->element[i], reply->element[i + 1], j->now_us, &l) ||
            listed(j, l.id))
            continue; /* not a lease member: the script would not count it either */
        if (j->count == j->max) {
            j->truncated = 1;
            break;
        }
        j->list[j->count++] = l;
        added++;
    }
    if (added) {
        j->kept[j->kept_count++] = rc->key;
        rc->key = NULL;
    }
}

static void on_range(rl_redis_cmd *cmd, redisReply *reply) {
    range_cmd *rc = (range_cmd *)cmd;
    job *j = rc->job;
    j->in_flight--;
    if (j->answered) {
        /* late: nothing to do */
    } else if (reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "WRONGTYPE", 9)) {
        /* not a sorted set: no leases (as the script counts it) */
    } else if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        fail(j, reply, "ZRANGEBYSCORE's reply was not a list of members and scores");
    } else {
        add_leases(j, rc, reply);
    }
    rl_free(rc->key);
    rl_free(rc);
    if (!j->answered)
        advance(j);
    settle(j);
}

// Queues the keys of a SCAN reply that are lease sets of the policy (key part copied).
static void queue_keys(job *j, const redisReply *keys) {
    size_t tail = strlen(SET_TAIL);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len < j->head_len + tail ||
            memcmp(k->str, j->head, j->head_len) != 0 ||
            memcmp(k->str + k->len - tail, SET_TAIL, tail) != 0)
            continue;
        if (j->todo_count == RL_REDIS_LEASES_KEYS) {
            j->truncated = 1;
            j->cursor[0] = '\0';
            return;
        }
        size_t len = k->len - j->head_len - tail;
        char *copy = rl_malloc(len ? len : 1);
        if (!copy) { /* out of memory: the listing goes on, but says it is not whole */
            j->truncated = 1;
            continue;
        }
        memcpy(copy, k->str + j->head_len, len);
        j->todo[j->todo_count] = copy;
        j->todo_len[j->todo_count++] = len;
    }
}

static void on_scan(rl_redis_cmd *cmd, redisReply *reply) {
    job *j = (job *)cmd;
    j->in_flight--;
    if (j->answered) {
        settle(j);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= sizeof(j->cursor) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        fail(j, reply, "SCAN's reply was not a cursor and a list");
        settle(j);
        return;
    }
    const redisReply *c = reply->element[0];
    memcpy(j->cursor, c->str, c->len + 1);
    if (strcmp(j->cursor, "0") == 0)
        j->cursor[0] = '\0'; /* the walk is over */
    queue_keys(j, reply->element[1]);
    advance(j);
    settle(j);
}

// Reads TIME's [seconds, microseconds] into *now. Returns 1 if well formed.
static int parse_time(const redisReply *r, int64_t *now) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    *now = strtoll(r->element[0]->str, NULL, 10) * 1000000 + strtoll(r->element[1]->str, NULL, 10);
    return *now > 0;
}

static void on_time(rl_redis_cmd *cmd, redisReply *reply) {
    job *j = (job *)cmd;
    j->in_flight--;
    if (!j->answered && !parse_time(reply, &j->now_us))
        fail(j, reply, "TIME's reply was not seconds and microseconds");
    else if (!j->answered && j->pattern && send_scan(j) != RL_OK)
        answer(j, RL_ST_STORE_UNAVAILABLE, "no connection to redis took the command");
    else if (!j->answered && !j->pattern)
        advance(j); /* the one key queued at the start */
    settle(j);
}

/* ---- starting ---- */

// Allocates the job's lists and names. Returns RL_OK, or RL_ERR (memory).
static int job_setup(job *j, struct event_base *base, const rl_redis_leases_query *q) {
    size_t keys = q->key_len ? 1 : RL_REDIS_LEASES_KEYS;
    j->max = q->max;
    j->timeout_us = q->timeout_us;
    j->started_us = rl_clock_mono_us();
    j->list = rl_calloc(q->max ? q->max : 1, sizeof(*j->list));
    j->kept = rl_calloc(keys, sizeof(*j->kept));
    j->todo = rl_calloc(keys, sizeof(*j->todo));
    j->todo_len = rl_calloc(keys, sizeof(*j->todo_len));
    j->deadline = event_new(base, -1, 0, on_deadline, j);
    if (!j->list || !j->kept || !j->todo || !j->todo_len || !j->deadline ||
        make_head(j, q) != RL_OK || (!q->key_len && make_pattern(j) != RL_OK))
        return RL_ERR;
    if (q->key_len) {
        j->todo[0] = rl_malloc(q->key_len);
        if (!j->todo[0])
            return RL_ERR;
        memcpy(j->todo[0], q->key, q->key_len);
        j->todo_len[0] = q->key_len;
        j->todo_count = 1;
    }
    return RL_OK;
}

int rl_redis_leases_start(rl_redis_pool *pool, struct event_base *base,
                          const rl_redis_leases_query *q, rl_store_leases_done *done, void *arg) {
    job *j = rl_calloc(1, sizeof(*j));
    if (!j)
        return RL_ERR;
    *j = (job){.pool = pool,
               .done = done,
               .arg = arg,
               .cmd.fn = on_time,
               .replied = q->replied,
               .replied_arg = q->replied_arg};
    if (job_setup(j, base, q) != RL_OK) {
        job_free(j);
        return RL_ERR;
    }
    if (q->key_len && j->head_len + q->key_len + strlen(SET_TAIL) > RL_REDIS_MAX_KEY) {
        answer(j, RL_ST_OK, NULL); /* no ACQUIRE could make such a set: nothing held */
        job_free(j);
        return RL_OK;
    }
    const char *argv[1] = {"TIME"};
    size_t lens[1] = {4};
    if (send_argv(j, &j->cmd, 1, argv, lens) != RL_OK) {
        job_free(j);
        return RL_ERR;
    }
    struct timeval tv = {(time_t)(q->timeout_us / 1000000), (suseconds_t)(q->timeout_us % 1000000)};
    event_add(j->deadline, &tv);
    return RL_OK;
}
