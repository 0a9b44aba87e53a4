/*  fuzz_config.c - libFuzzer target for ternd's configuration loader
    (a ZPL file through czmq's zconfig into tern_config_t).

    The input is the text of a configuration file. It is handed to
    tern_config_load exactly as `ternd -c FILE` would (through a memfd, so no
    disk is touched). Properties: the loader returns TERN_OK or TERN_ECONFIG
    with a one-line message, never crashes or reads out of bounds; a file that
    loads passes tern_config_check; and what --print-config prints for it
    loads again to the same configuration (print, load, print gives the same
    text), which is the promise docs/operations.md makes. The same text also
    goes through the roles-file parser (tern_acl_parse, docs/security.md),
    which must accept it or fail with one "auth: " line. Linked with
    fuzz_replay.c (test_fuzz_config), it replays the committed corpus as a
    unit test.
*/
#include "fuzz_check.h"
#include "tern_auth.h"
#include "tern_config.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int s_fd = -1; //  the memfd holding the current "file"

//  Makes the memfd hold exactly DATA and returns its /proc path.
static const char *s_file(const void *data, size_t size, char *path, size_t cap) {
    if (s_fd < 0) {
        //  czmq logs each ZPL syntax error; keep the fuzzer's output readable.
        zsys_set_logstream(NULL);
        zsys_set_logsystem(false);
#ifndef TERN_FUZZ_REPLAY
        //  zconfig also prints syntax errors on stdout (zclock_log), which
        //  costs the fuzzer most of its speed; libFuzzer reports on stderr.
        if (!freopen("/dev/null", "w", stdout)) {
            abort();
        }
#endif
        s_fd = memfd_create("fuzz_config", 0);
        CHECK(s_fd >= 0);
    }
    CHECK(ftruncate(s_fd, 0) == 0);
    CHECK(pwrite(s_fd, data, size, 0) == (ssize_t)size);
    snprintf(path, cap, "/proc/self/fd/%d", s_fd);
    return path;
}

//  Prints CONFIG into a new buffer; caller frees.
static char *s_print(const tern_config_t *config, size_t *len) {
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    CHECK(out);
    tern_config_print(config, out);
    fclose(out);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  The roles-file parser on the same bytes (NUL-terminated copy).
static void s_roles(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = 0;
    char errbuf[512] = "";
    tern_acl_t *acl = tern_acl_parse(text, "fuzz", errbuf, sizeof errbuf);
    if (acl) {
        //  Whatever parsed answers permission questions without crashing.
        CHECK(tern_acl_size(acl) < 100000);
        const tern_role_t *role = tern_acl_role(acl, "app");
        (void)tern_role_may_publish(role, "orders.eu");
        (void)tern_role_may_subscribe(role, "orders.*.>");
        tern_acl_destroy(&acl);
    } else {
        CHECK(strncmp(errbuf, "auth: ", 6) == 0 && !strchr(errbuf, '\n'));
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    char errbuf[512] = "";
    s_roles(data, size);
    tern_config_t config;
    tern_config_defaults(&config);
    tern_err_t rc =
        tern_config_load(&config, s_file(data, size, path, sizeof path), errbuf, sizeof errbuf);
    CHECK(rc == TERN_OK || rc == TERN_ECONFIG);
    if (rc != TERN_OK) {
        CHECK(strncmp(errbuf, "config: ", 8) == 0 && !strchr(errbuf, '\n'));
        return 0;
    }
    CHECK(tern_config_check(&config, errbuf, sizeof errbuf) == TERN_OK);
    size_t len1 = 0, len2 = 0;
    char *text1 = s_print(&config, &len1);
    tern_config_t again;
    tern_config_defaults(&again);
    rc = tern_config_load(&again, s_file(text1, len1, path, sizeof path), errbuf, sizeof errbuf);
    if (rc != TERN_OK) {
        fprintf(stderr, "fuzz_config: printed config does not load: %s\n%s\n", errbuf, text1);
    }
    CHECK(rc == TERN_OK);
    char *text2 = s_print(&again, &len2);
    if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
        fprintf(stderr, "fuzz_config: print/load/print differs:\n%s\n---\n%s\n", text1, text2);
    }
    CHECK(len1 == len2 && memcmp(text1, text2, len1) == 0);
    free(text1);
    free(text2);
    return 0;
}
