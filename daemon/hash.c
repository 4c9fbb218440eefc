/*
 * hash.c: SipHash under a key drawn at start (see hash.h).
 */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define TABLE_C_ROUNDS 1 /* SipHash-1-3 for tables */
#define TABLE_D_ROUNDS 3

static uint64_t process_key[2]; /* k0, k1 */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void sip_round(uint64_t v[4]) {
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

static inline void compress(uint64_t v[4], uint64_t m, int rounds) {
    v[3] ^= m;
    for (int i = 0; i < rounds; i++)
        sip_round(v);
    v[0] ^= m;
}

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t x;
    memcpy(&x, p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

static inline void begin(rl_hasher *h, uint64_t k0, uint64_t k1) {
    h->v[0] = k0 ^ 0x736f6d6570736575ull;
    h->v[1] = k1 ^ 0x646f72616e646f6dull;
    h->v[2] = k0 ^ 0x6c7967656e657261ull;
    h->v[3] = k1 ^ 0x7465646279746573ull;
    h->tail = 0;
    h->total = 0;
}

static inline void feed(rl_hasher *h, const void *data, size_t len, int rounds) {
    const uint8_t *p = data;
    size_t have = h->total & 7;
    h->total += len;
    if (have) {
        for (; have < 8 && len; have++, len--)
            h->tail |= (uint64_t)*p++ << (8 * have);
        if (have < 8)
            return;
        compress(h->v, h->tail, rounds);
        h->tail = 0;
    }
    for (; len >= 8; p += 8, len -= 8)
        compress(h->v, load_le64(p), rounds);
    for (size_t i = 0; i < len; i++)
        h->tail |= (uint64_t)p[i] << (8 * i);
}

static inline uint64_t end(rl_hasher *h, int c_rounds, int d_rounds) {
    compress(h->v, h->tail | (uint64_t)h->total << 56, c_rounds);
    h->v[2] ^= 0xff;
    for (int i = 0; i < d_rounds; i++)
        sip_round(h->v);
    return h->v[0] ^ h->v[1] ^ h->v[2] ^ h->v[3];
}

uint64_t rl_siphash24(const uint8_t key[RL_HASH_KEY_BYTES], const void *data, size_t len) {
    rl_hasher h;
    begin(&h, load_le64(key), load_le64(key + 8));
    feed(&h, data, len, 2);
    return end(&h, 2, 4);
}

void rl_hash_begin(rl_hasher *h) {
    begin(h, process_key[0], process_key[1]);
}

void rl_hash_feed(rl_hasher *h, const void *data, size_t len) {
    feed(h, data, len, TABLE_C_ROUNDS);
}

uint64_t rl_hash_end(rl_hasher *h) {
    return end(h, TABLE_C_ROUNDS, TABLE_D_ROUNDS);
}

uint64_t rl_hash(const void *data, size_t len) {
    rl_hasher h;
    begin(&h, process_key[0], process_key[1]);
    feed(&h, data, len, TABLE_C_ROUNDS);
    return end(&h, TABLE_C_ROUNDS, TABLE_D_ROUNDS);
}

static inline uint64_t load_le32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap32(x);
#endif
    return x;
}

// Returns the n (< 8) bytes at p as a little-endian word, reading only those bytes
// (two overlapping loads: the bytes they share are the same, so or-ing them is exact).
static inline uint64_t load_partial(const uint8_t *p, size_t n) {
    if (n >= 4)
        return load_le32(p) | load_le32(p + n - 4) << (8 * (n - 4));
    if (n >= 2)
        return (uint64_t)(p[0] | p[1] << 8) | (uint64_t)(p[n - 2] | p[n - 1] << 8) << (8 * (n - 2));
    return n ? p[0] : 0;
}

// Compresses the whole words of s (len bytes); returns the bytes left (< 8) as a word.
static inline uint64_t compress_words(uint64_t v[4], const uint8_t *s, size_t len) {
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8)
        compress(v, load_le64(s + i), TABLE_C_ROUNDS);
    return load_partial(s + full, len - full);
}

uint64_t rl_hash_name(const char *ns, size_t ns_len, const char *key, size_t key_len) {
    rl_hasher h;
    begin(&h, process_key[0], process_key[1]);
    compress(h.v, (uint64_t)ns_len | (uint64_t)key_len << 16, TABLE_C_ROUNDS);
    uint64_t ns_tail = compress_words(h.v, (const uint8_t *)ns, ns_len);
    if (ns_len & 7)
        compress(h.v, ns_tail, TABLE_C_ROUNDS);
    h.tail = compress_words(h.v, (const uint8_t *)key, key_len);
    h.total = 8 + ((ns_len + 7) & ~(size_t)7) + key_len;
    return end(&h, TABLE_C_ROUNDS, TABLE_D_ROUNDS);
}

void rl_hash_set_key(const uint8_t key[RL_HASH_KEY_BYTES]) {
    process_key[0] = load_le64(key);
    process_key[1] = load_le64(key + 8);
}

// Fills key from getrandom(), else /dev/urandom. Returns 0, or -1 if neither answered.
static int random_key(uint8_t key[RL_HASH_KEY_BYTES]) {
    ssize_t n;
    do
        n = getrandom(key, RL_HASH_KEY_BYTES, 0);
    while (n < 0 && errno == EINTR);
    if (n == RL_HASH_KEY_BYTES)
        return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, key, RL_HASH_KEY_BYTES);
    close(fd);
    return n == RL_HASH_KEY_BYTES ? 0 : -1;
}

// Draws the process key before main() runs, so every table sees one key.
__attribute__((constructor)) static void draw_process_key(void) {
    uint8_t key[RL_HASH_KEY_BYTES];
    if (random_key(key) != 0) {
        uint64_t now = (uint64_t)rl_clock_mono_us();
        uint64_t mix[2] = {now * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid(),
                           (uint64_t)rl_clock_real_us() ^ (uint64_t)(uintptr_t)&mix};
        memcpy(key, mix, sizeof(key));
        rl_log_warn("no random source (getrandom, /dev/urandom): hash tables are keyed "
                    "from the clock, so colliding keys are easier to guess");
    }
    rl_hash_set_key(key);
}
