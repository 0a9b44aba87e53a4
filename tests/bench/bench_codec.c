/*  bench_codec.c - micro-benchmark of the wire codec (not a test).

    Encodes and decodes a PUBLISH header with 6 fields (topic, producer,
    producer_seq, key, trace id, priority) and a 1 KB payload frame, the
    shape of shared/bench/msgpack_bench's message, and prints ns per message
    plus RESULT lines in the format of shared/bench/common.h.

    Usage: bench_codec [-n iterations] [-s payload bytes]
*/
#include "tern_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void s_result(const char *name, uint64_t msgs, uint64_t ns, size_t payload) {
    double secs = (double)ns / 1e9;
    printf("RESULT name=%s msgs=%llu secs=%.4f msgs_per_s=%.0f p50_us=NA p99_us=NA lat=none "
           "ns_per_msg=%.1f size=%zu\n",
           name, (unsigned long long)msgs, secs, secs > 0 ? (double)msgs / secs : 0.0,
           (double)ns / (double)msgs, payload);
}

int main(int argc, char *argv[]) {
    uint64_t n = 2000000;
    size_t size = 1024;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n') {
            n = strtoull(optarg, NULL, 10);
        } else if (opt == 's') {
            size = strtoull(optarg, NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_codec [-n iterations] [-s payload bytes]\n");
            return 2;
        }
    }
    if (n == 0 || size > TERN_PAYLOAD_MAX) {
        fprintf(stderr, "bench_codec: bad arguments\n");
        return 2;
    }
    uint8_t *payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        payload[i] = (uint8_t)(i * 131 + 7);
    }
    tern_frame_t pub;
    tern_frame_init(&pub, TERN_CMD_PUBLISH);
    strcpy(pub.topic, "orders.eu.created");
    strcpy(pub.producer, "checkout-7");
    strcpy(pub.key, "customer-4711");
    strcpy(pub.trace_id, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    pub.priority = 6;
    pub.fields = TERN_F_TOPIC | TERN_F_PRODUCER | TERN_F_KEY | TERN_F_TRACE | TERN_F_PRIORITY;
    pub.payload = payload;
    pub.payload_size = size;

    static uint8_t hdr[TERN_HEADER_MAX];
    size_t len = 0;
    tern_frame_t in;
    uint64_t check = 0;

    //  Encode only, decode only, then both back to back (what a hop costs).
    uint64_t t0 = s_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        pub.req_id = i + 1;
        pub.producer_seq = i;
        if (tern_frame_encode(&pub, hdr, sizeof hdr, &len) != TERN_OK) {
            fprintf(stderr, "encode failed\n");
            return 1;
        }
        check += len;
    }
    uint64_t t1 = s_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if (tern_frame_decode(&in, hdr, len, payload, size, NULL) != TERN_OK) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        check += in.req_id;
    }
    uint64_t t2 = s_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        pub.req_id = i + 1;
        pub.producer_seq = i;
        if (tern_frame_encode(&pub, hdr, sizeof hdr, &len) != TERN_OK ||
            tern_frame_decode(&in, hdr, len, payload, size, NULL) != TERN_OK ||
            in.producer_seq != i) {
            fprintf(stderr, "round trip failed\n");
            return 1;
        }
    }
    uint64_t t3 = s_now_ns();

    printf("header %zu bytes + payload %zu bytes; encode %.1f ns, decode %.1f ns, "
           "round trip %.1f ns per message (check %llu)\n",
           len, size, (double)(t1 - t0) / (double)n, (double)(t2 - t1) / (double)n,
           (double)(t3 - t2) / (double)n, (unsigned long long)(check & 0xff));
    s_result("tern_codec_encode", n, t1 - t0, size);
    s_result("tern_codec_decode", n, t2 - t1, size);
    s_result("tern_codec_roundtrip", n, t3 - t2, size);
    free(payload);
    return 0;
}
