/*  test_partition.c - topic -> partition (protocol/tern_partition.c): the
    xxHash64 vectors and the (topic, P, partition) table of docs/protocol.md,
    and an even spread of topics over 64 partitions. */
#include "tern_partition.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

//  Usage: libtern and ternd both ask which partition a topic is in.
Test(partition, usage) {
    const char *topic = "orders.eu";
    uint32_t p = tern_partition_of(topic, strlen(topic), 64);
    cr_assert_eq(p, 35u);
    //  The same topic always lands on the same partition.
    cr_assert_eq(tern_partition_of(topic, strlen(topic), 64), p);
    //  No cluster (P = 0 or 1): everything is partition 0.
    cr_assert_eq(tern_partition_of(topic, strlen(topic), 0), 0u);
    cr_assert_eq(tern_partition_of(topic, strlen(topic), 1), 0u);
}

//  xxHash64 reference values (seed 0 unless given), covering every path:
//  empty, the 1-, 4- and 8-byte tails, and the 32-byte stripes.
Test(partition, xxhash64_vectors) {
    cr_assert_eq(tern_partition_hash(NULL, 0, 0), 0xef46db3751d8e999ULL);
    cr_assert_eq(tern_partition_hash("a", 1, 0), 0xd24ec4f1a98c6e5bULL);
    cr_assert_eq(tern_partition_hash("abc", 3, 0), 0x44bc2cf5ad770999ULL);
    cr_assert_eq(tern_partition_hash("1234567", 7, 0), 0xd3a46e9108289359ULL);
    cr_assert_eq(tern_partition_hash("12345678", 8, 0), 0xd2d02f08cf7cfd4aULL);
    cr_assert_eq(tern_partition_hash("orders", 6, 0), 0x0f4f95cfb44ca775ULL);
    cr_assert_eq(tern_partition_hash("orders.eu", 9, 0), 0x7c0a12430e5ac1e3ULL);
    const char *s42 = "0123456789abcdef0123456789abcdef0123456789";
    cr_assert_eq(tern_partition_hash(s42, strlen(s42), 0), 0xa76190c3acf08a1cULL);
    cr_assert_eq(tern_partition_hash("abc", 3, 1), 0xbea9ca8199328908ULL);
    char x40[41];
    memset(x40, 'x', 40);
    cr_assert_eq(tern_partition_hash(x40, 40, 0), 0x926f564e1b3e18d5ULL);
    cr_assert_eq(tern_partition_hash(x40, 40, 0x123456789ULL), 0xe82061411be040dcULL);
}

//  The table in docs/protocol.md, "Partitions": (topic, P, partition).
Test(partition, doc_vectors) {
    static const struct {
        const char *topic; //  name
        uint32_t p8;       //  partition with P = 8
        uint32_t p64;      //  partition with P = 64 (the default)
        uint32_t p1000;    //  partition with P = 1000
    } vectors[] = {
        {"a", 3, 27, 955},
        {"orders", 5, 53, 245},
        {"orders.eu", 3, 35, 323},
        {"payments.card.authorised", 1, 17, 833},
        {"audit.login-failed", 0, 40, 680},
        {"sensor_42.temperature", 6, 6, 942},
        {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 5, 21, 717},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *t = vectors[i].topic;
        cr_assert_eq(tern_partition_of(t, strlen(t), 8), vectors[i].p8, "%s", t);
        cr_assert_eq(tern_partition_of(t, strlen(t), 64), vectors[i].p64, "%s", t);
        cr_assert_eq(tern_partition_of(t, strlen(t), 1000), vectors[i].p1000, "%s", t);
    }
}

//  The name is bytes: case, length and every byte count.
Test(partition, bytes_matter) {
    cr_assert_neq(tern_partition_hash("Orders", 6, 0), tern_partition_hash("orders", 6, 0));
    cr_assert_neq(tern_partition_hash("orders", 6, 0), tern_partition_hash("orders", 5, 0));
    //  Only LEN bytes are read: what follows does not matter.
    cr_assert_eq(tern_partition_of("orders.eu", 6, 64), tern_partition_of("orders", 6, 64));
}

//  Why not FNV-1a: mod 64 it keeps only the low 6 bits of each byte, so
//  these four (differing in bit 6 only) would share a partition.
Test(partition, high_bits_count) {
    cr_assert_eq(tern_partition_of("tenant-1", 8, 64), 22u);
    cr_assert_eq(tern_partition_of("tenant-q", 8, 64), 4u);
    cr_assert_eq(tern_partition_of("tenantm1", 8, 64), 26u);
    cr_assert_eq(tern_partition_of("tenantmq", 8, 64), 27u);
}

//  10,000 topics over 64 partitions: every partition gets some, none gets
//  far more than its share (mean 156; a uniform hash stays within about
//  4 standard deviations, 12.5, of it). A chi-square over 63 degrees of
//  freedom below 120 rules out gross bias. Deterministic: same topics.
Test(partition, spread_over_64) {
    uint32_t counts[64] = {0};
    char topic[64];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(topic, sizeof topic, "tenant-%d.orders.created", i);
        counts[tern_partition_of(topic, (size_t)n, 64)]++;
    }
    double expected = 10000.0 / 64, chi2 = 0;
    for (int p = 0; p < 64; p++) {
        cr_assert(counts[p] > 100 && counts[p] < 215, "partition %d has %u", p, counts[p]);
        chi2 += (counts[p] - expected) * (counts[p] - expected) / expected;
    }
    cr_assert_lt(chi2, 120.0);
}
