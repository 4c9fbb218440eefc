/*
 * metrics.h: the Prometheus text exposition of the daemon's figures.
 *
 * Pure: it renders a stats snapshot (stats.h, filled by rl_engine_stats), the same
 * values the STATS answer renders to JSON, so /metrics and `rlimitctl stats` always
 * show the same numbers:
 *
 *   rlimitd_decisions_total{policy,result}  counter  result: allowed, denied,
 *                                                    shadow_denied, error
 *   rlimitd_exempt_total{policy}, rlimitd_blocked_total{policy}       counters
 *   rlimitd_store_errors_total{policy}, rlimitd_fallbacks_total{policy} counters
 *   rlimitd_connections, rlimitd_in_flight, rlimitd_uptime_seconds    gauges
 *   rlimitd_refused_total, rlimitd_reloads_total, rlimitd_reload_failures_total,
 *   rlimitd_refused_peers_total, rlimitd_auth_failures_total,
 *   rlimitd_denial_log_lines_total, rlimitd_denial_log_suppressed_total,
 *   rlimitd_denial_log_errors_total                                   counters
 *   rlimitd_store_[GROUP_]NAME[_total]     every figure of the store's STATS object
 *                                          (e.g. rlimitd_store_keys, the Redis store's
 *                                          rlimitd_store_errors_timeout_total): counters
 *                                          end in _total, a state word is
 *                                          NAME{NAME="word"} 1, a flag 0 or 1
 *   rlimitd_store_latency_seconds          summary (p50, p99, count), and
 *   rlimitd_store_latency_max_seconds      gauge, when the store measures latency
 *   rlimitd_local_store_...                the same for the embedded fallback store
 *                                          beside Redis (STATS local_store)
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include <stddef.h>

#include "stats.h"

// Renders the snapshot s as Prometheus text. Returns the text, NUL-terminated, in
// memory the caller frees with rl_free (its length in *out_len), or NULL if memory is
// short.
char *rl_metrics_render(const rl_stats *s, size_t *out_len);

#endif
