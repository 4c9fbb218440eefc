/*
 * metrics.h: the Prometheus text exposition of the daemon's figures.
 *
 * Pure: it turns the JSON of a STATS answer (engine_admin.c) into metric families,
 * so /metrics and `rlimitctl stats` always show the same numbers:
 *
 *   rlimitd_decisions_total{policy,result}  counter  result: allowed, denied,
 *                                                    shadow_denied, error
 *   rlimitd_exempt_total{policy}, rlimitd_blocked_total{policy}       counters
 *   rlimitd_store_errors_total{policy}, rlimitd_fallbacks_total{policy} counters
 *   rlimitd_connections, rlimitd_in_flight, rlimitd_uptime_seconds,
 *   rlimitd_store_keys                                                gauges
 *   rlimitd_refused_total, rlimitd_reloads_total, rlimitd_reload_failures_total,
 *   rlimitd_denial_log_lines_total, rlimitd_denial_log_suppressed_total counters
 *   rlimitd_store_latency_seconds            histogram (when the store reports latency)
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include <stddef.h>

// Renders stats_json (len bytes, a STATS answer) as Prometheus text. Returns the
// text, NUL-terminated, in memory the caller frees with rl_free (its length in
// *out_len), or NULL if the JSON does not parse or memory is short.
char *rl_metrics_render(const char *stats_json, size_t len, size_t *out_len);

#endif
