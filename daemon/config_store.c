/*
 * config_store.c: the "store" section of the config, with the Redis URL parser and the
 * Redis store's three ways to reach Redis: "url" (one server), "cluster" (seed URLs of a
 * Redis Cluster) and "sentinel" (a master name and the Sentinels that know it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"
#include "config_json.h"
#include "hostport.h"

static int dup_range(rl_conf_ctx *ctx, const char *path, const char *from, const char *to,
                     char **out) {
    *out = rl_strndup(from, (size_t)(to - from));
    return *out ? 0 : rl_conf_fail(ctx, path, "out of memory");
}

/* Reads the decimal number in [from, to): digits only, at most max. Returns 0 or -1. */
static int parse_digits(const char *from, const char *to, unsigned long max, unsigned long *out) {
    unsigned long n = 0;
    if (from == to)
        return -1;
    for (; from < to; from++) {
        if (*from < '0' || *from > '9')
            return -1;
        n = n * 10 + (unsigned long)(*from - '0');
        if (n > max)
            return -1;
    }
    *out = n;
    return 0;
}

/* What one Redis URL names; the strings are owned until handed over. */
typedef struct redis_url {
    char *host;      /* redis://: the host (owned), or NULL for unix: */
    uint16_t port;   /* redis://: the TCP port */
    char *unix_path; /* unix:: the socket path (owned), or NULL */
    int db;          /* the database after /, 0 if none */
    char *username;  /* the user before @, or NULL (owned) */
    char *password;  /* the password before @, or NULL (owned) */
} redis_url;

static void redis_url_free(redis_url *u) {
    rl_free(u->host);
    rl_free(u->unix_path);
    rl_free(u->username);
    rl_free(u->password);
    memset(u, 0, sizeof(*u));
}

/* Splits "[user][:password]@" off the front of an authority. */
static int parse_userinfo(rl_conf_ctx *ctx, const char *path, const char *from, const char *at,
                          redis_url *u) {
    const char *colon = memchr(from, ':', (size_t)(at - from));
    if (!colon)
        return dup_range(ctx, path, from, at, &u->username);
    if (colon > from && dup_range(ctx, path, from, colon, &u->username) != 0)
        return -1;
    return dup_range(ctx, path, colon + 1, at, &u->password);
}

// Reads the URL's HOST[:PORT] in [from, to) (hostport.h; no port: Redis's default).
static int parse_hostport(rl_conf_ctx *ctx, const char *path, const char *url, const char *from,
                          const char *to, redis_url *u) {
    rl_hostport hp;
    rl_hostport_status status =
        rl_hostport_parse(from, (size_t)(to - from), RL_HOSTPORT_PORT_OPTIONAL, &hp);
    if (status != RL_HOSTPORT_OK)
        return rl_conf_fail(ctx, path, "\"%s\": %s", url,
                            rl_hostport_error(status, RL_HOSTPORT_PORT_OPTIONAL));
    u->port = hp.has_port ? hp.port : RL_REDIS_DEFAULT_PORT;
    return dup_range(ctx, path, hp.host, hp.host + hp.host_len, &u->host);
}

static int parse_db(rl_conf_ctx *ctx, const char *path, const char *slash, redis_url *u) {
    if (!slash || slash[1] == '\0')
        return 0;
    unsigned long db;
    if (parse_digits(slash + 1, slash + strlen(slash), 15, &db) != 0)
        return rl_conf_fail(ctx, path, "the database after / must be 0..15");
    u->db = (int)db;
    return 0;
}

// Writes url as an error message may show it: the credentials of redis://USER:PASS@...
// replaced by "***" (a config error is logged and printed; a password must not be).
static void redact(const char *url, char *out, size_t len) {
    const char *auth = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
    const char *end = auth ? auth + strcspn(auth, "/") : NULL, *at = NULL;
    for (const char *p = auth; p && p < end; p++)
        at = *p == '@' ? p : at;
    if (at)
        snprintf(out, len, "redis://***%s", at);
    else
        snprintf(out, len, "%s", url);
}

// Parses redis://[[user]:password@]host[:port][/db] or unix:/path/redis.sock into *u
// (zeroed first; partly filled on failure: the caller frees it either way). Messages
// show the URL without its credentials.
static int parse_url_parts(rl_conf_ctx *ctx, const char *path, const char *raw, redis_url *u) {
    char url[512];
    redact(raw, url, sizeof(url));
    memset(u, 0, sizeof(*u));
    if (strncmp(raw, "unix:", 5) == 0) {
        const char *p = raw + 5;
        if (*p != '/')
            return rl_conf_fail(ctx, path, "\"%s\": unix:/absolute/path expected", url);
        return dup_range(ctx, path, p, p + strlen(p), &u->unix_path);
    }
    if (strncmp(raw, "redis://", 8) != 0)
        return rl_conf_fail(
            ctx, path, "\"%s\" must be redis://[:password@]HOST[:PORT][/DB] or unix:PATH", url);
    const char *auth = raw + 8, *slash = strchr(auth, '/');
    const char *end = slash ? slash : auth + strlen(auth);
    const char *at = NULL; /* the last @: a password may hold one */
    for (const char *p = auth; p < end; p++)
        at = *p == '@' ? p : at;
    if (at && parse_userinfo(ctx, path, auth, at, u) != 0)
        return -1;
    if (parse_hostport(ctx, path, url, at ? at + 1 : auth, end, u) != 0)
        return -1;
    return parse_db(ctx, path, slash, u);
}

// Parses a Redis URL into *u (owned by the caller on success, nothing to free on
// failure). Messages name path.
static int parse_redis_url(rl_conf_ctx *ctx, const char *path, const char *url, redis_url *u) {
    if (parse_url_parts(ctx, path, url, u) == 0)
        return 0;
    redis_url_free(u);
    return -1;
}

static int parse_type(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    const char *t = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(t, "memory") == 0)
        s->type = RL_STORE_MEMORY;
    else if (strcmp(t, "redis") == 0)
        s->type = RL_STORE_REDIS;
    else
        return rl_conf_fail(ctx, "store.type", "must be \"memory\" or \"redis\"");
    return 0;
}

static int parse_numbers(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    struct {
        const char *name;
        uint64_t min, max;
        int *out;
    } spec[] = {{"connect_timeout_ms", 1, 600000, &s->connect_timeout_ms},
                {"command_timeout_ms", 1, 600000, &s->command_timeout_ms},
                {"pool", 1, 64, &s->pool},
                {"batch_max", 1, 4096, &s->batch_max}};
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        json_t *f = json_object_get(v, spec[i].name);
        char path[64];
        uint64_t n;
        snprintf(path, sizeof(path), "store.%s", spec[i].name);
        if (f && rl_conf_uint(ctx, f, path, spec[i].min, spec[i].max, &n) != 0)
            return -1;
        if (f)
            *spec[i].out = (int)n;
    }
    json_t *keys = json_object_get(v, "max_keys");
    return keys ? rl_conf_uint(ctx, keys, "store.max_keys", 1, 1ull << 32, &s->max_keys) : 0;
}

// Replaces *out (owned, maybe NULL) with a copy of the string v. On failure *out is
// left as it was, so the config still owns exactly what it points to.
static int replace_string(rl_conf_ctx *ctx, json_t *v, const char *path, char **out) {
    char *copy;
    if (rl_conf_string(ctx, v, path, &copy) != 0)
        return -1;
    rl_free(*out);
    *out = copy;
    return 0;
}

/* "url": one Redis server (RL_REDIS_SINGLE). */
static int parse_single(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    redis_url u;
    if (rl_conf_string(ctx, v, "store.url", &s->url) != 0 ||
        parse_redis_url(ctx, "store.url", s->url, &u) != 0)
        return -1;
    s->mode = RL_REDIS_SINGLE;
    s->host = u.host;
    s->port = u.port;
    s->unix_path = u.unix_path;
    s->db = u.db;
    s->username = u.username;
    s->password = u.password;
    return 0;
}

// Takes a seed's credential *given (what of user or password) into *kept if no seed gave
// one before; fails if an earlier seed gave another (one set serves every node). The
// message does not echo either value.
static int merge_credential(rl_conf_ctx *ctx, const char *path, const char *what, char **given,
                            char **kept) {
    if (!*given)
        return 0;
    if (!*kept) {
        *kept = *given;
        *given = NULL;
        return 0;
    }
    if (strcmp(*kept, *given) != 0)
        return rl_conf_fail(ctx, path,
                            "its %s differs from an earlier seed's (every node of a Redis "
                            "Cluster is reached with the same credentials)",
                            what);
    return 0;
}

static int check_seed(rl_conf_ctx *ctx, const char *path, const char *raw, redis_url *u,
                      rl_store_conf *s) {
    char url[512];
    redact(raw, url, sizeof(url));
    if (u->unix_path)
        return rl_conf_fail(ctx, path,
                            "\"%s\": a cluster node is reached over TCP: "
                            "redis://[[USER]:PASSWORD@]HOST[:PORT] expected",
                            url);
    if (u->db != 0)
        return rl_conf_fail(ctx, path,
                            "the database after / must be 0 (Redis Cluster has only database 0)");
    if (merge_credential(ctx, path, "user", &u->username, &s->username) != 0 ||
        merge_credential(ctx, path, "password", &u->password, &s->password) != 0)
        return -1;
    return 0;
}

/* One entry of "cluster" (index i) into s->seeds[i]. */
static int parse_seed(rl_conf_ctx *ctx, json_t *v, size_t i, rl_store_conf *s) {
    char path[32];
    redis_url u;
    snprintf(path, sizeof(path), "store.cluster[%zu]", i);
    if (!json_is_string(v))
        return rl_conf_fail(ctx, path, "must be a string (a redis:// URL)");
    const char *url = json_string_value(v); /* no NUL inside: the JSON loader refuses \u0000 */
    if (parse_redis_url(ctx, path, url, &u) != 0)
        return -1;
    int rc = check_seed(ctx, path, url, &u, s);
    if (rc == 0) {
        s->seeds[i].host = u.host;
        s->seeds[i].port = u.port;
        u.host = NULL;
    }
    redis_url_free(&u);
    return rc;
}

/* "cluster": the seed nodes of a Redis Cluster (RL_REDIS_CLUSTER). host and port become
   a copy of the first seed's, url stays NULL. */
static int parse_cluster(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n == 0 || n > RL_REDIS_MAX_SEEDS)
        return rl_conf_fail(ctx, "store.cluster", "must be an array of 1..%d redis:// URLs",
                            RL_REDIS_MAX_SEEDS);
    s->mode = RL_REDIS_CLUSTER;
    s->seeds = rl_calloc(n, sizeof(*s->seeds));
    if (!s->seeds)
        return rl_conf_fail(ctx, "store.cluster", "out of memory");
    s->seed_count = n;
    for (size_t i = 0; i < n; i++)
        if (parse_seed(ctx, json_array_get(v, i), i, s) != 0)
            return -1;
    s->port = s->seeds[0].port;
    const char *host = s->seeds[0].host;
    return dup_range(ctx, "store.cluster", host, host + strlen(host), &s->host);
}

/* "sentinel.master": the name the Sentinels know the master by. */
static int parse_sentinel_master(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    const char *path = "store.sentinel.master";
    if (!v)
        return rl_conf_fail(ctx, path, "is required (the name the Sentinels know the master by)");
    if (!json_is_string(v))
        return rl_conf_fail(ctx, path, "must be a string");
    const unsigned char *name = (const unsigned char *)json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > RL_REDIS_MAX_MASTER_NAME)
        return rl_conf_fail(ctx, path, "must be 1..%d bytes", RL_REDIS_MAX_MASTER_NAME);
    for (size_t i = 0; i < len; i++)
        if (name[i] <= ' ' || name[i] == 0x7f)
            return rl_conf_fail(ctx, path, "must not hold a space or a control byte");
    return rl_conf_string(ctx, v, path, &s->sentinel_master);
}

/* One entry of "sentinel.nodes" (index i): HOST[:PORT] or [V6][:PORT]. */
static int parse_sentinel_node(rl_conf_ctx *ctx, json_t *v, size_t i, rl_redis_addr *out) {
    char path[48];
    rl_hostport hp;
    snprintf(path, sizeof(path), "store.sentinel.nodes[%zu]", i);
    if (!json_is_string(v))
        return rl_conf_fail(ctx, path, "must be a string \"HOST[:PORT]\"");
    rl_hostport_status status = rl_hostport_parse(json_string_value(v), json_string_length(v),
                                                  RL_HOSTPORT_PORT_OPTIONAL, &hp);
    if (status != RL_HOSTPORT_OK)
        return rl_conf_fail(ctx, path, "\"%s\": %s", json_string_value(v),
                            rl_hostport_error(status, RL_HOSTPORT_PORT_OPTIONAL));
    out->port = hp.has_port ? hp.port : RL_REDIS_SENTINEL_DEFAULT_PORT;
    return dup_range(ctx, path, hp.host, hp.host + hp.host_len, &out->host);
}

static int parse_sentinel_nodes(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n == 0 || n > RL_REDIS_MAX_SENTINELS)
        return rl_conf_fail(ctx, "store.sentinel.nodes",
                            "must be an array of 1..%d \"HOST[:PORT]\" strings (the Sentinels)",
                            RL_REDIS_MAX_SENTINELS);
    s->sentinels = rl_calloc(n, sizeof(*s->sentinels));
    if (!s->sentinels)
        return rl_conf_fail(ctx, "store.sentinel.nodes", "out of memory");
    s->sentinel_count = n;
    for (size_t i = 0; i < n; i++)
        if (parse_sentinel_node(ctx, json_array_get(v, i), i, &s->sentinels[i]) != 0)
            return -1;
    return 0;
}

/* "sentinel": the master a set of Sentinels names (RL_REDIS_SENTINEL); host stays NULL
   and port 0 until the store resolves the master. */
static int parse_sentinel(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    static const char *const fields[] = {"master", "nodes", "username", "password", NULL};
    if (rl_conf_fields(ctx, v, "store.sentinel", fields) != 0)
        return -1;
    json_t *user = json_object_get(v, "username"), *pass = json_object_get(v, "password");
    s->mode = RL_REDIS_SENTINEL;
    if (parse_sentinel_master(ctx, json_object_get(v, "master"), s) != 0 ||
        parse_sentinel_nodes(ctx, json_object_get(v, "nodes"), s) != 0)
        return -1;
    if (user && rl_conf_string(ctx, user, "store.sentinel.username", &s->sentinel_username) != 0)
        return -1;
    if (pass && rl_conf_string(ctx, pass, "store.sentinel.password", &s->sentinel_password) != 0)
        return -1;
    return 0;
}

/* Exactly one of "url", "cluster", "sentinel" says how to reach Redis. */
static int parse_redis_address(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    static const char *const names[] = {"url", "cluster", "sentinel"};
    json_t *given[3];
    const char *first = NULL;
    for (size_t i = 0; i < 3; i++) {
        given[i] = json_object_get(v, names[i]);
        if (given[i] && first)
            return rl_conf_fail(ctx, "store", "\"%s\" and \"%s\" are mutually exclusive", first,
                                names[i]);
        first = given[i] ? names[i] : first;
    }
    if (given[0])
        return parse_single(ctx, given[0], s);
    if (given[1])
        return parse_cluster(ctx, given[1], s);
    if (given[2])
        return parse_sentinel(ctx, given[2], s);
    return rl_conf_fail(ctx, "store.url",
                        "is required for the redis store (or \"cluster\", or \"sentinel\")");
}

static int parse_redis_strings(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    json_t *user = json_object_get(v, "username"), *pass = json_object_get(v, "password");
    json_t *prefix = json_object_get(v, "key_prefix");
    if (parse_redis_address(ctx, v, s) != 0)
        return -1;
    if ((user && replace_string(ctx, user, "store.username", &s->username) != 0) ||
        (pass && replace_string(ctx, pass, "store.password", &s->password) != 0) ||
        (prefix && replace_string(ctx, prefix, "store.key_prefix", &s->key_prefix) != 0))
        return -1;
    if (prefix && strlen(s->key_prefix) > 64)
        return rl_conf_fail(ctx, "store.key_prefix", "at most 64 bytes");
    if (strpbrk(s->key_prefix, "{}"))
        return rl_conf_fail(ctx, "store.key_prefix", "\"%s\" must not hold { or } (hash tags)",
                            s->key_prefix);
    return 0;
}

int rl_conf_store(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    static const char *const memory_fields[] = {"type", "max_keys", NULL};
    static const char *const redis_fields[] = {"type",
                                               "max_keys",
                                               "url",
                                               "cluster",
                                               "sentinel",
                                               "username",
                                               "password",
                                               "connect_timeout_ms",
                                               "command_timeout_ms",
                                               "key_prefix",
                                               "pool",
                                               "batch_max",
                                               NULL};
    s->connect_timeout_ms = RL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    s->command_timeout_ms = RL_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    s->pool = RL_REDIS_DEFAULT_POOL;
    s->batch_max = RL_REDIS_DEFAULT_BATCH_MAX;
    s->key_prefix = rl_strndup(RL_REDIS_DEFAULT_KEY_PREFIX, strlen(RL_REDIS_DEFAULT_KEY_PREFIX));
    if (!s->key_prefix)
        return rl_conf_fail(ctx, "store", "out of memory");
    if (!v)
        return 0;
    if (!json_is_object(v))
        return rl_conf_fail(ctx, "store", "must be an object");
    if (parse_type(ctx, json_object_get(v, "type"), s) != 0)
        return -1;
    const char *const *fields = s->type == RL_STORE_REDIS ? redis_fields : memory_fields;
    if (rl_conf_fields(ctx, v, "store", fields) != 0 || parse_numbers(ctx, v, s) != 0)
        return -1;
    return s->type == RL_STORE_REDIS ? parse_redis_strings(ctx, v, s) : 0;
}
