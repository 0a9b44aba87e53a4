/*  tern_log.h - ternd's log lines with ISO 8601 UTC timestamps.

    ternd logs through czmq (zsys_info and friends), whose line format is
    fixed: "I: (ternd) 26-12-07 12:34:56 text", local time, no year century,
    no milliseconds. tern_log_start hands czmq a stream that rewrites that
    date into "2026-12-07T12:34:56.789Z" and writes each line to OUT; the
    rest of the line is unchanged. Called once by ternd's main before any
    actor starts.
*/
#ifndef TERN_LOG_H_INCLUDED
#define TERN_LOG_H_INCLUDED

#include <stdio.h>

/*  Sets czmq's log identity to IDENT and its log stream to one that writes
    to OUT's file descriptor with ISO 8601 timestamps. If that stream cannot
    be made, logs go to OUT as czmq formats them. OUT is borrowed for the
    life of the process. */
void tern_log_start(const char *ident, FILE *out);

#endif
