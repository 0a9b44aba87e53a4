/*  tern_broker.c - starts and stops one node's store and actors. */
#include "tern_broker.h"
#include "tern_auth.h"
#include "tern_cluster.h"
#include "tern_conn.h"
#include "tern_crepl.h"
#include "tern_http.h"
#include "tern_repl.h"
#include "tern_id.h"
#include "tern_route.h"
#include "tern_storer.h"
#include "tern_work.h"
#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct tern_broker_t {
    tern_config_t config;           //  our copy; actors borrow it
    tern_store_t *store;            //  owned
    tern_id_gen_t *ids;             //  owned; used by the storer
    tern_metrics_t *metrics;        //  owned
    tern_cluster_t *cluster;        //  owned; NULL on a single node (no cluster/etcd)
    tern_storer_args_t storer_args; //  borrowed by the storer
    tern_route_args_t route_args;   //  borrowed by route
    tern_conn_args_t conn_args;     //  borrowed by conn
    tern_repl_args_t repl_args;     //  borrowed by repl
    zactor_t *repl;                 //  replication actor, owned (NULL: off)
    tern_crepl_args_t crepl_args;   //  borrowed by crepl
    tern_crepl_stats_t crepl_stats; //  written by crepl, read by metrics
    zactor_t *crepl;                //  in-DC replication actor, owned (NULL: single node)
    tern_repl_stats_t repl_stats;   //  written by repl, read by metrics
    tern_quiet_t quiet;             //  written by route, read by the storer (single node)
    zactor_t *storer;               //  actors, owned
    zactor_t *route;
    zactor_t *conn;
    tern_auth_args_t auth_args; //  borrowed by the ZAP handler
    zactor_t *auth;             //  ZAP handler (auth/mode curve), owned
    tern_http_t *http;          //  /metrics and /healthz, owned (NULL when off)
};

static atomic_uint s_instances;

void tern_broker_destroy(tern_broker_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_broker_t *self = *self_p;
    if (self->metrics) {
        atomic_store(&self->metrics->serving, 0);
    }
    if (self->cluster) {
        //  Leaders hand over first, while clients can still be told where
        //  to go (TERN_ENOTLEADER names the new leader).
        tern_cluster_handover_all(self->cluster, (int)self->config.lease_ms);
    }
    tern_http_destroy(&self->http);
    zactor_destroy(&self->conn);
    zactor_destroy(&self->crepl); //  after conn (it forwards to it), before the storer
    zactor_destroy(&self->repl);
    zactor_destroy(&self->route);
    zactor_destroy(&self->storer);
    tern_cluster_destroy(&self->cluster); //  after conn and route, which borrow it
    zactor_destroy(&self->auth);          //  after every socket that used it
    tern_store_destroy(&self->store);
    tern_id_gen_destroy(&self->ids);
    tern_metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}

//  Why the store in DIR did not open (ERR and SYS_ERRNO from tern_store_new),
//  in words an operator can act on.
static void s_store_error(const char *dir, tern_err_t err, int sys_errno, char *errbuf,
                          size_t errlen) {
    if (err == TERN_EBUSY) {
        long pid = tern_store_lock_holder(dir);
        if (pid > 0) {
            snprintf(errbuf, errlen, "data directory %s is in use by pid %ld", dir, pid);
        } else {
            snprintf(errbuf, errlen, "data directory %s is in use by another process", dir);
        }
    } else if (err == TERN_ESTORAGE && sys_errno) {
        snprintf(errbuf, errlen, "data directory %s: %s", dir, strerror(sys_errno));
    } else {
        snprintf(errbuf, errlen, "cannot open the store in %s: %s (%s)", dir, tern_strerror(err),
                 tern_errname(err));
    }
}

//  Opens the store and the id generator, which resumes after the last id
//  time the store recorded. False with ERRBUF filled on failure.
static bool s_open_store(tern_broker_t *self, char *errbuf, size_t errlen) {
    tern_store_config_t store_config;
    tern_config_store(&self->config, &store_config);
    tern_err_t err = TERN_OK;
    self->store = tern_store_new(&store_config, &err);
    if (!self->store) {
        s_store_error(self->config.data_dir, err, errno, errbuf, errlen);
        return false;
    }
    uint64_t last_ms = 0;
    tern_store_reader_t *reader = tern_store_reader_new(self->store);
    if (reader && tern_store_read_begin(reader) == TERN_OK) {
        if (tern_store_get_u64(reader, "id.last_ms", &last_ms) != TERN_OK) {
            last_ms = 0;
        }
        tern_store_read_end(reader);
    }
    tern_store_reader_destroy(&reader);
    self->ids = tern_id_gen_new(self->config.node_id, last_ms,
                                (uint32_t)self->config.clock_backwards_max_ms, NULL, NULL);
    if (!self->ids) {
        snprintf(errbuf, errlen, "bad node id %u (0..%u)", self->config.node_id, TERN_ID_NODE_MAX);
        return false;
    }
    return true;
}

//  Joins the cluster when cluster/etcd is set (after the store opened: the
//  join needs its identity; before the actors that read the view). False
//  with ERRBUF filled when the join fails.
static bool s_join_cluster(tern_broker_t *self, char *errbuf, size_t errlen) {
    if (!self->config.etcd[0]) {
        return true;
    }
    const char *endpoint = self->config.advertise[0] ? self->config.advertise : self->config.listen;
    self->cluster = tern_cluster_new(&self->config, endpoint, self->config.cluster_listen,
                                     tern_store_identity(self->store), errbuf, errlen);
    return self->cluster != NULL;
}

//  Fills every actor's args: what it borrows and the inproc endpoints that
//  connect the actors, unique per broker in this process.
static void s_wire(tern_broker_t *self) {
    unsigned instance = atomic_fetch_add(&s_instances, 1);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "inproc://tern-%d-%u", (int)getpid(), instance);

    tern_storer_args_t *sa = &self->storer_args;
    sa->store = self->store;
    sa->config = &self->config;
    sa->metrics = self->metrics;
    sa->ids = self->ids;
    sa->cluster = self->cluster;
    snprintf(sa->inbox, sizeof sa->inbox, "%s-storer", prefix);
    snprintf(sa->conn_inbox, sizeof sa->conn_inbox, "%s-conn", prefix);
    snprintf(sa->route_inbox, sizeof sa->route_inbox, "%s-route", prefix);
    if (tern_repl_enabled(&self->config)) {
        snprintf(sa->repl_inbox, sizeof sa->repl_inbox, "%s-repl", prefix);
    }

    tern_route_args_t *ra = &self->route_args;
    ra->store = self->store;
    ra->config = &self->config;
    ra->metrics = self->metrics;
    ra->cluster = self->cluster;
    snprintf(ra->inbox, sizeof ra->inbox, "%s-route", prefix);
    snprintf(ra->storer_inbox, sizeof ra->storer_inbox, "%s-storer", prefix);
    snprintf(ra->conn_out, sizeof ra->conn_out, "%s-out", prefix);
    if (!self->cluster) { //  a cluster's NOTICEs also raise route's high watermarks
        sa->quiet = ra->quiet = &self->quiet;
    }

    tern_conn_args_t *ca = &self->conn_args;
    ca->store = self->store;
    ca->config = &self->config;
    ca->metrics = self->metrics;
    ca->cluster = self->cluster;
    snprintf(ca->inbox, sizeof ca->inbox, "%s-conn", prefix);
    snprintf(ca->out, sizeof ca->out, "%s-out", prefix);
    snprintf(ca->storer_inbox, sizeof ca->storer_inbox, "%s-storer", prefix);
    snprintf(ca->route_inbox, sizeof ca->route_inbox, "%s-route", prefix);
    ca->bind_rc = -1;

    if (self->cluster) {
        //  The storer's results go through crepl, which holds each publish
        //  until the partition's in-sync replicas have it.
        snprintf(sa->conn_inbox, sizeof sa->conn_inbox, "%s-crepl", prefix);
        sa->notices_to_conn = true; //  and each NOTICE until they have its messages
        //  One decision for the storer and crepl: the storer flushes after
        //  sending its results (then SYNCED) only with no cross-DC repl.
        sa->deferred = !sa->repl_inbox[0] && self->config.durability == TERN_DURABILITY_FSYNC;
        tern_crepl_args_t *cr = &self->crepl_args;
        cr->deferred = sa->deferred;
        cr->store = self->store;
        cr->config = &self->config;
        cr->metrics = self->metrics;
        cr->cluster = self->cluster;
        cr->stats = &self->crepl_stats;
        snprintf(cr->inbox, sizeof cr->inbox, "%s-crepl", prefix);
        snprintf(cr->storer_inbox, sizeof cr->storer_inbox, "%s-storer", prefix);
        snprintf(cr->conn_inbox, sizeof cr->conn_inbox, "%s-conn", prefix);
        snprintf(cr->route_inbox, sizeof cr->route_inbox, "%s-route", prefix);
        snprintf(cr->repl_inbox, sizeof cr->repl_inbox, "%s", sa->repl_inbox);
        cr->bind_rc = -1;
    }

    tern_repl_args_t *pa = &self->repl_args;
    pa->store = self->store;
    pa->config = &self->config;
    pa->metrics = self->metrics;
    pa->stats = &self->repl_stats;
    pa->cluster = self->cluster;
    snprintf(pa->inbox, sizeof pa->inbox, "%s-repl", prefix);
    snprintf(pa->storer_inbox, sizeof pa->storer_inbox, "%s-storer", prefix);
    pa->bind_rc = -1;
}

//  Starts the actors in dependency order: the ZAP handler before any CURVE
//  socket accepts, storer and route before repl and conn push to them, conn
//  last (it opens the client endpoint). False with ERRBUF filled on failure.
static bool s_start_actors(tern_broker_t *self, char *errbuf, size_t errlen) {
    if (self->config.auth_mode == TERN_AUTH_CURVE) {
        tern_auth_args_t *aa = &self->auth_args;
        aa->clients_dir = self->config.auth_clients;
        aa->verbose = self->config.verbose;
        aa->metrics = self->metrics;
        aa->refused = &self->metrics->auth_refused;
        self->auth = zactor_new(tern_auth_actor, aa);
        if (!self->auth || aa->bind_rc != 0) {
            snprintf(errbuf, errlen, "%s", aa->error[0] ? aa->error : "cannot start auth");
            return false;
        }
    }
    self->storer = zactor_new(tern_storer_actor, &self->storer_args);
    self->route = self->storer ? zactor_new(tern_route_actor, &self->route_args) : NULL;
    if (!self->storer || !self->route) {
        snprintf(errbuf, errlen, "cannot start the storer and route actors");
        return false;
    }
    if (tern_repl_enabled(&self->config)) {
        tern_repl_args_t *pa = &self->repl_args;
        self->repl = zactor_new(tern_repl_actor, pa);
        if (!self->repl || pa->bind_rc != 0) {
            snprintf(errbuf, errlen, "%s", pa->error[0] ? pa->error : "cannot start repl");
            return false;
        }
    }
    if (self->cluster) {
        tern_crepl_args_t *cr = &self->crepl_args;
        self->crepl = zactor_new(tern_crepl_actor, cr);
        if (!self->crepl || cr->bind_rc != 0) {
            snprintf(errbuf, errlen, "%s", cr->error[0] ? cr->error : "cannot start crepl");
            return false;
        }
    }
    tern_conn_args_t *ca = &self->conn_args;
    self->conn = zactor_new(tern_conn_actor, ca);
    if (!self->conn || ca->bind_rc != 0) {
        snprintf(errbuf, errlen, "%s", ca->error[0] ? ca->error : "cannot start conn");
        return false;
    }
    return true;
}

//  Starts /metrics and /healthz if configured. Observability is not
//  service: a busy metrics port is logged and the node serves without it
//  (Prometheus sees it down and alerts).
static void s_start_http(tern_broker_t *self) {
    if (!self->config.metrics[0] || strcmp(self->config.metrics, "off") == 0) {
        return;
    }
    char why[300];
    self->http =
        tern_http_new(&self->config, self->metrics, self->store,
                      self->repl ? &self->repl_stats : NULL, self->cluster, why, sizeof why);
    if (!self->http) {
        zsys_error("ternd: %s; serving without /metrics", why);
    } else if (self->config.verbose) {
        zsys_info("ternd: metrics on %s (port %d)", self->config.metrics,
                  tern_http_port(self->http));
    }
}

tern_broker_t *tern_broker_new(const tern_config_t *config, char *errbuf, size_t errlen) {
    tern_broker_t *self = tern_alloc(sizeof *self);
    self->config = *config;
    self->metrics = tern_metrics_new_with(config->metrics_series);
    if (config->etcd[0]) {
        tern_metrics_cluster_init(self->metrics, config->partitions); //  before any actor
    }
    if (tern_auth_check_listen(&self->config, errbuf, errlen) != TERN_OK) {
        goto fail; //  the --insecure rule (docs/security.md)
    }
    if (!s_open_store(self, errbuf, errlen) || !s_join_cluster(self, errbuf, errlen)) {
        goto fail;
    }
    s_wire(self);
    if (!s_start_actors(self, errbuf, errlen)) {
        goto fail;
    }
    if (self->cluster && !self->config.advertise[0] &&
        strcmp(self->conn_args.bound, self->config.listen) != 0) {
        tern_cluster_set_endpoint(self->cluster, self->conn_args.bound); //  e.g. port 0
    }
    atomic_store(&self->metrics->serving, 1);
    s_start_http(self);
    return self;

fail:
    tern_broker_destroy(&self);
    return NULL;
}

const char *tern_broker_endpoint(tern_broker_t *self) {
    return self->conn_args.bound;
}

tern_metrics_t *tern_broker_metrics(tern_broker_t *self) {
    return self->metrics;
}

tern_repl_stats_t *tern_broker_repl_stats(tern_broker_t *self) {
    return self->repl ? &self->repl_stats : NULL;
}
