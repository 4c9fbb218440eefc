/*
 * engine_lease.c: what concurrency leases need of the engine beside the decision path
 * of engine.c (which sends ACQUIRE, RELEASE and RENEW to the store like CHECK):
 *
 *   lease ids     SipHash-2-4 of a per-engine counter under a key from getrandom():
 *                 unpredictable, never 0, unique across instances with overwhelming
 *                 probability
 *   LEASES        the held leases of a concurrency policy, as JSON (admin)
 *   on close      the server hands the leases a closed connection held (not DETACH) to
 *                 rl_engine_release_on_close, which RELEASEs each one
 *   sweeps        leases the embedded store's sweep finds expired are counted
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "engine_internal.h"
#include "escape.h"
#include "hash.h"
#include "log.h"
#include "store_memory.h"

#define LEASES_MAX 1000 /* LEASES lists at most this many */

int rl_engine_is_lease_op(uint8_t opcode) {
    return opcode == RL_OP_ACQUIRE || opcode == RL_OP_RELEASE || opcode == RL_OP_RENEW ||
           opcode == RL_OP_LEASES;
}

int rl_engine_is_concurrency(const rl_policy *policy) {
    return policy->limits.rates[0].algorithm == RL_ALGO_CONCURRENCY;
}

uint64_t rl_engine_new_lease_id(rl_engine *e) {
    uint64_t id;
    do {
        uint64_t n = ++e->lease_counter;
        id = rl_siphash24(e->lease_key, &n, sizeof(n));
    } while (id == 0);
    return id;
}

static void on_swept(void *arg, const char *ns, size_t ns_len, uint32_t leases) {
    rl_engine_count_swept_leases(arg, ns, ns_len, leases);
}

int rl_engine_lease_start(rl_engine *e) {
    size_t got = 0;
    while (got < sizeof(e->lease_key)) {
        ssize_t n = getrandom(e->lease_key + got, sizeof(e->lease_key) - got, 0);
        if (n <= 0)
            return RL_ERR;
        got += (size_t)n;
    }
    rl_store_memory_on_expired(e->local, on_swept, e);
    return RL_OK;
}

/* ---- release on disconnect ---- */

static void ignore_reply(void *arg, const rl_response *resp) {
    (void)arg;
    (void)resp;
}

void rl_engine_release_on_close(rl_engine *e, const char *policy, size_t policy_len,
                                const char *key, size_t key_len, uint64_t lease) {
    rl_request req;
    memset(&req, 0, sizeof(req));
    req.opcode = RL_OP_RELEASE;
    req.lease = lease;
    req.item_count = 1;
    req.items[0] = (rl_item){0, policy, key, (uint16_t)key_len, (uint8_t)policy_len};
    rl_engine_handle_as(e, &req, RL_PERM_ALL | RL_PERM_AUTHENTICATED, ignore_reply, NULL, 1);
}

/* ---- LEASES ---- */

// A key as TOP shows it: as it is if it is text, else escaped with its bytes in hex.
static json_t *key_json(const char *key, size_t len) {
    if (rl_key_is_text(key, len))
        return json_pack("{s:s%}", "key", key, len);
    char *shown = rl_malloc(len * 4 + 1), *hex = rl_malloc(len * 2 + 1);
    json_t *o = NULL;
    if (shown && hex) {
        rl_escape(key, len, RL_ESCAPE_UTF8, shown, len * 4 + 1);
        rl_hex_key(key, len, hex, len * 2 + 1);
        o = json_pack("{s:s, s:s, s:b}", "key", shown, "key_hex", hex, "escaped", 1);
    }
    rl_free(shown);
    rl_free(hex);
    return o;
}

static json_t *lease_json(const rl_store_lease *l) {
    char id[24];
    json_t *o = key_json(l->key, l->key_len);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)l->id);
    if (o &&
        json_object_update_missing_new(
            o, json_pack("{s:s, s:I, s:I}", "lease", id, "slots", (json_int_t)l->slots,
                         "expires_in_ms", (json_int_t)((l->expires_in_us + 999) / 1000))) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void on_leases(void *arg, const rl_store_lease_list *list) {
    pending *p = arg;
    const rl_policy *policy = p->slots[0].policy;
    if (list->status != RL_ST_OK) {
        p->error = list->status;
        rl_engine_finish(p);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < list->count; i++)
        if (json_array_append_new(arr, lease_json(&list->leases[i])) != 0)
            arr = (json_decref(arr), NULL);
    json_t *o = json_pack("{s:s%, s:o?, s:b}", "policy", policy->name, policy->name_len, "leases",
                          arr, "truncated", list->truncated);
    p->text = o && arr ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!p->text)
        p->error = RL_ST_INTERNAL;
    rl_engine_finish(p);
}

// Resolves LEASES's policy into slot 0. Returns OK, UNKNOWN_POLICY or POLICY_KIND.
static rl_status leases_policy(pending *p, const rl_item *it) {
    slot *s = &p->slots[0];
    s->policy = rl_config_policy(p->conf->config, it->policy, it->policy_len);
    s->status = RL_ST_OK;
    if (!s->policy)
        return RL_ST_UNKNOWN_POLICY;
    if (!rl_engine_is_concurrency(s->policy))
        return RL_ST_POLICY_KIND;
    if (it->key_len > p->conf->config->max_key)
        return RL_ST_KEY_TOO_LONG;
    return it->cost == 0 ? RL_ST_OK : RL_ST_COST_INVALID;
}

void rl_engine_run_leases(pending *p, const rl_request *req) {
    rl_store *store = p->engine->store;
    const rl_item *it = &req->items[0];
    p->item_count = 0; /* the answer is text, no result per item */
    p->error = req->item_count == 1 ? leases_policy(p, it) : RL_ST_MALFORMED;
    if (p->error == RL_ST_OK && !store->ops->leases) {
        rl_log_warn("LEASES: the %s store cannot list its leases", store->ops->name);
        p->error = RL_ST_INTERNAL;
    }
    if (p->error != RL_ST_OK) {
        rl_engine_finish(p);
        return;
    }
    p->submitting++;
    int rc = store->ops->leases(store, it->policy, it->policy_len, it->key, it->key_len, LEASES_MAX,
                                on_leases, p);
    p->submitting--;
    if (rc != RL_OK && !p->answered) {
        p->error = RL_ST_INTERNAL;
        rl_engine_finish(p);
    }
    if (p->answered && p->submitting == 0)
        rl_engine_pending_put(p);
}
