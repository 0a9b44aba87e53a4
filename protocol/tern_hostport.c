/*  tern_hostport.c - the one split of a "HOST:PORT" address (tern_hostport.h).
 */
#include "tern_hostport.h"

#include <string.h>

bool tern_hostport_split(const char *address, char *host, size_t host_size, char *port,
                         size_t port_size) {
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (!colon || !colon[1]) {
        return false;
    }
    const char *start = address;
    size_t len = (size_t)(colon - address);
    if (len >= 2 && start[0] == '[' && start[len - 1] == ']') {
        start++;
        len -= 2;
    }
    size_t port_len = strlen(colon + 1);
    if (len == 0 || len >= host_size || port_len >= port_size) {
        return false;
    }
    memcpy(host, start, len);
    host[len] = '\0';
    memcpy(port, colon + 1, port_len + 1);
    return true;
}
