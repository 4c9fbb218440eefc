/*
 * http.c: the HTTP endpoint on evhttp.
 *
 *   evhttp --request--> route (path table) --> /check, /auth: parse query and headers
 *   --> rl_request (CHECK, on the stack) --rl_engine_handle--> engine --on_decision-->
 *   status + headers (http_headers.c) + body --> evhttp_send_reply
 *
 * A decision may be answered later (Redis): the request's `call` lives on the heap
 * until on_decision. evhttp keeps a request it handed out alive until it is answered,
 * even if the client went away (it then frees it in evhttp_send_reply).
 */
#include "http.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "listen.h"
#include "log.h"
#include "http_conns.h"
#include "http_headers.h"
#include "http_query.h"
#include "metrics.h"

#define MAX_HEADERS_BYTES 8192 /* request line and headers */
#define MAX_BODY_BYTES 4096
#define MAX_URI_BYTES 4096
#define TIMEOUT_S 30

typedef struct http_listener {
    struct http_listener *next;        /* next listener */
    char *address;                     /* as configured (owned) */
    struct evhttp_bound_socket *bound; /* evhttp's handle (owned by evhttp) */
    int staged;                        /* opened by the last prepare, not committed */
    struct sockaddr_storage local;     /* the bound address: tells its requests apart */
    rl_listener_conf *rules;           /* its operations and token (a copy, owned) */
    rl_listener_conf *next_rules;      /* those of the config being applied, or NULL */
} http_listener;

struct rl_http {
    struct event_base *base;  /* the loop */
    rl_engine *engine;        /* decisions */
    struct evhttp *evh;       /* the server */
    http_listener *listeners; /* open listeners */
    uint32_t next_id;         /* request ids given to the engine */
    size_t in_flight;         /* requests the engine has not answered yet */
    rl_http_conns *conns;     /* open connections: cap, header deadline (owned) */
    int stopping;             /* rl_http_close was called */
    uint64_t responses[6];    /* answers by status class (index: code / 100) */
};

/* What a request asked for, while the engine decides. */
typedef enum call_kind {
    CALL_CHECK, /* /check: 429 when denied */
    CALL_AUTH,  /* /auth: 403 when denied */
} call_kind;

typedef struct http_call {
    rl_http *http;                      /* owner */
    struct evhttp_request *req;         /* the request to answer */
    call_kind kind;                     /* what to answer */
    char policy[RL_MAX_POLICY_LEN + 1]; /* the policy, for headers and messages */
} http_call;

static const char *const param_headers[RL_PARAM_COUNT] = {"X-RateLimit-Policy", "X-RateLimit-Key",
                                                          "X-RateLimit-Cost"};

/* ---- answers ---- */

static const char *reason_phrase(int code) {
    static const struct {
        int code;           /* status */
        const char *phrase; /* its reason phrase */
    } phrases[] = {{200, "OK"},
                   {400, "Bad Request"},
                   {401, "Unauthorized"},
                   {403, "Forbidden"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {414, "URI Too Long"},
                   {429, "Too Many Requests"},
                   {500, "Internal Server Error"},
                   {503, "Service Unavailable"}};
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (phrases[i].code == code)
            return phrases[i].phrase;
    return NULL;
}

// The connection closes once this reply is out (during shutdown, and after a failed
// authentication: one guess per connection), and is counted until then (rl_http_owed).
// A client that already left has no connection.
static void close_after_reply(rl_http *h, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    rl_http_conns_close_after(h->conns, req);
}

static void send_reply(rl_http *h, struct evhttp_request *req, int code, const char *type,
                       struct evbuffer *body) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", type);
    evhttp_add_header(out, "Cache-Control", "no-store");
    h->responses[code / 100 < 6 ? code / 100 : 0]++;
    if (h->stopping)
        close_after_reply(h, req);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        body = NULL; /* evhttp sends it on a Connection: close request otherwise */
    evhttp_send_reply(req, code, reason_phrase(code), body);
}

// Answers with a text body (a line) and code.
static void reply_text(rl_http *h, struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_text(rl_http *h, struct evhttp_request *req, int code, const char *fmt, ...) {
    struct evbuffer *body = evbuffer_new();
    va_list ap;
    va_start(ap, fmt);
    if (body)
        evbuffer_add_vprintf(body, fmt, ap);
    va_end(ap);
    if (body)
        evbuffer_add(body, "\n", 1);
    send_reply(h, req, code, "text/plain; charset=utf-8", body);
    if (body)
        evbuffer_free(body);
}

// Adds the rate-limit headers of decision r (proto/HEADERS.md).
static void decision_headers(struct evkeyvalq *out, const char *policy, const rl_result *r) {
    rl_http_headers h;
    rl_http_headers_of(&h, policy, strlen(policy), r);
    for (size_t i = 0; i < h.count; i++)
        evhttp_add_header(out, h.name[i], h.value[i]);
}

static void reply_decision(http_call *call, const rl_result *r) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(call->req);
    int allowed = r->status == RL_ST_ALLOWED;
    decision_headers(out, call->policy, r);
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add_printf(body,
                            "{\"allowed\":%s,\"limit\":%" PRIu32 ",\"remaining\":%" PRIu32
                            ",\"reset_after_ms\":%" PRIu32 ",\"retry_after_ms\":%" PRIu32
                            ",\"window_ms\":%" PRIu32 "}\n",
                            allowed ? "true" : "false", r->limit, r->remaining, r->reset_after_ms,
                            r->retry_after_ms, r->window_ms);
    int code = allowed ? 200 : call->kind == CALL_AUTH ? 403 : 429;
    send_reply(call->http, call->req, code, "application/json", body);
    if (body)
        evbuffer_free(body);
}

// Answers an error status of a decision: 400 naming the parameter, 503 or 500.
static void reply_status(http_call *call, rl_status st) {
    rl_http *h = call->http;
    struct evhttp_request *req = call->req;
    switch (st) {
    case RL_ST_UNKNOWN_POLICY:
        reply_text(h, req, 400, "policy: no policy named \"%s\"", call->policy);
        break;
    case RL_ST_KEY_EMPTY:
        reply_text(h, req, 400, "key: must not be empty");
        break;
    case RL_ST_KEY_TOO_LONG:
        reply_text(h, req, 400, "key: longer than the daemon's limits.max_key");
        break;
    case RL_ST_COST_INVALID:
        reply_text(h, req, 400, "cost: must be 1 or more");
        break;
    case RL_ST_COST_TOO_LARGE:
        reply_text(h, req, 400, "cost: more than policy \"%s\" ever admits at once", call->policy);
        break;
    case RL_ST_STORE_UNAVAILABLE:
    case RL_ST_STORE_FULL:
    case RL_ST_BUSY:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        reply_text(h, req, 503, "%s", rl_status_name(st));
        break;
    default:
        reply_text(h, req, 500, "%s", rl_status_name(st));
    }
}

// Appends the endpoint's own counters to the metrics text.
static void http_metrics(const rl_http *h, struct evbuffer *body) {
    evbuffer_add_printf(body, "# HELP rlimitd_http_responses_total HTTP answers by status "
                              "class.\n# TYPE rlimitd_http_responses_total counter\n");
    for (int c = 1; c < 6; c++)
        evbuffer_add_printf(body, "rlimitd_http_responses_total{code=\"%dxx\"} %" PRIu64 "\n", c,
                            h->responses[c]);
    uint64_t refused;
    size_t open = rl_http_conns_open(h->conns, &refused);
    evbuffer_add_printf(body,
                        "# HELP rlimitd_http_connections Open HTTP connections.\n"
                        "# TYPE rlimitd_http_connections gauge\nrlimitd_http_connections %zu\n"
                        "# HELP rlimitd_http_refused_connections_total HTTP connections refused "
                        "at limits.max_http_connections.\n"
                        "# TYPE rlimitd_http_refused_connections_total counter\n"
                        "rlimitd_http_refused_connections_total %" PRIu64 "\n",
                        open, refused);
}

// The engine's answer to a call, now or later.
static void on_answer(void *arg, const rl_response *resp) {
    http_call *call = arg;
    rl_status st = (rl_status)resp->result.status;
    call->http->in_flight--;
    if (st == RL_ST_ALLOWED || st == RL_ST_DENIED)
        reply_decision(call, &resp->result);
    else
        reply_status(call, st);
    rl_free(call);
}

/* ---- requests ---- */

// Fills what the query left out from the X-RateLimit-* headers.
static void take_headers(struct evhttp_request *req, rl_http_params *p) {
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (int i = 0; i < RL_PARAM_COUNT; i++) {
        const char *v = p->value[i] ? NULL : evhttp_find_header(in, param_headers[i]);
        if (v)
            p->value[i] = v, p->len[i] = strlen(v);
    }
}

static http_call *call_new(rl_http *h, struct evhttp_request *req, call_kind kind) {
    http_call *call = rl_calloc(1, sizeof(*call));
    if (call) {
        call->http = h;
        call->req = req;
        call->kind = kind;
    }
    return call;
}

static void handle_decision(rl_http *h, struct evhttp_request *req, call_kind kind) {
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    char *query = q ? rl_strndup(q, strlen(q)) : NULL;
    char why[160];
    rl_http_params p = {{NULL, NULL, NULL}, {0, 0, 0}};
    int64_t cost = 0;
    const char *error = q && !query ? "out of memory" : NULL;
    if (!error && query)
        error = rl_http_parse_query(query, &p, why, sizeof(why));
    if (!error)
        take_headers(req, &p);
    if (!error)
        error = rl_http_params_valid(&p, &cost, why, sizeof(why));
    http_call *call = error ? NULL : call_new(h, req, kind);
    if (error || !call) {
        reply_text(h, req, error ? 400 : 500, "%s", error ? error : "out of memory");
    } else {
        memcpy(call->policy, p.value[RL_PARAM_POLICY], p.len[RL_PARAM_POLICY]);
        rl_request r = {.id = h->next_id++, .opcode = RL_OP_CHECK, .item_count = 1};
        r.items[0] = (rl_item){cost, p.value[RL_PARAM_POLICY], p.value[RL_PARAM_KEY],
                               (uint16_t)p.len[RL_PARAM_KEY], (uint8_t)p.len[RL_PARAM_POLICY]};
        h->in_flight++;
        rl_engine_handle(h->engine, &r, RL_PERM_CHECK | RL_PERM_AUTHENTICATED, on_answer, call);
    }
    rl_free(query);
}

static void handle_check(rl_http *h, struct evhttp_request *req) {
    handle_decision(h, req, CALL_CHECK);
}

static void handle_auth(rl_http *h, struct evhttp_request *req) {
    handle_decision(h, req, CALL_AUTH);
}

// The engine's stats snapshot as Prometheus text (the numbers STATS reports), then the
// endpoint's own counters.
static void handle_metrics(rl_http *h, struct evhttp_request *req) {
    rl_stats stats;
    size_t len = 0;
    char *text =
        rl_engine_stats(h->engine, &stats) == RL_OK ? rl_metrics_render(&stats, &len) : NULL;
    rl_stats_free(&stats);
    struct evbuffer *body = evbuffer_new();
    if (!text || !body) {
        reply_text(h, req, 500, "metrics unavailable");
    } else {
        evbuffer_add(body, text, len);
        http_metrics(h, body);
        send_reply(h, req, 200, "text/plain; version=0.0.4", body);
    }
    if (body)
        evbuffer_free(body);
    rl_free(text);
}

static void handle_healthz(rl_http *h, struct evhttp_request *req) {
    reply_text(h, req, 200, "ok");
}

static const struct {
    const char *path;                                       /* exact path */
    void (*handle)(rl_http *h, struct evhttp_request *req); /* its handler */
    uint32_t needs; /* the listener operation it needs (0: open to all) */
} routes[] = {
    {"/check", handle_check, RL_PERM_CHECK},
    {"/auth", handle_auth, RL_PERM_CHECK},
    {"/metrics", handle_metrics, RL_PERM_STATS},
    {"/healthz", handle_healthz, 0},
};

// Returns 1 if a connection's local address is that of a listener bound to bound (the
// same port and family, and the same address unless the listener's is a wildcard).
static int same_endpoint(const struct sockaddr_storage *bound,
                         const struct sockaddr_storage *local) {
    if (bound->ss_family != local->ss_family)
        return 0;
    if (bound->ss_family == AF_INET) {
        const struct sockaddr_in *b = (const void *)bound, *a = (const void *)local;
        return b->sin_port == a->sin_port && (b->sin_addr.s_addr == htonl(INADDR_ANY) ||
                                              b->sin_addr.s_addr == a->sin_addr.s_addr);
    }
    const struct sockaddr_in6 *b = (const void *)bound, *a = (const void *)local;
    return bound->ss_family == AF_INET6 && b->sin6_port == a->sin6_port &&
           (IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr) ||
            memcmp(&b->sin6_addr, &a->sin6_addr, sizeof(a->sin6_addr)) == 0);
}

// Returns the listener req came in on (by the local address of its connection), or NULL.
static http_listener *listener_of(rl_http *h, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (!bev || getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &len) != 0)
        return NULL;
    for (http_listener *l = h->listeners; l; l = l->next)
        if (same_endpoint(&l->local, &local))
            return l;
    return NULL;
}

// Returns 1 if req carries "Authorization: Bearer <the listener's token>" (or the
// listener has no token).
static int bearer_ok(const rl_listener_conf *rules, struct evhttp_request *req) {
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!rules->token)
        return 1;
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    for (v += 7; *v == ' '; v++)
        ;
    return rl_token_equal(rules->token, rules->token_len, v, strlen(v));
}

// Answers 401 or 403 and returns 0 unless the request's listener allows needs to it.
static int allowed(rl_http *h, struct evhttp_request *req, const char *path, uint32_t needs) {
    http_listener *l = needs ? listener_of(h, req) : NULL;
    if (!needs)
        return 1;
    if (l && !bearer_ok(l->rules, req)) {
        rl_engine_note_auth_failure(h->engine);
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        close_after_reply(h, req);
        reply_text(h, req, 401, "%s needs the listener's token: Authorization: Bearer TOKEN", path);
        return 0;
    }
    if (!l || !(l->rules->perms & needs)) {
        reply_text(h, req, 403, "this listener does not serve %s (its \"ops\")", path);
        return 0;
    }
    return 1;
}

static void on_request(struct evhttp_request *req, void *arg) {
    rl_http *h = arg;
    rl_http_conns_request(h->conns, req); /* (its headers are in: no deadline now) */
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (strlen(evhttp_request_get_uri(req)) > MAX_URI_BYTES) {
        reply_text(h, req, 414, "the URL is longer than %d bytes", MAX_URI_BYTES);
        return;
    }
    if (!path) {
        reply_text(h, req, 400, "bad request target");
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
            if (allowed(h, req, path, routes[i].needs))
                routes[i].handle(h, req);
            return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(h, req, 405, "%s takes GET or HEAD", path);
        return;
    }
    reply_text(h, req, 404, "no such endpoint (try /check, /auth, /metrics, /healthz)");
}

/* ---- listeners ---- */

static void listener_close(rl_http *h, http_listener *l) {
    if (l->bound) {
        rl_http_conns_unwatch(h->conns, l->bound);
        evhttp_del_accept_socket(h->evh, l->bound);
    }
    rl_listener_trust_release(l->rules);
    rl_listener_trust_release(l->next_rules);
    rl_free(l->address);
    rl_free(l);
}

static http_listener *listener_open(rl_http *h, const rl_listener_conf *lc, char *err,
                                    size_t errlen) {
    int fd = rl_listen_open(lc, NULL, err, errlen);
    if (fd < 0)
        return NULL;
    http_listener *l = rl_calloc(1, sizeof(*l));
    socklen_t len = sizeof(struct sockaddr_storage);
    if (l && (l->address = rl_strndup(lc->address, strlen(lc->address))) &&
        (l->rules = rl_listener_trust_dup(lc)) &&
        getsockname(fd, (struct sockaddr *)&l->local, &len) == 0)
        l->bound = evhttp_accept_socket_with_handle(h->evh, fd);
    if (l && l->bound && rl_http_conns_watch(h->conns, l->bound) != 0) {
        evhttp_del_accept_socket(h->evh, l->bound); /* (closes fd) */
        fd = -1;
        l->bound = NULL;
    }
    if (!l || !l->bound) {
        snprintf(err, errlen, "listen %s: out of memory", lc->address);
        if (fd >= 0)
            close(fd);
        if (l)
            rl_free(l->address);
        if (l)
            rl_listener_trust_release(l->rules);
        rl_free(l);
        return NULL;
    }
    char bound[256];
    if (rl_listen_address(fd, bound, sizeof(bound)) == 0)
        rl_log_info("listening on http:%s", bound + 4); /* "tcp:" -> "http:" */
    return l;
}

static http_listener *find(rl_http *h, const char *address) {
    for (http_listener *l = h->listeners; l; l = l->next)
        if (strcmp(l->address, address) == 0)
            return l;
    return NULL;
}

int rl_http_prepare(rl_http *h, const rl_config *c, char *err, size_t errlen) {
    for (size_t i = 0; i < c->listener_count; i++) {
        const rl_listener_conf *lc = &c->listeners[i];
        http_listener *kept = lc->kind == RL_LISTEN_HTTP ? find(h, lc->address) : NULL;
        if (kept && !(kept->next_rules = rl_listener_trust_dup(lc))) {
            snprintf(err, errlen, "listen %s: out of memory", lc->address);
            rl_http_rollback(h);
            return RL_ERR;
        }
        if (lc->kind != RL_LISTEN_HTTP || kept)
            continue;
        http_listener *l = listener_open(h, lc, err, errlen);
        if (!l) {
            rl_http_rollback(h);
            return RL_ERR;
        }
        l->staged = 1;
        l->next = h->listeners;
        h->listeners = l;
    }
    return RL_OK;
}

static int listed(const rl_config *c, const char *address) {
    for (size_t i = 0; i < c->listener_count; i++)
        if (c->listeners[i].kind == RL_LISTEN_HTTP && strcmp(c->listeners[i].address, address) == 0)
            return 1;
    return 0;
}

void rl_http_commit(rl_http *h, const rl_config *c) {
    rl_http_conns_limits(h->conns, c->max_http_connections, c->http_header_timeout_ms);
    for (http_listener **lp = &h->listeners; *lp;) {
        http_listener *l = *lp;
        l->staged = 0;
        if (l->next_rules) { /* (new rules apply to every later request) */
            rl_listener_trust_release(l->rules);
            l->rules = l->next_rules;
            l->next_rules = NULL;
        }
        if (listed(c, l->address)) {
            lp = &l->next;
            continue;
        }
        rl_log_info("no longer listening on %s", l->address);
        *lp = l->next;
        listener_close(h, l);
    }
}

void rl_http_rollback(rl_http *h) {
    for (http_listener **lp = &h->listeners; *lp;) {
        http_listener *l = *lp;
        rl_listener_trust_release(l->next_rules);
        l->next_rules = NULL;
        if (!l->staged) {
            lp = &l->next;
            continue;
        }
        *lp = l->next;
        listener_close(h, l);
    }
}

void rl_http_close(rl_http *h) {
    h->stopping = 1;
    while (h->listeners) {
        http_listener *l = h->listeners;
        h->listeners = l->next;
        listener_close(h, l);
    }
}

size_t rl_http_owed(const rl_http *h) {
    return h->in_flight + rl_http_conns_closing(h->conns);
}

rl_http *rl_http_new(struct event_base *base, rl_engine *engine, char *err, size_t errlen) {
    rl_http *h = rl_calloc(1, sizeof(*h));
    if (!h || !(h->evh = evhttp_new(base)) || !(h->conns = rl_http_conns_new(base, h->evh))) {
        snprintf(err, errlen, "http: out of memory");
        if (h && h->evh)
            evhttp_free(h->evh);
        rl_free(h);
        return NULL;
    }
    h->base = base;
    h->engine = engine;
    evhttp_set_max_headers_size(h->evh, MAX_HEADERS_BYTES);
    evhttp_set_max_body_size(h->evh, MAX_BODY_BYTES);
    evhttp_set_timeout(h->evh, TIMEOUT_S);
    evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_gencb(h->evh, on_request, h);
    return h;
}

void rl_http_free(rl_http *h) {
    if (!h)
        return;
    evhttp_free(h->evh); /* closes the bound sockets and the connections */
    rl_http_conns_free(h->conns);
    while (h->listeners) {
        http_listener *l = h->listeners;
        h->listeners = l->next;
        rl_listener_trust_release(l->rules);
        rl_listener_trust_release(l->next_rules);
        rl_free(l->address);
        rl_free(l);
    }
    rl_free(h);
}
