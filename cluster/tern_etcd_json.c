/*  tern_etcd_json.c - the gateway's JSON encoding of etcd's messages, the
    endpoint list and the gRPC error mapping, shared by the request client
    (tern_etcd.c) and the watch thread (tern_etcd_watch.c).
*/
#include "tern_etcd_json.h"
#include "tern_json.h"
#include "tern_alloc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t s_global_once = PTHREAD_ONCE_INIT;

static void s_free(void *ptr) {
    free(ptr);
}

static void s_global_init(void) {
    //  libcurl's global state is set up once per process and kept until exit;
    //  jansson allocates through tern_alloc_raw, so it follows the one
    //  out-of-memory policy (tern_alloc.h) and its NULLs mean bad input only.
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_set_alloc_funcs(tern_alloc_raw, s_free);
}

void tern_etcd_global_init(void) {
    pthread_once(&s_global_once, s_global_init);
}

size_t tern_etcd_endpoints_parse(const char *text, char *urls[TERN_ETCD_ENDPOINTS_MAX]) {
    size_t count = 0;
    const char *p = text ? text : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == '/') {
            len--; //  "http://h:2379/" and "http://h:2379" are one member
        }
        bool http = len > 7 && strncmp(p, "http://", 7) == 0;
        bool https = len > 8 && strncmp(p, "https://", 8) == 0;
        if ((!http && !https) || count == TERN_ETCD_ENDPOINTS_MAX) {
            goto fail;
        }
        urls[count++] = tern_strndup(p, len);
        p += strcspn(p, ",");
        if (*p == ',' && *++p == '\0') {
            goto fail; //  a trailing comma: an empty entry
        }
    }
    return count;
fail:
    while (count > 0) {
        free(urls[--count]);
    }
    return 0;
}

static const char s_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *tern_etcd_b64(const void *data, size_t size) {
    tern_json_t out;
    tern_json_init(&out);
    tern_json_base64(&out, data, size);
    return out.data; //  the buffer is the caller's now
}

static int s_b64_value(char c) {
    const char *hit = c ? strchr(s_b64_alphabet, c) : NULL;
    return hit ? (int)(hit - s_b64_alphabet) : -1;
}

char *tern_etcd_unb64(const char *text, size_t *size_p) {
    size_t len = strlen(text);
    if (len % 4 != 0) {
        return NULL;
    }
    char *out = tern_alloc_raw(len / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
        uint32_t group = 0;
        for (int k = 0; k < 4; k++) {
            int v = k >= 4 - pad ? 0 : s_b64_value(text[i + k]);
            if (v < 0) {
                free(out);
                return NULL;
            }
            group = group << 6 | (uint32_t)v;
        }
        for (int k = 0; k < 3 - pad; k++) {
            out[n++] = (char)(group >> (16 - 8 * k));
        }
    }
    out[n] = '\0';
    *size_p = n;
    return out;
}

char *tern_etcd_prefix_end(const char *prefix) {
    size_t len = strlen(prefix);
    while (len > 0 && (unsigned char)prefix[len - 1] == 0xff) {
        len--;
    }
    if (len == 0) {
        return tern_etcd_b64("", 1); //  one NUL byte: every key >= the start
    }
    char *end = tern_strndup(prefix, len);
    end[len - 1] = (char)((unsigned char)end[len - 1] + 1);
    char *b64 = tern_etcd_b64(end, len);
    free(end);
    return b64;
}

bool tern_etcd_json_i64(const json_t *obj, const char *name, int64_t *out) {
    if (!json_is_object(obj)) {
        return false;
    }
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (v == NULL) {
        return true;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0') {
        return false;
    }
    char *end = NULL;
    long long parsed = strtoll(s, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = parsed;
    return true;
}

//  A base64 member NAME of OBJ decoded; absent is "" (protobuf leaves empty
//  bytes out).
static char *s_bytes(const json_t *obj, const char *name, size_t *size_p) {
    const json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        *size_p = 0;
        return tern_strdup("");
    }
    const char *s = json_string_value(v);
    return s ? tern_etcd_unb64(s, size_p) : NULL;
}

bool tern_etcd_kv_parse(const json_t *obj, tern_etcd_kv_t *kv) {
    memset(kv, 0, sizeof *kv);
    if (!json_is_object(obj)) {
        return false;
    }
    kv->key = s_bytes(obj, "key", &kv->key_size);
    kv->value = s_bytes(obj, "value", &kv->value_size);
    bool ok = kv->key && kv->value && kv->key_size > 0 &&
              tern_etcd_json_i64(obj, "create_revision", &kv->create_revision) &&
              tern_etcd_json_i64(obj, "mod_revision", &kv->mod_revision) &&
              tern_etcd_json_i64(obj, "version", &kv->version) &&
              tern_etcd_json_i64(obj, "lease", &kv->lease);
    if (!ok) {
        tern_etcd_kv_clear(kv);
    }
    return ok;
}

void tern_etcd_kv_clear(tern_etcd_kv_t *kv) {
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

//  gRPC status codes as etcd uses them (etcdserver/api/v3rpc/rpctypes).
static const struct {
    int64_t code;   //  gRPC status code
    tern_err_t err; //  what tern says
} s_grpc_codes[] = {
    {1, TERN_ECLOSED},  //  Canceled: the member is shutting down
    {3, TERN_EINVAL},   //  InvalidArgument: empty key, key or value too big, ...
    {4, TERN_ETIMEOUT}, //  DeadlineExceeded
    {5, TERN_ESTATE},   //  NotFound: only "requested lease not found"
    {6, TERN_EEXIST},   //  AlreadyExists
    {7, TERN_EDENIED},  //  PermissionDenied
    {8, TERN_EBUSY},    //  ResourceExhausted: too many requests
    {9, TERN_ESTATE},   //  FailedPrecondition: lease exists, not a learner, ...
    {11, TERN_ERANGE},  //  OutOfRange: compacted or future revision
    {14, TERN_EBUSY},   //  Unavailable: no leader, request timed out, stopping
    {16, TERN_EDENIED}, //  Unauthenticated
};

tern_err_t tern_etcd_grpc_err(int64_t code, const char *message) {
    //  "request is too large" (InvalidArgument) and the gateway's "larger
    //  than max" (ResourceExhausted) are one thing to us: over a limit.
    if ((code == 3 || code == 8) &&
        (strstr(message, "too large") || strstr(message, "larger than max"))) {
        return TERN_ETOOBIG;
    }
    for (size_t i = 0; i < sizeof s_grpc_codes / sizeof s_grpc_codes[0]; i++) {
        if (s_grpc_codes[i].code == code) {
            return s_grpc_codes[i].err;
        }
    }
    return TERN_EBUSY; //  Unknown, Internal, DataLoss...: the member is in trouble
}
