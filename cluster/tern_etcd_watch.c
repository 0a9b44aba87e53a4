/*  tern_etcd_watch.c - one etcd watch on a key prefix, read on its own thread.

    The gateway's /v3/watch is a streaming HTTP response: one JSON object per
    line ({"result": {...}} or {"error": {...}}) for as long as the request
    lives. Reading it blocks, and the actor that wants the events must not
    block, so the stream is read by a thread of this class, which hands each
    event over as an owned pointer written to a pipe: the reader polls the
    pipe's read end like any socket (zloop_poller, zmq_poll, poll) and takes
    the pointers off it. No lock: the pipe is the only thing both threads
    touch, besides the stop flag.

    The thread's states:

      state     | stream created      | events              | stream ends / error
      ----------+---------------------+---------------------+---------------------------
      CONNECT   | LIVE (UP if DOWN    | -                   | DOWN once, next member,
                | was sent)           |                     | backoff, CONNECT
      LIVE      | -                   | deliver; resume     | as above
                |                     | point = rev + 1     |
      (compacted: COMPACTED, then the thread ends; stop: the thread ends)

    The thread resumes each new stream at the revision after the last event
    it delivered, so a failover loses and repeats nothing. Backoff between
    attempts: 100 ms doubling to 2 s, back to 100 ms once a stream is
    created. A destroy wakes the thread out of curl's wait at once
    (curl_multi_wakeup).
*/
#include "tern_alloc.h"
#include "tern_etcd.h"
#include "tern_etcd_json.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 2000
#define S_LINE_MAX       (64u << 20) //  one watch response past this breaks the stream

struct tern_etcd_watch_t {
    char *urls[TERN_ETCD_ENDPOINTS_MAX]; //  member URLs, owned
    size_t count;                        //  number of URLs
    size_t current;                      //  member of the current stream (thread)
    char *prefix;                        //  watched prefix, owned
    int64_t next_revision;               //  where the next stream starts (thread)
    int pipe_r;                          //  read end: the reader's fd (non-blocking)
    int pipe_w;                          //  write end: the thread's (blocking)
    CURLM *multi;                        //  the thread's transfer, wakeable by destroy
    struct curl_slist *headers;          //  request headers, owned
    pthread_t thread;                    //  the reading thread
    bool started;                        //  thread was created
    atomic_bool stop;                    //  destroy asks the thread to end
    atomic_bool done;                    //  the thread has ended
    char *line;                          //  partial response line (thread), owned
    size_t line_size;                    //  its length
    size_t line_cap;                     //  its capacity
    bool down;                           //  DOWN was delivered and UP not yet (thread)
    bool created;                        //  the current stream was created (thread)
    bool finished;                       //  COMPACTED delivered: no more streams (thread)
    char reason[512];                    //  why the current stream ended (thread)
};

void tern_etcd_event_destroy(tern_etcd_event_t **event_p) {
    if (event_p == NULL || *event_p == NULL) {
        return;
    }
    tern_etcd_event_t *event = *event_p;
    tern_etcd_kv_clear(&event->kv);
    free(event->reason);
    free(event);
    *event_p = NULL;
}

//  Hands EVENT (owned) to the reader through the pipe.
static void s_push(tern_etcd_watch_t *self, tern_etcd_event_t *event) {
    size_t off = 0;
    while (off < sizeof event) {
        //  A pointer is far below PIPE_BUF: the write is atomic and whole.
        ssize_t n = write(self->pipe_w, (char *)&event + off, sizeof event - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            tern_etcd_event_destroy(&event); //  reader gone: only on destroy
            return;
        }
        off += (size_t)n;
    }
}

static void s_push_state(tern_etcd_watch_t *self, tern_etcd_event_type_t type, int64_t revision,
                         const char *reason) {
    tern_etcd_event_t *event = tern_alloc(sizeof *event);
    event->type = type;
    event->kv.key = tern_strdup("");
    event->kv.value = tern_strdup("");
    event->kv.mod_revision = revision;
    event->reason = reason ? tern_strdup(reason) : NULL;
    s_push(self, event);
}

//  Delivers the events of one watch response; false if one is malformed.
static bool s_events(tern_etcd_watch_t *self, const json_t *events) {
    for (size_t i = 0; i < json_array_size(events); i++) {
        const json_t *item = json_array_get(events, i);
        const char *type = json_string_value(json_object_get(item, "type"));
        tern_etcd_event_t *event = tern_alloc(sizeof *event);
        event->type = type && strcmp(type, "DELETE") == 0 ? TERN_ETCD_EV_DELETE : TERN_ETCD_EV_PUT;
        bool known = type == NULL || strcmp(type, "PUT") == 0 || strcmp(type, "DELETE") == 0;
        if (!known || !tern_etcd_kv_parse(json_object_get(item, "kv"), &event->kv)) {
            tern_etcd_event_destroy(&event);
            snprintf(self->reason, sizeof self->reason, "watch event %zu is malformed", i);
            return false;
        }
        self->next_revision = event->kv.mod_revision + 1;
        s_push(self, event);
    }
    return true;
}

//  Handles one line of the stream; false ends the stream (REASON says why).
static bool s_response(tern_etcd_watch_t *self, const char *text, size_t size) {
    json_t *msg = json_loadb(text, size, 0, NULL);
    const json_t *result = json_object_get(msg, "result");
    const json_t *error = json_object_get(msg, "error");
    const json_t *events = json_object_get(result, "events");
    int64_t compacted = 0;
    bool ok = false;
    if (error || !json_is_object(result)) {
        const char *message = json_string_value(json_object_get(error, "message"));
        snprintf(self->reason, sizeof self->reason, "watch stream: %s",
                 message ? message : "not a watch response");
    } else if (json_is_true(json_object_get(result, "canceled"))) {
        const char *why = json_string_value(json_object_get(result, "cancel_reason"));
        if (tern_etcd_json_i64(result, "compact_revision", &compacted) && compacted > 0) {
            s_push_state(self, TERN_ETCD_EV_COMPACTED, compacted, NULL);
            self->finished = true;
        }
        snprintf(self->reason, sizeof self->reason, "watch canceled by etcd%s%s", why ? ": " : "",
                 why ? why : "");
    } else if (events && !json_is_array(events)) {
        snprintf(self->reason, sizeof self->reason, "watch events are not a list");
    } else {
        ok = s_events(self, events);
        if (ok && json_is_true(json_object_get(result, "created")) && !self->created) {
            self->created = true;
            if (self->down) {
                self->down = false;
                s_push_state(self, TERN_ETCD_EV_UP, self->next_revision, NULL);
            }
        }
    }
    json_decref(msg);
    return ok;
}

//  curl's write callback: splits the stream into lines; 0 aborts it.
static size_t s_on_data(char *data, size_t size, size_t nmemb, void *arg) {
    tern_etcd_watch_t *self = arg;
    size_t bytes = size * nmemb;
    if (self->line_size + bytes > S_LINE_MAX) {
        snprintf(self->reason, sizeof self->reason, "watch response over %u bytes", S_LINE_MAX);
        return 0;
    }
    if (self->line_size + bytes + 1 > self->line_cap) {
        self->line_cap = (self->line_size + bytes + 1) * 2;
        self->line = tern_realloc(self->line, self->line_cap);
    }
    memcpy(self->line + self->line_size, data, bytes);
    self->line_size += bytes;
    char *start = self->line;
    char *nl;
    while ((nl = memchr(start, '\n', self->line_size - (size_t)(start - self->line))) != NULL) {
        if (nl > start && !s_response(self, start, (size_t)(nl - start))) {
            return 0;
        }
        start = nl + 1;
    }
    self->line_size -= (size_t)(start - self->line);
    memmove(self->line, start, self->line_size);
    return atomic_load(&self->stop) ? 0 : bytes;
}

//  The create_request of a stream that starts at NEXT_REVISION.
static char *s_create_request(tern_etcd_watch_t *self) {
    //  An empty prefix is the whole keyspace: from "\0" to "\0".
    bool all = *self->prefix == '\0';
    char *key = tern_etcd_b64(all ? "" : self->prefix, all ? 1 : strlen(self->prefix));
    char *end = tern_etcd_prefix_end(self->prefix);
    json_t *create = json_object();
    json_object_set_new(create, "key", json_string(key));
    json_object_set_new(create, "range_end", json_string(end));
    json_object_set_new(create, "start_revision",
                        json_sprintf("%lld", (long long)self->next_revision));
    json_t *request = json_object();
    json_object_set_new(request, "create_request", create);
    char *body = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    free(key);
    free(end);
    if (body == NULL) {
        tern_oom(0);
    }
    return body;
}

//  Runs one stream on the current member until it ends, fails or STOP.
static void s_stream(tern_etcd_watch_t *self) {
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", self->urls[self->current]);
    char *body = s_create_request(self);
    CURL *easy = curl_easy_init();
    if (easy == NULL) {
        tern_oom(0);
    }
    self->line_size = 0;
    self->created = false;
    self->reason[0] = '\0';
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, self->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, self);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    //  A quiet watch sends nothing: TCP keepalive probes notice a member
    //  whose host is gone (idle 2 s, then a probe a second; ~11 s in all).
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 2L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 1L);
    curl_multi_add_handle(self->multi, easy);
    int running = 1;
    while (running && !atomic_load(&self->stop)) {
        curl_multi_perform(self->multi, &running);
        if (running) {
            curl_multi_poll(self->multi, NULL, 0, 1000, NULL);
        }
    }
    int left = 0;
    CURLMsg *msg = curl_multi_info_read(self->multi, &left);
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (self->reason[0] == '\0' && msg && msg->msg == CURLMSG_DONE) {
        snprintf(self->reason, sizeof self->reason, "%s",
                 msg->data.result != CURLE_OK ? curl_easy_strerror(msg->data.result)
                 : status != 200              ? "HTTP error"
                                              : "stream ended");
    }
    curl_multi_remove_handle(self->multi, easy);
    curl_easy_cleanup(easy);
    free(body);
}

static void *s_thread(void *arg) {
    tern_etcd_watch_t *self = arg;
    int backoff = S_BACKOFF_MIN_MS;
    while (!atomic_load(&self->stop) && !self->finished) {
        s_stream(self);
        if (atomic_load(&self->stop) || self->finished) {
            break;
        }
        backoff = self->created ? S_BACKOFF_MIN_MS : backoff;
        if (!self->down) {
            char why[700];
            snprintf(why, sizeof why, "etcd %s: %s", self->urls[self->current], self->reason);
            s_push_state(self, TERN_ETCD_EV_DOWN, self->next_revision, why);
            self->down = true;
        }
        self->current = (self->current + 1) % self->count;
        curl_multi_poll(self->multi, NULL, 0, backoff, NULL); //  destroy wakes it
        backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
    }
    atomic_store(&self->done, true);
    return NULL;
}

//  ---------------------------------------------------------------------------
//  The reader's side

tern_etcd_watch_t *tern_etcd_watch_new(const char *endpoints, const char *prefix,
                                       int64_t from_revision) {
    tern_etcd_global_init();
    tern_etcd_watch_t *self = tern_alloc(sizeof *self);
    int fds[2] = {-1, -1};
    self->pipe_r = -1;
    self->pipe_w = -1;
    self->count = tern_etcd_endpoints_parse(endpoints, self->urls);
    if (self->count == 0 || prefix == NULL || from_revision <= 0 || pipe2(fds, O_CLOEXEC) != 0) {
        goto fail;
    }
    self->pipe_r = fds[0];
    self->pipe_w = fds[1];
    fcntl(self->pipe_r, F_SETFL, O_NONBLOCK);
    self->prefix = tern_strdup(prefix);
    self->next_revision = from_revision;
    self->multi = curl_multi_init();
    self->headers = curl_slist_append(NULL, "Content-Type: application/json");
    self->headers = curl_slist_append(self->headers, TERN_ETCD_REQUIRE_LEADER);
    if (self->multi == NULL || self->headers == NULL) {
        tern_oom(0);
    }
    if (pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        goto fail;
    }
    self->started = true;
    return self;
fail:
    tern_etcd_watch_destroy(&self);
    return NULL;
}

//  Frees every event waiting in the pipe.
static void s_drain(tern_etcd_watch_t *self) {
    tern_etcd_event_t *event;
    while ((event = tern_etcd_watch_next(self)) != NULL) {
        tern_etcd_event_destroy(&event);
    }
}

void tern_etcd_watch_destroy(tern_etcd_watch_t **self_p) {
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    tern_etcd_watch_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, true);
        curl_multi_wakeup(self->multi);
        //  The thread may be blocked writing to a full pipe: keep it empty
        //  until the thread has ended.
        while (!atomic_load(&self->done)) {
            s_drain(self);
            struct pollfd pfd = {.fd = self->pipe_r, .events = POLLIN};
            poll(&pfd, 1, 10);
        }
        pthread_join(self->thread, NULL);
    }
    if (self->pipe_r >= 0) {
        s_drain(self);
        close(self->pipe_r);
        close(self->pipe_w);
    }
    if (self->multi) {
        curl_multi_cleanup(self->multi);
    }
    curl_slist_free_all(self->headers);
    for (size_t i = 0; i < self->count; i++) {
        free(self->urls[i]);
    }
    free(self->prefix);
    free(self->line);
    free(self);
    *self_p = NULL;
}

int tern_etcd_watch_fd(tern_etcd_watch_t *self) {
    return self->pipe_r;
}

tern_etcd_event_t *tern_etcd_watch_next(tern_etcd_watch_t *self) {
    tern_etcd_event_t *event = NULL;
    size_t off = 0;
    while (off < sizeof event) {
        ssize_t n = read(self->pipe_r, (char *)&event + off, sizeof event - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (off == 0) {
            return NULL; //  nothing waits (EAGAIN)
        }
        //  Pointers are written whole (atomic pipe writes), so a partial
        //  read cannot stay partial: wait for the rest.
    }
    return event;
}

tern_etcd_event_t *tern_etcd_watch_wait(tern_etcd_watch_t *self, int timeout_ms) {
    struct pollfd pfd = {.fd = self->pipe_r, .events = POLLIN};
    int rc;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? tern_etcd_watch_next(self) : NULL;
}
