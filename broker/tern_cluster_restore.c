/*  tern_cluster_restore.c - surviving an etcd restored from a backup.

    A snapshot restore rolls etcd back: the partition records lose every
    write made after the snapshot (later leaders, epochs, ISR shrinks), and
    etcd's revisions start again below the ones the nodes have seen. Taken
    at face value, a restored record may name as leader, or keep in its
    ISR, a replica that fell out of sync after the snapshot and lacks
    acknowledged messages; and its epoch (a revision) may be below the one
    the followers fence with, or equal to one used after the snapshot by
    another leader. docs/cluster.md, "etcd backup and restore".

    What this node does about it:
    - every record write carries `ver=V` (tern_cluster_next_ver): above
      every ver, epoch and revision this node or etcd held for the key, its
      low 10 bits the writer's node id, so two nodes deciding on the same
      restored record write different vers. A leader change takes
      epoch = V. So a record's ver orders its writes across a restore, where
      revisions do not, and epochs never go back;
    - the view takes a record only with a higher ver than it holds
      (tern_cluster.c, s_apply_record); two records of one ver that differ
      are a conflict: every node takes the same winner and writes it back
      in a new ver and epoch. When etcd serves an older one, the
      view keeps its own, and this node writes it back by CAS
      (tern_cluster_republish), as it was, ver included (in a higher epoch
      only if someone decided on the restored record meanwhile). Every live
      node does so while its record is newer than etcd's: a max-register,
      so etcd ends with the newest record any live node saw, and the
      controller elects from that record's ISR, never from the restored
      one;
    - for two granted TTLs and a second after it saw etcd go back, a node
      takes no decision (controller pass, ISR write, handover): the others
      have time to join again and write their newer records back first;
    - the view survives restarts in DATA/cluster-view (the newest record of
      every partition and the highest revision seen, written after every
      change right after the next renewal, fsync'd, renamed into place),
      so nodes restarted after the
      restore still know what they saw;
    - a read whose revision is below the highest one seen, or that finds
      a partition key below the revision we saw it at (a restore with
      --bump-revision), means etcd went back: logged, and the view's revision bookkeeping (node
   keys, the controller key, the records' mod_revisions) starts again from it, with a new watch (the
   old one waits for revisions etcd no longer has), and records etcd lacks are written back too.

    What it cannot do: a record's last write known only to nodes that are
    down when the restore happens (the controller's failover, a leader's
    ISR shrink) comes back only when one of them returns. Until then the
    live nodes act on the newest record they saw; see docs/cluster.md.
*/
#include "tern_cluster_priv.h"
#include "tern_id.h"
#include "tern_store.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_VIEW_FILE "cluster-view"
//  Low bits of a ver that name its writer (node ids are below 1024).
#define S_VER_WRITER_BITS 10
_Static_assert(TERN_ID_NODE_MAX < (1 << S_VER_WRITER_BITS), "a node id fits a ver's low bits");

static uint64_t s_max(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

uint64_t tern_cluster_ver_after(uint32_t writer, uint64_t top) {
    //  Two writers that start from the same record (two nodes deciding on
    //  one restored record) must not write the same ver: the low bits name
    //  the writer (node ids fit: TERN_ID_NODE_MAX), the rest grows.
    return (((top >> S_VER_WRITER_BITS) + 1) << S_VER_WRITER_BITS) |
           (writer & ((1u << S_VER_WRITER_BITS) - 1));
}

uint64_t tern_cluster_ver_above(uint32_t writer, uint64_t ver, uint64_t epoch, int64_t revision) {
    //  Above the epoch too: a record written back may carry an epoch above
    //  its ver (tern_cluster_republish), and a leader change takes the ver.
    //  Above the revision: a record of an older node takes its
    //  mod_revision as ver.
    uint64_t top = s_max(s_max(ver, epoch), revision > 0 ? (uint64_t)revision : 0);
    return tern_cluster_ver_after(writer, top);
}

uint64_t tern_cluster_next_ver(tern_cluster_t *self, const tern_partmap_record_t *rec) {
    uint32_t p = rec->partition;
    uint64_t ver = rec->ver;
    uint64_t epoch = rec->epoch;
    int64_t revision = 0;
    if (p < self->partitions) {
        ver = s_max(ver, s_max(self->records[p].ver, self->etcd_ver[p]));
        epoch = s_max(epoch, s_max(self->records[p].epoch, self->etcd_epoch[p]));
        revision = self->mod_revision[p];
    }
    return tern_cluster_ver_above(self->self_id, ver, epoch, revision);
}

void tern_cluster_went_back(tern_cluster_t *self) {
    for (size_t i = 0; i < self->nmembers; i++) {
        self->members[i].mod_revision = 0;
    }
    self->controller_revision = 0;
    for (uint32_t p = 0; p < self->partitions; p++) {
        self->mod_revision[p] = 0;
        //  What etcd held is unknown until read again: a record the restore
        //  lost must not look as held (tern_cluster_republish skips those).
        self->etcd_ver[p] = 0;
        self->etcd_epoch[p] = 0;
    }
    self->went_back = true;
    //  Records etcd lacks now are written back once read (s_apply_absent).
    self->republish_due = true;
    //  The file's revision= must go down too, or every restart sees etcd
    //  go back again and holds.
    self->view_dirty = true;
    //  Long enough for a node whose lease the restore lost to join again
    //  (its restored key expires first: tern_cluster_join.c) and write back.
    self->hold_until_ms = tern_cluster_now_ms() + 2 * tern_cluster_grant_ttl_s(self) * 1000 + 1000;
}

void tern_cluster_check_revision(tern_cluster_t *self, int64_t revision) {
    if (revision >= self->max_revision) {
        self->max_revision = revision;
        return;
    }
    zsys_error("cluster: etcd's revision went back from %" PRId64 " to %" PRId64
               ": etcd was restored from a backup (or replaced); partition records older than "
               "this node saw are written back (docs/cluster.md, \"etcd backup and restore\")",
               self->max_revision, revision);
    self->max_revision = revision;
    tern_cluster_went_back(self);
}

bool tern_cluster_holding(tern_cluster_t *self) {
    return tern_cluster_now_ms() < self->hold_until_ms;
}

void tern_cluster_view_load(tern_cluster_t *self, const char *data_dir) {
    //  Only beside this process's own store (a cluster object made without
    //  one, as some tests do, keeps nothing).
    if (!data_dir || !data_dir[0] || tern_store_lock_holder(data_dir) != (long)getpid()) {
        return;
    }
    snprintf(self->view_path, sizeof self->view_path, "%s/%s", data_dir, S_VIEW_FILE);
    FILE *file = fopen(self->view_path, "r");
    if (!file) {
        return; //  a first start, or a node from before the file
    }
    char line[TERN_PARTMAP_TEXT_MAX + 32];
    size_t loaded = 0;
    pthread_mutex_lock(&self->lock);
    while (fgets(line, sizeof line, file)) {
        size_t len = strcspn(line, "\n");
        tern_partmap_record_t rec;
        if (strncmp(line, "identity=", 9) == 0) {
            if (len != 9 + strlen(self->identity) || strncmp(line + 9, self->identity, len - 9)) {
                zsys_warning("cluster: %s belongs to another data dir: ignored", self->view_path);
                break;
            }
        } else if (strncmp(line, "revision=", 9) == 0) {
            self->max_revision = strtoll(line + 9, NULL, 10);
        } else if (tern_partmap_record_decode(line, len, &rec, NULL) == TERN_OK &&
                   rec.partition < self->partitions && rec.ver > 0 && rec.nreplicas > 0) {
            self->records[rec.partition] = rec;
            loaded++;
        } else {
            zsys_warning("cluster: %s: a line that is no record, ignored: %.*s", self->view_path,
                         (int)len, line);
        }
    }
    //  Those etcd lacks or holds older (restored meanwhile): written back.
    self->republish_due = loaded > 0;
    pthread_mutex_unlock(&self->lock);
    fclose(file);
    zsys_info("cluster: node %u: %zu partition records seen before the restart (%s)", self->self_id,
              loaded, self->view_path);
}

void tern_cluster_view_save(tern_cluster_t *self, bool now) {
    if (!self->view_dirty || !self->view_path[0]) {
        return;
    }
    //  The fsyncs below run on the thread that renews the lease: only in
    //  the first quarter of a keepalive interval (the loop renews first,
    //  so right after a renewal), never just before one. A change reaches
    //  the file within lease/3.
    if (!now && self->next_keepalive_ms - tern_cluster_now_ms() < self->lease_ms / 4) {
        return;
    }
    self->view_dirty = false;
    char tmp[sizeof self->view_path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->view_path);
    FILE *file = fopen(tmp, "w");
    if (!file) {
        zsys_warning("cluster: cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(file, "identity=%s\nrevision=%" PRId64 "\n", self->identity, self->max_revision);
    //  Only this thread writes the records: no lock to read them.
    for (uint32_t p = 0; p < self->partitions; p++) {
        char text[TERN_PARTMAP_TEXT_MAX];
        if (self->records[p].nreplicas > 0 &&
            tern_partmap_record_encode(&self->records[p], text, sizeof text) == TERN_OK) {
            fprintf(file, "%s\n", text);
        }
    }
    bool ok = fflush(file) == 0 && fsync(fileno(file)) == 0;
    ok = fclose(file) == 0 && ok;
    if (!ok || rename(tmp, self->view_path) != 0) {
        //  The next change tries again.
        zsys_warning("cluster: cannot write %s: %s", self->view_path, strerror(errno));
        return;
    }
    //  The rename itself lasts once the directory is on disk too.
    char dir[sizeof self->view_path];
    snprintf(dir, sizeof dir, "%s", self->view_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        int fd = open(dir, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
}

void tern_cluster_republish(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    //  After etcd went back, not before the read that says what it holds.
    if (!self->republish_due || self->went_back || self->lease == 0 ||
        !tern_cluster_lease_ok(self) || now < self->next_republish_ms) {
        return;
    }
    self->republish_due = false;
    for (uint32_t p = 0; p < self->partitions; p++) {
        tern_partmap_record_t rec = self->records[p];
        bool conflict = self->conflict[p];
        if (rec.nreplicas == 0 || (!conflict && rec.ver <= self->etcd_ver[p])) {
            continue;
        }
        bool done = false;
        if (conflict) {
            //  Two records of one ver (s_apply_record): the winner in a new
            //  ver and epoch, so that whoever acted on either is fenced.
            done = tern_cluster_cas_record(self, &rec, true);
        } else {
            //  As it was, ver included, so that the newest knowledge of any
            //  live node wins whoever writes first. Only if someone decided
            //  on the restored record meanwhile (a node that did not see
            //  etcd go back) is its epoch at or above ours: then a new epoch
            //  above it, so that no node sees an epoch go back.
            if (self->etcd_epoch[p] >= rec.epoch) {
                rec.epoch = self->etcd_epoch[p] + 1;
            }
            done = tern_cluster_cas_write(self, &rec);
        }
        if (done) {
            self->conflict[p] = false;
            char text[TERN_PARTMAP_TEXT_MAX] = "";
            tern_partmap_record_encode(&self->records[p], text, sizeof text);
            zsys_warning("cluster: partition %u: wrote back the newest record this node saw "
                         "over etcd's %s: %s",
                         p, conflict ? "conflicting one of the same ver" : "older one", text);
        } else {
            //  Someone wrote first (the key was read again): decide anew.
            self->republish_due = true;
            self->next_republish_ms = now + 100;
        }
        tern_cluster_tick_keepalive(self);
    }
}
