/*
 * server.c: connections of the binary protocol.
 *
 *   listener --accept--> conn --read--> input buffer --rl_header_read/rl_request_decode-->
 *   rl_request --rl_engine_handle--> (engine, store, algorithms) --conn_reply--> rl_response
 *   --rl_response_encode--> output buffer --write--> client
 *
 * One thread, one event loop. A connection reads as many whole frames as have
 * arrived, hands each to the engine, and writes every answer produced meanwhile in
 * one write(). Answers from an asynchronous store (Redis) arrive later through
 * conn_reply; the connections they went to are listed and written once the callbacks
 * of this loop iteration have run (on_flush), each with one write() and without
 * touching epoll: a socket is watched for writability only after a short write.
 *
 * Limits that protect the daemon: max_frame (checked from the header, before the
 * frame is buffered), max_pending (answers owed per connection: BUSY past it),
 * max_output (unsent answer bytes: once that many are queued, a client that does not read
 * is dropped; one answer is always queued, however large, so a STATS or POLICIES answer
 * bigger than max_output still arrives),
 * max_connections (past it a new connection gets one BUSY frame and is closed),
 * idle_timeout (a silent connection with nothing owed is closed).
 *
 * Closing: a connection that stops reading before its peer has finished sending (a fatal
 * frame, shutdown) writes every answer owed, shuts down writing (the peer reads them and
 * then EOF), and discards what the peer still sends until EOF, for at most LINGER_MS
 * and LINGER_BYTES (a lingering close, as nginx's lingering_close): closing with unread
 * input would make the kernel send a reset, which discards answers the peer has not
 * read yet.
 *
 * Leases: a connection lists the leases it acquired without DETACH (conn_lease: policy,
 * key, id), from the ACQUIRE frame (a record waiting for its answer) to the allowed
 * answer (the id) and to the answer of a RELEASE of that id; once it stops for good
 * (closed, or lingering), the engine releases every listed lease
 * (rl_engine_release_on_close). A connection that never acquires allocates nothing.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "rlproto.h"

#define INPUT_INITIAL 4096
#define INPUT_MAX_CHUNK 65536
#define ACCEPT_PAUSE_MS 100
#define PREFETCH_FRAMES 16      /* frames whose keys are hinted to the store ahead of deciding */
#define LINGER_MS 5000          /* a lingering close lasts at most this long... */
#define LINGER_BYTES (1u << 20) /* ...and discards at most this many bytes */

typedef enum conn_state {
    CONN_READING,   /* reading frames and answering them */
    CONN_CLOSING,   /* no more reading (peer EOF, fatal frame, shutdown): close once every
                       answer owed is written */
    CONN_LINGERING, /* everything written and writing shut down: input is read and
                       discarded until EOF or the linger bounds, then the socket closes */
    CONN_DEAD,      /* socket closed; the struct waits for answers still owed by the engine */
} conn_state;

typedef struct listener {
    struct listener *next;    /* next listener */
    struct rl_server *server; /* owner */
    char *address;            /* as configured (owned) */
    char *unix_path;          /* socket file to unlink on close, or NULL (owned) */
    rl_listen_file unix_file; /* the socket file bind() created (only it is unlinked) */
    rl_listener_conf *rules;  /* who may connect, for what (a copy; swapped by a reload) */
    int fd;                   /* listening socket */
    struct event *accept_ev;  /* readable: connections to accept */
    struct event *pause_ev;   /* re-enables accepting after running out of descriptors */
} listener;

/* A lease a connection took without DETACH; the policy and key bytes follow. */
typedef struct conn_lease {
    struct conn_lease *next; /* next of the connection's */
    uint64_t id;             /* the lease id, once the ACQUIRE was allowed */
    int64_t ends_us;         /* when the store said it would expire (monotonic clock) */
    uint32_t request_id;     /* the ACQUIRE's request id, while waiting for its answer */
    int waiting;             /* the ACQUIRE is not answered yet */
    uint16_t key_len;        /* bytes of key */
    uint8_t policy_len;      /* bytes of policy */
    char names[];            /* policy, then key */
} conn_lease;

typedef struct conn {
    struct conn *prev, *next;         /* the server's list of connections */
    struct rl_server *server;         /* owner */
    int fd;                           /* the socket, or -1 once closed */
    struct listener *listener;        /* where it came from (its rules), NULL once that closed */
    int authenticated;                /* sent the listener's token (or it needs none) */
    conn_state state;                 /* see conn_state */
    int processing;                   /* inside the read handler: defer writes and frees */
    int peer_done;                    /* the peer's EOF (or a read error) was seen */
    int64_t linger_until_us;          /* CONN_LINGERING: when to close regardless */
    size_t lingered;                  /* CONN_LINGERING: input bytes discarded so far */
    int64_t partial_since_us;         /* when the partial frame in the input began, or 0 */
    int lean;                         /* the last read carried at most one frame: buffers are
                                         freed between requests (10,000 idle connections stay
                                         small; pipelining ones keep theirs) */
    uint32_t in_flight;               /* answers owed by the engine */
    int dirty;                        /* on the server's dirty list */
    struct conn *dirty_next;          /* next on it */
    struct event *read_ev;            /* readable, or idle timeout */
    struct event *write_ev;           /* writable again after a short write */
    uint8_t *in;                      /* input buffer */
    size_t in_len, in_cap;            /* bytes in it, its size */
    uint8_t *out;                     /* output buffer */
    size_t out_off, out_len, out_cap; /* first unsent byte, bytes in it, its size */
    conn_lease *leases;               /* leases to release when it closes, or NULL */
} conn;

struct rl_server {
    struct event_base *base; /* the loop */
    rl_engine *engine;       /* where requests go */
    listener *listeners;     /* open listeners */
    conn *conns;             /* open connections */
    conn *dirty;             /* connections with answers to write (on_flush) */
    struct event *flush_ev;  /* active while dirty is not empty */
    size_t conn_count;       /* entries in conns */
    uint32_t max_frame;      /* limits, from the config */
    uint32_t max_pending;
    uint32_t max_output;
    uint32_t max_connections;
    int idle_timeout_ms;
    int shutting_down;          /* rl_server_shutdown was called */
    struct event *grace_ev;     /* ends the shutdown's grace period */
    int64_t last_limit_warning; /* second (monotonic) of the last max_connections warning */
    int64_t last_peer_warning;  /* second (monotonic) of the last refused peer warning */
};

static void conn_close(conn *c);
static void conn_flush(conn *c);

/* ---- leases released on close ---- */

// Unlinks and frees the lease record at *at.
static void lease_drop(conn_lease **at) {
    conn_lease *l = *at;
    *at = l->next;
    rl_free(l);
}

#define LEASE_GRACE_US 1000000 /* a record is dropped this long after its lease ended */

// Drops the records of leases that have expired in the store by now (RELEASE would find
// them unknown) and returns how many records remain.
static size_t leases_prune(conn *c) {
    int64_t now = rl_clock_mono_us();
    size_t count = 0;
    for (conn_lease **at = &c->leases; *at;) {
        if (!(*at)->waiting && (*at)->ends_us + LEASE_GRACE_US < now) {
            lease_drop(at);
            continue;
        }
        count++;
        at = &(*at)->next;
    }
    return count;
}

// Lists a lease the ACQUIRE req (without DETACH) may take. Returns RL_ST_OK, or the
// status the ACQUIRE is refused with (nothing may be held that a close cannot free):
// INTERNAL if memory is short, BUSY if the connection lists max_pending leases already
// (records of expired leases do not count: they are dropped here).
static rl_status lease_expect(conn *c, const rl_request *req) {
    const rl_item *it = &req->items[0];
    if (c->leases && leases_prune(c) >= c->server->max_pending)
        return RL_ST_BUSY;
    conn_lease *l = rl_malloc(sizeof(*l) + it->policy_len + it->key_len);
    if (!l)
        return RL_ST_INTERNAL;
    *l = (conn_lease){c->leases, 0, 0, req->id, 1, it->key_len, it->policy_len};
    memcpy(l->names, it->policy, it->policy_len);
    memcpy(l->names + it->policy_len, it->key, it->key_len);
    c->leases = l;
    return RL_ST_OK;
}

static void lease_release(conn *c, const conn_lease *l) {
    rl_engine_release_on_close(c->server->engine, l->names, l->policy_len, l->names + l->policy_len,
                               l->key_len, l->id);
}

// Follows an answer of c's: an ACQUIRE's record gets its lease id and end (or goes, if
// nothing was taken); a RENEW moves the end; a RELEASE that ended the lease, or a RELEASE
// or RENEW that found it unknown, drops it (a RELEASE the store could not carry out,
// e.g. STORE_UNAVAILABLE, keeps it for the close). On a closed connection an allowed
// ACQUIRE's lease is released at once.
static void lease_follow(conn *c, const rl_response *resp) {
    conn_lease **at = &c->leases;
    int acquire = resp->opcode == RL_OP_ACQUIRE;
    uint8_t st = resp->result.status;
    if (!c->leases || (!acquire && resp->opcode != RL_OP_RELEASE && resp->opcode != RL_OP_RENEW))
        return;
    while (*at && !(acquire ? (*at)->waiting && (*at)->request_id == resp->id
                            : !(*at)->waiting && (*at)->id == resp->lease))
        at = &(*at)->next;
    if (!*at)
        return;
    int64_t ends = rl_clock_mono_us() + (int64_t)resp->result.reset_after_ms * 1000;
    if (resp->opcode == RL_OP_RENEW) {
        if (st == RL_ST_LEASE_UNKNOWN)
            lease_drop(at);
        else if (st == RL_ST_OK)
            (*at)->ends_us = ends;
        return;
    }
    if (!acquire) {
        if (st == RL_ST_OK || st == RL_ST_LEASE_UNKNOWN)
            lease_drop(at);
        return;
    }
    if (st != RL_ST_ALLOWED || resp->lease == 0) {
        lease_drop(at);
        return;
    }
    (*at)->waiting = 0;
    (*at)->id = resp->lease;
    (*at)->ends_us = ends;
    if (c->state == CONN_DEAD || c->state == CONN_LINGERING) {
        lease_release(c, *at);
        lease_drop(at);
    }
}

// Releases every lease c holds (it closes); records still waiting stay for their answer.
static void leases_release_all(conn *c) {
    for (conn_lease **at = &c->leases; *at;) {
        if ((*at)->waiting) {
            at = &(*at)->next;
            continue;
        }
        lease_release(c, *at);
        lease_drop(at);
    }
}

/* ---- connection lifetime ---- */

static void conn_free(conn *c) {
    rl_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->conn_count--;
    while (c->leases)
        lease_drop(&c->leases); /* none is held: every answer came (in_flight 0) */
    rl_free(c->in);
    rl_free(c->out);
    rl_free(c);
    if (s->shutting_down && s->conn_count == 0) {
        if (s->grace_ev)
            event_del(s->grace_ev); /* (main may still be draining HTTP answers) */
        event_base_loopexit(s->base, NULL);
    }
}

// Frees c if nothing refers to it any more.
static void conn_maybe_free(conn *c) {
    if (c->state == CONN_DEAD && c->in_flight == 0 && !c->processing && !c->dirty)
        conn_free(c);
}

static void conn_close(conn *c) {
    if (c->state == CONN_DEAD)
        return;
    event_free(c->read_ev);
    event_free(c->write_ev);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DEAD;
    leases_release_all(c);
    conn_maybe_free(c);
}

static void drop_buffers(conn *c) {
    rl_free(c->in);
    rl_free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_off = c->out_len = c->out_cap = 0;
}

// Ends a closing connection that owes nothing: closes it at once if its peer has
// finished sending (or, in shutdown, has nothing unread), else shuts down writing and
// lingers (see the top of this file).
static void conn_linger(conn *c) {
    int unread = 0;
    int ms = c->server->idle_timeout_ms < LINGER_MS ? c->server->idle_timeout_ms : LINGER_MS;
    struct timeval limit = {ms / 1000, (ms % 1000) * 1000};
    if (c->peer_done ||
        (c->server->shutting_down && ioctl(c->fd, FIONREAD, &unread) == 0 && unread == 0) ||
        shutdown(c->fd, SHUT_WR) != 0 || event_add(c->read_ev, &limit) != 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGERING;
    c->linger_until_us = rl_clock_mono_us() + (int64_t)ms * 1000;
    drop_buffers(c);
    leases_release_all(c); /* it answers nothing more */
}

// Discards what a lingering connection's peer still sends. Returns 1 once the
// connection should close (EOF, an error, LINGER_BYTES discarded).
static int linger_done(conn *c) {
    uint8_t buf[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return n == 0 || !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
        c->lingered += (size_t)n;
        if (c->lingered > LINGER_BYTES)
            return 1;
    }
    return 0;
}

static void linger_read(conn *c, short what) {
    if ((what & EV_TIMEOUT) || linger_done(c) || rl_clock_mono_us() >= c->linger_until_us)
        conn_close(c);
}

// Closes a closing connection once it owes nothing.
static void conn_settle(conn *c) {
    if (c->state == CONN_CLOSING && c->in_flight == 0 && c->out_len == c->out_off)
        conn_linger(c);
    else
        conn_maybe_free(c);
}

// Waits for the socket to take more output, at most idle_timeout (then on_writable
// drops the connection: its client stopped reading).
static void watch_writes(conn *c) {
    int ms = c->server->idle_timeout_ms;
    struct timeval limit = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->write_ev, &limit);
}

// Closes a connection whose partial frame has been arriving for longer than
// idle_timeout (a client sending a byte now and then never goes idle). Returns 1 if it
// did.
static int frame_overdue(conn *c) {
    /* (partial_since_us is reset by the caller whenever a frame completes) */
    if (c->in_len == 0) {
        c->partial_since_us = 0;
        return 0;
    }
    int64_t now = rl_clock_mono_us();
    if (c->partial_since_us == 0)
        c->partial_since_us = now;
    if (now - c->partial_since_us <= (int64_t)c->server->idle_timeout_ms * 1000)
        return 0;
    rl_log_warn("dropping a connection whose frame did not complete within %d ms",
                c->server->idle_timeout_ms);
    conn_close(c);
    return 1;
}

static void conn_stop_reading(conn *c) {
    if (c->state != CONN_READING)
        return;
    event_del(c->read_ev);
    c->state = CONN_CLOSING;
}

/* ---- output ---- */

static int out_reserve(conn *c, size_t n) {
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n <= c->out_cap)
            return 0;
    }
    /* small for a lean connection: many of them allocate and free together */
    size_t cap = c->out_cap ? c->out_cap : c->lean ? 256 : 4096;
    while (cap < c->out_len + n)
        cap *= 2;
    uint8_t *out = rl_realloc(c->out, cap);
    if (!out)
        return -1;
    c->out = out;
    c->out_cap = cap;
    return 0;
}

// Receives the engine's answer for one of c's requests.
static void conn_reply(void *arg, const rl_response *resp) {
    conn *c = arg;
    c->in_flight--;
    lease_follow(c, resp);
    if (c->state == CONN_DEAD) {
        conn_maybe_free(c);
        return;
    }
    size_t n = rl_response_size(resp);
    if (c->out_len - c->out_off > c->server->max_output) { /* (the answer itself may be larger) */
        rl_log_warn("dropping a connection that does not read its answers (%zu bytes unsent)",
                    c->out_len - c->out_off);
        conn_close(c);
        return;
    }
    if (out_reserve(c, n) != 0) {
        rl_log_warn("out of memory for an answer: dropping the connection");
        conn_close(c);
        return;
    }
    c->out_len += rl_response_encode(resp, c->out + c->out_len, c->out_cap - c->out_len);
    if (!c->processing && !c->dirty && !event_pending(c->write_ev, EV_WRITE, NULL)) {
        if (!c->server->dirty)
            event_active(c->server->flush_ev, EV_TIMEOUT, 0);
        c->dirty = 1; /* written by on_flush, with whatever else arrives meanwhile */
        c->dirty_next = c->server->dirty;
        c->server->dirty = c;
    }
}

static void conn_flush(conn *c) {
    int progress = 0;
    while (c->state != CONN_DEAD && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            progress = 1;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (progress || !event_pending(c->write_ev, EV_WRITE, NULL))
                watch_writes(c); /* the stall deadline restarts only on progress */
            return;
        } else {
            conn_close(c);
            return;
        }
    }
    if (c->state == CONN_DEAD)
        return;
    c->out_off = c->out_len = 0;
    event_del(c->write_ev);
    if (c->lean || c->out_cap > INPUT_MAX_CHUNK) {
        rl_free(c->out); /* an unhurried connection holds no buffer while idle */
        c->out = NULL;
        c->out_cap = 0;
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        rl_log_warn("dropping a connection that read none of its answers for %d ms "
                    "(%zu bytes unsent)",
                    c->server->idle_timeout_ms, c->out_len - c->out_off);
        conn_close(c);
        return;
    }
    c->processing = 1; /* conn_flush may close c: free it only in conn_settle */
    conn_flush(c);
    c->processing = 0;
    conn_settle(c);
}

// Writes the answers that arrived for the listed connections (after the loop
// iteration's other callbacks: one write per connection for all its answers).
static void on_flush(evutil_socket_t fd, short what, void *arg) {
    rl_server *s = arg;
    conn *list = s->dirty;
    (void)fd;
    (void)what;
    s->dirty = NULL;
    while (list) {
        conn *c = list;
        list = c->dirty_next;
        c->dirty = 0;
        c->processing = 1;
        conn_flush(c);
        c->processing = 0;
        conn_settle(c);
    }
}

/* ---- input ---- */

static void refuse(conn *c, uint8_t opcode, uint32_t id, rl_status status) {
    c->in_flight++;
    rl_engine_refuse(c->server->engine, opcode, id, status, conn_reply, c);
}

// Returns the permissions c holds for req. AUTH authenticates c if its token is the
// listener's (compared in constant time); a wrong one leaves RL_PERM_AUTHENTICATED out,
// the engine answers AUTH_FAILED and the connection closes (one guess per connection).
static uint32_t conn_perms(conn *c, const rl_request *req) {
    const rl_listener_conf *rules = c->listener ? c->listener->rules : NULL;
    if (!rules)
        return 0;
    if (req->opcode == RL_OP_AUTH) {
        const rl_item *it = &req->items[0];
        c->authenticated =
            !rules->token || rl_token_equal(rules->token, rules->token_len, it->key, it->key_len);
    }
    return rules->perms | (c->authenticated ? RL_PERM_AUTHENTICATED : 0);
}

// Handles the whole frame of frame_len bytes at buf. Returns 0 to go on reading,
// -1 if the connection must stop reading.
static int handle_frame(conn *c, const uint8_t *buf, size_t frame_len) {
    rl_request req;
    rl_status status;
    if (c->in_flight >= c->server->max_pending) {
        rl_header hdr;
        rl_header_read(buf, frame_len, UINT32_MAX, &hdr, &status);
        refuse(c, hdr.opcode, hdr.id, RL_ST_BUSY);
        return 0;
    }
    if (rl_request_decode(buf, frame_len, &req, &status) != RL_OK) {
        refuse(c, req.opcode, req.id, status);
        return rl_status_closes(status) ? -1 : 0;
    }
    uint32_t perms = conn_perms(c, &req);
    rl_status listed = RL_ST_OK;
    if (req.opcode == RL_OP_ACQUIRE && !(req.flags & RL_REQ_DETACH) && req.item_count == 1 &&
        (perms & RL_PERM_LEASE) && (perms & RL_PERM_AUTHENTICATED))
        listed = lease_expect(c, &req); /* (refused ACQUIREs take nothing: no record) */
    if (listed != RL_ST_OK) {
        refuse(c, req.opcode, req.id, listed);
        return 0;
    }
    c->in_flight++;
    rl_engine_handle(c->server->engine, &req, perms, conn_reply, c);
    return req.opcode == RL_OP_AUTH && !(perms & RL_PERM_AUTHENTICATED) ? -1 : 0;
}

// Makes room for a frame of need bytes in the input buffer.
static int in_reserve(conn *c, size_t need) {
    if (need <= c->in_cap)
        return 0;
    uint8_t *in = rl_realloc(c->in, need);
    if (!in)
        return -1;
    c->in = in;
    c->in_cap = need;
    return 0;
}

// Hints the engine at the keys of the next PREFETCH_FRAMES whole frames from off, in two
// stages (buckets, then entries), so that their decisions find them in cache. A lone
// frame has nothing to overlap its misses with: no hints then.
static void prefetch_frames(conn *c, size_t off) {
    size_t at[PREFETCH_FRAMES], len[PREFETCH_FRAMES]; /* the whole frames' offsets, lengths */
    int frames = 0;
    for (size_t o = off; frames < PREFETCH_FRAMES; frames++) {
        rl_header hdr;
        rl_status status;
        if (rl_header_read(c->in + o, c->in_len - o, c->server->max_frame, &hdr, &status) !=
                RL_OK ||
            c->in_len - o < 4 + (size_t)hdr.length)
            break;
        at[frames] = o;
        len[frames] = 4 + (size_t)hdr.length;
        o += len[frames];
    }
    if (frames < 2)
        return;
    for (int stage = 0; stage < 2; stage++) {
        for (int i = 0; i < frames; i++) {
            rl_request req;
            rl_status status;
            if (rl_request_decode(c->in + at[i], len[i], &req, &status) == RL_OK)
                rl_engine_prefetch(c->server->engine, &req, stage);
        }
    }
}

// Answers every whole frame in the input buffer; keeps a partial one. Returns the
// number of frames handled.
static int process_input(conn *c) {
    size_t off = 0;
    int frames = 0;
    for (; c->state == CONN_READING; frames++) {
        if (frames % PREFETCH_FRAMES == 0)
            prefetch_frames(c, off);
        rl_header hdr;
        rl_status status;
        int rc = rl_header_read(c->in + off, c->in_len - off, c->server->max_frame, &hdr, &status);
        if (rc == RL_AGAIN)
            break;
        if (rc == RL_ERR) {
            refuse(c, hdr.opcode, hdr.id, status);
            conn_stop_reading(c);
            break;
        }
        size_t frame_len = 4 + (size_t)hdr.length;
        if (c->in_len - off < frame_len) {
            if (in_reserve(c, frame_len) != 0)
                conn_stop_reading(c);
            break;
        }
        if (handle_frame(c, c->in + off, frame_len) != 0)
            conn_stop_reading(c);
        off += frame_len;
    }
    if (off > 0 && c->state != CONN_DEAD) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return frames;
}

static int read_some(conn *c) {
    size_t grown = !c->in_cap                    ? INPUT_INITIAL
                   : c->in_cap < INPUT_MAX_CHUNK ? c->in_cap * 2
                                                 : c->in_cap + INPUT_MAX_CHUNK;
    if (c->in_len == c->in_cap && in_reserve(c, grown))
        return -1;
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1; /* EOF or error: answer what was read, then close */
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    (void)fd;
    if (c->state == CONN_LINGERING) {
        linger_read(c, what);
        return;
    }
    if (what & EV_TIMEOUT) {
        if (c->in_flight == 0 && c->out_len == c->out_off) {
            rl_log_debug("closing an idle connection");
            conn_close(c);
        }
        return;
    }
    c->processing = 1;
    int rc = read_some(c), frames = rc > 0 ? process_input(c) : 0;
    if (frames > 0)
        c->partial_since_us = 0; /* progress: a partial frame left now is a new one */
    c->lean = frames <= 1;
    if (rc < 0) {
        c->peer_done = 1;
        conn_stop_reading(c);
    } else if (c->state == CONN_READING) {
        (void)frame_overdue(c);
    }
    if (c->state != CONN_DEAD && c->in_len == 0 && c->lean) {
        rl_free(c->in); /* one request at a time: hold no memory while idle */
        c->in = NULL;
        c->in_cap = 0;
    }
    conn_flush(c);
    c->processing = 0;
    conn_settle(c);
}

/* ---- accepting ---- */

static void refuse_connection(rl_server *s, int fd) {
    uint8_t frame[RL_HEADER_LEN + RL_RESULT_LEN];
    rl_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.result.status = RL_ST_BUSY;
    size_t n = rl_response_encode(&resp, frame, sizeof(frame));
    if (send(fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        rl_log_debug("could not tell a refused connection why: %s", strerror(errno));
    close(fd);
    int64_t now = rl_clock_mono_us() / 1000000;
    if (now != s->last_limit_warning)
        rl_log_warn("max_connections (%u) reached: refusing new connections", s->max_connections);
    s->last_limit_warning = now;
}

static void conn_new(listener *l, int fd) {
    rl_server *s = l->server;
    conn *c = rl_calloc(1, sizeof(*c));
    struct timeval idle = {s->idle_timeout_ms / 1000, (s->idle_timeout_ms % 1000) * 1000};
    if (c) {
        c->read_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->write_ev = event_new(s->base, fd, EV_WRITE, on_writable, c);
    }
    if (!c || !c->read_ev || !c->write_ev || event_add(c->read_ev, &idle) != 0) {
        rl_log_warn("out of memory for a new connection: closing it");
        if (c && c->read_ev)
            event_free(c->read_ev);
        if (c && c->write_ev)
            event_free(c->write_ev);
        close(fd);
        rl_free(c);
        return;
    }
    c->server = s;
    c->fd = fd;
    c->listener = l;
    c->authenticated = !l->rules->token;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->conn_count++;
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg) {
    listener *l = arg;
    (void)fd;
    (void)what;
    event_add(l->accept_ev, NULL);
}

// Closes cfd if the listener names the peers it admits (peer_uids, peer_gids) and the
// peer (SO_PEERCRED) is not one of them. Returns 1 if it did, 0 otherwise.
static int peer_refused(listener *l, int cfd) {
    const rl_listener_conf *rules = l->rules;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (!rules->peer_uids && !rules->peer_gids)
        return 0;
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof(cred) &&
        rl_listener_peer_allowed(rules, (uint32_t)cred.uid, (uint32_t)cred.gid))
        return 0;
    close(cfd);
    rl_engine_note_refused_peer(l->server->engine);
    int64_t now = rl_clock_mono_us() / 1000000;
    if (now != l->server->last_peer_warning)
        rl_log_warn("%s: refused a connection of uid %d gid %d (not in peer_uids/peer_gids)",
                    l->address, len == sizeof(cred) ? (int)cred.uid : -1,
                    len == sizeof(cred) ? (int)cred.gid : -1);
    l->server->last_peer_warning = now;
    return 1;
}

static void on_accept(evutil_socket_t fd, short what, void *arg) {
    listener *l = arg;
    rl_server *s = l->server;
    (void)what;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                rl_log_warn("accept on %s: %s; pausing for %d ms", l->address, strerror(errno),
                            ACCEPT_PAUSE_MS);
                struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
                event_del(l->accept_ev);
                event_add(l->pause_ev, &pause);
            }
            return;
        }
        if (s->conn_count >= s->max_connections)
            refuse_connection(s, cfd);
        else if (peer_refused(l, cfd) == 0)
            conn_new(l, cfd);
    }
}

/* ---- listeners ---- */

// Detaches the connections accepted on l from it; if close is set, they stop reading
// and close once their answers are written.
static void listener_drop_conns(listener *l, int close_them) {
    for (conn *c = l->server->conns, *next; c; c = next) {
        next = c->next;
        if (c->listener != l)
            continue;
        c->listener = NULL; /* (conn_perms then grants nothing) */
        if (close_them) {
            conn_stop_reading(c);
            conn_settle(c);
        }
    }
}

static void listener_free(listener *l) {
    listener_drop_conns(l, 0);
    rl_listener_trust_release(l->rules);
    if (l->accept_ev)
        event_free(l->accept_ev);
    if (l->pause_ev)
        event_free(l->pause_ev);
    if (l->fd >= 0)
        close(l->fd);
    if (l->unix_path)
        rl_listen_remove(l->unix_path, &l->unix_file);
    rl_free(l->unix_path);
    rl_free(l->address);
    rl_free(l);
}

static listener *listener_open(rl_server *s, const rl_listener_conf *lc, char *err, size_t errlen) {
    listener *l = rl_calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->server = s;
    l->rules = rl_listener_trust_dup(lc);
    l->address = rl_strndup(lc->address, strlen(lc->address));
    l->fd = l->rules ? rl_listen_open(lc, &l->unix_file, err, errlen) : -1;
    if (!l->rules)
        snprintf(err, errlen, "listen %s: out of memory", lc->address);
    if (l->fd >= 0 && lc->kind == RL_LISTEN_UNIX)
        l->unix_path = rl_strndup(lc->path, strlen(lc->path));
    if (l->fd >= 0) {
        l->accept_ev = event_new(s->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
        l->pause_ev = evtimer_new(s->base, on_pause_over, l);
    }
    if (l->fd < 0 || !l->address || !l->accept_ev || !l->pause_ev ||
        event_add(l->accept_ev, NULL) != 0) {
        if (l->fd >= 0)
            snprintf(err, errlen, "listen %s: out of memory", lc->address);
        listener_free(l);
        return NULL;
    }
    char bound[256];
    if (rl_listen_address(l->fd, bound, sizeof(bound)) == 0)
        rl_log_info("listening on %s%s", bound, l->rules->admin ? " (admin)" : "");
    return l;
}

static listener *find_listener(rl_server *s, const rl_listener_conf *lc) {
    for (listener *l = s->listeners; l; l = l->next)
        if (strcmp(l->address, lc->address) == 0)
            return l;
    return NULL;
}

static int listed(const rl_config *c, const listener *l) {
    for (size_t i = 0; i < c->listener_count; i++)
        if (strcmp(c->listeners[i].address, l->address) == 0)
            return 1;
    return 0;
}

static void take_limits(rl_server *s, const rl_config *c) {
    s->max_frame = c->max_frame;
    s->max_pending = c->max_pending;
    s->max_output = c->max_output;
    s->max_connections = c->max_connections;
    s->idle_timeout_ms = c->idle_timeout_ms;
}

// Copies the rules c gives the listeners already open into next (by index in c), so
// that applying them cannot fail half-way. Returns RL_ERR if out of memory.
static int copy_rules(rl_server *s, const rl_config *c, rl_listener_conf **next, char *err,
                      size_t errlen) {
    for (size_t i = 0; i < c->listener_count; i++) {
        const rl_listener_conf *lc = &c->listeners[i];
        if (lc->kind == RL_LISTEN_HTTP || !find_listener(s, lc))
            continue;
        next[i] = rl_listener_trust_dup(lc);
        if (!next[i]) {
            snprintf(err, errlen, "listen %s: out of memory", lc->address);
            return RL_ERR;
        }
    }
    return RL_OK;
}

// Gives the open listeners their rules from c (next, from copy_rules). New operations
// apply at once to their connections; a listener whose token or peers changed closes
// its connections (after their answers), so that each client authenticates again.
static void swap_rules(rl_server *s, const rl_config *c, rl_listener_conf **next) {
    for (size_t i = 0; i < c->listener_count; i++) {
        listener *l = next[i] ? find_listener(s, &c->listeners[i]) : NULL;
        if (!l)
            continue;
        if (!rl_listener_trust_same(l->rules, next[i])) {
            rl_log_info("%s: token or peers changed: closing its connections", l->address);
            listener_drop_conns(l, 1);
        }
        rl_listener_trust_release(l->rules);
        l->rules = next[i];
        next[i] = NULL;
    }
}

// Opens the listeners of c that are not open yet, prepending them to *opened.
static int open_missing(rl_server *s, const rl_config *c, listener **opened, char *err,
                        size_t errlen) {
    for (size_t i = 0; i < c->listener_count; i++) {
        const rl_listener_conf *lc = &c->listeners[i];
        if (lc->kind == RL_LISTEN_HTTP || find_listener(s, lc))
            continue;
        listener *l = listener_open(s, lc, err, errlen);
        if (!l)
            return RL_ERR;
        l->next = *opened;
        *opened = l;
    }
    return RL_OK;
}

int rl_server_apply(rl_server *s, const rl_config *c, char *err, size_t errlen) {
    listener *opened = NULL;
    rl_listener_conf *rules[RL_MAX_LISTENERS] = {NULL};
    if (copy_rules(s, c, rules, err, errlen) != RL_OK ||
        open_missing(s, c, &opened, err, errlen) != RL_OK) {
        while (opened) {
            listener *next = opened->next;
            listener_free(opened);
            opened = next;
        }
        for (size_t i = 0; i < RL_MAX_LISTENERS; i++)
            rl_listener_trust_release(rules[i]);
        return RL_ERR;
    }
    swap_rules(s, c, rules);
    for (listener **lp = &s->listeners; *lp;) {
        listener *l = *lp;
        if (listed(c, l)) {
            lp = &l->next;
            continue;
        }
        rl_log_info("no longer listening on %s: closing its connections", l->address);
        *lp = l->next;
        listener_drop_conns(l, 1);
        listener_free(l);
    }
    while (opened) {
        listener *next = opened->next;
        opened->next = s->listeners;
        s->listeners = opened;
        opened = next;
    }
    take_limits(s, c);
    return RL_OK;
}

rl_server *rl_server_new(struct event_base *base, rl_engine *engine, const rl_config *c, char *err,
                         size_t errlen) {
    rl_server *s = rl_calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->engine = engine;
    s->flush_ev = event_new(base, -1, 0, on_flush, s);
    if (!s->flush_ev) {
        snprintf(err, errlen, "out of memory");
        rl_server_free(s);
        return NULL;
    }
    if (rl_server_apply(s, c, err, errlen) != RL_OK) {
        rl_server_free(s);
        return NULL;
    }
    return s;
}

/* ---- shutdown ---- */

static void on_grace_over(evutil_socket_t fd, short what, void *arg) {
    rl_server *s = arg;
    (void)fd;
    (void)what;
    rl_log_warn("shutdown: %zu connections still owed answers after the grace period",
                s->conn_count);
    event_base_loopexit(s->base, NULL);
}

void rl_server_shutdown(rl_server *s, int grace_ms) {
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    while (s->listeners) {
        listener *l = s->listeners;
        s->listeners = l->next;
        listener_free(l);
    }
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_stop_reading(c);
        conn_settle(c);
    }
    if (s->conn_count == 0) {
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval grace = {grace_ms / 1000, (grace_ms % 1000) * 1000};
    s->grace_ev = evtimer_new(s->base, on_grace_over, s);
    if (!s->grace_ev || evtimer_add(s->grace_ev, &grace) != 0)
        event_base_loopexit(s->base, NULL);
}

size_t rl_server_connections(const rl_server *s) {
    return s->conn_count;
}

int rl_server_listener_address(const rl_server *s, size_t index, char *buf, size_t len) {
    const listener *l = s->listeners;
    for (size_t i = 0; l && i < index; i++)
        l = l->next;
    return l ? rl_listen_address(l->fd, buf, len) : -1;
}

void rl_server_free(rl_server *s) {
    if (!s)
        return;
    while (s->listeners) {
        listener *l = s->listeners;
        s->listeners = l->next;
        listener_free(l);
    }
    s->dirty = NULL; /* (every connection is freed below) */
    while (s->conns) {
        conn *c = s->conns;
        c->dirty = 0;
        if (c->state != CONN_DEAD) {
            event_free(c->read_ev);
            event_free(c->write_ev);
            close(c->fd);
        }
        s->shutting_down = 0;
        conn_free(c);
    }
    if (s->grace_ev)
        event_free(s->grace_ev);
    if (s->flush_ev)
        event_free(s->flush_ev);
    rl_free(s);
}
