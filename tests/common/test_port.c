/*  test_port: loopback TCP ports for tests outside the ephemeral range. */
#include "test_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

//  Ports are taken from [low - S_SPAN, low) where low is the ephemeral
//  range's first port (Linux default 32768).
#define S_SPAN 12000

static int s_next = -1; //  offset of the next candidate within the span

static int s_ephemeral_low(void) {
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2) {
            low = 32768;
        }
        fclose(f);
    }
    return low;
}

static int s_bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    int ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

int test_port(void) {
    int low = s_ephemeral_low();
    int base = low > S_SPAN + 1024 ? low - S_SPAN : 1024;
    if (s_next < 0) {
        //  Processes running side by side start at different places.
        s_next = (int)(((unsigned)getpid() * 2654435761u) % S_SPAN);
    }
    for (int tries = 0; tries < S_SPAN; tries++) {
        int port = base + s_next;
        s_next = (s_next + 1) % S_SPAN;
        if (s_bindable(port)) {
            return port;
        }
    }
    return -1;
}
