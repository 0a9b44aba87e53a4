/*  test_auth.c - roles, pattern coverage, the allow-list directory and the
    ZAP handler (broker/tern_auth.c), with real CURVE sockets on loopback. */
#include "tern_auth.h"
#include "test_dir.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *s_roles = "roles\n"
                             "    app\n"
                             "        publish = \"orders.>\"\n"
                             "        subscribe = \"notify.user.*, orders.status.*\"\n"
                             "    ops\n"
                             "        publish = \">\"\n"
                             "        subscribe = \">\"\n"
                             "        admin = true\n"
                             "    reader\n"
                             "        subscribe = \"notify.>\"\n";

Test(auth, usage) {
    char err[256] = "";
    tern_acl_t *acl = tern_acl_parse(s_roles, "roles.cfg", err, sizeof err);
    cr_assert_not_null(acl, "%s", err);
    cr_assert_eq(tern_acl_size(acl), 3);
    const tern_role_t *app = tern_acl_role(acl, "app");
    cr_assert_not_null(app);
    cr_assert(tern_role_may_publish(app, "orders.eu.created"));
    cr_assert_not(tern_role_may_publish(app, "orders"));
    cr_assert_not(tern_role_may_publish(app, "notify.user.bob"));
    cr_assert(tern_role_may_subscribe(app, "notify.user.bob"));
    cr_assert(tern_role_may_subscribe(app, "notify.user.*"));
    cr_assert_not(tern_role_may_subscribe(app, "notify.>"));
    cr_assert_not(tern_role_may_subscribe(app, "orders.>"));
    cr_assert_not(tern_role_is_admin(app));
    cr_assert(tern_role_is_admin(tern_acl_role(acl, "ops")));
    cr_assert_not(tern_role_may_publish(tern_acl_role(acl, "reader"), "notify.x"));
    cr_assert_null(tern_acl_role(acl, "nobody"));
    //  NULL role: no restrictions (auth mode none).
    cr_assert(tern_role_may_publish(NULL, "x") && tern_role_is_admin(NULL));
    tern_acl_t *ref = tern_acl_ref(acl);
    tern_acl_destroy(&acl);
    cr_assert_null(acl);
    cr_assert_str_eq(tern_role_name(tern_acl_role(ref, "app")), "app"); //  still referenced
    tern_acl_destroy(&ref);
    tern_acl_destroy(&ref); //  safe on NULL
}

Test(auth, roles_errors) {
    char err[256];
    const char *bad[] = {
        "roles\n    app\n        publish = \"orders..x\"\n",
        "roles\n    app\n        publsh = \"x\"\n",
        "roles\n    app\n        admin = maybe\n",
        "rolez\n    app\n        admin = true\n",
        "roles\n    app\n        admin = true\n    app\n        admin = false\n",
        "roles\n    a/b\n        admin = true\n",
        "roles\n  app\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        tern_acl_t *acl = tern_acl_parse(bad[i], "f", err, sizeof err);
        cr_assert_null(acl, "accepted: %s", bad[i]);
        cr_assert(strncmp(err, "auth: ", 6) == 0, "%s", err);
        cr_assert_null(strchr(err, '\n'));
    }
    cr_assert_null(tern_acl_load("/nonexistent/roles", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/roles"));
}

//  Writes LEN bytes of DATA to PATH.
static void s_write_bytes(const char *path, const void *data, size_t len) {
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    cr_assert_eq(fwrite(data, 1, len, file), len);
    fclose(file);
}

Test(auth, roles_file_with_nul_refused) {
    char path[] = "/tmp/test_auth_roles_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    //  A file of zeros used to load as an empty roles file: no roles at all.
    static const char zeros[512];
    s_write_bytes(path, zeros, sizeof zeros);
    char err[256] = "";
    cr_assert_null(tern_acl_load(path, err, sizeof err));
    char want[128];
    snprintf(want, sizeof want, "auth: cannot read roles file \"%s\": NUL byte at offset 0", path);
    cr_assert(strstr(err, want), "%s", err);
    //  The roles before a NUL used to load, the ones after it vanished.
    size_t len = strlen(s_roles);
    char *cut = malloc(len + 32);
    memcpy(cut, s_roles, len);
    memcpy(cut + len, "\0    extra\n        admin = true\n", 32);
    s_write_bytes(path, cut, len + 32);
    cr_assert_null(tern_acl_load(path, err, sizeof err));
    snprintf(want, sizeof want, "NUL byte at offset %zu", len);
    cr_assert(strstr(err, want), "%s", err);
    s_write_bytes(path, cut, len);
    tern_acl_t *acl = tern_acl_load(path, err, sizeof err);
    cr_assert_not_null(acl, "%s", err);
    cr_assert_eq(tern_acl_size(acl), 3);
    tern_acl_destroy(&acl);
    free(cut);
    unlink(path);
}

Test(auth, pattern_covers) {
    struct {
        const char *allowed, *requested;
        bool covers;
    } cases[] = {
        {">", ">", true},          {">", "a", true},        {"a.>", "a.b", true},
        {"a.>", "a.*.c", true},    {"a.>", "a.>", true},    {"a.>", "a", false},
        {"a.>", ">", false},       {"a.*", "a.b", true},    {"a.*", "a.*", true},
        {"a.*", "a.>", false},     {"a.*", "a.b.c", false}, {"a.b", "a.*", false},
        {"a.b", "a.b", true},      {"a.b", "a.bc", false},  {"*.b", "x.b", true},
        {"*.b", "*.b", true},      {"*.b", "x.c", false},   {"a.*.c", "a.*.c", true},
        {"a.*.c", "a.*.>", false}, {"a", "a.b", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(tern_pattern_covers(cases[i].allowed, cases[i].requested), cases[i].covers,
                     "%s covers %s", cases[i].allowed, cases[i].requested);
    }
}

Test(auth, endpoint_local) {
    cr_assert(tern_endpoint_is_local("tcp://127.0.0.1:7600"));
    cr_assert(tern_endpoint_is_local("tcp://127.1.2.3:*"));
    cr_assert(tern_endpoint_is_local("tcp://localhost:7600"));
    cr_assert(tern_endpoint_is_local("tcp://[::1]:7600"));
    cr_assert(tern_endpoint_is_local("tcp://lo:7600"));
    cr_assert(tern_endpoint_is_local("ipc:///tmp/tern.sock"));
    cr_assert_not(tern_endpoint_is_local("tcp://0.0.0.0:7600"));
    cr_assert_not(tern_endpoint_is_local("tcp://*:7600"));
    cr_assert_not(tern_endpoint_is_local("tcp://10.0.0.1:7600"));
    cr_assert_not(tern_endpoint_is_local("tcp://127.0.0.1.evil.com:7600"));
    cr_assert_not(tern_endpoint_is_local("tcp://eth0:7600"));
    cr_assert_not(tern_endpoint_is_local(NULL));
}

//  A temp dir with "server.key" and an allow-list dir "clients".
typedef struct {
    char root[TEST_DIR_MAX];
    char clients[96];
    char server[96];
} s_dirs_t;

static void s_dirs(s_dirs_t *d) {
    cr_assert_not_null(test_dir_make(d->root, "test_auth"));
    snprintf(d->clients, sizeof d->clients, "%s/clients", d->root);
    cr_assert_eq(mkdir(d->clients, 0700), 0);
    snprintf(d->server, sizeof d->server, "%s/server.key", d->root);
    zcert_t *cert = zcert_new();
    cr_assert_eq(zcert_save(cert, d->server), 0);
    zcert_destroy(&cert);
}

static void s_dirs_remove(s_dirs_t *d) {
    cr_assert_eq(test_dir_remove(d->root), 0);
}

//  Writes a certificate pair NAME(.key, .key_secret) into DIR with ROLE
//  (NULL = none) and returns it. Caller destroys.
static zcert_t *s_cert(const char *dir, const char *name, const char *role) {
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    if (role) {
        zcert_set_meta(cert, "role", "%s", role);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    cr_assert_eq(zcert_save(cert, path), 0);
    return cert;
}

Test(auth, keys_reload) {
    s_dirs_t d;
    s_dirs(&d);
    tern_keys_t *keys = tern_keys_new(d.clients);
    cr_assert_eq(tern_keys_size(keys), 0);
    zcert_t *app = s_cert(d.root, "app1", "app"); //  outside the list at first
    char name[80], role[80];
    cr_assert_not(
        tern_keys_lookup(keys, zcert_public_txt(app), name, sizeof name, role, sizeof role));
    //  Adding the public file to the directory allows it at the next lookup.
    char from[256], to[256];
    snprintf(from, sizeof from, "%s/app1.key", d.root);
    snprintf(to, sizeof to, "%s/app1.key", d.clients);
    cr_assert_eq(rename(from, to), 0);
    cr_assert(tern_keys_lookup(keys, zcert_public_txt(app), name, sizeof name, role, sizeof role));
    cr_assert_str_eq(name, "app1");
    cr_assert_str_eq(role, "app");
    //  A secret half in the directory is never an allowed key by itself.
    zcert_t *other = s_cert(d.clients, "other", NULL);
    snprintf(from, sizeof from, "%s/other.key", d.clients);
    cr_assert_eq(unlink(from), 0);
    cr_assert_not(
        tern_keys_lookup(keys, zcert_public_txt(other), name, sizeof name, role, sizeof role));
    cr_assert_eq(tern_keys_size(keys), 1);
    //  Revoking = removing the file.
    cr_assert_eq(unlink(to), 0);
    cr_assert_not(
        tern_keys_lookup(keys, zcert_public_txt(app), name, sizeof name, role, sizeof role));
    zcert_destroy(&app);
    zcert_destroy(&other);
    tern_keys_destroy(&keys);
    s_dirs_remove(&d);
}

//  The periodic check conn runs: a re-scan only when the directory changed,
//  and whether a key NAME is still there.
Test(auth, keys_rescan_if_changed) {
    s_dirs_t d;
    s_dirs(&d);
    tern_keys_t *keys = tern_keys_new(d.clients);
    cr_assert(tern_keys_rescan_if_changed(keys), "the first call scans");
    cr_assert_not(tern_keys_has_name(keys, "app1"));
    zcert_t *app = s_cert(d.clients, "app1", NULL);
    cr_assert(tern_keys_rescan_if_changed(keys), "a file added is a change");
    cr_assert(tern_keys_has_name(keys, "app1"));
    cr_assert_not(tern_keys_rescan_if_changed(keys), "nothing changed");
    cr_assert(tern_keys_has_name(keys, "app1"));
    char path[256];
    snprintf(path, sizeof path, "%s/app1.key", d.clients);
    cr_assert_eq(unlink(path), 0);
    //  A removal within the same mtime tick as the addition is seen by the
    //  re-scan a second after that tick.
    bool changed = tern_keys_rescan_if_changed(keys);
    if (!changed) {
        usleep(1100 * 1000);
        changed = tern_keys_rescan_if_changed(keys);
    }
    cr_assert(changed, "a file removed is a change");
    cr_assert_not(tern_keys_has_name(keys, "app1"));
    zcert_destroy(&app);
    tern_keys_destroy(&keys);
    s_dirs_remove(&d);
}

//  A DEALER with CERT (NULL = plain, no CURVE) to ENDPOINT.
static void *s_dealer(void *ctx, const char *endpoint, zcert_t *cert, const char *server_public) {
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (cert) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public, 41);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_txt(cert), 41);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_txt(cert), 41);
    }
    cr_assert_eq(zmq_connect(sock, endpoint), 0);
    return sock;
}

Test(auth, certificate_with_nul_refused) {
    s_dirs_t d;
    s_dirs(&d);
    //  czmq reads a certificate up to its first NUL: whatever follows (here
    //  nothing that matters) used to be dropped without a word.
    char secret[128];
    snprintf(secret, sizeof secret, "%s_secret", d.server);
    FILE *file = fopen(secret, "r");
    cr_assert_not_null(file);
    char buf[1024];
    size_t len = fread(buf, 1, sizeof buf - 8, file);
    fclose(file);
    memcpy(buf + len, "\0\0\0\0", 4);
    s_write_bytes(secret, buf, len + 4);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    char err[256] = "";
    cr_assert_eq(tern_auth_curve_server(zsock_resolve(router), d.server, err, sizeof err),
                 TERN_ECONFIG);
    char want[256];
    snprintf(want, sizeof want, "auth: cannot read certificate \"%s\": NUL byte at offset %zu",
             secret, len);
    cr_assert(strstr(err, want), "%s", err);
    zsock_destroy(&router);
    s_dirs_remove(&d);
}

Test(auth, zap_handler) {
    s_dirs_t d;
    s_dirs(&d);
    zcert_t *good = s_cert(d.clients, "good", "app");
    zcert_t *bad = zcert_new(); //  never in the list
    _Atomic uint64_t refused = 0;
    tern_auth_args_t args = {.clients_dir = d.clients, .refused = &refused};
    zactor_t *auth = zactor_new(tern_auth_actor, &args);
    cr_assert_not_null(auth);
    cr_assert_eq(args.bind_rc, 0, "%s", args.error);

    zsock_t *router = zsock_new(ZMQ_ROUTER);
    char err[256];
    cr_assert_eq(tern_auth_curve_server(zsock_resolve(router), d.server, err, sizeof err), TERN_OK,
                 "%s", err);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    cr_assert_gt(port, 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    char server_public[41];
    cr_assert(tern_auth_cert_public(d.server, server_public));

    void *ctx = zmq_ctx_new();
    void *ok_sock = s_dealer(ctx, endpoint, good, server_public);
    void *bad_sock = s_dealer(ctx, endpoint, bad, server_public);
    void *plain_sock = s_dealer(ctx, endpoint, NULL, NULL);
    zmq_send(bad_sock, "bad", 3, ZMQ_DONTWAIT);
    zmq_send(plain_sock, "plain", 5, ZMQ_DONTWAIT);
    cr_assert_eq(zmq_send(ok_sock, "hello", 5, 0), 5);

    //  Only the allowed key's frame arrives, carrying its name and role.
    zsock_set_rcvtimeo(router, 2000);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    cr_assert_geq(zmq_msg_recv(&msg, zsock_resolve(router), 0), 0); //  routing id
    zmq_msg_close(&msg);
    zmq_msg_init(&msg);
    cr_assert_eq(zmq_msg_recv(&msg, zsock_resolve(router), 0), 5);
    cr_assert_eq(memcmp(zmq_msg_data(&msg), "hello", 5), 0);
    const char *user = zmq_msg_gets(&msg, "User-Id");
    const char *role = zmq_msg_gets(&msg, TERN_AUTH_ROLE_PROP);
    cr_assert_not_null(user);
    cr_assert_str_eq(user, "good");
    cr_assert_not_null(role);
    cr_assert_str_eq(role, "app");
    //  The replication check: a key may only speak for its own name.
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert(tern_auth_peer_ok(&config, &msg, "anyone")); //  auth none
    config.auth_mode = TERN_AUTH_CURVE;
    cr_assert(tern_auth_peer_ok(&config, &msg, "good"));
    cr_assert_not(tern_auth_peer_ok(&config, &msg, "us1"));
    zmq_msg_close(&msg);
    zsock_set_rcvtimeo(router, 500);
    zmq_msg_init(&msg);
    cr_assert_lt(zmq_msg_recv(&msg, zsock_resolve(router), 0), 0, "an unauthenticated frame came");
    zmq_msg_close(&msg);
    cr_assert_geq(atomic_load(&refused), 1); //  the bad key (the plain one fails before ZAP)

    zmq_close(ok_sock);
    zmq_close(bad_sock);
    zmq_close(plain_sock);
    zmq_ctx_term(ctx);
    zsock_destroy(&router);
    zactor_destroy(&auth);
    zcert_destroy(&good);
    zcert_destroy(&bad);
    s_dirs_remove(&d);
}
