/*
 * main.c: rlimitd's entry point: flags, config, signals, the event loop.
 *
 *   rlimitd -c FILE [-f] [-v] [--check-config]
 *
 * SIGTERM/SIGINT: clean shutdown (listeners closed, socket files unlinked, answers
 * in flight written). SIGHUP: reload the config (a bad one is logged and the old one
 * kept).
 */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "denylog.h"
#include "engine.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "server.h"

#define SHUTDOWN_GRACE_MS 5000

typedef struct daemon_state {
    const char *config_path; /* -c FILE */
    struct event_base *base; /* the loop */
    rl_engine *engine;       /* decisions */
    rl_server *server;       /* listeners and connections */
    rl_http *http;           /* the HTTP listeners */
    int verbose;             /* -v: debug level, whatever the config's log_level */
    int stopping;            /* SIGTERM/SIGINT came: no more reloads */
    struct event *grace;     /* fires when the shutdown's grace period ends */
    int grace_over;          /* it fired (or could not be armed) */
} daemon_state;

static void usage(FILE *out) {
    fprintf(out, "usage: rlimitd -c FILE [-f] [-v] [--check-config]\n"
                 "  -c, --config FILE   the JSON config (see conf/rlimitd.json)\n"
                 "  -f, --foreground    stay in the foreground (default: detach)\n"
                 "  -v, --verbose       log at debug level\n"
                 "      --check-config  validate the config, print the verdict, exit 0 or 1\n"
                 "  -h, --help          this text\n");
}

// Sets the log level of c, unless -v asked for debug (which a reload keeps).
static void apply_log_level(const daemon_state *d, const rl_config *c) {
    rl_log_set_level(d->verbose ? RL_LOG_DEBUG : c->log_level);
}

// Applies the listeners of c: new HTTP listeners first (undone if the binary ones
// fail), then the binary ones, then HTTP listeners no longer listed are closed.
static int apply_listeners(daemon_state *d, const rl_config *c, char *err, size_t errlen) {
    if (rl_http_prepare(d->http, c, err, errlen) != RL_OK)
        return RL_ERR;
    if (rl_server_apply(d->server, c, err, errlen) != RL_OK) {
        rl_http_rollback(d->http);
        return RL_ERR;
    }
    rl_http_commit(d->http, c);
    return RL_OK;
}

// Re-reads the config file and applies it: listeners first (which can be undone),
// then the policies. Shared by SIGHUP and the RELOAD opcode. A refused reload still
// reopens the denial log (log rotation).
static int reload(void *arg, char *err, size_t errlen) {
    daemon_state *d = arg;
    rl_config *c = rl_config_load(d->config_path, err, errlen);
    rl_notify("RELOADING=1");
    if (!c || rl_engine_reload_check(d->engine, c, err, errlen) != RL_OK ||
        apply_listeners(d, c, err, errlen) != RL_OK) {
        rl_log_error("reload refused, the old config stays: %s", err);
        rl_config_free(c);
        rl_engine_reload_refused(d->engine);
        rl_notify("READY=1");
        return RL_ERR;
    }
    if (rl_engine_reload(d->engine, c, err, errlen) != RL_OK) {
        rl_log_error("reload refused after the listeners changed: %s", err);
        rl_config_free(c);
        rl_engine_reload_refused(d->engine);
        rl_notify("READY=1");
        return RL_ERR;
    }
    apply_log_level(d, c);
    rl_notify("READY=1");
    return RL_OK;
}

static size_t count_connections(void *arg) {
    daemon_state *d = arg;
    return d->server ? rl_server_connections(d->server) : 0;
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ((daemon_state *)arg)->grace_over = 1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    daemon_state *d = arg;
    char err[1024];
    (void)what;
    if (d->stopping) { /* a second signal neither reloads nor extends the grace period */
        rl_log_info("%s ignored: shutting down", sig == SIGHUP    ? "SIGHUP"
                                                 : sig == SIGTERM ? "SIGTERM"
                                                                  : "SIGINT");
        return;
    }
    if (sig == SIGHUP) {
        rl_log_info("SIGHUP: reloading %s", d->config_path);
        reload(d, err, sizeof(err));
        return;
    }
    rl_log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    d->stopping = 1;
    struct timeval grace = {SHUTDOWN_GRACE_MS / 1000, (SHUTDOWN_GRACE_MS % 1000) * 1000};
    d->grace = evtimer_new(d->base, on_grace_over, d);
    if (!d->grace || evtimer_add(d->grace, &grace) != 0)
        d->grace_over = 1; /* no timer to bound the HTTP drain: do not drain */
    rl_notify("STOPPING=1");
    rl_http_close(d->http);
    rl_server_shutdown(d->server, SHUTDOWN_GRACE_MS);
}

// The binary connections have drained: HTTP requests still waiting on the store get
// their answers written too, within the rest of the grace period.
static void drain_http(daemon_state *d) {
    while (rl_http_owed(d->http) > 0 && !d->grace_over)
        event_base_loop(d->base, EVLOOP_ONCE);
    if (rl_http_owed(d->http) > 0)
        rl_log_warn("shutdown: %zu HTTP answers still owed after the grace period",
                    rl_http_owed(d->http));
}

static int parse_flags(int argc, char **argv, daemon_state *d, int *check_only, int *foreground) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},      {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:fvh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            d->config_path = optarg;
            break;
        case 'f':
            *foreground = 1;
            break;
        case 'v':
            d->verbose = 1;
            break;
        case 'C':
            *check_only = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || !d->config_path) {
        usage(stderr);
        return -1;
    }
    return 0;
}

// Returns 0 if the config's denial log can be written (or there is none), -1 with the
// reason in err: the daemon does not start without the log it was asked to keep.
static int denial_log_writable(const rl_config *c, char *err, size_t errlen) {
    if (!c->denial_log.path || c->denial_log.syslog)
        return 0;
    rl_denylog *probe = rl_denylog_open(&c->denial_log, err, errlen);
    rl_denylog_close(probe);
    return probe ? 0 : -1;
}

// Watches SIGTERM, SIGINT and SIGHUP through the loop (sigs[3] receives the events).
// Returns 0, or -1 (logged, nothing left allocated) if one cannot be watched.
static int watch_signals(daemon_state *d, struct event *sigs[3]) {
    static const int signals[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(d->base, signals[i], on_signal, d);
        if (!sigs[i] || event_add(sigs[i], NULL) != 0) {
            rl_log_error("cannot watch signal %d (out of memory?)", signals[i]);
            for (int j = 0; j <= i; j++)
                if (sigs[j])
                    event_free(sigs[j]);
            return -1;
        }
    }
    return 0;
}

static int run(daemon_state *d, rl_config *c) {
    char err[1024];
    struct event *sigs[3];
    if (denial_log_writable(c, err, sizeof(err)) != 0) {
        rl_log_error("%s: %s", c->source, err);
        rl_config_free(c);
        return 1;
    }
    d->engine = rl_engine_new(d->base, c, err, sizeof(err));
    if (!d->engine) {
        rl_log_error("%s", err);
        rl_config_free(c);
        return 1;
    }
    rl_engine_set_reloader(d->engine, reload, d);
    rl_engine_set_connections(d->engine, count_connections, d);
    d->http = rl_http_new(d->base, d->engine, err, sizeof(err));
    if (d->http && rl_http_prepare(d->http, c, err, sizeof(err)) == RL_OK) {
        rl_http_commit(d->http, c);
        d->server = rl_server_new(d->base, d->engine, c, err, sizeof(err));
    }
    if (!d->server || watch_signals(d, sigs) != 0) {
        if (!d->server)
            rl_log_error("%s", err);
        rl_engine_free(d->engine);
        rl_http_free(d->http);
        rl_server_free(d->server);
        return 1;
    }
    rl_log_info("ready: %zu policies, %s store", c->policy_count,
                c->store.type == RL_STORE_REDIS ? "redis" : "memory");
    rl_notify("READY=1");
    event_base_dispatch(d->base);
    if (d->stopping)
        drain_http(d);
    if (d->grace)
        event_free(d->grace);
    signal(SIGTERM, SIG_IGN); /* already stopping: a second signal must not cut cleanup short */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    rl_engine_free(d->engine); /* answers what a store still owes, to live connections */
    rl_http_free(d->http);
    rl_server_free(d->server);
    rl_log_info("stopped");
    return 0;
}

int main(int argc, char **argv) {
    daemon_state d = {0};
    int check_only = 0, foreground = 0;
    char err[1024];
    if (parse_flags(argc, argv, &d, &check_only, &foreground) != 0)
        return 2;
    rl_config *c = rl_config_load(d.config_path, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "rlimitd: %s\n", err);
        return 1;
    }
    if (check_only) {
        printf("%s: ok (%zu policies, %zu listeners)\n", d.config_path, c->policy_count,
               c->listener_count);
        rl_config_free(c);
        return 0;
    }
    apply_log_level(&d, c);
    signal(SIGPIPE, SIG_IGN);
    if (!foreground && daemon(1, 1) != 0) {
        perror("rlimitd: daemon");
        return 1;
    }
    d.base = event_base_new();
    if (!d.base) {
        rl_log_error("cannot create the event loop");
        return 1;
    }
    int rc = run(&d, c);
    event_base_free(d.base);
    return rc;
}
