/*  tern_client.c - libtern's client object: options, create and destroy, waiting, session queries.

    The entry point of libtern (include/tern.h): tern_client_new checks its
    arguments before any thread runs, so a typo is reported at once, then
    starts the I/O thread (tern_client_io.c) that owns the socket and runs
    the session (tern_client_session.c); tern_client_destroy stops it and
    frees what the application threads and the I/O thread shared. The
    waiting helpers here are how every synchronous call (publish, subscribe,
    admin, flush) sleeps on the client's condition variable until the I/O
    thread finishes its waiter. tern_client_int.h describes the threads and
    lists the other files.
*/
#include "tern_client_int.h"

#include <errno.h>
#include <sys/eventfd.h>

_Thread_local char tl_reason[TERN_REASON_MAX + 1];
_Thread_local uint8_t tl_header[TERN_HEADER_MAX];
_Thread_local uint8_t tl_meta[TERN_HEADER_MAX];
_Thread_local tern_client_t *tl_io_root;
_Thread_local bool tl_session_lost;

const char *tern_last_reason(void) {
    return tl_reason;
}

//  Two steps, so that the macros expand before # turns them into text.
#define S_TEXT(x)    #x
#define S_VERSION(x) S_TEXT(x)

const char *tern_version(int *major, int *minor, int *patch) {
    if (major) {
        *major = TERN_VERSION_MAJOR;
    }
    if (minor) {
        *minor = TERN_VERSION_MINOR;
    }
    if (patch) {
        *patch = TERN_VERSION_PATCH;
    }
    return S_VERSION(TERN_VERSION_MAJOR) "." S_VERSION(TERN_VERSION_MINOR) "." S_VERSION(
        TERN_VERSION_PATCH);
}

//  ---------------------------------------------------------------------------
//  Options

void tern_client_options_init(tern_client_options_t *options) {
    memset(options, 0, sizeof *options);
    options->producer_seq_start = 1;
    options->idempotent = true;
    options->window = TERN_DEFAULT_WINDOW;
    options->publish_block_ms = -1;
    options->heartbeat_ms = TERN_DEFAULT_HEARTBEAT_MS;
    options->connect_timeout_ms = 3000;
    options->backoff_min_ms = 100;
    options->backoff_max_ms = 5000;
    options->timeout_ms = TERN_DEFAULT_TIMEOUT_MS;
}

void tern_pub_options_init(tern_pub_options_t *options) {
    memset(options, 0, sizeof *options);
    options->priority = TERN_PRIORITY_DEFAULT;
}

void tern_sub_options_init(tern_sub_options_t *options) {
    memset(options, 0, sizeof *options);
    options->start = TERN_FROM_FIRST;
}

static bool s_curve_key_ok(const char *key) {
    //  Z85 decodes only valid text; 40 characters make 32 bytes.
    uint8_t bin[32];
    return key && strlen(key) == TERN_CURVE_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

//  ---------------------------------------------------------------------------
//  Waiting

struct timespec cl_abs_deadline(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

bool cl_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, int timeout_ms,
             const struct timespec *deadline) {
    if (timeout_ms < 0) {
        pthread_cond_wait(cond, mutex);
        return true;
    }
    return pthread_cond_timedwait(cond, mutex, deadline) != ETIMEDOUT;
}

bool cl_wait_done(tern_client_t *self, cl_waiter_t *waiter, int timeout_ms,
                  const struct timespec *deadline) {
    while (!waiter->done) {
        if (!cl_wait(&self->cond, &self->mutex, timeout_ms, deadline)) {
            break;
        }
    }
    return waiter->done;
}

int cl_timeout(tern_client_t *self, int timeout_ms) {
    return timeout_ms == 0 ? (int)self->options.timeout_ms : timeout_ms;
}

//  The broker's refusal of our HELLO or of our CURVE key (TERN_EDENIED)
//  while no session is up, else TERN_ETIMEOUT.
tern_err_t cl_timeout_code(tern_client_t *self) {
    return !self->ready && self->hello_error ? self->hello_error : TERN_ETIMEOUT;
}

tern_err_t cl_unavailable(tern_client_t *self) {
    if (self->closing) {
        s_set_reason(NULL);
        return TERN_ECLOSED;
    }
    if (self->refusal) {
        s_set_reason(self->refusal_reason);
        return self->refusal;
    }
    return TERN_OK;
}

void cl_waiter_finish(tern_client_t *self, cl_waiter_t *waiter, tern_err_t code,
                      const char *reason) {
    if (waiter->abandoned) {
        free(waiter->json);
        free(waiter);
        return;
    }
    waiter->done = true;
    waiter->code = code;
    s_copy_str(waiter->reason, sizeof waiter->reason, reason);
    pthread_cond_broadcast(&self->cond);
}

//  ---------------------------------------------------------------------------
//  Client lifecycle

//  Checks the arguments of tern_client_new_array; on failure, the reason is
//  in tl_reason.
static bool s_new_args_ok(const char *const *endpoints, size_t count,
                          const tern_client_options_t *options) {
    if (!endpoints || count == 0) {
        s_set_reason("no endpoint given");
        return false;
    }
    if (count > TERN_MAX_ENDPOINTS) {
        snprintf(tl_reason, sizeof tl_reason, "more than %d endpoints", TERN_MAX_ENDPOINTS);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if (!endpoints[i] || !endpoints[i][0]) {
            s_set_reason("empty endpoint");
            return false;
        }
        if (!cl_endpoint_valid(endpoints[i], tl_reason, sizeof tl_reason)) {
            return false;
        }
    }
    if (options->window == 0 || options->window > 65536) {
        snprintf(tl_reason, sizeof tl_reason, "window %u is not 1..65536", options->window);
        return false;
    }
    if (options->producer_id &&
        !tern_name_valid(options->producer_id, strlen(options->producer_id))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "producer_id", options->producer_id);
        return false;
    }
    if ((options->curve_server_key || options->curve_public_key || options->curve_secret_key) &&
        !(s_curve_key_ok(options->curve_server_key) && s_curve_key_ok(options->curve_public_key) &&
          s_curve_key_ok(options->curve_secret_key))) {
        s_set_reason("CURVE needs all three keys (server, public, secret), each 40 Z85 "
                     "characters");
        return false;
    }
    if (options->name && !tern_name_valid(options->name, strlen(options->name))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "client name", options->name);
        return false; //  HELLO could never be encoded
    }
    return true;
}

//  Copies OPTIONS (checked) into SELF: the strings it only borrows become
//  our own, the zeros mean their defaults. Returns false when out of
//  memory for a copy.
static bool s_take_options(tern_client_t *self, const char *const *endpoints, size_t count,
                           const tern_client_options_t *options) {
    self->options = *options;
    self->options.name = NULL;
    self->options.producer_id = NULL;
    self->options.curve_server_key = NULL;
    self->options.curve_public_key = NULL;
    self->options.curve_secret_key = NULL;
    if (options->curve_server_key) {
        memcpy(self->curve_server, options->curve_server_key, TERN_CURVE_KEY_LEN);
        memcpy(self->curve_public, options->curve_public_key, TERN_CURVE_KEY_LEN);
        memcpy(self->curve_secret, options->curve_secret_key, TERN_CURVE_KEY_LEN);
    }
    if (self->options.heartbeat_ms == 0) {
        self->options.heartbeat_ms = TERN_DEFAULT_HEARTBEAT_MS;
    }
    if (self->options.connect_timeout_ms == 0) {
        self->options.connect_timeout_ms = 3000;
    }
    if (self->options.timeout_ms == 0) {
        self->options.timeout_ms = TERN_DEFAULT_TIMEOUT_MS;
    }
    for (size_t i = 0; i < count; i++) {
        self->endpoints[i] = strdup(endpoints[i]);
        if (!self->endpoints[i]) {
            return false;
        }
        self->endpoint_count++;
    }
    self->rng = tern_rand_seed();
    if (options->producer_id) {
        snprintf(self->producer, sizeof self->producer, "%s", options->producer_id);
    } else {
        snprintf(self->producer, sizeof self->producer, "p-%016llx",
                 (unsigned long long)tern_rand_next(&self->rng));
    }
    //  Keep our own copy: the option string is only borrowed.
    self->options.name = strdup(options->name ? options->name : "libtern");
    self->next_seq = options->producer_seq_start ? options->producer_seq_start : 1;
    return self->options.name != NULL;
}

//  Creates the eventfd, the ZeroMQ context, the lock and the I/O thread.
//  Returns false (errno set) with what it made left for s_client_free.
static bool s_start(tern_client_t *self, uint64_t req_base) {
    atomic_init(&self->max_payload, TERN_PAYLOAD_MAX);
    atomic_init(&self->next_req, req_base);
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        return false;
    }
    //  A node session shares its root's context: one libzmq I/O thread and
    //  reaper per client, not per node (the root outlives its node sessions:
    //  cl_cluster_destroy closes them before s_client_free terms it).
    self->ctx = self->root ? self->root->ctx : zmq_ctx_new();
    if (!self->ctx) {
        return false;
    }
    pthread_mutex_init(&self->mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &attr);
    pthread_cond_init(&self->tick, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&self->thread, NULL, cl_io_thread, self) != 0) {
        pthread_cond_destroy(&self->tick);
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mutex);
        return false;
    }
    return true;
}

//  Frees what s_take_options and s_start made (once the I/O thread, if
//  any, has stopped), and SELF.
static void s_client_free(tern_client_t *self) {
    if (self->ctx && !self->root) {
        zmq_ctx_term(self->ctx); //  a node session's is its root's
    }
    if (self->wake_fd >= 0) {
        close(self->wake_fd);
    }
    for (size_t i = 0; i < self->endpoint_count; i++) {
        free(self->endpoints[i]);
    }
    free((char *)self->options.name);
    free(self);
}

tern_client_t *cl_client_new(const char *const *endpoints, size_t count,
                             const tern_client_options_t *options, tern_client_t *root,
                             uint64_t req_base) {
    tern_client_options_t defaults;
    if (!options) {
        tern_client_options_init(&defaults);
        options = &defaults;
    }
    s_set_reason(NULL);
    if (!s_new_args_ok(endpoints, count, options)) {
        errno = EINVAL;
        return NULL;
    }
    tern_client_t *self = tern_alloc(sizeof *self);
    self->wake_fd = -1;
    //  A node session's mode is known: it only carries what its root routes.
    self->root = root;
    self->mode_known = root != NULL;
    self->io_mode = root ? CL_MODE_SINGLE : CL_MODE_UNKNOWN;
    if (!s_take_options(self, endpoints, count, options) || !s_start(self, req_base)) {
        snprintf(tl_reason, sizeof tl_reason, "cannot start the client: %s", strerror(errno));
        s_client_free(self);
        return NULL;
    }
    return self;
}

void cl_mode_known(tern_client_t *self, cl_mode_t mode) {
    self->mode_known = true;
    if (self->stopped) {
        return; //  the I/O thread is gone (tern_client_destroy): nobody to tell
    }
    cl_mode_op_t *op = tern_alloc(sizeof *op);
    op->op.type = OP_MODE;
    op->mode = mode;
    s_push_op(self, &op->op);
    pthread_cond_broadcast(&self->cond);
}

tern_client_t *tern_client_new_array(const char *const *endpoints, size_t count,
                                     const tern_client_options_t *options) {
    tern_client_t *self = cl_client_new(endpoints, count, options, NULL, 1);
    if (self) {
        //  Asks the first session whether this is a cluster (ADMIN
        //  `cluster`): a single node needs nothing more, and the thread ends.
        self->cluster_started =
            pthread_create(&self->cluster_thread, NULL, cl_cluster_thread, self) == 0;
        if (!self->cluster_started) {
            pthread_mutex_lock(&self->mutex);
            cl_mode_known(self, CL_MODE_SINGLE);
            pthread_mutex_unlock(&self->mutex);
        }
    }
    return self;
}

tern_client_t *tern_client_new(const char *endpoints, const tern_client_options_t *options) {
    if (!endpoints) {
        endpoints = TERN_DEFAULT_ENDPOINT;
    }
    char *copy = strdup(endpoints);
    if (!copy) {
        tern_oom(strlen(endpoints));
    }
    const char *list[TERN_MAX_ENDPOINTS + 1];
    size_t count = 0;
    char *save = NULL;
    for (char *token = strtok_r(copy, ", \t", &save); token && count <= TERN_MAX_ENDPOINTS;
         token = strtok_r(NULL, ", \t", &save)) {
        list[count++] = token; //  one too many makes new_array say so
    }
    tern_client_t *self = tern_client_new_array(list, count, options);
    free(copy);
    return self;
}

void tern_client_destroy(tern_client_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_client_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock(&self->mutex);
    self->closing = true;
    pthread_cond_broadcast(&self->tick);
    cl_op_t *op = tern_alloc(sizeof *op);
    op->type = OP_CLOSE;
    s_push_op(self, op);
    pthread_mutex_unlock(&self->mutex);
    pthread_join(self->thread, NULL);
    //  With the I/O thread gone, the cluster thread's requests fail at once.
    if (self->cluster_started) {
        pthread_join(self->cluster_thread, NULL);
    }
    cl_cluster_destroy(self);
    while (self->subs) {
        tern_subscription_t *sub = self->subs;
        self->subs = sub->next;
        cl_sub_free(sub);
    }
    free(self->cb_out);
    while (self->pub_free) {
        cl_pub_t *pub = self->pub_free;
        self->pub_free = pub->next;
        free(pub);
    }
    pthread_cond_destroy(&self->tick);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mutex);
    s_client_free(self);
}

tern_err_t tern_client_wait_connected(tern_client_t *self, int timeout_ms) {
    tern_err_t rc = s_may_wait(self);
    if (rc != TERN_OK) {
        return rc;
    }
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    s_set_reason(NULL);
    pthread_mutex_lock(&self->mutex);
    while (!self->ready) {
        if (self->stopped || self->closing) {
            rc = TERN_ECLOSED;
            break;
        }
        if (self->refusal) {
            rc = self->refusal;
            s_set_reason(self->refusal_reason);
            break;
        }
        if (!cl_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            rc = self->hello_error ? self->hello_error : TERN_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

bool tern_client_connected(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    bool ready = self->ready;
    pthread_mutex_unlock(&self->mutex);
    return ready;
}

tern_err_t tern_client_session(tern_client_t *self, uint32_t *node_id, char *dc, size_t dc_size,
                               char *endpoint, size_t endpoint_size) {
    pthread_mutex_lock(&self->mutex);
    tern_err_t rc = self->gen ? TERN_OK : TERN_ESTATE;
    if (node_id) {
        *node_id = self->node_id;
    }
    if (dc && dc_size) {
        snprintf(dc, dc_size, "%s", self->dc);
    }
    if (endpoint && endpoint_size) {
        snprintf(endpoint, endpoint_size, "%s", self->endpoints[self->endpoint_index]);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

const char *tern_client_producer(tern_client_t *self) {
    return self->producer;
}

size_t tern_client_inflight(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    size_t inflight = self->inflight;
    pthread_mutex_unlock(&self->mutex);
    return inflight;
}
