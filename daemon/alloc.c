/*
 * alloc.c: allocation wrapper with failure injection for tests.
 */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_after = -1; /* allocations left before failing; -1: never fail */

static int should_fail(void) {
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

void *rl_malloc(size_t size) {
    return should_fail() ? NULL : malloc(size);
}

void *rl_calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count, size);
}

void *rl_realloc(void *ptr, size_t size) {
    return should_fail() ? NULL : realloc(ptr, size);
}

char *rl_strndup(const char *s, size_t len) {
    char *copy = rl_malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void rl_free(void *ptr) {
    free(ptr);
}

void rl_alloc_fail_after(long n) {
    fail_after = n;
}
