/*
 * escape.c: printable forms of binary keys.
 */
#include "escape.h"

#include <stdint.h>

static const char hex_digits[] = "0123456789abcdef";

size_t rl_escape_key(const char *key, size_t len, char *out, size_t outlen) {
    size_t need = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)key[i];
        char piece[4] = {(char)b};
        size_t n = 1;
        if (b < 0x21 || b > 0x7e || b == '\\') {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex_digits[b >> 4];
            piece[3] = hex_digits[b & 15];
            n = 4;
        }
        for (size_t j = 0; j < n; j++, need++)
            if (need + 1 < outlen)
                out[need] = piece[j];
    }
    if (outlen)
        out[need < outlen ? need : outlen - 1] = '\0';
    return need;
}

// Returns the length of the UTF-8 sequence at s (at most left bytes), or 0 if it is
// not a valid, shortest-form encoding of a scalar value.
static size_t utf8_sequence(const uint8_t *s, size_t left) {
    uint32_t cp;
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int rl_key_is_text(const char *key, size_t len) {
    const uint8_t *s = (const uint8_t *)key;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 0;
        size_t n = utf8_sequence(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
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
