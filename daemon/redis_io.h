/*
 * redis_io.h: drives a hiredis async context from a libevent event_base through the
 * public redisAsyncContext.ev hooks only (hiredis 0.14 and 1.x alike).
 *
 * What it does differently from hiredis's own libevent adapter, so that a command or a
 * reply costs no epoll_ctl:
 *   - the read event is persistent, armed once when the context is attached;
 *   - a command hiredis asks to write while connected is not written at once, nor
 *     through a write event: a flush (an event activated by hand, no system call) writes
 *     every command queued during this loop iteration with one redisAsyncHandleWrite at
 *     the end of it;
 *   - the write event is armed only while the connect is in progress (its completion
 *     shows as writability) and after a write that did not finish (socket buffer full);
 *   - hiredis 1.x's scheduleTimer (used only when a connect or command timeout is set in
 *     hiredis, which the daemon does not do: it keeps its own timers) is served by a
 *     timer that calls redisAsyncHandleTimeout.
 */
#ifndef RL_REDIS_IO_H
#define RL_REDIS_IO_H

struct redisAsyncContext;
struct event_base;

// Attaches ac (just made, with no event hooks yet) to base. Call it before setting the
// connect callback and before the first command. Returns RL_OK; the hooks then belong to
// ac, and hiredis frees them with it (redisAsyncFree, or a failed connect or I/O error).
// Returns RL_ERR if memory or events could not be had or ac already has hooks: ac is
// left as it was (free it with redisAsyncFree).
int rl_redis_io_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
