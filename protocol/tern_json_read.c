/*  tern_json_read.c - the JSON reader (see the .h), and writing what it
    read back with tern_json.c.
*/
#include "tern_alloc.h"
#include "tern_json_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

//  ---------------------------------------------------------------------------
//  Writing a parsed value back

//  Writes VALUE without a leading separator.
static void s_write(tern_json_t *out, const tern_json_value_t *value) {
    switch (value->kind) {
        case TERN_JSON_NULL:
            tern_json_raw(out, "null");
            break;
        case TERN_JSON_BOOL:
            tern_json_raw(out, value->boolean ? "true" : "false");
            break;
        case TERN_JSON_NUMBER:
            tern_json_rawn(out, value->text, value->text_len);
            break;
        case TERN_JSON_STRING:
            tern_json_strn(out, value->text, value->text_len);
            break;
        case TERN_JSON_ARRAY:
            tern_json_raw(out, "[");
            for (size_t i = 0; i < value->count; i++) {
                tern_json_write_value(out, value->items[i]);
            }
            tern_json_raw(out, "]");
            break;
        case TERN_JSON_OBJECT:
            tern_json_raw(out, "{");
            for (size_t i = 0; i < value->count; i++) {
                tern_json_key(out, value->keys[i]);
                s_write(out, value->items[i]);
            }
            tern_json_raw(out, "}");
            break;
    }
}

void tern_json_write_value(tern_json_t *out, const tern_json_value_t *value) {
    //  After tern_json_key the separator was written; as an element it is due now.
    if (out->len > 0 && out->data[out->len - 1] != ':') {
        tern_json_sep(out);
    }
    s_write(out, value);
}

//  ---------------------------------------------------------------------------
//  Parser

typedef struct {
    const char *p;   //  next byte
    const char *end; //  end of input
    int depth;       //  nesting
} s_parser_t;

static void s_skip_ws(s_parser_t *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static tern_json_value_t *s_new(tern_json_kind_t kind) {
    tern_json_value_t *v = tern_realloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static void s_put_utf8(tern_json_t *b, uint32_t cp) {
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    tern_json_rawn(b, out, n);
}

static bool s_hex4(s_parser_t *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) {
        return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *ps->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return false;
        }
    }
    *out = v;
    return true;
}

//  Parses a string at ps->p (after the opening quote) into B.
static bool s_parse_string(s_parser_t *ps, tern_json_t *b) {
    tern_json_reset(b);
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c != '\\') {
            tern_json_rawn(b, (const char *)&c, 1);
            continue;
        }
        if (ps->p >= ps->end) {
            return false;
        }
        char e = *ps->p++;
        const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
        const char *hit = NULL;
        for (const char *m = map; *m; m += 2) {
            if (*m == e) {
                hit = m + 1;
                break;
            }
        }
        if (hit) {
            tern_json_rawn(b, hit, 1);
        } else if (e == 'u') {
            uint32_t cp;
            if (!s_hex4(ps, &cp)) {
                return false;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    return false;
                }
                ps->p += 2;
                if (!s_hex4(ps, &low) || low < 0xDC00 || low > 0xDFFF) {
                    return false;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
            }
            s_put_utf8(b, cp);
        } else {
            return false;
        }
    }
    return false;
}

static tern_json_value_t *s_parse_value(s_parser_t *ps);

static tern_json_value_t *s_parse_container(s_parser_t *ps, bool object) {
    tern_json_value_t *v = s_new(object ? TERN_JSON_OBJECT : TERN_JSON_ARRAY);
    char close = object ? '}' : ']';
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return v;
    }
    tern_json_t key; //  each member name, handed to V->keys
    tern_json_init(&key);
    while (true) {
        s_skip_ws(ps);
        char *name = NULL;
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') {
                goto fail;
            }
            ps->p++;
            if (!s_parse_string(ps, &key)) {
                goto fail;
            }
            name = key.data;
            key.data = NULL;
            tern_json_init(&key);
            s_skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(name);
                goto fail;
            }
            ps->p++;
        }
        tern_json_value_t *item = s_parse_value(ps);
        if (!item) {
            free(name);
            goto fail;
        }
        v->items = tern_realloc(v->items, (v->count + 1) * sizeof *v->items);
        if (object) {
            v->keys = tern_realloc(v->keys, (v->count + 1) * sizeof *v->keys);
            v->keys[v->count] = name;
        }
        v->items[v->count++] = item;
        s_skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            tern_json_free(&key);
            return v;
        }
        goto fail;
    }
fail:
    tern_json_free(&key);
    tern_json_value_destroy(&v);
    return NULL;
}

static tern_json_value_t *s_parse_kind(s_parser_t *ps) {
    s_skip_ws(ps);
    if (ps->p >= ps->end) {
        return NULL;
    }
    char c = *ps->p;
    if (c == '{' || c == '[') {
        if (++ps->depth > JSON_MAX_DEPTH) {
            return NULL;
        }
        ps->p++;
        tern_json_value_t *v = s_parse_container(ps, c == '{');
        ps->depth--;
        return v;
    }
    if (c == '"') {
        ps->p++;
        tern_json_t text;
        tern_json_init(&text);
        if (!s_parse_string(ps, &text)) {
            tern_json_free(&text);
            return NULL;
        }
        tern_json_value_t *v = s_new(TERN_JSON_STRING);
        v->text = text.data;
        v->text_len = text.len;
        return v;
    }
    static const struct {
        const char *word;
        tern_json_kind_t kind;
        bool value;
    } words[] = {{"true", TERN_JSON_BOOL, true},
                 {"false", TERN_JSON_BOOL, false},
                 {"null", TERN_JSON_NULL, false}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i].word, n) == 0) {
            ps->p += n;
            tern_json_value_t *v = s_new(words[i].kind);
            v->boolean = words[i].value;
            return v;
        }
    }
    //  Number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const char *start = ps->p;
    if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        return NULL;
    }
    if (*ps->p == '0') {
        ps->p++;
    } else {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            ps->p++;
        }
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            return NULL;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            ps->p++;
        }
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) {
            ps->p++;
        }
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            return NULL;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            ps->p++;
        }
    }
    tern_json_value_t *v = s_new(TERN_JSON_NUMBER);
    v->text_len = (size_t)(ps->p - start);
    v->text = tern_realloc(NULL, v->text_len + 1);
    memcpy(v->text, start, v->text_len);
    v->text[v->text_len] = 0;
    return v;
}

//  One value, with its span in the input.
static tern_json_value_t *s_parse_value(s_parser_t *ps) {
    s_skip_ws(ps);
    const char *start = ps->p;
    tern_json_value_t *v = s_parse_kind(ps);
    if (v) {
        v->src = start;
        v->src_len = (size_t)(ps->p - start);
    }
    return v;
}

tern_json_value_t *tern_json_parse_first(const char *text, size_t len, size_t *used) {
    if (!text) {
        return NULL;
    }
    s_parser_t ps = {text, text + len, 0};
    tern_json_value_t *v = s_parse_value(&ps);
    s_skip_ws(&ps);
    if (v && used) {
        *used = (size_t)(ps.p - text);
    }
    return v;
}

tern_json_value_t *tern_json_parse(const char *text, size_t len) {
    size_t used = 0;
    tern_json_value_t *v = tern_json_parse_first(text, len, &used);
    if (v && used != len) {
        tern_json_value_destroy(&v);
    }
    return v;
}

void tern_json_value_destroy(tern_json_value_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_json_value_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++) {
        tern_json_value_destroy(&self->items[i]);
        if (self->keys) {
            free(self->keys[i]);
        }
    }
    free(self->items);
    free(self->keys);
    free(self->text);
    free(self);
}

uint64_t tern_json_get_u64(const tern_json_value_t *self, const char *key) {
    const tern_json_value_t *v = tern_json_get(self, key);
    return v && v->kind == TERN_JSON_NUMBER ? strtoull(v->text, NULL, 10) : 0;
}

const tern_json_value_t *tern_json_get(const tern_json_value_t *self, const char *key) {
    if (!self || self->kind != TERN_JSON_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        if (strcmp(self->keys[i], key) == 0) {
            return self->items[i];
        }
    }
    return NULL;
}
