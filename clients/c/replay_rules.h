/*
 * replay_rules.h: which policy a request path falls under, in the rules-file format the
 * FastAPI middleware uses too (README "Replay", rules format):
 *
 *   {"rules": [{"path": "/api/", "policy": "api"}, {"route": "/users/{id}", "policy": "user"}],
 *    "default": "api" | null, "exempt": ["/health"]}
 *
 * Matching is the middleware's (rlimit.rules.PathRules): exempt prefixes first, then
 * the route patterns in file order (a whole-path match; {name} is one segment,
 * {name:path} the rest), then the longest matching path prefix ("/upload" matches
 * "/upload" and "/upload/big", not "/uploads"; "/api/" everything under it). A rule
 * whose policy is null leaves its paths unlimited. Unmatched paths take "default".
 */
#ifndef RL_REPLAY_RULES_H
#define RL_REPLAY_RULES_H

#include <stddef.h>

typedef struct rl_replay_rules rl_replay_rules;

typedef enum rl_replay_route {
    RL_ROUTE_POLICY,    /* limited by a policy */
    RL_ROUTE_EXEMPT,    /* an exempt path, or a rule with a null policy: not limited */
    RL_ROUTE_UNMATCHED, /* no rule and no default */
} rl_replay_route;

// Reads the rules file at path. Returns the rules (rl_replay_rules_free), or NULL with
// the reason (naming the file and the field) in err.
rl_replay_rules *rl_replay_rules_load(const char *path, char *err, size_t errlen);

// Like rl_replay_rules_load, from a JSON string; source names it in messages.
rl_replay_rules *rl_replay_rules_parse(const char *json, const char *source, char *err,
                                       size_t errlen);

// Routes a path (len bytes). For RL_ROUTE_POLICY, *policy is the policy's name
// (NUL-terminated, owned by the rules).
rl_replay_route rl_replay_rules_route(const rl_replay_rules *rules, const char *path, size_t len,
                                      const char **policy);

// Returns the i-th policy name the rules can give (the default included), or NULL past
// the last: the caller checks each against its config.
const char *rl_replay_rules_policy(const rl_replay_rules *rules, size_t i);

// Frees the rules. NULL is fine.
void rl_replay_rules_free(rl_replay_rules *rules);

#endif
