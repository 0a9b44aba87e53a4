/*  tern_proto.c - the wire codec: msgpack header frames <-> tern_frame_t.

    Decoding walks the msgpack bytes with a small bounds-checked cursor: no
    msgpack_zone, no heap, no static state, so it is reentrant and safe on any
    number of threads at once. Encoding uses msgpack_packer with a write
    callback into the caller's fixed buffer. Both sides share one field table
    (short key, C member, presence bit, grammar, range) and one semantic check,
    so the encoder never emits what the decoder would reject.
    docs/protocol.md is the specification; keep the two in step.
*/
#include "tern_proto.h"
#include "tern_proto_int.h"

#include <msgpack.h>
#include <stddef.h>
#include <string.h>

//  One PUBACK entry on the wire: req_id, msg_id, seq (u64 BE), code (u32 BE),
//  flags (u8: bit 0 = duplicate).
#define S_ACK_SIZE 29

_Static_assert(TERN_PUBACK_MAX *S_ACK_SIZE + 64 <= TERN_HEADER_MAX,
               "a full PUBACK must fit in one header frame");

//  Field ids, in canonical (encoding) order.
typedef enum {
    FD_V,   //  proto_version
    FD_N,   //  node_id
    FD_DC,  //  dc
    FD_HB,  //  heartbeat_ms
    FD_MP,  //  max_payload
    FD_NM,  //  name
    FD_T,   //  topic
    FD_G,   //  group
    FD_P,   //  producer
    FD_PS,  //  producer_seq
    FD_K,   //  key
    FD_TR,  //  trace_id
    FD_O,   //  origin
    FD_ID,  //  msg_id
    FD_SQ,  //  seq
    FD_TS,  //  timestamp_ns
    FD_EX,  //  expire_at_ns
    FD_TTL, //  ttl_ms
    FD_TC,  //  ttl_class
    FD_PR,  //  priority
    FD_DN,  //  delivery_count
    FD_S,   //  sub_id
    FD_TG,  //  tag
    FD_CR,  //  credit
    FD_ST,  //  start
    FD_SV,  //  start_value
    FD_CU,  //  cumulative
    FD_DL,  //  delay_ms
    FD_C,   //  code
    FD_R,   //  reason
    FD_POS, //  position
    FD_PT,  //  partition
    FD_EP,  //  epoch
    FD_OB,  //  outbox_pos
    FD_RS,  //  resend
    FD_M,   //  meta
    FD_A,   //  acks
    FD_COUNT_
} s_fid_t;

#define B(f) (1ull << (f))

typedef enum { K_UINT, K_BOOL, K_STR, K_META, K_ACKS } s_kind_t;

typedef enum {
    G_NONE,    //  no grammar beyond the length
    G_TOPIC,   //  tern_topic_valid
    G_PATTERN, //  tern_pattern_valid
    G_NAME,    //  tern_name_valid
    G_KEY,     //  1..TERN_KEY_MAX bytes
    G_TRACE    //  tern_trace_valid
} s_grammar_t;

typedef struct {
    const char *key; //  the short map key
    uint8_t key_len; //  its length (1..3)
    uint8_t kind;    //  s_kind_t
    uint8_t grammar; //  s_grammar_t for strings
    uint16_t size;   //  member size (uints) or capacity (strings)
    uint16_t offset; //  offsetof the member in tern_frame_t
    uint32_t fbit;   //  TERN_F_* bit set when present, or 0
    uint64_t min;    //  smallest allowed value (uints)
    uint64_t max;    //  largest allowed value (uints)
} s_field_t;

#define U(k, m, bit, lo, hi)                                                                       \
    {                                                                                              \
        k, sizeof(k) - 1, K_UINT, G_NONE, sizeof(((tern_frame_t *)0)->m),                          \
            offsetof(tern_frame_t, m), bit, lo, hi                                                 \
    }
#define S(k, m, bit, g)                                                                            \
    {                                                                                              \
        k, sizeof(k) - 1, K_STR, g, sizeof(((tern_frame_t *)0)->m), offsetof(tern_frame_t, m),     \
            bit, 0, 0                                                                              \
    }
#define UMAX UINT64_MAX

static const s_field_t s_fields[FD_COUNT_] = {
    [FD_V] = U("v", proto_version, 0, 1, UINT32_MAX),
    [FD_N] = U("n", node_id, 0, 0, 1023),
    [FD_DC] = S("dc", dc, 0, G_NAME),
    [FD_HB] = U("hb", heartbeat_ms, 0, 0, UINT32_MAX),
    [FD_MP] = U("mp", max_payload, 0, 0, UINT32_MAX),
    [FD_NM] = S("nm", name, TERN_F_NAME, G_NAME),
    [FD_T] = S("t", topic, TERN_F_TOPIC, G_TOPIC),
    [FD_G] = S("g", group, TERN_F_GROUP, G_NAME),
    [FD_P] = S("p", producer, TERN_F_PRODUCER, G_NAME),
    [FD_PS] = U("ps", producer_seq, 0, 0, UMAX),
    [FD_K] = S("k", key, TERN_F_KEY, G_KEY),
    [FD_TR] = S("tr", trace_id, TERN_F_TRACE, G_TRACE),
    [FD_O] = S("o", origin, TERN_F_ORIGIN, G_NAME),
    [FD_ID] = U("id", msg_id, 0, 0, UMAX),
    [FD_SQ] = U("sq", seq, 0, 0, UMAX),
    [FD_TS] = U("ts", timestamp_ns, 0, 0, UMAX),
    [FD_EX] = U("ex", expire_at_ns, TERN_F_EXPIRE, 0, UMAX),
    [FD_TTL] = U("ttl", ttl_ms, TERN_F_TTL, 0, UINT32_MAX),
    [FD_TC] = U("tc", ttl_class, 0, 0, TERN_TTL_SYNC),
    [FD_PR] = U("pr", priority, TERN_F_PRIORITY, 0, TERN_PRIORITY_MAX),
    [FD_DN] = U("dn", delivery_count, 0, 1, UINT32_MAX),
    [FD_S] = U("s", sub_id, 0, 0, UMAX),
    [FD_TG] = U("tg", tag, 0, 0, UMAX),
    [FD_CR] = U("cr", credit, 0, 0, UINT32_MAX),
    [FD_ST] = U("st", start, TERN_F_START, 0, TERN_START_TIME),
    [FD_SV] = U("sv", start_value, 0, 0, UMAX),
    [FD_CU] = {"cu", 2, K_BOOL, G_NONE, 1, offsetof(tern_frame_t, cumulative), TERN_F_CUMULATIVE, 0,
               1},
    [FD_DL] = U("dl", delay_ms, TERN_F_DELAY, 0, UINT32_MAX),
    [FD_C] = U("c", code, 0, 0, UINT32_MAX),
    [FD_R] = S("r", reason, TERN_F_REASON, G_NONE),
    [FD_POS] = U("pos", position, 0, 0, UMAX),
    [FD_PT] = U("pt", partition, 0, 0, UINT32_MAX),
    [FD_EP] = U("ep", epoch, 0, 0, UMAX),
    [FD_OB] = U("ob", outbox_pos, 0, 0, UMAX),
    [FD_RS] = {"rs", 2, K_BOOL, G_NONE, 1, offsetof(tern_frame_t, resend), TERN_F_RESEND, 0, 1},
    [FD_M] = {"m", 1, K_META, G_NONE, 0, 0, TERN_F_META, 0, 0},
    [FD_A] = {"a", 1, K_ACKS, G_NONE, 0, 0, 0, 0, 0},
};

//  The fields s_check_values range-checks.
#define S_UINT_FIELDS                                                                              \
    (B(FD_V) | B(FD_N) | B(FD_HB) | B(FD_MP) | B(FD_PS) | B(FD_ID) | B(FD_SQ) | B(FD_TS) |         \
     B(FD_EX) | B(FD_TTL) | B(FD_TC) | B(FD_PR) | B(FD_DN) | B(FD_S) | B(FD_TG) | B(FD_CR) |       \
     B(FD_ST) | B(FD_SV) | B(FD_DL) | B(FD_C) | B(FD_POS) | B(FD_PT) | B(FD_EP) | B(FD_OB))

//  Per command: required and optional fields. Anything else is ignored on
//  decode (forward compatibility) and never emitted on encode.
typedef struct {
    const char *name; //  "PUBLISH"...
    uint64_t req;     //  required fields
    uint64_t opt;     //  optional fields
    uint8_t payload;  //  0 = none, 1 = required, 2 = optional
} s_cmd_t;

#define MSG_OPT (B(FD_P) | B(FD_PS) | B(FD_K) | B(FD_TR) | B(FD_M) | B(FD_PR))
//  Every in-DC frame names its partition and the leader epoch it belongs to.
#define CREPL (B(FD_PT) | B(FD_EP))

static const s_cmd_t s_cmds[TERN_CMD_MAX_] = {
    [TERN_CMD_HELLO] = {"HELLO", B(FD_V) | B(FD_HB), B(FD_NM) | B(FD_RS), 0},
    [TERN_CMD_WELCOME] = {"WELCOME", B(FD_V) | B(FD_N) | B(FD_DC) | B(FD_HB) | B(FD_MP), 0, 0},
    [TERN_CMD_PUBLISH] = {"PUBLISH", B(FD_T), MSG_OPT | B(FD_TTL) | B(FD_TC) | B(FD_RS), 1},
    [TERN_CMD_PUBACK] = {"PUBACK", B(FD_A), 0, 0},
    [TERN_CMD_SUBSCRIBE] = {"SUBSCRIBE", B(FD_T) | B(FD_CR), B(FD_G) | B(FD_ST) | B(FD_SV), 0},
    [TERN_CMD_UNSUBSCRIBE] = {"UNSUBSCRIBE", B(FD_S), 0, 0},
    [TERN_CMD_DELIVER] = {"DELIVER",
                          B(FD_S) | B(FD_TG) | B(FD_T) | B(FD_ID) | B(FD_SQ) | B(FD_TS) | B(FD_DN),
                          MSG_OPT | B(FD_O) | B(FD_EX), 1},
    [TERN_CMD_ACK] = {"ACK", B(FD_S) | B(FD_TG), B(FD_CU), 0},
    [TERN_CMD_NACK] = {"NACK", B(FD_S) | B(FD_TG), B(FD_DL), 0},
    [TERN_CMD_TERM] = {"TERM", B(FD_S) | B(FD_TG), B(FD_R), 0},
    [TERN_CMD_CREDIT] = {"CREDIT", B(FD_S) | B(FD_CR), 0, 0},
    [TERN_CMD_HEARTBEAT] = {"HEARTBEAT", 0, 0, 0},
    [TERN_CMD_ERROR] = {"ERROR", B(FD_C) | B(FD_R), 0, 0},
    [TERN_CMD_BYE] = {"BYE", 0, B(FD_R), 0},
    [TERN_CMD_OK] = {"OK", 0, B(FD_S), 0},
    [TERN_CMD_ADMIN] = {"ADMIN", B(FD_NM), B(FD_M), 0},
    [TERN_CMD_REPLY] = {"REPLY", 0, 0, 2},
    [TERN_CMD_REPL_HELLO] = {"REPL_HELLO", B(FD_V) | B(FD_N) | B(FD_DC) | B(FD_POS),
                             B(FD_NM) | B(FD_C), 0},
    [TERN_CMD_REPL_WELCOME] = {"REPL_WELCOME", B(FD_V) | B(FD_N) | B(FD_DC) | B(FD_POS), B(FD_NM),
                               0},
    [TERN_CMD_REPL_RECORD] = {"REPL_RECORD", B(FD_POS) | B(FD_ID) | B(FD_T) | B(FD_TS) | B(FD_O),
                              MSG_OPT | B(FD_SQ) | B(FD_EX) | B(FD_PT), 1},
    [TERN_CMD_REPL_ACKSTATE] = {"REPL_ACKSTATE", B(FD_POS) | B(FD_T) | B(FD_G) | B(FD_ID) | B(FD_C),
                                B(FD_R) | B(FD_PT), 0},
    [TERN_CMD_REPL_CONFIRM] = {"REPL_CONFIRM", B(FD_POS), B(FD_PT), 0},
    [TERN_CMD_REPL_HEARTBEAT] = {"REPL_HEARTBEAT", B(FD_POS), 0, 0},
    [TERN_CMD_CREPL_SYNC] = {"CREPL_SYNC", CREPL | B(FD_N), B(FD_SQ), 1},
    [TERN_CMD_CREPL_TRUNCATE] = {"CREPL_TRUNCATE", CREPL | B(FD_T) | B(FD_SQ), 0, 0},
    [TERN_CMD_CREPL_RECORD] = {"CREPL_RECORD",
                               CREPL | B(FD_POS) | B(FD_SQ) | B(FD_ID) | B(FD_T) | B(FD_TS) |
                                   B(FD_O),
                               MSG_OPT | B(FD_EX) | B(FD_OB), 1},
    [TERN_CMD_CREPL_CAUGHT] = {"CREPL_CAUGHT", CREPL | B(FD_POS), B(FD_SQ), 0},
    [TERN_CMD_CREPL_CONFIRM] = {"CREPL_CONFIRM", CREPL | B(FD_N) | B(FD_POS), 0, 0},
    [TERN_CMD_CREPL_HEARTBEAT] = {"CREPL_HEARTBEAT", CREPL | B(FD_POS), 0, 0},
    [TERN_CMD_CREPL_TOPIC] = {"CREPL_TOPIC", CREPL | B(FD_POS) | B(FD_T) | B(FD_C), 0, 1},
    [TERN_CMD_CREPL_GROUP] = {"CREPL_GROUP", CREPL | B(FD_T), B(FD_POS), 1},
    [TERN_CMD_CREPL_GSTATE] = {"CREPL_GSTATE", CREPL | B(FD_T) | B(FD_C), B(FD_G), 1},
    [TERN_CMD_CREPL_RECORDS] = {"CREPL_RECORDS", CREPL | B(FD_POS), 0, 1},
    [TERN_CMD_CREPL_OUTBOX] = {"CREPL_OUTBOX", CREPL | B(FD_C), B(FD_POS) | B(FD_SQ), 2},
};

static const s_cmd_t *s_cmd(int cmd) {
    if (cmd <= 0 || cmd >= TERN_CMD_MAX_ || s_cmds[cmd].name == NULL) {
        return NULL;
    }
    return &s_cmds[cmd];
}

// ---------------------------------------------------------------------------
//  Grammar

//  Character classes, one table lookup per byte on the hot path.
#define C_TOPIC 1 //  [A-Za-z0-9_-]: topic tokens
#define C_NAME  2 //  [A-Za-z0-9_.:-]: names

static const uint8_t s_class[256] = {
    ['-'] = C_TOPIC | C_NAME, ['_'] = C_TOPIC | C_NAME, ['.'] = C_NAME,
    [':'] = C_NAME,           ['0'] = C_TOPIC | C_NAME, ['1'] = C_TOPIC | C_NAME,
    ['2'] = C_TOPIC | C_NAME, ['3'] = C_TOPIC | C_NAME, ['4'] = C_TOPIC | C_NAME,
    ['5'] = C_TOPIC | C_NAME, ['6'] = C_TOPIC | C_NAME, ['7'] = C_TOPIC | C_NAME,
    ['8'] = C_TOPIC | C_NAME, ['9'] = C_TOPIC | C_NAME, ['a'] = C_TOPIC | C_NAME,
    ['b'] = C_TOPIC | C_NAME, ['c'] = C_TOPIC | C_NAME, ['d'] = C_TOPIC | C_NAME,
    ['e'] = C_TOPIC | C_NAME, ['f'] = C_TOPIC | C_NAME, ['g'] = C_TOPIC | C_NAME,
    ['h'] = C_TOPIC | C_NAME, ['i'] = C_TOPIC | C_NAME, ['j'] = C_TOPIC | C_NAME,
    ['k'] = C_TOPIC | C_NAME, ['l'] = C_TOPIC | C_NAME, ['m'] = C_TOPIC | C_NAME,
    ['n'] = C_TOPIC | C_NAME, ['o'] = C_TOPIC | C_NAME, ['p'] = C_TOPIC | C_NAME,
    ['q'] = C_TOPIC | C_NAME, ['r'] = C_TOPIC | C_NAME, ['s'] = C_TOPIC | C_NAME,
    ['t'] = C_TOPIC | C_NAME, ['u'] = C_TOPIC | C_NAME, ['v'] = C_TOPIC | C_NAME,
    ['w'] = C_TOPIC | C_NAME, ['x'] = C_TOPIC | C_NAME, ['y'] = C_TOPIC | C_NAME,
    ['z'] = C_TOPIC | C_NAME, ['A'] = C_TOPIC | C_NAME, ['B'] = C_TOPIC | C_NAME,
    ['C'] = C_TOPIC | C_NAME, ['D'] = C_TOPIC | C_NAME, ['E'] = C_TOPIC | C_NAME,
    ['F'] = C_TOPIC | C_NAME, ['G'] = C_TOPIC | C_NAME, ['H'] = C_TOPIC | C_NAME,
    ['I'] = C_TOPIC | C_NAME, ['J'] = C_TOPIC | C_NAME, ['K'] = C_TOPIC | C_NAME,
    ['L'] = C_TOPIC | C_NAME, ['M'] = C_TOPIC | C_NAME, ['N'] = C_TOPIC | C_NAME,
    ['O'] = C_TOPIC | C_NAME, ['P'] = C_TOPIC | C_NAME, ['Q'] = C_TOPIC | C_NAME,
    ['R'] = C_TOPIC | C_NAME, ['S'] = C_TOPIC | C_NAME, ['T'] = C_TOPIC | C_NAME,
    ['U'] = C_TOPIC | C_NAME, ['V'] = C_TOPIC | C_NAME, ['W'] = C_TOPIC | C_NAME,
    ['X'] = C_TOPIC | C_NAME, ['Y'] = C_TOPIC | C_NAME, ['Z'] = C_TOPIC | C_NAME,
};

static inline bool s_topic_char(unsigned char c) {
    return (s_class[c] & C_TOPIC) != 0;
}

//  Shared by topics and patterns: tokens joined by single dots.
static bool s_tokens_valid(const char *s, size_t len, bool pattern) {
    if (s == NULL || len == 0 || len > TERN_TOPIC_MAX) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            continue;
        }
        size_t tlen = i - start;
        if (tlen == 0) {
            return false; //  empty token: leading, trailing or double dot
        }
        if (pattern && tlen == 1 && s[start] == '*') {
            ;
        } else if (pattern && tlen == 1 && s[start] == '>') {
            if (i != len) {
                return false; //  '>' only as the last token
            }
        } else {
            for (size_t j = start; j < i; j++) {
                if (!s_topic_char((unsigned char)s[j])) {
                    return false;
                }
            }
        }
        start = i + 1;
    }
    return true;
}

bool tern_topic_valid(const char *topic, size_t len) {
    return s_tokens_valid(topic, len, false);
}

bool tern_pattern_valid(const char *pattern, size_t len) {
    return s_tokens_valid(pattern, len, true);
}

bool tern_pattern_match(const char *pattern, const char *topic) {
    if (pattern == NULL || topic == NULL) {
        return false;
    }
    const char *p = pattern;
    const char *t = topic;
    while (true) {
        const char *pe = strchr(p, '.');
        const char *te = strchr(t, '.');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t tlen = te ? (size_t)(te - t) : strlen(t);
        if (plen == 1 && p[0] == '>') {
            return tlen > 0; //  one or more remaining tokens
        }
        if (tlen == 0) {
            return false;
        }
        if (!(plen == 1 && p[0] == '*') && (plen != tlen || memcmp(p, t, plen) != 0)) {
            return false;
        }
        if (pe == NULL || te == NULL) {
            return pe == NULL && te == NULL;
        }
        p = pe + 1;
        t = te + 1;
    }
}

bool tern_name_valid(const char *name, size_t len) {
    if (name == NULL || len == 0 || len > TERN_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(s_class[c] & C_NAME)) {
            return false;
        }
    }
    return true;
}

static bool s_lower_hex(const char *s, size_t len, bool nonzero) {
    //  Arithmetic, not the class table, so the compiler can check 16 bytes
    //  at a time (a trace id is checked on every publish and delivery).
    uint8_t bad = 0;
    uint8_t any = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        uint8_t digit = (uint8_t)(c - '0') < 10;
        uint8_t lower = (uint8_t)(c - 'a') < 6;
        bad |= (uint8_t)((digit | lower) ^ 1);
        any |= (uint8_t)(c ^ '0');
    }
    return bad == 0 && (!nonzero || any != 0);
}

bool tern_trace_valid(const char *trace, size_t len) {
    //  00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
    if (trace == NULL || len != 55) {
        return false;
    }
    return trace[0] == '0' && trace[1] == '0' && trace[2] == '-' && trace[35] == '-' &&
           trace[52] == '-' && s_lower_hex(trace + 3, 32, true) &&
           s_lower_hex(trace + 36, 16, true) && s_lower_hex(trace + 53, 2, false);
}

// ---------------------------------------------------------------------------
//  Decoding cursor over msgpack bytes. Every read checks bounds; a short read
//  is TERN_EMALFORMED, a wrong type TERN_ETYPE.

typedef tern_rcur_t s_cur_t; //  shared with protocol/'s payload codecs

static inline uint64_t s_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline bool s_have(const s_cur_t *c, size_t n) {
    return (size_t)(c->end - c->p) >= n;
}

//  The error for a value whose leading byte B is not of the expected type:
//  0xc1 is never valid msgpack, so it is malformed input, not a wrong type.
static tern_err_t s_mismatch(uint8_t b) {
    return b == 0xc1 ? TERN_EMALFORMED : TERN_ETYPE;
}

static tern_err_t s_read_uint(s_cur_t *c, uint64_t *v) {
    if (!s_have(c, 1)) {
        return TERN_EMALFORMED;
    }
    uint8_t b = *c->p;
    if (b <= 0x7f) {
        *v = b;
        c->p++;
        return TERN_OK;
    }
    if (b >= 0xe0) {
        c->p++;
        return TERN_ERANGE; //  negative fixint
    }
    int n;
    bool sign = false;
    switch (b) {
        case 0xcc:
            n = 1;
            break;
        case 0xcd:
            n = 2;
            break;
        case 0xce:
            n = 4;
            break;
        case 0xcf:
            n = 8;
            break;
        case 0xd0:
            n = 1;
            sign = true;
            break;
        case 0xd1:
            n = 2;
            sign = true;
            break;
        case 0xd2:
            n = 4;
            sign = true;
            break;
        case 0xd3:
            n = 8;
            sign = true;
            break;
        default:
            return s_mismatch(b);
    }
    if (!s_have(c, 1 + (size_t)n)) {
        return TERN_EMALFORMED;
    }
    uint64_t x = s_be(c->p + 1, n);
    c->p += 1 + n;
    if (sign && (x >> (8 * n - 1)) != 0) {
        return TERN_ERANGE; //  negative signed integer
    }
    *v = x;
    return TERN_OK;
}

//  Reads a str header and returns the body (borrowed).
static tern_err_t s_read_str(s_cur_t *c, const char **s, uint32_t *len) {
    if (!s_have(c, 1)) {
        return TERN_EMALFORMED;
    }
    uint8_t b = *c->p;
    int n;
    uint64_t l;
    if (b >= 0xa0 && b <= 0xbf) {
        n = 0;
        l = b & 0x1f;
    } else if (b == 0xd9 || b == 0xda || b == 0xdb) {
        n = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        if (!s_have(c, 1 + (size_t)n)) {
            return TERN_EMALFORMED;
        }
        l = s_be(c->p + 1, n);
    } else {
        return s_mismatch(b);
    }
    if (!s_have(c, 1 + (size_t)n + l)) {
        return TERN_EMALFORMED;
    }
    *s = (const char *)c->p + 1 + n;
    *len = (uint32_t)l;
    c->p += 1 + n + l;
    return TERN_OK;
}

static tern_err_t s_read_bin(s_cur_t *c, const uint8_t **s, uint32_t *len) {
    if (!s_have(c, 1)) {
        return TERN_EMALFORMED;
    }
    uint8_t b = *c->p;
    if (b != 0xc4 && b != 0xc5 && b != 0xc6) {
        return s_mismatch(b);
    }
    int n = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
    if (!s_have(c, 1 + (size_t)n)) {
        return TERN_EMALFORMED;
    }
    uint64_t l = s_be(c->p + 1, n);
    if (!s_have(c, 1 + (size_t)n + l)) {
        return TERN_EMALFORMED;
    }
    *s = c->p + 1 + n;
    *len = (uint32_t)l;
    c->p += 1 + n + l;
    return TERN_OK;
}

//  Reads a map (MAP true) or array header and its entry count.
static tern_err_t s_read_container(s_cur_t *c, bool map, uint32_t *count) {
    if (!s_have(c, 1)) {
        return TERN_EMALFORMED;
    }
    uint8_t b = *c->p;
    uint8_t fix = map ? 0x80 : 0x90;
    uint8_t b16 = map ? 0xde : 0xdc;
    if ((b & 0xf0) == fix) {
        *count = b & 0x0f;
        c->p++;
        return TERN_OK;
    }
    if (b != b16 && b != b16 + 1) {
        return s_mismatch(b);
    }
    int n = b == b16 ? 2 : 4;
    if (!s_have(c, 1 + (size_t)n)) {
        return TERN_EMALFORMED;
    }
    *count = (uint32_t)s_be(c->p + 1, n);
    c->p += 1 + n;
    return TERN_OK;
}

//  Skips one complete msgpack value of any type, iteratively (no recursion,
//  so deep nesting cannot exhaust the stack).
static tern_err_t s_skip(s_cur_t *c) {
    uint64_t pending = 1;
    while (pending > 0) {
        if (!s_have(c, 1) || pending > (uint64_t)(c->end - c->p)) {
            return TERN_EMALFORMED; //  every value takes at least one byte
        }
        pending--;
        uint8_t b = *c->p;
        size_t hdr = 1;
        uint64_t body = 0;
        uint64_t children = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            ;
        } else if (b >= 0x80 && b <= 0x8f) {
            children = 2ull * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            body = b & 0x1f;
        } else {
            int n = 0;
            switch (b) {
                case 0xc4:
                case 0xd9:
                    n = 1;
                    break;
                case 0xc5:
                case 0xda:
                    n = 2;
                    break;
                case 0xc6:
                case 0xdb:
                    n = 4;
                    break;
                case 0xc7:
                    n = 1;
                    body = 1;
                    break; //  ext: + type byte
                case 0xc8:
                    n = 2;
                    body = 1;
                    break;
                case 0xc9:
                    n = 4;
                    body = 1;
                    break;
                case 0xca:
                    body = 4;
                    break;
                case 0xcb:
                    body = 8;
                    break;
                case 0xcc:
                case 0xd0:
                    body = 1;
                    break;
                case 0xcd:
                case 0xd1:
                    body = 2;
                    break;
                case 0xce:
                case 0xd2:
                    body = 4;
                    break;
                case 0xcf:
                case 0xd3:
                    body = 8;
                    break;
                case 0xd4:
                    body = 2;
                    break;
                case 0xd5:
                    body = 3;
                    break;
                case 0xd6:
                    body = 5;
                    break;
                case 0xd7:
                    body = 9;
                    break;
                case 0xd8:
                    body = 17;
                    break;
                case 0xdc:
                case 0xde:
                    n = 2;
                    break;
                case 0xdd:
                case 0xdf:
                    n = 4;
                    break;
                default:
                    return TERN_EMALFORMED; //  0xc1 is never used
            }
            if (n > 0) {
                if (!s_have(c, 1 + (size_t)n)) {
                    return TERN_EMALFORMED;
                }
                uint64_t l = s_be(c->p + 1, n);
                hdr += (size_t)n;
                if (b == 0xdc || b == 0xdd) {
                    children = l;
                } else if (b == 0xde || b == 0xdf) {
                    children = 2 * l;
                } else {
                    body += l;
                }
            }
        }
        if (!s_have(c, hdr + body)) {
            return TERN_EMALFORMED;
        }
        c->p += hdr + body;
        pending += children;
    }
    return TERN_OK;
}

// ---------------------------------------------------------------------------
//  Metadata maps

//  Validates the map at C (advancing past it) and counts its entries.
static tern_err_t s_meta_scan(s_cur_t *c, uint32_t *count) {
    uint32_t n;
    tern_err_t rc = s_read_container(c, true, &n);
    if (rc != TERN_OK) {
        return rc == TERN_ETYPE ? TERN_EMETA : rc;
    }
    if (n > TERN_META_MAX_ENTRIES) {
        return TERN_EMETA;
    }
    const char *keys[TERN_META_MAX_ENTRIES];
    uint32_t key_lens[TERN_META_MAX_ENTRIES];
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *v;
        uint32_t kl, vl;
        rc = s_read_str(c, &k, &kl);
        if (rc == TERN_OK) {
            rc = s_read_str(c, &v, &vl);
        }
        if (rc != TERN_OK) {
            return rc == TERN_ETYPE ? TERN_EMETA : rc;
        }
        if (kl == 0 || kl > TERN_META_KEY_MAX || vl > TERN_META_VALUE_MAX) {
            return TERN_EMETA;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (key_lens[j] == kl && memcmp(keys[j], k, kl) == 0) {
                return TERN_EMETA; //  duplicate key
            }
        }
        keys[i] = k;
        key_lens[i] = kl;
    }
    *count = n;
    return TERN_OK;
}

tern_err_t tern_meta_validate(const uint8_t *meta, size_t meta_size, uint32_t *count) {
    if (meta == NULL || count == NULL) {
        return TERN_EINVAL;
    }
    s_cur_t c = {meta, meta + meta_size};
    tern_err_t rc = s_meta_scan(&c, count);
    if (rc == TERN_OK && c.p != c.end) {
        rc = TERN_EMALFORMED;
    }
    return rc;
}

bool tern_meta_next(const uint8_t *meta, size_t meta_size, size_t *pos, tern_kv_t *out) {
    if (meta == NULL || pos == NULL || out == NULL || *pos > meta_size) {
        return false;
    }
    s_cur_t c = {meta + *pos, meta + meta_size};
    if (*pos == 0) {
        uint32_t n;
        if (s_read_container(&c, true, &n) != TERN_OK) {
            return false;
        }
    }
    const char *k, *v;
    uint32_t kl, vl;
    if (c.p >= c.end || s_read_str(&c, &k, &kl) != TERN_OK || s_read_str(&c, &v, &vl) != TERN_OK) {
        return false;
    }
    out->key = k;
    out->key_len = kl;
    out->value = v;
    out->value_len = vl;
    *pos = (size_t)(c.p - meta);
    return true;
}

//  The cursor for protocol/'s other files (tern_proto_int.h).
tern_err_t tern_rcur_uint(tern_rcur_t *c, uint64_t *v) {
    return s_read_uint(c, v);
}

tern_err_t tern_rcur_str(tern_rcur_t *c, const char **s, uint32_t *len) {
    return s_read_str(c, s, len);
}

tern_err_t tern_rcur_array(tern_rcur_t *c, uint32_t *count) {
    return s_read_container(c, false, count);
}

// ---------------------------------------------------------------------------
//  Encoding into a fixed buffer

int tern_wbuf_write(void *data, const char *bytes, size_t len) {
    tern_wbuf_t *w = (tern_wbuf_t *)data;
    if (w->overflow || len > w->cap - w->len) {
        w->overflow = true;
        return -1;
    }
    memcpy(w->buf + w->len, bytes, len);
    w->len += len;
    return 0;
}

tern_err_t tern_meta_encode(const tern_kv_t *kv, size_t count, uint8_t *buf, size_t cap,
                            size_t *len) {
    if ((kv == NULL && count > 0) || buf == NULL || len == NULL) {
        return TERN_EINVAL;
    }
    if (count > TERN_META_MAX_ENTRIES) {
        return TERN_EMETA;
    }
    for (size_t i = 0; i < count; i++) {
        if (kv[i].key == NULL || kv[i].key_len == 0 || kv[i].key_len > TERN_META_KEY_MAX ||
            kv[i].value_len > TERN_META_VALUE_MAX || (kv[i].value == NULL && kv[i].value_len > 0)) {
            return TERN_EMETA;
        }
        for (size_t j = 0; j < i; j++) {
            if (kv[j].key_len == kv[i].key_len &&
                memcmp(kv[j].key, kv[i].key, kv[i].key_len) == 0) {
                return TERN_EMETA;
            }
        }
    }
    tern_wbuf_t w = {buf, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, tern_wbuf_write);
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < count; i++) {
        msgpack_pack_str_with_body(&pk, kv[i].key, kv[i].key_len);
        msgpack_pack_str_with_body(&pk, kv[i].value ? kv[i].value : "", kv[i].value_len);
    }
    if (w.overflow) {
        return TERN_ETOOBIG;
    }
    *len = w.len;
    return TERN_OK;
}

// ---------------------------------------------------------------------------
//  Shared semantic checks

static inline uint64_t s_get_uint(const tern_frame_t *f, const s_field_t *fd) {
    const uint8_t *m = (const uint8_t *)f + fd->offset;
    switch (fd->size) {
        case 1:
            return *(const uint8_t *)m;
        case 2:
            return *(const uint16_t *)(const void *)m;
        case 4:
            return *(const uint32_t *)(const void *)m;
        default:
            return *(const uint64_t *)(const void *)m;
    }
}

static inline void s_set_uint(tern_frame_t *f, const s_field_t *fd, uint64_t v) {
    uint8_t *m = (uint8_t *)f + fd->offset;
    switch (fd->size) {
        case 1:
            *(uint8_t *)m = (uint8_t)v;
            break;
        case 2:
            *(uint16_t *)(void *)m = (uint16_t)v;
            break;
        case 4:
            *(uint32_t *)(void *)m = (uint32_t)v;
            break;
        default:
            *(uint64_t *)(void *)m = v;
            break;
    }
}

static inline uint64_t s_width_max(const s_field_t *fd) {
    return fd->size >= 8 ? UINT64_MAX : (1ull << (8 * fd->size)) - 1;
}

//  Checks one string against its field's length limit and grammar.
static tern_err_t s_check_str(const s_field_t *fd, const char *s, size_t len) {
    switch ((s_grammar_t)fd->grammar) {
        case G_TOPIC:
            return tern_topic_valid(s, len) ? TERN_OK : TERN_ETOPIC;
        case G_PATTERN:
            return tern_pattern_valid(s, len) ? TERN_OK : TERN_ETOPIC;
        case G_NAME:
            return tern_name_valid(s, len) ? TERN_OK : TERN_ENAME;
        case G_KEY:
            return len > 0 ? TERN_OK : TERN_ENAME;
        case G_TRACE:
            return tern_trace_valid(s, len) ? TERN_OK : TERN_ETRACE;
        default:
            return TERN_OK;
    }
}

//  The topic of a SUBSCRIBE or REPL_ACKSTATE is a pattern.
static inline s_field_t s_topic_field(int cmd) {
    s_field_t fd = s_fields[FD_T];
    if (cmd == TERN_CMD_SUBSCRIBE || cmd == TERN_CMD_REPL_ACKSTATE) {
        fd.grammar = G_PATTERN;
    }
    return fd;
}

static tern_err_t s_check_acks(const uint8_t *acks, uint32_t count) {
    if (count > TERN_PUBACK_MAX) {
        return TERN_ETOOBIG;
    }
    if (count > 0 && acks == NULL) {
        return TERN_EINVAL;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (acks[(size_t)i * S_ACK_SIZE + S_ACK_SIZE - 1] > 1) {
            return TERN_ERANGE;
        }
    }
    return TERN_OK;
}

//  Value ranges and cross-field rules for the fields in PRESENT (semantics
//  only: types and string lengths were checked when the values were read).
static tern_err_t s_check_values(const tern_frame_t *f, uint64_t present) {
    for (uint64_t bits = present & S_UINT_FIELDS; bits != 0; bits &= bits - 1) {
        int i = __builtin_ctzll(bits);
        uint64_t v = s_get_uint(f, &s_fields[i]);
        if (v < s_fields[i].min || v > s_fields[i].max) {
            return TERN_ERANGE;
        }
    }
    if (f->cmd == TERN_CMD_ERROR && f->code == TERN_OK) {
        return TERN_ERANGE; //  an ERROR must name an error
    }
    if ((present & B(FD_P)) && !(present & B(FD_PS))) {
        return TERN_EMISSING; //  dedup needs both halves
    }
    if ((present & B(FD_ST)) && (f->start == TERN_START_SEQ || f->start == TERN_START_TIME) &&
        !(present & B(FD_SV))) {
        return TERN_EMISSING;
    }
    return TERN_OK;
}

// ---------------------------------------------------------------------------
//  Frames

void tern_frame_init(tern_frame_t *frame, tern_cmd_t cmd) {
    memset(frame, 0, sizeof *frame);
    frame->cmd = cmd;
    frame->version = TERN_PROTO_VERSION;
    frame->priority = TERN_PRIORITY_DEFAULT;
}

bool tern_cmd_has_payload(tern_cmd_t cmd) {
    const s_cmd_t *c = s_cmd((int)cmd);
    return c != NULL && c->payload != 0;
}

const char *tern_cmd_name(tern_cmd_t cmd) {
    const s_cmd_t *c = s_cmd((int)cmd);
    return c ? c->name : "UNKNOWN";
}

//  Looks up a short key, starting at field id FROM (and wrapping around);
//  returns its field id or -1. Our encoder writes fields in table order, so
//  the decoder starts each lookup after the previous match and finds the
//  next key a few probes on, where a scan from 0 cost ~150 instructions
//  per key (a follower decodes ~13 per replicated record, 1,900 -> 570:
//  docs/performance.md, "Cluster"). Any order still decodes.
static int s_field_lookup(const char *k, uint32_t len, int from) {
    if (len == 0 || len > 3) {
        return -1;
    }
    for (int n = 0, i = from; n < FD_COUNT_; n++, i = i + 1 < FD_COUNT_ ? i + 1 : 0) {
        const char *key = s_fields[i].key;
        if (s_fields[i].key_len == len && key[0] == k[0] && (len < 2 || key[1] == k[1]) &&
            (len < 3 || key[2] == k[2])) {
            return i;
        }
    }
    return -1;
}

//  Reads the value of field FID (allowed for this command) into OUT.
static tern_err_t s_decode_field(s_cur_t *c, tern_frame_t *out, int fid) {
    const s_field_t *fd = &s_fields[fid];
    tern_err_t rc;
    switch ((s_kind_t)fd->kind) {
        case K_UINT: {
            uint64_t v;
            rc = s_read_uint(c, &v);
            if (rc != TERN_OK) {
                return rc;
            }
            if (v > s_width_max(fd)) {
                return TERN_ERANGE;
            }
            s_set_uint(out, fd, v);
            return TERN_OK;
        }
        case K_BOOL: {
            if (!s_have(c, 1)) {
                return TERN_EMALFORMED;
            }
            uint8_t b = *c->p;
            if (b != 0xc2 && b != 0xc3) {
                return s_mismatch(b);
            }
            c->p++;
            *((bool *)((uint8_t *)out + fd->offset)) = b == 0xc3;
            return TERN_OK;
        }
        case K_STR: {
            const char *s;
            uint32_t len;
            rc = s_read_str(c, &s, &len);
            if (rc != TERN_OK) {
                return rc;
            }
            if (len >= fd->size) {
                return TERN_ETOOBIG;
            }
            if (memchr(s, 0, len) != NULL) {
                return TERN_ETYPE; //  not representable as a C string
            }
            s_field_t g = fid == FD_T ? s_topic_field(out->cmd) : *fd;
            rc = s_check_str(&g, s, len);
            if (rc != TERN_OK) {
                return rc;
            }
            char *dst = (char *)out + fd->offset;
            memcpy(dst, s, len);
            dst[len] = '\0';
            return TERN_OK;
        }
        case K_META: {
            const uint8_t *start = c->p;
            rc = s_meta_scan(c, &out->meta_count);
            if (rc != TERN_OK) {
                return rc;
            }
            out->meta = start;
            out->meta_size = (size_t)(c->p - start);
            return TERN_OK;
        }
        case K_ACKS: {
            const uint8_t *bin;
            uint32_t len;
            rc = s_read_bin(c, &bin, &len);
            if (rc != TERN_OK) {
                return rc;
            }
            if (len % S_ACK_SIZE != 0) {
                return TERN_EMALFORMED;
            }
            rc = s_check_acks(bin, len / S_ACK_SIZE);
            if (rc != TERN_OK) {
                return rc;
            }
            out->acks = bin;
            out->ack_count = len / S_ACK_SIZE;
            return TERN_OK;
        }
    }
    return TERN_EINTERNAL;
}

tern_err_t tern_frame_decode(tern_frame_t *out, const uint8_t *hdr, size_t hdr_size,
                             const uint8_t *payload, size_t payload_size,
                             const tern_limits_t *limits) {
    tern_frame_init(out, (tern_cmd_t)0);
    out->version = 0;
    if (hdr == NULL) {
        return hdr_size > 0 ? TERN_EINVAL : TERN_EMALFORMED;
    }
    if (payload == NULL && payload_size > 0) {
        return TERN_EINVAL;
    }
    if (hdr_size > TERN_HEADER_MAX) {
        return TERN_ETOOBIG;
    }
    s_cur_t c = {hdr, hdr + hdr_size};
    uint32_t n;
    tern_err_t rc = s_read_container(&c, false, &n);
    if (rc != TERN_OK) {
        return rc == TERN_ETYPE ? TERN_EMAGIC : rc;
    }
    if (n == 0) {
        return TERN_EMAGIC;
    }
    uint64_t v;
    rc = s_read_uint(&c, &v);
    if (rc == TERN_EMALFORMED) {
        return rc;
    }
    if (rc != TERN_OK || v != TERN_PROTO_MAGIC) {
        return TERN_EMAGIC;
    }
    if (n != 5) {
        return TERN_EMALFORMED;
    }
    //  version, command and request id; a bad version or command is reported
    //  only after the request id was read, so the ERROR can name the request.
    tern_err_t late = TERN_OK;
    rc = s_read_uint(&c, &v);
    if (rc != TERN_OK) {
        return rc == TERN_EMALFORMED ? rc : TERN_EVERSION;
    }
    out->version = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
    if (v < TERN_PROTO_MIN_VERSION || v > TERN_PROTO_VERSION) {
        late = TERN_EVERSION;
    }
    rc = s_read_uint(&c, &v);
    if (rc != TERN_OK) {
        return rc == TERN_EMALFORMED ? rc : TERN_ECOMMAND;
    }
    const s_cmd_t *cmd = v < TERN_CMD_MAX_ ? s_cmd((int)v) : NULL;
    out->cmd = (tern_cmd_t)(v > 255 ? 0 : v);
    if (cmd == NULL && late == TERN_OK) {
        late = TERN_ECOMMAND;
    }
    rc = s_read_uint(&c, &v);
    if (rc != TERN_OK) {
        return rc == TERN_EMALFORMED ? rc : TERN_ETYPE;
    }
    out->req_id = v;
    if (late != TERN_OK) {
        return late;
    }

    //  The fields map
    uint32_t nfields;
    rc = s_read_container(&c, true, &nfields);
    if (rc != TERN_OK) {
        return rc;
    }
    uint64_t allowed = cmd->req | cmd->opt;
    uint64_t seen = 0;
    int next = 0; //  where the next key most likely is (s_field_lookup)
    for (uint32_t i = 0; i < nfields; i++) {
        const char *k;
        uint32_t klen;
        rc = s_read_str(&c, &k, &klen);
        if (rc != TERN_OK) {
            return rc;
        }
        int fid = s_field_lookup(k, klen, next);
        if (fid >= 0) {
            next = fid + 1 < FD_COUNT_ ? fid + 1 : 0;
        }
        if (fid < 0 || !(allowed & B(fid))) {
            rc = s_skip(&c); //  unknown or not used by this command: ignored
            if (rc != TERN_OK) {
                return rc;
            }
            continue;
        }
        if (seen & B(fid)) {
            return TERN_EMALFORMED; //  duplicate key
        }
        seen |= B(fid);
        rc = s_decode_field(&c, out, fid);
        if (rc != TERN_OK) {
            return rc;
        }
        out->fields |= s_fields[fid].fbit;
    }
    if (c.p != c.end) {
        return TERN_EMALFORMED;
    }
    if ((seen & cmd->req) != cmd->req) {
        return TERN_EMISSING;
    }
    rc = s_check_values(out, seen);
    if (rc != TERN_OK) {
        return rc;
    }

    //  The payload frame
    if (cmd->payload == 0 && payload != NULL) {
        return TERN_EFRAMES;
    }
    if (cmd->payload == 1 && payload == NULL) {
        return TERN_EFRAMES;
    }
    size_t max_payload = limits ? limits->max_payload : TERN_PAYLOAD_MAX;
    if (payload_size > max_payload) {
        return TERN_ETOOBIG;
    }
    if (payload != NULL) {
        out->payload = payload;
        out->payload_size = payload_size;
        out->fields |= TERN_F_PAYLOAD;
    }
    return TERN_OK;
}

//  True if optional field FID of F is to be encoded.
static bool s_present(const tern_frame_t *f, int fid) {
    const s_field_t *fd = &s_fields[fid];
    switch (fid) {
        case FD_PS:
            return (f->fields & TERN_F_PRODUCER) || f->producer[0] || f->producer_seq != 0;
        case FD_SV:
            return f->start_value != 0 ||
                   ((f->fields & TERN_F_START) &&
                    (f->start == TERN_START_SEQ || f->start == TERN_START_TIME));
        case FD_TC:
            return f->ttl_class != 0;
        case FD_SQ:
            return f->seq != 0;
        case FD_S:
            return f->sub_id != 0;
        case FD_PR:
            return (f->fields & TERN_F_PRIORITY) || f->priority != TERN_PRIORITY_DEFAULT;
        case FD_M:
            return (f->fields & TERN_F_META) || f->meta != NULL;
        default:
            if (fd->fbit != 0 && (f->fields & fd->fbit) != 0) {
                return true;
            }
            //  A non-default value is sent even without its bit.
            if (fd->kind == K_STR) {
                return ((const char *)f + fd->offset)[0] != '\0';
            }
            if (fd->kind == K_BOOL) {
                return *(const bool *)((const uint8_t *)f + fd->offset);
            }
            return fd->kind == K_UINT && s_get_uint(f, fd) != 0;
    }
}

tern_err_t tern_frame_encode(const tern_frame_t *frame, uint8_t *buf, size_t cap, size_t *len) {
    if (frame == NULL || buf == NULL || len == NULL) {
        return TERN_EINVAL;
    }
    const s_cmd_t *cmd = s_cmd((int)frame->cmd);
    if (cmd == NULL) {
        return TERN_ECOMMAND;
    }
    uint16_t version = frame->version ? frame->version : TERN_PROTO_VERSION;
    if (version < TERN_PROTO_MIN_VERSION || version > TERN_PROTO_VERSION) {
        return TERN_EVERSION;
    }
    if (cmd->payload == 0 && (frame->payload != NULL || frame->payload_size > 0)) {
        return TERN_EFRAMES;
    }
    if (frame->payload_size > TERN_PAYLOAD_MAX) {
        return TERN_ETOOBIG;
    }

    //  Decide what goes out and validate it exactly as the decoder would.
    uint64_t present = cmd->req;
    uint32_t count = 0;
    for (uint64_t bits = cmd->opt; bits != 0; bits &= bits - 1) {
        int i = __builtin_ctzll(bits);
        if (s_present(frame, i)) {
            present |= B(i);
        }
    }
    uint32_t meta_count = 0;
    for (uint64_t bits = present; bits != 0; bits &= bits - 1) {
        int i = __builtin_ctzll(bits);
        count++;
        const s_field_t *fd = &s_fields[i];
        tern_err_t rc = TERN_OK;
        if (fd->kind == K_STR) {
            const char *s = (const char *)frame + fd->offset;
            size_t slen = strnlen(s, fd->size);
            if (slen == fd->size) {
                return TERN_ETOOBIG;
            }
            s_field_t g = i == FD_T ? s_topic_field(frame->cmd) : *fd;
            rc = s_check_str(&g, s, slen);
        } else if (fd->kind == K_META) {
            rc = frame->meta ? tern_meta_validate(frame->meta, frame->meta_size, &meta_count)
                             : TERN_EMETA;
        } else if (fd->kind == K_ACKS) {
            rc = s_check_acks(frame->acks, frame->ack_count);
        }
        if (rc != TERN_OK) {
            return rc;
        }
    }
    tern_err_t rc = s_check_values(frame, present);
    if (rc != TERN_OK) {
        return rc;
    }

    tern_wbuf_t w = {buf, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, tern_wbuf_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint16(&pk, TERN_PROTO_MAGIC);
    msgpack_pack_uint16(&pk, version);
    msgpack_pack_uint8(&pk, (uint8_t)frame->cmd);
    msgpack_pack_uint64(&pk, frame->req_id);
    msgpack_pack_map(&pk, count);
    for (uint64_t bits = present; bits != 0 && !w.overflow; bits &= bits - 1) {
        int i = __builtin_ctzll(bits);
        const s_field_t *fd = &s_fields[i];
        msgpack_pack_str_with_body(&pk, fd->key, fd->key_len);
        switch ((s_kind_t)fd->kind) {
            case K_UINT:
                msgpack_pack_uint64(&pk, s_get_uint(frame, fd));
                break;
            case K_BOOL:
                if (*(const bool *)((const uint8_t *)frame + fd->offset)) {
                    msgpack_pack_true(&pk);
                } else {
                    msgpack_pack_false(&pk);
                }
                break;
            case K_STR: {
                const char *s = (const char *)frame + fd->offset;
                msgpack_pack_str_with_body(&pk, s, strlen(s));
                break;
            }
            case K_META:
                tern_wbuf_write(&w, (const char *)frame->meta, frame->meta_size);
                break;
            case K_ACKS:
                msgpack_pack_bin_with_body(&pk, frame->acks, (size_t)frame->ack_count * S_ACK_SIZE);
                break;
        }
    }
    if (w.overflow) {
        return TERN_ETOOBIG;
    }
    *len = w.len;
    return TERN_OK;
}

// ---------------------------------------------------------------------------
//  CREPL_RECORDS entries

static void s_put_u32(uint8_t *out, size_t v) {
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static uint32_t s_get_u32(const uint8_t *in) {
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

size_t tern_records_put(uint8_t *out, const uint8_t *hdr, size_t hdr_size, const uint8_t *payload,
                        size_t payload_size) {
    s_put_u32(out, hdr_size);
    memcpy(out + 4, hdr, hdr_size);
    s_put_u32(out + 4 + hdr_size, payload_size);
    if (payload_size) {
        memcpy(out + 8 + hdr_size, payload, payload_size);
    }
    return hdr_size + payload_size + TERN_RECORDS_ENTRY_OVERHEAD;
}

tern_err_t tern_records_next(const uint8_t *payload, size_t size, size_t *pos,
                             const tern_limits_t *limits, tern_frame_t *out) {
    size_t at = *pos;
    if (at >= size) {
        return TERN_ENOTFOUND;
    }
    if (size - at < 4) {
        return TERN_EMALFORMED;
    }
    size_t hdr_size = s_get_u32(payload + at);
    if (size - at - 4 < hdr_size || size - at - 4 - hdr_size < 4) {
        return TERN_EMALFORMED;
    }
    const uint8_t *hdr = payload + at + 4;
    size_t body_size = s_get_u32(hdr + hdr_size);
    const uint8_t *body = hdr + hdr_size + 4;
    if ((size_t)(payload + size - body) < body_size) {
        return TERN_EMALFORMED;
    }
    tern_err_t rc = tern_frame_decode(out, hdr, hdr_size, body, body_size, limits);
    if (out->cmd != 0 && out->cmd != TERN_CMD_CREPL_RECORD && out->cmd != TERN_CMD_CREPL_TOPIC) {
        rc = TERN_ECOMMAND;
    }
    if (rc == TERN_OK) {
        *pos = (size_t)(body - payload) + body_size;
    }
    return rc;
}

tern_err_t tern_frame_encode_puback(const tern_puback_t *acks, uint32_t count, uint8_t *buf,
                                    size_t cap, size_t *len) {
    if ((acks == NULL && count > 0) || buf == NULL || len == NULL) {
        return TERN_EINVAL;
    }
    if (count > TERN_PUBACK_MAX) {
        return TERN_ETOOBIG;
    }
    tern_wbuf_t w = {buf, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, tern_wbuf_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint16(&pk, TERN_PROTO_MAGIC);
    msgpack_pack_uint16(&pk, TERN_PROTO_VERSION);
    msgpack_pack_uint8(&pk, TERN_CMD_PUBACK);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_bin(&pk, (size_t)count * S_ACK_SIZE);
    for (uint32_t i = 0; i < count && !w.overflow; i++) {
        uint8_t e[S_ACK_SIZE];
        uint64_t words[3] = {acks[i].req_id, acks[i].msg_id, acks[i].seq};
        for (int j = 0; j < 3; j++) {
            for (int b = 0; b < 8; b++) {
                e[j * 8 + b] = (uint8_t)(words[j] >> (56 - 8 * b));
            }
        }
        for (int b = 0; b < 4; b++) {
            e[24 + b] = (uint8_t)(acks[i].code >> (24 - 8 * b));
        }
        e[28] = acks[i].duplicate ? 1 : 0;
        tern_wbuf_write(&w, (const char *)e, sizeof e);
    }
    if (w.overflow) {
        return TERN_ETOOBIG;
    }
    *len = w.len;
    return TERN_OK;
}

tern_err_t tern_frame_puback(const tern_frame_t *frame, uint32_t index, tern_puback_t *out) {
    if (frame == NULL || out == NULL || frame->cmd != TERN_CMD_PUBACK) {
        return TERN_EINVAL;
    }
    if (index >= frame->ack_count || frame->acks == NULL) {
        return TERN_ERANGE;
    }
    const uint8_t *e = frame->acks + (size_t)index * S_ACK_SIZE;
    out->req_id = s_be(e, 8);
    out->msg_id = s_be(e + 8, 8);
    out->seq = s_be(e + 16, 8);
    out->code = (uint32_t)s_be(e + 24, 4);
    out->duplicate = e[28] != 0;
    return TERN_OK;
}
