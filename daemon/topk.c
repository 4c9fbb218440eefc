/*
 * topk.c: Space-Saving over two windows.
 */
#include "topk.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"

/* One window's counters, as parallel arrays so that a lookup scans 512 bytes. */
typedef struct window {
    uint64_t hashes[RL_TOPK_SLOTS];            /* hash of each counter's whole key */
    uint64_t counts[RL_TOPK_SLOTS];            /* estimated denials */
    uint64_t errors[RL_TOPK_SLOTS];            /* count inherited from the evicted key */
    uint32_t lens[RL_TOPK_SLOTS];              /* whole key length */
    char keys[RL_TOPK_SLOTS][RL_TOPK_KEY_MAX]; /* first bytes of each key */
    size_t used;                               /* counters in use */
    uint64_t evictions;                        /* counters handed to another key */
} window;

struct rl_topk {
    window windows[2]; /* current and previous */
    int current;       /* index of the current window */
    int64_t start_ms;  /* when the current window began */
    int64_t window_ms; /* window length */
};

/* Keyed (hash.h): two long keys with the same first bytes and length are told apart
   by this hash, so clients must not be able to make it collide. */
static uint64_t key_hash(const char *key, size_t len) {
    return rl_hash(key, len);
}

static size_t kept_len(size_t len) {
    return len < RL_TOPK_KEY_MAX ? len : RL_TOPK_KEY_MAX;
}

// Returns the counter of key in w, or -1.
static int find(const window *w, uint64_t h, const char *key, size_t len) {
    for (size_t i = 0; i < w->used; i++)
        if (w->hashes[i] == h && w->lens[i] == len && memcmp(w->keys[i], key, kept_len(len)) == 0)
            return (int)i;
    return -1;
}

static size_t min_slot(const window *w) {
    size_t m = 0;
    for (size_t i = 1; i < w->used; i++)
        if (w->counts[i] < w->counts[m])
            m = i;
    return m;
}

static void clear(window *w) {
    w->used = 0;
    w->evictions = 0;
}

// Moves to the window that now_ms falls in, forgetting windows that ended before.
static void advance(rl_topk *t, int64_t now_ms) {
    int64_t elapsed = now_ms - t->start_ms;
    if (elapsed < t->window_ms)
        return;
    if (elapsed >= 2 * t->window_ms)
        clear(&t->windows[t->current]);
    t->current ^= 1;
    clear(&t->windows[t->current]);
    t->start_ms += elapsed / t->window_ms * t->window_ms;
}

rl_topk *rl_topk_new(int64_t window_ms) {
    rl_topk *t = rl_malloc(sizeof(*t));
    if (!t)
        return NULL;
    clear(&t->windows[0]);
    clear(&t->windows[1]);
    t->current = 0;
    t->start_ms = INT64_MIN / 2; /* the first add starts a window */
    t->window_ms = window_ms > 0 ? window_ms : RL_TOPK_WINDOW_MS;
    return t;
}

void rl_topk_add(rl_topk *t, const char *key, size_t len, int64_t now_ms) {
    if (t->start_ms == INT64_MIN / 2)
        t->start_ms = now_ms;
    advance(t, now_ms);
    window *w = &t->windows[t->current];
    uint64_t h = key_hash(key, len);
    int found = find(w, h, key, len);
    if (found >= 0) {
        w->counts[found]++;
        return;
    }
    size_t slot = w->used;
    uint64_t inherited = 0;
    if (w->used < RL_TOPK_SLOTS) {
        w->used++;
    } else {
        slot = min_slot(w);
        inherited = w->counts[slot];
        w->evictions++;
    }
    w->hashes[slot] = h;
    w->lens[slot] = (uint32_t)len;
    memcpy(w->keys[slot], key, kept_len(len));
    w->counts[slot] = inherited + 1;
    w->errors[slot] = inherited;
}

// The most an absent key can have been denied in w: nothing, unless w evicted.
static uint64_t absent_bound(const window *w) {
    return w->evictions ? w->counts[min_slot(w)] : 0;
}

static rl_topk_key entry(const window *w, size_t i) {
    return (rl_topk_key){w->keys[i], kept_len(w->lens[i]), w->lens[i], w->counts[i], w->errors[i]};
}

// Adds to e what other (the other window) holds for e's key, or its bound.
static void merge(rl_topk_key *e, uint64_t h, const window *other) {
    int j = find(other, h, e->key, e->key_len);
    uint64_t count = j >= 0 ? other->counts[j] : absent_bound(other);
    uint64_t error = j >= 0 ? other->errors[j] : absent_bound(other);
    e->denied += count;
    e->error += error;
}

static int by_denials(const void *a, const void *b) {
    const rl_topk_key *x = a, *y = b;
    if (x->denied != y->denied)
        return x->denied > y->denied ? -1 : 1;
    size_t n = x->kept < y->kept ? x->kept : y->kept;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->kept > y->kept) - (x->kept < y->kept);
}

size_t rl_topk_list(rl_topk *t, int64_t now_ms, rl_topk_key *out, size_t n) {
    rl_topk_key all[2 * RL_TOPK_SLOTS];
    size_t count = 0;
    if (t->start_ms == INT64_MIN / 2)
        return 0;
    advance(t, now_ms);
    const window *cur = &t->windows[t->current], *prev = &t->windows[t->current ^ 1];
    for (size_t i = 0; i < cur->used; i++) {
        all[count] = entry(cur, i);
        merge(&all[count++], cur->hashes[i], prev);
    }
    for (size_t i = 0; i < prev->used; i++) {
        if (find(cur, prev->hashes[i], prev->keys[i], prev->lens[i]) >= 0)
            continue;
        all[count] = entry(prev, i);
        merge(&all[count++], prev->hashes[i], cur);
    }
    qsort(all, count, sizeof(all[0]), by_denials);
    if (count > n)
        count = n;
    memcpy(out, all, count * sizeof(all[0]));
    return count;
}

void rl_topk_free(rl_topk *t) {
    rl_free(t);
}
