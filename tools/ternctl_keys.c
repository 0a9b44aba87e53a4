/*  ternctl_keys.c - `ternctl keys`: CURVE key pairs for brokers and clients,
    and the global options that make every ternctl command use one.

    `ternctl keys gen NAME` writes NAME.key (the public certificate, what goes
    into a broker's allow-list directory or to the clients) and
    NAME.key_secret (mode 0600, the key pair) in the format of czmq's zcert,
    so ternd loads them with zcert_load and libtern with tern_cert_load.
    `--cert FILE` / `--server-key KEY` (or $TERN_CERT / $TERN_SERVER_KEY) make
    the commands connect with CURVE; docs/security.md has the walk-through.
*/
#include "tern.h"
#include "ternctl.h"
#include "tern_json_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

const char *ternctl_keys_help =
    "NAME\n"
    "    ternctl keys - CURVE key pairs for ternd and its clients\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl keys gen NAME [--dir DIR] [--role ROLE] [--force] [--json]\n"
    "    ternctl keys show FILE [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    gen writes DIR/NAME.key (the public certificate) and DIR/NAME.key_secret\n"
    "    (the key pair, mode 0600) and prints the public key alone (for\n"
    "    KEY=$(ternctl keys gen NAME)); with --json one object: name, role,\n"
    "    public_key, public_file, secret_file. ROLE is stored in the\n"
    "    certificate's metadata: a broker maps the key to that role (see\n"
    "    docs/security.md). Existing files are kept unless --force.\n"
    "\n"
    "    show prints what a broker makes of a certificate file: its name\n"
    "    (metadata name, else the file name up to its first '.'), its role\n"
    "    (metadata role, else default; the roles file, auth/roles, says what\n"
    "    the role may do), its public key, and whether this file holds the\n"
    "    secret key (NAME.key_secret does, NAME.key does not). With --json one\n"
    "    object: file, name, role, public_key, secret (true/false).\n"
    "\n"
    "    To allow a client on a broker, copy its NAME.key into the broker's\n"
    "    auth/clients directory; to revoke it, delete the file. No restart.\n"
    "\n"
    "    Every ternctl command connects with CURVE when given\n"
    "        --cert FILE          this client's certificate (NAME.key_secret or\n"
    "                            NAME.key with NAME.key_secret next to it)\n"
    "        --server-key KEY    the broker's public key: Z85 text or its .key file\n"
    "    or $TERN_CERT and $TERN_SERVER_KEY.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure, 2 usage error.\n";

static bool s_name_ok(const char *name) {
    size_t len = strlen(name);
    return len >= 1 && len <= 64 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len;
}

//  Writes one certificate file; SECRET NULL = the public one.
static int s_write_cert(const char *path, const char *name, const char *role,
                        const char *public_key, const char *secret_key, bool force) {
    int flags = O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL);
    int fd = open(path, flags, secret_key ? 0600 : 0644);
    if (fd < 0) {
        fprintf(stderr, "ternctl: keys: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (use --force to replace it)" : "");
        return -1;
    }
    FILE *file = fdopen(fd, "w");
    if (!file) {
        close(fd);
        return -1;
    }
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&now));
    fprintf(file, "#   ****  Generated on %s UTC by ternctl keys gen  ****\n", when);
    if (secret_key) {
        fprintf(file, "#   ZeroMQ CURVE **Secret** Certificate\n"
                      "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its "
                      "permissions.\n\n");
    } else {
        fprintf(file, "#   ZeroMQ CURVE Public Certificate\n"
                      "#   Exchange securely, or use a secure mechanism to verify the "
                      "contents\n#   of this file after exchange.\n\n");
    }
    fprintf(file, "metadata\n    name = \"%s\"\n", name);
    if (role && *role) {
        fprintf(file, "    role = \"%s\"\n", role);
    }
    fprintf(file, "curve\n    public-key = \"%s\"\n", public_key);
    if (secret_key) {
        fprintf(file, "    secret-key = \"%s\"\n", secret_key);
    }
    bool ok = fflush(file) == 0 && fsync(fd) == 0;
    ok &= fclose(file) == 0;
    if (!ok) {
        fprintf(stderr, "ternctl: keys: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int s_usage(const char *message) {
    fprintf(stderr, "ternctl: keys: %s\nTry 'ternctl keys --help'.\n", message);
    return 2;
}

static int s_gen(int argc, char **argv, bool json) {
    const char *name = NULL, *dir = ".", *role = NULL;
    bool force = false;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if ((strcmp(w, "--dir") == 0 || strcmp(w, "--role") == 0) && i + 1 < argc) {
            *(strcmp(w, "--dir") == 0 ? &dir : &role) = argv[++i];
        } else if (strncmp(w, "--dir=", 6) == 0) {
            dir = w + 6;
        } else if (strncmp(w, "--role=", 7) == 0) {
            role = w + 7;
        } else if (strcmp(w, "--force") == 0) {
            force = true;
        } else if (strcmp(w, "--json") == 0) {
            continue; //  read by ternctl_keys_main
        } else if (w[0] == '-') {
            return s_usage("unknown option for gen (--dir DIR, --role ROLE, --force)");
        } else if (!name) {
            name = w;
        } else {
            return s_usage("gen takes one NAME");
        }
    }
    if (!name || !s_name_ok(name)) {
        return s_usage("gen needs a NAME of 1-64 characters from [A-Za-z0-9_.-]");
    }
    if (role && !s_name_ok(role)) {
        return s_usage("--role needs a name of 1-64 characters from [A-Za-z0-9_.-]");
    }
    char public_key[41], secret_key[41];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        fprintf(stderr, "ternctl: keys: cannot make a key pair: %s (libzmq without CURVE?)\n",
                zmq_strerror(zmq_errno()));
        return 1;
    }
    char path[4096], secret_path[4200];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(secret_path, sizeof secret_path, "%s_secret", path);
    if (s_write_cert(secret_path, name, role, public_key, secret_key, force) != 0 ||
        s_write_cert(path, name, role, public_key, NULL, force) != 0) {
        return 1;
    }
    explicit_bzero(secret_key, sizeof secret_key);
    if (json) {
        tern_json_t b;
        tern_json_init(&b);
        tern_json_raw(&b, "{");
        tern_json_key_str(&b, "name", name);
        tern_json_key_str(&b, "role", role ? role : "default");
        tern_json_key_str(&b, "public_key", public_key);
        tern_json_key_str(&b, "public_file", path);
        tern_json_key_str(&b, "secret_file", secret_path);
        tern_json_raw(&b, "}");
        printf("%s\n", b.data);
        tern_json_free(&b);
    } else {
        printf("%s\n", public_key); //  alone, for KEY=$(ternctl keys gen NAME)
    }
    fprintf(stderr, "ternctl: keys: wrote %s (public) and %s (secret, keep it private)\n", path,
            secret_path);
    return 0;
}

//  What `keys show` reports of one certificate file, read from that file only.
typedef struct {
    char name[65];   //  metadata/name, else the file name up to its first '.'
    char role[65];   //  metadata/role, else "default" (what ternd assigns)
    bool has_secret; //  the file itself holds curve/secret-key
} s_cert_info_t;

//  Reads the metadata of PATH and whether it holds a secret key, the way
//  ternd's allow-list reads it (broker/tern_auth.c): the name and role must
//  be valid names to count. tern_cert_load checks the keys themselves.
static void s_cert_info(const char *path, s_cert_info_t *info) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(info->name, sizeof info->name, "%.*s", (int)strcspn(base, "."), base);
    snprintf(info->role, sizeof info->role, "default");
    info->has_secret = false;
    FILE *file = fopen(path, "r");
    if (!file) {
        return;
    }
    char line[1024], section[32] = "", key[32], value[128];
    while (fgets(line, sizeof line, file)) {
        if (line[0] != ' ' && line[0] != '#') {
            sscanf(line, "%31s", section);
        } else if (sscanf(line, " %31[a-z-] = \"%127[^\"]\"", key, value) == 2 ||
                   sscanf(line, " %31[a-z-] = %127s", key, value) == 2) {
            bool meta = strcmp(section, "metadata") == 0;
            if (meta && strcmp(key, "name") == 0 && s_name_ok(value)) {
                snprintf(info->name, sizeof info->name, "%.64s", value);
            } else if (meta && strcmp(key, "role") == 0 && s_name_ok(value)) {
                snprintf(info->role, sizeof info->role, "%.64s", value);
            } else if (strcmp(section, "curve") == 0 && strcmp(key, "secret-key") == 0) {
                info->has_secret = strlen(value) == TERN_CURVE_KEY_LEN;
            }
        }
    }
    fclose(file);
}

//  `keys show FILE [--json]`: what ternd will make of this certificate.
static int s_show(int argc, char **argv, bool json) {
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            continue;
        }
        if (argv[i][0] == '-' || path) {
            return s_usage("show takes one FILE (and --json)");
        }
        path = argv[i];
    }
    if (!path) {
        return s_usage("show takes one FILE (and --json)");
    }
    //  The public key only: a public file's secret half beside it is not
    //  this file's (tern_cert_load would read it in).
    char public_key[TERN_CURVE_KEY_LEN + 1];
    tern_err_t rc = tern_cert_load(path, public_key, NULL);
    if (rc != TERN_OK) {
        fprintf(stderr, "ternctl: keys: %s: %s\n", path,
                rc == TERN_ENOTFOUND ? strerror(errno) : "not a CURVE certificate");
        return 1;
    }
    s_cert_info_t info;
    s_cert_info(path, &info);
    tern_json_t b;
    tern_json_init(&b);
    if (json) {
        tern_json_raw(&b, "{");
        tern_json_key_str(&b, "file", path);
        tern_json_key_str(&b, "name", info.name);
        tern_json_key_str(&b, "role", info.role);
        tern_json_key_str(&b, "public_key", public_key);
        tern_json_key_bool(&b, "secret", info.has_secret);
        tern_json_raw(&b, "}");
        printf("%s\n", b.data);
    } else {
        printf("file        %s\nname        %s\nrole        %s\npublic_key  %s\nsecret      %s\n",
               path, info.name, info.role, public_key, info.has_secret ? "yes" : "no");
    }
    tern_json_free(&b);
    return 0;
}

//  `ternctl [global options] keys SUBCOMMAND ...`: ARGV is ternctl's.
int ternctl_keys_main(int argc, char **argv) {
    int at = 1;
    while (at < argc && strcmp(argv[at], "keys") != 0) {
        at++;
    }
    int rest = argc - at - 1;
    char **args = argv + at + 1;
    bool json = false; //  --json, before or after `keys`
    for (int i = 1; i < argc; i++) {
        json |= strcmp(argv[i], "--json") == 0;
    }
    for (int i = 0; i < rest; i++) {
        if (strcmp(args[i], "--help") == 0 || strcmp(args[i], "-h") == 0) {
            fputs(ternctl_keys_help, stdout);
            return 0;
        }
    }
    if (rest < 1) {
        return s_usage("needs a subcommand: gen or show");
    }
    if (strcmp(args[0], "gen") == 0) {
        return s_gen(rest - 1, args + 1, json);
    }
    if (strcmp(args[0], "show") == 0) {
        return s_show(rest - 1, args + 1, json);
    }
    return s_usage("unknown subcommand (gen or show)");
}

//  Removes --cert FILE / --server-key KEY (and the --opt=VALUE forms) from
//  ARGV, exporting them as $TERN_CERT / $TERN_SERVER_KEY for
//  ternctl_curve_options. Returns the new ARGC.
int ternctl_keys_global(int argc, char **argv) {
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        const char *env = strcmp(w, "--cert") == 0 || strncmp(w, "--cert=", 7) == 0 ? "TERN_CERT"
                          : strcmp(w, "--server-key") == 0 || strncmp(w, "--server-key=", 13) == 0
                              ? "TERN_SERVER_KEY"
                              : NULL;
        if (strcmp(w, "--") == 0) {
            while (i < argc) {
                argv[out++] = argv[i++];
            }
            break;
        }
        if (!env) {
            argv[out++] = argv[i];
            continue;
        }
        const char *eq = strchr(w, '=');
        if (eq) {
            setenv(env, eq + 1, 1);
        } else if (i + 1 < argc) {
            setenv(env, argv[++i], 1);
        } else {
            fprintf(stderr, "ternctl: option '%s' needs a value\n", w);
            exit(2);
        }
    }
    argv[out] = NULL;
    return out;
}

//  Sets OPTIONS' CURVE keys from $TERN_CERT and $TERN_SERVER_KEY; exits 1
//  with a message when they are set but unusable. The keys live in static
//  buffers (ternctl makes its clients on one thread).
void ternctl_curve_options(tern_client_options_t *options) {
    static char server_key[TERN_CURVE_KEY_LEN + 1], public_key[TERN_CURVE_KEY_LEN + 1],
        secret_key[TERN_CURVE_KEY_LEN + 1];
    const char *key_file = getenv("TERN_CERT");
    const char *server = getenv("TERN_SERVER_KEY");
    bool has_key = key_file && *key_file, has_server = server && *server;
    if (!has_key && !has_server) {
        return;
    }
    if (!has_key || !has_server) {
        fprintf(stderr, "ternctl: CURVE needs both --cert FILE and --server-key KEY "
                        "($TERN_CERT, $TERN_SERVER_KEY)\n");
        exit(1);
    }
    if (tern_cert_load(key_file, public_key, secret_key) != TERN_OK || !secret_key[0]) {
        fprintf(stderr, "ternctl: --cert %s: not a readable certificate with a secret key\n",
                key_file);
        exit(1);
    }
    uint8_t bin[32];
    if (strlen(server) == TERN_CURVE_KEY_LEN && zmq_z85_decode(bin, server)) {
        memcpy(server_key, server, sizeof server_key);
    } else if (tern_cert_load(server, server_key, NULL) != TERN_OK) {
        fprintf(stderr,
                "ternctl: --server-key %s: expected 40 characters of Z85 or a "
                "certificate file\n",
                server);
        exit(1);
    }
    options->curve_server_key = server_key;
    options->curve_public_key = public_key;
    options->curve_secret_key = secret_key;
}
