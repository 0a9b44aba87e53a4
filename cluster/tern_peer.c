/*  tern_peer.c - the state machine of one outbound replication link.

    Pure logic: no sockets, no clock (the caller passes NOW). The repl actor
    (broker/tern_repl.c) owns the socket and performs the returned actions.

    State x event -> next state, actions. "fail" = the attempt at the
    current endpoint failed: move to the next endpoint (round robin); if the
    round still has endpoints not tried, go to HELLO and CLOSE, CONNECT at
    once; else failures++, IDLE, CLOSE, retry at now + backoff(failures)
    (1 s, 2 s, 5 s, then 5 s). "-" = ignored.

      state  | TICK               | WELCOME    | REFUSED | FRAME | PAUSE  | RESUME  | WAKE
      -------+--------------------+------------+---------+-------+--------+---------+--------
      IDLE   | due: HELLO,CONNECT | -          | -       | -     | PAUSED | -       | HELLO,
             |                    |            |         |       |        |         | CONNECT
      HELLO  | handshake timeout: | LIVE,      | fail    | seen  | PAUSED,| -       | -
             | fail               | STREAM (1) |         |       | CLOSE  |         |
      LIVE   | silent >= dead_ms: | -          | fail    | seen  | PAUSED,| -       | -
             | fail (2)           |            |         |       | CLOSE  |         |
      PAUSED | -                  | -          | -       | -     | -      | HELLO,  | -
             |                    |            |         |       |        | CONNECT |
             |                    |            |         |       |        | (1)     |

    (1) failures = 0 and a new round starts. "seen" records the time of the
    frame (liveness).
    (2) A lost LIVE link starts a new round that counts its endpoint as
    failed: a peer DC with another endpoint is tried there at once (a node
    that moved, or another node of that DC); with one endpoint the retry
    waits 1 s as before.
    WAKE = the peer connected to us inbound, so it is back: an IDLE link
    retries (at its current endpoint) at once instead of waiting out a 5 s
    backoff (failures kept).
*/
#include "tern_peer.h"
#include <stdlib.h>

struct tern_peer_t {
    tern_peer_state_t state;   //  current state
    tern_peer_timing_t timing; //  timeouts
    uint32_t endpoints;        //  endpoints of the peer DC (>= 1)
    uint32_t endpoint;         //  index of the endpoint of the current or next attempt
    uint32_t round_failed;     //  attempts failed in the current round of endpoints
    uint64_t failovers;        //  moves from one endpoint to another (all time)
    uint32_t failures;         //  failed rounds since the last LIVE
    uint64_t retry_at;         //  IDLE: when to CONNECT
    uint64_t hello_at;         //  HELLO: when the HELLO was sent
    uint64_t last_seen;        //  last frame from the peer (unix ms)
};

typedef unsigned(s_handler_fn)(tern_peer_t *self, uint64_t now);

uint64_t tern_peer_backoff_ms(uint32_t failures) {
    //  Capped at 5 s: after a cut heals a link is back within one
    //  attempt (the budget for a moved instance is 8 s); an attempt to a
    //  dead peer every 5 s costs one connect and one HELLO.
    return failures <= 1 ? 1000 : failures == 2 ? 2000 : 5000;
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

//  The attempt at the current endpoint failed: the next endpoint at once
//  while the round lasts, else back off.
static unsigned s_fail(tern_peer_t *self, uint64_t now) {
    self->round_failed++;
    if (self->endpoints > 1) {
        self->endpoint = (self->endpoint + 1) % self->endpoints;
        self->failovers++;
    }
    if (self->round_failed < self->endpoints) {
        return TERN_PEER_A_CLOSE | s_connect(self, now);
    }
    self->round_failed = 0;
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
    return now - self->hello_at >= self->timing.handshake_ms ? s_fail(self, now) : 0;
}

static unsigned s_live_tick(tern_peer_t *self, uint64_t now) {
    return now - self->last_seen >= self->timing.dead_ms ? s_fail(self, now) : 0;
}

static unsigned s_welcome(tern_peer_t *self, uint64_t now) {
    self->state = TERN_PEER_LIVE;
    self->failures = 0;
    self->round_failed = 0;
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
    self->round_failed = 0;
    return s_connect(self, now);
}

//  The table above, as code: [state][event].
static s_handler_fn *const s_table[TERN_PEER_STATES_][TERN_PEER_EVENTS_] = {
    //                 TICK          WELCOME    REFUSED   FRAME     PAUSE         RESUME    WAKE
    [TERN_PEER_IDLE] = {s_idle_tick, s_ignore, s_ignore, s_ignore, s_pause_idle, s_ignore, s_wake},
    [TERN_PEER_HELLO] = {s_hello_tick, s_welcome, s_fail, s_seen, s_pause_open, s_ignore, s_ignore},
    [TERN_PEER_LIVE] = {s_live_tick, s_ignore, s_fail, s_seen, s_pause_open, s_ignore, s_ignore},
    [TERN_PEER_PAUSED] = {s_ignore, s_ignore, s_ignore, s_ignore, s_ignore, s_resume, s_ignore},
};

tern_peer_t *tern_peer_new(const tern_peer_timing_t *timing, uint32_t endpoints, uint64_t now_ms) {
    tern_peer_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->timing.handshake_ms = timing && timing->handshake_ms ? timing->handshake_ms : 3000;
    self->timing.dead_ms = timing && timing->dead_ms ? timing->dead_ms : 3000;
    self->endpoints = endpoints == 0                        ? 1
                      : endpoints > TERN_PEER_ENDPOINTS_MAX ? TERN_PEER_ENDPOINTS_MAX
                                                            : endpoints;
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

uint32_t tern_peer_endpoint(const tern_peer_t *self) {
    return self->endpoint;
}

uint64_t tern_peer_failovers(const tern_peer_t *self) {
    return self->failovers;
}
