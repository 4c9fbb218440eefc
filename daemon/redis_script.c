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

// The limit is on what is sent (SCRIPT LOAD, or EVAL when Redis has lost the script):
// Redis 7 answers a bulk string over 16 KB from a client not yet authenticated with a
// protocol error and closes the connection, so a SCRIPT LOAD without credentials to a
// Redis that wants them would fail with that instead of NOAUTH (which names the fault).
_Static_assert(sizeof(rl_redis_script) - 1 <= 16384, "the script must stay within 16 KB");
