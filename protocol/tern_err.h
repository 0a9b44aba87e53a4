/*  tern_err.h - the error vocabulary every layer of tern shares.

    The codes name every failure the broker, its storage, the cluster, the
    wire and libtern can report; ERROR frames carry their numbers, so the
    numbers never change once released. They live in protocol/, the one
    library every layer links, so that storage/, cluster/ and broker/ need
    nothing from the client (dependencies run one way, towards protocol/).
    `make install` puts this header beside tern.h, which includes it:
    applications include tern.h only. protocol/tern_err.c implements the
    two functions.
*/
#ifndef TERN_ERR_H_INCLUDED
#define TERN_ERR_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

/*  Marks the public API. libtern.so is built with -fvisibility=hidden, so it
    exports exactly the functions declared with TERN_EXPORT in tern.h and the
    headers it includes (tests/packaging/exports.sh compares them). */
#if defined(__GNUC__)
#define TERN_EXPORT __attribute__((visibility("default")))
#else
#define TERN_EXPORT
#endif

/*  Error codes. 0 is success; every other value names one failure. The numeric
    values are part of the wire protocol (ERROR frames carry them). */
typedef enum {
    TERN_OK = 0,
    /*  Decoding and validation (1xx) */
    TERN_EMALFORMED = 100, /* not msgpack, truncated, or trailing bytes */
    TERN_EMAGIC = 101,     /* header does not start with the tern magic */
    TERN_EVERSION = 102,   /* protocol version not supported */
    TERN_ECOMMAND = 103,   /* unknown command */
    TERN_ETYPE = 104,      /* a field has the wrong msgpack type */
    TERN_EMISSING = 105,   /* a required field is absent */
    TERN_ETOOBIG = 106,    /* frame, payload or field over its limit */
    TERN_ETOPIC = 107,     /* topic name or pattern violates the grammar */
    TERN_ENAME = 108,      /* group, producer, dc or other name invalid */
    TERN_ETRACE = 109,     /* trace id is not a W3C traceparent */
    TERN_EMETA = 110,      /* metadata map invalid (count, sizes, types) */
    TERN_ERANGE = 111,     /* a number outside its allowed range */
    TERN_EFRAMES = 112,    /* wrong number of ZeroMQ frames */
    /*  Requests (2xx) */
    TERN_EINVAL = 200,    /* invalid argument */
    TERN_ENOTFOUND = 201, /* no such topic, group, subscription or message */
    TERN_EEXIST = 202,    /* already exists */
    TERN_ESTATE = 203,    /* not allowed in the current state (e.g. no HELLO yet) */
    TERN_EDENIED = 204,   /* not authenticated or not authorized */
    TERN_ELIMIT = 205,    /* a configured limit was reached (connections, topics...) */
    TERN_ENOTLEADER =
        206, /* cluster: this node does not lead the partition; reason names the leader */
    /*  Storage (3xx) */
    TERN_EFULL = 300,     /* storage full: map or disk at its limit */
    TERN_ECORRUPT = 301,  /* a stored record failed its CRC32C check */
    TERN_ESTORAGE = 302,  /* any other storage I/O error */
    TERN_EREPLICAS = 303, /* cluster: not enough in-sync replicas confirmed; nothing acknowledged */
    /*  Runtime (4xx) */
    TERN_ETIMEOUT = 400,    /* the operation timed out */
    TERN_ECLOSED = 401,     /* the connection or object is closed */
    TERN_ECLOCK = 402,      /* the clock went backwards beyond the allowed bound */
    TERN_ENOMEM = 403,      /* out of memory */
    TERN_EBUSY = 404,       /* temporarily unable; retry later */
    TERN_ECONFIG = 405,     /* bad configuration */
    TERN_EINTERNAL = 406,   /* a bug: please report */
    TERN_ECONNREFUSED = 407 /* no broker listens at any endpoint (first contact only) */
} tern_err_t;

/*  Returns a static, human-readable description of ERR (never NULL; unknown
    codes give "unknown error"). Thread-safe. */
TERN_EXPORT const char *tern_strerror(int err);

/*  Returns the symbolic name of ERR, e.g. "TERN_EFULL" (never NULL; unknown
    codes give "TERN_E?"). Thread-safe. */
TERN_EXPORT const char *tern_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
