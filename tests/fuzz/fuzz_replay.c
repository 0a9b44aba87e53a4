/*  fuzz_replay.c - replays a fuzz target's committed corpus as a plain test.

    Linked with one fuzz_<codec>.c in place of libFuzzer's main, so every
    `make test` runs each target on every input of its corpus (under ASan and
    UBSan in the sanitizer build). TERN_FUZZ_CORPUS is the default directory.
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Runs the target on one file, read into a buffer of exactly its size so
//  that the sanitizers catch any read past the input.
static int s_run_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    long size = fseek(file, 0, SEEK_END) == 0 ? ftell(file) : -1;
    uint8_t *data = size >= 0 ? malloc(size ? (size_t)size : 1) : NULL;
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(file);
        return -1;
    }
    rewind(file);
    size_t got = fread(data, 1, (size_t)size, file);
    fclose(file);
    LLVMFuzzerTestOneInput(data, got);
    free(data);
    return 0;
}

int main(int argc, char *argv[]) {
    const char *dir = argc > 1 ? argv[1] : TERN_FUZZ_CORPUS;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open corpus %s\n", dir);
        return 1;
    }
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (s_run_file(path) != 0) {
            closedir(d);
            return 1;
        }
        files++;
    }
    closedir(d);
    printf("%s replay: %d inputs ok\n", dir, files);
    return files > 0 ? 0 : 1;
}
