/*
 * replay_log.h: reading access logs for `rlimitctl replay`: lines from plain, gzip or
 * standard input, and the three line formats (combined, JSON lines, CSV) parsed into
 * records.
 *
 * Nothing is allocated per line: the reader hands out lines inside its buffer, and a
 * record points into the line or into the parser's scratch buffer (decoded JSON
 * strings, unquoted CSV fields); both stay valid until the next line is read or parsed.
 */
#ifndef RL_REPLAY_LOG_H
#define RL_REPLAY_LOG_H

#include <stddef.h>
#include <stdint.h>

#define RL_REPLAY_LINE_MAX (1u << 20) /* bytes of a line at most; longer is malformed */

typedef enum rl_replay_format {
    RL_REPLAY_COMBINED, /* nginx/Apache combined, optionally with $msec at the end */
    RL_REPLAY_JSONL,    /* one JSON object a line */
    RL_REPLAY_CSV,      /* a header line, then RFC 4180 records */
} rl_replay_format;

/* One request of the log. Strings are not NUL-terminated; a length of 0 means absent. */
typedef struct rl_replay_rec {
    int64_t ts_us;      /* microseconds since the Unix epoch */
    int whole_second;   /* 1: the log gave whole seconds only (combined without $msec) */
    const char *key;    /* the key as logged (combined: $remote_addr) */
    size_t key_len;     /* bytes of key */
    const char *path;   /* the request path, without the query string */
    size_t path_len;    /* bytes of path */
    const char *policy; /* the line's own policy (jsonl, csv), or NULL */
    size_t policy_len;  /* bytes of policy */
    int64_t cost;       /* units (default 1) */
} rl_replay_rec;

typedef struct rl_replay_input rl_replay_input;
typedef struct rl_replay_parser rl_replay_parser;

// Opens path for reading lines ("-": standard input); gzip data (by its magic bytes)
// is inflated. Returns the input (rl_replay_input_close), or NULL with the reason in err.
rl_replay_input *rl_replay_input_open(const char *path, char *err, size_t errlen);

// Reads the next line (without its "\n" and a "\r" before it) into *line, *len.
// Returns 1 for a line, 2 for a line longer than RL_REPLAY_LINE_MAX (its first bytes;
// the rest is skipped), 0 at the end, -1 on a read error (the reason in err).
int rl_replay_input_line(rl_replay_input *in, const char **line, size_t *len, char *err,
                         size_t errlen);

// Closes the input (standard input is left open). NULL is fine.
void rl_replay_input_close(rl_replay_input *in);

// Returns a parser for format whose key is the member or column key_field (jsonl, csv;
// ignored for combined), or NULL if out of memory. A CSV parser takes its header from
// the first line it parses (rl_replay_parser_reset starts a new file).
rl_replay_parser *rl_replay_parser_new(rl_replay_format format, const char *key_field);

// Forgets the CSV header (the next line is a new file's header). Other formats: no-op.
void rl_replay_parser_reset(rl_replay_parser *p);

// Parses one line into *rec. Returns 1 for a record, 0 for a line that is no request
// (a CSV header, an empty line), -1 for a malformed line (*reason: a static sentence),
// -2 for a CSV header lacking the ts or key column (the file cannot be read).
int rl_replay_parse(rl_replay_parser *p, const char *line, size_t len, rl_replay_rec *rec,
                    const char **reason);

// Frees the parser. NULL is fine.
void rl_replay_parser_free(rl_replay_parser *p);

// Parses an RFC 3339 timestamp ("2024-12-04T08:13:20.5Z", "...+01:00") or epoch seconds
// with an optional fraction ("1733300000.123") into microseconds. Returns 0, or -1.
int rl_replay_parse_time(const char *text, size_t len, int64_t *us);

#endif
