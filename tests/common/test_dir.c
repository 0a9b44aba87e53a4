/*  test_dir: fresh temporary directories for tests, removed recursively. */
#define _XOPEN_SOURCE 700 //  nftw
#include "test_dir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *test_dir_make(char *dir, const char *name) {
    if (!name || strlen(name) > 32) {
        errno = EINVAL;
        return NULL;
    }
    snprintf(dir, TEST_DIR_MAX, "/tmp/tern-%s-XXXXXX", name);
    return mkdtemp(dir);
}

static int s_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int test_dir_remove(const char *dir) {
    if (!dir || !*dir) {
        return 0;
    }
    //  Depth first (children before their directory), never across a link.
    return nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}
