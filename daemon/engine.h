/*
 * engine.h: turns decoded requests into responses.
 *
 * The engine owns the config, the stores and the counters. For each request it
 * looks up the policies, checks the items (key length, cost), applies exempt and
 * block lists, submits the batch to the store, and turns the store's verdicts into
 * a response: shadow mode, the on_store_error fallback, and the per-policy counters
 * happen here (engine.c, engine_stats.c, engine_admin.c: see engine_internal.h). It
 * knows nothing of sockets or frames.
 */
#ifndef RL_ENGINE_H
#define RL_ENGINE_H

#include <event2/event.h>
#include <stdint.h>

#include "config.h"
#include "rlproto.h"
#include "stats.h"

typedef struct rl_store rl_store;

typedef struct rl_engine rl_engine;

// Receives the response to one request, exactly once, possibly before
// rl_engine_handle returns. resp and its text are valid only during the call.
typedef void rl_engine_reply(void *arg, const rl_response *resp);

// Creates an engine for config on base: creates the store the config names (and the
// embedded fallback store), and the timer that sweeps expired keys. On success the
// engine owns config (freed by rl_engine_free or a later reload). Returns NULL with the
// reason in err on failure; config then stays the caller's, to free.
rl_engine *rl_engine_new(struct event_base *base, rl_config *config, char *err, size_t errlen);

// Tests: like rl_engine_new, but decides with store (taken over, freed with the engine,
// or at once if this fails) instead of the store the config names.
rl_engine *rl_engine_new_with_store(struct event_base *base, rl_config *config, rl_store *store,
                                    char *err, size_t errlen);

// Handles one decoded request from a listener whose connection holds the permissions
// perms (RL_PERM_* of config.h: the listener's operations, plus RL_PERM_AUTHENTICATED
// once the connection may use them; for AUTH, the server sets RL_PERM_AUTHENTICATED if
// the token matched). A request the listener does not allow answers NOT_PERMITTED, one
// before authentication AUTH_REQUIRED (PING and AUTH are always served). Calls reply
// exactly once. The request's strings need only live during this call.
void rl_engine_handle(rl_engine *engine, const rl_request *req, uint32_t perms,
                      rl_engine_reply *reply, void *arg);

// Releases lease (taken by a connection without DETACH) of policy and key because that
// connection closed: a RELEASE the engine sends itself, answered to no one and counted
// "released_on_disconnect". The strings need only live during this call.
void rl_engine_release_on_close(rl_engine *engine, const char *policy, size_t policy_len,
                                const char *key, size_t key_len, uint64_t lease);

// Counts a connection refused at accept because its peer's uid/gid is not listed
// (STATS "refused_peers").
void rl_engine_note_refused_peer(rl_engine *engine);

// Counts a failed authentication (a wrong AUTH token, or an HTTP request without the
// right bearer token; STATS "auth_failures").
void rl_engine_note_auth_failure(rl_engine *engine);

// Hints that req will be handled soon (see rl_store_ops.prefetch): call with stage 0
// for a batch of requests, then stage 1 for the same batch, then handle them. Optional.
void rl_engine_prefetch(rl_engine *engine, const rl_request *req, int stage);

// Answers a request the server refused before decoding it (status, e.g. BUSY or
// FRAME_TOO_LARGE), counting it. Calls reply before returning.
void rl_engine_refuse(rl_engine *engine, uint8_t opcode, uint32_t id, rl_status status,
                      rl_engine_reply *reply, void *arg);

// Swaps in a new config (taken over on success; left to the caller on failure).
// Counters of policies whose limits are unchanged survive; the embedded store forgets
// the state of removed or changed policies (Redis state, shared with other instances,
// is left to its TTL). The store section must be unchanged. Returns RL_OK,
// or RL_ERR with the reason in err.
int rl_engine_reload(rl_engine *engine, rl_config *config, char *err, size_t errlen);

// Returns the config in force (owned by the engine; valid until the next reload).
const rl_config *rl_engine_config(const rl_engine *engine);

// Sets the function RELOAD uses to re-read the config and apply it (the daemon's
// reload, shared with SIGHUP): it returns RL_OK, or RL_ERR with the reason in err.
void rl_engine_set_reloader(rl_engine *engine, int (*reload)(void *arg, char *err, size_t errlen),
                            void *arg);

// Returns RL_OK if config may replace the one in force (its store section is the
// same), RL_ERR with the reason in err otherwise. Changes nothing.
int rl_engine_reload_check(const rl_engine *engine, const rl_config *config, char *err,
                           size_t errlen);

// Sets the function STATS uses to count open connections (main passes the server's
// count); until it is set, STATS reports no "connections".
void rl_engine_set_connections(rl_engine *engine, size_t (*count)(void *arg), void *arg);

// Notes a reload that was refused before rl_engine_reload (bad file, listeners):
// counts it, and reopens the denial log file, so that log rotation by SIGHUP works
// even while the config file is bad. (A successful rl_engine_reload reopens it too.)
void rl_engine_reload_refused(rl_engine *engine);

// Fills out with a snapshot of every figure STATS and /metrics report (stats.h): the
// policies' counters, the stores' figures, the engine's. Returns RL_OK, or RL_ERR if
// memory is short. Free out with rl_stats_free either way. Policy names in it are valid
// until the next reload.
int rl_engine_stats(rl_engine *engine, rl_stats *out);

// Stops the engine: the stores answer what is in flight, then everything is freed.
void rl_engine_free(rl_engine *engine);

#endif
