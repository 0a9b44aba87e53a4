/*  test_client_cert.c - tern_cert_load (client/tern_cert.c): the CURVE
    certificate files of `ternctl keys gen` and czmq's zcert, read by
    libtern without czmq. */
#include "tern.h"
#include "test_dir.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static char s_dir[TEST_DIR_MAX];

static void s_setup(void) {
    cr_assert_not_null(test_dir_make(s_dir, "test_client_cert"));
}

static void s_teardown(void) {
    cr_assert_eq(test_dir_remove(s_dir), 0);
}

TestSuite(cert, .init = s_setup, .fini = s_teardown);

static void s_write(const char *name, const char *text) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

static const char *s_path(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    return path;
}

Test(cert, usage) {
    char pub[41], sec[41];
    cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
    char text[512];
    snprintf(text, sizeof text,
             "#   ZeroMQ CURVE **Secret** Certificate\n\nmetadata\n    name = \"app\"\n"
             "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             pub, sec);
    s_write("app.key_secret", text);
    snprintf(text, sizeof text, "metadata\n    name = \"app\"\ncurve\n    public-key = \"%s\"\n",
             pub);
    s_write("app.key", text);

    char got_pub[TERN_CURVE_KEY_LEN + 1], got_sec[TERN_CURVE_KEY_LEN + 1];
    //  The secret file gives both keys.
    cr_assert_eq(tern_cert_load(s_path("app.key_secret"), got_pub, got_sec), TERN_OK);
    cr_assert_str_eq(got_pub, pub);
    cr_assert_str_eq(got_sec, sec);
    //  The public file too, when its secret half sits next to it.
    cr_assert_eq(tern_cert_load(s_path("app.key"), got_pub, got_sec), TERN_OK);
    cr_assert_str_eq(got_sec, sec);
    //  Alone, the public file gives the public key only.
    cr_assert_eq(unlink(s_path("app.key_secret")), 0);
    cr_assert_eq(tern_cert_load(s_path("app.key"), got_pub, got_sec), TERN_OK);
    cr_assert_str_eq(got_pub, pub);
    cr_assert_str_eq(got_sec, "");
    cr_assert_eq(tern_cert_load(s_path("app.key"), got_pub, NULL), TERN_OK);

    //  The keys are accepted by tern_client_new; a partial set is not.
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.curve_server_key = pub;
    options.curve_public_key = pub;
    options.curve_secret_key = sec;
    tern_client_t *client = tern_client_new("tcp://127.0.0.1:1", &options);
    cr_assert_not_null(client);
    tern_client_destroy(&client);
    options.curve_secret_key = NULL;
    cr_assert_null(tern_client_new("tcp://127.0.0.1:1", &options));
    options.curve_secret_key = "too short";
    cr_assert_null(tern_client_new("tcp://127.0.0.1:1", &options));
}

Test(cert, bad_files) {
    char pub[TERN_CURVE_KEY_LEN + 1], sec[TERN_CURVE_KEY_LEN + 1];
    cr_assert_eq(tern_cert_load(s_path("missing"), pub, sec), TERN_ENOTFOUND);
    s_write("empty", "");
    cr_assert_eq(tern_cert_load(s_path("empty"), pub, sec), TERN_EINVAL);
    //  A key outside the curve section, a short key, a non-Z85 character.
    s_write("outside", "metadata\n    public-key = \"0123456789012345678901234567890123456789\"\n");
    cr_assert_eq(tern_cert_load(s_path("outside"), pub, sec), TERN_EINVAL);
    s_write("short", "curve\n    public-key = \"0123456789\"\n");
    cr_assert_eq(tern_cert_load(s_path("short"), pub, sec), TERN_EINVAL);
    s_write("badchar", "curve\n    public-key = \"012345678901234567890123456789012345678~\"\n");
    cr_assert_eq(tern_cert_load(s_path("badchar"), pub, sec), TERN_EINVAL);
    cr_assert_eq(tern_cert_load(NULL, pub, sec), TERN_EINVAL);
}
