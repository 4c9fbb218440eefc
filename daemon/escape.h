/*
 * escape.h: printable, unambiguous forms of names and keys, for logs and people.
 *
 * Keys and policy names are any bytes. Wherever they are shown (the denial log, the
 * daemon's log, TOP, rlimitctl), they go through rl_escape, whose rule is:
 *
 *   - a backslash is written `\\`;
 *   - a byte that may not be shown is written `\xHH` (two lowercase hex digits):
 *     C0 controls and the space (0x00-0x20), DEL (0x7f), every byte of a character in
 *     the escaped set below, every byte that is not part of valid UTF-8 (overlong
 *     forms, surrogates and values past U+10FFFF included), and, without RL_ESCAPE_UTF8,
 *     every byte from 0x80 up;
 *   - everything else is written as it is.
 *
 * The escaped set of characters: C1 controls (U+0080-U+009F), bidirectional controls
 * (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), invisible and formatting
 * characters (U+00AD, U+180E, U+200B-U+200D, U+2060-U+2065, U+206A-U+206F, U+FEFF,
 * U+FFF9-U+FFFB, tags U+E0000-U+E007F), line and paragraph separators (U+2028,
 * U+2029) and the spaces other than U+0020 (U+00A0, U+1680, U+2000-U+200A, U+202F,
 * U+205F, U+3000).
 *
 * The mapping is injective: reading `\\` as a backslash and `\xHH` as the byte HH
 * gives the original bytes back, so no key can print as another key does. The output
 * holds no control character, no space (unless RL_ESCAPE_KEEP_SPACE) and, without
 * RL_ESCAPE_UTF8, only printable ASCII.
 */
#ifndef RL_ESCAPE_H
#define RL_ESCAPE_H

#include <stddef.h>

#define RL_ESCAPE_UTF8 1       /* keep valid UTF-8 outside the escaped set */
#define RL_ESCAPE_KEEP_SPACE 2 /* keep U+0020 (log messages, whose words it separates) */

// Writes s (len bytes) escaped by the rule above, under flags (RL_ESCAPE_*), to out
// (outlen bytes, NUL-terminated). When out is short it holds the escapes of a prefix
// of s, never part of one escape. Returns the length the whole escaped form needs
// (snprintf semantics): out holds all of it if the result is below outlen.
size_t rl_escape(const char *s, size_t len, int flags, char *out, size_t outlen);

// rl_escape with flags 0: the denial log's form, printable ASCII without spaces.
size_t rl_escape_key(const char *key, size_t len, char *out, size_t outlen);

// Returns 1 if rl_escape with RL_ESCAPE_UTF8 writes key (len bytes) as it is, so that
// it can be shown without escaping; 0 otherwise.
int rl_key_is_text(const char *key, size_t len);

// Writes key as lowercase hex (2 * len characters) to out (outlen bytes, NUL-
// terminated, truncated if short).
void rl_hex_key(const char *key, size_t len, char *out, size_t outlen);

#endif
