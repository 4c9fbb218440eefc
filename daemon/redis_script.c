/*
 * redis_script.c: the Redis script (redis_script.lua) as the daemon sends it.
 *
 * The build writes redis_script.inc into the build directory: redis_script.lua shrunk
 * by redis_script.awk (comments and blanks out, each line in place), checked to compile
 * to the same bytecode as the source, one C string literal per line (see the Makefile).
 */
#include "redis_script.h"

const char rl_redis_script[] =
#include "redis_script.inc"
    ;

const size_t rl_redis_script_len = sizeof(rl_redis_script) - 1;

const char rl_redis_cluster_script[] = RL_REDIS_CLUSTER_SHEBANG
#include "redis_script.inc"
    ;

const size_t rl_redis_cluster_script_len = sizeof(rl_redis_cluster_script) - 1;

// Redis 7 answers a bulk string over 16 KB from a client not yet authenticated with a
// protocol error and closes the connection; the pool's handshake therefore authenticates
// (or PINGs, so that a Redis wanting a password answers NOAUTH) before SCRIPT LOAD. The
// bound below only keeps the script a size one call can carry cheaply (EVAL resends it).
_Static_assert(sizeof(rl_redis_script) - 1 <= 65536, "the script must stay within 64 KB");
