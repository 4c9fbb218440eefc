/*
 * config.c: read the JSON config, validate every field, build rl_config.
 *
 * Parsing walks the JSON with a path string for messages. Each object's fields are
 * checked against the list of names it may carry, so a misspelt field is an error
 * rather than a silently ignored setting. The JSON helpers live in config_json.c, the
 * sections in config_policy.c, config_store.c and config_listener.c.
 */
#include "config.h"
#include "config_internal.h"
#include "config_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hostport.h"
#include "rlproto.h"

/* ---- listeners ---- */

// Reads a listener's HOST:PORT (hostport.h; port 0: the system picks one).
static int split_host_port(rl_conf_ctx *ctx, const char *path, const char *spec, char **host,
                           uint16_t *port) {
    rl_hostport hp;
    rl_hostport_status status = rl_hostport_parse(spec, strlen(spec), RL_HOSTPORT_PORT_ZERO, &hp);
    if (status != RL_HOSTPORT_OK)
        return rl_conf_fail(ctx, path, "\"%s\": %s", spec,
                            rl_hostport_error(status, RL_HOSTPORT_PORT_ZERO));
    *port = hp.port;
    *host = rl_strndup(hp.host, hp.host_len);
    return *host ? 0 : rl_conf_fail(ctx, path, "out of memory");
}

static int parse_address(rl_conf_ctx *ctx, const char *path, rl_listener_conf *l) {
    const char *a = l->address;
    if (strncmp(a, "unix:", 5) == 0 && a[5] != '\0') {
        l->kind = RL_LISTEN_UNIX;
        l->path = rl_strndup(a + 5, strlen(a + 5));
        return l->path ? 0 : rl_conf_fail(ctx, path, "out of memory");
    }
    if (strncmp(a, "tcp:", 4) == 0) {
        l->kind = RL_LISTEN_TCP;
        return split_host_port(ctx, path, a + 4, &l->host, &l->port);
    }
    if (strncmp(a, "http:", 5) == 0) {
        l->kind = RL_LISTEN_HTTP;
        return split_host_port(ctx, path, a + 5, &l->host, &l->port);
    }
    return rl_conf_fail(ctx, path, "\"%s\" must be unix:PATH, tcp:HOST:PORT or http:HOST:PORT", a);
}

// Reads an octal file mode ("0660"): octal digits only, at most 0777.
static int parse_mode(json_t *v, int *mode) {
    const char *text = json_is_string(v) ? json_string_value(v) : "";
    int m = 0;
    if (*text == '\0')
        return -1;
    for (; *text >= '0' && *text <= '7' && m <= 0777; text++)
        m = m * 8 + (*text - '0');
    if (*text != '\0' || m > 0777)
        return -1;
    *mode = m;
    return 0;
}

static int parse_listener_object(rl_conf_ctx *ctx, json_t *v, const char *path,
                                 rl_listener_conf *l) {
    static const char *const fields[] = {"address",   "admin",      "mode",     "ops", "peer_uids",
                                         "peer_gids", "token_file", "insecure", NULL};
    char sub[256];
    if (rl_conf_fields(ctx, v, path, fields) != 0)
        return -1;
    json_t *admin = json_object_get(v, "admin"), *mode = json_object_get(v, "mode");
    rl_conf_path(sub, sizeof(sub), path, "address");
    if (rl_conf_string(ctx, json_object_get(v, "address"), sub, &l->address) != 0 ||
        parse_address(ctx, sub, l) != 0)
        return -1;
    rl_conf_path(sub, sizeof(sub), path, "admin");
    if (admin && !json_is_boolean(admin))
        return rl_conf_fail(ctx, sub, "must be true or false");
    if (admin)
        l->admin = json_is_true(admin);
    rl_conf_path(sub, sizeof(sub), path, "mode");
    if (mode && parse_mode(mode, &l->mode) != 0)
        return rl_conf_fail(ctx, sub, "must be an octal file mode such as \"0660\"");
    return 0;
}

static int parse_listener(rl_conf_ctx *ctx, json_t *v, const char *path, rl_listener_conf *l) {
    l->admin = -1;
    l->mode = 0660;
    if (json_is_string(v)) {
        if (rl_conf_string(ctx, v, path, &l->address) != 0 || parse_address(ctx, path, l) != 0)
            return -1;
    } else if (parse_listener_object(ctx, v, path, l) != 0) {
        return -1;
    }
    if (l->admin < 0)
        l->admin = l->kind == RL_LISTEN_UNIX;
    if (l->kind == RL_LISTEN_HTTP && l->admin)
        return rl_conf_fail(ctx, path, "the HTTP listener serves no admin operations");
    return rl_conf_listener_trust(ctx, json_is_object(v) ? v : NULL, path, l);
}

static int parse_listeners(rl_conf_ctx *ctx, json_t *v, int flags, rl_config *c) {
    if (!v && (flags & RL_CONFIG_NO_LISTEN))
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return rl_conf_fail(ctx, "listen", "must be a non-empty array of addresses");
    if (json_array_size(v) > RL_MAX_LISTENERS)
        return rl_conf_fail(ctx, "listen", "at most %d listeners", RL_MAX_LISTENERS);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        char path[64];
        snprintf(path, sizeof(path), "listen[%zu]", i);
        c->listener_count = i + 1;
        if (parse_listener(ctx, item, path, &c->listeners[i]) != 0)
            return -1;
    }
    return 0;
}

/* ---- limits, logs ---- */

// Reads the duration limits.NAME into *out, if given.
static int parse_timeout(rl_conf_ctx *ctx, json_t *v, const char *name, int *out) {
    json_t *f = json_object_get(v, name);
    char path[64];
    int64_t ms;
    snprintf(path, sizeof(path), "limits.%s", name);
    if (f && rl_conf_duration(ctx, f, path, INT32_MAX, &ms) != 0)
        return -1;
    if (f)
        *out = (int)ms;
    return 0;
}

static int parse_limits(rl_conf_ctx *ctx, json_t *v, rl_config *c) {
    static const char *const fields[] = {
        "max_frame",  "max_key",      "max_connections",      "max_pending",
        "max_output", "idle_timeout", "max_http_connections", "http_header_timeout",
        NULL};
    if (!v)
        return 0;
    if (rl_conf_fields(ctx, v, "limits", fields) != 0)
        return -1;
    struct {
        const char *name;
        uint64_t min, max;
        uint32_t *out;
    } spec[] = {{"max_frame", 64, 1 << 24, &c->max_frame},
                {"max_key", 1, RL_MAX_KEY_LEN, &c->max_key},
                {"max_connections", 1, 1000000, &c->max_connections},
                {"max_pending", 1, 1000000, &c->max_pending},
                {"max_output", 4096, 1u << 30, &c->max_output},
                {"max_http_connections", 1, 1000000, &c->max_http_connections}};
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        json_t *f = json_object_get(v, spec[i].name);
        char path[64];
        uint64_t n;
        snprintf(path, sizeof(path), "limits.%s", spec[i].name);
        if (f && rl_conf_uint(ctx, f, path, spec[i].min, spec[i].max, &n) != 0)
            return -1;
        if (f)
            *spec[i].out = (uint32_t)n;
    }
    return parse_timeout(ctx, v, "idle_timeout", &c->idle_timeout_ms) ||
                   parse_timeout(ctx, v, "http_header_timeout", &c->http_header_timeout_ms)
               ? -1
               : 0;
}

static int parse_denial_log(rl_conf_ctx *ctx, json_t *v, rl_config *c) {
    static const char *const fields[] = {"path", "syslog", "lines_per_s", NULL};
    if (!v)
        return 0;
    if (rl_conf_fields(ctx, v, "denial_log", fields) != 0)
        return -1;
    json_t *path = json_object_get(v, "path"), *sys = json_object_get(v, "syslog");
    json_t *rate = json_object_get(v, "lines_per_s");
    uint64_t n;
    if (path && rl_conf_string(ctx, path, "denial_log.path", &c->denial_log.path) != 0)
        return -1;
    if (sys && !json_is_boolean(sys))
        return rl_conf_fail(ctx, "denial_log.syslog", "must be true or false");
    c->denial_log.syslog = sys && json_is_true(sys);
    if (rate && rl_conf_uint(ctx, rate, "denial_log.lines_per_s", 1, 1000000, &n) != 0)
        return -1;
    if (rate)
        c->denial_log.lines_per_s = (int)n;
    return 0;
}

static int parse_log_level(rl_conf_ctx *ctx, json_t *v, rl_config *c) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (!v)
        return 0;
    for (int i = 0; i < 4; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
            c->log_level = i;
            return 0;
        }
    }
    return rl_conf_fail(ctx, "log_level", "must be \"error\", \"warn\", \"info\" or \"debug\"");
}

/* ---- the whole file ---- */

static void set_defaults(rl_config *c) {
    c->max_frame = RL_DEFAULT_MAX_FRAME;
    c->max_key = RL_DEFAULT_MAX_KEY;
    c->max_connections = 16384;
    c->max_pending = 4096;
    c->max_output = 4u << 20;
    c->idle_timeout_ms = 300000;
    c->max_http_connections = 1024;
    c->http_header_timeout_ms = 10000;
    c->denial_log.lines_per_s = 100;
    c->log_level = 2;
    c->store.type = RL_STORE_MEMORY;
    c->store.max_keys = 1000000;
}

static int parse_root(rl_conf_ctx *ctx, json_t *root, int flags, rl_config *c) {
    static const char *const fields[] = {"listen",     "store",     "policies", "limits",
                                         "denial_log", "log_level", NULL};
    if (rl_conf_fields(ctx, root, "", fields) != 0)
        return -1;
    if (parse_listeners(ctx, json_object_get(root, "listen"), flags, c) != 0 ||
        rl_conf_store(ctx, json_object_get(root, "store"), &c->store) != 0 ||
        parse_limits(ctx, json_object_get(root, "limits"), c) != 0 ||
        parse_denial_log(ctx, json_object_get(root, "denial_log"), c) != 0 ||
        parse_log_level(ctx, json_object_get(root, "log_level"), c) != 0)
        return -1;
    return rl_conf_policies(ctx, json_object_get(root, "policies"), c);
}

static rl_config *build(json_t *root, json_error_t *jerr, const char *source, int flags, char *err,
                        size_t errlen) {
    rl_conf_ctx ctx = {source, err, errlen};
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", source, jerr->line, jerr->column, jerr->text);
        return NULL;
    }
    rl_config *c = rl_calloc(1, sizeof(*c));
    if (c) {
        set_defaults(c);
        c->source = rl_strndup(source, strlen(source));
    }
    if (!c || !c->source) {
        rl_conf_fail(&ctx, "", "out of memory");
    } else if (parse_root(&ctx, root, flags, c) == 0) {
        json_decref(root);
        return c;
    }
    json_decref(root);
    rl_config_free(c);
    return NULL;
}

rl_config *rl_config_load(const char *path, char *err, size_t errlen) {
    return rl_config_load_flags(path, 0, err, errlen);
}

rl_config *rl_config_load_flags(const char *path, int flags, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    return build(root, &jerr, path, flags, err, errlen);
}

rl_config *rl_config_parse(const char *json, const char *source, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    return build(root, &jerr, source, 0, err, errlen);
}

static void free_listener(rl_listener_conf *l) {
    rl_conf_listener_trust_free(l);
    rl_free(l->address);
    rl_free(l->path);
    rl_free(l->host);
}

static void free_redis_addrs(rl_redis_addr *addrs, size_t count) {
    for (size_t i = 0; i < count; i++)
        rl_free(addrs[i].host);
    rl_free(addrs);
}

static void free_store(rl_store_conf *s) {
    free_redis_addrs(s->seeds, s->seed_count);
    free_redis_addrs(s->sentinels, s->sentinel_count);
    rl_free(s->sentinel_master);
    rl_free(s->sentinel_username);
    rl_free(s->sentinel_password);
    rl_free(s->url);
    rl_free(s->host);
    rl_free(s->unix_path);
    rl_free(s->username);
    rl_free(s->password);
    rl_free(s->key_prefix);
}

void rl_config_free(rl_config *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->listener_count; i++)
        free_listener(&c->listeners[i]);
    for (size_t i = 0; i < c->policy_count; i++)
        rl_conf_policy_free(&c->policies[i]);
    rl_free(c->policies);
    free_store(&c->store);
    rl_free(c->denial_log.path);
    rl_free(c->source);
    rl_free(c);
}
