/*
 * replay_log.c: access-log lines into records (see replay_log.h). Hand-written
 * scanners, no regex, no allocation per line.
 */
#include "replay_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "alloc.h"

#define INPUT_BUF (RL_REPLAY_LINE_MAX + (1u << 18)) /* a full line and room to read */
#define CSV_MAX_COLUMNS 64                          /* columns of a CSV file at most */

struct rl_replay_input {
    gzFile gz;        /* the file, read through zlib (transparent for plain data) */
    char *buf;        /* INPUT_BUF bytes */
    size_t start;     /* the next line begins here */
    size_t end;       /* bytes in buf */
    int eof;          /* gzread reached the end */
    int skipping;     /* the rest of an overlong line is being skipped */
    const char *name; /* the path, for messages */
};

/* ---- input ---- */

rl_replay_input *rl_replay_input_open(const char *path, char *err, size_t errlen) {
    int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    rl_replay_input *in = rl_calloc(1, sizeof(*in));
    if (in)
        in->buf = rl_malloc(INPUT_BUF);
    if (in && in->buf)
        in->gz = gzdopen(fd, "rb");
    if (!in || !in->buf || !in->gz) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        if (in)
            rl_free(in->buf);
        rl_free(in);
        return NULL;
    }
    gzbuffer(in->gz, 1u << 18);
    in->name = path;
    return in;
}

// Moves the unread bytes to the front and reads more. Returns 0, or -1 on an error.
static int input_fill(rl_replay_input *in, char *err, size_t errlen) {
    memmove(in->buf, in->buf + in->start, in->end - in->start);
    in->end -= in->start;
    in->start = 0;
    int n = gzread(in->gz, in->buf + in->end, (unsigned)(INPUT_BUF - in->end));
    if (n < 0) {
        int code;
        const char *msg = gzerror(in->gz, &code);
        snprintf(err, errlen, "%s: %s", in->name, code == Z_ERRNO ? strerror(errno) : msg);
        return -1;
    }
    if (n == 0)
        in->eof = 1;
    in->end += (size_t)n;
    return 0;
}

// Hands out bytes [start, stop) as a line, stripping one "\r" at its end.
static void take_line(rl_replay_input *in, size_t stop, const char **line, size_t *len) {
    size_t n = stop - in->start;
    *line = in->buf + in->start;
    if (n > 0 && (*line)[n - 1] == '\r')
        n--;
    *len = n;
}

int rl_replay_input_line(rl_replay_input *in, const char **line, size_t *len, char *err,
                         size_t errlen) {
    for (;;) {
        char *nl = memchr(in->buf + in->start, '\n', in->end - in->start);
        if (nl) {
            size_t stop = (size_t)(nl - in->buf);
            int skipped = in->skipping;
            take_line(in, stop, line, len);
            in->start = stop + 1;
            in->skipping = 0;
            if (!skipped)
                return 1;
            continue;
        }
        if (in->end - in->start >= RL_REPLAY_LINE_MAX) {
            int first = !in->skipping;
            take_line(in, in->start + RL_REPLAY_LINE_MAX, line, len);
            in->start += RL_REPLAY_LINE_MAX;
            in->skipping = 1;
            if (first)
                return 2;
            continue;
        }
        if (in->eof) {
            if (in->start == in->end)
                return 0;
            int skipped = in->skipping;
            take_line(in, in->end, line, len);
            in->start = in->end;
            if (!skipped)
                return 1;
            continue;
        }
        if (input_fill(in, err, errlen) != 0)
            return -1;
    }
}

void rl_replay_input_close(rl_replay_input *in) {
    if (!in)
        return;
    gzclose(in->gz);
    rl_free(in->buf);
    rl_free(in);
}

/* ---- numbers and times ---- */

// Reads exactly n digits at s into *v. Returns 0, or -1.
static int digits(const char *s, size_t n, int64_t *v) {
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

// Seconds since the epoch of a date and time, or -1 if a field is out of range.
static int64_t epoch_seconds(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s) {
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

// Parses a fraction of a second (".123456", up to 9 digits kept to microseconds) at
// *s; advances *s. Returns the microseconds, or -1 for a dot without digits.
static int64_t fraction_us(const char **s, const char *end) {
    if (*s >= end || **s != '.')
        return 0;
    (*s)++;
    int64_t us = 0, scale = 100000;
    const char *first = *s;
    for (; *s < end && **s >= '0' && **s <= '9'; (*s)++) {
        us += (**s - '0') * scale;
        scale /= 10;
    }
    return *s == first ? -1 : us;
}

// Epoch seconds with an optional fraction ("1733300000.123"). Returns 0, or -1.
static int parse_epoch(const char *s, size_t len, int64_t *us) {
    const char *p = s, *end = s + len;
    int64_t secs = 0;
    for (; p < end && *p >= '0' && *p <= '9' && p - s < 12; p++)
        secs = secs * 10 + (*p - '0');
    if (p == s)
        return -1;
    int64_t frac = fraction_us(&p, end);
    if (frac < 0 || p != end)
        return -1;
    *us = secs * 1000000 + frac;
    return 0;
}

// The zone of an RFC 3339 time ("Z", "+01:00") at s..end into seconds east. 0 or -1.
static int parse_zone(const char *s, const char *end, int64_t *east) {
    int64_t h, m;
    if (end - s == 1 && (*s == 'Z' || *s == 'z')) {
        *east = 0;
        return 0;
    }
    if (end - s != 6 || (*s != '+' && *s != '-') || s[3] != ':' || digits(s + 1, 2, &h) ||
        digits(s + 4, 2, &m) || h > 23 || m > 59)
        return -1;
    *east = (*s == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return 0;
}

int rl_replay_parse_time(const char *s, size_t len, int64_t *us) {
    int64_t y, mo, d, h, mi, sec, east;
    if (len < 20 || s[4] != '-' || s[7] != '-')
        return parse_epoch(s, len, us);
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    const char *p = s + 19, *end = s + len;
    int64_t frac = fraction_us(&p, end);
    int64_t base = epoch_seconds(y, mo, d, h, mi, sec);
    if (frac < 0 || base < 0 || parse_zone(p, end, &east) != 0)
        return -1;
    *us = (base - east) * 1000000 + frac;
    return 0;
}

// A decimal cost of 1..2^31-1. Returns 0, or -1.
static int parse_cost(const char *s, size_t len, int64_t *cost) {
    if (len == 0 || len > 10 || digits(s, len, cost) != 0 || *cost < 1 || *cost > INT32_MAX)
        return -1;
    return 0;
}

/* ---- the parser ---- */

struct rl_replay_parser {
    rl_replay_format format; /* which line format */
    char *key_field;         /* jsonl/csv: the member or column holding the key (owned) */
    size_t key_field_len;    /* bytes of key_field */
    char *scratch;           /* decoded strings of the current line (RL_REPLAY_LINE_MAX) */
    size_t used;             /* bytes of scratch taken by the current line */
    int have_header;         /* csv: the header was read */
    int columns;             /* csv: columns of the header */
    int col[5];              /* csv: column of ts, key, path, cost, policy, or -1 */
};

enum { COL_TS, COL_KEY, COL_PATH, COL_COST, COL_POLICY };

rl_replay_parser *rl_replay_parser_new(rl_replay_format format, const char *key_field) {
    rl_replay_parser *p = rl_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->format = format;
    p->key_field_len = strlen(key_field);
    p->key_field = rl_strndup(key_field, p->key_field_len);
    p->scratch = rl_malloc(RL_REPLAY_LINE_MAX);
    if (!p->key_field || !p->scratch) {
        rl_replay_parser_free(p);
        return NULL;
    }
    return p;
}

void rl_replay_parser_reset(rl_replay_parser *p) {
    p->have_header = 0;
}

void rl_replay_parser_free(rl_replay_parser *p) {
    if (!p)
        return;
    rl_free(p->key_field);
    rl_free(p->scratch);
    rl_free(p);
}

/* ---- combined ---- */

// "10/Oct/2000:13:55:36 -0700" (exactly 26 bytes) into microseconds. Returns 0 or -1.
static int parse_clf_time(const char *s, int64_t *us) {
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t d, y, h, mi, sec, zh, zm;
    if (s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' ||
        s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
        return -1;
    int64_t mo = 0;
    for (int i = 0; i < 12 && !mo; i++)
        if (memcmp(months + 3 * i, s + 3, 3) == 0)
            mo = i + 1;
    if (!mo || digits(s, 2, &d) || digits(s + 7, 4, &y) || digits(s + 12, 2, &h) ||
        digits(s + 15, 2, &mi) || digits(s + 18, 2, &sec) || digits(s + 22, 2, &zh) ||
        digits(s + 24, 2, &zm))
        return -1;
    int64_t base = epoch_seconds(y, mo, d, h, mi, sec);
    if (base < 0)
        return -1;
    *us = (base - (s[21] == '-' ? -1 : 1) * (zh * 3600 + zm * 60)) * 1000000;
    return 0;
}

// The path of a request line ("GET /a?b HTTP/1.1"), without its query. Returns 0 or -1.
static int request_path(const char *s, size_t len, rl_replay_rec *rec) {
    const char *sp = memchr(s, ' ', len);
    if (!sp || sp == s)
        return -1;
    const char *p = sp + 1, *end = s + len;
    if (end - p > 8 && (memcmp(p, "http://", 7) == 0 || memcmp(p, "https://", 8) == 0)) {
        const char *slash = memchr(p + 8, '/', (size_t)(end - p - 8));
        p = slash ? slash : end;
    }
    const char *stop = p;
    while (stop < end && *stop != ' ' && *stop != '?')
        stop++;
    if (stop == p)
        return -1;
    rec->path = p;
    rec->path_len = (size_t)(stop - p);
    return 0;
}

// Returns 1 if s..end looks like nginx's $msec ("1733300000.123"), else 0.
static int is_msec(const char *s, const char *end) {
    const char *dot = memchr(s, '.', (size_t)(end - s));
    int64_t v;
    return dot && dot - s >= 9 && dot - s <= 11 && end - dot == 4 &&
           digits(s, (size_t)(dot - s), &v) == 0 && digits(dot + 1, 3, &v) == 0;
}

// After the request's closing quote: a $msec as the last field, or the one before the
// last ($request_time after it), replaces the whole-second time. Returns 0 or -1.
static int trailing_msec(const char *tail, const char *end, rl_replay_rec *rec) {
    for (int field = 0; field < 2; field++) {
        while (end > tail && end[-1] == ' ')
            end--;
        const char *start = end;
        while (start > tail && start[-1] != ' ')
            start--;
        if (start == end || start == tail)
            return 0;
        if (is_msec(start, end)) {
            rec->whole_second = 0;
            return parse_epoch(start, (size_t)(end - start), &rec->ts_us);
        }
        end = start;
    }
    return 0;
}

// Returns the closing quote of a quoted field starting at start (a quote after an odd
// run of backslashes is escaped; after an even run it closes the field), or NULL.
static const char *closing_quote(const char *start, const char *end) {
    for (const char *s = start;;) {
        const char *q = memchr(s, '"', (size_t)(end - s));
        if (!q)
            return NULL;
        size_t run = 0;
        while (q - run > start && q[-(ptrdiff_t)run - 1] == '\\')
            run++;
        if (run % 2 == 0)
            return q;
        s = q + 1;
    }
}

static int parse_combined(const char *line, size_t len, rl_replay_rec *rec, const char **reason) {
    const char *end = line + len;
    const char *sp = memchr(line, ' ', len);
    const char *lb = sp ? memchr(sp, '[', (size_t)(end - sp)) : NULL;
    if (!sp || sp == line || !lb || end - lb < 31 || lb[27] != ']' || lb[28] != ' ' ||
        lb[29] != '"')
        return *reason = "not a combined log line (address, [time] and \"request\" expected)", -1;
    rec->key = line;
    rec->key_len = (size_t)(sp - line);
    rec->whole_second = 1;
    if (parse_clf_time(lb + 1, &rec->ts_us) != 0)
        return *reason = "bad [time] (dd/Mon/yyyy:HH:MM:SS +zzzz expected)", -1;
    const char *req = lb + 30, *q = closing_quote(req, end);
    if (!q)
        return *reason = "unterminated \"request\"", -1;
    if (request_path(req, (size_t)(q - req), rec) != 0)
        return *reason = "no path in the \"request\"", -1;
    int64_t status;
    if (end - q < 5 || q[1] != ' ' || digits(q + 2, 3, &status) != 0)
        return *reason = "no status after the \"request\"", -1;
    if (trailing_msec(q + 5, end, rec) != 0)
        return *reason = "bad $msec time at the end", -1;
    return 1;
}

/* ---- JSON lines ---- */

#define JSON_MAX_DEPTH 64 /* nesting of skipped values at most */

/* A cursor over one line. */
typedef struct jcur {
    const char *p;   /* the next byte */
    const char *end; /* the line's end */
} jcur;

static void jws(jcur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static int hex4(const char *s, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        x = x * 16 + (uint32_t)d;
    }
    *v = x;
    return 0;
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               out[2] = (char)(0x80 | (cp & 0x3F)), 3;
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Decodes a \u escape at c->p (after the "\u"), a surrogate pair included, into out.
// Returns the bytes written, or 0 if it is invalid.
static size_t junicode(jcur *c, char *out) {
    uint32_t cp, lo;
    if (c->end - c->p < 4 || hex4(c->p, &cp) != 0)
        return 0;
    c->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return 0;
        c->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return utf8_put(out, cp);
}

// Decodes the escapes of a string from c->p (after the opening quote, at the first
// backslash already found at esc) into the parser's scratch. Returns 0 or -1.
static int jstring_escaped(rl_replay_parser *p, jcur *c, const char *esc, const char **s,
                           size_t *len) {
    char *out = p->scratch + p->used, *o = out;
    memcpy(o, c->p, (size_t)(esc - c->p));
    o += esc - c->p;
    c->p = esc;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20)
            return -1;
        if (ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        if (c->p >= c->end)
            return -1;
        char e = *c->p++;
        const char *f = e ? strchr(from, e) : NULL;
        size_t n = f ? (*o = to[f - from], 1) : e == 'u' ? junicode(c, o) : 0;
        if (n == 0)
            return -1;
        o += n;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    *s = out;
    *len = (size_t)(o - out);
    p->used += *len;
    return 0;
}

// Reads a string at c->p (at its opening quote). Without escapes it points into the
// line; with them, into the scratch. Returns 0 or -1.
static int jstring(rl_replay_parser *p, jcur *c, const char **s, size_t *len) {
    if (c->p >= c->end || *c->p != '"')
        return -1;
    const char *start = ++c->p;
    for (const char *q = start; q < c->end; q++) {
        if (*q == '"') {
            *s = start;
            *len = (size_t)(q - start);
            c->p = q + 1;
            return 0;
        }
        if (*q == '\\')
            return jstring_escaped(p, c, q, s, len);
        if ((unsigned char)*q < 0x20)
            return -1;
    }
    return -1;
}

// Reads a number token (JSON's grammar, loosely: sign, digits, fraction, exponent).
static int jnumber(jcur *c, const char **s, size_t *len) {
    const char *start = c->p;
    while (c->p < c->end && (strchr("+-.eE", *c->p) || (*c->p >= '0' && *c->p <= '9')) && *c->p)
        c->p++;
    *s = start;
    *len = (size_t)(c->p - start);
    return *len ? 0 : -1;
}

static int jskip(rl_replay_parser *p, jcur *c, int depth);

// Skips the members or elements of an object or array (after its opening bracket).
static int jskip_container(rl_replay_parser *p, jcur *c, char close, int depth) {
    jws(c);
    if (c->p < c->end && *c->p == close)
        return c->p++, 0;
    for (;;) {
        const char *s;
        size_t n;
        if (close == '}' &&
            (jstring(p, c, &s, &n) != 0 || (jws(c), c->p >= c->end) || *c->p++ != ':'))
            return -1;
        if (jskip(p, c, depth + 1) != 0)
            return -1;
        jws(c);
        if (c->p >= c->end)
            return -1;
        char ch = *c->p++;
        if (ch == close)
            return 0;
        if (ch != ',')
            return -1;
        jws(c);
    }
}

// Skips one value of any kind. Returns 0 or -1.
static int jskip(rl_replay_parser *p, jcur *c, int depth) {
    const char *s;
    size_t n;
    jws(c);
    if (c->p >= c->end || depth > JSON_MAX_DEPTH)
        return -1;
    switch (*c->p) {
    case '"':
        return jstring(p, c, &s, &n);
    case '{':
    case '[':
        return jskip_container(p, c, *c->p++ == '{' ? '}' : ']', depth);
    case 't':
    case 'f':
    case 'n':
        for (s = c->p; c->p < c->end && *c->p >= 'a' && *c->p <= 'z'; c->p++)
            ;
        n = (size_t)(c->p - s);
        return (n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "null", 4))) ||
                       (n == 5 && !memcmp(s, "false", 5))
                   ? 0
                   : -1;
    default:
        return jnumber(c, &s, &n);
    }
}

static int name_is(const char *name, size_t len, const char *want, size_t want_len) {
    return len == want_len && memcmp(name, want, len) == 0;
}

// A scalar value's text: a string's content (*quoted = 1), a number's token, or
// null (len 0). Returns 0 or -1 (objects, arrays, booleans).
static int jscalar(rl_replay_parser *p, jcur *c, const char **s, size_t *len, int *quoted) {
    jws(c);
    *quoted = c->p < c->end && *c->p == '"';
    if (*quoted)
        return jstring(p, c, s, len);
    if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        *len = 0;
        return 0;
    }
    if (c->p < c->end && (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')))
        return jnumber(c, s, len);
    return -1;
}

// Stores the value of a member named name into rec. Returns 0, or -1 with *reason.
static int jmember(rl_replay_parser *p, jcur *c, const char *name, size_t nlen, rl_replay_rec *rec,
                   const char **reason) {
    const char *s = NULL;
    size_t len;
    int quoted;
    if (name_is(name, nlen, p->key_field, p->key_field_len)) {
        if (jscalar(p, c, &s, &len, &quoted) != 0)
            return *reason = "the key is not a string or number", -1;
        rec->key = s;
        rec->key_len = len;
    } else if (name_is(name, nlen, "ts", 2)) {
        if (jscalar(p, c, &s, &len, &quoted) != 0 || len == 0 ||
            (quoted ? rl_replay_parse_time(s, len, &rec->ts_us)
                    : parse_epoch(s, len, &rec->ts_us)) != 0)
            return *reason = "bad ts (RFC 3339 string or epoch seconds expected)", -1;
    } else if (name_is(name, nlen, "path", 4)) {
        if (jscalar(p, c, &s, &len, &quoted) != 0 || (len && !quoted))
            return *reason = "path is not a string", -1;
        rec->path = s;
        rec->path_len = len;
    } else if (name_is(name, nlen, "cost", 4)) {
        if (jscalar(p, c, &s, &len, &quoted) != 0 || quoted ||
            (len && parse_cost(s, len, &rec->cost) != 0))
            return *reason = "bad cost (an integer of 1 or more expected)", -1;
    } else if (name_is(name, nlen, "policy", 6)) {
        if (jscalar(p, c, &s, &len, &quoted) != 0 || (len && !quoted))
            return *reason = "policy is not a string", -1;
        rec->policy = len ? s : NULL;
        rec->policy_len = len;
    } else if (jskip(p, c, 1) != 0) {
        return *reason = "not a JSON object", -1;
    }
    return 0;
}

static int parse_jsonl(rl_replay_parser *p, const char *line, size_t len, rl_replay_rec *rec,
                       const char **reason) {
    jcur c = {line, line + len};
    jws(&c);
    if (c.p == c.end)
        return 0;
    if (*c.p++ != '{')
        return *reason = "not a JSON object", -1;
    jws(&c);
    int empty = c.p < c.end && *c.p == '}';
    if (empty)
        c.p++;
    while (!empty) {
        const char *name;
        size_t nlen;
        jws(&c);
        if (jstring(p, &c, &name, &nlen) != 0 || (jws(&c), c.p >= c.end) || *c.p++ != ':')
            return *reason = "not a JSON object", -1;
        if (jmember(p, &c, name, nlen, rec, reason) != 0)
            return -1;
        jws(&c);
        if (c.p >= c.end || (*c.p != ',' && *c.p != '}'))
            return *reason = "not a JSON object", -1;
        if (*c.p++ == '}')
            break;
    }
    jws(&c);
    if (c.p != c.end)
        return *reason = "bytes after the JSON object", -1;
    return 1;
}

/* ---- CSV ---- */

// Reads one field at *s (a quoted field's "" unescaped into the scratch). Advances *s
// past the field and its comma; *last tells whether it ended the line. Returns 0 or -1.
static int csv_field(rl_replay_parser *p, const char **s, const char *end, const char **f,
                     size_t *len, int *last) {
    const char *q = *s;
    if (q < end && *q == '"') {
        char *out = p->scratch + p->used, *o = out;
        for (q++;; q++) {
            if (q >= end)
                return -1;
            if (*q == '"' && (q + 1 >= end || q[1] != '"'))
                break;
            *o++ = *q;
            q += *q == '"';
        }
        q++;
        *f = out;
        *len = (size_t)(o - out);
        p->used += *len;
        if (q < end && *q != ',')
            return -1;
    } else {
        const char *comma = memchr(q, ',', (size_t)(end - q));
        *f = q;
        q = comma ? comma : end;
        *len = (size_t)(q - *f);
    }
    *last = q >= end;
    *s = q + !*last;
    return 0;
}

static int csv_column(const char *name, size_t len) {
    static const char *const names[] = {"ts", "key", "path", "cost", "policy"};
    for (int i = 0; i < 5; i++)
        if (name_is(name, len, names[i], strlen(names[i])))
            return i;
    return -1;
}

// Reads the header. Returns 0, or -2 (fatal) with *reason.
static int csv_header(rl_replay_parser *p, const char *line, size_t len, const char **reason) {
    const char *s = line, *end = line + len, *f;
    size_t flen;
    int last = len == 0;
    for (int i = 0; i < 5; i++)
        p->col[i] = -1;
    for (p->columns = 0; !last; p->columns++) {
        if (p->columns == CSV_MAX_COLUMNS || csv_field(p, &s, end, &f, &flen, &last) != 0)
            return *reason = "bad CSV header (at most 64 columns, RFC 4180 quoting)", -2;
        int col = name_is(f, flen, p->key_field, p->key_field_len) ? COL_KEY : csv_column(f, flen);
        if (col == COL_KEY && !name_is(f, flen, p->key_field, p->key_field_len))
            col = -1; /* "key" is only the key when --key names it */
        if (col >= 0)
            p->col[col] = p->columns;
    }
    if (p->col[COL_TS] < 0 || p->col[COL_KEY] < 0)
        return *reason = "the CSV header names no ts column or no key column", -2;
    p->have_header = 1;
    return 0;
}

// Stores field number i (text f, flen bytes) into rec. Returns 0 or -1 with *reason.
static int csv_store(rl_replay_parser *p, int i, const char *f, size_t flen, rl_replay_rec *rec,
                     const char **reason) {
    if (i == p->col[COL_TS]) {
        if (rl_replay_parse_time(f, flen, &rec->ts_us) != 0)
            return *reason = "bad ts (RFC 3339 or epoch seconds expected)", -1;
    } else if (i == p->col[COL_KEY]) {
        rec->key = f;
        rec->key_len = flen;
    } else if (i == p->col[COL_PATH]) {
        rec->path = f;
        rec->path_len = flen;
    } else if (i == p->col[COL_COST]) {
        if (flen && parse_cost(f, flen, &rec->cost) != 0)
            return *reason = "bad cost (an integer of 1 or more expected)", -1;
    } else if (i == p->col[COL_POLICY]) {
        rec->policy = flen ? f : NULL;
        rec->policy_len = flen;
    }
    return 0;
}

static int parse_csv(rl_replay_parser *p, const char *line, size_t len, rl_replay_rec *rec,
                     const char **reason) {
    if (!p->have_header)
        return csv_header(p, line, len, reason);
    if (len == 0)
        return 0;
    const char *s = line, *end = line + len, *f;
    size_t flen;
    int last = 0, i = 0;
    for (; !last; i++) {
        if (i == p->columns)
            return *reason = "more fields than the CSV header has columns", -1;
        if (csv_field(p, &s, end, &f, &flen, &last) != 0)
            return *reason = "bad CSV quoting (a record across lines is not supported)", -1;
        if (csv_store(p, i, f, flen, rec, reason) != 0)
            return -1;
    }
    if (i != p->columns)
        return *reason = "fewer fields than the CSV header has columns", -1;
    return 1;
}

/* ---- dispatch ---- */

int rl_replay_parse(rl_replay_parser *p, const char *line, size_t len, rl_replay_rec *rec,
                    const char **reason) {
    memset(rec, 0, sizeof(*rec));
    rec->ts_us = -1;
    rec->cost = 1;
    p->used = 0;
    int rc = p->format == RL_REPLAY_COMBINED ? parse_combined(line, len, rec, reason)
             : p->format == RL_REPLAY_JSONL  ? parse_jsonl(p, line, len, rec, reason)
                                             : parse_csv(p, line, len, rec, reason);
    if (rc != 1 || p->format == RL_REPLAY_COMBINED)
        return rc;
    if (rec->ts_us < 0)
        return *reason = "no ts", -1;
    if (!rec->key)
        return *reason = "no key", -1;
    return 1;
}
