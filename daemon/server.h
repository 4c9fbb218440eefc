/*
 * server.h: listeners and connections of the binary protocol, on libevent.
 *
 * The server reads frames, hands decoded requests to the engine, and writes the
 * engine's answers back. It knows nothing of policies, stores or algorithms.
 */
#ifndef RL_SERVER_H
#define RL_SERVER_H

#include <event2/event.h>

#include "config.h"
#include "engine.h"

typedef struct rl_server rl_server;

// Opens every unix: and tcp: listener of config on base and serves them through
// engine. Listener limits (max_frame, max_connections...) come from config and are
// re-read by rl_server_apply. Returns NULL with the reason in err.
rl_server *rl_server_new(struct event_base *base, rl_engine *engine, const rl_config *config,
                         char *err, size_t errlen);

// Makes the listeners match config: opens the new addresses first (if one fails, those
// opened are closed again and RL_ERR is returned with err set, changing nothing), then
// closes the addresses no longer listed. Connections on kept listeners are untouched.
// Takes the new limits. Returns RL_OK.
int rl_server_apply(rl_server *server, const rl_config *config, char *err, size_t errlen);

// Starts a clean shutdown: closes the listeners (unlinking Unix socket files), stops
// reading, lets in-flight answers be written, and calls event_base_loopexit when every
// connection is closed or after grace_ms.
void rl_server_shutdown(rl_server *server, int grace_ms);

// Returns the number of open connections.
size_t rl_server_connections(const rl_server *server);

// Writes the bound address of the index-th listener (e.g. the port chosen for port 0)
// to buf as an address string. Returns 0, or -1 if there is no such listener.
int rl_server_listener_address(const rl_server *server, size_t index, char *buf, size_t len);

// Closes everything and frees the server. Answers still in flight are dropped.
void rl_server_free(rl_server *server);

#endif
