/*
 * rlimit.h: the C client of rlimitd (librlimit).
 *
 * One rl_client is one connection (Unix socket or TCP) to the daemon, used by one
 * thread at a time. Two ways to use it:
 *
 *   blocking calls   rl_client_check() and friends, rl_client_batch(): each sends its
 *                    frames, waits (at most the client's timeout) for every answer and
 *                    matches answers to requests by request id;
 *   non-blocking     rl_client_queue*(), rl_client_flush(), rl_client_receive(),
 *                    rl_client_next(): the caller drives the socket from its own poll
 *                    loop (rlimit-bench does). Do not mix the two while requests of the
 *                    non-blocking API are unanswered.
 *
 * Return codes: every function returning int returns an rlc_code. A decision or an
 * error status from the daemon (DENIED, UNKNOWN_POLICY, ...) is RLC_OK: the caller
 * looks at result.status (rl_status in rlproto.h). After RLC_ERR_TIMEOUT, _CLOSED,
 * _IO or _PROTOCOL, and after a status that makes the daemon close the connection
 * (rl_status_closes()), the connection is closed; the next blocking call reconnects
 * once, within the connect timeout, and returns RLC_ERR_CONNECT if that fails.
 * A blocking call also reconnects, before sending anything, when the daemon closed
 * the connection while it was idle (e.g. it restarted).
 *
 * No signal handler is needed: writes never raise SIGPIPE. Interrupted system calls
 * are restarted, with the time already spent counted against the timeout.
 */
#ifndef RLIMIT_H
#define RLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "rlproto.h"

typedef enum rlc_code {
    RLC_OK = 0,            /* done; look at the result's status */
    RLC_AGAIN = 1,         /* non-blocking API only: nothing more can be done right now */
    RLC_ERR_ARG = -1,      /* a bad argument (NULL, a name or key too long, bad count) */
    RLC_ERR_CONNECT = -2,  /* connecting (or reconnecting) failed */
    RLC_ERR_TIMEOUT = -3,  /* the daemon did not answer in time */
    RLC_ERR_CLOSED = -4,   /* the daemon closed the connection */
    RLC_ERR_IO = -5,       /* a socket error */
    RLC_ERR_PROTOCOL = -6, /* the daemon sent something that is not a valid answer */
    RLC_ERR_NOMEM = -7,    /* out of memory */
} rlc_code;

typedef struct rl_client rl_client;

// Connects to address: "unix:PATH", "tcp:HOST:PORT" (HOST a name, an IPv4 address or a
// bracketed IPv6 address: "tcp:[::1]:7379"). timeout_ms bounds the connection (each
// address HOST resolves to is tried in turn within it; name resolution itself is not
// bounded) and is also the client's per-call timeout; 0 or less waits forever. Returns
// a client the caller releases with rl_client_close(), or NULL with a message in err
// (errlen bytes, may be NULL/0).
rl_client *rl_client_connect(const char *address, int timeout_ms, char *err, size_t errlen);

// Closes the connection and frees the client and every text it handed out as
// rl_response.text. NULL is a no-op.
void rl_client_close(rl_client *client);

// Sets the timeout of each later blocking call, in ms, for the whole call (sending and
// every answer); 0 or less waits forever.
void rl_client_set_timeout(rl_client *client, int timeout_ms);

// Returns a static sentence naming code ("timed out", ...).
const char *rl_client_errstr(int code);

// Returns the detail of the client's last error (e.g. "read: Connection reset by
// peer"), "" if none. Valid until the next call on the client.
const char *rl_client_error(const rl_client *client);

// CHECK: may cost units of key pass policy (consuming them if so)? policy and key are
// NUL-terminated (policy at most 255 bytes, key at most 65535). Fills *out with the
// decision (status ALLOWED or DENIED, or an error status). Returns an rlc_code.
int rl_client_check(rl_client *client, const char *policy, const char *key, uint32_t cost,
                    rl_result *out);

// PEEK: what CHECK would answer, consuming nothing. As rl_client_check().
int rl_client_peek(rl_client *client, const char *policy, const char *key, uint32_t cost,
                   rl_result *out);

// ADJUST: adds delta (negative gives units back) to key's usage without deciding. *out
// is the state after it. As rl_client_check().
int rl_client_adjust(rl_client *client, const char *policy, const char *key, int32_t delta,
                     rl_result *out);

// RESET: forgets key's state in policy (status OK, or NOT_PERMITTED on a non-admin
// listener). As rl_client_check().
int rl_client_reset(rl_client *client, const char *policy, const char *key, rl_result *out);

// ACQUIRE: takes slots (1..the key's limit) of key in a concurrency policy. detach
// non-zero sets the DETACH flag: the lease then outlives this connection (otherwise
// the daemon releases it when the connection closes, including a reconnection of this
// client). Fills *out (status ALLOWED, DENIED, or an error status such as POLICY_KIND)
// and *lease: the new lease id when allowed (0 for an exempt key or a shadow-mode
// admission: nothing is held), otherwise 0. Returns an rlc_code.
int rl_client_acquire(rl_client *client, const char *policy, const char *key, uint32_t slots,
                      int detach, rl_result *out, uint64_t *lease);

// RELEASE: frees lease of key in policy. *out gets status OK, or LEASE_UNKNOWN if the
// lease is not held (unknown, expired or already released; nothing changed). Lease 0
// answers OK. Returns an rlc_code.
int rl_client_release(rl_client *client, const char *policy, const char *key, uint64_t lease,
                      rl_result *out);

// RENEW: extends lease to a full lease duration from now. *out as rl_client_release().
int rl_client_renew(rl_client *client, const char *policy, const char *key, uint64_t lease,
                    rl_result *out);

// LEASES (admin): lists the leases held for key in policy (key NULL or "" = every key of
// the policy). On RLC_OK, *text_out is the daemon's JSON text, NUL-terminated, which the
// caller frees with free(), and *out (if not NULL) the result. Returns an rlc_code.
int rl_client_leases(rl_client *client, const char *policy, const char *key, char **text_out,
                     rl_result *out);

// AUTH: sends token (len bytes, 1..1024: the listener's token_file content without its
// trailing newline) and keeps a copy, sent again first thing on every reconnection.
// *out gets status OK, or AUTH_FAILED (the daemon then closes the connection; the
// next call reconnects and fails with RLC_ERR_CONNECT, "authentication refused").
// Until a connection on a listener with a token has authenticated, every call but
// PING answers AUTH_REQUIRED. Returns an rlc_code.
int rl_client_auth(rl_client *client, const char *token, size_t len, rl_result *out);

// Reads a token file as the daemon reads a listener's token_file: its content with one
// trailing newline ("\n" or "\r\n") removed, 1..1024 bytes. Returns the token
// (NUL-terminated, *len bytes; free() it), or NULL with a message in err.
char *rl_client_read_token(const char *path, size_t *len, char *err, size_t errlen);

// PING: *out gets status OK. Returns an rlc_code.
int rl_client_ping(rl_client *client, rl_result *out);

// MULTI_CHECK: decides the n items (1..16) all-or-nothing. items' strings need not be
// NUL-terminated (binary keys work). out->result is the overall result and out->items
// the per-item results, in order. Returns an rlc_code.
int rl_client_multi_check(rl_client *client, const rl_item *items, size_t n, rl_response *out);

// An admin call: opcode RL_OP_POLICIES, RL_OP_STATS, RL_OP_RELOAD (policy and n unused)
// or RL_OP_TOP (policy NULL or "" = every policy, n = how many keys). On RLC_OK,
// *text_out is the daemon's JSON text, NUL-terminated, which the caller frees with
// free(), and *out (if not NULL) the result (RELOAD_FAILED: the text says why).
int rl_client_admin(rl_client *client, int opcode, const char *policy, uint32_t n, char **text_out,
                    rl_result *out);

// Sends the n requests at once (pipelined), then waits for all the answers: out[i]
// answers reqs[i] whatever order they come in. reqs[i].id is ignored (the client
// numbers requests itself; out[i].id is the id it used). out[i].text (admin opcodes)
// is NUL-terminated and owned by the client until its next call. Returns RLC_OK when
// every answer is in, else an error code (then out is incomplete).
int rl_client_batch(rl_client *client, const rl_request *reqs, size_t n, rl_response *out);

/* ---- non-blocking API: the caller polls rl_client_fd() itself ---- */

// Returns the connected socket (non-blocking), or -1 if the connection is closed.
int rl_client_fd(const rl_client *client);

// Appends req, encoded with the client's next request id (stored in *id if id is not
// NULL), to the send queue. Nothing is written yet. Returns RLC_OK, RLC_ERR_ARG if req
// does not fit the wire, RLC_ERR_NOMEM.
int rl_client_queue(rl_client *client, const rl_request *req, uint32_t *id);

// Appends a frame encoded beforehand (len bytes), with its request id bytes replaced by
// id, to the send queue: the fast path for sending the same requests again and again.
// Returns RLC_OK, RLC_ERR_ARG (len below RL_HEADER_LEN), RLC_ERR_NOMEM.
int rl_client_queue_frame(rl_client *client, const uint8_t *frame, size_t len, uint32_t id);

// Writes as much of the send queue as the socket takes now. Returns RLC_OK when the
// queue is empty, RLC_AGAIN when bytes remain (poll for POLLOUT), or an error.
int rl_client_flush(rl_client *client);

// Returns how many queued bytes are not written yet.
size_t rl_client_unsent(const rl_client *client);

// Reads what the socket holds now into the receive buffer. Returns RLC_OK if bytes
// came, RLC_AGAIN if none were there, RLC_ERR_CLOSED at end of stream, or an error.
// Invalidates the responses rl_client_next() gave before.
int rl_client_receive(rl_client *client);

// Takes the next complete response out of the receive buffer into *out (out->text
// points into the buffer, valid until the next rl_client_receive()). Returns RLC_OK,
// RLC_AGAIN if no complete response is buffered, RLC_ERR_PROTOCOL if the bytes are
// not a valid response.
int rl_client_next(rl_client *client, rl_response *out);

#endif
