/*  test_client_wire.c - tern.h's public constants are the wire's.

    libtern passes tern_pub_options_t.ttl_class and tern_sub_options_t.start
    to the codec as they are, so tern.h's TERN_CLASS_* and TERN_FROM_* (the
    names applications use) must equal protocol/tern_proto.h's TERN_TTL_*
    and TERN_START_* (the values on the wire), and tern.h's documented limits
    must be the codec's. The checks are made at compile time; the test only
    shows them.
*/
#include "tern.h"
#include "tern_proto.h"

#include <criterion/criterion.h>

_Static_assert(TERN_CLASS_NONE == TERN_TTL_NONE, "TERN_CLASS_NONE");
_Static_assert(TERN_CLASS_INSTANT == TERN_TTL_INSTANT, "TERN_CLASS_INSTANT");
_Static_assert(TERN_CLASS_BUSINESS == TERN_TTL_BUSINESS, "TERN_CLASS_BUSINESS");
_Static_assert(TERN_CLASS_SYNC == TERN_TTL_SYNC, "TERN_CLASS_SYNC");
_Static_assert(TERN_FROM_FIRST == TERN_START_FIRST, "TERN_FROM_FIRST");
_Static_assert(TERN_FROM_NEW == TERN_START_NEW, "TERN_FROM_NEW");
_Static_assert(TERN_FROM_SEQ == TERN_START_SEQ, "TERN_FROM_SEQ");
_Static_assert(TERN_FROM_TIME == TERN_START_TIME, "TERN_FROM_TIME");

Test(client_wire, usage) {
    //  An application's TTL class and start position arrive as the wire's.
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.ttl_class = TERN_CLASS_BUSINESS;
    cr_assert_eq(msg.ttl_class, TERN_TTL_BUSINESS);
    tern_sub_options_t sub;
    tern_sub_options_init(&sub);
    cr_assert_eq(sub.start, TERN_START_FIRST);
    //  tern_header_t's documented limits ("1..64 bytes", "0..1024 bytes",
    //  "<= 32" pairs) are the codec's.
    cr_assert_eq(TERN_META_KEY_MAX, 64);
    cr_assert_eq(TERN_META_VALUE_MAX, 1024);
    cr_assert_eq(TERN_META_MAX_ENTRIES, 32);
}
