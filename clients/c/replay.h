/*
 * replay.h: `rlimitctl replay`, deciding an access log's requests offline with the
 * daemon's own config, algorithm and memory-store code on a virtual clock taken from
 * the log's timestamps (README "Replay").
 *
 * Data flow: files (plain, gzip or stdin) -> replay_log.c (lines -> records, no
 * allocation per line) -> a reorder window (records sorted by time) -> replay_rules.c
 * (path -> policy) -> the memory store, one per config, on the virtual clock -> per
 * policy totals, a bounded top-K of denied keys, a time series -> text, JSON, HTML.
 */
#ifndef RL_REPLAY_H
#define RL_REPLAY_H

#include <stdio.h>

#include <jansson.h>

// Runs `rlimitctl replay` with argv[0] == "replay". Returns the exit status: 0 done, 2
// an error or a usage error (reasons on stderr).
int rl_replay_main(int argc, char **argv);

// Writes a self-contained HTML report (inline SVG and CSS, no script, no external URL)
// rendered from report, the object `rlimitctl replay --json` prints, to out. Returns 0,
// or -1 if report lacks what it needs or writing failed. (clients/c/replay_html.c)
int rl_replay_html(FILE *out, const json_t *report);

#endif
