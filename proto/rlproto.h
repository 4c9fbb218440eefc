/*
 * rlproto.h: the pure codec of the rlimitd wire protocol (see PROTOCOL.md).
 *
 * Bytes in, structs out. No I/O, no allocation: decoded strings point into the
 * caller's buffer, which must outlive the decoded struct. Shared by the daemon
 * and every C client.
 */
#ifndef RLPROTO_H
#define RLPROTO_H

#include <stddef.h>
#include <stdint.h>

#define RL_PROTO_VERSION 1
#define RL_HEADER_LEN 12      /* length + version + opcode + flags + request id */
#define RL_RESULT_LEN 24      /* one encoded result */
#define RL_ITEM_FIXED_LEN 7   /* cost + policy_len + key_len */
#define RL_LEASE_LEN 8        /* a lease id on the wire (u64) */
#define RL_MAX_ITEMS 16       /* MULTI_CHECK items */
#define RL_MAX_POLICY_LEN 255 /* policy names fit policy_len */
#define RL_MAX_KEY_LEN 65535  /* the wire limit; the daemon's max_key is lower */
#define RL_DEFAULT_MAX_FRAME 16384
#define RL_DEFAULT_MAX_KEY 512
#define RL_MAX_TOKEN_LEN 1024 /* AUTH: token bytes at most */

/* Return codes of every codec function (and the project's status convention). */
enum { RL_OK = 0, RL_AGAIN = 1, RL_ERR = -1 };

typedef enum rl_opcode {
    RL_OP_PING = 0x01,
    RL_OP_CHECK = 0x02,
    RL_OP_PEEK = 0x03,
    RL_OP_ADJUST = 0x04,
    RL_OP_RESET = 0x05,
    RL_OP_MULTI_CHECK = 0x06,
    RL_OP_AUTH = 0x07,
    RL_OP_ACQUIRE = 0x10,
    RL_OP_RELEASE = 0x11,
    RL_OP_RENEW = 0x12,
    RL_OP_POLICIES = 0x20,
    RL_OP_STATS = 0x21,
    RL_OP_TOP = 0x22,
    RL_OP_RELOAD = 0x23,
    RL_OP_LEASES = 0x24,
} rl_opcode;

typedef enum rl_status {
    RL_ST_ALLOWED = 0, /* also OK */
    RL_ST_DENIED = 1,
    RL_ST_MALFORMED = 16,
    RL_ST_UNSUPPORTED_VERSION = 17,
    RL_ST_UNKNOWN_OPCODE = 18,
    RL_ST_UNKNOWN_POLICY = 19,
    RL_ST_KEY_TOO_LONG = 20,
    RL_ST_KEY_EMPTY = 21,
    RL_ST_COST_INVALID = 22,
    RL_ST_COST_TOO_LARGE = 23,
    RL_ST_FRAME_TOO_LARGE = 24,
    RL_ST_STORE_UNAVAILABLE = 25,
    RL_ST_NOT_PERMITTED = 26,
    RL_ST_TOO_MANY_ITEMS = 27,
    RL_ST_STORE_FULL = 28,
    RL_ST_BUSY = 29,
    RL_ST_INTERNAL = 30,
    RL_ST_RELOAD_FAILED = 31,
    RL_ST_AUTH_REQUIRED = 32,
    RL_ST_AUTH_FAILED = 33,
    RL_ST_LEASE_UNKNOWN = 34,
    RL_ST_POLICY_KIND = 35,
} rl_status;

#define RL_ST_OK RL_ST_ALLOWED

/* Result flags (see PROTOCOL.md). */
#define RL_FLAG_FALLBACK 0x0001
#define RL_FLAG_SHADOW 0x0002
#define RL_FLAG_CACHED 0x0004
#define RL_FLAG_EXEMPT 0x0008
#define RL_FLAG_BLOCKED 0x0010
#define RL_FLAG_CAPPED 0x0020 /* an ADJUST charge was held at 2 x capacity */

/* Request flags (the request header's flags field; see PROTOCOL.md). */
#define RL_REQ_DETACH 0x0001 /* ACQUIRE only: the lease outlives this connection */

/* One (policy, key, cost) item. Strings are not NUL-terminated. */
typedef struct rl_item {
    int64_t cost;       /* units; signed only for ADJUST */
    const char *policy; /* policy name, into the frame buffer */
    const char *key;    /* key bytes, into the frame buffer */
    uint16_t key_len;   /* bytes of key */
    uint8_t policy_len; /* bytes of policy */
} rl_item;

/* A decoded request frame. */
typedef struct rl_request {
    uint32_t id;                 /* request id, echoed in the response */
    uint8_t opcode;              /* rl_opcode */
    uint16_t flags;              /* request flags: RL_REQ_DETACH (ACQUIRE only) or 0 */
    uint64_t lease;              /* RELEASE, RENEW: the lease id named; 0 otherwise */
    uint8_t item_count;          /* items used: 0 (PING/admin), 1, or 1..16 (MULTI_CHECK) */
    rl_item items[RL_MAX_ITEMS]; /* the items */
} rl_request;

/* One decision (or error) as it travels on the wire. */
typedef struct rl_result {
    uint8_t status;          /* rl_status */
    uint16_t flags;          /* RL_FLAG_* */
    uint32_t limit;          /* admitted per window of the binding rate */
    uint32_t remaining;      /* units left after this decision */
    uint32_t reset_after_ms; /* until usage is back to zero */
    uint32_t retry_after_ms; /* until the same request would pass; 0 if allowed */
    uint32_t window_ms;      /* the binding rate's window */
} rl_result;

/* A decoded or to-be-encoded response frame. */
typedef struct rl_response {
    uint32_t id;                   /* echoed request id */
    uint8_t opcode;                /* echoed opcode */
    rl_result result;              /* the (overall) result */
    uint64_t lease;                /* ACQUIRE, RELEASE, RENEW: the lease id (0 if none) */
    uint8_t item_count;            /* MULTI_CHECK: per-item results that follow */
    rl_result items[RL_MAX_ITEMS]; /* MULTI_CHECK per-item results */
    const char *text;              /* admin opcodes: JSON text (not NUL-terminated) */
    uint32_t text_len;             /* bytes of text */
} rl_response;

/* Header fields, readable as soon as RL_HEADER_LEN bytes are in. */
typedef struct rl_header {
    uint32_t length; /* bytes after the length field */
    uint8_t version; /* protocol version */
    uint8_t opcode;  /* opcode */
    uint16_t flags;  /* flags */
    uint32_t id;     /* request id */
} rl_header;

// Reads the header at buf (len bytes available). Returns RL_AGAIN if fewer than
// RL_HEADER_LEN bytes are in, RL_ERR with *status set if the frame must be refused
// (length below 8 or above max_frame: MALFORMED or FRAME_TOO_LARGE; wrong version:
// UNSUPPORTED_VERSION), RL_OK otherwise. *hdr is filled whenever the header is in.
int rl_header_read(const uint8_t *buf, size_t len, uint32_t max_frame, rl_header *hdr,
                   rl_status *status);

// Decodes one complete request frame of 4 + hdr.length bytes at buf (the length field
// itself, then what it counts; the caller checked completeness with rl_header_read).
// Returns RL_OK, or RL_ERR with *status naming the problem (MALFORMED, also for a
// MULTI_CHECK of 0 items, request flags other than DETACH on ACQUIRE, a RELEASE or
// RENEW shorter than its lease field; TOO_MANY_ITEMS above 16; UNKNOWN_OPCODE; req->id
// and req->opcode are set even then). Checks only the wire format: limits such as max_key
// are the daemon's. Item strings point into buf.
int rl_request_decode(const uint8_t *buf, size_t len, rl_request *req, rl_status *status);

// Encodes req into out (cap bytes). Returns the frame's size, or 0 if it does not fit
// or is invalid for the wire (too many items, no item where the opcode needs one, a
// cost outside 0..2^32-1, or outside -2^31..2^31-1 for ADJUST, flags other than DETACH
// on ACQUIRE). req->lease is written for RELEASE and RENEW. Empty strings may be NULL.
size_t rl_request_encode(const rl_request *req, uint8_t *out, size_t cap);

// Returns the encoded size of resp (a function of its opcode, item_count, text_len):
// the lease result (result + lease) for ACQUIRE, RELEASE and RENEW.
size_t rl_response_size(const rl_response *resp);

// Encodes resp into out (cap bytes). Returns the frame's size, or 0 if it does not fit.
size_t rl_response_encode(const rl_response *resp, uint8_t *out, size_t cap);

// Decodes one complete response frame at buf. Returns RL_OK, RL_AGAIN if the frame
// is not complete yet, RL_ERR if it is malformed. resp->text points into buf.
int rl_response_decode(const uint8_t *buf, size_t len, rl_response *resp);

// Returns the status's wire name ("ALLOWED", "UNKNOWN_POLICY", ...), "UNKNOWN" if none.
const char *rl_status_name(int status);

// Returns the opcode's name ("CHECK", ...), or NULL for an undefined opcode.
const char *rl_opcode_name(int opcode);

// Returns 1 if responses with this status leave the connection unusable (the daemon
// closes it after answering), 0 otherwise.
int rl_status_closes(int status);

#endif
