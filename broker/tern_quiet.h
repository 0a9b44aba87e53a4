/*  tern_quiet.h - topics nobody listens to: the storer's NOTICE skip.

    On a single node the storer tells route about every appended message (a
    NOTICE per commit), and route wakes for it even when nothing subscribes
    to the topic: one thread wake-up per commit off the answer's path, but on
    two cores it competes with conn and libzmq's I/O thread for the same sync
    publish (docs/performance.md, "Hops of a lone message").

    Route marks a topic quiet when a NOTICE brings it messages of a topic it
    knows and that has no group (no subscription, durable or ephemeral, joins
    it); after its commit the storer leaves the appended messages of quiet
    topics out of the NOTICE, and sends none when nothing else is in it.
    Topics route does not know yet are never quiet: route learns new topics
    (and joins pattern subscriptions to them) from these NOTICEs.

    Race-free by two fences (tern_quiet_fence): the storer commits, fences,
    then reads the flag; route clears the flag (a group joined the topic),
    fences, then opens the read snapshot the group scans. Either the storer
    sees the flag cleared and sends the NOTICE, or route's snapshot holds the
    commit and the new group finds its messages in its first scan.

    Shared by the storer (reads) and route (writes) only through atomics,
    embedded in tern_broker_t; zero-initialised means "nothing is quiet". Not
    used in a cluster: there NOTICEs also carry the ISR's high watermark.
*/
#ifndef TERN_QUIET_H_INCLUDED
#define TERN_QUIET_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

//  Topic ids at or above this are never quiet (ids grow from 1 and are
//  never reused; 64 KB of flags covers any realistic topic count).
#define TERN_QUIET_MAX 65536

typedef struct {
    atomic_uchar flags[TERN_QUIET_MAX]; //  1: route knows the topic and no group is on it
} tern_quiet_t;

//  True when route said TOPIC_ID has no listener. Any thread.
bool tern_quiet_get(tern_quiet_t *self, uint32_t topic_id);

//  Marks TOPIC_ID quiet or not (route only); ids past TERN_QUIET_MAX are
//  ignored (never quiet).
void tern_quiet_set(tern_quiet_t *self, uint32_t topic_id, bool quiet);

//  A full fence: between the storer's commit and its reads of the flags,
//  and between route's writes of them and its next read snapshot.
void tern_quiet_fence(void);

#endif
