/*
 * alloc.h: the one allocator every daemon module goes through, so that tests can
 * make allocation fail on purpose.
 */
#ifndef RL_ALLOC_H
#define RL_ALLOC_H

#include <stddef.h>

// Like malloc/calloc/realloc/strdup/free. Return NULL on failure (or when a test
// asked for a failure); callers answer INTERNAL or refuse the work, never crash.
void *rl_malloc(size_t size);
void *rl_calloc(size_t count, size_t size);
void *rl_realloc(void *ptr, size_t size);
char *rl_strndup(const char *s, size_t len);
void rl_free(void *ptr);

// Tests only: the next n allocations succeed, every one after fails, until
// rl_alloc_fail_after(-1) restores normal behaviour.
void rl_alloc_fail_after(long n);

#endif
