/*
 * replay_rules.c: the rules file (see replay_rules.h), read with jansson once; routing
 * a path allocates nothing.
 */
#include "replay_rules.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"

#define MAX_RULES 4096     /* rules of a file at most */
#define MAX_ROUTE_PARTS 33 /* literal and parameter parts of a route at most */

static const char *const default_exempt[] = {"/health", "/healthz", "/ready"};

typedef enum part_kind { PART_TEXT, PART_SEGMENT, PART_REST } part_kind;

/* One part of a route pattern. */
typedef struct part {
    part_kind kind;   /* literal text, {name} (one segment) or {name:path} (the rest) */
    const char *text; /* literal bytes (into the rule's text) */
    size_t len;       /* bytes of text */
} part;

/* One rule: a prefix or a route pattern. */
typedef struct rule {
    char *text;                  /* the path prefix or route (owned) */
    size_t len;                  /* bytes of text */
    char *policy;                /* the policy, or NULL: unlimited (owned) */
    part parts[MAX_ROUTE_PARTS]; /* a route's parts */
    size_t part_count;           /* entries in parts (0 for a prefix) */
} rule;

struct rl_replay_rules {
    rule *routes;         /* route patterns, in file order */
    size_t route_count;   /* entries in routes */
    rule *prefixes;       /* prefixes, longest first */
    size_t prefix_count;  /* entries in prefixes */
    rule *exempt;         /* exempt prefixes (policy NULL) */
    size_t exempt_count;  /* entries in exempt */
    char *default_policy; /* the default policy, or NULL (owned) */
};

/* ---- matching ---- */

// 1 if path is under prefix the middleware's way, else 0.
static int under(const char *path, size_t len, const rule *r) {
    if (len < r->len || memcmp(path, r->text, r->len) != 0)
        return 0;
    return r->text[r->len - 1] == '/' || len == r->len || path[r->len] == '/';
}

// 1 if path matches parts[i..] whole (backtracking like the middleware's regex).
static int match_parts(const part *parts, size_t n, const char *path, size_t len) {
    if (n == 0)
        return len == 0;
    if (parts->kind == PART_TEXT)
        return len >= parts->len && memcmp(path, parts->text, parts->len) == 0 &&
               match_parts(parts + 1, n - 1, path + parts->len, len - parts->len);
    for (size_t take = 1; take <= len; take++) {
        if (parts->kind == PART_SEGMENT && path[take - 1] == '/')
            return 0;
        if (match_parts(parts + 1, n - 1, path + take, len - take))
            return 1;
    }
    return 0;
}

rl_replay_route rl_replay_rules_route(const rl_replay_rules *rules, const char *path, size_t len,
                                      const char **policy) {
    const rule *hit = NULL;
    for (size_t i = 0; i < rules->exempt_count; i++)
        if (under(path, len, &rules->exempt[i]))
            return RL_ROUTE_EXEMPT;
    for (size_t i = 0; i < rules->route_count && !hit; i++)
        if (match_parts(rules->routes[i].parts, rules->routes[i].part_count, path, len))
            hit = &rules->routes[i];
    for (size_t i = 0; i < rules->prefix_count && !hit; i++)
        if (under(path, len, &rules->prefixes[i]))
            hit = &rules->prefixes[i];
    *policy = hit ? hit->policy : rules->default_policy;
    if (hit && !hit->policy)
        return RL_ROUTE_EXEMPT;
    return *policy ? RL_ROUTE_POLICY : RL_ROUTE_UNMATCHED;
}

const char *rl_replay_rules_policy(const rl_replay_rules *rules, size_t i) {
    for (size_t r = 0; r < rules->route_count; r++)
        if (rules->routes[r].policy && i-- == 0)
            return rules->routes[r].policy;
    for (size_t r = 0; r < rules->prefix_count; r++)
        if (rules->prefixes[r].policy && i-- == 0)
            return rules->prefixes[r].policy;
    return rules->default_policy && i == 0 ? rules->default_policy : NULL;
}

/* ---- loading ---- */

// Length of a {name} or {name:path|str|int} parameter at s (at its "{"), or 0 if the
// text there is no parameter (then it is literal, as in the middleware). *rest is set
// for ":path".
static size_t param_len(const char *s, size_t len, int *rest) {
    size_t i = 1;
    while (i < len && (s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
                       (s[i] >= 'A' && s[i] <= 'Z') || (i > 1 && s[i] >= '0' && s[i] <= '9')))
        i++;
    if (i == 1 || i >= len)
        return 0;
    *rest = 0;
    if (s[i] == '}')
        return i + 1;
    static const char *const types[] = {":path}", ":str}", ":int}"};
    for (int t = 0; t < 3; t++) {
        size_t n = strlen(types[t]);
        if (len - i >= n && memcmp(s + i, types[t], n) == 0)
            return *rest = t == 0, i + n;
    }
    return 0;
}

// Splits a route into parts. Returns 0, or -1 if it has too many.
static int compile_route(rule *r) {
    size_t i = 0, text_start = 0;
    while (i <= r->len) {
        int rest = 0;
        size_t plen =
            i < r->len && r->text[i] == '{' ? param_len(r->text + i, r->len - i, &rest) : 0;
        if (!plen && i < r->len) {
            i++;
            continue;
        }
        if (i > text_start) {
            if (r->part_count == MAX_ROUTE_PARTS)
                return -1;
            r->parts[r->part_count++] = (part){PART_TEXT, r->text + text_start, i - text_start};
        }
        if (!plen)
            break;
        if (r->part_count == MAX_ROUTE_PARTS)
            return -1;
        r->parts[r->part_count++] = (part){rest ? PART_REST : PART_SEGMENT, NULL, 0};
        i += plen;
        text_start = i;
    }
    return 0;
}

static int has_param(const rule *r) {
    for (size_t i = 0; i < r->part_count; i++)
        if (r->parts[i].kind != PART_TEXT)
            return 1;
    return 0;
}

static char *dup_string(const char *s) {
    return rl_strndup(s, strlen(s));
}

// Fills r from a string and a policy (a string or null). Returns 0 or -1 (out of memory).
static int rule_set(rule *r, const char *text, const json_t *policy) {
    memset(r, 0, sizeof(*r));
    r->len = strlen(text);
    r->text = dup_string(text);
    if (policy && json_is_string(policy))
        r->policy = dup_string(json_string_value(policy));
    return r->text && (!policy || !json_is_string(policy) || r->policy) ? 0 : -1;
}

static void rule_clear(rule *r) {
    rl_free(r->text);
    rl_free(r->policy);
}

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)

// Reads rules[i] into the routes or the prefixes. Returns 0 or -1 with err.
static int load_rule(rl_replay_rules *rs, const json_t *j, size_t i, const char *src, char *err,
                     size_t errlen) {
    json_t *path = json_object_get(j, "path"), *route = json_object_get(j, "route");
    json_t *policy = json_object_get(j, "policy");
    const char *text = json_string_value(path ? path : route);
    if (!json_is_object(j) || !policy || json_object_size(j) != 2 || !!path == !!route)
        return FAIL("%s: rules[%zu]: {\"path\" or \"route\": ..., \"policy\": ...} expected", src,
                    i);
    if (!text || text[0] != '/' || (!json_is_string(policy) && !json_is_null(policy)))
        return FAIL("%s: rules[%zu]: a path starting with \"/\" and a policy name or null expected",
                    src, i);
    if (path && strchr(text, '{'))
        return FAIL("%s: rules[%zu].path: \"{\" belongs in a \"route\"", src, i);
    rule *r = path ? &rs->prefixes[rs->prefix_count++] : &rs->routes[rs->route_count++];
    if (rule_set(r, text, policy) != 0)
        return FAIL("%s: out of memory", src);
    if (route && (compile_route(r) != 0 || !has_param(r)))
        return FAIL("%s: rules[%zu].route: a {name} parameter expected (at most 16)", src, i);
    return 0;
}

static int longest_first(const void *a, const void *b) {
    size_t la = ((const rule *)a)->len, lb = ((const rule *)b)->len;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

// Reads "exempt" (or the middleware's default). Returns 0 or -1 with err.
static int load_exempt(rl_replay_rules *rs, const json_t *ex, const char *src, char *err,
                       size_t errlen) {
    size_t n = ex ? json_array_size(ex) : 3;
    if (ex && (!json_is_array(ex) || n > MAX_RULES))
        return FAIL("%s: exempt: an array of paths expected", src);
    rs->exempt = rl_calloc(n + 1, sizeof(rule));
    if (!rs->exempt)
        return FAIL("%s: out of memory", src);
    for (size_t i = 0; i < n; i++) {
        const char *text = ex ? json_string_value(json_array_get(ex, i)) : default_exempt[i];
        if (!text || text[0] != '/')
            return FAIL("%s: exempt[%zu]: a path starting with \"/\" expected", src, i);
        if (rule_set(&rs->exempt[rs->exempt_count++], text, NULL) != 0)
            return FAIL("%s: out of memory", src);
    }
    return 0;
}

static int load_all(rl_replay_rules *rs, const json_t *root, const char *src, char *err,
                    size_t errlen) {
    const char *name;
    json_t *value, *list = json_object_get(root, "rules"), *def = json_object_get(root, "default");
    if (!json_is_object(root))
        return FAIL("%s: a JSON object expected", src);
    json_object_foreach((json_t *)root, name, value) {
        if (strcmp(name, "rules") && strcmp(name, "default") && strcmp(name, "exempt"))
            return FAIL("%s: %s: unknown field (rules, default, exempt)", src, name);
    }
    size_t n = list ? json_array_size(list) : 0;
    if ((list && !json_is_array(list)) || n > MAX_RULES)
        return FAIL("%s: rules: an array of at most %d rules expected", src, MAX_RULES);
    if (def && !json_is_string(def) && !json_is_null(def))
        return FAIL("%s: default: a policy name or null expected", src);
    rs->routes = rl_calloc(n + 1, sizeof(rule));
    rs->prefixes = rl_calloc(n + 1, sizeof(rule));
    rs->default_policy = json_is_string(def) ? dup_string(json_string_value(def)) : NULL;
    if (!rs->routes || !rs->prefixes || (json_is_string(def) && !rs->default_policy))
        return FAIL("%s: out of memory", src);
    for (size_t i = 0; i < n; i++)
        if (load_rule(rs, json_array_get(list, i), i, src, err, errlen) != 0)
            return -1;
    qsort(rs->prefixes, rs->prefix_count, sizeof(rule), longest_first);
    return load_exempt(rs, json_object_get(root, "exempt"), src, err, errlen);
}

rl_replay_rules *rl_replay_rules_parse(const char *json, const char *source, char *err,
                                       size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", source, jerr.line, jerr.text);
        return NULL;
    }
    rl_replay_rules *rs = rl_calloc(1, sizeof(*rs));
    if (!rs)
        snprintf(err, errlen, "%s: out of memory", source);
    if (rs && load_all(rs, root, source, err, errlen) != 0) {
        rl_replay_rules_free(rs);
        rs = NULL;
    }
    json_decref(root);
    return rs;
}

rl_replay_rules *rl_replay_rules_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the rules", path);
        return NULL;
    }
    char *text = rl_malloc(1u << 20);
    size_t n = text ? fread(text, 1, (1u << 20) - 1, f) : 0;
    int too_big = text && n == (1u << 20) - 1;
    fclose(f);
    if (!text || too_big) {
        snprintf(err, errlen, "%s: %s", path, text ? "larger than 1 MiB" : "out of memory");
        rl_free(text);
        return NULL;
    }
    text[n] = '\0';
    rl_replay_rules *rs = rl_replay_rules_parse(text, path, err, errlen);
    rl_free(text);
    return rs;
}

void rl_replay_rules_free(rl_replay_rules *rs) {
    if (!rs)
        return;
    for (size_t i = 0; i < rs->route_count; i++)
        rule_clear(&rs->routes[i]);
    for (size_t i = 0; i < rs->prefix_count; i++)
        rule_clear(&rs->prefixes[i]);
    for (size_t i = 0; i < rs->exempt_count; i++)
        rule_clear(&rs->exempt[i]);
    rl_free(rs->routes);
    rl_free(rs->prefixes);
    rl_free(rs->exempt);
    rl_free(rs->default_policy);
    rl_free(rs);
}
