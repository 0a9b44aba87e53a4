/*  tern_peer.c - the state machine of one outbound replication link.

    Pure logic: no sockets, no clock (the caller passes NOW). The repl actor
    (broker/tern_repl.c) owns the socket and performs the returned actions.

    State x event -> next state, actions. "retry" = failures++, retry at
    now + backoff(failures), backoff 1 s, 5 s, 30 s, then 30 s; "-" = ignored.

      state  | TICK               | WELCOME    | REFUSED | FRAME | PAUSE  | RESUME  | WAKE
      -------+--------------------+------------+---------+-------+--------+---------+--------
      IDLE   | due: HELLO,CONNECT | -          | -       | -     | PAUSED | -       | HELLO,
             |                    |            |         |       |        |         | CONNECT
      HELLO  | handshake timeout: | LIVE,      | IDLE,   | seen  | PAUSED,| -       | -
             | IDLE, CLOSE, retry | STREAM (1) | CLOSE,  |       | CLOSE  |         |
             |                    |            | retry   |       |        |         |
      LIVE   | silent >= dead_ms: | -          | IDLE,   | seen  | PAUSED,| -       | -
             | IDLE, CLOSE, retry |            | CLOSE,  |       | CLOSE  |         |
             |                    |            | retry   |       |        |         |
      PAUSED | -                  | -          | -       | -     | -      | HELLO,  | -
             |                    |            |         |       |        | CONNECT |
             |                    |            |         |       |        | (1)     |

    (1) failures = 0. "seen" records the time of the frame (liveness).
    WAKE = the peer connected to us inbound, so it is back: an IDLE link
    retries at once instead of waiting out a 30 s backoff (failures kept).
*/
#include "tern_peer.h"
#include <stdlib.h>

struct tern_peer_t {
    tern_peer_state_t state;   //  current state
    tern_peer_timing_t timing; //  timeouts
    uint32_t failures;         //  failed attempts since the last LIVE
    uint64_t retry_at;         //  IDLE: when to CONNECT
    uint64_t hello_at;         //  HELLO: when the HELLO was sent
    uint64_t last_seen;        //  last frame from the peer (unix ms)
};

typedef unsigned(s_handler_fn)(tern_peer_t *self, uint64_t now);

uint64_t tern_peer_backoff_ms(uint32_t failures) {
    return failures <= 1 ? 1000 : failures == 2 ? 5000 : 30000;
}

static unsigned s_ignore(tern_peer_t *self, uint64_t now) {
    (void)self;
    (void)now;
    return 0;
}

static unsigned s_connect(tern_peer_t *self, uint64_t now) {
    self->state = TERN_PEER_HELLO;
    self->hello_at = now;
    return TERN_PEER_A_CONNECT;
}

static unsigned s_retry(tern_peer_t *self, uint64_t now) {
    self->failures++;
    self->retry_at = now + tern_peer_backoff_ms(self->failures);
    self->state = TERN_PEER_IDLE;
    return TERN_PEER_A_CLOSE;
}

static unsigned s_wake(tern_peer_t *self, uint64_t now) {
    return s_connect(self, now);
}

static unsigned s_idle_tick(tern_peer_t *self, uint64_t now) {
    return now >= self->retry_at ? s_connect(self, now) : 0;
}

static unsigned s_hello_tick(tern_peer_t *self, uint64_t now) {
    return now - self->hello_at >= self->timing.handshake_ms ? s_retry(self, now) : 0;
}

static unsigned s_live_tick(tern_peer_t *self, uint64_t now) {
    return now - self->last_seen >= self->timing.dead_ms ? s_retry(self, now) : 0;
}

static unsigned s_welcome(tern_peer_t *self, uint64_t now) {
    self->state = TERN_PEER_LIVE;
    self->failures = 0;
    self->last_seen = now;
    return TERN_PEER_A_STREAM;
}

static unsigned s_seen(tern_peer_t *self, uint64_t now) {
    self->last_seen = now;
    return 0;
}

static unsigned s_pause_idle(tern_peer_t *self, uint64_t now) {
    (void)now;
    self->state = TERN_PEER_PAUSED;
    return 0;
}

static unsigned s_pause_open(tern_peer_t *self, uint64_t now) {
    (void)now;
    self->state = TERN_PEER_PAUSED;
    return TERN_PEER_A_CLOSE;
}

static unsigned s_resume(tern_peer_t *self, uint64_t now) {
    self->failures = 0;
    return s_connect(self, now);
}

//  The table above, as code: [state][event].
static s_handler_fn *const s_table[TERN_PEER_STATES_][TERN_PEER_EVENTS_] = {
    //                 TICK          WELCOME    REFUSED   FRAME     PAUSE         RESUME    WAKE
    [TERN_PEER_IDLE] = {s_idle_tick, s_ignore, s_ignore, s_ignore, s_pause_idle, s_ignore, s_wake},
    [TERN_PEER_HELLO] = {s_hello_tick, s_welcome, s_retry, s_seen, s_pause_open, s_ignore,
                         s_ignore},
    [TERN_PEER_LIVE] = {s_live_tick, s_ignore, s_retry, s_seen, s_pause_open, s_ignore, s_ignore},
    [TERN_PEER_PAUSED] = {s_ignore, s_ignore, s_ignore, s_ignore, s_ignore, s_resume, s_ignore},
};

tern_peer_t *tern_peer_new(const tern_peer_timing_t *timing, uint64_t now_ms) {
    tern_peer_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->timing.handshake_ms = timing && timing->handshake_ms ? timing->handshake_ms : 3000;
    self->timing.dead_ms = timing && timing->dead_ms ? timing->dead_ms : 3000;
    self->state = TERN_PEER_IDLE;
    self->retry_at = now_ms;
    return self;
}

void tern_peer_destroy(tern_peer_t **self_p) {
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

unsigned tern_peer_event(tern_peer_t *self, tern_peer_event_t event, uint64_t now_ms) {
    if ((unsigned)event >= TERN_PEER_EVENTS_) {
        return 0;
    }
    return s_table[self->state][event](self, now_ms);
}

tern_peer_state_t tern_peer_state(const tern_peer_t *self) {
    return self->state;
}

const char *tern_peer_state_name(tern_peer_state_t state) {
    switch (state) {
        case TERN_PEER_IDLE:
            return "idle";
        case TERN_PEER_HELLO:
            return "connecting";
        case TERN_PEER_LIVE:
            return "live";
        case TERN_PEER_PAUSED:
            return "paused";
        default:
            return "unknown";
    }
}

uint64_t tern_peer_deadline(const tern_peer_t *self) {
    switch (self->state) {
        case TERN_PEER_IDLE:
            return self->retry_at;
        case TERN_PEER_HELLO:
            return self->hello_at + self->timing.handshake_ms;
        case TERN_PEER_LIVE:
            return self->last_seen + self->timing.dead_ms;
        default:
            return UINT64_MAX;
    }
}

uint32_t tern_peer_failures(const tern_peer_t *self) {
    return self->failures;
}

uint64_t tern_peer_last_seen(const tern_peer_t *self) {
    return self->last_seen;
}
