/*
 * stats.c: building a stats snapshot's store figures, and its JSON rendering (the
 * STATS answer). The Prometheus rendering of the same snapshot is metrics.c's.
 */
#include "stats.h"

#include <jansson.h>
#include <string.h>

#include "alloc.h"

/* ---- adding figures ---- */

// Returns a new zeroed figure at the end of f, or NULL (f->failed set) if out of memory.
static rl_figure *figure_new(rl_store_figures *f, const char *group, const char *name,
                             rl_figure_kind kind) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 32;
        rl_figure *grown = rl_realloc(f->list, cap * sizeof(*grown));
        if (!grown) {
            f->failed = 1;
            return NULL;
        }
        f->list = grown;
        f->cap = cap;
    }
    rl_figure *fig = &f->list[f->count++];
    *fig = (rl_figure){.group = group, .name = name, .kind = kind};
    return fig;
}

void rl_figures_add(rl_store_figures *f, const char *group, const char *name, rl_figure_kind kind,
                    uint64_t value) {
    rl_figure *fig = figure_new(f, group, name, kind);
    if (fig)
        fig->value = value;
}

void rl_figures_ratio(rl_store_figures *f, const char *group, const char *name, double ratio) {
    rl_figure *fig = figure_new(f, group, name, RL_FIGURE_RATIO);
    if (fig)
        fig->ratio = ratio;
}

void rl_figures_word(rl_store_figures *f, const char *group, const char *name, const char *word) {
    rl_figure *fig = figure_new(f, group, name, RL_FIGURE_WORD);
    if (fig)
        fig->word = word;
}

// Returns a new figure of node at the end of f, or NULL (f->failed set).
static rl_figure *node_figure_new(rl_store_figures *f, const char *node, const char *group,
                                  const char *name, rl_figure_kind kind) {
    rl_figure *fig = figure_new(f, group, name, kind);
    if (fig)
        fig->node = node;
    return fig;
}

void rl_figures_node(rl_store_figures *f, const char *node, const char *group, const char *name,
                     rl_figure_kind kind, uint64_t value) {
    rl_figure *fig = node_figure_new(f, node, group, name, kind);
    if (fig)
        fig->value = value;
}

void rl_figures_node_ratio(rl_store_figures *f, const char *node, const char *group,
                           const char *name, double ratio) {
    rl_figure *fig = node_figure_new(f, node, group, name, RL_FIGURE_RATIO);
    if (fig)
        fig->ratio = ratio;
}

void rl_figures_node_word(rl_store_figures *f, const char *node, const char *group,
                          const char *name, const char *word) {
    rl_figure *fig = node_figure_new(f, node, group, name, RL_FIGURE_WORD);
    if (fig)
        fig->word = word;
}

void rl_store_figures_free(rl_store_figures *f) {
    rl_free(f->list);
    *f = (rl_store_figures){0};
}

void rl_stats_free(rl_stats *s) {
    rl_free(s->policies);
    s->policies = NULL;
    rl_store_figures_free(&s->store);
    rl_store_figures_free(&s->local);
}

/* ---- JSON ---- */

static json_t *figure_value(const rl_figure *fig) {
    switch (fig->kind) {
    case RL_FIGURE_RATIO:
        return json_real(fig->ratio);
    case RL_FIGURE_FLAG:
        return json_boolean(fig->value);
    case RL_FIGURE_WORD:
        return json_string(fig->word);
    default:
        return json_integer((json_int_t)fig->value);
    }
}

// Returns o's object member name, created empty on first use, or NULL (memory short,
// or the member is not an object).
static json_t *member_object(json_t *o, const char *name) {
    json_t *member = json_object_get(o, name);
    if (!member && json_object_set_new(o, name, json_object()) == 0)
        member = json_object_get(o, name);
    return json_is_object(member) ? member : NULL;
}

// Returns the object of node in o's "nodes" array, appended ({"node": node}) on the
// node's first figure, or NULL if memory is short. The latest node is looked at first:
// a store adds a node's figures together.
static json_t *node_object(json_t *o, const char *node) {
    json_t *nodes = json_object_get(o, "nodes");
    if (!nodes && json_object_set_new(o, "nodes", json_array()) == 0)
        nodes = json_object_get(o, "nodes");
    if (!json_is_array(nodes))
        return NULL;
    for (size_t i = json_array_size(nodes); i-- > 0;) {
        json_t *one = json_array_get(nodes, i);
        if (strcmp(json_string_value(json_object_get(one, "node")), node) == 0)
            return one;
    }
    if (json_array_append_new(nodes, json_pack("{s:s}", "node", node)) != 0)
        return NULL;
    return json_array_get(nodes, json_array_size(nodes) - 1);
}

// Returns the object fig goes into: o itself, its node's, or the group's inside either
// (created on first use).
static json_t *figure_home(json_t *o, const rl_figure *fig) {
    json_t *home = fig->node ? node_object(o, fig->node) : o;
    if (!home || !fig->group)
        return home;
    return member_object(home, fig->group);
}

static int latency_json(json_t *o, const rl_latency_figures *l) {
    if (!l->present)
        return 0;
    return json_object_set_new(o, "latency_us",
                               json_pack("{s:I, s:I, s:I, s:I}", "count", (json_int_t)l->count,
                                         "p50", (json_int_t)l->p50_us, "p99", (json_int_t)l->p99_us,
                                         "max", (json_int_t)l->max_us));
}

json_t *rl_store_figures_json(const rl_store_figures *f) {
    json_t *o = f->failed ? NULL : json_pack("{s:s}", "type", f->type ? f->type : "unknown");
    int failed = !o;
    for (size_t i = 0; o && i < f->count && !failed; i++) {
        json_t *home = figure_home(o, &f->list[i]);
        failed = !home || json_object_set_new(home, f->list[i].name, figure_value(&f->list[i]));
    }
    if (!failed)
        failed = latency_json(o, &f->latency) != 0;
    if (failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}

// Adds a concurrency policy's lease counters to o. Returns 0, or -1 if memory is short.
static int lease_counters_json(json_t *o, const rl_policy_counters *c) {
    json_t *l = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "held", (json_int_t)c->held, "acquired",
                          (json_int_t)c->acquired, "released", (json_int_t)c->released, "expired",
                          (json_int_t)c->expired, "released_on_disconnect",
                          (json_int_t)c->released_on_disconnect, "lease_unknown",
                          (json_int_t)c->lease_unknown);
    int rc = !l || json_object_update(o, l) != 0 ? -1 : 0;
    json_decref(l);
    return rc;
}

static json_t *policy_json(const rl_policy_figures *p) {
    const rl_policy_counters *c = &p->counters;
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", p->name, "allowed",
                  (json_int_t)c->allowed, "denied", (json_int_t)c->denied, "shadow_denied",
                  (json_int_t)c->shadow_denied, "exempt", (json_int_t)c->exempt, "blocked",
                  (json_int_t)c->blocked, "errors", (json_int_t)c->errors, "store_errors",
                  (json_int_t)c->store_errors, "fallbacks", (json_int_t)c->fallbacks);
    if (o && p->concurrency && lease_counters_json(o, c) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *policies_json(const rl_stats *s) {
    json_t *list = json_array();
    for (size_t i = 0; list && i < s->policy_count; i++) {
        if (json_array_append_new(list, policy_json(&s->policies[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

// Adds what only some daemons have: the embedded fallback store (beside Redis), the
// connection count, the denial log. Returns 0, or -1 if memory is short.
static int optional_json(json_t *o, const rl_stats *s) {
    int rc = 0;
    if (s->has_local)
        rc |= json_object_set_new(o, "local_store", rl_store_figures_json(&s->local));
    rc |= json_object_set_new(o, "refused_peers", json_integer((json_int_t)s->refused_peers));
    rc |= json_object_set_new(o, "auth_failures", json_integer((json_int_t)s->auth_failures));
    if (s->has_connections)
        rc |= json_object_set_new(o, "connections", json_integer((json_int_t)s->connections));
    if (s->has_denial_log)
        rc |= json_object_set_new(o, "denial_log",
                                  json_pack("{s:I, s:I, s:I}", "lines", (json_int_t)s->denial_lines,
                                            "suppressed", (json_int_t)s->denial_suppressed,
                                            "errors", (json_int_t)s->denial_errors));
    return rc ? -1 : 0;
}

json_t *rl_stats_json(const rl_stats *s) {
    json_t *o = json_pack("{s:o?, s:o?, s:I, s:I, s:I, s:I, s:I}", "policies", policies_json(s),
                          "store", rl_store_figures_json(&s->store), "uptime_s",
                          (json_int_t)s->uptime_s, "in_flight", (json_int_t)s->in_flight, "refused",
                          (json_int_t)s->refused, "reloads", (json_int_t)s->reloads,
                          "reload_failures", (json_int_t)s->reload_failures);
    if (o && (!json_is_array(json_object_get(o, "policies")) ||
              !json_is_object(json_object_get(o, "store")) || optional_json(o, s) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}
