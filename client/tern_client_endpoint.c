/*  tern_client_endpoint.c - endpoint syntax, and the probe that tells "nothing listens" at once.

    tern_client_new checks every endpoint here before any thread runs, so a
    typo fails the call instead of being retried forever; the session
    (tern_client_session.c) asks cl_tcp_refused, after a failed connect
    before the first session, whether the failure is one worth reporting at
    once (TERN_ECONNREFUSED), and names endpoints in reasons by their
    cl_tcp_address. Nothing here touches the client or a ZeroMQ socket.
*/
#include "tern_client_int.h"
#include "tern_hostport.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

//  The "HOST:PORT" part of a tcp:// ENDPOINT (after a "SOURCE;" prefix), or
//  NULL for another transport.
const char *cl_tcp_address(const char *endpoint) {
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return NULL;
    }
    const char *semi = strchr(endpoint + 6, ';');
    return semi ? semi + 1 : endpoint + 6;
}

//  Checks the syntax of ENDPOINT as zmq_connect would, before any thread
//  runs, so a typo is reported by tern_client_new rather than retried
//  forever. Returns true, or false with the reason in WHY.
bool cl_endpoint_valid(const char *endpoint, char *why, size_t why_size) {
    static const char *const hint = "expected tcp://HOST:PORT";
    const char *address = cl_tcp_address(endpoint);
    if (!address) {
        const char *sep = strstr(endpoint, "://");
        bool other =
            sep && sep[3] &&
            (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0);
        if (!other) {
            snprintf(why, why_size, "invalid endpoint '%.100s': %s%s", endpoint,
                     sep ? "unknown transport, " : "", hint);
        }
        return other;
    }
    char host[256], port[16];
    if (!tern_hostport_split(address, host, sizeof host, port, sizeof port)) {
        snprintf(why, why_size, "invalid endpoint '%.100s': no port, %s", endpoint, hint);
        return false;
    }
    char *end = NULL;
    unsigned long number = strtoul(port, &end, 10);
    if (port[0] < '0' || port[0] > '9' || *end || number == 0 || number > 65535) {
        snprintf(why, why_size, "invalid endpoint '%.100s': port '%s' is not 1..65535", endpoint,
                 port);
        return false;
    }
    for (const char *c = host; *c; c++) {
        if (!(isalnum((unsigned char)*c) || strchr(".-_:%*", *c))) {
            snprintf(why, why_size, "invalid endpoint '%.100s': bad host '%.80s', %s", endpoint,
                     host, hint);
            return false;
        }
    }
    return true;
}

//  True if a plain TCP connect to ENDPOINT is refused (every address of its
//  host answers with a reset). libzmq's monitor says only that a connect
//  failed, not why, and "nothing listens" is the one failure worth telling
//  at once; this asks the kernel. Runs on the I/O thread, after a failed
//  connect before the first session; waits at most 500 ms.
bool cl_tcp_refused(const char *endpoint) {
    const char *address = cl_tcp_address(endpoint);
    char host[256], port[16];
    if (!address || !tern_hostport_split(address, host, sizeof host, port, sizeof port)) {
        return false;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    if (getaddrinfo(host, port, &hints, &list) != 0) {
        return false;
    }
    bool refused = list != NULL;
    for (struct addrinfo *ai = list; ai && refused; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            refused = false;
            break;
        }
        int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof err;
            if (poll(&pfd, 1, 500) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                err = ETIMEDOUT;
            }
        }
        close(fd);
        refused = err == ECONNREFUSED;
    }
    freeaddrinfo(list);
    return refused;
}
