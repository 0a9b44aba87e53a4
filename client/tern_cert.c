/*  tern_cert.c - reads CURVE certificate files for libtern's users.

    The files are ZPL as czmq's zcert writes them (`ternctl keys gen` writes
    the same): a `curve` section with `public-key` and, in the secret file
    NAME.key_secret, `secret-key`, both Z85 text in double quotes. libtern
    does not link czmq, so this is a small line parser of its own: it looks
    for the two keys inside the `curve` section and ignores the rest.
*/
#include "tern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LINE_MAX 1024

static bool s_z85(const char *text, size_t len) {
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    if (len != TERN_CURVE_KEY_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!text[i] || !strchr(alphabet, text[i])) {
            return false;
        }
    }
    return true;
}

//  Reads PATH: copies public-key and secret-key of its curve section.
static tern_err_t s_read(const char *path, char *public_key, char *secret_key) {
    FILE *file = fopen(path, "r");
    if (!file) {
        return TERN_ENOTFOUND;
    }
    char line[S_LINE_MAX];
    bool in_curve = false;
    while (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] != ' ' && line[0] != '#' && line[0]) {
            in_curve = strncmp(line, "curve", 5) == 0 && strspn(line + 5, " ") == strlen(line + 5);
            continue;
        }
        if (!in_curve) {
            continue;
        }
        const char *p = line + strspn(line, " ");
        char *target = NULL;
        if (strncmp(p, "public-key", 10) == 0) {
            target = public_key;
            p += 10;
        } else if (strncmp(p, "secret-key", 10) == 0) {
            target = secret_key;
            p += 10;
        } else {
            continue;
        }
        p += strspn(p, " ");
        if (*p != '=') {
            continue;
        }
        p++;
        p += strspn(p, " ");
        char quote = (*p == '"' || *p == '\'') ? *p++ : 0;
        size_t len = quote ? strcspn(p, quote == '"' ? "\"" : "'") : strcspn(p, " #");
        if (target && s_z85(p, len)) {
            memcpy(target, p, len);
            target[len] = 0;
        }
    }
    fclose(file);
    return TERN_OK;
}

tern_err_t tern_cert_load(const char *path, char *public_key, char *secret_key) {
    if (!path || !public_key) {
        return TERN_EINVAL;
    }
    char scratch[TERN_CURVE_KEY_LEN + 1];
    if (!secret_key) {
        secret_key = scratch;
    }
    public_key[0] = 0;
    secret_key[0] = 0;
    tern_err_t rc = s_read(path, public_key, secret_key);
    if (rc != TERN_OK) {
        return rc;
    }
    if (!secret_key[0]) {
        //  A public file: its secret half, if we have it, sits next to it.
        size_t len = strlen(path);
        char *secret_path = malloc(len + 8);
        if (secret_path) {
            snprintf(secret_path, len + 8, "%s_secret", path);
            char other_public[TERN_CURVE_KEY_LEN + 1] = "";
            char other_secret[TERN_CURVE_KEY_LEN + 1] = "";
            if (s_read(secret_path, other_public, other_secret) == TERN_OK &&
                strcmp(other_public, public_key) == 0) {
                memcpy(secret_key, other_secret, sizeof other_secret);
            }
            free(secret_path);
        }
    }
    return public_key[0] ? TERN_OK : TERN_EINVAL;
}
