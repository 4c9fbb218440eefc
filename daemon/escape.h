/*
 * escape.h: printable forms of binary keys, for logs and JSON answers.
 *
 * Keys are any bytes. Where they are shown to people (the denial log, TOP), bytes
 * that could break a line, a key=value field or a terminal are written as \xHH.
 */
#ifndef RL_ESCAPE_H
#define RL_ESCAPE_H

#include <stddef.h>

// Writes key (len bytes) to out (outlen bytes, NUL-terminated, truncated if short)
// with every byte outside printable ASCII (0x21..0x7e), and the backslash, written as
// \xHH: a space is \x20, a backslash \x5c. Returns the length the whole escaped key
// needs (snprintf semantics).
size_t rl_escape_key(const char *key, size_t len, char *out, size_t outlen);

// Returns 1 if key (len bytes) is valid UTF-8 without control characters (U+0000..
// U+001F, U+007F), so that it can be shown as it is; 0 otherwise.
int rl_key_is_text(const char *key, size_t len);

// Writes key as lowercase hex (2 * len characters) to out (outlen bytes, NUL-
// terminated, truncated if short).
void rl_hex_key(const char *key, size_t len, char *out, size_t outlen);

#endif
