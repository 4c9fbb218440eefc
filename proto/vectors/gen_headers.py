#!/usr/bin/python3
"""Generate proto/vectors/headers.json, the byte-exact cases of proto/HEADERS.md.

Each case is a decision (a protocol result and a policy name) and the exact header lines
the contract gives for it. The rule is written here a third time, from HEADERS.md and
independently of daemon/http_headers.c and clients/python/rlimit/headers.py, which both
test themselves against the output; a few lines are also spelled out by hand below.

Run from anywhere: /usr/bin/python3 proto/vectors/gen_headers.py
It rewrites headers.json next to this file; the output is deterministic.
"""

import json
import os

FLAGS = {"FALLBACK": 0x01, "SHADOW": 0x02, "CACHED": 0x04, "EXEMPT": 0x08, "BLOCKED": 0x10, "CAPPED": 0x20}
UNCOUNTED = ("EXEMPT", "BLOCKED", "FALLBACK")  # no limit headers with any of these
U32_MAX = 2**32 - 1


def seconds_up(ms):
    """Whole seconds, rounded up."""
    return (ms + 999) // 1000


def policy_sf(name):
    """The policy name as HEADERS.md writes it: an sf-string with percent escapes."""
    out = ['"']
    for byte in name.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif byte == 0x25 or byte < 0x20 or byte > 0x7E:
            out.append("%%%02x" % byte)
        else:
            out.append(chr(byte))
    out.append('"')
    return "".join(out)


def header_lines(policy, result):
    """The header lines of result for policy, in the contract's order."""
    if result["status"] not in ("ALLOWED", "DENIED"):
        return []  # not a decision
    lines = []
    if result["status"] == "DENIED":
        lines.append("Retry-After: %d" % max(1, seconds_up(result["retry_after_ms"])))
    if set(result["flags"]) & set(UNCOUNTED):
        return lines
    name, reset = policy_sf(policy), seconds_up(result["reset_after_ms"])
    lines += [
        "X-RateLimit-Limit: %d" % result["limit"],
        "X-RateLimit-Remaining: %d" % result["remaining"],
        "X-RateLimit-Reset: %d" % reset,
        "RateLimit-Policy: %s;q=%d;w=%d" % (name, result["limit"], seconds_up(result["window_ms"])),
        "RateLimit: %s;r=%d;t=%d" % (name, result["remaining"], reset),
    ]
    return lines


def case(name, note, policy, status, flags, limit, remaining, reset_ms, retry_ms, window_ms):
    result = {
        "status": status,
        "flags": flags,
        "limit": limit,
        "remaining": remaining,
        "reset_after_ms": reset_ms,
        "retry_after_ms": retry_ms,
        "window_ms": window_ms,
    }
    return {"name": name, "note": note, "policy": policy, "result": result,
            "headers": header_lines(policy, result)}


def decisions():
    return [
        case("allowed", "an allowed request: the five limit headers, no Retry-After",
             "api", "ALLOWED", [], 100, 99, 600, 0, 60000),
        case("allowed_reset_zero", "nothing in use: t=0", "api", "ALLOWED", [], 100, 100, 0, 0, 60000),
        case("allowed_window_fraction", "a window of 2.5 s is w=3 (rounded up)",
             "burst", "ALLOWED", [], 5, 4, 500, 0, 2500),
        case("denied", "a denial: Retry-After first, 1.2 s -> 2, reset 59.001 s -> 60",
             "api", "DENIED", [], 100, 0, 59001, 1200, 60000),
        case("denied_retry_whole_second", "1000 ms is 1 s exactly", "api", "DENIED", [], 10, 0, 3000, 1000, 3000),
        case("denied_retry_one_ms", "1 ms rounds up to 1 s", "api", "DENIED", [], 10, 0, 1, 1, 1000),
        case("denied_retry_zero", "a denial says at least Retry-After: 1", "api", "DENIED", [], 10, 0, 0, 0, 1000),
        case("denied_cached", "a denial from the over-limit cache is a denial like any other",
             "api", "DENIED", ["CACHED"], 10, 0, 42001, 2001, 60000),
        case("exempt", "an exempt key: allowed, not counted, no headers",
             "login", "ALLOWED", ["EXEMPT"], 5, 4, 0, 0, 900000),
        case("blocked", "a blocked key: denied, not counted; Retry-After (one window) only",
             "login", "DENIED", ["BLOCKED"], 5, 0, 0, 900000, 900000),
        case("shadow_denied", "a shadow-mode denial passes: limit headers as counted, no Retry-After",
             "upload", "ALLOWED", ["SHADOW"], 2, 0, 7200000, 0, 7200000),
        case("fallback_allow", "on_store_error allow: nominal figures, no headers",
             "api", "ALLOWED", ["FALLBACK"], 100, 99, 0, 0, 60000),
        case("fallback_deny", "on_store_error deny: Retry-After 1 only",
             "api", "DENIED", ["FALLBACK"], 100, 0, 0, 1000, 60000),
        case("fallback_local_denied", "on_store_error local: one instance's figures; Retry-After only",
             "api", "DENIED", ["FALLBACK"], 100, 0, 30500, 600, 60000),
        case("fallback_shadow", "a shadow policy's fallback deny passes: no headers",
             "api", "ALLOWED", ["FALLBACK", "SHADOW"], 100, 0, 0, 0, 60000),
        case("policy_quote_backslash", "\" and \\ are escaped by a backslash",
             'say "hi" \\ bye', "ALLOWED", [], 3, 2, 1000, 0, 1000),
        case("policy_space_and_punctuation", "printable ASCII is written as it is",
             "my api:v2/{x}=1;q", "ALLOWED", [], 3, 2, 1000, 0, 1000),
        case("policy_percent", "% is always escaped, so the escapes are unambiguous",
             "50%", "ALLOWED", [], 3, 2, 1000, 0, 1000),
        case("policy_non_ascii", "UTF-8 bytes as lower-case percent escapes",
             "lögin", "DENIED", [], 2, 0, 900000, 450000, 900000),
        case("policy_controls", "a newline, a tab and DEL never reach the header raw",
             "line\nbreak\ttab\x7f", "ALLOWED", [], 3, 2, 1000, 0, 1000),
        case("policy_header_injection", "CR LF in a name cannot start a header of its own",
             "x\r\nSet-Cookie: a=b", "DENIED", [], 1, 0, 1000, 1000, 1000),
        case("policy_longest_escaped", "255 bytes, every one escaped: a name of 767 characters",
             "\x01" * 255, "ALLOWED", [], 1, 0, 1000, 0, 1000),
        case("largest_figures", "2^32-1 everywhere: ms rounded up to 4294968 s",
             "api", "DENIED", [], U32_MAX, U32_MAX, U32_MAX, U32_MAX, U32_MAX),
        case("error_status", "an error status is not a decision: no headers",
             "api", "STORE_UNAVAILABLE", [], 0, 0, 0, 0, 0),
    ]


# Lines written by hand from HEADERS.md: the generator's rule must agree with them.
BY_HAND = {
    "denied": [
        "Retry-After: 2",
        "X-RateLimit-Limit: 100",
        "X-RateLimit-Remaining: 0",
        "X-RateLimit-Reset: 60",
        'RateLimit-Policy: "api";q=100;w=60',
        'RateLimit: "api";r=0;t=60',
    ],
    "exempt": [],
    "blocked": ["Retry-After: 900"],
    "fallback_deny": ["Retry-After: 1"],
    "denied_retry_zero": ["Retry-After: 1", "X-RateLimit-Limit: 10", "X-RateLimit-Remaining: 0",
                          "X-RateLimit-Reset: 0", 'RateLimit-Policy: "api";q=10;w=1', 'RateLimit: "api";r=0;t=0'],
}
BY_HAND_POLICY = {
    "policy_quote_backslash": '"say \\"hi\\" \\\\ bye"',
    "policy_percent": '"50%25"',
    "policy_non_ascii": '"l%c3%b6gin"',
    "policy_controls": '"line%0abreak%09tab%7f"',
    "policy_header_injection": '"x%0d%0aSet-Cookie: a=b"',
}


def check(vectors):
    by_name = {v["name"]: v for v in vectors}
    assert len(by_name) == len(vectors), "duplicate vector names"
    for name, lines in BY_HAND.items():
        assert by_name[name]["headers"] == lines, name
    for name, written in BY_HAND_POLICY.items():
        assert policy_sf(by_name[name]["policy"]) == written, name
    for vector in vectors:
        assert all(0x20 <= ord(c) <= 0x7E for line in vector["headers"] for c in line), vector["name"]
        assert set(vector["result"]["flags"]) <= set(FLAGS), vector["name"]


def main():
    vectors = decisions()
    check(vectors)
    doc = {"version": 1, "contract": "proto/HEADERS.md", "vectors": vectors}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "headers.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1, ensure_ascii=False)
        out.write("\n")
    print("wrote %d vectors to %s" % (len(vectors), path))


if __name__ == "__main__":
    main()
