/*
 * redis_sentinel.c: the Sentinel client (see redis_sentinel.h for the flow).
 *
 * Every exchange is an "ask": a link (redis_link.h) to one peer, AUTH when credentials
 * are set, one command, its reply judged by a judge function, all within timeout_ms; the
 * link is closed after it. The startup resolve runs asks on a private event_base; the
 * follower runs them on the daemon's: one poll ask (a Sentinel) and one confirm ask (a
 * candidate master) at a time. The subscription is one long-lived link.
 */
#include "redis_sentinel.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "redis_link.h"
#include "rlproto.h"

#define POLL_EVERY_MS 1000       /* a Sentinel is asked this often */
#define REFRESH_MIN_US 100000    /* asks at most this often on refresh */
#define BACKOFF_MIN_MS 500       /* a failed Sentinel waits this long first */
#define BACKOFF_MAX_MS 10000     /* doubling up to this */
#define PING_EVERY_US 5000000    /* the subscription is checked this often */
#define HOST_MAX 256             /* a host name's bytes, NUL included */
#define CHANNEL "+switch-master" /* the channel followed */

typedef enum verdict {
    V_OK,          /* the answer wanted */
    V_UNKNOWN,     /* a valid answer that does not help (no such master, not a master) */
    V_REFUSED,     /* an error reply: credentials or command refused */
    V_BROKEN,      /* a reply that breaks the protocol or the command's contract */
    V_UNREACHABLE, /* no answer: cannot connect, closed, timed out */
} verdict;

typedef struct credentials {
    const char *user; /* ACL user, or NULL */
    const char *pass; /* password, or NULL: no AUTH */
} credentials;

typedef struct ask ask;
typedef verdict judge_fn(ask *a, const redisReply *reply);

/* One exchange with one peer. */
struct ask {
    rl_redis_link *link;      /* while in flight */
    int auth_left;            /* AUTH's reply is still awaited */
    judge_fn *judge;          /* judges the command's reply */
    verdict v;                /* the outcome, once done */
    char why[256];            /* what went wrong, once done */
    char host[HOST_MAX];      /* the peer (confirm), or the address answered (query) */
    uint16_t port;            /* likewise */
    int done;                 /* the outcome is known */
    void (*done_fn)(ask *a);  /* called once done (not when ask_start fails) */
    rl_redis_sentinel *owner; /* the follower, or NULL */
};

/* ---- judging replies ---- */

// Returns 1 if host is a plain host name or IP address: 1..255 bytes of letters, digits
// and . - _ : % (IPv6 and its zone), and no leading '-'.
static int valid_host(const char *str, size_t len) {
    if (len == 0 || len >= HOST_MAX || str[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = str[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '%'))
            return 0;
    }
    return 1;
}

// Parses a port: 1..5 decimal digits, 1..65535. Returns 1 with *port set, or 0.
static int parse_port(const char *str, size_t len, uint16_t *port) {
    unsigned value = 0;
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (str[i] < '0' || str[i] > '9')
            return 0;
        value = value * 10 + (unsigned)(str[i] - '0');
    }
    if (value == 0 || value > 65535)
        return 0;
    *port = (uint16_t)value;
    return 1;
}

// Copies text for a message: at most 100 bytes, anything unprintable as '?'.
static void printable(char *out, size_t outlen, const char *str, size_t len) {
    size_t n = len < outlen - 1 ? len : outlen - 1;
    n = n > 100 ? 100 : n;
    for (size_t i = 0; i < n; i++)
        out[i] = str[i] >= 0x20 && str[i] < 0x7f ? str[i] : '?';
    out[n] = '\0';
}

static int is_string(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static verdict error_verdict(ask *a, const char *what, const redisReply *r) {
    static const char *const transient[] = {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"};
    char text[128];
    printable(text, sizeof(text), r->str, r->len);
    snprintf(a->why, sizeof(a->why), "%s refused: %s", what, text);
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(r->str, transient[i], strlen(transient[i])) == 0)
            return V_UNKNOWN;
    return V_REFUSED;
}

// Judges SENTINEL get-master-addr-by-name: nil (unknown master) or [host, port].
static verdict judge_addr(ask *a, const redisReply *r) {
    if (r->type == REDIS_REPLY_NIL) {
        snprintf(a->why, sizeof(a->why), "does not know the master");
        return V_UNKNOWN;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_string(r->element[0]) ||
        !is_string(r->element[1])) {
        snprintf(a->why, sizeof(a->why), "malformed answer to get-master-addr-by-name");
        return V_BROKEN;
    }
    const redisReply *host = r->element[0], *port = r->element[1];
    if (!valid_host(host->str, host->len) || !parse_port(port->str, port->len, &a->port)) {
        snprintf(a->why, sizeof(a->why), "answered an invalid address");
        return V_BROKEN;
    }
    memcpy(a->host, host->str, host->len);
    a->host[host->len] = '\0';
    return V_OK;
}

// Judges ROLE: an array whose first element is "master".
static verdict judge_role(ask *a, const redisReply *r) {
    char role[40];
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_string(r->element[0])) {
        snprintf(a->why, sizeof(a->why), "malformed answer to ROLE");
        return V_BROKEN;
    }
    if (r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0)
        return V_OK;
    printable(role, sizeof(role), r->element[0]->str, r->element[0]->len);
    snprintf(a->why, sizeof(a->why), "is not a master (role %s)", role);
    return V_UNKNOWN;
}

/* ---- asks ---- */

static void ask_finish(ask *a, verdict v, const char *why) {
    a->link = NULL;
    a->v = v;
    a->done = 1;
    if (why)
        snprintf(a->why, sizeof(a->why), "%s", why);
    if (a->done_fn)
        a->done_fn(a);
}

static void on_ask_link(void *arg, rl_redis_link *link, const redisReply *reply, const char *why) {
    ask *a = arg;
    verdict v;
    if (!reply) {
        ask_finish(a, V_UNREACHABLE, why);
        return;
    }
    if (a->auth_left) {
        a->auth_left = 0;
        if (reply->type == REDIS_REPLY_STATUS)
            return; /* the command's reply follows */
        v = V_BROKEN;
        if (reply->type == REDIS_REPLY_ERROR)
            v = error_verdict(a, "AUTH", reply);
        else
            snprintf(a->why, sizeof(a->why), "malformed answer to AUTH");
    } else {
        v = reply->type == REDIS_REPLY_ERROR ? error_verdict(a, "the command", reply)
                                             : a->judge(a, reply);
    }
    rl_redis_link_free(link); /* after this call: no more replies */
    ask_finish(a, v, NULL);
}

static int send_auth(rl_redis_link *link, credentials creds) {
    const char *argv[3] = {"AUTH", creds.user, creds.pass};
    size_t lens[3] = {4, creds.user ? strlen(creds.user) : 0, creds.pass ? strlen(creds.pass) : 0};
    if (!creds.pass)
        return 0;
    if (!creds.user) {
        argv[1] = argv[2];
        lens[1] = lens[2];
    }
    return rl_redis_link_send(link, creds.user ? 3 : 2, argv, lens) == RL_OK ? 1 : -1;
}

// Starts an ask of argv to host:port. Returns RL_OK (done_fn will be called), or RL_ERR
// with a done as V_UNREACHABLE and the reason in a->why (done_fn is not called).
static int ask_start(ask *a, struct event_base *base, const char *host, uint16_t port,
                     credentials creds, int argc, const char **argv, judge_fn *judge,
                     int timeout_ms) {
    size_t lens[4];
    a->link = NULL;
    a->v = V_UNREACHABLE;
    a->done = 0;
    a->judge = judge;
    snprintf(a->host, sizeof(a->host), "%s", host);
    a->port = port;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rl_redis_link *link =
        rl_redis_link_open(base, host, port, on_ask_link, a, a->why, sizeof(a->why));
    int auth = link ? send_auth(link, creds) : 0;
    if (link && (auth < 0 || rl_redis_link_send(link, argc, argv, lens) != RL_OK)) {
        snprintf(a->why, sizeof(a->why), "out of memory");
        rl_redis_link_free(link);
        link = NULL;
    }
    if (!link) {
        a->done = 1;
        return RL_ERR;
    }
    a->auth_left = auth;
    a->link = link;
    rl_redis_link_deadline(link, timeout_ms);
    return RL_OK;
}

static void ask_cancel(ask *a) {
    rl_redis_link_free(a->link);
    a->link = NULL;
}

// Runs one ask on a private loop until it is done (its deadline bounds it).
static verdict ask_sync(ask *a, const char *host, uint16_t port, credentials creds, int argc,
                        const char **argv, judge_fn *judge, int timeout_ms) {
    struct event_base *base = event_base_new();
    memset(a, 0, sizeof(*a));
    if (!base) {
        snprintf(a->why, sizeof(a->why), "out of memory");
        return V_UNREACHABLE;
    }
    if (ask_start(a, base, host, port, creds, argc, argv, judge, timeout_ms) == RL_OK)
        while (!a->done && event_base_loop(base, EVLOOP_ONCE) == 0)
            ;
    if (!a->done) {
        ask_cancel(a);
        snprintf(a->why, sizeof(a->why), "event loop failed");
        a->v = V_UNREACHABLE;
    }
    event_base_free(base);
    return a->v;
}

/* ---- startup ---- */

static int timeout_of(const rl_store_conf *conf) {
    return conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms
                                        : RL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
}

static credentials sentinel_creds(const rl_store_conf *conf) {
    return (credentials){conf->sentinel_username, conf->sentinel_password};
}

static credentials master_creds(const rl_store_conf *conf) {
    return (credentials){conf->username, conf->password};
}

// Asks Sentinel i, then confirms its answer. Returns the verdict, with the reason in err.
static verdict resolve_one(const rl_store_conf *conf, size_t i, ask *m, char *err, size_t errlen) {
    const rl_redis_addr *node = &conf->sentinels[i];
    const char *query[3] = {"SENTINEL", "get-master-addr-by-name", conf->sentinel_master};
    const char *role[1] = {"ROLE"};
    ask q;
    verdict v = ask_sync(&q, node->host, node->port, sentinel_creds(conf), 3, query, judge_addr,
                         timeout_of(conf));
    if (v != V_OK) {
        snprintf(err, errlen, "sentinel %s:%u: %s", node->host, (unsigned)node->port, q.why);
        return v;
    }
    v = ask_sync(m, q.host, q.port, master_creds(conf), 1, role, judge_role, timeout_of(conf));
    if (v != V_OK)
        snprintf(err, errlen, "master %s at %s:%u (named by sentinel %s:%u): %s",
                 conf->sentinel_master, q.host, (unsigned)q.port, node->host, (unsigned)node->port,
                 m->why);
    return v;
}

int rl_redis_sentinel_resolve(const rl_store_conf *conf, char *host, size_t hostlen, uint16_t *port,
                              char *err, size_t errlen) {
    char why[600], refusal[600] = "";
    snprintf(why, sizeof(why), "no sentinel configured");
    for (size_t i = 0; conf->sentinel_master && i < conf->sentinel_count; i++) {
        ask m;
        verdict v = resolve_one(conf, i, &m, why, sizeof(why));
        if (v == V_OK && strlen(m.host) < hostlen) {
            snprintf(host, hostlen, "%s", m.host);
            *port = m.port;
            return RL_OK;
        }
        if (v == V_REFUSED && !refusal[0])
            snprintf(refusal, sizeof(refusal), "%s", why);
    }
    snprintf(err, errlen, "redis store: %s", refusal[0] ? refusal : why);
    return refusal[0] ? RL_ERR : RL_AGAIN;
}

/* ---- the follower ---- */

/* One Sentinel as the follower sees it. */
typedef struct node {
    char *host;           /* its address (owned) */
    uint16_t port;        /* its port */
    int64_t retry_at_us;  /* not asked before this (backoff after a failure) */
    int backoff_ms;       /* the next backoff */
    int reachable;        /* its last exchange succeeded */
    char logged[200];     /* the last fault of its polls logged */
    char sub_logged[200]; /* the last fault of its subscriptions logged */
} node;

struct rl_redis_sentinel {
    struct event_base *base;        /* the loop */
    rl_redis_master_fn *fn;         /* the owner's hook */
    void *arg;                      /* its argument */
    char *name;                     /* the master's name (owned) */
    char *strings[4];               /* owned credentials: sentinel user, pass, master user, pass */
    credentials sentinel_creds;     /* for the Sentinels (points into strings) */
    credentials master_creds;       /* for the master (likewise) */
    int timeout_ms;                 /* every exchange's deadline */
    node *nodes;                    /* the Sentinels */
    size_t count;                   /* how many */
    char host[HOST_MAX];            /* the master handed over */
    uint16_t port;                  /* its port */
    int known;                      /* a master has been handed over (or was given) */
    char master_text[HOST_MAX + 8]; /* "host:port" for the figures */
    struct event *poll_timer;       /* the next poll */
    ask poll;                       /* the poll in flight */
    int polling;                    /* poll is in flight */
    size_t poll_node;               /* the Sentinel it asks */
    size_t poll_next;               /* the Sentinel asked next (round-robin) */
    int64_t last_ask_us;            /* when the last poll started */
    ask confirm;                    /* the candidate being confirmed */
    int confirming;                 /* confirm is in flight */
    rl_redis_link *sub;             /* the subscription, or NULL */
    size_t sub_node;                /* the Sentinel it is on */
    int sub_auth;                   /* AUTH's reply is awaited on it */
    int sub_ready;                  /* SUBSCRIBE confirmed */
    int sub_ping_out;               /* a PING awaits its pong */
    int64_t sub_ping_us;            /* when the last PING was sent */
    int sub_backoff_ms;             /* the wait before subscribing again */
    struct event *sub_timer;        /* subscribes again */
    uint64_t switches;              /* changes of a known master's address */
    uint64_t resolutions;           /* addresses given by the Sentinels */
    uint64_t errors;                /* failed exchanges and refused candidates */
    char logged[300];               /* the last candidate fault logged */
};

static void add_ms(struct event *ev, int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

static void fault(rl_redis_sentinel *s, char *last, size_t lastlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Logs a fault once per text in a row: last holds the text logged last (lastlen bytes).
static void fault(rl_redis_sentinel *s, char *last, size_t lastlen, const char *fmt, ...) {
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    s->errors++;
    if (strncmp(text, last, lastlen - 1) != 0)
        rl_log_warn("redis store: sentinel: %s", text);
    snprintf(last, lastlen, "%s", text);
}

static void node_failed(node *n) {
    n->reachable = 0;
    n->retry_at_us = rl_clock_mono_us() + (int64_t)n->backoff_ms * 1000;
    n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
}

static void node_answered(node *n) {
    n->reachable = 1;
    n->backoff_ms = BACKOFF_MIN_MS;
    n->retry_at_us = 0;
}

static void adopt(rl_redis_sentinel *s, const char *host, uint16_t port) {
    char was[HOST_MAX + 8];
    snprintf(was, sizeof(was), "%s", s->known ? s->master_text : "none");
    s->switches += s->known ? 1 : 0;
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    s->known = 1;
    snprintf(s->master_text, sizeof(s->master_text), "%s:%u", host, (unsigned)port);
    rl_log_info("redis store: sentinel: master %s is now %s (was %s)", s->name, s->master_text,
                was);
    s->fn(s->arg, s->host, s->port);
}

static void confirm_done(ask *a) {
    rl_redis_sentinel *s = a->owner;
    s->confirming = 0;
    if (a->v == V_OK)
        adopt(s, a->host, a->port);
    else
        fault(s, s->logged, sizeof(s->logged), "%s:%u named for master %s: %s", a->host,
              (unsigned)a->port, s->name, a->why);
}

// A Sentinel named host:port: confirm it unless it is the master already or being confirmed.
static void candidate(rl_redis_sentinel *s, const char *host, uint16_t port) {
    const char *role[1] = {"ROLE"};
    s->resolutions++;
    if (s->known && s->port == port && strcmp(s->host, host) == 0)
        return;
    if (s->confirming && s->confirm.port == port && strcmp(s->confirm.host, host) == 0)
        return;
    if (s->confirming)
        ask_cancel(&s->confirm);
    s->confirm.done_fn = confirm_done;
    s->confirm.owner = s;
    s->confirming = ask_start(&s->confirm, s->base, host, port, s->master_creds, 1, role,
                              judge_role, s->timeout_ms) == RL_OK;
    if (!s->confirming)
        fault(s, s->logged, sizeof(s->logged), "%s:%u named for master %s: %s", host,
              (unsigned)port, s->name, s->confirm.why);
}

/* ---- polling ---- */

// Returns the next Sentinel to ask (round-robin, past its backoff), or -1.
static long pick_node(rl_redis_sentinel *s) {
    int64_t now = rl_clock_mono_us();
    for (size_t k = 0; k < s->count; k++) {
        size_t i = (s->poll_next + k) % s->count;
        if (s->nodes[i].retry_at_us <= now) {
            s->poll_next = (i + 1) % s->count;
            return (long)i;
        }
    }
    return -1;
}

// Arms the next poll: a second after the last one started, or at once (skip = 1: the
// Sentinel asked failed, ask the next), but never before a backoff allows.
static void schedule_poll(rl_redis_sentinel *s, int skip) {
    int64_t now = rl_clock_mono_us(), at = skip ? now : s->last_ask_us + POLL_EVERY_MS * 1000;
    int64_t earliest = INT64_MAX;
    for (size_t i = 0; i < s->count; i++)
        earliest = s->nodes[i].retry_at_us < earliest ? s->nodes[i].retry_at_us : earliest;
    at = at > earliest ? at : earliest;
    add_ms(s->poll_timer, at > now ? (at - now + 999) / 1000 : 0);
}

static void poll_done(ask *a) {
    rl_redis_sentinel *s = a->owner;
    node *n = &s->nodes[s->poll_node];
    s->polling = 0;
    if (a->v == V_OK || a->v == V_UNKNOWN)
        node_answered(n);
    else
        node_failed(n);
    if (a->v == V_OK)
        candidate(s, a->host, a->port);
    else
        fault(s, n->logged, sizeof(n->logged), "sentinel %s:%u: %s", n->host, (unsigned)n->port,
              a->why);
    schedule_poll(s, a->v != V_OK && a->v != V_UNKNOWN);
}

static void poll_start(rl_redis_sentinel *s) {
    const char *query[3] = {"SENTINEL", "get-master-addr-by-name", s->name};
    long i = s->polling ? -1 : pick_node(s);
    if (i < 0) {
        if (!s->polling)
            schedule_poll(s, 0);
        return;
    }
    node *n = &s->nodes[i];
    s->poll_node = (size_t)i;
    s->last_ask_us = rl_clock_mono_us();
    s->poll.done_fn = poll_done;
    s->poll.owner = s;
    s->polling = ask_start(&s->poll, s->base, n->host, n->port, s->sentinel_creds, 3, query,
                           judge_addr, s->timeout_ms) == RL_OK;
    if (!s->polling)
        poll_done(&s->poll);
}

static void sub_ping(rl_redis_sentinel *s);

static void on_poll_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sub_ping(arg);
    poll_start(arg);
}

void rl_redis_sentinel_refresh(rl_redis_sentinel *s) {
    if (!s || s->polling)
        return;
    int64_t wait_us = s->last_ask_us + REFRESH_MIN_US - rl_clock_mono_us();
    add_ms(s->poll_timer, wait_us > 0 ? (wait_us + 999) / 1000 : 0);
}

/* ---- the subscription ---- */

static void sub_failed(rl_redis_sentinel *s, const char *why) {
    node *n = &s->nodes[s->sub_node];
    fault(s, n->sub_logged, sizeof(n->sub_logged), "subscription on %s:%u: %s", n->host,
          (unsigned)n->port, why);
    n->reachable = 0;
    s->sub_ready = 0;
    s->sub_ping_out = 0;
    s->sub_node = (s->sub_node + 1) % s->count;
    add_ms(s->sub_timer, s->sub_backoff_ms);
    s->sub_backoff_ms =
        s->sub_backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->sub_backoff_ms * 2;
}

static void sub_drop(rl_redis_sentinel *s, const char *why) {
    rl_redis_link_free(s->sub);
    s->sub = NULL;
    sub_failed(s, why);
}

// Handles "<name> <old ip> <old port> <new ip> <new port>" (the name may hold spaces).
// Returns 0 if it is malformed.
static int switch_message(rl_redis_sentinel *s, const char *text, size_t len) {
    const char *field[4], *end = text + len;
    size_t flen[4];
    for (int k = 3; k >= 0; k--) {
        const char *space = end;
        while (space > text && space[-1] != ' ')
            space--;
        if (space == text)
            return 0; /* fewer than five fields */
        field[k] = space;
        flen[k] = (size_t)(end - space);
        end = space - 1;
    }
    uint16_t port;
    if (!valid_host(field[2], flen[2]) || !parse_port(field[3], flen[3], &port))
        return 0;
    if ((size_t)(end - text) != strlen(s->name) || memcmp(text, s->name, strlen(s->name)) != 0)
        return 1; /* another master's */
    char host[HOST_MAX];
    memcpy(host, field[2], flen[2]);
    host[flen[2]] = '\0';
    candidate(s, host, port);
    return 1;
}

static int str_is(const redisReply *r, const char *text) {
    return is_string(r) && r->len == strlen(text) && memcmp(r->str, text, r->len) == 0;
}

// Judges one reply on the subscription. Returns NULL, or what is wrong.
static const char *sub_reply(rl_redis_sentinel *s, const redisReply *r) {
    if (s->sub_auth) {
        s->sub_auth = 0;
        return r->type == REDIS_REPLY_STATUS ? NULL : "AUTH refused or malformed";
    }
    if (r->type == REDIS_REPLY_ERROR)
        return "SUBSCRIBE refused";
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_string(r->element[0]))
        return "malformed reply";
    if (str_is(r->element[0], "pong")) {
        s->sub_ping_out = 0;
        rl_redis_link_deadline(s->sub, -1);
        return NULL;
    }
    if (r->elements != 3 || !str_is(r->element[1], CHANNEL))
        return "malformed reply";
    if (str_is(r->element[0], "subscribe") && r->element[2]->type == REDIS_REPLY_INTEGER) {
        s->sub_ready = 1;
        s->sub_backoff_ms = BACKOFF_MIN_MS;
        s->nodes[s->sub_node].reachable = 1;
        rl_redis_link_deadline(s->sub, -1);
        return NULL;
    }
    if (str_is(r->element[0], "message") && is_string(r->element[2]) &&
        switch_message(s, r->element[2]->str, r->element[2]->len))
        return NULL;
    return "malformed message";
}

static void on_sub_link(void *arg, rl_redis_link *link, const redisReply *reply, const char *why) {
    rl_redis_sentinel *s = arg;
    if (link != s->sub)
        return;
    if (!reply) {
        s->sub = NULL;
        sub_failed(s, why);
        return;
    }
    const char *wrong = sub_reply(s, reply);
    if (wrong)
        sub_drop(s, wrong);
}

static void sub_start(rl_redis_sentinel *s) {
    node *n = &s->nodes[s->sub_node];
    const char *argv[2] = {"SUBSCRIBE", CHANNEL};
    size_t lens[2] = {9, strlen(CHANNEL)};
    char why[256];
    s->sub = rl_redis_link_open(s->base, n->host, n->port, on_sub_link, s, why, sizeof(why));
    if (!s->sub) {
        sub_failed(s, why);
        return;
    }
    int auth = send_auth(s->sub, s->sentinel_creds);
    if (auth < 0 || rl_redis_link_send(s->sub, 2, argv, lens) != RL_OK) {
        sub_drop(s, "out of memory");
        return;
    }
    s->sub_auth = auth;
    rl_redis_link_subscribed(s->sub);
    rl_redis_link_deadline(s->sub, s->timeout_ms);
}

static void sub_ping(rl_redis_sentinel *s) {
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    int64_t now = rl_clock_mono_us();
    if (!s->sub || !s->sub_ready || s->sub_ping_out || now - s->sub_ping_us < PING_EVERY_US)
        return;
    s->sub_ping_us = now;
    if (rl_redis_link_send(s->sub, 1, argv, lens) != RL_OK) {
        sub_drop(s, "out of memory");
        return;
    }
    s->sub_ping_out = 1;
    rl_redis_link_deadline(s->sub, s->timeout_ms);
}

static void on_sub_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sub_start(arg);
}

/* ---- life ---- */

static int copy_conf(rl_redis_sentinel *s, const rl_store_conf *conf) {
    const char *from[5] = {conf->sentinel_username, conf->sentinel_password, conf->username,
                           conf->password, conf->sentinel_master};
    for (int i = 0; i < 5; i++) {
        char **to = i < 4 ? &s->strings[i] : &s->name;
        if (from[i] && !(*to = rl_strndup(from[i], strlen(from[i]))))
            return RL_ERR;
    }
    s->sentinel_creds = (credentials){s->strings[0], s->strings[1]};
    s->master_creds = (credentials){s->strings[2], s->strings[3]};
    s->timeout_ms = timeout_of(conf);
    s->nodes = rl_calloc(conf->sentinel_count, sizeof(node));
    if (!s->nodes || !s->name)
        return RL_ERR;
    for (size_t i = 0; i < conf->sentinel_count; i++, s->count++) {
        node *n = &s->nodes[i];
        if (!(n->host = rl_strndup(conf->sentinels[i].host, strlen(conf->sentinels[i].host))))
            return RL_ERR;
        n->port = conf->sentinels[i].port;
        n->backoff_ms = BACKOFF_MIN_MS;
    }
    return RL_OK;
}

rl_redis_sentinel *rl_redis_sentinel_new(struct event_base *base, const rl_store_conf *conf,
                                         const char *host, uint16_t port, rl_redis_master_fn *fn,
                                         void *arg) {
    if (conf->sentinel_count == 0 || !conf->sentinel_master)
        return NULL;
    rl_redis_sentinel *s = rl_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    s->fn = fn;
    s->arg = arg;
    s->sub_backoff_ms = BACKOFF_MIN_MS;
    s->poll_timer = event_new(base, -1, 0, on_poll_timer, s);
    s->sub_timer = event_new(base, -1, 0, on_sub_timer, s);
    if (!s->poll_timer || !s->sub_timer || copy_conf(s, conf) != RL_OK) {
        rl_redis_sentinel_free(s);
        return NULL;
    }
    if (host && strlen(host) < sizeof(s->host)) {
        snprintf(s->host, sizeof(s->host), "%s", host);
        s->port = port;
        s->known = 1;
        snprintf(s->master_text, sizeof(s->master_text), "%s:%u", host, (unsigned)port);
    }
    s->last_ask_us = rl_clock_mono_us() - POLL_EVERY_MS * 1000;
    add_ms(s->sub_timer, 0);
    add_ms(s->poll_timer, s->known ? POLL_EVERY_MS : 0);
    return s;
}

void rl_redis_sentinel_figures(const rl_redis_sentinel *s, rl_store_figures *out) {
    uint64_t reachable = 0;
    for (size_t i = 0; i < s->count; i++)
        reachable += (uint64_t)s->nodes[i].reachable;
    rl_figures_word(out, "sentinel", "master", s->known ? s->master_text : "none");
    rl_figures_word(out, "sentinel", "master_name", s->name);
    rl_figures_add(out, "sentinel", "switches", RL_FIGURE_COUNTER, s->switches);
    rl_figures_add(out, "sentinel", "resolutions", RL_FIGURE_COUNTER, s->resolutions);
    rl_figures_add(out, "sentinel", "errors", RL_FIGURE_COUNTER, s->errors);
    rl_figures_add(out, "sentinel", "sentinels", RL_FIGURE_GAUGE, s->count);
    rl_figures_add(out, "sentinel", "sentinels_reachable", RL_FIGURE_GAUGE, reachable);
}

void rl_redis_sentinel_free(rl_redis_sentinel *s) {
    if (!s)
        return;
    ask_cancel(&s->poll);
    ask_cancel(&s->confirm);
    rl_redis_link_free(s->sub);
    if (s->poll_timer)
        event_free(s->poll_timer);
    if (s->sub_timer)
        event_free(s->sub_timer);
    for (size_t i = 0; i < s->count; i++)
        rl_free(s->nodes[i].host);
    rl_free(s->nodes);
    for (int i = 0; i < 4; i++)
        rl_free(s->strings[i]);
    rl_free(s->name);
    rl_free(s);
}
