/*  tern_hostport.h - the one split of a "HOST:PORT" address into its parts.

    libtern checks a tcp:// endpoint before any thread runs
    (client/tern_client_endpoint.c), ternd tells a local endpoint from a
    remote one (broker/tern_auth.c) and binds its metrics listener
    (broker/tern_http.c): all three split the same way, here. In protocol/
    because it is the one library both sides link; it knows nothing of the
    wire. Pure: no state, no allocation, thread-safe.
*/
#ifndef TERN_HOSTPORT_H_INCLUDED
#define TERN_HOSTPORT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

/*  Splits ADDRESS, "HOST:PORT", at its last colon into HOST (HOST_SIZE
    bytes) and PORT (PORT_SIZE bytes), both NUL-terminated. A HOST in
    brackets ("[::1]:7600", an IPv6 address) loses them. False, with HOST
    and PORT unspecified, when there is no colon, HOST or PORT is empty, or
    either does not fit. Nothing else is checked: the caller judges the
    port ("7600", "*") and the host. */
bool tern_hostport_split(const char *address, char *host, size_t host_size, char *port,
                         size_t port_size);

#endif
