/*  test_hostport.c - the one "HOST:PORT" split (protocol/tern_hostport.c)
    that libtern's endpoint check, ternd's local-endpoint test and its
    metrics listener share.
*/
#include "tern_hostport.h"

#include <criterion/criterion.h>

Test(hostport, usage) {
    char host[64], port[8];
    cr_assert(tern_hostport_split("127.0.0.1:7600", host, sizeof host, port, sizeof port));
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_str_eq(port, "7600");
}

Test(hostport, ipv6_brackets_and_wildcards) {
    char host[64], port[8];
    cr_assert(tern_hostport_split("[::1]:7600", host, sizeof host, port, sizeof port));
    cr_assert_str_eq(host, "::1");
    cr_assert_str_eq(port, "7600");
    cr_assert(tern_hostport_split("*:*", host, sizeof host, port, sizeof port));
    cr_assert_str_eq(host, "*");
    cr_assert_str_eq(port, "*");
    //  Unbracketed v6: split at the last colon, as zmq does.
    cr_assert(tern_hostport_split("::1:80", host, sizeof host, port, sizeof port));
    cr_assert_str_eq(host, "::1");
}

Test(hostport, refused) {
    char host[8], port[4];
    cr_assert_not(tern_hostport_split(NULL, host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split("localhost", host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split(":7600", host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split("[]:7600", host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split("host:", host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split("longhostname:1", host, sizeof host, port, sizeof port));
    cr_assert_not(tern_hostport_split("h:76000", host, sizeof host, port, sizeof port));
    cr_assert(tern_hostport_split("1234567:123", host, sizeof host, port, sizeof port));
}
