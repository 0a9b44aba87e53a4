/*  tern_json.c - the tiny JSON writer of tern_json.h. */
#include "tern_json.h"
#include "tern_work.h"
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_reserve(tern_json_t *self, size_t more) {
    if (self->len + more + 1 > self->cap) {
        while (self->len + more + 1 > self->cap) {
            self->cap *= 2;
        }
        self->data = tern_realloc(self->data, self->cap);
    }
}

void tern_json_init(tern_json_t *self) {
    self->cap = 256;
    self->len = 0;
    self->data = tern_alloc(self->cap);
}

void tern_json_free(tern_json_t *self) {
    free(self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}

void tern_json_raw(tern_json_t *self, const char *text) {
    size_t n = strlen(text);
    s_reserve(self, n);
    memcpy(self->data + self->len, text, n + 1);
    self->len += n;
}

//  Appends LEN bytes at TEXT as a quoted JSON string (callers pass UTF-8).
static void s_strn(tern_json_t *self, const char *text, size_t len) {
    s_reserve(self, len * 6 + 2);
    char *out = self->data + self->len;
    *out++ = '"';
    for (const unsigned char *p = (const unsigned char *)text;
         p < (const unsigned char *)text + len; p++) {
        if (*p == '"' || *p == '\\') {
            *out++ = '\\';
            *out++ = (char)*p;
        } else if (*p < 0x20) {
            out += sprintf(out, "\\u%04x", *p);
        } else {
            *out++ = (char)*p;
        }
    }
    *out++ = '"';
    *out = 0;
    self->len = (size_t)(out - self->data);
}

void tern_json_str(tern_json_t *self, const char *text) {
    s_strn(self, text, strlen(text));
}

//  True if DATA is valid UTF-8 (no overlongs, surrogates or code points
//  above U+10FFFF): only then is it written as a JSON string.
static bool s_utf8_valid(const uint8_t *p, size_t size) {
    const uint8_t *end = p + size;
    while (p < end) {
        uint8_t c = *p;
        size_t n = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 9; //  continuation bytes needed (9: invalid lead)
        if (n == 9 || (size_t)(end - p) <= n || (n == 1 && c < 0xC2)) {
            return false;
        }
        uint32_t cp = c & (0x3F >> n);
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

void tern_json_key_bytes(tern_json_t *self, const char *key, const uint8_t *data, size_t size) {
    tern_json_sep(self);
    if (s_utf8_valid(data, size)) {
        tern_json_str(self, key);
        tern_json_raw(self, ":");
        s_strn(self, (const char *)data, size);
        return;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    s_reserve(self, strlen(key) + 10 + (size + 2) / 3 * 4);
    char *out = self->data + self->len;
    out += sprintf(out, "\"%s_b64\":\"", key);
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        v |= i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0;
        v |= i + 2 < size ? data[i + 2] : 0;
        *out++ = b64[(v >> 18) & 63];
        *out++ = b64[(v >> 12) & 63];
        *out++ = i + 1 < size ? b64[(v >> 6) & 63] : '=';
        *out++ = i + 2 < size ? b64[v & 63] : '=';
    }
    *out++ = '"';
    *out = 0;
    self->len = (size_t)(out - self->data);
}

void tern_json_sep(tern_json_t *self) {
    if (self->len > 0) {
        char last = self->data[self->len - 1];
        if (last != '[' && last != '{') {
            tern_json_raw(self, ",");
        }
    }
}

static void s_key(tern_json_t *self, const char *key) {
    tern_json_sep(self);
    tern_json_str(self, key);
    tern_json_raw(self, ":");
}

void tern_json_key_str(tern_json_t *self, const char *key, const char *value) {
    s_key(self, key);
    tern_json_str(self, value);
}

void tern_json_key_u64(tern_json_t *self, const char *key, uint64_t value) {
    char buf[32];
    s_key(self, key);
    snprintf(buf, sizeof buf, "%" PRIu64, value);
    tern_json_raw(self, buf);
}

void tern_json_key_bool(tern_json_t *self, const char *key, int value) {
    s_key(self, key);
    tern_json_raw(self, value ? "true" : "false");
}
