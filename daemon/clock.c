/*
 * clock.c: the monotonic and real-time clocks in microseconds (see clock.h).
 */
#include "clock.h"

#include <time.h>

static int64_t read_us(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rl_clock_mono_us(void) {
    return read_us(CLOCK_MONOTONIC);
}

int64_t rl_clock_real_us(void) {
    return read_us(CLOCK_REALTIME);
}
