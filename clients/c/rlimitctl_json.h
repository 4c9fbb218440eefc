/*
 * rlimitctl_json.h: a small JSON reader for rlimitctl's tables.
 *
 * rlimitctl is built from rlimitctl.c and librlimit alone, so the reader comes as a
 * header of static functions (like hiredis's adapters), included by rlimitctl.c only.
 * It parses the daemon's admin answers into a tree: strings decoded to UTF-8 (\u
 * escapes and surrogate pairs included), numbers as doubles, object members in
 * their order. Nesting is limited to 32 levels.
 */
#ifndef RLIMITCTL_JSON_H
#define RLIMITCTL_JSON_H

#include <stdlib.h>
#include <string.h>

#define JV_MAX_DEPTH 32

typedef enum jv_type { JV_NULL, JV_BOOL, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT } jv_type;

/* One value. */
typedef struct jv {
    jv_type type;     /* which kind */
    double number;    /* JV_NUMBER, JV_BOOL (0 or 1) */
    char *string;     /* JV_STRING: decoded, NUL-terminated (owned) */
    size_t len;       /* JV_STRING: bytes (it may hold NULs) */
    struct jv *items; /* JV_ARRAY, JV_OBJECT: elements or member values (owned) */
    char **keys;      /* JV_OBJECT: member names, parallel to items (owned) */
    size_t count;     /* JV_ARRAY, JV_OBJECT: entries */
} jv;

/* Parser state. */
typedef struct jv_reader {
    const char *at; /* next character */
    int failed;     /* a syntax error or out of memory */
} jv_reader;

static int jv_value(jv_reader *r, jv *out, int depth);

static void jv_release(jv *v) {
    for (size_t i = 0; i < v->count; i++) {
        jv_release(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
}

static void jv_space(jv_reader *r) {
    while (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r')
        r->at++;
}

static int jv_fail(jv_reader *r) {
    r->failed = 1;
    return -1;
}

static int jv_hex4(const char *s, unsigned *out) {
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i], lower = (char)(c | 0x20);
        int d = -1;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (lower >= 'a' && lower <= 'f')
            d = lower - 'a' + 10;
        if (d < 0)
            return -1;
        *out = *out << 4 | (unsigned)d;
    }
    return 0;
}

static size_t jv_utf8(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

// Reads a \u escape (after the 'u') into UTF-8 at out. Returns bytes written, or 0.
static size_t jv_unicode(jv_reader *r, char *out) {
    unsigned cp, low;
    if (jv_hex4(r->at, &cp) != 0)
        return 0;
    r->at += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (r->at[0] != '\\' || r->at[1] != 'u' || jv_hex4(r->at + 2, &low) != 0 || low < 0xdc00 ||
            low > 0xdfff)
            return 0;
        r->at += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return 0;
    }
    return jv_utf8(cp, out);
}

// Reads a string (at its opening quote) into a fresh buffer.
static char *jv_string(jv_reader *r, size_t *len) {
    const char *start = ++r->at;
    while (*r->at && *r->at != '"')
        r->at += *r->at == '\\' && r->at[1] ? 2 : 1;
    char *s = *r->at == '"' ? malloc((size_t)(r->at - start) + 1) : NULL;
    size_t n = 0;
    for (r->at = start; s && *r->at != '"';) {
        char c = *r->at++;
        if ((unsigned char)c < 0x20) {
            free(s);
            return NULL;
        }
        if (c != '\\') {
            s[n++] = c;
            continue;
        }
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *esc = *r->at ? strchr(from, *r->at) : NULL;
        size_t wrote = 0;
        if (esc) {
            s[n++] = to[esc - from];
            r->at++;
            continue;
        }
        if (*r->at == 'u') {
            r->at++;
            wrote = jv_unicode(r, s + n);
        }
        if (wrote == 0) {
            free(s);
            return NULL;
        }
        n += wrote;
    }
    if (s) {
        s[n] = '\0';
        *len = n;
        r->at++;
    }
    return s;
}

static int jv_push(jv *v, char *key) {
    jv *items = realloc(v->items, (v->count + 1) * sizeof(*items));
    if (items)
        v->items = items;
    char **keys = v->type == JV_OBJECT ? realloc(v->keys, (v->count + 1) * sizeof(*keys)) : NULL;
    if (keys)
        v->keys = keys;
    if (!items || (v->type == JV_OBJECT && !keys))
        return -1;
    memset(&v->items[v->count], 0, sizeof(jv));
    if (keys)
        v->keys[v->count] = key;
    v->count++;
    return 0;
}

// Reads the members of an object or the elements of an array (after the bracket).
static int jv_container(jv_reader *r, jv *out, int depth) {
    char close = out->type == JV_OBJECT ? '}' : ']';
    jv_space(r);
    if (*r->at == close) {
        r->at++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        jv_space(r);
        if (out->type == JV_OBJECT) {
            if (*r->at != '"' || !(key = jv_string(r, &klen)))
                return jv_fail(r);
            jv_space(r);
            if (*r->at++ != ':') {
                free(key);
                return jv_fail(r);
            }
        }
        if (jv_push(out, key) != 0) {
            free(key);
            return jv_fail(r);
        }
        if (jv_value(r, &out->items[out->count - 1], depth + 1) != 0)
            return -1;
        jv_space(r);
        if (*r->at == close) {
            r->at++;
            return 0;
        }
        if (*r->at++ != ',')
            return jv_fail(r);
    }
}

static int jv_literal(jv_reader *r, const char *word, jv_type type, double value, jv *out) {
    size_t n = strlen(word);
    if (strncmp(r->at, word, n) != 0)
        return jv_fail(r);
    r->at += n;
    out->type = type;
    out->number = value;
    return 0;
}

static int jv_value(jv_reader *r, jv *out, int depth) {
    char *end;
    jv_space(r);
    if (depth > JV_MAX_DEPTH)
        return jv_fail(r);
    switch (*r->at) {
    case '{':
    case '[':
        out->type = *r->at++ == '{' ? JV_OBJECT : JV_ARRAY;
        return jv_container(r, out, depth);
    case '"':
        out->type = JV_STRING;
        return (out->string = jv_string(r, &out->len)) ? 0 : jv_fail(r);
    case 't':
        return jv_literal(r, "true", JV_BOOL, 1, out);
    case 'f':
        return jv_literal(r, "false", JV_BOOL, 0, out);
    case 'n':
        return jv_literal(r, "null", JV_NULL, 0, out);
    default:
        out->type = JV_NUMBER;
        out->number = strtod(r->at, &end);
        if (end == r->at || (*r->at != '-' && (*r->at < '0' || *r->at > '9')))
            return jv_fail(r);
        r->at = end;
        return 0;
    }
}

// Parses text. Returns the tree (free it with jv_free), or NULL if text is not JSON.
static jv *jv_parse(const char *text) {
    jv_reader r = {text, 0};
    jv *root = calloc(1, sizeof(*root));
    if (!root)
        return NULL;
    if (jv_value(&r, root, 0) == 0)
        jv_space(&r);
    if (r.failed || *r.at) {
        jv_release(root);
        free(root);
        return NULL;
    }
    return root;
}

static void jv_free(jv *v) {
    if (v) {
        jv_release(v);
        free(v);
    }
}

// Returns the member key of object v, or NULL (also when v is NULL or not an object).
static const jv *jv_get(const jv *v, const char *key) {
    for (size_t i = 0; v && v->type == JV_OBJECT && i < v->count; i++)
        if (strcmp(v->keys[i], key) == 0)
            return &v->items[i];
    return NULL;
}

// Returns the number v holds, or fallback.
static double jv_num(const jv *v, double fallback) {
    return v && (v->type == JV_NUMBER || v->type == JV_BOOL) ? v->number : fallback;
}

// Returns the string v holds, or fallback.
static const char *jv_str(const jv *v, const char *fallback) {
    return v && v->type == JV_STRING ? v->string : fallback;
}

// Returns the entries of array v (0 if v is not an array).
static size_t jv_len(const jv *v) {
    return v && v->type == JV_ARRAY ? v->count : 0;
}

#endif
