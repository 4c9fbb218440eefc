/*
 * redis_script.h: the Lua script that decides batches of items inside Redis.
 *
 * One EVALSHA decides many store batches (submits), one after the other, at one
 * instant: each batch is all-or-nothing within itself (CHECK consumes only if every
 * rate of every item allows), batches are independent, and a later batch sees what an
 * earlier one consumed. The algorithms are those of algo.c, figure for figure.
 *
 * Arguments (all integers in decimal):
 *   KEYS      per rate of every item of every batch, in order:
 *             <prefix>{<policy>:<key>}:<rate index> (see redis_batch.h), and after a
 *             sliding log's that of its companion, the same name followed by
 *             RL_REDIS_COMPANION_MARK (same hash tag, so same Redis Cluster slot)
 *   ARGV[1]   the decision time in microseconds, or 0 to use Redis's TIME (always 0
 *             outside tests)
 *   ARGV[2]   S, the number of limit sets; then per set: the rate count R, then per
 *             rate: algorithm (rl_algorithm), limit, period_us, burst
 *   then      B, the number of batches; then per batch: op (rl_store_op), item count
 *             N, then per item: its limit set (1-based), cost
 *
 * Reply: an array of integers: now_us, then per batch a status (0: decided), then per
 * item per rate RL_REDIS_VERDICT_FIELDS integers: allowed (1/0, plus RL_REDIS_CAPPED
 * if an ADJUST's charge was held at 2 x capacity), remaining, reset_after_us,
 * retry_after_us (limit and window are the rate's own: algo.h). Each batch runs in a
 * pcall: if one of its Redis commands fails (or the Lua errs), its status is the
 * error's text (a string) and its verdicts are zeros; the other batches are decided
 * as if it had not been sent (see the script for what a failed write leaves).
 *
 * Compact form, when every batch is a CHECK of one item whose limit set is one token
 * bucket or gcra rate (the common case, and the script's fast path): B is sent negated
 * (-B), and each batch is only its item's limit set and cost (no op, no count); the
 * reply is now_us, then per batch RL_REDIS_COMPACT_FIELDS integers: remaining * 2 +
 * allowed, reset_after_us, retry_after_us; an item whose write failed has the error's
 * text in place of the first. Two fewer arguments and two fewer reply
 * integers per decision: ~7% less script time per item.
 *
 * State in Redis: a cell is the string "f:<start>:<count>" (fixed window),
 * "c:<start>:<count>:<previous count>" (sliding counter) or "<tat>" (token bucket and
 * gcra), the fields of rl_cell; a sliding log is a sorted set of
 * "<at>:<cost>" members scored by at, one per instant, trimmed to the trailing period,
 * at most limit of them (the two oldest merge, as in algo.c), with a companion string
 * "<total>:<count>:<newest member>" so that a call touches O(log n + trimmed) members;
 * a set the companion does not describe (written by an rlimitd before the companion, or
 * by hand) is counted whole once, and merged down to limit entries. A charge (ADJUST)
 * leaves at most 2 x capacity used; a state beyond that (an older rlimitd's) counts as
 * 2 x capacity. Every key written gets the TTL after which its state equals an empty
 * one, at most 2 windows (a state that is empty is deleted), except a bucket written by the script's fast path (a
 * compact call): it is stored "<tat>. " and expires at tat rounded up to a 5 s grid,
 * so that most writes overwrite the value in place and keep its TTL (SETRANGE); the
 * grid is shifted per key (from the key's bytes), so that keys written together do
 * not all expire at the same instant. A key holding something else (another
 * algorithm's state, garbage) counts as empty and is overwritten when written.
 */
#ifndef RL_REDIS_SCRIPT_H
#define RL_REDIS_SCRIPT_H

#include <stddef.h>

#define RL_REDIS_VERDICT_FIELDS 4 /* integers per rate in the reply */
#define RL_REDIS_COMPACT_FIELDS 3 /* integers per item in a compact call's reply */
#define RL_REDIS_CAPPED 2         /* added to a verdict's allowed field: the charge was capped */
#define RL_REDIS_COMPANION_MARK '#' /* ends a sliding log's companion key */

// The script's Lua source (NUL-terminated) and its length.
extern const char rl_redis_script[];
extern const size_t rl_redis_script_len;

#endif
