/*
 * test_proto.c: the C codec against proto/vectors/vectors.json, plus truncation and
 * random-input robustness.
 *
 * Every vector is decoded and compared field by field with its "decoded" object;
 * valid ones are encoded again from that object and must give the same bytes. Every
 * buffer handed to the codec is allocated at its exact size, so that an out-of-bounds
 * read shows under ASan or valgrind. The vectors file is $RL_VECTORS, else
 * proto/vectors/vectors.json (tests run from the repository root).
 */
#include "rlproto.h"

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *vectors_doc; /* the whole vectors.json */
static uint32_t max_frame;  /* the max_frame the refusal vectors assume */

/* A vector's frame, in a heap buffer of exactly its size. */
typedef struct frame {
    uint8_t *bytes; /* the frame (NULL when len is 0) */
    size_t len;     /* its size */
} frame;

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into a fresh buffer of exactly its size; aborts the test on bad hex. */
static frame frame_from_hex(const char *hex) {
    size_t n = strlen(hex);
    ck_assert_msg(n % 2 == 0, "odd hex length");
    frame f = {n ? malloc(n / 2) : NULL, n / 2};
    for (size_t i = 0; i < f.len; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        ck_assert_msg(hi >= 0 && lo >= 0, "bad hex digit");
        f.bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return f;
}

/* Copies the first len bytes of f into a buffer of exactly len bytes. */
static uint8_t *prefix_copy(const frame *f, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, f->bytes, len);
    return copy;
}

static const char *vec_name(json_t *vec) {
    return json_string_value(json_object_get(vec, "name"));
}

static int is_request(json_t *vec) {
    return strcmp(json_string_value(json_object_get(vec, "direction")), "request") == 0;
}

static int is_valid(json_t *vec) {
    return json_is_null(json_object_get(vec, "error"));
}

static frame vec_frame(json_t *vec) {
    return frame_from_hex(json_string_value(json_object_get(vec, "hex")));
}

static json_int_t int_field(json_t *obj, const char *field) {
    json_t *value = json_object_get(obj, field);
    ck_assert_msg(json_is_integer(value), "field %s is not an integer", field);
    return json_integer_value(value);
}

/* A lease id: the decimal string in obj's "lease", 0 when absent. */
static uint64_t lease_field(json_t *obj, const char *vec) {
    json_t *value = json_object_get(obj, "lease");
    if (!value)
        return 0;
    ck_assert_msg(json_is_string(value), "%s: lease is not a string", vec);
    char *end;
    uint64_t lease = strtoull(json_string_value(value), &end, 10);
    ck_assert_msg(*end == '\0' && end != json_string_value(value), "%s: lease", vec);
    return lease;
}

/* Request flags: obj's "flags", 0 when absent. */
static uint16_t flags_field(json_t *obj) {
    return json_object_get(obj, "flags") ? (uint16_t)int_field(obj, "flags") : 0;
}

/* The status code whose wire name is name, or -1. */
static int status_code(const char *name) {
    for (int code = 0; code < 256; code++)
        if (strcmp(rl_status_name(code), name) == 0)
            return code;
    return -1;
}

/* The opcode a decoded object names: a name, or a number for an unnamed one. */
static int opcode_of(json_t *decoded, const char *vec) {
    json_t *op = json_object_get(decoded, "opcode");
    if (json_is_integer(op))
        return (int)json_integer_value(op);
    for (int code = 0; code < 256; code++) {
        const char *name = rl_opcode_name(code);
        if (name && strcmp(name, json_string_value(op)) == 0)
            return code;
    }
    ck_abort_msg("%s: unknown opcode name", vec);
    return -1;
}

/* Key bytes of a decoded item, from "key" or "key_hex"; *hex_buf is to be freed. */
static const char *item_key(json_t *item, size_t *len, frame *hex_buf) {
    json_t *key = json_object_get(item, "key");
    hex_buf->bytes = NULL;
    if (key) {
        *len = json_string_length(key);
        return json_string_value(key);
    }
    *hex_buf = frame_from_hex(json_string_value(json_object_get(item, "key_hex")));
    *len = hex_buf->len;
    return (const char *)hex_buf->bytes;
}

static void check_item(const rl_item *got, json_t *want, const char *vec) {
    json_t *policy = json_object_get(want, "policy");
    size_t key_len;
    frame hex_buf;
    const char *key = item_key(want, &key_len, &hex_buf);
    ck_assert_msg(got->cost == int_field(want, "cost"), "%s: cost", vec);
    ck_assert_msg(got->policy_len == json_string_length(policy), "%s: policy_len", vec);
    ck_assert_msg(memcmp(got->policy, json_string_value(policy), got->policy_len) == 0,
                  "%s: policy", vec);
    ck_assert_msg(got->key_len == key_len, "%s: key_len", vec);
    ck_assert_msg(memcmp(got->key, key, key_len) == 0, "%s: key", vec);
    free(hex_buf.bytes);
}

static void check_request(const rl_request *req, json_t *want, const char *vec) {
    json_t *items = json_object_get(want, "items");
    ck_assert_msg(req->id == (uint32_t)int_field(want, "id"), "%s: id", vec);
    ck_assert_msg(req->opcode == opcode_of(want, vec), "%s: opcode", vec);
    ck_assert_msg(req->flags == flags_field(want), "%s: flags", vec);
    ck_assert_msg(req->lease == lease_field(want, vec), "%s: lease", vec);
    ck_assert_msg(req->item_count == json_array_size(items), "%s: item_count", vec);
    for (size_t i = 0; i < req->item_count; i++)
        check_item(&req->items[i], json_array_get(items, i), vec);
}

static void check_result(const rl_result *got, json_t *want, const char *vec) {
    const char *status = json_string_value(json_object_get(want, "status"));
    ck_assert_msg(strcmp(rl_status_name(got->status), status) == 0, "%s: status %s, not %s", vec,
                  rl_status_name(got->status), status);
    ck_assert_msg(got->flags == int_field(want, "flags"), "%s: flags", vec);
    ck_assert_msg(got->limit == int_field(want, "limit"), "%s: limit", vec);
    ck_assert_msg(got->remaining == int_field(want, "remaining"), "%s: remaining", vec);
    ck_assert_msg(got->reset_after_ms == int_field(want, "reset_after_ms"), "%s: reset", vec);
    ck_assert_msg(got->retry_after_ms == int_field(want, "retry_after_ms"), "%s: retry", vec);
    ck_assert_msg(got->window_ms == int_field(want, "window_ms"), "%s: window", vec);
}

static void check_response(const rl_response *resp, json_t *want, const char *vec) {
    json_t *items = json_object_get(want, "items");
    json_t *text = json_object_get(want, "text");
    ck_assert_msg(resp->id == (uint32_t)int_field(want, "id"), "%s: id", vec);
    ck_assert_msg(resp->opcode == opcode_of(want, vec), "%s: opcode", vec);
    check_result(&resp->result, json_object_get(want, "result"), vec);
    ck_assert_msg(resp->lease == lease_field(want, vec), "%s: lease", vec);
    ck_assert_msg(resp->item_count == json_array_size(items), "%s: item_count", vec);
    for (size_t i = 0; i < resp->item_count; i++)
        check_result(&resp->items[i], json_array_get(items, i), vec);
    ck_assert_msg(resp->text_len == (text ? json_string_length(text) : 0), "%s: text_len", vec);
    if (text)
        ck_assert_msg(memcmp(resp->text, json_string_value(text), resp->text_len) == 0, "%s: text",
                      vec);
}

/* Builds the request a decoded object describes; key_bufs keep key_hex bytes alive. */
static void request_from_json(json_t *want, rl_request *req, frame *key_bufs, const char *vec) {
    json_t *items = json_object_get(want, "items");
    memset(req, 0, sizeof(*req));
    req->id = (uint32_t)int_field(want, "id");
    req->opcode = (uint8_t)opcode_of(want, vec);
    req->flags = flags_field(want);
    req->lease = lease_field(want, vec);
    req->item_count = (uint8_t)json_array_size(items);
    for (size_t i = 0; i < req->item_count; i++) {
        json_t *item = json_array_get(items, i);
        json_t *policy = json_object_get(item, "policy");
        size_t key_len;
        req->items[i].key = item_key(item, &key_len, &key_bufs[i]);
        req->items[i].key_len = (uint16_t)key_len;
        req->items[i].policy = json_string_value(policy);
        req->items[i].policy_len = (uint8_t)json_string_length(policy);
        req->items[i].cost = int_field(item, "cost");
    }
}

static void result_from_json(json_t *want, rl_result *r) {
    r->status = (uint8_t)status_code(json_string_value(json_object_get(want, "status")));
    r->flags = (uint16_t)int_field(want, "flags");
    r->limit = (uint32_t)int_field(want, "limit");
    r->remaining = (uint32_t)int_field(want, "remaining");
    r->reset_after_ms = (uint32_t)int_field(want, "reset_after_ms");
    r->retry_after_ms = (uint32_t)int_field(want, "retry_after_ms");
    r->window_ms = (uint32_t)int_field(want, "window_ms");
}

static void response_from_json(json_t *want, rl_response *resp, const char *vec) {
    json_t *items = json_object_get(want, "items");
    json_t *text = json_object_get(want, "text");
    memset(resp, 0, sizeof(*resp));
    resp->id = (uint32_t)int_field(want, "id");
    resp->opcode = (uint8_t)opcode_of(want, vec);
    result_from_json(json_object_get(want, "result"), &resp->result);
    resp->lease = lease_field(want, vec);
    resp->item_count = (uint8_t)json_array_size(items);
    for (size_t i = 0; i < resp->item_count; i++)
        result_from_json(json_array_get(items, i), &resp->items[i]);
    if (text) {
        resp->text = json_string_value(text);
        resp->text_len = (uint32_t)json_string_length(text);
    }
}

/* Encodes into a buffer of exactly the expected size and compares the bytes. */
static void check_encoded(const frame *want, const rl_request *req, const rl_response *resp,
                          const char *vec) {
    uint8_t *out = malloc(want->len);
    size_t n =
        req ? rl_request_encode(req, out, want->len) : rl_response_encode(resp, out, want->len);
    ck_assert_msg(n == want->len, "%s: encoded %zu bytes, want %zu", vec, n, want->len);
    ck_assert_msg(memcmp(out, want->bytes, n) == 0, "%s: encoded bytes differ", vec);
    n = req ? rl_request_encode(req, out, want->len - 1)
            : rl_response_encode(resp, out, want->len - 1);
    ck_assert_msg(n == 0, "%s: encoding into a buffer one byte short must fail", vec);
    free(out);
}

static void run_valid_request(json_t *vec, const frame *f) {
    json_t *want = json_object_get(vec, "decoded");
    rl_request req, built;
    rl_status status = RL_ST_OK;
    frame key_bufs[RL_MAX_ITEMS];
    int rc = rl_request_decode(f->bytes, f->len, &req, &status);
    ck_assert_msg(rc == RL_OK, "%s: decode gave %d (%s)", vec_name(vec), rc,
                  rl_status_name(status));
    check_request(&req, want, vec_name(vec));
    check_encoded(f, &req, NULL, vec_name(vec));
    request_from_json(want, &built, key_bufs, vec_name(vec));
    check_encoded(f, &built, NULL, vec_name(vec));
    for (size_t i = 0; i < built.item_count; i++)
        free(key_bufs[i].bytes);
}

static void run_valid_response(json_t *vec, const frame *f) {
    json_t *want = json_object_get(vec, "decoded");
    rl_response resp, built;
    int rc = rl_response_decode(f->bytes, f->len, &resp);
    ck_assert_msg(rc == RL_OK, "%s: decode gave %d", vec_name(vec), rc);
    check_response(&resp, want, vec_name(vec));
    ck_assert_msg(rl_response_size(&resp) == f->len, "%s: rl_response_size", vec_name(vec));
    check_encoded(f, NULL, &resp, vec_name(vec));
    response_from_json(want, &built, vec_name(vec));
    check_encoded(f, NULL, &built, vec_name(vec));
}

/* Reads a refused frame the way the daemon does: header first, then the whole frame. */
static void run_refused(json_t *vec, const frame *f) {
    const char *want = json_string_value(json_object_get(vec, "error"));
    rl_header hdr;
    rl_status status = RL_ST_OK;
    rl_request req;
    int rc = rl_header_read(f->bytes, f->len, max_frame, &hdr, &status);
    ck_assert_msg(rc != RL_AGAIN, "%s: header incomplete", vec_name(vec));
    if (rc == RL_OK) {
        ck_assert_msg(4 + (size_t)hdr.length == f->len, "%s: frame incomplete", vec_name(vec));
        rc = rl_request_decode(f->bytes, f->len, &req, &status);
        ck_assert_msg(req.id == hdr.id && req.opcode == hdr.opcode, "%s: echo", vec_name(vec));
    }
    ck_assert_msg(rc == RL_ERR, "%s: refused frame accepted", vec_name(vec));
    ck_assert_msg(strcmp(rl_status_name(status), want) == 0, "%s: status %s, want %s",
                  vec_name(vec), rl_status_name(status), want);
    ck_assert_msg(rl_status_closes(status) ==
                      (status == RL_ST_MALFORMED || status == RL_ST_UNSUPPORTED_VERSION ||
                       status == RL_ST_FRAME_TOO_LARGE || status == RL_ST_TOO_MANY_ITEMS),
                  "%s: rl_status_closes", vec_name(vec));
}

static void run_vector(json_t *vec) {
    frame f = vec_frame(vec);
    if (!is_valid(vec))
        run_refused(vec, &f);
    else if (is_request(vec))
        run_valid_request(vec, &f);
    else
        run_valid_response(vec, &f);
    free(f.bytes);
}

START_TEST(test_vectors_file) {
    json_t *vecs = json_object_get(vectors_doc, "vectors");
    ck_assert_int_eq(int_field(vectors_doc, "version"), 1);
    ck_assert(json_is_array(vecs));
    ck_assert_uint_ge(json_array_size(vecs), 60);
}
END_TEST

START_TEST(test_every_vector) {
    size_t i;
    json_t *vec;
    json_array_foreach(json_object_get(vectors_doc, "vectors"), i, vec) run_vector(vec);
}
END_TEST

/* Every strict prefix of a valid frame is incomplete, never accepted nor a crash. */
static void run_truncations(json_t *vec) {
    frame f = vec_frame(vec);
    for (size_t cut = 0; cut < f.len; cut++) {
        uint8_t *part = prefix_copy(&f, cut);
        rl_header hdr;
        rl_status status = RL_ST_OK;
        if (is_request(vec)) {
            rl_request req;
            int rc = rl_header_read(part, cut, max_frame, &hdr, &status);
            ck_assert_msg(rc == (cut < RL_HEADER_LEN ? RL_AGAIN : RL_OK), "%s", vec_name(vec));
            ck_assert_msg(cut < RL_HEADER_LEN || 4 + (size_t)hdr.length > cut, "%s", vec_name(vec));
            ck_assert_int_eq(rl_request_decode(part, cut, &req, &status), RL_ERR);
            ck_assert_int_eq(status, RL_ST_MALFORMED);
        } else {
            rl_response resp;
            ck_assert_msg(rl_response_decode(part, cut, &resp) == RL_AGAIN, "%s at %zu",
                          vec_name(vec), cut);
        }
        free(part);
    }
    free(f.bytes);
}

START_TEST(test_truncations) {
    size_t i;
    json_t *vec;
    json_array_foreach(json_object_get(vectors_doc, "vectors"), i, vec) {
        if (is_valid(vec))
            run_truncations(vec);
    }
}
END_TEST

START_TEST(test_max_frame_boundary) {
    uint8_t buf[RL_HEADER_LEN] = {0, 0, 0x40, 0x00, 1, RL_OP_CHECK, 0, 0, 0, 0, 0, 9};
    rl_header hdr;
    rl_status status = RL_ST_OK;
    /* length 16384 == max_frame: accepted (PROTOCOL.md: refused when length exceeds it) */
    ck_assert_int_eq(rl_header_read(buf, sizeof(buf), 16384, &hdr, &status), RL_OK);
    ck_assert_uint_eq(hdr.length, 16384);
    ck_assert_uint_eq(hdr.id, 9);
    buf[3] = 0x01; /* 16385 */
    ck_assert_int_eq(rl_header_read(buf, sizeof(buf), 16384, &hdr, &status), RL_ERR);
    ck_assert_int_eq(status, RL_ST_FRAME_TOO_LARGE);
    buf[2] = 0;
    buf[3] = 8; /* the smallest frame: a bare header */
    ck_assert_int_eq(rl_header_read(buf, sizeof(buf), 16384, &hdr, &status), RL_OK);
    buf[3] = 7;
    ck_assert_int_eq(rl_header_read(buf, sizeof(buf), 16384, &hdr, &status), RL_ERR);
    ck_assert_int_eq(status, RL_ST_MALFORMED);
}
END_TEST

START_TEST(test_encode_refuses_invalid) {
    uint8_t out[512];
    rl_request req = {.id = 1, .opcode = RL_OP_CHECK, .item_count = 0};
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0); /* CHECK needs an item */
    req.opcode = RL_OP_MULTI_CHECK;
    req.item_count = RL_MAX_ITEMS + 1;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    req.opcode = RL_OP_CHECK;
    req.item_count = 1;
    req.items[0] = (rl_item){.cost = 1, .policy = "p", .policy_len = 1, .key = "k", .key_len = 1};
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), RL_HEADER_LEN + 9);
    req.items[0].cost = (int64_t)UINT32_MAX + 1;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    req.items[0].cost = -1; /* negative only for ADJUST */
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    req.opcode = RL_OP_ADJUST;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), RL_HEADER_LEN + 9);
    req.items[0].cost = (int64_t)INT32_MIN - 1;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    req.items[0].cost = (int64_t)INT32_MAX + 1;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    rl_response resp = {.id = 1, .opcode = RL_OP_MULTI_CHECK, .item_count = RL_MAX_ITEMS + 1};
    ck_assert_uint_eq(rl_response_encode(&resp, out, sizeof(out)), 0);
}
END_TEST

START_TEST(test_encode_empty_strings) {
    /* TOP over every policy: empty policy and key, given as NULL pointers. */
    uint8_t out[64];
    rl_request req = {.id = 3, .opcode = RL_OP_TOP, .item_count = 1};
    req.items[0].cost = 5;
    size_t n = rl_request_encode(&req, out, sizeof(out));
    ck_assert_uint_eq(n, RL_HEADER_LEN + RL_ITEM_FIXED_LEN);
    rl_request back;
    rl_status status;
    ck_assert_int_eq(rl_request_decode(out, n, &back, &status), RL_OK);
    ck_assert_int_eq(back.items[0].policy_len, 0);
    ck_assert_int_eq(back.items[0].key_len, 0);
    ck_assert_int_eq(back.items[0].cost, 5);
}
END_TEST

/* xorshift64*: a fixed, portable pseudo-random sequence. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static const uint8_t known_opcodes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x20, 0x21,
                                        0x22, 0x23, 0x24, 0x10, 0x11, 0x12, 0x13, 0x7f};

/* Random bytes; most of the time behind a plausible header so decoding goes deep. */
static size_t random_frame(uint8_t *buf, size_t cap) {
    size_t len = rng() % cap;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(rng() % 4 == 0 ? rng() : rng() % 20);
    if (len >= RL_HEADER_LEN && rng() % 4 != 0) {
        uint32_t length = (uint32_t)(len - 4 + (rng() % 8 == 0 ? (rng() % 5) - 2 : 0));
        buf[0] = (uint8_t)(length >> 24), buf[1] = (uint8_t)(length >> 16);
        buf[2] = (uint8_t)(length >> 8), buf[3] = (uint8_t)length;
        buf[4] = 1;
        buf[5] = known_opcodes[rng() % sizeof(known_opcodes)];
        buf[6] = 0;
        buf[7] = (uint8_t)(rng() % 8 == 0 ? rng() % 4 : 0); /* DETACH and worse, sometimes */
        if (buf[5] == RL_OP_MULTI_CHECK && rng() % 2)
            buf[12] = (uint8_t)(rng() % 18);
    }
    return len;
}

/* A decoded request must point inside its frame and encode back to the same bytes. */
static void check_decoded_request(const uint8_t *buf, size_t len, const rl_request *req) {
    for (size_t i = 0; i < req->item_count; i++) {
        const rl_item *it = &req->items[i];
        ck_assert((const uint8_t *)it->policy >= buf && (const uint8_t *)it->key >= buf);
        ck_assert((const uint8_t *)it->key + it->key_len <= buf + len);
        ck_assert((const uint8_t *)it->policy + it->policy_len <= buf + len);
    }
    uint8_t *out = malloc(len);
    ck_assert_uint_eq(rl_request_encode(req, out, len), len);
    if (req->opcode == RL_OP_MULTI_CHECK)
        out[13] = buf[13]; /* the reserved byte is ignored on input */
    ck_assert(memcmp(out, buf, len) == 0);
    free(out);
}

static void check_decoded_response(const uint8_t *buf, size_t len, const rl_response *resp) {
    ck_assert_uint_le(resp->item_count, RL_MAX_ITEMS);
    ck_assert_uint_eq(rl_response_size(resp), len);
    if (resp->text_len)
        ck_assert((const uint8_t *)resp->text + resp->text_len <= buf + len);
    uint8_t *out = malloc(len);
    rl_response again;
    ck_assert_uint_eq(rl_response_encode(resp, out, len), len);
    ck_assert_int_eq(rl_response_decode(out, len, &again), RL_OK);
    ck_assert_uint_eq(again.item_count, resp->item_count);
    ck_assert(memcmp(&again.result, &resp->result, sizeof(rl_result)) == 0);
    free(out);
}

/* The frame size its length field announces, or 0 before the length is in. */
static size_t announced_len(const uint8_t *buf, size_t len) {
    if (len < 4)
        return 0;
    return 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
}

START_TEST(test_random_bytes) {
    uint8_t scratch[600];
    for (int iter = 0; iter < 100000; iter++) {
        size_t len = random_frame(scratch, sizeof(scratch));
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, scratch, len);
        rl_header hdr;
        rl_status status;
        rl_request req;
        rl_response resp;
        int rc = rl_header_read(buf, len, max_frame, &hdr, &status);
        ck_assert(rc == RL_OK || rc == RL_AGAIN || rc == RL_ERR);
        rc = rl_request_decode(buf, len, &req, &status);
        if (rc == RL_OK)
            check_decoded_request(buf, announced_len(buf, len), &req);
        else
            ck_assert_int_eq(rc, RL_ERR);
        rc = rl_response_decode(buf, len, &resp);
        if (rc == RL_OK)
            check_decoded_response(buf, announced_len(buf, len), &resp);
        free(buf);
    }
}
END_TEST

START_TEST(test_names) {
    ck_assert_str_eq(rl_status_name(RL_ST_ALLOWED), "ALLOWED");
    ck_assert_str_eq(rl_status_name(RL_ST_RELOAD_FAILED), "RELOAD_FAILED");
    ck_assert_str_eq(rl_status_name(2), "UNKNOWN");
    ck_assert_str_eq(rl_status_name(-1), "UNKNOWN");
    ck_assert_str_eq(rl_status_name(255), "UNKNOWN");
    ck_assert_str_eq(rl_opcode_name(RL_OP_MULTI_CHECK), "MULTI_CHECK");
    ck_assert_ptr_null(rl_opcode_name(0x7f));
    ck_assert_str_eq(rl_opcode_name(RL_OP_ACQUIRE), "ACQUIRE");
    ck_assert_str_eq(rl_opcode_name(RL_OP_LEASES), "LEASES");
    ck_assert_ptr_null(rl_opcode_name(0x13));
    ck_assert_str_eq(rl_status_name(RL_ST_LEASE_UNKNOWN), "LEASE_UNKNOWN");
    ck_assert_str_eq(rl_status_name(RL_ST_POLICY_KIND), "POLICY_KIND");
    ck_assert_int_eq(rl_status_closes(RL_ST_LEASE_UNKNOWN), 0);
    ck_assert_int_eq(rl_status_closes(RL_ST_POLICY_KIND), 0);
}
END_TEST

START_TEST(test_lease_codec) {
    /* Lease ids keep all 64 bits; flags other than DETACH on ACQUIRE do not encode. */
    uint8_t out[64];
    rl_request req = {.id = 5, .opcode = RL_OP_RENEW, .lease = UINT64_MAX - 1, .item_count = 1};
    req.items[0] = (rl_item){.policy = "p", .policy_len = 1, .key = "k", .key_len = 1};
    size_t n = rl_request_encode(&req, out, sizeof(out));
    ck_assert_uint_eq(n, RL_HEADER_LEN + RL_LEASE_LEN + RL_ITEM_FIXED_LEN + 2);
    rl_request back;
    rl_status status;
    ck_assert_int_eq(rl_request_decode(out, n, &back, &status), RL_OK);
    ck_assert(back.lease == UINT64_MAX - 1);
    req.flags = RL_REQ_DETACH;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    req.opcode = RL_OP_ACQUIRE;
    req.items[0].cost = 1;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), RL_HEADER_LEN + 9);
    req.flags = 0x0002;
    ck_assert_uint_eq(rl_request_encode(&req, out, sizeof(out)), 0);
    rl_response resp = {.id = 1, .opcode = RL_OP_ACQUIRE, .lease = 1ULL << 63};
    ck_assert_uint_eq(rl_response_size(&resp), RL_HEADER_LEN + RL_RESULT_LEN + RL_LEASE_LEN);
    n = rl_response_encode(&resp, out, sizeof(out));
    rl_response decoded;
    ck_assert_int_eq(rl_response_decode(out, n, &decoded), RL_OK);
    ck_assert(decoded.lease == 1ULL << 63);
}
END_TEST

static Suite *proto_suite(void) {
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vectors_file);
    tcase_add_test(tc, test_every_vector);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_max_frame_boundary);
    tcase_add_test(tc, test_encode_refuses_invalid);
    tcase_add_test(tc, test_encode_empty_strings);
    tcase_add_test(tc, test_random_bytes);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_lease_codec);
    suite_add_tcase(s, tc);
    return s;
}

static json_t *load_vectors(void) {
    const char *path = getenv("RL_VECTORS");
    json_error_t error;
    json_t *doc = json_load_file(path ? path : "proto/vectors/vectors.json", 0, &error);
    if (!doc)
        fprintf(stderr,
                "test_proto: cannot load vectors (%s line %d): %s\n"
                "run from the repository root or set RL_VECTORS\n",
                path ? path : "proto/vectors/vectors.json", error.line, error.text);
    return doc;
}

int main(void) {
    vectors_doc = load_vectors();
    if (!vectors_doc)
        return EXIT_FAILURE;
    json_t *mf = json_object_get(vectors_doc, "max_frame");
    max_frame = json_is_integer(mf) ? (uint32_t)json_integer_value(mf) : RL_DEFAULT_MAX_FRAME;
    SRunner *runner = srunner_create(proto_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    json_decref(vectors_doc);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
