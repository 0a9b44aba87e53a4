/*  tern_json.c - the tiny JSON writer of tern_json.h. */
#include "tern_json.h"
#include "tern_work.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_reserve(tern_json_t *self, size_t more) {
    if (self->len + more + 1 > self->cap) {
        while (self->len + more + 1 > self->cap) {
            self->cap *= 2;
        }
        self->data = tern_work_realloc(self->data, self->cap);
    }
}

void tern_json_init(tern_json_t *self) {
    self->cap = 256;
    self->len = 0;
    self->data = tern_work_alloc(self->cap);
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

void tern_json_str(tern_json_t *self, const char *text) {
    s_reserve(self, strlen(text) * 6 + 2);
    char *out = self->data + self->len;
    *out++ = '"';
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
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
