/*
 * http_conns.h: the HTTP endpoint's connections, as evhttp (libevent 2.1) accepts them:
 * a cap on how many are open, a deadline for each request's headers, and a pause in
 * accepting when descriptors run out.
 *
 *   evhttp accepts --bevcb--> counted --adopted (same loop iteration)--> over the cap:
 *   503 and closed | else header deadline armed --request complete--> deadline off
 *   --first byte of the next request--> deadline armed again ...  --close--> uncounted
 *
 * libevent 2.1 offers no hook when evhttp accepts a connection other than the
 * bufferevent callback (evhttp_set_bevcb); the connection object is found from that
 * bufferevent's callback argument once evhttp has set it up (bufferevent_getcb), and
 * evhttp_connection_set_closecb tells when it goes away.
 */
#ifndef RL_HTTP_CONNS_H
#define RL_HTTP_CONNS_H

#include <event2/event.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rl_http_conns rl_http_conns;

// Takes charge of evh's connections (installs its bufferevent callback). Returns NULL
// when out of memory.
rl_http_conns *rl_http_conns_new(struct event_base *base, struct evhttp *evh);

// Sets the cap on open connections (more are answered 503 and closed) and the time a
// request's headers may take, from its connection's accept or its first byte.
void rl_http_conns_limits(rl_http_conns *conns, uint32_t max_connections, int header_timeout_ms);

// Pauses accepting on bound for a moment when accept() fails (out of descriptors),
// instead of libevent retrying at once. Returns 0, or -1 when out of memory.
int rl_http_conns_watch(rl_http_conns *conns, struct evhttp_bound_socket *bound);

// Forgets bound (call before evhttp_del_accept_socket).
void rl_http_conns_unwatch(rl_http_conns *conns, struct evhttp_bound_socket *bound);

// Notes that req's headers are complete: its connection's deadline stops.
void rl_http_conns_request(rl_http_conns *conns, struct evhttp_request *req);

// Counts req's connection as closing (its answer says Connection: close) until it is
// closed. Does nothing if the client left already.
void rl_http_conns_close_after(rl_http_conns *conns, struct evhttp_request *req);

// Returns the connections counted by rl_http_conns_close_after that are still open.
size_t rl_http_conns_closing(const rl_http_conns *conns);

// Returns the open connections, and in *refused those refused at the cap so far.
size_t rl_http_conns_open(const rl_http_conns *conns, uint64_t *refused);

// Frees conns. Call after evhttp_free (which closes every connection).
void rl_http_conns_free(rl_http_conns *conns);

#endif
