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
      every ver this node or etcd held for the key, and at most the write's
      revision on an etcd that never went back. A leader change takes
      epoch = V. So a record's ver orders its writes across a restore, where
      revisions do not, and epochs never go back;
    - the view takes a record only with a higher ver than it holds
      (tern_cluster.c, s_apply_record). When etcd serves an older one, the
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
      change, fsync'd, renamed into place), so nodes restarted after the
      restore still know what they saw;
    - a read whose revision is below the highest one seen means etcd went
      back: logged, and the view's revision bookkeeping (node keys, the
      controller key, the records' mod_revisions) starts again from it,
      with a new watch (the old one waits for revisions etcd no longer
      has).

    What it cannot do: a record's last write known only to nodes that are
    down when the restore happens (the controller's failover, a leader's
    ISR shrink) comes back only when one of them returns. Until then the
    live nodes act on the newest record they saw; see docs/cluster.md.
*/
#include "tern_cluster_priv.h"
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

static uint64_t s_max(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

uint64_t tern_cluster_next_ver(tern_cluster_t *self, const tern_partmap_record_t *rec) {
    uint32_t p = rec->partition;
    //  Above the epoch too: a record written back may carry an epoch above
    //  its ver (tern_cluster_republish), and a leader change takes the ver.
    uint64_t top = s_max(rec->ver, rec->epoch);
    if (p < self->partitions) {
        top = s_max(top, self->records[p].ver);
        top = s_max(top, self->records[p].epoch);
        top = s_max(top, self->etcd_ver[p]);
        top = s_max(top, self->etcd_epoch[p]);
        //  The CAS holds only while the key is at this revision, so the
        //  write's own revision is above it.
        top = s_max(top, (uint64_t)self->mod_revision[p]);
    }
    return top + 1;
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
    for (size_t i = 0; i < self->nmembers; i++) {
        self->members[i].mod_revision = 0;
    }
    self->controller_revision = 0;
    for (uint32_t p = 0; p < self->partitions; p++) {
        self->mod_revision[p] = 0;
    }
    self->max_revision = revision;
    self->went_back = true;
    //  Long enough for a node whose lease the restore lost to join again
    //  (its restored key expires first: tern_cluster_join.c) and write back.
    self->hold_until_ms = tern_cluster_now_ms() + 2 * tern_cluster_grant_ttl_s(self) * 1000 + 1000;
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
    pthread_mutex_unlock(&self->lock);
    fclose(file);
    zsys_info("cluster: node %u: %zu partition records seen before the restart (%s)", self->self_id,
              loaded, self->view_path);
}

void tern_cluster_view_save(tern_cluster_t *self) {
    if (!self->view_dirty || !self->view_path[0]) {
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
    if (!self->republish_due || self->lease == 0 || !tern_cluster_lease_ok(self) ||
        now < self->next_republish_ms) {
        return;
    }
    self->republish_due = false;
    for (uint32_t p = 0; p < self->partitions; p++) {
        tern_partmap_record_t rec = self->records[p];
        if (rec.nreplicas == 0 || rec.ver <= self->etcd_ver[p]) {
            continue;
        }
        //  As it was, ver included, so that the newest knowledge of any
        //  live node wins whoever writes first. Only if someone decided on
        //  the restored record meanwhile (a node that did not see etcd go
        //  back) is its epoch at or above ours: then a new epoch above it,
        //  so that no node sees an epoch go back.
        if (self->etcd_epoch[p] >= rec.epoch) {
            rec.epoch = self->etcd_epoch[p] + 1;
        }
        if (tern_cluster_cas_write(self, &rec)) {
            char text[TERN_PARTMAP_TEXT_MAX] = "";
            tern_partmap_record_encode(&rec, text, sizeof text);
            zsys_warning("cluster: partition %u: wrote back the newest record this node saw "
                         "over etcd's older one: %s",
                         p, text);
        } else {
            //  Someone wrote first (the key was read again): decide anew.
            self->republish_due = true;
            self->next_republish_ms = now + 100;
        }
        tern_cluster_tick_keepalive(self);
    }
}
