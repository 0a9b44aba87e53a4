/*  tern_etcd_json.h - what tern_etcd.c and tern_etcd_watch.c share: the
    gateway's JSON encoding of etcd's messages (base64 bytes, int64 as
    strings, key-value pairs), the endpoint list and the error mapping.

    etcd's gateway writes protobuf's JSON mapping: bytes fields in standard
    base64, int64 fields as decimal strings, and fields at their zero value
    left out (so an absent "succeeded" is false and an absent "TTL" is 0).
    Nothing here trusts the reply: every reader returns false on a shape it
    does not expect.
*/
#ifndef TERN_ETCD_JSON_H_INCLUDED
#define TERN_ETCD_JSON_H_INCLUDED

#include "tern_etcd.h"
#include <jansson.h>

#define TERN_ETCD_ENDPOINTS_MAX 16

//  etcd's "require leader" metadata (rpctypes.MetadataRequireLeaderKey), as
//  the gateway passes it on: a member without a leader refuses requests at
//  once (Unavailable, "no leader") and ends watches, instead of stalling or
//  serving stale data.
#define TERN_ETCD_REQUIRE_LEADER "Grpc-Metadata-hasleader: true"

/*  Sets up libcurl and jansson once per process (thread-safe; every
    constructor calls it). */
void tern_etcd_global_init(void);

/*  Splits the comma-separated URL list TEXT into URLS (each an owned copy
    without a trailing '/'). Returns the count, or 0 if TEXT is empty, has
    more than TERN_ETCD_ENDPOINTS_MAX entries or one is not http(s)://. */
size_t tern_etcd_endpoints_parse(const char *text, char *urls[TERN_ETCD_ENDPOINTS_MAX]);

/*  Standard base64 of DATA (SIZE bytes), with padding. Caller owns it. */
char *tern_etcd_b64(const void *data, size_t size);

/*  Decodes base64 TEXT into a new buffer with a NUL after its *SIZE_P bytes;
    NULL if TEXT is not base64. Caller owns it. */
char *tern_etcd_unb64(const char *text, size_t *size_p);

/*  The base64 range_end that makes [PREFIX, range_end) every key starting
    with PREFIX (etcd's "prefix" rule: the last byte below 0xff incremented,
    what follows dropped; "\0" = to the end when there is no such byte).
    Caller owns it. */
char *tern_etcd_prefix_end(const char *prefix);

/*  Reads OBJ's int64 member NAME into *OUT: a decimal string or a JSON
    integer; absent is 0. False for any other shape or a non-object OBJ. */
bool tern_etcd_json_i64(const json_t *obj, const char *name, int64_t *out);

/*  Fills KV from a gateway mvccpb.KeyValue object; absent value is "".
    False (KV cleared) if it is not one. */
bool tern_etcd_kv_parse(const json_t *obj, tern_etcd_kv_t *kv);

/*  Frees KV's buffers and zeroes it. */
void tern_etcd_kv_clear(tern_etcd_kv_t *kv);

/*  Maps the gRPC status CODE and MESSAGE of an etcd error to a tern_err_t
    (lease not found -> TERN_ESTATE, compacted -> TERN_ERANGE, unavailable or
    no leader -> TERN_EBUSY, deadline -> TERN_ETIMEOUT, request too large ->
    TERN_ETOOBIG, other invalid requests -> TERN_EINVAL, ...). */
tern_err_t tern_etcd_grpc_err(int64_t code, const char *message);

#endif
