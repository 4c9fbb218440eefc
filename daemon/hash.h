/*
 * hash.h: the keyed hash of client-chosen names (policy and key), for hash tables.
 *
 * SipHash (Aumasson and Bernstein) with a 128-bit key drawn from getrandom() when the
 * process starts: without the key, nobody can compute which names share a bucket, so
 * a client cannot pick keys that pile into one chain or evict each other's slots.
 * Tables use SipHash-1-3 (rl_hash*), and so do the fingerprints compared only within the
 * process (a policy's limits across a reload, config_policy.c; the limits an over-limit
 * cache entry was decided under, redis_cache.c); rl_siphash24 is the reference
 * SipHash-2-4 with a key of the caller's. Nothing hashed here is stored or sent
 * anywhere: the key may change from one run to the next.
 */
#ifndef RL_HASH_H
#define RL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RL_HASH_KEY_BYTES 16

/* A hash being computed over several pieces (rl_hash_feed), as if concatenated. */
typedef struct rl_hasher {
    uint64_t v[4]; /* SipHash state */
    uint64_t tail; /* bytes not yet compressed, little-endian */
    size_t total;  /* bytes fed so far */
} rl_hasher;

// Returns SipHash-2-4 of data (len bytes) under key (16 bytes): the function of the
// SipHash paper, for its test vectors.
uint64_t rl_siphash24(const uint8_t key[RL_HASH_KEY_BYTES], const void *data, size_t len);

// Starts a hash under the process key.
void rl_hash_begin(rl_hasher *h);

// Adds data (len bytes) to the hash.
void rl_hash_feed(rl_hasher *h, const void *data, size_t len);

// Returns the hash of everything fed (SipHash-1-3 under the process key).
uint64_t rl_hash_end(rl_hasher *h);

// Returns the hash of data (len bytes) under the process key.
uint64_t rl_hash(const void *data, size_t len);

// Returns the hash of the name (ns, key) under the process key: rl_hash of a word
// (8 bytes, little-endian) holding ns_len | key_len << 16, then ns padded with zero
// bytes to a whole number of words, then key; so no two names hash the same input,
// and nothing is copied.
uint64_t rl_hash_name(const char *ns, size_t ns_len, const char *key, size_t key_len);

// Tests only: replaces the process key (drawn from getrandom() at start) with key.
void rl_hash_set_key(const uint8_t key[RL_HASH_KEY_BYTES]);

#endif
