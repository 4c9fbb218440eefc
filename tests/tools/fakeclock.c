/*
 * fakeclock.c: an LD_PRELOAD library for the e2e tests. CLOCK_REALTIME, as clock_gettime
 * answers it, runs ahead of the real clock by the microseconds written in the file that
 * RLT_CLOCK_OFFSET_FILE names (read at every call; no file, or an empty one, is 0). The
 * daemon's wall clock is the clock its denial log counts seconds by (the log takes the
 * time from its caller), so a test moves that clock on by writing the file instead of
 * sleeping until the next second. Other clocks are left alone.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

// The offset in microseconds, from the file RLT_CLOCK_OFFSET_FILE names (0 without one).
static long long offset_us(void) {
    const char *path = getenv("RLT_CLOCK_OFFSET_FILE");
    char buf[32];
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

// The C library's clock_gettime, with CLOCK_REALTIME moved on by the offset (>= 0).
int clock_gettime(clockid_t id, struct timespec *ts) {
    static clock_fn real;
    if (!real)
        real = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc != 0 || id != CLOCK_REALTIME)
        return rc;
    long long ns = (long long)ts->tv_nsec + offset_us() * 1000;
    ts->tv_sec += (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
    return rc;
}
