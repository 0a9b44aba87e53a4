/*  ternctl_json.c - JSON parsing/writing, UTF-8 check and base64 for ternctl.

    See ternctl_json.h. Out of memory ends the tool (tern_alloc.h).
*/
#include "tern_alloc.h"
#include "ternctl_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

//  ---------------------------------------------------------------------------
//  Writer

void jbuf_init(jbuf_t *b) {
    memset(b, 0, sizeof *b);
    b->first[0] = true;
}

void jbuf_free(jbuf_t *b) {
    free(b->data);
    jbuf_init(b);
}

void jbuf_reset(jbuf_t *b) {
    b->len = 0;
    b->depth = 0;
    b->first[0] = true;
    if (b->data) {
        b->data[0] = 0;
    }
}

void jbuf_raw(jbuf_t *b, const char *s, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        b->data = tern_realloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = 0;
}

void jbuf_string(jbuf_t *b, const char *s, size_t len) {
    jbuf_raw(b, "\"", 1);
    size_t run = 0; //  start of the bytes copied as they are
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
            case '"':
                esc = "\\\"";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    snprintf(hex, sizeof hex, "\\u%04x", c);
                    esc = hex;
                }
        }
        if (esc) {
            jbuf_raw(b, s + run, i - run);
            jbuf_raw(b, esc, strlen(esc));
            run = i + 1;
        }
    }
    jbuf_raw(b, s + run, len - run);
    jbuf_raw(b, "\"", 1);
}

//  Writes the comma before an element when it is not the first.
static void s_separator(jbuf_t *b) {
    if (b->depth > 0) {
        if (!b->first[b->depth]) {
            jbuf_raw(b, ",", 1);
        }
        b->first[b->depth] = false;
    }
}

void jbuf_begin(jbuf_t *b, char open) {
    jbuf_raw(b, &open, 1);
    if (b->depth < JSON_MAX_DEPTH - 1) {
        b->depth++;
    }
    b->first[b->depth] = true;
}

void jbuf_end(jbuf_t *b, char close) {
    jbuf_raw(b, &close, 1);
    if (b->depth > 0) {
        b->depth--;
    }
}

void jbuf_key(jbuf_t *b, const char *key) {
    s_separator(b);
    jbuf_string(b, key, strlen(key));
    jbuf_raw(b, ":", 1);
}

void jbuf_kstr(jbuf_t *b, const char *key, const char *value) {
    jbuf_key(b, key);
    jbuf_string(b, value, strlen(value));
}

void jbuf_ku64(jbuf_t *b, const char *key, uint64_t value) {
    char text[24];
    int n = snprintf(text, sizeof text, "%llu", (unsigned long long)value);
    jbuf_key(b, key);
    jbuf_raw(b, text, (size_t)n);
}

void jbuf_kbool(jbuf_t *b, const char *key, bool value) {
    jbuf_key(b, key);
    jbuf_raw(b, value ? "true" : "false", value ? 4 : 5);
}

//  Writes VALUE without a leading separator.
static void s_write(jbuf_t *b, const json_t *value) {
    switch (value->kind) {
        case JSON_NULL:
            jbuf_raw(b, "null", 4);
            break;
        case JSON_BOOL:
            jbuf_raw(b, value->boolean ? "true" : "false", value->boolean ? 4 : 5);
            break;
        case JSON_NUMBER:
            jbuf_raw(b, value->text, value->text_len);
            break;
        case JSON_STRING:
            jbuf_string(b, value->text, value->text_len);
            break;
        case JSON_ARRAY:
            jbuf_begin(b, '[');
            for (size_t i = 0; i < value->count; i++) {
                jbuf_value(b, value->items[i]);
            }
            jbuf_end(b, ']');
            break;
        case JSON_OBJECT:
            jbuf_begin(b, '{');
            for (size_t i = 0; i < value->count; i++) {
                jbuf_key(b, value->keys[i]);
                s_write(b, value->items[i]);
            }
            jbuf_end(b, '}');
            break;
    }
}

void jbuf_value(jbuf_t *b, const json_t *value) {
    //  After jbuf_key the separator was written; as an array element it is due now.
    if (b->len > 0 && b->data[b->len - 1] != ':') {
        s_separator(b);
    }
    s_write(b, value);
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

static json_t *s_new(json_kind_t kind) {
    json_t *v = tern_realloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static void s_put_utf8(jbuf_t *b, uint32_t cp) {
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
    jbuf_raw(b, out, n);
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
static bool s_parse_string(s_parser_t *ps, jbuf_t *b) {
    jbuf_reset(b);
    jbuf_raw(b, "", 0);
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c != '\\') {
            jbuf_raw(b, (const char *)&c, 1);
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
            jbuf_raw(b, hit, 1);
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

static json_t *s_parse_value(s_parser_t *ps);

static json_t *s_parse_container(s_parser_t *ps, bool object) {
    json_t *v = s_new(object ? JSON_OBJECT : JSON_ARRAY);
    char close = object ? '}' : ']';
    jbuf_t key;
    jbuf_init(&key);
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return v;
    }
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
            jbuf_init(&key);
            s_skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(name);
                goto fail;
            }
            ps->p++;
        }
        json_t *item = s_parse_value(ps);
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
            jbuf_free(&key);
            return v;
        }
        goto fail;
    }
fail:
    jbuf_free(&key);
    json_destroy(&v);
    return NULL;
}

static json_t *s_parse_value(s_parser_t *ps) {
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
        json_t *v = s_parse_container(ps, c == '{');
        ps->depth--;
        return v;
    }
    if (c == '"') {
        ps->p++;
        jbuf_t text;
        jbuf_init(&text);
        if (!s_parse_string(ps, &text)) {
            jbuf_free(&text);
            return NULL;
        }
        json_t *v = s_new(JSON_STRING);
        v->text = text.data;
        v->text_len = text.len;
        return v;
    }
    static const struct {
        const char *word;
        json_kind_t kind;
        bool value;
    } words[] = {
        {"true", JSON_BOOL, true}, {"false", JSON_BOOL, false}, {"null", JSON_NULL, false}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i].word, n) == 0) {
            ps->p += n;
            json_t *v = s_new(words[i].kind);
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
    json_t *v = s_new(JSON_NUMBER);
    v->text_len = (size_t)(ps->p - start);
    v->text = tern_realloc(NULL, v->text_len + 1);
    memcpy(v->text, start, v->text_len);
    v->text[v->text_len] = 0;
    return v;
}

json_t *json_parse(const char *text, size_t len) {
    if (!text) {
        return NULL;
    }
    s_parser_t ps = {text, text + len, 0};
    json_t *v = s_parse_value(&ps);
    s_skip_ws(&ps);
    if (v && ps.p != ps.end) {
        json_destroy(&v);
    }
    return v;
}

void json_destroy(json_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    json_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++) {
        json_destroy(&self->items[i]);
        if (self->keys) {
            free(self->keys[i]);
        }
    }
    free(self->items);
    free(self->keys);
    free(self->text);
    free(self);
}

const json_t *json_get(const json_t *self, const char *key) {
    if (!self || self->kind != JSON_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        if (strcmp(self->keys[i], key) == 0) {
            return self->items[i];
        }
    }
    return NULL;
}

//  ---------------------------------------------------------------------------
//  UTF-8 and base64

bool utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

void jbuf_base64(jbuf_t *b, const uint8_t *data, size_t size) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < size) {
            v |= (uint32_t)data[i + 1] << 8;
        }
        if (i + 2 < size) {
            v |= data[i + 2];
        }
        char out[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63],
                       i + 1 < size ? alphabet[(v >> 6) & 63] : '=',
                       i + 2 < size ? alphabet[v & 63] : '='};
        jbuf_raw(b, out, 4);
    }
}
