/*  tern_client_map.h - libtern's copy of a cluster's partition map, parsed from ADMIN `cluster`.

    Pure: no socket, no clock, no lock (the caller guards it). The cluster
    side of libtern (tern_client_cluster.c) asks a broker for `cluster`,
    parses the REPLY JSON here (docs/protocol.md, "Admin op cluster"), and
    routes each publish to the leader of its topic's partition
    (protocol/tern_partition.h, the same function ternd uses). An ERROR
    TERN_ENOTLEADER's reason names the new leader; cl_map_hint reads it so a
    publish can follow at once, before the next refresh.
*/
#ifndef TERN_CLIENT_MAP_H_INCLUDED
#define TERN_CLIENT_MAP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

#define CL_MAP_NODES_MAX      64    /* nodes a client follows */
#define CL_MAP_PARTITIONS_MAX 65536 /* partitions a map may have */
#define CL_MAP_ENDPOINT_MAX   255   /* a node's client endpoint */
#define CL_NO_LEADER          (-1)  /* leader of a partition without one */

typedef struct {
    uint32_t node_id;                       //  the node's id
    char endpoint[CL_MAP_ENDPOINT_MAX + 1]; //  its client endpoint, tcp://HOST:PORT
    bool up;                                //  its state is "up" (or not given)
} cl_map_node_t;

typedef struct {
    uint32_t partitions;                   //  P of the cluster (>= 1)
    size_t node_count;                     //  nodes[0..node_count)
    cl_map_node_t nodes[CL_MAP_NODES_MAX]; //  the nodes, as listed
    int64_t *leader;                       //  per partition: node id or CL_NO_LEADER, owned
    uint64_t *epoch;                       //  per partition: leader epoch, owned
} cl_map_t;

/*  Parses the REPLY JSON of ADMIN `cluster` (LEN bytes at JSON). Returns the
    map (caller owns it: cl_map_destroy), or NULL with the reason in WHY
    (WHY_SIZE bytes) when the text is not JSON, lacks `partitions`, `nodes`
    or `map`, or has a partition, node id or endpoint out of range. */
cl_map_t *cl_map_parse(const char *json, size_t len, char *why, size_t why_size);

/*  Frees *SELF_P and nulls it. Safe on NULL. */
void cl_map_destroy(cl_map_t **self_p);

/*  The node that leads PARTITION, or CL_NO_LEADER (also out of range). */
int64_t cl_map_leader(const cl_map_t *self, uint32_t partition);

/*  Node NODE_ID, or NULL. Borrowed; valid until the map changes. */
const cl_map_node_t *cl_map_node(const cl_map_t *self, uint32_t node_id);

/*  The partition of TOPIC (its LEN bytes), as ternd computes it. */
uint32_t cl_map_partition(const cl_map_t *self, const char *topic, size_t len);

/*  Reads an ERROR TERN_ENOTLEADER reason, "partition P is led by node N at
    ENDPOINT", "partition P is led by node N" or "partition P has no
    leader": sets *PARTITION, *LEADER (N or CL_NO_LEADER) and ENDPOINT
    (ENDPOINT_SIZE bytes, "" when not given). False for any other reason
    (e.g. "partition P: node N's etcd lease may have lapsed"). */
bool cl_map_hint(const char *reason, uint32_t *partition, int64_t *leader, char *endpoint,
                 size_t endpoint_size);

/*  Applies a hint to SELF: PARTITION is led by LEADER (at ENDPOINT, added
    as a node when unknown and not empty). False if PARTITION is out of
    range or the node table is full. */
bool cl_map_apply_hint(cl_map_t *self, uint32_t partition, int64_t leader, const char *endpoint);

/*  Walks a JSON admin reply (LEN bytes at JSON): for an array, calls FN
    once per element, in order, with its text as written (ITEM, ITEM_LEN
    bytes, borrowed from JSON) and the string value of its member KEY (""
    when it is not an object, has no such member or the value is not a
    string); for any other value, calls FN once with the whole value. False
    when the text is not well-formed JSON (FN not called) or a KEY value is
    longer than CL_JSON_VALUE_MAX (FN called for the elements before it).
    The gathering of `topics` and `trace` over the nodes of a cluster uses
    it. */
#define CL_JSON_VALUE_MAX 511 /* the longest KEY value cl_json_items reads */
typedef void cl_json_item_fn(const char *item, size_t item_len, const char *value, void *arg);
bool cl_json_items(const char *json, size_t len, const char *key, cl_json_item_fn *fn, void *arg);

#pragma GCC visibility pop

#endif
