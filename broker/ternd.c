/*  ternd.c - the tern broker daemon: config, start the node, wait, stop.

    Thin by design (see tern_broker.c for the actors): parse the configuration,
    start the node, print "ternd: ready on <endpoint>", wait for SIGTERM or
    SIGINT, stop in reverse order (conn, route, storer flushing its commits,
    LMDB), exit 0. A bad configuration, a data directory in use by another
    node or unusable, or a busy endpoint exits 1 with one line on stderr.
*/
#include "tern_broker.h"
#include "tern_config.h"
#include "tern_log.h"
#include "tern_memory.h"
#include <czmq.h>
#include <stdio.h>

int main(int argc, char **argv) {
    tern_config_t config;
    tern_config_defaults(&config);
    char errbuf[512] = "";
    bool exit_now = false;
    if (tern_config_parse_args(&config, argc, argv, stdout, &exit_now, errbuf, sizeof errbuf) !=
        TERN_OK) {
        fprintf(stderr, "ternd: %s\n", errbuf[0] ? errbuf : "bad configuration");
        return 1;
    }
    if (exit_now) {
        return 0;
    }
    tern_memory_setup();
    zsys_init();
    tern_log_start("ternd", stderr);
    zsys_set_linger(0);
    tern_broker_t *broker = tern_broker_new(&config, errbuf, sizeof errbuf);
    if (!broker) {
        zsys_error("ternd: %s", errbuf);
        zsys_shutdown();
        return 1;
    }
    zsys_info("ternd: ready on %s", tern_broker_endpoint(broker));
    if (config.verbose) {
        zsys_info("ternd: node %u dc %s data %s", config.node_id, config.dc, config.data_dir);
    }
    while (!zsys_interrupted) {
        zclock_sleep(50);
        tern_memory_tick(); //  gives back what a burst left free
    }
    zsys_info("ternd: stopping");
    tern_broker_destroy(&broker);
    zsys_info("ternd: stopped");
    zsys_shutdown();
    return 0;
}
