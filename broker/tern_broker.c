/*  tern_broker.c - starts and stops one node's store and actors. */
#include "tern_broker.h"
#include "tern_conn.h"
#include "tern_id.h"
#include "tern_route.h"
#include "tern_storer.h"
#include "tern_work.h"
#include <czmq.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct tern_broker_t {
    tern_config_t config;           //  our copy; actors borrow it
    tern_store_t *store;            //  owned
    tern_id_gen_t *ids;             //  owned; used by the storer
    tern_metrics_t *metrics;        //  owned
    tern_storer_args_t storer_args; //  borrowed by the storer
    tern_route_args_t route_args;   //  borrowed by route
    tern_conn_args_t conn_args;     //  borrowed by conn
    zactor_t *storer;               //  actors, owned
    zactor_t *route;
    zactor_t *conn;
};

static atomic_uint s_instances;

void tern_broker_destroy(tern_broker_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_broker_t *self = *self_p;
    zactor_destroy(&self->conn);
    zactor_destroy(&self->route);
    zactor_destroy(&self->storer);
    tern_store_destroy(&self->store);
    tern_id_gen_destroy(&self->ids);
    tern_metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}

tern_broker_t *tern_broker_new(const tern_config_t *config, char *errbuf, size_t errlen) {
    tern_broker_t *self = tern_work_alloc(sizeof *self);
    self->config = *config;
    self->metrics = tern_metrics_new();

    tern_store_config_t store_config;
    tern_config_store(&self->config, &store_config);
    tern_err_t err = TERN_OK;
    self->store = tern_store_new(&store_config, &err);
    if (!self->store) {
        snprintf(errbuf, errlen, "cannot open the store in %s (error %d)", self->config.data_dir,
                 (int)err);
        goto fail;
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
        goto fail;
    }

    unsigned instance = atomic_fetch_add(&s_instances, 1);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "inproc://tern-%d-%u", (int)getpid(), instance);

    tern_storer_args_t *sa = &self->storer_args;
    sa->store = self->store;
    sa->config = &self->config;
    sa->metrics = self->metrics;
    sa->ids = self->ids;
    snprintf(sa->inbox, sizeof sa->inbox, "%s-storer", prefix);
    snprintf(sa->conn_inbox, sizeof sa->conn_inbox, "%s-conn", prefix);
    snprintf(sa->route_inbox, sizeof sa->route_inbox, "%s-route", prefix);

    tern_route_args_t *ra = &self->route_args;
    ra->store = self->store;
    ra->config = &self->config;
    ra->metrics = self->metrics;
    snprintf(ra->inbox, sizeof ra->inbox, "%s-route", prefix);
    snprintf(ra->storer_inbox, sizeof ra->storer_inbox, "%s-storer", prefix);
    snprintf(ra->conn_out, sizeof ra->conn_out, "%s-out", prefix);

    tern_conn_args_t *ca = &self->conn_args;
    ca->store = self->store;
    ca->config = &self->config;
    ca->metrics = self->metrics;
    snprintf(ca->inbox, sizeof ca->inbox, "%s-conn", prefix);
    snprintf(ca->out, sizeof ca->out, "%s-out", prefix);
    snprintf(ca->storer_inbox, sizeof ca->storer_inbox, "%s-storer", prefix);
    snprintf(ca->route_inbox, sizeof ca->route_inbox, "%s-route", prefix);
    ca->bind_rc = -1;

    self->storer = zactor_new(tern_storer_actor, sa);
    self->route = self->storer ? zactor_new(tern_route_actor, ra) : NULL;
    if (!self->storer || !self->route) {
        snprintf(errbuf, errlen, "cannot start the storer and route actors");
        goto fail;
    }
    self->conn = zactor_new(tern_conn_actor, ca);
    if (!self->conn || ca->bind_rc != 0) {
        snprintf(errbuf, errlen, "%s", ca->error[0] ? ca->error : "cannot start conn");
        goto fail;
    }
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
