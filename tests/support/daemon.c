/*
 * daemon.c: the end-to-end tests' daemon launcher.
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void rlt_expand(const rlt_daemon *d, const char *text, char *out, size_t len) {
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < len;) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            o += (size_t)snprintf(out + o, len - o, "%s", d->dir);
            p += 5;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

int rlt_daemon_rewrite(rlt_daemon *d, const char *config) {
    static char text[65536];
    rlt_expand(d, config, text, sizeof(text));
    FILE *f = fopen(d->config, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void print_log(const rlt_daemon *d) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cat '%s' >&2", d->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no daemon log)\n");
}

static pid_t spawn(const rlt_daemon *d) {
    const char *bin = getenv("RLIMITD_BIN") ? getenv("RLIMITD_BIN") : "build/rlimitd";
    const char *wrapper = getenv("RLIMITD_WRAPPER") ? getenv("RLIMITD_WRAPPER") : "";
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "exec %s %s -f -c '%s' 2>'%s'", wrapper, bin, d->config, d->log);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test that dies takes its daemon along */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int rlt_daemon_start(rlt_daemon *d, const char *config) {
    char path[340];
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/rlimitd-test-XXXXXX");
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->config, sizeof(d->config), "%s/rlimitd.json", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    snprintf(d->sock, sizeof(d->sock), "unix:%s/rlimitd.sock", d->dir);
    snprintf(path, sizeof(path), "%s/rlimitd.sock", d->dir);
    if (rlt_daemon_rewrite(d, config) != 0)
        return -1;
    d->pid = spawn(d);
    int slow = getenv("RLIMITD_WRAPPER") && *getenv("RLIMITD_WRAPPER");
    for (int waited = 0; waited < (slow ? 60000 : 10000); waited += 20) {
        if (access(path, F_OK) == 0 && rlt_daemon_log_has(d, "ready:"))
            return 0; /* no probe connection: it would count against max_connections */
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
            break;
        sleep_ms(20);
    }
    fprintf(stderr, "rlimitd did not come up; its log:\n");
    print_log(d);
    return -1;
}

void rlt_daemon_signal(rlt_daemon *d, int sig) {
    kill(d->pid, sig);
}

int rlt_daemon_log_has(const rlt_daemon *d, const char *text) {
    FILE *f = fopen(d->log, "r");
    char line[4096];
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void remove_dir(const rlt_daemon *d) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d->dir);
}

int rlt_daemon_wait(rlt_daemon *d, int timeout_ms) {
    int status = 0;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            d->exited = 1;
            d->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            return d->status;
        }
        sleep_ms(20);
    }
    return -2;
}

int rlt_daemon_stop(rlt_daemon *d) {
    int status = 0, rc = -1;
    if (d->exited) {
        if (d->status != 0)
            print_log(d);
        remove_dir(d);
        return d->status;
    }
    kill(d->pid, SIGTERM);
    for (int waited = 0; waited < 30000; waited += 20) {
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        if (r < 0 && errno != EINTR)
            break;
        sleep_ms(20);
    }
    if (rc == -1 && !WIFEXITED(status)) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    if (rc != 0)
        print_log(d);
    remove_dir(d);
    return rc;
}
