/*  tern_auth.h - authentication (ZeroMQ CURVE + a ZAP handler) and
    authorization (roles with per-topic-prefix permissions) for ternd.

    Three pieces, each usable alone:
    - tern_acl_t: the roles file (ZPL), immutable once loaded. A role lists
      the topic patterns it may publish to and subscribe to, and whether it
      may run admin commands. Used by conn on its own thread.
    - tern_keys_t: the allow-list directory of client public certificates
      (zcert files written by `ternctl keys gen`). Re-scanned when the
      directory changes, so keys are added and revoked without a restart.
    - tern_auth_actor: the ZAP handler (inproc://zeromq.zap.01). libzmq asks
      it about every CURVE handshake on every socket of the process's czmq
      context; it answers 200 with User-Id = the key's name and the metadata
      property TERN_AUTH_ROLE_PROP = the key's role, or 400.
    docs/security.md describes the model, the files and their format.
*/
#ifndef TERN_AUTH_H_INCLUDED
#define TERN_AUTH_H_INCLUDED

#include "tern_err.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_AUTH_ROLE_PROP    "Tern-Role" //  ZAP metadata property carrying the role
#define TERN_AUTH_ZAP_DOMAIN   "tern"      //  ZMQ_ZAP_DOMAIN of ternd's sockets
#define TERN_AUTH_KEY_Z85      40          //  a CURVE key in Z85 text
#define TERN_AUTH_PATTERNS_MAX 64          //  patterns per permission of one role

/*  ---- Roles -------------------------------------------------------- */

typedef struct tern_acl_t tern_acl_t;
typedef struct tern_role_t tern_role_t;

/*  Parses roles from ZPL TEXT:
        roles
            app
                publish = "orders.>"
                subscribe = "notify.user.* orders.status.*"
                admin = false
    Patterns are separated by spaces or commas and use the subscription
    grammar (`*` one token, `>` the rest). WHERE names the source in errors.
    Returns NULL with one line in ERRBUF on any error. Caller owns the result. */
tern_acl_t *tern_acl_parse(const char *text, const char *where, char *errbuf, size_t errlen);

/*  Loads the roles file PATH (see tern_acl_parse). Caller owns the result. */
tern_acl_t *tern_acl_load(const char *path, char *errbuf, size_t errlen);

/*  Drops one reference; frees on the last. Safe on NULL; nulls *SELF_P.
    References are not atomic: one thread (conn) owns an acl and its refs. */
void tern_acl_destroy(tern_acl_t **self_p);

/*  Adds a reference (for a session that keeps its role). Returns SELF. */
tern_acl_t *tern_acl_ref(tern_acl_t *self);

/*  The role NAME, or NULL. Borrowed; valid while the caller holds a
    reference to SELF. */
const tern_role_t *tern_acl_role(const tern_acl_t *self, const char *name);

/*  Number of roles. */
size_t tern_acl_size(const tern_acl_t *self);

/*  Permission checks. ROLE NULL = no restrictions (auth mode none, or no
    roles file). TOPIC is a concrete topic; PATTERN a subscription pattern,
    allowed when every topic it can match is matched by an allowed pattern. */
bool tern_role_may_publish(const tern_role_t *role, const char *topic);
bool tern_role_may_subscribe(const tern_role_t *role, const char *pattern);
bool tern_role_is_admin(const tern_role_t *role);
const char *tern_role_name(const tern_role_t *role);

/*  True if pattern ALLOWED matches every topic pattern REQUESTED matches
    ("orders.>" covers "orders.eu.*"; "notify.user.*" does not cover
    "notify.>"). Both must be valid patterns (tern_pattern_valid). */
bool tern_pattern_covers(const char *allowed, const char *requested);

/*  ---- Allow-list ---------------------------------------------------- */

typedef struct tern_keys_t tern_keys_t;

/*  An allow-list on directory DIR (may not exist yet: then it is empty).
    Caller owns the result. */
tern_keys_t *tern_keys_new(const char *dir);
void tern_keys_destroy(tern_keys_t **self_p);

/*  Looks up public key Z85 (40 characters). Re-scans the directory first if
    it changed (its mtime) or was last scanned over a second ago. On a hit
    copies the key's name (cert metadata `name`, else the file name) and role
    (metadata `role`, else "default") and returns true. */
bool tern_keys_lookup(tern_keys_t *self, const char *z85, char *name, size_t name_size, char *role,
                      size_t role_size);

/*  Number of keys found by the last scan. */
size_t tern_keys_size(tern_keys_t *self);

/*  Re-scans the directory only if its mtime changed since the last scan (a
    key file added, removed or renamed), or once more a second after a scan
    that came within a second of the last change (the mtime tick is coarse):
    cheap when nothing changed, for a periodic check. Returns true if it
    re-scanned. */
bool tern_keys_rescan_if_changed(tern_keys_t *self);

/*  True if the last scan found a key named NAME. */
bool tern_keys_has_name(tern_keys_t *self, const char *name);

/*  ---- CURVE on a socket --------------------------------------------- */

/*  Loads the server certificate PATH (a zcert: PATH holds the public key,
    PATH_secret the secret one; a secret file given directly works too) and
    makes SOCK (a raw libzmq socket, before bind) a CURVE server in ZAP
    domain TERN_AUTH_ZAP_DOMAIN. Returns TERN_OK, or TERN_ECONFIG with one
    line in ERRBUF. */
tern_err_t tern_auth_curve_server(void *sock, const char *cert_path, char *errbuf, size_t errlen);

/*  Makes SOCK (before connect) a CURVE client with our certificate
    CERT_PATH (with its secret half) towards a server whose public key is
    SERVER_KEY (Z85 text, or the path of its public certificate). For the
    replication DEALERs. Returns TERN_OK or TERN_ECONFIG with ERRBUF. */
tern_err_t tern_auth_curve_client(void *sock, const char *cert_path, const char *server_key,
                                  char *errbuf, size_t errlen);

/*  Reads the public key (Z85) of the certificate at PATH into Z85 (41
    bytes). Returns false if unreadable or not a certificate. */
bool tern_auth_cert_public(const char *path, char *z85);

/*  True if ENDPOINT only accepts local connections: ipc://, inproc://, or
    tcp:// on 127.0.0.0/8, ::1, localhost or the interface lo. */
bool tern_endpoint_is_local(const char *endpoint);

/*  The --insecure rule: with auth/mode none, server/listen and repl/listen
    must be local (tern_endpoint_is_local) unless server/insecure is set.
    Returns TERN_OK (logging a warning when server/insecure allowed a
    non-local endpoint) or TERN_ECONFIG with one line in ERRBUF that says
    what to do. tern_broker_new calls it before opening anything. */
tern_err_t tern_auth_check_listen(const tern_config_t *config, char *errbuf, size_t errlen);

/*  For the replication ROUTER: true if the frame in HDR (a received header
    message) may speak for peer CLAIMED (its REPL_HELLO dc). With auth/mode
    curve the connection's key name (ZAP User-Id) must equal CLAIMED, so a
    client key cannot pose as a peer and one peer cannot pose as another;
    with mode none it is always true. */
bool tern_auth_peer_ok(const tern_config_t *config, zmq_msg_t *hdr, const char *claimed);

/*  ---- The ZAP handler ------------------------------------------------ */

typedef struct {
    const char *clients_dir;   //  allow-list directory (borrowed)
    bool verbose;              //  log every accepted handshake
    tern_metrics_t *metrics;   //  borrowed; may be NULL
    _Atomic uint64_t *refused; //  counter bumped per refused handshake; may be NULL
    //  Written by the actor before it signals:
    int bind_rc;     //  0, or -1 if the ZAP endpoint could not be bound
    char error[256]; //  why
} tern_auth_args_t;

/*  zactor_fn: ARGS is a tern_auth_args_t, borrowed for the actor's life.
    Binds inproc://zeromq.zap.01 in czmq's context (so only one per
    process) and answers ZAP requests: CURVE keys in the allow-list get 200,
    everything else 400 (logged, at most 10 lines a second, and counted).
    Signals 0 when bound, 1 if not (then waits for $TERM). Pipe commands:
        $TERM  -> exits */
void tern_auth_actor(zsock_t *pipe, void *args);

#endif
