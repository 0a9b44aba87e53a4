/*  tern_etcd.c - a small synchronous etcd v3 client over the JSON gateway.

    One libcurl easy handle (it keeps the HTTP connection alive between
    calls) and one reply buffer. Each call is one JSON POST, tried on the
    members in turn from the one that last worked until one answers or the
    call's deadline passes. Whether the next member may be tried depends on
    what the failed attempt can have done:

      attempt ended with            | request applied? | next member
      ------------------------------+------------------+-----------------
      connect failed / timed out    | no               | yes
      HTTP error "no leader"        | no               | yes
      sent, then timeout or silence | unknown          | idempotent only
      other HTTP error from etcd    | no (refused)     | no: its answer
      a reply                       | yes              | no: done

    Idempotent calls (get, put, delete, keepalive, timetolive, revoke) may be applied
    twice without harm; txn and lease grant may not (a resent CAS would fail
    against its own write, a resent grant would leak a lease), so they return
    TERN_ETIMEOUT with "outcome unknown" instead. The first attempts share
    the deadline with the later ones (remaining / members left), so one
    silent member cannot use all of it. When a pass over the members ends
    without an answer and one of them said "no leader" (an election is
    under way), or the call is idempotent and some member was reachable,
    the call pauses 100 ms and makes another pass, until the deadline, so a
    call rides through a leader change. Only when every member refused the
    connection does it give up at once (TERN_ECLOSED).
*/
#include "tern_etcd.h"
#include "tern_alloc.h"
#include "tern_etcd_json.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_REPLY_MAX         (256u << 20) //  a reply past this is refused, not buffered
#define S_ELECTION_PAUSE_MS 100          //  between passes while members have no leader

struct tern_etcd_t {
    char *urls[TERN_ETCD_ENDPOINTS_MAX]; //  member URLs, owned
    size_t count;                        //  number of URLs
    size_t current;                      //  index calls start from
    int timeout_ms;                      //  deadline of one call
    CURL *curl;                          //  reused easy handle (keeps the connection)
    struct curl_slist *headers;          //  Content-Type and require-leader, owned
    char *reply;                         //  reply body being received, owned
    size_t reply_size;                   //  its length
    size_t reply_cap;                    //  its capacity
    bool reply_over;                     //  the reply passed S_REPLY_MAX
    char reason[1024];                   //  why the last call failed, "" after success
};

//  What one attempt on one member can have done (the table above).
typedef enum {
    S_ANSWERED = 0, //  the member answered (a reply or an etcd error)
    S_UNSENT = 1,   //  certainly not applied: another member may be tried
    S_UNKNOWN = 2,  //  sent, then no answer: maybe applied
} s_outcome_t;

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_reason_add(tern_etcd_t *self, const char *fmt, ...) {
    size_t used = strlen(self->reason);
    if (used + 1 >= sizeof self->reason) {
        return;
    }
    if (used > 0) {
        snprintf(self->reason + used, sizeof self->reason - used, "; ");
        used = strlen(self->reason);
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(self->reason + used, sizeof self->reason - used, fmt, args);
    va_end(args);
}

static size_t s_on_data(char *data, size_t size, size_t nmemb, void *arg) {
    tern_etcd_t *self = arg;
    size_t bytes = size * nmemb;
    if (self->reply_size + bytes > S_REPLY_MAX) {
        self->reply_over = true;
        return 0; //  aborts the transfer (CURLE_WRITE_ERROR)
    }
    if (self->reply_size + bytes + 1 > self->reply_cap) {
        self->reply_cap = (self->reply_size + bytes + 1) * 2;
        self->reply = tern_realloc(self->reply, self->reply_cap);
    }
    memcpy(self->reply + self->reply_size, data, bytes);
    self->reply_size += bytes;
    self->reply[self->reply_size] = '\0';
    return bytes;
}

void tern_etcd_set_timeout(tern_etcd_t *self, int timeout_ms) {
    if (timeout_ms > 0) {
        self->timeout_ms = timeout_ms;
    }
}

tern_etcd_t *tern_etcd_new(const char *endpoints, int timeout_ms) {
    tern_etcd_global_init();
    tern_etcd_t *self = tern_alloc(sizeof *self);
    self->count = tern_etcd_endpoints_parse(endpoints, self->urls);
    self->timeout_ms = timeout_ms;
    self->curl = curl_easy_init();
    if (self->count == 0 || timeout_ms <= 0 || self->curl == NULL) {
        tern_etcd_destroy(&self);
        return NULL;
    }
    self->headers = curl_slist_append(NULL, "Content-Type: application/json");
    self->headers = curl_slist_append(self->headers, TERN_ETCD_REQUIRE_LEADER);
    //  No "Expect: 100-continue" round trip before bodies over 1 KiB.
    self->headers = curl_slist_append(self->headers, "Expect:");
    if (self->headers == NULL) {
        tern_oom(0);
    }
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, self->headers);
    curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, self);
    curl_easy_setopt(self->curl, CURLOPT_NOSIGNAL, 1L); //  safe in threads
    curl_easy_setopt(self->curl, CURLOPT_TCP_NODELAY, 1L);
    return self;
}

void tern_etcd_destroy(tern_etcd_t **self_p) {
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    tern_etcd_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free(self->urls[i]);
    }
    if (self->curl) {
        curl_easy_cleanup(self->curl);
    }
    curl_slist_free_all(self->headers);
    free(self->reply);
    free(self);
    *self_p = NULL;
}

const char *tern_etcd_reason(tern_etcd_t *self) {
    return self->reason;
}

const char *tern_etcd_endpoint(tern_etcd_t *self) {
    return self->urls[self->current];
}

void tern_etcd_kvs_destroy(tern_etcd_kvs_t **kvs_p) {
    if (kvs_p == NULL || *kvs_p == NULL) {
        return;
    }
    tern_etcd_kvs_t *kvs = *kvs_p;
    for (size_t i = 0; i < kvs->count; i++) {
        tern_etcd_kv_clear(&kvs->kvs[i]);
    }
    free(kvs->kvs);
    free(kvs);
    *kvs_p = NULL;
}

//  ---------------------------------------------------------------------------
//  One request

//  An HTTP error reply from etcd: {"error": ..., "message": ..., "code": N}.
static s_outcome_t s_http_error(tern_etcd_t *self, const char *url, long status, tern_err_t *err) {
    json_t *body = json_loadb(self->reply ? self->reply : "", self->reply_size, 0, NULL);
    int64_t code = 0;
    const char *message = json_string_value(json_object_get(body, "message"));
    s_outcome_t outcome = S_ANSWERED;
    if (message && tern_etcd_json_i64(body, "code", &code) && code > 0) {
        *err = tern_etcd_grpc_err(code, message);
        s_reason_add(self, "etcd %s: %s", url, message);
        if (code == 14 && strstr(message, "no leader")) {
            outcome = S_UNSENT; //  refused before the raft log: nothing applied
        } else if (code == 14) {
            outcome = S_UNKNOWN; //  e.g. "request timed out": maybe applied
        }
    } else {
        //  Not etcd's JSON: a proxy, or not etcd at all.
        *err = status >= 500 ? TERN_EBUSY : TERN_EMALFORMED;
        s_reason_add(self, "etcd %s: HTTP %ld without an etcd error", url, status);
        outcome = status >= 500 ? S_UNKNOWN : S_ANSWERED;
    }
    json_decref(body);
    return outcome;
}

//  POSTs BODY to URL + PATH within ATTEMPT_MS; on an answer parses it into
//  *REPLY_P (TERN_OK) or maps etcd's error into *ERR.
static s_outcome_t s_attempt(tern_etcd_t *self, const char *url, const char *path, const char *body,
                             int64_t connect_ms, int64_t attempt_ms, json_t **reply_p,
                             tern_err_t *err) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", url, path);
    self->reply_size = 0;
    self->reply_over = false;
    curl_easy_setopt(self->curl, CURLOPT_URL, full);
    curl_easy_setopt(self->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(self->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(connect_ms > 0 ? connect_ms : 1));
    curl_easy_setopt(self->curl, CURLOPT_TIMEOUT_MS, (long)(attempt_ms > 0 ? attempt_ms : 1));
    CURLcode rc = curl_easy_perform(self->curl);
    if (rc != CURLE_OK) {
        curl_off_t sent_at = 0;
        curl_easy_getinfo(self->curl, CURLINFO_PRETRANSFER_TIME_T, &sent_at);
        bool unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                      (rc == CURLE_OPERATION_TIMEDOUT && sent_at == 0);
        *err = rc == CURLE_OPERATION_TIMEDOUT ? TERN_ETIMEOUT
               : self->reply_over             ? TERN_ETOOBIG
               : unsent                       ? TERN_ECLOSED
                                              : TERN_EBUSY;
        s_reason_add(self, "etcd %s: %s", url,
                     self->reply_over ? "reply too big" : curl_easy_strerror(rc));
        return unsent ? S_UNSENT : S_UNKNOWN;
    }
    long status = 0;
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        return s_http_error(self, url, status, err);
    }
    json_error_t jerr;
    //  A stream's reply may hold more than one object: the first is ours.
    *reply_p =
        json_loadb(self->reply ? self->reply : "", self->reply_size, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!json_is_object(*reply_p)) {
        json_decref(*reply_p);
        *reply_p = NULL;
        *err = TERN_EMALFORMED;
        s_reason_add(self, "etcd %s: reply is not a JSON object (%s)", url, jerr.text);
        return S_ANSWERED;
    }
    *err = TERN_OK;
    return S_ANSWERED;
}

//  A request being sent: what s_call's rounds share.
typedef struct {
    const char *path; //  gateway path, e.g. "/v3/kv/put"
    const char *body; //  its JSON body
    bool idempotent;  //  may be applied twice without harm
    int64_t deadline; //  monotonic ms at which the call gives up
} s_request_t;

//  One pass over the members from the current one, until one answers.
//  *ELECTING is set when a member said it has no leader. Returns the
//  outcome that ended the pass.
static s_outcome_t s_round(tern_etcd_t *self, const s_request_t *req, json_t **reply_p,
                           tern_err_t *err, bool *electing) {
    size_t first = self->current;
    s_outcome_t outcome = S_UNSENT;
    for (size_t tried = 0; tried < self->count; tried++) {
        size_t index = (first + tried) % self->count;
        int64_t remaining = req->deadline - s_now_ms();
        if (remaining <= 0) {
            *err = TERN_ETIMEOUT;
            s_reason_add(self, "no time left for the next member");
            return S_UNKNOWN;
        }
        int64_t share = remaining / (int64_t)(self->count - tried);
        outcome = s_attempt(self, self->urls[index], req->path, req->body, share,
                            req->idempotent ? share : remaining, reply_p, err);
        if (outcome == S_ANSWERED) {
            self->current = index;
            return outcome;
        }
        *electing |= outcome == S_UNSENT && *err == TERN_EBUSY;
        //  The next attempt, and the next call, start past a member that
        //  failed us.
        self->current = (index + 1) % self->count;
        if (outcome == S_UNKNOWN && !req->idempotent) {
            *err = TERN_ETIMEOUT;
            s_reason_add(self, "outcome unknown: not resent to another member");
            return outcome;
        }
    }
    return outcome;
}

//  Sends REQUEST (consumed) to PATH on the members in turn; on TERN_OK
//  *REPLY_P gets the parsed reply (caller decrefs). While members answer
//  "no leader" (an election under way, a second or two), or an idempotent
//  request met a reachable member in trouble, and time is left, passes are
//  repeated: the call rides through a leader election.
static tern_err_t s_call(tern_etcd_t *self, const char *path, json_t *request, bool idempotent,
                         json_t **reply_p) {
    char *body = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    if (body == NULL) {
        tern_oom(0);
    }
    s_request_t req = {path, body, idempotent, s_now_ms() + self->timeout_ms};
    *reply_p = NULL;
    tern_err_t err = TERN_ETIMEOUT;
    while (true) {
        self->reason[0] = '\0'; //  the reason tells of the last pass
        bool electing = false;
        s_outcome_t outcome = s_round(self, &req, reply_p, &err, &electing);
        bool final = outcome == S_ANSWERED || (outcome == S_UNKNOWN && !idempotent);
        //  etcd in trouble (an election, "request timed out") rather than
        //  gone: another pass may succeed.
        bool again = electing || (idempotent && err != TERN_ECLOSED);
        if (final || !again || s_now_ms() + S_ELECTION_PAUSE_MS >= req.deadline) {
            break;
        }
        struct timespec pause = {0, S_ELECTION_PAUSE_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    free(body);
    if (err == TERN_OK) {
        self->reason[0] = '\0';
    }
    return err;
}

//  Reads REPLY's header.revision into *REVISION_P (if not NULL).
static tern_err_t s_revision(tern_etcd_t *self, const json_t *reply, int64_t *revision_p) {
    int64_t revision = 0;
    if (!tern_etcd_json_i64(json_object_get(reply, "header"), "revision", &revision) ||
        revision <= 0) {
        s_reason_add(self, "etcd %s: reply without a header revision", tern_etcd_endpoint(self));
        return TERN_EMALFORMED;
    }
    if (revision_p) {
        *revision_p = revision;
    }
    return TERN_OK;
}

//  Sets OBJ's member NAME to DATA (SIZE bytes) in base64.
static void s_set_bytes(json_t *obj, const char *name, const void *data, size_t size) {
    char *b64 = tern_etcd_b64(data, size);
    json_object_set_new(obj, name, json_string(b64));
    free(b64);
}

//  Sets OBJ's int64 member NAME as the gateway writes them (a string).
static void s_set_i64(json_t *obj, const char *name, int64_t value) {
    json_object_set_new(obj, name, json_sprintf("%lld", (long long)value));
}

//  The JSON of KEY (base64), with the range_end of PREFIX when asked; an
//  empty prefix is the whole keyspace ("\0" to "\0").
static void s_set_key(json_t *request, const char *key, bool prefix) {
    bool all = prefix && *key == '\0';
    s_set_bytes(request, "key", all ? "" : key, all ? 1 : strlen(key));
    if (prefix) {
        char *end = tern_etcd_prefix_end(key);
        json_object_set_new(request, "range_end", json_string(end));
        free(end);
    }
}

//  ---------------------------------------------------------------------------
//  Keys

//  Copies the kvs array of a range reply into KVS; false on a bad shape.
static bool s_parse_kvs(const json_t *reply, tern_etcd_kvs_t *kvs) {
    const json_t *array = json_object_get(reply, "kvs");
    if (array == NULL) {
        return true; //  no key matched (protobuf leaves empty lists out)
    }
    if (!json_is_array(array)) {
        return false;
    }
    kvs->kvs = tern_alloc(sizeof *kvs->kvs * (json_array_size(array) + 1));
    for (size_t i = 0; i < json_array_size(array); i++) {
        if (!tern_etcd_kv_parse(json_array_get(array, i), &kvs->kvs[kvs->count])) {
            return false;
        }
        kvs->count++;
    }
    return true;
}

tern_err_t tern_etcd_get(tern_etcd_t *self, const char *key, bool prefix, tern_etcd_kvs_t **kvs_p) {
    *kvs_p = NULL;
    if (key == NULL || (*key == '\0' && !prefix)) {
        snprintf(self->reason, sizeof self->reason, "get: empty key");
        return TERN_EINVAL;
    }
    json_t *request = json_object();
    s_set_key(request, key, prefix);
    json_t *reply = NULL;
    tern_err_t err = s_call(self, "/v3/kv/range", request, true, &reply);
    if (err != TERN_OK) {
        return err;
    }
    tern_etcd_kvs_t *kvs = tern_alloc(sizeof *kvs);
    err = s_revision(self, reply, &kvs->revision);
    if (err == TERN_OK && !s_parse_kvs(reply, kvs)) {
        s_reason_add(self, "etcd %s: range reply with a bad kvs list", tern_etcd_endpoint(self));
        err = TERN_EMALFORMED;
    }
    json_decref(reply);
    if (err != TERN_OK) {
        tern_etcd_kvs_destroy(&kvs);
    }
    *kvs_p = kvs;
    return err;
}

//  The gateway JSON of a put of KEY = VALUE (SIZE bytes) bound to LEASE.
static json_t *s_put_request(const char *key, const void *value, size_t size, int64_t lease) {
    json_t *request = json_object();
    s_set_key(request, key, false);
    s_set_bytes(request, "value", value ? value : "", value ? size : 0);
    if (lease != 0) {
        s_set_i64(request, "lease", lease);
    }
    return request;
}

//  The gateway JSON of a delete of KEY (or its prefix).
static json_t *s_delete_request(const char *key, bool prefix) {
    json_t *request = json_object();
    s_set_key(request, key, prefix);
    return request;
}

tern_err_t tern_etcd_put(tern_etcd_t *self, const char *key, const void *value, size_t size,
                         int64_t lease, int64_t *revision_p) {
    if (key == NULL || *key == '\0') {
        snprintf(self->reason, sizeof self->reason, "put: empty key");
        return TERN_EINVAL;
    }
    json_t *reply = NULL;
    tern_err_t err =
        s_call(self, "/v3/kv/put", s_put_request(key, value, size, lease), true, &reply);
    if (err == TERN_OK) {
        err = s_revision(self, reply, revision_p);
    }
    json_decref(reply);
    return err;
}

tern_err_t tern_etcd_delete(tern_etcd_t *self, const char *key, bool prefix, int64_t *deleted_p,
                            int64_t *revision_p) {
    if (key == NULL || (*key == '\0' && !prefix)) {
        snprintf(self->reason, sizeof self->reason, "delete: empty key");
        return TERN_EINVAL;
    }
    json_t *reply = NULL;
    tern_err_t err =
        s_call(self, "/v3/kv/deleterange", s_delete_request(key, prefix), true, &reply);
    if (err == TERN_OK) {
        err = s_revision(self, reply, revision_p);
    }
    int64_t deleted = 0;
    if (err == TERN_OK && !tern_etcd_json_i64(reply, "deleted", &deleted)) {
        s_reason_add(self, "etcd %s: bad deleted count", tern_etcd_endpoint(self));
        err = TERN_EMALFORMED;
    }
    if (deleted_p) {
        *deleted_p = deleted;
    }
    json_decref(reply);
    return err;
}

//  ---------------------------------------------------------------------------
//  Transactions

static const struct {
    const char *target; //  etcd's Compare.target
    const char *field;  //  the member that holds the compared value
} s_targets[] = {
    [TERN_ETCD_MOD] = {"MOD", "mod_revision"},
    [TERN_ETCD_CREATE] = {"CREATE", "create_revision"},
    [TERN_ETCD_VALUE] = {"VALUE", "value"},
    [TERN_ETCD_LEASE] = {"LEASE", "lease"},
};

//  The gateway JSON of one compare; NULL if CMP is not valid.
static json_t *s_compare(const tern_etcd_compare_t *cmp) {
    if (cmp->key == NULL || *cmp->key == '\0' || (unsigned)cmp->target > TERN_ETCD_LEASE ||
        (cmp->target == TERN_ETCD_VALUE && cmp->value == NULL && cmp->value_size > 0)) {
        return NULL;
    }
    json_t *obj = json_object();
    s_set_key(obj, cmp->key, false);
    json_object_set_new(obj, "target", json_string(s_targets[cmp->target].target));
    json_object_set_new(obj, "result", json_string("EQUAL"));
    if (cmp->target == TERN_ETCD_VALUE) {
        s_set_bytes(obj, "value", cmp->value ? cmp->value : "", cmp->value_size);
    } else {
        s_set_i64(obj, s_targets[cmp->target].field, cmp->revision);
    }
    return obj;
}

//  The gateway JSON of one operation of the success branch; NULL if invalid.
static json_t *s_op(const tern_etcd_op_t *op) {
    if (op->key == NULL || (*op->key == '\0' && !(op->remove && op->prefix))) {
        return NULL;
    }
    json_t *obj = json_object();
    if (op->remove) {
        json_object_set_new(obj, "request_delete_range", s_delete_request(op->key, op->prefix));
    } else {
        json_object_set_new(obj, "request_put",
                            s_put_request(op->key, op->value, op->value_size, op->lease));
    }
    return obj;
}

//  The whole txn request, or NULL if a compare or an op is not valid.
static json_t *s_txn_request(const tern_etcd_compare_t *cmp, size_t ncmp, const tern_etcd_op_t *ops,
                             size_t nops) {
    json_t *compare = json_array();
    json_t *success = json_array();
    json_t *request = json_pack("{s:o, s:o}", "compare", compare, "success", success);
    //  Appending NULL (an invalid item) fails, which ends both loops.
    bool ok = true;
    for (size_t i = 0; i < ncmp && ok; i++) {
        ok = json_array_append_new(compare, s_compare(&cmp[i])) == 0;
    }
    for (size_t i = 0; i < nops && ok; i++) {
        ok = json_array_append_new(success, s_op(&ops[i])) == 0;
    }
    if (!ok) {
        json_decref(request);
        return NULL;
    }
    return request;
}

tern_err_t tern_etcd_txn(tern_etcd_t *self, const tern_etcd_compare_t *cmp, size_t ncmp,
                         const tern_etcd_op_t *ops, size_t nops, bool *succeeded,
                         int64_t *revision_p) {
    *succeeded = false;
    json_t *request =
        (ncmp == 0 || cmp) && (nops == 0 || ops) ? s_txn_request(cmp, ncmp, ops, nops) : NULL;
    if (request == NULL) {
        snprintf(self->reason, sizeof self->reason, "txn: a compare or an op is not valid");
        return TERN_EINVAL;
    }
    json_t *reply = NULL;
    tern_err_t err = s_call(self, "/v3/kv/txn", request, false, &reply);
    if (err == TERN_OK) {
        err = s_revision(self, reply, revision_p);
    }
    const json_t *flag = json_object_get(reply, "succeeded");
    if (err == TERN_OK && flag && !json_is_boolean(flag)) {
        s_reason_add(self, "etcd %s: txn reply with a bad succeeded", tern_etcd_endpoint(self));
        err = TERN_EMALFORMED;
    }
    *succeeded = err == TERN_OK && json_is_true(flag);
    json_decref(reply);
    return err;
}

//  ---------------------------------------------------------------------------
//  Leases

//  s_call with a request of one integer field, NAME = VALUE (the lease calls).
static tern_err_t s_call_i64(tern_etcd_t *self, const char *path, const char *name, int64_t value,
                             bool idempotent, json_t **reply_p) {
    json_t *request = json_object();
    s_set_i64(request, name, value);
    return s_call(self, path, request, idempotent, reply_p);
}

tern_err_t tern_etcd_lease_grant(tern_etcd_t *self, int64_t ttl_s, int64_t *lease_p,
                                 int64_t *ttl_p) {
    *lease_p = 0;
    if (ttl_s <= 0) {
        snprintf(self->reason, sizeof self->reason, "lease grant: TTL must be > 0");
        return TERN_EINVAL;
    }
    json_t *reply = NULL;
    tern_err_t err = s_call_i64(self, "/v3/lease/grant", "TTL", ttl_s, false, &reply);
    int64_t id = 0;
    int64_t ttl = 0;
    const char *refusal = json_string_value(json_object_get(reply, "error"));
    if (err == TERN_OK && refusal && *refusal) {
        s_reason_add(self, "etcd %s: %s", tern_etcd_endpoint(self), refusal);
        err = TERN_EBUSY;
    } else if (err == TERN_OK && (!tern_etcd_json_i64(reply, "ID", &id) ||
                                  !tern_etcd_json_i64(reply, "TTL", &ttl) || id == 0)) {
        s_reason_add(self, "etcd %s: lease grant reply without ID or TTL",
                     tern_etcd_endpoint(self));
        err = TERN_EMALFORMED;
    }
    json_decref(reply);
    if (err == TERN_OK) {
        *lease_p = id;
        if (ttl_p) {
            *ttl_p = ttl;
        }
    }
    return err;
}

//  The keepalive stream's first message: {"result": {...}} or, when the
//  stream failed, {"error": {"grpc_code": N, "message": ...}}.
static tern_err_t s_keepalive_result(tern_etcd_t *self, const json_t *reply, int64_t lease,
                                     int64_t *ttl_p) {
    const json_t *error = json_object_get(reply, "error");
    const json_t *result = json_object_get(reply, "result");
    int64_t code = 0;
    int64_t id = 0;
    if (error) {
        const char *message = json_string_value(json_object_get(error, "message"));
        s_reason_add(self, "etcd %s: keepalive: %s", tern_etcd_endpoint(self),
                     message ? message : "stream error");
        return tern_etcd_json_i64(error, "grpc_code", &code) && code > 0
                   ? tern_etcd_grpc_err(code, message ? message : "")
                   : TERN_EBUSY;
    }
    if (!tern_etcd_json_i64(result, "ID", &id) || !tern_etcd_json_i64(result, "TTL", ttl_p)) {
        s_reason_add(self, "etcd %s: keepalive reply without a result", tern_etcd_endpoint(self));
        return TERN_EMALFORMED;
    }
    if (*ttl_p <= 0) {
        s_reason_add(self, "lease %lld is gone (expired or revoked)", (long long)lease);
        return TERN_ESTATE;
    }
    return TERN_OK;
}

tern_err_t tern_etcd_lease_keepalive(tern_etcd_t *self, int64_t lease, int64_t *ttl_p) {
    json_t *reply = NULL;
    tern_err_t err = s_call_i64(self, "/v3/lease/keepalive", "ID", lease, true, &reply);
    int64_t ttl = 0;
    if (err == TERN_OK) {
        err = s_keepalive_result(self, reply, lease, &ttl);
    }
    json_decref(reply);
    if (ttl_p) {
        *ttl_p = err == TERN_OK ? ttl : 0;
    }
    return err;
}

tern_err_t tern_etcd_lease_ttl(tern_etcd_t *self, int64_t lease, int64_t *ttl_p,
                               int64_t *granted_p) {
    json_t *reply = NULL;
    tern_err_t err = s_call_i64(self, "/v3/lease/timetolive", "ID", lease, true, &reply);
    int64_t ttl = 0;
    int64_t granted = 0;
    //  The gateway leaves out fields at 0: an absent TTL is 0 seconds left.
    if (err == TERN_OK && (!tern_etcd_json_i64(reply, "TTL", &ttl) ||
                           !tern_etcd_json_i64(reply, "grantedTTL", &granted))) {
        s_reason_add(self, "etcd %s: lease timetolive reply without TTL", tern_etcd_endpoint(self));
        err = TERN_EMALFORMED;
    }
    json_decref(reply);
    *ttl_p = err == TERN_OK ? ttl : 0;
    if (granted_p) {
        *granted_p = err == TERN_OK ? granted : 0;
    }
    return err;
}

tern_err_t tern_etcd_lease_revoke(tern_etcd_t *self, int64_t lease) {
    json_t *reply = NULL;
    tern_err_t err = s_call_i64(self, "/v3/lease/revoke", "ID", lease, true, &reply);
    if (err == TERN_OK) {
        err = s_revision(self, reply, NULL);
    }
    json_decref(reply);
    return err;
}
