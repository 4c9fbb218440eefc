/*
 * test_redis_topo.c: Redis Cluster key slots, topology replies and redirections, without
 * a network. Expected slots were checked against a real Redis 7.0.15 (CLUSTER KEYSLOT);
 * replies are real captures (redis_topo_replies.h) and hand-made malformed variants,
 * parsed with hiredis's reader.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_topo.h"
#include "redis_topo_replies.h"
#include "rlproto.h"

static rl_redis_topo topo; /* large: kept out of the stack */

// Parses wire-format bytes (exactly one reply) with hiredis's reader.
static redisReply *parse_len(const char *data, size_t len) {
    redisReader *reader = redisReaderCreate();
    void *reply = NULL;
    redisReaderFeed(reader, data, len);
    ck_assert_int_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    void *more = NULL;
    ck_assert_int_eq(redisReaderGetReply(reader, &more), REDIS_OK);
    ck_assert_ptr_null(more);
    redisReaderFree(reader);
    return reply;
}

static redisReply *parse(const char *data) {
    return parse_len(data, strlen(data));
}

// Bitwise CRC16-XMODEM, the reference the table is checked against.
static uint16_t crc16_bitwise(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

START_TEST(crc16_is_xmodem) {
    ck_assert_uint_eq(rl_redis_crc16("123456789", 9), 0x31C3);
    ck_assert_uint_eq(rl_redis_crc16("", 0), 0);
    char buf[3];
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b += 17) {
            buf[0] = (char)a, buf[1] = (char)b, buf[2] = (char)(a ^ b);
            ck_assert_uint_eq(rl_redis_crc16(buf, 3), crc16_bitwise(buf, 3));
        }
}
END_TEST

/* Slots given by a real Redis 7.0.15's CLUSTER KEYSLOT. */
static const struct {
    const char *key;
    size_t len;
    uint16_t slot;
} server_slots[] = {
    {"foo", 3, 12182},
    {"bar", 3, 5061},
    {"123456789", 9, 12739},
    {"user1000", 8, 3443},
    {"{user1000}.following", 20, 3443},
    {"{user1000}.followers", 20, 3443},
    {"foo{}{bar}", 10, 8363},
    {"foo{{bar}}zap", 13, 4015},
    {"{bar", 4, 4015},
    {"foo{bar}{zap}", 13, 5061},
    {"{}", 2, 15257},
    {"}{", 2, 12793},
    {"{a}", 3, 15495},
    {"a{b", 3, 13340},
    {"", 0, 0},
    {"\0", 1, 0},
    {"\xff\xfe\0{\x01}", 6, 4129},
    {"\x01", 1, 4129},
    {"k\0:}", 4, 681},
    {"rl:{api:alice}:0", 16, 4287},
    {"rl:{api%3Ax:bob}:1", 18, 14309},
    {"{{}}", 4, 4092},
    {"hello", 5, 866},
    {"{hello}a", 8, 866},
    {"\x80\x81\x82\x83", 4, 3395},
};

START_TEST(slots_match_the_server) {
    for (size_t i = 0; i < sizeof(server_slots) / sizeof(server_slots[0]); i++)
        ck_assert_msg(
            rl_redis_slot(server_slots[i].key, server_slots[i].len) == server_slots[i].slot,
            "key %zu: slot %u, want %u", i, rl_redis_slot(server_slots[i].key, server_slots[i].len),
            server_slots[i].slot);
    static char hundred[100];
    memset(hundred, 'a', sizeof(hundred));
    ck_assert_uint_eq(rl_redis_slot(hundred, sizeof(hundred)), 5960);
}
END_TEST

START_TEST(hash_tags_follow_redis_rules) {
    ck_assert_uint_eq(rl_redis_slot("{user1000}.following", 20), rl_redis_slot("user1000", 8));
    /* "{}": empty tag, the whole key. */
    ck_assert_uint_eq(rl_redis_slot("foo{}{bar}", 10), rl_redis_crc16("foo{}{bar}", 10) & 16383);
    /* The first '{' and the first '}' after it. */
    ck_assert_uint_eq(rl_redis_slot("foo{{bar}}zap", 13), rl_redis_slot("{bar", 4));
    ck_assert_uint_eq(rl_redis_slot("foo{bar}{zap}", 13), rl_redis_slot("bar", 3));
    /* No '}' after the '{', or only before it: the whole key. */
    ck_assert_uint_eq(rl_redis_slot("}a{b", 4), rl_redis_crc16("}a{b", 4) & 16383);
    /* A tag past len is not seen. */
    ck_assert_uint_eq(rl_redis_slot("x{ab}", 4), rl_redis_crc16("x{ab", 4) & 16383);
    /* Binary tags. */
    ck_assert_uint_eq(rl_redis_slot("\0{\0\xff}\0", 6), rl_redis_slot("\0\xff", 2));
}
END_TEST

static int index_of(uint16_t port) {
    for (size_t i = 0; i < topo.count; i++)
        if (topo.nodes[i].port == port)
            return (int)i;
    return -1;
}

// Asserts node port is host, with the given id prefix and flags.
static void assert_node(uint16_t port, const char *host, const char *id, int master, int online) {
    int i = index_of(port);
    ck_assert_msg(i >= 0, "port %u missing", port);
    ck_assert_str_eq(topo.nodes[i].host, host);
    ck_assert_msg(strncmp(topo.nodes[i].id, id, strlen(id)) == 0, "port %u: id %s", port,
                  topo.nodes[i].id);
    ck_assert_int_eq(topo.nodes[i].master, master);
    ck_assert_int_eq(topo.nodes[i].online, online);
}

// Asserts slots from..to (inclusive) are served by the node on port (-1: none).
static void assert_owner(int from, int to, int port) {
    int want = port < 0 ? -1 : index_of((uint16_t)port);
    ck_assert(port < 0 || want >= 0);
    for (int s = from; s <= to; s++)
        ck_assert_msg(topo.owner[s] == want, "slot %d: owner %d, want %d", s, topo.owner[s], want);
}

static void assert_steady_cluster(const char *host, int replicas_online) {
    ck_assert_uint_eq(topo.count, 6);
    assert_node(55191, host, "6480fea496bf0a9683f191700beefe554ab2d63d", 1, 1);
    assert_node(40685, host, "0238fd09c26913fae54ade30b9408692a1936f0f", 1, 1);
    assert_node(51869, host, "5efa34d50e82508b2da8ffefc24347c9c6763a75", 1, 1);
    assert_node(51175, host, "3fdddddae735b21b9f81286d97d16c7cb9df0f45", 0, replicas_online);
    assert_node(39299, host, "34c28729631d2f8f753163b87442191c7d83448b", 0, replicas_online);
    assert_node(39271, host, "1cdb7d2e36a6cc4802d1e96517622b8202208698", 0, replicas_online);
    assert_owner(0, 5460, 55191);
    assert_owner(5461, 10922, 40685);
    assert_owner(10923, 16383, 51869);
}

// Parses data with from (shards or slots) asked of asked; asserts RL_OK.
static void load(int (*from)(const redisReply *, const char *, rl_redis_topo *, char *, size_t),
                 const char *data, const char *asked) {
    char err[256] = "";
    redisReply *r = parse(data);
    ck_assert_msg(from(r, asked, &topo, err, sizeof(err)) == RL_OK, "refused: %s", err);
    freeReplyObject(r);
}

START_TEST(shards_of_a_real_cluster) {
    load(rl_redis_topo_from_shards, SHARDS_STEADY, "127.0.0.1");
    assert_steady_cluster("127.0.0.1", 1);
    /* The replicas, still loading, are not online; their masters serve. */
    load(rl_redis_topo_from_shards, SHARDS_LOADING, "127.0.0.1");
    assert_steady_cluster("127.0.0.1", 0);
}
END_TEST

START_TEST(shards_endpoints_unknown_or_hostnames) {
    /* endpoint "": the host the reply came from, the port given. */
    load(rl_redis_topo_from_shards, SHARDS_UNKNOWN_ENDPOINT, "redis.lb.example");
    assert_steady_cluster("redis.lb.example", 1);
    /* Without an asked host, the ip. */
    load(rl_redis_topo_from_shards, SHARDS_UNKNOWN_ENDPOINT, NULL);
    assert_steady_cluster("127.0.0.1", 1);
    /* endpoint "?": the ip; a hostname endpoint as it is. */
    load(rl_redis_topo_from_shards, SHARDS_HOSTNAME, "redis.lb.example");
    ck_assert_str_eq(topo.nodes[index_of(51869)].host, "node-c.example");
    ck_assert_str_eq(topo.nodes[index_of(55191)].host, "127.0.0.1");
    ck_assert_str_eq(topo.nodes[index_of(39271)].host, "127.0.0.1");
    assert_owner(10923, 16383, 51869);
}
END_TEST

START_TEST(shards_after_a_failover) {
    load(rl_redis_topo_from_shards, SHARDS_FAILED_OVER, "127.0.0.1");
    ck_assert_uint_eq(topo.count, 6);
    assert_node(39271, "127.0.0.1", "1cdb7d2e", 1, 1);
    assert_node(51869, "127.0.0.1", "5efa34d5", 1, 0); /* health "fail" */
    assert_owner(0, 5460, 55191);
    assert_owner(5461, 10922, 40685);
    assert_owner(10923, 16383, 39271);
}
END_TEST

START_TEST(slots_of_a_real_cluster) {
    load(rl_redis_topo_from_slots, SLOTS_STEADY, "127.0.0.1");
    assert_steady_cluster("127.0.0.1", 1);
    /* nil host: the host asked. */
    load(rl_redis_topo_from_slots, SLOTS_UNKNOWN_ENDPOINT, "redis.lb.example");
    assert_steady_cluster("redis.lb.example", 1);
    /* "?": the metadata's ip. */
    load(rl_redis_topo_from_slots, SLOTS_HOSTNAME, "redis.lb.example");
    ck_assert_str_eq(topo.nodes[index_of(51869)].host, "node-c.example");
    ck_assert_str_eq(topo.nodes[index_of(40685)].host, "127.0.0.1");
    load(rl_redis_topo_from_slots, SLOTS_FAILED_OVER, "127.0.0.1");
    ck_assert_uint_eq(topo.count, 5);
    assert_owner(10923, 16383, 39271);
    ck_assert_int_lt(index_of(51869), 0);
}
END_TEST

#define ID_A "$40\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
#define NODE(port)                                                                                 \
    "*12\r\n$2\r\nid\r\n" ID_A "$4\r\nport\r\n:" port "\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"        \
    "$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"                          \
    "$6\r\nhealth\r\n$6\r\nonline\r\n"
#define SHARD(slots, nodes) "*4\r\n$5\r\nslots\r\n" slots "$5\r\nnodes\r\n" nodes
#define ALL_SLOTS "*2\r\n:0\r\n:16383\r\n"

// Asserts data (len bytes) is refused by from, with a reason, leaving topo empty.
static void assert_refused(int (*from)(const redisReply *, const char *, rl_redis_topo *, char *,
                                       size_t),
                           const char *data, size_t len, const char *asked, const char *why) {
    load(rl_redis_topo_from_slots, SLOTS_STEADY, "127.0.0.1"); /* something to lose */
    char err[256] = "";
    redisReply *r = parse_len(data, len);
    ck_assert_msg(from(r, asked, &topo, err, sizeof(err)) == RL_ERR, "accepted: %s", data);
    ck_assert_msg(strstr(err, why) != NULL, "reason \"%s\", want \"%s\"", err, why);
    ck_assert_uint_eq(topo.count, 0);
    for (int s = 0; s < RL_REDIS_SLOTS; s++)
        ck_assert_int_eq(topo.owner[s], -1);
    freeReplyObject(r);
}

#define REFUSED(from, data, asked, why) assert_refused(from, data, sizeof(data) - 1, asked, why)

START_TEST(malformed_shards_are_refused_whole) {
    int (*f)(const redisReply *, const char *, rl_redis_topo *, char *, size_t) =
        rl_redis_topo_from_shards;
    REFUSED(f, ":1\r\n", "h", "not an array");
    REFUSED(f, "$-1\r\n", "h", "not an array");
    REFUSED(f, "-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n", "h",
            "CLUSTER SHARDS: ERR unknown subcommand 'SHARDS'");
    REFUSED(f, "*1\r\n:1\r\n", "h", "shard 0: not an array");
    REFUSED(f, "*1\r\n*3\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n", "h", "odd number");
    REFUSED(f, "*1\r\n*4\r\n:1\r\n*0\r\n$5\r\nnodes\r\n*0\r\n", "h", "name is not a string");
    REFUSED(f, "*1\r\n*2\r\n$5\r\nnodes\r\n*0\r\n", "h", "slots or nodes missing");
    REFUSED(f, "*1\r\n*2\r\n$5\r\nslots\r\n*0\r\n", "h", "slots or nodes missing");
    REFUSED(f, "*1\r\n" SHARD("*0\r\n", ":1\r\n"), "h", "nodes not an array");
    REFUSED(f, "*1\r\n*6\r\n$5\r\nslots\r\n*0\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*0\r\n", "h",
            "\"slots\" given twice");
    REFUSED(f, "*1\r\n" SHARD(":0\r\n", "*1\r\n" NODE("7000")), "h", "start/end pairs");
    REFUSED(f, "*1\r\n" SHARD("*1\r\n:0\r\n", "*1\r\n" NODE("7000")), "h", "start/end pairs");
    REFUSED(f, "*1\r\n" SHARD("*2\r\n$1\r\n0\r\n:5\r\n", "*1\r\n" NODE("7000")), "h",
            "not an integer");
    REFUSED(f, "*1\r\n" SHARD("*2\r\n:0\r\n:16384\r\n", "*1\r\n" NODE("7000")), "h",
            "0-16384 is not within");
    REFUSED(f, "*1\r\n" SHARD("*2\r\n:-1\r\n:5\r\n", "*1\r\n" NODE("7000")), "h", "not within");
    REFUSED(f, "*1\r\n" SHARD("*2\r\n:9\r\n:5\r\n", "*1\r\n" NODE("7000")), "h", "9-5 is not");
    REFUSED(f, "*1\r\n" SHARD("*2\r\n:0\r\n:9223372036854775807\r\n", "*1\r\n" NODE("7000")), "h",
            "not within");
    REFUSED(f,
            "*2\r\n" SHARD("*2\r\n:0\r\n:10\r\n", "*1\r\n" NODE("7000"))
                SHARD("*4\r\n:20\r\n:30\r\n:10\r\n:12\r\n", "*1\r\n" NODE("7001")),
            "h", "slot 10 is named twice");
    REFUSED(f, "*1\r\n" SHARD("*0\r\n", "*1\r\n:5\r\n"), "h", "shard 0 node 0: not an array");
    REFUSED(f, "*1\r\n" SHARD("*0\r\n", "*1\r\n*1\r\n$2\r\nid\r\n"), "h", "odd number");
    REFUSED(f, "*1\r\n" SHARD(ALL_SLOTS, "*2\r\n" NODE("7000") NODE("7001")), "h",
            "second online master");
}
END_TEST

/* A CLUSTER SHARDS node's fields; NULL (port: 0) leaves a field out. */
typedef struct node_spec {
    const char *id, *ip, *endpoint, *role, *health;
    const char *port; /* RESP value, e.g. ":7000\r\n" */
} node_spec;

static const node_spec good = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                               "127.0.0.1",
                               "127.0.0.1",
                               "master",
                               "online",
                               ":7000\r\n"};

static size_t put_field(char *out, const char *name, const char *value) {
    if (value == NULL)
        return 0;
    return (size_t)sprintf(out, "$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(name), name, strlen(value),
                           value);
}

// Writes a one-shard, one-node CLUSTER SHARDS reply owning every slot; returns its bytes.
static size_t shard_reply(char *out, const node_spec *n) {
    char fields[2048];
    size_t len = 0, count = 0;
    const char *names[] = {"id", "ip", "endpoint", "role", "health"};
    const char *values[] = {n->id, n->ip, n->endpoint, n->role, n->health};
    for (size_t i = 0; i < 5; i++) {
        len += put_field(fields + len, names[i], values[i]);
        count += values[i] != NULL ? 2 : 0;
    }
    if (n->port != NULL) {
        len += (size_t)sprintf(fields + len, "$4\r\nport\r\n%s", n->port);
        count += 2;
    }
    return (size_t)sprintf(out, "*1\r\n" SHARD(ALL_SLOTS, "*1\r\n*%zu\r\n%s"), count, fields);
}

// Asserts the one-node reply of n is refused for the reason why (asked of asked).
static void assert_node_refused(node_spec n, const char *asked, const char *why) {
    char buf[4096];
    size_t len = shard_reply(buf, &n);
    assert_refused(rl_redis_topo_from_shards, buf, len, asked, why);
}

START_TEST(malformed_shard_nodes_are_refused) {
    char buf[4096];
    size_t len = shard_reply(buf, &good);
    redisReply *r = parse_len(buf, len);
    char err[256];
    ck_assert_int_eq(rl_redis_topo_from_shards(r, NULL, &topo, err, sizeof(err)), RL_OK);
    ck_assert_uint_eq(topo.count, 1);
    ck_assert_int_eq(topo.owner[16383], 0);
    freeReplyObject(r);

    node_spec n = good;
    n.id = NULL, assert_node_refused(n, "h", "id is missing");
    n.id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", assert_node_refused(n, "h", "40 hex");
    n.id = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", assert_node_refused(n, "h", "40 hex");
    n = good, n.port = NULL, assert_node_refused(n, "h", "port is missing");
    n.port = "$4\r\n7000\r\n", assert_node_refused(n, "h", "not an integer");
    n.port = ":0\r\n", assert_node_refused(n, "h", "port 0 is not within 1-65535");
    n.port = ":65536\r\n", assert_node_refused(n, "h", "port 65536");
    n.port = ":-7000\r\n", assert_node_refused(n, "h", "port -7000");
    n = good, n.role = "boss", assert_node_refused(n, "h", "role");
    n.role = NULL, assert_node_refused(n, "h", "role");
    n = good, n.health = NULL, assert_node_refused(n, "h", "health");
    n = good, n.endpoint = "a b", assert_node_refused(n, "h", "not printable");
    n.endpoint = "h\x7f", assert_node_refused(n, "h", "not printable");
    static char long_host[300];
    memset(long_host, 'h', 256);
    n.endpoint = long_host, assert_node_refused(n, "h", "over 255 bytes");
    /* No endpoint, no ip, no asked host: no address. */
    n = good, n.endpoint = "", n.ip = "", assert_node_refused(n, NULL, "no address");
    n.endpoint = "?", assert_node_refused(n, NULL, "no address");
    /* A too-long asked host is refused like any other. */
    n = good, n.endpoint = "", n.ip = "";
    assert_node_refused(n, long_host, "over 255 bytes");
    /* A NUL byte inside a host. */
    const char nul[] = "*1\r\n" SHARD(ALL_SLOTS, "*1\r\n*10\r\n$2\r\nid\r\n" ID_A
                                                 "$4\r\nport\r\n:7000\r\n$8\r\nendpoint\r\n"
                                                 "$3\r\na\0b\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                                                 "$6\r\nhealth\r\n$6\r\nonline\r\n");
    assert_refused(rl_redis_topo_from_shards, nul, sizeof(nul) - 1, "h", "not printable");
}
END_TEST

// Writes a CLUSTER SHARDS reply of nodes one-slot shards, ports 1000 + i; returns its bytes.
static size_t many_shards(char *buf, int nodes) {
    size_t len = (size_t)sprintf(buf, "*%d\r\n", nodes);
    for (int i = 0; i < nodes; i++)
        len += (size_t)sprintf(buf + len, SHARD("*2\r\n:%d\r\n:%d\r\n", "*1\r\n" NODE("%d")), i, i,
                               1000 + i);
    return len;
}

START_TEST(at_most_256_nodes) {
    static char buf[1 << 17];
    size_t len = many_shards(buf, 256);
    ck_assert_uint_lt(len, sizeof(buf) - 1000);
    redisReply *r = parse_len(buf, len);
    char err[256] = "";
    ck_assert_msg(rl_redis_topo_from_shards(r, "h", &topo, err, sizeof(err)) == RL_OK, "%s", err);
    ck_assert_uint_eq(topo.count, 256);
    ck_assert_uint_eq(topo.nodes[topo.owner[255]].port, 1255);
    freeReplyObject(r);
    /* Full: an address not there yet cannot be added; one there is found. */
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "127.0.0.1", 999), -1);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "127.0.0.1", 1007), 7);
    len = many_shards(buf, 257);
    assert_refused(rl_redis_topo_from_shards, buf, len, "h", "more than 256 nodes");
}
END_TEST

START_TEST(an_address_listed_twice_is_one_node) {
    /* A node restarted with a new id lingers, failed, at its address: the serving listing
     * wins whichever comes first. */
    const char *fail_first =
        "*2\r\n" SHARD("*0\r\n", "*1\r\n*10\r\n$2\r\nid\r\n" ID_A "$4\r\nport\r\n:7000\r\n"
                                 "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                                 "$6\r\nhealth\r\n$4\r\nfail\r\n")
            SHARD(ALL_SLOTS,
                  "*1\r\n*10\r\n$2\r\nid\r\n$40\r\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                  "\r\n$4\r\nport\r\n:7000\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"
                  "$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$6\r\nonline\r\n");
    load(rl_redis_topo_from_shards, fail_first, "h");
    ck_assert_uint_eq(topo.count, 1);
    assert_node(7000, "127.0.0.1", "bbbb", 1, 1);
    assert_owner(0, 16383, 7000);
    /* The same node as master of two ranges in CLUSTER SLOTS. */
    load(rl_redis_topo_from_slots,
         "*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
         "*3\r\n:200\r\n:299\r\n*2\r\n$1\r\nh\r\n:7000\r\n",
         NULL);
    ck_assert_uint_eq(topo.count, 1);
    assert_node(7000, "h", "", 1, 1);
    assert_owner(0, 99, 7000);
    assert_owner(100, 199, -1);
    assert_owner(200, 299, 7000);
    assert_owner(300, 16383, -1);
}
END_TEST

START_TEST(malformed_slots_are_refused_whole) {
    int (*f)(const redisReply *, const char *, rl_redis_topo *, char *, size_t) =
        rl_redis_topo_from_slots;
    REFUSED(f, ":1\r\n", "h", "CLUSTER SLOTS: the reply is not an array");
    REFUSED(f, "-CLUSTERDOWN Hash slot not served\r\n", "h", "CLUSTERDOWN Hash slot not served");
    REFUSED(f, "*1\r\n:1\r\n", "h", "entry 0: not [start, end");
    REFUSED(f, "*1\r\n*2\r\n:0\r\n:1\r\n", "h", "entry 0: not [start, end");
    REFUSED(f, "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:7000\r\n", "h", "not [start");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n$1\r\nh\r\n", "h", "node 0: not an array");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n", "h", "node 0: not an array");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:5\r\n:7000\r\n", "h", "host is not a string");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n", "h", "not an integer");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n", "h", "port 0");
    REFUSED(f, "*1\r\n*4\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:7000\r\n*2\r\n$1\r\nh\r\n:70000\r\n", "h",
            "entry 0 node 1: port 70000");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*3\r\n$1\r\nh\r\n:7000\r\n$3\r\nabc\r\n", "h", "40 hex");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*4\r\n$1\r\nh\r\n:7000\r\n" ID_A "*1\r\n$2\r\nip\r\n", "h",
            "odd number");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*4\r\n$1\r\nh\r\n:7000\r\n" ID_A ":5\r\n", "h",
            "not an array");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*4\r\n$1\r\n?\r\n:7000\r\n" ID_A "*2\r\n$2\r\nip\r\n:1\r\n",
            "h", "ip is not a string");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:7000\r\n", "h", "not within");
    REFUSED(f, "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:7000\r\n", "h", "not within");
    REFUSED(f,
            "*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
            "*3\r\n:5\r\n:9\r\n*2\r\n$1\r\nh\r\n:7001\r\n",
            "h", "entry 1: slot 5 is named twice");
    /* nil host, "?" without an ip: the host asked, and without one an error. */
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:7000\r\n", NULL, "no address");
    REFUSED(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\n?\r\n:7000\r\n", NULL, "no address");
    load(f, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\n?\r\n:7000\r\n", "10.1.2.3");
    assert_node(7000, "10.1.2.3", "", 1, 1);
}
END_TEST

// Asserts msg parses as kind (1 MOVED, 2 ASK) to slot, host, port.
static void assert_redirect(const char *msg, int kind, int slot, const char *host, int port) {
    int got_slot = -1;
    char got_host[64] = "untouched";
    uint16_t got_port = 0;
    ck_assert_int_eq(rl_redis_parse_redirect(msg, &got_slot, got_host, sizeof(got_host), &got_port),
                     kind);
    ck_assert_int_eq(got_slot, slot);
    ck_assert_str_eq(got_host, host);
    ck_assert_int_eq(got_port, port);
}

START_TEST(redirections_as_redis_writes_them) {
    /* Texts seen from Redis 7.0.15 (hiredis strips the '-'). */
    assert_redirect("MOVED 12182 127.0.0.1:51869", 1, 12182, "127.0.0.1", 51869);
    assert_redirect("ASK 5061 127.0.0.1:40685", 2, 5061, "127.0.0.1", 40685);
    assert_redirect("MOVED 12182 :51869", 1, 12182, "", 51869); /* unknown endpoint */
    assert_redirect("MOVED 12182 node-c.example:51869", 1, 12182, "node-c.example", 51869);
    assert_redirect("MOVED 0 ?:6379", 1, 0, "?", 6379);           /* no hostname */
    assert_redirect("MOVED 3999 ::1:6381", 1, 3999, "::1", 6381); /* Redis's IPv6 */
    assert_redirect("ASK 3999 [::1]:6381", 2, 3999, "::1", 6381);
    assert_redirect("ASK 16383 h:65535", 2, 16383, "h", 65535);
    const char *bad[] = {
        "",
        "MOVED",
        "MOVED ",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED 16384 h:1",
        "MOVED -1 h:1",
        "MOVED 123456 h:1",
        "MOVED +1 h:1",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:",
        "MOVED 1 h",
        "MOVED 1 h:1 x",
        "MOVED 1  h:1",
        "MOVED 1 h:1x",
        "MOVED 1 h:-1",
        "MOVED 1 h:0001234567",
        "MOVED 1 a b:1",
        "MOVED 1 a\tb:1",
        "moved 1 h:1",
        "ASKING",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CROSSSLOT Keys in request don't hash to the same slot",
        "ERR Script attempted to access a non local key in a cluster node script: ff15769a"
        "2855a2f5013a867355fda6f45255643d, on @user_script:1.",
        "MOVEDX 1 h:1",
        " MOVED 1 h:1",
        "ASK 1 []:1",
        "ASK 1 [::1:1",
        "ASK 1 [:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int slot = -7;
        char host[64] = "untouched";
        uint16_t port = 7;
        ck_assert_msg(rl_redis_parse_redirect(bad[i], &slot, host, sizeof(host), &port) == 0,
                      "accepted \"%s\"", bad[i]);
        ck_assert_int_eq(slot, -7);
        ck_assert_str_eq(host, "untouched");
        ck_assert_int_eq(port, 7);
    }
    /* A host that does not fit the caller's buffer. */
    char small[5] = "xxxx";
    int slot = 0;
    uint16_t port = 0;
    ck_assert_int_eq(rl_redis_parse_redirect("MOVED 1 abcde:1", &slot, small, 5, &port), 0);
    ck_assert_int_eq(rl_redis_parse_redirect("MOVED 1 abcd:1", &slot, small, 5, &port), 1);
    ck_assert_str_eq(small, "abcd");
    ck_assert_int_eq(rl_redis_parse_redirect(NULL, &slot, small, 5, &port), 0);
}
END_TEST

START_TEST(node_index_finds_or_adds) {
    rl_redis_topo_reset(&topo);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "127.0.0.1", 7000), 0);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "127.0.0.1", 7001), 1);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "::1", 7000), 2);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "127.0.0.1", 7000), 0);
    ck_assert_uint_eq(topo.count, 3);
    assert_node(7001, "127.0.0.1", "", 1, 1);
    static char long_host[300];
    memset(long_host, 'h', 256);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, long_host, 7000), -1);
    long_host[255] = '\0';
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, long_host, 7000), 3);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "", 7000), -1);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, NULL, 7000), -1);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "h", 0), -1);
    ck_assert_int_eq(rl_redis_topo_node_index(&topo, "a b", 1), -1);
    ck_assert_uint_eq(topo.count, 4);
}
END_TEST

static Suite *topo_suite(void) {
    Suite *s = suite_create("redis_topo");
    TCase *tc = tcase_create("topo");
    tcase_add_test(tc, crc16_is_xmodem);
    tcase_add_test(tc, slots_match_the_server);
    tcase_add_test(tc, hash_tags_follow_redis_rules);
    tcase_add_test(tc, shards_of_a_real_cluster);
    tcase_add_test(tc, shards_endpoints_unknown_or_hostnames);
    tcase_add_test(tc, shards_after_a_failover);
    tcase_add_test(tc, slots_of_a_real_cluster);
    tcase_add_test(tc, malformed_shards_are_refused_whole);
    tcase_add_test(tc, malformed_shard_nodes_are_refused);
    tcase_add_test(tc, at_most_256_nodes);
    tcase_add_test(tc, an_address_listed_twice_is_one_node);
    tcase_add_test(tc, malformed_slots_are_refused_whole);
    tcase_add_test(tc, redirections_as_redis_writes_them);
    tcase_add_test(tc, node_index_finds_or_adds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(topo_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
