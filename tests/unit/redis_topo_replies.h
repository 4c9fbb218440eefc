/*
 * redis_topo_replies.h: raw RESP2 replies captured from a real Redis 7.0.15 cluster (3 masters,
 * 3 replicas, redis-cli --cluster create ... --cluster-replicas 1) for test_redis_topo.c.
 * Ports as they were: masters 55191 (0-5460), 40685 (5461-10922), 51869 (10923-16383); replicas
 * 51175, 39299, 39271 in that order.
 */
#ifndef RL_TEST_REDIS_TOPO_REPLIES_H
#define RL_TEST_REDIS_TOPO_REPLIES_H

/* CLUSTER SHARDS of the 3-master, 3-replica cluster, asked of 127.0.0.1:55191. */
static const char SHARDS_STEADY[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\n"
    "id\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n$4\r\nport\r\n:40685\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\n"
    "master\r\n$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n"
    "$2\r\nid\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n$4\r\nport\r\n:39299\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\n"
    "replica\r\n$18\r\nreplication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n"
    "$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n$4\r\nport\r\n:55191\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n$4\r\nport\r\n:51175\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n$4\r\nport\r\n:51869\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n$4\r\nport\r\n:39271\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

/* The first CLUSTER SHARDS right after --cluster create: the replicas still "loading". */
static const char SHARDS_LOADING[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\n"
    "id\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n$4\r\nport\r\n:40685\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\n"
    "master\r\n$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n"
    "$2\r\nid\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n$4\r\nport\r\n:39299\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\n"
    "replica\r\n$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$7\r\nloading\r\n*4\r\n"
    "$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n$4\r\nport\r\n:55191\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n$4\r\nport\r\n:51175\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:0\r\n$6\r\nhealth\r\n$7\r\nloading\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n$4\r\nport\r\n:51869\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n$4\r\nport\r\n:39271\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:0\r\n$6\r\nhealth\r\n$7\r\nloading\r\n";

/* cluster-preferred-endpoint-type unknown-endpoint: every endpoint is "". */
static const char SHARDS_UNKNOWN_ENDPOINT[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\n"
    "id\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n$4\r\nport\r\n:40685\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:56\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
    "$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n$4\r\nport\r\n:39299\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:56\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n$4\r\nport\r\n:55191\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:127\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n$4\r\nport\r\n:51175\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:113\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
    "*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n$4\r\nport\r\n:51869\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:56\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n$4\r\nport\r\n:39271\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:56\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

/* cluster-preferred-endpoint-type hostname, only 127.0.0.1:51869 has one (node-c.example):
 * the others' endpoint is "?"; its node has a "hostname" field. */
static const char SHARDS_HOSTNAME[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\n"
    "id\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n$4\r\nport\r\n:40685\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    "$18\r\nreplication-offset\r\n:70\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n"
    "$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n$4\r\nport\r\n:39299\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:56\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n"
    ":0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n$4\r\nport\r\n:55191\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:127\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n$4\r\nport\r\n:51175\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:127\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
    "*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n*16\r\n$2\r\nid\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n$4\r\nport\r\n:51869\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$14\r\nnode-c.example\r\n$8\r\nhostname\r\n$14\r\n"
    "node-c.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:70\r\n"
    "$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n$4\r\nport\r\n:39271\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:70\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

/* After 127.0.0.1:51869 was shut down and 127.0.0.1:39271 took over: the dead master is
 * a shard of its own, no slots, health "fail". */
static const char SHARDS_FAILED_OVER[] =
    "*4\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\n"
    "id\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n$4\r\nport\r\n:40685\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\n"
    "master\r\n$18\r\nreplication-offset\r\n:126\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n"
    "$2\r\nid\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n$4\r\nport\r\n:39299\r\n"
    "$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\n"
    "replica\r\n$18\r\nreplication-offset\r\n:126\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n"
    "$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n$4\r\nport\r\n:55191\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:183\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n$4\r\nport\r\n:51175\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\n"
    "replication-offset\r\n:183\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
    "*2\r\n:10923\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n$4\r\nport\r\n:39271\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
    "replication-offset\r\n:112\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
    "*0\r\n$5\r\nnodes\r\n*1\r\n*16\r\n$2\r\nid\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n$4\r\nport\r\n:51869\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$14\r\n"
    "node-c.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:112\r\n"
    "$6\r\nhealth\r\n$4\r\nfail\r\n";

/* CLUSTER SLOTS of the same cluster. */
static const char SLOTS_STEADY[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:55191\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:51175\r\n"
    "$40\r\n3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:40685\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:39299\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n"
    "*0\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:51869\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:39271\r\n"
    "$40\r\n1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n*0\r\n";

/* CLUSTER SLOTS with unknown-endpoint: hosts nil, metadata {ip, ...}. */
static const char SLOTS_UNKNOWN_ENDPOINT[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:55191\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$-1\r\n:51175\r\n$40\r\n3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$-1\r\n:40685\r\n$40\r\n"
    "0238fd09c26913fae54ade30b9408692a1936f0f\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$-1\r\n:39299\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$-1\r\n:51869\r\n$40\r\n"
    "5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "hostname\r\n$14\r\nnode-c.example\r\n*4\r\n$-1\r\n:39271\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

/* CLUSTER SLOTS with hostname preferred: "?" for nodes without one. */
static const char SLOTS_HOSTNAME[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$1\r\n?\r\n:55191\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:51175\r\n$40\r\n3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$1\r\n?\r\n:40685\r\n$40\r\n"
    "0238fd09c26913fae54ade30b9408692a1936f0f\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:39299\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$14\r\nnode-c.example\r\n"
    ":51869\r\n$40\r\n5efa34d50e82508b2da8ffefc24347c9c6763a75\r\n*2\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n*4\r\n$1\r\n?\r\n:39271\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

/* CLUSTER SLOTS after the failover. */
static const char SLOTS_FAILED_OVER[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:55191\r\n$40\r\n"
    "6480fea496bf0a9683f191700beefe554ab2d63d\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:51175\r\n"
    "$40\r\n3fdddddae735b21b9f81286d97d16c7cb9df0f45\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:40685\r\n$40\r\n0238fd09c26913fae54ade30b9408692a1936f0f\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:39299\r\n$40\r\n34c28729631d2f8f753163b87442191c7d83448b\r\n"
    "*0\r\n*3\r\n:10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:39271\r\n$40\r\n"
    "1cdb7d2e36a6cc4802d1e96517622b8202208698\r\n*0\r\n";

#endif
