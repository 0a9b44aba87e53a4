/*  test_threads.c - per-thread sleep counts from /proc (see test_threads.h). */
#include "test_threads.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

//  The voluntary switches in TASK's status file (a /proc/.../task/TID path).
static long s_task_sleeps(const char *task) {
    char path[600], line[128];
    long total = 0;
    snprintf(path, sizeof path, "%s/status", task);
    FILE *file = fopen(path, "r");
    while (file && fgets(line, sizeof line, file)) {
        long n;
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) {
            total += n;
        }
    }
    if (file) {
        fclose(file);
    }
    return total;
}

long test_thread_sleeps(pid_t pid, const char *name) {
    char dir_path[64], task[320];
    if (pid) {
        snprintf(dir_path, sizeof dir_path, "/proc/%d/task", (int)pid);
    } else {
        snprintf(dir_path, sizeof dir_path, "/proc/self/task");
    }
    DIR *dir = opendir(dir_path);
    if (!dir) {
        return -1;
    }
    long total = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        bool mine = !pid && atol(entry->d_name) == (long)syscall(SYS_gettid);
        char comm[64] = "", path[400];
        snprintf(task, sizeof task, "%s/%s", dir_path, entry->d_name);
        snprintf(path, sizeof path, "%s/comm", task);
        FILE *file = fopen(path, "r");
        if (!file || !fgets(comm, sizeof comm, file)) {
            if (file) {
                fclose(file);
            }
            continue; //  a thread that just ended
        }
        fclose(file);
        comm[strcspn(comm, "\n")] = 0;
        if (name ? strcmp(comm, name) == 0 : mine) {
            total += s_task_sleeps(task);
        }
    }
    closedir(dir);
    return total;
}
