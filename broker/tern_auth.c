/*  tern_auth.c - CURVE authentication (a ZAP handler over an allow-list
    directory) and role-based authorization for ternd.

    The ZAP handler is an actor of its own: libzmq's I/O threads send it one
    request per CURVE handshake on any ternd socket (client ROUTER,
    replication ROUTER), and nothing of the connection reaches conn before
    it answered 200, so an unauthenticated peer never gets a session, a
    routing id in conn's tables or a byte of broker memory beyond libzmq's
    handshake buffers. The allow-list is re-read from disk when the
    directory changes, at handshake time, so adding or revoking a key needs
    no restart; conn ends the sessions of a revoked key within a second (it
    watches the same directory: docs/security.md).

    Roles (tern_acl_t) are immutable after parsing and reference-counted by
    their one owner thread, conn: a session keeps the role it had at HELLO
    while a changed roles file applies to sessions opened afterwards.
*/
#include "tern_auth.h"
#include "tern_hostport.h"
#include "tern_proto.h"
#include "tern_work.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_FILE_MAX     (64 * 1024) //  a certificate or roles file larger than this is a mistake
#define S_LOG_PER_SEC  10          //  refusal log lines per second, at most

struct tern_role_t {
    char name[TERN_NAME_MAX + 1]; //  role name
    char **publish;               //  allowed publish patterns, owned
    size_t publish_count;         //  their number
    char **subscribe;             //  allowed subscribe patterns, owned
    size_t subscribe_count;       //  their number
    bool admin;                   //  may run admin commands
};

struct tern_acl_t {
    int refs;           //  references (one thread)
    tern_role_t *roles; //  owned array
    size_t count;       //  roles used
};

static void s_fail(char *errbuf, size_t errlen, const char *format, ...) CHECK_PRINTF(3);

static void s_fail(char *errbuf, size_t errlen, const char *format, ...) {
    if (errbuf && errlen > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(errbuf, errlen, format, args);
        va_end(args);
    }
}

//  ---------------------------------------------------------------------
//  Roles

static void s_role_free(tern_role_t *role) {
    for (size_t i = 0; i < role->publish_count; i++) {
        free(role->publish[i]);
    }
    for (size_t i = 0; i < role->subscribe_count; i++) {
        free(role->subscribe[i]);
    }
    free(role->publish);
    free(role->subscribe);
}

void tern_acl_destroy(tern_acl_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_acl_t *self = *self_p;
    *self_p = NULL;
    if (--self->refs > 0) {
        return;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_role_free(&self->roles[i]);
    }
    free(self->roles);
    free(self);
}

tern_acl_t *tern_acl_ref(tern_acl_t *self) {
    if (self) {
        self->refs++;
    }
    return self;
}

//  Splits TEXT at spaces and commas into patterns appended to *LIST.
static bool s_parse_patterns(const char *text, char ***list, size_t *count, const char *what,
                             const char *where, char *errbuf, size_t errlen) {
    const char *p = text;
    while (*p) {
        p += strspn(p, " ,\t");
        size_t len = strcspn(p, " ,\t");
        if (len == 0) {
            break;
        }
        if (!tern_pattern_valid(p, len)) {
            s_fail(errbuf, errlen, "auth: %s pattern \"%.*s\" is not a valid topic pattern%s", what,
                   (int)(len > 200 ? 200 : len), p, where);
            return false;
        }
        if (*count == TERN_AUTH_PATTERNS_MAX) {
            s_fail(errbuf, errlen, "auth: more than %d %s patterns in one role%s",
                   TERN_AUTH_PATTERNS_MAX, what, where);
            return false;
        }
        char **grown = realloc(*list, (*count + 1) * sizeof(char *));
        char *copy = strndup(p, len);
        if (!grown || !copy) {
            free(copy);
            if (grown) {
                *list = grown;
            }
            s_fail(errbuf, errlen, "auth: out of memory");
            return false;
        }
        *list = grown;
        (*list)[(*count)++] = copy;
        p += len;
    }
    return true;
}

static bool s_parse_role(tern_role_t *role, zconfig_t *section, const char *where, char *errbuf,
                         size_t errlen) {
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item)) {
        const char *key = zconfig_name(item);
        const char *value = zconfig_value(item) ? zconfig_value(item) : "";
        if (zconfig_child(item)) {
            s_fail(errbuf, errlen, "auth: roles/%s/%s: expected a value, not a section%s",
                   role->name, key, where);
            return false;
        }
        if (streq(key, "publish")) {
            if (!s_parse_patterns(value, &role->publish, &role->publish_count, "publish", where,
                                  errbuf, errlen)) {
                return false;
            }
        } else if (streq(key, "subscribe")) {
            if (!s_parse_patterns(value, &role->subscribe, &role->subscribe_count, "subscribe",
                                  where, errbuf, errlen)) {
                return false;
            }
        } else if (streq(key, "admin")) {
            if (!tern_config_parse_bool(value, &role->admin)) {
                s_fail(errbuf, errlen, "auth: roles/%s/admin = \"%.64s\": expected true or false%s",
                       role->name, value, where);
                return false;
            }
        } else {
            s_fail(errbuf, errlen,
                   "auth: unknown key \"roles/%s/%.64s\": expected publish, subscribe or admin%s",
                   role->name, key, where);
            return false;
        }
    }
    return true;
}

tern_acl_t *tern_acl_parse(const char *text, const char *where, char *errbuf, size_t errlen) {
    char where_text[300] = "";
    if (where && *where) {
        snprintf(where_text, sizeof where_text, " (in %s)", where);
    }
    zconfig_t *root = text ? zconfig_str_load(text) : NULL;
    if (!root) {
        s_fail(errbuf, errlen, "auth: roles file is not valid ZPL%s", where_text);
        return NULL;
    }
    tern_acl_t *self = calloc(1, sizeof *self);
    if (!self) {
        zconfig_destroy(&root);
        s_fail(errbuf, errlen, "auth: out of memory");
        return NULL;
    }
    self->refs = 1;
    bool ok = true;
    for (zconfig_t *top = zconfig_child(root); top && ok; top = zconfig_next(top)) {
        if (!streq(zconfig_name(top), "roles")) {
            s_fail(errbuf, errlen, "auth: unknown section \"%.64s\": expected roles%s",
                   zconfig_name(top), where_text);
            ok = false;
            break;
        }
        for (zconfig_t *section = zconfig_child(top); section && ok;
             section = zconfig_next(section)) {
            const char *name = zconfig_name(section);
            if (!tern_name_valid(name, strlen(name))) {
                s_fail(errbuf, errlen,
                       "auth: role name \"%.64s\": expected 1-64 characters from "
                       "[A-Za-z0-9_.:-]%s",
                       name, where_text);
                ok = false;
                break;
            }
            if (zconfig_value(section) && *zconfig_value(section)) {
                s_fail(errbuf, errlen, "auth: roles/%s: expected a section, not a value%s", name,
                       where_text);
                ok = false;
                break;
            }
            if (tern_acl_role(self, name)) {
                s_fail(errbuf, errlen, "auth: role \"%s\" is defined twice%s", name, where_text);
                ok = false;
                break;
            }
            tern_role_t *grown = realloc(self->roles, (self->count + 1) * sizeof *grown);
            if (!grown) {
                s_fail(errbuf, errlen, "auth: out of memory");
                ok = false;
                break;
            }
            self->roles = grown;
            tern_role_t *role = &self->roles[self->count++];
            memset(role, 0, sizeof *role);
            snprintf(role->name, sizeof role->name, "%s", name);
            ok = s_parse_role(role, section, where_text, errbuf, errlen);
        }
    }
    zconfig_destroy(&root);
    if (!ok) {
        tern_acl_destroy(&self);
    }
    return self;
}

tern_acl_t *tern_acl_load(const char *path, char *errbuf, size_t errlen) {
    char why[64];
    char *text = tern_config_read_file(path, S_FILE_MAX, why, sizeof why);
    if (!text) {
        s_fail(errbuf, errlen, "auth: cannot read roles file \"%s\": %s%s", path, why,
               streq(why, "too large") ? " (over 64 KiB)" : "");
        return NULL;
    }
    tern_acl_t *self = tern_acl_parse(text, path, errbuf, errlen);
    free(text);
    return self;
}

const tern_role_t *tern_acl_role(const tern_acl_t *self, const char *name) {
    for (size_t i = 0; self && name && i < self->count; i++) {
        if (streq(self->roles[i].name, name)) {
            return &self->roles[i];
        }
    }
    return NULL;
}

size_t tern_acl_size(const tern_acl_t *self) {
    return self ? self->count : 0;
}

//  Next token of a pattern or topic at *P (advances past the dot).
static bool s_token(const char **p, const char **tok, size_t *len) {
    if (!**p) {
        return false;
    }
    *tok = *p;
    *len = strcspn(*p, ".");
    *p += *len;
    if (**p == '.') {
        (*p)++;
    }
    return true;
}

bool tern_pattern_covers(const char *allowed, const char *requested) {
    const char *a = allowed, *r = requested;
    while (true) {
        const char *at, *rt;
        size_t alen, rlen;
        bool has_a = s_token(&a, &at, &alen);
        bool has_r = s_token(&r, &rt, &rlen);
        if (!has_a) {
            return !has_r;
        }
        if (alen == 1 && *at == '>') {
            return has_r; //  '>' needs at least one more token
        }
        if (!has_r) {
            return false;
        }
        if (rlen == 1 && *rt == '>') {
            return false; //  the request reaches further than one token
        }
        if (alen == 1 && *at == '*') {
            continue; //  any single token, or '*'
        }
        if (rlen != alen || memcmp(at, rt, alen) != 0) {
            return false; //  a literal: the request must be the same literal
        }
    }
}

bool tern_role_may_publish(const tern_role_t *role, const char *topic) {
    if (!role) {
        return true;
    }
    for (size_t i = 0; i < role->publish_count; i++) {
        if (tern_pattern_match(role->publish[i], topic)) {
            return true;
        }
    }
    return false;
}

bool tern_role_may_subscribe(const tern_role_t *role, const char *pattern) {
    if (!role) {
        return true;
    }
    for (size_t i = 0; i < role->subscribe_count; i++) {
        if (tern_pattern_covers(role->subscribe[i], pattern)) {
            return true;
        }
    }
    return false;
}

bool tern_role_is_admin(const tern_role_t *role) {
    return !role || role->admin;
}

const char *tern_role_name(const tern_role_t *role) {
    return role ? role->name : "";
}

//  ---------------------------------------------------------------------
//  Allow-list

typedef struct {
    char name[TERN_NAME_MAX + 1]; //  key name (cert metadata name, else file name)
    char role[TERN_NAME_MAX + 1]; //  role (cert metadata role, else "default")
} s_key_t;

struct tern_keys_t {
    char *dir;             //  the directory, owned
    zhashx_t *keys;        //  z85 -> s_key_t, owned
    struct timespec mtime; //  directory mtime at the last scan
    bool scanned;          //  a scan happened
    uint64_t scanned_ms;   //  when
};

tern_keys_t *tern_keys_new(const char *dir) {
    tern_keys_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->dir = strdup(dir ? dir : "");
    self->keys = zhashx_new();
    if (!self->dir || !self->keys) {
        tern_keys_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->keys, (zhashx_destructor_fn *)zstr_free);
    return self;
}

void tern_keys_destroy(tern_keys_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_keys_t *self = *self_p;
    zhashx_destroy(&self->keys);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

static bool s_z85_valid(const char *text) {
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    return text && strlen(text) == TERN_AUTH_KEY_Z85 && strspn(text, alphabet) == TERN_AUTH_KEY_Z85;
}

//  Reads one certificate file into the table (ignores what is not one).
static void s_keys_add_file(tern_keys_t *self, const char *path, const char *file_name) {
    char *text = tern_config_read_file(path, S_FILE_MAX, NULL, 0);
    zconfig_t *root = text ? zconfig_str_load(text) : NULL;
    free(text);
    if (!root) {
        return;
    }
    const char *public_key = zconfig_get(root, "curve/public-key", NULL);
    if (s_z85_valid(public_key)) {
        s_key_t *key = calloc(1, sizeof *key);
        if (key) {
            const char *name = zconfig_get(root, "metadata/name", NULL);
            const char *role = zconfig_get(root, "metadata/role", NULL);
            snprintf(key->name, sizeof key->name, "%s",
                     name && tern_name_valid(name, strlen(name)) ? name : file_name);
            snprintf(key->role, sizeof key->role, "%s",
                     role && tern_name_valid(role, strlen(role)) ? role : "default");
            //  zhashx_insert keeps the first; a later duplicate is ignored.
            if (zhashx_insert(self->keys, public_key, key) != 0) {
                free(key);
            }
        }
    }
    zconfig_destroy(&root);
}

//  The directory's mtime now (0 if it is missing), and whether it is the one
//  of the last scan.
static bool s_keys_same_mtime(tern_keys_t *self, struct timespec *mtime) {
    struct stat st;
    bool exists = stat(self->dir, &st) == 0 && S_ISDIR(st.st_mode);
    *mtime = exists ? st.st_mtim : (struct timespec){0, 0};
    return self->scanned && mtime->tv_sec == self->mtime.tv_sec &&
           mtime->tv_nsec == self->mtime.tv_nsec;
}

//  Reads the directory (whose mtime is MTIME, 0 if missing) into the table.
static void s_keys_load(tern_keys_t *self, struct timespec mtime, uint64_t now) {
    zhashx_purge(self->keys);
    self->scanned = true;
    self->scanned_ms = now;
    self->mtime = mtime;
    if (mtime.tv_sec == 0 && mtime.tv_nsec == 0) {
        return;
    }
    DIR *dir = opendir(self->dir);
    if (!dir) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' || (len > 7 && streq(name + len - 7, "_secret"))) {
            continue; //  hidden files and secret halves are never allowed keys
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", self->dir, name);
        struct stat fst;
        if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_size > S_FILE_MAX) {
            continue;
        }
        //  The file name without its extension names a key without metadata.
        char base[TERN_NAME_MAX + 1];
        snprintf(base, sizeof base, "%.*s", (int)strcspn(name, "."), name);
        s_keys_add_file(self, path, tern_name_valid(base, strlen(base)) ? base : "unnamed");
    }
    closedir(dir);
}

//  At handshake time: re-reads the directory when it changed or the last
//  read is a second old (a key file edited in place leaves the directory's
//  mtime alone).
static void s_keys_scan(tern_keys_t *self) {
    uint64_t now = (uint64_t)zclock_time();
    struct timespec mtime;
    if (!s_keys_same_mtime(self, &mtime) || now - self->scanned_ms >= 1000) {
        s_keys_load(self, mtime, now);
    }
}

bool tern_keys_lookup(tern_keys_t *self, const char *z85, char *name, size_t name_size, char *role,
                      size_t role_size) {
    s_keys_scan(self);
    const s_key_t *key = z85 ? (const s_key_t *)zhashx_lookup(self->keys, z85) : NULL;
    if (!key) {
        return false;
    }
    snprintf(name, name_size, "%s", key->name);
    snprintf(role, role_size, "%s", key->role);
    return true;
}

size_t tern_keys_size(tern_keys_t *self) {
    s_keys_scan(self);
    return zhashx_size(self->keys);
}

bool tern_keys_rescan_if_changed(tern_keys_t *self) {
    uint64_t now = (uint64_t)zclock_time();
    struct timespec mtime;
    if (s_keys_same_mtime(self, &mtime)) {
        //  Unchanged, unless a change came within the same (coarse) mtime
        //  tick after the last scan: scan once more when that tick is a
        //  second old, and then trust the mtime.
        uint64_t mtime_ms = (uint64_t)mtime.tv_sec * 1000 + (uint64_t)mtime.tv_nsec / 1000000;
        if (self->scanned_ms >= mtime_ms + 1000 || now < mtime_ms + 1000) {
            return false;
        }
    }
    s_keys_load(self, mtime, now);
    return true;
}

bool tern_keys_has_name(tern_keys_t *self, const char *name) {
    for (const s_key_t *key = (const s_key_t *)zhashx_first(self->keys); key;
         key = (const s_key_t *)zhashx_next(self->keys)) {
        if (streq(key->name, name)) {
            return true;
        }
    }
    return false;
}

//  ---------------------------------------------------------------------
//  CURVE on sockets

//  zcert_load reads with czmq, which stops at a NUL byte: the files it will
//  read (PATH_secret, else PATH) go through the shared reader first, which
//  refuses them. A missing file is left to zcert_load's own error.
static bool s_cert_is_text(const char *path, char *errbuf, size_t errlen) {
    char secret[4096];
    snprintf(secret, sizeof secret, "%s_secret", path);
    const char *files[] = {secret, path};
    for (size_t i = 0; i < 2; i++) {
        if (access(files[i], F_OK) != 0) {
            continue;
        }
        char why[64];
        char *text = tern_config_read_file(files[i], S_FILE_MAX, why, sizeof why);
        if (!text) {
            s_fail(errbuf, errlen, "auth: cannot read certificate \"%s\": %s", files[i], why);
            return false;
        }
        free(text);
    }
    return true;
}

//  Loads a certificate with its secret half.
static zcert_t *s_load_secret(const char *path, char *errbuf, size_t errlen) {
    if (!path || !*path) {
        s_fail(errbuf, errlen, "auth: no certificate configured");
        return NULL;
    }
    if (!s_cert_is_text(path, errbuf, errlen)) {
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        s_fail(errbuf, errlen,
               "auth: cannot load certificate \"%s\" (expected a zcert file, see "
               "ternctl keys gen)",
               path);
        return NULL;
    }
    static const uint8_t zero[32];
    if (memcmp(zcert_secret_key(cert), zero, sizeof zero) == 0) {
        s_fail(errbuf, errlen,
               "auth: certificate \"%s\" has no secret key (\"%s_secret\" is "
               "missing or unreadable)",
               path, path);
        zcert_destroy(&cert);
        return NULL;
    }
    return cert;
}

tern_err_t tern_auth_curve_server(void *sock, const char *cert_path, char *errbuf, size_t errlen) {
    zcert_t *cert = s_load_secret(cert_path, errbuf, errlen);
    if (!cert) {
        return TERN_ECONFIG;
    }
    int one = 1;
    int rc = zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    if (rc == 0) {
        rc = zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(cert), 32);
    }
    if (rc == 0) {
        rc = zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, TERN_AUTH_ZAP_DOMAIN,
                            strlen(TERN_AUTH_ZAP_DOMAIN));
    }
    zcert_destroy(&cert);
    if (rc != 0) {
        s_fail(errbuf, errlen, "auth: cannot enable CURVE: %s (libzmq built without CURVE?)",
               zmq_strerror(zmq_errno()));
        return TERN_ECONFIG;
    }
    return TERN_OK;
}

bool tern_auth_cert_public(const char *path, char *z85) {
    char *text = tern_config_read_file(path, S_FILE_MAX, NULL, 0);
    zconfig_t *root = text ? zconfig_str_load(text) : NULL;
    free(text);
    const char *key = root ? zconfig_get(root, "curve/public-key", NULL) : NULL;
    bool ok = s_z85_valid(key);
    if (ok) {
        memcpy(z85, key, TERN_AUTH_KEY_Z85 + 1);
    }
    zconfig_destroy(&root);
    return ok;
}

tern_err_t tern_auth_curve_client(void *sock, const char *cert_path, const char *server_key,
                                  char *errbuf, size_t errlen) {
    char server_z85[TERN_AUTH_KEY_Z85 + 1];
    if (s_z85_valid(server_key)) {
        memcpy(server_z85, server_key, sizeof server_z85);
    } else if (!server_key || !tern_auth_cert_public(server_key, server_z85)) {
        s_fail(errbuf, errlen,
               "auth: server key \"%s\": expected 40 characters of Z85 or a "
               "public certificate file",
               server_key ? server_key : "");
        return TERN_ECONFIG;
    }
    zcert_t *cert = s_load_secret(cert_path, errbuf, errlen);
    if (!cert) {
        return TERN_ECONFIG;
    }
    int rc = zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_z85, TERN_AUTH_KEY_Z85 + 1);
    if (rc == 0) {
        rc = zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key(cert), 32);
    }
    if (rc == 0) {
        rc = zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(cert), 32);
    }
    zcert_destroy(&cert);
    if (rc != 0) {
        s_fail(errbuf, errlen, "auth: cannot enable CURVE: %s", zmq_strerror(zmq_errno()));
        return TERN_ECONFIG;
    }
    return TERN_OK;
}

bool tern_endpoint_is_local(const char *endpoint) {
    if (!endpoint) {
        return false;
    }
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0) {
        return true;
    }
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return false;
    }
    char text[256], port[16];
    if (!tern_hostport_split(endpoint + 6, text, sizeof text, port, sizeof port)) {
        return false;
    }
    if (streq(text, "localhost") || streq(text, "lo") || streq(text, "::1")) {
        return true;
    }
    //  127.0.0.0/8: four decimal octets starting with 127.
    unsigned a, b, c, d;
    char tail;
    return sscanf(text, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

tern_err_t tern_auth_check_listen(const tern_config_t *config, char *errbuf, size_t errlen) {
    if (config->auth_mode != TERN_AUTH_NONE) {
        return TERN_OK;
    }
    const char *endpoints[2] = {config->listen, config->repl_listen};
    const char *keys[2] = {"server/listen", "repl/listen"};
    for (int i = 0; i < 2; i++) {
        if (!*endpoints[i] || tern_endpoint_is_local(endpoints[i])) {
            continue;
        }
        if (!config->insecure) {
            s_fail(errbuf, errlen,
                   "refusing to listen on %s (%s) without authentication: auth/mode is none, so "
                   "anyone who reaches it could publish, consume and administer; use "
                   "--auth=curve (docs/security.md), a loopback address, or --insecure to "
                   "accept the risk",
                   endpoints[i], keys[i]);
            return TERN_ECONFIG;
        }
        zsys_warning("ternd: insecure: listening on %s (%s) without authentication "
                     "(server/insecure = true)",
                     endpoints[i], keys[i]);
    }
    return TERN_OK;
}

bool tern_auth_peer_ok(const tern_config_t *config, zmq_msg_t *hdr, const char *claimed) {
    if (config->auth_mode != TERN_AUTH_CURVE) {
        return true;
    }
    const char *user = zmq_msg_gets(hdr, "User-Id");
    return user && claimed && streq(user, claimed);
}

//  ---------------------------------------------------------------------
//  The ZAP handler

typedef struct {
    tern_auth_args_t *args; //  borrowed
    tern_keys_t *keys;      //  the allow-list
    uint64_t log_second;    //  second of the current log budget
    int log_count;          //  lines logged in it
    uint64_t log_dropped;   //  lines not logged
} s_zap_t;

//  Logs a refusal, at most S_LOG_PER_SEC lines a second.
static void s_log_refusal(s_zap_t *self, const char *address, const char *why) {
    uint64_t second = (uint64_t)zclock_time() / 1000;
    if (second != self->log_second) {
        if (self->log_dropped) {
            zsys_warning("auth: %llu more refused handshakes not logged",
                         (unsigned long long)self->log_dropped);
        }
        self->log_second = second;
        self->log_count = 0;
        self->log_dropped = 0;
    }
    if (self->log_count++ < S_LOG_PER_SEC) {
        zsys_warning("auth: refused a handshake from %s: %s", address, why);
    } else {
        self->log_dropped++;
    }
}

static zframe_t *s_metadata(const char *role) {
    size_t name_len = strlen(TERN_AUTH_ROLE_PROP);
    size_t value_len = strlen(role);
    uint8_t buf[1 + 64 + 4 + TERN_NAME_MAX + 1];
    size_t n = 0;
    buf[n++] = (uint8_t)name_len;
    memcpy(buf + n, TERN_AUTH_ROLE_PROP, name_len);
    n += name_len;
    buf[n++] = (uint8_t)(value_len >> 24);
    buf[n++] = (uint8_t)(value_len >> 16);
    buf[n++] = (uint8_t)(value_len >> 8);
    buf[n++] = (uint8_t)value_len;
    memcpy(buf + n, role, value_len);
    n += value_len;
    return zframe_new(buf, n);
}

static void s_handle_zap(s_zap_t *self, zsock_t *handler) {
    zmsg_t *request = zmsg_recv(handler);
    if (!request) {
        return;
    }
    //  version, request id, domain, address, routing id, mechanism, credentials...
    char *version = zmsg_popstr(request);
    zframe_t *request_id = zmsg_pop(request);
    char *domain = zmsg_popstr(request);
    char *address = zmsg_popstr(request);
    zframe_t *routing_id = zmsg_pop(request);
    char *mechanism = zmsg_popstr(request);
    zframe_t *credentials = zmsg_pop(request);

    const char *status = "400";
    const char *text = "not allowed";
    char name[TERN_NAME_MAX + 1] = "";
    char role[TERN_NAME_MAX + 1] = "";
    if (!version || !streq(version, "1.0") || !request_id) {
        text = "bad ZAP request";
    } else if (!mechanism || !streq(mechanism, "CURVE")) {
        text = "CURVE required";
    } else if (!credentials || zframe_size(credentials) != 32) {
        text = "bad CURVE credentials";
    } else {
        char z85[TERN_AUTH_KEY_Z85 + 1];
        zmq_z85_encode(z85, zframe_data(credentials), 32);
        if (tern_keys_lookup(self->keys, z85, name, sizeof name, role, sizeof role)) {
            status = "200";
            text = "OK";
            if (self->args->verbose) {
                zsys_info("auth: %s authenticated as %s (role %s)", address ? address : "?", name,
                          role);
            }
        } else {
            char why[96];
            snprintf(why, sizeof why, "key %.12s... is not in the allow-list", z85);
            s_log_refusal(self, address ? address : "?", why);
            text = "key not allowed";
        }
    }
    if (streq(status, "400")) {
        if (!streq(text, "key not allowed")) {
            s_log_refusal(self, address ? address : "?", text);
        }
        if (self->args->refused) {
            atomic_fetch_add_explicit(self->args->refused, 1, memory_order_relaxed);
        }
    }
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    if (request_id) {
        zmsg_append(reply, &request_id);
    } else {
        zmsg_addstr(reply, "");
    }
    zmsg_addstr(reply, status);
    zmsg_addstr(reply, text);
    zmsg_addstr(reply, name);
    if (streq(status, "200")) {
        zframe_t *meta = s_metadata(role);
        zmsg_append(reply, &meta);
    } else {
        zmsg_addstr(reply, "");
    }
    zmsg_send(&reply, handler);

    zstr_free(&version);
    zframe_destroy(&request_id);
    zstr_free(&domain);
    zstr_free(&address);
    zframe_destroy(&routing_id);
    zstr_free(&mechanism);
    zframe_destroy(&credentials);
    zmsg_destroy(&request);
}

void tern_auth_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-auth");
    s_zap_t self = {.args = (tern_auth_args_t *)arg};
    zsock_t *handler = zsock_new(ZMQ_REP);
    self.keys = tern_keys_new(self.args->clients_dir);
    if (!handler || !self.keys || zsock_bind(handler, S_ZAP_ENDPOINT) != 0) {
        snprintf(self.args->error, sizeof self.args->error,
                 "auth: cannot bind the ZAP handler (%s): %s", S_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
        self.args->bind_rc = -1;
        zsock_destroy(&handler);
        tern_keys_destroy(&self.keys);
        zsock_signal(pipe, 1);
        char *command = zstr_recv(pipe);
        zstr_free(&command);
        return;
    }
    self.args->bind_rc = 0;
    size_t count = tern_keys_size(self.keys);
    zsys_info("auth: CURVE on, %zu allowed key%s in %s", count, count == 1 ? "" : "s",
              self.args->clients_dir);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool stop = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (stop) {
                break;
            }
        } else if (which == handler) {
            s_handle_zap(&self, handler);
        } else if (zpoller_terminated(poller)) {
            break;
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
    tern_keys_destroy(&self.keys);
}
