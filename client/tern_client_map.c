/*  tern_client_map.c - the partition map of a cluster: ADMIN `cluster` JSON in, routes out.

    The reader below knows only the shape of that one reply (an object with
    `partitions`, `nodes` and `map`; every other key is skipped, whatever
    its value), so libtern carries no general JSON parser: ternctl's
    (tools/ternctl_json.c) sits above libtern and cannot be linked from it.
    It walks the text once with a cursor; strings are taken without
    unescaping, since endpoints and states are plain ASCII.
*/
#include "tern_client_map.h"

#include "tern_alloc.h"
#include "tern_partition.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  A cursor over the JSON text

typedef struct {
    const char *at;  //  next byte
    const char *end; //  one past the last byte
    bool bad;        //  the text broke the grammar
} s_cur_t;

static void s_ws(s_cur_t *c) {
    while (c->at < c->end &&
           (*c->at == ' ' || *c->at == '\n' || *c->at == '\r' || *c->at == '\t')) {
        c->at++;
    }
}

//  Consumes CH (after blanks) if it is next.
static bool s_eat(s_cur_t *c, char ch) {
    s_ws(c);
    if (c->at < c->end && *c->at == ch) {
        c->at++;
        return true;
    }
    return false;
}

//  A string: its raw bytes (escapes left as they are) in OUT, at most
//  OUT_SIZE - 1; longer ones are marked bad.
static void s_string(s_cur_t *c, char *out, size_t out_size) {
    if (!s_eat(c, '"')) {
        c->bad = true;
        return;
    }
    size_t n = 0;
    while (c->at < c->end && *c->at != '"') {
        if (*c->at == '\\' && c->at + 1 < c->end) {
            if (out && n + 1 < out_size) {
                out[n++] = *c->at;
            }
            c->at++;
        }
        if (out && n + 1 < out_size) {
            out[n++] = *c->at;
        } else if (out) {
            c->bad = true;
        }
        c->at++;
    }
    if (out) {
        out[n] = '\0';
    }
    if (!s_eat(c, '"')) {
        c->bad = true;
    }
}

//  An unsigned integer, or null (*IS_NULL); anything else is bad.
static uint64_t s_uint(s_cur_t *c, bool *is_null) {
    s_ws(c);
    *is_null = false;
    if (c->end - c->at >= 4 && memcmp(c->at, "null", 4) == 0) {
        c->at += 4;
        *is_null = true;
        return 0;
    }
    uint64_t v = 0;
    const char *start = c->at;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
        v = v * 10 + (uint64_t)(*c->at - '0');
        c->at++;
    }
    c->bad |= c->at == start;
    return v;
}

static void s_skip(s_cur_t *c, int depth);

//  Skips the members of a container already opened, up to CLOSE.
static void s_skip_members(s_cur_t *c, char close, bool keys, int depth) {
    if (s_eat(c, close)) {
        return;
    }
    do {
        if (keys) {
            s_string(c, NULL, 0);
            c->bad |= !s_eat(c, ':');
        }
        s_skip(c, depth + 1);
    } while (!c->bad && s_eat(c, ','));
    c->bad |= !s_eat(c, close);
}

//  Skips one value of any kind.
static void s_skip(s_cur_t *c, int depth) {
    s_ws(c);
    if (c->bad || c->at >= c->end || depth > 32) {
        c->bad = true;
        return;
    }
    char ch = *c->at;
    if (ch == '"') {
        s_string(c, NULL, 0);
    } else if (ch == '{' || ch == '[') {
        c->at++;
        s_skip_members(c, ch == '{' ? '}' : ']', ch == '{', depth);
    } else {
        //  A number, true, false or null: up to the next delimiter.
        const char *start = c->at;
        while (c->at < c->end && !strchr(",}] \n\r\t", *c->at)) {
            c->at++;
        }
        c->bad |= c->at == start;
    }
}

//  ---------------------------------------------------------------------------
//  The reply's parts

//  One element of "nodes".
static void s_node(s_cur_t *c, cl_map_t *map) {
    cl_map_node_t node = {0};
    char key[32], state[32] = "";
    bool have_id = false, is_null;
    c->bad |= !s_eat(c, '{');
    if (!c->bad && !s_eat(c, '}')) {
        do {
            s_string(c, key, sizeof key);
            c->bad |= !s_eat(c, ':');
            if (strcmp(key, "node_id") == 0) {
                uint64_t id = s_uint(c, &is_null);
                c->bad |= is_null || id > UINT32_MAX;
                node.node_id = (uint32_t)id;
                have_id = true;
            } else if (strcmp(key, "endpoint") == 0) {
                s_string(c, node.endpoint, sizeof node.endpoint);
            } else if (strcmp(key, "state") == 0) {
                s_string(c, state, sizeof state);
            } else {
                s_skip(c, 1);
            }
        } while (!c->bad && s_eat(c, ','));
        c->bad |= !s_eat(c, '}');
    }
    if (c->bad || !have_id || map->node_count == CL_MAP_NODES_MAX) {
        c->bad = true;
        return;
    }
    node.up = !state[0] || strcmp(state, "up") == 0; //  no state given: assume up
    map->nodes[map->node_count++] = node;
}

//  One element of "map"; needs map->partitions known.
static void s_entry(s_cur_t *c, cl_map_t *map) {
    char key[32];
    uint64_t partition = UINT64_MAX, leader = 0, epoch = 0;
    bool no_leader = true, is_null;
    c->bad |= !s_eat(c, '{');
    if (!c->bad && !s_eat(c, '}')) {
        do {
            s_string(c, key, sizeof key);
            c->bad |= !s_eat(c, ':');
            if (strcmp(key, "partition") == 0) {
                partition = s_uint(c, &is_null);
                c->bad |= is_null;
            } else if (strcmp(key, "leader") == 0) {
                leader = s_uint(c, &no_leader);
                c->bad |= leader > UINT32_MAX;
            } else if (strcmp(key, "epoch") == 0) {
                epoch = s_uint(c, &is_null);
            } else {
                s_skip(c, 1);
            }
        } while (!c->bad && s_eat(c, ','));
        c->bad |= !s_eat(c, '}');
    }
    if (c->bad || partition >= map->partitions) {
        c->bad = true;
        return;
    }
    map->leader[partition] = no_leader ? CL_NO_LEADER : (int64_t)leader;
    map->epoch[partition] = epoch;
}

//  The array under the current key, each element read by FN.
static void s_array(s_cur_t *c, cl_map_t *map, void (*fn)(s_cur_t *, cl_map_t *)) {
    c->bad |= !s_eat(c, '[');
    if (c->bad || s_eat(c, ']')) {
        return;
    }
    do {
        fn(c, map);
    } while (!c->bad && s_eat(c, ','));
    c->bad |= !s_eat(c, ']');
}

static void s_map_alloc(cl_map_t *map, uint64_t partitions) {
    map->partitions = (uint32_t)partitions;
    map->leader = tern_alloc(partitions * sizeof *map->leader);
    map->epoch = tern_alloc(partitions * sizeof *map->epoch);
    for (uint64_t p = 0; p < partitions; p++) {
        map->leader[p] = CL_NO_LEADER;
    }
}

cl_map_t *cl_map_parse(const char *json, size_t len, char *why, size_t why_size) {
    s_cur_t c = {json, json + len, false};
    cl_map_t *map = tern_alloc(sizeof *map);
    bool have_nodes = false, have_map = false, is_null;
    char key[32];
    const char *problem = "not a JSON object";
    if (s_eat(&c, '{') && !s_eat(&c, '}')) {
        problem = "`map` before `partitions`";
        do {
            s_string(&c, key, sizeof key);
            c.bad |= !s_eat(&c, ':');
            if (strcmp(key, "partitions") == 0 && !map->partitions) {
                uint64_t p = s_uint(&c, &is_null);
                c.bad |= is_null || p == 0 || p > CL_MAP_PARTITIONS_MAX;
                if (!c.bad) {
                    s_map_alloc(map, p);
                }
            } else if (strcmp(key, "nodes") == 0) {
                s_array(&c, map, s_node);
                have_nodes = true;
            } else if (strcmp(key, "map") == 0 && map->partitions) {
                s_array(&c, map, s_entry);
                have_map = true;
            } else {
                c.bad |= strcmp(key, "map") == 0; //  before partitions
                s_skip(&c, 1);
            }
        } while (!c.bad && s_eat(&c, ','));
        c.bad |= !s_eat(&c, '}');
        if (!c.bad) {
            problem = !map->partitions ? "no `partitions`"
                      : !have_nodes    ? "no `nodes`"
                      : !have_map      ? "no `map`"
                                       : NULL;
        } else {
            problem = "malformed JSON, or a value out of range";
        }
    }
    if (problem) {
        snprintf(why, why_size, "cluster map: %s", problem);
        cl_map_destroy(&map);
    }
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

//  One value: for an object, KEY's string value into VALUE (VALUE_SIZE
//  bytes; stays "" when absent or not a string); any other value skipped.
static void s_item(s_cur_t *c, const char *key, char *value, size_t value_size) {
    s_ws(c);
    if (c->at >= c->end || *c->at != '{') {
        s_skip(c, 1);
        return;
    }
    c->at++;
    if (s_eat(c, '}')) {
        return;
    }
    char name[256];
    do {
        s_string(c, name, sizeof name);
        c->bad |= !s_eat(c, ':');
        s_ws(c);
        if (!c->bad && strcmp(name, key) == 0 && c->at < c->end && *c->at == '"') {
            s_string(c, value, value_size);
        } else {
            s_skip(c, 2);
        }
    } while (!c->bad && s_eat(c, ','));
    c->bad |= !s_eat(c, '}');
}

bool cl_json_items(const char *json, size_t len, const char *key, cl_json_item_fn *fn, void *arg) {
    s_cur_t c = {json, json + len, false};
    bool array = s_eat(&c, '[');
    if (!(array && s_eat(&c, ']'))) {
        do {
            s_ws(&c);
            const char *start = c.at;
            char value[CL_JSON_VALUE_MAX + 1] = "";
            s_item(&c, key, value, sizeof value);
            if (!c.bad) {
                fn(start, (size_t)(c.at - start), value, arg);
            }
        } while (array && !c.bad && s_eat(&c, ','));
        c.bad |= array && !s_eat(&c, ']');
    }
    s_ws(&c);
    return !c.bad && c.at == c.end;
}
