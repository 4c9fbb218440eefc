/*
 * latency.c: a fixed-bucket latency histogram.
 */
#include "latency.h"

#include <stdio.h>

static const int64_t bounds_us[RL_LATENCY_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

int64_t rl_latency_bound_us(size_t i) {
    return i < RL_LATENCY_BUCKETS ? bounds_us[i] : bounds_us[RL_LATENCY_BUCKETS - 1];
}

void rl_latency_record(rl_latency *l, int64_t us) {
    size_t i = 0;
    if (us < 0)
        us = 0;
    while (i < RL_LATENCY_BUCKETS && us > bounds_us[i])
        i++;
    l->counts[i]++;
    l->count++;
    l->sum_us += (uint64_t)us;
}

int64_t rl_latency_quantile(const rl_latency *l, double q) {
    if (l->count == 0)
        return 0;
    double rank = q * (double)l->count, seen = 0;
    for (size_t i = 0; i < RL_LATENCY_BUCKETS; i++) {
        if (seen + (double)l->counts[i] >= rank && l->counts[i] > 0) {
            int64_t low = i ? bounds_us[i - 1] : 0;
            double part = (rank - seen) / (double)l->counts[i];
            return low + (int64_t)(part * (double)(bounds_us[i] - low) + 0.5);
        }
        seen += (double)l->counts[i];
    }
    return bounds_us[RL_LATENCY_BUCKETS - 1];
}

int rl_latency_json(const rl_latency *l, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len,
                                "{\"count\":%llu,\"sum_us\":%llu,\"p50_us\":%lld,"
                                "\"p99_us\":%lld,\"buckets\":[",
                                (unsigned long long)l->count, (unsigned long long)l->sum_us,
                                (long long)rl_latency_quantile(l, 0.5),
                                (long long)rl_latency_quantile(l, 0.99));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < RL_LATENCY_BUCKETS; i++) {
        cumulative += l->counts[i];
        n +=
            (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "%s[%lld,%llu]",
                             i ? "," : "", (long long)bounds_us[i], (unsigned long long)cumulative);
    }
    n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "]}");
    return (int)n;
}
