/*
 * redis_link.h: a small RESP client connection on a libevent event_base, for peers the
 * daemon does not trust to follow the protocol (Redis Sentinels, and a master's address
 * a Sentinel handed over before it is confirmed).
 *
 * Why not a hiredis async context: hiredis 0.14's async layer asserts (aborts the
 * process) on a reply no command asked for and on a pub/sub message that is not an
 * array of strings, so one broken or hostile peer could kill the daemon. A link parses
 * with hiredis's public reader (read.h) and writes with redisFormatCommandArgv, and
 * judges every reply itself: a reply nobody waits for, a reply past max_reply bytes, a
 * protocol error, EOF or a missed deadline fail the link, nothing else happens.
 *
 * The owner learns everything through one callback: each reply in order, then at most
 * one failure (reply NULL, why set), after which the link is closed and freed by itself.
 */
#ifndef RL_REDIS_LINK_H
#define RL_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;

#define RL_REDIS_LINK_MAX_REPLY (64 * 1024) /* bytes one reply may take at most */

typedef struct rl_redis_link rl_redis_link;

// Receives a reply (valid during the call; reply non-NULL, why NULL), or the link's
// failure (reply NULL, why a sentence valid during the call): the link is freed when
// the call returns, so the owner forgets its pointer then. The owner may call
// rl_redis_link_free from inside a reply call (freed when the call returns).
typedef void rl_redis_link_fn(void *arg, rl_redis_link *link, const struct redisReply *reply,
                              const char *why);

// Starts connecting to host:port (a numeric address or a name; names are resolved
// synchronously, as hiredis does) on base. Returns the link, or NULL with the reason in
// err if the address is unusable or memory or events could not be had (fn is not called).
rl_redis_link *rl_redis_link_open(struct event_base *base, const char *host, uint16_t port,
                                  rl_redis_link_fn *fn, void *arg, char *err, size_t errlen);

// Queues a command of argc arguments (lens bytes each) to be written once connected
// and tells the link to await one more reply. Returns RL_OK, or RL_ERR if memory
// could not be had (nothing queued).
int rl_redis_link_send(rl_redis_link *link, int argc, const char **argv, const size_t *lens);

// Makes the link wait for unsolicited replies (pub/sub messages) too: after the replies
// it awaits, every further reply is handed to fn instead of failing the link.
void rl_redis_link_subscribed(rl_redis_link *link);

// Fails the link with "timed out" if it is still open in ms milliseconds (replacing any
// earlier deadline); ms < 0 clears the deadline.
void rl_redis_link_deadline(rl_redis_link *link, int ms);

// Returns 1 once the TCP connection is established.
int rl_redis_link_connected(const rl_redis_link *link);

// Returns the replies still awaited.
int rl_redis_link_awaited(const rl_redis_link *link);

// Closes and frees the link without calling fn. NULL is fine.
void rl_redis_link_free(rl_redis_link *link);

#endif
