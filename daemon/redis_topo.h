/*
 * redis_topo.h: Redis Cluster's key slots and topology, as the Redis store routes by them.
 *
 * No I/O and no allocation: a key in, its slot out; a CLUSTER SHARDS or CLUSTER SLOTS
 * reply (hiredis's redisReply, RESP2) in, a table of nodes and the master serving each
 * of the 16384 slots out; a MOVED/ASK error text in, its slot and address out.
 *
 * Replies are checked strictly: a wrong type, an odd name/value count, a slot outside
 * 0..16383, a range whose start is past its end, a slot claimed twice, a port outside
 * 1..65535, a host that is empty, longer than 255 bytes or holds bytes other than
 * printable non-space ASCII, a node id other than 40 hex digits, or more than
 * RL_REDIS_TOPO_MAX_NODES nodes make the whole reply an error (err says where); the
 * caller keeps its previous topology then.
 *
 * A node's address: its endpoint if that is neither "" nor "?"; for "?" (the cluster
 * prefers hostnames and the node has none) its ip; for "" or nil (Redis's
 * "unknown-endpoint": reach the node on the host the reply came from, with its port) or
 * an empty ip, asked_host, the host the reply was asked of. A host:port listed twice is
 * one node (a node that restarted with a new id can linger, failed, at its address): a
 * serving listing wins.
 */
#ifndef RL_REDIS_TOPO_H
#define RL_REDIS_TOPO_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define RL_REDIS_SLOTS 16384        /* Redis Cluster's hash slots */
#define RL_REDIS_TOPO_MAX_NODES 256 /* nodes a topology holds; a reply with more is an error */
#define RL_REDIS_TOPO_HOST_MAX 256  /* bytes of a host, its NUL included */
#define RL_REDIS_TOPO_ID_LEN 40     /* hex digits of a node id */

/* One node of the cluster. */
typedef struct rl_redis_topo_node {
    char host[RL_REDIS_TOPO_HOST_MAX]; /* host name or address, NUL-terminated */
    uint16_t port;                     /* its port (1..65535) */
    char id[RL_REDIS_TOPO_ID_LEN + 1]; /* node id (40 hex digits), "" if not known */
    int master;                        /* 1: a master, 0: a replica */
    int online;                        /* 1: reported healthy ("online"), 0: not */
} rl_redis_topo_node;

/* The cluster as one reply describes it. */
typedef struct rl_redis_topo {
    size_t count;                                      /* nodes in use */
    rl_redis_topo_node nodes[RL_REDIS_TOPO_MAX_NODES]; /* masters and replicas */
    int16_t owner[RL_REDIS_SLOTS]; /* index in nodes of the master serving the slot, -1: none */
} rl_redis_topo;

// Returns the Redis Cluster slot of the key (len bytes, any bytes): CRC16-XMODEM
// (polynomial 0x1021, initial value 0) modulo 16384, over the hash tag when the key has
// a '{' with a '}' later and at least one byte between the first '{' and the first '}'
// after it, else over the whole key (Redis's keyHashSlot).
uint16_t rl_redis_slot(const char *key, size_t len);

// Returns CRC16-XMODEM of len bytes (exposed for tests: "123456789" gives 0x31C3).
uint16_t rl_redis_crc16(const char *buf, size_t len);

// Empties topo: no nodes, every slot -1.
void rl_redis_topo_reset(rl_redis_topo *topo);

// Fills out from a CLUSTER SHARDS reply (Redis >= 7.0) asked of asked_host (may be NULL
// if every node names its own address). A shard's slots go to its node whose role is
// "master" and health "online"; a shard without one leaves its slots -1. Replicas are
// nodes with master 0. Returns RL_OK, or RL_ERR with the reason in err (out is then
// empty). An error reply (e.g. an unknown command on Redis < 7.0) is RL_ERR too.
int rl_redis_topo_from_shards(const struct redisReply *r, const char *asked_host,
                              rl_redis_topo *out, char *err, size_t errlen);

// Fills out from a CLUSTER SLOTS reply: entries [start, end, master, replicas...], each
// node [host or nil, port, id?, {name, value...}?]. The master of a range serves it
// (online 1); replicas are listed with master 0, online 1 (CLUSTER SLOTS leaves out
// failed ones). Addresses as above ("ip" read from the node's metadata for "?").
// Returns RL_OK, or RL_ERR with the reason in err (out is then empty).
int rl_redis_topo_from_slots(const struct redisReply *r, const char *asked_host, rl_redis_topo *out,
                             char *err, size_t errlen);

// Parses a redirection error's text (hiredis's, without the '-'): "MOVED <slot>
// <host>:<port>" or "ASK <slot> <host>:<port>". The host is everything before the last
// ':' ("::1" as Redis writes IPv6; "[::1]" is taken too, brackets removed); it may be
// empty (the node's endpoint is unknown: the caller uses the host it asked) or "?" (the
// node has no hostname: the caller refreshes its topology). Returns 1 for MOVED, 2 for
// ASK, 0 if neither or malformed (slot past 16383, port outside 1..65535, host longer
// than hostlen - 1 bytes or with a space or control byte, bytes left over); the outputs
// are written only on success.
int rl_redis_parse_redirect(const char *msg, int *slot, char *host, size_t hostlen, uint16_t *port);

// Returns the index in topo of the node host:port, adding it (as a serving master, id
// "", the way a MOVED or ASK names a slot's new server) if absent and there is room;
// -1 if topo is full or the host is empty, too long or not printable, or port is 0.
int rl_redis_topo_node_index(rl_redis_topo *topo, const char *host, uint16_t port);

#endif
