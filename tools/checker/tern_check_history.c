/*  tern_check_history.c - reads a tern-check history: JSON lines into events.

    See tern_check_history.h and docs/checker.md. Two tables drive the reader:
    the fields (JSON key and type) and the event kinds (which fields each one
    requires and which it reads when present). Keys a kind does not list are
    ignored, so the lines `ternctl --json view`, `groups` and `dlq list` print
    become history lines by adding "ev" (and "node") to them. Out of memory
    ends the tool (tern_alloc.h).
*/
#include "tern_check_history.h"
#include "tern_alloc.h"
#include "tern_json_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) (1u << (field))

typedef enum {
    S_NAME,    //  a JSON string, interned
    S_NUMBER,  //  a JSON number: an unsigned 64-bit integer
    S_BOOL,    //  true or false
    S_OUTCOME, //  "ok" or "err"
} s_type_t;

typedef struct {
    const char *key; //  the JSON key
    s_type_t type;   //  what its value must be
} s_field_t;

static const s_field_t s_fields[CK_FIELDS] = {
    [CK_CLIENT] = {"client", S_NAME},
    [CK_PRODUCER] = {"producer", S_NAME},
    [CK_PRODUCER_SEQ] = {"producer_seq", S_NUMBER},
    [CK_TOPIC] = {"topic", S_NAME},
    [CK_OUTCOME] = {"outcome", S_OUTCOME},
    [CK_CODE] = {"code", S_NUMBER},
    [CK_MSG_ID] = {"msg_id", S_NUMBER},
    [CK_SEQ] = {"seq", S_NUMBER},
    [CK_DUPLICATE] = {"duplicate", S_BOOL},
    [CK_GROUP_NAME] = {"group", S_NAME},
    [CK_CONSUMER] = {"consumer", S_NAME},
    [CK_NODE_NAME] = {"node", S_NAME},
    [CK_DELIVERY_COUNT] = {"delivery_count", S_NUMBER},
    [CK_DC] = {"dc", S_NAME},
};

typedef struct {
    const char *name;  //  the value of "ev"
    uint32_t required; //  fields that must be present
    uint32_t optional; //  fields read when present
} s_kind_t;

static const s_kind_t s_kinds[CK_KINDS] = {
    [CK_PUBLISH] = {"publish", F(CK_TOPIC) | F(CK_OUTCOME),
                    F(CK_CLIENT) | F(CK_PRODUCER) | F(CK_PRODUCER_SEQ) | F(CK_CODE) | F(CK_MSG_ID) |
                        F(CK_SEQ) | F(CK_DUPLICATE) | F(CK_DC)},
    [CK_DELIVER] = {"deliver", F(CK_GROUP_NAME) | F(CK_TOPIC) | F(CK_MSG_ID),
                    F(CK_CONSUMER) | F(CK_SEQ) | F(CK_DELIVERY_COUNT) | F(CK_PRODUCER) |
                        F(CK_PRODUCER_SEQ) | F(CK_DC)},
    [CK_ACK] = {"ack", F(CK_GROUP_NAME) | F(CK_MSG_ID), F(CK_TOPIC) | F(CK_CONSUMER) | F(CK_DC)},
    [CK_NODE] = {"node", F(CK_NODE_NAME), F(CK_TOPIC) | F(CK_DC)},
    [CK_STORED] = {"stored", F(CK_NODE_NAME) | F(CK_TOPIC) | F(CK_SEQ) | F(CK_MSG_ID),
                   F(CK_PRODUCER) | F(CK_PRODUCER_SEQ) | F(CK_DC)},
    [CK_GROUP] = {"group", F(CK_GROUP_NAME) | F(CK_TOPIC), F(CK_DC)},
    [CK_DLQ] = {"dlq", F(CK_GROUP_NAME) | F(CK_TOPIC) | F(CK_MSG_ID), F(CK_SEQ) | F(CK_DC)},
    [CK_EXPIRED] = {"expired", F(CK_MSG_ID), F(CK_TOPIC)},
};

const char *ck_kind_name(ck_kind_t kind) {
    return kind < CK_KINDS ? s_kinds[kind].name : "?";
}

//  Id of name TEXT, interned on first use.
static uint64_t s_intern(ck_history_t *self, const char *text) {
    void *found = zhashx_lookup(self->name_ids, text);
    if (found) {
        return (uint64_t)(uintptr_t)found - 1;
    }
    if (self->name_count == self->name_cap) {
        self->name_cap = self->name_cap ? self->name_cap * 2 : 256;
        self->names = tern_realloc(self->names, self->name_cap * sizeof *self->names);
    }
    uint64_t id = self->name_count++;
    self->names[id] = tern_strdup(text);
    zhashx_insert(self->name_ids, text, (void *)(uintptr_t)(id + 1));
    return id;
}

ck_history_t *ck_history_new(void) {
    ck_history_t *self = tern_alloc(sizeof *self);
    self->name_ids = zhashx_new();
    if (!self->name_ids) {
        tern_oom(0);
    }
    s_intern(self, ""); //  id 0: "no producer", "no topic"
    return self;
}

void ck_history_destroy(ck_history_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    ck_history_t *self = *self_p;
    for (size_t i = 0; i < self->file_count; i++) {
        free(self->files[i]);
    }
    for (size_t i = 0; i < self->name_count; i++) {
        free(self->names[i]);
    }
    zhashx_destroy(&self->name_ids);
    free(self->files);
    free(self->names);
    free(self->events);
    free(self);
    *self_p = NULL;
}

const char *ck_history_name(const ck_history_t *self, uint64_t id) {
    return id < self->name_count ? self->names[id] : "?";
}

const char *ck_history_where(const ck_history_t *self, const ck_event_t *ev, char *buf,
                             size_t cap) {
    snprintf(buf, cap, "%s:%u", ev->file < self->file_count ? self->files[ev->file] : "?",
             ev->line);
    return buf;
}

//  A JSON number as an unsigned 64-bit integer: digits only, no sign,
//  fraction or exponent, and no overflow.
static bool s_parse_u64(const char *text, uint64_t *out) {
    uint64_t v = 0;
    if (!*text) {
        return false;
    }
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

//  Reads field FIELD from VALUE into EV; returns NULL or why not.
static const char *s_read_field(ck_history_t *self, ck_event_t *ev, ck_field_t field,
                                const tern_json_value_t *value) {
    switch (s_fields[field].type) {
        case S_NAME:
            if (value->kind != TERN_JSON_STRING || strlen(value->text) != value->text_len) {
                return "must be a string (without NUL)";
            }
            ev->v[field] = s_intern(self, value->text);
            return NULL;
        case S_NUMBER:
            if (value->kind != TERN_JSON_NUMBER || !s_parse_u64(value->text, &ev->v[field])) {
                return "must be an unsigned 64-bit integer";
            }
            return NULL;
        case S_BOOL:
            if (value->kind != TERN_JSON_BOOL) {
                return "must be true or false";
            }
            ev->v[field] = value->boolean;
            return NULL;
        case S_OUTCOME:
            if (value->kind != TERN_JSON_STRING ||
                (strcmp(value->text, "ok") != 0 && strcmp(value->text, "err") != 0)) {
                return "must be \"ok\" or \"err\"";
            }
            ev->v[field] = strcmp(value->text, "ok") == 0;
            return NULL;
    }
    return "has an unknown type";
}

//  The rules the tables cannot say. Returns NULL or why EV is invalid.
static const char *s_check_event(const ck_event_t *ev) {
    bool has_producer = (ev->has & F(CK_PRODUCER)) && ev->v[CK_PRODUCER] != 0;
    if ((ev->has & F(CK_TOPIC)) && ev->v[CK_TOPIC] == 0) {
        return "\"topic\" is empty";
    }
    if ((ev->has & F(CK_NODE_NAME)) && ev->v[CK_NODE_NAME] == 0) {
        return "\"node\" is empty";
    }
    if (has_producer && !(ev->has & F(CK_PRODUCER_SEQ))) {
        return "\"producer\" without \"producer_seq\"";
    }
    if (ev->kind == CK_PUBLISH && ev->v[CK_OUTCOME] &&
        (ev->has & (F(CK_MSG_ID) | F(CK_SEQ))) != (F(CK_MSG_ID) | F(CK_SEQ))) {
        return "outcome \"ok\" needs \"msg_id\" and \"seq\"";
    }
    if (ev->kind == CK_PUBLISH && !ev->v[CK_OUTCOME] &&
        (!(ev->has & F(CK_CODE)) || ev->v[CK_CODE] == 0)) {
        return "outcome \"err\" needs a non-zero \"code\"";
    }
    return NULL;
}

//  Parses one line (LEN bytes) into EV. Returns false with the reason in
//  WHY (CAP bytes), naming the event kind and the key when known.
static bool s_parse_line(ck_history_t *self, const char *text, size_t len, ck_event_t *ev,
                         char *why, size_t cap) {
    tern_json_value_t *doc = tern_json_parse(text, len);
    const tern_json_value_t *name =
        doc && doc->kind == TERN_JSON_OBJECT ? tern_json_get(doc, "ev") : NULL;
    const char *problem = NULL, *key = NULL;
    ev->kind = CK_KINDS;
    for (ck_kind_t k = 0; name && name->kind == TERN_JSON_STRING && k < CK_KINDS; k++) {
        if (strcmp(s_kinds[k].name, name->text) == 0) {
            ev->kind = k;
        }
    }
    if (!doc || doc->kind != TERN_JSON_OBJECT) {
        snprintf(why, cap, "not a JSON object");
    } else if (!name || name->kind != TERN_JSON_STRING) {
        snprintf(why, cap, "no \"ev\" string (the event kind)");
    } else if (ev->kind == CK_KINDS) {
        snprintf(why, cap,
                 "unknown event \"%.40s\" (publish, deliver, ack, node, stored, group, dlq or "
                 "expired)",
                 name->text);
    }
    const s_kind_t *kind = ev->kind < CK_KINDS ? &s_kinds[ev->kind] : NULL;
    for (ck_field_t f = 0; kind && f < CK_FIELDS && !problem; f++) {
        const tern_json_value_t *value = tern_json_get(doc, s_fields[f].key);
        key = s_fields[f].key;
        if (!((kind->required | kind->optional) & F(f))) {
            continue;
        } else if (!value && (kind->required & F(f))) {
            problem = "is missing";
        } else if (value && !(problem = s_read_field(self, ev, f, value))) {
            ev->has |= F(f);
        }
    }
    if (kind && problem) {
        snprintf(why, cap, "%s: \"%s\" %s", kind->name, key, problem);
    } else if (kind && (problem = s_check_event(ev))) {
        snprintf(why, cap, "%s: %s", kind->name, problem);
    }
    tern_json_value_destroy(&doc);
    return kind && !problem;
}

//  Reads the lines of IN (named PATH) as file FILE. Returns false after
//  printing the first bad line's position and reason.
static bool s_read_stream(ck_history_t *self, FILE *in, const char *path, uint32_t file) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    uint32_t number = 0;
    bool ok = true;
    while (ok && (got = getline(&line, &cap, in)) >= 0) {
        number++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        size_t start = strspn(line, " \t");
        if (start >= len || line[start] == '#') {
            continue;
        }
        if (self->count == self->cap) {
            self->cap = self->cap ? self->cap * 2 : 1024;
            self->events = tern_realloc(self->events, self->cap * sizeof *self->events);
        }
        ck_event_t *ev = &self->events[self->count];
        memset(ev, 0, sizeof *ev);
        ev->file = file;
        ev->line = number;
        char why[256];
        if (!s_parse_line(self, line, len, ev, why, sizeof why)) {
            fprintf(stderr, "tern-check: %s:%u: %s\n", path, number, why);
            ok = false;
        } else {
            self->count++;
        }
    }
    if (ok && ferror(in)) {
        fprintf(stderr, "tern-check: %s: read error after line %u\n", path, number);
        ok = false;
    }
    free(line);
    return ok;
}

bool ck_history_read(ck_history_t *self, const char *path) {
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *in = is_stdin ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "tern-check: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    self->files = tern_realloc(self->files, (self->file_count + 1) * sizeof *self->files);
    self->files[self->file_count] = tern_strdup(is_stdin ? "stdin" : path);
    bool ok = s_read_stream(self, in, self->files[self->file_count], (uint32_t)self->file_count);
    self->file_count++;
    if (!is_stdin) {
        fclose(in);
    }
    return ok;
}
