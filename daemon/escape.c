/*
 * escape.c: printable, unambiguous forms of names and keys (see escape.h).
 */
#include "escape.h"

#include <stdint.h>

static const char hex_digits[] = "0123456789abcdef";

/* Inclusive ranges of the characters that are always escaped (escape.h). */
static const struct {
    uint32_t first, last;
} escaped_ranges[] = {
    {0x0080, 0x00a0},   /* C1 controls, no-break space */
    {0x00ad, 0x00ad},   /* soft hyphen */
    {0x061c, 0x061c},   /* Arabic letter mark */
    {0x1680, 0x1680},   /* Ogham space mark */
    {0x180e, 0x180e},   /* Mongolian vowel separator */
    {0x2000, 0x200f},   /* spaces, zero-width characters, LRM, RLM */
    {0x2028, 0x202f},   /* line and paragraph separators, bidi embeddings and overrides */
    {0x205f, 0x206f},   /* medium space, word joiner, invisible operators, bidi isolates */
    {0x3000, 0x3000},   /* ideographic space */
    {0xfeff, 0xfeff},   /* zero-width no-break space (byte order mark) */
    {0xfff9, 0xfffb},   /* interlinear annotation controls */
    {0xe0000, 0xe007f}, /* tags */
};

static int is_escaped_char(uint32_t cp) {
    for (size_t i = 0; i < sizeof(escaped_ranges) / sizeof(escaped_ranges[0]); i++)
        if (cp >= escaped_ranges[i].first && cp <= escaped_ranges[i].last)
            return 1;
    return 0;
}

// Returns the length of the UTF-8 sequence at s (at most left bytes, s[0] >= 0x80)
// and its scalar value in *cp, or 0 if it is not a valid, shortest-form encoding.
static size_t utf8_sequence(const uint8_t *s, size_t left, uint32_t *cp) {
    size_t n;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, *cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, *cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, *cp = s[0] & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = *cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && *cp < 0x800) || (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
        (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

// Returns how many bytes at s (left of them) form the next unit: one character kept
// as it is (*escape 0), or bytes each written \xHH (*escape 1).
static size_t next_unit(const uint8_t *s, size_t left, int flags, int *escape) {
    uint32_t cp;
    if (s[0] < 0x80) {
        *escape = s[0] < 0x20 || s[0] == 0x7f || (s[0] == ' ' && !(flags & RL_ESCAPE_KEEP_SPACE));
        return 1;
    }
    size_t n = (flags & RL_ESCAPE_UTF8) ? utf8_sequence(s, left, &cp) : 0;
    *escape = n == 0 || is_escaped_char(cp);
    return n ? n : 1;
}

/* Output being written: out holds whole pieces only, need counts every piece. */
typedef struct sink {
    char *out;   /* the buffer */
    size_t len;  /* its size */
    size_t need; /* bytes the whole escaped form takes */
    int stopped; /* a piece did not fit: nothing more is written */
} sink;

static void put(sink *k, const char *piece, size_t n) {
    if (!k->stopped && k->need + n < k->len) {
        for (size_t i = 0; i < n; i++)
            k->out[k->need + i] = piece[i];
    } else {
        k->stopped = 1;
    }
    k->need += n;
}

static void put_byte(sink *k, uint8_t b, int escape) {
    char piece[4] = {'\\', 'x', hex_digits[b >> 4], hex_digits[b & 15]};
    if (b == '\\')
        put(k, "\\\\", 2);
    else if (escape)
        put(k, piece, 4);
    else
        put(k, (const char *)&b, 1);
}

size_t rl_escape(const char *s, size_t len, int flags, char *out, size_t outlen) {
    const uint8_t *p = (const uint8_t *)s;
    sink k = {out, outlen, 0, 0};
    size_t written = 0;
    for (size_t i = 0; i < len;) {
        int escape;
        size_t n = next_unit(p + i, len - i, flags, &escape);
        for (size_t j = 0; j < n; j++)
            put_byte(&k, p[i + j], escape);
        i += n;
        if (!k.stopped)
            written = k.need;
    }
    if (outlen)
        out[written < outlen ? written : outlen - 1] = '\0';
    return k.need;
}

size_t rl_escape_key(const char *key, size_t len, char *out, size_t outlen) {
    return rl_escape(key, len, 0, out, outlen);
}

int rl_key_is_text(const char *key, size_t len) {
    const uint8_t *s = (const uint8_t *)key;
    for (size_t i = 0; i < len;) {
        int escape;
        i += next_unit(s + i, len - i, RL_ESCAPE_UTF8, &escape);
        if (escape || s[i - 1] == '\\')
            return 0;
    }
    return 1;
}

void rl_hex_key(const char *key, size_t len, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 2 < outlen; i++) {
        out[o++] = hex_digits[(uint8_t)key[i] >> 4];
        out[o++] = hex_digits[(uint8_t)key[i] & 15];
    }
    if (outlen)
        out[o] = '\0';
}
