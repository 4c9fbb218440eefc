/*
 * clock.h: the daemon's two clocks, read in one place.
 *
 * The monotonic clock measures spans (timeouts, latencies, once-a-second limits,
 * the top-keys decay): it never jumps. The real-time clock stamps what must agree
 * with the outside world (the embedded store's windows, the denial log, uptime).
 */
#ifndef RL_CLOCK_H
#define RL_CLOCK_H

#include <stdint.h>

// Returns CLOCK_MONOTONIC in microseconds (an arbitrary origin; only differences mean
// anything).
int64_t rl_clock_mono_us(void);

// Returns CLOCK_REALTIME in microseconds since the Unix epoch.
int64_t rl_clock_real_us(void);

#endif
