/*
 * notify.h: systemd's readiness protocol (sd_notify), without libsystemd.
 */
#ifndef RL_NOTIFY_H
#define RL_NOTIFY_H

// Sends state (e.g. "READY=1") to $NOTIFY_SOCKET if the daemon runs under systemd
// with Type=notify; does nothing otherwise. Failures are logged at debug level.
void rl_notify(const char *state);

#endif
