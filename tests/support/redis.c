/*
 * redis.c: a private redis-server for tests (see redis.h).
 */
#include "redis.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Returns a TCP port that was free a moment ago, or -1: a random one below the kernel's
// ephemeral range (10000-32767), so that no connection of a test running beside this one
// gets it as its own port while the server is stopped for a restart.
static int free_port(void) {
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int attempt = 0; attempt < 200; attempt++) {
        int port = 10000 + (int)(rand_r(&seed) % 22768);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static pid_t spawn(const rlt_redis *r) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec redis-server --bind 127.0.0.1 --port %d --unixsocket '%s' --dir '%s' "
             "--save '' --appendonly no --logfile '%s/redis.log' --enable-debug-command yes "
             "%s",
             r->port, r->sock, r->dir, r->dir, r->args);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that dies takes its server along */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Waits up to 5 s for the server to answer PING (NOAUTH counts: it is up).
static int wait_up(rlt_redis *r) {
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return -1;
        }
        redisContext *c = redisConnect("127.0.0.1", r->port);
        redisReply *reply = c && !c->err ? redisCommand(c, "PING") : NULL;
        int up = reply != NULL;
        if (reply)
            freeReplyObject(reply);
        if (c)
            redisFree(c);
        if (up)
            return 0;
        pause_ms(10);
    }
    return -1;
}

int rlt_redis_start(rlt_redis *r, const char *args) {
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/rlt-redis-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->args, sizeof(r->args), "%s", args ? args : "");
    for (int attempt = 0; attempt < 5; attempt++) { /* another process may take the port */
        r->port = free_port();
        if (r->port > 0 && rlt_redis_restart(r) == 0)
            return 0;
    }
    return -1;
}

int rlt_redis_restart(rlt_redis *r) {
    r->pid = spawn(r);
    if (r->pid > 0 && wait_up(r) == 0)
        return 0;
    rlt_redis_stop(r, 1);
    return -1;
}

void rlt_redis_stop(rlt_redis *r, int kill_it) {
    if (r->pid <= 0)
        return;
    kill(r->pid, kill_it ? SIGKILL : SIGTERM);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    unlink(r->sock);
}

void rlt_redis_cleanup(rlt_redis *r) {
    char cmd[400];
    rlt_redis_stop(r, 1);
    if (r->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

redisContext *rlt_redis_connect(const rlt_redis *r, const char *password) {
    redisContext *c = redisConnect("127.0.0.1", r->port);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (password) {
        redisReply *reply = redisCommand(c, "AUTH %s", password);
        if (reply)
            freeReplyObject(reply);
    }
    return c;
}

int rlt_redis_fire(const rlt_redis *r, const char *raw) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    size_t len = strlen(raw);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        write(fd, raw, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    return fd;
}
