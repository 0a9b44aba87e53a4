/*  tern_log.c - ternd's log lines with ISO 8601 UTC timestamps.

    czmq has no option for its log format, only for where lines go
    (zsys_set_logstream). So the stream ternd gives it is a cookie FILE
    (fopencookie): czmq's fprintf + fflush of one line lands in s_write,
    which swaps czmq's "YY-MM-DD HH:MM:SS" for the UTC time of the write in
    milliseconds (the same thread, microseconds after czmq read its clock)
    and writes the line to the real descriptor in one write(). The FILE's
    own lock serializes threads, so the writer needs none; lines that do not
    look like czmq's pass through unchanged.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE //  fopencookie
#endif
#include "tern_log.h"
#include "tern_units.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_DATE_LEN 17 //  "YY-MM-DD HH:MM:SS"

static int s_fd = -1;            //  where the lines go
static bool s_line_start = true; //  the next byte written starts a line

//  Length of czmq's "L: (IDENT) " or "L: " at LINE when a czmq date follows
//  it, else 0.
static size_t s_date_at(const char *line, size_t len) {
    if (len < 3 || line[1] != ':' || line[2] != ' ') {
        return 0;
    }
    size_t at = 3;
    if (at < len && line[at] == '(') {
        const char *close = memchr(line + at, ')', len - at);
        if (!close || (size_t)(close - line) + 2 > len || close[1] != ' ') {
            return 0;
        }
        at = (size_t)(close - line) + 2;
    }
    static const char shape[] = "00-00-00 00:00:00";
    if (len < at + S_DATE_LEN) {
        return 0;
    }
    for (size_t i = 0; i < S_DATE_LEN; i++) {
        char c = line[at + i];
        bool digit = c >= '0' && c <= '9';
        if (shape[i] == '0' ? !digit : c != shape[i]) {
            return 0;
        }
    }
    return at;
}

static void s_write_all(const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(s_fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; //  nowhere to report a failing log
        }
        data += n;
        len -= (size_t)n;
    }
}

static ssize_t s_write(void *cookie, const char *data, size_t size) {
    (void)cookie;
    const char *end = data + size;
    while (data < end) {
        const char *newline = memchr(data, '\n', (size_t)(end - data));
        size_t len = newline ? (size_t)(newline - data) + 1 : (size_t)(end - data);
        size_t prefix = s_line_start ? s_date_at(data, len) : 0;
        if (prefix) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            char line[1200], when[TERN_UNITS_BUF];
            tern_units_format_time((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                                   when, sizeof when);
            int n = snprintf(line, sizeof line, "%.*s%s%.*s", (int)prefix, data, when,
                             (int)(len - prefix - S_DATE_LEN), data + prefix + S_DATE_LEN);
            s_write_all(line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
            if (n < 0 || (size_t)n >= sizeof line) {
                s_write_all(data, len); //  longer than czmq writes: as it is
            }
        } else {
            s_write_all(data, len);
        }
        s_line_start = newline != NULL;
        data += len;
    }
    return (ssize_t)size;
}

void tern_log_start(const char *ident, FILE *out) {
    zsys_set_logident(ident);
    s_fd = fileno(out);
    cookie_io_functions_t io = {.read = NULL, .write = s_write, .seek = NULL, .close = NULL};
    FILE *stream = s_fd >= 0 ? fopencookie(NULL, "w", io) : NULL;
    if (stream && setvbuf(stream, NULL, _IOLBF, 4096) == 0) {
        zsys_set_logstream(stream); //  lives as long as the process
    } else {
        if (stream) {
            fclose(stream);
        }
        zsys_set_logstream(out);
    }
}
