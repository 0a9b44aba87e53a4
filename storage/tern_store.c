/*  tern_store.c - the store: its LMDB environment, the map's growth, the
    data directory's lock, stats.

    One LMDB environment per node with named databases (the layout, record
    format and durability trade-offs are in docs/storage.md, which also maps
    the other files of storage/: the log, dedup, groups, DLQ, expiry,
    replication and history each have their own, over tern_store_int.h).
    This file opens and closes the environment, refuses a data directory of
    another format, keeps the writer state that outlives a transaction
    (loaded here, advanced by tern_store_batch.c), and grows or shrinks the
    map for the commit loop. Readers use short MDB_NOTLS read transactions
    guarded by a process-wide rwlock, so the single writer can resize the
    map (mdb_env_set_mapsize needs no live transaction).
*/
#include "tern_store_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

//  The names of the databases, in the order of the S_* enum.
static const char *s_dbi_names[S_DBI_COUNT] = {
    "meta",       "topics", "topic_ids",  "log",       "prio",    "msgid",  "dedup",
    "dedup_prod", "expiry", "groups",     "pending",   "dlq",     "outbox", "peers",
    "inbound",    "trace",  "trace_conf", "outbox_pt", "peers_pt"};

/* ------------------------------------------------------------------------
    The store
   ------------------------------------------------------------------------ */

void tern_store_config_defaults(tern_store_config_t *config) {
    memset(config, 0, sizeof *config);
    config->dir = "./tern-data";
    config->map_initial = 64ull << 20;
    config->map_max = 64ull << 30;
    config->durability = TERN_DURABILITY_FSYNC;
    config->dedup_window_ms = 120000;
    config->dedup_max = 1024;
    config->outbox_retention_ms = 72ull * 3600 * 1000;
    config->trace_retention_ms = 24ull * 3600 * 1000;
    config->max_topics = 100000;
    config->max_readers = 126;
    config->outbox = true;
}

static int s_mkdir_p(const char *dir) {
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        return ENAMETOOLONG;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char c = path[i];
            path[i] = 0;
            if (mkdir(path, 0755) && errno != EEXIST) {
                return errno;
            }
            path[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st)) {
        return errno;
    }
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/*  The directory lock. LMDB lets several processes share an environment, but
    a store keeps writer state in memory (seqs, topic ids, outbox position),
    so two stores on one directory hand out the same seqs and lose
    acknowledged messages. An flock on a file of our own, taken before LMDB
    opens: the kernel drops it when its holder dies, so a killed node
    restarts without cleanup, and it leaves LMDB's lock.mdb to mdb_copy and
    mdb_stat. flock belongs to the open file description, so a second store
    in the same process is refused too. */

static void s_lock_path(const char *dir, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, TERN_STORE_LOCK_FILE);
}

static bool s_same_file(int fd, const char *path) {
    struct stat held, named;
    return fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
           held.st_ino == named.st_ino;
}

//  Takes the lock and writes our pid in it. Returns 0, EBUSY when a live
//  store holds it, or the errno of what failed.
static int s_lock_take(tern_store_t *self) {
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(self->dir, path, sizeof path);
    //  A clean close unlinks the file while it still holds the lock: an open
    //  that raced with it has locked a file no longer in the directory, and
    //  tries again.
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return errno;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int rc = errno == EWOULDBLOCK ? EBUSY : errno;
            close(fd);
            return rc;
        }
        if (s_same_file(fd, path)) {
            char pid[32];
            int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            //  Overwrite, then cut: a reader never sees an empty file.
            if (pwrite(fd, pid, (size_t)len, 0) != len || ftruncate(fd, len) != 0) {
                int rc = errno ? errno : EIO;
                close(fd);
                return rc;
            }
            self->lock_fd = fd;
            return 0;
        }
        close(fd);
    }
    return EBUSY;
}

//  Removes the lock file (if it is still ours), then releases the lock.
static void s_lock_release(tern_store_t *self) {
    if (self->lock_fd < 0) {
        return;
    }
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(self->dir, path, sizeof path);
    if (s_same_file(self->lock_fd, path)) {
        unlink(path);
    }
    close(self->lock_fd);
    self->lock_fd = -1;
}

long tern_store_lock_holder(const char *dir) {
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char text[32];
    ssize_t len = read(fd, text, sizeof text - 1);
    close(fd);
    text[len > 0 ? len : 0] = 0;
    long pid = strtol(text, NULL, 10);
    return pid > 0 ? pid : 0;
}

//  The on-disk layout: a data directory of another format is refused at open
//  rather than misread. Format 1 (no marker) had a global-seq log with a
//  topic index (`tindex`) and a time index of dedup entries (`dedup_time`).
//  Format 2 (marker 2) had `trace_msg` and 12-byte msgid values, and wrote
//  STORED events at append.
#define S_FORMAT_REFUSED (-30000) //  not an LMDB code (those are -30799..-30780)

//  Checks the format of the environment in TXN: *FORMAT gets the stored
//  marker (0 when there is none yet: a new store; set 1 for a format 1
//  store). Returns 0, S_FORMAT_REFUSED, or an LMDB error.
static int s_format_check(MDB_txn *txn, uint64_t *format) {
    MDB_dbi main_dbi, meta;
    *format = 0;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc) {
        return rc;
    }
    //  Named databases are keys of the main database.
    MDB_val k = {6, (void *)"tindex"}, v;
    rc = mdb_get(txn, main_dbi, &k, &v);
    if (rc == 0) {
        *format = 1;
        return S_FORMAT_REFUSED;
    }
    if (rc != MDB_NOTFOUND) {
        return rc;
    }
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_NOTFOUND) {
        return 0; //  a new store
    }
    if (rc == 0) {
        rc = s_get_u64(txn, meta, S_META_FORMAT, format);
        if (rc == MDB_NOTFOUND) {
            *format = 0;
            return 0; //  created but never committed with a marker
        }
        if (rc == 0 && *format != TERN_STORE_FORMAT) {
            return S_FORMAT_REFUSED;
        }
    }
    return rc;
}

/*  The replica identity (docs/cluster.md, "Replica identity"). The cluster
    tells replicas apart by their data directory, not by the node's name or
    address: a wiped disk or a swapped directory comes back under the same
    node id, and must not be taken for the copy it replaced. So the identity
    is made with the store (in the transaction that creates it, so no store
    ever commits without one) and only read afterwards. A value that is not a
    UUID v4 means the meta database was damaged or written by something else:
    refused like a foreign format, never replaced, because a fresh identity
    would let a damaged replica rejoin as a new, empty copy. */
#define S_IDENTITY_REFUSED (-30001) //  not an LMDB code, beside S_FORMAT_REFUSED

//  True if TEXT (LEN bytes, no NUL needed) is a canonical UUID v4 in lower
//  case: 8-4-4-4-12 hex digits, version nibble 4, variant 10xx.
static bool s_identity_valid(const char *text, size_t len) {
    if (len != TERN_STORE_IDENTITY_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = text[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return text[14] == '4' && strchr("89ab", text[19]) != NULL;
}

//  A new random UUID v4 (RFC 9562) into OUT. Returns 0 or an errno.
static int s_identity_make(char out[S_IDENTITY_SIZE]) {
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        //  Blocks only until the kernel's pool is first initialised, at boot.
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno != EINTR) {
            return errno;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); //  version 4: random
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); //  variant 10xx
    snprintf(out, S_IDENTITY_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

//  In TXN: reads the identity into SELF->identity, or makes and writes one
//  when there is none (a new store, or a format 3 store from before
//  identities). Returns 0, S_IDENTITY_REFUSED, an errno or an LMDB error.
static int s_identity_load(tern_store_t *self, MDB_txn *txn) {
    MDB_val k = {sizeof S_META_IDENTITY - 1, (void *)S_META_IDENTITY}, v;
    int rc = mdb_get(txn, self->dbi[S_META], &k, &v);
    if (rc == 0) {
        if (!s_identity_valid(v.mv_data, v.mv_size)) {
            return S_IDENTITY_REFUSED;
        }
        memcpy(self->identity, v.mv_data, TERN_STORE_IDENTITY_LEN);
        self->identity[TERN_STORE_IDENTITY_LEN] = 0;
        return 0;
    }
    if (rc != MDB_NOTFOUND || (rc = s_identity_make(self->identity)) != 0) {
        return rc;
    }
    v = (MDB_val){TERN_STORE_IDENTITY_LEN, self->identity};
    return mdb_put(txn, self->dbi[S_META], &k, &v, 0);
}

static uint64_t s_round_pages(uint64_t size, uint64_t page) {
    return (size + page - 1) / page * page;
}

//  Fills the zero fields of SELF->config with the defaults and sizes the
//  map: its ceiling, the soft limit where appends stop (the rest is the
//  reserve for acks, deletes and sweeps when full), and the initial size.
static uint64_t s_config_resolve(tern_store_t *self) {
    tern_store_config_t defaults;
    tern_store_config_defaults(&defaults);
    if (!self->config.map_initial) {
        self->config.map_initial = defaults.map_initial;
    }
    if (!self->config.map_max) {
        self->config.map_max = defaults.map_max > self->config.map_initial
                                   ? defaults.map_max
                                   : self->config.map_initial;
    }
    if (!self->config.max_topics) {
        self->config.max_topics = defaults.max_topics;
    }
    if (!self->config.max_readers) {
        self->config.max_readers = defaults.max_readers;
    }
    long page = sysconf(_SC_PAGESIZE);
    self->page_size = page > 0 ? (uint64_t)page : 4096;
    self->map_max = s_round_pages(self->config.map_max, self->page_size);
    uint64_t initial = s_round_pages(self->config.map_initial, self->page_size);
    uint64_t reserve = self->map_max / 16;
    reserve = reserve < S_RESERVE_MIN ? S_RESERVE_MIN : reserve;
    reserve = reserve > S_RESERVE_MAX ? S_RESERVE_MAX : reserve;
    reserve = s_round_pages(reserve, self->page_size);
    self->map_soft = self->map_max > 2 * reserve ? self->map_max - reserve : self->map_max / 2;
    self->map_soft = self->map_soft / self->page_size * self->page_size;
    return initial < self->map_soft ? initial : self->map_soft;
}

//  Creates and opens the environment with a map of INITIAL bytes, then
//  clears stale reader slots. Returns an LMDB error code (positive: a
//  system errno LMDB passed through).
static int s_env_open(tern_store_t *self, uint64_t initial) {
    int rc = mdb_env_create(&self->env);
    if (rc) {
        self->env = NULL;
        return rc;
    }
    unsigned flags = MDB_NOTLS;
    //  Before LMDB maps the file writable: never a hole under the map.
    self->writemap = self->config.writemap && st_wm_open_reserve(self, initial) == 0;
    if (self->writemap) {
        flags |= MDB_WRITEMAP;
    }
    if (self->config.durability == TERN_DURABILITY_BATCH) {
        flags |= MDB_NOMETASYNC;
    } else if (self->config.durability == TERN_DURABILITY_NONE) {
        flags |= MDB_NOSYNC;
    }
    if ((rc = mdb_env_set_maxdbs(self->env, S_DBI_COUNT + 2)) ||
        (rc = mdb_env_set_maxreaders(self->env, self->config.max_readers)) ||
        (rc = mdb_env_set_mapsize(self->env, (size_t)initial)) ||
        (rc = mdb_env_open(self->env, self->dir, flags, 0644))) {
        return rc;
    }
    int dead = 0;
    mdb_reader_check(self->env, &dead);
    MDB_envinfo info;
    mdb_env_info(self->env, &info);
    atomic_store(&self->map_size, (uint64_t)info.me_mapsize);
    return 0;
}

//  A persisted writer counter NAME into *VALUE (0 when never written).
static int s_load_u64(tern_store_t *self, MDB_txn *txn, const char *name, uint64_t *value) {
    int rc = s_get_u64(txn, self->dbi[S_META], name, value);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  In TXN (after the format check): opens every database, marks a new
//  store with its format and identity, and loads the writer state and the
//  counters.
static int s_env_load(tern_store_t *self, MDB_txn *txn, uint64_t format) {
    int rc = 0;
    for (int i = 0; i < S_DBI_COUNT && rc == 0; i++) {
        rc = mdb_dbi_open(txn, s_dbi_names[i], MDB_CREATE, &self->dbi[i]);
    }
    if (rc == 0 && !format) {
        rc = s_put_u64(txn, self->dbi[S_META], S_META_FORMAT, TERN_STORE_FORMAT);
    }
    if (rc || (rc = s_identity_load(self, txn)) ||
        (rc = s_load_u64(self, txn, S_META_OUTBOX_LAST, &self->outbox_last)) ||
        (rc = s_load_u64(self, txn, S_META_TOPIC_NEXT, &self->topic_next)) ||
        (rc = s_load_u64(self, txn, S_META_TRACE_NEXT, &self->trace_next)) ||
        (rc = st_ob_load(self, txn))) {
        return rc;
    }
    MDB_stat st;
    if ((rc = mdb_stat(txn, self->dbi[S_TOPICS], &st)) == 0) {
        atomic_store(&self->topics, (uint32_t)st.ms_entries);
    }
    if (rc == 0 && (rc = mdb_stat(txn, self->dbi[S_DEDUP], &st)) == 0) {
        atomic_store(&self->dedup_entries, (uint64_t)st.ms_entries);
    }
    return rc;
}

//  Checks the format and loads the store in one write transaction. Returns
//  the error for tern_store_new (a refused format is explained on stderr).
static tern_err_t s_env_init(tern_store_t *self) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc) {
        return s_err(rc);
    }
    uint64_t format = 0;
    if ((rc = s_format_check(txn, &format)) == 0) {
        rc = s_env_load(self, txn, format);
    }
    if (rc) {
        mdb_txn_abort(txn);
    } else {
        rc = mdb_txn_commit(txn);
    }
    if (rc == S_FORMAT_REFUSED) {
        fprintf(stderr,
                "tern_store: %s holds store format %llu, this build reads format %d "
                "(the log is keyed by topic and seq since format 2; msgid carries the "
                "trace history and STORED events are written at removal since format 3): "
                "refusing to open it; drain it with the old version or start from an "
                "empty data directory\n",
                self->dir, (unsigned long long)format, TERN_STORE_FORMAT);
        return TERN_ECORRUPT;
    }
    if (rc == S_IDENTITY_REFUSED) {
        fprintf(stderr,
                "tern_store: %s has a malformed replica identity (meta \"%s\" is not a "
                "UUID v4): refusing to open it rather than give it a new one; restore the "
                "directory from a backup or replace the replica from the cluster\n",
                self->dir, S_META_IDENTITY);
        return TERN_ECORRUPT;
    }
    return s_err(rc);
}

static bool s_config_valid(const tern_store_config_t *config) {
    return config && config->dir && *config->dir &&
           strlen(config->dir) < sizeof((tern_store_t *)0)->dir &&
           config->durability <= TERN_DURABILITY_NONE &&
           (!config->map_max || config->map_initial <= config->map_max);
}

tern_store_t *tern_store_new(const tern_store_config_t *config, tern_err_t *err) {
    tern_err_t sink;
    err = err ? err : &sink;
    *err = TERN_ECONFIG;
    if (!s_config_valid(config)) {
        return NULL;
    }
    tern_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        *err = TERN_ENOMEM;
        return NULL;
    }
    self->lock_fd = -1;
    self->config = *config;
    strcpy(self->dir, config->dir);
    self->config.dir = self->dir;
    uint64_t initial = s_config_resolve(self);

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    //  A waiting resize must not starve behind a stream of readers.
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&self->lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    *err = TERN_ESTORAGE;
    int sys_errno = s_mkdir_p(self->dir);
    if (sys_errno == 0) {
        sys_errno = s_lock_take(self);
        *err = sys_errno == EBUSY ? TERN_EBUSY : *err;
    }
    if (sys_errno) {
        goto fail;
    }
    int rc = s_env_open(self, initial);
    if (rc) {
        *err = self->env ? s_err(rc) : TERN_ESTORAGE;
        sys_errno = self->env && rc > 0 ? rc : 0; //  LMDB passes system errors through
        goto fail;
    }
    if ((*err = s_env_init(self)) != TERN_OK) {
        goto fail;
    }
    return self;

fail:
    if (self->env) {
        mdb_env_close(self->env);
    }
    s_lock_release(self);
    pthread_rwlock_destroy(&self->lock);
    st_ob_free(self);
    free(self);
    errno = sys_errno;
    return NULL;
}

void tern_store_destroy(tern_store_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_store_t *self = *self_p;
    mdb_env_sync(self->env, 1);
    mdb_env_close(self->env);
    s_lock_release(self); //  after LMDB: the lock covers the environment's whole life
    pthread_rwlock_destroy(&self->lock);
    st_ob_free(self);
    free(self);
    *self_p = NULL;
}

const char *tern_store_identity(tern_store_t *self) {
    return self ? self->identity : NULL;
}

void tern_store_stats(tern_store_t *self, tern_store_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!self) {
        return;
    }
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(self->env, &info) == 0 && mdb_env_stat(self->env, &st) == 0) {
        out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", self->dir);
    struct stat fst;
    if (stat(path, &fst) == 0) {
        out->file_bytes = (uint64_t)fst.st_size;
    }
    out->map_size = atomic_load_explicit(&self->map_size, memory_order_relaxed);
    out->commits = atomic_load_explicit(&self->commits, memory_order_relaxed);
    out->map_grows = atomic_load_explicit(&self->map_grows, memory_order_relaxed);
    out->reserve_refused = atomic_load_explicit(&self->reserve_refused, memory_order_relaxed);
    out->writemap = self->writemap;
    out->full_errors = atomic_load_explicit(&self->full_errors, memory_order_relaxed);
    out->corrupt_records = atomic_load_explicit(&self->corrupt_records, memory_order_relaxed);
    out->expired = atomic_load_explicit(&self->expired, memory_order_relaxed);
    out->retention_trimmed = atomic_load_explicit(&self->retention_trimmed, memory_order_relaxed);
    out->outbox_dropped = atomic_load_explicit(&self->outbox_dropped, memory_order_relaxed);
    out->dedup_entries = atomic_load_explicit(&self->dedup_entries, memory_order_relaxed);
    out->topics = atomic_load_explicit(&self->topics, memory_order_relaxed);
    out->superseded = atomic_load_explicit(&self->superseded, memory_order_relaxed);
    out->folded = atomic_load_explicit(&self->folded, memory_order_relaxed);
}

int tern_store_reader_check(tern_store_t *self) {
    int dead = 0;
    if (self) {
        mdb_reader_check(self->env, &dead);
    }
    return dead;
}

bool tern_store_sweep_more(tern_store_t *self) {
    return self && atomic_load_explicit(&self->sweep_more, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
    The map's growth, for the commit loop (tern_store_batch.c)
   ------------------------------------------------------------------------ */

//  Sets the map to SIZE. Readers are locked out while LMDB remaps:
//  mdb_env_set_mapsize needs no live transaction in the process. A growth
//  through a writable map is reserved on disk first (readers go on
//  meanwhile); one the disk cannot hold does not happen.
bool st_map_resize(tern_store_t *self, uint64_t size) {
    if (!st_wm_grow_reserve(self, atomic_load(&self->map_size), size)) {
        return false;
    }
    pthread_rwlock_wrlock(&self->lock);
    int rc = mdb_env_set_mapsize(self->env, (size_t)size);
    pthread_rwlock_unlock(&self->lock);
    if (rc) {
        return false;
    }
    MDB_envinfo info;
    mdb_env_info(self->env, &info);
    atomic_store(&self->map_size, (uint64_t)info.me_mapsize);
    return true;
}

//  Doubles the map, capped at LIMIT; false when it is there already.
bool st_map_grow(tern_store_t *self, uint64_t limit) {
    uint64_t size = atomic_load(&self->map_size);
    if (size >= limit) {
        return false;
    }
    uint64_t grown = size * 2 < limit ? size * 2 : limit;
    if (!st_map_resize(self, grown)) {
        return false;
    }
    atomic_fetch_add_explicit(&self->map_grows, 1, memory_order_relaxed);
    return true;
}

//  Commits a one-key transaction so the pages freed by the last commit
//  become reusable. Returns true if it committed.
bool st_map_nudge(tern_store_t *self) {
    MDB_txn *txn;
    if (mdb_txn_begin(self->env, NULL, 0, &txn)) {
        return false;
    }
    if (s_put_u64(txn, self->dbi[S_META], "store.full_at", s_now_ns())) {
        mdb_txn_abort(txn);
        return false;
    }
    return mdb_txn_commit(txn) == 0;
}

//  Another process grew the map (MDB_MAP_RESIZED): adopts its size.
//  Returns an LMDB error code. Not reached in practice: the directory lock
//  keeps every other store out, and only a writer grows the map; such a
//  writer of another program would also have to reserve what it grew for
//  WRITEMAP to stay safe (docs/operations.md, storage/writemap).
int st_map_adopt(tern_store_t *self) {
    pthread_rwlock_wrlock(&self->lock);
    int rc = mdb_env_set_mapsize(self->env, 0);
    pthread_rwlock_unlock(&self->lock);
    if (rc == 0) {
        MDB_envinfo info;
        mdb_env_info(self->env, &info);
        atomic_store(&self->map_size, (uint64_t)info.me_mapsize);
    }
    return rc;
}
