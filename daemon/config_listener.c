/*
 * config_listener.c: who may use a listener and for what: its operations ("ops",
 * "admin"), its Unix peers ("peer_uids", "peer_gids"), its token ("token_file") and the
 * rule that a TCP or HTTP listener on a non-loopback host needs a token (or says
 * "insecure": true). Part of the config parser (config.c parses the address).
 */
#include "config.h"
#include "config_internal.h"
#include "config_json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "rlproto.h"

static const struct {
    const char *name; /* as written in "ops" */
    uint32_t perm;    /* its bit; 0 for the operations always allowed */
} op_names[] = {
    {"ping", 0},
    {"auth", 0},
    {"check", RL_PERM_CHECK},
    {"peek", RL_PERM_PEEK},
    {"multi_check", RL_PERM_MULTI_CHECK},
    {"charge", RL_PERM_CHARGE},
    {"refund", RL_PERM_REFUND},
    {"reset", RL_PERM_RESET},
    {"policies", RL_PERM_POLICIES},
    {"stats", RL_PERM_STATS},
    {"top", RL_PERM_TOP},
    {"reload", RL_PERM_RELOAD},
    {"lease", RL_PERM_LEASE},
    {"leases", RL_PERM_LEASES},
};

#define OP_COUNT (sizeof(op_names) / sizeof(op_names[0]))
#define OPS_LIST                                                                                   \
    "\"check\", \"peek\", \"multi_check\", \"charge\", \"refund\", \"reset\", \"policies\", "      \
    "\"stats\", \"top\", \"reload\", \"lease\", \"leases\" (\"ping\" and \"auth\" are always "     \
    "allowed)"

const char *rl_perm_name(uint32_t perm) {
    for (size_t i = 0; i < OP_COUNT; i++)
        if (op_names[i].perm == perm && perm != 0)
            return op_names[i].name;
    return NULL;
}

int rl_listener_peer_allowed(const rl_listener_conf *l, uint32_t uid, uint32_t gid) {
    if (!l->peer_uids && !l->peer_gids)
        return 1;
    for (size_t i = 0; i < l->peer_uid_count; i++)
        if (l->peer_uids[i] == uid)
            return 1;
    for (size_t i = 0; i < l->peer_gid_count; i++)
        if (l->peer_gids[i] == gid)
            return 1;
    return 0;
}

int rl_token_equal(const char *expected, size_t expected_len, const char *given, size_t given_len) {
    /* every byte of expected is read whatever given holds: no early exit */
    volatile unsigned char diff = expected_len != given_len;
    for (size_t i = 0; i < expected_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)((unsigned char)expected[i] ^ g);
    }
    return diff == 0;
}

/* ---- ops ---- */

static int op_perm(const char *name, uint32_t *perm) {
    for (size_t i = 0; i < OP_COUNT; i++) {
        if (strcmp(op_names[i].name, name) == 0) {
            *perm = op_names[i].perm;
            return 0;
        }
    }
    return -1;
}

// Reads "ops" (an array of operation names) into l->perms.
static int parse_ops(rl_conf_ctx *ctx, json_t *v, const char *path, rl_listener_conf *l) {
    if (!json_is_array(v))
        return rl_conf_fail(ctx, path, "must be an array of operation names: " OPS_LIST);
    uint32_t http_ops = RL_PERM_CHECK | RL_PERM_STATS, perms = 0;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        char sub[300];
        uint32_t perm;
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if (!json_is_string(item) || op_perm(json_string_value(item), &perm) != 0)
            return rl_conf_fail(ctx, sub, "must be one of " OPS_LIST);
        if (l->kind == RL_LISTEN_HTTP && perm && !(perm & http_ops))
            return rl_conf_fail(ctx, sub,
                                "\"%s\": an HTTP listener serves only \"check\" (/check, /auth) "
                                "and \"stats\" (/metrics)",
                                json_string_value(item));
        perms |= perm;
    }
    l->perms = perms;
    return 0;
}

/* ---- peers ---- */

// Reads a non-empty array of ids (uids or gids) into *ids (owned by the caller).
static int parse_ids(rl_conf_ctx *ctx, json_t *v, const char *path, uint32_t **ids, size_t *count) {
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > RL_MAX_PEERS)
        return rl_conf_fail(ctx, path, "must be an array of 1..%d numeric ids", RL_MAX_PEERS);
    *ids = rl_calloc(json_array_size(v), sizeof(**ids));
    if (!*ids)
        return rl_conf_fail(ctx, path, "out of memory");
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        char sub[300];
        uint64_t id;
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if (rl_conf_uint(ctx, item, sub, 0, UINT32_MAX - 1, &id) != 0)
            return -1;
        (*ids)[i] = (uint32_t)id;
        *count = i + 1;
    }
    return 0;
}

/* ---- the token ---- */

// Opens the token file and checks it: a regular file, not readable or writable by group
// or others. Returns the descriptor, or -1 after failing naming path and file.
static int open_token(rl_conf_ctx *ctx, const char *path, const char *file) {
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rl_conf_fail(ctx, path, "\"%s\": %s", file, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rl_conf_fail(ctx, path, "\"%s\" is not a regular file", file);
    } else if (st.st_mode & 077) {
        rl_conf_fail(ctx, path,
                     "\"%s\" has mode %04o: a token file must not be readable or writable by "
                     "group or others (chmod 600 it)",
                     file, (unsigned)(st.st_mode & 07777));
    } else {
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

// Reads the token file at file into l->token: 16..1024 bytes once one trailing newline
// ("\n" or "\r\n") is removed.
static int read_token(rl_conf_ctx *ctx, const char *path, const char *file, rl_listener_conf *l) {
    char buf[RL_MAX_TOKEN_LEN + 3];
    int fd = open_token(ctx, path, file);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf));
    int read_errno = errno;
    close(fd);
    if (n < 0)
        return rl_conf_fail(ctx, path, "\"%s\": %s", file, strerror(read_errno));
    size_t len = (size_t)n;
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (len >= RL_MIN_TOKEN_LEN && len <= RL_MAX_TOKEN_LEN && (size_t)n < sizeof(buf))
        l->token = rl_malloc(len);
    if (l->token) {
        memcpy(l->token, buf, len);
        l->token_len = len;
    }
    explicit_bzero(buf, sizeof(buf));
    if (l->token)
        return 0;
    if (len >= RL_MIN_TOKEN_LEN && (size_t)n < sizeof(buf) && len <= RL_MAX_TOKEN_LEN)
        return rl_conf_fail(ctx, path, "out of memory");
    return rl_conf_fail(ctx, path, "\"%s\" holds %s token: it must have %d..%d bytes", file,
                        len == 0                 ? "an empty"
                        : len < RL_MIN_TOKEN_LEN ? "a too short"
                                                 : "a too long",
                        RL_MIN_TOKEN_LEN, RL_MAX_TOKEN_LEN);
}

// Returns 1 if host is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x) or
// "localhost".
static int is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) != 1)
        return 0;
    return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

/* ---- the listener's trust fields ---- */

// Reads peer_uids and peer_gids (unix listeners only).
static int parse_peers(rl_conf_ctx *ctx, json_t *obj, const char *path, rl_listener_conf *l) {
    json_t *uids = json_object_get(obj, "peer_uids"), *gids = json_object_get(obj, "peer_gids");
    char sub[300];
    if ((uids || gids) && l->kind != RL_LISTEN_UNIX) {
        rl_conf_path(sub, sizeof(sub), path, uids ? "peer_uids" : "peer_gids");
        return rl_conf_fail(ctx, sub, "only a unix: listener knows its peers' uid and gid");
    }
    rl_conf_path(sub, sizeof(sub), path, "peer_uids");
    if (uids && parse_ids(ctx, uids, sub, &l->peer_uids, &l->peer_uid_count) != 0)
        return -1;
    rl_conf_path(sub, sizeof(sub), path, "peer_gids");
    if (gids && parse_ids(ctx, gids, sub, &l->peer_gids, &l->peer_gid_count) != 0)
        return -1;
    return 0;
}

// Reads token_file and insecure (tcp and http listeners only).
static int parse_token(rl_conf_ctx *ctx, json_t *obj, const char *path, rl_listener_conf *l) {
    json_t *file = json_object_get(obj, "token_file"), *insecure = json_object_get(obj, "insecure");
    char sub[300];
    rl_conf_path(sub, sizeof(sub), path, file ? "token_file" : "insecure");
    if ((file || insecure) && l->kind == RL_LISTEN_UNIX)
        return rl_conf_fail(ctx, sub,
                            "a unix: listener has no token; restrict it with its mode, "
                            "peer_uids or peer_gids");
    rl_conf_path(sub, sizeof(sub), path, "insecure");
    if (insecure && !json_is_boolean(insecure))
        return rl_conf_fail(ctx, sub, "must be true or false");
    l->insecure = insecure && json_is_true(insecure);
    rl_conf_path(sub, sizeof(sub), path, "token_file");
    if (file && (rl_conf_string(ctx, file, sub, &l->token_file) != 0 ||
                 read_token(ctx, sub, l->token_file, l) != 0))
        return -1;
    return 0;
}

// Sets l->perms from "ops", or from admin (already defaulted by the caller).
static int parse_perms(rl_conf_ctx *ctx, json_t *obj, const char *path, rl_listener_conf *l) {
    json_t *ops = obj ? json_object_get(obj, "ops") : NULL;
    char sub[300];
    rl_conf_path(sub, sizeof(sub), path, "ops");
    if (ops && json_is_true(json_object_get(obj, "admin")))
        return rl_conf_fail(ctx, sub,
                            "an admin listener allows every operation: give "
                            "either \"admin\": true or \"ops\"");
    if (!ops) {
        l->perms = l->admin                    ? RL_PERM_ALL
                   : l->kind == RL_LISTEN_HTTP ? RL_PERM_DEFAULT_HTTP
                                               : RL_PERM_DEFAULT_BINARY;
        return 0;
    }
    if (parse_ops(ctx, ops, sub, l) != 0)
        return -1;
    l->admin = l->perms == RL_PERM_ALL;
    return 0;
}

int rl_conf_listener_trust(rl_conf_ctx *ctx, json_t *obj, const char *path, rl_listener_conf *l) {
    if (parse_perms(ctx, obj, path, l) != 0)
        return -1;
    if (obj && (parse_peers(ctx, obj, path, l) != 0 || parse_token(ctx, obj, path, l) != 0))
        return -1;
    if (l->kind != RL_LISTEN_UNIX && !l->token && !l->insecure && !is_loopback(l->host))
        return rl_conf_fail(ctx, path,
                            "\"%s\" is reachable from other hosts: give it a \"token_file\" "
                            "(or bind it to a loopback address, or say \"insecure\": true)",
                            l->address);
    return 0;
}

void rl_conf_listener_trust_free(rl_listener_conf *l) {
    rl_free(l->peer_uids);
    rl_free(l->peer_gids);
    rl_free(l->token_file);
    if (l->token)
        explicit_bzero(l->token, l->token_len);
    rl_free(l->token);
}

static uint32_t *dup_ids(const uint32_t *ids, size_t count, int *failed) {
    uint32_t *copy = ids ? rl_malloc(count * sizeof(*ids)) : NULL;
    if (copy)
        memcpy(copy, ids, count * sizeof(*ids));
    *failed |= ids && !copy;
    return copy;
}

rl_listener_conf *rl_listener_trust_dup(const rl_listener_conf *l) {
    rl_listener_conf *d = rl_calloc(1, sizeof(*d));
    int failed = !d;
    if (d) {
        d->kind = l->kind;
        d->admin = l->admin;
        d->perms = l->perms;
        d->insecure = l->insecure;
        d->peer_uids = dup_ids(l->peer_uids, l->peer_uid_count, &failed);
        d->peer_uid_count = l->peer_uid_count;
        d->peer_gids = dup_ids(l->peer_gids, l->peer_gid_count, &failed);
        d->peer_gid_count = l->peer_gid_count;
        d->token = l->token ? rl_malloc(l->token_len) : NULL;
        failed |= l->token && !d->token;
    }
    if (d && d->token) {
        memcpy(d->token, l->token, l->token_len);
        d->token_len = l->token_len;
    }
    if (failed) {
        rl_listener_trust_release(d);
        return NULL;
    }
    return d;
}

void rl_listener_trust_release(rl_listener_conf *l) {
    if (!l)
        return;
    rl_conf_listener_trust_free(l);
    rl_free(l);
}

static int same_ids(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    return (!a && !b) || (a && b && na == nb && memcmp(a, b, na * sizeof(*a)) == 0);
}

int rl_listener_trust_same(const rl_listener_conf *a, const rl_listener_conf *b) {
    return a->token_len == b->token_len &&
           (a->token_len == 0 || memcmp(a->token, b->token, a->token_len) == 0) &&
           same_ids(a->peer_uids, a->peer_uid_count, b->peer_uids, b->peer_uid_count) &&
           same_ids(a->peer_gids, a->peer_gid_count, b->peer_gids, b->peer_gid_count);
}
