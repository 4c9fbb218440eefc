/*
 * redis_split.c: a multi-item CHECK (MULTI_CHECK, or a policy's several keys) or PEEK on
 * a Redis Cluster whose items lie in more than one slot (store_redis_int.h); other
 * multi-item operations (ADJUST, RESET) are split the same way, without refunds.
 *
 * One script call can only be atomic within one node, and Redis checks declared keys
 * only within one slot, so such a request is sent as one part per slot, each decided
 * atomically where its slot lives, all at once. The caller gets one answer when every
 * part has answered: ALLOWED if every part allowed; otherwise DENIED (or the first store
 * error), and for a CHECK the parts that were allowed, and so consumed, are given back
 * at once with a REFUND per item carrying the time Redis decided its part: Redis gives
 * back only what of it still counts (nothing of a fixed window that has ended, a bucket's
 * units less what has drained since; redis_script.lua), never units that others
 * consumed since, so a late refund cannot over-admit. So nothing is ever admitted that
 * one of the items refused. What a concurrent observer can see in
 * between: the given-back units, counted for the time between the part's decision and
 * the refund (about one round trip), so that another request on those keys may be
 * denied when it would not have been; never the reverse. A refund that fails (its node
 * down) leaves the units counted until the window moves on (counted in the cluster's
 * refund_failures). The verdicts of the given-back items are those of their decision.
 * A part's denial is not remembered in the over-limit cache: it may have been caused by
 * units another split (of this daemon or another) consumed and then gave back, and the
 * cache would go on denying those keys until the denial's retry time (for a fixed window,
 * the window's end) although Redis has the units again. A plain CHECK denied in that
 * short time by the units in between is still cached (see redis_cache.h).
 */
#include <string.h>

#include "alloc.h"
#include "store_redis_int.h"

/* An item, copied (the caller's items live only until submit returns). */
typedef struct split_item {
    rl_limits limits; /* its rates */
    int64_t cost;     /* units */
    char *ns, *key;   /* into the split's bytes */
    size_t ns_len, key_len;
    uint64_t tat;  /* a one-rate bucket's tat after its decision (at + reset_after), or 0 */
    uint16_t slot; /* its slot */
    int part;      /* the part it went in */
} split_item;

typedef struct split split;

/* One part: the items of one slot. */
typedef struct split_part {
    split *whole;     /* its request */
    int index;        /* its number */
    rl_status status; /* its answer's status */
    int64_t at_us;    /* its answer's now_us: when Redis decided it */
} split_part;

struct split {
    redis_store *store;             /* the store */
    rl_store_op op;                 /* CHECK or PEEK */
    rl_store_done *done;            /* the caller's */
    void *arg;                      /* its argument */
    size_t n;                       /* items */
    size_t parts;                   /* parts */
    size_t left;                    /* parts not answered yet, + 1 while submitting */
    rl_store_answer answer;         /* built up as the parts answer */
    split_item items[RL_MAX_ITEMS]; /* the items */
    split_part part[RL_MAX_ITEMS];  /* the parts */
    char bytes[];                   /* the names */
};

static int is_error(rl_status status) {
    return status != RL_ST_ALLOWED && status != RL_ST_DENIED && status != RL_ST_OK;
}

static void on_refund(void *arg, const rl_store_answer *answer) {
    redis_store *s = arg;
    if (is_error(answer->status))
        s->cl.refund_failures++;
}

static rl_store_item item_of(const split_item *it, int64_t cost, uint64_t tat, int64_t at_us) {
    return (rl_store_item){&it->limits, it->ns, it->ns_len, it->key, it->key_len, cost, tat, at_us};
}

// Returns 1 if the item is one token bucket or gcra rate: its verdict's reset_after is
// that bucket's, so the give-back can be exact (redis_script.lua: refund_batch).
static int one_bucket(const rl_limits *l) {
    return l->rate_count == 1 &&
           (l->rates[0].algorithm == RL_ALGO_TOKEN_BUCKET || l->rates[0].algorithm == RL_ALGO_GCRA);
}

// Gives back what the allowed parts of a refused CHECK consumed: a REFUND with the
// time of each part's decision, so that Redis gives back only what still counts of it.
static void refund(split *sp) {
    redis_store *s = sp->store;
    for (size_t i = 0; i < sp->n; i++) {
        const split_part *part = &sp->part[sp->items[i].part];
        if (part->status != RL_ST_ALLOWED)
            continue;
        rl_store_item item =
            item_of(&sp->items[i], sp->items[i].cost, sp->items[i].tat, part->at_us);
        s->cl.refunds++;
        if (s->base.ops->submit(&s->base, RL_STORE_REFUND, &item, 1, on_refund, s) != RL_OK)
            s->cl.refund_failures++;
    }
}

// Every part has answered: the caller's answer, and the refunds.
static void finish(split *sp) {
    rl_status status = sp->part[0].status; /* ALLOWED, or OK (a RESET) */
    for (size_t p = 0; p < sp->parts; p++) {
        rl_status st = sp->part[p].status;
        if (is_error(st) && !is_error(status))
            status = st;
        else if (st == RL_ST_DENIED && !is_error(status))
            status = RL_ST_DENIED;
    }
    sp->answer.status = status;
    sp->answer.count = sp->n;
    if (status != RL_ST_ALLOWED && sp->op == RL_STORE_CHECK)
        refund(sp);
    sp->done(sp->arg, &sp->answer);
    rl_free(sp);
}

static void on_part(void *arg, const rl_store_answer *answer) {
    split_part *part = arg;
    split *sp = part->whole;
    size_t k = 0;
    part->status = answer->status;
    part->at_us = answer->now_us;
    for (size_t i = 0; i < sp->n; i++) {
        if (sp->items[i].part != part->index)
            continue;
        if (!is_error(answer->status) && k < answer->count) {
            sp->answer.verdicts[i] = answer->verdicts[k];
            if (one_bucket(&sp->items[i].limits) && answer->verdicts[k].allowed)
                sp->items[i].tat = (uint64_t)(answer->now_us + answer->verdicts[k].reset_after_us);
        }
        k++;
    }
    sp->answer.now_us = answer->now_us > sp->answer.now_us ? answer->now_us : sp->answer.now_us;
    sp->answer.flags |= answer->flags;
    if (is_error(answer->status) && !sp->answer.errstr)
        sp->answer.errstr = "a part of the request failed"; /* answer->errstr dies with it */
    if (--sp->left == 0)
        finish(sp);
}

// Copies the items and groups them by slot.
static split *split_new(redis_store *s, const rl_store_item *items, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += items[i].ns_len + items[i].key_len;
    split *sp = rl_calloc(1, sizeof(*sp) + bytes);
    if (!sp)
        return NULL;
    char *at = sp->bytes;
    for (size_t i = 0; i < n; i++) {
        split_item *it = &sp->items[i];
        it->limits = *items[i].limits;
        it->cost = items[i].cost;
        it->ns = memcpy(at, items[i].ns, items[i].ns_len);
        it->ns_len = items[i].ns_len;
        at += it->ns_len;
        it->key = memcpy(at, items[i].key, items[i].key_len);
        it->key_len = items[i].key_len;
        at += it->key_len;
    }
    sp->store = s;
    sp->n = n;
    return sp;
}

// Numbers the parts: items of one slot share one (slot given per item).
static void assign_parts(split *sp, const uint16_t *slots) {
    for (size_t i = 0; i < sp->n; i++) {
        sp->items[i].slot = slots[i];
        sp->items[i].part = -1;
        for (size_t j = 0; j < i && sp->items[i].part < 0; j++)
            if (sp->items[j].slot == slots[i])
                sp->items[i].part = sp->items[j].part;
        if (sp->items[i].part < 0) {
            sp->part[sp->parts] = (split_part){sp, (int)sp->parts, RL_ST_INTERNAL, 0};
            sp->items[i].part = (int)sp->parts++;
        }
    }
}

// Submits part p (its items, in the caller's order).
static void submit_part(split *sp, size_t p) {
    rl_store_item items[RL_MAX_ITEMS];
    size_t count = 0;
    for (size_t i = 0; i < sp->n; i++)
        if (sp->items[i].part == (int)p)
            items[count++] = item_of(&sp->items[i], sp->items[i].cost, 0, 0);
    redis_store *s = sp->store;
    s->submitting_part = 1; /* a part's denial may come from units another split gives back */
    int rc = s->base.ops->submit(&s->base, sp->op, items, count, on_part, &sp->part[p]);
    s->submitting_part = 0;
    if (rc != RL_OK) {
        rl_store_answer failed = {.status = RL_ST_INTERNAL, .count = count};
        on_part(&sp->part[p], &failed);
    }
}

int rl_redis_split_submit(redis_store *s, rl_store_op op, const rl_store_item *items, size_t n,
                          const uint16_t *slots, rl_store_done *done, void *arg) {
    split *sp = split_new(s, items, n);
    if (!sp)
        return RL_ERR;
    sp->op = op;
    sp->done = done;
    sp->arg = arg;
    assign_parts(sp, slots);
    s->cl.split++;
    sp->left = sp->parts + 1; /* a part answered at once must not finish it mid-loop */
    for (size_t p = 0; p < sp->parts; p++)
        submit_part(sp, p);
    if (--sp->left == 0)
        finish(sp);
    return RL_OK;
}
