/*  tern_json.c - the one JSON writer (tern_json.h).

    The comma rule reads the last byte written, so the broker's handlers can
    compose a reply from pieces without passing a depth around. Strings use
    the short escapes and escape DEL: ternctl prints them to terminals.
*/
#include "tern_json.h"
#include "tern_alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_INITIAL_CAP 256

//  Makes room for MORE bytes and the NUL.
static void s_reserve(tern_json_t *self, size_t more) {
    if (self->len + more + 1 <= self->cap) {
        return;
    }
    size_t cap = self->cap ? self->cap : S_INITIAL_CAP;
    while (cap < self->len + more + 1) {
        cap *= 2;
    }
    self->data = tern_realloc(self->data, cap);
    self->cap = cap;
}

void tern_json_init(tern_json_t *self) {
    self->len = 0;
    self->cap = S_INITIAL_CAP;
    self->data = tern_alloc(self->cap);
    self->data[0] = 0;
}

void tern_json_free(tern_json_t *self) {
    free(self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}

void tern_json_reset(tern_json_t *self) {
    self->len = 0;
    if (self->data) {
        self->data[0] = 0;
    }
}

void tern_json_rawn(tern_json_t *self, const char *data, size_t len) {
    s_reserve(self, len);
    if (len) {
        memcpy(self->data + self->len, data, len);
    }
    self->len += len;
    self->data[self->len] = 0;
}

void tern_json_raw(tern_json_t *self, const char *text) {
    tern_json_rawn(self, text, strlen(text));
}

//  The escape of byte C inside a JSON string into HEX (7 bytes), or NULL
//  when C is copied as it is.
static const char *s_escape(unsigned char c, char *hex) {
    switch (c) {
        case '"':
            return "\\\"";
        case '\\':
            return "\\\\";
        case '\n':
            return "\\n";
        case '\r':
            return "\\r";
        case '\t':
            return "\\t";
        case '\b':
            return "\\b";
        case '\f':
            return "\\f";
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(hex, 7, "\\u%04x", c);
                return hex;
            }
            return NULL;
    }
}

void tern_json_strn(tern_json_t *self, const char *text, size_t len) {
    s_reserve(self, len + 2);
    tern_json_rawn(self, "\"", 1);
    size_t run = 0; //  start of the bytes copied as they are
    for (size_t i = 0; i < len; i++) {
        char hex[7];
        const char *esc = s_escape((unsigned char)text[i], hex);
        if (esc) {
            tern_json_rawn(self, text + run, i - run);
            tern_json_raw(self, esc);
            run = i + 1;
        }
    }
    tern_json_rawn(self, text + run, len - run);
    tern_json_rawn(self, "\"", 1);
}

void tern_json_str(tern_json_t *self, const char *text) {
    tern_json_strn(self, text, strlen(text));
}

void tern_json_sep(tern_json_t *self) {
    if (self->len > 0) {
        char last = self->data[self->len - 1];
        if (last != '[' && last != '{') {
            tern_json_rawn(self, ",", 1);
        }
    }
}

void tern_json_key(tern_json_t *self, const char *key) {
    tern_json_sep(self);
    tern_json_str(self, key);
    tern_json_rawn(self, ":", 1);
}

void tern_json_key_str(tern_json_t *self, const char *key, const char *value) {
    tern_json_key(self, key);
    tern_json_str(self, value);
}

void tern_json_key_u64(tern_json_t *self, const char *key, uint64_t value) {
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, value);
    tern_json_key(self, key);
    tern_json_rawn(self, text, (size_t)n);
}

void tern_json_key_bool(tern_json_t *self, const char *key, bool value) {
    tern_json_key(self, key);
    tern_json_raw(self, value ? "true" : "false");
}

void tern_json_key_bytes(tern_json_t *self, const char *key, const uint8_t *data, size_t size) {
    if (tern_json_utf8_valid(data, size)) {
        tern_json_key(self, key);
        tern_json_strn(self, (const char *)data, size);
        return;
    }
    tern_json_sep(self);
    tern_json_rawn(self, "\"", 1);
    tern_json_raw(self, key);
    tern_json_raw(self, "_b64\":\"");
    tern_json_base64(self, data, size);
    tern_json_rawn(self, "\"", 1);
}

void tern_json_base64(tern_json_t *self, const uint8_t *data, size_t size) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    s_reserve(self, (size + 2) / 3 * 4);
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
        tern_json_rawn(self, out, 4);
    }
}

bool tern_json_utf8_valid(const uint8_t *data, size_t size) {
    size_t i = 0;
    while (i < size) {
        uint8_t c = data[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;   //  bytes in this sequence
        uint32_t cp;  //  its code point
        uint32_t min; //  the smallest code point of that length (no overlongs)
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
        if (size - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((data[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (data[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}
