/*
 * redis_sentinel.h: the Redis store's Sentinel client: which server is the master of
 * conf->sentinel_master now.
 *
 * At startup the store asks synchronously (rl_redis_sentinel_resolve); then it follows
 * the master on its event loop (rl_redis_sentinel_new):
 *
 *   Sentinel k --SUBSCRIBE +switch-master--> message "<name> <old ip> <old port> <new ip> <new
 * port>" Sentinel i --SENTINEL get-master-addr-by-name (every second, round-robin; and on refresh)
 *        \                                            |
 *         +----------> candidate address -------------+
 *                             |  connect, AUTH (the master's credentials), ROLE == master
 *                             v
 *                    fn(arg, host, port), logged once per change
 *
 * A candidate is handed over only once the server itself says it is a master, so that
 * a Sentinel that has not yet heard of a failover (or a message naming a server that is
 * still down) cannot send the store back to the old master. Sentinels are peers the
 * daemon does not trust to follow the protocol: every reply is judged strictly (types,
 * an address that is a plain host name or IP of at most 255 bytes, a port 1..65535, a
 * reply of at most 64 KB, at most 1024 array elements), a fault drops that connection
 * and is logged once per reason, and every exchange has a deadline of
 * conf->connect_timeout_ms (redis_link.h says why hiredis's async contexts are not used
 * here).
 */
#ifndef RL_REDIS_SENTINEL_H
#define RL_REDIS_SENTINEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stats.h"

struct event_base;

typedef struct rl_redis_sentinel rl_redis_sentinel;

// Called when the master's address is learned or changes (a different host:port than
// the last one handed over). host is valid during the call only. fn must not free the
// Sentinel client.
typedef void rl_redis_master_fn(void *arg, const char *host, uint16_t port);

// Startup, synchronous: asks the Sentinels of conf in turn (each within
// conf->connect_timeout_ms: connect, AUTH with sentinel_username/sentinel_password when
// a password is set, SENTINEL get-master-addr-by-name), then confirms on the address
// given (within connect_timeout_ms: connect, AUTH with conf->username/password, ROLE is
// master). Returns RL_OK with the master's host (hostlen bytes at most, NUL included) and
// port; RL_AGAIN if no Sentinel answered, none knows the master, or the address is not a
// master (yet) or does not answer: the store starts down and the async side keeps
// trying; RL_ERR if refused (a Sentinel or the master refused our credentials or the
// command, and no other Sentinel led to a master). err gets the reason unless RL_OK.
// Takes at most 2 * sentinel_count * connect_timeout_ms.
int rl_redis_sentinel_resolve(const rl_store_conf *conf, char *host, size_t hostlen, uint16_t *port,
                              char *err, size_t errlen);

// Starts following the master of conf (copied: conf may go) on base: subscribes to
// +switch-master on one Sentinel at a time (the next one after a failure, with backoff)
// and asks SENTINEL get-master-addr-by-name every second, round-robin (a Sentinel that
// does not answer within connect_timeout_ms is skipped, and asked again only after a
// backoff of 0.5 s doubling to 10 s). host/port: the address already known (host NULL if
// none): fn is called only for another one. Each change is logged once ("redis store:
// sentinel: master NAME is now H:P (was H0:P0)"). Returns NULL if memory or events could
// not be had, or conf names no Sentinel.
rl_redis_sentinel *rl_redis_sentinel_new(struct event_base *base, const rl_store_conf *conf,
                                         const char *host, uint16_t port, rl_redis_master_fn *fn,
                                         void *arg);

// Asks a Sentinel now (the store saw READONLY, LOADING, MASTERDOWN, a server that is not
// a master, or lost its connections): at most once per 100 ms, and never while an ask is
// in flight (that one answers). Safe from inside any callback.
void rl_redis_sentinel_refresh(rl_redis_sentinel *s);

// Adds a "sentinel" group to out: master (word "host:port" or "none"; it points into s:
// render out before s changes or goes), master_name (word, likewise), switches (changes
// of a known master's address), resolutions (addresses the Sentinels gave: answers and
// +switch-master messages), errors (Sentinel exchanges that failed: no answer, refused,
// malformed; and candidates that were not a master), sentinels (count), and
// sentinels_reachable (gauge: Sentinels whose last exchange succeeded).
void rl_redis_sentinel_figures(const rl_redis_sentinel *s, rl_store_figures *out);

// Closes every connection and frees s. NULL is fine. Not from inside fn.
void rl_redis_sentinel_free(rl_redis_sentinel *s);

#endif
