/*  test_dir: fresh temporary directories for tests, removed recursively.

    Every unit test that needs files (a store, a data dir, certificates,
    a config file) makes its own directory here and removes it after, so
    nothing leaks between tests and parallel runs never share a path. The
    storage tests use the store fixture on top of it (test_store_fixture.h).
*/
#ifndef TEST_DIR_H_INCLUDED
#define TEST_DIR_H_INCLUDED

#define TEST_DIR_MAX 64 //  room for any path test_dir_make returns

//  Makes a fresh directory /tmp/tern-NAME-XXXXXX (NAME at most 32 bytes)
//  and writes its path into DIR (TEST_DIR_MAX bytes). Returns DIR, or NULL
//  with errno set (the caller asserts).
char *test_dir_make(char *dir, const char *name);

//  Removes DIR and everything under it (no shell, symlinks not followed).
//  Safe on NULL or "". Returns 0, or -1 with errno set.
int test_dir_remove(const char *dir);

#endif
