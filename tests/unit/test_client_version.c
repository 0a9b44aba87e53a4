/*  test_client_version: tern_version() reports the library's version, the
    one tern.h's TERN_VERSION_* and the build (libtern.so.MAJOR, tern.pc)
    take theirs from. */
#include "tern.h"

#include <criterion/criterion.h>
#include <stdio.h>

Test(client_version, usage) {
    int major = -1, minor = -1, patch = -1;
    const char *text = tern_version(&major, &minor, &patch);
    cr_assert_eq(major, TERN_VERSION_MAJOR);
    cr_assert_eq(minor, TERN_VERSION_MINOR);
    cr_assert_eq(patch, TERN_VERSION_PATCH);
    char expected[48];
    snprintf(expected, sizeof expected, "%d.%d.%d", major, minor, patch);
    cr_assert_str_eq(text, expected);
}

Test(client_version, components_optional) {
    int minor = -1;
    cr_assert_str_eq(tern_version(NULL, NULL, NULL), tern_version(NULL, &minor, NULL));
    cr_assert_eq(minor, TERN_VERSION_MINOR);
}
