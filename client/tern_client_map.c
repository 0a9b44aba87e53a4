/*  tern_client_map.c - the partition map of a cluster: ADMIN `cluster` JSON in, routes out.

    The reply is read with protocol/'s JSON reader (tern_json_read.h, the
    one ternctl uses too) and then walked for the keys of its shape (an
    object with `partitions`, `nodes` and `map`; every other key is
    ignored, whatever its value).
*/
#include "tern_client_map.h"

#include "tern_alloc.h"
#include "tern_json_read.h"
#include "tern_partition.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  The reply's parts

//  V as an unsigned integer up to MAX into *OUT: digits only (no sign,
//  fraction or exponent). A null V is *IS_NULL (when IS_NULL is given),
//  anything else false.
static bool s_uint(const tern_json_value_t *v, uint64_t max, uint64_t *out, bool *is_null) {
    if (is_null) {
        *is_null = v && v->kind == TERN_JSON_NULL;
        if (*is_null) {
            return true;
        }
    }
    if (!v || v->kind != TERN_JSON_NUMBER || v->text_len == 0 || v->text_len > 20) {
        return false;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < v->text_len; i++) {
        char c = v->text[i];
        if (c < '0' || c > '9' || n > (UINT64_MAX - (uint64_t)(c - '0')) / 10) {
            return false;
        }
        n = n * 10 + (uint64_t)(c - '0');
    }
    *out = n;
    return n <= max;
}

//  Member KEY of object O, a string, into OUT (OUT_SIZE bytes); a missing
//  member leaves OUT as it is. False if it is there and not a string that
//  fits.
static bool s_str(const tern_json_value_t *o, const char *key, char *out, size_t out_size) {
    const tern_json_value_t *v = tern_json_get(o, key);
    if (!v) {
        return true;
    }
    if (v->kind != TERN_JSON_STRING || v->text_len >= out_size) {
        return false;
    }
    memcpy(out, v->text, v->text_len + 1);
    return true;
}

//  One element of "nodes".
static bool s_node(const tern_json_value_t *o, cl_map_t *map) {
    cl_map_node_t node = {0};
    char state[32] = "";
    uint64_t id;
    if (!o || o->kind != TERN_JSON_OBJECT || map->node_count == CL_MAP_NODES_MAX ||
        !s_uint(tern_json_get(o, "node_id"), UINT32_MAX, &id, NULL) ||
        !s_str(o, "endpoint", node.endpoint, sizeof node.endpoint) ||
        !s_str(o, "state", state, sizeof state)) {
        return false;
    }
    node.node_id = (uint32_t)id;
    node.up = !state[0] || strcmp(state, "up") == 0; //  no state given: assume up
    map->nodes[map->node_count++] = node;
    return true;
}

//  One element of "map"; needs map->partitions known.
static bool s_entry(const tern_json_value_t *o, cl_map_t *map) {
    uint64_t partition, leader = 0, epoch = 0;
    bool no_leader = true, is_null;
    const tern_json_value_t *lead = o ? tern_json_get(o, "leader") : NULL;
    const tern_json_value_t *ep = o ? tern_json_get(o, "epoch") : NULL;
    if (!o || o->kind != TERN_JSON_OBJECT ||
        !s_uint(tern_json_get(o, "partition"), map->partitions - 1, &partition, NULL) ||
        (lead && !s_uint(lead, UINT32_MAX, &leader, &no_leader)) ||
        (ep && !s_uint(ep, UINT64_MAX, &epoch, &is_null))) {
        return false;
    }
    map->leader[partition] = no_leader ? CL_NO_LEADER : (int64_t)leader;
    map->epoch[partition] = epoch;
    return true;
}

//  Every element of array A read by FN; false if A is not an array or FN
//  refused one.
static bool s_array(const tern_json_value_t *a, cl_map_t *map,
                    bool (*fn)(const tern_json_value_t *, cl_map_t *)) {
    bool ok = a->kind == TERN_JSON_ARRAY;
    for (size_t i = 0; ok && i < a->count; i++) {
        ok = fn(a->items[i], map);
    }
    return ok;
}

static void s_map_alloc(cl_map_t *map, uint64_t partitions) {
    map->partitions = (uint32_t)partitions;
    map->leader = tern_alloc(partitions * sizeof *map->leader);
    map->epoch = tern_alloc(partitions * sizeof *map->epoch);
    for (uint64_t p = 0; p < partitions; p++) {
        map->leader[p] = CL_NO_LEADER;
    }
}

//  Fills MAP from DOC; the reason it cannot, or NULL.
static const char *s_map_read(const tern_json_value_t *doc, cl_map_t *map) {
    if (!doc || doc->kind != TERN_JSON_OBJECT) {
        return doc ? "not a JSON object" : "malformed JSON";
    }
    const tern_json_value_t *partitions = tern_json_get(doc, "partitions");
    const tern_json_value_t *nodes = tern_json_get(doc, "nodes");
    const tern_json_value_t *entries = tern_json_get(doc, "map");
    uint64_t p;
    if (!partitions || !nodes || !entries) {
        return !partitions ? "no `partitions`" : !nodes ? "no `nodes`" : "no `map`";
    }
    if (!s_uint(partitions, CL_MAP_PARTITIONS_MAX, &p, NULL) || p == 0) {
        return "`partitions` out of range";
    }
    s_map_alloc(map, p);
    if (!s_array(nodes, map, s_node) || !s_array(entries, map, s_entry)) {
        return "a node or partition malformed or out of range";
    }
    return NULL;
}

cl_map_t *cl_map_parse(const char *json, size_t len, char *why, size_t why_size) {
    tern_json_value_t *doc = tern_json_parse(json, len);
    cl_map_t *map = tern_alloc(sizeof *map);
    const char *problem = s_map_read(doc, map);
    if (problem) {
        snprintf(why, why_size, "cluster map: %s", problem);
        cl_map_destroy(&map);
    }
    tern_json_value_destroy(&doc);
    return map;
}

void cl_map_destroy(cl_map_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->leader);
    free((*self_p)->epoch);
    free(*self_p);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  Routing

int64_t cl_map_leader(const cl_map_t *self, uint32_t partition) {
    return partition < self->partitions ? self->leader[partition] : CL_NO_LEADER;
}

const cl_map_node_t *cl_map_node(const cl_map_t *self, uint32_t node_id) {
    for (size_t i = 0; i < self->node_count; i++) {
        if (self->nodes[i].node_id == node_id) {
            return &self->nodes[i];
        }
    }
    return NULL;
}

uint32_t cl_map_partition(const cl_map_t *self, const char *topic, size_t len) {
    return tern_partition_of(topic, len, self->partitions);
}

bool cl_map_hint(const char *reason, uint32_t *partition, int64_t *leader, char *endpoint,
                 size_t endpoint_size) {
    unsigned long p, n;
    int used = 0;
    if (!reason || sscanf(reason, "partition %lu %n", &p, &used) != 1 || used == 0 ||
        p > UINT32_MAX) {
        return false;
    }
    const char *rest = reason + used;
    if (strcmp(rest, "has no leader") == 0) {
        *partition = (uint32_t)p;
        *leader = CL_NO_LEADER;
        snprintf(endpoint, endpoint_size, "%s", "");
        return true;
    }
    int end = 0, at = 0;
    if (sscanf(rest, "is led by node %lu%n", &n, &end) != 1 || end == 0 || n > UINT32_MAX) {
        return false;
    }
    //  The endpoint is there when the answering node knows it.
    const char *ep = "";
    if (rest[end]) {
        if (sscanf(rest + end, " at %n", &at) != 0 || at == 0 || !rest[end + at] ||
            strchr(rest + end + at, ' ')) {
            return false;
        }
        ep = rest + end + at;
    }
    *partition = (uint32_t)p;
    *leader = (int64_t)n;
    snprintf(endpoint, endpoint_size, "%s", ep);
    return true;
}

bool cl_map_apply_hint(cl_map_t *self, uint32_t partition, int64_t leader, const char *endpoint) {
    if (partition >= self->partitions) {
        return false;
    }
    if (leader != CL_NO_LEADER && !cl_map_node(self, (uint32_t)leader)) {
        if (!endpoint || !endpoint[0] || self->node_count == CL_MAP_NODES_MAX) {
            return false;
        }
        cl_map_node_t *node = &self->nodes[self->node_count++];
        node->node_id = (uint32_t)leader;
        snprintf(node->endpoint, sizeof node->endpoint, "%s", endpoint);
        node->up = true;
    }
    self->leader[partition] = leader;
    return true;
}

//  ---------------------------------------------------------------------------
//  Admin replies gathered from several nodes (tern_client_admin.c)

//  Calls FN for ITEM with its text and the string value of its member KEY
//  ("" when there is none); false if that value is longer than
//  CL_JSON_VALUE_MAX.
static bool s_item(const tern_json_value_t *item, const char *key, cl_json_item_fn *fn, void *arg) {
    char value[CL_JSON_VALUE_MAX + 1] = "";
    const tern_json_value_t *v = item->kind == TERN_JSON_OBJECT ? tern_json_get(item, key) : NULL;
    if (v && v->kind == TERN_JSON_STRING) {
        if (v->text_len >= sizeof value) {
            return false;
        }
        memcpy(value, v->text, v->text_len + 1);
    }
    fn(item->src, item->src_len, value, arg);
    return true;
}

bool cl_json_items(const char *json, size_t len, const char *key, cl_json_item_fn *fn, void *arg) {
    tern_json_value_t *doc = tern_json_parse(json, len);
    bool ok = doc != NULL;
    if (ok && doc->kind == TERN_JSON_ARRAY) {
        for (size_t i = 0; ok && i < doc->count; i++) {
            ok = s_item(doc->items[i], key, fn, arg);
        }
    } else if (ok) {
        ok = s_item(doc, key, fn, arg);
    }
    tern_json_value_destroy(&doc);
    return ok;
}
