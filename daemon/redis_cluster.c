/*
 * redis_cluster.c: the Redis store on a Redis Cluster: which master serves which slot,
 * and what to do when Redis says otherwise (store_redis_int.h).
 *
 * The slot map (s->owner) comes from CLUSTER SHARDS (CLUSTER SLOTS on a Redis without
 * it), asked of a seed synchronously at startup and of any reachable node afterwards:
 * periodically (every REFRESH_EVERY_MS, or REFRESH_DEGRADED_MS while a slot has no
 * master or a master is down), after a MOVED or a READONLY, and when a master's
 * connections go down or come up. Never two refreshes at once, at most one per
 * REFRESH_MIN_MS. Each master met gets a node with its own pool (which loads the
 * script there: NOSCRIPT is per node, and a promoted replica gets it on its first call).
 * A change of the map is logged once, with the masters and their slots.
 *
 * Redirects. A request a node call could not serve (the script answered REDIRECT: none
 * of it written; or "non local key" after a write: its charge may be counted twice, once
 * on each side of a migrating slot, never lost) is sent again alone, its keys declared,
 * so that Redis checks them before running anything: MOVED updates the slot's owner at
 * once and resends there (and refreshes the map); ASK resends to the target after ASKING;
 * TRYAGAIN (a migration with the keys split) and READONLY (a master turned replica) wait
 * RETRY_MS and resend; CLUSTERDOWN and anything else is answered STORE_UNAVAILABLE (the
 * policy's on_store_error). A request follows at most RL_REDIS_MAX_HOPS redirects, and is
 * answered at its deadline (command_timeout_ms) wherever it is. A call's reply that was
 * lost (connection gone, timeout) is never replayed: a script call is not idempotent.
 */
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "redis_pool.h"
#include "redis_script.h"
#include "store_redis_int.h"

#define REFRESH_MIN_MS 100      /* at most one refresh per this */
#define REFRESH_EVERY_MS 5000   /* the periodic refresh */
#define REFRESH_DEGRADED_MS 500 /* the same while slots lack a working master */
#define RETRY_MS 20             /* a TRYAGAIN's (or READONLY's) pause */
#define REFRESH_DEADLINE_MS                                                                        \
    1000 /* a topology question unanswered this long (or                                           \
            command_timeout_ms if longer) is given up on */

static void refresh_now(redis_store *s);

/* ---- the node table ---- */

static int same_node(const rl_redis_node *node, const char *host, uint16_t port) {
    return node->port == port && strcmp(node->host, host) == 0;
}

// Returns the node of host:port, made (its pool connecting) if it is new; NULL if
// memory ran short or the table is full.
static rl_redis_node *node_for(redis_store *s, const char *host, uint16_t port) {
    for (size_t i = 0; i < s->node_count; i++)
        if (same_node(s->nodes[i], host, port))
            return s->nodes[i];
    if (s->node_count >= RL_REDIS_TOPO_MAX_NODES)
        return NULL;
    rl_redis_node *node = rl_redis_node_new(s, host, port, 1);
    if (node)
        rl_log_info("redis cluster: node %s added", node->addr);
    return node;
}

static int16_t node_index(const redis_store *s, const rl_redis_node *node) {
    for (size_t i = 0; i < s->node_count; i++)
        if (s->nodes[i] == node)
            return (int16_t)i;
    return -1;
}

// Returns 1 if some slot has no master, or its master's connections are down.
static int degraded(const redis_store *s) {
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        if (s->owner[slot] < 0 || !rl_redis_pool_up(s->nodes[s->owner[slot]]->pool))
            return 1;
    return 0;
}

/* ---- applying a topology ---- */

// Logs the masters and their slot ranges (once per change of the map).
static void log_map(const redis_store *s) {
    char line[1024];
    size_t len = 0;
    for (size_t i = 0; i < s->node_count && len < sizeof(line); i++) {
        const rl_redis_node *node = s->nodes[i];
        if (!node->master)
            continue;
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s (%zu slots)", len ? ", " : "",
                                node->addr, node->slots);
    }
    size_t unowned = 0;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        unowned += s->owner[slot] < 0;
    rl_log_info("redis cluster: slot map changed: %s%s; %zu slots without a master",
                len ? "masters " : "no master", line, unowned);
}

// Makes s->owner what topo says. Returns RL_OK, or RL_ERR if a master's node could not
// be made (its slots stay unowned: answered STORE_UNAVAILABLE until the next refresh).
// A master that owns no slot gets no node (a node joining the cluster is one until it
// becomes a replica or gets slots; a MOVED to it makes its node then).
static int apply(redis_store *s, const rl_redis_topo *topo) {
    int16_t map[RL_REDIS_TOPO_MAX_NODES];
    bool owns[RL_REDIS_TOPO_MAX_NODES] = {false};
    int rc = RL_OK;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        if (topo->owner[slot] >= 0)
            owns[topo->owner[slot]] = true;
    for (size_t i = 0; i < topo->count; i++) {
        map[i] = -1;
        if (!topo->nodes[i].master || !topo->nodes[i].online || !owns[i])
            continue;
        rl_redis_node *node = node_for(s, topo->nodes[i].host, topo->nodes[i].port);
        map[i] = node ? node_index(s, node) : -1;
        rc = node ? rc : RL_ERR;
    }
    size_t changed = 0;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++) {
        int16_t now = topo->owner[slot] < 0 ? -1 : map[topo->owner[slot]];
        changed += now != s->owner[slot];
        s->owner[slot] = now;
    }
    for (size_t i = 0; i < s->node_count; i++)
        s->nodes[i]->slots = 0;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        if (s->owner[slot] >= 0)
            s->nodes[s->owner[slot]]->slots++;
    s->masters = 0;
    for (size_t i = 0; i < s->node_count; i++) {
        s->nodes[i]->master = s->nodes[i]->slots > 0;
        s->masters += (size_t)s->nodes[i]->master;
    }
    if (changed) {
        s->cl.topology_changes++;
        log_map(s);
    }
    return rc;
}

/* ---- refreshing ---- */

static void arm_refresh(redis_store *s, int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_del(s->refresh_timer);
    event_add(s->refresh_timer, &tv);
}

/* A topology question in flight. It is freed by its callback, which the pool always
   calls (with NULL if the connection goes); one given up on at its deadline is ignored
   then. */
typedef struct rl_redis_refresh {
    rl_redis_cmd cmd;    /* first: the pool hands it back */
    redis_store *store;  /* its store */
    rl_redis_node *node; /* the node asked */
    int slots_form;      /* CLUSTER SLOTS (a Redis without SHARDS) */
    int abandoned;       /* its deadline passed */
} refresh_ask;

// After a refresh (or a failed one): the next periodic one.
static void refresh_done(redis_store *s, int ok) {
    s->refresh = NULL;
    event_del(s->refresh_deadline);
    if (ok)
        s->cl.refreshes++;
    else
        s->cl.refresh_failures++;
    if (s->refresh_soon) {
        s->refresh_soon = 0;
        arm_refresh(s, REFRESH_MIN_MS);
    } else {
        arm_refresh(s, degraded(s) ? REFRESH_DEGRADED_MS : REFRESH_EVERY_MS);
    }
}

// Reads a CLUSTER SHARDS (or SLOTS) reply from node. Returns RL_OK if applied.
static int read_topology(redis_store *s, const rl_redis_node *node, const redisReply *reply,
                         int slots_form) {
    char err[256];
    rl_redis_topo *topo = rl_malloc(sizeof(*topo));
    if (!topo)
        return RL_ERR;
    int rc = slots_form ? rl_redis_topo_from_slots(reply, node->host, topo, err, sizeof(err))
                        : rl_redis_topo_from_shards(reply, node->host, topo, err, sizeof(err));
    if (rc != RL_OK)
        rl_redis_log_limited(s, "cluster topology from %s: %s", node->addr, err);
    else
        apply(s, topo);
    rl_free(topo);
    return rc;
}

static int send_refresh(redis_store *s, rl_redis_node *node, int slots_form);

static void on_refresh_reply(rl_redis_cmd *cmd, redisReply *reply) {
    refresh_ask *ask = (refresh_ask *)cmd;
    redis_store *s = ask->store;
    rl_redis_node *node = ask->node;
    int slots_form = ask->slots_form, abandoned = ask->abandoned;
    rl_free(ask);
    if (s->closing || abandoned)
        return;
    s->refresh = NULL;
    if (reply && reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "nknown subcommand") &&
        send_refresh(s, node, 1) == RL_OK)
        return; /* a Redis before 7.0: CLUSTER SLOTS */
    int ok = reply && reply->type != REDIS_REPLY_ERROR &&
             read_topology(s, node, reply, slots_form) == RL_OK;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        rl_redis_log_limited(s, "cluster topology from %s: %s", node->addr, reply->str);
    refresh_done(s, ok);
    if (ok && s->retry_head)
        event_active(s->retry_timer, EV_TIMEOUT, 0);
}

// The node asked did not answer in time (black-holed, or stalled): the question is given
// up on (its late answer ignored) and another node is asked soon.
static void on_refresh_deadline(evutil_socket_t fd, short what, void *arg) {
    redis_store *s = arg;
    (void)fd;
    (void)what;
    if (!s->refresh)
        return;
    rl_redis_log_limited(s, "no cluster topology from %s in time; asking another node",
                         s->refresh->node->addr);
    s->refresh->abandoned = 1;
    s->refresh_soon = 1; /* another node, after REFRESH_MIN_MS */
    refresh_done(s, 0);
}

static int send_refresh(redis_store *s, rl_redis_node *node, int slots_form) {
    static const char shards[] = "*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n";
    static const char slots[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    refresh_ask *ask = rl_calloc(1, sizeof(*ask));
    if (!ask)
        return RL_ERR;
    *ask = (refresh_ask){
        .cmd.fn = on_refresh_reply, .store = s, .node = node, .slots_form = slots_form};
    int rc = slots_form
                 ? rl_redis_pool_send(node->pool, NULL, &ask->cmd, slots, sizeof(slots) - 1)
                 : rl_redis_pool_send(node->pool, NULL, &ask->cmd, shards, sizeof(shards) - 1);
    if (rc != RL_OK) {
        rl_free(ask);
        return RL_ERR;
    }
    int64_t ms =
        s->timeout_us / 1000 > REFRESH_DEADLINE_MS ? s->timeout_us / 1000 : REFRESH_DEADLINE_MS;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    s->refresh = ask;
    s->refresh_asks++;
    event_add(s->refresh_deadline, &tv);
    return RL_OK;
}

// Returns a node to ask, in turn: a master with a READY connection, else any node with
// one.
static rl_redis_node *node_to_ask(const redis_store *s) {
    rl_redis_node *any = NULL;
    for (size_t i = 0; i < s->node_count; i++) {
        rl_redis_node *node = s->nodes[(i + s->refresh_asks) % s->node_count];
        if (rl_redis_pool_ready(node->pool) == 0)
            continue;
        if (node->master)
            return node;
        any = any ? any : node;
    }
    return any;
}

static void refresh_now(redis_store *s) {
    if (s->closing || s->refresh)
        return;
    rl_redis_node *node = node_to_ask(s);
    s->refresh_last_us = rl_clock_mono_us();
    if (!node || send_refresh(s, node, 0) != RL_OK)
        refresh_done(s, 0); /* nobody to ask now: again soon */
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    refresh_now(arg);
}

void rl_redis_cluster_refresh(redis_store *s) {
    if (!s->cluster || s->closing)
        return;
    if (s->refresh) {
        s->refresh_soon = 1;
        return;
    }
    int64_t since = (rl_clock_mono_us() - s->refresh_last_us) / 1000;
    arm_refresh(s, since >= REFRESH_MIN_MS ? 0 : REFRESH_MIN_MS - since);
}

void rl_redis_cluster_node_event(redis_store *s, rl_redis_node *node) {
    (void)node; /* a master lost or back, or a new node reachable: the map may have moved */
    rl_redis_cluster_refresh(s);
}

rl_redis_node *rl_redis_cluster_owner(redis_store *s, uint16_t slot) {
    int16_t i = s->owner[slot];
    if (i < 0) {
        rl_redis_cluster_refresh(s);
        return NULL;
    }
    return s->nodes[i];
}

/* ---- redirects ---- */

static void retry_later(redis_store *s, rl_redis_request *req) {
    req->queue_next = NULL;
    if (s->retry_tail)
        s->retry_tail->queue_next = req;
    else
        s->retry_head = req;
    s->retry_tail = req;
    if (!event_pending(s->retry_timer, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, RETRY_MS * 1000};
        event_add(s->retry_timer, &tv);
    }
}

// Resends what waits: to its slot's master, or keeps it waiting (until its deadline).
static void on_retry_timer(evutil_socket_t fd, short what, void *arg) {
    redis_store *s = arg;
    rl_redis_request *list = s->retry_head;
    (void)fd;
    (void)what;
    s->retry_head = s->retry_tail = NULL;
    while (list) {
        rl_redis_request *req = list;
        list = req->queue_next;
        rl_redis_node *node = req->answered ? NULL : rl_redis_cluster_owner(s, req->slot);
        if (req->answered)
            rl_free(req);
        else if (node && rl_redis_pool_up(node->pool))
            rl_redis_node_enqueue(node, req);
        else
            retry_later(s, req);
    }
}

// Follows MOVED or ASK (kind 1 or 2) named in error for req. Returns 1 if taken.
static int follow(redis_store *s, rl_redis_call *c, rl_redis_request *req, const char *error) {
    char host[RL_REDIS_HOST_MAX];
    int slot;
    uint16_t port;
    int kind = rl_redis_parse_redirect(error, &slot, host, sizeof(host), &port);
    if (!kind || slot != req->slot)
        return 0;
    if (host[0] == '\0')
        snprintf(host, sizeof(host), "%s", c->node->host); /* the node's own address */
    if (strcmp(host, "?") == 0) {
        rl_redis_cluster_refresh(s);
        retry_later(s, req);
        return 1;
    }
    rl_redis_node *node = node_for(s, host, port);
    if (!node)
        return 0;
    if (kind == 1) {
        s->cl.moved++;
        s->owner[slot] = node_index(s, node);
        s->masters += (size_t)!node->master; /* the next refresh counts them again */
        node->master = 1;
        rl_redis_cluster_refresh(s);
    } else {
        s->cl.ask++;
    }
    req->route = kind == 1 ? RL_ROUTE_DECLARED : RL_ROUTE_ASKING;
    if (rl_redis_pool_up(node->pool))
        rl_redis_node_enqueue(node, req);
    else
        retry_later(s, req); /* a dead master still named: wait for the map (or deadline) */
    return 1;
}

int rl_redis_cluster_redirect(redis_store *s, rl_redis_call *c, rl_redis_request *req,
                              const char *error) {
    int moved = strncmp(error, "MOVED ", 6) == 0 || strncmp(error, "ASK ", 4) == 0;
    int wait = strncmp(error, "TRYAGAIN", 8) == 0;
    int readonly = strncmp(error, "READONLY", 8) == 0;
    if (!moved && !wait && !readonly)
        return 0;
    if (!wait && ++req->hops > RL_REDIS_MAX_HOPS) {
        s->cl.hops_exhausted++;
        return 0;
    }
    if (moved)
        return follow(s, c, req, error);
    if (wait) {
        s->cl.tryagain++;
    } else {
        s->cl.readonly++;
        rl_redis_cluster_refresh(s);
    }
    req->route = RL_ROUTE_DECLARED; /* after an ASK too: the owner says again where */
    retry_later(s, req);
    return 1;
}

int rl_redis_cluster_resend(redis_store *s, rl_redis_request *req, int partial) {
    s->cl.redirected++;
    s->cl.partial += (uint64_t)partial;
    if (++req->hops > RL_REDIS_MAX_HOPS) {
        s->cl.hops_exhausted++;
        return 0;
    }
    req->route = RL_ROUTE_DECLARED; /* Redis checks declared keys before running */
    rl_redis_cluster_refresh(s);
    rl_redis_node *node = rl_redis_cluster_owner(s, req->slot);
    if (node && rl_redis_pool_up(node->pool))
        rl_redis_node_enqueue(node, req);
    else
        retry_later(s, req);
    return 1;
}

/* ---- startup ---- */

// Runs one command on c; returns the reply (free it) or NULL with the reason in err.
static redisReply *sync_run(redisContext *c, const char *what, char *err, size_t errlen,
                            const char *cmd) {
    redisReply *reply = redisCommand(c, cmd);
    if (!reply)
        snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no reply");
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s: %s", what, reply->str);
    return reply;
}

/* What a seed is asked at startup, and where the answer goes. */
typedef struct seed_ask {
    const char *host;    /* the seed's host (for nodes that name no address) */
    rl_redis_topo *topo; /* filled */
} seed_ask;

// Reads the topology over c (checked by the pool: authenticated, script loaded): CLUSTER
// SHARDS, or CLUSTER SLOTS on a Redis without it. Returns RL_OK or RL_AGAIN with the
// reason in err.
static int sync_topology(redisContext *c, void *arg, char *err, size_t errlen) {
    seed_ask *ask = arg;
    redisReply *reply = sync_run(c, "CLUSTER SHARDS", err, errlen, "CLUSTER SHARDS");
    int slots_form = reply && reply->type == REDIS_REPLY_ERROR;
    if (slots_form) {
        freeReplyObject(reply);
        reply = sync_run(c, "CLUSTER SLOTS", err, errlen, "CLUSTER SLOTS");
    }
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        return RL_AGAIN;
    }
    int rc = slots_form ? rl_redis_topo_from_slots(reply, ask->host, ask->topo, err, errlen)
                        : rl_redis_topo_from_shards(reply, ask->host, ask->topo, err, errlen);
    freeReplyObject(reply);
    return rc == RL_OK ? RL_OK : RL_AGAIN;
}

// Asks one seed for the topology, synchronously, on the connection of the pool's startup
// check (which tells a refusal, wrong password or scripting off, from an unreachable
// seed). Returns RL_OK (topo filled), RL_AGAIN (no usable answer) or RL_ERR (refused us),
// with the reason in err.
static int ask_seed(const rl_store_conf *conf, const rl_redis_addr *seed, rl_redis_topo *topo,
                    char *err, size_t errlen) {
    char sha[41];
    rl_store_conf one = *conf;
    seed_ask ask = {seed->host, topo};
    one.host = seed->host;
    one.port = seed->port;
    one.unix_path = NULL;
    return rl_redis_pool_check_then(&one, rl_redis_cluster_script, rl_redis_cluster_script_len, sha,
                                    sync_topology, &ask, err, errlen);
}

static int make_timers(redis_store *s) {
    s->owner = rl_malloc(RL_REDIS_SLOTS * sizeof(*s->owner));
    s->retry_timer = event_new(s->ev, -1, 0, on_retry_timer, s);
    s->refresh_timer = event_new(s->ev, -1, 0, on_refresh_timer, s);
    s->refresh_deadline = event_new(s->ev, -1, 0, on_refresh_deadline, s);
    if (!s->owner || !s->retry_timer || !s->refresh_timer || !s->refresh_deadline)
        return RL_ERR;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        s->owner[slot] = -1;
    return RL_OK;
}

// No seed answered: a node per seed, so that the refreshes have someone to ask.
static int start_blind(redis_store *s, const rl_store_conf *conf, const char *why) {
    rl_log_warn("redis cluster: %s; starting down (STORE_UNAVAILABLE) and asking again", why);
    for (size_t i = 0; i < conf->seed_count; i++)
        if (!rl_redis_node_new(s, conf->seeds[i].host, conf->seeds[i].port, 0))
            return RL_ERR;
    arm_refresh(s, REFRESH_DEGRADED_MS);
    return RL_OK;
}

int rl_redis_cluster_start(redis_store *s, const rl_store_conf *conf, char *err, size_t errlen) {
    rl_redis_topo *topo = rl_malloc(sizeof(*topo));
    int rc = RL_AGAIN;
    if (!topo || make_timers(s) != RL_OK) {
        rl_free(topo);
        snprintf(err, errlen, "redis store: out of memory");
        return RL_ERR;
    }
    for (size_t i = 0; i < conf->seed_count && rc == RL_AGAIN; i++)
        rc = ask_seed(conf, &conf->seeds[i], topo, err, errlen);
    if (rc == RL_OK) {
        rc = apply(s, topo) == RL_OK ? RL_OK : RL_ERR;
        if (rc != RL_OK)
            snprintf(err, errlen, "redis store: out of memory");
        s->refresh_last_us = rl_clock_mono_us();
        s->cl.refreshes++;
        arm_refresh(s, degraded(s) ? REFRESH_DEGRADED_MS : REFRESH_EVERY_MS);
    } else if (rc == RL_AGAIN) {
        rc = start_blind(s, conf, err);
    }
    rl_free(topo);
    return rc;
}

/* ---- stats and stop ---- */

// Adds node's figures: its role and slots, its connection's state, its script calls,
// the items per call, the calls that failed, and the calls' round trips (mean, max).
static void node_figures(const rl_redis_node *node, rl_store_figures *out) {
    const char *addr = node->addr;
    uint64_t mean = node->latency_calls ? node->latency_sum_us / node->latency_calls : 0;
    rl_figures_node_word(out, addr, NULL, "role", node->master ? "master" : "replica");
    rl_figures_node(out, addr, NULL, "slots", RL_FIGURE_GAUGE, node->slots);
    rl_figures_node_word(out, addr, NULL, "state", rl_redis_pool_up(node->pool) ? "up" : "down");
    rl_figures_node(out, addr, NULL, "calls", RL_FIGURE_COUNTER, node->calls);
    rl_figures_node_ratio(out, addr, NULL, "items_per_call",
                          node->calls ? (double)node->call_items / (double)node->calls : 0.0);
    rl_figures_node(out, addr, NULL, "errors", RL_FIGURE_COUNTER, node->call_errors);
    rl_figures_node(out, addr, "latency_us", "mean", RL_FIGURE_GAUGE, mean);
    rl_figures_node(out, addr, "latency_us", "max", RL_FIGURE_GAUGE,
                    node->latency_max_us > 0 ? (uint64_t)node->latency_max_us : 0);
}

void rl_redis_cluster_figures(const redis_store *s, rl_store_figures *out) {
    const rl_redis_cluster_counts *c = &s->cl;
    const struct {
        const char *name;
        uint64_t value;
    } counts[] = {{"moved", c->moved},
                  {"ask", c->ask},
                  {"tryagain", c->tryagain},
                  {"redirected", c->redirected},
                  {"redirected_after_write", c->partial},
                  {"readonly", c->readonly},
                  {"redirects_exhausted", c->hops_exhausted},
                  {"refreshes", c->refreshes},
                  {"refresh_failures", c->refresh_failures},
                  {"topology_changes", c->topology_changes},
                  {"split_requests", c->split},
                  {"refunds", c->refunds},
                  {"refund_failures", c->refund_failures}};
    size_t masters = s->masters, unowned = 0;
    for (size_t slot = 0; slot < RL_REDIS_SLOTS; slot++)
        unowned += s->owner[slot] < 0;
    rl_figures_add(out, "cluster", "masters", RL_FIGURE_GAUGE, masters);
    rl_figures_add(out, "cluster", "nodes", RL_FIGURE_GAUGE, s->node_count);
    rl_figures_add(out, "cluster", "slots_unowned", RL_FIGURE_GAUGE, unowned);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        rl_figures_add(out, "cluster", counts[i].name, RL_FIGURE_COUNTER, counts[i].value);
    for (size_t i = 0; i < s->node_count; i++)
        node_figures(s->nodes[i], out);
}

void rl_redis_cluster_stop(redis_store *s) {
    while (s->retry_head) {
        rl_redis_request *req = s->retry_head;
        s->retry_head = req->queue_next;
        rl_free(req); /* answered by the store's free */
    }
    s->retry_tail = NULL;
    if (s->retry_timer)
        event_free(s->retry_timer);
    if (s->refresh_timer)
        event_free(s->refresh_timer);
    if (s->refresh_deadline)
        event_free(s->refresh_deadline);
    s->retry_timer = s->refresh_timer = s->refresh_deadline = NULL;
    if (s->refresh)
        s->refresh->abandoned = 1; /* freed by its callback when the pools go */
}
