/*
 * redis_forget.c: background deletion of one policy's keys (see redis_forget.h).
 *
 * A job is a SCAN cursor walk; each SCAN reply's keys are UNLINKed on the same
 * connection before the next SCAN is sent. Jobs hold no pointer to the store.
 */
#include "redis_forget.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "redis_batch.h"

#define SCAN_COUNT "1000"

/* A SCAN walk in progress. */
typedef struct forget_job {
    rl_redis_cmd cmd;    /* first: the pool hands it back */
    rl_redis_pool *pool; /* where to send */
    char *pattern;       /* the MATCH glob (owned) */
    size_t pattern_len;  /* its bytes */
    size_t unlinked;     /* keys deleted so far */
} forget_job;

/* An UNLINK in flight; nothing to do with its reply. */
typedef struct unlink_cmd {
    rl_redis_cmd cmd; /* first */
} unlink_cmd;

// Builds "<prefix>{<escaped ns>:*" with glob specials escaped.
static char *make_pattern(const char *prefix, size_t prefix_len, const char *ns, size_t ns_len,
                          size_t *len) {
    size_t esc_len = rl_redis_ns_escape(ns, ns_len, NULL);
    char *esc = rl_malloc(esc_len + 1);
    if (!esc)
        return NULL;
    rl_redis_ns_escape(ns, ns_len, esc);
    size_t total = rl_redis_glob_escape(prefix, prefix_len, NULL) + 1 +
                   rl_redis_glob_escape(esc, esc_len, NULL) + 2;
    char *out = rl_malloc(total + 1);
    if (out) {
        size_t n = rl_redis_glob_escape(prefix, prefix_len, out);
        out[n++] = '{';
        n += rl_redis_glob_escape(esc, esc_len, out + n);
        memcpy(out + n, ":*", 2);
        out[total] = '\0';
        *len = total;
    }
    rl_free(esc);
    return out;
}

static void on_unlink(rl_redis_cmd *cmd, redisReply *reply) {
    (void)reply;
    rl_free(cmd);
}

// Sends a command given as argv on conn (or any READY connection).
static int send_argv(rl_redis_pool *pool, rl_redis_conn *conn, rl_redis_cmd *cmd, int argc,
                     const char **argv, const size_t *lens) {
    char *wire;
    int len = redisFormatCommandArgv(&wire, argc, argv, lens);
    if (len < 0)
        return RL_ERR;
    int rc = rl_redis_pool_send(pool, conn, cmd, wire, (size_t)len);
    redisFreeCommand(wire);
    return rc;
}

static void unlink_keys(forget_job *job, rl_redis_conn *conn, const redisReply *keys) {
    size_t n = keys->elements;
    const char **argv = rl_malloc((n + 1) * sizeof(*argv));
    size_t *lens = rl_malloc((n + 1) * sizeof(*lens));
    unlink_cmd *cmd = rl_calloc(1, sizeof(*cmd));
    int sent = RL_ERR;
    if (argv && lens && cmd) {
        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        cmd->cmd.fn = on_unlink;
        sent = send_argv(job->pool, conn, &cmd->cmd, (int)n + 1, argv, lens);
    }
    if (sent == RL_OK)
        job->unlinked += n;
    else
        rl_free(cmd);
    rl_free(argv);
    rl_free(lens);
}

static int send_scan(forget_job *job, rl_redis_conn *conn, const char *cursor, size_t len) {
    const char *argv[6] = {"SCAN", cursor, "MATCH", job->pattern, "COUNT", SCAN_COUNT};
    size_t lens[6] = {4, len, 5, job->pattern_len, 5, strlen(SCAN_COUNT)};
    return send_argv(job->pool, conn, &job->cmd, 6, argv, lens);
}

static void job_free(forget_job *job) {
    rl_free(job->pattern);
    rl_free(job);
}

// Returns 1 if reply is SCAN's [cursor, [keys...]] with string keys.
static int scan_reply_ok(const redisReply *reply) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < reply->element[1]->elements; i++)
        if (reply->element[1]->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

static void on_scan(rl_redis_cmd *cmd, redisReply *reply) {
    forget_job *job = (forget_job *)cmd;
    rl_redis_conn *conn = cmd->conn;
    if (!scan_reply_ok(reply)) {
        rl_log_warn("redis store: forgetting %.*s stopped after %zu keys (%s); the rest expires",
                    (int)job->pattern_len, job->pattern, job->unlinked,
                    reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "connection lost");
        job_free(job);
        return;
    }
    const redisReply *cursor = reply->element[0];
    if (reply->element[1]->elements > 0)
        unlink_keys(job, conn, reply->element[1]);
    if (strcmp(cursor->str, "0") == 0 || send_scan(job, conn, cursor->str, cursor->len) != RL_OK) {
        rl_log_debug("redis store: forgot %zu keys matching %.*s", job->unlinked,
                     (int)job->pattern_len, job->pattern);
        job_free(job);
    }
}

int rl_redis_forget_start(rl_redis_pool *pool, const char *prefix, size_t prefix_len,
                          const char *ns, size_t ns_len) {
    forget_job *job = rl_calloc(1, sizeof(*job));
    if (!job)
        return RL_ERR;
    job->pool = pool;
    job->cmd.fn = on_scan;
    job->pattern = make_pattern(prefix, prefix_len, ns, ns_len, &job->pattern_len);
    if (!job->pattern || send_scan(job, NULL, "0", 1) != RL_OK) {
        job_free(job);
        return RL_ERR;
    }
    return RL_OK;
}
