/*
 * http.h: the HTTP endpoint (libevent's evhttp) on the config's http:HOST:PORT
 * listeners, for proxies (nginx auth_request), monitoring and health checks.
 *
 *   GET /check?policy=P&key=K[&cost=N]  200 allowed, 429 denied (Retry-After), with
 *                                       X-RateLimit-Limit/-Remaining/-Reset,
 *                                       RateLimit-Policy and RateLimit headers and a
 *                                       JSON body; 400 naming the bad parameter;
 *                                       503 when the store fails without a fallback
 *   GET /auth?...                       the same decision, but 403 when denied: nginx's
 *                                       auth_request passes only 2xx, 401 and 403
 *   GET /metrics                        Prometheus text (metrics.h)
 *   GET /healthz                        200 "ok", never rate limited
 *
 * The key may come from the X-RateLimit-Key header instead of the query (nginx:
 * `proxy_set_header X-RateLimit-Key $remote_addr;`), likewise X-RateLimit-Policy
 * and X-RateLimit-Cost; a query parameter wins over its header. Query values are
 * percent-decoded ('+' is a space), so keys may hold any byte. A decision goes through
 * rl_engine_handle exactly like a binary CHECK from a non-admin listener.
 *
 * Limits: request line and headers 8 KB together, URLs 4 KB (414 past that, or the
 * connection is dropped past 8 KB), bodies 4 KB, 30 s read/write timeout.
 */
#ifndef RL_HTTP_H
#define RL_HTTP_H

#include <event2/event.h>

#include "config.h"
#include "engine.h"

typedef struct rl_http rl_http;

// Creates the HTTP endpoint on base, answering through engine, with no listener yet.
// Returns NULL with the reason in err.
rl_http *rl_http_new(struct event_base *base, rl_engine *engine, char *err, size_t errlen);

// Opens the http: listeners of config that are not open yet. They serve at once, but
// stay undoable until rl_http_commit or rl_http_rollback. Returns RL_OK, or RL_ERR with
// the reason in err after closing the ones it opened.
int rl_http_prepare(rl_http *http, const rl_config *config, char *err, size_t errlen);

// Closes the listeners config no longer lists and keeps the prepared ones.
// Connections already accepted are served to their end.
void rl_http_commit(rl_http *http, const rl_config *config);

// Closes the listeners opened by the last rl_http_prepare.
void rl_http_rollback(rl_http *http);

// Closes every listener (shutdown); connections already accepted are not dropped. From
// then on, a request answered is answered with "Connection: close".
void rl_http_close(rl_http *http);

// Answers still owed: requests waiting on the engine (the store), plus replies given
// during shutdown whose connection has not closed yet (their bytes may be unwritten).
// Shutdown runs the loop until this is 0 (or its grace period ends) before rl_http_free.
size_t rl_http_owed(const rl_http *http);

// Frees everything, dropping open connections. Call after rl_engine_free, so that no
// decision is still owed to an HTTP request.
void rl_http_free(rl_http *http);

#endif
