/*  tern_actor.c - the actors' poll loop (see tern_actor.h).

    Per turn it costs one zmq_poll, one call per readable socket and the two
    hooks; the handlers drain their sockets in batches, so nothing here is
    paid per message.
*/
#include "tern_actor.h"

void tern_loop_init(tern_loop_t *self, zsock_t *pipe, void *actor, tern_loop_prepare_fn *prepare,
                    tern_loop_after_fn *after) {
    memset(self, 0, sizeof *self);
    self->pipe = pipe;
    self->actor = actor;
    self->prepare = prepare;
    self->after = after;
    self->items[0] = (zmq_pollitem_t){zsock_resolve(pipe), 0, ZMQ_POLLIN, 0};
    self->count = 1;
}

int tern_loop_reader(tern_loop_t *self, void *socket, tern_loop_fn *handler, void *arg) {
    if (self->count >= TERN_LOOP_SOCKETS_MAX) {
        return -1;
    }
    self->items[self->count] = (zmq_pollitem_t){socket, 0, ZMQ_POLLIN, 0};
    self->handlers[self->count] = handler;
    self->args[self->count] = arg;
    self->count++;
    return 0;
}

//  True when the pipe says stop ($TERM, or the pipe is gone).
static bool s_pipe_stop(zsock_t *pipe) {
    char *command = zstr_recv(pipe);
    bool stop = !command || streq(command, "$TERM");
    zstr_free(&command);
    return stop;
}

int tern_loop_run(tern_loop_t *self) {
    self->fixed = self->count;
    bool stop = false;
    while (!stop) {
        self->count = self->fixed;
        long timeout = self->prepare ? self->prepare(self, self->actor) : -1;
        int rc = zmq_poll(self->items, (int)self->count, timeout);
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
        if (rc > 0 && (self->items[0].revents & ZMQ_POLLIN)) {
            stop = s_pipe_stop(self->pipe);
            if (stop && self->stop_at_once) {
                break;
            }
        }
        for (size_t i = 1; rc > 0 && i < self->count; i++) {
            if (self->items[i].revents & ZMQ_POLLIN) {
                self->handlers[i](self->actor, self->args[i]);
            }
        }
        if (self->after) {
            self->after(self->actor);
        }
    }
    return 0;
}

long tern_loop_wait_until(uint64_t deadline_ms) {
    uint64_t now = tern_now_ms();
    return deadline_ms > now ? (long)(deadline_ms - now) : 0;
}

void tern_actor_fail(zsock_t *pipe) {
    zsock_signal(pipe, 1);
    char *command = zstr_recv(pipe);
    zstr_free(&command);
}
