/*
 * redis_topo.c: Redis Cluster key slots, CLUSTER SHARDS / CLUSTER SLOTS replies and
 * MOVED/ASK redirections (see redis_topo.h). Pure: no I/O, no allocation.
 */
#include "redis_topo.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rlproto.h"

/* CRC16-XMODEM (polynomial 0x1021, MSB first), one entry per leading byte. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t rl_redis_crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (uint8_t)buf[i]) & 0xff]);
    return crc;
}

uint16_t rl_redis_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close != NULL && close > key + from)
            return rl_redis_crc16(key + from, (size_t)(close - key) - from) & (RL_REDIS_SLOTS - 1);
    }
    return rl_redis_crc16(key, len) & (RL_REDIS_SLOTS - 1);
}

/* Writes the formatted reason to err; returns RL_ERR. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return RL_ERR;
}

/* Parsing state shared by both reply shapes. */
typedef struct topo_parse {
    rl_redis_topo *topo;                 /* being filled */
    const char *asked_host;              /* host the reply came from, or NULL */
    const char *what;                    /* "CLUSTER SHARDS" or "CLUSTER SLOTS" */
    char *err;                           /* reason on failure */
    size_t errlen;                       /* bytes of err */
    uint8_t claimed[RL_REDIS_SLOTS / 8]; /* slots some entry has named */
} topo_parse;

void rl_redis_topo_reset(rl_redis_topo *topo) {
    topo->count = 0;
    for (size_t i = 0; i < RL_REDIS_SLOTS; i++)
        topo->owner[i] = -1;
}

static int is_string(const redisReply *r) {
    return r != NULL && r->type == REDIS_REPLY_STRING && r->str != NULL;
}

static int str_is(const redisReply *r, const char *s) {
    size_t n = strlen(s);
    return is_string(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

/* 1 if the len bytes are a usable host: 1..255 bytes of printable non-space ASCII. */
static int host_ok(const char *host, size_t len) {
    if (len == 0 || len >= RL_REDIS_TOPO_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)host[i] <= 0x20 || (unsigned char)host[i] >= 0x7f)
            return 0;
    return 1;
}

/* 1 if r is a node id: 40 lowercase hex digits. */
static int id_ok(const redisReply *r) {
    if (!is_string(r) || r->len != RL_REDIS_TOPO_ID_LEN)
        return 0;
    for (size_t i = 0; i < r->len; i++)
        if (!((r->str[i] >= '0' && r->str[i] <= '9') || (r->str[i] >= 'a' && r->str[i] <= 'f')))
            return 0;
    return 1;
}

/* Index of host:port in topo (host already checked), or -1. */
static int find_node(const rl_redis_topo *topo, const char *host, size_t len, uint16_t port) {
    for (size_t i = 0; i < topo->count; i++) {
        const rl_redis_topo_node *n = &topo->nodes[i];
        if (n->port == port && strlen(n->host) == len && memcmp(n->host, host, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Index of host:port, added with the given flags if absent; a serving listing of a node
 * already there marks it serving. -1 if topo is full. */
static int add_node(rl_redis_topo *topo, const char *host, size_t len, uint16_t port,
                    const char *id, int master, int online) {
    int i = find_node(topo, host, len, port);
    if (i < 0) {
        if (topo->count >= RL_REDIS_TOPO_MAX_NODES)
            return -1;
        i = (int)topo->count++;
        rl_redis_topo_node *n = &topo->nodes[i];
        memcpy(n->host, host, len);
        n->host[len] = '\0';
        n->port = port;
        n->master = n->online = 0;
        n->id[0] = '\0';
    }
    rl_redis_topo_node *n = &topo->nodes[i];
    if (!n->online || (master && online && !n->master)) {
        n->master = master;
        n->online = online;
        snprintf(n->id, sizeof(n->id), "%s", id);
    }
    return i;
}

int rl_redis_topo_node_index(rl_redis_topo *topo, const char *host, uint16_t port) {
    size_t len = host != NULL ? strlen(host) : 0;
    if (port == 0 || !host_ok(host, len))
        return -1;
    int i = find_node(topo, host, len, port);
    return i >= 0 ? i : add_node(topo, host, len, port, "", 1, 1);
}

/* Marks slots start..end as named, served by owner (-1: none); RL_ERR if a slot is out of
 * range, the range is reversed or a slot was named before. */
static int claim_range(topo_parse *p, const char *where, long long start, long long end,
                       int owner) {
    if (start < 0 || end >= RL_REDIS_SLOTS || start > end)
        return fail(p->err, p->errlen, "%s: %s: slot range %lld-%lld is not within 0-16383",
                    p->what, where, start, end);
    for (long long s = start; s <= end; s++) {
        if (p->claimed[s / 8] & (1u << (s % 8)))
            return fail(p->err, p->errlen, "%s: %s: slot %lld is named twice", p->what, where, s);
        p->claimed[s / 8] |= (uint8_t)(1u << (s % 8));
        p->topo->owner[s] = (int16_t)owner;
    }
    return RL_OK;
}

/* Checks that r is a port (an integer 1..65535) and stores it. */
static int read_port(topo_parse *p, const char *where, const redisReply *r, uint16_t *port) {
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return fail(p->err, p->errlen, "%s: %s: port is missing or not an integer", p->what, where);
    if (r->integer < 1 || r->integer > 65535)
        return fail(p->err, p->errlen, "%s: %s: port %lld is not within 1-65535", p->what, where,
                    r->integer);
    *port = (uint16_t)r->integer;
    return RL_OK;
}

/* Picks a node's host: endpoint, else ip (endpoint "?" or absent), else asked_host
 * (endpoint "" or nil: Redis's unknown endpoint), else ip; checks it. */
static int pick_host(topo_parse *p, const char *where, const redisReply *endpoint,
                     const redisReply *ip, const char **host, size_t *len) {
    int unknown = endpoint == NULL || str_is(endpoint, "?");
    if (is_string(endpoint) && endpoint->len > 0 && !unknown) {
        *host = endpoint->str, *len = endpoint->len;
    } else if (unknown && is_string(ip) && ip->len > 0) {
        *host = ip->str, *len = ip->len;
    } else if (p->asked_host != NULL && p->asked_host[0] != '\0') {
        *host = p->asked_host, *len = strlen(p->asked_host);
    } else if (is_string(ip) && ip->len > 0) {
        *host = ip->str, *len = ip->len; /* no asked host: the ip is all there is */
    } else {
        return fail(p->err, p->errlen, "%s: %s: the node has no address", p->what, where);
    }
    if (!host_ok(*host, *len))
        return fail(p->err, p->errlen,
                    "%s: %s: host is empty, over 255 bytes or not printable ASCII", p->what, where);
    return RL_OK;
}

/* Adds a node; RL_ERR if topo is full. */
static int add_checked(topo_parse *p, const char *host, size_t len, uint16_t port, const char *id,
                       int master, int online, int *index) {
    *index = add_node(p->topo, host, len, port, id, master, online);
    if (*index < 0)
        return fail(p->err, p->errlen, "%s: more than %d nodes", p->what, RL_REDIS_TOPO_MAX_NODES);
    return RL_OK;
}

/* Checks that r is an array of name/value pairs whose names are strings. */
static int check_pairs(topo_parse *p, const char *where, const redisReply *r) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return fail(p->err, p->errlen, "%s: %s: not an array", p->what, where);
    if (r->elements % 2 != 0)
        return fail(p->err, p->errlen, "%s: %s: odd number of name/value elements", p->what, where);
    for (size_t i = 0; i < r->elements; i += 2)
        if (!is_string(r->element[i]))
            return fail(p->err, p->errlen, "%s: %s: a field name is not a string", p->what, where);
    return RL_OK;
}

/* Stores the value of the pair at i in *field if its name is name; RL_ERR if twice. */
static int take(topo_parse *p, const char *where, const redisReply *pairs, size_t i,
                const char *name, const redisReply **field) {
    if (!str_is(pairs->element[i], name))
        return RL_OK;
    if (*field != NULL)
        return fail(p->err, p->errlen, "%s: %s: field \"%s\" given twice", p->what, where, name);
    *field = pairs->element[i + 1];
    return RL_OK;
}

/* A node of a CLUSTER SHARDS reply, its fields. */
typedef struct shard_node {
    const redisReply *id, *port, *ip, *endpoint, *role, *health;
} shard_node;

/* Finds the fields of a CLUSTER SHARDS node (other fields are ignored). */
static int read_shard_fields(topo_parse *p, const char *where, const redisReply *r, shard_node *f) {
    memset(f, 0, sizeof(*f));
    if (check_pairs(p, where, r) != RL_OK)
        return RL_ERR;
    for (size_t i = 0; i < r->elements; i += 2)
        if (take(p, where, r, i, "id", &f->id) != RL_OK ||
            take(p, where, r, i, "port", &f->port) != RL_OK ||
            take(p, where, r, i, "ip", &f->ip) != RL_OK ||
            take(p, where, r, i, "endpoint", &f->endpoint) != RL_OK ||
            take(p, where, r, i, "role", &f->role) != RL_OK ||
            take(p, where, r, i, "health", &f->health) != RL_OK)
            return RL_ERR;
    return RL_OK;
}

/* Checks the types of a CLUSTER SHARDS node's fields. */
static int check_shard_fields(topo_parse *p, const char *where, const shard_node *f) {
    if (!id_ok(f->id))
        return fail(p->err, p->errlen, "%s: %s: id is missing or not 40 hex digits", p->what,
                    where);
    if (f->ip != NULL && !is_string(f->ip))
        return fail(p->err, p->errlen, "%s: %s: ip is not a string", p->what, where);
    if (f->endpoint != NULL && !is_string(f->endpoint) && f->endpoint->type != REDIS_REPLY_NIL)
        return fail(p->err, p->errlen, "%s: %s: endpoint is not a string", p->what, where);
    if (!str_is(f->role, "master") && !str_is(f->role, "replica"))
        return fail(p->err, p->errlen, "%s: %s: role is missing or not master/replica", p->what,
                    where);
    if (!is_string(f->health))
        return fail(p->err, p->errlen, "%s: %s: health is missing or not a string", p->what, where);
    return RL_OK;
}

/* Adds a CLUSTER SHARDS node; *serving is set to its index if it is an online master. */
static int read_shard_node(topo_parse *p, const char *where, const redisReply *r, int *serving) {
    shard_node f;
    uint16_t port = 0;
    const char *host = NULL;
    size_t len = 0;
    if (read_shard_fields(p, where, r, &f) != RL_OK || check_shard_fields(p, where, &f) != RL_OK ||
        read_port(p, where, f.port, &port) != RL_OK ||
        pick_host(p, where, f.endpoint, f.ip, &host, &len) != RL_OK)
        return RL_ERR;
    char id[RL_REDIS_TOPO_ID_LEN + 1];
    memcpy(id, f.id->str, RL_REDIS_TOPO_ID_LEN);
    id[RL_REDIS_TOPO_ID_LEN] = '\0';
    int master = str_is(f.role, "master"), online = str_is(f.health, "online"), index = -1;
    if (add_checked(p, host, len, port, id, master, online, &index) != RL_OK)
        return RL_ERR;
    if (master && online) {
        if (*serving >= 0)
            return fail(p->err, p->errlen, "%s: %s: a second online master in one shard", p->what,
                        where);
        *serving = index;
    }
    return RL_OK;
}

/* Claims the ranges of a slots array (integers, start/end pairs) for owner. */
static int read_ranges(topo_parse *p, const char *where, const redisReply *r, int owner) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return fail(p->err, p->errlen, "%s: %s: slots is not an array of start/end pairs", p->what,
                    where);
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *start = r->element[i], *end = r->element[i + 1];
        if (start->type != REDIS_REPLY_INTEGER || end->type != REDIS_REPLY_INTEGER)
            return fail(p->err, p->errlen, "%s: %s: a slot is not an integer", p->what, where);
        if (claim_range(p, where, start->integer, end->integer, owner) != RL_OK)
            return RL_ERR;
    }
    return RL_OK;
}

/* Reads one shard: its nodes, then its slot ranges (owned by its online master). */
static int read_shard(topo_parse *p, size_t s, const redisReply *r) {
    char where[64];
    snprintf(where, sizeof(where), "shard %zu", s);
    const redisReply *slots = NULL, *nodes = NULL;
    if (check_pairs(p, where, r) != RL_OK)
        return RL_ERR;
    for (size_t i = 0; i < r->elements; i += 2)
        if (take(p, where, r, i, "slots", &slots) != RL_OK ||
            take(p, where, r, i, "nodes", &nodes) != RL_OK)
            return RL_ERR;
    if (slots == NULL || nodes == NULL || nodes->type != REDIS_REPLY_ARRAY)
        return fail(p->err, p->errlen, "%s: %s: slots or nodes missing, or nodes not an array",
                    p->what, where);
    int serving = -1;
    for (size_t n = 0; n < nodes->elements; n++) {
        snprintf(where, sizeof(where), "shard %zu node %zu", s, n);
        if (read_shard_node(p, where, nodes->element[n], &serving) != RL_OK)
            return RL_ERR;
    }
    snprintf(where, sizeof(where), "shard %zu", s);
    return read_ranges(p, where, slots, serving);
}

/* Copies at most dstlen - 1 bytes of src to dst, non-printable bytes as '?'. */
static void printable(char *dst, size_t dstlen, const char *src, size_t len) {
    size_t n = len < dstlen - 1 ? len : dstlen - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)src[i] >= 0x20 && (unsigned char)src[i] < 0x7f ? src[i] : '?';
    dst[n] = '\0';
}

/* Starts a parse: empties out; RL_ERR unless r is an array. */
static int begin(topo_parse *p, const char *what, const redisReply *r, const char *asked_host,
                 rl_redis_topo *out, char *err, size_t errlen) {
    *p = (topo_parse){
        .topo = out, .asked_host = asked_host, .what = what, .err = err, .errlen = errlen};
    rl_redis_topo_reset(out);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        char text[200];
        printable(text, sizeof(text), r->str != NULL ? r->str : "", r->str != NULL ? r->len : 0);
        return fail(err, errlen, "%s: %s", what, text);
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return fail(err, errlen, "%s: the reply is not an array", what);
    return RL_OK;
}

/* Ends a parse: on failure, out is left empty. */
static int finish(topo_parse *p, int status) {
    if (status != RL_OK)
        rl_redis_topo_reset(p->topo);
    return status;
}

int rl_redis_topo_from_shards(const redisReply *r, const char *asked_host, rl_redis_topo *out,
                              char *err, size_t errlen) {
    topo_parse p;
    if (begin(&p, "CLUSTER SHARDS", r, asked_host, out, err, errlen) != RL_OK)
        return RL_ERR;
    int status = RL_OK;
    for (size_t s = 0; s < r->elements && status == RL_OK; s++)
        status = read_shard(&p, s, r->element[s]);
    return finish(&p, status);
}

/* The "ip" of a CLUSTER SLOTS node's metadata (name/value pairs), or NULL. */
static int read_slots_meta(topo_parse *p, const char *where, const redisReply *meta,
                           const redisReply **ip) {
    *ip = NULL;
    if (check_pairs(p, where, meta) != RL_OK)
        return RL_ERR;
    for (size_t i = 0; i < meta->elements; i += 2)
        if (take(p, where, meta, i, "ip", ip) != RL_OK)
            return RL_ERR;
    if (*ip != NULL && !is_string(*ip))
        return fail(p->err, p->errlen, "%s: %s: ip is not a string", p->what, where);
    return RL_OK;
}

/* Adds a CLUSTER SLOTS node: [host or nil, port, id?, metadata?, ...]. */
static int read_slots_node(topo_parse *p, const char *where, const redisReply *r, int master,
                           int *index) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return fail(p->err, p->errlen, "%s: %s: not an array of host and port", p->what, where);
    const redisReply *endpoint = r->element[0], *ip = NULL;
    if (!is_string(endpoint) && endpoint->type != REDIS_REPLY_NIL)
        return fail(p->err, p->errlen, "%s: %s: host is not a string", p->what, where);
    if (r->elements > 2 && !id_ok(r->element[2]))
        return fail(p->err, p->errlen, "%s: %s: id is not 40 hex digits", p->what, where);
    if (r->elements > 3 && read_slots_meta(p, where, r->element[3], &ip) != RL_OK)
        return RL_ERR;
    uint16_t port = 0;
    const char *host = NULL;
    size_t len = 0;
    if (read_port(p, where, r->element[1], &port) != RL_OK ||
        pick_host(p, where, endpoint, ip, &host, &len) != RL_OK)
        return RL_ERR;
    char id[RL_REDIS_TOPO_ID_LEN + 1] = "";
    if (r->elements > 2)
        memcpy(id, r->element[2]->str, RL_REDIS_TOPO_ID_LEN);
    return add_checked(p, host, len, port, id, master, 1, index);
}

/* Reads one CLUSTER SLOTS entry: [start, end, master, replicas...]. */
static int read_slots_entry(topo_parse *p, size_t e, const redisReply *r) {
    char where[64];
    snprintf(where, sizeof(where), "entry %zu", e);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return fail(p->err, p->errlen, "%s: %s: not [start, end, master, replicas...]", p->what,
                    where);
    int master = -1, replica = -1;
    for (size_t n = 2; n < r->elements; n++) {
        snprintf(where, sizeof(where), "entry %zu node %zu", e, n - 2);
        if (read_slots_node(p, where, r->element[n], n == 2, n == 2 ? &master : &replica) != RL_OK)
            return RL_ERR;
    }
    snprintf(where, sizeof(where), "entry %zu", e);
    return claim_range(p, where, r->element[0]->integer, r->element[1]->integer, master);
}

int rl_redis_topo_from_slots(const redisReply *r, const char *asked_host, rl_redis_topo *out,
                             char *err, size_t errlen) {
    topo_parse p;
    if (begin(&p, "CLUSTER SLOTS", r, asked_host, out, err, errlen) != RL_OK)
        return RL_ERR;
    int status = RL_OK;
    for (size_t e = 0; e < r->elements && status == RL_OK; e++)
        status = read_slots_entry(&p, e, r->element[e]);
    return finish(&p, status);
}

/* Reads 1..max_digits decimal digits at *s into *value, moving *s past them; 0 if none. */
static int read_digits(const char **s, int max_digits, long *value) {
    long v = 0;
    int n = 0;
    while (**s >= '0' && **s <= '9' && n < max_digits)
        v = v * 10 + (*(*s)++ - '0'), n++;
    *value = v;
    return n > 0 && !(**s >= '0' && **s <= '9');
}

/* Splits "<host>:<port>" (host before the last ':', "[...]" brackets removed). */
static int read_address(const char *s, char *host, size_t hostlen, uint16_t *port) {
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        return 0;
    const char *digits = colon + 1;
    long value = 0;
    if (!read_digits(&digits, 5, &value) || *digits != '\0' || value < 1 || value > 65535)
        return 0;
    size_t len = (size_t)(colon - s);
    if (len > 0 && s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return 0; /* "[" without its "]", or "[]" */
        s++, len -= 2;
    }
    if (len >= hostlen || (len > 0 && !host_ok(s, len)))
        return 0;
    memcpy(host, s, len);
    host[len] = '\0';
    *port = (uint16_t)value;
    return 1;
}

int rl_redis_parse_redirect(const char *msg, int *slot, char *host, size_t hostlen,
                            uint16_t *port) {
    int kind = 0;
    if (msg == NULL || host == NULL || hostlen == 0)
        return 0;
    if (strncmp(msg, "MOVED ", 6) == 0)
        kind = 1, msg += 6;
    else if (strncmp(msg, "ASK ", 4) == 0)
        kind = 2, msg += 4;
    else
        return 0;
    long value = 0;
    if (!read_digits(&msg, 5, &value) || value >= RL_REDIS_SLOTS || *msg++ != ' ')
        return 0;
    char buf[RL_REDIS_TOPO_HOST_MAX];
    uint16_t p = 0;
    if (!read_address(msg, buf, hostlen < sizeof(buf) ? hostlen : sizeof(buf), &p))
        return 0;
    memcpy(host, buf, strlen(buf) + 1);
    *slot = (int)value, *port = p;
    return kind;
}
