/*  tern_client_admin.c - admin requests (tern_admin): ADMIN out, REPLY or ERROR back.

    The caller's thread encodes the ADMIN frame (operation name and
    arguments as metadata) and waits; the I/O thread keeps the request on
    its pending list, sends it in the current session (and again in a new
    one until answered), and completes the waiter with the REPLY's JSON, an
    ERROR, a first-contact refusal, TERN_ECLOSED at shutdown, or a timeout
    once the caller's deadline has passed (docs/client.md, "Administration").
*/
#include "tern_client_int.h"

//  ---------------------------------------------------------------------------
//  The caller's side

//  Encodes ARGS (COUNT pairs) into tl_meta as FRAME's metadata.
static tern_err_t s_admin_args(const tern_header_t *args, size_t count, tern_frame_t *frame) {
    tern_kv_t kv[TERN_META_MAX_ENTRIES];
    for (size_t i = 0; i < count; i++) {
        if (!args[i].key || !args[i].value) {
            return TERN_EINVAL;
        }
        kv[i] = (tern_kv_t){args[i].key, strlen(args[i].key), args[i].value, strlen(args[i].value)};
    }
    size_t meta_len;
    tern_err_t rc = tern_meta_encode(kv, count, tl_meta, sizeof tl_meta, &meta_len);
    if (rc == TERN_OK) {
        frame->meta = tl_meta;
        frame->meta_size = meta_len;
        frame->meta_count = (uint32_t)count;
        frame->fields |= TERN_F_META;
    }
    return rc;
}

static void s_admin_free(cl_admin_t *admin) {
    free(admin->hdr);
    free(admin);
}

//  A new request for operation OP_NAME with ARGS, its header encoded, with
//  a waiter and a deadline TIMEOUT_MS (< 0: none) from now, in *ADMIN_P.
static tern_err_t s_admin_new(tern_client_t *self, const char *op_name, const tern_header_t *args,
                              size_t count, int timeout_ms, cl_admin_t **admin_p) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ADMIN);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    snprintf(frame.name, sizeof frame.name, "%s", op_name);
    frame.fields |= TERN_F_NAME;
    tern_err_t rc = count ? s_admin_args(args, count, &frame) : TERN_OK;
    size_t len = 0;
    if (rc == TERN_OK) {
        rc = tern_frame_encode(&frame, tl_header, sizeof tl_header, &len);
    }
    if (rc != TERN_OK) {
        return rc;
    }
    cl_admin_t *admin = tern_alloc(sizeof *admin);
    admin->op.type = OP_ADMIN;
    admin->req_id = frame.req_id;
    admin->hdr = tern_alloc(len);
    memcpy(admin->hdr, tl_header, len);
    admin->hdr_len = len;
    admin->waiter = tern_alloc(sizeof *admin->waiter);
    admin->deadline = timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms;
    *admin_p = admin;
    return TERN_OK;
}

tern_err_t tern_admin(tern_client_t *self, const char *op_name, const tern_header_t *args,
                      size_t count, char **json_out, int timeout_ms) {
    if (json_out) {
        *json_out = NULL;
    }
    s_set_reason(NULL);
    if (!self || !op_name || !json_out || (count && !args) || count > TERN_META_MAX_ENTRIES) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    if (!tern_name_valid(op_name, strlen(op_name))) {
        s_set_reason(tern_reason_name(tl_reason, sizeof tl_reason, "admin operation", op_name));
        return TERN_ENAME;
    }
    timeout_ms = cl_timeout(self, timeout_ms);
    cl_admin_t *admin = NULL;
    tern_err_t rc = s_admin_new(self, op_name, args, count, timeout_ms, &admin);
    if (rc != TERN_OK) {
        return rc;
    }
    cl_waiter_t *waiter = admin->waiter;
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&self->mutex);
    rc = cl_unavailable(self);
    if (rc != TERN_OK) {
        pthread_mutex_unlock(&self->mutex);
        s_admin_free(admin);
        free(waiter);
        return rc;
    }
    s_push_op(self, &admin->op); //  the I/O thread owns it now
    if (cl_wait_done(self, waiter, timeout_ms, &deadline)) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
        *json_out = waiter->json;
        free(waiter);
    } else {
        waiter->abandoned = true;
        rc = cl_timeout_code(self);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

//  ---------------------------------------------------------------------------
//  I/O thread

void cl_send_admin(tern_client_t *self, cl_admin_t *admin) {
    if (self->state != S_READY || admin->sent_gen == self->gen) {
        return;
    }
    if (s_send(self, admin->hdr, admin->hdr_len, NULL, 0, false)) {
        admin->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

static cl_admin_t *s_admin_take(tern_client_t *self, uint64_t req_id) {
    for (cl_admin_t **p = &self->admins; *p; p = &(*p)->next) {
        if ((*p)->req_id == req_id) {
            cl_admin_t *admin = *p;
            *p = admin->next;
            return admin;
        }
    }
    return NULL;
}

void cl_handle_reply(tern_client_t *self, const tern_frame_t *frame) {
    cl_admin_t *admin = s_admin_take(self, frame->req_id);
    if (!admin) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    if (!admin->waiter->abandoned) {
        char *json = tern_alloc(frame->payload_size + 1);
        if (frame->payload_size) {
            memcpy(json, frame->payload, frame->payload_size);
        }
        admin->waiter->json = json;
    }
    cl_waiter_finish(self, admin->waiter, TERN_OK, NULL);
    pthread_mutex_unlock(&self->mutex);
    s_admin_free(admin);
}

bool cl_handle_admin_error(tern_client_t *self, const tern_frame_t *frame) {
    cl_admin_t *admin = s_admin_take(self, frame->req_id);
    if (!admin) {
        return false;
    }
    pthread_mutex_lock(&self->mutex);
    cl_waiter_finish(self, admin->waiter, (tern_err_t)frame->code, frame->reason);
    pthread_mutex_unlock(&self->mutex);
    s_admin_free(admin);
    return true;
}

void cl_admins_fail(tern_client_t *self, tern_err_t code, const char *reason) {
    while (self->admins) {
        cl_admin_t *admin = self->admins;
        self->admins = admin->next;
        cl_waiter_finish(self, admin->waiter, code, reason);
        s_admin_free(admin);
    }
}

void cl_admins_expire(tern_client_t *self, int64_t now) {
    for (cl_admin_t **p = &self->admins; *p;) {
        cl_admin_t *admin = *p;
        if (now > admin->deadline) {
            *p = admin->next;
            pthread_mutex_lock(&self->mutex);
            cl_waiter_finish(self, admin->waiter, cl_timeout_code(self), NULL);
            pthread_mutex_unlock(&self->mutex);
            s_admin_free(admin);
        } else {
            p = &admin->next;
        }
    }
}
