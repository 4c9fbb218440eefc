/*
 * latency.h: a fixed-bucket latency histogram, for stores that wait on something
 * (the Redis store times each batch with it).
 *
 * A store embeds an rl_latency, records each batch's round trip, and writes
 * rl_latency_json's object as "latency" in its stats_json. STATS passes it through;
 * rlimitctl stats prints p50/p99; /metrics turns the buckets into the
 * rlimitd_store_latency_seconds histogram.
 */
#ifndef RL_LATENCY_H
#define RL_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define RL_LATENCY_BUCKETS 14 /* finite buckets; one more counts the rest */

/* Counts per bucket; zero-initialised is empty. */
typedef struct rl_latency {
    uint64_t counts[RL_LATENCY_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    uint64_t count;                          /* samples */
    uint64_t sum_us;                         /* their sum */
} rl_latency;

// Returns the upper bound, in microseconds, of finite bucket i (0..RL_LATENCY_BUCKETS-1).
int64_t rl_latency_bound_us(size_t i);

// Records one sample of us microseconds (negative counts as 0).
void rl_latency_record(rl_latency *latency, int64_t us);

// Returns the q-quantile (0 < q < 1) in microseconds, interpolated inside its bucket
// (the last finite bound if it falls past them); 0 when there are no samples.
int64_t rl_latency_quantile(const rl_latency *latency, double q);

// Writes {"count":N,"sum_us":S,"p50_us":..,"p99_us":..,"buckets":[[LE_US,CUMULATIVE],..]}
// to buf (len bytes). Returns the bytes needed (snprintf semantics).
int rl_latency_json(const rl_latency *latency, char *buf, size_t len);

#endif
