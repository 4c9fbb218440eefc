/*
 * rlproto.c: encode and decode rlimitd frames (see PROTOCOL.md).
 *
 * Reading goes through a cursor that refuses both short input and, at the end,
 * leftover bytes. Nothing here allocates or touches a descriptor.
 */
#include "rlproto.h"

#include <string.h>

/* A read cursor over one frame; `bad` latches on the first short read. */
typedef struct cursor {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the frame */
    int bad;            /* set once a read ran past end */
} cursor;

static int take(cursor *c, size_t n) {
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return 0;
    }
    return 1;
}

static uint8_t get_u8(cursor *c) {
    return take(c, 1) ? *c->p++ : 0;
}

static uint16_t get_u16(cursor *c) {
    if (!take(c, 2))
        return 0;
    uint16_t v = (uint16_t)((c->p[0] << 8) | c->p[1]);
    c->p += 2;
    return v;
}

static uint32_t get_u32(cursor *c) {
    if (!take(c, 4))
        return 0;
    uint32_t v =
        ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) | ((uint32_t)c->p[2] << 8) | c->p[3];
    c->p += 4;
    return v;
}

static uint64_t get_u64(cursor *c) {
    uint64_t hi = get_u32(c);
    return hi << 32 | get_u32(c);
}

static const char *get_bytes(cursor *c, size_t n) {
    if (!take(c, n))
        return NULL;
    const char *s = (const char *)c->p;
    c->p += n;
    return s;
}

static uint8_t *put_u8(uint8_t *p, uint8_t v) {
    *p = v;
    return p + 1;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    p = put_u32(p, (uint32_t)(v >> 32));
    return put_u32(p, (uint32_t)v);
}

static uint8_t *put_header(uint8_t *p, uint32_t frame_len, uint8_t opcode, uint16_t flags,
                           uint32_t id) {
    p = put_u32(p, frame_len - 4);
    p = put_u8(p, RL_PROTO_VERSION);
    p = put_u8(p, opcode);
    p = put_u16(p, flags);
    return put_u32(p, id);
}

int rl_header_read(const uint8_t *buf, size_t len, uint32_t max_frame, rl_header *hdr,
                   rl_status *status) {
    if (len < RL_HEADER_LEN)
        return RL_AGAIN;
    cursor c = {buf, buf + RL_HEADER_LEN, 0};
    hdr->length = get_u32(&c);
    hdr->version = get_u8(&c);
    hdr->opcode = get_u8(&c);
    hdr->flags = get_u16(&c);
    hdr->id = get_u32(&c);
    if (hdr->length < RL_HEADER_LEN - 4) {
        *status = RL_ST_MALFORMED;
        return RL_ERR;
    }
    if (hdr->length > max_frame) {
        *status = RL_ST_FRAME_TOO_LARGE;
        return RL_ERR;
    }
    if (hdr->version != RL_PROTO_VERSION) {
        *status = RL_ST_UNSUPPORTED_VERSION;
        return RL_ERR;
    }
    return RL_OK;
}

static void get_item(cursor *c, rl_item *it, int signed_cost) {
    uint32_t cost = get_u32(c);
    it->cost = signed_cost ? (int64_t)(int32_t)cost : (int64_t)cost;
    it->policy_len = get_u8(c);
    it->key_len = get_u16(c);
    it->policy = get_bytes(c, it->policy_len);
    it->key = get_bytes(c, it->key_len);
}

static int get_multi(cursor *c, rl_request *req, rl_status *status) {
    uint8_t count = get_u8(c);
    (void)get_u8(c); /* reserved */
    if (c->bad)
        return RL_ERR;
    if (count == 0 || count > RL_MAX_ITEMS) {
        /* no items is a body that does not parse; too many is its own refusal */
        *status = count == 0 ? RL_ST_MALFORMED : RL_ST_TOO_MANY_ITEMS;
        return RL_ERR;
    }
    for (uint8_t i = 0; i < count; i++)
        get_item(c, &req->items[i], 0);
    req->item_count = count;
    return RL_OK;
}

/* Which body each opcode carries. */
typedef enum body_kind {
    BODY_NONE,
    BODY_ITEM,
    BODY_SIGNED_ITEM,
    BODY_MULTI,
    BODY_LEASE_ITEM, /* RELEASE, RENEW: lease (u64), then an item */
    BODY_UNKNOWN
} body_kind;

static body_kind body_of(uint8_t opcode) {
    switch (opcode) {
    case RL_OP_PING:
    case RL_OP_POLICIES:
    case RL_OP_STATS:
    case RL_OP_RELOAD:
        return BODY_NONE;
    case RL_OP_CHECK:
    case RL_OP_PEEK:
    case RL_OP_RESET:
    case RL_OP_TOP:
    case RL_OP_AUTH:
    case RL_OP_ACQUIRE:
    case RL_OP_LEASES:
        return BODY_ITEM;
    case RL_OP_RELEASE:
    case RL_OP_RENEW:
        return BODY_LEASE_ITEM;
    case RL_OP_ADJUST:
        return BODY_SIGNED_ITEM;
    case RL_OP_MULTI_CHECK:
        return BODY_MULTI;
    default:
        return BODY_UNKNOWN;
    }
}

/* The request flags an opcode may carry: DETACH on ACQUIRE, none elsewhere. */
static uint16_t flags_allowed(uint8_t opcode) {
    return opcode == RL_OP_ACQUIRE ? RL_REQ_DETACH : 0;
}

static int has_item(body_kind kind) {
    return kind == BODY_ITEM || kind == BODY_SIGNED_ITEM || kind == BODY_LEASE_ITEM;
}

int rl_request_decode(const uint8_t *buf, size_t len, rl_request *req, rl_status *status) {
    rl_header hdr;
    req->id = 0;
    req->opcode = 0;
    req->flags = 0;
    req->lease = 0;
    req->item_count = 0;
    *status = RL_ST_MALFORMED;
    if (rl_header_read(buf, len, UINT32_MAX, &hdr, status) != RL_OK)
        return RL_ERR;
    req->id = hdr.id;
    req->opcode = hdr.opcode;
    if ((uint64_t)hdr.length + 4 > len)
        return RL_ERR;
    cursor c = {buf + RL_HEADER_LEN, buf + 4 + hdr.length, 0};
    body_kind kind = body_of(hdr.opcode);
    if (kind == BODY_UNKNOWN) {
        *status = RL_ST_UNKNOWN_OPCODE;
        return RL_ERR;
    }
    if (hdr.flags & ~flags_allowed(hdr.opcode))
        return RL_ERR;
    req->flags = hdr.flags;
    if (kind == BODY_LEASE_ITEM)
        req->lease = get_u64(&c);
    if (has_item(kind)) {
        get_item(&c, &req->items[0], kind == BODY_SIGNED_ITEM);
        req->item_count = 1;
    } else if (kind == BODY_MULTI && get_multi(&c, req, status) != RL_OK) {
        return RL_ERR;
    }
    if (c.bad || c.p != c.end) {
        *status = RL_ST_MALFORMED;
        return RL_ERR;
    }
    return RL_OK;
}

static uint8_t *put_item(uint8_t *p, const rl_item *it) {
    p = put_u32(p, (uint32_t)it->cost);
    p = put_u8(p, it->policy_len);
    p = put_u16(p, it->key_len);
    if (it->policy_len) /* empty strings may be NULL, which memcpy must not see */
        memcpy(p, it->policy, it->policy_len);
    p += it->policy_len;
    if (it->key_len)
        memcpy(p, it->key, it->key_len);
    return p + it->key_len;
}

/* A cost fits the wire: a signed 32-bit value for ADJUST, unsigned 32-bit otherwise. */
static int cost_fits(int64_t cost, body_kind kind) {
    if (kind == BODY_SIGNED_ITEM)
        return cost >= INT32_MIN && cost <= INT32_MAX;
    return cost >= 0 && cost <= UINT32_MAX;
}

static size_t request_size(const rl_request *req) {
    body_kind kind = body_of(req->opcode);
    size_t n = RL_HEADER_LEN;
    if (kind == BODY_MULTI)
        n += 2;
    if (kind == BODY_LEASE_ITEM)
        n += RL_LEASE_LEN;
    size_t items = (kind == BODY_NONE || kind == BODY_UNKNOWN) ? 0 : req->item_count;
    for (size_t i = 0; i < items; i++)
        n += RL_ITEM_FIXED_LEN + req->items[i].policy_len + req->items[i].key_len;
    return n;
}

size_t rl_request_encode(const rl_request *req, uint8_t *out, size_t cap) {
    body_kind kind = body_of(req->opcode);
    if (req->item_count > RL_MAX_ITEMS) /* before request_size reads the items */
        return 0;
    if (has_item(kind) && req->item_count != 1)
        return 0;
    if (req->flags & ~flags_allowed(req->opcode))
        return 0;
    size_t n = request_size(req);
    if (n > cap || n > UINT32_MAX)
        return 0;
    for (size_t i = 0; kind != BODY_NONE && kind != BODY_UNKNOWN && i < req->item_count; i++)
        if (!cost_fits(req->items[i].cost, kind))
            return 0;
    uint8_t *p = put_header(out, (uint32_t)n, req->opcode, req->flags, req->id);
    if (kind == BODY_MULTI) {
        p = put_u8(p, req->item_count);
        p = put_u8(p, 0);
    }
    if (kind == BODY_LEASE_ITEM)
        p = put_u64(p, req->lease);
    size_t items = (kind == BODY_NONE || kind == BODY_UNKNOWN) ? 0 : req->item_count;
    for (size_t i = 0; i < items; i++)
        p = put_item(p, &req->items[i]);
    return n;
}

static int has_text(uint8_t opcode) {
    return opcode >= RL_OP_POLICIES && opcode <= RL_OP_LEASES;
}

/* ACQUIRE, RELEASE and RENEW answer a lease result: the result, then the lease id. */
static int has_lease(uint8_t opcode) {
    return opcode >= RL_OP_ACQUIRE && opcode <= RL_OP_RENEW;
}

size_t rl_response_size(const rl_response *resp) {
    size_t n = RL_HEADER_LEN + RL_RESULT_LEN;
    if (resp->opcode == RL_OP_MULTI_CHECK)
        n += 4 + (size_t)resp->item_count * RL_RESULT_LEN;
    else if (has_text(resp->opcode))
        n += 4 + resp->text_len;
    else if (has_lease(resp->opcode))
        n += RL_LEASE_LEN;
    return n;
}

static uint8_t *put_result(uint8_t *p, const rl_result *r) {
    p = put_u8(p, r->status);
    p = put_u8(p, 0);
    p = put_u16(p, r->flags);
    p = put_u32(p, r->limit);
    p = put_u32(p, r->remaining);
    p = put_u32(p, r->reset_after_ms);
    p = put_u32(p, r->retry_after_ms);
    return put_u32(p, r->window_ms);
}

size_t rl_response_encode(const rl_response *resp, uint8_t *out, size_t cap) {
    size_t n = rl_response_size(resp);
    if (n > cap || n > UINT32_MAX || resp->item_count > RL_MAX_ITEMS)
        return 0;
    uint8_t *p = put_header(out, (uint32_t)n, resp->opcode, 0, resp->id);
    p = put_result(p, &resp->result);
    if (resp->opcode == RL_OP_MULTI_CHECK) {
        p = put_u32(p, (uint32_t)resp->item_count << 24);
        for (uint8_t i = 0; i < resp->item_count; i++)
            p = put_result(p, &resp->items[i]);
    } else if (has_text(resp->opcode)) {
        p = put_u32(p, resp->text_len);
        if (resp->text_len)
            memcpy(p, resp->text, resp->text_len);
    } else if (has_lease(resp->opcode)) {
        put_u64(p, resp->lease);
    }
    return n;
}

static void get_result(cursor *c, rl_result *r) {
    r->status = get_u8(c);
    (void)get_u8(c);
    r->flags = get_u16(c);
    r->limit = get_u32(c);
    r->remaining = get_u32(c);
    r->reset_after_ms = get_u32(c);
    r->retry_after_ms = get_u32(c);
    r->window_ms = get_u32(c);
}

static void get_response_tail(cursor *c, rl_response *resp) {
    if (resp->opcode == RL_OP_MULTI_CHECK) {
        resp->item_count = get_u8(c);
        (void)get_bytes(c, 3);
        if (resp->item_count > RL_MAX_ITEMS) {
            c->bad = 1;
            return;
        }
        for (uint8_t i = 0; i < resp->item_count; i++)
            get_result(c, &resp->items[i]);
    } else if (has_text(resp->opcode)) {
        resp->text_len = get_u32(c);
        resp->text = get_bytes(c, resp->text_len);
    } else if (has_lease(resp->opcode)) {
        resp->lease = get_u64(c);
    }
}

int rl_response_decode(const uint8_t *buf, size_t len, rl_response *resp) {
    rl_header hdr;
    rl_status status;
    memset(resp, 0, sizeof(*resp));
    int rc = rl_header_read(buf, len, UINT32_MAX, &hdr, &status);
    if (rc != RL_OK)
        return rc;
    if ((uint64_t)hdr.length + 4 > len)
        return RL_AGAIN;
    resp->id = hdr.id;
    resp->opcode = hdr.opcode;
    cursor c = {buf + RL_HEADER_LEN, buf + 4 + hdr.length, 0};
    get_result(&c, &resp->result);
    get_response_tail(&c, resp);
    return (c.bad || c.p != c.end) ? RL_ERR : RL_OK;
}

static const char *const status_names[] = {
    [RL_ST_ALLOWED] = "ALLOWED",
    [RL_ST_DENIED] = "DENIED",
    [RL_ST_MALFORMED] = "MALFORMED",
    [RL_ST_UNSUPPORTED_VERSION] = "UNSUPPORTED_VERSION",
    [RL_ST_UNKNOWN_OPCODE] = "UNKNOWN_OPCODE",
    [RL_ST_UNKNOWN_POLICY] = "UNKNOWN_POLICY",
    [RL_ST_KEY_TOO_LONG] = "KEY_TOO_LONG",
    [RL_ST_KEY_EMPTY] = "KEY_EMPTY",
    [RL_ST_COST_INVALID] = "COST_INVALID",
    [RL_ST_COST_TOO_LARGE] = "COST_TOO_LARGE",
    [RL_ST_FRAME_TOO_LARGE] = "FRAME_TOO_LARGE",
    [RL_ST_STORE_UNAVAILABLE] = "STORE_UNAVAILABLE",
    [RL_ST_NOT_PERMITTED] = "NOT_PERMITTED",
    [RL_ST_TOO_MANY_ITEMS] = "TOO_MANY_ITEMS",
    [RL_ST_STORE_FULL] = "STORE_FULL",
    [RL_ST_BUSY] = "BUSY",
    [RL_ST_INTERNAL] = "INTERNAL",
    [RL_ST_RELOAD_FAILED] = "RELOAD_FAILED",
    [RL_ST_AUTH_REQUIRED] = "AUTH_REQUIRED",
    [RL_ST_AUTH_FAILED] = "AUTH_FAILED",
    [RL_ST_LEASE_UNKNOWN] = "LEASE_UNKNOWN",
    [RL_ST_POLICY_KIND] = "POLICY_KIND",
};

const char *rl_status_name(int status) {
    if (status < 0 || (size_t)status >= sizeof(status_names) / sizeof(status_names[0]) ||
        !status_names[status])
        return "UNKNOWN";
    return status_names[status];
}

const char *rl_opcode_name(int opcode) {
    switch (opcode) {
    case RL_OP_PING:
        return "PING";
    case RL_OP_CHECK:
        return "CHECK";
    case RL_OP_PEEK:
        return "PEEK";
    case RL_OP_ADJUST:
        return "ADJUST";
    case RL_OP_RESET:
        return "RESET";
    case RL_OP_MULTI_CHECK:
        return "MULTI_CHECK";
    case RL_OP_AUTH:
        return "AUTH";
    case RL_OP_ACQUIRE:
        return "ACQUIRE";
    case RL_OP_RELEASE:
        return "RELEASE";
    case RL_OP_RENEW:
        return "RENEW";
    case RL_OP_POLICIES:
        return "POLICIES";
    case RL_OP_STATS:
        return "STATS";
    case RL_OP_TOP:
        return "TOP";
    case RL_OP_RELOAD:
        return "RELOAD";
    case RL_OP_LEASES:
        return "LEASES";
    default:
        return NULL;
    }
}

int rl_status_closes(int status) {
    return status == RL_ST_MALFORMED || status == RL_ST_UNSUPPORTED_VERSION ||
           status == RL_ST_FRAME_TOO_LARGE || status == RL_ST_TOO_MANY_ITEMS ||
           status == RL_ST_AUTH_FAILED;
}
