/*
 * config_store.c: the "store" section of the config, with the Redis URL parser.
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

/* Splits "[user][:password]@" off the front of an authority. */
static int parse_userinfo(rl_conf_ctx *ctx, const char *path, const char *from, const char *at,
                          rl_store_conf *s) {
    const char *colon = memchr(from, ':', (size_t)(at - from));
    if (!colon)
        return dup_range(ctx, path, from, at, &s->username);
    if (colon > from && dup_range(ctx, path, from, colon, &s->username) != 0)
        return -1;
    return dup_range(ctx, path, colon + 1, at, &s->password);
}

// Reads the URL's HOST[:PORT] in [from, to) (hostport.h; no port: Redis's default).
static int parse_hostport(rl_conf_ctx *ctx, const char *path, const char *from, const char *to,
                          rl_store_conf *s) {
    rl_hostport hp;
    rl_hostport_status status =
        rl_hostport_parse(from, (size_t)(to - from), RL_HOSTPORT_PORT_OPTIONAL, &hp);
    if (status != RL_HOSTPORT_OK)
        return rl_conf_fail(ctx, path, "\"%s\": %s", s->url,
                            rl_hostport_error(status, RL_HOSTPORT_PORT_OPTIONAL));
    s->port = hp.has_port ? hp.port : RL_REDIS_DEFAULT_PORT;
    return dup_range(ctx, path, hp.host, hp.host + hp.host_len, &s->host);
}

static int parse_db(rl_conf_ctx *ctx, const char *path, const char *slash, rl_store_conf *s) {
    if (!slash || slash[1] == '\0')
        return 0;
    unsigned long db;
    if (parse_digits(slash + 1, slash + strlen(slash), 15, &db) != 0)
        return rl_conf_fail(ctx, path, "the database after / must be 0..15");
    s->db = (int)db;
    return 0;
}

// Parses redis://[[user]:password@]host[:port][/db] or unix:/path/redis.sock.
static int parse_redis_url(rl_conf_ctx *ctx, const char *path, rl_store_conf *s) {
    const char *url = s->url;
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        if (*p != '/')
            return rl_conf_fail(ctx, path, "\"%s\": unix:/absolute/path expected", url);
        return dup_range(ctx, path, p, p + strlen(p), &s->unix_path);
    }
    if (strncmp(url, "redis://", 8) != 0)
        return rl_conf_fail(
            ctx, path, "\"%s\" must be redis://[:password@]HOST[:PORT][/DB] or unix:PATH", url);
    const char *auth = url + 8, *slash = strchr(auth, '/');
    const char *end = slash ? slash : auth + strlen(auth);
    const char *at = NULL; /* the last @: a password may hold one */
    for (const char *p = auth; p < end; p++)
        at = *p == '@' ? p : at;
    if (at && parse_userinfo(ctx, path, auth, at, s) != 0)
        return -1;
    if (parse_hostport(ctx, path, at ? at + 1 : auth, end, s) != 0)
        return -1;
    return parse_db(ctx, path, slash, s);
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

static int parse_redis_strings(rl_conf_ctx *ctx, json_t *v, rl_store_conf *s) {
    json_t *url = json_object_get(v, "url"), *user = json_object_get(v, "username");
    json_t *pass = json_object_get(v, "password"), *prefix = json_object_get(v, "key_prefix");
    if (!url)
        return rl_conf_fail(ctx, "store.url", "is required for the redis store");
    if (rl_conf_string(ctx, url, "store.url", &s->url) != 0 ||
        parse_redis_url(ctx, "store.url", s) != 0)
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
