#!/usr/bin/python3
"""Generate proto/vectors/vectors.json, the byte-level test vectors of the rlimitd protocol.

Every frame here is built from PROTOCOL.md with struct.pack, independently of the C codec,
so that the C and Python clients (and the daemon's tests) check their codecs against the
spec rather than against each other.

Run from anywhere: /usr/bin/python3 proto/vectors/gen_vectors.py
It rewrites vectors.json next to this file; the output is deterministic.
"""

import json
import os
import struct

VERSION = 1
MAX_FRAME = 16384

OPCODES = {
    "PING": 0x01,
    "CHECK": 0x02,
    "PEEK": 0x03,
    "ADJUST": 0x04,
    "RESET": 0x05,
    "MULTI_CHECK": 0x06,
    "AUTH": 0x07,
    "ACQUIRE": 0x10,
    "RELEASE": 0x11,
    "RENEW": 0x12,
    "POLICIES": 0x20,
    "STATS": 0x21,
    "TOP": 0x22,
    "RELOAD": 0x23,
    "LEASES": 0x24,
}

STATUS = {
    "ALLOWED": 0,
    "DENIED": 1,
    "MALFORMED": 16,
    "UNSUPPORTED_VERSION": 17,
    "UNKNOWN_OPCODE": 18,
    "UNKNOWN_POLICY": 19,
    "KEY_TOO_LONG": 20,
    "KEY_EMPTY": 21,
    "COST_INVALID": 22,
    "COST_TOO_LARGE": 23,
    "FRAME_TOO_LARGE": 24,
    "STORE_UNAVAILABLE": 25,
    "NOT_PERMITTED": 26,
    "TOO_MANY_ITEMS": 27,
    "STORE_FULL": 28,
    "BUSY": 29,
    "INTERNAL": 30,
    "RELOAD_FAILED": 31,
    "AUTH_REQUIRED": 32,
    "AUTH_FAILED": 33,
    "LEASE_UNKNOWN": 34,
    "POLICY_KIND": 35,
}

FALLBACK, SHADOW, CACHED, EXEMPT, BLOCKED = 0x01, 0x02, 0x04, 0x08, 0x10

DETACH = 0x0001  # request flag, ACQUIRE only

ADMIN_OPCODES = ("POLICIES", "STATS", "TOP", "RELOAD", "LEASES")
LEASE_OPCODES = ("ACQUIRE", "RELEASE", "RENEW")  # answered with a lease result
LEASE_BODY_OPCODES = ("RELEASE", "RENEW")  # request body: lease, then an item

NOTES = (
    "hex: the whole frame, length field included. decoded: what a codec must produce "
    "(null for a frame that must be refused). opcode: its name, or its number when it has "
    "no name. key: the key as a string, or key_hex (the key's bytes in hex) when the key "
    "is not UTF-8. Requests carry items (empty for PING and the admin opcodes POLICIES, "
    "STATS, RELOAD). Responses carry result; items (MULTI_CHECK only, one result each); "
    "text (admin opcodes only). Status names follow PROTOCOL.md; code 0 is named ALLOWED "
    "(OK). flags: the result flags as an integer. error: for a request the daemon refuses, "
    "the status it answers, found the way the daemon reads: the header first (with "
    "max_frame below), then the whole frame. flags (requests): the header's request "
    "flags as an integer, present only when not 0 (DETACH = 1, ACQUIRE only). lease: a lease "
    "id as an unsigned decimal string (a u64 does not fit every JSON reader's integers), "
    "present on RELEASE and RENEW requests and on ACQUIRE, RELEASE and RENEW responses "
    "(their body is the lease result: result, then lease)."
)


def opcode_code(opcode):
    return OPCODES[opcode] if isinstance(opcode, str) else opcode


def header(length, opcode, request_id, version=VERSION, flags=0):
    return struct.pack(">IBBHI", length, version, opcode_code(opcode), flags, request_id)


def frame(opcode, request_id, body, version=VERSION, flags=0):
    return header(8 + len(body), opcode, request_id, version, flags) + body


def as_bytes(text):
    return text if isinstance(text, bytes) else text.encode("utf-8")


def item_body(policy, key, cost, signed=False):
    policy, key = as_bytes(policy), as_bytes(key)
    cost_bytes = struct.pack(">i" if signed else ">I", cost)
    return cost_bytes + struct.pack(">BH", len(policy), len(key)) + policy + key


def multi_body(items, count=None):
    count = len(items) if count is None else count
    return struct.pack(">BB", count, 0) + b"".join(item_body(*item) for item in items)


def decoded_item(policy, key, cost):
    out = {"policy": as_bytes(policy).decode("utf-8")}
    try:
        out["key"] = as_bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        out["key_hex"] = as_bytes(key).hex()
    out["cost"] = cost
    return out


def opcode_json(opcode):
    return opcode if isinstance(opcode, str) else opcode


def request_vector(name, description, opcode, request_id, items=(), flags=0, lease=None):
    signed = opcode == "ADJUST"
    if opcode == "MULTI_CHECK":
        body = multi_body(items)
    elif items:
        body = item_body(*items[0], signed=signed)
    else:
        body = b""
    if opcode in LEASE_BODY_OPCODES:
        body = struct.pack(">Q", lease) + body
    decoded = {
        "id": request_id,
        "opcode": opcode,
        "items": [decoded_item(*item) for item in items],
    }
    if flags:
        decoded["flags"] = flags
    if opcode in LEASE_BODY_OPCODES:
        decoded["lease"] = str(lease)
    raw = frame(opcode, request_id, body, flags=flags)
    return vector(name, description, "request", raw, decoded)


def result(status="ALLOWED", flags=0, limit=0, remaining=0, reset=0, retry=0, window=0):
    return {
        "status": status,
        "flags": flags,
        "limit": limit,
        "remaining": remaining,
        "reset_after_ms": reset,
        "retry_after_ms": retry,
        "window_ms": window,
    }


def result_bytes(r):
    return struct.pack(
        ">BBHIIIII",
        STATUS[r["status"]],
        0,
        r["flags"],
        r["limit"],
        r["remaining"],
        r["reset_after_ms"],
        r["retry_after_ms"],
        r["window_ms"],
    )


def response_vector(name, description, opcode, request_id, res, items=None, text=None, lease=0):
    body = result_bytes(res)
    decoded = {"id": request_id, "opcode": opcode_json(opcode), "result": res}
    if opcode in LEASE_OPCODES:
        body += struct.pack(">Q", lease)
        decoded["lease"] = str(lease)
    if opcode == "MULTI_CHECK":
        items = items or []
        body += struct.pack(">B3x", len(items)) + b"".join(result_bytes(r) for r in items)
        decoded["items"] = items
    elif opcode in ADMIN_OPCODES:
        text = text or ""
        raw = text.encode("utf-8")
        body += struct.pack(">I", len(raw)) + raw
        decoded["text"] = text
    return vector(name, description, "response", frame(opcode, request_id, body), decoded)


def refused_vector(name, description, raw, status):
    return vector(name, description, "request", raw, None, status)


def vector(name, description, direction, raw, decoded, error=None):
    return {
        "name": name,
        "description": description,
        "direction": direction,
        "hex": raw.hex(),
        "decoded": decoded,
        "error": error,
    }


def multi_items(n):
    policies = ("api", "login", "search")
    return [(policies[i % 3], "user-%d" % i, i + 1) for i in range(n)]


def requests():
    long_policy = "p" * 250 + "-255b"
    return [
        request_vector("ping_request", "PING, empty body", "PING", 1),
        request_vector(
            "auth_request",
            "AUTH with the listener's token as the key (cost 0, policy empty)",
            "AUTH",
            2,
            [("", "correct-horse-battery-staple", 0)],
        ),
        request_vector(
            "check_request_example",
            "the CHECK example of PROTOCOL.md: policy api, key user1, cost 1, id 42. Its length "
            "is 23 (0x17): 8 header bytes + 7 + 3 + 5; PROTOCOL.md printed 0x18 by mistake",
            "CHECK",
            42,
            [("api", "user1", 1)],
        ),
        request_vector(
            "check_request_cost_5", "CHECK with cost 5", "CHECK", 7, [("login", "10.0.0.7", 5)]
        ),
        request_vector(
            "check_request_max_id_and_cost",
            "CHECK with request id 2^32-1 and cost 2^32-1 (cost is unsigned outside ADJUST)",
            "CHECK",
            0xFFFFFFFF,
            [("api", "k", 0xFFFFFFFF)],
        ),
        request_vector(
            "check_request_utf8_key",
            "CHECK with a multibyte UTF-8 key",
            "CHECK",
            8,
            [("api", "usér-ключ-鍵", 1)],
        ),
        request_vector(
            "check_request_binary_key",
            "CHECK with a key of arbitrary bytes (NUL, 0xff, newline): not UTF-8, so key_hex",
            "CHECK",
            9,
            [("api", b"\x00\xff\x80\n\xfeuser", 1)],
        ),
        request_vector(
            "check_request_policy_255",
            "CHECK with a 255-byte policy name, the most policy_len can say",
            "CHECK",
            10,
            [(long_policy, "user1", 1)],
        ),
        request_vector("peek_request", "PEEK, cost 1", "PEEK", 11, [("api", "user1", 1)]),
        request_vector(
            "adjust_request_negative",
            "ADJUST giving 5 units back: cost is signed, -5 is 0xfffffffb",
            "ADJUST",
            12,
            [("api", "user1", -5)],
        ),
        request_vector(
            "adjust_request_positive",
            "ADJUST charging 3 more units",
            "ADJUST",
            13,
            [("api", "user1", 3)],
        ),
        request_vector(
            "adjust_request_min",
            "ADJUST with the most negative cost, -2^31",
            "ADJUST",
            14,
            [("api", "user1", -(2**31))],
        ),
        request_vector("reset_request", "RESET, cost 0", "RESET", 15, [("login", "user1", 0)]),
        request_vector(
            "multi_check_request_1", "MULTI_CHECK with 1 item", "MULTI_CHECK", 16, multi_items(1)
        ),
        request_vector(
            "multi_check_request_3", "MULTI_CHECK with 3 items", "MULTI_CHECK", 17, multi_items(3)
        ),
        request_vector(
            "multi_check_request_16",
            "MULTI_CHECK with 16 items, the most allowed",
            "MULTI_CHECK",
            18,
            multi_items(16),
        ),
        request_vector("policies_request", "POLICIES, empty body", "POLICIES", 19),
        request_vector("stats_request", "STATS, empty body", "STATS", 20),
        request_vector(
            "top_request", "TOP of policy api, 10 keys (cost = N keys, key empty)", "TOP", 21,
            [("api", "", 10)],
        ),
        request_vector(
            "top_request_all", "TOP over every policy (policy and key empty), 5 keys", "TOP", 22,
            [("", "", 5)],
        ),
        request_vector("reload_request", "RELOAD, empty body", "RELOAD", 23),
    ] + lease_requests()


LEASE_ID = 0xFEDCBA9876543210  # above 2^63: a reader must keep all 64 bits unsigned


def lease_requests():
    return [
        request_vector(
            "acquire_request", "ACQUIRE 1 slot of policy uploads, key user1 (cost = slots)",
            "ACQUIRE", 50, [("uploads", "user1", 1)],
        ),
        request_vector(
            "acquire_request_slots_3", "ACQUIRE 3 slots at once", "ACQUIRE", 51,
            [("uploads", "10.0.0.7", 3)],
        ),
        request_vector(
            "acquire_request_detach",
            "ACQUIRE with the request flag DETACH (0x0001): the lease outlives the connection",
            "ACQUIRE", 52, [("uploads", "user1", 1)], flags=DETACH,
        ),
        request_vector(
            "release_request", "RELEASE: lease (8 bytes) then an item of cost 0",
            "RELEASE", 53, [("uploads", "user1", 0)], lease=LEASE_ID,
        ),
        request_vector(
            "release_request_lease_0", "RELEASE of lease 0 (an exempt key's: answers OK, no-op)",
            "RELEASE", 54, [("uploads", "user1", 0)], lease=0,
        ),
        request_vector(
            "release_request_lease_max", "RELEASE of lease 2^64-1", "RELEASE", 55,
            [("uploads", "user1", 0)], lease=2**64 - 1,
        ),
        request_vector(
            "renew_request", "RENEW: lease then an item of cost 0", "RENEW", 56,
            [("uploads", "usér-ключ", 0)], lease=0x0102030405060708,
        ),
        request_vector(
            "leases_request", "LEASES of policy uploads, key user1 (admin)", "LEASES", 57,
            [("uploads", "user1", 0)],
        ),
        request_vector(
            "leases_request_all_keys", "LEASES of every key of policy uploads (key empty)",
            "LEASES", 58, [("uploads", "", 0)],
        ),
    ]


def responses():
    policies_text = json.dumps(
        {
            "api": {"algorithm": "token_bucket", "limit": 100, "period_ms": 60000, "burst": 20},
            "login": {"algorithm": "sliding_window_log", "limit": 5, "period_ms": 900000},
        },
        separators=(",", ":"),
    )
    stats_text = json.dumps(
        {"uptime_s": 12, "connections": 3, "decisions": 1000, "allowed": 990, "denied": 10},
        separators=(",", ":"),
    )
    top_text = json.dumps(
        {"api": [{"key": "user1", "denied": 7}, {"key": "usér2", "denied": 3}]},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    allowed = result("ALLOWED", 0, 100, 99, 600, 0, 60000)
    denied = result("DENIED", 0, 100, 0, 60000, 1200, 60000)
    m3 = [
        result("ALLOWED", 0, 100, 42, 600, 0, 60000),
        result("DENIED", 0, 5, 0, 900000, 30000, 900000),
        result("ALLOWED", 0, 10, 9, 1000, 0, 1000),
    ]
    m16 = [result("ALLOWED", 0, 100 + i, 99 - i, 600 + i, 0, 60000) for i in range(16)]
    m_err = [
        result("ALLOWED", 0, 100, 42, 600, 0, 60000),
        result("UNKNOWN_POLICY"),
        result("DENIED", 0, 10, 0, 1000, 1000, 1000),
    ]
    r = response_vector
    return [
        r("ping_response", "PING answered OK", "PING", 1, result()),
        r(
            "check_response_example",
            "the answer of PROTOCOL.md: allowed, limit 100, 99 remaining, reset in 600 ms, "
            "window 60 s, id 42",
            "CHECK", 42, allowed,
        ),
        r("check_response_denied", "denied, retry after 1200 ms", "CHECK", 43, denied),
        r(
            "check_response_max_values",
            "every figure at 2^32-1 and id 2^32-1",
            "CHECK", 0xFFFFFFFF,
            result("DENIED", 0, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1),
        ),
        r(
            "check_response_flag_fallback",
            "allowed by on_store_error while the store is down: FALLBACK",
            "CHECK", 44, result("ALLOWED", FALLBACK, 10, 9, 3600000, 0, 3600000),
        ),
        r(
            "check_response_flag_shadow",
            "shadow mode: would have been denied, allowed with SHADOW",
            "CHECK", 45, result("ALLOWED", SHADOW, 10, 0, 3600000, 0, 3600000),
        ),
        r(
            "check_response_flag_cached",
            "denied from the over-limit cache: CACHED",
            "CHECK", 46, result("DENIED", CACHED, 100, 0, 30000, 700, 60000),
        ),
        r(
            "check_response_flag_exempt",
            "exempt key: allowed, not counted, EXEMPT",
            "CHECK", 47, result("ALLOWED", EXEMPT, 5, 5, 0, 0, 900000),
        ),
        r(
            "check_response_flag_blocked",
            "blocked key: denied with retry_after_ms = window_ms, BLOCKED",
            "CHECK", 48, result("DENIED", BLOCKED, 5, 0, 900000, 900000, 900000),
        ),
        r(
            "check_response_flags_combined",
            "FALLBACK and SHADOW together (0x0003)",
            "CHECK", 49, result("ALLOWED", FALLBACK | SHADOW, 10, 0, 1000, 0, 1000),
        ),
        r("peek_response", "PEEK answered, nothing consumed", "PEEK", 11,
          result("ALLOWED", 0, 100, 100, 0, 0, 60000)),
        r("adjust_response", "ADJUST answered: state after giving units back", "ADJUST", 12,
          result("ALLOWED", 0, 100, 96, 2400, 0, 60000)),
        r("adjust_response_over", "ADJUST took the key over its limit: DENIED", "ADJUST", 13,
          result("DENIED", 0, 100, 0, 61000, 1000, 60000)),
        r("reset_response", "RESET answered OK, figures 0", "RESET", 15, result()),
        r("multi_check_response_1", "MULTI_CHECK of 1 item, allowed", "MULTI_CHECK", 16,
          allowed, [allowed]),
        r(
            "multi_check_response_3",
            "MULTI_CHECK of 3 items, the second denied: overall DENIED (the denying item)",
            "MULTI_CHECK", 17, m3[1], m3,
        ),
        r("multi_check_response_16", "MULTI_CHECK of 16 items, all allowed", "MULTI_CHECK", 18,
          m16[15], m16),
        r(
            "multi_check_response_item_error",
            "MULTI_CHECK of 3 items, the second names no policy: overall UNKNOWN_POLICY",
            "MULTI_CHECK", 24, result("UNKNOWN_POLICY"), m_err,
        ),
        r(
            "multi_check_response_too_many_items",
            "MULTI_CHECK refused (count 17): error status, still with its tail, count 0",
            "MULTI_CHECK", 25, result("TOO_MANY_ITEMS"), [],
        ),
        r("policies_response", "POLICIES with JSON text", "POLICIES", 19, result(),
          text=policies_text),
        r("stats_response", "STATS with JSON text", "STATS", 20, result(), text=stats_text),
        r("top_response", "TOP with JSON text (UTF-8 in it)", "TOP", 21, result(), text=top_text),
        r("reload_response", "RELOAD done", "RELOAD", 23, result(),
          text='{"reloaded":true,"policies":4}'),
        r(
            "reload_response_failed",
            "RELOAD refused: RELOAD_FAILED with the reason as text",
            "RELOAD", 26, result("RELOAD_FAILED"),
            text='{"error":"policies.api.limit: must be a positive integer"}',
        ),
        r("auth_response", "AUTH: the token matched (or the listener has none)", "AUTH", 40,
          result()),
        r(
            "auth_response_failed",
            "AUTH with a wrong token: AUTH_FAILED; the daemon closes the connection after it",
            "AUTH", 41, result("AUTH_FAILED"),
        ),
        r(
            "check_response_auth_required",
            "CHECK on a token listener before AUTH: AUTH_REQUIRED, the connection stays open",
            "CHECK", 42, result("AUTH_REQUIRED"),
        ),
        r(
            "stats_response_auth_required",
            "STATS before AUTH: AUTH_REQUIRED, still with its text tail (empty)",
            "STATS", 43, result("AUTH_REQUIRED"),
        ),
        r(
            "adjust_response_not_permitted",
            "ADJUST with a negative cost on a listener without \"refund\": NOT_PERMITTED",
            "ADJUST", 44, result("NOT_PERMITTED"),
        ),
        r(
            "reload_response_not_permitted",
            "RELOAD on a listener not marked admin: NOT_PERMITTED, empty text",
            "RELOAD", 27, result("NOT_PERMITTED"),
        ),
        r("error_response_unknown_policy", "UNKNOWN_POLICY", "CHECK", 28,
          result("UNKNOWN_POLICY")),
        r("error_response_key_too_long", "KEY_TOO_LONG", "CHECK", 29, result("KEY_TOO_LONG")),
        r("error_response_key_empty", "KEY_EMPTY", "PEEK", 30, result("KEY_EMPTY")),
        r("error_response_cost_invalid", "COST_INVALID", "ADJUST", 31, result("COST_INVALID")),
        r("error_response_cost_too_large", "COST_TOO_LARGE", "CHECK", 32,
          result("COST_TOO_LARGE")),
        r("error_response_store_unavailable", "STORE_UNAVAILABLE", "CHECK", 33,
          result("STORE_UNAVAILABLE")),
        r("error_response_store_full", "STORE_FULL", "CHECK", 34, result("STORE_FULL")),
        r("error_response_busy", "BUSY", "CHECK", 35, result("BUSY")),
        r("error_response_internal", "INTERNAL", "CHECK", 36, result("INTERNAL")),
        r("error_response_malformed", "MALFORMED (the daemon then closes)", "CHECK", 37,
          result("MALFORMED")),
        r(
            "error_response_unsupported_version",
            "UNSUPPORTED_VERSION, echoing opcode and id from the refused header",
            "CHECK", 38, result("UNSUPPORTED_VERSION"),
        ),
        r(
            "error_response_unknown_opcode",
            "UNKNOWN_OPCODE for opcode 0x7f: echoes 0x7f, carries only the result",
            0x7F, 39, result("UNKNOWN_OPCODE"),
        ),
        r("error_response_frame_too_large", "FRAME_TOO_LARGE", "CHECK", 40,
          result("FRAME_TOO_LARGE")),
        r(
            "error_response_not_permitted_reset",
            "RESET on a listener not marked admin: NOT_PERMITTED",
            "RESET", 41, result("NOT_PERMITTED"),
        ),
    ] + lease_responses()


def lease_responses():
    r = response_vector
    leases_text = json.dumps(
        {
            "policy": "uploads",
            "leases": [
                {"key": "user1", "lease": str(LEASE_ID), "slots": 1, "expires_in_ms": 29500},
                {"key": "user\\x00", "escaped": True, "key_hex": "7573657200",
                 "lease": "12", "slots": 2, "expires_in_ms": 100},
            ],
            "truncated": False,
        },
        separators=(",", ":"),
    )
    return [
        r(
            "acquire_response_allowed",
            "ACQUIRE allowed: limit 10 slots, 9 free, lease 30 s (reset = window = lease), the "
            "new lease id after the result",
            "ACQUIRE", 50, result("ALLOWED", 0, 10, 9, 30000, 0, 30000), lease=LEASE_ID,
        ),
        r(
            "acquire_response_denied",
            "ACQUIRE denied: no free slot, retry after the earliest lease's expiry (an upper "
            "bound), reset after the last one's; lease 0",
            "ACQUIRE", 51, result("DENIED", 0, 2, 0, 29000, 12000, 30000), lease=0,
        ),
        r(
            "acquire_response_exempt",
            "ACQUIRE of an exempt key: allowed with lease 0 (nothing held), EXEMPT",
            "ACQUIRE", 52, result("ALLOWED", EXEMPT, 10, 10, 0, 0, 30000), lease=0,
        ),
        r(
            "acquire_response_shadow",
            "ACQUIRE in shadow mode that would be denied: allowed with lease 0 and SHADOW",
            "ACQUIRE", 53, result("ALLOWED", SHADOW, 2, 0, 29000, 0, 30000), lease=0,
        ),
        r(
            "acquire_response_policy_kind",
            "ACQUIRE naming a rate policy: POLICY_KIND; the lease field is still there (0)",
            "ACQUIRE", 54, result("POLICY_KIND"), lease=0,
        ),
        r(
            "acquire_response_max_lease",
            "ACQUIRE allowed with lease id 2^64-1",
            "ACQUIRE", 55, result("ALLOWED", 0, 1, 0, 100, 0, 100), lease=2**64 - 1,
        ),
        r(
            "release_response",
            "RELEASE done: 10 free slots, no lease left (reset 0); echoes the lease id",
            "RELEASE", 56, result("ALLOWED", 0, 10, 10, 0, 0, 30000), lease=LEASE_ID,
        ),
        r(
            "release_response_lease_unknown",
            "RELEASE of a lease not held (unknown, expired, released): LEASE_UNKNOWN, the "
            "connection stays open; the lease field echoes the id named",
            "RELEASE", 57, result("LEASE_UNKNOWN"), lease=LEASE_ID,
        ),
        r(
            "renew_response",
            "RENEW done: the lease expires a full lease (30 s) from now",
            "RENEW", 58, result("ALLOWED", 0, 10, 8, 30000, 0, 30000), lease=0x0102030405060708,
        ),
        r(
            "renew_response_lease_unknown", "RENEW of a lease not held: LEASE_UNKNOWN",
            "RENEW", 59, result("LEASE_UNKNOWN"), lease=0x0102030405060708,
        ),
        r(
            "check_response_policy_kind",
            "CHECK naming a concurrency policy: POLICY_KIND, only the result",
            "CHECK", 60, result("POLICY_KIND"),
        ),
        r("leases_response", "LEASES with JSON text (lease ids as decimal strings)",
          "LEASES", 61, result(), text=leases_text),
        r(
            "leases_response_not_permitted",
            "LEASES on a listener not marked admin: NOT_PERMITTED, empty text",
            "LEASES", 62, result("NOT_PERMITTED"),
        ),
    ]


def refused():
    check = item_body("api", "user1", 1)
    refuse = refused_vector
    return [
        refuse(
            "refuse_length_below_8",
            "length 4 (below the 8 header bytes it must count); the 12 header bytes are there",
            header(4, "CHECK", 100),
            "MALFORMED",
        ),
        refuse("refuse_length_zero", "length 0", header(0, "PING", 101), "MALFORMED"),
        refuse(
            "refuse_wrong_version",
            "version 2 on an otherwise valid CHECK",
            frame("CHECK", 102, check, version=2),
            "UNSUPPORTED_VERSION",
        ),
        refuse(
            "refuse_version_0", "version 0, PING", frame("PING", 103, b"", version=0),
            "UNSUPPORTED_VERSION",
        ),
        refuse(
            "refuse_unknown_opcode_7f",
            "opcode 0x7f is not defined",
            frame(0x7F, 104, b""),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_unknown_opcode_with_body",
            "opcode 0x7f with a body: still UNKNOWN_OPCODE, the body is skipped",
            frame(0x7F, 105, check),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_auth_without_body",
            "AUTH carries an item (the token as its key): an empty body is MALFORMED",
            frame("AUTH", 120, b""),
            "MALFORMED",
        ),
        refuse(
            "refuse_unknown_opcode_08",
            "opcode 0x08 is not defined (0x07 is AUTH)",
            frame(0x08, 121, b""),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_reserved_opcode_13",
            "opcode 0x13 is reserved for concurrency leases, not defined",
            frame(0x13, 106, check),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_reserved_opcode_25",
            "opcode 0x25 is reserved for admin operations, not defined (0x24 is LEASES)",
            frame(0x25, 122, b""),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_opcode_zero", "opcode 0 is not defined", frame(0x00, 107, b""),
            "UNKNOWN_OPCODE",
        ),
        refuse(
            "refuse_nonzero_flags",
            "request flags 0x0001 on a CHECK (must be 0 in version 1)",
            frame("CHECK", 108, check, flags=1),
            "MALFORMED",
        ),
        refuse(
            "refuse_leftover_bytes",
            "a CHECK with one byte after its key",
            frame("CHECK", 109, check + b"\x00"),
            "MALFORMED",
        ),
        refuse(
            "refuse_leftover_ping",
            "a PING with a body",
            frame("PING", 110, b"\x00\x00"),
            "MALFORMED",
        ),
        refuse(
            "refuse_truncated_body",
            "a CHECK whose key_len (5) runs past the frame: only 2 key bytes",
            frame("CHECK", 111, check[:-3]),
            "MALFORMED",
        ),
        refuse(
            "refuse_truncated_item_fixed",
            "a CHECK whose body (5 bytes) is shorter than cost + policy_len + key_len",
            frame("CHECK", 112, check[:5]),
            "MALFORMED",
        ),
        refuse(
            "refuse_empty_check",
            "a CHECK with no body at all",
            frame("CHECK", 113, b""),
            "MALFORMED",
        ),
        refuse(
            "refuse_multi_count_0",
            "MULTI_CHECK with count 0: nothing to decide, a body that does not parse",
            frame("MULTI_CHECK", 114, multi_body([])),
            "MALFORMED",
        ),
        refuse(
            "refuse_multi_count_17",
            "MULTI_CHECK with count 17 (and 17 items)",
            frame("MULTI_CHECK", 115, multi_body(multi_items(17))),
            "TOO_MANY_ITEMS",
        ),
        refuse(
            "refuse_multi_short",
            "MULTI_CHECK with count 3 but only 2 items",
            frame("MULTI_CHECK", 116, multi_body(multi_items(2), count=3)),
            "MALFORMED",
        ),
        refuse(
            "refuse_multi_leftover",
            "MULTI_CHECK with count 1 but 2 items",
            frame("MULTI_CHECK", 117, multi_body(multi_items(2), count=1)),
            "MALFORMED",
        ),
    ] + lease_refused() + [
        refuse(
            "refuse_frame_too_large",
            "length 16385, above max_frame 16384: refused from the header alone, before the "
            "body is read (only the 12 header bytes are here)",
            header(MAX_FRAME + 1, "CHECK", 118),
            "FRAME_TOO_LARGE",
        ),
        refuse(
            "refuse_frame_length_max",
            "length 2^32-1: FRAME_TOO_LARGE from the header alone",
            header(0xFFFFFFFF, "CHECK", 119),
            "FRAME_TOO_LARGE",
        ),
    ]


def lease_refused():
    item = item_body("uploads", "user1", 1)
    lease_body = struct.pack(">Q", LEASE_ID) + item_body("uploads", "user1", 0)
    refuse = refused_vector
    return [
        refuse(
            "refuse_detach_on_check",
            "CHECK with the DETACH flag (0x0001): DETACH is for ACQUIRE only",
            frame("CHECK", 130, item_body("api", "user1", 1), flags=DETACH),
            "MALFORMED",
        ),
        refuse(
            "refuse_detach_on_release",
            "RELEASE with the DETACH flag: MALFORMED",
            frame("RELEASE", 131, lease_body, flags=DETACH),
            "MALFORMED",
        ),
        refuse(
            "refuse_acquire_flag_2",
            "ACQUIRE with request flag 0x0002 (undefined)",
            frame("ACQUIRE", 132, item, flags=0x0002),
            "MALFORMED",
        ),
        refuse(
            "refuse_acquire_flags_3",
            "ACQUIRE with DETACH and an undefined flag (0x0003)",
            frame("ACQUIRE", 133, item, flags=0x0003),
            "MALFORMED",
        ),
        refuse(
            "refuse_release_short_lease",
            "RELEASE whose body (5 bytes) is shorter than its 8-byte lease field",
            frame("RELEASE", 134, lease_body[:5]),
            "MALFORMED",
        ),
        refuse(
            "refuse_release_lease_only",
            "RELEASE with its lease but no item",
            frame("RELEASE", 135, lease_body[:8]),
            "MALFORMED",
        ),
        refuse(
            "refuse_release_without_lease",
            "RELEASE carrying only an item (the lease field missing): the item's bytes read "
            "as the lease leave too few for an item",
            frame("RELEASE", 136, item_body("uploads", "user1", 0)),
            "MALFORMED",
        ),
        refuse(
            "refuse_renew_short_lease",
            "RENEW whose body is 7 bytes",
            frame("RENEW", 137, lease_body[:7]),
            "MALFORMED",
        ),
        refuse(
            "refuse_release_leftover",
            "RELEASE with one byte after its key",
            frame("RELEASE", 138, lease_body + b"\x00"),
            "MALFORMED",
        ),
        refuse(
            "refuse_acquire_leftover",
            "ACQUIRE with one byte after its key",
            frame("ACQUIRE", 139, item + b"\x00"),
            "MALFORMED",
        ),
        refuse(
            "refuse_acquire_empty",
            "ACQUIRE with no body",
            frame("ACQUIRE", 140, b""),
            "MALFORMED",
        ),
        refuse(
            "refuse_leases_leftover",
            "LEASES with one byte after its (empty) key",
            frame("LEASES", 141, item_body("uploads", "", 0) + b"\x00"),
            "MALFORMED",
        ),
    ]


def main():
    doc = {
        "version": 1,
        "max_frame": MAX_FRAME,
        "notes": NOTES,
        "vectors": requests() + responses() + refused(),
    }
    names = [v["name"] for v in doc["vectors"]]
    assert len(names) == len(set(names)), "duplicate vector names"
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1, ensure_ascii=False)
        out.write("\n")
    print("wrote %d vectors to %s" % (len(names), path))


if __name__ == "__main__":
    main()
