/*  tern_example.c - libtern in one page: publish, subscribe, ack, admin.

    Usage: tern_example [ENDPOINTS] [TOPIC]
    Publishes 10 messages (asynchronously, then waits for every PUBACK),
    consumes them through the durable group "example" with the pull API,
    acknowledges each, and prints the broker's status. Exit 0 on success.
*/
#include "tern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_published(const tern_pub_result_t *result, void *arg) {
    //  Runs on the client's I/O thread, in acknowledgement order.
    (void)arg;
    if (result->code == TERN_OK) {
        printf("stored producer_seq=%llu as seq=%llu msg_id=%llu%s\n",
               (unsigned long long)result->producer_seq, (unsigned long long)result->seq,
               (unsigned long long)result->msg_id, result->duplicate ? " (duplicate)" : "");
    } else {
        printf("refused: %s\n", tern_strerror(result->code));
    }
}

int main(int argc, char **argv) {
    const char *endpoints = argc > 1 ? argv[1] : TERN_DEFAULT_ENDPOINT;
    const char *topic = argc > 2 ? argv[2] : "example.orders";

    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "tern_example";
    tern_client_t *client = tern_client_new(endpoints, &options);
    if (!client) {
        fprintf(stderr, "bad endpoints: %s\n", endpoints);
        return 1;
    }
    int rc = tern_client_wait_connected(client, 5000);
    if (rc != TERN_OK) {
        fprintf(stderr, "cannot connect to %s: %s\n", endpoints, tern_strerror(rc));
        tern_client_destroy(&client);
        return 1;
    }

    //  Publish: each message carries the client's producer id and the next
    //  producer_seq, so a resend after a failover is deduplicated.
    tern_header_t headers[] = {{"content-type", "text/plain"}};
    for (int i = 1; i <= 10; i++) {
        char body[64];
        snprintf(body, sizeof body, "order %d", i);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = topic;
        msg.payload = body;
        msg.size = strlen(body);
        msg.key = "customer-42";
        msg.headers = headers;
        msg.header_count = 1;
        rc = tern_publish_async(client, &msg, s_published, NULL);
        if (rc != TERN_OK) {
            fprintf(stderr, "publish: %s\n", tern_strerror(rc));
        }
    }
    rc = tern_flush(client, 10000);
    printf("flush: %s\n", tern_strerror(rc));

    //  Subscribe with the pull API: a durable group starting at the first message.
    tern_sub_options_t sub_options;
    tern_sub_options_init(&sub_options);
    sub_options.group = "example";
    tern_subscription_t *sub = NULL;
    rc = tern_subscribe(client, topic, &sub_options, NULL, NULL, &sub);
    if (rc != TERN_OK) {
        fprintf(stderr, "subscribe: %s %s\n", tern_strerror(rc), tern_last_reason());
        tern_client_destroy(&client);
        return 1;
    }
    int received = 0;
    tern_message_t *msg = NULL;
    while (tern_subscription_next(sub, 2000, &msg) == TERN_OK) {
        printf("got seq=%llu delivery=%u key=%s content-type=%s: %.*s\n",
               (unsigned long long)tern_message_seq(msg), tern_message_delivery_count(msg),
               tern_message_key(msg), tern_message_header_get(msg, "content-type"),
               (int)tern_message_size(msg), (const char *)tern_message_data(msg));
        tern_message_ack(msg, false);
        tern_message_destroy(&msg);
        received++;
    }
    printf("received %d message(s)\n", received);

    char *json = NULL;
    rc = tern_admin(client, "status", NULL, 0, &json, 0);
    if (rc == TERN_OK) {
        printf("status: %s\n", json);
        free(json);
    }
    tern_client_destroy(&client);
    return received > 0 ? 0 : 1;
}
