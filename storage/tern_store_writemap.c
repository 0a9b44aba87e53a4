/*  tern_store_writemap.c - MDB_WRITEMAP without SIGBUS: the data file's
    blocks reserved for the whole map before LMDB maps it writable.

    With MDB_WRITEMAP the writer stores pages straight into the shared map:
    no malloc'd dirty pages, no copy into the page cache at commit (which
    msyncs the written range, MS_SYNC, before the meta page: a synced commit
    stays a synced commit). But LMDB then ftruncates data.mdb to the map
    size, a sparse file, and a store into a hole makes the file system find
    a block at the page fault; when the disk is full that fault is SIGBUS
    where pwrite returned ENOSPC. So the store writes through the map only
    while every byte of the map has its block: the whole map is reserved
    (fallocate) before the environment opens and every growth is reserved
    before LMDB remaps (tern_store.c, st_map_resize). A growth the disk
    cannot reserve does not happen: the map is full, appends get
    TERN_EFULL, acks and deletes go on in the map's reserve. A store whose
    file system cannot reserve at all opens without WRITEMAP.

    fallocate(2) rather than posix_fallocate: glibc emulates the latter by
    writing a byte per block where the file system has no fallocate, slow
    for gigabytes and no reservation on copy-on-write file systems. On
    those (btrfs, ZFS, bcachefs) an overwrite needs a new block even in
    reserved space, so they get no WRITEMAP either.
*/
#include "tern_store_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

//  statfs f_type of the copy-on-write file systems (linux/magic.h; ZFS
//  keeps its own).
#define S_BTRFS_MAGIC    0x9123683eu
#define S_ZFS_MAGIC      0x2fc12fc1u
#define S_BCACHEFS_MAGIC 0xca451a4eu

//  0 when FD's file system keeps a reserved block for every later
//  overwrite, else EOPNOTSUPP (copy-on-write) or the errno of fstatfs.
static int s_reserve_holds(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) {
        return errno;
    }
    unsigned long type = (unsigned long)fs.f_type & 0xffffffffu;
    if (type == S_BTRFS_MAGIC || type == S_ZFS_MAGIC || type == S_BCACHEFS_MAGIC) {
        return EOPNOTSUPP;
    }
    return 0;
}

//  Reserves blocks for bytes FROM..TO of FD with fallocate MODE. On
//  failure cuts the file back to SIZE, its size before: a file system may
//  keep the blocks it found before it ran out (ext4 does), and cutting
//  drops those past SIZE. Returns 0 or an errno.
static int s_reserve(int fd, int mode, uint64_t from, uint64_t to, uint64_t size) {
    if (to <= from) {
        return 0;
    }
    int rc;
    do {
        rc = fallocate(fd, mode, (off_t)from, (off_t)(to - from)) ? errno : 0;
    } while (rc == EINTR);
    if (rc) {
        int cut = ftruncate(fd, (off_t)size); //  best effort: report the reservation's error
        (void)cut;
    }
    return rc;
}

//  Logs once per run of failures why the map cannot be reserved.
static void s_reserve_refused(tern_store_t *self, uint64_t size, int rc, const char *then) {
    atomic_fetch_add_explicit(&self->reserve_refused, 1, memory_order_relaxed);
    if (!self->reserve_failing) {
        fprintf(stderr, "tern_store: %s: cannot reserve %llu bytes of disk for the map (%s): %s\n",
                self->dir, (unsigned long long)size, strerror(rc), then);
    }
    self->reserve_failing = true;
}

int st_wm_open_reserve(tern_store_t *self, uint64_t initial) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", self->dir);
    //  An empty data.mdb is a new environment to LMDB, as a missing one is.
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    //  LMDB maps max(INITIAL, the pages in use); the file is never shorter
    //  than the pages in use, so its size bounds what it maps.
    struct stat st;
    uint64_t size = initial;
    int rc = fstat(fd, &st) ? errno : s_reserve_holds(fd);
    if (rc == 0) {
        size = (uint64_t)st.st_size > initial ? (uint64_t)st.st_size : initial;
        //  KEEP_SIZE: a new data.mdb must stay empty for LMDB to create
        //  the environment in it.
        rc = s_reserve(fd, FALLOC_FL_KEEP_SIZE, 0, size, (uint64_t)st.st_size);
    }
    close(fd);
    if (rc) {
        s_reserve_refused(self, size, rc, "writing without MDB_WRITEMAP");
        self->reserve_failing = false; //  growths log their own first refusal
    }
    return rc;
}

bool st_wm_grow_reserve(tern_store_t *self, uint64_t from, uint64_t to) {
    if (!self->writemap || to <= from) {
        return true;
    }
    int fd = -1;
    //  The file is as long as the map (LMDB sized it when it mapped):
    //  extending it is what LMDB's remap would do next anyway.
    int rc = mdb_env_get_fd(self->env, &fd) ? EBADF : s_reserve(fd, 0, from, to, from);
    if (rc) {
        s_reserve_refused(self, to, rc, "the map stays full until space is freed");
        return false;
    }
    if (self->reserve_failing) {
        fprintf(stderr, "tern_store: %s: the map can grow again (%llu bytes reserved)\n", self->dir,
                (unsigned long long)to);
        self->reserve_failing = false;
    }
    return true;
}

//  Below this much free space a failed write means the disk is full.
#define S_DISK_FULL_SLACK (1u << 20)

bool st_disk_full(tern_store_t *self) {
    int fd = -1;
    struct statvfs fs;
    if (mdb_env_get_fd(self->env, &fd) || fstatvfs(fd, &fs) != 0) {
        return false;
    }
    return (uint64_t)fs.f_bavail * fs.f_frsize < S_DISK_FULL_SLACK;
}
