/*
 * replay_internal.h: the state `rlimitctl replay` shares between its files (replay.c:
 * options, reading and the reorder window; replay_decide.c: decisions; replay_report.c:
 * the report). Not an interface: only clients/c/replay*.c include it.
 */
#ifndef RL_REPLAY_INTERNAL_H
#define RL_REPLAY_INTERNAL_H

#include <stdio.h>

#include "config.h"
#include "replay_log.h"
#include "replay_rules.h"
#include "replay_stats.h"
#include "store.h"

#define REPLAY_MAX_FILES 1024 /* LOGFILEs at most */
#define REPLAY_EXAMPLES 5     /* malformed lines reported */
#define REPLAY_CHANGES 256    /* keys whose outcome changes, followed (--compare) */
#define REPLAY_CHANGES_LISTED 50

typedef enum key_kind { KEY_ADDR, KEY_FIELD } key_kind;

/* The command line. */
typedef struct replay_opts {
    const char *config[2];               /* -c CONFIG, --compare CONFIG2 (or NULL) */
    rl_replay_format format;             /* --format */
    const char *policy;                  /* --policy, or NULL */
    const char *rules;                   /* --rules, or NULL */
    key_kind key;                        /* --key addr or field:NAME */
    const char *key_field;               /* the NAME of field:NAME */
    int json;                            /* --json */
    const char *html;                    /* --html FILE, or NULL */
    const char *decisions;               /* --decisions FILE, or NULL */
    int strict;                          /* --strict */
    int64_t reorder_us;                  /* --reorder-window */
    const char *files[REPLAY_MAX_FILES]; /* LOGFILEs */
    size_t file_count;                   /* entries in files */
} replay_opts;

/* One config replayed: its store on the virtual clock, its policies' figures. */
typedef struct replay_run {
    const char *path;        /* the config's path */
    rl_config *config;       /* loaded with the daemon's code */
    rl_store *store;         /* the daemon's memory store */
    int64_t now_us;          /* the store's (virtual) clock */
    rl_replay_stats **stats; /* per policy of config (by index), created when first used */
    uint64_t decided;        /* requests decided */
} replay_run;

/* A request waiting in the reorder window. */
typedef struct replay_entry {
    int64_t ts_us;    /* its time */
    uint64_t line;    /* its line number (counted across the LOGFILEs) */
    int64_t cost;     /* units */
    int whole_second; /* the time is a whole second (spread when decided) */
    int policy[2];    /* the policy's index in each run's config */
    size_t key_len;   /* bytes of the key at buf */
    char *buf;        /* the key (owned, reused) */
    size_t cap;       /* bytes allocated at buf */
} replay_entry;

/* A malformed line, reported. */
typedef struct replay_example {
    char file[256];   /* the file */
    uint64_t line;    /* its line number in the file */
    char reason[160]; /* why */
} replay_example;

/* A key whose outcome differs between the two configs (--compare). */
typedef struct replay_change {
    int policy;                   /* policy index in config a */
    char key[RL_REPLAY_KEY_KEPT]; /* its first bytes */
    size_t kept, key_len;         /* bytes kept, whole length */
    uint64_t hash;                /* hash of the key */
    uint64_t differ;              /* lines decided differently (Space-Saving count) */
    uint64_t denied[2];           /* its denials under each config */
} replay_change;

typedef struct replay {
    replay_opts opts;         /* the command line */
    replay_run runs[2];       /* config a and, with --compare, b */
    size_t run_count;         /* 1 or 2 */
    rl_replay_rules *rules;   /* --rules, or NULL */
    rl_replay_parser *parser; /* the format's parser */
    replay_entry *ring;       /* the reorder window, sorted by time */
    size_t ring_cap, ring_head, ring_len;
    int64_t newest_us;       /* the newest time read */
    int64_t group_s;         /* whole-second spreading: the second being spread */
    size_t group_n, group_i; /* its requests, and the next one's rank */
    uint64_t lines, requests, malformed, unmatched, exempt;
    replay_example examples[REPLAY_EXAMPLES];
    int64_t first_us, last_us; /* the span decided */
    rl_replay_axis axis;       /* the time axis of every series */
    FILE *decisions;           /* --decisions, or NULL */
    replay_change changes[REPLAY_CHANGES];
    size_t change_count;
    const char *cached_name; /* the policy resolved last (fast path) */
    size_t cached_len;
    int cached_policy[2];
    char err[1024]; /* the reason of a fatal error */
} replay;

// Loads the configs and makes the stores. Returns 0, or -1 with rp->err.
int replay_runs_open(replay *rp);

// Frees the runs.
void replay_runs_close(replay *rp);

// Finds policy name (len bytes) in every run. Returns 0 with idx[] set, or -1 with
// *reason (unknown policy, or a concurrency policy, which a log cannot replay).
int replay_resolve(replay *rp, const char *name, size_t len, int idx[2], const char **reason);

// Decides e at its time in every run, counting it. Returns 0, or -1 with rp->err.
int replay_decide(replay *rp, const replay_entry *e);

// Prints the text report to out.
void replay_report_text(replay *rp, FILE *out);

// Returns the JSON report (the object --json prints), or NULL if out of memory.
json_t *replay_report_json(replay *rp);

// Returns a JSON string of bytes that may not be UTF-8 (invalid bytes become "?"): for
// file names; keys go through rl_replay_key_json (exact).
json_t *replay_json_string(const char *s, size_t len);

#endif
